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
//! Runtime's memory and is fed to every decoder run without a copy ([`HeldTensor`]; on CUDA,
//! with I/O binding, in device memory: `LoadedSession::run_feeding`), the mask
//! logits are read through a view, and [`sam_mask_runs`] ([`super::sam_masks`]) runs the two
//! bilinear passes separably (the same f32 expressions, in the same order, so the same bits)
//! over the content crop only, column by column, emitting COCO runs as it goes instead of
//! materialising a full-size mask and encoding it afterwards.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, Array3, ArrayD};

use super::sam_masks::sam_mask_runs;
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
                // Kept where the decoder takes it (its CUDA memory under I/O binding).
                let mut outputs = self
                    .encoder
                    .run_feeding(
                        vec![(self.pixel_values.clone(), tensor)],
                        &[&name],
                        &self.decoder,
                    )
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
