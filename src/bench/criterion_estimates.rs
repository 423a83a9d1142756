//! Reads criterion's saved estimates (`target/criterion/<group>/<function>[/<value>]/new/estimates.json`)
//! so reports can plot throughput and latency from `cargo bench` runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One benchmark's point estimates, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionEstimate {
    /// `group/function[/value]`.
    pub id: String,
    pub mean_ns: f64,
    pub median_ns: f64,
    pub std_dev_ns: f64,
    /// The slope of criterion's linear regression (absent in flat sampling mode).
    #[serde(default)]
    pub slope_ns: Option<f64>,
    /// Confidence interval of [`CriterionEstimate::typical_ns`] (criterion's `time: [lo .. hi]`).
    #[serde(default)]
    pub typical_ci_ns: Option<[f64; 2]>,
    /// Elements per iteration when the bench declared `Throughput::Elements`.
    #[serde(default)]
    pub elements: Option<u64>,
}

impl CriterionEstimate {
    /// What criterion reports as `time:` (its `typical` estimate): the slope when it has one,
    /// else the mean.
    pub fn typical_ns(&self) -> f64 {
        self.slope_ns.unwrap_or(self.mean_ns)
    }
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    #[serde(default)]
    confidence_interval: Option<Interval>,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct Estimates {
    mean: Estimate,
    median: Estimate,
    std_dev: Estimate,
    #[serde(default)]
    slope: Option<Estimate>,
}

#[derive(Deserialize)]
struct BenchmarkJson {
    #[serde(default)]
    throughput: Option<serde_json::Value>,
}

/// Every `new/estimates.json` under a criterion directory, sorted by id. Unreadable files are
/// skipped with their path returned in the second list.
pub fn read_criterion_dir(dir: &Path) -> (Vec<CriterionEstimate>, Vec<PathBuf>) {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let est = p.join("estimates.json");
                    if est.is_file() {
                        match read_one(dir, &p) {
                            Some(e) => found.push(e),
                            None => bad.push(est),
                        }
                    }
                } else if p
                    .file_name()
                    .is_some_and(|n| n != "report" && n != "base" && n != "change")
                {
                    stack.push(p);
                }
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    bad.sort();
    (found, bad)
}

fn read_one(root: &Path, new_dir: &Path) -> Option<CriterionEstimate> {
    let est: Estimates =
        serde_json::from_str(&std::fs::read_to_string(new_dir.join("estimates.json")).ok()?)
            .ok()?;
    let elements = std::fs::read_to_string(new_dir.join("benchmark.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<BenchmarkJson>(&t).ok())
        .and_then(|b| b.throughput)
        .and_then(|t| t.get("Elements").and_then(|v| v.as_u64()));
    let id = new_dir
        .parent()?
        .strip_prefix(root)
        .ok()?
        .to_string_lossy()
        .replace('\\', "/");
    let typical = est.slope.as_ref().unwrap_or(&est.mean);
    let typical_ci_ns = typical
        .confidence_interval
        .as_ref()
        .map(|i| [i.lower_bound, i.upper_bound]);
    Some(CriterionEstimate {
        slope_ns: est.slope.as_ref().map(|s| s.point_estimate),
        typical_ci_ns,
        id,
        mean_ns: est.mean.point_estimate,
        median_ns: est.median.point_estimate,
        std_dev_ns: est.std_dev.point_estimate,
        elements,
    })
}
