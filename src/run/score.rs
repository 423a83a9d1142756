//! Scoring a variant's predictions into its `results.json` entry, with [`crate::metrics`]: the
//! one scoring path of `run`, `merge` and `eval --save-baseline`.

use std::collections::BTreeMap;

use crate::data::model::Dataset;
use crate::metrics::{evaluate, EvalOptions, Protocol};
use crate::pipeline::execute::VariantOutput;
use crate::pipeline::VariantSpec;
use crate::results::{RunDir, VariantMetrics, VariantPerTweet, VariantResult};

/// Scores predictions under both protocols (span: `null` with a reason when the data has no
/// token offsets). Timings, skipped items and model hashes are left empty.
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
        replay_missing: 0,
        predictions: RunDir::predictions_rel(&v.name),
        tweets: gold.tweets.len(),
    }
}

/// Scores an executed variant and adds how it ran (timings, skipped items, model hashes).
pub fn score_output(
    v: &VariantSpec,
    gold: &Dataset,
    output: &VariantOutput,
    opts: &EvalOptions,
) -> VariantResult {
    let mut result = score_variant(v, gold, &output.predictions, opts);
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

/// The per-tweet counts of a scored variant (for the paired bootstrap of `compare`).
pub fn per_tweet_of(v: &VariantResult) -> VariantPerTweet {
    VariantPerTweet {
        riveg: v.metrics.riveg.as_ref().map(|r| r.per_tweet.clone()),
        span: v.metrics.span.as_ref().map(|r| r.per_tweet.clone()),
    }
}
