//! `merge`: combines the run directories of `run --shard K/N` (K = 1..N) into one run whose
//! predictions, per-tweet counts and metrics equal an unsharded run's (latencies are pooled).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bench::summarize;
use crate::data::jsonl;
use crate::data::model::Dataset;
use crate::results::RunResults;

use super::runner::{
    per_tweet_of, score_variant, settings_eval, write_json, write_results, RunError,
};
use super::shard::ShardSpec;
use super::suite::Suite;

fn merge_err(what: String, hint: &str) -> RunError {
    RunError::Setup {
        variant: "(merge)".into(),
        what,
        hint: hint.into(),
    }
}

/// Merges shard directories into `out_dir`; returns the merged results.
pub fn merge_shards(shard_dirs: &[PathBuf], out_dir: &Path) -> Result<RunResults, RunError> {
    if shard_dirs.is_empty() {
        return Err(merge_err(
            "no shard directories given".into(),
            "pass every reports/<run-id>-shardKofN folder",
        ));
    }
    let mut shards = Vec::new();
    for d in shard_dirs {
        let r = RunResults::load(d).map_err(|e| {
            merge_err(
                e.to_string(),
                "each argument must be a shard's run directory",
            )
        })?;
        let spec: ShardSpec = r
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
        shards.push((spec, d.clone(), r));
    }
    shards.sort_by_key(|s| s.0.k);
    let n = shards[0].0.n;
    let ks: Vec<usize> = shards.iter().map(|s| s.0.k).collect();
    if shards.iter().any(|s| s.0.n != n) || ks != (1..=n).collect::<Vec<_>>() {
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
    let first = &shards[0].2;
    for (_, d, r) in &shards {
        let names: Vec<&str> = r.variants.iter().map(|v| v.name.as_str()).collect();
        let want: Vec<&str> = first.variants.iter().map(|v| v.name.as_str()).collect();
        if r.suite != first.suite || names != want {
            return Err(merge_err(
                format!(
                    "{} ran suite {:?} with variants {:?}, shard 1 ran {:?} with {:?}",
                    d.display(),
                    r.suite,
                    names,
                    first.suite,
                    want
                ),
                "merge shards of one suite only (same suite file, all variants finished)",
            ));
        }
    }
    let suite_text =
        std::fs::read_to_string(shards[0].1.join("suite.toml")).map_err(|e| RunError::Io {
            path: shards[0].1.join("suite.toml").display().to_string(),
            source: e,
        })?;
    let suite = Suite::parse(
        &suite_text,
        shards[0].1.join("suite.toml").display().to_string(),
        PathBuf::new(),
    )?;
    let eval_opts = settings_eval(&suite);

    let read_jsonl = |p: PathBuf| jsonl::read_jsonl(&p).map_err(RunError::from);
    let mut gold = Dataset::default();
    for (_, d, _) in &shards {
        gold.tweets.extend(read_jsonl(d.join("gold.jsonl"))?.tweets);
    }
    std::fs::create_dir_all(out_dir).map_err(|e| RunError::Io {
        path: out_dir.display().to_string(),
        source: e,
    })?;
    let write = |p: PathBuf, bytes: &[u8]| {
        crate::io_util::write_atomic_unsynced(&p, bytes).map_err(|e| RunError::Io {
            path: p.display().to_string(),
            source: e,
        })
    };
    write(
        out_dir.join("gold.jsonl"),
        jsonl::to_jsonl(&gold).as_bytes(),
    )?;
    write(out_dir.join("suite.toml"), suite_text.as_bytes())?;

    let mut merged = RunResults {
        suite: first.suite.clone(),
        run_id: first
            .run_id
            .split("-shard")
            .next()
            .unwrap_or(&first.run_id)
            .to_string()
            + "-merged",
        meta: first.meta.clone(),
        variants: Vec::new(),
    };
    merged.meta.shard = None;
    merged.meta.started_unix = shards
        .iter()
        .map(|s| s.2.meta.started_unix)
        .min()
        .unwrap_or(0);

    for spec in &suite.file.variants {
        let mut pred = Dataset::default();
        let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut skipped_items = Vec::new();
        let mut hashes = BTreeMap::new();
        let mut cached: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (_, d, r) in &shards {
            let v = r.variant(&spec.name).ok_or_else(|| {
                merge_err(
                    format!("{} lacks variant {}", d.display(), spec.name),
                    "re-run that shard",
                )
            })?;
            pred.tweets
                .extend(read_jsonl(d.join(&v.predictions))?.tweets);
            let lat_path = d.join("latency").join(format!("{}.json", spec.name));
            let lat: BTreeMap<String, Vec<f64>> = std::fs::read_to_string(&lat_path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            for (k, s) in lat {
                samples.entry(k).or_default().extend(s);
            }
            for (k, t) in &v.timings {
                let c = cached.entry(k.clone()).or_default();
                c.0 += t.cached;
                c.1 += t.warmup_excluded;
            }
            skipped_items.extend(v.skipped_items.iter().cloned());
            hashes.extend(v.model_hashes.clone());
        }
        let mut v = score_variant(spec, &gold, &pred, &eval_opts);
        v.description = first
            .variant(&spec.name)
            .map(|x| x.description.clone())
            .unwrap_or_default();
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
        write(
            out_dir.join(&v.predictions),
            jsonl::to_jsonl(&pred).as_bytes(),
        )?;
        write_json(
            &out_dir
                .join("per_tweet")
                .join(format!("{}.json", spec.name)),
            &per_tweet_of(&v),
        )?;
        write_json(
            &out_dir.join("latency").join(format!("{}.json", spec.name)),
            &samples,
        )?;
        merged.variants.push(v);
    }
    write_results(&out_dir.join("results.json"), &merged)?;
    Ok(merged)
}
