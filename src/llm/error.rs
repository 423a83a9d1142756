//! [`LlmError`]: every way an LLM request can fail, each naming the endpoint and, when the caller
//! gave them, the tweet and entity ([`Item`]), with a hint. Never carries the API key.

use std::fmt;

/// Which request an error is about: the tweet id and entity text, when the caller knows them.
/// Displays as a prefix (`tweet O_2371, entity "Angelina Jolie": `), or nothing when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Item {
    pub tweet_id: Option<String>,
    pub entity: Option<String>,
}

impl Item {
    /// A request about one entity of one tweet.
    pub fn entity(tweet_id: impl Into<String>, entity: impl Into<String>) -> Self {
        Item {
            tweet_id: Some(tweet_id.into()),
            entity: Some(entity.into()),
        }
    }

    /// A request with no tweet or entity attached (e.g. a health check).
    pub fn none() -> Self {
        Item::default()
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.tweet_id, &self.entity) {
            (Some(t), Some(e)) => write!(f, "tweet {t}, entity {e:?}: "),
            (Some(t), None) => write!(f, "tweet {t}: "),
            (None, Some(e)) => write!(f, "entity {e:?}: "),
            (None, None) => Ok(()),
        }
    }
}

/// The hint printed with every "cannot reach the server" error.
pub(crate) const UNREACHABLE_HINT: &str = "is the LLM server running and is base_url right \
(e.g. http://127.0.0.1:8000/v1)? For a dry run without a real LLM, start \
`riveg-bench mock-llm --port 8000` and point base_url at http://127.0.0.1:8000/v1";

/// Errors of the LLM client, prompt templates and response cache: each names the endpoint, file
/// or entity and gives a hint.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No connection could be made (refused, reset, DNS, TLS), after all retries.
    #[error(
        "{item}cannot reach LLM endpoint {endpoint} ({attempts} attempt(s)): {why}\n  hint: {hint}"
    )]
    Unreachable {
        endpoint: String,
        item: Box<Item>,
        attempts: u32,
        why: String,
        hint: String,
    },
    /// The endpoint did not answer within `timeout_ms`, on every attempt.
    #[error("{item}LLM endpoint {endpoint} did not answer within {timeout_ms} ms ({attempts} attempt(s))\n  hint: the model may be slow or overloaded: raise timeout_ms, or lower max_concurrency")]
    Timeout {
        endpoint: String,
        item: Box<Item>,
        timeout_ms: u64,
        attempts: u32,
    },
    /// 429 or 5xx on every attempt.
    #[error("{item}LLM endpoint {endpoint} kept failing: gave up after {attempts} attempt(s), last answer HTTP {last_status}: {last_message}\n  hint: {hint}")]
    RetriesExhausted {
        endpoint: String,
        item: Box<Item>,
        attempts: u32,
        last_status: u16,
        last_message: String,
        hint: String,
    },
    /// A 4xx other than 429 (not retried: the same request would fail again).
    #[error("{item}LLM endpoint {endpoint} refused the request: HTTP {status}: {message}\n  hint: {hint}")]
    Http {
        endpoint: String,
        item: Box<Item>,
        status: u16,
        message: String,
        hint: String,
    },
    /// A 2xx whose body is not the chat-completions JSON.
    #[error("{item}LLM endpoint {endpoint} sent a reply that is not chat-completions JSON: {why}; the reply starts with {excerpt:?}\n  hint: is base_url an OpenAI-compatible endpoint (ending in /v1)?")]
    MalformedReply {
        endpoint: String,
        item: Box<Item>,
        why: String,
        excerpt: String,
    },
    /// A well-formed reply with no choices, or with empty content.
    #[error("{item}LLM endpoint {endpoint} sent an empty answer: {why}\n  hint: {hint}")]
    EmptyReply {
        endpoint: String,
        item: Box<Item>,
        why: String,
        hint: String,
    },
    /// The configuration cannot work (missing API key variable, bad URL, zero concurrency).
    #[error("LLM configuration: {what}\n  hint: {hint}")]
    Config { what: String, hint: String },
    /// A prompt template file cannot be read or lacks a part.
    #[error("prompt template {path}: {what}\n  hint: {hint}")]
    Template {
        path: String,
        what: String,
        hint: String,
    },
    /// The response cache directory cannot be created.
    #[error("LLM response cache {path}: {why}\n  hint: {hint}")]
    Cache {
        path: String,
        why: String,
        hint: String,
    },
    /// Anything else (an unexpected transport error).
    #[error("{what}\n  hint: {hint}")]
    Other { what: String, hint: String },
}

impl LlmError {
    /// The tweet/entity the error is about, when known.
    pub fn item(&self) -> Option<&Item> {
        match self {
            LlmError::Unreachable { item, .. }
            | LlmError::Timeout { item, .. }
            | LlmError::RetriesExhausted { item, .. }
            | LlmError::Http { item, .. }
            | LlmError::MalformedReply { item, .. }
            | LlmError::EmptyReply { item, .. } => Some(item.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_prefix_names_tweet_and_entity() {
        assert_eq!(
            Item::entity("O_1", "Angelina Jolie").to_string(),
            "tweet O_1, entity \"Angelina Jolie\": "
        );
        assert_eq!(Item::none().to_string(), "");
    }

    #[test]
    fn error_stays_small() {
        // StageError embeds LlmError and is returned by every stage: keep it under clippy's
        // result_large_err threshold (128 bytes) by boxing the item.
        assert!(std::mem::size_of::<LlmError>() < 128);
    }
}
