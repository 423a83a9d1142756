//! The entity outcome frame: its polars `group_by` tables equal the report's per-type,
//! groundability and error-source numbers on the shared data, and `eval --outcomes` writes it.

use riveg_bench::data::readers::{fmnerg, riveg};
use riveg_bench::data::Dataset;
use riveg_bench::metrics::outcomes::{
    errors_from_outcomes, groundability_from_outcomes, outcome_frame, outcomes,
    per_type_from_outcomes, Side,
};
use riveg_bench::metrics::{evaluate, Compat, EvalOptions, Protocol};

use crate::common::{bin, path_str, shared};
use crate::eval::synthetic_rec;

fn check(gold: &Dataset, pred: &Dataset, opts: &EvalOptions) {
    let r = evaluate(gold, pred, opts).unwrap();
    let rows = outcomes(gold, pred, opts).unwrap();
    let n_gold = rows.iter().filter(|r| r.side == Side::Gold).count();
    assert_eq!(n_gold, gold.entity_count());
    assert_eq!(rows.len() - n_gold, pred.entity_count());
    let df = outcome_frame(&rows).unwrap();
    assert_eq!(df.height(), rows.len());
    assert_eq!(per_type_from_outcomes(&df).unwrap(), r.per_type);
    assert_eq!(groundability_from_outcomes(&df).unwrap(), r.groundability);
    assert_eq!(errors_from_outcomes(&df).unwrap(), r.errors);
    // Each side's correct rows are the task's matches.
    let correct = |side: Side, f: fn(&riveg_bench::metrics::outcomes::OutcomeRow) -> bool| {
        rows.iter().filter(|x| x.side == side && f(x)).count()
    };
    for side in [Side::Gold, Side::Pred] {
        if opts.compat.is_none() {
            assert_eq!(correct(side, |x| x.mner_correct), r.mner.correct);
            assert_eq!(correct(side, |x| x.eeg_correct), r.eeg.correct);
            assert_eq!(correct(side, |x| x.gmner_correct), r.gmner.correct);
        }
    }
    // A matched pair points both ways.
    let pred_rows: Vec<_> = rows.iter().filter(|x| x.side == Side::Pred).collect();
    assert!(pred_rows
        .iter()
        .any(|x| x.matched_with.is_some() && x.iou.is_some()));
}

#[test]
fn outcome_tables_equal_the_report_on_release_files() {
    let gold = riveg::read_riveg_labels(&shared("riveg-release/GMNER_finall_label.txt"))
        .unwrap()
        .dataset;
    let ve = shared("riveg-release/OFAVE_to_OFAREC_augment.txt");
    let no_boxes = riveg::read_riveg_ofa(&ve, None).unwrap().dataset;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.json");
    synthetic_rec(&no_boxes, &gold, &rec);
    let pred = riveg::read_riveg_ofa(&ve, Some(&rec)).unwrap().dataset;
    check(&gold, &pred, &EvalOptions::default());
    // Under a compat mode the rows keep the base protocol, like the report's breakdowns.
    check(
        &gold,
        &pred,
        &EvalOptions {
            compat: Some(Compat::RivegInitial),
            ..EvalOptions::default()
        },
    );
}

#[test]
fn outcome_tables_equal_the_report_on_fmnerg() {
    let gold = fmnerg::read_fmnerg(
        &shared("twitter-fmnerg"),
        "test",
        Some(&shared("twitter-gmner/v2.0")),
    )
    .unwrap()
    .dataset;
    let pred = crate::compat::perturb(&gold);
    for protocol in [Protocol::Riveg, Protocol::Span] {
        let opts = EvalOptions {
            protocol,
            ..EvalOptions::default()
        };
        check(&gold, &pred, &opts);
        let rows = outcomes(&gold, &pred, &opts).unwrap();
        let fm = rows
            .iter()
            .filter(|x| x.side == Side::Pred && x.fmnerg_correct == Some(true))
            .count();
        assert_eq!(
            fm,
            evaluate(&gold, &pred, &opts)
                .unwrap()
                .fmnerg
                .unwrap()
                .correct
        );
    }
}

#[test]
fn eval_outcomes_writes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (gold, pred) = (dir.path().join("gold.jsonl"), dir.path().join("pred.jsonl"));
    let fm = shared("twitter-fmnerg");
    let v2 = shared("twitter-gmner/v2.0");
    let g = fmnerg::read_fmnerg(&fm, "test", Some(&v2)).unwrap().dataset;
    riveg_bench::data::jsonl::write_jsonl(&g, &gold).unwrap();
    riveg_bench::data::jsonl::write_jsonl(&crate::compat::perturb(&g), &pred).unwrap();
    let csv = dir.path().join("out.csv");
    let out = bin()
        .args(["eval", "--gold", path_str(&gold), "--pred", path_str(&pred)])
        .args(["--format", "json", "--outcomes", path_str(&csv)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "tweet_id,side,index,text,type,fine_type,start,end,groundable,iou,mask_iou,mner_correct,eeg_correct,gmner_correct,fmnerg_correct,smner_correct,matched_with,error"
    );
    let n = crate::compat::perturb(&g).entity_count() + g.entity_count();
    assert_eq!(lines.count(), n);
    // Parquet is refused with a hint, exit 2.
    let out = bin()
        .args(["eval", "--gold", path_str(&gold), "--pred", path_str(&pred)])
        .args(["--outcomes", path_str(&dir.path().join("o.parquet"))])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint"));
}
