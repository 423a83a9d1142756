//! The real stage implementations: ONNX models through ort, described by manifests
//! (`models/*.toml`, see [`crate::runtime::manifest`]).
//!
//! | stage | type | models | per tweet | across tweets (batch entry point) |
//! | --- | --- | --- | --- | --- |
//! | MNER | [`OnnxTagger`] | token classifier (+ optional CRF) | one run over the words | length-bucketed batches |
//! | VE | [`OnnxEntailer`] | image + query → P(entailed) | one run, all queries batched | runs of `batch` images with `image_index` |
//! | VG | [`OnnxGrounder`] | image + query → box (+ score) | one run, all queries batched | single pass: as VE; OFA: per tweet |
//! | SMNER | [`OnnxSegmenter`] | SAM-style encoder + prompt decoder | encoder once, decoder per box | per tweet |
//!
//! Every constructor takes an [`OrtRuntime`](crate::runtime::OrtRuntime) (so ONNX Runtime is
//! loaded before any ort call), loads and checks the manifest and its sessions, and reports the
//! execution provider that ran ([`provider`](OnnxTagger::provider)). Failures on one tweet are
//! [`StageError`]s naming the tweet (and entity); load-time failures are
//! [`RuntimeError`]s naming the file. This module must not score or format output.

pub mod crf;
mod entailer;
mod grounder;
mod query_image;
mod sam_masks;
mod segmenter;
mod tagger;
mod text;

use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use ndarray::ArrayD;

pub use entailer::OnnxEntailer;
pub use grounder::{location_bins_to_box, GrounderHead, OnnxGrounder};
pub use sam_masks::sam_mask_runs;
pub use segmenter::OnnxSegmenter;
pub use tagger::OnnxTagger;
pub use text::TextEncoder;

use super::stages::{StageError, Timed, TweetInput};
use crate::data::model::Tweet;
use crate::runtime::{DType, Input, LoadedSession, ModelManifest, ModelSpec, RuntimeError};

/// Decodes `image_dir/<tweet image>` into RGB; a missing or undecodable file is a
/// [`StageError::Image`] naming the tweet and the path, never a panic.
pub fn load_tweet_image(image_dir: &Path, tweet: &Tweet) -> Result<RgbImage, StageError> {
    let path = image_dir.join(tweet.image_name());
    let image_error = |why: String, hint: &str| StageError::Image {
        tweet_id: tweet.id.clone(),
        path: path.display().to_string(),
        why,
        hint: hint.to_string(),
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        image_error(
            e.to_string(),
            "images come from the original Twitter-2015/2017 sets; check --images and the tweet's image name",
        )
    })?;
    let decoded = image::load_from_memory(&bytes).map_err(|e| {
        image_error(
            e.to_string(),
            "the file is not a readable PNG/JPEG; re-download it",
        )
    })?;
    // `into_rgb8` hands over the decoder's buffer when it is already RGB8 (every JPEG and RGB
    // PNG); `to_rgb8` copied it.
    Ok(decoded.into_rgb8())
}

/// The decoded image a pixel stage needs, or an error naming the tweet.
pub(crate) fn require_image<'a>(
    input: &TweetInput<'a>,
    stage: &str,
) -> Result<&'a RgbImage, StageError> {
    input.image.ok_or_else(|| StageError::Image {
        tweet_id: input.tweet.id.clone(),
        path: input.tweet.image_name(),
        why: format!("no decoded image was given to the {stage}"),
        hint: "the runner loads each tweet's image before the pixel stages; check that the image exists (see load_tweet_image)".into(),
    })
}

/// `queries` and `entities` must pair up one to one.
pub(crate) fn check_pairs(
    tweet: &Tweet,
    entities: usize,
    queries: usize,
) -> Result<(), StageError> {
    if entities != queries {
        return Err(StageError::item(
            &tweet.id,
            None,
            format!("{entities} entities but {queries} queries"),
            "the runner passes one query per entity (the expansion, or the entity text)",
        ));
    }
    Ok(())
}

/// The name of the tensor with `role` in `kind` (`input`/`output`), or a manifest error.
pub(crate) fn tensor_name(
    manifest: &ModelManifest,
    spec: &ModelSpec,
    kind: &str,
    role: &str,
) -> Result<String, RuntimeError> {
    let found = match kind {
        "input" => spec.input(role),
        _ => spec.output(role),
    };
    found.map(|t| t.name.clone()).ok_or_else(|| {
        manifest.invalid(
            format!("the {} model has no {kind} with role {role:?}", manifest.stage.name()),
            format!("add {role:?} to the {kind}s (or set `role = \"{role}\"` on the tensor that plays it)"),
        )
    })
}

/// Requires that the output named `role` is float32 (the only dtype stages read).
pub(crate) fn require_f32_output(
    manifest: &ModelManifest,
    spec: &ModelSpec,
    role: &str,
) -> Result<(), RuntimeError> {
    match spec.output(role) {
        Some(t) if t.dtype != DType::Float32 => Err(manifest.invalid(
            format!(
                "output {:?} is {}, stages read float32 outputs",
                t.name, t.dtype
            ),
            "export the model with float32 outputs (cast inside the graph)",
        )),
        _ => Ok(()),
    }
}

/// An integer tensor in the dtype the model declares (int64, or int32 for some exports).
pub(crate) fn int_tensor(values: ndarray::Array2<i64>, dtype: DType) -> Input {
    Input::int(values, dtype)
}

pub(crate) fn f32_tensor<D: ndarray::Dimension>(values: ndarray::Array<f32, D>) -> Input {
    Input::f32(values)
}

/// Runs `session` and copies out the named float32 outputs.
pub(crate) fn run_f32(
    loaded: &mut LoadedSession,
    inputs: Vec<(String, Input)>,
    outputs: &[&str],
) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
    loaded.run_f32(inputs, outputs)
}

/// A per-tweet error from a run failure.
pub(crate) fn run_failed(tweet: &Tweet, e: RuntimeError) -> StageError {
    StageError::item(
        &tweet.id,
        None,
        e.to_string(),
        "the model rejected this tweet's inputs; see the runtime error above",
    )
}

/// One item of a batched model call, encoded: its position among the call's items, its model
/// inputs, and the milliseconds encoding took.
pub(crate) type EncodedItem<E> = (usize, E, f64);

/// Runs `chunk` as one batch through `run`, which answers each of the items it is given, in
/// order. When the batch fails as a whole and holds several items, each is run alone, so that an
/// item the model rejects fails alone. Fills `out` at each item's position; an item's time is
/// its encoding time plus an equal share of the batch's time ([`Timed`]). `stage` and `id` (the
/// tweet id at a position) name a run that answered the wrong number of items.
pub(crate) fn run_batch_or_each<E, T>(
    chunk: &[EncodedItem<E>],
    stage: &str,
    id: impl Fn(usize) -> String,
    mut run: impl FnMut(&[&EncodedItem<E>]) -> Result<Vec<Result<T, StageError>>, StageError>,
    out: &mut [Option<Timed<T>>],
) {
    let t0 = Instant::now();
    let mut run_checked = |part: &[&EncodedItem<E>]| {
        let answers = run(part)?;
        if answers.len() != part.len() {
            return Err(StageError::item(
                id(part[0].0),
                None,
                format!(
                    "the {stage} answered {} of the {} tweets of a run",
                    answers.len(),
                    part.len()
                ),
                "this is a bug in riveg-bench; please report it",
            ));
        }
        Ok(answers)
    };
    let whole: Vec<&EncodedItem<E>> = chunk.iter().collect();
    let results: Vec<Result<T, StageError>> = match run_checked(&whole) {
        Ok(answers) => answers,
        Err(_) if whole.len() > 1 => whole
            .iter()
            .map(|one| match run_checked(std::slice::from_ref(one)) {
                Ok(mut answers) => answers.remove(0),
                Err(e) => Err(e),
            })
            .collect(),
        Err(e) => vec![Err(e)],
    };
    let share = t0.elapsed().as_secs_f64() * 1000.0 / chunk.len().max(1) as f64;
    for ((i, _, encode_ms), result) in chunk.iter().zip(results) {
        out[*i] = Some(Timed {
            result,
            ms: encode_ms + share,
        });
    }
}

/// The answers of a batched call in item order; an item no batch answered (a bug) gets an error
/// naming its tweet (`id`) rather than disappearing.
pub(crate) fn answers_in_order<T>(
    out: Vec<Option<Timed<T>>>,
    stage: &str,
    id: impl Fn(usize) -> String,
) -> Vec<Timed<T>> {
    out.into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.unwrap_or_else(|| Timed {
                result: Err(StageError::item(
                    id(i),
                    None,
                    format!("the {stage} lost this tweet in its batch"),
                    "this is a bug in riveg-bench; please report it",
                )),
                ms: 0.0,
            })
        })
        .collect()
}
