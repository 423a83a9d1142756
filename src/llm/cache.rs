//! An on-disk cache of LLM replies, so that a rerun (or another variant sharing the
//! reformulation) sends no request for what was already answered.
//!
//! The key is the sha256 of a canonical JSON of everything that decides the reply: the model
//! name, the prompt template's name and version, the rendered messages (for a multimodal request
//! they hold the image's data URL, so the key covers the image bytes as sent) and every request
//! field the config adds ([`LlmConfig::request_fields`]: temperature, top_p, max_tokens,
//! max_completion_tokens, seed and `extra`; a shorter budget can cut a reply). The endpoint's URL
//! and the API key are not part of it: the same model behind another port or key gives the same
//! answer. One JSON file per key,
//! `<dir>/<first 2 hex>/<hex>.json`, written atomically with [`crate::io_util::write_atomic_unsynced`] (a bad entry is a miss).
//! The raw reply is stored, not the normalised expansion, so that a change in parsing needs no
//! new requests.
//!
//! A cache file that cannot be read or parsed is a miss with a warning, never an error: the reply
//! is asked for again and the file rewritten.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::client::LlmConfig;
use super::error::LlmError;
use super::prompt::PromptTemplate;

/// Bumped when the key material or the entry layout changes (2: all request fields).
const CACHE_FORMAT: u32 = 2;

/// A request's cache key: 64 hex digits of sha256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

#[derive(Serialize)]
struct KeyMaterial<'a, M: Serialize + ?Sized> {
    format: u32,
    model: &'a str,
    prompt_name: &'a str,
    prompt_version: &'a str,
    messages: &'a M,
    request_fields: serde_json::Map<String, serde_json::Value>,
}

/// Feeds serialised bytes straight into the hash (an image's data URL can be megabytes).
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CacheKey {
    /// The key of a request for `messages` (text or multimodal) under `config`'s model and
    /// request fields, rendered from `template`.
    pub fn for_chat<M: Serialize + ?Sized>(
        config: &LlmConfig,
        template: &PromptTemplate,
        messages: &M,
    ) -> Self {
        let material = KeyMaterial {
            format: CACHE_FORMAT,
            model: &config.model,
            prompt_name: &template.name,
            prompt_version: &template.version,
            messages,
            request_fields: config.request_fields(),
        };
        let mut hasher = HashWriter(Sha256::new());
        // Messages are strings and lists of tagged parts: serialising them cannot fail.
        if let Err(e) = serde_json::to_writer(&mut hasher, &material) {
            log::warn!("LLM cache key: cannot serialise the request ({e}); caching it under a key of its error");
            hasher.0.update(e.to_string().as_bytes());
        }
        let digest = hasher.0.finalize();
        CacheKey(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn hex(&self) -> &str {
        &self.0
    }
}

/// One cache file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedReply {
    /// The key, repeated so that a misplaced file is detected.
    pub key: String,
    pub model: String,
    /// `name@version` of the prompt template.
    pub prompt: String,
    /// The reply's text as the server sent it.
    pub content: String,
    pub created_unix_s: u64,
}

impl CachedReply {
    pub fn new(key: &CacheKey, model: &str, template: &PromptTemplate, content: &str) -> Self {
        CachedReply {
            key: key.hex().to_string(),
            model: model.to_string(),
            prompt: template.id(),
            content: content.to_string(),
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    dir: PathBuf,
}

impl ResponseCache {
    /// Opens (creating it if needed) a cache directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LlmError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| LlmError::Cache {
            path: dir.display().to_string(),
            why: format!("cannot create the directory: {e}"),
            hint: "choose a writable cache directory, or run without the LLM cache".to_string(),
        })?;
        Ok(ResponseCache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<first 2 hex>/<hex>.json`.
    pub fn path_for(&self, key: &CacheKey) -> PathBuf {
        let hex = key.hex();
        self.dir
            .join(hex.get(..2).unwrap_or("00"))
            .join(format!("{hex}.json"))
    }

    /// The cached reply, or `None` (missing, unreadable or corrupt: the latter two with a warning).
    pub fn get(&self, key: &CacheKey) -> Option<CachedReply> {
        let path = self.path_for(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!(
                    "LLM cache file {} is unreadable ({e}); asking the LLM again",
                    path.display()
                );
                return None;
            }
        };
        match serde_json::from_slice::<CachedReply>(&bytes) {
            Ok(entry) if entry.key == key.hex() => Some(entry),
            Ok(_) => {
                log::warn!(
                    "LLM cache file {} holds another key; ignoring it and asking the LLM again",
                    path.display()
                );
                None
            }
            Err(e) => {
                log::warn!(
                    "LLM cache file {} is corrupt ({e}); ignoring it and asking the LLM again",
                    path.display()
                );
                None
            }
        }
    }

    /// Stores a reply (atomically; replaces a previous entry).
    pub fn put(&self, key: &CacheKey, entry: &CachedReply) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?;
        crate::io_util::write_atomic_unsynced(&self.path_for(key), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::client::{ChatMessage, ContentPart, MultimodalMessage};

    fn config_with(temperature: f32) -> LlmConfig {
        LlmConfig {
            model: "m".to_string(),
            temperature: Some(temperature),
            ..LlmConfig::default()
        }
    }

    fn key(content: &str, temperature: f32) -> CacheKey {
        CacheKey::for_chat(
            &config_with(temperature),
            &PromptTemplate::reformulate_v1(),
            &[ChatMessage::user(content)],
        )
    }

    #[test]
    fn key_depends_on_every_input() {
        let base = key("a", 0.0);
        assert_eq!(base.hex().len(), 64);
        assert_eq!(base, key("a", 0.0));
        assert_ne!(base, key("b", 0.0));
        assert_ne!(base, key("a", 0.7));
        let template = PromptTemplate::reformulate_v1();
        let messages = [ChatMessage::user("a")];
        let with = |config: LlmConfig| CacheKey::for_chat(&config, &template, &messages);
        assert_ne!(
            base,
            with(LlmConfig {
                model: "m2".to_string(),
                ..config_with(0.0)
            })
        );
        // Every sampling setting and extra field is part of the key; the URL is not.
        let variants = [
            LlmConfig {
                max_tokens: None,
                ..config_with(0.0)
            },
            LlmConfig {
                max_completion_tokens: Some(100),
                ..config_with(0.0)
            },
            LlmConfig {
                top_p: Some(0.5),
                ..config_with(0.0)
            },
            LlmConfig {
                seed: Some(1),
                ..config_with(0.0)
            },
            LlmConfig {
                temperature: None,
                ..config_with(0.0)
            },
        ];
        for v in variants {
            assert_ne!(base, with(v.clone()), "{v:?}");
        }
        let mut extra = config_with(0.0);
        extra
            .extra
            .insert("reasoning_effort".to_string(), "low".into());
        assert_ne!(base, with(extra));
        assert_eq!(
            base,
            with(LlmConfig {
                base_url: "http://elsewhere:1/v1".to_string(),
                ..config_with(0.0)
            })
        );
    }

    #[test]
    fn key_covers_image_bytes() {
        let image = |url: &str| {
            [MultimodalMessage {
                role: "user".to_string(),
                content: vec![ContentPart::text("t"), ContentPart::image(url)],
            }]
        };
        let template = PromptTemplate::reformulate_v1();
        let config = config_with(0.0);
        let a = CacheKey::for_chat(&config, &template, &image("data:image/png;base64,AAAA"));
        let b = CacheKey::for_chat(&config, &template, &image("data:image/png;base64,AAAB"));
        assert_ne!(a, b);
    }

    #[test]
    fn round_trip_and_sharding() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(dir.path().join("c")).unwrap();
        let k = key("a", 0.0);
        assert_eq!(cache.get(&k), None);
        let entry = CachedReply::new(&k, "m", &PromptTemplate::reformulate_v1(), "X(PER)-y");
        cache.put(&k, &entry).unwrap();
        assert_eq!(cache.get(&k), Some(entry));
        let path = cache.path_for(&k);
        assert_eq!(
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap(),
            &k.hex()[..2]
        );
    }

    #[test]
    fn corrupt_or_misplaced_files_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(dir.path()).unwrap();
        let k = key("a", 0.0);
        std::fs::create_dir_all(cache.path_for(&k).parent().unwrap()).unwrap();
        std::fs::write(cache.path_for(&k), b"{not json").unwrap();
        assert_eq!(cache.get(&k), None);
        let other = key("b", 0.0);
        let entry = CachedReply::new(&other, "m", &PromptTemplate::reformulate_v1(), "x");
        std::fs::write(cache.path_for(&k), serde_json::to_vec(&entry).unwrap()).unwrap();
        assert_eq!(cache.get(&k), None);
        // A directory where the file should be: unreadable, still a miss.
        std::fs::remove_file(cache.path_for(&k)).unwrap();
        std::fs::create_dir(cache.path_for(&k)).unwrap();
        assert_eq!(cache.get(&k), None);
    }
}
