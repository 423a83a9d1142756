//! Saved baselines (`--save-baseline NAME`): a copy of a run's `results.json` and
//! `per_tweet/<variant>.json` under `baselines/saved/NAME/` (or `$RIVEG_BENCH_BASELINE_DIR/NAME/`),
//! plus `baseline.json` saying where it came from. Like criterion's `--save-baseline`: saving the
//! same name again replaces it. This module must not compare anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::CompareError;
use super::side::{load_per_tweet, load_results, RunOrigin, RunSide, Side};
use crate::io_util::write_atomic;

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
    let dest = root.join(name);
    let io = |p: &Path, e: std::io::Error| CompareError::Io {
        path: p.display().to_string(),
        why: e.to_string(),
        hint: format!(
            "check that {} is writable, or set {BASELINE_DIR_ENV}",
            root.display()
        ),
    };
    // Stale per-tweet files of an earlier save under the same name would pair with the wrong run.
    let pt_dir = dest.join("per_tweet");
    if pt_dir.is_dir() {
        std::fs::remove_dir_all(&pt_dir).map_err(|e| io(&pt_dir, e))?;
    }
    // results.json is copied byte for byte: fields this version does not know survive.
    let src = if run_dir.is_dir() {
        run_dir.join("results.json")
    } else {
        run_dir.to_path_buf()
    };
    let bytes = std::fs::read(&src).map_err(|e| io(&src, e))?;
    let results_path = dest.join("results.json");
    write_atomic(&results_path, &bytes).map_err(|e| io(&results_path, e))?;
    let src_dir = if run_dir.is_dir() {
        run_dir
    } else {
        run_dir.parent().unwrap_or(Path::new("."))
    };
    for variant in per_tweet.keys() {
        let from = src_dir.join("per_tweet").join(format!("{variant}.json"));
        let to = pt_dir.join(format!("{variant}.json"));
        let b = std::fs::read(&from).map_err(|e| io(&from, e))?;
        write_atomic(&to, &b).map_err(|e| io(&to, e))?;
    }
    let info = SavedBaselineInfo {
        name: name.to_string(),
        saved_from: run_dir.display().to_string(),
        suite: results.suite.clone(),
        run_id: results.run_id.clone(),
        variants_with_per_tweet: per_tweet.keys().cloned().collect(),
    };
    let info_path = dest.join("baseline.json");
    let json = serde_json::to_string_pretty(&info).map_err(|e| CompareError::Invalid {
        what: format!("cannot serialise baseline.json: {e}"),
        hint: "this is a bug; please report it".into(),
    })?;
    write_atomic(&info_path, json.as_bytes()).map_err(|e| io(&info_path, e))?;
    Ok(dest)
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

/// Names of the saved baselines under `root`, sorted.
pub fn list_saved_in(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("results.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}
