//! The stage cache: content-addressed by (stage, implementation fingerprint — model hash and
//! configuration —, tweet, upstream input). Items are cached per entity where the stage works per
//! entity (reformulation, VE, VG, segmentation) and per tweet for the tagger, so variants that
//! share upstream work reuse it even when they send different entity sets downstream, and a killed
//! run resumes where it stopped. One JSON file per item, written atomically.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

use super::stages::Stage;

/// A two-level cache: memory in front of an optional directory.
#[derive(Debug, Default)]
pub struct StageCache {
    dir: Option<PathBuf>,
    mem: Mutex<HashMap<String, Vec<u8>>>,
}

/// The sha256 of length-prefixed parts (so `["ab", "c"]` and `["a", "bc"]` differ).
pub fn cache_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl StageCache {
    /// A cache in memory only (or also on disk when `dir` is given).
    pub fn new(dir: Option<PathBuf>) -> Self {
        StageCache {
            dir,
            ..Default::default()
        }
    }

    fn path(&self, stage: Stage, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| {
            d.join(stage.name())
                .join(&key[..2])
                .join(format!("{key}.json"))
        })
    }

    pub fn get<T: DeserializeOwned>(&self, stage: Stage, key: &str) -> Option<T> {
        let mem_key = format!("{}/{key}", stage.name());
        let bytes = {
            let mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
            mem.get(&mem_key).cloned()
        };
        let bytes = bytes.or_else(|| {
            let p = self.path(stage, key)?;
            let b = std::fs::read(p).ok()?;
            self.mem
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(mem_key, b.clone());
            Some(b)
        });
        bytes.and_then(|b| serde_json::from_slice(&b).ok())
    }

    pub fn put<T: Serialize>(&self, stage: Stage, key: &str, value: &T) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        if let Some(p) = self.path(stage, key) {
            crate::io_util::write_atomic_unsynced(&p, &bytes)?;
        }
        self.mem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{}/{key}", stage.name()), bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_length_prefixed() {
        assert_ne!(cache_key(&["ab", "c"]), cache_key(&["a", "bc"]));
        assert_eq!(cache_key(&["x"]).len(), 64);
    }

    #[test]
    fn survives_a_new_process_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let k = cache_key(&["tagger", "m", "t1"]);
        StageCache::new(Some(dir.path().into()))
            .put(Stage::Tagger, &k, &vec![1, 2, 3])
            .unwrap();
        let fresh = StageCache::new(Some(dir.path().into()));
        assert_eq!(
            fresh.get::<Vec<i32>>(Stage::Tagger, &k),
            Some(vec![1, 2, 3])
        );
        assert_eq!(
            fresh.get::<Vec<i32>>(Stage::Tagger, &cache_key(&["other"])),
            None
        );
    }
}
