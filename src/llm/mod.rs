//! The OpenAI-compatible LLM client (reformulation, and multimodal LLMs as GMNER systems), prompt
//! templates, the response cache and the mock server used in tests and dry runs. Never blocks the pipeline without a timeout: every
//! request carries the configured `timeout_ms`, and retries are bounded by `max_retries`.
//!
//! - [`client`]: a blocking `/v1/chat/completions` client on ureq with retries and typed errors.
//! - [`prompt`]: versioned prompt templates (`prompts/*.txt`, compiled in) and reply parsing.
//! - [`cache`]: an on-disk response cache, one JSON file per request key.
//! - [`mllm`]: a multimodal LLM as a whole GMNER system (image request, reply parsing, box
//!   conventions and checks, token alignment).
//! - [`redact`]: hides the API key in everything the client prints, caches or returns.
//! - [`reformulator`]: [`LlmReformulator`], the pipeline's `Reformulator` backed by the above.
//! - [`mock`]: a loopback-only mock server for tests, benches and `riveg-bench mock-llm`.
//!
//! This module must not know about scoring, reports or other stages.

pub mod bounded;
pub mod cache;
pub mod client;
mod error;
pub mod mllm;
pub mod mock;
pub mod prompt;
pub mod redact;
pub mod reformulator;

pub use cache::{CacheKey, CachedReply, ResponseCache};
pub use client::{
    ChatMessage, ContentPart, ImageUrl, LlmClient, LlmConfig, LlmStats, MultimodalMessage,
};
pub use error::{Item, LlmError};
pub use mllm::{
    BoxConvention, Grounding, ImageFormat, IssuePolicy, MllmAnnotator, MllmAnswer, MllmEntity,
    MllmError, MllmIssue, MllmSettings, MllmStats,
};
pub use mock::{serve_forever, Behaviour, MockServer};
pub use prompt::{parse_expansion, PromptTemplate};
pub use redact::Redactor;
pub use reformulator::LlmReformulator;
