//! CoNLL-style prediction files: `IMGID:<id>` lines, then `token<TAB>tag` per token (BIO or
//! BIOES, detected or forced), or `token<TAB>coarse<TAB>fine` (FMNERG-style, fine types attached
//! to the coarse chunks). Sentences without `IMGID:` get ids `#1..#N`.
//!
//! A repeated `IMGID:` is an error naming both lines: seqeval would score the two sentences
//! separately by position, but this harness aligns predictions with gold by id, where they would
//! be merged without a word (`columns::check_unique_ids`). The result is marked as predictions
//! (`DatasetMeta`); its entities carry no grounding decision (groundable false, no boxes).

use std::path::Path;

use crate::data::error::{DataError, DataResult, Location};
use crate::data::model::{Dataset, DatasetMeta, Side, Tweet};
use crate::data::readers::columns::{
    check_unique_ids, decode_column, read_sentences, resolve_scheme, Sentence,
};
use crate::data::tags::{Decode, Scheme};
use crate::data::text::read_text;
use crate::data::warnings::ReadOutput;

/// Reads a CoNLL-style file; the number of tag columns (1 or 2) is taken from its first token line.
pub fn read_conll(path: &Path, scheme: Scheme) -> DataResult<ReadOutput> {
    read_conll_decoded(path, scheme, Decode::Default)
}

/// [`read_conll`] with a chunk decoding mode (`import conll --decode`).
pub fn read_conll_decoded(path: &Path, scheme: Scheme, decode: Decode) -> DataResult<ReadOutput> {
    let text = read_text(path)?;
    // A line without any tab gets the line-numbered "has no tab" error from read_sentences.
    let n_columns = first_token_line_columns(&text).unwrap_or(1).max(1);
    if !(1..=2).contains(&n_columns) {
        return Err(DataError::invalid(
            Location::file(path),
            format!("token lines have {} tag columns", n_columns),
            "expected `token<TAB>tag` or `token<TAB>coarse<TAB>fine`; for AdaSeq output use `import adaseq`",
        ));
    }
    let sentences = read_sentences(&text, path, n_columns)?;
    check_unique_ids(&sentences, path)?;
    let scheme = resolve_scheme(&sentences, 0, scheme);
    let mut tweets = Vec::with_capacity(sentences.len());
    for (i, s) in sentences.iter().enumerate() {
        let mut entities = decode_column(s, 0, scheme, decode, path)?;
        if n_columns == 2 {
            attach_fine_types(s, &mut entities, scheme, decode, path)?;
        }
        let id = s.id.clone().unwrap_or_else(|| format!("#{}", i + 1));
        tweets.push(Tweet {
            image: s.id.as_ref().map(|id| format!("{id}.jpg")),
            id,
            tokens: Some(s.tokens.clone()),
            entities,
            extra: Default::default(),
        });
    }
    Ok(ReadOutput {
        dataset: Dataset {
            tweets,
            meta: Some(DatasetMeta::new(Side::Predictions, "conll")),
        },
        warnings: Vec::new(),
    })
}

fn first_token_line_columns(text: &str) -> Option<usize> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| !l.trim().is_empty() && !l.starts_with("IMGID:"))
        .map(|l| l.split('\t').count() - 1)
}

/// Gives each coarse chunk its fine type from column 1: the fine column must chunk identically.
pub(crate) fn attach_fine_types(
    s: &Sentence,
    entities: &mut [crate::data::model::Entity],
    scheme: Scheme,
    decode: Decode,
    path: &Path,
) -> DataResult<()> {
    let fine = decode_column(s, 1, scheme, decode, path)?;
    for e in entities.iter_mut() {
        let f = fine.iter().find(|f| f.start == e.start && f.end == e.end);
        match f {
            Some(f) => {
                if let Some(parent) = crate::data::fmnerg_types::coarse_of(&f.entity_type) {
                    if crate::data::fmnerg_types::is_fmnerg_coarse(&e.entity_type)
                        && parent != e.entity_type
                    {
                        return Err(DataError::invalid(
                            Location::line(path, s.lines[e.start.unwrap_or(0)]),
                            format!(
                                "fine type {:?} belongs under coarse type {parent:?}, but the coarse column says {:?} (entity {:?})",
                                f.entity_type, e.entity_type, e.text
                            ),
                            "coarse and fine columns must agree with the FMNERG type tree (src/data/fmnerg_types.rs)",
                        ));
                    }
                }
                e.fine_type = Some(f.entity_type.clone());
            }
            None => {
                let line = s.lines[e.start.unwrap_or(0)];
                return Err(DataError::invalid(
                    Location::line(path, line),
                    format!(
                        "coarse entity {:?} ({}) has no fine-type chunk with the same span",
                        e.text, e.entity_type
                    ),
                    "the fine column must tag exactly the coarse column's spans (B-/I- at the same tokens)",
                ));
            }
        }
    }
    if let Some(extra) = fine.iter().find(|f| {
        !entities
            .iter()
            .any(|e| e.start == f.start && e.end == f.end)
    }) {
        let line = s.lines[extra.start.unwrap_or(0)];
        return Err(DataError::invalid(
            Location::line(path, line),
            format!(
                "fine-type chunk {:?} ({}) has no coarse chunk with the same span",
                extra.text, extra.entity_type
            ),
            "the coarse column must tag exactly the fine column's spans",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pred.txt");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_bio_and_bioes() {
        let (_d, p) = write("IMGID:71044\nGarfield\tB-LOC\nPark\tI-LOC\nConservatory\tO\n");
        let ds = read_conll(&p, Scheme::Auto).unwrap().dataset;
        assert_eq!(ds.tweets[0].entities[0].text, "Garfield Park");
        let (_d, p) = write("IMGID:71044\nGarfield\tB-LOC\nPark\tE-LOC\nConservatory\tS-ORG\n");
        let ds = read_conll(&p, Scheme::Auto).unwrap().dataset;
        assert_eq!(ds.tweets[0].entities.len(), 2);
        assert_eq!(ds.tweets[0].entities[1].entity_type, "ORG");
    }

    #[test]
    fn forcing_bio_on_bioes_is_an_error() {
        let (_d, p) = write("IMGID:1\nA\tS-PER\n");
        let err = read_conll(&p, Scheme::Bio).unwrap_err().to_string();
        assert!(err.contains(":2: tag \"S-PER\" is BIOES"), "{err}");
    }

    #[test]
    fn three_columns_give_fine_types() {
        let (_d, p) =
            write("IMGID:71044\nGarfield\tB-location\tB-park\nPark\tI-location\tI-park\n");
        let ds = read_conll(&p, Scheme::Auto).unwrap().dataset;
        let e = &ds.tweets[0].entities[0];
        assert_eq!(
            (e.entity_type.as_str(), e.fine_type.as_deref()),
            ("location", Some("park"))
        );
    }

    #[test]
    fn fine_type_under_the_wrong_coarse_type_is_an_error() {
        let (_d, p) = write("IMGID:1\nx\tO\tO\nGarfield\tB-person\tB-park\n");
        let err = read_conll(&p, Scheme::Auto).unwrap_err().to_string();
        assert!(
            err.contains("pred.txt:3: fine type \"park\" belongs under coarse type \"location\""),
            "{err}"
        );
        // GMNER coarse names with fine types are not checked against the FMNERG tree.
        let (_d, p) = write("IMGID:1\nGarfield\tB-LOC\tB-park\n");
        assert!(read_conll(&p, Scheme::Auto).is_ok());
    }

    #[test]
    fn fine_span_disagreeing_with_coarse_is_an_error() {
        let (_d, p) = write("IMGID:1\nA\tB-person\tB-actor\nB\tI-person\tB-actor\n");
        let err = read_conll(&p, Scheme::Auto).unwrap_err().to_string();
        assert!(err.contains("pred.txt:2:"), "{err}");
    }

    #[test]
    fn repeated_imgid_is_an_error_naming_both_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pred.txt");
        std::fs::write(&p, "IMGID:1\nA\tB-PER\n\nIMGID:2\nB\tO\n\nIMGID:1\nC\tO\n").unwrap();
        let err = read_conll(&p, Scheme::Bio).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:7: IMGID:1 repeats the tweet of line 1",
                p.display()
            )),
            "{err}"
        );
    }
}
