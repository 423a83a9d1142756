//! [`Redactor`]: removes the API key's value from text before it is printed, logged, cached or
//! returned. Some endpoints echo the `Authorization` header, in an error body ("invalid header
//! Bearer sk-…") or even in a completion; without this the key would reach stderr, the response
//! cache and the predictions.
//!
//! The key is replaced wherever it occurs, as is and in its JSON-escaped form (a body is redacted
//! before it is parsed, so both forms can meet it). Redaction happens on the whole text before
//! any excerpt is cut, so a shortened message never keeps half a key.
//!
//! This module must not log, and must never put the key itself in an error or a `Debug` output.

use std::borrow::Cow;
use std::fmt;

/// What a key's value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Keys shorter than this still get redacted, but a warning says that replies may be mangled
/// (every occurrence of a very short string is replaced).
const SHORT_KEY: usize = 8;

/// Hides one secret (the API key) in text. Cheap to clone; `Debug` never shows the secret.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The key and, when it differs, its JSON-escaped form; longest first.
    needles: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("active", &!self.needles.is_empty())
            .finish()
    }
}

impl Redactor {
    /// A redactor for `secret` (`None` or blank: a no-op).
    pub fn new(secret: Option<&str>) -> Self {
        let Some(secret) = secret.map(str::trim).filter(|s| !s.is_empty()) else {
            return Redactor::default();
        };
        if secret.chars().count() < SHORT_KEY {
            log::warn!(
                "the API key is shorter than {SHORT_KEY} characters; every occurrence of it in \
                 replies is replaced by {REDACTED}, which may change their text"
            );
        }
        let mut needles = vec![secret.to_string()];
        // serde_json's escaping of the key, without the surrounding quotes.
        if let Ok(quoted) = serde_json::to_string(secret) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != secret {
                needles.push(escaped.to_string());
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Redactor { needles }
    }

    /// Whether there is a secret to hide.
    pub fn is_active(&self) -> bool {
        !self.needles.is_empty()
    }

    /// `text` with every occurrence of the secret replaced by [`REDACTED`] (borrowed when there
    /// was none).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), REDACTED));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_and_its_json_form() {
        let r = Redactor::new(Some("sk-test-\"quoted\"-1234"));
        assert!(r.is_active());
        let raw = "Bearer sk-test-\"quoted\"-1234 and again sk-test-\"quoted\"-1234";
        assert_eq!(r.redact(raw), "Bearer <redacted> and again <redacted>");
        let json = serde_json::json!({ "echo": "Bearer sk-test-\"quoted\"-1234" }).to_string();
        let redacted = r.redact(&json);
        assert!(!redacted.contains("quoted"), "{redacted}");
        // The redacted JSON is still JSON.
        let value: serde_json::Value = serde_json::from_str(&redacted).unwrap();
        assert_eq!(value["echo"], "Bearer <redacted>");
    }

    #[test]
    fn no_secret_is_a_no_op_and_debug_hides_the_key() {
        let none = Redactor::new(None);
        assert!(!none.is_active());
        assert!(matches!(none.redact("abc"), Cow::Borrowed("abc")));
        assert!(!Redactor::new(Some("   ")).is_active());
        let r = Redactor::new(Some("sk-secret-value"));
        assert!(!format!("{r:?}").contains("secret"));
    }
}
