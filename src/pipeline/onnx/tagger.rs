//! MNER on a token-classification model: words → subword ids (tokenizer.json) → logits per
//! subword → the first subword's logits stand for the word → argmax, or CRF Viterbi when the
//! manifest has transitions → BIO/BIOES labels → entity spans (seqeval default semantics).
//! With a knowledge context (the `knowledge` stage), the tweet and the context are encoded as a
//! pair (separators, `token_type_ids` 1 on the context for BERT) and only the tweet's words are
//! labelled.
//!
//! **Batching across tweets** ([`Tagger::tag_batch`]): the tweets of a window are encoded, sorted
//! by encoded length (stable, so equal lengths keep window order) and cut into batches of at most
//! `batch` rows, each padded to its longest row with the tokenizer's pad id, attention mask 0 and
//! `token_type_ids` 0 on the padding. Only the real positions' logits are read, so a tweet's labels
//! are those of an unbatched call up to the float noise ONNX Runtime gives for another batch
//! shape. `tests/it/batching.rs` measures the largest absolute logit difference between
//! `batch = 1` and batches of 7 and 32 (ragged) on the arch fixtures (BERT+CRF and XLM-R, with and
//! without a knowledge context) and the tiny taggers, 150 Twitter-GMNER tweets: 0 on CPU (one
//! intra-op thread, onnxruntime 1.31 from .venv: masked positions get exactly zero attention
//! weight, and each row is computed alone); it asserts below 1e-4 so that other providers'
//! kernels may differ in the last bits, far below any label change. The test fails when the mask
//! is left out.
//! Sorting by length keeps padding small (file-order batches pay for their longest tweet). A model
//! without an `attention_mask` input cannot ignore padding, so it is run one tweet per call. A
//! batch the model rejects is re-run one tweet at a time, so one bad tweet fails alone. Each
//! tweet's latency is its own encoding time plus an equal share of its batch's run and decoding
//! time.

use std::path::Path;
use std::time::Instant;

use ndarray::Array2;

use super::crf::viterbi;
use super::text::{TextEncoder, WordEncoding};
use super::{
    answers_in_order, int_tensor, require_f32_output, run_batch_or_each, run_f32, run_failed,
    tensor_name, EncodedItem,
};
use crate::data::model::{Entity, Tweet};
use crate::data::tags::decode_chunks;
use crate::pipeline::stages::{Stage, StageError, StageKind, TagItem, Tagger, Timed, TweetInput};
use crate::runtime::{
    Crf, DType, LoadedSession, ModelManifest, OrtRuntime, Provider, RuntimeError, SessionConfig,
    TagScheme,
};

/// A token classifier (+ optional CRF) described by a `stage = "tagger"` manifest.
pub struct OnnxTagger {
    session: LoadedSession,
    text: TextEncoder,
    labels: Vec<String>,
    scheme: TagScheme,
    crf: Option<Crf>,
    input_ids: (String, DType),
    attention_mask: Option<(String, DType)>,
    token_type_ids: Option<(String, DType)>,
    logits: String,
}

impl OnnxTagger {
    /// Loads the manifest at `manifest_path` (hashes checked), its tokenizer and CRF, and a
    /// session checked against the manifest.
    pub fn load(
        runtime: &OrtRuntime,
        manifest_path: &Path,
        config: &SessionConfig,
    ) -> Result<Self, RuntimeError> {
        Self::from_manifest(runtime, &ModelManifest::load(manifest_path)?, config)
    }

    pub fn from_manifest(
        runtime: &OrtRuntime,
        manifest: &ModelManifest,
        config: &SessionConfig,
    ) -> Result<Self, RuntimeError> {
        manifest.require_stage(Stage::Tagger)?;
        let spec = manifest.model("main")?;
        let labels = manifest.require_labels()?.clone();
        let logits = tensor_name(manifest, spec, "output", "logits")?;
        require_f32_output(manifest, spec, "logits")?;
        if let Some(classes) = spec
            .output("logits")
            .and_then(|t| t.shape.last())
            .and_then(|d| d.fixed())
        {
            if classes as usize != labels.names.len() {
                return Err(manifest.invalid(
                    format!(
                        "logits have {classes} classes but [labels] lists {}",
                        labels.names.len()
                    ),
                    "list one label per output class, in output order",
                ));
            }
        }
        let input = |role: &str| spec.input(role).map(|t| (t.name.clone(), t.dtype));
        let input_ids = input("input_ids").ok_or_else(|| {
            manifest.invalid(
                "the tagger model has no input with role \"input_ids\"",
                "name the token-id input input_ids or set role = \"input_ids\" on it",
            )
        })?;
        let crf = manifest.crf()?;
        let text = TextEncoder::from_manifest(manifest)?;
        let session = runtime.load_session(manifest, "main", config)?;
        Ok(OnnxTagger {
            session,
            text,
            labels: labels.names,
            scheme: labels.scheme,
            crf,
            attention_mask: input("attention_mask"),
            token_type_ids: input("token_type_ids"),
            input_ids,
            logits,
        })
    }

    /// The execution provider the session runs on.
    pub fn provider(&self) -> Provider {
        self.session.provider
    }

    pub fn scheme(&self) -> TagScheme {
        self.scheme
    }

    /// One label per word (`O` for words cut off by truncation).
    pub fn tag_words(
        &mut self,
        tweet: &Tweet,
        words: &[String],
    ) -> Result<Vec<String>, StageError> {
        self.tag_words_with(tweet, words, None)
    }

    /// [`OnnxTagger::tag_words`] with an optional knowledge context as the second segment
    /// (labels only for the tweet's words).
    pub fn tag_words_with(
        &mut self,
        tweet: &Tweet,
        words: &[String],
        context: Option<&str>,
    ) -> Result<Vec<String>, StageError> {
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self.encode(tweet, words, context)?;
        let rows = self
            .run_rows(&[(tweet, &encoding)])?
            .pop()
            .unwrap_or_default();
        Ok(self.labels_of(rows, words.len()))
    }

    /// The first-subword logits of each word of each tweet (`[words kept][labels]`), tweets in
    /// batches of at most `batch` sorted by encoded length (see the module doc). Answers in
    /// `tweets` order, one per tweet; a tweet without words gets no rows.
    pub fn word_logits_batch(
        &mut self,
        tweets: &[(&Tweet, Option<&str>)],
        batch: usize,
    ) -> Vec<Result<Vec<Vec<f64>>, StageError>> {
        self.word_logits_timed(tweets, batch)
            .into_iter()
            .map(|t| t.result)
            .collect()
    }

    fn word_logits_timed(
        &mut self,
        tweets: &[(&Tweet, Option<&str>)],
        batch: usize,
    ) -> Vec<Timed<Vec<Vec<f64>>>> {
        let mut out: Vec<Option<Timed<Vec<Vec<f64>>>>> = tweets.iter().map(|_| None).collect();
        let mut encoded: Vec<EncodedItem<WordEncoding>> = Vec::new();
        for (i, (tweet, context)) in tweets.iter().enumerate() {
            let t0 = Instant::now();
            match tweet_words(tweet).and_then(|w| {
                if w.is_empty() {
                    Ok(None)
                } else {
                    self.encode(tweet, w, *context).map(Some)
                }
            }) {
                Ok(Some(e)) => encoded.push((i, e, t0.elapsed().as_secs_f64() * 1000.0)),
                Ok(None) => {
                    out[i] = Some(Timed {
                        result: Ok(Vec::new()),
                        ms: t0.elapsed().as_secs_f64() * 1000.0,
                    })
                }
                Err(e) => {
                    out[i] = Some(Timed {
                        result: Err(e),
                        ms: t0.elapsed().as_secs_f64() * 1000.0,
                    })
                }
            }
        }
        // Padding is only harmless when the model masks it.
        let batch = if self.attention_mask.is_some() {
            batch.max(1)
        } else {
            1
        };
        encoded.sort_by_key(|(_, e, _)| e.ids.len());
        let id = |i: usize| tweets[i].0.id.clone();
        for chunk in encoded.chunks(batch) {
            run_batch_or_each(
                chunk,
                "tagger",
                id,
                |part| {
                    let rows: Vec<(&Tweet, &WordEncoding)> =
                        part.iter().map(|(i, e, _)| (tweets[*i].0, e)).collect();
                    Ok(self.run_rows(&rows)?.into_iter().map(Ok).collect())
                },
                &mut out,
            );
        }
        answers_in_order(out, "tagger", id)
    }

    fn encode(
        &self,
        tweet: &Tweet,
        words: &[String],
        context: Option<&str>,
    ) -> Result<WordEncoding, StageError> {
        match context {
            Some(c) => self.text.encode_words_with_context(&tweet.id, words, c),
            None => self.text.encode_words(&tweet.id, words),
        }
    }

    /// Runs one batch (rows padded to the longest) and returns each row's first-subword logits.
    fn run_rows(
        &mut self,
        rows: &[(&Tweet, &WordEncoding)],
    ) -> Result<Vec<Vec<Vec<f64>>>, StageError> {
        let Some((first, _)) = rows.first() else {
            return Ok(Vec::new());
        };
        let n = rows.len();
        let len = rows.iter().map(|(_, e)| e.ids.len()).max().unwrap_or(0);
        let pad = self.text.pad_id();
        let mut ids = Array2::from_elem((n, len), pad);
        let mut mask = Array2::zeros((n, len));
        let mut segments = Array2::zeros((n, len));
        for (r, (_, e)) in rows.iter().enumerate() {
            for (p, &id) in e.ids.iter().enumerate() {
                ids[[r, p]] = id;
                mask[[r, p]] = 1;
            }
            for (p, &t) in e.type_ids.iter().enumerate().take(len) {
                segments[[r, p]] = t;
            }
        }
        let mut inputs = vec![(self.input_ids.0.clone(), int_tensor(ids, self.input_ids.1))];
        if let Some((name, dtype)) = &self.attention_mask {
            inputs.push((name.clone(), int_tensor(mask, *dtype)));
        }
        if let Some((name, dtype)) = &self.token_type_ids {
            inputs.push((name.clone(), int_tensor(segments, *dtype)));
        }
        let logits = run_f32(&mut self.session, inputs, &[&self.logits])
            .map_err(|e| run_failed(first, e))?
            .remove(0);
        let shape = logits.shape().to_vec();
        if shape.len() != 3 || shape[0] != n || shape[1] != len || shape[2] != self.labels.len() {
            return Err(StageError::item(
                &first.id,
                None,
                format!(
                    "logits have shape {shape:?}, expected [{n}, {len}, {}]",
                    self.labels.len()
                ),
                "the manifest's label list does not match the model's output",
            ));
        }
        Ok(rows
            .iter()
            .enumerate()
            .map(|(r, (_, e))| {
                // First subword of each word: the first position whose word id differs from the
                // previous one. Padded positions (past the row's length) are never read.
                let mut word_rows: Vec<Vec<f64>> = Vec::with_capacity(e.words_kept);
                let mut previous = None;
                for (position, word) in e.word_ids.iter().enumerate() {
                    if word.is_some() && *word != previous {
                        word_rows.push(
                            (0..self.labels.len())
                                .map(|k| f64::from(logits[[r, position, k]]))
                                .collect(),
                        );
                    }
                    previous = *word;
                }
                word_rows
            })
            .collect())
    }

    /// Labels from first-subword logits: CRF Viterbi when the manifest has transitions, else
    /// argmax; words past the kept ones are `O`.
    fn labels_of(&self, word_rows: Vec<Vec<f64>>, n_words: usize) -> Vec<String> {
        let indices: Vec<usize> = match &self.crf {
            Some(crf) => viterbi(&word_rows, crf),
            None => word_rows
                .iter()
                .map(|row| {
                    // argmax, first maximum wins (as numpy)
                    let mut best = 0;
                    for (k, v) in row.iter().enumerate() {
                        if *v > row[best] {
                            best = k;
                        }
                    }
                    best
                })
                .collect(),
        };
        let mut labels: Vec<String> = indices.iter().map(|&i| self.labels[i].clone()).collect();
        labels.resize(n_words, "O".to_string());
        labels
    }
}

/// The tweet's words, or the error of a tweet without tokens.
fn tweet_words(tweet: &Tweet) -> Result<&[String], StageError> {
    tweet.tokens.as_deref().ok_or_else(|| {
        StageError::item(
            &tweet.id,
            None,
            "the tweet has no tokens",
            "the tagger needs tokenised text (a CoNLL-style txt or JSONL with `tokens`)",
        )
    })
}

/// Entity spans of a tweet's words from their labels (seqeval default semantics).
fn entities_of(words: &[String], labels: &[String]) -> Vec<Entity> {
    decode_chunks(labels)
        .into_iter()
        .map(|span| Entity {
            text: words[span.start..span.end].join(" "),
            entity_type: span.entity_type,
            start: Some(span.start),
            end: Some(span.end),
            ..Default::default()
        })
        .collect()
}

impl Tagger for OnnxTagger {
    fn kind(&self) -> StageKind {
        StageKind::Onnx
    }

    fn tag(&mut self, tweet: &Tweet) -> Result<Vec<Entity>, StageError> {
        self.tag_context(tweet, None)
    }

    fn tag_with_context(
        &mut self,
        input: &TweetInput<'_>,
        context: &str,
    ) -> Result<Vec<Entity>, StageError> {
        self.tag_context(input.tweet, Some(context))
    }

    /// Batches across tweets, sorted by encoded length (see the module doc).
    fn tag_batch(&mut self, items: &[TagItem<'_>], batch: usize) -> Vec<Timed<Vec<Entity>>> {
        let tweets: Vec<(&Tweet, Option<&str>)> =
            items.iter().map(|i| (i.input.tweet, i.context)).collect();
        let logits = self.word_logits_timed(&tweets, batch);
        logits
            .into_iter()
            .zip(&tweets)
            .map(|(t, (tweet, _))| {
                let t0 = Instant::now();
                let result = t.result.and_then(|rows| {
                    let words = tweet_words(tweet)?;
                    Ok(entities_of(words, &self.labels_of(rows, words.len())))
                });
                Timed {
                    result,
                    ms: t.ms + t0.elapsed().as_secs_f64() * 1000.0,
                }
            })
            .collect()
    }
}

impl OnnxTagger {
    fn tag_context(
        &mut self,
        tweet: &Tweet,
        context: Option<&str>,
    ) -> Result<Vec<Entity>, StageError> {
        let words = tweet_words(tweet)?;
        let labels = self.tag_words_with(tweet, words, context)?;
        Ok(entities_of(words, &labels))
    }
}
