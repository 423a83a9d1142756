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

/// Whether ONNX sessions run through ONNX Runtime's I/O binding (`[runtime] io_binding`,
/// `run --io-binding`): `auto` binds on CUDA only (held tensors such as SAM's image embedding
/// stay in device memory between sessions), `on` binds on any provider (the binding path, on
/// CPU too), `off` never. The outputs are the same either way, so it is no part of cache keys.
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
pub enum IoBindingPreference {
    #[default]
    Auto,
    On,
    Off,
}

/// LLM endpoint for the `llm` reformulator (and, unless `[mllm]` names another, the MLLM).
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
    /// Sampling settings (see [`crate::llm::LlmConfig`]): absent keeps the client's default
    /// (temperature 0, max_tokens 256), a number sets it, `"omit"` sends none. They are part of
    /// every LLM stage's cache fingerprint and are recorded in results.json (`meta.llm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Setting<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Setting<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<Setting<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<Setting<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<Setting<u64>>,
    /// The knowledge stage's prompt: `knowledge-v1` (default), `knowledge-caption-v1` (shows an
    /// image caption; needs `knowledge_captions`) or a template file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_prompt: Option<String>,
    /// JSONL file of image captions for a knowledge prompt with `{caption}`
    /// (`{"image": "<file name>", "caption": "..."}` per line; see `pipeline::captions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_captions: Option<String>,
    /// Extra top-level request fields (e.g. `extra = { reasoning_effort = "low" }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, toml::Value>,
}

/// A sampling setting as a suite writes it: a value, or the word `"omit"` (send none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Setting<T> {
    Value(T),
    Omit(OmitWord),
}

/// The word `"omit"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OmitWord {
    #[serde(rename = "omit")]
    Omit,
}

impl<T: Copy> Setting<T> {
    /// What the client sends: `None` for `"omit"`.
    pub fn resolve(self) -> Option<T> {
        match self {
            Setting::Value(v) => Some(v),
            Setting::Omit(_) => None,
        }
    }
}

impl LlmSection {
    /// The client configuration this section describes (endpoint, patience, sampling). The
    /// mock server's address, when the suite starts one, is filled in by the backend factory.
    pub fn to_config(&self) -> Result<crate::llm::LlmConfig, String> {
        let mut config = crate::llm::LlmConfig::for_base_url(self.base_url.clone());
        config.model = self.model.clone();
        config.api_key_env = self.api_key_env.clone();
        if let Some(t) = self.timeout_ms {
            config.timeout_ms = t;
        }
        if let Some(r) = self.max_retries {
            config.max_retries = r;
        }
        if let Some(c) = self.max_concurrency {
            config.max_concurrency = c;
        }
        if let Some(v) = self.temperature {
            config.temperature = v.resolve();
        }
        if let Some(v) = self.top_p {
            config.top_p = v.resolve();
        }
        if let Some(v) = self.max_tokens {
            config.max_tokens = v.resolve();
        }
        if let Some(v) = self.max_completion_tokens {
            config.max_completion_tokens = v.resolve();
        }
        if let Some(v) = self.seed {
            config.seed = v.resolve();
        }
        for (k, v) in &self.extra {
            let json = serde_json::to_value(v)
                .map_err(|e| format!("[llm] extra.{k} cannot be sent as JSON: {e}"))?;
            config.extra.insert(k.clone(), json);
        }
        Ok(config)
    }
}

/// The suite's `[mllm]` section: a multimodal LLM as a GMNER system (stage kind `mllm`). The
/// endpoint defaults to `[llm]`'s (its sampling settings always apply); every other field
/// defaults as in [`crate::llm::MllmSettings`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllmSection {
    /// Another endpoint than `[llm]`'s (then `model` names its model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// A built-in prompt id (`gmner-mllm-v1`) or a template file (relative to the suite's base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_image_side: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_format: Option<crate::llm::ImageFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_quality: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_convention: Option<crate::llm::BoxConvention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

impl MllmSection {
    /// The MLLM settings (prompt path not yet resolved).
    pub fn settings(&self) -> crate::llm::MllmSettings {
        let mut s = crate::llm::MllmSettings::default();
        if let Some(p) = &self.prompt {
            s.prompt = p.clone();
        }
        if let Some(v) = self.max_image_side {
            s.max_image_side = v;
        }
        if let Some(v) = self.image_format {
            s.image_format = v;
        }
        if let Some(v) = self.jpeg_quality {
            s.jpeg_quality = v;
        }
        if let Some(v) = self.box_convention {
            s.box_convention = v;
        }
        if let Some(v) = &self.labels {
            s.labels = v.clone();
        }
        s
    }
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
    /// Auxiliary context for the tagger (`llm`, `replay`: the recorded tagger output was made
    /// with it, `off`). Absent: off, and results.json's `stages` has no `knowledge` entry (so
    /// suites and results from before the stage read and compare as they did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<StageKind>,
    pub tagger: StageKind,
    pub reformulator: StageKind,
    pub entailer: StageKind,
    pub grounder: StageKind,
    pub segmenter: StageKind,
}

impl VariantSpec {
    /// Every stage's kind; `knowledge` only when the variant names it.
    pub fn stages(&self) -> BTreeMap<Stage, StageKind> {
        let mut stages = BTreeMap::from([
            (Stage::Tagger, self.tagger),
            (Stage::Reformulator, self.reformulator),
            (Stage::Entailer, self.entailer),
            (Stage::Grounder, self.grounder),
            (Stage::Segmenter, self.segmenter),
        ]);
        if let Some(k) = self.knowledge {
            stages.insert(Stage::Knowledge, k);
        }
        stages
    }

    /// The knowledge stage's kind (`off` when not named).
    pub fn knowledge(&self) -> StageKind {
        self.knowledge.unwrap_or(StageKind::Off)
    }
}

/// ONNX Runtime thread and I/O binding settings of a suite (`[runtime]`), overridable from the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// Intra-op threads per session; unset: one per core (ONNX Runtime's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Whether idle intra-op threads spin; unset: off (see `runtime::SessionConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spinning: Option<bool>,
    /// Tweets per tagger batch (the executor's windows hold a few batches); unset: 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Tweets (images) per VE/VG run, for models with an `image_index` input; unset: 8, or
    /// `batch` when that is smaller. Separate from `batch` because an image model's activations
    /// grow with its input size (OWL-ViT at 768 px: 577 tokens per image, OWLv2 at 960 px:
    /// 3,600), so 32 images per run can take gigabytes where 32 tweets of text take megabytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_batch: Option<usize>,
    /// ONNX Runtime I/O binding; unset: `auto` (on for CUDA sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_binding: Option<IoBindingPreference>,
}

impl RuntimeSection {
    /// The tagger batch size when `[runtime] batch` is unset.
    pub const DEFAULT_BATCH: usize = 32;

    /// `[runtime] batch`, or the default.
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(Self::DEFAULT_BATCH).max(1)
    }

    /// The most images per VE/VG run when `[runtime] image_batch` is unset (and `batch` is not
    /// smaller).
    pub const DEFAULT_IMAGE_BATCH: usize = 8;

    /// `[runtime] image_batch`, or the smaller of the default and `batch`.
    pub fn image_batch(&self) -> usize {
        self.image_batch
            .unwrap_or(Self::DEFAULT_IMAGE_BATCH.min(self.batch()))
            .max(1)
    }
}
