//! Executes the variant matrix over the tweets: every stage built once per (stage, kind)
//! ([`StageSet`]) and shared by the variants, outputs cached per item ([`StageCache`]), per-call
//! latencies recorded. Produces each variant's predictions, timings and skipped items; it never
//! scores, formats or writes a run directory (that is `crate::run`).
//!
//! Tweets run in the outer loop and variants in the inner one (tweet-major), so per-image work is
//! shared between variants: a tweet's image is decoded once per stage instance, and stage
//! instances shared by several variants (the segmenter's image embedding) reuse per-image work;
//! the stage cache shares everything else. The caller hears of progress through an
//! [`ExecObserver`]; a killed run leaves the stage cache behind, and re-running resumes from it.

use std::collections::BTreeMap;
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
use super::stages::{Stage, StageError, StageKind, TweetInput};

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
    let recording = stages.recordings().recording.clone();
    let gold = stages.recordings().gold.clone();
    let missing_now = || {
        recording
            .as_ref()
            .map(|r| r.missing.load(Ordering::Relaxed))
            .unwrap_or(0)
    };
    struct VariantState {
        recs: Recorders,
        skipped: Vec<SkippedItem>,
        pred: Dataset,
        replay_missing: usize,
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
    let total = settings.tweets.len();
    for (done, gt) in settings.tweets.iter().enumerate() {
        let input = Tweet {
            id: gt.id.clone(),
            image: gt.image.clone(),
            tokens: gt.tokens.clone(),
            ..Default::default()
        };
        let cx = TweetContext {
            tweet: &input,
            images: settings.images,
            cache: settings.cache,
            ve_threshold: settings.ve_threshold,
            gold: &gold,
        };
        for (v, state) in variants.iter().zip(states.iter_mut()) {
            let before = missing_now();
            let t0 = Instant::now();
            let res = run_tweet(v, stages, &cx, &mut state.recs);
            state
                .recs
                .rec("pipeline")
                .record(t0.elapsed().as_secs_f64() * 1000.0);
            state.replay_missing += missing_now() - before;
            let entities = match res {
                Ok(e) => e,
                Err(f) if settings.on_error == OnError::Skip => {
                    log::warn!(
                        "variant {}: {}: skipping tweet {}: {}",
                        v.name,
                        f.stage.name(),
                        gt.id,
                        f.error
                    );
                    state.skipped.push(SkippedItem {
                        tweet_id: gt.id.clone(),
                        stage: f.stage,
                        error: f.error.to_string(),
                    });
                    Vec::new()
                }
                Err(f) => {
                    return Err(ExecError::Stage {
                        variant: v.name.clone(),
                        stage: f.stage,
                        source: Box::new(f.error),
                    })
                }
            };
            state.pred.tweets.push(Tweet {
                entities,
                ..input.clone()
            });
        }
        observer.tweet_done(done + 1, total);
    }
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

/// A stage the executor expected to be prepared was not (a bug in prepare, reported per tweet
/// rather than a panic).
fn not_prepared(tweet: &Tweet, stage: Stage) -> Failed {
    Failed {
        stage,
        error: StageError::item(
            &tweet.id,
            None,
            format!("the {} stage was not built", stage.name()),
            "this is a bug in riveg-bench; please report it",
        ),
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

fn timed<T>(rec: &mut LatencyRecorder, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    rec.record(t0.elapsed().as_secs_f64() * 1000.0);
    out
}

/// Loads a tweet's image once, when a stage that reads pixels first needs it.
struct LazyImage<'a> {
    dir: Option<&'a Path>,
    tweet: &'a Tweet,
    image: Option<image::RgbImage>,
}

impl LazyImage<'_> {
    fn get(&mut self) -> Result<&image::RgbImage, StageError> {
        if self.image.is_none() {
            let name = self.tweet.image_name();
            let Some(dir) = self.dir else {
                return Err(StageError::Image {
                    tweet_id: self.tweet.id.clone(),
                    path: name,
                    why: "the suite has no image folder".into(),
                    hint: "set [data] images = \"path/to/images\" (Twitter-2015/2017 images, <id>.jpg)".into(),
                });
            };
            let path = dir.join(&name);
            let img = image::open(&path).map_err(|e| StageError::Image {
                tweet_id: self.tweet.id.clone(),
                path: path.display().to_string(),
                why: e.to_string(),
                hint: "check [data] images; every tweet's image must be <image folder>/<id>.jpg"
                    .into(),
            })?;
            self.image = Some(img.to_rgb8());
        }
        Ok(self.image.as_ref().expect("loaded above"))
    }
}

/// A stage that failed on one tweet.
struct Failed {
    stage: Stage,
    error: StageError,
}

/// Runs the cached, per-entity part of a stage: looks each item up, calls `compute` once with the
/// misses (one batch per tweet), stores the answers. Returns outputs in item order.
fn cached_batch<T, F>(
    cache: &StageCache,
    tweet_id: &str,
    stage: Stage,
    keys: Option<Vec<String>>,
    n: usize,
    rec: &mut LatencyRecorder,
    compute: F,
) -> Result<Vec<T>, Failed>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone,
    F: FnOnce(&[usize]) -> Result<Vec<T>, StageError>,
{
    let mut out: Vec<Option<T>> = vec![None; n];
    let mut misses = Vec::new();
    match &keys {
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
        None => misses = (0..n).collect(),
    }
    if !misses.is_empty() {
        let fresh = timed(rec, || compute(&misses)).map_err(|error| Failed { stage, error })?;
        for (slot, (i, v)) in misses.iter().zip(fresh).enumerate() {
            let _ = slot;
            if let Some(keys) = &keys {
                if let Err(e) = cache.put(stage, &keys[*i], &v) {
                    log::warn!(
                        "stage cache write failed ({e}); continuing without caching this item"
                    );
                }
            }
            out[*i] = Some(v);
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| Failed {
                stage,
                error: StageError::item(
                    tweet_id,
                    None,
                    format!("{} returned too few outputs (item {i})", stage.name()),
                    "a stage must answer every item it is given",
                ),
            })
        })
        .collect()
}

fn check_len<T>(stage: Stage, tweet: &str, got: Vec<T>, want: usize) -> Result<Vec<T>, StageError> {
    if got.len() == want {
        Ok(got)
    } else {
        Err(StageError::item(
            tweet,
            None,
            format!(
                "{} returned {} outputs for {} inputs",
                stage.name(),
                got.len(),
                want
            ),
            "a stage must answer every entity it is given, in order",
        ))
    }
}

struct TweetContext<'a> {
    tweet: &'a Tweet,
    images: Option<&'a Path>,
    cache: &'a StageCache,
    ve_threshold: f64,
    gold: &'a EntityIndex,
}

fn run_tweet(
    v: &VariantSpec,
    pool: &mut StageSet<'_>,
    cx: &TweetContext<'_>,
    recs: &mut Recorders,
) -> Result<Vec<Entity>, Failed> {
    let tweet = cx.tweet;
    let tokens_json = serde_json::to_string(&tweet.tokens).unwrap_or_default();
    let mut image = LazyImage {
        dir: cx.images,
        tweet,
        image: None,
    };

    // 0. Auxiliary knowledge for the tagger (cached per tweet); off and replay: none.
    let context: Option<String> = match v.knowledge() {
        StageKind::Llm => {
            let k = pool
                .knowledge(StageKind::Llm)
                .ok_or_else(|| not_prepared(tweet, Stage::Knowledge))?;
            let key = k
                .fingerprint
                .map(|fp| vec![cache_key(&["knowledge", fp, &tweet.id, &tokens_json])]);
            cached_batch(
                cx.cache,
                &tweet.id,
                Stage::Knowledge,
                key,
                1,
                recs.rec("knowledge"),
                |_| Ok(vec![k.stage.context(tweet)?]),
            )?
            .pop()
        }
        _ => None,
    };

    // 1. MNER (cached per tweet, and per context when there is one).
    let tagger = pool
        .tagger(v.tagger)
        .ok_or_else(|| not_prepared(tweet, Stage::Tagger))?;
    let key = tagger.fingerprint.map(|fp| match &context {
        None => vec![cache_key(&["tagger", fp, &tweet.id, &tokens_json])],
        Some(c) => vec![cache_key(&[
            "tagger",
            fp,
            &tweet.id,
            &tokens_json,
            "context",
            c,
        ])],
    });
    let tagger_pixels = tagger.stage.needs_pixels();
    let mut entities: Vec<Entity> = cached_batch(
        cx.cache,
        &tweet.id,
        Stage::Tagger,
        key,
        1,
        recs.rec("tagger"),
        |_| {
            // Text taggers never make the runner decode the image (the MLLM tagger reads it).
            let img = if tagger_pixels {
                Some(image.get()?)
            } else {
                None
            };
            let input = TweetInput { tweet, image: img };
            Ok(vec![match &context {
                Some(c) => tagger.stage.tag_with_context(&input, c)?,
                None => tagger.stage.tag_input(&input)?,
            }])
        },
    )?
    .pop()
    .unwrap_or_default();

    // 2. Reformulation (per entity); off: the bare entity text is the query.
    let queries: Vec<String> = match pool.reformulator(v.reformulator) {
        None => entities.iter().map(|e| e.text.clone()).collect(),
        Some(r) => {
            let keys = r.fingerprint.map(|fp| {
                entities
                    .iter()
                    .map(|e| {
                        cache_key(&[
                            "reformulator",
                            fp,
                            &tweet.id,
                            &tokens_json,
                            &e.text,
                            &e.entity_type,
                        ])
                    })
                    .collect()
            });
            let q = cached_batch(
                cx.cache,
                &tweet.id,
                Stage::Reformulator,
                keys,
                entities.len(),
                recs.rec("reformulator"),
                |idx| {
                    let sub: Vec<Entity> = idx.iter().map(|&i| entities[i].clone()).collect();
                    check_len(
                        Stage::Reformulator,
                        &tweet.id,
                        r.stage.reformulate(tweet, &sub)?,
                        sub.len(),
                    )
                },
            )?;
            for (e, q) in entities.iter_mut().zip(&q) {
                e.expansion = Some(q.clone());
            }
            q
        }
    };

    // 3. Visual entailment; off: every entity goes to grounding.
    let probs: Vec<f32> = match pool.entailer(v.entailer) {
        None => vec![1.0; entities.len()],
        Some(ve) => {
            let keys = ve.fingerprint.map(|fp| {
                queries
                    .iter()
                    .map(|q| cache_key(&["entailer", fp, &tweet.id, q]))
                    .collect()
            });
            let needs_pixels = ve.stage.needs_pixels();
            cached_batch(
                cx.cache,
                &tweet.id,
                Stage::Entailer,
                keys,
                entities.len(),
                recs.rec("entailer"),
                |idx| {
                    let sub_e: Vec<Entity> = idx.iter().map(|&i| entities[i].clone()).collect();
                    let sub_q: Vec<String> = idx.iter().map(|&i| queries[i].clone()).collect();
                    let img = if needs_pixels {
                        Some(image.get()?)
                    } else {
                        None
                    };
                    let input = TweetInput { tweet, image: img };
                    check_len(
                        Stage::Entailer,
                        &tweet.id,
                        ve.stage.entail(&input, &sub_e, &sub_q)?,
                        sub_e.len(),
                    )
                },
            )?
        }
    };
    for (e, p) in entities.iter_mut().zip(&probs) {
        e.groundable = f64::from(*p) >= cx.ve_threshold;
        if v.entailer != StageKind::Off {
            e.score = Some(f64::from(*p));
        }
    }

    // 4. Visual grounding of the groundable entities.
    let grounded: Vec<usize> = (0..entities.len())
        .filter(|&i| entities[i].groundable)
        .collect();
    if let Some(vg) = pool.grounder(v.grounder) {
        let keys = vg.fingerprint.map(|fp| {
            grounded
                .iter()
                .map(|&i| cache_key(&["grounder", fp, &tweet.id, &queries[i]]))
                .collect()
        });
        let needs_pixels = vg.stage.needs_pixels();
        let boxes = cached_batch(
            cx.cache,
            &tweet.id,
            Stage::Grounder,
            keys,
            grounded.len(),
            recs.rec("grounder"),
            |idx| {
                let sub_e: Vec<Entity> =
                    idx.iter().map(|&j| entities[grounded[j]].clone()).collect();
                let sub_q: Vec<String> =
                    idx.iter().map(|&j| queries[grounded[j]].clone()).collect();
                let img = if needs_pixels {
                    Some(image.get()?)
                } else {
                    None
                };
                let input = TweetInput { tweet, image: img };
                check_len(
                    Stage::Grounder,
                    &tweet.id,
                    vg.stage.ground(&input, &sub_e, &sub_q)?,
                    sub_e.len(),
                )
            },
        )?;
        for (&i, g) in grounded.iter().zip(boxes) {
            entities[i].boxes = vec![g.bbox];
        }
    }

    // 5. Segmentation of every box.
    let boxed: Vec<usize> = (0..entities.len())
        .filter(|&i| !entities[i].boxes.is_empty())
        .collect();
    match v.segmenter {
        StageKind::Box => {
            let t0 = Instant::now();
            let size = gold_mask_size(cx.gold, &tweet.id).or_else(|| {
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
            recs.rec("segmenter")
                .record(t0.elapsed().as_secs_f64() * 1000.0);
        }
        StageKind::Onnx => {
            let seg = pool
                .segmenter(StageKind::Onnx)
                .ok_or_else(|| not_prepared(tweet, Stage::Segmenter))?;
            let keys = seg.fingerprint.map(|fp| {
                boxed
                    .iter()
                    .map(|&i| {
                        let b = serde_json::to_string(&entities[i].boxes[0]).unwrap_or_default();
                        cache_key(&["segmenter", fp, &tweet.id, &b])
                    })
                    .collect()
            });
            let masks: Vec<CocoRle> = cached_batch(
                cx.cache,
                &tweet.id,
                Stage::Segmenter,
                keys,
                boxed.len(),
                recs.rec("segmenter"),
                |idx| {
                    let sub: Vec<BBox> = idx.iter().map(|&j| entities[boxed[j]].boxes[0]).collect();
                    let img = image.get()?;
                    let input = TweetInput {
                        tweet,
                        image: Some(img),
                    };
                    check_len(
                        Stage::Segmenter,
                        &tweet.id,
                        seg.stage.segment(&input, &sub)?,
                        sub.len(),
                    )
                },
            )?;
            for (&i, m) in boxed.iter().zip(masks) {
                entities[i].masks = vec![m];
            }
        }
        _ => {}
    }
    Ok(entities)
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
