//! `aggregate RUN_DIR...`: mean, standard deviation, min, max and n of every metric over runs
//! (seeds, shards of a study, repeated LLM sampling), because published GMNER tables are means
//! over runs. Variants are grouped by name and dataset (the run's gold files).
//!
//! Pure over loaded [`RunResults`]; [`aggregate_dirs`] is the one entry point of the CLI and
//! only reads `results.json` files. The standard deviation is the sample one (n - 1), `null` with
//! fewer than two runs: one run has no spread to report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::eval::EvalReport;
use super::prf::Prf;
use crate::results::{ResultsError, RunResults};

/// Summary statistics of one number over runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (n - 1); null when n < 2.
    pub std: Option<f64>,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    /// The statistics of `values` (None when empty).
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n >= 2).then(|| {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        Some(Stat {
            mean,
            std,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n,
        })
    }
}

/// Precision, recall and F1 of one task over runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrfStats {
    pub precision: Stat,
    pub recall: Stat,
    pub f1: Stat,
}

/// One variant (name + dataset) over runs: protocol → task → stats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatedVariant {
    pub name: String,
    pub dataset: String,
    pub metrics: BTreeMap<String, BTreeMap<String, PrfStats>>,
}

/// `aggregate --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub runs: usize,
    pub variants: Vec<AggregatedVariant>,
}

/// Why `aggregate` could not run.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("no run directories given\n  hint: riveg-bench aggregate reports/<run-1> reports/<run-2> ...")]
    NoRuns,
}

/// The tasks of one report, by name.
fn tasks(r: &EvalReport) -> Vec<(&'static str, Prf)> {
    let mut out = vec![("mner", r.mner), ("eeg", r.eeg), ("gmner", r.gmner)];
    for (name, p) in [
        ("fmner", r.fmner),
        ("fmnerg", r.fmnerg),
        ("fmnerg_coarse", r.fmnerg_coarse),
        ("smner", r.smner),
    ] {
        if let Some(p) = p {
            out.push((name, p));
        }
    }
    out
}

/// The dataset a run was scored on: its gold files, or the suite name when none are recorded.
fn dataset_of(run: &RunResults) -> String {
    if run.meta.gold.is_empty() {
        run.suite.clone()
    } else {
        run.meta.gold.join("+")
    }
}

/// Aggregates every metric of every variant over runs. Variants keep the order of first
/// appearance; a metric missing from some runs (e.g. `span` not applicable) counts the runs that
/// have it (`n`).
pub fn aggregate(runs: &[RunResults]) -> Aggregate {
    type Key = (String, String);
    /// protocol → task → [precision, recall, f1] over runs
    type Lists = BTreeMap<String, BTreeMap<String, [Vec<f64>; 3]>>;
    let mut order: Vec<Key> = Vec::new();
    let mut values: BTreeMap<Key, Lists> = BTreeMap::new();
    for run in runs {
        let dataset = dataset_of(run);
        for v in &run.variants {
            // A multi-dataset run has an entry per (variant, dataset): never pool datasets.
            let dataset = match &v.dataset {
                Some(d) => format!("{dataset} [{d}]"),
                None => dataset.clone(),
            };
            let key = (v.name.clone(), dataset);
            if !values.contains_key(&key) {
                order.push(key.clone());
            }
            let slot = values.entry(key).or_default();
            for (protocol, report) in [("riveg", &v.metrics.riveg), ("span", &v.metrics.span)] {
                let Some(report) = report else { continue };
                for (task, p) in tasks(report) {
                    let cell = slot
                        .entry(protocol.to_string())
                        .or_default()
                        .entry(task.to_string())
                        .or_default();
                    cell[0].push(p.precision);
                    cell[1].push(p.recall);
                    cell[2].push(p.f1);
                }
            }
        }
    }
    let variants = order
        .into_iter()
        .map(|key| {
            let per_protocol = values.remove(&key).unwrap_or_default();
            let metrics = per_protocol
                .into_iter()
                .map(|(protocol, per_task)| {
                    let per_task = per_task
                        .into_iter()
                        .filter_map(|(task, [p, r, f])| {
                            Some((
                                task,
                                PrfStats {
                                    precision: Stat::of(&p)?,
                                    recall: Stat::of(&r)?,
                                    f1: Stat::of(&f)?,
                                },
                            ))
                        })
                        .collect();
                    (protocol, per_task)
                })
                .collect();
            AggregatedVariant {
                name: key.0,
                dataset: key.1,
                metrics,
            }
        })
        .collect();
    Aggregate {
        runs: runs.len(),
        variants,
    }
}

/// `riveg-bench aggregate RUN_DIR...`: loads each run's results.json and aggregates them.
pub fn aggregate_dirs(dirs: &[PathBuf]) -> Result<Aggregate, AggregateError> {
    if dirs.is_empty() {
        return Err(AggregateError::NoRuns);
    }
    let runs = dirs
        .iter()
        .map(|d| RunResults::load(Path::new(d)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(aggregate(&runs))
}

/// The human table: one line per variant, protocol and task, scores in percent.
pub fn render_aggregate(a: &Aggregate) -> String {
    let pct = |s: &Stat| match s.std {
        Some(sd) => format!("{:.2} ± {:.2}", s.mean * 100.0, sd * 100.0),
        None => format!("{:.2} ± n/a", s.mean * 100.0),
    };
    let mut out = format!(
        "{} runs (mean ± sample std, percent; min-max of F1)\n",
        a.runs
    );
    for v in &a.variants {
        out.push_str(&format!("\n{} ({})\n", v.name, v.dataset));
        for (protocol, per_task) in &v.metrics {
            for (task, s) in per_task {
                out.push_str(&format!(
                    "  {protocol:<6} {task:<14} P {:<16} R {:<16} F1 {:<16} [{:.2}-{:.2}] n={}\n",
                    pct(&s.precision),
                    pct(&s.recall),
                    pct(&s.f1),
                    s.f1.min * 100.0,
                    s.f1.max * 100.0,
                    s.f1.n
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_uses_the_sample_std() {
        let s = Stat::of(&[0.8, 0.9, 1.0]).unwrap();
        assert!((s.mean - 0.9).abs() < 1e-12);
        assert!((s.std.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.n), (0.8, 1.0, 3));
        assert_eq!(Stat::of(&[0.5]).unwrap().std, None);
        assert!(Stat::of(&[]).is_none());
    }
}
