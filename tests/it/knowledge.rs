//! The knowledge stage (issue 11): the tagger reads tweet + auxiliary context as a tokenizer
//! pair and labels only the tweet's words. Pair encodings are checked against the transformers
//! tokenizer's (models/arch/reference, made by scripts/gen_arch_models.py: `tok(" ".join(words),
//! TAGGER_KNOWLEDGE)`), labels against Viterbi / argmax over the PyTorch logits of that pair, and
//! the arch suite's `full` vs `full-knowledge` variants end to end through the binary.

use std::path::PathBuf;

use riveg_bench::data::model::Tweet;
use riveg_bench::pipeline::onnx::crf::viterbi;
use riveg_bench::pipeline::onnx::{OnnxTagger, TextEncoder};
use riveg_bench::pipeline::stages::{Tagger, TweetInput};
use riveg_bench::runtime::{self, ModelManifest, SessionConfig};
use serde_json::Value;

/// scripts/gen_arch_models.py: TAGGER_CASES[0] and TAGGER_KNOWLEDGE.
const KNOWLEDGE: &str = "Taylor Swift is an American singer . Paris is a city in France .";

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(models().join("arch/reference").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

const TAGGERS: [(&str, &str); 2] = [
    ("arch-tagger.toml", "tagger.json"),
    ("arch-xlmr-tagger.toml", "xlmr_tagger.json"),
];

#[test]
fn pair_encoding_equals_the_transformers_tokenizer_and_keeps_word_ids_on_the_tweet() {
    crate::require_venv!();
    for (name, reference_name) in TAGGERS {
        let m = ModelManifest::load(&models().join(name)).unwrap();
        let text = TextEncoder::from_manifest(&m).unwrap();
        let r = reference(reference_name);
        let words = strings(&r["cases"][0]["words"]);
        let enc = text
            .encode_words_with_context("t", &words, KNOWLEDGE)
            .unwrap();
        assert_eq!(enc.ids, i64s(&r["pair"]["input_ids"]), "{name}");
        match r["pair"].get("token_type_ids") {
            Some(t) => assert_eq!(enc.type_ids, i64s(t), "{name}"),
            None => assert!(enc.type_ids.iter().all(|&t| t == 0), "{name}"),
        }
        // The tweet's part of the pair is the single encoding's (less its final separator), and
        // only it carries word ids.
        let single: Vec<Option<usize>> = r["cases"][0]["word_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().map(|w| w as usize))
            .collect();
        let n = single.len() - 1;
        assert_eq!(enc.word_ids[..n], single[..n], "{name}");
        assert!(enc.word_ids[n..].iter().all(Option::is_none), "{name}");
        assert_eq!(enc.words_kept, words.len());
    }
}

#[test]
fn the_tagger_labels_only_the_tweet_from_the_pair_logits() {
    crate::require_venv!();
    let rt = runtime::init(None).unwrap_or_else(|e| panic!("{e}"));
    let cpu = SessionConfig {
        intra_threads: Some(1),
        ..SessionConfig::cpu()
    };
    for (name, reference_name) in TAGGERS {
        let m = ModelManifest::load(&models().join(name)).unwrap();
        let crf = m.crf().unwrap().expect("the arch taggers have a CRF");
        let r = reference(reference_name);
        let words = strings(&r["cases"][0]["words"]);
        // Expected: Viterbi over PyTorch's pair logits at each tweet word's first subword.
        let logits: Vec<Vec<f64>> = r["pair"]["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        let mut rows = Vec::new();
        let mut previous = None;
        for (pos, w) in r["cases"][0]["word_ids"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let w = w.as_u64();
            if w.is_some() && w != previous {
                rows.push(logits[pos].clone());
            }
            previous = w;
        }
        assert_eq!(rows.len(), words.len());
        let labels = m.require_labels().unwrap().names.clone();
        let want: Vec<String> = viterbi(&rows, &crf)
            .into_iter()
            .map(|i| labels[i].clone())
            .collect();

        let mut tagger = OnnxTagger::from_manifest(rt, &m, &cpu).unwrap();
        let tweet = Tweet {
            id: "t".into(),
            tokens: Some(words.clone()),
            ..Default::default()
        };
        let got = tagger
            .tag_words_with(&tweet, &words, Some(KNOWLEDGE))
            .unwrap();
        assert_eq!(got, want, "{name}");
        // Through the Tagger trait: entities are spans of the tweet's words only.
        let input = TweetInput {
            tweet: &tweet,
            image: None,
        };
        for e in tagger.tag_with_context(&input, KNOWLEDGE).unwrap() {
            let (s, end) = e.span().unwrap();
            assert!(end <= words.len());
            assert_eq!(e.text, words[s..end].join(" "));
        }
    }
}

fn run_arch(suite: &std::path::Path, out: &std::path::Path, cache: &std::path::Path) -> Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_riveg-bench"))
        .args(["run", "--format", "json", "--suite"])
        .arg(suite)
        .arg("--out")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn arch_suite_runs_the_pipeline_with_and_without_knowledge() {
    crate::require_venv!();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join("suites/arch.toml")).unwrap();
    let mut suite: toml::Value = toml::from_str(&text).unwrap();
    suite["variant"]
        .as_array_mut()
        .unwrap()
        .retain(|v| ["full", "full-knowledge"].contains(&v["name"].as_str().unwrap()));
    // Inside suites/ so that relative paths resolve against the project root.
    let path = root.join(format!(
        "suites/.knowledge-test-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, toml::to_string(&suite).unwrap()).unwrap();
    let cache = dir.path().join("cache");
    let r = run_arch(&path, &dir.path().join("run1"), &cache);
    let r2 = run_arch(&path, &dir.path().join("run2"), &cache);
    std::fs::remove_file(&path).unwrap();

    let variant = |r: &Value, name: &str| -> Value {
        r["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    let (full, with) = (variant(&r, "full"), variant(&r, "full-knowledge"));
    assert_eq!(full["stages"]["knowledge"], "off");
    assert_eq!(with["stages"]["knowledge"], "llm");
    let ran = |v: &Value, stage: &str| {
        let t = &v["timings"][stage];
        t["count"].as_u64().unwrap_or(0) + t["warmup_excluded"].as_u64().unwrap_or(0)
    };
    // One context per tweet (5 photos), and the tagger ran again on tweet + context: its cache
    // key covers the context.
    assert_eq!(ran(&with, "knowledge"), 5);
    assert_eq!(ran(&with, "tagger"), 5);
    assert_eq!(ran(&full, "tagger"), 5);
    assert!(full["timings"].get("knowledge").is_none());
    let meta = &r["meta"]["llm"]["knowledge"];
    assert_eq!(meta["prompt"], "knowledge@v1");
    assert_eq!(meta["model"], "mock");
    // Warm: contexts and tags come from the stage cache.
    let with2 = variant(&r2, "full-knowledge");
    assert_eq!(ran(&with2, "knowledge"), 0);
    assert_eq!(with2["timings"]["knowledge"]["cached"], 5);
    assert_eq!(ran(&with2, "tagger"), 0);
    assert_eq!(with2["metrics"], with["metrics"]);
}
