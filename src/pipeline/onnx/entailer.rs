//! Visual entailment: image + one query per entity → P(entailed), all of a tweet's queries in
//! one run. The image tensor is shared (batch 1) when the model's pixel input has a fixed batch
//! of 1, and repeated per query otherwise. The output is either `logits` `[n, k]` (softmax,
//! class `positive_index` of `[entailment]`) or `probability` `[n]` / `[n, 1]`.

use std::path::Path;

use super::query_image::QueryImageInputs;
use super::{require_f32_output, run_f32, run_failed};
use crate::data::model::Entity;
use crate::pipeline::stages::{Entailer, Stage, StageError, StageKind, TweetInput};
use crate::runtime::{
    LoadedSession, ModelManifest, OrtRuntime, Provider, RuntimeError, SessionConfig,
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
        let tweet = input.tweet;
        let Some(batch) = self.inputs.build(input, entities, queries, "entailer")? else {
            return Ok(Vec::new());
        };
        let (inputs, n) = (batch.inputs, queries.len());
        let name = match &self.output {
            EntailOutput::Logits { name, .. } | EntailOutput::Probability { name } => name.clone(),
        };
        let out = run_f32(&mut self.session, inputs, &[&name])
            .map_err(|e| run_failed(tweet, e))?
            .remove(0);
        let bad_shape = |what: String| {
            StageError::item(
                &tweet.id,
                None,
                what,
                "the manifest's entailer output does not match the model",
            )
        };
        let probabilities: Vec<f32> = match &self.output {
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
        if let Some(i) = probabilities.iter().position(|p| !p.is_finite()) {
            return Err(StageError::item(
                &tweet.id,
                entities.get(i).map(|e| e.text.as_str()),
                "the entailer returned a non-finite probability",
                "check the model's preprocessing (mean/std) in the manifest",
            ));
        }
        Ok(probabilities)
    }
}
