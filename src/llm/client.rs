//! A blocking client for OpenAI-compatible `/v1/chat/completions` endpoints (vLLM, llama.cpp,
//! Ollama, OpenAI itself), on ureq.
//!
//! - Every request is bounded by `timeout_ms`; 429, 5xx, timeouts and dropped connections are
//!   retried `max_retries` times with exponential backoff (`backoff_base_ms · 2^n`, capped at
//!   `backoff_max_ms`, with a little jitter), honouring a server's `Retry-After` (capped too).
//!   Other 4xx are not retried: the same request would fail the same way.
//! - `Retry-After` is read in both its forms (seconds, or an HTTP date via `httpdate`); the jitter
//!   added to the exponential backoff comes from a seeded SplitMix64, not the clock.
//! - The API key is read from the environment variable named by `api_key_env` when the client is
//!   built; it lives only inside the client, whose `Debug` redacts it. It is never logged, cached
//!   or part of a cache key. Because some endpoints echo the `Authorization` header (in an error
//!   body, or in a completion), every reply body is passed through a [`Redactor`] the moment it is
//!   read: error messages, excerpts, log lines and returned completions never hold the key's value.
//!   (ureq's own `TRACE` logging is wire level and unredacted: leave `ureq=trace` off against a
//!   real provider.)
//! - Sampling settings (`temperature`, `top_p`, `max_tokens`, `max_completion_tokens`, `seed`)
//!   and `extra` request fields come from the suite's `[llm]` table; each is sent only when set, so
//!   reasoning models that reject `max_tokens` or a non-default temperature can be used (write
//!   `temperature = "omit"`). [`LlmConfig::request_fields`] is what every request adds to `model`
//!   and `messages`; the response cache keys on it, and results record it.
//! - Messages are plain text ([`ChatMessage`]) or typed parts ([`MultimodalMessage`]: text and
//!   `image_url` parts with base64 data URLs, as vLLM, llama.cpp's server, SGLang, LM Studio and
//!   hosted APIs accept); both go through the same retries, timeouts and key handling.
//! - The client is `Sync`: one instance serves every worker thread of the reformulator.
//!
//! This module must not know about prompts, entities or the cache: it sends messages and returns
//! the answer's text.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize};

use super::error::{Item, LlmError, UNREACHABLE_HINT};
use super::redact::Redactor;
use crate::util::SplitMix64;

/// Largest reply body read, in bytes; chat replies are a few KiB.
const MAX_REPLY_BYTES: u64 = 8 * 1024 * 1024;

/// How to reach the LLM and how patient to be. Deserialises from a suite's `[llm]` table; every
/// field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The endpoint's base URL, e.g. `http://127.0.0.1:8000/v1`. Requests go to
    /// `<base_url>/chat/completions`; a bare `http://host:port` gets `/v1/chat/completions`, and a
    /// URL already ending in `/chat/completions` is used as is.
    pub base_url: String,
    /// The model name the server expects (`model` field of the request).
    pub model: String,
    /// Name of the environment variable that holds the API key (e.g. `OPENAI_API_KEY`); `None`
    /// for servers without authentication. The key itself is never stored in the config.
    pub api_key_env: Option<String>,
    /// Limit for one attempt (connect, send, and read the whole reply).
    pub timeout_ms: u64,
    /// Retries after the first attempt (0 = one attempt only).
    pub max_retries: u32,
    /// First backoff delay; doubles with each retry.
    pub backoff_base_ms: u64,
    /// Cap on any delay between attempts, `Retry-After` included.
    pub backoff_max_ms: u64,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Sampling temperature (0 for reproducible runs); `"omit"` in a suite sends none (reasoning
    /// models accept only their default).
    #[serde(deserialize_with = "omittable")]
    pub temperature: Option<f32>,
    /// Nucleus sampling; sent only when set.
    #[serde(deserialize_with = "omittable")]
    pub top_p: Option<f32>,
    /// Upper bound on the reply's length, in tokens (`max_tokens` of the request); `"omit"` sends
    /// none (reasoning models reject it: set `max_completion_tokens` instead).
    #[serde(deserialize_with = "omittable")]
    pub max_tokens: Option<u32>,
    /// `max_completion_tokens` of the request (OpenAI's newer name, which also counts reasoning
    /// tokens); sent only when set.
    #[serde(deserialize_with = "omittable")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling seed, for servers that honour it (vLLM, OpenAI); sent only when set.
    #[serde(deserialize_with = "omittable")]
    pub seed: Option<u64>,
    /// Extra top-level request fields merged into every request body, for servers that need
    /// them (e.g. `extra = { chat_template_kwargs = { enable_thinking = false } }` for vLLM, or
    /// `reasoning_effort = "low"`). They cannot replace `model`, `messages`, `stream` or a setting
    /// above (set that setting instead).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Request fields that the client owns: `extra` cannot set them.
const RESERVED_FIELDS: [&str; 8] = [
    "model",
    "messages",
    "stream",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
];

/// A number, or the word `"omit"` (→ `None`, the field is not sent); `null` (as results.json
/// writes an unset field) is `None` too.
fn omittable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ValueOrOther<T> {
        Value(T),
        // Anything else, kept to name it in the error (serde's own untagged error names nothing).
        Other(serde_json::Value),
    }
    match Option::<ValueOrOther<T>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(ValueOrOther::Value(v)) => Ok(Some(v)),
        Some(ValueOrOther::Other(serde_json::Value::String(w)))
            if w.trim().eq_ignore_ascii_case("omit") =>
        {
            Ok(None)
        }
        Some(ValueOrOther::Other(other)) => Err(serde::de::Error::custom(format!(
            "expected a number in the setting's range or \"omit\" (not sent), found {other}"
        ))),
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            base_url: "http://127.0.0.1:8000/v1".to_string(),
            model: "mock".to_string(),
            api_key_env: None,
            timeout_ms: 60_000,
            max_retries: 3,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            max_concurrency: 4,
            temperature: Some(0.0),
            top_p: None,
            max_tokens: Some(256),
            max_completion_tokens: None,
            seed: None,
            extra: serde_json::Map::new(),
        }
    }
}

impl LlmConfig {
    /// A default config pointing at `base_url` (e.g. a [`MockServer`](super::MockServer)'s).
    pub fn for_base_url(base_url: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            ..LlmConfig::default()
        }
    }

    /// The full URL requests are posted to (see [`LlmConfig::base_url`]).
    pub fn chat_url(&self) -> String {
        let base = self.base_url.trim().trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            return base.to_string();
        }
        let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
        if after_scheme.contains('/') {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        }
    }

    /// Checks what can be checked without a request.
    pub fn validate(&self) -> Result<(), LlmError> {
        let config_error = |what: String, hint: &str| {
            Err(LlmError::Config {
                what,
                hint: hint.to_string(),
            })
        };
        let base = self.base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return config_error(
                format!("base_url {base:?} is not an http:// or https:// URL"),
                "use e.g. base_url = \"http://127.0.0.1:8000/v1\"",
            );
        }
        if base.starts_with("https://") && !cfg!(feature = "https") {
            return config_error(
                format!("base_url {base:?} needs TLS, but this binary was built without it"),
                "rebuild with the default `https` cargo feature, or use a plain http:// endpoint",
            );
        }
        if self.model.trim().is_empty() {
            return config_error(
                "model is empty".to_string(),
                "set model to the name the server serves (see GET <base_url>/models)",
            );
        }
        if self.timeout_ms == 0 {
            return config_error(
                "timeout_ms is 0".to_string(),
                "set a positive limit, e.g. timeout_ms = 60000",
            );
        }
        if self.max_concurrency == 0 {
            return config_error(
                "max_concurrency is 0".to_string(),
                "set max_concurrency to at least 1",
            );
        }
        if let Some(t) = self.temperature {
            if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
                return config_error(
                    format!("temperature {t} is outside 0..=2"),
                    "use temperature = 0 for reproducible runs, or \"omit\" for the server's default",
                );
            }
        }
        if let Some(p) = self.top_p {
            if !(p.is_finite() && p > 0.0 && p <= 1.0) {
                return config_error(
                    format!("top_p {p} is outside (0, 1]"),
                    "use e.g. top_p = 1, or leave it out",
                );
            }
        }
        if self.max_tokens == Some(0) {
            return config_error(
                "max_tokens is 0".to_string(),
                "set max_tokens to e.g. 256, or \"omit\"",
            );
        }
        if self.max_completion_tokens == Some(0) {
            return config_error(
                "max_completion_tokens is 0".to_string(),
                "set max_completion_tokens to e.g. 1024, or leave it out",
            );
        }
        if let Some(key) = self
            .extra
            .keys()
            .find(|k| RESERVED_FIELDS.contains(&k.as_str()))
        {
            return config_error(
                format!("extra sets the request field {key:?}, which the client owns"),
                if matches!(key.as_str(), "model" | "messages" | "stream") {
                    "remove it from extra: model is its own setting, messages come from the prompt, and replies are read whole (no streaming)"
                } else {
                    "set it as its own [llm] setting (e.g. temperature = 0.2) instead of in extra"
                },
            );
        }
        Ok(())
    }

    /// The fields every request carries besides `model`, `messages` and `stream`: the sampling
    /// settings that are set, then `extra`. This is what the response cache keys on (a reply
    /// depends on all of it) and what results record.
    pub fn request_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        let mut put = |name: &str, value: Option<serde_json::Value>| {
            if let Some(v) = value {
                fields.insert(name.to_string(), v);
            }
        };
        // f32 → f64 through the decimal text, so 0.7 is sent as 0.7, not 0.699999988079071.
        let float = |v: f32| {
            v.to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
        };
        put("temperature", self.temperature.and_then(float));
        put("top_p", self.top_p.and_then(float));
        put("max_tokens", self.max_tokens.map(Into::into));
        put(
            "max_completion_tokens",
            self.max_completion_tokens.map(Into::into),
        );
        put("seed", self.seed.map(Into::into));
        for (k, v) in &self.extra {
            fields.insert(k.clone(), v.clone());
        }
        fields
    }

    /// A one-line summary of [`LlmConfig::request_fields`] (compact JSON, keys sorted), for stage
    /// fingerprints: two configs that send different requests never share one.
    pub fn sampling_fingerprint(&self) -> String {
        serde_json::Value::Object(self.request_fields()).to_string()
    }

    /// Reads the key from the variable named by `api_key_env` (an error if it is named but unset).
    fn read_api_key(&self) -> Result<Option<ApiKey>, LlmError> {
        let Some(var) = &self.api_key_env else {
            return Ok(None);
        };
        let hint = format!(
            "export {var}=<your key>, or remove api_key_env for a server without authentication"
        );
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(ApiKey(key.trim().to_string()))),
            Ok(_) => Err(LlmError::Config {
                what: format!("environment variable {var} (api_key_env) is empty"),
                hint,
            }),
            Err(std::env::VarError::NotPresent) => Err(LlmError::Config {
                what: format!("environment variable {var} (api_key_env) is not set"),
                hint,
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(LlmError::Config {
                what: format!("environment variable {var} (api_key_env) is not valid UTF-8"),
                hint,
            }),
        }
    }
}

/// The API key; `Debug` never shows it.
#[derive(Clone)]
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// One chat message (`role` is `system`, `user` or `assistant`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "system".to_string(),
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "user".to_string(),
            content: content.into(),
        }
    }
}

/// One part of a multimodal message's content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

/// An `image_url` part's target: a `data:image/...;base64,...` URL here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    /// OpenAI's `detail` (`low`, `high`, `auto`); not sent when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// An image part from a data URL (see [`crate::llm::mllm::EncodedImage::data_url`]).
    pub fn image(url: impl Into<String>) -> Self {
        ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: url.into(),
                detail: None,
            },
        }
    }
}

/// A message whose content is a list of typed parts (text and images).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultimodalMessage {
    pub role: String,
    pub content: Vec<ContentPart>,
}

impl MultimodalMessage {
    /// Whether any part is an image.
    pub fn has_image(&self) -> bool {
        self.content
            .iter()
            .any(|p| matches!(p, ContentPart::ImageUrl { .. }))
    }
}

/// Counters for reports: what the LLM stage cost. Cache fields are filled by the reformulator and
/// the MLLM annotator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmStats {
    /// HTTP attempts made (first tries and retries).
    pub requests_sent: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Replies that succeeded.
    pub replies_ok: u64,
    /// Requests that failed after all attempts.
    pub requests_failed: u64,
    /// Items answered from the response cache (entities for the reformulator, tweets for the
    /// MLLM).
    pub cache_hits: u64,
    /// Items that needed a request.
    pub cache_misses: u64,
    /// Completion tokens of the successful replies whose `usage` the endpoint reported.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Prompt tokens of those replies.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Wall time of those replies' requests, in microseconds (the denominator of tokens/s).
    #[serde(default)]
    pub usage_us: u64,
}

impl LlmStats {
    /// Completion tokens per second of request time, when the endpoint reported usage.
    pub fn tokens_per_s(&self) -> Option<f64> {
        (self.completion_tokens > 0 && self.usage_us > 0)
            .then(|| self.completion_tokens as f64 / (self.usage_us as f64 / 1e6))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests_sent: AtomicU64,
    retries: AtomicU64,
    replies_ok: AtomicU64,
    requests_failed: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    completion_tokens: AtomicU64,
    prompt_tokens: AtomicU64,
    usage_us: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> LlmStats {
        LlmStats {
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            replies_ok: self.replies_ok.load(Ordering::Relaxed),
            requests_failed: self.requests_failed.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            usage_us: self.usage_us.load(Ordering::Relaxed),
        }
    }
}

/// Why one attempt failed in a way worth retrying.
#[derive(Debug)]
enum Transient {
    Status {
        status: u16,
        message: String,
        retry_after_ms: Option<u64>,
    },
    Timeout,
    Connection(String),
}

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transient::Status {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            Transient::Timeout => f.write_str("timed out"),
            Transient::Connection(why) => write!(f, "connection error: {why}"),
        }
    }
}

enum Failure {
    Transient(Transient),
    Fatal(LlmError),
}

/// The client: one ureq agent (connection pool), the resolved URL, the key and counters.
pub struct LlmClient {
    config: LlmConfig,
    chat_url: String,
    agent: ureq::Agent,
    api_key: Option<ApiKey>,
    redactor: Redactor,
    counters: Counters,
    /// Jitter draws so far; each seeds a SplitMix64 step, so concurrent retries differ.
    jitter_draws: AtomicU64,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("config", &self.config)
            .field("chat_url", &self.chat_url)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    /// Validates the config and reads the API key from the environment (if `api_key_env` is set).
    /// Makes no request.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        config.validate()?;
        let api_key = config.read_api_key()?;
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .max_idle_connections(config.max_concurrency.max(10))
            .max_idle_connections_per_host(config.max_concurrency)
            .user_agent(format!("riveg-bench/{}", env!("CARGO_PKG_VERSION")))
            .build();
        let redactor = Redactor::new(api_key.as_ref().map(|k| k.0.as_str()));
        Ok(LlmClient {
            chat_url: config.chat_url(),
            agent: ureq::Agent::new_with_config(agent_config),
            config,
            api_key,
            redactor,
            counters: Counters::default(),
            jitter_draws: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// The URL requests are posted to.
    pub fn chat_url(&self) -> &str {
        &self.chat_url
    }

    /// The counters so far.
    pub fn stats(&self) -> LlmStats {
        self.counters.snapshot()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The redactor that hides this client's API key (for callers that print or store text
    /// from elsewhere, e.g. a cached reply written by an older version).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Sends `messages` and returns the first choice's text (the API key redacted), retrying
    /// transient failures. `item` names the tweet/entity in errors and log lines.
    pub fn chat(&self, messages: &[ChatMessage], item: &Item) -> Result<String, LlmError> {
        self.send(messages, false, item)
    }

    /// [`LlmClient::chat`] for messages with typed parts (text and images). A 400/415/422 answer
    /// to a request with an image gets a hint about vision support.
    pub fn chat_multimodal(
        &self,
        messages: &[MultimodalMessage],
        item: &Item,
    ) -> Result<String, LlmError> {
        let has_images = messages.iter().any(MultimodalMessage::has_image);
        self.send(messages, has_images, item)
    }

    /// The request body: `model`, `messages`, `stream: false`, then [`LlmConfig::request_fields`].
    pub fn request_body<M: Serialize + ?Sized>(&self, messages: &M) -> Result<Vec<u8>, LlmError> {
        let bug = |e: serde_json::Error| LlmError::Other {
            what: format!("cannot serialise the chat request: {e}"),
            hint: "this is a bug in riveg-bench; please report it".to_string(),
        };
        let mut body = serde_json::Map::new();
        body.insert(
            "model".to_string(),
            serde_json::Value::String(self.config.model.clone()),
        );
        body.insert(
            "messages".to_string(),
            serde_json::to_value(messages).map_err(bug)?,
        );
        body.insert("stream".to_string(), serde_json::Value::Bool(false));
        body.extend(self.config.request_fields());
        serde_json::to_vec(&serde_json::Value::Object(body)).map_err(bug)
    }

    fn send<M: Serialize + ?Sized>(
        &self,
        messages: &M,
        has_images: bool,
        item: &Item,
    ) -> Result<String, LlmError> {
        let body = self.request_body(messages).map_err(|e| match e {
            LlmError::Other { what, hint } => LlmError::Other {
                what: format!("{item}{what}"),
                hint,
            },
            other => other,
        })?;
        let attempts_allowed = self.config.max_retries.saturating_add(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.counters.requests_sent.fetch_add(1, Ordering::Relaxed);
            let failure = match self.attempt_once(&body, has_images, item) {
                Ok(content) => {
                    self.counters.replies_ok.fetch_add(1, Ordering::Relaxed);
                    return Ok(content);
                }
                Err(failure) => failure,
            };
            let transient = match failure {
                Failure::Fatal(mut e) => {
                    self.counters
                        .requests_failed
                        .fetch_add(1, Ordering::Relaxed);
                    if let LlmError::Unreachable { attempts, .. } = &mut e {
                        *attempts = attempt;
                    }
                    return Err(e);
                }
                Failure::Transient(t) => t,
            };
            if attempt >= attempts_allowed {
                self.counters
                    .requests_failed
                    .fetch_add(1, Ordering::Relaxed);
                return Err(self.gave_up(transient, attempt, item));
            }
            let retry_after_ms = match &transient {
                Transient::Status { retry_after_ms, .. } => *retry_after_ms,
                _ => None,
            };
            let mut delay_ms = retry_delay_ms(
                self.config.backoff_base_ms,
                self.config.backoff_max_ms,
                attempt - 1,
                retry_after_ms,
            );
            if retry_after_ms.is_none() {
                let draw = self.jitter_draws.fetch_add(1, Ordering::Relaxed);
                delay_ms = delay_ms.saturating_add(jitter_ms(draw, delay_ms / 4));
            }
            log::warn!(
                "{item}LLM request to {} failed ({transient}); retry {attempt}/{} in {delay_ms} ms",
                self.chat_url,
                self.config.max_retries
            );
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
    }

    /// The error after the last allowed attempt failed transiently.
    fn gave_up(&self, last: Transient, attempts: u32, item: &Item) -> LlmError {
        let endpoint = self.chat_url.clone();
        let item = Box::new(item.clone());
        match last {
            Transient::Timeout => LlmError::Timeout {
                endpoint,
                item,
                timeout_ms: self.config.timeout_ms,
                attempts,
            },
            Transient::Connection(why) => LlmError::Unreachable {
                endpoint,
                item,
                attempts,
                why,
                hint: UNREACHABLE_HINT.to_string(),
            },
            Transient::Status {
                status, message, ..
            } => LlmError::RetriesExhausted {
                endpoint,
                item,
                attempts,
                last_status: status,
                hint: if status == 429 {
                    "the server is rate limiting: lower max_concurrency, or raise max_retries / backoff_base_ms".to_string()
                } else {
                    "the server is failing (5xx): check its logs; raise max_retries if it is only restarting".to_string()
                },
                last_message: message,
            },
        }
    }

    /// One HTTP exchange.
    fn attempt_once(&self, body: &[u8], has_images: bool, item: &Item) -> Result<String, Failure> {
        let started = std::time::Instant::now();
        let mut request = self
            .agent
            .post(&self.chat_url)
            .header("Content-Type", "application/json");
        if let Some(ApiKey(key)) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request
            .send(body)
            .map_err(|e| self.transport_failure(e, item))?;
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after_ms(v, SystemTime::now()));
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_failure(e, item))?;
        // Redacted before anything looks at it: excerpts, messages and the content all come
        // from this text.
        let text = self
            .redactor
            .redact(&String::from_utf8_lossy(&bytes))
            .into_owned();
        if (200..300).contains(&status) {
            let reply = self.parse_reply(&text, item).map_err(Failure::Fatal)?;
            if let Some(usage) = reply.usage {
                self.record_usage(usage, started.elapsed());
            }
            return Ok(reply.content);
        }
        let message = error_message(&text);
        if status == 429 || (500..600).contains(&status) {
            return Err(Failure::Transient(Transient::Status {
                status,
                message,
                retry_after_ms,
            }));
        }
        Err(Failure::Fatal(LlmError::Http {
            endpoint: self.chat_url.clone(),
            item: Box::new(item.clone()),
            status,
            message,
            hint: self.status_hint(status, has_images),
        }))
    }

    fn status_hint(&self, status: u16, has_images: bool) -> String {
        if has_images && matches!(status, 400 | 415 | 422) {
            return format!(
                "the endpoint refused a request with an image: does model {:?} accept images? Use a vision model (vLLM: a multimodal model, llama.cpp's server: --mmproj, LM Studio: a VLM); if it does, check max_image_side / image_format against its limits",
                self.config.model
            );
        }
        match (status, &self.config.api_key_env) {
            (401 | 403, Some(var)) => format!(
                "the server rejected the API key read from the environment variable {var} (api_key_env): check its value and its rights for model {:?}",
                self.config.model
            ),
            (401 | 403, None) => "the server wants an API key: export it in an environment variable and name that variable in api_key_env (e.g. api_key_env = \"OPENAI_API_KEY\")".to_string(),
            (404, _) => format!(
                "check base_url (requests go to {}) and that the server serves model {:?}",
                self.chat_url, self.config.model
            ),
            (400 | 422, _) => format!(
                "the server rejected the request body: check model {:?} and the request fields {} against what it accepts (in [llm]: reasoning models want max_tokens = \"omit\" with max_completion_tokens set, and temperature = \"omit\"; server-specific fields go in extra)",
                self.config.model,
                self.config.sampling_fingerprint()
            ),
            _ => "see the server's message above".to_string(),
        }
    }

    /// Classifies a ureq error: transient (retried) or fatal.
    fn transport_failure(&self, error: ureq::Error, item: &Item) -> Failure {
        use std::io::ErrorKind;
        let unreachable = |why: String, hint: &str| {
            Failure::Fatal(LlmError::Unreachable {
                endpoint: self.chat_url.clone(),
                item: Box::new(item.clone()),
                attempts: 1,
                why,
                hint: hint.to_string(),
            })
        };
        match error {
            ureq::Error::Timeout(_) => Failure::Transient(Transient::Timeout),
            ureq::Error::Io(e)
                if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
            {
                Failure::Transient(Transient::Timeout)
            }
            ureq::Error::Io(e) => Failure::Transient(Transient::Connection(
                self.redactor.redact(&e.to_string()).into_owned(),
            )),
            ureq::Error::ConnectionFailed => {
                Failure::Transient(Transient::Connection("connection failed".to_string()))
            }
            ureq::Error::Protocol(e) => Failure::Transient(Transient::Connection(
                self.redactor
                    .redact(&format!("HTTP protocol error: {e}"))
                    .into_owned(),
            )),
            ureq::Error::HostNotFound => {
                unreachable("host not found".to_string(), UNREACHABLE_HINT)
            }
            ureq::Error::BadUri(uri) => Failure::Fatal(LlmError::Config {
                what: format!("base_url gives an invalid URL {uri:?}"),
                hint: "use e.g. base_url = \"http://127.0.0.1:8000/v1\"".to_string(),
            }),
            other if self.chat_url.starts_with("https://") => unreachable(
                self.redactor.redact(&other.to_string()).into_owned(),
                "the TLS connection failed: check the URL and the server's certificate",
            ),
            other => unreachable(
                self.redactor.redact(&other.to_string()).into_owned(),
                UNREACHABLE_HINT,
            ),
        }
    }

    /// Adds a reply's token usage and its request time to the counters.
    fn record_usage(&self, usage: TokenUsage, took: std::time::Duration) {
        let c = &self.counters;
        c.completion_tokens
            .fetch_add(usage.completion, Ordering::Relaxed);
        c.prompt_tokens.fetch_add(usage.prompt, Ordering::Relaxed);
        c.usage_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Extracts `choices[0].message.content` (and `usage`, when the endpoint reports it) from a
    /// 2xx body, parsed once.
    fn parse_reply(&self, body: &str, item: &Item) -> Result<ParsedReply, LlmError> {
        let malformed = |why: String| LlmError::MalformedReply {
            endpoint: self.chat_url.clone(),
            item: Box::new(item.clone()),
            why,
            excerpt: excerpt(body, 120),
        };
        let empty = |why: &str, hint: String| LlmError::EmptyReply {
            endpoint: self.chat_url.clone(),
            item: Box::new(item.clone()),
            why: why.to_string(),
            hint,
        };
        if body.trim_start().starts_with("data:") {
            // A proxy that streams whatever the request says.
            return Err(malformed(
                "the server streamed the reply as server-sent events although the request said \
                 stream: false"
                    .to_string(),
            ));
        }
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| malformed(format!("invalid JSON ({e})")))?;
        if !value.is_object() {
            return Err(malformed("the reply is not a JSON object".to_string()));
        }
        let Some(choice) = value
            .get("choices")
            .and_then(|c| c.as_array())
            .and_then(|c| c.first())
        else {
            return Err(empty(
                "the reply has no choices",
                "the server produced no completion: check its logs".to_string(),
            ));
        };
        let content = match choice.get("message").and_then(|m| m.get("content")) {
            Some(serde_json::Value::String(s)) => s.clone(),
            // Some servers send content as a list of typed parts.
            Some(serde_json::Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(""),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => {
                return Err(malformed(format!(
                    "choices[0].message.content is neither text nor a list of parts: {}",
                    excerpt(&other.to_string(), 60)
                )))
            }
        };
        if content.trim().is_empty() {
            let hint = match choice.get("finish_reason").and_then(|f| f.as_str()) {
                Some("length") => format!(
                    "the model used its whole token budget (max_tokens {:?}, max_completion_tokens {:?}) before answering: raise it",
                    self.config.max_tokens, self.config.max_completion_tokens
                ),
                Some("content_filter") => {
                    "the provider's content filter withheld the answer".to_string()
                }
                _ => "the model answered nothing for this prompt: check the prompt template"
                    .to_string(),
            };
            return Err(empty("the first choice's content is empty", hint));
        }
        let usage = value.get("usage").and_then(|u| {
            let field = |k: &str| u.get(k).and_then(serde_json::Value::as_u64);
            Some(TokenUsage {
                completion: field("completion_tokens")?,
                prompt: field("prompt_tokens").unwrap_or(0),
            })
        });
        Ok(ParsedReply { content, usage })
    }
}

/// A completion's text and the token usage the endpoint reported with it.
#[derive(Debug)]
struct ParsedReply {
    content: String,
    usage: Option<TokenUsage>,
}

/// OpenAI's `usage`: completion and prompt tokens of one reply.
#[derive(Debug, Clone, Copy)]
struct TokenUsage {
    completion: u64,
    prompt: u64,
}

/// The delay before retry number `retry_index` (0-based): the server's `Retry-After` when it gave
/// one, else `backoff_base_ms · 2^retry_index`; both capped at `backoff_max_ms`.
pub fn retry_delay_ms(
    backoff_base_ms: u64,
    backoff_max_ms: u64,
    retry_index: u32,
    retry_after_ms: Option<u64>,
) -> u64 {
    let wanted = retry_after_ms.unwrap_or_else(|| {
        backoff_base_ms.saturating_mul(1u64.checked_shl(retry_index).unwrap_or(u64::MAX))
    });
    wanted.min(backoff_max_ms)
}

/// `Retry-After` in milliseconds from `now`: seconds (integer or decimal), or an HTTP date (RFC
/// 9110: IMF-fixdate, RFC 850 or asctime; a date in the past is 0). `None` when unreadable (the
/// caller falls back to the exponential backoff).
pub fn parse_retry_after_ms(value: &str, now: SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| (seconds * 1000.0).min(u64::MAX as f64) as u64);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at.duration_since(now).unwrap_or(Duration::ZERO);
    Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

/// Up to `max_ms` of jitter so that concurrent retries do not arrive together: draw number
/// `draw` of a SplitMix64 stream (deterministic, unlike clock nanoseconds, which repeat for
/// threads that wake together).
fn jitter_ms(draw: u64, max_ms: u64) -> u64 {
    if max_ms == 0 {
        return 0;
    }
    const JITTER_SEED: u64 = 0x6A09_E667_F3BC_C908;
    let mut rng = SplitMix64::new(JITTER_SEED ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let span = usize::try_from(max_ms.saturating_add(1)).unwrap_or(usize::MAX);
    rng.below(span) as u64
}

/// The server's error message: `error.message` / `error` / `message` of a JSON body, FastAPI's
/// `detail` (text, or a list of `{loc, msg}` validation errors), else the body itself, shortened.
fn error_message(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        let message = value
            .get("error")
            .and_then(|e| e.get("message").or(Some(e)))
            .or_else(|| value.get("message"))
            .and_then(|m| m.as_str());
        if let Some(m) = message {
            return excerpt(m, 300);
        }
        if let Some(detail) = value.get("detail").and_then(detail_message) {
            return excerpt(&detail, 300);
        }
    }
    if body.trim().is_empty() {
        "(empty body)".to_string()
    } else {
        excerpt(body, 300)
    }
}

/// FastAPI's `detail`: a string, an object with `message`/`msg`, or a list of validation errors
/// `{"loc": [...], "msg": ...}` shown as `loc.path: msg; ...`.
fn detail_message(detail: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let one = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => {
                let msg = o
                    .get("msg")
                    .or_else(|| o.get("message"))
                    .and_then(Value::as_str)?;
                let loc: Vec<String> = o
                    .get("loc")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .map(|p| match p {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(if loc.is_empty() {
                    msg.to_string()
                } else {
                    format!("{}: {msg}", loc.join("."))
                })
            }
            _ => None,
        }
    };
    match detail {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(one).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        other => one(other),
    }
}

/// The first `max_chars` characters of `text`, whitespace collapsed, `…` when cut.
fn excerpt(text: &str, max_chars: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max_chars {
        collapsed
    } else {
        let mut cut: String = collapsed.chars().take(max_chars).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_url_accepts_the_usual_base_urls() {
        let url = |b: &str| LlmConfig::for_base_url(b).chat_url();
        assert_eq!(url("http://h:1/v1"), "http://h:1/v1/chat/completions");
        assert_eq!(url("http://h:1/v1/"), "http://h:1/v1/chat/completions");
        assert_eq!(url("http://h:1"), "http://h:1/v1/chat/completions");
        assert_eq!(
            url("https://x.org/openai/v1beta"),
            "https://x.org/openai/v1beta/chat/completions"
        );
        assert_eq!(
            url("http://h:1/v1/chat/completions"),
            "http://h:1/v1/chat/completions"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(retry_delay_ms(100, 1000, 0, None), 100);
        assert_eq!(retry_delay_ms(100, 1000, 1, None), 200);
        assert_eq!(retry_delay_ms(100, 1000, 3, None), 800);
        assert_eq!(retry_delay_ms(100, 1000, 4, None), 1000);
        assert_eq!(retry_delay_ms(100, 1000, 200, None), 1000);
        // Retry-After wins over the backoff but is capped too.
        assert_eq!(retry_delay_ms(100, 1000, 0, Some(700)), 700);
        assert_eq!(retry_delay_ms(100, 1000, 0, Some(3_600_000)), 1000);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after_ms("2", now), Some(2000));
        assert_eq!(parse_retry_after_ms(" 0.5 ", now), Some(500));
        assert_eq!(parse_retry_after_ms("-1", now), None);
        assert_eq!(
            parse_retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30_000)
        );
        // RFC 850 and asctime forms are HTTP dates too.
        assert_eq!(
            parse_retry_after_ms("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(60_000)
        );
        assert_eq!(
            parse_retry_after_ms("Wed Oct 21 07:28:01 2015", now),
            Some(1_000)
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after_ms("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after_ms("soon", now), None);
    }

    #[test]
    fn jitter_is_bounded_and_varies_between_draws() {
        let draws: Vec<u64> = (0..64).map(|d| jitter_ms(d, 100)).collect();
        assert!(draws.iter().all(|&j| j <= 100), "{draws:?}");
        assert_eq!(jitter_ms(7, 100), jitter_ms(7, 100));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 32, "{distinct:?}");
        assert_eq!(jitter_ms(3, 0), 0);
    }

    #[test]
    fn error_message_prefers_openai_shape() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key","type":"auth"}}"#),
            "bad key"
        );
        assert_eq!(error_message(r#"{"error":"overloaded"}"#), "overloaded");
        assert_eq!(error_message("  plain\n text "), "plain text");
        assert_eq!(error_message(""), "(empty body)");
    }

    #[test]
    fn error_message_reads_fastapi_detail() {
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message(
                r#"{"detail":[{"loc":["body","messages",0,"content"],"msg":"field required","type":"missing"},{"loc":["body","n"],"msg":"must be >= 1"}]}"#
            ),
            "body.messages.0.content: field required; body.n: must be >= 1"
        );
        assert_eq!(
            error_message(r#"{"detail":{"message":"model busy"}}"#),
            "model busy"
        );
        // An unknown detail shape falls back to the raw body.
        assert_eq!(error_message(r#"{"detail":42}"#), r#"{"detail":42}"#);
    }

    #[test]
    fn request_fields_send_only_what_is_set() {
        let config = LlmConfig::default();
        assert_eq!(
            config.sampling_fingerprint(),
            r#"{"max_tokens":256,"temperature":0.0}"#
        );
        let reasoning: LlmConfig = toml::from_str(
            "temperature = \"omit\"\nmax_tokens = \"omit\"\nmax_completion_tokens = 2048\nseed = 7\ntop_p = 0.9\n\
             extra = { reasoning_effort = \"low\", chat_template_kwargs = { enable_thinking = false } }\n",
        )
        .unwrap();
        assert_eq!((reasoning.temperature, reasoning.max_tokens), (None, None));
        assert!(reasoning.validate().is_ok());
        assert_eq!(
            reasoning.sampling_fingerprint(),
            r#"{"chat_template_kwargs":{"enable_thinking":false},"max_completion_tokens":2048,"reasoning_effort":"low","seed":7,"top_p":0.9}"#
        );
        // results.json round trip: unset fields are null.
        let json = serde_json::to_string(&reasoning).unwrap();
        assert!(json.contains("\"temperature\":null"), "{json}");
        assert_eq!(serde_json::from_str::<LlmConfig>(&json).unwrap(), reasoning);
        let word = toml::from_str::<LlmConfig>("temperature = \"zero\"").unwrap_err();
        assert!(word.to_string().contains("found \"zero\""), "{word}");
        let negative = toml::from_str::<LlmConfig>("max_tokens = -1").unwrap_err();
        assert!(negative.to_string().contains("found -1"), "{negative}");
        // Integers are fine where floats are expected.
        let ints: LlmConfig = toml::from_str("temperature = 1\nmax_tokens = 64\n").unwrap();
        assert_eq!((ints.temperature, ints.max_tokens), (Some(1.0), Some(64)));
    }

    #[test]
    fn streamed_or_partial_replies_are_malformed() {
        let client = LlmClient::new(LlmConfig::default()).unwrap();
        let item = Item::entity("O_1", "UN");
        let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n";
        let err = client.parse_reply(sse, &item).unwrap_err();
        assert!(err.to_string().contains("server-sent events"), "{err}");
        let ok = client
            .parse_reply(
                r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#,
                &item,
            )
            .unwrap();
        assert_eq!(ok.content, "ab");
    }

    #[test]
    fn extra_cannot_take_over_owned_fields() {
        for key in ["model", "stream", "temperature", "max_tokens"] {
            let mut config = LlmConfig::default();
            config
                .extra
                .insert(key.to_string(), serde_json::Value::Bool(true));
            let err = config.validate().unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn request_body_merges_settings_and_extra() {
        let mut config = LlmConfig {
            seed: Some(3),
            ..LlmConfig::default()
        };
        config
            .extra
            .insert("n".to_string(), serde_json::Value::from(2));
        let client = LlmClient::new(config).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&client.request_body(&[ChatMessage::user("hi")]).unwrap())
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "mock", "messages": [{"role": "user", "content": "hi"}],
                "stream": false, "temperature": 0.0, "max_tokens": 256, "seed": 3, "n": 2,
            })
        );
        let parts = [MultimodalMessage {
            role: "user".to_string(),
            content: vec![
                ContentPart::text("look"),
                ContentPart::image("data:image/png;base64,AAAA"),
            ],
        }];
        let body: serde_json::Value =
            serde_json::from_slice(&client.request_body(&parts).unwrap()).unwrap();
        assert_eq!(
            body["messages"][0]["content"],
            serde_json::json!([
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ])
        );
    }

    #[test]
    fn validate_rejects_unusable_configs() {
        assert!(LlmConfig::default().validate().is_ok());
        let bad = [
            LlmConfig::for_base_url("127.0.0.1:8000"),
            LlmConfig {
                max_concurrency: 0,
                ..LlmConfig::default()
            },
            LlmConfig {
                temperature: Some(f32::NAN),
                ..LlmConfig::default()
            },
            LlmConfig {
                top_p: Some(0.0),
                ..LlmConfig::default()
            },
            LlmConfig {
                max_completion_tokens: Some(0),
                ..LlmConfig::default()
            },
            LlmConfig {
                timeout_ms: 0,
                ..LlmConfig::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(LlmError::Config { .. })),
                "{config:?}"
            );
        }
    }

    #[test]
    fn config_reads_from_toml_with_defaults() {
        let config: LlmConfig =
            toml::from_str("base_url = \"http://h:9/v1\"\nmax_retries = 1\n").unwrap();
        assert_eq!(config.max_retries, 1);
        assert_eq!(config.model, LlmConfig::default().model);
        assert!(toml::from_str::<LlmConfig>("max_retrys = 1").is_err());
    }
}
