//! The inputs that the VE and VG models share: images and queries, tokenised as one batch.
//!
//! **One tweet per run** (a model without an `image_index` input): the tweet's image (repeated per
//! query unless the model's image batch is fixed to 1) and all of its queries, one run.
//!
//! **Several tweets per run** (a model with `image_index`, int64 `[num_queries]`: which row of
//! `pixel_values` `[num_images, 3, H, W]` each query belongs to; `scripts/export` writes it for
//! CLIP, BLIP ITM, OWL-ViT and OWLv2). [`QueryImageInputs::run_batched`] packs consecutive tweets
//! into runs of at most `batch` images: their images stacked in tweet order, their queries
//! concatenated, each tweet's token rows padded to the run's longest with the tokenizer's pad id
//! and attention mask 0, `image_index` = the tweet's position in the run. The graph encodes each
//! image once and gathers its features per query, so a query's outputs do not depend on the other
//! tweets of its run: on CPU they are bit for bit those of a run of its tweet alone
//! (`tests/it/batching.rs` measures it on the arch fixtures). A run the model rejects (or answers
//! with the wrong shape) is re-run one tweet at a time, so one bad tweet fails alone; a tweet
//! whose inputs cannot be built (no image, a tokenizer error) fails before any run. Each tweet's
//! latency is its own encoding time plus an equal share of its run.
//!
//! Must not read model outputs beyond handing them to the stage (`entailer.rs`, `grounder.rs`).

use std::time::Instant;

use ndarray::{Array1, Array2, Array4, Axis};

use super::text::TextEncoder;
use super::{
    answers_in_order, check_pairs, f32_tensor, int_tensor, require_image, run_batch_or_each,
    EncodedItem,
};
use crate::data::model::{Entity, Tweet};
use crate::pipeline::stages::{QueryItem, StageError, Timed, TweetInput};
use crate::runtime::manifest::{ModelSpec, IMAGE_INDEX};
use crate::runtime::{
    image_to_tensor, DType, ImageTransform, Input, ModelManifest, PreprocessSpec, RuntimeError,
};

/// How to build one batch: input names and dtypes from the manifest, tokenizer, preprocessing.
pub(crate) struct QueryImageInputs {
    text: TextEncoder,
    preprocess: PreprocessSpec,
    pixel_values: String,
    /// Repeat the image per query (the image input's batch is not fixed to 1; one tweet per run).
    repeat_image: bool,
    input_ids: (String, DType),
    attention_mask: Option<(String, DType)>,
    /// The `image_index` input, when the model takes several images per run.
    image_index: Option<String>,
}

/// One tweet's batch: the named input tensors, the image transform (model input ↔ original
/// pixels), the exact model-input pixels per original pixel for boxes
/// ([`PreprocessSpec::input_to_original_scale`]: OWLv2's padded square differs from the
/// transform's rounded content size) and the attention mask (for decoders that need it again).
pub(crate) struct QueryBatch {
    pub inputs: Vec<(String, Input)>,
    pub transform: ImageTransform,
    pub box_scale: (f64, f64),
    pub mask: Array2<i64>,
}

/// One tweet's part of a run: its tweet and entities (for errors), where its queries sit in the
/// run's outputs (`start..start + n`) and how its boxes map back to its image.
pub(crate) struct RunTweet<'a> {
    pub tweet: &'a Tweet,
    pub entities: &'a [Entity],
    pub start: usize,
    pub n: usize,
    pub transform: ImageTransform,
    pub box_scale: (f64, f64),
}

/// One tweet encoded on its own: token rows padded to its longest query, its image `[1, 3, H, W]`.
struct Encoded {
    ids: Array2<i64>,
    mask: Array2<i64>,
    pixels: Array4<f32>,
    transform: ImageTransform,
    box_scale: (f64, f64),
}

/// A run's answer: per tweet of the run (in run order) its outputs or its own error; `Err` when
/// the run failed as a whole (then each tweet is re-run alone).
pub(crate) type RunAnswer<T> = Result<Vec<Result<Vec<T>, StageError>>, StageError>;

impl QueryImageInputs {
    /// Reads the `pixel_values`, `input_ids` and optional `attention_mask` and `image_index`
    /// roles of `spec`; `what` names the model in errors (e.g. "the entailer model").
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
        let attention_mask = input("attention_mask");
        // The manifest checked its dtype and shape; padding across tweets needs the mask.
        let image_index = spec.input(IMAGE_INDEX).map(|t| t.name.clone());
        if image_index.is_some() && attention_mask.is_none() {
            return Err(manifest.invalid(
                format!("{what} has an image_index input but no attention_mask"),
                "queries of several tweets are padded to one length, which only a masked model ignores: export attention_mask too, or drop image_index",
            ));
        }
        Ok(QueryImageInputs {
            text: TextEncoder::from_manifest(manifest)?,
            preprocess: manifest.require_preprocess()?.clone(),
            pixel_values: pixel.name.clone(),
            repeat_image: image_index.is_none()
                && pixel.shape.first().and_then(|d| d.fixed()) != Some(1),
            input_ids,
            attention_mask,
            image_index,
        })
    }

    /// Whether one run may hold several tweets (the model has `image_index`).
    pub fn multi_image(&self) -> bool {
        self.image_index.is_some()
    }

    /// Encodes a tweet's queries and its image; `None` when there are no queries.
    fn encode(
        &self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        queries: &[String],
        stage: &str,
    ) -> Result<Option<Encoded>, StageError> {
        let tweet = input.tweet;
        check_pairs(tweet, entities.len(), queries.len())?;
        if queries.is_empty() {
            return Ok(None);
        }
        let image = require_image(input, stage)?;
        let names: Vec<&str> = entities.iter().map(|e| e.text.as_str()).collect();
        let (ids, mask) = self.text.encode_queries(&tweet.id, &names, queries)?;
        let (pixels, transform) = image_to_tensor(image, &self.preprocess);
        Ok(Some(Encoded {
            ids,
            mask,
            pixels,
            box_scale: self.preprocess.input_to_original_scale(&transform),
            transform,
        }))
    }

    /// The input tensors of one run over `tweets` (one tweet unless the model has
    /// `image_index`) and the run's attention mask.
    fn assemble(&self, tweets: &[&Encoded]) -> (Vec<(String, Input)>, Array2<i64>) {
        let rows: usize = tweets.iter().map(|e| e.ids.nrows()).sum();
        let len = tweets.iter().map(|e| e.ids.ncols()).max().unwrap_or(1);
        let (ids, mask) = match tweets {
            [one] => (one.ids.clone(), one.mask.clone()),
            _ => {
                let mut ids = Array2::from_elem((rows, len), self.text.pad_id());
                let mut mask = Array2::zeros((rows, len));
                let mut row = 0;
                for e in tweets {
                    let (n, l) = e.ids.dim();
                    ids.slice_mut(ndarray::s![row..row + n, ..l]).assign(&e.ids);
                    mask.slice_mut(ndarray::s![row..row + n, ..l])
                        .assign(&e.mask);
                    row += n;
                }
                (ids, mask)
            }
        };
        let pixels = match (&self.image_index, tweets) {
            (None, [one]) => batch_image(one.pixels.clone(), rows, self.repeat_image),
            _ => {
                let views: Vec<_> = tweets.iter().map(|e| e.pixels.view()).collect();
                // Every tensor has the manifest's input size, so stacking cannot fail.
                ndarray::concatenate(Axis(0), &views).unwrap_or_else(|_| tweets[0].pixels.clone())
            }
        };
        let mut inputs = vec![
            (self.pixel_values.clone(), f32_tensor(pixels)),
            (self.input_ids.0.clone(), int_tensor(ids, self.input_ids.1)),
        ];
        if let Some((name, dtype)) = &self.attention_mask {
            inputs.push((name.clone(), int_tensor(mask.clone(), *dtype)));
        }
        if let Some(name) = &self.image_index {
            let index: Array1<i64> = tweets
                .iter()
                .enumerate()
                .flat_map(|(i, e)| std::iter::repeat_n(i as i64, e.ids.nrows()))
                .collect();
            inputs.push((name.clone(), Input::I64(index.into_dyn())));
        }
        (inputs, mask)
    }

    /// Encodes a tweet's queries and its image as one run; `None` when there are no queries.
    pub fn build(
        &self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        queries: &[String],
        stage: &str,
    ) -> Result<Option<QueryBatch>, StageError> {
        let Some(encoded) = self.encode(input, entities, queries, stage)? else {
            return Ok(None);
        };
        let (inputs, mask) = self.assemble(&[&encoded]);
        Ok(Some(QueryBatch {
            inputs,
            transform: encoded.transform,
            box_scale: encoded.box_scale,
            mask,
        }))
    }

    /// Runs `items` through `run` in runs of at most `batch` tweets (one per run without
    /// `image_index`), in item order; answers in item order (see the module doc). `run` gets a
    /// run's inputs and its tweets and answers per tweet.
    pub fn run_batched<T>(
        &self,
        items: &[QueryItem<'_>],
        batch: usize,
        stage: &str,
        mut run: impl FnMut(Vec<(String, Input)>, &[RunTweet<'_>]) -> RunAnswer<T>,
    ) -> Vec<Timed<Vec<T>>> {
        let mut out: Vec<Option<Timed<Vec<T>>>> = items.iter().map(|_| None).collect();
        let batch = if self.multi_image() { batch.max(1) } else { 1 };
        // Encoded a run at a time, so that at most one run's image tensors are held (a window
        // of OWL-ViT inputs at 768 px would be 7 MiB per tweet).
        let mut pending: Vec<EncodedItem<Encoded>> = Vec::with_capacity(batch);
        for (i, item) in items.iter().enumerate() {
            let t0 = Instant::now();
            let result = self.encode(&item.input, item.entities, item.queries, stage);
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            match result {
                Ok(Some(e)) => pending.push((i, e, ms)),
                Ok(None) => {
                    out[i] = Some(Timed {
                        result: Ok(Vec::new()),
                        ms,
                    })
                }
                Err(e) => out[i] = Some(Timed { result: Err(e), ms }),
            }
            if pending.len() == batch {
                self.run_packed(items, &pending, stage, &mut run, &mut out);
                pending.clear();
            }
        }
        if !pending.is_empty() {
            self.run_packed(items, &pending, stage, &mut run, &mut out);
        }
        answers_in_order(out, stage, |i| items[i].input.tweet.id.clone())
    }

    /// One run over `chunk` (encoded tweets), retried tweet by tweet when it fails as a whole
    /// ([`run_batch_or_each`]); fills `out` for each.
    fn run_packed<T>(
        &self,
        items: &[QueryItem<'_>],
        chunk: &[EncodedItem<Encoded>],
        stage: &str,
        run: &mut impl FnMut(Vec<(String, Input)>, &[RunTweet<'_>]) -> RunAnswer<T>,
        out: &mut [Option<Timed<Vec<T>>>],
    ) {
        let id = |i: usize| items[i].input.tweet.id.clone();
        run_batch_or_each(
            chunk,
            stage,
            id,
            |part| {
                let tensors: Vec<&Encoded> = part.iter().map(|(_, e, _)| e).collect();
                let (inputs, _) = self.assemble(&tensors);
                let mut start = 0;
                let tweets: Vec<RunTweet<'_>> = part
                    .iter()
                    .map(|(i, e, _)| {
                        let n = e.ids.nrows();
                        start += n;
                        RunTweet {
                            tweet: items[*i].input.tweet,
                            entities: items[*i].entities,
                            start: start - n,
                            n,
                            transform: e.transform,
                            box_scale: e.box_scale,
                        }
                    })
                    .collect();
                run(inputs, &tweets)
            },
            out,
        );
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

#[cfg(test)]
mod tests {
    //! Packing and retries of [`QueryImageInputs::run_batched`] with a stand-in for the model
    //! run (the real graphs are checked in `tests/it/batching.rs`).

    use super::*;
    use std::path::PathBuf;

    fn arch_clip() -> QueryImageInputs {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/arch-clip.toml");
        let m = ModelManifest::load(&path).unwrap();
        QueryImageInputs::from_manifest(&m, m.model("main").unwrap(), "the test model").unwrap()
    }

    fn tweet(i: usize) -> Tweet {
        Tweet {
            id: format!("t{i}"),
            ..Default::default()
        }
    }

    #[test]
    fn runs_pack_consecutive_tweets_and_a_failed_run_is_retried_tweet_by_tweet() {
        let inputs = arch_clip();
        assert!(inputs.multi_image());
        let tweets: Vec<Tweet> = (0..7).map(tweet).collect();
        // Tweet i has i % 3 + 1 queries, the longer ones first in each tweet; widths 10 + i.
        let queries: Vec<Vec<String>> = (0..7)
            .map(|i| {
                (0..i % 3 + 1)
                    .map(|j| "the city of paris at night".repeat(3 - j))
                    .collect()
            })
            .collect();
        let entities: Vec<Vec<Entity>> = queries
            .iter()
            .map(|q| q.iter().map(|_| Entity::new("x", "LOC")).collect())
            .collect();
        let images: Vec<image::RgbImage> = (0..7)
            .map(|i| image::RgbImage::from_pixel(10 + i, 8, image::Rgb([i as u8 * 30, 0, 0])))
            .collect();
        let items: Vec<QueryItem<'_>> = (0..7)
            .map(|i| QueryItem {
                input: TweetInput {
                    tweet: &tweets[i],
                    image: Some(&images[i]),
                },
                entities: &entities[i],
                queries: &queries[i],
            })
            .collect();
        let mut runs: Vec<Vec<String>> = Vec::new();
        let out = inputs.run_batched(&items, 3, "entailer", |tensors, run| {
            let ids: Vec<String> = run.iter().map(|t| t.tweet.id.clone()).collect();
            runs.push(ids.clone());
            let get = |name: &str| &tensors.iter().find(|(n, _)| n == name).unwrap().1;
            let rows: usize = run.iter().map(|t| t.n).sum();
            let Input::F32(pixels) = get("pixel_values") else {
                panic!("pixels")
            };
            assert_eq!(pixels.shape(), [run.len(), 3, 32, 32]);
            let (Input::I64(index), Input::I64(mask)) = (get("image_index"), get("attention_mask"))
            else {
                panic!("ints")
            };
            let want: Vec<i64> = run
                .iter()
                .enumerate()
                .flat_map(|(k, t)| std::iter::repeat_n(k as i64, t.n))
                .collect();
            assert_eq!(index.iter().copied().collect::<Vec<_>>(), want);
            assert_eq!(mask.shape()[0], rows);
            // Shorter rows are padded with mask 0 up to the run's longest.
            let lengths: Vec<i64> = mask.outer_iter().map(|r| r.sum()).collect();
            assert_eq!(lengths.iter().max().copied(), Some(mask.shape()[1] as i64));
            if run.len() > 1 {
                assert!(lengths.iter().any(|&l| l < mask.shape()[1] as i64));
            }
            if ids.iter().any(|id| id == "t4") {
                return Err(StageError::item("t4", None, "rejected", "test"));
            }
            Ok(run
                .iter()
                .map(|t| Ok((0..t.n).map(|q| (t.start + q) as f32).collect()))
                .collect())
        });
        assert_eq!(
            runs,
            [
                vec!["t0", "t1", "t2"],
                vec!["t3", "t4", "t5"],
                vec!["t3"],
                vec!["t4"],
                vec!["t5"],
                vec!["t6"],
            ]
        );
        let results: Vec<Result<Vec<f32>, String>> = out
            .into_iter()
            .map(|t| t.result.map_err(|e| e.to_string()))
            .collect();
        // Each tweet's rows: their positions in its run.
        assert_eq!(results[0], Ok(vec![0.0]));
        assert_eq!(results[1], Ok(vec![1.0, 2.0]));
        assert_eq!(results[2], Ok(vec![3.0, 4.0, 5.0]));
        assert_eq!(results[3], Ok(vec![0.0]));
        assert!(results[4]
            .as_ref()
            .unwrap_err()
            .starts_with("tweet t4: rejected"));
        assert_eq!(results[5], Ok(vec![0.0, 1.0, 2.0]));
        assert_eq!(results[6], Ok(vec![0.0]));
    }
}
