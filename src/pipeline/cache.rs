//! The stage cache: content-addressed by (stage, implementation fingerprint — the hashes of every
//! model, tokenizer, CRF and prompt file, and the configuration —, tweet, the image bytes' hash
//! for stages that read pixels, upstream input). Items are cached per entity where the stage
//! works per entity (reformulation, VE, VG, segmentation) and per tweet for the tagger, so
//! variants that share upstream work reuse it even when they send different entity sets
//! downstream, and a killed run resumes where it stopped.
//!
//! Each item is an envelope `{"key", "sha256", "written", "value"}`, one JSON line in the stage's
//! append-only segment files ([`super::cache_log`]; entry files `<stage>/<xx>/<key>.json` that
//! older versions wrote are still read). An entry whose key or checksum does not match (a torn,
//! edited or foreign record) is not trusted; it is recomputed with a warning and counted
//! ([`StageCache::rejected`]). Opening a cache folder removes the `.tmp-<pid>` files that killed
//! runs left behind. Must not know what the stages compute, nor score anything; `cache_admin`
//! holds `riveg-bench cache stats|prune`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache_log::StageLog;
use super::stages::Stage;

/// A two-level cache: memory in front of an optional directory.
#[derive(Debug, Default)]
pub struct StageCache {
    dir: Option<PathBuf>,
    mem: Mutex<HashMap<String, Vec<u8>>>,
    /// Each stage's segment log, opened (indexed) on the stage's first look-up.
    logs: Mutex<HashMap<&'static str, StageLog>>,
    rejected: AtomicUsize,
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

/// The sha256 (hex) of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The sha256 of a file's content, computed once per (path, size, mtime) in this process: a
/// model folder is hashed once per run however many stages name it, and an edit (which changes
/// the size or the mtime) is seen.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    type Memo = Mutex<HashMap<(PathBuf, u64, Option<SystemTime>), String>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let meta = std::fs::metadata(path)?;
    let id = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(h) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return Ok(h.clone());
    }
    let h = sha256_hex(&std::fs::read(path)?);
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, h.clone());
    Ok(h)
}

/// What a record holds: its key (so a record copied under another key is not trusted), the
/// sha256 of the canonical JSON of the value (so a truncated or edited value is not trusted) and
/// when it was written (Unix seconds; `cache prune --older-than`). `key` comes first: segment
/// indexing reads it from the line's prefix ([`super::cache_log::record_key`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub key: String,
    pub sha256: String,
    /// Absent in entry files of older versions.
    #[serde(default)]
    pub written: u64,
    pub value: serde_json::Value,
}

/// The checksum of a value: sha256 of its canonical JSON (serde_json's `Value` keeps object keys
/// sorted, so the same value always gives the same bytes, whatever map type produced it).
fn value_sha256(value: &serde_json::Value) -> String {
    sha256_hex(&serde_json::to_vec(value).unwrap_or_default())
}

/// Temporary files of killed runs older than this are removed even when their pid is alive
/// (pids are reused).
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

impl StageCache {
    /// A cache in memory only (or also on disk when `dir` is given). Opening a folder removes
    /// the temporary files that killed runs left in it.
    pub fn new(dir: Option<PathBuf>) -> Self {
        if let Some(d) = &dir {
            let removed = clean_stale_tmp(d);
            if removed > 0 {
                log::info!(
                    "stage cache {}: removed {removed} temporary file(s) left by killed runs",
                    d.display()
                );
            }
        }
        StageCache {
            dir,
            ..Default::default()
        }
    }

    /// Runs `f` on the stage's segment log, opening (indexing) it on first use.
    fn with_log<R>(&self, dir: &Path, stage: Stage, f: impl FnOnce(&mut StageLog) -> R) -> R {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        f(logs
            .entry(stage.name())
            .or_insert_with(|| StageLog::open(dir.join(stage.name()))))
    }

    /// The record of `key` on disk and where it lies: the stage's segments first, else an entry
    /// file of an older version.
    fn read_disk(&self, stage: Stage, key: &str) -> Option<(Vec<u8>, String)> {
        let dir = self.dir.as_ref()?;
        let found = self.with_log(dir, stage, |log| log.read(key));
        found.or_else(|| {
            let legacy = entry_path(dir, stage, key);
            let bytes = std::fs::read(&legacy).ok()?;
            Some((bytes, legacy.display().to_string()))
        })
    }

    /// Entries found but not trusted (bad JSON, wrong key, checksum mismatch) and recomputed.
    pub fn rejected(&self) -> usize {
        self.rejected.load(Ordering::Relaxed)
    }

    pub fn get<T: DeserializeOwned>(&self, stage: Stage, key: &str) -> Option<T> {
        let mem_key = format!("{}/{key}", stage.name());
        let cached = {
            let mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
            mem.get(&mem_key).cloned()
        };
        let (bytes, origin) = match cached {
            Some(b) => (b, None),
            None => {
                let (bytes, whence) = self.read_disk(stage, key)?;
                (bytes, Some(whence))
            }
        };
        match open_envelope(&bytes, key).and_then(|v| {
            serde_json::from_value::<T>(v).map_err(|e| format!("unexpected value: {e}"))
        }) {
            Ok(v) => {
                if origin.is_some() {
                    self.mem
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(mem_key, bytes);
                }
                Some(v)
            }
            Err(why) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                let shown = origin.unwrap_or_else(|| format!("(memory) {mem_key}"));
                log::warn!(
                    "stage cache entry {shown} is not trusted ({why}); recomputing it\n  hint: the \
                     record was cut or edited (a killed run, a full disk); the fresh value \
                     replaces it"
                );
                None
            }
        }
    }

    pub fn put<T: Serialize>(&self, stage: Stage, key: &str, value: &T) -> std::io::Result<()> {
        let value = serde_json::to_value(value).map_err(std::io::Error::other)?;
        let envelope = Envelope {
            key: key.to_string(),
            sha256: value_sha256(&value),
            written: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            value,
        };
        // Compact JSON: one line (strings escape their line breaks).
        let bytes = serde_json::to_vec(&envelope).map_err(std::io::Error::other)?;
        if let Some(dir) = &self.dir {
            self.with_log(dir, stage, |log| log.append(key, &bytes))?;
        }
        self.mem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{}/{key}", stage.name()), bytes);
        Ok(())
    }
}

/// Where older versions kept the entry of `key` (one file per entry; still read).
pub fn entry_path(dir: &Path, stage: Stage, key: &str) -> PathBuf {
    let prefix = key.get(..2).unwrap_or(key);
    dir.join(stage.name())
        .join(prefix)
        .join(format!("{key}.json"))
}

/// The value of an entry file after checking its key and checksum; `Err` says why not.
fn open_envelope(bytes: &[u8], key: &str) -> Result<serde_json::Value, String> {
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a cache entry (written by an older version, or cut): {e}"))?;
    if env.key != key {
        return Err(format!("it holds key {} instead", env.key));
    }
    let got = value_sha256(&env.value);
    if got != env.sha256 {
        return Err(format!(
            "checksum mismatch: recorded {}, content {got}",
            env.sha256
        ));
    }
    Ok(env.value)
}

/// The pid in a temporary file name (`.<name>.tmp-<pid>`), if it is one.
pub(crate) fn tmp_pid(name: &str) -> Option<u32> {
    let (_, pid) = name.rsplit_once(".tmp-")?;
    name.starts_with('.').then_some(())?;
    pid.parse().ok()
}

/// Whether a process is alive; `None` where this cannot be told (no `/proc`).
fn pid_alive(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    let proc_root = Path::new("/proc");
    proc_root
        .join("self")
        .exists()
        .then(|| proc_root.join(pid.to_string()).exists())
}

/// Removes the temporary files (`.<entry>.tmp-<pid>`) under a cache folder whose writer is dead
/// or that are older than an hour. Returns how many were removed. Best effort: a file that
/// cannot be removed is left for the next run.
pub fn clean_stale_tmp(dir: &Path) -> usize {
    let mut removed = 0;
    let now = SystemTime::now();
    for path in walk_files(dir) {
        let Some(pid) = path.file_name().and_then(|n| n.to_str()).and_then(tmp_pid) else {
            continue;
        };
        let old = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if (old || pid_alive(pid) == Some(false)) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Every file under `dir` (a missing folder has none).
pub(crate) fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out.sort();
    out
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
        assert_eq!(fresh.rejected(), 0);
    }

    /// The one segment a test cache wrote for `stage`.
    fn only_segment(dir: &Path, stage: Stage) -> PathBuf {
        let segs = super::super::cache_log::segment_files(&dir.join(stage.name()));
        assert_eq!(segs.len(), 1, "{segs:?}");
        segs[0].clone()
    }

    #[test]
    fn a_truncated_float_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let k = cache_key(&["entailer", "m", "t1", "q"]);
        StageCache::new(Some(dir.path().into()))
            .put(Stage::Entailer, &k, &0.718_75_f32)
            .unwrap();
        let p = only_segment(dir.path(), Stage::Entailer);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("0.71875") && text.ends_with('\n'), "{text}");
        std::fs::write(&p, text.replace("0.71875", "0.73")).unwrap();
        let fresh = StageCache::new(Some(dir.path().into()));
        assert_eq!(fresh.get::<f32>(Stage::Entailer, &k), None);
        assert_eq!(fresh.rejected(), 1);
        // Cut in the middle (a killed writer): the key survives, the record is not JSON.
        std::fs::write(&p, &text[..text.len() / 2]).unwrap();
        let fresh = StageCache::new(Some(dir.path().into()));
        assert_eq!(fresh.get::<f32>(Stage::Entailer, &k), None);
        assert_eq!(fresh.rejected(), 1);
        // Recomputed and put again: a later record wins over the torn one.
        fresh.put(Stage::Entailer, &k, &0.5_f32).unwrap();
        let again = StageCache::new(Some(dir.path().into()));
        assert_eq!(again.get::<f32>(Stage::Entailer, &k), Some(0.5));
        assert_eq!(again.rejected(), 0);
    }

    #[test]
    fn an_edited_record_is_not_trusted_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (cache_key(&["a"]), cache_key(&["b"]));
        let cache = StageCache::new(Some(dir.path().into()));
        cache.put(Stage::Grounder, &a, &1).unwrap();
        cache.put(Stage::Grounder, &b, &2).unwrap();
        let p = only_segment(dir.path(), Stage::Grounder);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replacen("\"value\":1", "\"value\":3", 1)).unwrap();
        let fresh = StageCache::new(Some(dir.path().into()));
        assert_eq!(fresh.get::<i32>(Stage::Grounder, &a), None);
        assert_eq!(fresh.get::<i32>(Stage::Grounder, &b), Some(2));
        assert_eq!(fresh.rejected(), 1);
    }

    #[test]
    fn entry_files_of_older_versions_are_still_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (cache_key(&["a"]), cache_key(&["b"]));
        let legacy = |key: &str, value: i32| {
            let v = serde_json::json!(value);
            let text = format!(
                "{{\"key\":\"{key}\",\"sha256\":\"{}\",\"value\":{value}}}",
                value_sha256(&v)
            );
            let p = entry_path(dir.path(), Stage::Tagger, key);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        };
        legacy(&a, 7);
        let pb = entry_path(dir.path(), Stage::Tagger, &b);
        std::fs::create_dir_all(pb.parent().unwrap()).unwrap();
        std::fs::copy(legacy(&a, 7), &pb).unwrap();
        let cache = StageCache::new(Some(dir.path().into()));
        assert_eq!(cache.get::<i32>(Stage::Tagger, &a), Some(7));
        assert_eq!(
            cache.get::<i32>(Stage::Tagger, &b),
            None,
            "a's file under b's name"
        );
        assert_eq!(cache.rejected(), 1);
    }

    #[test]
    fn temporary_files_of_dead_writers_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("tagger/ab");
        std::fs::create_dir_all(&sub).unwrap();
        // Linux pids stay below 2^22, so this writer is certainly dead.
        let dead = sub.join(".abcd.json.tmp-4194999");
        let mine = sub.join(format!(".abce.json.tmp-{}", std::process::id()));
        let entry = sub.join("abcd.json");
        for p in [&dead, &mine, &entry] {
            std::fs::write(p, b"{").unwrap();
        }
        let _cache = StageCache::new(Some(dir.path().into()));
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists());
        }
        assert!(mine.exists(), "a live writer's file is kept");
        assert!(entry.exists(), "entries are not temporary files");
    }

    #[test]
    fn file_hashes_follow_edits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok.json");
        std::fs::write(&p, b"one").unwrap();
        let a = file_sha256(&p).unwrap();
        assert_eq!(a, sha256_hex(b"one"));
        std::fs::write(&p, b"three").unwrap();
        assert_eq!(file_sha256(&p).unwrap(), sha256_hex(b"three"));
    }

    #[test]
    fn tmp_names() {
        assert_eq!(tmp_pid(".x.json.tmp-123"), Some(123));
        assert_eq!(tmp_pid("x.json"), None);
        assert_eq!(tmp_pid(".x.json.tmp-abc"), None);
    }
}
