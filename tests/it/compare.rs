//! `compare` on real predictions: a controlled regression (10% of the correct GMNER predictions
//! of the released RiVEG-RoBERTa† file dropped) must be Regressed with p < 0.05 and exit code 1;
//! identical runs must be No change with exit code 0; the bootstrap is deterministic per seed;
//! saved and published baselines load by name; missing things come with hints.

use std::path::Path;
use std::sync::OnceLock;

use riveg_bench::compare::{
    self, compare, exit_code, load_saved_in, save_baseline_in, CompareOptions, Comparison, Side,
    TestUsed, Verdict,
};
use riveg_bench::metrics::EvalReport;
use riveg_bench::report;
use riveg_bench::results::RunResults;

use crate::report::{drop_correct, eval, meta, release_gold, release_pred, variant, write_run};

struct Runs {
    base: tempfile::TempDir,
    degraded: tempfile::TempDir,
    dropped: usize,
    base_report: EvalReport,
    degraded_report: EvalReport,
}

/// Two run directories from real predictions, built once for every test in this module.
fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let gold = release_gold();
        let pred = release_pred("OFAVE_to_OFAREC_augment.txt");
        let (worse, dropped) = drop_correct(&gold, &pred, 10);
        let base_report = eval(&gold, &pred);
        let degraded_report = eval(&gold, &worse);
        let run = |r: &EvalReport, id: &str| RunResults {
            suite: "release-replay".into(),
            run_id: id.into(),
            meta: meta(),
            variants: vec![variant("full", "released predictions", r, false)],
        };
        let base = tempfile::tempdir().unwrap();
        let degraded = tempfile::tempdir().unwrap();
        write_run(
            base.path(),
            &run(&base_report, "base"),
            &[("full", &base_report)],
        );
        write_run(
            degraded.path(),
            &run(&degraded_report, "degraded"),
            &[("full", &degraded_report)],
        );
        Runs {
            base,
            degraded,
            dropped,
            base_report,
            degraded_report,
        }
    })
}

fn side(dir: &Path) -> Side {
    Side::from_run_dir(dir).unwrap()
}

fn metric<'a>(c: &'a Comparison, key: &str) -> &'a compare::MetricComparison {
    c.pairs[0].metrics.iter().find(|m| m.key == key).unwrap()
}

#[test]
fn dropping_correct_predictions_is_a_significant_regression() {
    let r = runs();
    assert!(r.dropped > 50, "dropped {}", r.dropped);
    let lost = r.base_report.gmner.correct - r.degraded_report.gmner.correct;
    assert!(
        lost * 10 >= r.dropped * 9 && lost <= r.dropped,
        "lost {lost} of {} dropped",
        r.dropped
    );
    let c = compare(
        &side(r.base.path()),
        &side(r.degraded.path()),
        &CompareOptions::default(),
    )
    .unwrap();
    assert!(
        matches!(
            c.pairs[0].test,
            TestUsed::PairedBootstrap {
                tweets: 1400..,
                samples: 1000,
                ..
            }
        ),
        "{:?}",
        c.pairs[0].test
    );
    let f1 = metric(&c, "gmner.f1");
    assert!(
        f1.delta < 0.0
            && (f1.delta - (r.degraded_report.gmner.f1 - r.base_report.gmner.f1)).abs() < 1e-12
    );
    assert_eq!(f1.verdict, Verdict::Regressed);
    assert!(f1.p_value.unwrap() < 0.05, "p = {:?}", f1.p_value);
    let [lo, hi] = f1.ci.unwrap();
    assert!(
        lo <= f1.delta && f1.delta <= hi && hi < 0.0,
        "CI {lo}..{hi} around {}",
        f1.delta
    );
    assert!(f1.gated && f1.gate_failed);
    assert_eq!(metric(&c, "gmner.recall").verdict, Verdict::Regressed);
    assert_eq!((c.exit_code, exit_code(&c)), (1, 1));
    let human = compare::render::render_human(&c);
    assert!(
        human.contains("REGRESSION") && human.contains("exit code 1"),
        "{human}"
    );
    // The other way round it is an improvement, and the gate passes.
    let back = compare(
        &side(r.degraded.path()),
        &side(r.base.path()),
        &CompareOptions::default(),
    )
    .unwrap();
    assert_eq!(metric(&back, "gmner.f1").verdict, Verdict::Improved);
    assert_eq!(exit_code(&back), 0);
}

#[test]
fn threshold_and_gates_change_the_outcome() {
    let r = runs();
    let big = CompareOptions {
        threshold: 0.5,
        ..CompareOptions::default()
    };
    let c = compare(&side(r.base.path()), &side(r.degraded.path()), &big).unwrap();
    assert_eq!(metric(&c, "gmner.f1").verdict, Verdict::NoChange);
    assert_eq!(exit_code(&c), 0);
    let mner_only = CompareOptions {
        gated: vec!["MNER.F1".into()],
        ..CompareOptions::default()
    };
    let c = compare(&side(r.base.path()), &side(r.degraded.path()), &mner_only).unwrap();
    assert_eq!(c.options.gated, ["mner.f1"]);
    assert!(metric(&c, "mner.f1").gated);
    assert!(!metric(&c, "gmner.f1").gate_failed);
    let bad = CompareOptions {
        gated: vec!["gmner".into()],
        ..CompareOptions::default()
    };
    let e = compare(&side(r.base.path()), &side(r.degraded.path()), &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("TASK.METRIC") && e.contains("hint"), "{e}");
}

#[test]
fn identical_runs_are_no_change() {
    let r = runs();
    let c = compare(
        &side(r.base.path()),
        &side(r.base.path()),
        &CompareOptions::default(),
    )
    .unwrap();
    assert!(c.pairs[0]
        .metrics
        .iter()
        .all(|m| m.verdict == Verdict::NoChange && m.delta == 0.0));
    assert!(c.pairs[0].metrics.iter().all(|m| m.p_value == Some(1.0)));
    assert_eq!(exit_code(&c), 0);
}

#[test]
fn bootstrap_is_deterministic_per_seed() {
    let r = runs();
    let (b, n) = (side(r.base.path()), side(r.degraded.path()));
    let opts = |seed| CompareOptions {
        seed,
        samples: 300,
        ..CompareOptions::default()
    };
    let a1 = compare(&b, &n, &opts(7)).unwrap();
    let a2 = compare(&b, &n, &opts(7)).unwrap();
    let other = compare(&b, &n, &opts(8)).unwrap();
    let cis = |c: &Comparison| {
        c.pairs[0]
            .metrics
            .iter()
            .map(|m| m.ci.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(cis(&a1), cis(&a2));
    assert_ne!(cis(&a1), cis(&other));
    assert_eq!(
        compare::render::render_json(&a1),
        compare::render::render_json(&a2),
        "JSON is byte-identical for the same seed"
    );
}

#[test]
fn saved_baselines_round_trip_and_missing_ones_hint() {
    let r = runs();
    let root = tempfile::tempdir().unwrap();
    let dest = save_baseline_in(root.path(), r.base.path(), "main").unwrap();
    assert!(dest.join("per_tweet/full.json").is_file() && dest.join("baseline.json").is_file());
    let base = load_saved_in(root.path(), "main").unwrap();
    assert_eq!(base.label(), "baseline main");
    let c = compare(&base, &side(r.degraded.path()), &CompareOptions::default()).unwrap();
    assert_eq!(c.base.kind, "saved");
    assert_eq!(exit_code(&c), 1);
    let e = load_saved_in(root.path(), "nightly")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no baseline named \"nightly\"") && e.contains("--save-baseline nightly"),
        "{e}"
    );
    let e = Side::resolve_in(root.path(), "nightly")
        .unwrap_err()
        .to_string();
    assert!(e.contains("published:riveg-roberta-dagger"), "{e}");
    assert!(matches!(
        Side::resolve_in(root.path(), "h-index").unwrap(),
        Side::Published(_)
    ));
    assert!(matches!(
        Side::resolve_in(root.path(), "main").unwrap(),
        Side::Run(_)
    ));
    let e = save_baseline_in(root.path(), r.base.path(), "../x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not usable as a directory name"), "{e}");
    // Markdown of a comparison between two saved baselines has no volatile field at all.
    save_baseline_in(root.path(), r.degraded.path(), "degraded").unwrap();
    let c = compare(
        &load_saved_in(root.path(), "main").unwrap(),
        &load_saved_in(root.path(), "degraded").unwrap(),
        &CompareOptions::default(),
    )
    .unwrap();
    insta::assert_snapshot!(
        "compare_regression_markdown",
        compare::render::render_markdown(&c)
    );
}

#[test]
fn missing_variant_and_different_tweets_are_errors_with_hints() {
    let r = runs();
    let opts = CompareOptions {
        variants: vec!["no-ve".into()],
        ..CompareOptions::default()
    };
    let e = compare(&side(r.base.path()), &side(r.degraded.path()), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no variant named \"no-ve\"") && e.contains("it has: full"),
        "{e}"
    );

    // A run scored on other tweets cannot be paired.
    let other = tempfile::tempdir().unwrap();
    let mut report = r.degraded_report.clone();
    report.per_tweet.ids.truncate(1000);
    for v in report.per_tweet.counts.values_mut() {
        v.truncate(1000);
    }
    let results = RunResults {
        suite: "release-replay".into(),
        run_id: "partial".into(),
        meta: meta(),
        variants: vec![variant("full", "", &report, false)],
    };
    write_run(other.path(), &results, &[("full", &report)]);
    let e = compare(
        &side(r.base.path()),
        &side(other.path()),
        &CompareOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("different tweets") && e.contains("hint"), "{e}");
}

#[test]
fn published_baselines_give_plain_deltas() {
    let r = runs();
    let base = Side::published("riveg-roberta-dagger").unwrap();
    let c = compare(&base, &side(r.base.path()), &CompareOptions::default()).unwrap();
    let pair = &c.pairs[0];
    assert!(
        matches!(&pair.test, TestUsed::None { reason } if reason == "no significance test: published numbers only")
    );
    let mner = metric(&c, "mner.f1");
    assert!((mner.base - 0.8594).abs() < 1e-12 && mner.p_value.is_none() && mner.ci.is_none());
    // Without REC boxes the released file cannot reach the published GMNER F1: Regressed, but
    // against a published row nothing is gated unless a variant is named, so exit code 0.
    assert_eq!(metric(&c, "gmner.f1").verdict, Verdict::Regressed);
    assert!(c.options.gated.is_empty() && !metric(&c, "gmner.f1").gated);
    assert_eq!(exit_code(&c), 0);
    assert!(
        c.notes.iter().any(|n| n.contains("nothing gated")),
        "{:?}",
        c.notes
    );
    // Published numbers are known to ±0.005 points: that is the smallest threshold.
    assert_eq!(c.options.threshold, compare::PUBLISHED_ROUNDING);
    // Naming the designated variant gates it (gmner.f1 by default): exit code 1.
    let named = compare(
        &base,
        &side(r.base.path()),
        &CompareOptions {
            variants: vec!["full".into()],
            ..CompareOptions::default()
        },
    )
    .unwrap();
    assert_eq!(named.options.gated, ["gmner.f1"]);
    assert!(metric(&named, "gmner.f1").gate_failed);
    assert_eq!(exit_code(&named), 1);
    // So does naming a gate.
    let gate = compare(
        &base,
        &side(r.base.path()),
        &CompareOptions {
            gated: vec!["mner.f1".into()],
            ..CompareOptions::default()
        },
    )
    .unwrap();
    assert_eq!(gate.options.gated, ["mner.f1"]);
    assert_eq!(exit_code(&gate), 0, "MNER F1 86.15 vs 85.94 improved");
    let h = compare(
        &Side::published("h-index").unwrap(),
        &side(r.base.path()),
        &CompareOptions::default(),
    )
    .unwrap();
    assert!(
        h.notes.iter().any(|n| n.contains("protocol may differ")),
        "{:?}",
        h.notes
    );
    let s = compare(
        &Side::published("mcr").unwrap(),
        &side(r.base.path()),
        &CompareOptions::default(),
    )
    .unwrap();
    assert_eq!(
        s.pairs[0].metrics.len(),
        1,
        "secondary sources carry GMNER F1 only"
    );
    assert!(s.notes.iter().any(|n| n.contains("secondary source")));
}

#[test]
fn compare_report_writes_markdown_json_and_a_valid_png() {
    let r = runs();
    let c = compare(
        &side(r.base.path()),
        &side(r.degraded.path()),
        &CompareOptions::default(),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let written = report::write_compare_report(out.path(), &c, 1000).unwrap();
    assert_eq!(written.len(), 4);
    let svg = std::fs::read_to_string(out.path().join("compare_deltas.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("gmner.f1"),
        "an SVG with text"
    );
    assert!(
        !svg.contains(&*out.path().to_string_lossy()),
        "no machine path in the figure"
    );
    let img =
        image::load_from_memory(&std::fs::read(out.path().join("compare_deltas.png")).unwrap())
            .unwrap()
            .to_rgb8();
    assert_eq!(img.width(), 1000);
    assert!(img.height() >= 300);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("compare.json")).unwrap())
            .unwrap();
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["pairs"][0]["test"]["kind"], "paired_bootstrap");
    let md = std::fs::read_to_string(out.path().join("compare.md")).unwrap();
    assert!(
        md.contains("| gmner.f1 ") && md.contains("Regressed") && md.contains("compare_deltas.png")
    );
}
