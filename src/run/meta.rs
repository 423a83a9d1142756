//! Where and with what a run happened: the build (version, git commit and cargo features,
//! recorded at build time by `build.rs`, so a copied binary still says what it is) and the host.

use crate::results::RunMeta;

/// The git commit the binary was built from (`None` outside a git checkout).
pub const GIT_COMMIT: Option<&str> = option_env!("RIVEG_BENCH_GIT_COMMIT");

/// The cargo features the binary was built with, comma-separated.
pub const FEATURES: &str = env!("RIVEG_BENCH_FEATURES");

/// `0.1.0 (commit 0123456789ab, features: https)`: the `--version` line (made by `build.rs`).
pub const VERSION_LINE: &str = env!("RIVEG_BENCH_VERSION_LINE");

/// Metadata of a run starting now (the execution provider is filled in once models loaded).
pub fn run_meta(started_unix: u64, shard: Option<String>, gold: Vec<String>) -> RunMeta {
    RunMeta {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: GIT_COMMIT.map(str::to_string),
        build_features: FEATURES
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        started_unix,
        hostname: std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        os: std::env::consts::OS.to_string(),
        cpu: cpu_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        execution_provider: "none".into(),
        shard,
        gold,
        llm: None,
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
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
    fn version_names_the_build() {
        let v = VERSION_LINE;
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(v.contains("features: "), "{v}");
    }
}
