//! Where and with what a run happened: the build (version, git commit and cargo features,
//! recorded at build time by `build.rs`, so a copied binary still says what it is), the host, and
//! the sha256 of the data scored. Must not load or parse the data itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::DataError;
use crate::results::{RunMeta, SCHEMA_VERSION};

/// The git commit the binary was built from (`None` outside a git checkout).
pub const GIT_COMMIT: Option<&str> = option_env!("RIVEG_BENCH_GIT_COMMIT");

/// The cargo features the binary was built with, comma-separated.
pub const FEATURES: &str = env!("RIVEG_BENCH_FEATURES");

/// `0.1.0 (commit 0123456789ab, features: https)`: the `--version` line (made by `build.rs`).
pub const VERSION_LINE: &str = env!("RIVEG_BENCH_VERSION_LINE");

/// Metadata of a run starting now (the execution provider is filled in once models loaded).
pub fn run_meta(started_unix: u64, shard: Option<String>, gold: Vec<String>) -> RunMeta {
    RunMeta {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: GIT_COMMIT.map(str::to_string),
        build_features: FEATURES
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        started_unix,
        hostname: sysinfo::System::host_name().filter(|s| !s.is_empty()),
        os: std::env::consts::OS.to_string(),
        cpu: cpu_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        execution_provider: "none".into(),
        shard,
        gold,
        data_hashes: BTreeMap::new(),
        llm: None,
    }
}

/// Lower-case hex sha256 of some bytes (data read from stdin, for instance).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, or of a dataset folder: for a folder, every file below it in sorted
/// relative-path order contributes `path\0len\0bytes`, so renaming, moving or editing any file
/// changes the hash while the folder's location does not.
pub fn hash_path(path: &Path) -> Result<String, DataError> {
    if !path.is_dir() {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        return Ok(sha256_hex(&bytes));
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        for entry in entries {
            let p = entry.map_err(|e| DataError::io(&dir, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| DataError::io(&f, e))?;
        let rel = f
            .strip_prefix(path)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(bytes.len().to_string().as_bytes());
        h.update([0]);
        h.update(&bytes);
    }
    Ok(hex(&h.finalize()))
}

/// `results.json`'s `meta.data_hashes`: each key (the path as the user wrote it, so two
/// machines agree) → [`hash_path`] of the file it names.
pub fn data_hashes(inputs: &[(String, PathBuf)]) -> Result<BTreeMap<String, String>, DataError> {
    inputs
        .iter()
        .map(|(key, path)| Ok((key.clone(), hash_path(path)?)))
        .collect()
}

/// The gold and replay inputs of every dataset of a suite (files, dataset folders, box files):
/// each as written in the suite, and resolved.
pub fn suite_data_paths(suite: &crate::run::suite::Suite) -> Vec<(String, PathBuf)> {
    suite
        .datasets()
        .into_iter()
        .flat_map(|data| std::iter::once(&data.gold).chain(data.replay.as_ref()))
        .flat_map(|s| std::iter::once(&s.path).chain(s.boxes.as_ref()))
        .map(|p| (p.display().to_string(), suite.resolve(p)))
        .collect()
}

/// The CPU's brand string (e.g. `AMD EPYC 7B13`), as sysinfo reads it on each platform.
fn cpu_model() -> Option<String> {
    use sysinfo::{CpuRefreshKind, RefreshKind, System};
    let sys =
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    sys.cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
}

/// `YYYYmmdd-HHMMSS` (UTC) from Unix seconds.
pub fn timestamp(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = crate::util::utc_parts(unix);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_utc_civil() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(1_795_000_000), "20261118-110640");
    }

    #[test]
    fn hashes_files_and_folders() {
        // sha256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("gold.jsonl");
        std::fs::write(&file, "abc").unwrap();
        let dir = tmp.path().join("ds");
        std::fs::create_dir_all(dir.join("xml")).unwrap();
        std::fs::write(dir.join("xml/1.xml"), "<a/>").unwrap();
        std::fs::write(dir.join("test.txt"), "x").unwrap();
        let hashes =
            data_hashes(&[("gold".into(), file.clone()), ("ds".into(), dir.clone())]).unwrap();
        assert_eq!(hashes["gold"], abc);
        let before = hashes["ds"].clone();
        // The folder hash covers names and contents, not the folder's own location.
        let moved = tmp.path().join("elsewhere");
        std::fs::rename(&dir, &moved).unwrap();
        assert_eq!(hash_path(&moved).unwrap(), before);
        std::fs::rename(moved.join("test.txt"), moved.join("dev.txt")).unwrap();
        assert_ne!(hash_path(&moved).unwrap(), before);
        let err = hash_path(&tmp.path().join("missing.jsonl")).unwrap_err();
        assert!(err.to_string().contains("missing.jsonl"), "{err}");
    }

    #[test]
    fn version_names_the_build() {
        let v = VERSION_LINE;
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(v.contains("features: "), "{v}");
    }
}
