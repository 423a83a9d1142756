//! End-to-end pipeline benches on the smoke suite (tiny ONNX models, synthetic images, the mock
//! LLM on loopback): one full run vs the 8-variant ablation matrix (cold caches, to measure what
//! the sharing between variants saves), and the stage cache cold vs warm.
//! Run: `bash scripts/install-python-deps.sh && cargo bench --bench pipeline`. Figures: benches/README.md.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use riveg_bench::pipeline::backends::DefaultBackends;
use riveg_bench::pipeline::DevicePreference;
use riveg_bench::run::{run_plan, RunPlan, RunRequest, Suite};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn smoke(only: Option<&str>) -> Suite {
    let mut suite = Suite::load(&root().join("suites/smoke.toml")).expect("suites/smoke.toml");
    if let Some(name) = only {
        suite.file.variants.retain(|v| v.name == name);
    }
    suite
}

/// One run of `suite` (results.json, predictions and summary.md written; no figures, which the
/// CLI's `report` renders and which are not pipeline work).
fn run_with(suite: &Suite, out: &Path, cache: Option<&Path>, device: DevicePreference) {
    let req = RunRequest {
        out_dir: Some(out.to_path_buf()),
        device,
        cache_dir: cache.map(Path::to_path_buf),
        no_disk_cache: cache.is_none(),
        ..RunRequest::default()
    };
    let mut plan = RunPlan::for_suite(suite.clone(), req).expect("plan");
    plan.report.figures = false;
    let mut backends = DefaultBackends::new(plan.backend_config());
    run_plan(&plan, &mut backends).expect("suite run");
}

fn run(suite: &Suite, out: &Path, cache: Option<&Path>) {
    run_with(suite, out, cache, DevicePreference::Cpu)
}

fn matrix(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let full = smoke(Some("full"));
    // The 8 RiVEG variants (the smoke suite's MLLM variants and hybrids are not part of the
    // matrix these figures have always measured).
    let mut all = smoke(None);
    all.file.variants.retain(|v| !v.name.starts_with("mllm"));
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.bench_function("smoke_full_cold", |b| {
        b.iter(|| run(&full, &tmp.path().join("full"), None))
    });
    g.bench_function("smoke_matrix8_cold", |b| {
        b.iter(|| run(&all, &tmp.path().join("all"), None))
    });
    g.finish();

    let mut g = c.benchmark_group("stage_cache");
    g.sample_size(10);
    let warm = tmp.path().join("warm-cache");
    run(&all, &tmp.path().join("prime"), Some(&warm));
    g.bench_function("smoke_matrix8_warm_disk_cache", |b| {
        b.iter(|| run(&all, &tmp.path().join("warm"), Some(&warm)))
    });
    g.bench_function("smoke_matrix8_cold_disk_cache", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |cold| run(&all, &tmp.path().join("cold"), Some(cold.path())),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Your own suite (real models, images, endpoint): `RIVEG_BENCH_SUITE=suites/mine.toml
/// cargo bench --features real-models --bench pipeline -- real_suite`. Device from
/// `RIVEG_BENCH_DEVICE` (cpu, cuda, auto; default auto).
#[cfg(feature = "real-models")]
fn real_suite(c: &mut Criterion) {
    let Ok(path) = std::env::var("RIVEG_BENCH_SUITE") else {
        eprintln!("real_suite: set RIVEG_BENCH_SUITE to a suite file; skipped");
        return;
    };
    let suite = Suite::load(Path::new(&path)).expect("RIVEG_BENCH_SUITE");
    let device = match std::env::var("RIVEG_BENCH_DEVICE").as_deref() {
        Ok("cpu") => DevicePreference::Cpu,
        Ok("cuda") => DevicePreference::Cuda,
        _ => DevicePreference::Auto,
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("real_suite");
    g.sample_size(10);
    g.bench_function(suite.file.name.clone(), |b| {
        b.iter(|| run_with(&suite, &tmp.path().join("run"), None, device))
    });
    g.finish();
}

#[cfg(not(feature = "real-models"))]
fn real_suite(_: &mut Criterion) {}

criterion_group!(benches, matrix, real_suite);
criterion_main!(benches);
