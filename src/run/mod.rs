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
pub use suite::{DataSection, Suite, SuiteError, DEFAULT_SUITE};

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

/// The tweets a plan runs on for one dataset: the gold, plus the tweets only the recording has
/// (RiVEG's label file lists only tweets with entities; dropping the others would hide
/// predictions), cut to the dataset's `limit` and to the shard.
pub struct RunData {
    pub gold: Dataset,
    pub recording: Option<Dataset>,
    pub warnings: Vec<DataWarning>,
}

/// Loads one dataset's gold and recording.
pub fn load_data(plan: &RunPlan, dataset: &DataSection) -> Result<RunData, RunError> {
    let suite = &plan.suite;
    let gold_out = sources::load_source(suite, &dataset.gold)?;
    let mut warnings = gold_out.warnings;
    let mut gold = gold_out.dataset;
    let recording = match &dataset.replay {
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
    if let Some(limit) = dataset.limit {
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

/// Runs a plan with the given stage factory and writes its run directory: every dataset in
/// suite order, on each the variants that apply to it (one pipeline execution per dataset,
/// sharing the stage cache and the factory's loaded models).
pub fn run_plan(plan: &RunPlan, factory: &mut dyn BackendFactory) -> Result<RunOutput, RunError> {
    let run_dir = plan.run_dir.clone();
    run_dir.create()?;
    run_dir.write_plan(&plan.plan_toml()?)?;

    let suite = &plan.suite;
    let settings = &suite.file.settings;
    let datasets = suite.datasets();
    let cache = StageCache::new(plan.cache_dir.clone());
    let mut results = RunResults {
        suite: suite.file.name.clone(),
        run_id: plan.run_id.clone(),
        meta: meta::run_meta(
            plan.started_unix,
            plan.shard.map(|s| s.to_string()),
            datasets
                .iter()
                .map(|d| suite.resolve(&d.gold.path).display().to_string())
                .collect(),
        ),
        variants: Vec::new(),
    };
    results.meta.data_hashes = meta::data_hashes(&meta::suite_data_paths(suite))?;
    let mut per_tweet = BTreeMap::new();
    let mut warnings = Vec::new();
    for dataset in datasets {
        let data = load_data(plan, dataset)?;
        run_dir.write_gold(dataset.name.as_deref(), &data.gold)?;
        let variants: Vec<VariantSpec> = suite
            .file
            .variants
            .iter()
            .filter(|v| dataset.applies_to(&v.name))
            .cloned()
            .collect();
        let recordings = Recordings {
            gold: Arc::new(EntityIndex::new(&data.gold)),
            recording: data
                .recording
                .as_ref()
                .map(|d| Arc::new(EntityIndex::new(d))),
            replay_missing: settings.replay_missing,
        };
        let images = dataset.images.as_ref().map(|p| suite.resolve(p));
        let exec = ExecSettings {
            tweets: &data.gold.tweets,
            images: images.as_deref(),
            cache: &cache,
            ve_threshold: settings.ve_threshold,
            warmup: settings.warmup,
            on_error: plan.on_error,
            batch: suite.file.runtime.batch(),
            image_batch: suite.file.runtime.image_batch(),
            window: None,
        };
        let mut writer = RunWriter {
            plan,
            dataset,
            gold: &data.gold,
            run_dir: &run_dir,
            results,
            per_tweet,
            error: None,
            progress: plan
                .progress
                .then(|| progress_bar(plan, dataset, variants.len(), data.gold.tweets.len())),
        };
        let mut stages = StageSet::new(&mut *factory, recordings);
        execute(&variants, &mut stages, &exec, &mut writer)?;
        if let Some(b) = writer.progress.take() {
            b.finish_and_clear();
        }
        if let Some(e) = writer.error.take() {
            return Err(e);
        }
        // The provider is known once models loaded; results.json is rewritten with it at the
        // end, when the report gets its figures.
        if let Some(ep) = stages.factory().execution_provider() {
            writer.results.meta.execution_provider = ep;
        }
        writer.results.meta.llm = stages.factory().llm_meta();
        (results, per_tweet) = (writer.results, writer.per_tweet);
        warnings.extend(data.warnings);
    }
    if cache.rejected() > 0 {
        log::warn!(
            "stage cache: {} damaged entr(y/ies) recomputed (see the warnings above)",
            cache.rejected()
        );
    }
    write_results(plan, &run_dir, &results, true)?;
    Ok(RunOutput {
        results,
        run_dir,
        per_tweet,
        warnings,
    })
}

/// Rewrites results.json and the report: summary.md only while variants are still running
/// (figures cost more than everything else here), the figures too once all finished.
fn write_results(
    plan: &RunPlan,
    run_dir: &RunDir,
    results: &RunResults,
    finished: bool,
) -> Result<(), RunError> {
    run_dir.write_results(results)?;
    let mut opts = plan.report.clone();
    opts.figures &= finished;
    let files = crate::report::render_run_report(results, &opts)?;
    run_dir.write_files(files)?;
    Ok(())
}

/// Scores each finished variant and rewrites results.json and the report (hyperfine-style:
/// what finished is on disk before the next variant is handled).
struct RunWriter<'a> {
    plan: &'a RunPlan,
    dataset: &'a DataSection,
    gold: &'a Dataset,
    run_dir: &'a RunDir,
    results: RunResults,
    /// Entry key ([`RunDir::entry_key`]) → per-tweet counts.
    per_tweet: BTreeMap<String, VariantPerTweet>,
    /// The first write error; execution finishes, then the run fails with it.
    error: Option<RunError>,
    progress: Option<indicatif::ProgressBar>,
}

impl RunWriter<'_> {
    fn finish_variant(&mut self, v: &VariantSpec, output: &VariantOutput) -> Result<(), RunError> {
        let variant =
            score::score_output(v, Some(self.dataset), self.gold, output, &self.plan.eval);
        let key = variant.key();
        let samples: BTreeMap<String, Vec<f64>> = variant
            .timings
            .iter()
            .map(|(k, t)| (k.clone(), t.samples_ms.clone()))
            .collect();
        let per_tweet = score::per_tweet_of(&variant);
        self.run_dir.write_latency(&key, &samples)?;
        self.run_dir.write_predictions(&key, &output.predictions)?;
        self.run_dir.write_per_tweet(&key, &per_tweet)?;
        score::write_outcomes(
            self.run_dir,
            &key,
            self.gold,
            &output.predictions,
            &self.plan.eval,
        )?;
        self.per_tweet.insert(key, per_tweet);
        self.results.variants.push(variant);
        write_results(self.plan, self.run_dir, &self.results, false)
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

fn progress_bar(
    plan: &RunPlan,
    dataset: &DataSection,
    variants: usize,
    tweets: usize,
) -> indicatif::ProgressBar {
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
    let on = dataset
        .name
        .as_deref()
        .map(|d| format!(" on {d}"))
        .unwrap_or_default();
    b.set_prefix(format!(
        "{} x {variants} variants{on}",
        plan.suite.file.name
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
        knowledge: None,
        tagger: StageKind::Replay,
        reformulator: StageKind::Replay,
        entailer: StageKind::Replay,
        grounder: StageKind::Replay,
        segmenter: StageKind::Off,
    };
    let variant = score::score_variant(&spec, None, gold, pred, opts);
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
