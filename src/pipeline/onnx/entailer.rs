//! Visual entailment: image + one query per entity → P(entailed). The output is either `logits`
//! `[n, k]` (softmax, class `positive_index` of `[entailment]`) or `probability` `[n]` /
//! `[n, 1]`.
//!
//! One run holds all of a tweet's queries; the image tensor is shared (batch 1) when the model's
//! pixel input has a fixed batch of 1, and repeated per query otherwise. A model with an
//! `image_index` input (CLIP and BLIP ITM exports) takes several tweets per run:
//! [`Entailer::entail_batch`] packs up to `batch` consecutive tweets' images and queries into one
//! run and splits the probabilities back per tweet (see `query_image.rs`); `entail` is a batch of
//! one. A non-finite probability fails its tweet only.

use std::path::Path;

use super::query_image::{QueryImageInputs, RunAnswer, RunTweet};
use super::{require_f32_output, run_f32, run_failed};
use crate::data::model::Entity;
use crate::pipeline::stages::{
    only_answer, Entailer, QueryItem, Stage, StageError, StageKind, Timed, TweetInput,
};
use crate::runtime::{
    Input, LoadedSession, ModelManifest, OrtRuntime, Provider, RuntimeError, SessionConfig,
};

enum EntailOutput {
    Logits { name: String, positive_index: usize },
    Probability { name: String },
}

/// A VE model described by a `stage = "entailer"` manifest.
pub struct OnnxEntailer {
    session: LoadedSession,
    inputs: QueryImageInputs,
    output: EntailOutput,
}

impl OnnxEntailer {
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
        manifest.require_stage(Stage::Entailer)?;
        let spec = manifest.model("main")?;
        let inputs = QueryImageInputs::from_manifest(manifest, spec, "the entailer model")?;
        let positive_index = manifest.entailment.map_or(1, |e| e.positive_index);
        let output = if let Some(t) = spec.output("logits") {
            EntailOutput::Logits {
                name: t.name.clone(),
                positive_index,
            }
        } else if let Some(t) = spec.output("probability") {
            EntailOutput::Probability {
                name: t.name.clone(),
            }
        } else {
            return Err(manifest.invalid(
                "the entailer model has no output with role \"logits\" or \"probability\"",
                "set role = \"logits\" ([n, classes]) or \"probability\" ([n]) on the output",
            ));
        };
        require_f32_output(manifest, spec, "logits")?;
        require_f32_output(manifest, spec, "probability")?;
        let session = runtime.load_session(manifest, "main", config)?;
        Ok(OnnxEntailer {
            session,
            inputs,
            output,
        })
    }

    pub fn provider(&self) -> Provider {
        self.session.provider
    }
}

impl Entailer for OnnxEntailer {
    fn kind(&self) -> StageKind {
        StageKind::Onnx
    }

    fn needs_pixels(&self) -> bool {
        true
    }

    fn entail(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        queries: &[String],
    ) -> Result<Vec<f32>, StageError> {
        let item = QueryItem {
            input: *input,
            entities,
            queries,
        };
        only_answer(self.entail_batch(std::slice::from_ref(&item), 1))
    }

    /// Several tweets per run when the model has `image_index` (see the module doc).
    fn entail_batch(&mut self, items: &[QueryItem<'_>], batch: usize) -> Vec<Timed<Vec<f32>>> {
        let (session, output) = (&mut self.session, &self.output);
        self.inputs
            .run_batched(items, batch, "entailer", |inputs, tweets| {
                run_entailer(session, output, inputs, tweets)
            })
    }
}

/// One run over `tweets`: the probabilities of each tweet's queries.
fn run_entailer(
    session: &mut LoadedSession,
    output: &EntailOutput,
    inputs: Vec<(String, Input)>,
    tweets: &[RunTweet<'_>],
) -> RunAnswer<f32> {
    let first = tweets[0].tweet;
    let n: usize = tweets.iter().map(|t| t.n).sum();
    let name = match output {
        EntailOutput::Logits { name, .. } | EntailOutput::Probability { name } => name.as_str(),
    };
    let out = run_f32(session, inputs, &[name])
        .map_err(|e| run_failed(first, e))?
        .remove(0);
    let bad_shape = |what: String| {
        StageError::item(
            &first.id,
            None,
            what,
            "the manifest's entailer output does not match the model",
        )
    };
    let probabilities: Vec<f32> = match output {
        EntailOutput::Logits { positive_index, .. } => {
            let shape = out.shape().to_vec();
            if shape.len() != 2 || shape[0] != n || *positive_index >= shape[1] {
                return Err(bad_shape(format!(
                    "logits have shape {shape:?}; expected [{n}, k] with k > positive_index {positive_index}"
                )));
            }
            out.outer_iter()
                .map(|row| {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let total: f32 = row.iter().map(|v| (v - max).exp()).sum();
                    (row[*positive_index] - max).exp() / total
                })
                .collect()
        }
        EntailOutput::Probability { .. } => {
            if out.len() != n {
                return Err(bad_shape(format!(
                    "probability output has shape {:?}; expected [{n}] or [{n}, 1]",
                    out.shape()
                )));
            }
            out.iter().copied().collect()
        }
    };
    Ok(tweets
        .iter()
        .map(|t| {
            let mine = &probabilities[t.start..t.start + t.n];
            if let Some(i) = mine.iter().position(|p| !p.is_finite()) {
                return Err(StageError::item(
                    &t.tweet.id,
                    t.entities.get(i).map(|e| e.text.as_str()),
                    "the entailer returned a non-finite probability",
                    "check the model's preprocessing (mean/std) in the manifest",
                ));
            }
            Ok(mine.to_vec())
        })
        .collect())
}
