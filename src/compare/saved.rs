//! Saved baselines (`--save-baseline NAME`): a copy of a run's `results.json` and
//! `per_tweet/<variant>.json` under `baselines/saved/NAME/` (or `$RIVEG_BENCH_BASELINE_DIR/NAME/`),
//! plus `baseline.json` saying where it came from. Like criterion's `--save-baseline`: saving the
//! same name again replaces it. This module must not compare anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::CompareError;
use super::side::{load_per_tweet, load_results, RunOrigin, RunSide, Side};
use crate::io_util::write_atomic;
use crate::results::{RunDir, RunResults, VariantPerTweet};

/// Environment variable that moves the saved-baseline directory.
pub const BASELINE_DIR_ENV: &str = "RIVEG_BENCH_BASELINE_DIR";

/// Default saved-baseline directory, relative to the working directory.
pub const DEFAULT_SAVED_DIR: &str = "baselines/saved";

/// `$RIVEG_BENCH_BASELINE_DIR` when set and not empty, else `baselines/saved`.
pub fn saved_root() -> PathBuf {
    match std::env::var_os(BASELINE_DIR_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_SAVED_DIR),
    }
}

/// `baseline.json`: provenance of a saved baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedBaselineInfo {
    pub name: String,
    /// The run directory it was saved from, as given.
    pub saved_from: String,
    pub suite: String,
    pub run_id: String,
    /// Variants whose per-tweet counts were saved (paired bootstrap possible).
    pub variants_with_per_tweet: Vec<String>,
}

fn check_name(name: &str) -> Result<(), CompareError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CompareError::BadName {
            name: name.to_string(),
        })
    }
}

/// Saves a run directory as baseline `name` under [`saved_root`]; returns the baseline directory.
pub fn save_baseline(run_dir: &Path, name: &str) -> Result<PathBuf, CompareError> {
    save_baseline_in(&saved_root(), run_dir, name)
}

/// [`save_baseline`] under an explicit root (tests, tools).
pub fn save_baseline_in(root: &Path, run_dir: &Path, name: &str) -> Result<PathBuf, CompareError> {
    check_name(name)?;
    let results = load_results(run_dir, &format!("run {}", run_dir.display()))?;
    let per_tweet = load_per_tweet(run_dir, &results)?;
    // results.json is copied byte for byte: fields this version does not know survive.
    let src = RunDir::open(run_dir).results_path();
    let bytes = std::fs::read(&src).map_err(|e| io_error(root, &src, e))?;
    write_baseline(
        root,
        name,
        &bytes,
        &results,
        &per_tweet,
        &run_dir.display().to_string(),
    )
}

/// Saves results held in memory (e.g. `eval --save-baseline`) as baseline `name` under `root`.
pub fn save_results_in(
    root: &Path,
    name: &str,
    results: &RunResults,
    per_tweet: &BTreeMap<String, VariantPerTweet>,
    saved_from: &str,
) -> Result<PathBuf, CompareError> {
    check_name(name)?;
    let mut json = serde_json::to_string_pretty(results).map_err(|e| CompareError::Invalid {
        what: format!("cannot serialise results.json: {e}"),
        hint: "this is a bug; please report it".into(),
    })?;
    json.push('\n');
    write_baseline(root, name, json.as_bytes(), results, per_tweet, saved_from)
}

/// [`save_results_in`] under [`saved_root`].
pub fn save_results(
    name: &str,
    results: &RunResults,
    per_tweet: &BTreeMap<String, VariantPerTweet>,
    saved_from: &str,
) -> Result<PathBuf, CompareError> {
    save_results_in(&saved_root(), name, results, per_tweet, saved_from)
}

fn io_error(root: &Path, p: &Path, e: std::io::Error) -> CompareError {
    CompareError::Io {
        path: p.display().to_string(),
        why: e.to_string(),
        hint: format!(
            "check that {} is writable, or set {BASELINE_DIR_ENV}",
            root.display()
        ),
    }
}

/// Writes a baseline folder: results.json (these bytes), per_tweet/<variant>.json, baseline.json.
fn write_baseline(
    root: &Path,
    name: &str,
    results_bytes: &[u8],
    results: &RunResults,
    per_tweet: &BTreeMap<String, VariantPerTweet>,
    saved_from: &str,
) -> Result<PathBuf, CompareError> {
    let dest = RunDir::new(root.join(name));
    let io = |p: &Path, e: std::io::Error| io_error(root, p, e);
    // Stale per-tweet files of an earlier save under the same name would pair with the wrong run.
    let pt_dir = dest.path().join("per_tweet");
    if pt_dir.is_dir() {
        std::fs::remove_dir_all(&pt_dir).map_err(|e| io(&pt_dir, e))?;
    }
    let results_path = dest.results_path();
    write_atomic(&results_path, results_bytes).map_err(|e| io(&results_path, e))?;
    for (variant, pt) in per_tweet {
        dest.write_per_tweet(variant, pt)?;
    }
    let info = SavedBaselineInfo {
        name: name.to_string(),
        saved_from: saved_from.to_string(),
        suite: results.suite.clone(),
        run_id: results.run_id.clone(),
        variants_with_per_tweet: per_tweet.keys().cloned().collect(),
    };
    let info_path = dest.path().join("baseline.json");
    let json = serde_json::to_string_pretty(&info).map_err(|e| CompareError::Invalid {
        what: format!("cannot serialise baseline.json: {e}"),
        hint: "this is a bug; please report it".into(),
    })?;
    write_atomic(&info_path, json.as_bytes()).map_err(|e| io(&info_path, e))?;
    Ok(dest.path().to_path_buf())
}

/// Loads saved baseline `name` from [`saved_root`].
pub fn load_saved(name: &str) -> Result<Side, CompareError> {
    load_saved_in(&saved_root(), name)
}

/// [`load_saved`] under an explicit root.
pub fn load_saved_in(root: &Path, name: &str) -> Result<Side, CompareError> {
    check_name(name).map_err(|_| CompareError::NoBaseline {
        name: name.to_string(),
        dir: root.display().to_string(),
        hint: format!("save one with --save-baseline {name}"),
    })?;
    let dir = root.join(name);
    if !dir.join("results.json").is_file() {
        return Err(CompareError::NoBaseline {
            name: name.to_string(),
            dir: root.display().to_string(),
            hint: format!("save one with --save-baseline {name}"),
        });
    }
    let results = load_results(&dir, &format!("baseline {name}"))?;
    let per_tweet = load_per_tweet(&dir, &results)?;
    Ok(Side::Run(Box::new(RunSide {
        origin: RunOrigin::Saved {
            name: name.to_string(),
            dir,
        },
        results,
        per_tweet,
    })))
}
