//! The results of a run (`reports/<run-id>/results.json`, `run --format json`). This JSON shape is
//! a contract that `report`, `compare`, `merge` and other tools read: add fields, never rename.
//!
//! ```text
//! {"suite": NAME, "run_id": ..., "meta": {...},
//!  "variants": [{"name", "description", "stages": {"tagger": S, ...}, "metrics": {"riveg": M, "span": M|null},
//!                "not_applicable": {"span": reason}, "timings": {...}, "skipped": N, ...,
//!                "dataset": NAME, "not_scored": {"fmnerg": reason}}]}
//! ```
//! A suite with several datasets (`[[dataset]]`) has one entry per (variant, dataset), named by
//! `dataset`; a `[data]` suite's entries have no `dataset` (older results read the same way).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub mod run_dir;
pub use run_dir::{LatencySamples, RunDir, RunDirError};

use crate::bench::StageTiming;
use crate::metrics::eval::{EvalReport, PerTweet};
use crate::stage::{Stage, StageKind};

/// The version of this `results.json` shape written now. Files from before the field existed
/// read as 0. Bump it when a change would make an old reader misread a new file.
pub const SCHEMA_VERSION: u32 = 1;

/// Where and how a run happened.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunMeta {
    /// [`SCHEMA_VERSION`] of the writer (0: written before versioning).
    #[serde(default)]
    pub schema_version: u32,
    pub tool_version: String,
    /// The git commit the binary was built from (recorded at build time), when known.
    pub git_commit: Option<String>,
    /// Cargo features the binary was built with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_features: Vec<String>,
    /// Seconds since the Unix epoch at the start of the run.
    pub started_unix: u64,
    pub hostname: Option<String>,
    pub os: String,
    pub cpu: Option<String>,
    pub cores: usize,
    /// The ONNX Runtime execution provider that ran (`cpu`, `cuda`), or `none` when no model ran.
    pub execution_provider: String,
    /// `K/N` when this is one shard of a run.
    pub shard: Option<String>,
    /// Gold file(s) the metrics were computed against.
    pub gold: Vec<String>,
    /// Path of each gold and replay input (file or dataset folder) → its sha256 (hex; a folder's
    /// is over its sorted relative paths and contents, see `run::meta::hash_path`), so a
    /// comparison can tell whether two runs scored the same data.
    #[serde(default)]
    pub data_hashes: BTreeMap<String, String>,
    /// The LLM stages' settings and counts, when a variant ran one (absent in older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmMeta>,
}

/// How the LLM stages were configured (everything that decides their answers) and what they
/// did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LlmMeta {
    /// The `llm` reformulator: model, prompt id and request fields; absent when none ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reformulator: Option<LlmStageMeta>,
    /// The `llm` knowledge stage: model, prompt id and request fields; absent when none ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<LlmStageMeta>,
    /// The `mllm` stages (tagger, entailer, grounder share one MLLM); absent when none ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mllm: Option<MllmMeta>,
}

/// A text LLM stage's settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LlmStageMeta {
    pub model: String,
    pub prompt: String,
    /// Sampling settings and `extra` as sent with every request.
    pub request_fields: serde_json::Map<String, serde_json::Value>,
}

/// The MLLM's settings and counts over the whole run (all variants share one MLLM).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MllmMeta {
    pub model: String,
    pub prompt: String,
    pub request_fields: serde_json::Map<String, serde_json::Value>,
    /// Image size and format, box convention, labels.
    pub settings: serde_json::Value,
    /// Everything that keys its cached answers.
    pub fingerprint: String,
    pub requests_sent: u64,
    pub retries: u64,
    pub cache_hits: u64,
    /// Tweets answered.
    pub tweets_ok: u64,
    /// Tweets without an answer, by error kind.
    pub errors: BTreeMap<String, u64>,
    /// Repaired issues by kind (`--on-error skip`; under `fail` the first one stops the run).
    pub issues: BTreeMap<String, u64>,
    /// Entities of another tagger the MLLM did not list (hybrids): not groundable, no box.
    pub not_listed: u64,
    /// Entities the grounder had to box that the MLLM listed without one.
    pub listed_without_box: u64,
    /// Latency of one tweet's answer (response-cache hits count as cached).
    pub latency_ms: StageTiming,
    /// Completion tokens the endpoint reported (`usage`), over the requests sent.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Completion tokens per second of request time; `null` when the endpoint reports no usage.
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
}

/// Metrics of one variant under both protocols (`null` where a protocol cannot apply).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VariantMetrics {
    pub riveg: Option<EvalReport>,
    pub span: Option<EvalReport>,
}

/// A skipped item (`--on-error skip`): never lost silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedItem {
    pub tweet_id: String,
    pub stage: Stage,
    pub error: String,
}

/// One variant of the ablation matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub stages: BTreeMap<Stage, StageKind>,
    pub metrics: VariantMetrics,
    /// Protocol → why it is `null`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_applicable: BTreeMap<String, String>,
    /// Stage name (and `pipeline` for the whole) → latency summary.
    pub timings: BTreeMap<String, StageTiming>,
    pub skipped: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_items: Vec<SkippedItem>,
    /// Model id → sha256 of every model file this variant ran.
    #[serde(default)]
    pub model_hashes: BTreeMap<String, String>,
    /// Replay look-ups (reformulation, VE, VG) that found no recorded answer and got the
    /// negative one (`settings.replay_missing = "negative"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replay_missing: usize,
    /// Predictions file, relative to the run directory.
    pub predictions: String,
    /// Tweets scored.
    pub tweets: usize,
    /// The suite's `[[dataset]]` this entry ran on; absent for a `[data]` suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Task key → why the dataset's results do not score it (the suite's `not_scored`, and the
    /// tasks its `tasks` list leaves out or its data does not allow).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_scored: BTreeMap<String, String>,
}

impl VariantResult {
    /// The entry's key: the variant name, or `<dataset>/<variant>` (see `RunDir::entry_key`).
    pub fn key(&self) -> String {
        RunDir::entry_key(self.dataset.as_deref(), &self.name)
    }
}

impl VariantResult {
    /// The stages of this variant whose outputs are look-ups, not work: replayed recordings and
    /// gold oracles. Their `timings` are look-up latencies (they say nothing about a model), so
    /// renderers label them and make no throughput claim for them. Derived from `stages`, which
    /// results.json already records, so old files get the same labels.
    pub fn lookup_stages(&self) -> Vec<&'static str> {
        self.stages
            .iter()
            .filter(|(_, k)| matches!(k, StageKind::Replay | StageKind::Oracle))
            .map(|(s, _)| s.name())
            .collect()
    }

    /// Whether the `timings` row `name` (a stage name or `pipeline`) times look-ups only: a look-up
    /// stage, or the whole pipeline when every stage that runs is one.
    pub fn timing_is_lookup(&self, name: &str) -> bool {
        let lookups = self.lookup_stages();
        if name == "pipeline" {
            let running: Vec<&StageKind> = self
                .stages
                .values()
                .filter(|k| !matches!(k, StageKind::Off | StageKind::Box))
                .collect();
            return !running.is_empty()
                && running
                    .iter()
                    .all(|k| matches!(k, StageKind::Replay | StageKind::Oracle));
        }
        lookups.contains(&name)
    }
}

/// The whole `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub suite: String,
    pub run_id: String,
    pub meta: RunMeta,
    pub variants: Vec<VariantResult>,
}

/// Per-tweet counts of one variant (for paired bootstrap), saved as `per_tweet/<variant>.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VariantPerTweet {
    pub riveg: Option<PerTweet>,
    pub span: Option<PerTweet>,
}

/// Errors reading results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: cannot read results: {source}\n  hint: {hint}")]
    Io {
        path: String,
        source: std::io::Error,
        hint: String,
    },
    #[error("{path}: not a riveg-bench results.json: {source}\n  hint: results come from `riveg-bench run` (reports/<run-id>/results.json)")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

impl RunResults {
    /// Reads `results.json` from a run directory (or the file itself).
    pub fn load(path: &Path) -> Result<RunResults, ResultsError> {
        let file = if path.is_dir() {
            path.join("results.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| ResultsError::Io {
            path: file.display().to_string(),
            hint: "pass a run directory (reports/<run-id>) that holds results.json".into(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| ResultsError::Json {
            path: file.display().to_string(),
            source: e,
        })
    }

    /// The entry with this key (the variant name, or `<dataset>/<variant>`).
    pub fn variant(&self, key: &str) -> Option<&VariantResult> {
        self.variants.iter().find(|v| v.key() == key)
    }

    /// The datasets of the entries, in first-seen order (`[None]` for a `[data]` suite).
    pub fn datasets(&self) -> Vec<Option<String>> {
        let mut out: Vec<Option<String>> = Vec::new();
        for v in &self.variants {
            if !out.contains(&v.dataset) {
                out.push(v.dataset.clone());
            }
        }
        out
    }

    /// The results of one dataset's entries only (for per-dataset report sections).
    pub fn for_dataset(&self, dataset: Option<&str>) -> RunResults {
        RunResults {
            variants: self
                .variants
                .iter()
                .filter(|v| v.dataset.as_deref() == dataset)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// One line per variant that skipped tweets (`--on-error skip`), for stderr: how many, of
    /// how many, and the first error. Empty when nothing was skipped.
    pub fn skip_summary(&self) -> Vec<String> {
        self.variants
            .iter()
            .filter(|v| v.skipped > 0)
            .map(|v| {
                let first = v
                    .skipped_items
                    .first()
                    .map(|s| format!("; first: tweet {}, {}", s.tweet_id, s.stage.name()))
                    .unwrap_or_default();
                format!(
                    "variant {}: skipped {} of {} tweets (--on-error skip; they count as missed){first}",
                    v.name, v.skipped, v.tweets
                )
            })
            .collect()
    }

    /// Variants that skipped every tweet they had: their scores say nothing about the model, so
    /// a run with one is an error (exit 2), not a 0.00 F1.
    pub fn all_skipped_variants(&self) -> Vec<&VariantResult> {
        self.variants
            .iter()
            .filter(|v| v.tweets > 0 && v.skipped >= v.tweets)
            .collect()
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
