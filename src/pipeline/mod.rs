//! The RiVEG pipeline: one trait per stage ([`stages`]) and their implementations (ONNX in
//! [`onnx`], LLM adapters in [`llm_stages`], the MLLM as tagger / entailer / grounder in [`mllm_stages`], replay / oracle in [`recorded`]), the generic stage
//! slots ([`slots`]), the stage cache ([`cache`]) and the executor ([`execute`]) that runs a
//! variant matrix over tweets. Must not score, format output or write run directories: that is
//! `crate::run`.

pub mod backends;
pub mod cache;
pub mod cache_admin;
pub mod cache_log;
pub mod captions;
pub mod config;
pub mod execute;
pub mod llm_stages;
pub mod mllm_stages;
pub mod onnx;
pub mod recorded;
pub mod slots;
pub mod stages;

pub use config::{
    DevicePreference, IoBindingPreference, LlmSection, MllmSection, OnError, ReplayMissing,
    Setting, VariantSpec,
};
pub use execute::{execute, ExecError, ExecObserver, ExecSettings, VariantOutput};
pub use slots::{AnyStage, BackendFactory, BuildError, Recordings, StageSet};
