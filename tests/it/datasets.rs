//! Multi-dataset suites and scoring settings of runs (issue 13): the smoke suite's three tiny
//! datasets give one results entry per (variant, dataset), FMNERG and SMNER metrics out of real
//! pipeline runs, per-dataset files and report sections, and the outcome frame of every entry;
//! `run --compat` scores like `eval --compat` and is recorded.

use std::path::Path;

use crate::common::{bin, path_str, root};

fn run_json(args: &[&str]) -> serde_json::Value {
    let o = bin()
        .args(args)
        .current_dir(root())
        .output()
        .expect("run riveg-bench");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

fn entry<'a>(r: &'a serde_json::Value, dataset: &str, name: &str) -> &'a serde_json::Value {
    r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name && v["dataset"] == dataset)
        .unwrap_or_else(|| panic!("no entry {dataset}/{name}"))
}

/// `[correct, predicted, gold]` of a task.
fn counts(v: &serde_json::Value, task: &str) -> [u64; 3] {
    let m = &v["metrics"]["riveg"][task];
    ["correct", "predicted", "gold"].map(|k| m[k].as_u64().unwrap_or_else(|| panic!("{task}.{k}")))
}

#[test]
fn smoke_datasets_score_fine_types_and_masks_from_pipeline_runs() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let r = run_json(&[
        "run",
        "--suite",
        "suites/smoke.toml",
        "--no-cache",
        "--variant",
        "replay",
        "--variant",
        "oracle-mner",
        "--out",
        path_str(&out),
        "--format",
        "json",
    ]);
    // One entry per (variant, dataset), datasets in suite order.
    let keys: Vec<String> = r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["dataset"].as_str().unwrap(),
                v["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            "gmner/oracle-mner",
            "gmner/replay",
            "fmnerg/oracle-mner",
            "fmnerg/replay",
            "smner/oracle-mner",
            "smner/replay"
        ]
    );
    assert_eq!(entry(&r, "fmnerg", "replay")["tweets"], 6);
    assert_eq!(entry(&r, "gmner", "replay")["tweets"], 8);

    // FMNERG-like: 12 gold entities with fine types. The recording has every span right and
    // every fourth fine type wrong (3 of 12); FMNERG also needs the (partly flipped) VE
    // decision and box, so it is at most GMNER's count.
    let rep = entry(&r, "fmnerg", "replay");
    assert_eq!(counts(rep, "mner"), [12, 12, 12]);
    assert_eq!(counts(rep, "fmner"), [9, 12, 12]);
    let gmner = counts(rep, "gmner");
    assert_eq!(gmner, [8, 12, 12]);
    let fmnerg = counts(rep, "fmnerg");
    let coarse = counts(rep, "fmnerg_coarse");
    assert_eq!(coarse, gmner, "FMNERG on coarse types is GMNER here");
    assert!(
        fmnerg[0] < gmner[0] && fmnerg[1..] == gmner[1..],
        "{fmnerg:?} {gmner:?}"
    );
    // The oracle tagger carries the gold fine types: FMNER is perfect, FMNERG is GMNER.
    let ora = entry(&r, "fmnerg", "oracle-mner");
    assert_eq!(counts(ora, "fmner"), [12, 12, 12]);
    assert_eq!(counts(ora, "fmnerg"), counts(ora, "gmner"));
    assert!(ora["not_scored"].get("fmnerg").is_none());
    assert_eq!(
        rep["not_scored"]["smner"],
        "FMNERG data has boxes, no masks"
    );

    // SMNER only where the gold has masks; the other datasets say why not.
    let sm = entry(&r, "smner", "replay");
    // The box segmenter fills the recorded boxes (2 px off): every GMNER match is an SMNER one.
    assert_eq!(counts(sm, "smner"), [10, 15, 15]);
    assert_eq!(counts(sm, "smner"), counts(sm, "gmner"));
    assert!(sm["not_scored"].get("smner").is_none());
    let gm = entry(&r, "gmner", "replay");
    assert!(gm["metrics"]["riveg"]["smner"].is_null());
    assert!(gm["metrics"]["riveg"]["fmnerg"].is_null());
    assert_eq!(gm["not_scored"]["smner"], "GMNER data has boxes, no masks");
    assert_eq!(
        gm["not_scored"]["fmnerg"],
        "GMNER data has coarse types only"
    );

    // Files: per-dataset gold, predictions, outcome frames, figures and report sections.
    for d in ["gmner", "fmnerg", "smner"] {
        assert!(out.join(format!("gold/{d}.jsonl")).is_file(), "{d}");
        assert!(out.join(format!("{d}/ablation.png")).is_file(), "{d}");
        assert_eq!(
            entry(&r, d, "replay")["predictions"],
            format!("predictions/{d}/replay.jsonl")
        );
    }
    assert!(!out.join("gold.jsonl").exists());
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let sections: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("## Dataset `"))
        .collect();
    assert_eq!(
        sections,
        [
            "## Dataset `gmner`",
            "## Dataset `fmnerg`",
            "## Dataset `smner`"
        ]
    );
    assert!(summary.contains("![F1 per variant and task](fmnerg/ablation.png)"));
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("| SMNER") && l.contains("| FMNERG data has boxes, no masks")),
        "the fmnerg section says why SMNER is not scored"
    );

    // The outcome frame agrees with the metrics: its correct predictions are the counts.
    let csv = std::fs::read_to_string(out.join("outcomes/fmnerg/replay.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 24, "12 gold + 12 predicted entities");
    let correct = |task: &str| {
        rows.iter()
            .filter(|r| r[col("side")] == "pred" && r[col(task)] == "true")
            .count() as u64
    };
    assert_eq!(correct("fmnerg_correct"), fmnerg[0]);
    assert_eq!(correct("gmner_correct"), gmner[0]);
}

#[test]
fn run_compat_scores_like_eval_compat_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let r = run_json(&[
        "run",
        "--no-cache",
        "--variant",
        "replay",
        "--compat",
        "riveg-initial",
        "--out",
        path_str(&out),
        "--format",
        "json",
    ]);
    let v = &r["variants"][0];
    assert_eq!(v["metrics"]["riveg"]["compat"]["name"], "riveg-initial");
    assert!(
        v.get("dataset").is_none(),
        "a [data] suite has no dataset names"
    );
    // The plan records the setting, so `merge` scores the same way.
    let plan = std::fs::read_to_string(out.join("suite.toml")).unwrap();
    assert!(plan.contains("compat = \"riveg-initial\""), "{plan}");
    // The same numbers as `eval --compat` on the run's gold and predictions.
    let e = run_json(&[
        "eval",
        "--gold",
        path_str(&out.join("gold.jsonl")),
        "--pred",
        path_str(&out.join("predictions/replay.jsonl")),
        "--compat",
        "riveg-initial",
        "--format",
        "json",
    ]);
    let report = if e.get("riveg").is_some() {
        &e["riveg"]
    } else {
        &e
    };
    for task in ["mner", "eeg", "gmner"] {
        assert_eq!(v["metrics"]["riveg"][task], report[task], "{task}");
    }
    // The default suite says why the tasks its release cannot support are not scored.
    let why = &v["not_scored"];
    for task in ["fmner", "fmnerg", "fmnerg_coarse", "smner"] {
        assert!(
            why[task].as_str().is_some_and(|s| s.contains("release")),
            "{task}: {why}"
        );
    }
    assert!(Path::new(&out.join("outcomes/replay.csv")).is_file());
}

#[test]
fn compare_pairs_multi_dataset_entries_by_dataset_and_variant() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run_json(&[
        "run",
        "--suite",
        "suites/smoke.toml",
        "--no-cache",
        "--variant",
        "replay",
        "--out",
        path_str(&out),
        "--format",
        "json",
    ]);
    let c = run_json(&[
        "compare",
        path_str(&out),
        path_str(&out),
        "--format",
        "json",
    ]);
    let pairs: Vec<(String, usize, Vec<String>)> = c["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["base_variant"], p["new_variant"]);
            assert_eq!(
                p["test"]["kind"], "paired_bootstrap",
                "per-tweet counts found"
            );
            let mut tasks: Vec<String> = p["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["task"].as_str().unwrap().to_string())
                .collect();
            tasks.dedup();
            (
                p["base_variant"].as_str().unwrap().to_string(),
                p["test"]["tweets"].as_u64().unwrap() as usize,
                tasks,
            )
        })
        .collect();
    let tasks = |extra: &[&str]| -> Vec<String> {
        ["mner", "eeg", "gmner"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(
        pairs,
        [
            ("gmner/replay".to_string(), 8, tasks(&[])),
            ("fmnerg/replay".to_string(), 6, tasks(&["fmnerg"])),
            ("smner/replay".to_string(), 8, tasks(&["smner"])),
        ]
    );
}
