//! MNER on a token-classification model: words → subword ids (tokenizer.json) → logits per
//! subword → the first subword's logits stand for the word → argmax, or CRF Viterbi when the
//! manifest has transitions → BIO/BIOES labels → entity spans (seqeval default semantics).
//! With a knowledge context (the `knowledge` stage), the tweet and the context are encoded as a
//! pair (separators, `token_type_ids` 1 on the context for BERT) and only the tweet's words are
//! labelled.

use std::path::Path;

use ndarray::Array2;

use super::crf::viterbi;
use super::text::TextEncoder;
use super::{int_tensor, require_f32_output, run_f32, run_failed, tensor_name};
use crate::data::model::{Entity, Tweet};
use crate::data::tags::decode_chunks;
use crate::pipeline::stages::{Stage, StageError, StageKind, Tagger, TweetInput};
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
        let encoding = match context {
            Some(c) => self.text.encode_words_with_context(&tweet.id, words, c)?,
            None => self.text.encode_words(&tweet.id, words)?,
        };
        let len = encoding.ids.len();
        let ids = Array2::from_shape_vec((1, len), encoding.ids.clone()).map_err(|e| {
            StageError::item(&tweet.id, None, e.to_string(), "internal shape error")
        })?;
        let mut inputs = vec![(self.input_ids.0.clone(), int_tensor(ids, self.input_ids.1))];
        if let Some((name, dtype)) = &self.attention_mask {
            inputs.push((name.clone(), int_tensor(Array2::ones((1, len)), *dtype)));
        }
        if let Some((name, dtype)) = &self.token_type_ids {
            let segments =
                Array2::from_shape_vec((1, len), encoding.type_ids.clone()).map_err(|e| {
                    StageError::item(&tweet.id, None, e.to_string(), "internal shape error")
                })?;
            inputs.push((name.clone(), int_tensor(segments, *dtype)));
        }
        let logits = run_f32(&mut self.session, inputs, &[&self.logits])
            .map_err(|e| run_failed(tweet, e))?
            .remove(0);
        let shape = logits.shape().to_vec();
        if shape.len() != 3 || shape[1] != len || shape[2] != self.labels.len() {
            return Err(StageError::item(
                &tweet.id,
                None,
                format!(
                    "logits have shape {shape:?}, expected [1, {len}, {}]",
                    self.labels.len()
                ),
                "the manifest's label list does not match the model's output",
            ));
        }
        // First subword of each word: the first position whose word id differs from the previous.
        let mut word_rows: Vec<Vec<f64>> = Vec::with_capacity(encoding.words_kept);
        let mut previous = None;
        for (position, word) in encoding.word_ids.iter().enumerate() {
            if word.is_some() && *word != previous {
                word_rows.push(
                    (0..self.labels.len())
                        .map(|k| f64::from(logits[[0, position, k]]))
                        .collect(),
                );
            }
            previous = *word;
        }
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
        labels.resize(words.len(), "O".to_string());
        Ok(labels)
    }
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
}

impl OnnxTagger {
    fn tag_context(
        &mut self,
        tweet: &Tweet,
        context: Option<&str>,
    ) -> Result<Vec<Entity>, StageError> {
        let Some(words) = &tweet.tokens else {
            return Err(StageError::item(
                &tweet.id,
                None,
                "the tweet has no tokens",
                "the tagger needs tokenised text (a CoNLL-style txt or JSONL with `tokens`)",
            ));
        };
        let labels = self.tag_words_with(tweet, words, context)?;
        Ok(decode_chunks(&labels)
            .into_iter()
            .map(|span| Entity {
                text: words[span.start..span.end].join(" "),
                entity_type: span.entity_type,
                start: Some(span.start),
                end: Some(span.end),
                ..Default::default()
            })
            .collect())
    }
}
