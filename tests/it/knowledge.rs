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

/// The knowledge stage with an image caption (`knowledge-caption-v1` + `[llm]
/// knowledge_captions`): the request carries the tweet's image caption, a missing caption is a
/// per-tweet error naming the file and the image, and the two settings must come together.
#[test]
fn caption_prompt_sends_each_tweets_image_caption() {
    use riveg_bench::llm::mock::{Behaviour, MockServer};
    use riveg_bench::llm::LlmConfig;
    use riveg_bench::pipeline::captions::Captions;
    use riveg_bench::pipeline::llm_stages::{knowledge_prompt, LlmKnowledge};
    use riveg_bench::pipeline::stages::Knowledge;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("captions.jsonl");
    std::fs::write(
        &file,
        "{\"image\": \"7.jpg\", \"caption\": \"a woman speaking at a podium\"}\n\
         {\"image\": \"own.png\", \"caption\": \"the Eiffel tower at night\"}\n",
    )
    .unwrap();
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let template = knowledge_prompt("knowledge-caption-v1", dir.path()).unwrap();
    assert_eq!(template.id(), "knowledge-caption@v1");
    let mut k = LlmKnowledge::new(
        LlmConfig::for_base_url(server.base_url()),
        template,
        None,
        Some(Captions::load(&file).unwrap()),
    )
    .unwrap();
    let tweet = |id: &str, image: Option<&str>| Tweet {
        id: id.into(),
        image: image.map(str::to_string),
        tokens: Some(vec!["Jolie".into(), "in".into(), "Paris".into()]),
        ..Default::default()
    };
    let user_message = |server: &MockServer| -> String {
        let body = server.last_request().unwrap();
        let messages = body["messages"].as_array().unwrap();
        messages.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // By the default image name (<id>.jpg), then by the tweet's own image name.
    assert!(!k.context(&tweet("7", None)).unwrap().is_empty());
    assert_eq!(
        user_message(&server),
        "Image description: a woman speaking at a podium\nTweet: Jolie in Paris\nKnowledge:"
    );
    k.context(&tweet("8", Some("own.png"))).unwrap();
    assert!(user_message(&server).starts_with("Image description: the Eiffel tower at night\n"));
    let before = server.requests();
    let e = k.context(&tweet("9", None)).unwrap_err().to_string();
    assert!(
        e.contains("tweet 9") && e.contains("captions.jsonl has no caption for image 9.jpg"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
    assert_eq!(server.requests(), before, "no request without a caption");

    // The built-in caption prompt requires its placeholders.
    let plain = knowledge_prompt("knowledge-v1", dir.path()).unwrap();
    assert!(!riveg_bench::pipeline::llm_stages::wants_caption(&plain));
}

/// Through the binary: a caption prompt without captions, captions without a caption prompt,
/// and a bad captions file are suite-level errors; with both, the knowledge stage records the
/// caption prompt and editing one caption recomputes the contexts (the fingerprint covers the
/// file's content).
#[test]
fn arch_suite_knowledge_with_captions() {
    crate::require_venv!();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join("suites/arch.toml")).unwrap();
    let base: toml::Value = toml::from_str(&text).unwrap();
    let captions = dir.path().join("captions.jsonl");
    let photos: Vec<String> = std::fs::read_dir(root.join("models/arch/photos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let write_captions = |suffix: &str| {
        let lines: Vec<String> = photos
            .iter()
            .map(|p| format!("{{\"image\": \"{p}\", \"caption\": \"a photo named {p}{suffix}\"}}"))
            .collect();
        std::fs::write(&captions, lines.join("\n")).unwrap();
    };
    write_captions("");
    let suite_with = |prompt: Option<&str>, captions_file: Option<&std::path::Path>| {
        let mut s = base.clone();
        s["variant"]
            .as_array_mut()
            .unwrap()
            .retain(|v| v["name"].as_str() == Some("full-knowledge"));
        let llm = s["llm"].as_table_mut().unwrap();
        if let Some(p) = prompt {
            llm.insert("knowledge_prompt".into(), p.into());
        }
        if let Some(c) = captions_file {
            llm.insert("knowledge_captions".into(), c.display().to_string().into());
        }
        let path = root.join(format!(
            "suites/.knowledge-captions-{}-{}.toml",
            std::process::id(),
            prompt.unwrap_or("none")
        ));
        std::fs::write(&path, toml::to_string(&s).unwrap()).unwrap();
        path
    };
    let run = |suite: &std::path::Path, out: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_riveg-bench"))
            .args(["run", "--format", "json", "--suite"])
            .arg(suite)
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .current_dir(&root)
            .output()
            .unwrap()
    };

    let no_captions = suite_with(Some("knowledge-caption-v1"), None);
    let o = run(&no_captions, "a");
    std::fs::remove_file(&no_captions).unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gives no captions") && stderr.contains("knowledge_captions"),
        "{stderr}"
    );

    let ignored = suite_with(None, Some(&captions));
    let o = run(&ignored, "b");
    std::fs::remove_file(&ignored).unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("would be ignored"), "{stderr}");

    let suite = suite_with(Some("knowledge-caption-v1"), Some(&captions));
    let parse = |o: std::process::Output| -> Value {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let ran = |r: &Value| {
        let t = &r["variants"][0]["timings"]["knowledge"];
        t["count"].as_u64().unwrap_or(0) + t["warmup_excluded"].as_u64().unwrap_or(0)
    };
    let r1 = parse(run(&suite, "c"));
    assert_eq!(
        r1["meta"]["llm"]["knowledge"]["prompt"],
        "knowledge-caption@v1"
    );
    assert_eq!(ran(&r1), 5);
    assert_eq!(
        ran(&parse(run(&suite, "d"))),
        0,
        "warm: all from the stage cache"
    );
    write_captions(" (edited)");
    assert_eq!(
        ran(&parse(run(&suite, "e"))),
        5,
        "new captions, new contexts"
    );
    std::fs::write(&captions, "{\"image\": \"x.png\"}\n").unwrap();
    let o = run(&suite, "f");
    std::fs::remove_file(&suite).unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("captions.jsonl:1: not a caption record"),
        "{stderr}"
    );
}
