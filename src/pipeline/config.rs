//! What the pipeline is configured with: the variant matrix rows ([`VariantSpec`]), the LLM
//! endpoint ([`LlmSection`]), failure and replay policies, and the device preference. Suites
//! (`crate::run::suite`) are made of these; the pipeline reads them and nothing above.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stage::{Stage, StageKind};

/// Which execution provider ONNX stages should use.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DevicePreference {
    Cpu,
    Cuda,
    #[default]
    Auto,
}

/// LLM endpoint for the `llm` reformulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSection {
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable holding the API key (never the key itself).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Built-in template name (e.g. `reformulate-v1`) or a path to a template file.
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Start `riveg-bench mock-llm` on this loopback address for the run (dry runs, smoke tests).
    #[serde(default)]
    pub start_mock: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Fail,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayMissing {
    #[default]
    Error,
    Negative,
}

/// One row of the variant matrix as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub tagger: StageKind,
    pub reformulator: StageKind,
    pub entailer: StageKind,
    pub grounder: StageKind,
    pub segmenter: StageKind,
}

impl VariantSpec {
    pub fn stages(&self) -> BTreeMap<Stage, StageKind> {
        BTreeMap::from([
            (Stage::Tagger, self.tagger),
            (Stage::Reformulator, self.reformulator),
            (Stage::Entailer, self.entailer),
            (Stage::Grounder, self.grounder),
            (Stage::Segmenter, self.segmenter),
        ])
    }
}

/// ONNX Runtime thread settings of a suite (`[runtime]`), overridable from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// Intra-op threads per session; unset: one per core (ONNX Runtime's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Whether idle intra-op threads spin; unset: off (see `runtime::SessionConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spinning: Option<bool>,
}
