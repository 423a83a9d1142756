//! `riveg-bench cache stats|prune`: what a stage cache folder holds (size, entries per stage,
//! age) and removing entries by age (`--older-than DAYS`) and/or total size (`--max-size`,
//! oldest first). Works on any folder laid out by [`super::cache`]: records in the stages'
//! segment files ([`super::cache_log`]; ages from each record's `written` time), and single
//! files (entry files of older versions, the LLM response cache under `llm/`; ages from their
//! modification times). Records superseded by a later one of the same key, or unreadable (a
//! killed run's torn write), are counted apart and always dropped by `prune`, which rewrites
//! the segments it changes. It reads records only for their key and time. Must not know what
//! stages compute; printing is the caller's (`cli::human`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::cache::{clean_stale_tmp, tmp_pid, walk_files};
use super::cache_log::{is_segment, lines, rewrite_segment};

/// Why a cache command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CacheAdminError {
    #[error("{}: no stage cache here (the folder does not exist)\n  hint: runs create it; pass the folder with --cache-dir (default .riveg-cache, or the suite's settings.cache_dir with --suite)", dir.display())]
    Missing { dir: PathBuf },
    #[error("{}: not a folder\n  hint: --cache-dir names the stage cache folder (default .riveg-cache)", dir.display())]
    NotAFolder { dir: PathBuf },
    #[error("nothing to prune: no limit given\n  hint: give --older-than DAYS and/or --max-size SIZE (e.g. 500M, 2G)")]
    NoLimit,
    #[error("--older-than {value:?}: {why}\n  hint: a number of days, e.g. 30 or 0.5")]
    BadAge { value: String, why: String },
    #[error("--max-size {value:?}: {why}\n  hint: bytes with an optional K, M, G or T suffix (powers of 1024), e.g. 500M")]
    BadSize { value: String, why: String },
    #[error("{}: cannot remove: {source}\n  hint: check the folder's permissions", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Entries of one stage (or of the LLM response cache, `llm`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct GroupStats {
    pub entries: usize,
    /// Bytes on disk, superseded records included.
    pub bytes: u64,
    /// Records replaced by a later one of the same key, or unreadable: dead weight that
    /// `cache prune` drops.
    pub superseded: usize,
    /// Days since the oldest / newest entry was written; `None` with no entries.
    pub oldest_days: Option<f64>,
    pub newest_days: Option<f64>,
}

/// What `cache stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStats {
    pub dir: String,
    pub entries: usize,
    pub bytes: u64,
    pub superseded: usize,
    /// Top-level folder (stage name, `llm`) → its entries.
    pub groups: BTreeMap<String, GroupStats>,
    /// Temporary files of runs still writing (or killed: those are removed on the next open).
    pub tmp_files: usize,
    pub oldest_days: Option<f64>,
    pub newest_days: Option<f64>,
}

/// What `cache prune` removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    pub removed_entries: usize,
    pub removed_bytes: u64,
    /// Temporary files of killed runs removed on the way.
    pub removed_tmp_files: usize,
    pub after: CacheStats,
}

/// Prune limits (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PruneLimits {
    pub older_than_days: Option<f64>,
    pub max_bytes: Option<u64>,
}

/// Where an entry lies: a file of its own, or a line of a segment (byte offset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    File(PathBuf),
    Record(PathBuf, u64),
}

struct Entry {
    place: Place,
    group: String,
    /// Bytes on disk (a record's line break included).
    bytes: u64,
    age_days: f64,
    /// Superseded by a later record of the same key, or unreadable.
    superseded: bool,
}

fn check_dir(dir: &Path) -> Result<(), CacheAdminError> {
    match std::fs::metadata(dir) {
        Err(_) => Err(CacheAdminError::Missing { dir: dir.into() }),
        Ok(m) if !m.is_dir() => Err(CacheAdminError::NotAFolder { dir: dir.into() }),
        Ok(_) => Ok(()),
    }
}

/// Every entry (not temporary files) with its size and age, and the number of temporary files.
fn scan(dir: &Path) -> (Vec<Entry>, usize) {
    let now = SystemTime::now();
    let days_since = |t: SystemTime| {
        now.duration_since(t)
            .map_or(0.0, |d| d.as_secs_f64() / 86_400.0)
    };
    let mut entries = Vec::new();
    let mut tmp = 0;
    // Latest record of each (group, key) so far: segments are walked oldest first.
    let mut latest: std::collections::HashMap<(String, String), usize> = Default::default();
    for path in walk_files(dir) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if tmp_pid(name).is_some() {
            tmp += 1;
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let file_age = meta.modified().map_or(0.0, days_since);
        let group = path
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.components().next())
            .filter(|_| path.parent() != Some(dir))
            .map_or_else(
                || "(top level)".to_string(),
                |c| c.as_os_str().to_string_lossy().into_owned(),
            );
        // Segments sit directly in a stage folder.
        let segment = is_segment(&path) && path.parent().and_then(Path::parent) == Some(dir);
        if !segment {
            entries.push(Entry {
                place: Place::File(path),
                group,
                bytes: meta.len(),
                age_days: file_age,
                superseded: false,
            });
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for (offset, line) in lines(&bytes) {
            // A record that does not parse (a torn write) is dead weight.
            #[derive(serde::Deserialize)]
            struct Head {
                key: String,
                written: u64,
            }
            let head = serde_json::from_slice::<Head>(line).ok();
            let age_days = head.as_ref().map_or(file_age, |h| {
                days_since(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(h.written))
            });
            entries.push(Entry {
                place: Place::Record(path.clone(), offset),
                group: group.clone(),
                bytes: line.len() as u64 + 1,
                age_days,
                superseded: head.is_none(),
            });
            let key = head.map(|h| h.key);
            if let Some(key) = key {
                let i = entries.len() - 1;
                if let Some(previous) = latest.insert((group.clone(), key), i) {
                    entries[previous].superseded = true;
                }
            }
        }
    }
    (entries, tmp)
}

fn summarize(dir: &Path, entries: &[Entry], tmp_files: usize) -> CacheStats {
    let mut groups: BTreeMap<String, GroupStats> = BTreeMap::new();
    let fold = |g: &mut GroupStats, e: &Entry| {
        g.bytes += e.bytes;
        if e.superseded {
            g.superseded += 1;
            return;
        }
        g.entries += 1;
        g.oldest_days = Some(g.oldest_days.map_or(e.age_days, |a| a.max(e.age_days)));
        g.newest_days = Some(g.newest_days.map_or(e.age_days, |a| a.min(e.age_days)));
    };
    let mut all = GroupStats::default();
    for e in entries {
        fold(groups.entry(e.group.clone()).or_default(), e);
        fold(&mut all, e);
    }
    CacheStats {
        dir: dir.display().to_string(),
        entries: all.entries,
        bytes: all.bytes,
        superseded: all.superseded,
        groups,
        tmp_files,
        oldest_days: all.oldest_days,
        newest_days: all.newest_days,
    }
}

/// `cache stats`.
pub fn stats(dir: &Path) -> Result<CacheStats, CacheAdminError> {
    check_dir(dir)?;
    let (entries, tmp) = scan(dir);
    Ok(summarize(dir, &entries, tmp))
}

/// `cache prune`: removes entries older than `older_than_days`, then the oldest ones until the
/// cache holds at most `max_bytes`; also the temporary files of killed runs.
pub fn prune(dir: &Path, limits: PruneLimits) -> Result<PruneReport, CacheAdminError> {
    if limits.older_than_days.is_none() && limits.max_bytes.is_none() {
        return Err(CacheAdminError::NoLimit);
    }
    check_dir(dir)?;
    let removed_tmp_files = clean_stale_tmp(dir);
    let (mut entries, _) = scan(dir);
    // Superseded records first, then oldest first, so a size limit drops the least recently
    // written entries.
    entries.sort_by(|a, b| {
        b.superseded
            .cmp(&a.superseded)
            .then(b.age_days.total_cmp(&a.age_days))
            .then(a.place.cmp(&b.place))
    });
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut keep = Vec::new();
    let (mut removed_entries, mut removed_bytes) = (0, 0);
    // Segment → byte offsets of the records it keeps / whether it loses any.
    let mut segments: BTreeMap<PathBuf, (Vec<u64>, bool)> = BTreeMap::new();
    for e in entries {
        let too_old = limits.older_than_days.is_some_and(|d| e.age_days > d);
        let too_big = limits.max_bytes.is_some_and(|m| total > m);
        let remove = e.superseded || too_old || too_big;
        match (&e.place, remove) {
            (Place::Record(seg, offset), _) => {
                let s = segments.entry(seg.clone()).or_default();
                if remove {
                    s.1 = true;
                } else {
                    s.0.push(*offset);
                }
            }
            (Place::File(path), true) => {
                std::fs::remove_file(path).map_err(|source| CacheAdminError::Remove {
                    path: path.clone(),
                    source,
                })?;
                remove_empty_parents(dir, path);
            }
            (Place::File(_), false) => {}
        }
        if remove {
            total -= e.bytes;
            // Superseded records are dead weight, not entries.
            if !e.superseded {
                removed_entries += 1;
            }
            removed_bytes += e.bytes;
        } else {
            keep.push(e);
        }
    }
    for (seg, (mut kept, changed)) in segments {
        if !changed {
            continue;
        }
        kept.sort_unstable();
        rewrite_segment(&seg, &kept).map_err(|source| CacheAdminError::Remove {
            path: seg.clone(),
            source,
        })?;
        if kept.is_empty() {
            remove_empty_parents(dir, &seg);
        }
    }
    let (_, tmp) = scan(dir);
    Ok(PruneReport {
        removed_entries,
        removed_bytes,
        removed_tmp_files,
        after: summarize(dir, &keep, tmp),
    })
}

/// Removes the empty folders above a removed file, up to (not including) `dir`; stops at the
/// first that is not empty.
fn remove_empty_parents(dir: &Path, removed: &Path) {
    let mut parent = removed.parent();
    while let Some(p) = parent.filter(|p| *p != dir) {
        if std::fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
}

/// `--older-than DAYS`: a finite, non-negative number of days.
pub fn parse_days(s: &str) -> Result<f64, CacheAdminError> {
    let bad = |why: &str| CacheAdminError::BadAge {
        value: s.to_string(),
        why: why.to_string(),
    };
    let d: f64 = s.trim().parse().map_err(|_| bad("not a number"))?;
    if !d.is_finite() || d < 0.0 {
        return Err(bad("must be a finite number of days, 0 or more"));
    }
    Ok(d)
}

/// `--max-size SIZE`: bytes, or a number with K, M, G, T (powers of 1024, optional `B`/`iB`).
pub fn parse_size(s: &str) -> Result<u64, CacheAdminError> {
    let bad = |why: &str| CacheAdminError::BadSize {
        value: s.to_string(),
        why: why.to_string(),
    };
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let upper = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, mult) = match upper.chars().last() {
        Some('K') => (&upper[..upper.len() - 1], 1u64 << 10),
        Some('M') => (&upper[..upper.len() - 1], 1 << 20),
        Some('G') => (&upper[..upper.len() - 1], 1 << 30),
        Some('T') => (&upper[..upper.len() - 1], 1 << 40),
        _ => (upper, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad("not a size"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad("must be 0 or more"));
    }
    let bytes = n * mult as f64;
    if bytes > u64::MAX as f64 {
        return Err(bad("too large"));
    }
    Ok(bytes as u64)
}

/// Bytes for people (KiB, MiB, GiB).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_aged(p: &Path, bytes: usize, age_days: f64) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![b'x'; bytes]).unwrap();
        let t = SystemTime::now() - std::time::Duration::from_secs_f64(age_days * 86_400.0);
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn stats_count_per_stage_and_prune_by_age_then_size() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_aged(&d.join("tagger/aa/aa1.json"), 100, 40.0);
        write_aged(&d.join("tagger/ab/ab1.json"), 100, 10.0);
        write_aged(&d.join("entailer/ac/ac1.json"), 50, 5.0);
        write_aged(&d.join("llm/x.json"), 30, 1.0);
        let s = stats(d).unwrap();
        assert_eq!((s.entries, s.bytes), (4, 280));
        assert_eq!(s.groups["tagger"].entries, 2);
        assert_eq!(s.groups["tagger"].bytes, 200);
        assert_eq!(s.groups["llm"].bytes, 30);
        assert!((s.oldest_days.unwrap() - 40.0).abs() < 0.01);
        assert!((s.newest_days.unwrap() - 1.0).abs() < 0.01);

        let r = prune(
            d,
            PruneLimits {
                older_than_days: Some(30.0),
                max_bytes: None,
            },
        )
        .unwrap();
        assert_eq!((r.removed_entries, r.removed_bytes), (1, 100));
        assert!(!d.join("tagger/aa").exists(), "empty prefix folder removed");
        // 180 bytes left; at most 100: the oldest (tagger, 100 B) goes, then 80 ≤ 100.
        let r = prune(
            d,
            PruneLimits {
                older_than_days: None,
                max_bytes: Some(100),
            },
        )
        .unwrap();
        assert_eq!((r.removed_entries, r.removed_bytes), (1, 100));
        assert_eq!((r.after.entries, r.after.bytes), (2, 80));
        assert!(d.join("entailer/ac/ac1.json").exists());
        let again = stats(d).unwrap();
        assert_eq!((again.entries, again.bytes), (2, 80));
        assert_eq!(again.groups.keys().collect::<Vec<_>>(), ["entailer", "llm"]);
    }

    #[test]
    fn segment_records_age_by_their_written_time_and_prune_compacts() {
        use crate::pipeline::cache::StageCache;
        use crate::stage::Stage;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (a, b) = (
            crate::pipeline::cache::cache_key(&["a"]),
            crate::pipeline::cache::cache_key(&["b"]),
        );
        // Real records (checksums right), then rewritten with chosen times.
        let cache = StageCache::new(Some(d.to_path_buf()));
        cache.put(Stage::Tagger, &a, &1).unwrap();
        cache.put(Stage::Tagger, &b, &2).unwrap();
        cache.put(Stage::Tagger, &a, &3).unwrap();
        drop(cache);
        let seg = crate::pipeline::cache_log::segment_files(&d.join("tagger")).remove(0);
        let text = std::fs::read_to_string(&seg).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (line, days) in lines.iter_mut().zip([40u64, 10, 5]) {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["written"] = (now - days * 86_400).into();
            *line = serde_json::to_string(&v).unwrap();
        }
        lines.push("{\"key\":\"torn".into());
        std::fs::write(&seg, lines.join("\n")).unwrap();
        write_aged(&d.join("llm/x.json"), 30, 1.0);

        let s = stats(d).unwrap();
        assert_eq!(s.groups["tagger"].entries, 2, "a (latest) and b");
        assert_eq!(
            s.groups["tagger"].superseded, 2,
            "a's first record and the torn line"
        );
        assert_eq!((s.entries, s.superseded), (3, 2));
        assert!((s.groups["tagger"].oldest_days.unwrap() - 10.0).abs() < 0.01);
        assert!((s.groups["tagger"].newest_days.unwrap() - 5.0).abs() < 0.01);

        let r = prune(
            d,
            PruneLimits {
                older_than_days: Some(7.0),
                max_bytes: None,
            },
        )
        .unwrap();
        assert_eq!(
            r.removed_entries, 1,
            "b; the superseded records are not entries"
        );
        assert_eq!((r.after.entries, r.after.superseded), (2, 0));
        let again = stats(d).unwrap();
        assert_eq!((again.groups["tagger"].entries, again.superseded), (1, 0));
        assert_eq!(again.bytes, r.after.bytes);
        let cache = StageCache::new(Some(d.to_path_buf()));
        assert_eq!(cache.get::<i32>(Stage::Tagger, &a), Some(3));
        assert_eq!(cache.get::<i32>(Stage::Tagger, &b), None);
        assert_eq!(cache.rejected(), 0);
        // Everything older than a day: the tagger folder goes entirely.
        prune(
            d,
            PruneLimits {
                older_than_days: Some(2.0),
                max_bytes: None,
            },
        )
        .unwrap();
        assert!(!d.join("tagger").exists());
        assert_eq!(stats(d).unwrap().entries, 1);
    }

    #[test]
    fn bad_limits_and_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            prune(dir.path(), PruneLimits::default()),
            Err(CacheAdminError::NoLimit)
        ));
        let missing = dir.path().join("nope");
        let e = stats(&missing).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("hint"), "{e}");
        assert!(parse_days("-1").is_err() && parse_days("NaN").is_err());
        assert_eq!(parse_days("1.5").unwrap(), 1.5);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err() && parse_size("-1K").is_err());
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10), "10 B");
    }
}
