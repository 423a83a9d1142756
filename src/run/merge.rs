//! `merge`: combines the run directories of `run --shard K/N` (K = 1..N) into one run whose
//! predictions, per-tweet counts and metrics equal an unsharded run's (latencies are pooled,
//! replay fall-backs and skipped items summed). Reads and writes through [`RunDir`] and scores
//! through [`super::score`], like `run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::RunError;
use super::score::{describe, per_tweet_of, score_variant, write_outcomes};
use super::shard::ShardSpec;
use super::suite::Suite;
use super::RunOutput;
use crate::bench::summarize;
use crate::data::model::Dataset;
use crate::report::ReportOptions;
use crate::results::{RunDir, RunResults};

fn merge_err(what: String, hint: &str) -> RunError {
    RunError::Merge {
        what,
        hint: hint.into(),
    }
}

struct Shard {
    spec: ShardSpec,
    dir: RunDir,
    results: RunResults,
}

/// Merges shard directories into `out_dir` and writes its report; returns the merged run.
pub fn merge_shards(shard_dirs: &[PathBuf], out_dir: &Path) -> Result<RunOutput, RunError> {
    if shard_dirs.is_empty() {
        return Err(merge_err(
            "no shard directories given".into(),
            "pass every reports/<run-id>-shardKofN folder",
        ));
    }
    let mut shards = Vec::new();
    for d in shard_dirs {
        let dir = RunDir::open(d);
        let results = dir.load_results().map_err(|e| {
            merge_err(
                e.to_string(),
                "each argument must be a shard's run directory",
            )
        })?;
        let spec: ShardSpec = results
            .meta
            .shard
            .as_deref()
            .ok_or_else(|| {
                merge_err(
                    format!("{} is not a shard (no meta.shard)", d.display()),
                    "merge takes the outputs of `run --shard K/N`",
                )
            })?
            .parse()
            .map_err(|e: String| merge_err(e, "results.json meta.shard must be K/N"))?;
        shards.push(Shard { spec, dir, results });
    }
    shards.sort_by_key(|s| s.spec.k);
    let n = shards[0].spec.n;
    let ks: Vec<usize> = shards.iter().map(|s| s.spec.k).collect();
    if shards.iter().any(|s| s.spec.n != n) || ks != (1..=n).collect::<Vec<_>>() {
        let missing: Vec<String> = (1..=n)
            .filter(|k| !ks.contains(k))
            .map(|k| format!("{k}/{n}"))
            .collect();
        return Err(merge_err(
            format!(
                "shards {:?} do not make up 1..{n} (missing: {})",
                ks,
                missing.join(", ")
            ),
            "pass exactly one directory per shard K/N, all with the same N",
        ));
    }
    let first = &shards[0];
    let plan_text = first.dir.load_plan()?;
    let plan = Suite::parse(
        &plan_text,
        first.dir.plan_path().display().to_string(),
        PathBuf::new(),
    )?;
    let datasets = plan.datasets();
    // Every (dataset, variant) entry the plan ran, in the run's order.
    let entries: Vec<(&super::suite::DataSection, &crate::pipeline::VariantSpec)> = datasets
        .iter()
        .flat_map(|d| {
            plan.file
                .variants
                .iter()
                .filter(|v| d.applies_to(&v.name))
                .map(move |v| (*d, v))
        })
        .collect();
    let want: Vec<String> = entries
        .iter()
        .map(|(d, v)| RunDir::entry_key(d.name.as_deref(), &v.name))
        .collect();
    for s in &shards {
        let names: Vec<String> = s.results.variants.iter().map(|v| v.key()).collect();
        if s.results.suite != first.results.suite || names != want {
            return Err(merge_err(
                format!(
                    "{} ran suite {:?} with variants {:?}, shard 1 planned {:?} with {:?}",
                    s.dir.path().display(),
                    s.results.suite,
                    names,
                    first.results.suite,
                    want
                ),
                "merge shards of one plan only (same suite and --variant choices, all variants finished)",
            ));
        }
    }
    let eval_opts = super::plan::eval_options(&plan.file.settings);

    let out = RunDir::new(out_dir);
    out.create()?;
    out.write_plan(&plan_text)?;
    let mut golds: BTreeMap<Option<&str>, Dataset> = BTreeMap::new();
    for d in &datasets {
        let mut gold = Dataset::default();
        for s in &shards {
            let part = s.dir.load_gold(d.name.as_deref())?;
            gold.meta = gold.meta.or(part.meta);
            gold.tweets.extend(part.tweets);
        }
        out.write_gold(d.name.as_deref(), &gold)?;
        golds.insert(d.name.as_deref(), gold);
    }

    let mut merged = RunResults {
        suite: first.results.suite.clone(),
        run_id: first
            .results
            .run_id
            .split("-shard")
            .next()
            .unwrap_or(&first.results.run_id)
            .to_string()
            + "-merged",
        meta: first.results.meta.clone(),
        variants: Vec::new(),
    };
    merged.meta.shard = None;
    merged.meta.started_unix = shards
        .iter()
        .map(|s| s.results.meta.started_unix)
        .min()
        .unwrap_or(0);

    let mut per_tweet_all = BTreeMap::new();
    for (dataset, spec) in &entries {
        let key = RunDir::entry_key(dataset.name.as_deref(), &spec.name);
        let gold = &golds[&dataset.name.as_deref()];
        let mut pred = Dataset::default();
        let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut skipped_items = Vec::new();
        let mut hashes = BTreeMap::new();
        let mut replay_missing = 0;
        let mut cached: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for s in &shards {
            let v = s.results.variant(&key).ok_or_else(|| {
                merge_err(
                    format!("{} lacks variant {key}", s.dir.path().display()),
                    "re-run that shard",
                )
            })?;
            let part = s.dir.load_predictions(&v.predictions)?;
            pred.meta = pred.meta.or(part.meta);
            pred.tweets.extend(part.tweets);
            for (k, lat) in s.dir.load_latency(&key)?.unwrap_or_default() {
                samples.entry(k).or_default().extend(lat);
            }
            for (k, t) in &v.timings {
                let c = cached.entry(k.clone()).or_default();
                c.0 += t.cached;
                c.1 += t.warmup_excluded;
            }
            skipped_items.extend(v.skipped_items.iter().cloned());
            hashes.extend(v.model_hashes.clone());
            replay_missing += v.replay_missing;
        }
        let mut v = score_variant(spec, Some(dataset), gold, &pred, &eval_opts);
        v.description = describe(spec, replay_missing);
        v.replay_missing = replay_missing;
        v.timings = cached
            .keys()
            .map(|k| {
                let mut t = summarize(samples.get(k).map(Vec::as_slice).unwrap_or(&[]));
                let (c, w) = cached[k];
                t.cached = c;
                t.warmup_excluded = w;
                (k.clone(), t)
            })
            .collect();
        v.skipped = skipped_items.len();
        v.skipped_items = skipped_items;
        v.model_hashes = hashes;
        let per_tweet = per_tweet_of(&v);
        out.write_predictions(&key, &pred)?;
        out.write_per_tweet(&key, &per_tweet)?;
        out.write_latency(&key, &samples)?;
        write_outcomes(&out, &key, gold, &pred, &eval_opts)?;
        per_tweet_all.insert(key, per_tweet);
        merged.variants.push(v);
    }
    out.write_results(&merged)?;
    out.write_files(crate::report::render_run_report(
        &merged,
        &ReportOptions::default(),
    )?)?;
    Ok(RunOutput {
        results: merged,
        run_dir: out,
        per_tweet: per_tweet_all,
        warnings: Vec::new(),
    })
}
