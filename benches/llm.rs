//! LLM reformulation stage against the in-process mock server (loopback, `Behaviour::Echo`): what
//! the harness itself costs per entity, without a model's latency.
//!
//! - `cold_cache`: every entity is a request (HTTP round trip, JSON, normalisation) plus an
//!   atomic cache write (fsync), with `max_concurrency` = 4.
//! - `warm_cache`: every entity is answered from the on-disk cache (sha256 key, read, parse).
//! - `no_cache`: requests only.
//!
//! Run: `cargo bench --bench llm` (results under `target/criterion/llm_reformulate/`).
//! Quick check that it runs: `cargo test --bench llm`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::llm::{Behaviour, LlmConfig, LlmReformulator, MockServer, PromptTemplate};

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

criterion_group!(benches, bench_reformulate);
criterion_main!(benches);
