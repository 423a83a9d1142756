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
        // Per-variant files are keyed by `<dataset>/<variant>` in a multi-dataset suite.
        let name = match a["dataset"].as_str() {
            Some(d) => format!("{d}/{}", a["name"].as_str().unwrap()),
            None => a["name"].as_str().unwrap().to_string(),
        };
        for key in [
            "name",
            "dataset",
            "not_scored",
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
        let per_tweet = format!("per_tweet/{name}.json");
        assert!(
            std::fs::read(whole.join(&per_tweet)).unwrap()
                == std::fs::read(merged.join(&per_tweet)).unwrap(),
            "variant {name}: {per_tweet} differs"
        );
        // The outcome frame: same rows and cells, IoUs to float noise like the predictions.
        let outcomes = format!("outcomes/{name}.csv");
        let cells = |dir: &Path| -> Vec<Vec<String>> {
            std::fs::read_to_string(dir.join(&outcomes))
                .unwrap()
                .lines()
                .map(|l| l.split(',').map(str::to_string).collect())
                .collect()
        };
        let (oa, ob) = (cells(&whole), cells(&merged));
        assert!(oa.len() > 1, "variant {name}: {outcomes} has no rows");
        assert_eq!(oa.len(), ob.len(), "variant {name}: {outcomes} row count");
        for (ra, rb) in oa.iter().zip(&ob) {
            let same = ra.len() == rb.len()
                && ra.iter().zip(rb).all(|(x, y)| {
                    x == y
                        || matches!((x.parse::<f64>(), y.parse::<f64>()),
                            (Ok(p), Ok(q)) if (p - q).abs() <= 1e-9 * p.abs().max(1.0))
                });
            assert!(same, "variant {name}: {outcomes} differs:\n{ra:?}\n{rb:?}");
        }
        // Predictions agree line by line; floats to 1e-9 relative: ONNX Runtime's last digit
        // of a box can depend on what the session ran before (a shard starts on another tweet).
        let file = a["predictions"].as_str().unwrap();
        let lines = |dir: &Path| -> Vec<serde_json::Value> {
            std::fs::read_to_string(dir.join(file))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let (pa, pb) = (lines(&whole), lines(&merged));
        assert_eq!(pa.len(), pb.len(), "variant {name}: {file} line count");
        for (la, lb) in pa.iter().zip(&pb) {
            assert!(close(la, lb), "variant {name}: {file} differs:\n{la}\n{lb}");
        }
    }
    // One gold per dataset (`gold/<dataset>.jsonl`), or `gold.jsonl` for a [data] suite.
    let golds: std::collections::BTreeSet<String> = wv
        .iter()
        .map(|v| match v["dataset"].as_str() {
            Some(d) => format!("gold/{d}.jsonl"),
            None => "gold.jsonl".to_string(),
        })
        .collect();
    for g in &golds {
        assert_eq!(
            std::fs::read(whole.join(g)).unwrap(),
            std::fs::read(merged.join(g)).unwrap(),
            "{g}"
        );
    }
    assert!(merged.join("summary.md").is_file());
}

/// JSON equality with numbers equal to 1e-9 relative.
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)),
        (Object(x), Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn a_variant_run_in_shards_merges_to_the_variant_run() {
    crate::require_venv!();
    // The bug this layer fixed: the run directory saved the whole suite, so merging shards of a
    // `--variant` run failed with "lacks variant".
    assert_shards_merge_to_the_whole(None, &["--variant", "replay-oracle-vg"], 2);
}

#[test]
fn a_compat_run_in_shards_merges_with_the_same_scorer() {
    crate::require_venv!();
    // merge re-scores with the plan's settings: a lost `compat` would change the metrics
    // (results.json's `metrics.riveg.compat` names the scorer and its quirks).
    assert_shards_merge_to_the_whole(
        None,
        &["--variant", "replay", "--compat", "riveg-initial"],
        2,
    );
}

#[test]
fn every_suite_in_the_repo_merges_from_shards() {
    crate::require_venv!();
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
