//! Reading text inputs the same way everywhere: whole-file UTF-8 check with the failing line
//! named, a UTF-8 BOM stripped, CRLF accepted.

use std::path::Path;

use super::error::{DataError, DataResult, Location};

/// Reads a text file and returns it without BOM; invalid UTF-8 is an error naming the line.
pub fn read_text(path: &Path) -> DataResult<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    match String::from_utf8(bytes) {
        Ok(mut s) => {
            if s.starts_with('\u{feff}') {
                s.drain(..'\u{feff}'.len_utf8());
            }
            Ok(s)
        }
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            Err(DataError::Utf8 {
                at: Location::line(path, line),
            })
        }
    }
}

/// Lines with their 1-based numbers, `\r` stripped from CRLF endings.
pub fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
    // A final newline yields one empty trailing piece; callers treat blank lines as separators.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_and_crlf_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        std::fs::write(&p, "\u{feff}a\r\nb\r\n").unwrap();
        let text = read_text(&p).unwrap();
        let lines: Vec<_> = numbered_lines(&text).collect();
        assert_eq!(lines, vec![(1, "a"), (2, "b"), (3, "")]);
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        std::fs::write(&p, b"ok\nok\n\xff\xfe bad\n").unwrap();
        let err = read_text(&p).unwrap_err().to_string();
        assert!(err.contains("x.txt:3"), "{err}");
        assert!(err.contains("invalid UTF-8"), "{err}");
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = read_text(Path::new("/nonexistent/gold.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/gold.txt"), "{err}");
        assert!(err.contains("hint"), "{err}");
    }
}
