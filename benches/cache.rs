//! The stage cache on disk: append-only segment files (what `pipeline::cache` writes) against one
//! atomically written file per entry (what it wrote before; reproduced here with the same
//! envelope bytes and `io_util::write_atomic_unsynced`, the peer in the same run). 2,000 entries
//! shaped like a tagger's output (a few entities per tweet). Writes on a cold folder; reads in a
//! fresh `StageCache` (a resumed run: index the segments, then read every entry).
//! Run: `cargo bench --bench cache`. Figures: benches/README.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use riveg_bench::pipeline::cache::{cache_key, entry_path, StageCache};
use riveg_bench::stage::Stage;
use serde_json::json;

const N: usize = 2_000;

fn value(i: usize) -> serde_json::Value {
    json!([
        {"text": format!("Angelina Jolie {i}"), "type": "PER", "start": 3, "end": 5,
         "expansion": "Angelina Jolie(PER)-an actress", "groundable": true},
        {"text": "Paris", "type": "LOC", "start": 9, "end": 10, "groundable": false},
    ])
}

fn keys() -> Vec<String> {
    (0..N)
        .map(|i| cache_key(&["tagger", "fp", &i.to_string()]))
        .collect()
}

/// The envelope bytes the cache writes, for the per-file peer.
fn envelope(key: &str, v: &serde_json::Value) -> Vec<u8> {
    let sha = riveg_bench::pipeline::cache::sha256_hex(&serde_json::to_vec(v).unwrap());
    serde_json::to_vec(&json!({"key": key, "sha256": sha, "written": 0, "value": v})).unwrap()
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let values: Vec<serde_json::Value> = (0..N).map(value).collect();
    let mut g = c.benchmark_group("stage_cache_disk");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("put/segments", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let cache = StageCache::new(Some(dir.path().to_path_buf()));
                for (k, v) in keys.iter().zip(&values) {
                    cache.put(Stage::Tagger, k, v).unwrap();
                }
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("put/file_per_entry", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                for (k, v) in keys.iter().zip(&values) {
                    let p = entry_path(dir.path(), Stage::Tagger, k);
                    riveg_bench::io_util::write_atomic_unsynced(&p, &envelope(k, v)).unwrap();
                }
                dir
            },
            BatchSize::PerIteration,
        )
    });

    let seg_dir = tempfile::tempdir().unwrap();
    let cache = StageCache::new(Some(seg_dir.path().to_path_buf()));
    for (k, v) in keys.iter().zip(&values) {
        cache.put(Stage::Tagger, k, v).unwrap();
    }
    drop(cache);
    let file_dir = tempfile::tempdir().unwrap();
    for (k, v) in keys.iter().zip(&values) {
        let p = entry_path(file_dir.path(), Stage::Tagger, k);
        riveg_bench::io_util::write_atomic_unsynced(&p, &envelope(k, v)).unwrap();
    }
    // Both read through StageCache::get (legacy entry files are still read), in a fresh cache.
    for (name, dir) in [
        ("get_fresh/segments", seg_dir.path()),
        ("get_fresh/file_per_entry", file_dir.path()),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let cache = StageCache::new(Some(dir.to_path_buf()));
                for k in &keys {
                    assert!(cache.get::<serde_json::Value>(Stage::Tagger, k).is_some());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
