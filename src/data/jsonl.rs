//! Canonical JSONL in and out: one [`Tweet`] per line. Reading validates what serde cannot
//! (boxes, spans, groundable vs boxes) and names the record that is wrong.

use std::path::Path;

use super::error::{DataError, DataResult, Location};
use super::model::{Dataset, Tweet};
use super::text::{numbered_lines, read_text};

/// Reads a canonical JSONL file. Blank lines are skipped; every other line must be one tweet.
pub fn read_jsonl(path: &Path) -> DataResult<Dataset> {
    let text = read_text(path)?;
    parse_jsonl(&text, path)
}

/// Parses canonical JSONL text; `path` is only used in error messages.
pub fn parse_jsonl(text: &str, path: &Path) -> DataResult<Dataset> {
    let mut tweets = Vec::new();
    for (line_no, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let tweet: Tweet = serde_json::from_str(line).map_err(|e| {
            DataError::invalid(
                Location::line(path, line_no),
                format!("not a canonical tweet record: {e}"),
                "each line must be one JSON object as in docs FORMATS.md (id, entities[text,type,groundable,boxes])",
            )
        })?;
        validate_tweet(&tweet, &Location::line(path, line_no))?;
        tweets.push(tweet);
    }
    Ok(Dataset { tweets })
}

/// Checks the invariants of one record that serde cannot express.
pub fn validate_tweet(tweet: &Tweet, at: &Location) -> DataResult<()> {
    for (i, e) in tweet.entities.iter().enumerate() {
        let name = || format!("tweet {} entity #{} ({:?})", tweet.id, i + 1, e.text);
        for b in &e.boxes {
            b.validate().map_err(|why| {
                DataError::invalid(
                    at.clone(),
                    format!("{}: {why}", name()),
                    "boxes are [x1, y1, x2, y2] in pixels with x1 <= x2 and y1 <= y2",
                )
            })?;
        }
        for (k, m) in e.masks.iter().enumerate() {
            m.validate().map_err(|why| {
                let (what, hint) = why.what_and_hint();
                DataError::invalid(
                    at.clone(),
                    format!("{}: mask #{}: {what}", name(), k + 1),
                    hint,
                )
            })?;
        }
        match (e.start, e.end) {
            (Some(s), Some(t)) => {
                if s >= t {
                    return Err(DataError::invalid(
                        at.clone(),
                        format!("{}: span start {s} is not before end {t}", name()),
                        "token offsets are start inclusive, end exclusive",
                    ));
                }
                if let Some(tokens) = &tweet.tokens {
                    if t > tokens.len() {
                        return Err(DataError::invalid(
                            at.clone(),
                            format!(
                                "{}: span end {t} is past the {} tokens",
                                name(),
                                tokens.len()
                            ),
                            "token offsets index the record's `tokens`",
                        ));
                    }
                }
            }
            (None, None) => {}
            _ => {
                return Err(DataError::invalid(
                    at.clone(),
                    format!("{}: only one of start/end is set", name()),
                    "give both token offsets or neither",
                ))
            }
        }
    }
    Ok(())
}

/// Serialises a dataset as canonical JSONL (one line per tweet, trailing newline).
pub fn to_jsonl(dataset: &Dataset) -> String {
    let mut out = String::new();
    for tweet in &dataset.tweets {
        // A Tweet always serialises: all keys are strings and floats are finite (validated).
        out.push_str(&serde_json::to_string(tweet).expect("tweet serialises"));
        out.push('\n');
    }
    out
}

/// Writes canonical JSONL atomically.
pub fn write_jsonl(dataset: &Dataset, path: &Path) -> DataResult<()> {
    crate::io_util::write_atomic(path, to_jsonl(dataset).as_bytes())
        .map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn round_trip() {
        let line = r#"{"id":"O_2371","image":"O_2371.jpg","tokens":["Angelina","Jolie"],"entities":[{"text":"Angelina Jolie","type":"PER","start":0,"end":2,"groundable":true,"boxes":[[296.0,24.0,600.0,450.0]]}]}"#;
        let ds = parse_jsonl(line, &PathBuf::from("x.jsonl")).unwrap();
        assert_eq!(
            ds.tweets[0].entities[0].boxes[0].0,
            [296.0, 24.0, 600.0, 450.0]
        );
        assert_eq!(to_jsonl(&ds).trim_end(), line);
    }

    #[test]
    fn truncated_json_names_record() {
        let text = "{\"id\":\"a\",\"entities\":[]}\n{\"id\":\"b\",\"entit";
        let err = parse_jsonl(text, &PathBuf::from("p.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.jsonl:2:"), "{err}");
    }

    #[test]
    fn inverted_box_is_rejected() {
        let text = r#"{"id":"a","entities":[{"text":"x","type":"PER","groundable":true,"boxes":[[5,0,1,1]]}]}"#;
        let err = parse_jsonl(text, &PathBuf::from("p.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x2 < x1"), "{err}");
    }
}
