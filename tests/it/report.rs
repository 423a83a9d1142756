//! Run reports on results built from the real RiVEG release files: the Markdown summary (insta
//! snapshot, volatile fields redacted), the PNG figures (valid images of the expected size), and
//! byte-identical output for identical inputs. Also holds the results builders that compare.rs uses.

use std::collections::BTreeMap;
use std::path::Path;

use riveg_bench::bench::{criterion_estimates::CriterionEstimate, LatencyRecorder};
use riveg_bench::data::readers::riveg;
use riveg_bench::data::Dataset;
use riveg_bench::metrics::{evaluate, EvalOptions, EvalReport};
use riveg_bench::pipeline::stages::{Stage, StageKind};
use riveg_bench::report::{self, BaselineSelection, ReportOptions};
use riveg_bench::results::{
    RunMeta, RunResults, SkippedItem, VariantMetrics, VariantPerTweet, VariantResult,
};

use crate::common::shared;

pub fn release_gold() -> Dataset {
    riveg::read_riveg_labels(&shared("riveg-release/GMNER_finall_label.txt"))
        .unwrap()
        .dataset
}

pub fn release_pred(file: &str) -> Dataset {
    riveg::read_riveg_ofa(&shared(&format!("riveg-release/{file}")), None)
        .unwrap()
        .dataset
}

/// Drops every `every`-th prediction that is a GMNER match candidate (same tweet, text, type and
/// groundability as a gold entity): a controlled regression of real predictions.
pub fn drop_correct(gold: &Dataset, pred: &Dataset, every: usize) -> (Dataset, usize) {
    let by_id: BTreeMap<&str, &riveg_bench::data::model::Tweet> =
        gold.tweets.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut out = pred.clone();
    let mut seen = 0usize;
    let mut dropped = 0usize;
    for t in &mut out.tweets {
        let Some(g) = by_id.get(t.id.as_str()) else {
            continue;
        };
        t.entities.retain(|p| {
            let correct = g.entities.iter().any(|e| {
                e.text == p.text
                    && e.entity_type == p.entity_type
                    && e.groundable == p.groundable
                    && !p.groundable
            });
            if correct {
                seen += 1;
                if seen % every == 0 {
                    dropped += 1;
                    return false;
                }
            }
            true
        });
    }
    (out, dropped)
}

/// Deterministic synthetic latencies (ms) for a stage: a skewed spread around `base_ms`.
fn timing(base_ms: f64, n: usize, warmup: usize, cached: usize) -> riveg_bench::bench::StageTiming {
    let mut r = LatencyRecorder::new(warmup);
    for i in 0..n + warmup {
        let x = ((i * 7919) % 101) as f64 / 100.0;
        r.record(base_ms * (0.6 + x * x * 2.0));
    }
    for _ in 0..cached {
        r.record_cached();
    }
    r.summary()
}

pub fn variant(
    name: &str,
    description: &str,
    report: &EvalReport,
    with_samples: bool,
) -> VariantResult {
    let mut timings = BTreeMap::new();
    timings.insert("tagger".to_string(), timing(4.0, 200, 5, 0));
    timings.insert("reformulator".to_string(), timing(850.0, 60, 2, 140));
    timings.insert("entailer".to_string(), timing(35.0, 200, 5, 0));
    timings.insert("pipeline".to_string(), timing(300.0, 200, 5, 0));
    if !with_samples {
        for t in timings.values_mut() {
            t.samples_ms.clear();
        }
    }
    let mut stages = BTreeMap::new();
    stages.insert(Stage::Tagger, StageKind::Replay);
    stages.insert(Stage::Reformulator, StageKind::Replay);
    stages.insert(Stage::Entailer, StageKind::Replay);
    stages.insert(Stage::Grounder, StageKind::Off);
    stages.insert(Stage::Segmenter, StageKind::Off);
    let mut not_applicable = BTreeMap::new();
    not_applicable.insert(
        "span".to_string(),
        "span protocol needs token offsets (RiVEG release files hold entity strings only)"
            .to_string(),
    );
    VariantResult {
        name: name.to_string(),
        description: description.to_string(),
        stages,
        metrics: VariantMetrics {
            riveg: Some(report.clone()),
            span: None,
        },
        not_applicable,
        timings,
        skipped: 0,
        skipped_items: Vec::new(),
        model_hashes: BTreeMap::new(),
        replay_missing: 0,
        predictions: format!("predictions/{name}.jsonl"),
        tweets: report.per_tweet.ids.len(),
        dataset: None,
        not_scored: BTreeMap::new(),
    }
}

pub fn meta() -> RunMeta {
    RunMeta {
        tool_version: "0.1.0".into(),
        git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        build_features: Vec::new(),
        started_unix: 1_795_000_000,
        hostname: Some("build-host-17".into()),
        os: "linux x86_64".into(),
        cpu: Some("Test CPU".into()),
        cores: 2,
        execution_provider: "none".into(),
        shard: None,
        gold: vec!["riveg-release/GMNER_finall_label.txt".into()],
        llm: None,
        ..RunMeta::default()
    }
}

pub fn eval(gold: &Dataset, pred: &Dataset) -> EvalReport {
    evaluate(gold, pred, &EvalOptions::default()).unwrap()
}

/// Writes a run directory (results.json + per_tweet/<variant>.json) like `riveg-bench run` does.
pub fn write_run(dir: &Path, results: &RunResults, reports: &[(&str, &EvalReport)]) {
    std::fs::create_dir_all(dir.join("per_tweet")).unwrap();
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(results).unwrap(),
    )
    .unwrap();
    for (name, r) in reports {
        let pt = VariantPerTweet {
            riveg: Some(r.per_tweet.clone()),
            span: None,
        };
        std::fs::write(
            dir.join("per_tweet").join(format!("{name}.json")),
            serde_json::to_string(&pt).unwrap(),
        )
        .unwrap();
    }
}

/// A two-variant run from the released files: the augmented (RiVEG-RoBERTa†) and plain predictions.
fn release_run(with_samples: bool) -> RunResults {
    let gold = release_gold();
    let aug = eval(&gold, &release_pred("OFAVE_to_OFAREC_augment.txt"));
    let plain = eval(&gold, &release_pred("OFAVE_to_OFAREC.txt"));
    let mut v2 = variant(
        "plain-text",
        "released predictions, MNER without LLM augmentation",
        &plain,
        with_samples,
    );
    v2.skipped = 1;
    v2.skipped_items.push(SkippedItem {
        tweet_id: "O_1234".into(),
        stage: Stage::Entailer,
        error: "image O_1234.jpg is missing | unreadable".into(),
    });
    RunResults {
        suite: "release-replay".into(),
        run_id: "2026-11-18T11-06-40-release".into(),
        meta: meta(),
        variants: vec![
            variant(
                "augmented",
                "released predictions (RiVEG-RoBERTa†, OFAVE_to_OFAREC_augment.txt)",
                &aug,
                with_samples,
            ),
            v2,
        ],
    }
}

/// Replaces volatile values (run metadata that depends on the machine, timing numbers) with
/// placeholders and normalises the padding of the tables they sit in.
fn redact(md: &str) -> String {
    let mut out = Vec::new();
    let mut in_timings = false;
    for line in md.lines() {
        if line.starts_with("## ") {
            in_timings = line == "## Stage timings";
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let volatile_meta = ["started", "tool version", "git commit", "host", "cpu", "os"];
        if line.starts_with('|') && volatile_meta.contains(&cells[0]) {
            out.push(format!("| {} | [redacted] |", cells[0]));
        } else if in_timings && line.starts_with('|') {
            let cells: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if c.chars().all(|ch| ch == '-' || ch == ':') {
                        "---".to_string()
                    } else if i >= 4 && c.parse::<f64>().is_ok() {
                        "[t]".to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            out.push(format!("| {} |", cells.join(" | ")));
        } else {
            out.push(line.to_string());
        }
    }
    out.join("\n")
}

fn assert_png(bytes: &[u8], size: Option<(u32, u32)>) -> image::RgbImage {
    let img = image::load_from_memory(bytes)
        .expect("a valid PNG")
        .to_rgb8();
    if let Some((w, h)) = size {
        assert_eq!(img.dimensions(), (w, h));
    }
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(
        ink > 2000,
        "the figure is nearly blank ({ink} non-white pixels)"
    );
    img
}

#[test]
fn summary_markdown_snapshot() {
    let results = release_run(true);
    let files = report::render_run_report(
        &results,
        &ReportOptions {
            figures: false,
            ..ReportOptions::default()
        },
    )
    .unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "main_results.csv",
            "main_results.tex",
            "stage_timings.csv",
            "stage_timings.tex",
            "summary.md"
        ]
    );
    let md = String::from_utf8(files[4].1.clone()).unwrap();
    assert!(
        md.contains("| RiVEG-RoBERTa† "),
        "published rows beside the run"
    );
    assert!(md.contains("FMNERG: not scored: no fine types in the data"));
    assert!(
        md.contains("missing \\| unreadable"),
        "pipes in cells are escaped"
    );
    insta::assert_snapshot!("summary_release_replay", redact(&md));
}

#[test]
fn run_report_writes_valid_figures_and_is_byte_identical() {
    let results = release_run(true);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let opts = ReportOptions {
        baselines: BaselineSelection::Only(vec!["h-index".into(), "riveg-roberta-dagger".into()]),
        ..ReportOptions::default()
    };
    let written = report::write_run_report(a.path(), &results, &opts).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "ablation.png",
            "ablation.svg",
            "error_sources.png",
            "error_sources.svg",
            "latency.png",
            "latency.svg",
            "throughput.png",
            "throughput.svg",
            "main_results.csv",
            "main_results.tex",
            "stage_timings.csv",
            "stage_timings.tex",
            "summary.md"
        ]
    );
    for p in &written {
        if p.extension().is_some_and(|e| e == "png") {
            assert_png(&std::fs::read(p).unwrap(), Some((1200, 900)));
        }
        if p.extension().is_some_and(|e| e == "svg") {
            let svg = std::fs::read_to_string(p).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("width=\"1200\""),
                "{p:?}"
            );
        }
    }
    // The tables as CSV (full precision) and LaTeX booktabs (two decimals), real values of the
    // released RiVEG-RoBERTa† predictions scored with the RiVEG protocol.
    let csv = std::fs::read_to_string(a.path().join("main_results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "method,source,protocol,MNER P,MNER R,MNER F1,EEG P,EEG R,EEG F1,GMNER P,GMNER R,GMNER F1"
    );
    let augmented: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&augmented[..3], ["augmented", "this run", "riveg"]);
    let gmner_f1: f64 = augmented[11].parse().unwrap();
    assert!((gmner_f1 - 42.39).abs() < 0.005, "{gmner_f1}");
    assert!(csv.contains("RiVEG-RoBERTa†,published (Li et al. 2024),riveg,85.71,86.16,85.94"));
    let tex = std::fs::read_to_string(a.path().join("main_results.tex")).unwrap();
    assert!(
        tex.contains("\\toprule")
            && tex.contains("\\midrule")
            && tex.ends_with("\\bottomrule\n\\end{tabular}\n")
    );
    assert!(tex.contains("augmented & this run & riveg & 86.27 & 86.03 & 86.15 & 46.07 & 45.95 & 46.01 & 42.45 & 42.33 & 42.39 \\\\"), "{tex}");
    assert!(
        tex.contains("RiVEG-RoBERTa\\dag{} & published (Li et al. 2024)"),
        "{tex}"
    );
    report::write_run_report(b.path(), &results, &opts).unwrap();
    for n in &names {
        assert_eq!(
            std::fs::read(a.path().join(n)).unwrap(),
            std::fs::read(b.path().join(n)).unwrap(),
            "{n} differs between identical runs"
        );
    }
    let md = std::fs::read_to_string(a.path().join("summary.md")).unwrap();
    assert!(md.contains("![F1 per variant and task](ablation.png)"));
    assert!(!md.contains("BERT-None"), "only the selected baselines");
}

#[test]
fn latency_figure_works_from_summaries_only() {
    // results.json does not carry samples: the latency figure falls back to p50/p95/p99/max.
    let results = release_run(false);
    let png = report::figures::latency_chart(&results, (900, 600)).unwrap();
    assert_png(&png, Some((900, 600)));
}

#[test]
fn criterion_estimates_add_a_table_and_a_figure() {
    let results = release_run(false);
    let crit = tempfile::tempdir().unwrap();
    // eval/riveg_protocol was sampled linearly (criterion reports the slope, 2.0 ms); the other
    // one flat (criterion reports the mean).
    for (id, mean, slope, elements) in [
        ("eval/riveg_protocol", 2.5e6, Some(2.0e6), Some(1500u64)),
        ("render/summary", 8.0e5, None, None),
    ] {
        let d = crit.path().join(id).join("new");
        std::fs::create_dir_all(&d).unwrap();
        let ci = |v: f64| serde_json::json!({"confidence_level": 0.95, "lower_bound": v * 0.95, "upper_bound": v * 1.05});
        let est = serde_json::json!({
            "mean": {"point_estimate": mean, "confidence_interval": ci(mean)},
            "median": {"point_estimate": mean * 0.98},
            "std_dev": {"point_estimate": mean * 0.05},
            "slope": slope.map(|s| serde_json::json!({"point_estimate": s, "confidence_interval": ci(s)})),
        });
        std::fs::write(d.join("estimates.json"), est.to_string()).unwrap();
        let bench = match elements {
            Some(n) => serde_json::json!({"throughput": {"Elements": n}}),
            None => serde_json::json!({"throughput": null}),
        };
        std::fs::write(d.join("benchmark.json"), bench.to_string()).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let opts = ReportOptions {
        criterion_dir: Some(crit.path().to_path_buf()),
        baselines: BaselineSelection::None,
        ..ReportOptions::default()
    };
    let written = report::write_run_report(out.path(), &results, &opts).unwrap();
    assert!(written.iter().any(|p| p.ends_with("criterion.png")));
    let img = assert_png(
        &std::fs::read(out.path().join("criterion.png")).unwrap(),
        None,
    );
    assert_eq!(img.width(), 1200);
    let md = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(md.contains("| eval/riveg_protocol "), "{md}");
    // criterion's time is the slope (2.0 ms, CI 1.9-2.1), not the mean (2.5 ms); elements/s too.
    assert!(
        md.contains("| eval/riveg_protocol |  2.0000 | [1.9000, 2.1000] | slope    |  2.5000 "),
        "{md}"
    );
    assert!(
        md.contains("750000.0"),
        "1500 elements in 2.0 ms = 750000/s: {md}"
    );
    assert!(
        md.contains("| render/summary      |  0.8000 | [0.7600, 0.8400] | mean     |  0.8000 "),
        "{md}"
    );
    let direct = report::figures::criterion_chart(
        &[CriterionEstimate {
            id: "x".into(),
            mean_ns: 10.0,
            median_ns: 10.0,
            std_dev_ns: 1.0,
            slope_ns: None,
            typical_ci_ns: None,
            elements: None,
        }],
        800,
    )
    .unwrap();
    assert_png(&direct, None);
}

#[test]
fn unknown_baseline_slug_is_an_error_with_the_list() {
    let results = release_run(false);
    let e = report::render_run_report(
        &results,
        &ReportOptions {
            baselines: BaselineSelection::Only(vec!["nope".into()]),
            ..ReportOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("riveg-roberta-dagger") && e.contains("hint"),
        "{e}"
    );
}

#[test]
fn span_protocol_not_applicable_is_said() {
    let results = release_run(false);
    let md = report::render_summary(&results, &Default::default());
    assert!(md.contains("not scored: augmented (span protocol): span protocol needs token offsets"));
    assert!(md.contains("SMNER: not scored: no masks in the data"));
}

#[test]
fn figures_survive_empty_runs_and_very_long_names() {
    use riveg_bench::report::figures::{run_figures, ImageFormat};
    let mut results = release_run(true);
    let empty = RunResults {
        variants: Vec::new(),
        ..results.clone()
    };
    let (files, captions) = run_figures(
        &empty,
        &[],
        (1200, 900),
        &[ImageFormat::Png, ImageFormat::Svg],
    )
    .unwrap();
    assert_eq!(files.len(), 8);
    assert_eq!(captions.len(), 4);
    // A name with no separator, longer than the figure is wide: wrapped between characters.
    results.variants[0].name = "x".repeat(150);
    let (files, _) = run_figures(&results, &[], (1200, 900), &[ImageFormat::Png]).unwrap();
    for (name, bytes) in &files {
        let img = assert_png(bytes, Some((1200, 900)));
        assert!(img.width() == 1200, "{name}");
    }
}

#[test]
fn main_table_prints_in_every_format() {
    use riveg_bench::report::export::TableFormat;
    let results = release_run(false);
    let sel = BaselineSelection::Only(vec!["riveg-roberta-dagger".into()]);
    let latex = report::render_main_table(&results, &sel, TableFormat::Latex).unwrap();
    // The same numbers as the Markdown summary (snapshot `summary_release_replay`) of the
    // released plain-text predictions.
    assert!(
        latex.contains("\\begin{tabular}{lllrrrrrrrrr}\n\\toprule\n"),
        "{latex}"
    );
    assert!(latex.contains(
        "plain-text & this run & riveg & 83.53 & 85.56 & 84.53 & 41.74 & 42.76 & 42.25 & 39.02 & 39.97 & 39.49 \\\\"
    ), "{latex}");
    let md = report::render_main_table(&results, &sel, TableFormat::Markdown).unwrap();
    assert!(md.contains("| RiVEG-RoBERTa† "), "{md}");
    let csv = report::render_main_table(&results, &sel, TableFormat::Csv).unwrap();
    assert_eq!(
        csv.lines().count(),
        4,
        "header, two variants, one published row: {csv}"
    );
}
