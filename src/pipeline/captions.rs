//! Image captions for the knowledge prompt (`[llm] knowledge_captions`). PGIM, whose auxiliary
//! knowledge RiVEG's tagger reads, shows the LLM a caption of the tweet's image next to its text;
//! this file brings such captions (made by any captioner, e.g. BLIP-2) to the `knowledge = "llm"`
//! stage. The file is JSONL, one image per line: `{"image": "<image file name>", "caption": "..."}`,
//! keyed like `[data] images` (`<tweet id>.jpg` unless the tweet names its image).
//!
//! Read strictly (a wrong line is an error naming the file and line, never skipped), and hashed,
//! so the knowledge stage's cache fingerprint changes when any caption does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a captions file cannot be used: what is wrong (file, and line where there is one) and a
/// hint, kept apart for errors that print their own hint.
#[derive(Debug, thiserror::Error)]
#[error("{what}\n  hint: {hint}")]
pub struct CaptionError {
    pub what: String,
    pub hint: String,
}

/// One line of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptionLine {
    image: String,
    caption: String,
}

/// The captions of a file, by image file name.
#[derive(Debug, Clone)]
pub struct Captions {
    path: PathBuf,
    by_image: HashMap<String, String>,
    sha256: String,
}

impl Captions {
    /// Reads and checks the whole file: every line an object with `image` and a non-empty
    /// `caption` (line breaks become spaces), no image twice.
    pub fn load(path: &Path) -> Result<Self, CaptionError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| CaptionError {
            what: format!("{shown}: cannot read it: {e}"),
            hint:
                "check [llm] knowledge_captions (relative paths are from the suite file's folder)"
                    .to_string(),
        })?;
        let invalid = |line: usize, what: String, hint: &str| CaptionError {
            what: format!("{shown}:{line}: {what}"),
            hint: hint.to_string(),
        };
        let text = String::from_utf8(bytes.clone()).map_err(|e| {
            let line = bytes[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            invalid(line, "not UTF-8 text".into(), "save the file as UTF-8")
        })?;
        let mut by_image = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let parsed: CaptionLine = serde_json::from_str(raw).map_err(|e| {
                invalid(
                    line,
                    format!("not a caption record: {e}"),
                    "each line is {\"image\": \"<image file name>\", \"caption\": \"...\"}",
                )
            })?;
            let caption = parsed
                .caption
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if caption.is_empty() {
                return Err(invalid(
                    line,
                    format!("image {:?} has an empty caption", parsed.image),
                    "drop the line, or give the image a caption",
                ));
            }
            if by_image.insert(parsed.image.clone(), caption).is_some() {
                return Err(invalid(
                    line,
                    format!(
                        "image {:?} has a caption on an earlier line too",
                        parsed.image
                    ),
                    "keep one caption per image",
                ));
            }
        }
        Ok(Captions {
            path: path.to_path_buf(),
            by_image,
            sha256: super::cache::sha256_hex(&bytes),
        })
    }

    /// The caption of an image (by file name, e.g. `123.jpg`).
    pub fn get(&self, image: &str) -> Option<&str> {
        self.by_image.get(image).map(String::as_str)
    }

    /// The sha256 of the file's bytes (part of the knowledge stage's fingerprint).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.by_image.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_image.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_captions_by_image_and_joins_line_breaks() {
        let (_d, path) = write(
            "{\"image\": \"1.jpg\", \"caption\": \"a man  speaking\\nat a podium\"}\n\n\
             {\"image\": \"2.jpg\", \"caption\": \"a cat\"}\n",
        );
        let c = Captions::load(&path).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("1.jpg"), Some("a man speaking at a podium"));
        assert_eq!(c.get("2.jpg"), Some("a cat"));
        assert_eq!(c.get("3.jpg"), None);
        assert_eq!(c.sha256().len(), 64);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        for (text, line, what) in [
            ("{\"image\": \"1.jpg\"}\n", 1, "missing field `caption`"),
            (
                "{\"image\": \"1.jpg\", \"caption\": \"a\"}\n{\"img\": \"2.jpg\", \"caption\": \"b\"}\n",
                2,
                "unknown field `img`",
            ),
            (
                "{\"image\": \"1.jpg\", \"caption\": \"a\"}\n{\"image\": \"1.jpg\", \"caption\": \"b\"}\n",
                2,
                "earlier line",
            ),
            ("{\"image\": \"1.jpg\", \"caption\": \"  \"}\n", 1, "empty caption"),
            ("not json\n", 1, "not a caption record"),
        ] {
            let (_d, path) = write(text);
            let e = Captions::load(&path).unwrap_err().to_string();
            assert!(
                e.contains(&format!("captions.jsonl:{line}:")) && e.contains(what),
                "{text:?}: {e}"
            );
            assert!(e.contains("hint:"), "{e}");
        }
        let e = Captions::load(Path::new("/nonexistent/c.jsonl")).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/c.jsonl: cannot read it"),
            "{e}"
        );
    }
}
