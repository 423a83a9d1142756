//! The run layer's contract (issue: one run layer): for every suite in the repository, shards
//! merged equal the unsharded run (metrics, predictions, per-tweet counts, replay fall-backs),
//! also when `--variant` selects part of the suite; the run directory records the plan actually
//! run; results.json and summary.md are there after a run; `run --format json` names the run
//! directory's results.

use std::path::{Path, PathBuf};

use crate::common::{bin, path_str, root};

fn riveg(args: &[&str]) -> (i32, String) {
    let o = bin()
        .args(args)
        .current_dir(root())
        .output()
        .expect("run riveg-bench");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn results(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

/// Runs `suite` (None: the built-in default) whole and as `n` shards merged, with the same extra
/// arguments, and asserts the two agree on everything that does not depend on time.
fn assert_shards_merge_to_the_whole(suite: Option<&Path>, extra: &[&str], n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let base = |out: &Path| {
        let mut a: Vec<String> = vec!["run".into(), "--no-cache".into(), "--out".into()];
        a.push(path_str(out).into());
        if let Some(s) = suite {
            a.extend(["--suite".into(), path_str(s).into()]);
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let whole = tmp.path().join("whole");
    let args = base(&whole);
    let (code, err) = riveg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let mut shard_dirs: Vec<PathBuf> = Vec::new();
    for k in 1..=n {
        let d = tmp.path().join(format!("shard{k}"));
        let mut args = base(&d);
        args.extend(["--shard".into(), format!("{k}/{n}")]);
        let (code, err) = riveg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "shard {k}/{n}: {err}");
        shard_dirs.push(d);
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["merge".to_string()];
    args.extend(shard_dirs.iter().map(|d| path_str(d).to_string()));
    args.extend([
        "--out".into(),
        path_str(&merged).into(),
        "--format".into(),
        "json".into(),
    ]);
    let (code, err) = riveg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "merge: {err}");

    let (w, m) = (results(&whole), results(&merged));
    let (wv, mv) = (
        w["variants"].as_array().unwrap(),
        m["variants"].as_array().unwrap(),
    );
    assert_eq!(wv.len(), mv.len());
    assert!(!wv.is_empty());
    for (a, b) in wv.iter().zip(mv) {
        let name = a["name"].as_str().unwrap();
        for key in [
            "name",
            "description",
            "stages",
            "metrics",
            "not_applicable",
            "skipped",
            "replay_missing",
            "tweets",
        ] {
            assert_eq!(a[key], b[key], "variant {name}: {key}");
        }
        for file in [
            a["predictions"].as_str().unwrap().to_string(),
            format!("per_tweet/{name}.json"),
        ] {
            let fa = std::fs::read(whole.join(&file)).unwrap();
            let fb = std::fs::read(merged.join(&file)).unwrap();
            assert!(fa == fb, "variant {name}: {file} differs");
        }
    }
    assert_eq!(
        std::fs::read(whole.join("gold.jsonl")).unwrap(),
        std::fs::read(merged.join("gold.jsonl")).unwrap()
    );
    assert!(merged.join("summary.md").is_file());
}

#[test]
fn a_variant_run_in_shards_merges_to_the_variant_run() {
    // The bug this layer fixed: the run directory saved the whole suite, so merging shards of a
    // `--variant` run failed with "lacks variant".
    assert_shards_merge_to_the_whole(None, &["--variant", "replay-oracle-vg"], 2);
}

#[test]
fn every_suite_in_the_repo_merges_from_shards() {
    assert_shards_merge_to_the_whole(None, &[], 2);
    for entry in std::fs::read_dir(root().join("suites")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            assert_shards_merge_to_the_whole(Some(&path), &[], 2);
        }
    }
}

#[test]
fn the_run_directory_records_the_plan_actually_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (code, err) = riveg(&[
        "run",
        "--no-cache",
        "--variant",
        "replay",
        "--variant",
        "no-ve-oracle-vg",
        "--out",
        path_str(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let plan = riveg_bench::run::Suite::parse(
        &std::fs::read_to_string(out.join("suite.toml")).unwrap(),
        "suite.toml".into(),
        PathBuf::new(),
    )
    .unwrap();
    let names: Vec<&str> = plan.file.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["replay", "no-ve-oracle-vg"]);
    let r = results(&out);
    assert_eq!(r["variants"].as_array().unwrap().len(), 2);
    assert!(out.join("summary.md").is_file());
    assert!(r["meta"]["git_commit"].is_string() || r["meta"]["git_commit"].is_null());
}

#[test]
fn quiet_run_prints_nothing_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (code, err) = riveg(&[
        "-q",
        "run",
        "--no-cache",
        "--variant",
        "replay",
        "--out",
        path_str(&out),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "", "-q must leave stderr empty");
}
