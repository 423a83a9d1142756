//! Per-stage latency of the ONNX stages on the tiny test models (CPU, one intra-op thread):
//! what the harness itself adds around a model run (tokenising, preprocessing, tensor copies,
//! decoding), since the tiny graphs cost almost nothing. Real-model benches live behind the
//! `real-models` feature (see benches/README.md).
//!
//! Needs ONNX Runtime: `bash scripts/install-python-deps.sh`, then
//! `cargo bench --bench stages` (results under target/criterion/stages/<stage>/).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::geometry::BBox;
use riveg_bench::pipeline::onnx::{OnnxEntailer, OnnxGrounder, OnnxSegmenter, OnnxTagger};
use riveg_bench::pipeline::stages::{Entailer, Grounder, Segmenter, Tagger, TweetInput};
use riveg_bench::runtime::{self, OrtRuntime, SessionConfig};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn ort_runtime() -> &'static OrtRuntime {
    runtime::init(None).unwrap_or_else(|e| panic!("{e}"))
}

fn config() -> SessionConfig {
    SessionConfig {
        intra_threads: Some(1),
        ..SessionConfig::cpu()
    }
}

fn image(name: &str) -> image::RgbImage {
    image::open(models().join("tiny").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .to_rgb8()
}

fn tweet(words: &str) -> Tweet {
    Tweet {
        id: "bench".into(),
        tokens: Some(words.split_whitespace().map(str::to_string).collect()),
        ..Default::default()
    }
}

fn bench_stages(c: &mut Criterion) {
    let rt = ort_runtime();
    let mut group = c.benchmark_group("stages");

    let mut tagger = OnnxTagger::load(rt, &models().join("tiny-tagger.toml"), &config())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tagger_crf = OnnxTagger::load(rt, &models().join("tiny-tagger-crf.toml"), &config())
        .unwrap_or_else(|e| panic!("{e}"));
    let t = tweet("RT @ Angelina Jolie visit Paris today with Taylor Swift and Arsenal FC !");
    group.bench_function("tagger", |b| b.iter(|| tagger.tag(black_box(&t)).unwrap()));
    group.bench_function("tagger_crf", |b| {
        b.iter(|| tagger_crf.tag(black_box(&t)).unwrap())
    });

    let queries: Vec<String> = ["Angelina Jolie", "Paris", "Taylor Swift", "Arsenal FC"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let entities: Vec<Entity> = queries
        .iter()
        .map(|q| Entity::new(q.clone(), "PER"))
        .collect();

    let mut ve = OnnxEntailer::load(rt, &models().join("tiny-entailer.toml"), &config())
        .unwrap_or_else(|e| panic!("{e}"));
    let ve_image = image("bright_rect_64x48.png");
    let input = TweetInput {
        tweet: &t,
        image: Some(&ve_image),
    };
    group.bench_function("entailer_4_queries", |b| {
        b.iter(|| ve.entail(black_box(&input), &entities, &queries).unwrap())
    });

    let mut vg = OnnxGrounder::load(rt, &models().join("tiny-grounder.toml"), &config())
        .unwrap_or_else(|e| panic!("{e}"));
    group.bench_function("grounder_4_queries", |b| {
        b.iter(|| vg.ground(black_box(&input), &entities, &queries).unwrap())
    });

    let mut ofa = OnnxGrounder::load(rt, &models().join("tiny-ofa.toml"), &config())
        .unwrap_or_else(|e| panic!("{e}"));
    group.bench_function("grounder_ofa_4_queries", |b| {
        b.iter(|| ofa.ground(black_box(&input), &entities, &queries).unwrap())
    });

    let mut sam = OnnxSegmenter::load(rt, &models().join("tiny-sam.toml"), &config())
        .unwrap_or_else(|e| panic!("{e}"));
    let sam_image = image("sam_64x48.png");
    let sam_input = TweetInput {
        tweet: &t,
        image: Some(&sam_image),
    };
    let boxes = [
        BBox::new(0.0, 0.0, 64.0, 48.0),
        BBox::new(8.0, 16.0, 40.0, 48.0),
        BBox::new(24.0, 0.0, 64.0, 30.0),
    ];
    group.bench_function("segmenter_3_boxes", |b| {
        b.iter(|| sam.segment(black_box(&sam_input), &boxes).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_stages);
criterion_main!(benches);
