//! Runs a suite: every variant of the matrix over the (sharded) tweets, stages shared between
//! variants and their outputs cached, then scores each variant with the evaluation core and writes
//! the run directory:
//!
//! ```text
//! reports/<run-id>/results.json            the contract (crate::results)
//!                  suite.toml, gold.jsonl   what was run, against what (this shard's slice)
//!                  predictions/<variant>.jsonl
//!                  per_tweet/<variant>.json per-tweet counts for paired bootstrap
//!                  latency/<variant>.json   raw per-call latencies (for plots and `merge`)
//! ```
//! Tweets run in the outer loop and variants in the inner one (tweet-major), so per-image work is
//! shared between variants. results.json is written, atomically, once every variant finished; a
//! killed run leaves the stage cache behind, and re-running the same command resumes from it. Must not format output for people.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::bench::LatencyRecorder;
use crate::data::model::{Dataset, Entity, Tweet};
use crate::data::{jsonl, DataError, DataWarning};
use crate::geometry::{BBox, CocoRle};
use crate::metrics::{evaluate, EvalOptions, Protocol};
use crate::results::{
    RunMeta, RunResults, SkippedItem, VariantMetrics, VariantPerTweet, VariantResult,
};

use super::cache::{cache_key, StageCache};
use super::recorded::{
    gold_mask_size, EntityIndex, OracleEntailer, OracleGrounder, OracleTagger, ReplayEntailer,
    ReplayGrounder, ReplayReformulator, ReplayTagger,
};
use super::shard::ShardSpec;
use super::sources::load_source;
use super::stages::{
    Entailer, Grounder, Reformulator, Segmenter, Stage, StageError, StageKind, Tagger, TweetInput,
};
use super::suite::{OnError, Suite, SuiteError, VariantSpec};

/// Which execution provider ONNX stages should use.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DevicePreference {
    Cpu,
    Cuda,
    #[default]
    Auto,
}

/// How to run a suite (the validated plan from the CLI).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run directory; default `reports/<run-id>`.
    pub out_dir: Option<PathBuf>,
    pub shard: Option<ShardSpec>,
    pub device: DevicePreference,
    /// Overrides the suite's `settings.on_error`.
    pub on_error: Option<OnError>,
    /// Overrides the suite's cache folder; `None` with no suite setting → `.riveg-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Disable the on-disk cache (memory only).
    pub no_disk_cache: bool,
    /// Show progress bars on stderr (only when it is a terminal).
    pub progress: bool,
}

impl RunOptions {
    /// The on-disk stage cache folder: the flag, else the suite's `settings.cache_dir`, else
    /// `.riveg-cache`; `None` with `no_disk_cache`.
    pub fn disk_cache_dir(&self, suite: &Suite) -> Option<PathBuf> {
        (!self.no_disk_cache).then(|| {
            self.cache_dir
                .clone()
                .or_else(|| suite.file.settings.cache_dir.clone())
                .unwrap_or_else(|| PathBuf::from(".riveg-cache"))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Suite(#[from] SuiteError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("variant {variant}, {} stage: {source}", stage.name())]
    Stage {
        variant: String,
        stage: Stage,
        #[source]
        source: Box<StageError>,
    },
    #[error("variant {variant}: {what}\n  hint: {hint}")]
    Setup {
        variant: String,
        what: String,
        hint: String,
    },
    #[error("{path}: cannot write: {source}\n  hint: check that the output folder is writable")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub results: RunResults,
    pub run_dir: PathBuf,
    pub warnings: Vec<DataWarning>,
}

/// Builds ONNX and LLM stages. The default build provides them through `crate::pipeline::backends`;
/// tests may pass their own.
pub trait BackendFactory {
    fn tagger(&mut self, suite: &Suite) -> Result<(Box<dyn Tagger>, String), String>;
    fn reformulator(&mut self, suite: &Suite) -> Result<(Box<dyn Reformulator>, String), String>;
    fn entailer(&mut self, suite: &Suite) -> Result<(Box<dyn Entailer>, String), String>;
    fn grounder(&mut self, suite: &Suite) -> Result<(Box<dyn Grounder>, String), String>;
    fn segmenter(&mut self, suite: &Suite) -> Result<(Box<dyn Segmenter>, String), String>;
    /// The execution provider that ran (`cpu`, `cuda`), once a model was loaded.
    fn execution_provider(&self) -> Option<String>;
    /// Model id → sha256 of every model loaded so far.
    fn model_hashes(&self) -> BTreeMap<String, String>;
}

/// One stage instance with the fingerprint that keys its cache entries.
struct Built<T: ?Sized> {
    stage: Box<T>,
    fingerprint: String,
    cached: bool,
}

/// Stage instances, built once per (stage, kind) and shared by the variants.
struct StagePool<'f> {
    factory: &'f mut dyn BackendFactory,
    gold: Arc<EntityIndex>,
    recording: Option<Arc<EntityIndex>>,
    suite: Suite,
    taggers: HashMap<StageKind, Built<dyn Tagger>>,
    reformulators: HashMap<StageKind, Built<dyn Reformulator>>,
    entailers: HashMap<StageKind, Built<dyn Entailer>>,
    grounders: HashMap<StageKind, Built<dyn Grounder>>,
    segmenters: HashMap<StageKind, Built<dyn Segmenter>>,
}

/// Builds a stage instance for `kind` unless the pool has one: recorded (replay / oracle) kinds
/// from `recorded`, which returns `None` for the kinds it does not build, real ones (onnx, llm)
/// from `real`, whose outputs are cached under the fingerprint it returns.
fn ensure<T: ?Sized>(
    pool: &mut HashMap<StageKind, Built<T>>,
    kind: StageKind,
    stage: Stage,
    variant: &str,
    recorded: impl FnOnce() -> Result<Option<Box<T>>, RunError>,
    real: impl FnOnce() -> Result<(Box<T>, String), String>,
) -> Result<(), RunError> {
    if kind == StageKind::Off || kind == StageKind::Box || pool.contains_key(&kind) {
        return Ok(());
    }
    let built = match recorded()? {
        Some(stage) => Built {
            stage,
            fingerprint: format!("{kind:?}"),
            cached: false,
        },
        None => {
            let (stage_impl, fingerprint) = real().map_err(|what| RunError::Setup {
                variant: variant.into(),
                what: format!("cannot build the {} stage: {what}", stage.name()),
                hint: "check the model manifest / [llm] section the suite names".into(),
            })?;
            Built {
                stage: stage_impl,
                fingerprint,
                cached: true,
            }
        }
    };
    pool.insert(kind, built);
    Ok(())
}

impl StagePool<'_> {
    /// Builds every stage instance a variant needs (shared with earlier variants of the same kind).
    fn prepare(&mut self, v: &VariantSpec) -> Result<(), RunError> {
        let missing = self.suite.file.settings.replay_missing;
        let name = v.name.as_str();
        let recording = || {
            self.recording.clone().ok_or_else(|| RunError::Setup {
                variant: name.into(),
                what: "a replay stage needs [data.replay]".into(),
                hint: "point [data.replay] at recorded outputs".into(),
            })
        };
        let gold = &self.gold;
        let (factory, suite) = (&mut *self.factory, &self.suite);
        ensure(
            &mut self.taggers,
            v.tagger,
            Stage::Tagger,
            name,
            || {
                Ok(match v.tagger {
                    StageKind::Replay => Some(Box::new(ReplayTagger {
                        recording: recording()?,
                    }) as Box<dyn Tagger>),
                    StageKind::Oracle => Some(Box::new(OracleTagger { gold: gold.clone() })),
                    _ => None,
                })
            },
            || factory.tagger(suite),
        )?;
        ensure(
            &mut self.reformulators,
            v.reformulator,
            Stage::Reformulator,
            name,
            || {
                Ok(match v.reformulator {
                    StageKind::Replay => Some(Box::new(ReplayReformulator {
                        recording: recording()?,
                        missing,
                    }) as Box<dyn Reformulator>),
                    _ => None,
                })
            },
            || factory.reformulator(suite),
        )?;
        ensure(
            &mut self.entailers,
            v.entailer,
            Stage::Entailer,
            name,
            || {
                Ok(match v.entailer {
                    StageKind::Replay => Some(Box::new(ReplayEntailer {
                        recording: recording()?,
                        missing,
                    }) as Box<dyn Entailer>),
                    StageKind::Oracle => Some(Box::new(OracleEntailer { gold: gold.clone() })),
                    _ => None,
                })
            },
            || factory.entailer(suite),
        )?;
        ensure(
            &mut self.grounders,
            v.grounder,
            Stage::Grounder,
            name,
            || {
                Ok(match v.grounder {
                    StageKind::Replay => Some(Box::new(ReplayGrounder {
                        recording: recording()?,
                        missing,
                    }) as Box<dyn Grounder>),
                    StageKind::Oracle => Some(Box::new(OracleGrounder { gold: gold.clone() })),
                    _ => None,
                })
            },
            || factory.grounder(suite),
        )?;
        ensure(
            &mut self.segmenters,
            v.segmenter,
            Stage::Segmenter,
            name,
            || Ok(None),
            || factory.segmenter(suite),
        )
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
    pool: &mut StagePool<'_>,
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

    // 1. MNER (cached per tweet).
    let tagger = pool.taggers.get_mut(&v.tagger).expect("prepared");
    let key = tagger.cached.then(|| {
        vec![cache_key(&[
            "tagger",
            &tagger.fingerprint,
            &tweet.id,
            &tokens_json,
        ])]
    });
    let mut entities: Vec<Entity> = cached_batch(
        cx.cache,
        &tweet.id,
        Stage::Tagger,
        key,
        1,
        recs.rec("tagger"),
        |_| Ok(vec![tagger.stage.tag(tweet)?]),
    )?
    .pop()
    .unwrap_or_default();

    // 2. Reformulation (per entity); off: the bare entity text is the query.
    let queries: Vec<String> = match pool.reformulators.get_mut(&v.reformulator) {
        None => entities.iter().map(|e| e.text.clone()).collect(),
        Some(r) => {
            let keys = r.cached.then(|| {
                entities
                    .iter()
                    .map(|e| {
                        cache_key(&[
                            "reformulator",
                            &r.fingerprint,
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
    let probs: Vec<f32> = match pool.entailers.get_mut(&v.entailer) {
        None => vec![1.0; entities.len()],
        Some(ve) => {
            let keys = ve.cached.then(|| {
                queries
                    .iter()
                    .map(|q| cache_key(&["entailer", &ve.fingerprint, &tweet.id, q]))
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
    if let Some(vg) = pool.grounders.get_mut(&v.grounder) {
        let keys = vg.cached.then(|| {
            grounded
                .iter()
                .map(|&i| cache_key(&["grounder", &vg.fingerprint, &tweet.id, &queries[i]]))
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
            let seg = pool.segmenters.get_mut(&StageKind::Onnx).expect("prepared");
            let keys = seg.cached.then(|| {
                boxed
                    .iter()
                    .map(|&i| {
                        let b = serde_json::to_string(&entities[i].boxes[0]).unwrap_or_default();
                        cache_key(&["segmenter", &seg.fingerprint, &tweet.id, &b])
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

/// Runs every variant of a suite.
pub fn run_suite(
    suite: &Suite,
    opts: &RunOptions,
    factory: &mut dyn BackendFactory,
) -> Result<RunOutput, RunError> {
    let settings = suite.file.settings.clone();
    let on_error = opts.on_error.unwrap_or(settings.on_error);
    let gold_out = load_source(suite, &suite.file.data.gold)?;
    let mut warnings = gold_out.warnings;
    let mut gold = gold_out.dataset;
    let recording_dataset = match &suite.file.data.replay {
        Some(src) => {
            let out = load_source(suite, src)?;
            warnings.extend(out.warnings);
            Some(out.dataset)
        }
        None => None,
    };
    let recording = recording_dataset
        .as_ref()
        .map(|d| Arc::new(EntityIndex::new(d)));
    // Tweets the recording has but the gold file lacks (RiVEG's label file lists only tweets with
    // entities) are still run and scored, with no gold entities: dropping them would hide
    // predictions.
    if let Some(rec) = &recording_dataset {
        let known: std::collections::HashSet<&str> =
            gold.tweets.iter().map(|t| t.id.as_str()).collect();
        let extra: Vec<Tweet> = rec
            .tweets
            .iter()
            .filter(|t| !known.contains(t.id.as_str()))
            .map(|t| Tweet {
                entities: Vec::new(),
                ..t.clone()
            })
            .collect();
        gold.tweets.extend(extra);
    }
    if let Some(limit) = suite.file.data.limit {
        gold.tweets.truncate(limit);
    }
    if let Some(shard) = opts.shard {
        let r = shard.range(gold.tweets.len());
        gold.tweets = gold.tweets[r].to_vec();
    }
    let gold_index = Arc::new(EntityIndex::new(&gold));
    let images = suite.file.data.images.as_ref().map(|p| suite.resolve(p));
    let cache = StageCache::new(opts.disk_cache_dir(suite));

    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_id = match opts.shard {
        Some(s) => format!(
            "{}-{}-shard{}of{}",
            suite.file.name,
            timestamp(started),
            s.k,
            s.n
        ),
        None => format!("{}-{}", suite.file.name, timestamp(started)),
    };
    let run_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
    write(
        &run_dir.join("gold.jsonl"),
        jsonl::to_jsonl(&gold).as_bytes(),
    )?;
    let suite_text = match suite.origin.as_str() {
        o if o.starts_with('<') => super::suite::DEFAULT_SUITE.to_string(),
        o => std::fs::read_to_string(o).unwrap_or_default(),
    };
    write(&run_dir.join("suite.toml"), suite_text.as_bytes())?;

    let mut results = RunResults {
        suite: suite.file.name.clone(),
        run_id,
        meta: RunMeta {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git_commit(),
            started_unix: started,
            hostname: std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string()),
            os: std::env::consts::OS.to_string(),
            cpu: cpu_model(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            execution_provider: "none".into(),
            shard: opts.shard.map(|s| s.to_string()),
            gold: vec![suite
                .resolve(&suite.file.data.gold.path)
                .display()
                .to_string()],
        },
        variants: Vec::new(),
    };

    let mut pool = StagePool {
        factory,
        gold: gold_index.clone(),
        recording: recording.clone(),
        suite: suite.clone(),
        taggers: HashMap::new(),
        reformulators: HashMap::new(),
        entailers: HashMap::new(),
        grounders: HashMap::new(),
        segmenters: HashMap::new(),
    };
    let progress = opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr());

    // Tweet-major order: every variant of a tweet runs back to back, so a tweet's image is
    // decoded by each stage instance at most once per tweet and stage instances shared by several
    // variants (e.g. the segmenter's image embedding) reuse per-image work; the stage cache
    // shares everything else.
    let variants = &suite.file.variants;
    for v in variants {
        pool.prepare(v)?;
    }
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
            pred: Dataset::default(),
            replay_missing: 0,
        })
        .collect();
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(gold.tweets.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} tweets {elapsed} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_prefix(format!("{} x {} variants", suite.file.name, variants.len()));
        b
    });
    let missing_now = || {
        recording
            .as_ref()
            .map(|r| r.missing.load(Ordering::Relaxed))
            .unwrap_or(0)
    };
    for gt in &gold.tweets {
        let input = Tweet {
            id: gt.id.clone(),
            image: gt.image.clone(),
            tokens: gt.tokens.clone(),
            entities: Vec::new(),
        };
        let cx = TweetContext {
            tweet: &input,
            images: images.as_deref(),
            cache: &cache,
            ve_threshold: settings.ve_threshold,
            gold: &gold_index,
        };
        for (v, state) in variants.iter().zip(states.iter_mut()) {
            let before = missing_now();
            let t0 = Instant::now();
            let res = run_tweet(v, &mut pool, &cx, &mut state.recs);
            state
                .recs
                .rec("pipeline")
                .record(t0.elapsed().as_secs_f64() * 1000.0);
            state.replay_missing += missing_now() - before;
            let entities = match res {
                Ok(e) => e,
                Err(f) if on_error == OnError::Skip => {
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
                    return Err(RunError::Stage {
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
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(ep) = pool.factory.execution_provider() {
        results.meta.execution_provider = ep;
    }
    for (v, state) in variants.iter().zip(states) {
        let mut variant = score_variant(v, &gold, &state.pred, &settings_eval(suite));
        if state.replay_missing > 0 {
            variant.description = format!(
                "{} [{} replay look-ups (reformulation, VE, VG) found no recorded answer and got the negative one]",
                variant.description, state.replay_missing
            );
        }
        variant.skipped = state.skipped.len();
        variant.skipped_items = state.skipped;
        variant.timings = state
            .recs
            .per_stage
            .iter()
            .map(|(k, r)| (k.to_string(), r.summary()))
            .filter(|(_, t)| t.count + t.cached + t.warmup_excluded > 0)
            .collect();
        // Only the models this variant ran (keys are `stage:manifest/role`).
        variant.model_hashes = pool
            .factory
            .model_hashes()
            .into_iter()
            .filter(|(k, _)| {
                let stage = k.split(':').next().unwrap_or("");
                v.stages()
                    .iter()
                    .any(|(s, kind)| s.name() == stage && *kind == StageKind::Onnx)
            })
            .collect();
        let samples: BTreeMap<&str, &Vec<f64>> = variant
            .timings
            .iter()
            .map(|(k, t)| (k.as_str(), &t.samples_ms))
            .collect();
        write_json(
            &run_dir.join("latency").join(format!("{}.json", v.name)),
            &samples,
        )?;
        write(
            &run_dir.join(&variant.predictions),
            jsonl::to_jsonl(&state.pred).as_bytes(),
        )?;
        write_json(
            &run_dir.join("per_tweet").join(format!("{}.json", v.name)),
            &per_tweet_of(&variant),
        )?;
        results.variants.push(variant);
    }
    write_results(&run_dir.join("results.json"), &results)?;
    Ok(RunOutput {
        results,
        run_dir,
        warnings,
    })
}

/// Eval options from a suite's settings (protocol set per call).
pub fn settings_eval(suite: &Suite) -> EvalOptions {
    EvalOptions {
        protocol: Protocol::Riveg,
        iou_threshold: suite.file.settings.iou,
        mask_iou_threshold: suite.file.settings.mask_iou,
        compat: None,
    }
}

/// Scores one variant's predictions under both protocols (span: null with a reason when the data
/// has no token offsets).
pub fn score_variant(
    v: &VariantSpec,
    gold: &Dataset,
    pred: &Dataset,
    opts: &EvalOptions,
) -> VariantResult {
    let mut not_applicable = BTreeMap::new();
    let riveg = evaluate(
        gold,
        pred,
        &EvalOptions {
            protocol: Protocol::Riveg,
            ..*opts
        },
    )
    .ok();
    let span = match evaluate(
        gold,
        pred,
        &EvalOptions {
            protocol: Protocol::Span,
            ..*opts
        },
    ) {
        Ok(r) => Some(r),
        Err(e) => {
            not_applicable.insert("span".to_string(), e.0);
            None
        }
    };
    VariantResult {
        name: v.name.clone(),
        description: v.description.clone(),
        stages: v.stages(),
        metrics: VariantMetrics { riveg, span },
        not_applicable,
        timings: BTreeMap::new(),
        skipped: 0,
        skipped_items: Vec::new(),
        model_hashes: BTreeMap::new(),
        predictions: format!("predictions/{}.jsonl", v.name),
        tweets: gold.tweets.len(),
    }
}

pub fn per_tweet_of(v: &VariantResult) -> VariantPerTweet {
    VariantPerTweet {
        riveg: v.metrics.riveg.as_ref().map(|r| r.per_tweet.clone()),
        span: v.metrics.span.as_ref().map(|r| r.per_tweet.clone()),
    }
}

/// Bulk outputs (predictions, per-tweet counts, latencies) are renamed into place without an
/// fsync each; `results.json`, written last, is synced (see [`write_results`]).
fn write(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    crate::io_util::write_atomic_unsynced(path, bytes).map_err(io_err(path))
}

/// Writes results.json atomically and durably.
pub(crate) fn write_results(path: &Path, results: &RunResults) -> Result<(), RunError> {
    let mut text = serde_json::to_string_pretty(results).map_err(|e| RunError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    crate::io_util::write_atomic(path, text.as_bytes()).map_err(io_err(path))
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| RunError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    write(path, text.as_bytes())
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `YYYYmmdd-HHMMSS` (UTC) from Unix seconds.
pub fn timestamp(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = crate::util::utc_parts(unix);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_utc_civil() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(1_795_000_000), "20261118-110640");
    }
}
