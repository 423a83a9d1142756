//! Scoring a variant's predictions into its `results.json` entry, with [`crate::metrics`]: the
//! one scoring path of `run`, `merge` and `eval --save-baseline`.

use std::collections::BTreeMap;

use crate::data::model::Dataset;
use crate::metrics::EvalReport;
use crate::metrics::{evaluate, EvalOptions, Protocol};
use crate::pipeline::execute::VariantOutput;
use crate::pipeline::VariantSpec;
use crate::results::{RunDir, VariantMetrics, VariantPerTweet, VariantResult};
use crate::task::Task;

use super::suite::DataSection;

/// The options of one protocol's slot: a compat mode (`settings.compat`, `run --compat`)
/// scores the slot of the protocol its scorer keys by (entity string: `riveg`, span: `span`);
/// the other slot keeps the plain protocol, so both stay comparable with compat-free runs.
fn slot_options(opts: &EvalOptions, protocol: Protocol) -> EvalOptions {
    EvalOptions {
        protocol,
        compat: opts.compat.filter(|c| c.protocol() == protocol),
        ..*opts
    }
}

/// Scores predictions under both protocols (span: `null` with a reason when the data has no
/// token offsets) on `dataset` (`None`: an `eval`, or a `[data]` suite's dataset given as
/// such). Timings, skipped items and model hashes are left empty.
pub fn score_variant(
    v: &VariantSpec,
    dataset: Option<&DataSection>,
    gold: &Dataset,
    pred: &Dataset,
    opts: &EvalOptions,
) -> VariantResult {
    let mut not_applicable = BTreeMap::new();
    let mut riveg = evaluate(gold, pred, &slot_options(opts, Protocol::Riveg)).ok();
    let mut span = match evaluate(gold, pred, &slot_options(opts, Protocol::Span)) {
        Ok(r) => Some(r),
        Err(e) => {
            not_applicable.insert("span".to_string(), e.0);
            None
        }
    };
    let mut not_scored = BTreeMap::new();
    if let Some(d) = dataset {
        for r in [&mut riveg, &mut span].into_iter().flatten() {
            for t in Task::ALL {
                if !d.tasks.is_empty() && !d.tasks.contains(&t) {
                    drop_task(r, t);
                }
            }
        }
        let report = riveg.as_ref().or(span.as_ref());
        for t in Task::ALL {
            if report.is_some_and(|r| r.task(t).is_some()) {
                continue;
            }
            let why = match d.not_scored.get(&t) {
                Some(why) => why.clone(),
                None if !d.tasks.is_empty() && !d.tasks.contains(&t) => {
                    "not among the dataset's tasks".to_string()
                }
                None => unscored_reason(t, gold, pred),
            };
            not_scored.insert(t.key().to_string(), why);
        }
    }
    let dataset_name = dataset.and_then(|d| d.name.clone());
    let key = RunDir::entry_key(dataset_name.as_deref(), &v.name);
    VariantResult {
        dataset: dataset_name,
        not_scored,
        name: v.name.clone(),
        description: v.description.clone(),
        stages: v.stages(),
        metrics: VariantMetrics { riveg, span },
        not_applicable,
        timings: BTreeMap::new(),
        skipped: 0,
        skipped_items: Vec::new(),
        model_hashes: BTreeMap::new(),
        replay_missing: 0,
        predictions: RunDir::predictions_rel(&key),
        tweets: gold.tweets.len(),
    }
}

/// Removes a task a dataset does not score from a report (the always-scored tasks stay: a
/// suite cannot leave them out, see `Suite::validate`), with its per-tweet counts.
fn drop_task(r: &mut EvalReport, t: Task) {
    match t {
        Task::Mner | Task::Eeg | Task::Gmner => return,
        Task::Fmner => r.fmner = None,
        Task::Fmnerg => r.fmnerg = None,
        Task::FmnergCoarse => r.fmnerg_coarse = None,
        Task::Smner => r.smner = None,
    }
    r.per_tweet.counts.remove(t.key());
}

/// Why the scorer left a task out (the data it needs is missing), for `not_scored`.
fn unscored_reason(t: Task, gold: &Dataset, pred: &Dataset) -> String {
    match t {
        Task::Fmner | Task::Fmnerg | Task::FmnergCoarse if !gold.has_fine_types() => {
            "the gold has no fine types".into()
        }
        Task::Fmner | Task::Fmnerg | Task::FmnergCoarse if !pred.has_fine_types() => {
            "the predictions have no fine types (this variant's tagger gives coarse types only)"
                .into()
        }
        Task::Smner if !gold.has_masks() => "the gold has no masks".into(),
        _ => "not scored by this protocol".into(),
    }
}

/// Scores an executed variant and adds how it ran (timings, skipped items, model hashes).
pub fn score_output(
    v: &VariantSpec,
    dataset: Option<&DataSection>,
    gold: &Dataset,
    output: &VariantOutput,
    opts: &EvalOptions,
) -> VariantResult {
    let mut result = score_variant(v, dataset, gold, &output.predictions, opts);
    result.description = describe(v, output.replay_missing);
    result.replay_missing = output.replay_missing;
    result.timings = output.timings.clone();
    result.skipped = output.skipped.len();
    result.skipped_items = output.skipped.clone();
    result.model_hashes = output.model_hashes.clone();
    result
}

/// The variant's description, with a note when replay look-ups fell back to the negative answer.
pub fn describe(v: &VariantSpec, replay_missing: usize) -> String {
    if replay_missing == 0 {
        v.description.clone()
    } else {
        format!(
            "{} [{} replay look-ups (reformulation, VE, VG) found no recorded answer and got the negative one]",
            v.description, replay_missing
        )
    }
}

/// Writes an entry's outcome frame (`outcomes/<key>.csv`, see [`RunDir::outcomes_rel`]): one
/// row per gold and predicted entity under the `riveg` protocol (with the suite's compat mode
/// when it keys entities the same way), so it exists for every variant, spans or not.
pub fn write_outcomes(
    run_dir: &RunDir,
    key: &str,
    gold: &Dataset,
    pred: &Dataset,
    opts: &EvalOptions,
) -> Result<(), super::RunError> {
    use crate::metrics::outcomes::{frame_csv, outcome_frame, outcomes, OutcomesError};
    let rows =
        outcomes(gold, pred, &slot_options(opts, Protocol::Riveg)).map_err(OutcomesError::from)?;
    let df = outcome_frame(&rows).map_err(OutcomesError::from)?;
    run_dir.write_outcomes(key, frame_csv(&df).as_bytes())?;
    Ok(())
}

/// The per-tweet counts of a scored variant (for the paired bootstrap of `compare`).
pub fn per_tweet_of(v: &VariantResult) -> VariantPerTweet {
    VariantPerTweet {
        riveg: v.metrics.riveg.as_ref().map(|r| r.per_tweet.clone()),
        span: v.metrics.span.as_ref().map(|r| r.per_tweet.clone()),
    }
}
