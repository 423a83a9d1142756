//! The smoke suite end to end through the binary: every real stage (ort on the tiny models,
//! tokenizers, the LLM over HTTP to the mock server the suite starts on 127.0.0.1), the stage
//! cache (a re-run computes nothing; the 8-variant matrix costs at most 1.5x the model calls of
//! one full run), and missing images under both error policies. The smoke suite runs three
//! datasets (`gmner`, `fmnerg`, `smner`); the checks of one dataset's numbers use `smner`, the
//! original smoke data (boxes and masks); tests/it/datasets.rs covers the datasets themselves.

use std::path::{Path, PathBuf};

use crate::common::{bin, path_str, root};

fn run_suite(suite: &Path, out: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec![
        "run",
        "--suite",
        path_str(suite),
        "--out",
        path_str(out),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = bin()
        .args(&args)
        .current_dir(root())
        .output()
        .expect("run riveg-bench");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), json, stderr)
}

/// A copy of the smoke suite with absolute paths, only the given variants and datasets (empty:
/// all), and edits.
fn suite_variant(dir: &Path, keep: &[&str], datasets: &[&str], images: Option<&Path>) -> PathBuf {
    let text = std::fs::read_to_string(root().join("suites/smoke.toml")).unwrap();
    let mut v: toml::Value = toml::from_str(&text).unwrap();
    let abs = |p: &str| root().join(p).to_string_lossy().into_owned();
    let all = v["dataset"].as_array_mut().unwrap();
    if !datasets.is_empty() {
        all.retain(|d| datasets.contains(&d["name"].as_str().unwrap()));
    }
    for data in all.iter_mut() {
        let data = data.as_table_mut().unwrap();
        for key in ["gold", "replay"] {
            let src = data[key].as_table_mut().unwrap();
            let p = src["path"].as_str().unwrap().to_string();
            src.insert("path".into(), abs(&p).into());
        }
        let img = images
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| abs("tests/fixtures/smoke/images"));
        data.insert("images".into(), img.into());
    }
    for (_, p) in v["models"].as_table_mut().unwrap().iter_mut() {
        *p = abs(p.as_str().unwrap()).into();
    }
    if !keep.is_empty() {
        let variants = v["variant"].as_array_mut().unwrap();
        variants.retain(|x| keep.contains(&x["name"].as_str().unwrap()));
    }
    let p = dir.join("suite.toml");
    std::fs::write(&p, toml::to_string(&v).unwrap()).unwrap();
    p
}

/// The entry of variant `name` on the `smner` dataset (the original smoke data).
fn variant<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name && v["dataset"] == "smner")
        .unwrap()
}

/// Model and LLM calls actually executed (cache misses), summed over the stages that run models.
fn executed_calls(r: &serde_json::Value) -> u64 {
    let mut n = 0;
    for v in r["variants"].as_array().unwrap() {
        for (stage, t) in v["timings"].as_object().unwrap() {
            let kind = v["stages"]
                .get(stage)
                .and_then(|k| k.as_str())
                .unwrap_or("");
            if kind == "onnx" || kind == "llm" {
                n += t["count"].as_u64().unwrap() + t["warmup_excluded"].as_u64().unwrap();
            }
        }
    }
    n
}

#[test]
fn smoke_suite_runs_every_real_stage_and_caches() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("run1");
    let (code, r, stderr) = run_suite(
        &root().join("suites/smoke.toml"),
        &out,
        &["--cache-dir", path_str(&cache)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["suite"], "smoke");
    assert_eq!(r["meta"]["execution_provider"], "cpu");
    assert_eq!(
        r["variants"].as_array().unwrap().len(),
        11 * 3,
        "8 RiVEG + 3 MLLM variants x 3 datasets"
    );
    let full = variant(&r, "full");
    for (stage, kind) in [
        ("tagger", "onnx"),
        ("reformulator", "llm"),
        ("entailer", "onnx"),
        ("grounder", "onnx"),
        ("segmenter", "onnx"),
    ] {
        assert_eq!(full["stages"][stage], kind);
        assert!(
            full["timings"][stage]["count"].as_u64().unwrap()
                + full["timings"][stage]["warmup_excluded"].as_u64().unwrap()
                > 0,
            "{stage} ran"
        );
    }
    assert!(full["model_hashes"].as_object().unwrap().len() >= 5);
    // A suite that does not name the knowledge stage records none (results stay as before).
    assert!(
        full["stages"].get("knowledge").is_none(),
        "{}",
        full["stages"]
    );
    // The tiny tagger tags every smoke entity; VE and VG decide GMNER.
    let m = &full["metrics"]["riveg"];
    assert_eq!(
        (m["mner"]["correct"].as_u64(), m["mner"]["gold"].as_u64()),
        (Some(15), Some(15))
    );
    assert!(m["gmner"]["f1"].as_f64().unwrap() > 0.5);
    assert!(
        full["metrics"]["span"]["gmner"]["f1"].is_number(),
        "smoke data has spans"
    );
    // SMNER: the tiny SAM's masks of the bright rectangles match the gold masks.
    assert_eq!(m["smner"]["correct"], m["gmner"]["correct"]);
    assert_eq!(
        variant(&r, "no-segmentation")["metrics"]["riveg"]["smner"]["correct"],
        m["gmner"]["correct"]
    );
    // Oracle VE makes every decision right; the tiny grounder finds the bright boxes.
    assert_eq!(
        variant(&r, "oracle-ve")["metrics"]["riveg"]["gmner"]["f1"],
        1.0
    );
    // Predictions carry LLM expansions in the paper's format.
    let preds = std::fs::read_to_string(out.join("predictions/smner/full.jsonl")).unwrap();
    assert!(
        preds.contains("\"expansion\":\"Angelina Jolie(PER)-"),
        "{preds}"
    );
    assert!(out.join("summary.md").is_file() && out.join("smner/ablation.png").is_file());
    // `report` rewrites the same bytes from the run directory (latency samples included).
    let files = ["summary.md", "smner/latency.png", "gmner/ablation.png"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    let o = bin().args(["report", path_str(&out)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (f, b) in files.iter().zip(before) {
        assert!(
            std::fs::read(out.join(f)).unwrap() == b,
            "{f} differs after `report`"
        );
    }

    // Warm cache: the same suite again computes nothing with a model, and scores the same.
    let (code, r2, stderr) = run_suite(
        &root().join("suites/smoke.toml"),
        &dir.path().join("run2"),
        &["--cache-dir", path_str(&cache)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(executed_calls(&r2), 0, "everything came from the cache");
    for (a, b) in r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r2["variants"].as_array().unwrap())
    {
        assert_eq!(a["metrics"], b["metrics"], "{}", a["name"]);
    }

    // Cost of the matrix: model calls of the 8 RiVEG variants (cold) vs the full variant alone
    // (cold), on every dataset; the MLLM variants and hybrids are costed in
    // `mllm_variants_share_one_request_per_tweet`.
    let mut r = r;
    r["variants"]
        .as_array_mut()
        .unwrap()
        .retain(|v| !v["name"].as_str().unwrap().starts_with("mllm"));
    assert_eq!(r["variants"].as_array().unwrap().len(), 8 * 3);
    let only_full = suite_variant(dir.path(), &["full"], &[], None);
    let (code, rf, stderr) = run_suite(&only_full, &dir.path().join("full-only"), &["--no-cache"]);
    assert_eq!(code, 0, "{stderr}");
    // The expensive, query-independent work is shared: the LLM reformulates each entity once
    // for the whole matrix. VE and VG run again where an ablation changes their input (no
    // reformulation, no VE); wall-time ratios are measured in benches/pipeline.rs.
    let calls = |r: &serde_json::Value, stage: &str| -> u64 {
        r["variants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["stages"][stage] == "llm" || v["stages"][stage] == "onnx")
            .map(|v| {
                v["timings"][stage]["count"].as_u64().unwrap_or(0)
                    + v["timings"][stage]["warmup_excluded"].as_u64().unwrap_or(0)
            })
            .sum()
    };
    assert_eq!(calls(&r, "reformulator"), calls(&rf, "reformulator"));
    assert_eq!(calls(&r, "tagger"), calls(&rf, "tagger"));
    let ratio = executed_calls(&r) as f64 / executed_calls(&rf) as f64;
    eprintln!(
        "matrix/full model calls: {} / {} = {ratio:.2}",
        executed_calls(&r),
        executed_calls(&rf)
    );
    assert!(
        ratio < 2.0,
        "8-variant matrix made {ratio:.2}x the model calls of one full run"
    );
}

#[test]
fn missing_image_fails_or_is_skipped_and_counted() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for entry in std::fs::read_dir(root().join("tests/fixtures/smoke/images")).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap() != "s3.png" {
            std::fs::copy(&p, images.join(p.file_name().unwrap())).unwrap();
        }
    }
    let suite = suite_variant(dir.path(), &["full", "replay"], &["smner"], Some(&images));
    let (code, _, stderr) = run_suite(&suite, &dir.path().join("fail"), &["--no-cache"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tweet s3") && stderr.contains("s3.png"),
        "{stderr}"
    );
    assert!(stderr.contains("hint"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, r, stderr) = run_suite(
        &suite,
        &dir.path().join("skip"),
        &["--no-cache", "--on-error", "skip"],
    );
    assert_eq!(code, 0, "{stderr}");
    let full = variant(&r, "full");
    assert_eq!(full["skipped"], 1);
    assert_eq!(full["skipped_items"][0]["tweet_id"], "s3");
    assert_eq!(
        full["skipped_items"][0]["stage"], "entailer",
        "the first stage that reads pixels"
    );
    // The skipped tweet's gold entities count as missed, never dropped from the denominator.
    assert_eq!(full["metrics"]["riveg"]["mner"]["gold"], 15);
    assert_eq!(
        variant(&r, "replay")["skipped"],
        0,
        "replay needs no pixels"
    );
}

#[test]
fn unreachable_llm_endpoint_is_a_clear_error() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_variant(dir.path(), &["full"], &["smner"], None);
    // Point the LLM at a closed loopback port instead of the mock.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("start_mock = true", "start_mock = false")
        .replace(
            "http://127.0.0.1:8089/v1",
            &format!("http://127.0.0.1:{port}/v1"),
        );
    std::fs::write(&suite, text).unwrap();
    let (code, _, stderr) = run_suite(&suite, &dir.path().join("out"), &["--no-cache"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("mock-llm") || stderr.contains("unreachable") || stderr.contains("connect"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The MLLM stage kinds on the smoke data through the mock's image answers (entities: the
/// tweet's capitalised words; boxes: the image's bright regions): the end-to-end variant and
/// both hybrids share one request per tweet, a re-run asks nothing, and everything that decides
/// the answers is recorded in `meta.llm`.
#[test]
fn mllm_variants_share_one_request_per_tweet() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let suite = suite_variant(
        dir.path(),
        &["mllm", "mllm-entities", "mllm-grounding"],
        &["smner"],
        None,
    );
    let (code, r, stderr) = run_suite(
        &suite,
        &dir.path().join("run1"),
        &["--cache-dir", path_str(&cache)],
    );
    assert_eq!(code, 0, "{stderr}");
    let counts = |v: &serde_json::Value, protocol: &str, task: &str| {
        let m = &v["metrics"][protocol][task];
        (
            m["correct"].as_u64().unwrap(),
            m["predicted"].as_u64().unwrap(),
            m["gold"].as_u64().unwrap(),
        )
    };
    let e2e = variant(&r, "mllm");
    for stage in ["tagger", "entailer", "grounder"] {
        assert_eq!(e2e["stages"][stage], "mllm");
    }
    assert_eq!(e2e["stages"]["reformulator"], "off");
    // The mock's capitalised-word entities find 10 of the 15 gold entities with their types.
    assert_eq!(counts(e2e, "riveg", "mner"), (10, 15, 15));
    assert_eq!(counts(e2e, "riveg", "gmner"), (8, 15, 15));
    assert_eq!(counts(e2e, "riveg", "eeg"), (11, 15, 15));
    // Every entity aligned to the tweet's tokens, so the span protocol applies and agrees.
    assert_eq!(counts(e2e, "span", "gmner"), (8, 15, 15));
    // Hybrid: the same entities through RiVEG's reformulation, VE and VG.
    let ents = variant(&r, "mllm-entities");
    assert_eq!(counts(ents, "riveg", "mner"), counts(e2e, "riveg", "mner"));
    assert_eq!(counts(ents, "riveg", "gmner"), (9, 15, 15));
    // Hybrid: RiVEG's tagger (all 15 right) with the MLLM's groundability and boxes.
    let grounding = variant(&r, "mllm-grounding");
    assert_eq!(counts(grounding, "riveg", "mner"), (15, 15, 15));
    assert_eq!(counts(grounding, "riveg", "gmner"), (11, 15, 15));

    let mllm = &r["meta"]["llm"]["mllm"];
    let tweets = e2e["tweets"].as_u64().unwrap();
    assert_eq!(tweets, 8);
    assert_eq!(
        mllm["requests_sent"], tweets,
        "one request per tweet for 3 variants"
    );
    assert_eq!(mllm["tweets_ok"], tweets);
    assert_eq!(mllm["cache_hits"], 0);
    // The mock reports usage (words as tokens): tokens per second of request time.
    assert!(mllm["completion_tokens"].as_u64().unwrap() > 0, "{mllm}");
    assert!(mllm["tokens_per_s"].as_f64().unwrap() > 0.0, "{mllm}");
    assert_eq!(mllm["issues"], serde_json::json!({}));
    assert_eq!(mllm["prompt"], "gmner-mllm@v1");
    assert_eq!(mllm["settings"]["box_convention"], "pixel");
    assert_eq!(mllm["settings"]["image_format"], "png");
    assert_eq!(
        mllm["request_fields"],
        serde_json::json!({"max_tokens": 256, "temperature": 0.0})
    );
    // RiVEG's tagger finds one entity the MLLM does not list (not groundable, counted).
    assert_eq!(mllm["not_listed"], 1);
    let latency = &mllm["latency_ms"];
    assert_eq!(
        latency["count"].as_u64().unwrap() + latency["warmup_excluded"].as_u64().unwrap(),
        tweets
    );
    assert_eq!(r["meta"]["llm"]["reformulator"]["prompt"], "reformulate@v1");

    // Warm: the response cache (keyed on the image bytes as sent) answers every tweet.
    let (code, r2, stderr) = run_suite(
        &suite,
        &dir.path().join("run2"),
        &["--cache-dir", path_str(&cache)],
    );
    assert_eq!(code, 0, "{stderr}");
    let mllm2 = &r2["meta"]["llm"]["mllm"];
    assert_eq!(mllm2["requests_sent"], 0);
    assert_eq!(mllm2["cache_hits"], tweets);
    assert_eq!(mllm2["latency_ms"]["cached"], tweets);
    for (a, b) in r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r2["variants"].as_array().unwrap())
    {
        assert_eq!(a["metrics"], b["metrics"], "{}", a["name"]);
    }

    // Sampling settings are part of the fingerprint: another temperature asks again.
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("[llm]", "[llm]\ntemperature = 0.5\nseed = 7");
    let hot = dir.path().join("hot.toml");
    std::fs::write(&hot, text).unwrap();
    let (code, r3, stderr) = run_suite(
        &hot,
        &dir.path().join("run3"),
        &["--cache-dir", path_str(&cache)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r3["meta"]["llm"]["mllm"]["requests_sent"], tweets);
    assert_eq!(
        r3["meta"]["llm"]["mllm"]["request_fields"],
        serde_json::json!({"max_tokens": 256, "seed": 7, "temperature": 0.5})
    );
}

/// A scripted MLLM reply naming an entity that is not in the tweet: `--on-error fail` stops
/// naming the tweet; `skip` keeps the entity without a span, counts the issue, and the span
/// protocol is `null` with a reason (the scorer needs offsets on every entity: partial offsets
/// are not applicable, not a partial score).
#[test]
fn mllm_issues_follow_on_error_and_partial_spans_null_the_span_protocol() {
    crate::require_venv!();
    let reply = r#"[{"entity": "Angelina Jolie", "type": "PER", "box": [8, 6, 40, 40]},
                    {"entity": "Brad Pitt", "type": "PER", "box": null}]"#;
    let server =
        riveg_bench::llm::MockServer::start(riveg_bench::llm::Behaviour::Content(reply.into()))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_variant(dir.path(), &["mllm"], &["smner"], None);
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("start_mock = true", "start_mock = false")
        .replace("http://127.0.0.1:8089/v1", &server.base_url());
    std::fs::write(&suite, text).unwrap();

    let (code, _, stderr) = run_suite(&suite, &dir.path().join("fail"), &["--no-cache"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tweet s1") && stderr.contains("Brad Pitt"),
        "{stderr}"
    );
    assert!(stderr.contains("hint"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, r, stderr) = run_suite(
        &suite,
        &dir.path().join("skip"),
        &["--no-cache", "--on-error", "skip"],
    );
    assert_eq!(code, 0, "{stderr}");
    let v = variant(&r, "mllm");
    assert_eq!(v["skipped"], 0, "issues are repaired, not skipped");
    assert!(v["metrics"]["span"].is_null());
    let why = v["not_applicable"]["span"].as_str().unwrap();
    assert!(why.contains("without start/end"), "{why}");
    let mllm = &r["meta"]["llm"]["mllm"];
    assert_eq!(mllm["tweets_ok"], 8);
    // s1: "Brad Pitt"; the 7 other tweets: both names.
    assert_eq!(mllm["issues"]["entity_not_found"], 15);
    // The one real entity of s1 is found with its box; nothing is dropped.
    let m = &v["metrics"]["riveg"];
    assert_eq!(m["mner"]["predicted"], 16);
    assert_eq!(m["mner"]["correct"], 1);
    assert_eq!(m["gmner"]["correct"], 1);
}

/// An MLLM reply with no entity list: one request per tweet however many `mllm` variants ask
/// (the error is shared too), `--on-error skip` skips the tweet in each variant and counts it,
/// `fail` stops naming the tweet.
#[test]
fn mllm_errors_are_shared_per_tweet_and_follow_on_error() {
    crate::require_venv!();
    let server = riveg_bench::llm::MockServer::start(riveg_bench::llm::Behaviour::Content(
        "I cannot see any named entities here.".into(),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_variant(dir.path(), &["mllm", "mllm-grounding"], &["smner"], None);
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("start_mock = true", "start_mock = false")
        .replace("http://127.0.0.1:8089/v1", &server.base_url());
    std::fs::write(&suite, text).unwrap();

    let (code, _, stderr) = run_suite(&suite, &dir.path().join("fail"), &["--no-cache"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tweet s1") && stderr.contains("not a JSON entity list"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, r, stderr) = run_suite(
        &suite,
        &dir.path().join("skip"),
        &["--no-cache", "--on-error", "skip"],
    );
    // Every tweet skipped: the results are written and printed, and the exit code says so.
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("skipped 8 of 8 tweets"), "{stderr}");
    let e2e = variant(&r, "mllm");
    assert_eq!(e2e["skipped"], 8);
    assert_eq!(e2e["skipped_items"][0]["stage"], "tagger");
    let hybrid = variant(&r, "mllm-grounding");
    assert_eq!(hybrid["skipped"], 8);
    assert_eq!(hybrid["skipped_items"][0]["stage"], "entailer");
    // Skipped tweets' gold entities count as missed.
    assert_eq!(e2e["metrics"]["riveg"]["mner"]["gold"], 15);
    assert_eq!(e2e["metrics"]["riveg"]["mner"]["predicted"], 0);
    let mllm = &r["meta"]["llm"]["mllm"];
    assert_eq!(
        mllm["requests_sent"], 8,
        "one request per tweet for both variants"
    );
    assert_eq!(mllm["errors"]["malformed_reply"], 8);
    assert_eq!(mllm["tweets_ok"], 0);
}
