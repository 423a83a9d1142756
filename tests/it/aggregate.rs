//! `aggregate RUN_DIR...`: mean, sample std, min, max and n of every metric over runs.

use riveg_bench::results::RunResults;

use crate::common::{bin, path_str};
use crate::report::{eval, meta, release_gold, release_pred, variant, write_run};

#[test]
fn aggregate_three_runs_of_the_release_file() {
    let gold = release_gold();
    let full = release_pred("OFAVE_to_OFAREC_augment.txt");
    let dir = tempfile::tempdir().unwrap();
    let mut f1s = Vec::new();
    let mut dirs = Vec::new();
    // Three "seeds": every k-th tweet's predictions dropped, k = 3, 4, 5.
    for k in [3usize, 4, 5] {
        let mut pred = full.clone();
        for (i, t) in pred.tweets.iter_mut().enumerate() {
            if i % k == 0 {
                t.entities.clear();
            }
        }
        let r = eval(&gold, &pred);
        f1s.push(r.mner.f1);
        let results = RunResults {
            suite: "seeds".into(),
            run_id: format!("seed-{k}"),
            meta: meta(),
            variants: vec![variant("aug", "augmented predictions", &r, false)],
        };
        let run = dir.path().join(format!("run-{k}"));
        write_run(&run, &results, &[("aug", &r)]);
        dirs.push(run);
    }
    let out = bin()
        .arg("aggregate")
        .args(dirs.iter().map(|d| path_str(d)))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"], 3);
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 1);
    assert_eq!(variants[0]["name"], "aug");
    assert_eq!(
        variants[0]["dataset"],
        "riveg-release/GMNER_finall_label.txt"
    );
    let s = &variants[0]["metrics"]["riveg"]["mner"]["f1"];
    let mean = f1s.iter().sum::<f64>() / 3.0;
    let std = (f1s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((s["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{s}");
    assert!((s["std"].as_f64().unwrap() - std).abs() < 1e-12, "{s}");
    assert!(std > 0.001, "the runs differ");
    let min = f1s.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(s["min"].as_f64().unwrap(), min);
    assert_eq!(s["n"], 3);
    // The release files have no token offsets: no span metrics, rather than made-up ones.
    assert!(variants[0]["metrics"].get("span").is_none());

    // One run: std is null (no spread), and the human table says n/a.
    let one = bin()
        .args(["aggregate", path_str(&dirs[0]), "--format", "human"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(text.contains("± n/a") && text.contains("aug"), "{text}");

    // A folder without results.json: exit 2 with the path and a hint.
    let bad = bin()
        .args(["aggregate", path_str(dir.path())])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("results.json") && msg.contains("hint"),
        "{msg}"
    );
}
