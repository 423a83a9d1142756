//! Batching across tweets (issue 15): the ONNX tagger's length-bucketed batches give the
//! entities of one call per tweet (logits equal up to ORT's float noise for other batch shapes,
//! measured here), and the LLM stages' requests in flight across tweets give the answers of one
//! tweet at a time, whatever order the mock server's delayed replies come back in.

use std::path::PathBuf;

use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::data::readers::gmner;
use riveg_bench::llm::{Behaviour, LlmConfig, LlmReformulator, MockServer, PromptTemplate};
use riveg_bench::pipeline::llm_stages::{knowledge_prompt, LlmKnowledge};
use riveg_bench::pipeline::onnx::OnnxTagger;
use riveg_bench::pipeline::stages::{Knowledge, Reformulator, TagItem, Tagger, TweetInput};
use riveg_bench::runtime::{self, SessionConfig};

use crate::common::shared;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The first `n` Twitter-GMNER v2.0 test tweets (lengths from 2 to 40-odd words).
fn tweets(n: usize) -> Vec<Tweet> {
    let mut t = gmner::read_gmner(&shared("twitter-gmner/v2.0"), "test")
        .unwrap()
        .dataset
        .tweets;
    t.truncate(n);
    t
}

/// A context that differs per tweet, so pair lengths differ too.
fn context(i: usize) -> String {
    let facts = "Paris is a city in France . Taylor Swift is an American singer .";
    facts.repeat(1 + i % 3)
}

/// Largest logit difference allowed, at batch 7 and 32, from batch 1: far below any label change.
/// Observed on CPU (one thread): exactly 0. Documented in the tagger's module doc and
/// benches/README.md.
const LOGIT_TOLERANCE: f64 = 1e-4;

#[test]
fn tagger_batches_give_the_entities_of_one_call_per_tweet() {
    crate::require_venv!();
    let rt = runtime::init(None).unwrap_or_else(|e| panic!("{e}"));
    let config = SessionConfig {
        intra_threads: Some(1),
        ..SessionConfig::cpu()
    };
    let tweets = tweets(150);
    let contexts: Vec<String> = (0..tweets.len()).map(context).collect();
    let cases = [
        ("arch-tagger.toml", true),
        ("arch-xlmr-tagger.toml", true),
        ("tiny-tagger-crf.toml", false),
        ("tiny-tagger.toml", false),
    ];
    for (name, with_context) in cases {
        let mut tagger = OnnxTagger::load(rt, &models().join(name), &config)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for use_context in [false, true] {
            if use_context && !with_context {
                continue;
            }
            let items: Vec<TagItem<'_>> = tweets
                .iter()
                .enumerate()
                .map(|(i, t)| TagItem {
                    input: TweetInput {
                        tweet: t,
                        image: None,
                    },
                    context: use_context.then(|| contexts[i].as_str()),
                })
                .collect();
            let pairs: Vec<(&Tweet, Option<&str>)> =
                items.iter().map(|i| (i.input.tweet, i.context)).collect();
            // One call per tweet, through the one-tweet entry points.
            let single: Vec<Vec<Entity>> = items
                .iter()
                .map(|i| match i.context {
                    Some(c) => tagger.tag_with_context(&i.input, c).unwrap(),
                    None => tagger.tag(i.input.tweet).unwrap(),
                })
                .collect();
            let found: usize = single.iter().map(Vec::len).sum();
            assert!(
                found >= 5,
                "{name}: only {found} entities; the check would be weak"
            );
            let logits_1: Vec<Vec<Vec<f64>>> = tagger
                .word_logits_batch(&pairs, 1)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            // batch 1 is one call per tweet: the same entities, and identical logits.
            let tagged_1: Vec<Vec<Entity>> = tagger
                .tag_batch(&items, 1)
                .into_iter()
                .map(|t| t.result.unwrap())
                .collect();
            assert_eq!(tagged_1, single, "{name} context={use_context}");
            let mut worst = 0.0f64;
            for batch in [7, 32] {
                let tagged: Vec<Vec<Entity>> = tagger
                    .tag_batch(&items, batch)
                    .into_iter()
                    .map(|t| t.result.unwrap())
                    .collect();
                assert_eq!(tagged, single, "{name} context={use_context} batch={batch}");
                let logits: Vec<Vec<Vec<f64>>> = tagger
                    .word_logits_batch(&pairs, batch)
                    .into_iter()
                    .map(Result::unwrap)
                    .collect();
                for (a, b) in logits.iter().zip(&logits_1) {
                    assert_eq!(a.len(), b.len(), "{name}: words kept");
                    for (ra, rb) in a.iter().zip(b) {
                        for (x, y) in ra.iter().zip(rb) {
                            worst = worst.max((x - y).abs());
                        }
                    }
                }
            }
            eprintln!("{name} context={use_context}: max |logit(batch 7/32) - logit(batch 1)| = {worst:e}");
            assert!(
                worst < LOGIT_TOLERANCE,
                "{name} context={use_context}: max abs logit diff {worst}"
            );
        }
    }
}

#[test]
fn a_tweet_without_tokens_fails_alone_in_its_batch() {
    crate::require_venv!();
    let rt = runtime::init(None).unwrap_or_else(|e| panic!("{e}"));
    let mut tagger = OnnxTagger::load(
        rt,
        &models().join("arch-tagger.toml"),
        &SessionConfig::cpu(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut tweets = tweets(10);
    tweets[3].tokens = None;
    tweets[5].tokens = Some(Vec::new());
    let items: Vec<TagItem<'_>> = tweets
        .iter()
        .map(|t| TagItem {
            input: TweetInput {
                tweet: t,
                image: None,
            },
            context: None,
        })
        .collect();
    let out = tagger.tag_batch(&items, 32);
    assert_eq!(out.len(), 10);
    for (i, t) in out.into_iter().enumerate() {
        match i {
            3 => assert!(t.result.unwrap_err().to_string().contains("has no tokens")),
            5 => assert_eq!(t.result.unwrap(), Vec::new()),
            _ => assert_eq!(t.result.unwrap(), tagger.tag(&tweets[i]).unwrap()),
        }
    }
}

fn llm_config(server: &MockServer, max_concurrency: usize) -> LlmConfig {
    LlmConfig {
        timeout_ms: 5_000,
        max_retries: 0,
        max_concurrency,
        ..LlmConfig::for_base_url(server.base_url())
    }
}

#[test]
fn llm_requests_in_flight_across_tweets_answer_as_one_tweet_at_a_time() {
    // Every reply waits 30 ms, so with 8 in flight they finish in no fixed order.
    let server = MockServer::start(Behaviour::Delay(30)).unwrap();
    let tweets = tweets(24);
    let items: Vec<(&Tweet, Vec<Entity>)> = tweets
        .iter()
        .filter(|t| !t.entities.is_empty())
        .map(|t| (t, t.entities.clone()))
        .collect();
    let entities: usize = items.iter().map(|(_, e)| e.len()).sum();
    assert!(
        items.len() >= 15 && entities >= 30,
        "{} tweets, {entities} entities",
        items.len()
    );
    // One tweet at a time, one request at a time (no response cache: every run asks).
    let mut sequential =
        LlmReformulator::new(llm_config(&server, 1), PromptTemplate::default(), None).unwrap();
    let want: Vec<Vec<String>> = items
        .iter()
        .map(|(t, e)| sequential.reformulate(t, e).unwrap())
        .collect();
    let asked = server.requests();
    assert!(asked > 0);
    let mut concurrent =
        LlmReformulator::new(llm_config(&server, 8), PromptTemplate::default(), None).unwrap();
    for _ in 0..2 {
        let got: Vec<Vec<String>> = concurrent
            .reformulate_batch(&items)
            .into_iter()
            .map(|t| t.result.unwrap())
            .collect();
        assert_eq!(got, want);
    }
    // The same distinct prompts were asked each time (duplicates in a tweet share a request).
    assert_eq!(server.requests(), 3 * asked);
    // Real answers: the mock's deterministic expansion of each entity.
    let (t0, e0) = &items[0];
    assert_eq!(
        want[0][0],
        format!(
            "{}({})-A mock description of {}.",
            e0[0].text, e0[0].entity_type, e0[0].text
        ),
        "tweet {}",
        t0.id
    );

    // Knowledge: one request per tweet, in flight together, contexts in tweet order.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let template = knowledge_prompt("knowledge", &dir).unwrap();
    let mut one = LlmKnowledge::new(llm_config(&server, 1), template.clone(), None, None).unwrap();
    let mut many = LlmKnowledge::new(llm_config(&server, 8), template, None, None).unwrap();
    let refs: Vec<&Tweet> = tweets.iter().collect();
    let want: Vec<String> = refs.iter().map(|t| one.context(t).unwrap()).collect();
    let got: Vec<String> = many
        .context_batch(&refs)
        .into_iter()
        .map(|t| t.result.unwrap())
        .collect();
    assert_eq!(got, want);
}
