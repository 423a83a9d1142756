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

/// Every benchmark under a criterion directory, sorted by id. Unreadable files are skipped with
/// their path returned in the second list.
///
/// A benchmark is a folder holding `new/estimates.json`; its `new`, `base`, `change` and `report`
/// subfolders are criterion's own and are not searched. Any other folder is searched whatever its
/// name, so a bench group or function called `report`, `base` or `change` is still found
/// (criterion's HTML `report` folders hold no `new/estimates.json` and simply yield nothing).
pub fn read_criterion_dir(dir: &Path) -> (Vec<CriterionEstimate>, Vec<PathBuf>) {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let new_dir = d.join("new");
        let est = new_dir.join("estimates.json");
        let is_benchmark = d != dir && est.is_file();
        if is_benchmark {
            match read_one(dir, &new_dir) {
                Some(e) => found.push(e),
                None => bad.push(est),
            }
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            let criterion_own = is_benchmark
                && p.file_name()
                    .is_some_and(|n| n == "new" || n == "base" || n == "change" || n == "report");
            if p.is_dir() && !criterion_own {
                stack.push(p);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bench(root: &Path, id: &str, folder: &str, mean: f64) {
        let d = root.join(id).join(folder);
        std::fs::create_dir_all(&d).unwrap();
        let e = |v: f64| {
            format!(
                r#"{{"point_estimate":{v},"confidence_interval":{{"lower_bound":{},"upper_bound":{}}}}}"#,
                v - 1.0,
                v + 1.0
            )
        };
        std::fs::write(
            d.join("estimates.json"),
            format!(
                r#"{{"mean":{},"median":{},"std_dev":{},"slope":null}}"#,
                e(mean),
                e(mean),
                e(1.0)
            ),
        )
        .unwrap();
    }

    #[test]
    fn a_group_named_report_is_read_and_criterion_folders_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // A bench group called `report`, next to criterion's own top-level HTML `report/`.
        write_bench(root, "report/render", "new", 42.0);
        std::fs::write(root.join("report/index.html"), "<html></html>").unwrap();
        write_bench(root, "eval/gmner/100", "new", 7.0);
        // The previous run's estimates (`base`) and a per-benchmark HTML report are not benchmarks.
        write_bench(root, "eval/gmner/100", "base", 9.0);
        std::fs::create_dir_all(root.join("eval/gmner/100/report")).unwrap();
        std::fs::create_dir_all(root.join("eval/report")).unwrap();
        // A function called `base` is a benchmark like any other.
        write_bench(root, "geometry/base", "new", 3.0);
        let (found, bad) = read_criterion_dir(root);
        assert!(bad.is_empty(), "{bad:?}");
        let got: Vec<(&str, f64)> = found.iter().map(|e| (e.id.as_str(), e.mean_ns)).collect();
        assert_eq!(
            got,
            [
                ("eval/gmner/100", 7.0),
                ("geometry/base", 3.0),
                ("report/render", 42.0)
            ]
        );
        assert_eq!(found[2].typical_ci_ns, Some([41.0, 43.0]));
    }
}
