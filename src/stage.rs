//! The ground floor of the pipeline's vocabulary: which stages exist ([`Stage`]) and which
//! implementation a variant runs for each ([`StageKind`]). These names are a contract (suites,
//! `results.json`'s `stages` object), and every module may import them; this module must not
//! import anything above it.

use serde::{Deserialize, Serialize};

/// The stages, in pipeline order. `Knowledge` (auxiliary context an LLM writes for the tagger)
/// is optional: a variant that does not name it runs without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Knowledge,
    Tagger,
    Reformulator,
    Entailer,
    Grounder,
    Segmenter,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Knowledge,
        Stage::Tagger,
        Stage::Reformulator,
        Stage::Entailer,
        Stage::Grounder,
        Stage::Segmenter,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Knowledge => "knowledge",
            Stage::Tagger => "tagger",
            Stage::Reformulator => "reformulator",
            Stage::Entailer => "entailer",
            Stage::Grounder => "grounder",
            Stage::Segmenter => "segmenter",
        }
    }
}

/// Which implementation a stage runs (the `stages` object of results.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// A real ONNX model through ort.
    Onnx,
    /// A real LLM behind an OpenAI-compatible endpoint.
    Llm,
    /// Outputs recorded in files (e.g. the seed's released VE file).
    Replay,
    /// Derived from gold (upper bounds).
    Oracle,
    /// Switched off (ablation).
    Off,
    /// Segmenter only: the filled box is the mask.
    Box,
    /// A multimodal LLM answering the whole tweet (text + image) in one request: the tagger
    /// takes its entities and types, the entailer its groundability decision, the grounder its
    /// box. The three share one request per tweet.
    Mllm,
}
