//! [`RunDir`]: the one owner of a run directory's layout. `run`, `merge`, `report`, `compare`
//! and `eval --save-baseline` read and write run files only through it, so every path is
//! spelled once and every missing file gets the same policy: required files (results.json,
//! predictions, gold) are errors naming the path; optional ones (per-tweet counts, latencies)
//! are `None` when absent and an error when present but unreadable — never silently dropped.
//!
//! ```text
//! <run dir>/results.json              the contract (crate::results), rewritten after each variant
//!           summary.md, *.png         the report (crate::report), rewritten with results.json
//!           suite.toml                the plan actually run: the suite with only the variants run
//!           gold.jsonl                the gold this run (or shard) was scored against
//!           predictions/<variant>.jsonl
//!           per_tweet/<variant>.json  per-tweet counts (paired bootstrap in `compare`)
//!           latency/<variant>.json    raw per-call latencies (figures, `merge`)
//!           outcomes/<variant>.csv    the entity outcome frame (crate::metrics::outcomes)
//! ```
//! A suite with `[[dataset]]` tables keys every per-variant file by `<dataset>/<variant>`
//! ([`RunDir::entry_key`]: `predictions/<dataset>/<variant>.jsonl`, ...) and keeps one gold per
//! dataset (`gold/<dataset>.jsonl`); a `[data]` suite keeps the flat layout above.
//! Writes are atomic (temp file + rename); bulk files are not fsynced, results.json is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{RunResults, VariantPerTweet};
use crate::data::model::Dataset;
use crate::data::{jsonl, DataError};
use crate::io_util::{write_atomic, write_atomic_unsynced};

/// Raw latencies of one variant: stage (and `pipeline`) → milliseconds per call.
pub type LatencySamples = BTreeMap<String, Vec<f64>>;

/// Errors reading or writing a run directory; each names the path and gives a hint.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path}: cannot write: {source}\n  hint: check that the output folder is writable")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what}\n  hint: {hint}")]
    Read {
        path: String,
        what: String,
        hint: String,
    },
    #[error(transparent)]
    Data(#[from] DataError),
}

/// A run directory (existing or being written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

pub const RESULTS_FILE: &str = "results.json";
pub const SUMMARY_FILE: &str = "summary.md";
pub const PLAN_FILE: &str = "suite.toml";
pub const GOLD_FILE: &str = "gold.jsonl";

impl RunDir {
    /// A run directory at `root` (nothing is created or read yet).
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    /// Opens a path the user gave: a run directory, or its `results.json`.
    pub fn open(path: &Path) -> RunDir {
        if path.is_file() {
            RunDir::new(path.parent().unwrap_or(Path::new(".")))
        } else {
            RunDir::new(path)
        }
    }

    /// Creates the folder (and parents).
    pub fn create(&self) -> Result<(), RunDirError> {
        std::fs::create_dir_all(&self.root).map_err(|e| self.write_error(&self.root, e))
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn results_path(&self) -> PathBuf {
        self.root.join(RESULTS_FILE)
    }

    pub fn plan_path(&self) -> PathBuf {
        self.root.join(PLAN_FILE)
    }

    /// The gold of the run's dataset: `gold.jsonl` for a `[data]` suite (`None`), else
    /// `gold/<dataset>.jsonl`.
    pub fn gold_path(&self, dataset: Option<&str>) -> PathBuf {
        match dataset {
            None => self.root.join(GOLD_FILE),
            Some(d) => self.root.join("gold").join(format!("{d}.jsonl")),
        }
    }

    /// The key of a (variant, dataset) entry in per-variant file names: the variant name for a
    /// `[data]` suite, `<dataset>/<variant>` for a `[[dataset]]` suite (names are plain, so the
    /// two never collide).
    pub fn entry_key(dataset: Option<&str>, variant: &str) -> String {
        match dataset {
            None => variant.to_string(),
            Some(d) => format!("{d}/{variant}"),
        }
    }

    /// The outcome frame of an entry ([`RunDir::entry_key`]), relative to the run directory:
    /// CSV (polars' parquet feature is left out of the build; see benches/README.md).
    pub fn outcomes_rel(key: &str) -> String {
        format!("outcomes/{key}.csv")
    }

    /// The predictions file of a variant, relative to the run directory (as results.json
    /// records it).
    pub fn predictions_rel(variant: &str) -> String {
        format!("predictions/{variant}.jsonl")
    }

    pub fn per_tweet_path(&self, variant: &str) -> PathBuf {
        self.root.join("per_tweet").join(format!("{variant}.json"))
    }

    pub fn latency_path(&self, variant: &str) -> PathBuf {
        self.root.join("latency").join(format!("{variant}.json"))
    }

    /// Whether this folder holds a finished (or partly finished) run.
    pub fn has_results(&self) -> bool {
        self.results_path().is_file()
    }

    fn write_error(&self, path: &Path, source: std::io::Error) -> RunDirError {
        RunDirError::Write {
            path: path.display().to_string(),
            source,
        }
    }

    fn write_bulk(&self, path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
        write_atomic_unsynced(path, bytes).map_err(|e| self.write_error(path, e))
    }

    fn write_json<T: serde::Serialize>(&self, path: &Path, value: &T) -> Result<(), RunDirError> {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| self.write_error(path, std::io::Error::other(e)))?;
        text.push('\n');
        self.write_bulk(path, text.as_bytes())
    }

    /// Writes results.json atomically and durably.
    pub fn write_results(&self, results: &RunResults) -> Result<(), RunDirError> {
        let path = self.results_path();
        let mut text = serde_json::to_string_pretty(results)
            .map_err(|e| self.write_error(&path, std::io::Error::other(e)))?;
        text.push('\n');
        write_atomic(&path, text.as_bytes()).map_err(|e| self.write_error(&path, e))
    }

    pub fn write_plan(&self, suite_toml: &str) -> Result<(), RunDirError> {
        self.write_bulk(&self.plan_path(), suite_toml.as_bytes())
    }

    pub fn write_gold(&self, dataset: Option<&str>, gold: &Dataset) -> Result<(), RunDirError> {
        self.write_bulk(&self.gold_path(dataset), jsonl::to_jsonl(gold).as_bytes())
    }

    /// Writes an entry's outcome frame (already rendered, see [`RunDir::outcomes_rel`]).
    pub fn write_outcomes(&self, key: &str, bytes: &[u8]) -> Result<(), RunDirError> {
        self.write_bulk(&self.root.join(Self::outcomes_rel(key)), bytes)
    }

    pub fn write_predictions(&self, variant: &str, pred: &Dataset) -> Result<(), RunDirError> {
        let path = self.root.join(Self::predictions_rel(variant));
        self.write_bulk(&path, jsonl::to_jsonl(pred).as_bytes())
    }

    pub fn write_per_tweet(&self, variant: &str, pt: &VariantPerTweet) -> Result<(), RunDirError> {
        self.write_json(&self.per_tweet_path(variant), pt)
    }

    pub fn write_latency(
        &self,
        variant: &str,
        samples: &LatencySamples,
    ) -> Result<(), RunDirError> {
        self.write_json(&self.latency_path(variant), samples)
    }

    /// Writes rendered report files (`(file name, bytes)`, in order) atomically; returns paths.
    pub fn write_files(&self, files: Vec<(String, Vec<u8>)>) -> Result<Vec<PathBuf>, RunDirError> {
        let mut written = Vec::with_capacity(files.len());
        for (name, bytes) in files {
            let path = self.root.join(&name);
            write_atomic(&path, &bytes).map_err(|e| self.write_error(&path, e))?;
            written.push(path);
        }
        Ok(written)
    }

    /// results.json (required).
    pub fn load_results(&self) -> Result<RunResults, super::ResultsError> {
        RunResults::load(&self.root)
    }

    /// results.json with the raw latencies of `latency/<variant>.json` put back into the
    /// timings (results.json keeps only their summary), so a report rewritten later draws the
    /// same distributions as the one `run` wrote.
    pub fn load_results_with_samples(&self) -> Result<RunResults, RunDirError> {
        let mut results = self.load_results().map_err(|e| RunDirError::Read {
            path: self.results_path().display().to_string(),
            what: e.to_string(),
            hint: "pass a run directory written by `riveg-bench run`".into(),
        })?;
        for v in &mut results.variants {
            let Some(samples) = self.load_latency(&v.key())? else {
                continue;
            };
            for (stage, timing) in &mut v.timings {
                if let Some(s) = samples.get(stage) {
                    timing.samples_ms = s.clone();
                }
            }
        }
        Ok(results)
    }

    /// The plan actually run (`suite.toml`), as text.
    pub fn load_plan(&self) -> Result<String, RunDirError> {
        let path = self.plan_path();
        std::fs::read_to_string(&path).map_err(|e| RunDirError::Read {
            path: path.display().to_string(),
            what: format!("cannot read the run's plan: {e}"),
            hint: "every run directory holds the suite it ran; re-run it".into(),
        })
    }

    pub fn load_gold(&self, dataset: Option<&str>) -> Result<Dataset, RunDirError> {
        Ok(jsonl::read_jsonl(&self.gold_path(dataset))?)
    }

    /// A variant's predictions, from the path results.json records.
    pub fn load_predictions(&self, rel: &str) -> Result<Dataset, RunDirError> {
        Ok(jsonl::read_jsonl(&self.root.join(rel))?)
    }

    /// Per-tweet counts of a variant: `None` when the file does not exist.
    pub fn load_per_tweet(&self, variant: &str) -> Result<Option<VariantPerTweet>, RunDirError> {
        self.load_optional_json(
            &self.per_tweet_path(variant),
            "per_tweet/<variant>.json is written by `riveg-bench run`; delete it to compare without a significance test",
        )
    }

    /// Raw latencies of a variant: `None` when the file does not exist.
    pub fn load_latency(&self, variant: &str) -> Result<Option<LatencySamples>, RunDirError> {
        self.load_optional_json(
            &self.latency_path(variant),
            "latency/<variant>.json is written by `riveg-bench run`; delete it to use the summary in results.json",
        )
    }

    fn load_optional_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        hint: &str,
    ) -> Result<Option<T>, RunDirError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(RunDirError::Read {
                    path: path.display().to_string(),
                    what: format!("cannot read: {e}"),
                    hint: "check the file's permissions".into(),
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| RunDirError::Read {
                path: path.display().to_string(),
                what: format!("unreadable: {e}"),
                hint: hint.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_files_missing_is_none_but_corrupt_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        run.create().unwrap();
        assert!(run.load_latency("full").unwrap().is_none());
        assert!(run.load_per_tweet("full").unwrap().is_none());
        std::fs::create_dir_all(dir.path().join("latency")).unwrap();
        std::fs::write(run.latency_path("full"), "{not json").unwrap();
        let err = run.load_latency("full").unwrap_err().to_string();
        assert!(
            err.contains("latency/full.json") && err.contains("unreadable"),
            "{err}"
        );
        let samples = LatencySamples::from([("tagger".to_string(), vec![1.0, 2.5])]);
        run.write_latency("v", &samples).unwrap();
        assert_eq!(run.load_latency("v").unwrap(), Some(samples));
    }
}
