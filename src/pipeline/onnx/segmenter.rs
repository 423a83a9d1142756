//! Box-prompted segmentation with a SAM-style pair: the image encoder runs **once** per image,
//! the prompt decoder once per box. The box (original pixels) is mapped into the encoder's input
//! frame (SAM: longest side resized, bottom/right padded) and fed either as SAM's two corner
//! points (`point_coords` `[1, 2, 2]` + `point_labels` `[1, 2]` = 2, 3) or as `box` `[1, 4]`.
//! Optional SAM inputs are filled as the official export expects: `mask_input` zeros,
//! `has_mask_input` 0, `orig_im_size` `[h, w]`.
//!
//! The first mask of `masks` is read. When it is at original size (the decoder took
//! `orig_im_size`), logits > 0 is the mask; otherwise it covers the encoder input frame and is
//! upsampled exactly as `SamImageProcessor.post_process_masks` does: bilinear
//! (`align_corners=False`, PyTorch's index and weight arithmetic in f32) to the input frame,
//! cropped to the resized image (dropping the padding), bilinear to the original size, then
//! thresholded at 0. (Sampling the low-resolution logits once at each original pixel is not the
//! same function: two bilinear passes move the 0-crossing by up to a pixel.)
//! The mask is returned as uncompressed column-major COCO runs (`RleCounts::Runs`).

use std::path::Path;

use ndarray::{Array2, Array3, ArrayD, ArrayView2};

use super::{f32_tensor, require_f32_output, require_image, run_f32, run_failed, tensor_name};
use crate::geometry::{BBox, CocoRle, RleCounts};
use crate::pipeline::stages::{Segmenter, Stage, StageError, StageKind, TweetInput};
use crate::runtime::{
    image_to_tensor, Dim, ImageTransform, LoadedSession, ModelManifest, OrtRuntime, PreprocessSpec,
    Provider, RuntimeError, SessionConfig,
};

enum Prompt {
    /// SAM: `[[x1, y1], [x2, y2]]` with labels `[2, 3]`.
    CornerPoints { coords: String, labels: String },
    /// `[x1, y1, x2, y2]`.
    Box { name: String },
}

/// A SAM-style encoder + decoder described by a `stage = "segmenter"` manifest.
pub struct OnnxSegmenter {
    encoder: LoadedSession,
    decoder: LoadedSession,
    preprocess: PreprocessSpec,
    pixel_values: String,
    embeddings_out: String,
    embeddings_in: String,
    prompt: Prompt,
    mask_input: Option<(String, Vec<usize>)>,
    has_mask_input: Option<String>,
    orig_im_size: Option<String>,
    masks: String,
    /// The last image's embedding and transform, keyed by tweet id and image size: the runner
    /// runs every variant of a tweet back to back, so variants that prompt the same image with
    /// other boxes reuse the expensive encoder pass (SAM ViT-H ~0.15 s vs ~4 ms per decode).
    last_embedding: Option<(String, u32, u32, ArrayD<f32>, ImageTransform)>,
    /// Encoder passes run (for reports and tests).
    pub encoder_runs: usize,
}

impl OnnxSegmenter {
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
        manifest.require_stage(Stage::Segmenter)?;
        let encoder_spec = manifest.model("encoder")?;
        let decoder_spec = manifest.model("decoder")?;
        let preprocess = manifest.require_preprocess()?.clone();
        let pixel_values = tensor_name(manifest, encoder_spec, "input", "pixel_values")?;
        let embeddings_out = tensor_name(manifest, encoder_spec, "output", "image_embeddings")?;
        let embeddings_in = tensor_name(manifest, decoder_spec, "input", "image_embeddings")?;
        let masks = tensor_name(manifest, decoder_spec, "output", "masks")?;
        require_f32_output(manifest, encoder_spec, "image_embeddings")?;
        require_f32_output(manifest, decoder_spec, "masks")?;
        let prompt = match (
            decoder_spec.input("point_coords"),
            decoder_spec.input("point_labels"),
            decoder_spec.input("box"),
        ) {
            (Some(c), Some(l), _) => Prompt::CornerPoints {
                coords: c.name.clone(),
                labels: l.name.clone(),
            },
            (_, _, Some(b)) => Prompt::Box {
                name: b.name.clone(),
            },
            _ => {
                return Err(manifest.invalid(
                    "the decoder takes neither point_coords + point_labels nor box",
                    "list SAM's point_coords/point_labels inputs, or a `box` [1, 4] input",
                ))
            }
        };
        let mask_input = match decoder_spec.input("mask_input") {
            Some(t) => {
                let dims: Option<Vec<usize>> = t
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) if *n > 0 => Some(*n as usize),
                        _ => None,
                    })
                    .collect();
                let dims = dims.ok_or_else(|| {
                    manifest.invalid(
                        format!("mask_input {:?} needs a fixed shape", t.name),
                        "SAM's export uses [1, 1, 256, 256]",
                    )
                })?;
                Some((t.name.clone(), dims))
            }
            None => None,
        };
        let encoder = runtime.load_session(manifest, "encoder", config)?;
        let decoder = runtime.load_session(manifest, "decoder", config)?;
        Ok(OnnxSegmenter {
            encoder,
            decoder,
            preprocess,
            pixel_values,
            embeddings_out,
            embeddings_in,
            prompt,
            mask_input,
            has_mask_input: decoder_spec.input("has_mask_input").map(|t| t.name.clone()),
            orig_im_size: decoder_spec.input("orig_im_size").map(|t| t.name.clone()),
            masks,
            last_embedding: None,
            encoder_runs: 0,
        })
    }

    /// The providers of the encoder and the decoder.
    pub fn providers(&self) -> (Provider, Provider) {
        (self.encoder.provider, self.decoder.provider)
    }

    fn decode_one(
        &mut self,
        embeddings: &ArrayD<f32>,
        bbox: &BBox,
        transform: &ImageTransform,
    ) -> Result<ArrayD<f32>, RuntimeError> {
        let path = self.decoder.path.clone();
        let (x1, y1) = transform.to_input(bbox.x1(), bbox.y1());
        let (x2, y2) = transform.to_input(bbox.x2(), bbox.y2());
        let corners = [x1, y1, x2, y2].map(|v| v as f32);
        let mut inputs = vec![(self.embeddings_in.clone(), f32_tensor(embeddings.clone()))];
        match &self.prompt {
            Prompt::CornerPoints { coords, labels } => {
                let c = Array3::from_shape_vec((1, 2, 2), corners.to_vec())
                    .map_err(|e| RuntimeError::run(&path, e))?;
                let l = Array2::from_shape_vec((1, 2), vec![2.0f32, 3.0])
                    .map_err(|e| RuntimeError::run(&path, e))?;
                inputs.push((coords.clone(), f32_tensor(c)));
                inputs.push((labels.clone(), f32_tensor(l)));
            }
            Prompt::Box { name } => {
                let b = Array2::from_shape_vec((1, 4), corners.to_vec())
                    .map_err(|e| RuntimeError::run(&path, e))?;
                inputs.push((name.clone(), f32_tensor(b)));
            }
        }
        if let Some((name, dims)) = &self.mask_input {
            inputs.push((
                name.clone(),
                f32_tensor(ArrayD::<f32>::zeros(dims.as_slice())),
            ));
        }
        if let Some(name) = &self.has_mask_input {
            inputs.push((name.clone(), f32_tensor(ndarray::arr1(&[0.0f32]))));
        }
        if let Some(name) = &self.orig_im_size {
            let size = ndarray::arr1(&[
                transform.original_height as f32,
                transform.original_width as f32,
            ]);
            inputs.push((name.clone(), f32_tensor(size)));
        }
        let masks = self.masks.clone();
        Ok(run_f32(&mut self.decoder, inputs, &[&masks])?.remove(0))
    }
}

/// One axis of PyTorch's `upsample_bilinear2d` (CPU, `align_corners=False`, no scale factor):
/// per output index, the two source indices and their weights.
fn linear_taps(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(in_size.saturating_sub(1));
            let lambda1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 + 1 < in_size { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - lambda1, lambda1)
        })
        .collect()
}

/// `F.interpolate(plane, (out_h, out_w), mode="bilinear", align_corners=False)` of the
/// top-left `in_h x in_w` window of a row-major plane `stride` values wide.
fn interpolate_bilinear(
    plane: &[f32],
    stride: usize,
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    let rows = linear_taps(in_h, out_h);
    let cols = linear_taps(in_w, out_w);
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, wy0, wy1) in &rows {
        for &(x0, x1, wx0, wx1) in &cols {
            let at = |y: usize, x: usize| plane[y * stride + x];
            let top = at(y0, x0) * wx0 + at(y0, x1) * wx1;
            let bottom = at(y1, x0) * wx0 + at(y1, x1) * wx1;
            out.push(top * wy0 + bottom * wy1);
        }
    }
    out
}

/// Low-resolution `logits` covering the model-input frame → the original-size mask (row-major
/// `[h][w]`), as `post_process_masks`: upsample to the input frame, crop the padding, upsample
/// to the original size, threshold at 0. `at_original_size`: the decoder took `orig_im_size`
/// and its logits are already at the original size.
fn logits_to_original_mask(
    logits: ArrayView2<'_, f32>,
    transform: &ImageTransform,
    at_original_size: bool,
) -> Vec<bool> {
    let (w, h) = (
        transform.original_width as usize,
        transform.original_height as usize,
    );
    let (mh, mw) = logits.dim();
    if at_original_size && (mh, mw) == (h, w) {
        return logits.iter().map(|v| *v > 0.0).collect();
    }
    let plane: Vec<f32> = logits.iter().copied().collect();
    let (ih, iw) = (
        transform.input_height as usize,
        transform.input_width as usize,
    );
    let frame = interpolate_bilinear(&plane, mw, (mh, mw), (ih, iw));
    let content = (
        (transform.content_height as usize).clamp(1, ih),
        (transform.content_width as usize).clamp(1, iw),
    );
    interpolate_bilinear(&frame, iw, content, (h, w))
        .into_iter()
        .map(|v| v > 0.0)
        .collect()
}

/// Uncompressed COCO runs of a row-major `height x width` mask: column-major order, runs
/// alternate 0/1 starting with 0 (a leading 0-length run when the first pixel is set).
fn mask_to_runs(mask: &[bool], height: usize, width: usize) -> Vec<u64> {
    let mut runs = Vec::new();
    let (mut current, mut count) = (false, 0u64);
    for x in 0..width {
        for y in 0..height {
            let v = mask[y * width + x];
            if v == current {
                count += 1;
            } else {
                runs.push(count);
                current = v;
                count = 1;
            }
        }
    }
    runs.push(count);
    runs
}

impl Segmenter for OnnxSegmenter {
    fn kind(&self) -> StageKind {
        StageKind::Onnx
    }

    fn needs_pixels(&self) -> bool {
        true
    }

    fn segment(
        &mut self,
        input: &TweetInput<'_>,
        boxes: &[BBox],
    ) -> Result<Vec<CocoRle>, StageError> {
        let tweet = input.tweet;
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let image = require_image(input, "segmenter")?;
        let reusable = matches!(&self.last_embedding,
            Some((id, w, h, _, _)) if *id == tweet.id && *w == image.width() && *h == image.height());
        if !reusable {
            let (pixels, transform) = image_to_tensor(image, &self.preprocess);
            let embeddings = {
                let tensor = f32_tensor(pixels);
                let name = self.embeddings_out.clone();
                run_f32(
                    &mut self.encoder,
                    vec![(self.pixel_values.clone(), tensor)],
                    &[&name],
                )
                .map_err(|e| run_failed(tweet, e))?
                .remove(0)
            };
            self.encoder_runs += 1;
            self.last_embedding = Some((
                tweet.id.clone(),
                image.width(),
                image.height(),
                embeddings,
                transform,
            ));
        }
        let Some((_, _, _, embeddings, transform)) = self.last_embedding.take() else {
            unreachable!("set above")
        };
        let result = self.decode_all(tweet, image, boxes, &embeddings, &transform);
        self.last_embedding = Some((
            tweet.id.clone(),
            image.width(),
            image.height(),
            embeddings,
            transform,
        ));
        result
    }
}

impl OnnxSegmenter {
    fn decode_all(
        &mut self,
        tweet: &crate::data::model::Tweet,
        image: &image::RgbImage,
        boxes: &[BBox],
        embeddings: &ArrayD<f32>,
        transform: &ImageTransform,
    ) -> Result<Vec<CocoRle>, StageError> {
        let (h, w) = (image.height() as usize, image.width() as usize);
        let mut masks = Vec::with_capacity(boxes.len());
        for (i, bbox) in boxes.iter().enumerate() {
            if let Err(why) = bbox.validate() {
                return Err(StageError::item(
                    &tweet.id,
                    None,
                    format!("box {i}: {why}"),
                    "the grounder produced an invalid box",
                ));
            }
            let logits = self
                .decode_one(embeddings, bbox, transform)
                .map_err(|e| run_failed(tweet, e))?;
            let shape = logits.shape().to_vec();
            if shape.len() < 2 || logits.is_empty() {
                return Err(StageError::item(
                    &tweet.id,
                    None,
                    format!("masks output has shape {shape:?}"),
                    "expected [1, k, h, w] mask logits",
                ));
            }
            let (mh, mw) = (shape[shape.len() - 2], shape[shape.len() - 1]);
            let first: Vec<f32> = logits.iter().take(mh * mw).copied().collect();
            let plane = ArrayView2::from_shape((mh, mw), &first).map_err(|e| {
                StageError::item(
                    &tweet.id,
                    None,
                    e.to_string(),
                    "expected [1, k, h, w] mask logits",
                )
            })?;
            let mask = logits_to_original_mask(plane, transform, self.orig_im_size.is_some());
            masks.push(CocoRle {
                size: [h as u32, w as u32],
                counts: RleCounts::Runs(mask_to_runs(&mask, h, w)),
            });
        }
        Ok(masks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_column_major_and_start_with_zeros() {
        // 2x3, row-major:
        // 1 0 1
        // 1 0 0
        let mask = [true, false, true, true, false, false];
        assert_eq!(mask_to_runs(&mask, 2, 3), vec![0, 2, 2, 1, 1]);
        assert_eq!(mask_to_runs(&[false; 4], 2, 2), vec![4]);
    }

    #[test]
    fn bilinear_sampling_thresholds_at_zero() {
        let t = ImageTransform {
            original_width: 4,
            original_height: 2,
            input_width: 2,
            input_height: 2,
            content_width: 2,
            content_height: 1,
        };
        // input frame 2x2, content is the top row; left positive, right negative
        let logits = ndarray::arr2(&[[1.0f32, -1.0], [-5.0, -5.0]]);
        let mask = logits_to_original_mask(logits.view(), &t, false);
        assert_eq!(
            mask,
            vec![true, true, false, false, true, true, false, false]
        );
    }

    #[test]
    fn interpolation_matches_torch_bilinear() {
        // torch 2.5.1: F.interpolate(x, size, mode="bilinear", align_corners=False) of the 2x3
        // plane below, to 4x5 (up) and to 1x2 (down).
        let x = [1.0f32, -2.0, 0.5, 3.0, 0.25, -1.0];
        let up = interpolate_bilinear(&x, 3, (2, 3), (4, 5));
        let want_up = [
            1.0f32,
            -0.2000001,
            -2.0,
            -0.49999964,
            0.5,
            1.5,
            0.32499996,
            -1.4375,
            -0.49999976,
            0.125,
            2.5,
            1.375,
            -0.3125,
            -0.50000006,
            -0.625,
            3.0,
            1.8999999,
            0.25,
            -0.5000002,
            -1.0,
        ];
        for (got, want) in up.iter().zip(want_up) {
            assert!((got - want).abs() < 1e-6, "{up:?}");
        }
        assert_eq!(
            interpolate_bilinear(&x, 3, (2, 3), (1, 2)),
            vec![1.28125, -0.40625]
        );
        // A window of a wider plane (the crop of the padding).
        assert_eq!(
            interpolate_bilinear(&x, 3, (2, 2), (2, 2)),
            vec![1.0, -2.0, 3.0, 0.25]
        );
    }
}
