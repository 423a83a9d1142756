//! The OpenAI-compatible LLM client (reformulation), prompt templates, the response cache and the
//! mock server used in tests and dry runs. Never blocks the pipeline without a timeout.

/// Errors of the LLM client: each names the endpoint or entity and gives a hint.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{what}\n  hint: {hint}")]
    Other { what: String, hint: String },
}
