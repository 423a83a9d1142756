//! Errors of the data layer: every variant says where (file, line or record) and gives a hint.

use std::path::PathBuf;

/// Where in an input a problem is: a file and, when known, a 1-based line (or JSONL record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl Location {
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            line: None,
        }
    }
    pub fn line(file: impl Into<PathBuf>, line: usize) -> Self {
        Location {
            file: file.into(),
            line: Some(line),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file.display(), line),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{at}: cannot read file: {source}\n  hint: {hint}")]
    Io {
        at: Location,
        #[source]
        source: std::io::Error,
        hint: String,
    },
    #[error(
        "{at}: invalid UTF-8\n  hint: convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
    )]
    Utf8 { at: Location },
    #[error("{at}: {what}\n  hint: {hint}")]
    Invalid {
        at: Location,
        what: String,
        hint: String,
    },
}

impl DataError {
    pub fn invalid(at: Location, what: impl Into<String>, hint: impl Into<String>) -> Self {
        DataError::Invalid {
            at,
            what: what.into(),
            hint: hint.into(),
        }
    }

    pub fn io(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::NotFound => {
                "check the path; relative paths are resolved from the current directory".to_string()
            }
            std::io::ErrorKind::PermissionDenied => "check the file's permissions".to_string(),
            _ => "check that the path is a readable file".to_string(),
        };
        DataError::Io {
            at: Location::file(file),
            source,
            hint,
        }
    }
}

pub type DataResult<T> = Result<T, DataError>;
