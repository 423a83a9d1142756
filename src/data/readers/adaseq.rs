//! AdaSeq trainer output: `token<TAB>gold<TAB>pred` in BIOES, a blank line between sentences, and
//! after an `<EOS>` token the LLM's auxiliary text (all `O`), which is not part of the tweet and is
//! dropped. The file carries no tweet ids: they come from a dataset given with `--ids-from` (whose
//! tokens must agree), else `#1..#N`. Both the gold and the predicted column are returned.

use std::path::Path;

use crate::data::error::{DataError, DataResult, Location};
use crate::data::model::{Dataset, DatasetMeta, Side, Tweet};
use crate::data::readers::columns::{decode_column, read_sentences, Sentence};
use crate::data::tags::{Decode, Scheme};
use crate::data::text::read_text;

/// The predicted and gold columns of an AdaSeq file, as two aligned datasets.
#[derive(Debug, Clone)]
pub struct AdaSeqOutput {
    pub pred: Dataset,
    pub gold: Dataset,
}

/// Reads an AdaSeq prediction file. With `ids_from`, sentence i takes the id (and image) of tweet
/// i there, and its tokens must equal that tweet's tokens.
pub fn read_adaseq(path: &Path, ids_from: Option<&Dataset>) -> DataResult<AdaSeqOutput> {
    read_adaseq_decoded(path, ids_from, Decode::Default)
}

/// [`read_adaseq`] with a chunk decoding mode (`import adaseq --decode`; strict = IOBES).
pub fn read_adaseq_decoded(
    path: &Path,
    ids_from: Option<&Dataset>,
    decode: Decode,
) -> DataResult<AdaSeqOutput> {
    let text = read_text(path)?;
    let mut sentences = read_sentences(&text, path, 2)?;
    for s in &mut sentences {
        truncate_at_eos(s);
    }
    if let Some(ids) = ids_from {
        if ids.tweets.len() != sentences.len() {
            return Err(DataError::invalid(
                Location::file(path),
                format!(
                    "{} sentences, but the --ids-from dataset has {} tweets",
                    sentences.len(),
                    ids.tweets.len()
                ),
                "--ids-from must be the split the AdaSeq model was run on, in the same order",
            ));
        }
    }
    let mut pred = Vec::with_capacity(sentences.len());
    let mut gold = Vec::with_capacity(sentences.len());
    for (i, s) in sentences.iter().enumerate() {
        let (id, image) = match ids_from {
            Some(ids) => {
                let t = &ids.tweets[i];
                if let Some(tokens) = &t.tokens {
                    if tokens != &s.tokens {
                        let first = s.lines.first().copied().unwrap_or(s.id_line);
                        let diff = tokens
                            .iter()
                            .zip(&s.tokens)
                            .position(|(a, b)| a != b)
                            .unwrap_or(tokens.len().min(s.tokens.len()));
                        return Err(DataError::invalid(
                            Location::line(path, first),
                            format!(
                                "sentence {} does not match tweet {} of --ids-from: tokens differ at position {} ({:?} vs {:?}; {} vs {} tokens)",
                                i + 1,
                                t.id,
                                diff,
                                s.tokens.get(diff),
                                tokens.get(diff),
                                s.tokens.len(),
                                tokens.len()
                            ),
                            "--ids-from must be the split the AdaSeq model was run on, in the same order",
                        ));
                    }
                }
                (t.id.clone(), t.image.clone())
            }
            None => (format!("#{}", i + 1), None),
        };
        let gold_entities = decode_column(s, 0, Scheme::Bioes, decode, path)?;
        let pred_entities = decode_column(s, 1, Scheme::Bioes, decode, path)?;
        let tweet = |entities| Tweet {
            id: id.clone(),
            image: image.clone(),
            tokens: Some(s.tokens.clone()),
            entities,
            extra: Default::default(),
        };
        gold.push(tweet(gold_entities));
        pred.push(tweet(pred_entities));
    }
    Ok(AdaSeqOutput {
        pred: Dataset {
            tweets: pred,
            meta: Some(DatasetMeta::new(Side::Predictions, "adaseq (pred column)")),
        },
        gold: Dataset {
            tweets: gold,
            meta: Some(DatasetMeta::new(Side::Gold, "adaseq (gold column)")),
        },
    })
}

fn truncate_at_eos(s: &mut Sentence) {
    if let Some(pos) = s.tokens.iter().position(|t| t == "<EOS>") {
        s.tokens.truncate(pos);
        s.lines.truncate(pos);
        for c in &mut s.columns {
            c.truncate(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_auxiliary_text_after_eos() {
        // First sentence of ../shared/datasets/riveg-release/adaseq_test_pred.txt, shortened.
        let text = "The\tO\tO\ngeometry\tO\tO\nGarfield\tB-LOC\tB-LOC\nPark\tE-LOC\tE-LOC\nConservatory\tO\tO\n<EOS>\tO\tO\nGarfield\tO\tO\n";
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, text).unwrap();
        let out = read_adaseq(&p, None).unwrap();
        let t = &out.pred.tweets[0];
        assert_eq!(t.id, "#1");
        assert_eq!(t.tokens.as_ref().unwrap().len(), 5);
        assert_eq!(t.entities.len(), 1);
        assert_eq!(t.entities[0].text, "Garfield Park");
        assert_eq!((t.entities[0].start, t.entities[0].end), (Some(2), Some(4)));
    }
}
