//! The inputs that the VE and VG models share: one image (repeated per query unless the model's
//! image batch is fixed to 1) and a tweet's queries, tokenised as one batch. Both stages score all
//! of a tweet's queries in one run.

use ndarray::{Array2, Array4, Axis};

use super::text::TextEncoder;
use super::{check_pairs, f32_tensor, int_tensor, require_image};
use crate::data::model::Entity;
use crate::pipeline::stages::{StageError, TweetInput};
use crate::runtime::manifest::ModelSpec;
use crate::runtime::{
    image_to_tensor, DType, ImageTransform, ModelManifest, PreprocessSpec, RuntimeError,
};

/// How to build one batch: input names and dtypes from the manifest, tokenizer, preprocessing.
pub(crate) struct QueryImageInputs {
    text: TextEncoder,
    preprocess: PreprocessSpec,
    pixel_values: String,
    /// Repeat the image per query (the image input's batch is not fixed to 1).
    repeat_image: bool,
    input_ids: (String, DType),
    attention_mask: Option<(String, DType)>,
}

/// One tweet's batch: the named input tensors, the image transform (model input ↔ original
/// pixels), the exact model-input pixels per original pixel for boxes
/// ([`PreprocessSpec::input_to_original_scale`]: OWLv2's padded square differs from the
/// transform's rounded content size) and the attention mask (for decoders that need it again).
pub(crate) struct QueryBatch {
    pub inputs: Vec<(String, crate::runtime::Input)>,
    pub transform: ImageTransform,
    pub box_scale: (f64, f64),
    pub mask: Array2<i64>,
}

impl QueryImageInputs {
    /// Reads the `pixel_values`, `input_ids` and optional `attention_mask` roles of `spec`;
    /// `what` names the model in errors (e.g. "the entailer model").
    pub fn from_manifest(
        manifest: &ModelManifest,
        spec: &ModelSpec,
        what: &str,
    ) -> Result<Self, RuntimeError> {
        let pixel = spec.input("pixel_values").ok_or_else(|| {
            manifest.invalid(
                format!("{what} has no input with role \"pixel_values\""),
                "set role = \"pixel_values\" on the image input",
            )
        })?;
        let input = |role: &str| spec.input(role).map(|t| (t.name.clone(), t.dtype));
        let input_ids = input("input_ids").ok_or_else(|| {
            manifest.invalid(
                format!("{what} has no input with role \"input_ids\""),
                "set role = \"input_ids\" on the token-id input",
            )
        })?;
        Ok(QueryImageInputs {
            text: TextEncoder::from_manifest(manifest)?,
            preprocess: manifest.require_preprocess()?.clone(),
            pixel_values: pixel.name.clone(),
            repeat_image: pixel.shape.first().and_then(|d| d.fixed()) != Some(1),
            input_ids,
            attention_mask: input("attention_mask"),
        })
    }

    /// Encodes a tweet's queries and its image; `None` when there are no queries.
    pub fn build(
        &self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        queries: &[String],
        stage: &str,
    ) -> Result<Option<QueryBatch>, StageError> {
        let tweet = input.tweet;
        check_pairs(tweet, entities.len(), queries.len())?;
        if queries.is_empty() {
            return Ok(None);
        }
        let image = require_image(input, stage)?;
        let names: Vec<&str> = entities.iter().map(|e| e.text.as_str()).collect();
        let (ids, mask) = self.text.encode_queries(&tweet.id, &names, queries)?;
        let (pixels, transform) = image_to_tensor(image, &self.preprocess);
        let pixels = batch_image(pixels, queries.len(), self.repeat_image);
        let mut inputs = vec![
            (self.pixel_values.clone(), f32_tensor(pixels)),
            (self.input_ids.0.clone(), int_tensor(ids, self.input_ids.1)),
        ];
        if let Some((name, dtype)) = &self.attention_mask {
            inputs.push((name.clone(), int_tensor(mask.clone(), *dtype)));
        }
        Ok(Some(QueryBatch {
            inputs,
            box_scale: self.preprocess.input_to_original_scale(&transform),
            transform,
            mask,
        }))
    }
}

/// The image tensor, repeated `n` times along the batch axis when asked.
pub(crate) fn batch_image(image: Array4<f32>, n: usize, repeat: bool) -> Array4<f32> {
    if !repeat || n <= 1 {
        return image;
    }
    let views: Vec<_> = (0..n).map(|_| image.view()).collect();
    ndarray::concatenate(Axis(0), &views).unwrap_or(image)
}
