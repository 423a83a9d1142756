//! LLM reformulation stage against the in-process mock server (loopback, `Behaviour::Echo`): what
//! the harness itself costs per entity, without a model's latency.
//!
//! - `cold_cache`: every entity is a request (HTTP round trip, JSON, normalisation) plus an
//!   atomic cache write (fsync), with `max_concurrency` = 4.
//! - `warm_cache`: every entity is answered from the on-disk cache (sha256 key, read, parse).
//! - `no_cache`: requests only.
//!
//! Multimodal LLM as a GMNER system (`mllm` group), the harness's side only:
//!
//! - `encode/{jpeg,png}`: resize a 1280x960 photo-like image to `max_image_side` 1024 and encode
//!   it (what every MLLM request costs before it is sent; the base64 data URL included).
//! - `parse_reply/8`: read an 8-entity reply in a code fence with trailing text, then convert,
//!   check and align it ([`parse_reply`] + [`validate`]).
//! - `annotate_no_cache`: one tweet end to end against the mock (encode, HTTP, the mock decoding
//!   the image and finding its bright regions, parse, validate). The mock's own image work is
//!   part of this number: read it as an upper bound of the harness's cost per tweet.
//!
//! Run: `cargo bench --bench llm` (results under `target/criterion/llm_reformulate/` and
//! `target/criterion/mllm/`). Quick check that it runs: `cargo test --bench llm`.
//!
//! Measured 2026-11-29 on the shared 2-core build machine under load (load average 9), so read
//! them as upper bounds. No release build of the whole crate was made there; the `mllm` group ran
//! with `cargo bench --profile dev --bench llm -- mllm` (unoptimised: encode/jpeg 1.76 s,
//! encode/png 2.14 s, parse_reply/8 122 µs, annotate_no_cache 2.30 s, dominated by unoptimised
//! image code). The encode step alone (the same resize + encode + base64 code and image, built
//! in release in a scratch crate with only `image` and `base64`): JPEG q90 87 ms median for a
//! 240 KiB data URL, PNG 55 ms for 1.5 MiB: JPEG keeps requests six times smaller.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use image::{Rgb, RgbImage};
use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::llm::mllm::{parse_reply, validate, EncodedImage};
use riveg_bench::llm::{
    Behaviour, BoxConvention, ImageFormat, IssuePolicy, LlmConfig, LlmReformulator, MllmAnnotator,
    MllmSettings, MockServer, PromptTemplate,
};

const ENTITY_COUNTS: [usize; 2] = [4, 32];

fn tweet_with(entity_count: usize) -> (Tweet, Vec<Entity>) {
    let entities: Vec<Entity> = (0..entity_count)
        .map(|i| {
            Entity::new(
                format!("Entity Number {i}"),
                ["PER", "LOC", "ORG", "OTHER"][i % 4],
            )
        })
        .collect();
    let tokens = "RT Angelina Jolie slams Donald Trump at the UN in New York"
        .split(' ')
        .map(str::to_string)
        .collect();
    let tweet = Tweet {
        id: "bench".to_string(),
        tokens: Some(tokens),
        entities: entities.clone(),
        ..Tweet::default()
    };
    (tweet, entities)
}

fn reformulator(server: &MockServer, cache_dir: Option<&std::path::Path>) -> LlmReformulator {
    let config = LlmConfig {
        max_concurrency: 4,
        max_retries: 0,
        timeout_ms: 10_000,
        ..LlmConfig::for_base_url(server.base_url())
    };
    LlmReformulator::new(config, PromptTemplate::default(), cache_dir)
        .expect("the bench's LLM config is valid")
}

fn bench_reformulate(c: &mut Criterion) {
    let server = MockServer::start(Behaviour::Echo).expect("mock LLM server starts on 127.0.0.1");
    let mut group = c.benchmark_group("llm_reformulate");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    for n in ENTITY_COUNTS {
        let (tweet, entities) = tweet_with(n);
        group.throughput(Throughput::Elements(n as u64));

        group.bench_with_input(BenchmarkId::new("cold_cache", n), &n, |b, _| {
            b.iter_batched_ref(
                || {
                    let dir = tempfile::tempdir().expect("temp dir for the cache");
                    let r = reformulator(&server, Some(dir.path()));
                    (dir, r)
                },
                |(_dir, r)| {
                    black_box(
                        r.reformulate_entities(&tweet, &entities)
                            .expect("mock answers"),
                    )
                },
                BatchSize::PerIteration,
            )
        });

        let warm_dir = tempfile::tempdir().expect("temp dir for the cache");
        let warm = reformulator(&server, Some(warm_dir.path()));
        warm.reformulate_entities(&tweet, &entities)
            .expect("mock answers");
        group.bench_with_input(BenchmarkId::new("warm_cache", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    warm.reformulate_entities(&tweet, &entities)
                        .expect("cache answers"),
                )
            })
        });
        assert_eq!(
            warm.stats().requests_sent,
            n as u64,
            "warm runs sent requests"
        );

        let uncached = reformulator(&server, None);
        group.bench_with_input(BenchmarkId::new("no_cache", n), &n, |b, _| {
            b.iter(|| {
                black_box(
                    uncached
                        .reformulate_entities(&tweet, &entities)
                        .expect("mock answers"),
                )
            })
        });
    }
    group.finish();
}

/// A 1280x960 image with smooth gradients, texture and two bright rectangles: compresses like a
/// photo more than a flat test card would.
fn photo_like() -> RgbImage {
    let mut rng = riveg_bench::util::SplitMix64::new(2024);
    RgbImage::from_fn(1280, 960, |x, y| {
        let bright = (200..600).contains(&x) && (100..500).contains(&y)
            || (800..1000).contains(&x) && (600..760).contains(&y);
        if bright {
            return Rgb([250, 250, 250]);
        }
        let noise = (rng.next_u64() % 24) as u8;
        Rgb([
            (x * 160 / 1280) as u8 + noise,
            (y * 160 / 960) as u8 + noise,
            ((x + y) % 96) as u8 + noise,
        ])
    })
}

fn bench_mllm(c: &mut Criterion) {
    let mut group = c.benchmark_group("mllm");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let image = photo_like();
    for (name, format) in [("jpeg", ImageFormat::Jpeg), ("png", ImageFormat::Png)] {
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                let encoded =
                    EncodedImage::encode(black_box(&image), 1024, format, 90).expect("encodes");
                black_box(encoded.data_url())
            })
        });
    }

    let tokens: Vec<String> = "RT Angelina Jolie and Brad Pitt meet the UN chief in New York with \
                               Barack Obama at Madison Square Garden before flying to Paris France"
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let tweet = Tweet {
        id: "bench".to_string(),
        tokens: Some(tokens),
        ..Tweet::default()
    };
    let entities = [
        ("Angelina Jolie", "PER"),
        ("Brad Pitt", "PER"),
        ("UN", "ORG"),
        ("New York", "LOC"),
        ("Barack Obama", "PER"),
        ("Madison Square Garden", "LOC"),
        ("Paris", "LOC"),
        ("France", "LOC"),
    ];
    let list: Vec<serde_json::Value> = entities
        .iter()
        .enumerate()
        .map(|(i, (e, t))| {
            let x = 10.0 * i as f64;
            serde_json::json!({"entity": e, "type": t, "box": [x, x, x + 50.0, x + 40.0]})
        })
        .collect();
    let reply = format!(
        "Here are the entities:\n```json\n{}\n```\nLet me know if you need more.",
        serde_json::Value::Array(list)
    );
    let sizes = EncodedImage {
        bytes: Vec::new(),
        format: ImageFormat::Jpeg,
        sent_size: (1024, 768),
        original_size: (1280, 960),
    };
    let labels = MllmSettings::default().labels;
    group.throughput(Throughput::Elements(entities.len() as u64));
    group.bench_function(BenchmarkId::new("parse_reply", entities.len()), |b| {
        b.iter(|| {
            let raw = parse_reply(black_box(&reply)).expect("the reply parses");
            black_box(
                validate(
                    &tweet,
                    raw,
                    &sizes,
                    BoxConvention::Pixel,
                    &labels,
                    IssuePolicy::Error,
                )
                .expect("the reply is valid"),
            )
        })
    });

    let server = MockServer::start(Behaviour::Echo).expect("mock LLM server starts on 127.0.0.1");
    let annotator = MllmAnnotator::new(
        LlmConfig {
            max_retries: 0,
            timeout_ms: 10_000,
            ..LlmConfig::for_base_url(server.base_url())
        },
        MllmSettings::default(),
        IssuePolicy::Warn,
        None,
    )
    .expect("the bench's MLLM config is valid");
    group.throughput(Throughput::Elements(1));
    group.bench_function("annotate_no_cache", |b| {
        b.iter(|| {
            black_box(
                annotator
                    .annotate(&tweet, black_box(&image))
                    .expect("mock answers"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_reformulate, bench_mllm);
criterion_main!(benches);
