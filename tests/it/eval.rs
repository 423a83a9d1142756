//! Scoring on the real shared data: the seed-protocol anchor, cross-checks against seqeval 1.2.2
//! and a port of RiVEG's statistic.py, and the breakdown invariants.

use riveg_bench::data::readers::{adaseq, conll, gmner, riveg};
use riveg_bench::data::tags::Scheme;
use riveg_bench::data::Dataset;
use riveg_bench::metrics::{evaluate, EvalOptions, EvalReport, Protocol};

use crate::common::{path_str, run_py, shared};

fn riveg_opts() -> EvalOptions {
    EvalOptions::default()
}

fn span_opts() -> EvalOptions {
    EvalOptions {
        protocol: Protocol::Span,
        ..EvalOptions::default()
    }
}

fn release_gold() -> Dataset {
    riveg::read_riveg_labels(&shared("riveg-release/GMNER_finall_label.txt"))
        .unwrap()
        .dataset
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-9, "{what}: {a} vs {b}");
}

fn assert_invariants(r: &EvalReport) {
    let e = &r.errors;
    assert_eq!(e.correct, r.gmner.correct);
    let wrong = e.wrong_type + e.wrong_groundability + e.wrong_box;
    assert_eq!(e.correct + wrong + e.spurious, r.gmner.predicted, "{e:?}");
    assert_eq!(e.correct + wrong + e.missed, r.gmner.gold, "{e:?}");
    assert!(r.gmner.correct <= r.eeg.correct && r.gmner.correct <= r.mner.correct);
}

#[test]
fn seed_protocol_anchor_on_released_files() {
    // PROTOCOLS.md / issue 3: 2187 MNER matches out of 2535 predicted and 2542 gold.
    let gold = release_gold();
    let pred = riveg::read_riveg_ofa(&shared("riveg-release/OFAVE_to_OFAREC_augment.txt"), None)
        .unwrap()
        .dataset;
    let r = evaluate(&gold, &pred, &riveg_opts()).unwrap();
    assert_eq!(
        (r.mner.correct, r.mner.predicted, r.mner.gold),
        (2187, 2535, 2542)
    );
    assert_close(r.mner.f1, 2.0 * 2187.0 / (2535.0 + 2542.0), "MNER F1");
    // Without REC boxes every VE-positive prediction lacks a box: GMNER keeps only the
    // ungroundable matches, which the VE diagnostics count as true negatives.
    assert_eq!(r.gmner.correct, r.diagnostics.entailment.true_negative);
    assert_eq!(r.diagnostics.grounding.with_box, 0);
    assert_invariants(&r);
}

#[test]
fn span_protocol_is_not_applicable_to_release_files() {
    let gold = release_gold();
    let err = evaluate(&gold, &gold, &span_opts()).unwrap_err();
    assert!(err.0.contains("token offsets"), "{err}");
}

/// Writes a deterministic OFA REC boxes file for the VE-positive lines: the first gold box of the
/// same image + text shifted by a varying offset (some IoU above, some below 0.5), or a far box.
pub fn synthetic_rec(pred: &Dataset, gold: &Dataset, path: &std::path::Path) {
    let mut entries = Vec::new();
    let mut i = 0usize;
    for t in &pred.tweets {
        for e in &t.entities {
            if !e.groundable {
                continue;
            }
            let g = gold.tweets.iter().find(|g| g.id == t.id).and_then(|g| {
                g.entities
                    .iter()
                    .find(|x| x.text == e.text && !x.boxes.is_empty())
            });
            let b = match g {
                Some(g) => {
                    let [x1, y1, x2, y2] = g.boxes[0].0;
                    let dx = (x2 - x1) * (i % 5) as f64 * 0.15;
                    [x1 + dx, y1, x2 + dx, y2]
                }
                None => [10.0, 10.0, 50.0, 60.0],
            };
            entries.push(serde_json::json!({"uniq_id": e.uid, "box": b}));
            i += 1;
        }
    }
    std::fs::write(path, serde_json::to_string(&entries).unwrap()).unwrap();
}

#[test]
fn seed_protocol_matches_ported_statistic_py_with_boxes() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let labels = shared("riveg-release/GMNER_finall_label.txt");
    let gold = release_gold();
    for ve_name in ["OFAVE_to_OFAREC_augment.txt", "OFAVE_to_OFAREC.txt"] {
        let ve = shared(&format!("riveg-release/{ve_name}"));
        let no_boxes = riveg::read_riveg_ofa(&ve, None).unwrap().dataset;
        let rec = dir.path().join("rec.json");
        synthetic_rec(&no_boxes, &gold, &rec);
        let pred = riveg::read_riveg_ofa(&ve, Some(&rec)).unwrap().dataset;
        let r = evaluate(&gold, &pred, &riveg_opts()).unwrap();
        for (task, ours) in [("mner", r.mner), ("eeg", r.eeg), ("gmner", r.gmner)] {
            let py = run_py(
                "seed_statistic.py",
                &[path_str(&labels), path_str(&ve), path_str(&rec), task],
            );
            assert_eq!(
                ours.correct as u64,
                py["right"].as_u64().unwrap(),
                "{ve_name} {task}"
            );
            assert_eq!(ours.predicted as u64, py["pred"].as_u64().unwrap());
            assert_eq!(ours.gold as u64, py["label"].as_u64().unwrap());
        }
        assert!(
            r.gmner.correct > 800 && r.gmner.correct < r.eeg.correct,
            "{:?}",
            r.gmner
        );
        assert!(r.diagnostics.grounding.with_box > 0);
        assert_invariants(&r);
    }
}

fn seqeval(file: &std::path::Path, gold_col: &str, pred_col: &str, eos: bool) -> serde_json::Value {
    let mut args = vec![path_str(file), gold_col, pred_col];
    if eos {
        args.push("--eos");
    }
    run_py("seqeval_check.py", &args)
}

pub fn assert_matches_seqeval(r: &EvalReport, py: &serde_json::Value) {
    assert_close(
        r.mner.precision,
        py["precision"].as_f64().unwrap(),
        "precision",
    );
    assert_close(r.mner.recall, py["recall"].as_f64().unwrap(), "recall");
    assert_close(r.mner.f1, py["f1"].as_f64().unwrap(), "f1");
    let avg = r.averages.expect("averages");
    for (name, ours) in [
        ("macro avg", avg.mner.macro_avg),
        ("weighted avg", avg.mner.weighted_avg),
    ] {
        let v = &py["averages"][name];
        assert_close(ours.precision, v["precision"].as_f64().unwrap(), name);
        assert_close(ours.recall, v["recall"].as_f64().unwrap(), name);
        assert_close(ours.f1, v["f1-score"].as_f64().unwrap(), name);
    }
    let per_type = py["per_type"].as_object().unwrap();
    for (ty, v) in per_type {
        let ours = &r.per_type[ty].mner;
        assert_eq!(
            ours.gold as u64,
            v["support"].as_u64().unwrap(),
            "{ty} support"
        );
        assert_close(
            ours.f1,
            v["f1-score"].as_f64().unwrap(),
            &format!("{ty} f1"),
        );
        assert_close(
            ours.precision,
            v["precision"].as_f64().unwrap(),
            &format!("{ty} precision"),
        );
    }
}

#[test]
fn span_protocol_matches_seqeval_on_gmner_v1_vs_v2() {
    crate::require_venv!();
    // v1 test tags scored as predictions against v2.0 test gold (same tokens, corrected tags).
    let gold = gmner::read_gmner(&shared("twitter-gmner/v2.0"), "test")
        .unwrap()
        .dataset;
    let v1 = shared("twitter-gmner/v1/txt/test.txt");
    let pred = conll::read_conll(&v1, Scheme::Auto).unwrap().dataset;
    let r = evaluate(&gold, &pred, &span_opts()).unwrap();
    assert!(r.mner.correct < r.mner.gold, "the versions differ");
    // One file with token, v2.0 tag, v1 tag for seqeval.
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("v2_v1.txt");
    let v2 = std::fs::read_to_string(shared("twitter-gmner/v2.0/txt/test.txt")).unwrap();
    let v1 = std::fs::read_to_string(&v1).unwrap();
    let mut text = String::new();
    for (a, b) in v2.lines().zip(v1.lines()) {
        if a.is_empty() || a.starts_with("IMGID:") {
            text.push_str(a);
        } else {
            let (tok, ga) = a.split_once('\t').unwrap();
            let (_, gb) = b.split_once('\t').unwrap();
            text.push_str(&format!("{tok}\t{ga}\t{gb}"));
        }
        text.push('\n');
    }
    std::fs::write(&combined, text).unwrap();
    assert_matches_seqeval(&r, &seqeval(&combined, "1", "2", false));
}

#[test]
fn span_protocol_matches_seqeval_on_adaseq_output() {
    crate::require_venv!();
    let file = shared("riveg-release/adaseq_test_pred.txt");
    let out = adaseq::read_adaseq(&file, None).unwrap();
    let r = evaluate(&out.gold, &out.pred, &span_opts()).unwrap();
    assert_eq!(out.pred.tweets.len(), 1500);
    let py = seqeval(&file, "1", "2", true);
    assert_eq!(py["sentences"].as_u64().unwrap(), 1500);
    assert_matches_seqeval(&r, &py);
    assert_invariants(&r);
}

#[test]
fn adaseq_ids_from_gmner_v2_agree() {
    let gold = gmner::read_gmner(&shared("twitter-gmner/v2.0"), "test")
        .unwrap()
        .dataset;
    let out =
        adaseq::read_adaseq(&shared("riveg-release/adaseq_test_pred.txt"), Some(&gold)).unwrap();
    assert_eq!(out.pred.tweets[0].id, "71044");
    // The AdaSeq gold column is the GMNER test set's text labels: same spans as v2.0 except the
    // handful of corrected ones.
    let r = evaluate(&gold, &out.pred, &span_opts()).unwrap();
    assert!(r.mner.f1 > 0.8 && r.mner.f1 < 1.0, "{:?}", r.mner);
}
