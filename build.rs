//! Records what the binary is at build time, so results.json and `--version` say it even when the
//! binary is copied away from its checkout: the git commit (when built in a git checkout) and the
//! enabled cargo features.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(c) = &commit {
        println!("cargo:rustc-env=RIVEG_BENCH_GIT_COMMIT={c}");
    }
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(|f| f.to_lowercase()))
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!(
        "cargo:rustc-env=RIVEG_BENCH_FEATURES={}",
        features.join(",")
    );
    // The `--version` line: `0.1.0 (commit 0123456789ab, features: https)`.
    let short = commit
        .as_deref()
        .map(|c| &c[..c.len().min(12)])
        .unwrap_or("unknown");
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(",")
    };
    println!(
        "cargo:rustc-env=RIVEG_BENCH_VERSION_LINE={} (commit {short}, features: {features})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    // Re-run when HEAD moves (a commit or a checkout), not on every source change.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
