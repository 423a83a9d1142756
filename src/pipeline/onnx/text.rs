//! Text → token ids with a Hugging Face `tokenizer.json` (the `tokenizers` crate): pre-split
//! words for the tagger (with word ids for first-subword alignment), padded query batches for
//! VE/VG, and tweet + knowledge context pairs for the tagger (the tokenizer's pair encoding:
//! its separators and, for BERT, `token_type_ids` 1 on the context; truncation cuts the context
//! first, never the tweet). Checks that the tokenizer fits the model (vocabulary size vs the manifest's
//! `vocab_size`, i.e. the embedding rows) at load and that every id is in range per tweet.

use std::path::PathBuf;

use ndarray::Array2;
use tokenizers::{EncodeInput, InputSequence, Tokenizer, TruncationParams, TruncationStrategy};

use crate::pipeline::stages::StageError;
use crate::runtime::{ModelManifest, RuntimeError};

/// A loaded tokenizer with the manifest's limits.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    /// The same tokenizer truncating only the second segment (tweet + context pairs).
    pair_tokenizer: Tokenizer,
    path: PathBuf,
    max_length: usize,
    vocab_size: Option<usize>,
    pad_id: i64,
}

/// The tagger's view of one tweet: ids, which word each id came from, and how many words fit.
#[derive(Debug, Clone, PartialEq)]
pub struct WordEncoding {
    pub ids: Vec<i64>,
    /// Index of the word each position came from; `None` for special tokens.
    pub word_ids: Vec<Option<usize>>,
    /// Words that got at least one token (the rest were truncated).
    pub words_kept: usize,
    /// Segment ids (`token_type_ids`): 0 on the tweet, 1 on a context for tokenizers that mark
    /// segments (BERT); all 0 otherwise.
    pub type_ids: Vec<i64>,
}

impl TextEncoder {
    /// Loads the manifest's `[tokenizer]` and checks its size against `vocab_size`.
    pub fn from_manifest(manifest: &ModelManifest) -> Result<Self, RuntimeError> {
        let spec = manifest.require_tokenizer()?;
        let path = manifest.resolve(&spec.path);
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| RuntimeError::Tokenizer {
            path: path.clone(),
            what: format!("cannot load: {e}"),
            hint: "use the tokenizer.json that was exported with the model".into(),
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: spec.max_length,
                ..Default::default()
            }))
            .map_err(|e| RuntimeError::Tokenizer {
                path: path.clone(),
                what: format!("cannot truncate to max_length {}: {e}", spec.max_length),
                hint: "max_length must leave room for the special tokens".into(),
            })?;
        tokenizer.with_padding(None);
        let mut pair_tokenizer = tokenizer.clone();
        pair_tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: spec.max_length,
                strategy: TruncationStrategy::OnlySecond,
                ..Default::default()
            }))
            .map_err(|e| RuntimeError::Tokenizer {
                path: path.clone(),
                what: format!(
                    "cannot truncate pairs to max_length {}: {e}",
                    spec.max_length
                ),
                hint: "max_length must leave room for the special tokens".into(),
            })?;
        let tokens = tokenizer.get_vocab_size(true);
        if let Some(rows) = spec.vocab_size {
            if tokens > rows {
                return Err(RuntimeError::Tokenizer {
                    path,
                    what: format!(
                        "has {tokens} tokens but the model's embedding has {rows} rows (manifest {})",
                        manifest.path.display()
                    ),
                    hint: "this tokenizer belongs to another model; use the tokenizer.json exported with this one".into(),
                });
            }
        }
        let pad_id = ["[PAD]", "<pad>", "<|pad|>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t))
            .map_or(0, i64::from);
        Ok(TextEncoder {
            tokenizer,
            pair_tokenizer,
            path,
            max_length: spec.max_length,
            vocab_size: spec.vocab_size,
            pad_id,
        })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The id that pads shorter rows of a batch (`[PAD]`, `<pad>` or `<|pad|>`, else 0); padded
    /// positions always carry attention mask 0, so the id only has to be in range.
    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    fn check_ids(
        &self,
        tweet_id: &str,
        entity: Option<&str>,
        ids: &[u32],
    ) -> Result<(), StageError> {
        if let Some(rows) = self.vocab_size {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= rows) {
                return Err(StageError::item(
                    tweet_id,
                    entity,
                    format!(
                        "token id {bad} from tokenizer {} is out of range for the model's {rows}-row embedding",
                        self.path.display()
                    ),
                    "the tokenizer does not match the model; use the tokenizer.json exported with it",
                ));
            }
        }
        Ok(())
    }

    /// Encodes pre-split words (special tokens added, truncated to `max_length`; a truncation
    /// is logged as a warning naming the tweet).
    pub fn encode_words(
        &self,
        tweet_id: &str,
        words: &[String],
    ) -> Result<WordEncoding, StageError> {
        let pieces: Vec<&str> = words.iter().map(String::as_str).collect();
        let encoding = self.tokenizer.encode(pieces, true).map_err(|e| {
            StageError::item(
                tweet_id,
                None,
                format!("tokenizer {} failed: {e}", self.path.display()),
                "check the tweet's tokens for unusual characters",
            )
        })?;
        self.word_encoding(tweet_id, words, &encoding)
    }

    /// Encodes pre-split tweet words with a knowledge `context` as the second segment. Word ids
    /// are kept for the tweet's tokens only, so labels map to the tweet's words and never to the
    /// context. The context is truncated first; when the tweet alone fills `max_length`, the
    /// context is left out (logged) and the tweet is encoded alone.
    pub fn encode_words_with_context(
        &self,
        tweet_id: &str,
        words: &[String],
        context: &str,
    ) -> Result<WordEncoding, StageError> {
        let pieces: Vec<&str> = words.iter().map(String::as_str).collect();
        let input = EncodeInput::Dual(InputSequence::from(pieces), InputSequence::from(context));
        let encoding = match self.pair_tokenizer.encode(input, true) {
            Ok(e) => e,
            Err(e) => {
                log::warn!(
                    "tweet {tweet_id}: no room for the knowledge context in the tagger's {} tokens ({e}); tagging the tweet alone",
                    self.max_length
                );
                return self.encode_words(tweet_id, words);
            }
        };
        self.word_encoding(tweet_id, words, &encoding)
    }

    fn word_encoding(
        &self,
        tweet_id: &str,
        words: &[String],
        encoding: &tokenizers::Encoding,
    ) -> Result<WordEncoding, StageError> {
        self.check_ids(tweet_id, None, encoding.get_ids())?;
        // Only the first segment's (the tweet's) tokens carry word ids.
        let word_ids: Vec<Option<usize>> = encoding
            .get_word_ids()
            .iter()
            .zip(encoding.get_sequence_ids())
            .map(|(w, seq)| {
                if seq == Some(0) {
                    w.map(|w| w as usize)
                } else {
                    None
                }
            })
            .collect();
        let words_kept = word_ids.iter().flatten().max().map_or(0, |w| w + 1);
        if words_kept < words.len() {
            log::warn!(
                "tweet {tweet_id}: {} words exceed the tagger's {} tokens; the last {} words are tagged O",
                words.len(),
                self.max_length,
                words.len() - words_kept
            );
        }
        Ok(WordEncoding {
            ids: encoding.get_ids().iter().map(|&id| i64::from(id)).collect(),
            word_ids,
            words_kept,
            type_ids: encoding
                .get_type_ids()
                .iter()
                .map(|&t| i64::from(t))
                .collect(),
        })
    }

    /// Encodes one query per entity into a padded `[n, len]` id matrix and its attention mask.
    pub fn encode_queries(
        &self,
        tweet_id: &str,
        entity_names: &[&str],
        queries: &[String],
    ) -> Result<(Array2<i64>, Array2<i64>), StageError> {
        let mut encoded = Vec::with_capacity(queries.len());
        for (i, query) in queries.iter().enumerate() {
            let entity = entity_names.get(i).copied();
            let encoding = self.tokenizer.encode(query.as_str(), true).map_err(|e| {
                StageError::item(
                    tweet_id,
                    entity,
                    format!("tokenizer {} failed on the query: {e}", self.path.display()),
                    "check the query text",
                )
            })?;
            if !encoding.get_overflowing().is_empty() {
                log::warn!(
                    "tweet {tweet_id}, entity {:?}: query truncated to {} tokens",
                    entity.unwrap_or(""),
                    self.max_length
                );
            }
            self.check_ids(tweet_id, entity, encoding.get_ids())?;
            encoded.push(encoding.get_ids().to_vec());
        }
        let len = encoded.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Array2::from_elem((encoded.len(), len), self.pad_id);
        let mut mask = Array2::zeros((encoded.len(), len));
        for (row, tokens) in encoded.iter().enumerate() {
            for (col, &id) in tokens.iter().enumerate() {
                ids[[row, col]] = i64::from(id);
                mask[[row, col]] = 1;
            }
        }
        Ok((ids, mask))
    }
}
