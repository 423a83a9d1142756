//! Shared helpers for the integration tests: paths to ../shared data, the Python venv, the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under ../shared/datasets (the shared data beside the checkout).
pub fn shared(rel: &str) -> PathBuf {
    let p = root().join("../shared/datasets").join(rel);
    assert!(
        p.exists(),
        "{} is missing: the tests read ../shared beside the checkout (see README)",
        p.display()
    );
    p
}

/// What to do when `.venv` is missing (the same words wherever a test needs it).
pub const VENV_HINT: &str = "run `bash scripts/install-python-deps.sh` first (CI does; on Debian/Ubuntu it needs `sudo apt-get install python3-venv`)";

/// The project's Python (for cross-checks against seqeval / pycocotools / onnxruntime).
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(p.exists(), "{} is missing: {VENV_HINT}", p.display());
    p
}

/// Whether `.venv` (ONNX Runtime's library, seqeval, pycocotools) is installed. When it is not,
/// says on stderr that `test` is skipped and why, and returns false; with
/// `RIVEG_BENCH_REQUIRE_VENV=1` (CI) a missing venv fails the test instead, so a skip can never
/// hide a broken CI set-up. Use through [`require_venv!`] as the first line of a test that loads
/// ONNX Runtime or runs `tests/py` (not yet wired into those tests, whose files other areas own).
#[allow(dead_code)]
pub fn venv_or_skip(test: &str) -> bool {
    if root().join(".venv/bin/python").exists() {
        return true;
    }
    if std::env::var_os("RIVEG_BENCH_REQUIRE_VENV").is_some_and(|v| v == "1") {
        panic!("{test}: .venv is missing and RIVEG_BENCH_REQUIRE_VENV=1: {VENV_HINT}");
    }
    eprintln!("SKIPPED {test}: needs .venv (ONNX Runtime, seqeval, pycocotools): {VENV_HINT}");
    false
}

/// First line of a test that needs `.venv`: returns early (skipped, with a message) without it.
#[macro_export]
macro_rules! require_venv {
    () => {
        if !$crate::common::venv_or_skip(module_path!()) {
            return;
        }
    };
}

/// Runs a Python script from tests/py and parses its JSON stdout.
pub fn run_py(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(root().join("tests/py").join(script))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// The riveg-bench binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riveg-bench"))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
