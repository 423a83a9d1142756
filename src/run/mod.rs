//! The run layer: plan → execute → score → write. A [`RunPlan`] (suite + the user's choices,
//! validated once) is run by [`run_plan`]: load the data, execute the pipeline's variant matrix
//! ([`crate::pipeline::execute`]), score each variant with [`crate::metrics`] ([`score`]) and
//! write the run directory through [`RunDir`] — results.json and the report are rewritten as
//! each variant finishes, so a run that dies later keeps what it finished. [`merge`] and
//! `eval --save-baseline` ([`eval_run`]) use the same scoring and writing code.
//!
//! This layer must not run a stage itself, compute a metric by hand, or print: the CLI prints.

pub mod error;
pub mod merge;
pub mod meta;
pub mod plan;
pub mod score;
pub mod shard;
pub mod sources;
pub mod suite;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

pub use error::RunError;
pub use plan::{RunPlan, RunRequest};
pub use shard::ShardSpec;
pub use suite::{Suite, SuiteError, DEFAULT_SUITE};

use crate::data::model::{Dataset, Tweet};
use crate::data::DataWarning;
use crate::metrics::EvalOptions;
use crate::pipeline::cache::StageCache;
use crate::pipeline::execute::{execute, ExecObserver, ExecSettings, VariantOutput};
use crate::pipeline::recorded::EntityIndex;
use crate::pipeline::slots::{BackendFactory, Recordings, StageSet};
use crate::pipeline::VariantSpec;
use crate::results::{RunDir, RunResults, VariantPerTweet};

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub results: RunResults,
    pub run_dir: RunDir,
    /// Variant → per-tweet counts (what `compare` pairs on), as written to the run directory.
    pub per_tweet: BTreeMap<String, VariantPerTweet>,
    pub warnings: Vec<DataWarning>,
}

/// The tweets a plan runs on: the gold, plus the tweets only the recording has (RiVEG's label
/// file lists only tweets with entities; dropping the others would hide predictions), cut to
/// `data.limit` and to the shard.
pub struct RunData {
    pub gold: Dataset,
    pub recording: Option<Dataset>,
    pub warnings: Vec<DataWarning>,
}

/// Loads the plan's gold and recording.
pub fn load_data(plan: &RunPlan) -> Result<RunData, RunError> {
    let suite = &plan.suite;
    let gold_out = sources::load_source(suite, &suite.file.data.gold)?;
    let mut warnings = gold_out.warnings;
    let mut gold = gold_out.dataset;
    let recording = match &suite.file.data.replay {
        Some(src) => {
            let out = sources::load_source(suite, src)?;
            warnings.extend(out.warnings);
            Some(out.dataset)
        }
        None => None,
    };
    if let Some(rec) = &recording {
        let known: HashSet<&str> = gold.tweets.iter().map(|t| t.id.as_str()).collect();
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
    if let Some(shard) = plan.shard {
        let r = shard.range(gold.tweets.len());
        gold.tweets = gold.tweets[r].to_vec();
    }
    Ok(RunData {
        gold,
        recording,
        warnings,
    })
}

/// Runs a plan with the given stage factory and writes its run directory.
pub fn run_plan(plan: &RunPlan, factory: &mut dyn BackendFactory) -> Result<RunOutput, RunError> {
    let data = load_data(plan)?;
    let run_dir = plan.run_dir.clone();
    run_dir.create()?;
    run_dir.write_gold(&data.gold)?;
    run_dir.write_plan(&plan.plan_toml()?)?;

    let suite = &plan.suite;
    let settings = &suite.file.settings;
    let gold_index = Arc::new(EntityIndex::new(&data.gold));
    let recordings = Recordings {
        gold: gold_index,
        recording: data
            .recording
            .as_ref()
            .map(|d| Arc::new(EntityIndex::new(d))),
        replay_missing: settings.replay_missing,
    };
    let images = suite.file.data.images.as_ref().map(|p| suite.resolve(p));
    let cache = StageCache::new(plan.cache_dir.clone());
    let exec = ExecSettings {
        tweets: &data.gold.tweets,
        images: images.as_deref(),
        cache: &cache,
        ve_threshold: settings.ve_threshold,
        warmup: settings.warmup,
        on_error: plan.on_error,
    };
    let results = RunResults {
        suite: suite.file.name.clone(),
        run_id: plan.run_id.clone(),
        meta: meta::run_meta(
            plan.started_unix,
            plan.shard.map(|s| s.to_string()),
            vec![suite
                .resolve(&suite.file.data.gold.path)
                .display()
                .to_string()],
        ),
        variants: Vec::new(),
    };
    let mut writer = RunWriter {
        plan,
        gold: &data.gold,
        run_dir: &run_dir,
        results,
        per_tweet: BTreeMap::new(),
        error: None,
        progress: plan
            .progress
            .then(|| progress_bar(plan, data.gold.tweets.len())),
    };
    writer.results.meta.data_hashes = meta::data_hashes(&meta::suite_data_paths(suite))?;
    let mut stages = StageSet::new(factory, recordings);
    execute(&suite.file.variants, &mut stages, &exec, &mut writer)?;
    if let Some(b) = writer.progress.take() {
        b.finish_and_clear();
    }
    if let Some(e) = writer.error.take() {
        return Err(e);
    }
    // The provider is known once models loaded; results.json is rewritten with it, and the
    // report gets its figures.
    if let Some(ep) = stages.factory().execution_provider() {
        writer.results.meta.execution_provider = ep;
    }
    writer.write_results(true)?;
    let (results, per_tweet) = (writer.results, writer.per_tweet);
    Ok(RunOutput {
        results,
        run_dir,
        per_tweet,
        warnings: data.warnings,
    })
}

/// Scores each finished variant and rewrites results.json and the report (hyperfine-style:
/// what finished is on disk before the next variant is handled).
struct RunWriter<'a> {
    plan: &'a RunPlan,
    gold: &'a Dataset,
    run_dir: &'a RunDir,
    results: RunResults,
    per_tweet: BTreeMap<String, VariantPerTweet>,
    /// The first write error; execution finishes, then the run fails with it.
    error: Option<RunError>,
    progress: Option<indicatif::ProgressBar>,
}

impl RunWriter<'_> {
    /// Rewrites results.json and the report: summary.md only while variants are still running
    /// (figures cost more than everything else here), the figures too once all finished.
    fn write_results(&self, finished: bool) -> Result<(), RunError> {
        self.run_dir.write_results(&self.results)?;
        let mut opts = self.plan.report.clone();
        opts.figures &= finished;
        let files = crate::report::render_run_report(&self.results, &opts)?;
        self.run_dir.write_files(files)?;
        Ok(())
    }

    fn finish_variant(&mut self, v: &VariantSpec, output: &VariantOutput) -> Result<(), RunError> {
        let variant = score::score_output(v, self.gold, output, &self.plan.eval);
        let samples: BTreeMap<String, Vec<f64>> = variant
            .timings
            .iter()
            .map(|(k, t)| (k.clone(), t.samples_ms.clone()))
            .collect();
        let per_tweet = score::per_tweet_of(&variant);
        self.run_dir.write_latency(&v.name, &samples)?;
        self.run_dir
            .write_predictions(&v.name, &output.predictions)?;
        self.run_dir.write_per_tweet(&v.name, &per_tweet)?;
        self.per_tweet.insert(v.name.clone(), per_tweet);
        self.results.variants.push(variant);
        self.write_results(false)
    }
}

impl ExecObserver for RunWriter<'_> {
    fn tweet_done(&mut self, _done: usize, _total: usize) {
        if let Some(b) = &self.progress {
            b.inc(1);
        }
    }

    fn variant_done(&mut self, _index: usize, v: &VariantSpec, output: &VariantOutput) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.finish_variant(v, output) {
            self.error = Some(e);
        }
    }
}

fn progress_bar(plan: &RunPlan, tweets: usize) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(tweets as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} {bar:30} {pos}/{len} tweets {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_prefix(format!(
        "{} x {} variants",
        plan.suite.file.name,
        plan.suite.file.variants.len()
    ));
    b
}

/// An `eval` as a one-variant run (named `eval`): its results and per-tweet counts, for
/// `eval --save-baseline` (stored by `crate::compare::saved` without a temporary run folder).
pub fn eval_run(
    gold: &Dataset,
    pred: &Dataset,
    opts: &EvalOptions,
    description: String,
    gold_label: String,
    run_id: String,
) -> (RunResults, BTreeMap<String, VariantPerTweet>) {
    use crate::stage::StageKind;
    let spec = VariantSpec {
        name: "eval".into(),
        description,
        tagger: StageKind::Replay,
        reformulator: StageKind::Replay,
        entailer: StageKind::Replay,
        grounder: StageKind::Replay,
        segmenter: StageKind::Off,
    };
    let variant = score::score_variant(&spec, gold, pred, opts);
    let per_tweet = BTreeMap::from([(variant.name.clone(), score::per_tweet_of(&variant))]);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let results = RunResults {
        suite: "eval".into(),
        run_id,
        meta: meta::run_meta(started, None, vec![gold_label]),
        variants: vec![variant],
    };
    (results, per_tweet)
}
