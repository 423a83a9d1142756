//! Executes the variant matrix over the tweets: every stage built once per (stage, kind)
//! ([`StageSet`]) and shared by the variants, outputs cached per item ([`StageCache`]), latencies
//! recorded per item. Produces each variant's predictions, timings and skipped items; it never
//! scores, formats or writes a run directory (that is `crate::run`).
//!
//! **Windows.** Tweets run in windows of a few tagger batches ([`window_len`] of `[runtime]
//! batch`). Within a window:
//! 1. the text stages run *stage-major*, variant by variant: knowledge, tagger, reformulator each
//!    get every tweet of the window that the stage cache cannot answer, in one call to their
//!    batch entry point ([`super::stages::Tagger::tag_batch`], ...). The ONNX tagger cuts them
//!    into length-bucketed batches of `batch`; the LLM stages keep the window's requests in
//!    flight together (bounded by `max_concurrency`).
//! 2. VE and then VG run *stage-major* too, variant by variant: each gets every live tweet of the
//!    window whose items the stage cache cannot answer (VE: every entity; VG: the groundable
//!    ones), in one call to its batch entry point ([`super::stages::Entailer::entail_batch`],
//!    [`super::stages::Grounder::ground_batch`]). The ONNX entailer and single-pass grounder put
//!    up to `image_batch` tweets' images and queries in one run when their model takes an
//!    `image_index` (else one run per tweet); an `mllm` entailer has asked for the window's
//!    answers beforehand (`Entailer::prepare_window`). A tweet whose image cannot be had fails
//!    before the call, alone.
//! 3. the segmenter runs *tweet-major*: every variant of a tweet back to back, so a segmenter
//!    shared by several variants reuses the tweet's image embedding; the stage cache shares
//!    everything else. Then the tweet is emitted.
//!
//! A variant that shares a stage instance with an earlier one gets the earlier one's outputs
//! from the stage cache (its in-memory layer works with `--no-cache` too), whatever the window.
//! Cache keys are per item (tweet, entity, query, image hash for pixel stages) and do not depend
//! on how items were batched, so a cache filled one tweet at a time answers a batched run.
//! Per-tweet errors stay per tweet: a failed tweet drops out of the later stages of its variant
//! only. With `--on-error fail` the error reported is that of the first failed (tweet, variant) in
//! tweet order, as when tweets ran one by one, and nothing after that tweet is emitted.
//!
//! **Images** are read once per tweet for every stage and variant, on a worker thread one window
//! ahead of the window being run (at most two windows of decoded images in memory): the file's
//! bytes give the sha256 that pixel stages' cache keys use and the decoded RGB image. A missing or
//! unreadable image is only an error when a stage needs the pixels, with the same message as
//! before prefetching.
//!
//! **Latency.** Each stage row records one sample per tweet that the stage computed for (cached
//! items are counted, not timed). A batched call's time is shared equally by the tweets it served
//! (see [`super::stages::Timed`]); with `batch = 1` every tagger, entailer and grounder run serves
//! one tweet and records its own time. The `pipeline` row records, per tweet, the sum of the
//! tweet's stage samples (the compute time spent on it; cache look-ups and image decoding on the
//! worker are not in it).
//!
//! Output order and content do not depend on the window or batch size. The caller hears of
//! progress through an [`ExecObserver`]; a killed run leaves the stage cache behind, and
//! re-running resumes from it.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::bench::{LatencyRecorder, StageTiming};
use crate::data::model::{Dataset, DatasetMeta, Entity, Side, Tweet};
use crate::geometry::{BBox, CocoRle};
use crate::results::SkippedItem;

use super::cache::{cache_key, StageCache};
use super::config::{OnError, VariantSpec};
use super::recorded::{gold_mask_size, EntityIndex};
use super::slots::{BuildError, StageSet};
use super::stages::{QueryItem, Stage, StageError, StageKind, TagItem, Timed, TweetInput};

/// What the executor needs besides the stages.
pub struct ExecSettings<'a> {
    /// The tweets to run (gold tokens and images; entities are not read).
    pub tweets: &'a [Tweet],
    /// Folder with the tweets' images, for stages that read pixels.
    pub images: Option<&'a Path>,
    pub cache: &'a StageCache,
    /// VE probability at or above which an entity is groundable.
    pub ve_threshold: f64,
    /// Calls per stage excluded from latency statistics as warm-up.
    pub warmup: usize,
    pub on_error: OnError,
    /// Tweets per tagger batch (`[runtime] batch`, at least 1); windows hold a few batches.
    pub batch: usize,
    /// Images (tweets) per VE/VG run for models with `image_index` (`[runtime] image_batch`).
    pub image_batch: usize,
    /// Tweets per window; `None`: [`window_len`]`(batch)`. Outputs never depend on it; tests set
    /// small windows to cross window edges on small data.
    pub window: Option<usize>,
}

/// Tagger batches per window: enough that the LLM stages have requests to keep in flight and
/// the tagger can bucket by length, few enough that a window's images stay small in memory.
const WINDOW_BATCHES: usize = 4;
/// The fewest tweets in a window, so that LLM requests overlap even at `batch = 1`.
const MIN_WINDOW: usize = 32;
/// The most tweets in a window (unless one batch is larger): bounds prefetched images.
const MAX_WINDOW: usize = 512;

/// Tweets per window for a tagger batch size.
pub fn window_len(batch: usize) -> usize {
    let batch = batch.max(1);
    batch
        .saturating_mul(WINDOW_BATCHES)
        .clamp(MIN_WINDOW, MAX_WINDOW)
        .max(batch)
}

/// One variant's execution: predictions and how they were made.
#[derive(Debug, Clone)]
pub struct VariantOutput {
    pub predictions: Dataset,
    /// Stage name (and `pipeline`) → latency summary with raw samples.
    pub timings: BTreeMap<String, StageTiming>,
    pub skipped: Vec<SkippedItem>,
    /// Replay look-ups that found no recorded answer and got the negative one.
    pub replay_missing: usize,
    /// `stage:manifest/role` → sha256 of the models this variant ran.
    pub model_hashes: BTreeMap<String, String>,
}

/// Hears what the executor does (progress bars, live writers). Both methods default to nothing.
pub trait ExecObserver {
    /// A tweet finished for every variant (`done` of `total`).
    fn tweet_done(&mut self, _done: usize, _total: usize) {}
    /// A variant finished all its tweets.
    fn variant_done(&mut self, _index: usize, _variant: &VariantSpec, _output: &VariantOutput) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl ExecObserver for Quiet {}

/// Why execution stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("variant {variant}: {source}")]
    Build {
        variant: String,
        stage: Stage,
        #[source]
        source: Box<BuildError>,
    },
    #[error("variant {variant}, {} stage: {source}", stage.name())]
    Stage {
        variant: String,
        stage: Stage,
        #[source]
        source: Box<StageError>,
    },
}

/// A variant's accumulated results.
struct VariantState {
    recs: Recorders,
    skipped: Vec<SkippedItem>,
    pred: Dataset,
    replay_missing: usize,
}

/// Runs every variant over every tweet; outputs are in `variants` order.
pub fn execute(
    variants: &[VariantSpec],
    stages: &mut StageSet<'_>,
    settings: &ExecSettings<'_>,
    observer: &mut dyn ExecObserver,
) -> Result<Vec<VariantOutput>, ExecError> {
    for v in variants {
        stages
            .prepare(v)
            .map_err(|(stage, source)| ExecError::Build {
                variant: v.name.clone(),
                stage,
                source: Box::new(source),
            })?;
    }
    let mut states: Vec<VariantState> = variants
        .iter()
        .map(|_| VariantState {
            recs: Recorders::new(settings.warmup),
            skipped: Vec::new(),
            pred: Dataset {
                tweets: Vec::new(),
                meta: Some(DatasetMeta::new(Side::Predictions, "riveg-bench run")),
            },
            replay_missing: 0,
        })
        .collect();
    let read_images = variants.iter().any(|v| reads_pixels(v, stages));
    let window = settings
        .window
        .unwrap_or_else(|| window_len(settings.batch))
        .max(1);
    let ranges: Vec<std::ops::Range<usize>> = (0..settings.tweets.len())
        .step_by(window)
        .map(|start| start..(start + window).min(settings.tweets.len()))
        .collect();
    let (tweets, images) = (settings.tweets, settings.images);
    let load = move |range: std::ops::Range<usize>| -> Vec<TweetImage> {
        tweets[range]
            .iter()
            .map(|t| TweetImage::load(images, t, read_images))
            .collect()
    };
    std::thread::scope(|scope| -> Result<(), ExecError> {
        // The next window's images decode on a worker while this window runs; joining it before
        // starting the one after keeps at most one window ahead.
        let spawn = |range: &std::ops::Range<usize>| {
            let range = range.clone();
            scope.spawn(move || load(range))
        };
        let mut next = ranges.first().map(spawn);
        for (w, range) in ranges.iter().enumerate() {
            let images = match next.take() {
                Some(handle) => handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                None => Vec::new(),
            };
            next = ranges.get(w + 1).map(spawn);
            run_window(
                variants,
                stages,
                settings,
                &mut states,
                range.clone(),
                images,
                observer,
            )?;
        }
        Ok(())
    })?;
    let hashes = stages.factory().model_hashes();
    let mut outputs = Vec::with_capacity(variants.len());
    for (i, (v, state)) in variants.iter().zip(states).enumerate() {
        let output = VariantOutput {
            predictions: state.pred,
            timings: state
                .recs
                .per_stage
                .iter()
                .map(|(k, r)| (k.to_string(), r.summary()))
                .filter(|(_, t)| t.count + t.cached + t.warmup_excluded > 0)
                .collect(),
            skipped: state.skipped,
            replay_missing: state.replay_missing,
            // Only the models this variant ran (keys are `stage:manifest/role`).
            model_hashes: hashes
                .iter()
                .filter(|(k, _)| {
                    let stage = k.split(':').next().unwrap_or("");
                    v.stages()
                        .iter()
                        .any(|(s, kind)| s.name() == stage && *kind == StageKind::Onnx)
                })
                .map(|(k, h)| (k.clone(), h.clone()))
                .collect(),
        };
        observer.variant_done(i, v, &output);
        outputs.push(output);
    }
    Ok(outputs)
}

/// Whether some stage of `v` reads pixels (then every tweet's image is read and decoded ahead).
fn reads_pixels(v: &VariantSpec, pool: &mut StageSet<'_>) -> bool {
    v.segmenter == StageKind::Onnx
        || pool
            .tagger(v.tagger)
            .is_some_and(|t| t.stage.needs_pixels())
        || pool
            .entailer(v.entailer)
            .is_some_and(|t| t.stage.needs_pixels())
        || pool
            .grounder(v.grounder)
            .is_some_and(|t| t.stage.needs_pixels())
}

/// One tweet of a window, as the stages see it.
struct WindowTweet {
    /// The gold tweet without its entities.
    input: Tweet,
    tokens_json: String,
    image: TweetImage,
}

/// One (tweet, variant)'s progress through the stages.
#[derive(Default)]
struct Work {
    context: Option<String>,
    entities: Vec<Entity>,
    queries: Vec<String>,
    failed: Option<Failed>,
    /// The tweet's stage samples so far (the `pipeline` row).
    ms: f64,
    /// The tweet's share of the time the entailer spent preparing the window (see
    /// `Entailer::prepare_window`), added to the entailer's sample for the tweet.
    prepared_ms: f64,
}

impl Work {
    fn live(&self) -> bool {
        self.failed.is_none()
    }
    fn fail(&mut self, stage: Stage, error: StageError) {
        if self.failed.is_none() {
            self.failed = Some(Failed { stage, error });
        }
    }
}

/// Runs every variant over the window starting at tweet `first`, then emits its tweets in order.
fn run_window(
    variants: &[VariantSpec],
    pool: &mut StageSet<'_>,
    settings: &ExecSettings<'_>,
    states: &mut [VariantState],
    range: std::ops::Range<usize>,
    images: Vec<TweetImage>,
    observer: &mut dyn ExecObserver,
) -> Result<(), ExecError> {
    let first = range.start;
    let gold_tweets = &settings.tweets[range];
    let mut images = images.into_iter();
    let items: Vec<WindowTweet> = gold_tweets
        .iter()
        .map(|gt| WindowTweet {
            input: Tweet {
                id: gt.id.clone(),
                image: gt.image.clone(),
                tokens: gt.tokens.clone(),
                ..Default::default()
            },
            tokens_json: serde_json::to_string(&gt.tokens).unwrap_or_default(),
            image: images.next().unwrap_or_else(TweetImage::not_read),
        })
        .collect();
    let recording = pool.recordings().recording.clone();
    let gold = pool.recordings().gold.clone();
    let missing_now = || {
        recording
            .as_ref()
            .map(|r| r.missing.load(Ordering::Relaxed))
            .unwrap_or(0)
    };
    let cx = Shared {
        images: settings.images,
        cache: settings.cache,
        ve_threshold: settings.ve_threshold,
        gold: &gold,
        batch: settings.batch.max(1),
        image_batch: settings.image_batch.max(1),
    };

    // 1. Text stages, stage-major over the window, variant by variant.
    let mut work: Vec<Vec<Work>> = Vec::with_capacity(variants.len());
    for (v, state) in variants.iter().zip(states.iter_mut()) {
        let before = missing_now();
        let mut w: Vec<Work> = items.iter().map(|_| Work::default()).collect();
        text_stages(v, pool, &cx, &items, &mut w, &mut state.recs);
        state.replay_missing += missing_now() - before;
        work.push(w);
    }

    // The pixel stages that answer from a slow endpoint ask for the whole window first.
    for (v, w) in variants.iter().zip(work.iter_mut()) {
        prepare_pixel_stages(v, pool, &items, w);
    }

    // 2. VE then VG, stage-major over the window, variant by variant (as the text stages).
    for ((v, state), w) in variants.iter().zip(states.iter_mut()).zip(work.iter_mut()) {
        let before = missing_now();
        entail_window(v, pool, &cx, &items, w, &mut state.recs);
        ground_window(v, pool, &cx, &items, w, &mut state.recs);
        state.replay_missing += missing_now() - before;
    }

    // 3. Segmentation, tweet-major (the variants of a tweet back to back, so they share the
    // segmenter's image embedding), then emit the tweet.
    let total = settings.tweets.len();
    for (t, item) in items.iter().enumerate() {
        for (vi, (v, state)) in variants.iter().zip(states.iter_mut()).enumerate() {
            let before = missing_now();
            let w = &mut work[vi][t];
            if w.live() {
                segment_stage(v, pool, &cx, item, w, &mut state.recs);
            }
            state.replay_missing += missing_now() - before;
            state.recs.rec("pipeline").record(w.ms);
            let entities = match w.failed.take() {
                None => std::mem::take(&mut w.entities),
                Some(f) if settings.on_error == OnError::Skip => {
                    log::warn!(
                        "variant {}: {}: skipping tweet {}: {}",
                        v.name,
                        f.stage.name(),
                        item.input.id,
                        f.error
                    );
                    state.skipped.push(SkippedItem {
                        tweet_id: item.input.id.clone(),
                        stage: f.stage,
                        error: f.error.to_string(),
                    });
                    Vec::new()
                }
                Some(f) => {
                    return Err(ExecError::Stage {
                        variant: v.name.clone(),
                        stage: f.stage,
                        source: Box::new(f.error),
                    })
                }
            };
            state.pred.tweets.push(Tweet {
                entities,
                ..item.input.clone()
            });
        }
        observer.tweet_done(first + t + 1, total);
    }
    Ok(())
}

/// Lets `v`'s entailer prepare for the window's live tweets with entities, exactly the ones it
/// will be called for (the MLLM asks for their answers concurrently); the time is shared by those
/// tweets. The grounder is not prepared: which tweets it gets depends on the entailer, and asking
/// for others would send requests that one tweet at a time never sends.
fn prepare_pixel_stages(
    v: &VariantSpec,
    pool: &mut StageSet<'_>,
    items: &[WindowTweet],
    work: &mut [Work],
) {
    let Some(ve) = pool.entailer(v.entailer) else {
        return;
    };
    let needs_pixels = ve.stage.needs_pixels();
    // Tweets whose image cannot be had are left to fail one by one, as usual.
    let (tweets, inputs): (Vec<usize>, Vec<TweetInput<'_>>) = (0..items.len())
        .filter(|&t| work[t].live() && !work[t].entities.is_empty())
        .filter_map(|t| {
            let item = &items[t];
            let image = if needs_pixels {
                Some(item.image.pixels(&item.input).ok()?)
            } else {
                None
            };
            Some((
                t,
                TweetInput {
                    tweet: &item.input,
                    image,
                },
            ))
        })
        .unzip();
    if inputs.is_empty() {
        return;
    }
    let share = ve.stage.prepare_window(&inputs) / tweets.len() as f64;
    for t in tweets {
        work[t].prepared_ms = share;
    }
}

/// What every stage of a window reads besides its tweet.
struct Shared<'a> {
    images: Option<&'a Path>,
    cache: &'a StageCache,
    ve_threshold: f64,
    gold: &'a EntityIndex,
    batch: usize,
    image_batch: usize,
}

/// A stage the executor expected to be prepared was not (a bug in prepare, reported per tweet
/// rather than a panic).
fn not_prepared(tweet: &Tweet, stage: Stage) -> StageError {
    StageError::item(
        &tweet.id,
        None,
        format!("the {} stage was not built", stage.name()),
        "this is a bug in riveg-bench; please report it",
    )
}

/// Fails every live tweet of the window on `stage` (it was not built).
fn fail_all(items: &[WindowTweet], work: &mut [Work], stage: Stage) {
    for (item, w) in items.iter().zip(work.iter_mut()) {
        if w.live() {
            w.fail(stage, not_prepared(&item.input, stage));
        }
    }
}

/// Latency recorders of one variant.
struct Recorders {
    per_stage: BTreeMap<&'static str, LatencyRecorder>,
}

impl Recorders {
    fn new(warmup: usize) -> Self {
        let mut per_stage = BTreeMap::new();
        for s in Stage::ALL {
            per_stage.insert(s.name(), LatencyRecorder::new(warmup));
        }
        per_stage.insert("pipeline", LatencyRecorder::new(warmup));
        Recorders { per_stage }
    }
    fn rec(&mut self, stage: &'static str) -> &mut LatencyRecorder {
        self.per_stage.entry(stage).or_default()
    }
}

/// Why a tweet's image cannot be had (kept as text: it becomes a [`StageError::Image`] for each
/// stage that asks, in the words the executor always used).
#[derive(Debug, Clone)]
struct ImageFailure {
    path: String,
    why: String,
    hint: String,
}

/// A tweet's image, read ahead of the stages: decoded pixels and the hash of the file's bytes.
struct TweetImage {
    /// `None` when no stage of the run reads pixels (nothing was read).
    pixels: Option<Result<image::RgbImage, ImageFailure>>,
    /// What pixel stages' cache keys use for the image (see [`TweetImage::key`]).
    key: OnceCell<String>,
}

impl TweetImage {
    fn not_read() -> Self {
        TweetImage {
            pixels: None,
            key: OnceCell::new(),
        }
    }

    /// Reads `tweet`'s image file once (when `read`): its sha256 and its RGB pixels.
    fn load(dir: Option<&Path>, tweet: &Tweet, read: bool) -> Self {
        if !read {
            return TweetImage::not_read();
        }
        let name = tweet.image_name();
        let Some(dir) = dir else {
            return TweetImage {
                pixels: Some(Err(ImageFailure {
                    path: name,
                    why: "the suite has no image folder".into(),
                    hint: "set [data] images = \"path/to/images\" (Twitter-2015/2017 images, <id>.jpg)".into(),
                })),
                key: OnceCell::from(NO_IMAGE_FOLDER.to_string()),
            };
        };
        let path = dir.join(&name);
        let failure = |why: String| ImageFailure {
            path: path.display().to_string(),
            why,
            hint: "check [data] images; every tweet's image must be <image folder>/<id>.jpg".into(),
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                return TweetImage {
                    // `image::open` reported a missing file with the io error's own words.
                    pixels: Some(Err(failure(e.to_string()))),
                    key: OnceCell::from(format!("unreadable: {e}")),
                };
            }
        };
        let key = super::cache::sha256_hex(&bytes);
        // As `image::open`: the format the extension names, else the one the bytes show.
        let mut reader = image::ImageReader::new(Cursor::new(bytes));
        match image::ImageFormat::from_path(&path) {
            Ok(format) => reader.set_format(format),
            Err(_) => {
                reader = match reader.with_guessed_format() {
                    Ok(r) => r,
                    Err(e) => {
                        return TweetImage {
                            pixels: Some(Err(failure(e.to_string()))),
                            key: OnceCell::from(key),
                        }
                    }
                }
            }
        }
        let pixels = reader
            .decode()
            .map(|img| img.into_rgb8())
            .map_err(|e| failure(e.to_string()));
        TweetImage {
            pixels: Some(pixels),
            key: OnceCell::from(key),
        }
    }

    /// The decoded image, or the tweet's image error.
    fn pixels(&self, tweet: &Tweet) -> Result<&image::RgbImage, StageError> {
        match &self.pixels {
            Some(Ok(img)) => Ok(img),
            Some(Err(f)) => Err(StageError::Image {
                tweet_id: tweet.id.clone(),
                path: f.path.clone(),
                why: f.why.clone(),
                hint: f.hint.clone(),
            }),
            None => Err(StageError::item(
                &tweet.id,
                None,
                "a stage asked for pixels the executor did not read",
                "this is a bug in riveg-bench (reads_pixels); please report it",
            )),
        }
    }

    /// What a stage sees of the tweet: the decoded image when it reads pixels, else none.
    fn input<'a>(
        &'a self,
        tweet: &'a Tweet,
        needs_pixels: bool,
    ) -> Result<TweetInput<'a>, StageError> {
        let image = if needs_pixels {
            Some(self.pixels(tweet)?)
        } else {
            None
        };
        Ok(TweetInput { tweet, image })
    }

    /// [`TweetImage::key`] for a stage that reads pixels; empty for one that does not (its
    /// outputs do not depend on the image).
    fn key_for(&self, needs_pixels: bool, dir: Option<&Path>, tweet: &Tweet) -> &str {
        if needs_pixels {
            self.key(dir, tweet)
        } else {
            ""
        }
    }

    /// What keys a pixel stage's cache entries on the image: the hash of its bytes, so swapping
    /// or editing an image (or pointing `[data] images` elsewhere) recomputes instead of
    /// returning old outputs. A missing image gets a marker that never matches a real one (the
    /// stage then fails on it with the usual error). Computed here only when nothing was read
    /// ahead.
    fn key(&self, dir: Option<&Path>, tweet: &Tweet) -> &str {
        self.key.get_or_init(|| {
            let Some(dir) = dir else {
                return NO_IMAGE_FOLDER.to_string();
            };
            match std::fs::read(dir.join(tweet.image_name())) {
                Ok(bytes) => super::cache::sha256_hex(&bytes),
                Err(e) => format!("unreadable: {e}"),
            }
        })
    }
}

/// The image key of tweets in a suite without an image folder.
const NO_IMAGE_FOLDER: &str = "no-image-folder";

/// A stage that failed on one tweet.
struct Failed {
    stage: Stage,
    error: StageError,
}

/// One tweet's items for a cached stage: their cache keys (`None`: the stage is not cached) and
/// how many there are.
struct Items {
    keys: Option<Vec<String>>,
    n: usize,
}

/// Runs the cached part of a stage over the live tweets of `work`: looks each item up, calls
/// `compute` once with every tweet that has misses (`(tweet index, miss indices)`), records each
/// tweet's share of the time, stores the answers. Returns, per tweet, its outputs in item order
/// (`None` for tweets that were not live or failed here).
fn cached_window<T, F>(
    cache: &StageCache,
    stage: Stage,
    tweet_ids: &[&str],
    items: Vec<Option<Items>>,
    work: &mut [Work],
    rec: &mut LatencyRecorder,
    compute: F,
) -> Vec<Option<Vec<T>>>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone,
    F: FnOnce(&[(usize, Vec<usize>)]) -> Vec<Timed<Vec<T>>>,
{
    let mut outs: Vec<Option<Vec<Option<T>>>> = Vec::with_capacity(work.len());
    let mut requests: Vec<(usize, Vec<usize>)> = Vec::new();
    for (t, (w, it)) in work.iter().zip(&items).enumerate() {
        let Some(it) = it.as_ref().filter(|_| w.live()) else {
            outs.push(None);
            continue;
        };
        let mut out: Vec<Option<T>> = vec![None; it.n];
        let mut misses = Vec::new();
        match &it.keys {
            Some(keys) => {
                for (i, k) in keys.iter().enumerate() {
                    match cache.get::<T>(stage, k) {
                        Some(v) => {
                            out[i] = Some(v);
                            rec.record_cached();
                        }
                        None => misses.push(i),
                    }
                }
            }
            None => misses = (0..it.n).collect(),
        }
        if !misses.is_empty() {
            requests.push((t, misses));
        }
        outs.push(Some(out));
    }
    if !requests.is_empty() {
        let mut answers = compute(&requests).into_iter();
        for (t, misses) in &requests {
            let Some(answer) = answers.next() else {
                work[*t].fail(
                    stage,
                    StageError::item(
                        tweet_ids[*t],
                        None,
                        format!("{} returned no answer for this tweet", stage.name()),
                        "a batch entry point must answer every tweet it is given",
                    ),
                );
                continue;
            };
            rec.record(answer.ms);
            work[*t].ms += answer.ms;
            let fresh = match answer.result {
                Ok(v) if v.len() == misses.len() => v,
                Ok(v) => {
                    work[*t].fail(
                        stage,
                        StageError::item(
                            tweet_ids[*t],
                            None,
                            format!(
                                "{} returned {} outputs for {} inputs",
                                stage.name(),
                                v.len(),
                                misses.len()
                            ),
                            "a stage must answer every entity it is given, in order",
                        ),
                    );
                    continue;
                }
                Err(error) => {
                    work[*t].fail(stage, error);
                    continue;
                }
            };
            let keys = items[*t].as_ref().and_then(|it| it.keys.as_ref());
            let Some(out) = outs[*t].as_mut() else {
                continue;
            };
            for (i, v) in misses.iter().zip(fresh) {
                if let Some(keys) = keys {
                    if let Err(e) = cache.put(stage, &keys[*i], &v) {
                        log::warn!(
                            "stage cache write failed ({e}); continuing without caching this item"
                        );
                    }
                }
                out[*i] = Some(v);
            }
        }
    }
    outs.into_iter()
        .zip(work.iter())
        .map(|(out, w)| {
            // A tweet that failed here has holes; `collect` turns them into `None`.
            out.filter(|_| w.live())
                .and_then(|o| o.into_iter().collect::<Option<Vec<T>>>())
        })
        .collect()
}

/// Knowledge, tagger and reformulator of `v` over the window, each stage in one batch call.
fn text_stages(
    v: &VariantSpec,
    pool: &mut StageSet<'_>,
    cx: &Shared<'_>,
    items: &[WindowTweet],
    work: &mut [Work],
    recs: &mut Recorders,
) {
    let ids: Vec<&str> = items.iter().map(|i| i.input.id.as_str()).collect();

    // 0. Auxiliary knowledge for the tagger (cached per tweet); off and replay: none.
    if v.knowledge() == StageKind::Llm {
        match pool.knowledge(StageKind::Llm) {
            None => fail_all(items, work, Stage::Knowledge),
            Some(k) => {
                let keys = items
                    .iter()
                    .map(|it| {
                        Some(Items {
                            keys: k.fingerprint.map(|fp| {
                                vec![cache_key(&["knowledge", fp, &it.input.id, &it.tokens_json])]
                            }),
                            n: 1,
                        })
                    })
                    .collect();
                let stage = k.stage;
                let contexts = cached_window(
                    cx.cache,
                    Stage::Knowledge,
                    &ids,
                    keys,
                    work,
                    recs.rec("knowledge"),
                    |reqs| {
                        let tweets: Vec<&Tweet> =
                            reqs.iter().map(|(t, _)| &items[*t].input).collect();
                        stage
                            .context_batch(&tweets)
                            .into_iter()
                            .map(|a| Timed {
                                result: a.result.map(|c| vec![c]),
                                ms: a.ms,
                            })
                            .collect()
                    },
                );
                for (w, c) in work.iter_mut().zip(contexts) {
                    w.context = c.and_then(|mut c| c.pop());
                }
            }
        }
    }

    // 1. MNER (cached per tweet, and per context when there is one), batched across tweets.
    match pool.tagger(v.tagger) {
        None => fail_all(items, work, Stage::Tagger),
        Some(tagger) => {
            let keys = items
                .iter()
                .zip(work.iter())
                .map(|(it, w)| {
                    Some(Items {
                        keys: tagger.fingerprint.map(|fp| match &w.context {
                            None => vec![cache_key(&["tagger", fp, &it.input.id, &it.tokens_json])],
                            Some(c) => vec![cache_key(&[
                                "tagger",
                                fp,
                                &it.input.id,
                                &it.tokens_json,
                                "context",
                                c,
                            ])],
                        }),
                        n: 1,
                    })
                })
                .collect();
            let contexts: Vec<Option<String>> = work.iter().map(|w| w.context.clone()).collect();
            let stage = tagger.stage;
            // Text taggers never make the runner use the image (the MLLM tagger reads it).
            let pixels = stage.needs_pixels();
            let batch = cx.batch;
            let tagged = cached_window(
                cx.cache,
                Stage::Tagger,
                &ids,
                keys,
                work,
                recs.rec("tagger"),
                |reqs| {
                    let answers = call_ready(
                        reqs.len(),
                        |slot| {
                            let t = reqs[slot].0;
                            let it = &items[t];
                            Ok(TagItem {
                                input: it.image.input(&it.input, pixels)?,
                                context: contexts[t].as_deref(),
                            })
                        },
                        |ready| stage.tag_batch(ready, batch),
                    );
                    let answers = answers.into_iter().map(|a| {
                        a.map(|a| Timed {
                            result: a.result.map(|e| vec![e]),
                            ms: a.ms,
                        })
                    });
                    // A tagger that answered too few items leaves holes: cached_window fails
                    // those tweets, naming the stage.
                    answers.map_while(|a| a).collect()
                },
            );
            for (w, e) in work.iter_mut().zip(tagged) {
                if let Some(mut e) = e {
                    w.entities = e.pop().unwrap_or_default();
                }
            }
        }
    }

    // 2. Reformulation (per entity); off: the bare entity text is the query.
    match pool.reformulator(v.reformulator) {
        None => {
            for w in work.iter_mut().filter(|w| w.live()) {
                w.queries = w.entities.iter().map(|e| e.text.clone()).collect();
            }
        }
        Some(r) => {
            let keys = items
                .iter()
                .zip(work.iter())
                .map(|(it, w)| {
                    Some(Items {
                        keys: r.fingerprint.map(|fp| {
                            w.entities
                                .iter()
                                .map(|e| {
                                    cache_key(&[
                                        "reformulator",
                                        fp,
                                        &it.input.id,
                                        &it.tokens_json,
                                        &e.text,
                                        &e.entity_type,
                                    ])
                                })
                                .collect()
                        }),
                        n: w.entities.len(),
                    })
                })
                .collect();
            let entities: Vec<Vec<Entity>> = work.iter().map(|w| w.entities.clone()).collect();
            let stage = r.stage;
            let queries = cached_window(
                cx.cache,
                Stage::Reformulator,
                &ids,
                keys,
                work,
                recs.rec("reformulator"),
                |reqs| {
                    let batch: Vec<(&Tweet, Vec<Entity>)> = reqs
                        .iter()
                        .map(|(t, idx)| {
                            (
                                &items[*t].input,
                                idx.iter().map(|&i| entities[*t][i].clone()).collect(),
                            )
                        })
                        .collect();
                    stage.reformulate_batch(&batch)
                },
            );
            for (w, q) in work.iter_mut().zip(queries) {
                if let Some(q) = q {
                    for (e, q) in w.entities.iter_mut().zip(&q) {
                        e.expansion = Some(q.clone());
                    }
                    w.queries = q;
                }
            }
        }
    }
}

/// One item per call of a per-tweet stage (the segmenter), timed.
fn one<T>(f: impl FnOnce() -> Result<Vec<T>, StageError>) -> Vec<Timed<Vec<T>>> {
    vec![Timed::call(f)]
}

/// The cache keys of VE / VG items, one per entity index in `which`: the entity, its query and
/// the image key (empty for stages that do not read pixels).
fn query_keys(
    stage: &str,
    fingerprint: &str,
    tweet: &Tweet,
    image_key: &str,
    entities: &[Entity],
    queries: &[String],
    which: &[usize],
) -> Vec<String> {
    which
        .iter()
        .map(|&i| {
            let e = &entities[i];
            cache_key(&[
                stage,
                fingerprint,
                &tweet.id,
                image_key,
                &e.text,
                &e.entity_type,
                &queries[i],
            ])
        })
        .collect()
}

/// The entities and queries of the cache misses `misses` (positions in `which`, which holds
/// entity indices).
fn query_items(
    entities: &[Entity],
    queries: &[String],
    which: &[usize],
    misses: &[usize],
) -> (Vec<Entity>, Vec<String>) {
    misses
        .iter()
        .map(|&j| (entities[which[j]].clone(), queries[which[j]].clone()))
        .unzip()
}

/// A VE or VG stage over a window, as [`cached_window`] sees it.
struct QueryStage<'s> {
    stage: Stage,
    fingerprint: Option<&'s str>,
    needs_pixels: bool,
}

/// Calls a batch entry point with the items that can be built, in order: item `slot` of `n` is
/// `build(slot)`, and one that fails (its image cannot be had) gets that error, untimed, without
/// reaching the stage. Answers per slot; `None` where the stage answered too few items.
fn call_ready<I, T>(
    n: usize,
    mut build: impl FnMut(usize) -> Result<I, StageError>,
    call: impl FnOnce(&[I]) -> Vec<Timed<T>>,
) -> Vec<Option<Timed<T>>> {
    let mut answers: Vec<Option<Timed<T>>> = (0..n).map(|_| None).collect();
    let mut ready = Vec::with_capacity(n);
    let mut slots = Vec::with_capacity(n);
    for (slot, answer) in answers.iter_mut().enumerate() {
        match build(slot) {
            Ok(item) => {
                ready.push(item);
                slots.push(slot);
            }
            Err(e) => {
                *answer = Some(Timed {
                    result: Err(e),
                    ms: 0.0,
                })
            }
        }
    }
    if !ready.is_empty() {
        for (slot, a) in slots.into_iter().zip(call(&ready)) {
            answers[slot] = Some(a);
        }
    }
    answers
}

/// Runs a VE / VG stage over the live tweets of a window: per tweet the entities `which[t]`
/// (entity indices) with their queries, looked up in the cache, the misses of every tweet given to
/// `call` (the stage's batch entry point) at once. A tweet whose image cannot be had fails alone
/// before the call; `extra_ms[t]` (the tweet's share of the stage's window preparation) is added
/// to its sample. Returns per tweet its outputs in `which` order (`None`: not live, or failed).
#[allow(clippy::too_many_arguments)]
fn query_window<T, F>(
    cx: &Shared<'_>,
    items: &[WindowTweet],
    work: &mut [Work],
    rec: &mut LatencyRecorder,
    qs: QueryStage<'_>,
    (entities, queries): (&[Vec<Entity>], &[Vec<String>]),
    which: &[Vec<usize>],
    extra_ms: &[f64],
    call: F,
) -> Vec<Option<Vec<T>>>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone,
    F: FnOnce(&[QueryItem<'_>]) -> Vec<Timed<Vec<T>>>,
{
    let ids: Vec<&str> = items.iter().map(|i| i.input.id.as_str()).collect();
    let name = qs.stage.name();
    let keys = items
        .iter()
        .zip(work.iter())
        .enumerate()
        .map(|(t, (it, w))| {
            // Keys only for live tweets: a failed one is never looked up (nor its image read).
            w.live().then(|| Items {
                keys: qs.fingerprint.map(|fp| {
                    let img = it.image.key_for(qs.needs_pixels, cx.images, &it.input);
                    query_keys(
                        name,
                        fp,
                        &it.input,
                        img,
                        &entities[t],
                        &queries[t],
                        &which[t],
                    )
                }),
                n: which[t].len(),
            })
        })
        .collect();
    cached_window(cx.cache, qs.stage, &ids, keys, work, rec, |reqs| {
        let subs: Vec<(Vec<Entity>, Vec<String>)> = reqs
            .iter()
            .map(|(t, misses)| query_items(&entities[*t], &queries[*t], &which[*t], misses))
            .collect();
        let mut answers = call_ready(
            reqs.len(),
            |slot| {
                let it = &items[reqs[slot].0];
                let (sub_e, sub_q) = &subs[slot];
                Ok(QueryItem {
                    input: it.image.input(&it.input, qs.needs_pixels)?,
                    entities: sub_e,
                    queries: sub_q,
                })
            },
            call,
        );
        for ((t, _), a) in reqs.iter().zip(answers.iter_mut()) {
            if let Some(a) = a {
                a.ms += extra_ms[*t];
            }
        }
        // A stage that answered too few items leaves holes: cached_window fails those tweets,
        // naming the stage.
        answers.into_iter().map_while(|a| a).collect()
    })
}

/// Visual entailment of `v` over the window (one call to the batch entry point for the misses of
/// every live tweet); off: every entity goes to grounding. Sets each entity's `groundable` (and
/// `score`).
fn entail_window(
    v: &VariantSpec,
    pool: &mut StageSet<'_>,
    cx: &Shared<'_>,
    items: &[WindowTweet],
    work: &mut [Work],
    recs: &mut Recorders,
) {
    let mut entities: Vec<Vec<Entity>> = work
        .iter_mut()
        .map(|w| std::mem::take(&mut w.entities))
        .collect();
    let probs: Vec<Option<Vec<f32>>> = match pool.entailer(v.entailer) {
        None => entities
            .iter()
            .zip(work.iter())
            .map(|(e, w)| w.live().then(|| vec![1.0; e.len()]))
            .collect(),
        Some(ve) => {
            let queries: Vec<Vec<String>> = work.iter().map(|w| w.queries.clone()).collect();
            let which: Vec<Vec<usize>> = entities.iter().map(|e| (0..e.len()).collect()).collect();
            let extra: Vec<f64> = work.iter().map(|w| w.prepared_ms).collect();
            let stage = ve.stage;
            let qs = QueryStage {
                stage: Stage::Entailer,
                fingerprint: ve.fingerprint,
                needs_pixels: stage.needs_pixels(),
            };
            let batch = cx.image_batch;
            query_window(
                cx,
                items,
                work,
                recs.rec("entailer"),
                qs,
                (&entities, &queries),
                &which,
                &extra,
                |batch_items| stage.entail_batch(batch_items, batch),
            )
        }
    };
    for ((w, mut ents), probs) in work.iter_mut().zip(entities.drain(..)).zip(probs) {
        if let Some(probs) = probs {
            for (e, p) in ents.iter_mut().zip(&probs) {
                e.groundable = f64::from(*p) >= cx.ve_threshold;
                if v.entailer != StageKind::Off {
                    e.score = Some(f64::from(*p));
                }
            }
        }
        w.entities = ents;
    }
}

/// Visual grounding of `v`'s groundable entities over the window (one call to the batch entry
/// point); off: no boxes.
fn ground_window(
    v: &VariantSpec,
    pool: &mut StageSet<'_>,
    cx: &Shared<'_>,
    items: &[WindowTweet],
    work: &mut [Work],
    recs: &mut Recorders,
) {
    let Some(vg) = pool.grounder(v.grounder) else {
        return;
    };
    let mut entities: Vec<Vec<Entity>> = work
        .iter_mut()
        .map(|w| std::mem::take(&mut w.entities))
        .collect();
    let queries: Vec<Vec<String>> = work.iter().map(|w| w.queries.clone()).collect();
    let which: Vec<Vec<usize>> = entities
        .iter()
        .map(|e| (0..e.len()).filter(|&i| e[i].groundable).collect())
        .collect();
    let extra = vec![0.0; items.len()];
    let stage = vg.stage;
    let qs = QueryStage {
        stage: Stage::Grounder,
        fingerprint: vg.fingerprint,
        needs_pixels: stage.needs_pixels(),
    };
    let batch = cx.image_batch;
    let boxes = query_window(
        cx,
        items,
        work,
        recs.rec("grounder"),
        qs,
        (&entities, &queries),
        &which,
        &extra,
        |batch_items| stage.ground_batch(batch_items, batch),
    );
    for (t, boxes) in boxes.into_iter().enumerate() {
        if let Some(boxes) = boxes {
            for (&i, g) in which[t].iter().zip(boxes) {
                entities[t][i].boxes = vec![g.bbox];
            }
        }
    }
    for (w, ents) in work.iter_mut().zip(entities) {
        w.entities = ents;
    }
}

/// Segmentation of every box of `v` on one tweet (one call: the segmenter encodes the image once
/// and decodes every box against it).
fn segment_stage(
    v: &VariantSpec,
    pool: &mut StageSet<'_>,
    cx: &Shared<'_>,
    item: &WindowTweet,
    w: &mut Work,
    recs: &mut Recorders,
) {
    let tweet = &item.input;
    let ids = [tweet.id.as_str()];
    let image = &item.image;
    let mut entities = std::mem::take(&mut w.entities);

    let boxed: Vec<usize> = (0..entities.len())
        .filter(|&i| !entities[i].boxes.is_empty())
        .collect();
    match v.segmenter {
        StageKind::Box => {
            let t0 = Instant::now();
            let size = gold_mask_size(cx.gold, &tweet.id).or_else(|| {
                if let Some(Ok(img)) = &image.pixels {
                    return Some([img.height(), img.width()]);
                }
                let dir = cx.images?;
                image::image_dimensions(dir.join(tweet.image_name()))
                    .ok()
                    .map(|(w, h)| [h, w])
            });
            if let Some([h, w]) = size {
                for &i in &boxed {
                    let b = entities[i].boxes[0];
                    entities[i].masks = vec![box_mask(&b, h, w)];
                }
            }
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            recs.rec("segmenter").record(ms);
            w.ms += ms;
        }
        StageKind::Onnx => match pool.segmenter(StageKind::Onnx) {
            None => {
                w.fail(Stage::Segmenter, not_prepared(tweet, Stage::Segmenter));
                return;
            }
            Some(seg) => {
                let keys = seg.fingerprint.map(|fp| {
                    boxed
                        .iter()
                        .map(|&i| {
                            let b =
                                serde_json::to_string(&entities[i].boxes[0]).unwrap_or_default();
                            cache_key(&[
                                "segmenter",
                                fp,
                                &tweet.id,
                                image.key(cx.images, tweet),
                                &b,
                            ])
                        })
                        .collect()
                });
                let stage = seg.stage;
                let n = boxed.len();
                let masks: Option<Vec<CocoRle>> = cached_window(
                    cx.cache,
                    Stage::Segmenter,
                    &ids,
                    vec![Some(Items { keys, n })],
                    std::slice::from_mut(w),
                    recs.rec("segmenter"),
                    |reqs| {
                        let idx = &reqs[0].1;
                        one(|| {
                            let sub: Vec<BBox> =
                                idx.iter().map(|&j| entities[boxed[j]].boxes[0]).collect();
                            stage.segment(&image.input(tweet, true)?, &sub)
                        })
                    },
                )
                .pop()
                .flatten();
                let Some(masks) = masks else { return };
                for (&i, m) in boxed.iter().zip(masks) {
                    entities[i].masks = vec![m];
                }
            }
        },
        _ => {}
    }
    w.entities = entities;
}

/// The filled box as a mask ("no segmentation" ablation).
pub fn box_mask(b: &BBox, h: u32, w: u32) -> CocoRle {
    match crate::geometry::rle::Rle::from_bbox(b, h, w) {
        Ok(rle) => rle.to_coco(),
        // Boxes are validated upstream; an unrepresentable one is an empty mask.
        Err(_) => CocoRle {
            size: [h, w],
            counts: crate::geometry::RleCounts::Runs(vec![u64::from(h) * u64::from(w)]),
        },
    }
}

#[cfg(test)]
mod tests {
    //! The executor with test stages (text stages that record the batches they get, pixel
    //! stages that read the real decoded PNGs): outputs independent of batch and window sizes,
    //! images decoded once per tweet for every stage and variant, per-tweet errors.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::data::model::Dataset;
    use crate::pipeline::config::ReplayMissing;
    use crate::pipeline::slots::{AnyStage, BackendFactory, Recordings};
    use crate::pipeline::stages::{Entailer, Grounder, Grounding, QueryItem, Reformulator, Tagger};

    /// What the test stages saw.
    #[derive(Default)]
    struct Seen {
        /// Items per `tag_batch` / `reformulate_batch` call.
        tag_batches: Vec<usize>,
        reformulate_batches: Vec<usize>,
        /// (tweet, address of the decoded pixels) per entailer and grounder call.
        pixels: Vec<(String, usize)>,
        /// (items, batch) per `entail_batch` / `ground_batch` call.
        entail_batches: Vec<(usize, usize)>,
        ground_batches: Vec<(usize, usize)>,
        /// Tweets the entailer / grounder fail (set by the test before the run).
        ve_fail: Vec<String>,
        vg_fail: Vec<String>,
    }

    /// The time each test `entail_batch` / `ground_batch` call says it took, shared by its items.
    const BATCH_CALL_MS: f64 = 60.0;

    /// The answers of a test batch entry point: `one` per item unless the tweet is in `fail`,
    /// the call's [`BATCH_CALL_MS`] shared equally.
    fn batch_answers<T>(
        items: &[QueryItem<'_>],
        fail: &[String],
        what: &str,
        mut one: impl FnMut(&QueryItem<'_>) -> Result<Vec<T>, StageError>,
    ) -> Vec<Timed<Vec<T>>> {
        let results = items
            .iter()
            .map(|i| {
                let id = &i.input.tweet.id;
                if fail.contains(id) {
                    Err(StageError::item(
                        id,
                        None,
                        format!("{what} failure"),
                        "test",
                    ))
                } else {
                    one(i)
                }
            })
            .collect();
        Timed::shared(results, BATCH_CALL_MS)
    }

    /// Capitalised tokens are PER entities; a token `FAIL` fails the tweet.
    struct CapsTagger(Arc<Mutex<Seen>>);
    impl Tagger for CapsTagger {
        fn kind(&self) -> StageKind {
            StageKind::Onnx
        }
        fn tag(&mut self, tweet: &Tweet) -> Result<Vec<Entity>, StageError> {
            let words = tweet.tokens.clone().unwrap_or_default();
            if words.iter().any(|w| w == "FAIL") {
                return Err(StageError::item(&tweet.id, None, "tagger failure", "test"));
            }
            Ok(words
                .iter()
                .enumerate()
                .filter(|(_, w)| w.chars().next().is_some_and(char::is_uppercase))
                .map(|(i, w)| Entity {
                    text: w.clone(),
                    entity_type: "PER".into(),
                    start: Some(i),
                    end: Some(i + 1),
                    ..Default::default()
                })
                .collect())
        }
        fn tag_batch(&mut self, items: &[TagItem<'_>], _batch: usize) -> Vec<Timed<Vec<Entity>>> {
            self.0.lock().unwrap().tag_batches.push(items.len());
            items
                .iter()
                .map(|i| Timed::call(|| self.tag(i.input.tweet)))
                .collect()
        }
    }

    struct UpperReformulator(Arc<Mutex<Seen>>);
    impl Reformulator for UpperReformulator {
        fn kind(&self) -> StageKind {
            StageKind::Llm
        }
        fn reformulate(
            &mut self,
            tweet: &Tweet,
            entities: &[Entity],
        ) -> Result<Vec<String>, StageError> {
            Ok(entities
                .iter()
                .map(|e| format!("{}-{}", e.text.to_uppercase(), tweet.id))
                .collect())
        }
        fn reformulate_batch(
            &mut self,
            items: &[(&Tweet, Vec<Entity>)],
        ) -> Vec<Timed<Vec<String>>> {
            self.0.lock().unwrap().reformulate_batches.push(items.len());
            items
                .iter()
                .map(|(t, e)| Timed::call(|| self.reformulate(t, e)))
                .collect()
        }
    }

    /// Probability: the image's mean red level (0..1).
    struct RedEntailer(Arc<Mutex<Seen>>);
    impl Entailer for RedEntailer {
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
            _queries: &[String],
        ) -> Result<Vec<f32>, StageError> {
            let img = input.image.expect("pixels");
            self.0
                .lock()
                .unwrap()
                .pixels
                .push((input.tweet.id.clone(), img.as_ptr() as usize));
            let red = img.pixels().map(|p| f32::from(p[0])).sum::<f32>()
                / (img.width() * img.height()) as f32
                / 255.0;
            Ok(entities.iter().map(|_| red).collect())
        }
        fn entail_batch(&mut self, items: &[QueryItem<'_>], batch: usize) -> Vec<Timed<Vec<f32>>> {
            let fail = {
                let mut seen = self.0.lock().unwrap();
                seen.entail_batches.push((items.len(), batch));
                seen.ve_fail.clone()
            };
            batch_answers(items, &fail, "entailer", |i| {
                self.entail(&i.input, i.entities, i.queries)
            })
        }
    }

    /// The whole image as the box.
    struct WholeGrounder(Arc<Mutex<Seen>>);
    impl Grounder for WholeGrounder {
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
            _queries: &[String],
        ) -> Result<Vec<Grounding>, StageError> {
            let img = input.image.expect("pixels");
            self.0
                .lock()
                .unwrap()
                .pixels
                .push((input.tweet.id.clone(), img.as_ptr() as usize));
            let b = BBox::new(0.0, 0.0, f64::from(img.width()), f64::from(img.height()));
            Ok(entities
                .iter()
                .map(|_| Grounding {
                    bbox: b,
                    score: 1.0,
                })
                .collect())
        }
        fn ground_batch(
            &mut self,
            items: &[QueryItem<'_>],
            batch: usize,
        ) -> Vec<Timed<Vec<Grounding>>> {
            let fail = {
                let mut seen = self.0.lock().unwrap();
                seen.ground_batches.push((items.len(), batch));
                seen.vg_fail.clone()
            };
            batch_answers(items, &fail, "grounder", |i| {
                self.ground(&i.input, i.entities, i.queries)
            })
        }
    }

    struct TestBackends(Arc<Mutex<Seen>>);
    impl BackendFactory for TestBackends {
        fn build(
            &mut self,
            stage: Stage,
            kind: StageKind,
        ) -> Result<(AnyStage, String), BuildError> {
            let seen = self.0.clone();
            let built = match stage {
                Stage::Tagger => AnyStage::Tagger(Box::new(CapsTagger(seen))),
                Stage::Reformulator => AnyStage::Reformulator(Box::new(UpperReformulator(seen))),
                Stage::Entailer => AnyStage::Entailer(Box::new(RedEntailer(seen))),
                Stage::Grounder => AnyStage::Grounder(Box::new(WholeGrounder(seen))),
                _ => {
                    return Err(BuildError::Unsupported {
                        stage,
                        kind,
                        hint: "test".into(),
                    })
                }
            };
            Ok((built, format!("test-{}", stage.name())))
        }
        fn execution_provider(&self) -> Option<String> {
            None
        }
        fn model_hashes(&self) -> BTreeMap<String, String> {
            BTreeMap::new()
        }
    }

    fn variant(name: &str, reformulator: StageKind, segmenter: StageKind) -> VariantSpec {
        VariantSpec {
            name: name.into(),
            description: String::new(),
            knowledge: None,
            tagger: StageKind::Onnx,
            reformulator,
            entailer: StageKind::Onnx,
            grounder: StageKind::Onnx,
            segmenter,
        }
    }

    /// 11 tweets with real PNGs (red level i*20, size 8+i × 6) in a temp folder; `missing`
    /// tweets have no image file.
    fn fixture(missing: &[usize], failing: &[usize]) -> (tempfile::TempDir, Vec<Tweet>) {
        let dir = tempfile::tempdir().unwrap();
        let tweets = (0..11)
            .map(|i| {
                let id = format!("t{i}");
                if !missing.contains(&i) {
                    let img = image::RgbImage::from_pixel(
                        8 + i as u32,
                        6,
                        image::Rgb([i as u8 * 20, 9, 9]),
                    );
                    img.save(dir.path().join(format!("{id}.png"))).unwrap();
                }
                let mut tokens: Vec<String> = ["the", "Anna", "met", "Bo"][..(i % 4) + 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                if failing.contains(&i) {
                    tokens.push("FAIL".into());
                }
                Tweet {
                    id,
                    image: Some(format!("t{i}.png")),
                    tokens: Some(tokens),
                    ..Default::default()
                }
            })
            .collect();
        (dir, tweets)
    }

    struct Ran {
        out: Result<Vec<VariantOutput>, ExecError>,
        seen: Arc<Mutex<Seen>>,
    }

    fn run(
        tweets: &[Tweet],
        images: &Path,
        variants: &[VariantSpec],
        batch: usize,
        window: Option<usize>,
        on_error: OnError,
    ) -> Ran {
        run_with(
            Seen::default(),
            tweets,
            images,
            variants,
            batch,
            window,
            on_error,
        )
    }

    /// [`run`] with the test stages' failures set in `seen`.
    fn run_with(
        seen: Seen,
        tweets: &[Tweet],
        images: &Path,
        variants: &[VariantSpec],
        batch: usize,
        window: Option<usize>,
        on_error: OnError,
    ) -> Ran {
        let cache = StageCache::new(None);
        let setup = (batch, window, on_error);
        run_cached(seen, tweets, images, variants, setup, &cache)
    }

    /// [`run_with`] on a given stage cache; `setup` is (batch, window, on_error).
    fn run_cached(
        seen: Seen,
        tweets: &[Tweet],
        images: &Path,
        variants: &[VariantSpec],
        (batch, window, on_error): (usize, Option<usize>, OnError),
        cache: &StageCache,
    ) -> Ran {
        let seen = Arc::new(Mutex::new(seen));
        let mut factory = TestBackends(seen.clone());
        let gold = Dataset {
            tweets: tweets.to_vec(),
            meta: None,
        };
        let recordings = Recordings {
            gold: Arc::new(EntityIndex::new(&gold)),
            recording: None,
            replay_missing: ReplayMissing::Error,
        };
        let mut stages = StageSet::new(&mut factory, recordings);
        let settings = ExecSettings {
            tweets,
            images: Some(images),
            cache,
            ve_threshold: 0.5,
            warmup: 0,
            on_error,
            batch,
            image_batch: batch,
            window,
        };
        let out = execute(variants, &mut stages, &settings, &mut Quiet);
        Ran { out, seen }
    }

    fn predictions(out: &[VariantOutput]) -> String {
        let all: Vec<(&Dataset, &Vec<SkippedItem>)> =
            out.iter().map(|o| (&o.predictions, &o.skipped)).collect();
        serde_json::to_string(&all).unwrap()
    }

    #[test]
    fn outputs_do_not_depend_on_batch_or_window_and_windows_reach_the_batch_entry_points() {
        let (dir, tweets) = fixture(&[], &[]);
        let variants = [
            variant("full", StageKind::Llm, StageKind::Box),
            variant("no-ref", StageKind::Off, StageKind::Off),
        ];
        let reference = run(&tweets, dir.path(), &variants, 1, Some(1), OnError::Fail);
        let reference_out = reference.out.unwrap();
        let want = predictions(&reference_out);
        // Real values: t5 ("the Anna") has red 100/255 < 0.5, t7 ("the Anna met Bo") 140/255.
        let full = &reference_out[0].predictions.tweets;
        assert_eq!(full.len(), 11);
        assert_eq!(full[5].entities.len(), 1);
        assert!(!full[5].entities[0].groundable);
        assert_eq!(full[7].entities.len(), 2);
        assert!(full[7].entities[1].groundable);
        assert_eq!(full[7].entities[1].expansion.as_deref(), Some("BO-t7"));
        assert_eq!(
            full[7].entities[1].boxes,
            vec![BBox::new(0.0, 0.0, 15.0, 6.0)]
        );
        assert_eq!(full[7].entities[1].masks[0].size, [6, 15]);
        for (batch, window) in [
            (1, Some(3)),
            (2, Some(4)),
            (7, None),
            (32, None),
            (3, Some(11)),
        ] {
            let r = run(&tweets, dir.path(), &variants, batch, window, OnError::Fail);
            assert_eq!(
                predictions(&r.out.unwrap()),
                want,
                "batch {batch}, window {window:?}"
            );
            let seen = r.seen.lock().unwrap();
            // Both variants share the tagger: the second finds every answer in the cache.
            let w = window.unwrap_or_else(|| window_len(batch));
            let windows: Vec<usize> = (0..11).step_by(w).map(|s| (11 - s).min(w)).collect();
            assert_eq!(
                seen.tag_batches, windows,
                "batch {batch}, window {window:?}"
            );
            // Tweets with entities ask the reformulator (t0, t4, t8 have none).
            let with_entities: Vec<usize> = (0..11)
                .step_by(w)
                .map(|s| (s..(s + w).min(11)).filter(|i| i % 4 != 0).count())
                .filter(|&n| n > 0)
                .collect();
            assert_eq!(seen.reformulate_batches, with_entities);
        }
    }

    #[test]
    fn each_image_is_decoded_once_per_tweet_for_every_stage_and_variant() {
        let (dir, tweets) = fixture(&[], &[]);
        // Two variants with different stage instances' inputs (queries differ), so both run VE.
        let variants = [
            variant("full", StageKind::Llm, StageKind::Off),
            variant("no-ref", StageKind::Off, StageKind::Off),
        ];
        let r = run(&tweets, dir.path(), &variants, 4, Some(3), OnError::Fail);
        r.out.unwrap();
        let seen = r.seen.lock().unwrap();
        let mut by_tweet: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (t, p) in &seen.pixels {
            by_tweet.entry(t).or_default().push(*p);
        }
        // VE of both variants (+ VG of the groundable ones): one buffer per tweet.
        assert_eq!(by_tweet.len(), 8, "tweets with entities");
        for (t, ptrs) in by_tweet {
            assert!(ptrs.len() >= 2, "{t}: {ptrs:?}");
            assert!(ptrs.iter().all(|p| *p == ptrs[0]), "{t}: {ptrs:?}");
        }
    }

    #[test]
    fn a_missing_image_skips_only_its_tweet_and_fail_reports_the_first_tweet_in_order() {
        // t5 has no image (it fails at VE); t6 fails at the tagger, an earlier stage that the
        // window runs first: as with one tweet at a time, `fail` reports t5.
        let (dir, tweets) = fixture(&[5], &[6]);
        let variants = [variant("full", StageKind::Llm, StageKind::Box)];
        let (clean_dir, clean) = fixture(&[], &[]);
        let clean_out = run(
            &clean,
            clean_dir.path(),
            &variants,
            4,
            Some(3),
            OnError::Fail,
        )
        .out
        .unwrap();
        for (batch, window) in [(1, Some(1)), (4, Some(3)), (32, None)] {
            let out = run(&tweets, dir.path(), &variants, batch, window, OnError::Skip)
                .out
                .unwrap();
            let skipped: Vec<(&str, Stage)> = out[0]
                .skipped
                .iter()
                .map(|s| (s.tweet_id.as_str(), s.stage))
                .collect();
            assert_eq!(skipped, [("t5", Stage::Entailer), ("t6", Stage::Tagger)]);
            let path = dir.path().join("t5.png");
            assert_eq!(
                out[0].skipped[0].error,
                format!(
                    "tweet t5: image {} is missing or unreadable: No such file or directory (os error 2)\n  hint: check [data] images; every tweet's image must be <image folder>/<id>.jpg",
                    path.display()
                )
            );
            let got = &out[0].predictions.tweets;
            let want = &clean_out[0].predictions.tweets;
            assert_eq!(got.len(), 11);
            for i in 0..11 {
                if i == 5 || i == 6 {
                    assert!(got[i].entities.is_empty());
                } else {
                    assert_eq!(got[i].entities, want[i].entities, "t{i}");
                }
            }
            // Every tweet has a pipeline row, failed ones included; VE ran for the 7 live tweets
            // with entities, t5 failing on its way in.
            assert_eq!(out[0].timings["pipeline"].count, 11);
            assert_eq!(out[0].timings["tagger"].count, 11);
            assert_eq!(out[0].timings["entailer"].count, 7);

            let err = run(&tweets, dir.path(), &variants, batch, window, OnError::Fail)
                .out
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("variant full, entailer stage: tweet t5: image "),
                "{err}"
            );
        }
    }

    #[test]
    fn ve_and_vg_run_window_major_and_a_failed_tweet_mid_window_fails_alone() {
        // t10 has no image (VE fails on its way in), the entailer fails t9 and the grounder t7:
        // all in the middle or at the end of a window. Groundable (red >= 0.5): t7, t9, t10.
        let (dir, tweets) = fixture(&[10], &[]);
        let (clean_dir, clean) = fixture(&[], &[]);
        let variants = [variant("full", StageKind::Llm, StageKind::Box)];
        let clean_out = run(
            &clean,
            clean_dir.path(),
            &variants,
            1,
            Some(1),
            OnError::Fail,
        )
        .out
        .unwrap();
        let failing = || Seen {
            ve_fail: vec!["t9".into()],
            vg_fail: vec!["t7".into()],
            ..Default::default()
        };
        for (batch, window) in [(1, Some(1)), (4, Some(5)), (7, Some(4)), (32, None)] {
            let label = format!("batch {batch}, window {window:?}");
            let r = run_with(
                failing(),
                &tweets,
                dir.path(),
                &variants,
                batch,
                window,
                OnError::Skip,
            );
            let out = r.out.unwrap();
            let skipped: Vec<(&str, Stage)> = out[0]
                .skipped
                .iter()
                .map(|s| (s.tweet_id.as_str(), s.stage))
                .collect();
            assert_eq!(
                skipped,
                [
                    ("t7", Stage::Grounder),
                    ("t9", Stage::Entailer),
                    ("t10", Stage::Entailer)
                ],
                "{label}"
            );
            assert_eq!(
                out[0].skipped[0].error,
                "tweet t7: grounder failure\n  hint: test"
            );
            let got = &out[0].predictions.tweets;
            let want = &clean_out[0].predictions.tweets;
            for i in 0..11 {
                if [7, 9, 10].contains(&i) {
                    assert!(got[i].entities.is_empty(), "{label}: t{i}");
                } else {
                    assert_eq!(got[i].entities, want[i].entities, "{label}: t{i}");
                }
            }
            // One call per window to each batch entry point, with every live tweet of the window
            // that has entities (VE) or groundable entities (VG; t9 and t10 failed VE), and the
            // run's batch size; t10's missing image never reaches the entailer.
            let w = window.unwrap_or_else(|| window_len(batch));
            let per_window = |keep: &dyn Fn(usize) -> bool| -> Vec<(usize, usize)> {
                (0..11)
                    .step_by(w)
                    .map(|s| (s..(s + w).min(11)).filter(|&i| keep(i)).count())
                    .filter(|&n| n > 0)
                    .map(|n| (n, batch))
                    .collect()
            };
            let seen = r.seen.lock().unwrap();
            assert_eq!(
                seen.entail_batches,
                per_window(&|i| i % 4 != 0 && i != 10),
                "{label}"
            );
            assert_eq!(
                seen.ground_batches,
                per_window(&|i| i % 4 != 0 && i == 7),
                "{label}"
            );
            // Latency rows: each call's time shared equally by its tweets (t10's failed image
            // lookup records 0), so the rows sum to the calls' time; 8 tweets reached VE.
            let ve = &out[0].timings["entailer"];
            assert_eq!(ve.count, 8, "{label}");
            let calls = seen.entail_batches.len() as f64;
            assert!(
                (ve.total_ms - BATCH_CALL_MS * calls).abs() < 1e-9,
                "{label}: {ve:?}"
            );
            let vg = &out[0].timings["grounder"];
            assert_eq!(vg.count, 1, "{label}");
            assert!(
                (vg.total_ms - BATCH_CALL_MS).abs() < 1e-9,
                "{label}: {vg:?}"
            );

            // `fail`: the first failed tweet in tweet order, t7 at VG, though VE (an earlier
            // stage, run over the whole window first) failed t9 and t10 before VG ran.
            let err = run_with(
                failing(),
                &tweets,
                dir.path(),
                &variants,
                batch,
                window,
                OnError::Fail,
            )
            .out
            .unwrap_err()
            .to_string();
            assert_eq!(
                err, "variant full, grounder stage: tweet t7: grounder failure\n  hint: test",
                "{label}"
            );
        }
    }

    #[test]
    fn a_cached_run_hits_its_ve_and_vg_cache_whatever_the_batch() {
        let (dir, tweets) = fixture(&[], &[]);
        let variants = [variant("full", StageKind::Llm, StageKind::Box)];
        let cache_dir = tempfile::tempdir().unwrap();
        let mut outputs = Vec::new();
        for (batch, window) in [(1, Some(1)), (32, None)] {
            let cache = StageCache::new(Some(cache_dir.path().to_path_buf()));
            let setup = (batch, window, OnError::Fail);
            let ran = run_cached(
                Seen::default(),
                &tweets,
                dir.path(),
                &variants,
                setup,
                &cache,
            );
            let out = ran.out.unwrap();
            let seen = ran.seen.lock().unwrap();
            outputs.push((predictions(&out), out, seen.entail_batches.clone()));
        }
        let (first, second) = (&outputs[0], &outputs[1]);
        assert_eq!(first.0, second.0);
        // The first run computed every VE/VG item; the second found each in the cache.
        assert!(!first.2.is_empty());
        assert!(second.2.is_empty(), "{:?}", second.2);
        let ve = &second.1[0].timings["entailer"];
        assert_eq!((ve.count, ve.cached), (0, 10), "{ve:?}");
        let vg = &second.1[0].timings["grounder"];
        assert_eq!((vg.count, vg.cached), (0, 4), "{vg:?}");
    }

    #[test]
    fn ve_and_vg_cache_keys_are_those_of_the_per_tweet_executor() {
        // Golden keys, computed by the executor before VE/VG ran window-major: a stage cache
        // filled by an older run must still answer.
        let tweet = Tweet {
            id: "t1".into(),
            ..Default::default()
        };
        let entities = [Entity::new("Anna", "PER"), Entity::new("Bo", "LOC")];
        let queries = ["Anna(PER)-a singer".to_string(), "Bo".to_string()];
        let keys = query_keys("entailer", "fp", &tweet, "img", &entities, &queries, &[1]);
        assert_eq!(keys, [GOLDEN_VE_KEY]);
        let keys = query_keys("grounder", "fp", &tweet, "", &entities, &queries, &[0]);
        assert_eq!(keys, [GOLDEN_VG_KEY]);
    }

    const GOLDEN_VE_KEY: &str = "4c45ba6110b5ef9e2ae0e03a9f68835c8a4c698dbcc00f37300f7df027e148c7";
    const GOLDEN_VG_KEY: &str = "fc031d7b71adf55e2a63a5363a775c487946c345a6b3ffb2d6b9e1581170d866";

    #[test]
    fn windows_are_a_few_batches_within_bounds() {
        assert_eq!(window_len(1), MIN_WINDOW);
        assert_eq!(window_len(32), 128);
        assert_eq!(window_len(200), MAX_WINDOW);
        assert_eq!(window_len(1000), 1000);
        assert_eq!(window_len(0), MIN_WINDOW);
    }
}
