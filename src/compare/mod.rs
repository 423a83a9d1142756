//! `compare`: two sides (runs, saved baselines, published rows) → per task and metric both values,
//! the delta, a paired-bootstrap CI and p-value where both sides have per-tweet counts, and a
//! verdict; gated metrics decide the exit code. Like criterion: each comparison says which test it
//! used and prints a hint when something is missing. This module must not know how a result was
//! produced, and it must not print: renderers in [`render`] return strings.
//!
//! Verdicts (per metric; `delta = new - base`, fractions):
//! - with a paired bootstrap: **Improved** when `p < alpha` and `delta >= threshold` (and > 0),
//!   **Regressed** when `p < alpha` and `delta <= -threshold` (and < 0), else **No change**. With the
//!   default `threshold = 0` any significant change counts.
//! - without one (a published side, or per-tweet counts missing): no significance test;
//!   **Improved** when `delta > threshold`, **Regressed** when `delta < -threshold`, else No change.
//!   Against a published row the threshold is at least [`PUBLISHED_ROUNDING`] (half the last
//!   printed digit, 0.005 points): a run that reproduces 67.06 as 67.058 has not regressed.
//!
//! Gates ([`CompareOptions::gated`] empty = the default policy): run against run or saved
//! baseline gates `gmner.f1` of every compared variant (a paired bootstrap protects each one).
//! Against a published row nothing is gated unless the user names the variants that should match
//! it (`--variant`, repeatable: the designated main variants; then `gmner.f1` of those) or the
//! gates (`--gate`): the suite's ablation and oracle variants are meant to differ from a paper.
//!
//! Exit code ([`exit_code`]): 1 when a gated metric of a compared variant is Regressed by the
//! rule above, 0 otherwise. Errors (exit code 2) are [`CompareError`]s.

pub mod baselines;
pub mod bootstrap;
pub mod error;
pub mod render;
pub mod saved;
pub mod side;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

pub use baselines::{find_published, published, published_slugs, PublishedRow, PublishedTable};
pub use error::CompareError;
pub use saved::{
    load_saved, load_saved_in, save_baseline, save_baseline_in, saved_root, BASELINE_DIR_ENV,
};
pub use side::{PublishedSide, RunOrigin, RunSide, Side};

use crate::metrics::eval::{EvalReport, PerTweet};
use crate::metrics::{Prf, Protocol};
use crate::task::Task;
use bootstrap::{paired_bootstrap, PairedTask, METRICS};

/// How to compare. `threshold` is an absolute delta as a fraction (0.005 = 0.5 points).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareOptions {
    /// Compare (and gate) only these variants (default: every variant present on both sides).
    pub variants: Vec<String>,
    /// Which protocol's metrics and per-tweet counts of a run to use.
    pub protocol: Protocol,
    /// Bootstrap resamples.
    pub samples: usize,
    pub seed: u64,
    /// Significance level; the CI level is `1 - alpha`.
    pub alpha: f64,
    /// Minimum |delta| (fraction) for a verdict other than No change.
    pub threshold: f64,
    /// `task.metric` keys whose regression fails the comparison (exit code 1); empty = the
    /// default policy (see the module doc). A [`Comparison`] holds the resolved keys.
    pub gated: Vec<String>,
}

/// The gate of the default policy.
pub const DEFAULT_GATE: &str = "gmner.f1";

/// Smallest |delta| (fraction) that counts against a published row: half of the last digit
/// papers print (0.01 points), since the published value is only known to ±0.005 points.
pub const PUBLISHED_ROUNDING: f64 = 0.00005;

/// Default seed of the bootstrap (any fixed value; reported in every comparison).
pub const DEFAULT_SEED: u64 = 0x5EED_0000_2024;

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            variants: Vec::new(),
            protocol: Protocol::Riveg,
            samples: 1000,
            seed: DEFAULT_SEED,
            alpha: 0.05,
            threshold: 0.0,
            gated: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    Regressed,
    NoChange,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Improved => "Improved",
            Verdict::Regressed => "Regressed",
            Verdict::NoChange => "No change",
        }
    }
}

/// What a side is, for headers and JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideInfo {
    pub label: String,
    /// `run`, `saved` or `published`.
    pub kind: String,
    /// Suite and run id, or the published source.
    pub detail: String,
    /// Published rows: what their protocol means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_note: Option<String>,
    /// Published rows from a secondary source.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secondary: bool,
}

/// The test behind a pair's CIs and p-values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TestUsed {
    PairedBootstrap {
        tweets: usize,
        samples: usize,
        seed: u64,
        alpha: f64,
    },
    None {
        reason: String,
    },
}

/// One task and metric of one variant pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// `task.metric`, e.g. `gmner.f1`.
    pub key: String,
    pub task: String,
    pub metric: String,
    pub base: f64,
    pub new: f64,
    pub delta: f64,
    /// CI of the delta at level `1 - alpha` (paired bootstrap only).
    pub ci: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub verdict: Verdict,
    pub gated: bool,
    /// A gated metric that regressed: makes the exit code 1.
    pub gate_failed: bool,
}

/// One variant of the base against one of the new side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantComparison {
    pub base_variant: String,
    pub new_variant: String,
    pub test: TestUsed,
    pub metrics: Vec<MetricComparison>,
    pub notes: Vec<String>,
}

/// The result of [`compare`] (the JSON of `compare --format json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub base: SideInfo,
    pub new: SideInfo,
    pub protocol: Protocol,
    pub options: CompareOptions,
    pub pairs: Vec<VariantComparison>,
    pub notes: Vec<String>,
    /// 1 when a gated metric regressed, else 0 (see [`exit_code`]).
    pub exit_code: i32,
}

impl Comparison {
    /// Every metric that makes the comparison fail.
    pub fn failed_gates(&self) -> Vec<(&VariantComparison, &MetricComparison)> {
        self.pairs
            .iter()
            .flat_map(|p| {
                p.metrics
                    .iter()
                    .filter(|m| m.gate_failed)
                    .map(move |m| (p, m))
            })
            .collect()
    }
}

/// The documented exit code of a comparison: 1 when a gated metric regressed, 0 otherwise.
pub fn exit_code(c: &Comparison) -> i32 {
    if c.pairs
        .iter()
        .any(|p| p.metrics.iter().any(|m| m.gate_failed))
    {
        1
    } else {
        0
    }
}

/// The tasks compared and gated: [`Task::HEADLINE`] (MNER, EEG and GMNER always; FMNERG and
/// SMNER when both sides score them).
const TASKS: [Task; 5] = Task::HEADLINE;

/// Normalises a gate key (`gmner.f1`, `mner.p`, `EEG.Recall`) or says why it is not one.
pub fn parse_gate(key: &str) -> Result<String, CompareError> {
    let bad = || CompareError::BadGate {
        key: key.to_string(),
    };
    let lower = key.trim().to_ascii_lowercase();
    let (task, metric) = lower.split_once('.').ok_or_else(bad)?;
    let task = Task::parse(task)
        .filter(|t| TASKS.contains(t))
        .ok_or_else(bad)?
        .key();
    let metric = match metric {
        "p" | "precision" => "precision",
        "r" | "recall" => "recall",
        "f" | "f1" => "f1",
        _ => return Err(bad()),
    };
    Ok(format!("{task}.{metric}"))
}

/// The scores of one side's variant: task → P/R/F1 (fractions), plus per-tweet counts when saved.
struct SideScores {
    tasks: BTreeMap<String, [Option<f64>; 3]>,
    per_tweet: Option<PerTweet>,
}

fn prf3(p: &Prf) -> [Option<f64>; 3] {
    [Some(p.precision), Some(p.recall), Some(p.f1)]
}

fn report_scores(r: &EvalReport) -> BTreeMap<String, [Option<f64>; 3]> {
    TASKS
        .into_iter()
        .filter_map(|t| r.task(t).map(|p| (t.key().to_string(), prf3(p))))
        .collect()
}

fn side_scores(side: &Side, variant: &str, protocol: Protocol) -> Result<SideScores, CompareError> {
    match side {
        Side::Run(r) => {
            let v = r
                .results
                .variant(variant)
                .ok_or_else(|| CompareError::NoVariant {
                    name: variant.to_string(),
                    side: side.label(),
                    available: side.variant_names().join(", "),
                })?;
            let report = match protocol {
                Protocol::Riveg => v.metrics.riveg.as_ref(),
                Protocol::Span => v.metrics.span.as_ref(),
            };
            let report = report.ok_or_else(|| CompareError::Invalid {
                what: format!(
                    "{}: variant {variant:?} has no {} metrics{}",
                    side.label(),
                    protocol.name(),
                    v.not_applicable
                        .get(protocol.name())
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default()
                ),
                hint: "compare under the other protocol (--protocol riveg|span)".into(),
            })?;
            let per_tweet = r.per_tweet.get(variant).and_then(|pt| match protocol {
                Protocol::Riveg => pt.riveg.clone(),
                Protocol::Span => pt.span.clone(),
            });
            Ok(SideScores {
                tasks: report_scores(report),
                per_tweet,
            })
        }
        Side::Published(p) => {
            let mut tasks = BTreeMap::new();
            for t in TASKS {
                if let Some(s) = p.row.task(t.key()) {
                    tasks.insert(t.key().to_string(), [s.precision, s.recall, s.f1]);
                }
            }
            Ok(SideScores {
                tasks,
                per_tweet: None,
            })
        }
    }
}

/// A run side's label with its directory shown relative to the project (see
/// [`crate::report::markdown::display_path`]), or by its name when it lies elsewhere, so no
/// machine path reaches a report or a figure title.
fn side_label(side: &Side) -> String {
    match side {
        Side::Run(r) => match &r.origin {
            RunOrigin::Run { dir } => {
                let shown = crate::report::markdown::display_path(&dir.display().to_string());
                // Outside the project only the run directory's own name says something.
                let shown = if std::path::Path::new(&shown).is_absolute() {
                    dir.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or(shown)
                } else {
                    shown
                };
                format!("run {shown}")
            }
            RunOrigin::Saved { .. } => side.label(),
        },
        Side::Published(_) => side.label(),
    }
}

fn side_info(side: &Side) -> SideInfo {
    match side {
        Side::Run(r) => SideInfo {
            label: side_label(side),
            kind: match r.origin {
                RunOrigin::Run { .. } => "run".into(),
                RunOrigin::Saved { .. } => "saved".into(),
            },
            detail: format!("suite {}, run {}", r.results.suite, r.results.run_id),
            protocol_note: None,
            secondary: false,
        },
        Side::Published(p) => SideInfo {
            label: side.label(),
            kind: "published".into(),
            detail: format!(
                "{}: {}, {} ({}){}",
                p.row.display_name(),
                p.table.source.authors,
                p.table.source.venue,
                p.table.source.table,
                if p.table.source.arxiv.is_empty() {
                    String::new()
                } else {
                    format!(", arXiv {}", p.table.source.arxiv)
                }
            ),
            protocol_note: Some(format!(
                "{}: {}",
                p.row.protocol,
                p.table.protocol_note(p.row)
            )),
            secondary: p.table.source.secondary,
        },
    }
}

/// `(base variant, new variant)` pairs and notes about variants left out.
type VariantPairs = (Vec<(String, String)>, Vec<String>);

fn variant_pairs(
    base: &Side,
    new: &Side,
    opts: &CompareOptions,
) -> Result<VariantPairs, CompareError> {
    let mut notes = Vec::new();
    let check = |side: &Side, name: &str| -> Result<(), CompareError> {
        if matches!(side, Side::Run(_)) && !side.variant_names().iter().any(|v| v == name) {
            return Err(CompareError::NoVariant {
                name: name.to_string(),
                side: side.label(),
                available: side.variant_names().join(", "),
            });
        }
        Ok(())
    };
    let pairs = match (base, new) {
        (Side::Run(_), Side::Run(_)) => match opts.variants.as_slice() {
            [_, ..] => {
                for v in &opts.variants {
                    check(base, v)?;
                    check(new, v)?;
                }
                opts.variants
                    .iter()
                    .map(|v| (v.clone(), v.clone()))
                    .collect()
            }
            [] => {
                let (bn, nn) = (base.variant_names(), new.variant_names());
                let common: Vec<(String, String)> = bn
                    .iter()
                    .filter(|v| nn.contains(v))
                    .map(|v| (v.clone(), v.clone()))
                    .collect();
                if !common.is_empty() {
                    for v in bn.iter().filter(|v| !nn.contains(v)) {
                        notes.push(format!(
                            "variant {v} is only in {}: not compared",
                            base.label()
                        ));
                    }
                    for v in nn.iter().filter(|v| !bn.contains(v)) {
                        notes.push(format!(
                            "variant {v} is only in {}: not compared",
                            new.label()
                        ));
                    }
                    common
                } else if bn.len() == 1 && nn.len() == 1 {
                    notes.push(format!(
                        "the only variants differ in name ({} vs {}): compared with each other",
                        bn[0], nn[0]
                    ));
                    vec![(bn[0].clone(), nn[0].clone())]
                } else {
                    return Err(CompareError::NoCommonVariant {
                        base: base.label(),
                        new: new.label(),
                        base_variants: bn.join(", "),
                        new_variants: nn.join(", "),
                    });
                }
            }
        },
        (Side::Run(_), Side::Published(p)) | (Side::Published(p), Side::Run(_)) => {
            let run = if matches!(base, Side::Run(_)) {
                base
            } else {
                new
            };
            let variants = if opts.variants.is_empty() {
                run.variant_names()
            } else {
                for v in &opts.variants {
                    check(run, v)?;
                }
                opts.variants.clone()
            };
            let slug = p.row.slug.clone();
            variants
                .into_iter()
                .map(|v| {
                    if matches!(base, Side::Run(_)) {
                        (v, slug.clone())
                    } else {
                        (slug.clone(), v)
                    }
                })
                .collect()
        }
        (Side::Published(a), Side::Published(b)) => vec![(a.row.slug.clone(), b.row.slug.clone())],
    };
    Ok((pairs, notes))
}

/// Maps `new`'s tweet order onto `base`'s: `order[i]` is the index in `new` of `base.ids[i]`.
fn align_ids(variant: &str, base: &PerTweet, new: &PerTweet) -> Result<Vec<usize>, CompareError> {
    if base.ids == new.ids {
        return Ok((0..base.ids.len()).collect());
    }
    let index: HashMap<&str, usize> = new
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let base_unique: std::collections::HashSet<&str> =
        base.ids.iter().map(String::as_str).collect();
    let only_base: Vec<&str> = base
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| !index.contains_key(id))
        .collect();
    let only_new: Vec<&str> = new
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| !base_unique.contains(id))
        .collect();
    if !only_base.is_empty()
        || !only_new.is_empty()
        || index.len() != new.ids.len()
        || base_unique.len() != base.ids.len()
    {
        let first = |v: &[&str]| v.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        return Err(CompareError::TweetsDiffer {
            variant: variant.to_string(),
            detail: format!(
                "base has {} tweets, new has {}; {} only in base (e.g. {}), {} only in new (e.g. {}){}",
                base.ids.len(),
                new.ids.len(),
                only_base.len(),
                first(&only_base),
                only_new.len(),
                first(&only_new),
                if index.len() != new.ids.len() || base_unique.len() != base.ids.len() {
                    "; some ids repeat in a different order"
                } else {
                    ""
                }
            ),
        });
    }
    Ok(base.ids.iter().map(|id| index[id.as_str()]).collect())
}

fn verdict_with(delta: f64, p_value: Option<f64>, alpha: f64, threshold: f64) -> Verdict {
    match p_value {
        Some(p) if p < alpha && delta > 0.0 && delta >= threshold => Verdict::Improved,
        Some(p) if p < alpha && delta < 0.0 && -delta >= threshold => Verdict::Regressed,
        Some(_) => Verdict::NoChange,
        None if delta > threshold => Verdict::Improved,
        None if delta < -threshold => Verdict::Regressed,
        None => Verdict::NoChange,
    }
}

/// Compares `new` against `base` (see the module doc for the test and the verdicts).
pub fn compare(base: &Side, new: &Side, opts: &CompareOptions) -> Result<Comparison, CompareError> {
    if opts.samples == 0
        || !(opts.alpha > 0.0 && opts.alpha < 1.0)
        || opts.threshold < 0.0
        || !opts.threshold.is_finite()
    {
        return Err(CompareError::Invalid {
            what: format!(
                "bad test settings: samples {}, alpha {}, threshold {}",
                opts.samples, opts.alpha, opts.threshold
            ),
            hint: "samples >= 1, 0 < alpha < 1, threshold >= 0 (a fraction: 0.005 = 0.5 points)"
                .into(),
        });
    }
    let published = matches!(base, Side::Published(_)) || matches!(new, Side::Published(_));
    let (pairs, mut notes) = variant_pairs(base, new, opts)?;
    let gated: Vec<String> = if !opts.gated.is_empty() {
        opts.gated
            .iter()
            .map(|g| parse_gate(g))
            .collect::<Result<_, _>>()?
    } else if published && opts.variants.is_empty() {
        notes.push(
            "nothing gated: against a published row only the variants you name are gated \
             (--variant NAME, repeatable; or --gate task.metric)"
                .into(),
        );
        Vec::new()
    } else {
        vec![DEFAULT_GATE.to_string()]
    };
    // Published numbers are rounded to 0.01 points: smaller deltas are no evidence of a change.
    let threshold = if published {
        opts.threshold.max(PUBLISHED_ROUNDING)
    } else {
        opts.threshold
    };
    for side in [base, new] {
        if let Side::Published(p) = side {
            if !p.row.is_riveg_protocol() {
                notes.push(format!(
                    "{} is {}: its protocol may differ from this run's {} protocol",
                    p.row.display_name(),
                    p.table.protocol_note(p.row),
                    opts.protocol.name()
                ));
            } else if opts.protocol != Protocol::Riveg {
                notes.push(format!(
                    "{} was scored with the RiVEG seed protocol, the run side with the {} protocol",
                    p.row.display_name(),
                    opts.protocol.name()
                ));
            }
            if p.table.source.secondary {
                notes.push(format!(
                    "{} comes from a secondary source (approximate F1 only); check the original paper",
                    p.row.display_name()
                ));
            }
        }
    }

    let mut out_pairs = Vec::new();
    for (bv, nv) in pairs {
        let b = side_scores(base, &bv, opts.protocol)?;
        let n = side_scores(new, &nv, opts.protocol)?;
        let mut pair_notes = Vec::new();
        let tasks: Vec<&str> = TASKS
            .into_iter()
            .map(Task::key)
            .filter(|t| b.tasks.contains_key(*t) && n.tasks.contains_key(*t))
            .collect();
        for t in TASKS
            .into_iter()
            .filter(|t| !t.always_scored())
            .map(Task::key)
        {
            if b.tasks.contains_key(t) != n.tasks.contains_key(t) {
                pair_notes.push(format!("{t} is scored on one side only: not compared"));
            }
        }

        // Paired bootstrap when both sides carry per-tweet counts.
        let (test, stats) = match (&b.per_tweet, &n.per_tweet) {
            _ if published => (
                TestUsed::None {
                    reason: "no significance test: published numbers only".into(),
                },
                BTreeMap::new(),
            ),
            (Some(bp), Some(np)) => {
                let order = align_ids(&bv, bp, np)?;
                let reordered: BTreeMap<&str, Vec<[u32; 3]>> = np
                    .counts
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str(),
                            order
                                .iter()
                                .map(|&i| v.get(i).copied().unwrap_or([0; 3]))
                                .collect(),
                        )
                    })
                    .collect();
                let paired: Vec<PairedTask<'_>> = tasks
                    .iter()
                    .filter_map(|t| {
                        let bc = bp.counts.get(*t)?;
                        let nc = reordered.get(t)?;
                        (bc.len() == bp.ids.len()).then_some(PairedTask {
                            task: t,
                            base: bc,
                            new: nc,
                        })
                    })
                    .collect();
                for t in &tasks {
                    if !paired.iter().any(|p| p.task == *t) {
                        pair_notes.push(format!(
                            "{t}: per-tweet counts missing on one side: no significance test"
                        ));
                    }
                }
                (
                    TestUsed::PairedBootstrap {
                        tweets: bp.ids.len(),
                        samples: opts.samples,
                        seed: opts.seed,
                        alpha: opts.alpha,
                    },
                    paired_bootstrap(&paired, opts.samples, opts.seed, opts.alpha),
                )
            }
            _ => {
                let missing: Vec<String> = [(base, &bv, &b.per_tweet), (new, &nv, &n.per_tweet)]
                    .iter()
                    .filter(|(_, _, pt)| pt.is_none())
                    .map(|(s, v, _)| format!("{} variant {v}", s.label()))
                    .collect();
                (
                    TestUsed::None {
                        reason: format!(
                            "no significance test: per-tweet counts ({} protocol) missing for {}",
                            opts.protocol.name(),
                            missing.join(" and ")
                        ),
                    },
                    BTreeMap::new(),
                )
            }
        };

        let mut metrics = Vec::new();
        for t in &tasks {
            for (mi, m) in METRICS.iter().enumerate() {
                let (Some(bval), Some(nval)) = (b.tasks[*t][mi], n.tasks[*t][mi]) else {
                    continue;
                };
                let key = format!("{t}.{m}");
                let stat = stats.get(&(t.to_string(), m.to_string()));
                let delta = nval - bval;
                let p_value = stat.map(|s| s.p_value);
                let v = verdict_with(delta, p_value, opts.alpha, threshold);
                let is_gated = gated.contains(&key);
                metrics.push(MetricComparison {
                    key,
                    task: t.to_string(),
                    metric: m.to_string(),
                    base: bval,
                    new: nval,
                    delta,
                    ci: stat.map(|s| s.ci),
                    p_value,
                    verdict: v,
                    gated: is_gated,
                    gate_failed: is_gated && v == Verdict::Regressed,
                });
            }
        }
        for g in &gated {
            if !metrics.iter().any(|m| &m.key == g) {
                pair_notes.push(format!(
                    "gated metric {g} is not available on both sides: not checked"
                ));
            }
        }
        out_pairs.push(VariantComparison {
            base_variant: bv,
            new_variant: nv,
            test,
            metrics,
            notes: pair_notes,
        });
    }

    let mut c = Comparison {
        base: side_info(base),
        new: side_info(new),
        protocol: opts.protocol,
        options: CompareOptions {
            gated,
            threshold,
            ..opts.clone()
        },
        pairs: out_pairs,
        notes,
        exit_code: 0,
    };
    c.exit_code = exit_code(&c);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_keys_are_normalised() {
        assert_eq!(parse_gate("GMNER.F1").unwrap(), "gmner.f1");
        assert_eq!(parse_gate("mner.p").unwrap(), "mner.precision");
        assert!(parse_gate("gmner").is_err());
        assert!(parse_gate("foo.f1")
            .unwrap_err()
            .to_string()
            .contains("hint"));
    }

    #[test]
    fn verdict_rules() {
        let o = CompareOptions {
            threshold: 0.01,
            ..CompareOptions::default()
        };
        let verdict = |d, p, o: &CompareOptions| verdict_with(d, p, o.alpha, o.threshold);
        assert_eq!(verdict(-0.02, Some(0.01), &o), Verdict::Regressed);
        assert_eq!(verdict(-0.005, Some(0.01), &o), Verdict::NoChange);
        assert_eq!(verdict(-0.02, Some(0.2), &o), Verdict::NoChange);
        assert_eq!(verdict(0.02, Some(0.0), &o), Verdict::Improved);
        assert_eq!(verdict(-0.02, None, &o), Verdict::Regressed);
        assert_eq!(
            verdict(0.0, None, &CompareOptions::default()),
            Verdict::NoChange
        );
        // Against a published row: a run of 67.058 against a printed 67.06 is rounding.
        assert_eq!(
            verdict_with(0.67058 - 0.6706, None, 0.05, PUBLISHED_ROUNDING),
            Verdict::NoChange
        );
        assert_eq!(
            verdict_with(0.6700 - 0.6706, None, 0.05, PUBLISHED_ROUNDING),
            Verdict::Regressed
        );
    }

    #[test]
    fn published_against_published_is_a_plain_delta() {
        let base = Side::published("h-index").unwrap();
        let new = Side::published("riveg-roberta-dagger").unwrap();
        let c = compare(&base, &new, &CompareOptions::default()).unwrap();
        assert_eq!(c.exit_code, 0);
        let f1 = c.pairs[0]
            .metrics
            .iter()
            .find(|m| m.key == "gmner.f1")
            .unwrap();
        assert!((f1.delta - (0.6706 - 0.5641)).abs() < 1e-12);
        assert_eq!((f1.verdict, f1.p_value), (Verdict::Improved, None));
        assert!(
            matches!(&c.pairs[0].test, TestUsed::None { reason } if reason.contains("published numbers only"))
        );
        // Published against published: nothing gated by default; a named gate decides.
        let back = compare(&new, &base, &CompareOptions::default()).unwrap();
        assert_eq!(exit_code(&back), 0);
        let gated = CompareOptions {
            gated: vec!["gmner.f1".into()],
            ..CompareOptions::default()
        };
        assert_eq!(exit_code(&compare(&new, &base, &gated).unwrap()), 1);
    }

    #[test]
    fn unknown_published_slug_lists_the_slugs() {
        let e = Side::published("nope").unwrap_err().to_string();
        assert!(
            e.contains("riveg-roberta-dagger") && e.contains("hint"),
            "{e}"
        );
    }
}
