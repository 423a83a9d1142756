//! ONNX Runtime setup (loading the shared library, execution-provider choice), model manifests
//! and their checks, and image → tensor preprocessing. Stages ask this module for sessions.

/// Errors of the model runtime: each names the model or file and gives a hint.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what}\n  hint: {hint}")]
    Other { what: String, hint: String },
}
