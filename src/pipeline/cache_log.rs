//! The stage cache's files: per stage, append-only segment files of JSON lines
//! (`<cache>/<stage>/<unix ms>-<pid>-<n>.log`), one record (the checksummed envelope of
//! [`super::cache`]) per line. Each process appends to segments of its own, so runs that share a
//! cache folder (shards of one job, say) never write to the same file; records of the same key are
//! resolved last-wins in segment-name (time) order.
//!
//! Why not one file per entry (what the cache did before): a run writes one entry per tweet and
//! stage and per entity, tens of thousands of small files whose create + rename cost more than the
//! tiny models' inference (benches/README.md) and which cluster file systems serve slowly. A
//! killed run leaves at most a torn last line in its own segment: that record fails its key or
//! checksum check when read, is recomputed with a warning, and the new record is appended
//! elsewhere. `cache prune` rewrites segments (dropping superseded, unreadable and pruned
//! records). Must not know what the records mean beyond their key.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// File extension of segment files.
pub const SEGMENT_EXT: &str = "log";

/// Where a record lies: segment number (in [`StageLog`]'s list), byte offset, length without the
/// line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    seg: usize,
    offset: u64,
    len: usize,
}

/// One stage's segments: the index of every key's latest record and this process's open segment.
#[derive(Debug)]
pub struct StageLog {
    dir: PathBuf,
    segments: Vec<PathBuf>,
    index: HashMap<String, Loc>,
    /// This process's segment: its number and the open file (created on the first append).
    writer: Option<(usize, File, u64)>,
    /// Lines no key could be read from (torn tails of killed runs).
    unreadable: usize,
}

/// Distinguishes the segments one process opens within the same millisecond.
static SEGMENT_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl StageLog {
    /// Indexes the segments under `dir` (a missing folder has none).
    pub fn open(dir: PathBuf) -> Self {
        let segments = segment_files(&dir);
        let mut index = HashMap::new();
        let mut unreadable = 0;
        for (seg, path) in segments.iter().enumerate() {
            let Ok(bytes) = std::fs::read(path) else {
                log::warn!(
                    "stage cache segment {} is unreadable; its entries are recomputed",
                    path.display()
                );
                continue;
            };
            for (offset, line) in lines(&bytes) {
                match record_key(line) {
                    Some(key) => {
                        index.insert(
                            key.to_string(),
                            Loc {
                                seg,
                                offset,
                                len: line.len(),
                            },
                        );
                    }
                    None => unreadable += 1,
                }
            }
        }
        if unreadable > 0 {
            log::warn!(
                "stage cache {}: {unreadable} unreadable record(s) (a killed run's last write); \
                 their entries are recomputed",
                dir.display()
            );
        }
        StageLog {
            dir,
            segments,
            index,
            writer: None,
            unreadable,
        }
    }

    /// Records indexed (the latest per key).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Lines that could not be indexed.
    pub fn unreadable(&self) -> usize {
        self.unreadable
    }

    /// The latest record of `key` and where it lies (`<segment> (byte N)`, for messages); `None`
    /// when the key has none or the segment cannot be read any more.
    pub fn read(&self, key: &str) -> Option<(Vec<u8>, String)> {
        let loc = *self.index.get(key)?;
        let path = &self.segments[loc.seg];
        let mut buf = vec![0u8; loc.len];
        let read = File::open(path).and_then(|mut f| {
            f.seek(SeekFrom::Start(loc.offset))?;
            f.read_exact(&mut buf)
        });
        match read {
            Ok(()) => Some((buf, format!("{} (byte {})", path.display(), loc.offset))),
            Err(e) => {
                log::warn!(
                    "stage cache segment {} cannot be read ({e}); recomputing",
                    path.display()
                );
                None
            }
        }
    }

    /// Appends `record` (one line, no line break) for `key`, opening this process's segment on
    /// the first call, and indexes it.
    pub fn append(&mut self, key: &str, record: &[u8]) -> std::io::Result<()> {
        if record.contains(&b'\n') {
            return Err(std::io::Error::other(
                "a stage cache record must be one line",
            ));
        }
        if self.writer.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let n = SEGMENT_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("{ms:013}-{}-{n}.{SEGMENT_EXT}", std::process::id()));
            let file = File::options().create_new(true).append(true).open(&path)?;
            self.segments.push(path);
            self.writer = Some((self.segments.len() - 1, file, 0));
        }
        let (seg, file, end) = self.writer.as_mut().expect("opened above");
        let mut line = Vec::with_capacity(record.len() + 1);
        line.extend_from_slice(record);
        line.push(b'\n');
        // One write per record: a crash leaves at most this line torn, at the file's end.
        file.write_all(&line)?;
        self.index.insert(
            key.to_string(),
            Loc {
                seg: *seg,
                offset: *end,
                len: record.len(),
            },
        );
        *end += line.len() as u64;
        Ok(())
    }
}

/// The segment files under a stage folder, oldest first (names start with the creation time).
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_segment(p))
        .collect();
    out.sort();
    out
}

/// Whether a path names a segment file (`*.log`).
pub fn is_segment(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some(SEGMENT_EXT)
}

/// The lines of a segment with their byte offsets; a last line without a line break (a torn
/// write) is included, empty lines are not.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut offset = 0u64;
    bytes.split(|&b| b == b'\n').filter_map(move |line| {
        let at = offset;
        offset += line.len() as u64 + 1;
        (!line.is_empty()).then_some((at, line))
    })
}

/// The key of a record line: read from the fixed prefix the cache writes
/// (`{"key":"<64 hex digits>",`), else from the parsed JSON; `None` when neither works.
pub fn record_key(line: &[u8]) -> Option<&str> {
    const PREFIX: &[u8] = b"{\"key\":\"";
    if line.len() > PREFIX.len() + 65 && line.starts_with(PREFIX) {
        let key = &line[PREFIX.len()..PREFIX.len() + 64];
        if line[PREFIX.len() + 64] == b'"' && key.iter().all(u8::is_ascii_hexdigit) {
            return std::str::from_utf8(key).ok();
        }
    }
    #[derive(serde::Deserialize)]
    struct KeyOnly<'a> {
        key: &'a str,
    }
    serde_json::from_slice::<KeyOnly<'_>>(line)
        .ok()
        .map(|k| k.key)
}

/// Rewrites a segment keeping only the records at `keep` (byte offsets of its lines), in order;
/// removes it when none is kept. Atomic: readers see the old or the new file.
pub fn rewrite_segment(path: &Path, keep: &[u64]) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let mut out = Vec::with_capacity(bytes.len());
    for (offset, line) in lines(&bytes) {
        if keep.contains(&offset) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    if out.is_empty() {
        std::fs::remove_file(path)
    } else {
        crate::io_util::write_atomic_unsynced(path, &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn record(k: &str, v: u32) -> Vec<u8> {
        format!("{{\"key\":\"{k}\",\"sha256\":\"x\",\"value\":{v}}}").into_bytes()
    }

    #[test]
    fn appends_index_last_wins_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("tagger");
        let (a, b) = (key('a'), key('b'));
        let mut log = StageLog::open(stage.clone());
        assert!(log.is_empty());
        log.append(&a, &record(&a, 1)).unwrap();
        log.append(&b, &record(&b, 2)).unwrap();
        log.append(&a, &record(&a, 3)).unwrap();
        assert_eq!(log.read(&a).unwrap().0, record(&a, 3));
        // A second writer in the same process gets its own segment; later segments win.
        let mut other = StageLog::open(stage.clone());
        assert_eq!(other.len(), 2);
        other.append(&b, &record(&b, 4)).unwrap();
        assert_eq!(segment_files(&stage).len(), 2);
        let fresh = StageLog::open(stage);
        assert_eq!(fresh.read(&a).unwrap().0, record(&a, 3));
        assert_eq!(fresh.read(&b).unwrap().0, record(&b, 4));
        assert!(fresh.read(&key('c')).is_none());
        assert!(log.append(&a, b"two\nlines").is_err());
    }

    #[test]
    fn a_torn_tail_is_counted_and_other_records_stay() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("entailer");
        std::fs::create_dir_all(&stage).unwrap();
        let a = key('a');
        let mut text = record(&a, 1);
        text.push(b'\n');
        text.extend_from_slice(b"{\"ke");
        std::fs::write(stage.join("0000000000001-1-0.log"), &text).unwrap();
        let log = StageLog::open(stage);
        assert_eq!((log.len(), log.unreadable()), (1, 1));
        assert_eq!(log.read(&a).unwrap().0, record(&a, 1));
    }

    #[test]
    fn keys_come_from_the_prefix_or_the_json() {
        let a = key('a');
        assert_eq!(record_key(&record(&a, 1)), Some(a.as_str()));
        assert_eq!(
            record_key(b"{\"value\": 1, \"key\": \"short\"}"),
            Some("short")
        );
        assert_eq!(record_key(b"{\"key\":\"abc"), None);
        assert_eq!(
            lines(b"x\n\ny\nz").collect::<Vec<_>>(),
            [(0, &b"x"[..]), (3, b"y"), (5, b"z")]
        );
    }

    #[test]
    fn rewriting_keeps_the_chosen_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.log");
        std::fs::write(&p, b"aa\nbb\ncc\n").unwrap();
        rewrite_segment(&p, &[0, 6]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"aa\ncc\n");
        rewrite_segment(&p, &[]).unwrap();
        assert!(!p.exists());
    }
}
