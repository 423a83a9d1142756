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
//!
//! Per tweet, the work outside the models is kept small (issue 15): the embedding stays in ONNX
//! Runtime's memory and is fed to every decoder run without a copy ([`HeldTensor`]), the mask
//! logits are read through a view, and [`sam_mask_runs`] runs the two bilinear passes
//! separably (the same f32 expressions, in the same order, so the same bits) over the content
//! crop only, column by column, emitting COCO runs as it goes instead of materialising a
//! full-size mask and encoding it afterwards.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, Array3, ArrayD};

use super::{f32_tensor, require_f32_output, require_image, run_failed, tensor_name};
use crate::geometry::{BBox, CocoRle, RleCounts};
use crate::pipeline::stages::{Segmenter, Stage, StageError, StageKind, TweetInput};
use crate::runtime::{
    image_to_tensor, Dim, HeldTensor, ImageTransform, Input, LoadedSession, ModelManifest,
    OrtRuntime, PreprocessSpec, Provider, RuntimeError, SessionConfig,
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
    /// The embedding stays in ONNX Runtime's memory, shared by the decoder runs.
    last_embedding: Option<(String, u32, u32, Arc<HeldTensor>, ImageTransform)>,
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
        embeddings: &Arc<HeldTensor>,
        bbox: &BBox,
        transform: &ImageTransform,
    ) -> Result<HeldTensor, RuntimeError> {
        let path = self.decoder.path.clone();
        let (x1, y1) = transform.to_input(bbox.x1(), bbox.y1());
        let (x2, y2) = transform.to_input(bbox.x2(), bbox.y2());
        let corners = [x1, y1, x2, y2].map(|v| v as f32);
        let mut inputs = vec![(
            self.embeddings_in.clone(),
            Input::Held(Arc::clone(embeddings)),
        )];
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
        let mut outputs = self.decoder.run_held(inputs, &[&masks])?;
        outputs
            .pop()
            .ok_or_else(|| RuntimeError::run(&path, "no masks output"))
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

/// Column-major COCO runs written as the mask is produced: alternating 0/1 runs starting with
/// 0 (a leading 0-length run when the first pixel is set).
struct RunWriter {
    runs: Vec<u64>,
    current: bool,
    count: u64,
}

impl RunWriter {
    fn new() -> Self {
        RunWriter {
            runs: Vec::new(),
            current: false,
            count: 0,
        }
    }

    #[inline]
    fn push(&mut self, value: bool) {
        if value == self.current {
            self.count += 1;
        } else {
            self.runs.push(self.count);
            self.current = value;
            self.count = 1;
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.runs.push(self.count);
        self.runs
    }
}

/// Row-major `rows x cols` values (`stride` apart) → column-major, `cols` columns of `rows`.
fn transpose(values: &[f32], stride: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for (y, row) in values.chunks(stride).take(rows).enumerate() {
        for (x, &v) in row[..cols].iter().enumerate() {
            out[x * rows + y] = v;
        }
    }
    out
}

/// One bilinear pass of PyTorch's `upsample_bilinear2d` over column-major data, horizontal half
/// first: output column `x` blends input columns `x0`, `x1` (`column[y] = a[y] * wx0 + b[y] *
/// wx1`, PyTorch's "top"/"bottom" terms), then each output row blends two of those
/// (`c[y0] * wy0 + c[y1] * wy1`). That is PyTorch's expression, operation for operation, so the
/// value is the same f32; only the loop order differs. `emit` gets each output column in turn.
fn bilinear_columns(
    columns: &[f32],
    in_rows: usize,
    col_taps: &[(usize, usize, f32, f32)],
    row_taps: &[(usize, usize, f32, f32)],
    mut emit: impl FnMut(usize, &mut dyn Iterator<Item = f32>),
) {
    let mut blended = vec![0.0f32; in_rows];
    for (x, &(x0, x1, wx0, wx1)) in col_taps.iter().enumerate() {
        let a = &columns[x0 * in_rows..(x0 + 1) * in_rows];
        let b = &columns[x1 * in_rows..(x1 + 1) * in_rows];
        for ((c, &va), &vb) in blended.iter_mut().zip(a).zip(b) {
            *c = va * wx0 + vb * wx1;
        }
        let mut column = row_taps
            .iter()
            .map(|&(y0, y1, wy0, wy1)| blended[y0] * wy0 + blended[y1] * wy1);
        emit(x, &mut column);
    }
}

/// Low-resolution mask logits (row-major `mh x mw`, covering the model-input frame) → the
/// original-size mask as uncompressed column-major COCO runs, exactly as
/// `SamImageProcessor.post_process_masks` + threshold 0: bilinear to the input frame, crop the
/// padding, bilinear to the original size, `> 0`. `at_original_size`: the decoder took
/// `orig_im_size` and its logits are already at the original size (then only thresholded).
///
/// Only the content crop of the input frame is computed (the padding is dropped anyway), both
/// passes are separable over columns, and the runs are counted as each output column is
/// produced, so no full-size frame or mask is materialised.
pub fn sam_mask_runs(
    logits: &[f32],
    (mh, mw): (usize, usize),
    transform: &ImageTransform,
    at_original_size: bool,
) -> Vec<u64> {
    let (w, h) = (
        transform.original_width as usize,
        transform.original_height as usize,
    );
    let mut runs = RunWriter::new();
    if mh == 0 || mw == 0 || logits.len() < mh * mw {
        // Nothing to sample (the stage rejects empty logits before this): an empty mask.
        for _ in 0..w * h {
            runs.push(false);
        }
        return runs.finish();
    }
    if at_original_size && (mh, mw) == (h, w) {
        for x in 0..w {
            for y in 0..h {
                runs.push(logits[y * w + x] > 0.0);
            }
        }
        return runs.finish();
    }
    let (ih, iw) = (
        transform.input_height as usize,
        transform.input_width as usize,
    );
    let (ch, cw) = (
        (transform.content_height as usize).clamp(1, ih),
        (transform.content_width as usize).clamp(1, iw),
    );
    // Pass 1: low-res → the content crop of the input frame, kept column-major.
    let low = transpose(logits, mw, mh, mw);
    let mut frame = Vec::with_capacity(cw * ch);
    let frame_cols = linear_taps(mw, iw);
    let frame_rows = linear_taps(mh, ih);
    bilinear_columns(
        &low,
        mh,
        &frame_cols[..cw],
        &frame_rows[..ch],
        |_, column| frame.extend(column),
    );
    // Pass 2: content crop → original size, thresholded into runs column by column.
    bilinear_columns(
        &frame,
        ch,
        &linear_taps(cw, w),
        &linear_taps(ch, h),
        |_, column| {
            for v in column {
                runs.push(v > 0.0);
            }
        },
    );
    runs.finish()
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
                let mut outputs = self
                    .encoder
                    .run_held(vec![(self.pixel_values.clone(), tensor)], &[&name])
                    .map_err(|e| run_failed(tweet, e))?;
                match outputs.pop() {
                    Some(held) => Arc::new(held),
                    None => {
                        return Err(StageError::item(
                            &tweet.id,
                            None,
                            "the encoder returned no image_embeddings",
                            "check the encoder's outputs in the manifest",
                        ))
                    }
                }
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
        embeddings: &Arc<HeldTensor>,
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
            let held = self
                .decode_one(embeddings, bbox, transform)
                .map_err(|e| run_failed(tweet, e))?;
            let logits = held.view().map_err(|e| run_failed(tweet, e))?;
            let shape = logits.shape();
            if shape.len() < 2 || logits.is_empty() {
                return Err(StageError::item(
                    &tweet.id,
                    None,
                    format!("masks output has shape {shape:?}"),
                    "expected [1, k, h, w] mask logits",
                ));
            }
            let (mh, mw) = (shape[shape.len() - 2], shape[shape.len() - 1]);
            // The first mask is the first mh * mw values of the (standard-layout) output; read
            // in place, copied only if ort ever hands back another layout.
            let owned;
            let values: &[f32] = match logits.as_slice() {
                Some(all) => all,
                None => {
                    owned = logits.iter().copied().collect::<Vec<f32>>();
                    &owned
                }
            };
            let runs = sam_mask_runs(
                &values[..mh * mw],
                (mh, mw),
                transform,
                self.orig_im_size.is_some(),
            );
            masks.push(CocoRle {
                size: [h as u32, w as u32],
                counts: RleCounts::Runs(runs),
            });
        }
        Ok(masks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The straightforward implementation this module had before issue 15 (a full-size frame,
    // then a full-size row-major mask, then runs): the reference the fast path must equal.

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

    fn reference_mask(
        plane: &[f32],
        (mh, mw): (usize, usize),
        transform: &ImageTransform,
        at_original_size: bool,
    ) -> Vec<bool> {
        let (w, h) = (
            transform.original_width as usize,
            transform.original_height as usize,
        );
        if at_original_size && (mh, mw) == (h, w) {
            return plane.iter().map(|v| *v > 0.0).collect();
        }
        let (ih, iw) = (
            transform.input_height as usize,
            transform.input_width as usize,
        );
        let frame = interpolate_bilinear(plane, mw, (mh, mw), (ih, iw));
        let content = (
            (transform.content_height as usize).clamp(1, ih),
            (transform.content_width as usize).clamp(1, iw),
        );
        interpolate_bilinear(&frame, iw, content, (h, w))
            .into_iter()
            .map(|v| v > 0.0)
            .collect()
    }

    fn mask_to_runs(mask: &[bool], height: usize, width: usize) -> Vec<u64> {
        let mut runs = RunWriter::new();
        for x in 0..width {
            for y in 0..height {
                runs.push(mask[y * width + x]);
            }
        }
        runs.finish()
    }

    fn reference_runs(
        plane: &[f32],
        dims: (usize, usize),
        transform: &ImageTransform,
        at_original_size: bool,
    ) -> Vec<u64> {
        let mask = reference_mask(plane, dims, transform, at_original_size);
        mask_to_runs(
            &mask,
            transform.original_height as usize,
            transform.original_width as usize,
        )
    }

    #[test]
    fn runs_are_column_major_and_start_with_zeros() {
        // 2x3, row-major:
        // 1 0 1
        // 1 0 0
        let mask = [true, false, true, true, false, false];
        assert_eq!(mask_to_runs(&mask, 2, 3), vec![0, 2, 2, 1, 1]);
        assert_eq!(mask_to_runs(&[false; 4], 2, 2), vec![4]);
        // The same through the fast path, logits already at the original size.
        let t = ImageTransform {
            original_width: 3,
            original_height: 2,
            input_width: 4,
            input_height: 4,
            content_width: 4,
            content_height: 3,
        };
        let logits = [1.0f32, -1.0, 2.0, 0.5, 0.0, -3.0];
        assert_eq!(
            sam_mask_runs(&logits, (2, 3), &t, true),
            vec![0, 2, 2, 1, 1]
        );
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
        let logits = [1.0f32, -1.0, -5.0, -5.0];
        let mask = reference_mask(&logits, (2, 2), &t, false);
        assert_eq!(
            mask,
            vec![true, true, false, false, true, true, false, false]
        );
        // Columns 0 and 1 set in both rows: runs 0, 4, 4.
        assert_eq!(sam_mask_runs(&logits, (2, 2), &t, false), vec![0, 4, 4]);
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
        // The separable column pass gives the same f32 values, bit for bit.
        let columns = transpose(&x, 3, 2, 3);
        let mut separable = vec![0.0f32; 20];
        bilinear_columns(
            &columns,
            2,
            &linear_taps(3, 5),
            &linear_taps(2, 4),
            |c, column| {
                for (r, v) in column.enumerate() {
                    separable[r * 5 + c] = v;
                }
            },
        );
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&separable), bits(&up));
    }

    /// The arch SAM fixture: `post_process_masks` (transformers 4.46.3, torch 2.5.1) of PyTorch's
    /// own low-resolution masks, stored by scripts/gen_arch_models.py. Both paths must give
    /// exactly its runs.
    #[test]
    fn fast_and_reference_paths_equal_post_process_masks_on_the_arch_photos() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/arch/reference");
        let text = std::fs::read_to_string(dir.join("sam.json")).expect("sam.json");
        let reference: serde_json::Value = serde_json::from_str(&text).expect("json");
        let mut checked = 0;
        for case in reference["cases"].as_array().expect("cases") {
            let low = &case["low_res_masks"];
            let bytes =
                std::fs::read(dir.join(low["file"].as_str().expect("file"))).expect("lowres");
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let shape: Vec<usize> = serde_json::from_value(low["shape"].clone()).expect("shape");
            let reshaped: Vec<u32> =
                serde_json::from_value(case["reshaped_input_size"].clone()).expect("size");
            let size: Vec<u32> =
                serde_json::from_value(case["masks"][0]["size"].clone()).expect("size");
            // models/arch-sam.toml: image_size [64, 64] (SamProcessor longest_edge 64, pad 64x64).
            let input = [64u32, 64];
            let t = ImageTransform {
                original_width: size[1],
                original_height: size[0],
                input_width: input[1],
                input_height: input[0],
                content_width: reshaped[1],
                content_height: reshaped[0],
            };
            let (mh, mw) = (shape[1], shape[2]);
            for (i, want) in case["masks"].as_array().expect("masks").iter().enumerate() {
                let want: Vec<u64> = serde_json::from_value(want["runs"].clone()).expect("runs");
                let plane = &values[i * mh * mw..(i + 1) * mh * mw];
                let fast = sam_mask_runs(plane, (mh, mw), &t, false);
                assert_eq!(fast, reference_runs(plane, (mh, mw), &t, false));
                assert_eq!(fast, want, "{} box {i}", case["image"]);
                checked += 1;
            }
        }
        assert!(checked >= 10, "{checked} masks checked");
    }

    fn transforms() -> impl Strategy<Value = ImageTransform> {
        (1u32..40, 1u32..40, 1u32..60, 1u32..60).prop_flat_map(|(ih, iw, oh, ow)| {
            (1..=ih, 1..=iw).prop_map(move |(ch, cw)| ImageTransform {
                original_width: ow,
                original_height: oh,
                input_width: iw,
                input_height: ih,
                content_width: cw,
                content_height: ch,
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Random logits (with exact zeros and ties, around the threshold) and geometries, up and
        /// down in each axis: the fast path's runs equal the reference's.
        #[test]
        fn fast_mask_runs_equal_the_reference(
            (mh, mw, values) in (1usize..20, 1usize..20).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), proptest::collection::vec(
                    prop_oneof![Just(0.0f32), Just(-0.0f32), -4.0f32..4.0, -1e-6f32..1e-6],
                    h * w,
                ))
            }),
            t in transforms(),
        ) {
            prop_assert_eq!(
                sam_mask_runs(&values, (mh, mw), &t, false),
                reference_runs(&values, (mh, mw), &t, false)
            );
            // Logits already at the original size are only thresholded.
            let at = ImageTransform { original_width: mw as u32, original_height: mh as u32, ..t };
            prop_assert_eq!(
                sam_mask_runs(&values, (mh, mw), &at, true),
                reference_runs(&values, (mh, mw), &at, true)
            );
        }
    }
}
