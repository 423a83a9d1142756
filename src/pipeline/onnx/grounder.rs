//! Visual grounding: image + one query per entity → one box in original-image pixels.
//!
//! Two model shapes are designed for ([`GrounderHead`]):
//! - **single pass** (implemented): the model outputs `boxes` `[n, 4]` (+ optional `scores`
//!   `[n]`) in the manifest's `[boxes]` format (xyxy / cxcywh, normalised to the model input or
//!   in its pixels). Boxes are mapped back through the preprocessing transform and clamped to
//!   the image.
//! - **location tokens** (OFA REC, implemented): an encoder (`pixel_values`, `input_ids`,
//!   `attention_mask` → `encoder_hidden_states`) run once for all queries, then a decoder
//!   (`decoder_input_ids`, `encoder_hidden_states`, optional `encoder_attention_mask` → `logits`
//!   `[n, t, vocab]`) run four times greedily from `decoder_start_id`, each step taking the best
//!   `<bin_i>` token at the last position (restricted to the bin range, as OFA's constrained
//!   decoding does). [`location_bins_to_box`] turns the four bins into model-input pixels, then
//!   the same mapping as single pass applies. The score is the mean softmax probability of the
//!   chosen tokens. (No KV cache: fine for 4 steps.)
//!
//! A single-pass model with an `image_index` input (the OWL-ViT and OWLv2 exports) takes several
//! tweets per run: [`Grounder::ground_batch`] packs up to `batch` consecutive tweets' images and
//! queries into one run and maps each tweet's boxes back through its own transform (see
//! `query_image.rs`); `ground` is a batch of one. Without `image_index`, and for location tokens,
//! each tweet is one run (the OFA decoder loop stays per tweet). A missing or non-finite box
//! fails its tweet only.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, Axis};

use super::query_image::{QueryImageInputs, RunAnswer, RunTweet};
use super::{int_tensor, require_f32_output, run_f32, run_failed, tensor_name};
use crate::data::model::{Entity, Tweet};
use crate::geometry::BBox;
use crate::pipeline::stages::{
    only_answer, Grounder, Grounding, QueryItem, Stage, StageError, StageKind, Timed, TweetInput,
};
use crate::runtime::manifest::LocationTokenSpec;
use crate::runtime::{
    BoxFormat, BoxSpec, BoxUnits, DType, HeldTensor, ImageTransform, Input, LoadedSession,
    ModelManifest, OrtRuntime, Provider, RuntimeError, SessionConfig,
};

/// How the model produces its box.
#[derive(Debug, Clone, PartialEq)]
pub enum GrounderHead {
    /// Boxes (and scores) straight out of one run.
    SinglePass {
        boxes: String,
        scores: Option<String>,
        format: BoxSpec,
    },
    /// OFA-style: greedy decoding of four location tokens (see [`location_bins_to_box`]).
    LocationTokens(LocationTokenSpec),
}

/// The sessions behind each head.
enum Sessions {
    SinglePass {
        session: LoadedSession,
        boxes: String,
        scores: Option<String>,
        format: BoxSpec,
    },
    LocationTokens {
        encoder: LoadedSession,
        decoder: LoadedSession,
        spec: LocationTokenSpec,
        hidden_out: String,
        hidden_in: String,
        decoder_ids: (String, DType),
        encoder_mask: Option<(String, DType)>,
        logits: String,
    },
}

/// OFA's location tokens → `[x1, y1, x2, y2]` in model-input pixels:
/// `coord = bin / (num_bins - 1) * size`. Token ids outside the bin range give `None`.
pub fn location_bins_to_box(
    token_ids: [i64; 4],
    spec: &LocationTokenSpec,
    input_width: u32,
    input_height: u32,
) -> Option<[f64; 4]> {
    let scale = (spec.num_bins - 1).max(1) as f64;
    let mut out = [0.0; 4];
    for (i, id) in token_ids.iter().enumerate() {
        let bin = id - spec.first_bin_id;
        if bin < 0 || bin >= spec.num_bins {
            return None;
        }
        let size = if i % 2 == 0 {
            input_width
        } else {
            input_height
        };
        out[i] = bin as f64 / scale * size as f64;
    }
    Some(out)
}

/// A model box (manifest format, model-input frame) → original-image pixels, ordered and clamped.
/// `scale` is model-input pixels per original pixel (`QueryBatch::box_scale`).
pub(crate) fn to_original_box(
    raw: [f64; 4],
    format: BoxSpec,
    transform: &ImageTransform,
    scale: (f64, f64),
) -> BBox {
    let (sx, sy) = match format.units {
        BoxUnits::Normalized => (transform.input_width as f64, transform.input_height as f64),
        BoxUnits::Pixels => (1.0, 1.0),
    };
    let [a, b, c, d] = raw;
    let (x1, y1, x2, y2) = match format.format {
        BoxFormat::Xyxy => (a * sx, b * sy, c * sx, d * sy),
        BoxFormat::Cxcywh => (
            (a - c / 2.0) * sx,
            (b - d / 2.0) * sy,
            (a + c / 2.0) * sx,
            (b + d / 2.0) * sy,
        ),
    };
    let (x1, y1, x2, y2) = (x1 / scale.0, y1 / scale.1, x2 / scale.0, y2 / scale.1);
    let (w, h) = (
        transform.original_width as f64,
        transform.original_height as f64,
    );
    BBox::new(
        x1.min(x2).clamp(0.0, w),
        y1.min(y2).clamp(0.0, h),
        x1.max(x2).clamp(0.0, w),
        y1.max(y2).clamp(0.0, h),
    )
}

/// A VG model described by a `stage = "grounder"` manifest: single pass (`[models.main]` +
/// `[boxes]`) or OFA-style (`[models.encoder]` + `[models.decoder]` + `[location_tokens]`).
pub struct OnnxGrounder {
    sessions: Sessions,
    inputs: QueryImageInputs,
    head: GrounderHead,
}

impl OnnxGrounder {
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
        manifest.require_stage(Stage::Grounder)?;
        // The model that takes the image and the query.
        let vision_role = if manifest.location_tokens.is_some() {
            "encoder"
        } else {
            "main"
        };
        let spec = manifest.model(vision_role)?;
        let inputs = QueryImageInputs::from_manifest(
            manifest,
            spec,
            &format!("the grounder's {vision_role} model"),
        )?;
        let (sessions, head) = match manifest.location_tokens {
            None => {
                let format = *manifest.require_boxes()?;
                let boxes = tensor_name(manifest, spec, "output", "boxes")?;
                require_f32_output(manifest, spec, "boxes")?;
                require_f32_output(manifest, spec, "scores")?;
                let scores = spec.output("scores").map(|t| t.name.clone());
                let session = runtime.load_session(manifest, "main", config)?;
                let head = GrounderHead::SinglePass {
                    boxes: boxes.clone(),
                    scores: scores.clone(),
                    format,
                };
                (
                    Sessions::SinglePass {
                        session,
                        boxes,
                        scores,
                        format,
                    },
                    head,
                )
            }
            Some(location) => {
                if location.num_bins < 2 {
                    return Err(manifest.invalid(
                        format!("num_bins {} is too small", location.num_bins),
                        "OFA uses 1000 bins",
                    ));
                }
                let decoder_spec = manifest.model("decoder")?;
                let hidden_out = tensor_name(manifest, spec, "output", "encoder_hidden_states")?;
                let hidden_in =
                    tensor_name(manifest, decoder_spec, "input", "encoder_hidden_states")?;
                let ids = decoder_spec.input("decoder_input_ids").ok_or_else(|| {
                    manifest.invalid(
                        "the decoder has no input with role \"decoder_input_ids\"",
                        "set role = \"decoder_input_ids\" on the decoder's token input",
                    )
                })?;
                let logits = tensor_name(manifest, decoder_spec, "output", "logits")?;
                require_f32_output(manifest, spec, "encoder_hidden_states")?;
                require_f32_output(manifest, decoder_spec, "logits")?;
                let encoder = runtime.load_session(manifest, "encoder", config)?;
                let decoder = runtime.load_session(manifest, "decoder", config)?;
                (
                    Sessions::LocationTokens {
                        encoder,
                        decoder,
                        spec: location,
                        hidden_out,
                        hidden_in,
                        decoder_ids: (ids.name.clone(), ids.dtype),
                        encoder_mask: decoder_spec
                            .input("encoder_attention_mask")
                            .map(|t| (t.name.clone(), t.dtype)),
                        logits,
                    },
                    GrounderHead::LocationTokens(location),
                )
            }
        };
        Ok(OnnxGrounder {
            sessions,
            inputs,
            head,
        })
    }

    /// The provider of the (first) session.
    pub fn provider(&self) -> Provider {
        match &self.sessions {
            Sessions::SinglePass { session, .. } => session.provider,
            Sessions::LocationTokens { encoder, .. } => encoder.provider,
        }
    }

    pub fn head(&self) -> &GrounderHead {
        &self.head
    }
}

/// A decoded box in model-input pixels (`None` when a token fell outside the bins) and its score.
type DecodedBox = (Option<[f64; 4]>, f32);

/// Greedy decoding of four location tokens; returns per query the bins' box in model-input
/// pixels and the mean probability of the chosen tokens.
#[allow(clippy::too_many_arguments)]
fn decode_locations(
    decoder: &mut LoadedSession,
    spec: &LocationTokenSpec,
    hidden: &Arc<HeldTensor>,
    hidden_in: &str,
    decoder_ids: &(String, DType),
    encoder_mask: Option<(&(String, DType), &Array2<i64>)>,
    logits_name: &str,
    transform: &ImageTransform,
) -> Result<Vec<DecodedBox>, RuntimeError> {
    let path = decoder.path.clone();
    let n = hidden.shape().first().copied().unwrap_or(0);
    let mut tokens: Vec<Vec<i64>> = vec![vec![spec.decoder_start_id]; n];
    let mut probability_sum = vec![0.0f32; n];
    for _step in 0..4 {
        let t = tokens[0].len();
        let flat: Vec<i64> = tokens.iter().flatten().copied().collect();
        let ids = Array2::from_shape_vec((n, t), flat).map_err(|e| RuntimeError::run(&path, e))?;
        let mut inputs = vec![
            (decoder_ids.0.clone(), int_tensor(ids, decoder_ids.1)),
            // Held by ONNX Runtime since the encoder run: fed as is at every step, no copy.
            (hidden_in.to_string(), Input::Held(Arc::clone(hidden))),
        ];
        if let Some(((name, dtype), mask)) = encoder_mask {
            inputs.push((name.clone(), int_tensor(mask.clone(), *dtype)));
        }
        // Only the last position's row of the [n, t, vocab] logits is read: keep them in ONNX
        // Runtime's memory and view that row, instead of copying t x vocab values per query.
        let held = decoder
            .run_held(inputs, &[logits_name])?
            .pop()
            .ok_or_else(|| RuntimeError::run(&path, "no logits output"))?;
        let logits = held.view()?;
        let shape = logits.shape().to_vec();
        if shape.len() != 3 || shape[0] != n || shape[1] == 0 {
            return Err(RuntimeError::run(
                &path,
                format!("logits have shape {shape:?}, expected [{n}, t, vocab]"),
            ));
        }
        let last = logits.index_axis(Axis(1), shape[1] - 1);
        let lo = spec.first_bin_id.max(0) as usize;
        let hi = ((spec.first_bin_id + spec.num_bins).max(0) as usize).min(shape[2]);
        if lo >= hi {
            return Err(RuntimeError::run(
                &path,
                format!(
                    "the bin tokens {}..{} lie outside the decoder's {} logits",
                    spec.first_bin_id,
                    spec.first_bin_id + spec.num_bins,
                    shape[2]
                ),
            ));
        }
        for (i, row) in last.outer_iter().enumerate() {
            let mut best = lo;
            for k in lo..hi {
                if row[k] > row[best] {
                    best = k;
                }
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = row.iter().map(|v| (v - max).exp()).sum();
            probability_sum[i] += (row[best] - max).exp() / total;
            tokens[i].push(best as i64);
        }
    }
    Ok(tokens
        .iter()
        .zip(probability_sum)
        .map(|(seq, p)| {
            let bins = [seq[1], seq[2], seq[3], seq[4]];
            (
                location_bins_to_box(bins, spec, transform.input_width, transform.input_height),
                p / 4.0,
            )
        })
        .collect())
}

impl Grounder for OnnxGrounder {
    fn kind(&self) -> StageKind {
        StageKind::Onnx
    }

    fn needs_pixels(&self) -> bool {
        true
    }

    fn ground(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        queries: &[String],
    ) -> Result<Vec<Grounding>, StageError> {
        if let Sessions::SinglePass { .. } = self.sessions {
            // A batch of one (see the module doc).
            let item = QueryItem {
                input: *input,
                entities,
                queries,
            };
            return only_answer(self.ground_batch(std::slice::from_ref(&item), 1));
        }
        let tweet = input.tweet;
        let Some(batch) = self.inputs.build(input, entities, queries, "grounder")? else {
            return Ok(Vec::new());
        };
        let (inputs, transform, mask, n) =
            (batch.inputs, batch.transform, batch.mask, queries.len());
        let box_scale = batch.box_scale;
        let shape_error = |what: String| {
            StageError::item(
                &tweet.id,
                None,
                what,
                "the manifest's grounder output does not match the model",
            )
        };
        let Sessions::LocationTokens {
            encoder,
            decoder,
            spec,
            hidden_out,
            hidden_in,
            decoder_ids,
            encoder_mask,
            logits,
        } = &mut self.sessions
        else {
            return Err(shape_error(
                "the grounder has no location-token sessions".into(),
            ));
        };
        // Kept where the decoder takes it (its CUDA memory under I/O binding).
        let hidden = encoder
            .run_feeding(inputs, &[hidden_out.as_str()], decoder)
            .map_err(|e| run_failed(tweet, e))?
            .pop()
            .map(Arc::new)
            .ok_or_else(|| shape_error("the encoder returned no hidden states".into()))?;
        if hidden.shape().first() != Some(&n) {
            return Err(shape_error(format!(
                "encoder_hidden_states have shape {:?}, expected [{n}, ..]",
                hidden.shape()
            )));
        }
        let pixels_format = BoxSpec {
            format: BoxFormat::Xyxy,
            units: BoxUnits::Pixels,
        };
        // Per query: a raw box (model-input pixels) and a score.
        let raw: Vec<(Option<[f64; 4]>, f32)> = decode_locations(
            decoder,
            spec,
            &hidden,
            hidden_in,
            decoder_ids,
            encoder_mask.as_ref().map(|m| (m, &mask)),
            logits,
            &transform,
        )
        .map_err(|e| run_failed(tweet, e))?;
        groundings(tweet, entities, raw, pixels_format, &transform, box_scale)
    }

    /// Single pass: several tweets per run when the model has `image_index` (see the module
    /// doc). Location tokens: one tweet per call.
    fn ground_batch(
        &mut self,
        items: &[QueryItem<'_>],
        batch: usize,
    ) -> Vec<Timed<Vec<Grounding>>> {
        if let Sessions::SinglePass {
            session,
            boxes,
            scores,
            format,
        } = &mut self.sessions
        {
            let (boxes, scores, format) = (boxes.as_str(), scores.as_deref(), *format);
            return self
                .inputs
                .run_batched(items, batch, "grounder", |inputs, tweets| {
                    run_single_pass(session, boxes, scores, format, inputs, tweets)
                });
        }
        items
            .iter()
            .map(|i| Timed::call(|| self.ground(&i.input, i.entities, i.queries)))
            .collect()
    }
}

/// One single-pass run over `tweets`: each tweet's boxes in its original-image pixels.
fn run_single_pass(
    session: &mut LoadedSession,
    boxes: &str,
    scores: Option<&str>,
    format: BoxSpec,
    inputs: Vec<(String, Input)>,
    tweets: &[RunTweet<'_>],
) -> RunAnswer<Grounding> {
    let first = tweets[0].tweet;
    let n: usize = tweets.iter().map(|t| t.n).sum();
    let shape_error = |what: String| {
        StageError::item(
            &first.id,
            None,
            what,
            "the manifest's grounder output does not match the model",
        )
    };
    let mut wanted = vec![boxes];
    wanted.extend(scores);
    let mut outputs = run_f32(session, inputs, &wanted).map_err(|e| run_failed(first, e))?;
    let raw_boxes = outputs.remove(0);
    if raw_boxes.shape() != [n, 4] {
        return Err(shape_error(format!(
            "boxes have shape {:?}, expected [{n}, 4]",
            raw_boxes.shape()
        )));
    }
    let raw_scores: Vec<f32> = match outputs.pop() {
        Some(s) if s.len() == n => s.iter().copied().collect(),
        Some(s) => {
            return Err(shape_error(format!(
                "scores have shape {:?}, expected [{n}]",
                s.shape()
            )))
        }
        None => vec![1.0; n],
    };
    let raw: Vec<(Option<[f64; 4]>, f32)> = raw_boxes
        .outer_iter()
        .zip(raw_scores)
        .map(|(row, score)| (Some([row[0], row[1], row[2], row[3]].map(f64::from)), score))
        .collect();
    Ok(tweets
        .iter()
        .map(|t| {
            groundings(
                t.tweet,
                t.entities,
                raw[t.start..t.start + t.n].to_vec(),
                format,
                &t.transform,
                t.box_scale,
            )
        })
        .collect())
}

/// A tweet's raw boxes (`format`, model-input frame) and scores → groundings in original-image
/// pixels; a missing or non-finite box fails the tweet, naming the entity.
fn groundings(
    tweet: &Tweet,
    entities: &[Entity],
    raw: Vec<(Option<[f64; 4]>, f32)>,
    format: BoxSpec,
    transform: &ImageTransform,
    box_scale: (f64, f64),
) -> Result<Vec<Grounding>, StageError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, (raw_box, score)) in raw.into_iter().enumerate() {
        let raw_box = match raw_box {
            Some(b) if b.iter().all(|v| v.is_finite()) => b,
            other => {
                return Err(StageError::item(
                    &tweet.id,
                    entities.get(i).map(|e| e.text.as_str()),
                    format!("the grounder returned no usable box ({other:?})"),
                    "check the model's preprocessing (mean/std) and box format in the manifest",
                ))
            }
        };
        out.push(Grounding {
            bbox: to_original_box(raw_box, format, transform, box_scale),
            score,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform(orig_w: u32, orig_h: u32, size: u32) -> ImageTransform {
        ImageTransform {
            original_width: orig_w,
            original_height: orig_h,
            input_width: size,
            input_height: size,
            content_width: size,
            content_height: size,
        }
    }

    #[test]
    fn cxcywh_normalised_to_original_pixels() {
        let spec = BoxSpec {
            format: BoxFormat::Cxcywh,
            units: BoxUnits::Normalized,
        };
        let t = transform(64, 48, 16);
        let b = to_original_box([0.5, 0.5, 0.5, 0.25], spec, &t, (16.0 / 64.0, 16.0 / 48.0));
        assert_eq!(b, BBox::new(16.0, 18.0, 48.0, 30.0));
    }

    #[test]
    fn xyxy_pixels_are_ordered_and_clamped() {
        let spec = BoxSpec {
            format: BoxFormat::Xyxy,
            units: BoxUnits::Pixels,
        };
        let b = to_original_box(
            [20.0, -3.0, 2.0, 40.0],
            spec,
            &transform(32, 32, 16),
            (0.5, 0.5),
        );
        assert_eq!(b, BBox::new(4.0, 0.0, 32.0, 32.0));
    }

    #[test]
    fn location_bins() {
        let spec = LocationTokenSpec {
            first_bin_id: 100,
            num_bins: 1001,
            decoder_start_id: 0,
        };
        let b = location_bins_to_box([100, 350, 1100, 600], &spec, 512, 512).unwrap();
        assert_eq!(b, [0.0, 128.0, 512.0, 256.0]);
        assert!(location_bins_to_box([99, 0, 0, 0], &spec, 512, 512).is_none());
    }
}
