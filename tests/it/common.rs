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

/// The project's Python (for cross-checks against seqeval / pycocotools / onnxruntime).
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/install-python-deps.sh` first (CI does)",
        p.display()
    );
    p
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
