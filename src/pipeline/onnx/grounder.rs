//! Visual grounding: image + one query per entity → one box in original-image pixels.
//!
//! Two model shapes are designed for ([`GrounderHead`]):
//! - **single pass** (implemented): the model outputs `boxes` `[n, 4]` (+ optional `scores`
//!   `[n]`) in the manifest's `[boxes]` format (xyxy / cxcywh, normalised to the model input or
//!   in its pixels). Boxes are mapped back through the preprocessing transform and clamped to
//!   the image.
//! - **location tokens** (OFA REC, designed, not wired yet): an encoder–decoder whose decoder
//!   emits four `<bin_i>` tokens `x1 y1 x2 y2` greedily; [`location_bins_to_box`] turns them into
//!   model-input pixels, after which the same mapping applies. A manifest with
//!   `[location_tokens]` is rejected with a clear error until the greedy loop lands.

use std::path::Path;

use super::entailer::batch_image;
use super::text::TextEncoder;
use super::{
    check_pairs, f32_tensor, int_tensor, require_f32_output, require_image, run_f32, run_failed,
    tensor_name,
};
use crate::data::model::Entity;
use crate::geometry::BBox;
use crate::pipeline::stages::{Grounder, Grounding, Stage, StageError, StageKind, TweetInput};
use crate::runtime::manifest::LocationTokenSpec;
use crate::runtime::{
    image_to_tensor, BoxFormat, BoxSpec, BoxUnits, DType, ImageTransform, LoadedSession,
    ModelManifest, OrtRuntime, PreprocessSpec, Provider, RuntimeError, SessionConfig,
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
pub(crate) fn to_original_box(raw: [f64; 4], format: BoxSpec, transform: &ImageTransform) -> BBox {
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
    let (x1, y1) = transform.to_original(x1, y1);
    let (x2, y2) = transform.to_original(x2, y2);
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

/// A VG model described by a `stage = "grounder"` manifest.
pub struct OnnxGrounder {
    session: LoadedSession,
    text: TextEncoder,
    preprocess: PreprocessSpec,
    pixel_values: String,
    repeat_image: bool,
    input_ids: (String, DType),
    attention_mask: Option<(String, DType)>,
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
        if manifest.stage != Stage::Grounder {
            return Err(manifest.invalid(
                format!(
                    "stage is {:?}, expected \"grounder\"",
                    manifest.stage.name()
                ),
                "pass a grounder manifest to the grounder",
            ));
        }
        if manifest.location_tokens.is_some() {
            return Err(manifest.invalid(
                "OFA-style location-token grounding is designed but not implemented yet",
                "use a single-pass grounder exporting boxes [n, 4] (+ scores [n]), or replay OFA's predictions",
            ));
        }
        let spec = manifest.model("main")?;
        let preprocess = manifest.require_preprocess()?.clone();
        let format = *manifest.require_boxes()?;
        let pixel = spec.input("pixel_values").ok_or_else(|| {
            manifest.invalid(
                "the grounder model has no input with role \"pixel_values\"",
                "set role = \"pixel_values\" on the image input",
            )
        })?;
        let repeat_image = pixel.shape.first().and_then(|d| d.fixed()) != Some(1);
        let input = |role: &str| spec.input(role).map(|t| (t.name.clone(), t.dtype));
        let input_ids = input("input_ids").ok_or_else(|| {
            manifest.invalid(
                "the grounder model has no input with role \"input_ids\"",
                "set role = \"input_ids\" on the token-id input",
            )
        })?;
        let boxes = tensor_name(manifest, spec, "output", "boxes")?;
        require_f32_output(manifest, spec, "boxes")?;
        require_f32_output(manifest, spec, "scores")?;
        let scores = spec.output("scores").map(|t| t.name.clone());
        let text = TextEncoder::from_manifest(manifest)?;
        let session = runtime.load_session(manifest, "main", config)?;
        Ok(OnnxGrounder {
            session,
            text,
            preprocess,
            pixel_values: pixel.name.clone(),
            repeat_image,
            attention_mask: input("attention_mask"),
            input_ids,
            head: GrounderHead::SinglePass {
                boxes,
                scores,
                format,
            },
        })
    }

    pub fn provider(&self) -> Provider {
        self.session.provider
    }

    pub fn head(&self) -> &GrounderHead {
        &self.head
    }
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
        let tweet = input.tweet;
        check_pairs(tweet, entities.len(), queries.len())?;
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let GrounderHead::SinglePass {
            boxes,
            scores,
            format,
        } = self.head.clone()
        else {
            return Err(StageError::item(
                &tweet.id,
                None,
                "location-token grounding is not implemented",
                "use a single-pass grounder",
            ));
        };
        let image = require_image(input, "grounder")?;
        let names: Vec<&str> = entities.iter().map(|e| e.text.as_str()).collect();
        let (ids, mask) = self.text.encode_queries(&tweet.id, &names, queries)?;
        let n = queries.len();
        let (pixels, transform) = image_to_tensor(image, &self.preprocess);
        let pixels = batch_image(pixels, n, self.repeat_image);
        let tensor_err = |e: ort::Error| {
            StageError::item(
                &tweet.id,
                None,
                format!("building input tensors: {e}"),
                "internal error",
            )
        };
        let mut inputs = vec![
            (
                self.pixel_values.clone(),
                f32_tensor(pixels).map_err(tensor_err)?,
            ),
            (
                self.input_ids.0.clone(),
                int_tensor(ids, self.input_ids.1).map_err(tensor_err)?,
            ),
        ];
        if let Some((name, dtype)) = &self.attention_mask {
            inputs.push((name.clone(), int_tensor(mask, *dtype).map_err(tensor_err)?));
        }
        let mut wanted = vec![boxes.as_str()];
        if let Some(s) = &scores {
            wanted.push(s.as_str());
        }
        let mut outputs =
            run_f32(&mut self.session, inputs, &wanted).map_err(|e| run_failed(tweet, e))?;
        let raw_boxes = outputs.remove(0);
        if raw_boxes.shape() != [n, 4] {
            return Err(StageError::item(
                &tweet.id,
                None,
                format!(
                    "boxes have shape {:?}, expected [{n}, 4]",
                    raw_boxes.shape()
                ),
                "the manifest's grounder output does not match the model",
            ));
        }
        let raw_scores: Vec<f32> = match outputs.pop() {
            Some(s) if s.len() == n => s.iter().copied().collect(),
            Some(s) => {
                return Err(StageError::item(
                    &tweet.id,
                    None,
                    format!("scores have shape {:?}, expected [{n}]", s.shape()),
                    "the manifest's grounder output does not match the model",
                ))
            }
            None => vec![1.0; n],
        };
        let mut groundings = Vec::with_capacity(n);
        for (i, row) in raw_boxes.outer_iter().enumerate() {
            let raw = [row[0], row[1], row[2], row[3]].map(f64::from);
            if raw.iter().any(|v| !v.is_finite()) {
                return Err(StageError::item(
                    &tweet.id,
                    Some(&entities[i].text),
                    format!("the grounder returned a non-finite box {raw:?}"),
                    "check the model's preprocessing (mean/std) in the manifest",
                ));
            }
            groundings.push(Grounding {
                bbox: to_original_box(raw, format, &transform),
                score: raw_scores[i],
            });
        }
        Ok(groundings)
    }
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
        let b = to_original_box([0.5, 0.5, 0.5, 0.25], spec, &transform(64, 48, 16));
        assert_eq!(b, BBox::new(16.0, 18.0, 48.0, 30.0));
    }

    #[test]
    fn xyxy_pixels_are_ordered_and_clamped() {
        let spec = BoxSpec {
            format: BoxFormat::Xyxy,
            units: BoxUnits::Pixels,
        };
        let b = to_original_box([20.0, -3.0, 2.0, 40.0], spec, &transform(32, 32, 16));
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
