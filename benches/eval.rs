//! Readers and scoring on the real Twitter-GMNER test set and RiVEG release files, plus the whole
//! `eval` process (spawned binary) for comparison with the published Python script.
//! Run: `cargo bench --bench eval` (needs ../shared beside the checkout). Figures: benches/README.md.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use riveg_bench::data::readers::{conll, gmner, riveg};
use riveg_bench::data::tags::Scheme;
use riveg_bench::metrics::matching::{align, match_tweet, Grounding, TaskSpec, TypeKey};
use riveg_bench::metrics::{evaluate, EvalOptions, Prf, Protocol};

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets")
        .join(rel)
}

fn readers(c: &mut Criterion) {
    let mut g = c.benchmark_group("readers");
    g.sample_size(20);
    let v2 = shared("twitter-gmner/v2.0");
    g.throughput(Throughput::Elements(1500));
    g.bench_function("gmner_v2_test_txt_xml", |b| {
        b.iter(|| gmner::read_gmner(black_box(&v2), "test").unwrap())
    });
    let v1 = shared("twitter-gmner/v1/txt/test.txt");
    g.bench_function("conll_test", |b| {
        b.iter(|| conll::read_conll(black_box(&v1), Scheme::Auto).unwrap())
    });
    let labels = shared("riveg-release/GMNER_finall_label.txt");
    g.throughput(Throughput::Elements(2542));
    g.bench_function("riveg_labels", |b| {
        b.iter(|| riveg::read_riveg_labels(black_box(&labels)).unwrap())
    });
    let ve = shared("riveg-release/OFAVE_to_OFAREC_augment.txt");
    g.throughput(Throughput::Elements(2535));
    g.bench_function("riveg_ofa", |b| {
        b.iter(|| riveg::read_riveg_ofa(black_box(&ve), None).unwrap())
    });
    g.finish();
}

fn scoring(c: &mut Criterion) {
    let mut g = c.benchmark_group("scoring");
    let gold = riveg::read_riveg_labels(&shared("riveg-release/GMNER_finall_label.txt"))
        .unwrap()
        .dataset;
    let pred = riveg::read_riveg_ofa(&shared("riveg-release/OFAVE_to_OFAREC_augment.txt"), None)
        .unwrap()
        .dataset;
    g.throughput(Throughput::Elements(2535));
    // The scoring core of one task: align by tweet, greedy matching with the IoU test, counts.
    g.bench_function("gmner_core_riveg_release", |b| {
        b.iter(|| {
            let spec = TaskSpec {
                types: TypeKey::Coarse,
                grounding: Grounding::Box { iou_threshold: 0.5 },
            };
            let tweets = align(black_box(&gold), black_box(&pred));
            let correct: usize = tweets
                .iter()
                .map(|t| {
                    match_tweet(Protocol::Riveg, spec, t)
                        .iter()
                        .filter(|m| m.is_some())
                        .count()
                })
                .sum();
            Prf::from_counts(correct, pred.entity_count(), gold.entity_count())
        })
    });
    let riveg_opts = EvalOptions::default();
    g.bench_function("riveg_protocol_all_tasks_release", |b| {
        b.iter(|| evaluate(black_box(&gold), black_box(&pred), &riveg_opts).unwrap())
    });
    let v2 = gmner::read_gmner(&shared("twitter-gmner/v2.0"), "test")
        .unwrap()
        .dataset;
    let v1 = conll::read_conll(&shared("twitter-gmner/v1/txt/test.txt"), Scheme::Auto)
        .unwrap()
        .dataset;
    let span_opts = EvalOptions {
        protocol: Protocol::Span,
        ..EvalOptions::default()
    };
    g.throughput(Throughput::Elements(2543));
    g.bench_function("span_protocol_all_tasks_gmner_v2", |b| {
        b.iter(|| evaluate(black_box(&v2), black_box(&v1), &span_opts).unwrap())
    });
    g.bench_function("riveg_protocol_all_tasks_gmner_v2", |b| {
        b.iter(|| evaluate(black_box(&v2), black_box(&v1), &riveg_opts).unwrap())
    });
    g.finish();
}

/// The whole `riveg-bench eval` process on the released files (import done beforehand), the
/// figure to compare with the published Python script's ~3.4 s.
fn eval_process(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("riveg-bench-eval-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_riveg-bench");
    let gold = dir.join("gold.jsonl");
    let pred = dir.join("pred.jsonl");
    let ok = |args: &[&str]| {
        let st = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    };
    ok(&[
        "import",
        "riveg-labels",
        shared("riveg-release/GMNER_finall_label.txt")
            .to_str()
            .unwrap(),
        "-o",
        gold.to_str().unwrap(),
    ]);
    ok(&[
        "import",
        "riveg-ofa",
        shared("riveg-release/OFAVE_to_OFAREC_augment.txt")
            .to_str()
            .unwrap(),
        "-o",
        pred.to_str().unwrap(),
    ]);
    let mut g = c.benchmark_group("process");
    g.sample_size(20);
    g.bench_function("eval_release_json", |b| {
        b.iter(|| {
            ok(&[
                "eval",
                "--gold",
                gold.to_str().unwrap(),
                "--pred",
                pred.to_str().unwrap(),
                "--format",
                "json",
            ])
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, readers, scoring, eval_process);
criterion_main!(benches);
