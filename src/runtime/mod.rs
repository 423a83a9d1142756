//! ONNX Runtime setup (loading the shared library, execution-provider choice), model manifests
//! and their checks, and image → tensor preprocessing. Stages ask this module for sessions.
//!
//! - [`env`][]: finds `libonnxruntime.so*` (explicit path, `ORT_DYLIB_PATH`, `.venv`), loads it once
//!   per process ([`init`]) and builds sessions on a [`Device`], falling back from CUDA to CPU
//!   with a log line saying which provider ran. `ort` panics when it is used before a library is
//!   loaded; every session here is built through an [`OrtRuntime`], which only [`init`] hands out.
//! - [`manifest`][]: `models/*.toml` (files + sha256, tensors, preprocessing, labels, CRF, boxes)
//!   and the check of a loaded session against it.
//! - [`preprocess`][]: RGB image → normalised NCHW `f32` tensor, and the coordinate transform back.
//!
//! This module must not know about tweets or entities: stages turn its errors into
//! errors naming the item. Only this module names `ort` types: stages build
//! [`Input`]s and call [`LoadedSession::run_f32`] ([`tensor`]); a tensor one session feeds to
//! another comes from [`LoadedSession::run_feeding`], which under I/O binding ([`IoBinding`],
//! on for CUDA sessions by default) leaves it in the device memory of the session taking it.

pub mod env;
pub mod manifest;
pub mod pil_resize;
pub mod preprocess;
pub mod skimage_resize;
pub mod tensor;

use std::path::PathBuf;

pub use env::{
    init, resolve_library_path, resolve_library_path_with, Device, IoBinding, LibrarySource,
    LoadedSession, OrtRuntime, Provider, SessionConfig, INSTALL_HINT,
};
pub use manifest::{
    BoxFormat, BoxSpec, BoxUnits, Crf, DType, Dim, ModelManifest, ModelSpec, TagScheme, TensorSpec,
};
pub use preprocess::{image_to_tensor, ImageTransform, PreprocessSpec, ResizeFilter, ResizeMode};
pub use tensor::{HeldTensor, Input, OutputMemory, SessionPlace};

/// Errors of the model runtime: each names the model or file and gives a hint.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no ONNX Runtime library found (looked for {searched})\n  hint: {INSTALL_HINT}")]
    LibraryNotFound { searched: String },

    #[error(
        "ONNX Runtime library {path} (from {source_name}) does not exist\n  hint: {INSTALL_HINT}"
    )]
    LibraryMissing { path: PathBuf, source_name: String },

    #[error("could not load the ONNX Runtime library {path}: {why}\n  hint: {INSTALL_HINT}")]
    LibraryLoad { path: PathBuf, why: String },

    #[error("the ONNX Runtime library {path} is too old: {why}\n  hint: riveg-bench needs ONNX Runtime >= 1.24; {INSTALL_HINT}")]
    LibraryTooOld { path: PathBuf, why: String },

    #[error("ONNX Runtime is already loaded from {loaded} in this process; cannot also load {requested}\n  hint: pass one library path per process (flag or ORT_DYLIB_PATH)")]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },

    #[error("ONNX Runtime failed while {context}: {why}\n  hint: {hint}")]
    Ort {
        context: String,
        why: String,
        hint: String,
    },

    #[error("the CUDA execution provider could not be used for {model}: {why}\n  hint: install onnxruntime-gpu (`.venv/bin/pip install onnxruntime-gpu==1.31.1`) with matching CUDA/cuDNN, or use --device auto|cpu")]
    CudaUnavailable { model: PathBuf, why: String },

    #[error("cannot read manifest {path}: {why}\n  hint: {hint}")]
    ManifestRead {
        path: PathBuf,
        why: String,
        hint: String,
    },

    #[error("manifest {path} is invalid: {what}\n  hint: {hint}")]
    ManifestInvalid {
        path: PathBuf,
        what: String,
        hint: String,
    },

    #[error(
        "{path} (listed in manifest {manifest}) is missing or unreadable: {why}\n  hint: {hint}"
    )]
    FileMissing {
        path: PathBuf,
        manifest: PathBuf,
        why: String,
        hint: String,
    },

    #[error("sha256 mismatch for {path} (manifest {manifest}):\n  expected {expected}\n  actual   {actual}\n  hint: the file changed or the manifest is stale; re-download the model, or regenerate the tiny models with `.venv/bin/python scripts/gen_tiny_models.py`")]
    HashMismatch {
        path: PathBuf,
        manifest: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("model {model} does not match its manifest {manifest}: {what}\n  hint: fix the manifest's inputs/outputs (names, dtypes, shapes), or check that it points at the right model file")]
    ModelMismatch {
        model: PathBuf,
        manifest: PathBuf,
        what: String,
    },

    #[error("tokenizer {path}: {what}\n  hint: {hint}")]
    Tokenizer {
        path: PathBuf,
        what: String,
        hint: String,
    },

    #[error("running model {model} failed: {why}\n  hint: {hint}")]
    Run {
        model: PathBuf,
        why: String,
        hint: String,
    },

    #[error("{what}\n  hint: {hint}")]
    Other { what: String, hint: String },
}

impl RuntimeError {
    /// A run-time failure of `model`, with the generic hint about inputs.
    pub(crate) fn run(model: &std::path::Path, why: impl std::fmt::Display) -> Self {
        RuntimeError::Run {
            model: model.to_path_buf(),
            why: why.to_string(),
            hint: "the inputs did not fit the model; check the manifest's shapes and preprocessing"
                .into(),
        }
    }
}
