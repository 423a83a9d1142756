//! The column-file layout shared by Twitter-GMNER, FMNERG, CoNLL-style predictions and AdaSeq
//! output: an optional `IMGID:<id>` line, then one `token<TAB>col<TAB>...` line per token, a blank
//! line between sentences. This module only splits; the readers give the columns meaning.

use std::path::Path;

use crate::data::error::{DataError, DataResult, Location};
use crate::data::model::Entity;
use crate::data::tags::{decode_tags, detect_scheme, validate_tag, Decode, Scheme};

/// One sentence as read: its id (when an `IMGID:` line gave one), tokens, tag columns, and the
/// 1-based line number of every token (for errors).
#[derive(Debug, Clone)]
pub struct Sentence {
    pub id: Option<String>,
    pub id_line: usize,
    pub tokens: Vec<String>,
    /// `columns[c][i]`: the c-th tag column of token i.
    pub columns: Vec<Vec<String>>,
    pub lines: Vec<usize>,
}

/// Rejects an `IMGID:` that two sentences share, naming both lines. Every column format here is
/// scored by tweet id (gold and predictions are aligned by id, boxes and images are looked up by
/// it), so a repeated id would silently merge two sentences into one tweet; seqeval would score
/// them as two sentences by position, which an id-aligned harness cannot reproduce. No released
/// file repeats an id, so this is an error, not a warning.
pub fn check_unique_ids(sentences: &[Sentence], path: &Path) -> DataResult<()> {
    let mut first_line: std::collections::HashMap<&str, usize> = Default::default();
    for s in sentences {
        let Some(id) = s.id.as_deref() else { continue };
        if let Some(first) = first_line.insert(id, s.id_line) {
            return Err(DataError::invalid(
                Location::line(path, s.id_line),
                format!("IMGID:{id} repeats the tweet of line {first}"),
                "each tweet appears once (scores align gold and predictions by IMGID); remove or merge the repeated sentence",
            ));
        }
    }
    Ok(())
}

/// Splits a column file into sentences. Every token line must have exactly `n_columns` tag
/// columns after the token (tab-separated).
pub fn read_sentences(text: &str, path: &Path, n_columns: usize) -> DataResult<Vec<Sentence>> {
    let mut out = Vec::new();
    let mut cur: Option<Sentence> = None;
    let new_sentence = |id: Option<String>, line: usize| Sentence {
        id,
        id_line: line,
        tokens: Vec::new(),
        columns: vec![Vec::new(); n_columns],
        lines: Vec::new(),
    };
    for (line_no, line) in crate::data::text::numbered_lines(text) {
        if line.trim().is_empty() {
            if let Some(s) = cur.take() {
                if !s.tokens.is_empty() || s.id.is_some() {
                    out.push(s);
                }
            }
            continue;
        }
        if let Some(id) = line.strip_prefix("IMGID:") {
            if let Some(s) = cur.take() {
                if !s.tokens.is_empty() || s.id.is_some() {
                    out.push(s);
                }
            }
            let id = id.trim();
            if id.is_empty() {
                return Err(DataError::invalid(
                    Location::line(path, line_no),
                    "empty IMGID",
                    "write the tweet id after the colon, e.g. `IMGID:71044`",
                ));
            }
            cur = Some(new_sentence(Some(id.to_string()), line_no));
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != n_columns + 1 {
            let what = if fields.len() == 1 {
                format!("token line {line:?} has no tab")
            } else {
                format!(
                    "token line has {} tab-separated fields, expected {}",
                    fields.len(),
                    n_columns + 1
                )
            };
            return Err(DataError::invalid(
                Location::line(path, line_no),
                what,
                format!(
                    "each token line is `token<TAB>{}`; separate columns with one tab, not spaces",
                    (0..n_columns)
                        .map(|_| "tag")
                        .collect::<Vec<_>>()
                        .join("<TAB>")
                ),
            ));
        }
        let s = cur.get_or_insert_with(|| new_sentence(None, line_no));
        s.tokens.push(fields[0].to_string());
        for (c, f) in fields[1..].iter().enumerate() {
            s.columns[c].push(f.trim().to_string());
        }
        s.lines.push(line_no);
    }
    if let Some(s) = cur.take() {
        if !s.tokens.is_empty() || s.id.is_some() {
            out.push(s);
        }
    }
    Ok(out)
}

/// Resolves `Scheme::Auto` over all tags of one column of a file.
pub fn resolve_scheme(sentences: &[Sentence], column: usize, scheme: Scheme) -> Scheme {
    match scheme {
        Scheme::Auto => detect_scheme(
            sentences
                .iter()
                .flat_map(|s| s.columns[column].iter().map(String::as_str)),
        ),
        s => s,
    }
}

/// Validates one tag column of a sentence and decodes it into entities (text, type, span).
pub fn decode_column(
    sentence: &Sentence,
    column: usize,
    scheme: Scheme,
    decode: Decode,
    path: &Path,
) -> DataResult<Vec<Entity>> {
    let tags = &sentence.columns[column];
    for (i, tag) in tags.iter().enumerate() {
        validate_tag(tag, scheme).map_err(|why| {
            DataError::invalid(
                Location::line(path, sentence.lines[i]),
                why,
                "tags are O, B-TYPE, I-TYPE (BIO) or also E-TYPE, S-TYPE (BIOES); use --scheme to force one",
            )
        })?;
    }
    Ok(decode_tags(tags, scheme, decode)
        .into_iter()
        .map(|c| Entity {
            text: sentence.tokens[c.start..c.end].join(" "),
            entity_type: c.entity_type,
            start: Some(c.start),
            end: Some(c.end),
            ..Default::default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn splits_sentences_with_and_without_ids() {
        let text = "IMGID:1\nA\tB-PER\nb\tO\n\nIMGID:2\nC\tO\n";
        let s = read_sentences(text, &PathBuf::from("t.txt"), 1).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id.as_deref(), Some("1"));
        assert_eq!(s[0].tokens, vec!["A", "b"]);
        assert_eq!(s[1].lines, vec![6]);
    }

    #[test]
    fn missing_tab_is_an_error_with_line() {
        let text = "IMGID:1\nA B-PER\n";
        let err = read_sentences(text, &PathBuf::from("t.txt"), 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.txt:2: token line \"A B-PER\" has no tab"),
            "{err}"
        );
    }

    #[test]
    fn invalid_tag_names_its_line() {
        let text = "IMGID:1\nA\tX-PER\n";
        let s = read_sentences(text, &PathBuf::from("t.txt"), 1).unwrap();
        let err = decode_column(
            &s[0],
            0,
            Scheme::Bio,
            Decode::Default,
            &PathBuf::from("t.txt"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t.txt:2: invalid tag \"X-PER\""), "{err}");
    }
}
