//! Batching across tweets (issue 15): the ONNX tagger's length-bucketed batches give the
//! entities of one call per tweet (logits equal up to ORT's float noise for other batch shapes,
//! measured here); the ONNX entailer and grounder's multi-image runs (`image_index`) give the
//! probabilities and boxes of one run per tweet (measured on the arch CLIP, BLIP ITM, OWL-ViT and
//! OWLv2 exports); and the LLM stages' requests in flight across tweets give the answers of one
//! tweet at a time, whatever order the mock server's delayed replies come back in.

use std::path::PathBuf;

use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::data::readers::gmner;
use riveg_bench::llm::{Behaviour, LlmConfig, LlmReformulator, MockServer, PromptTemplate};
use riveg_bench::pipeline::llm_stages::{knowledge_prompt, LlmKnowledge};
use riveg_bench::pipeline::onnx::{OnnxEntailer, OnnxGrounder, OnnxTagger};
use riveg_bench::pipeline::stages::{
    Entailer, Grounder, Knowledge, QueryItem, Reformulator, TagItem, Tagger, TweetInput,
};
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

/// The arch fixtures' synthetic photos (sizes 97x64 to 150x100, one JPEG).
const PHOTOS: [&str; 5] = [
    "landscape_97x64.png",
    "portrait_48x80.png",
    "square_64x64.png",
    "small_23x17.png",
    "wide_150x100.jpg",
];

/// The arch references' queries (scripts/gen_arch_models.py).
const QUERIES: [&str; 5] = [
    "Taylor Swift, an American singer on stage",
    "the city of Paris at night",
    "Arsenal FC football team",
    "a NASA rocket",
    "Zoë's dog!",
];

fn photo(name: &str) -> image::RgbImage {
    image::open(models().join("arch/photos").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .to_rgb8()
}

/// One VE/VG test tweet: an id, a photo, its entities and queries.
struct QueryTweet {
    tweet: Tweet,
    image: Option<image::RgbImage>,
    entities: Vec<Entity>,
    queries: Vec<String>,
}

/// `n` tweets on the photos in turn, with 0 to 5 queries each (rotated, so runs mix lengths).
fn query_tweets(n: usize) -> Vec<QueryTweet> {
    (0..n)
        .map(|i| {
            let queries: Vec<String> = (0..(i * 7) % 6)
                .map(|j| QUERIES[(i + j) % QUERIES.len()].to_string())
                .collect();
            QueryTweet {
                tweet: Tweet {
                    id: format!("q{i}"),
                    ..Default::default()
                },
                image: Some(photo(PHOTOS[i % PHOTOS.len()])),
                entities: queries
                    .iter()
                    .map(|q| Entity::new(q.clone(), "PER"))
                    .collect(),
                queries,
            }
        })
        .collect()
}

fn query_items(tweets: &[QueryTweet]) -> Vec<QueryItem<'_>> {
    tweets
        .iter()
        .map(|t| QueryItem {
            input: TweetInput {
                tweet: &t.tweet,
                image: t.image.as_ref(),
            },
            entities: &t.entities,
            queries: &t.queries,
        })
        .collect()
}

/// One intra-op thread, as the tagger check: each row computed alone.
fn one_thread() -> SessionConfig {
    SessionConfig {
        intra_threads: Some(1),
        ..SessionConfig::cpu()
    }
}

/// Largest difference allowed between a tweet's outputs in a multi-image run and alone, at
/// batch 7 and 32. Observed on CPU (one thread): exactly 0 (each image is encoded alone, each
/// query scored against its own image's features). Other providers' kernels may differ in the
/// last bits.
const QUERY_TOLERANCE: f64 = 1e-5;

/// A VE or VG stage under test, flattened to numbers per tweet (probabilities, or box corners
/// and score per query).
enum QueryStage {
    Ve(Box<OnnxEntailer>),
    Vg(Box<OnnxGrounder>),
}

impl QueryStage {
    fn load(name: &str) -> QueryStage {
        let rt = runtime::init(None).unwrap_or_else(|e| panic!("{e}"));
        let path = models().join(name);
        if name.contains("clip") || name.contains("blip") || name.contains("entailer") {
            QueryStage::Ve(Box::new(
                OnnxEntailer::load(rt, &path, &one_thread()).unwrap_or_else(|e| panic!("{e}")),
            ))
        } else {
            QueryStage::Vg(Box::new(
                OnnxGrounder::load(rt, &path, &one_thread()).unwrap_or_else(|e| panic!("{e}")),
            ))
        }
    }

    /// One call per tweet, through the one-tweet entry point.
    fn single(&mut self, item: &QueryItem<'_>) -> Result<Vec<f64>, String> {
        match self {
            QueryStage::Ve(s) => s
                .entail(&item.input, item.entities, item.queries)
                .map(|p| p.into_iter().map(f64::from).collect()),
            QueryStage::Vg(s) => s
                .ground(&item.input, item.entities, item.queries)
                .map(|g| flatten_boxes(&g)),
        }
        .map_err(|e| e.to_string())
    }

    fn batch(&mut self, items: &[QueryItem<'_>], batch: usize) -> Vec<Result<Vec<f64>, String>> {
        match self {
            QueryStage::Ve(s) => s
                .entail_batch(items, batch)
                .into_iter()
                .map(|t| t.result.map(|p| p.into_iter().map(f64::from).collect()))
                .map(|r| r.map_err(|e| e.to_string()))
                .collect(),
            QueryStage::Vg(s) => s
                .ground_batch(items, batch)
                .into_iter()
                .map(|t| t.result.map(|g| flatten_boxes(&g)))
                .map(|r| r.map_err(|e| e.to_string()))
                .collect(),
        }
    }
}

fn flatten_boxes(g: &[riveg_bench::pipeline::stages::Grounding]) -> Vec<f64> {
    g.iter()
        .flat_map(|g| {
            let b = g.bbox;
            [b.x1(), b.y1(), b.x2(), b.y2(), f64::from(g.score)]
        })
        .collect()
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn entailer_and_grounder_batches_give_the_outputs_of_one_run_per_tweet() {
    crate::require_venv!();
    let tweets = query_tweets(24);
    let items = query_items(&tweets);
    let queries: usize = tweets.iter().map(|t| t.queries.len()).sum();
    assert!(queries >= 50, "{queries} queries");
    // The arch exports take several images per run; the tiny fixtures (no image_index) run one
    // tweet per call whatever the batch.
    for name in [
        "arch-clip.toml",
        "arch-blip.toml",
        "arch-owlvit.toml",
        "arch-owlv2.toml",
        "tiny-entailer.toml",
        "tiny-grounder.toml",
    ] {
        let mut stage = QueryStage::load(name);
        let single: Vec<Vec<f64>> = items
            .iter()
            .map(|i| stage.single(i).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect();
        // The outputs depend on the image: the check is informative.
        let distinct: std::collections::BTreeSet<String> =
            single.iter().flatten().map(|v| format!("{v:.4}")).collect();
        assert!(
            distinct.len() > 10,
            "{name}: {} distinct outputs",
            distinct.len()
        );
        let unwrap = |r: Vec<Result<Vec<f64>, String>>| -> Vec<Vec<f64>> {
            r.into_iter()
                .map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}")))
                .collect()
        };
        // batch 1 is one run per tweet: identical outputs.
        assert_eq!(unwrap(stage.batch(&items, 1)), single, "{name} batch 1");
        let mut worst = 0.0f64;
        for batch in [7, 32] {
            let got = unwrap(stage.batch(&items, batch));
            worst = worst.max(max_diff(&got, &single));
        }
        eprintln!("{name}: max |output(batch 7/32) - output(one run per tweet)| = {worst:e}");
        assert!(worst < QUERY_TOLERANCE, "{name}: max abs diff {worst}");
    }
}

#[test]
fn each_query_of_a_multi_image_run_is_scored_against_its_own_image() {
    // Two tweets, the same queries, different photos (and sizes), in one run: if image_index
    // were ignored (every query against the first image), the second tweet would get the first
    // one's answers.
    crate::require_venv!();
    let mut tweets = query_tweets(2);
    for t in &mut tweets {
        t.queries = QUERIES.iter().map(|q| q.to_string()).collect();
        t.entities = t
            .queries
            .iter()
            .map(|q| Entity::new(q.clone(), "PER"))
            .collect();
    }
    let items = query_items(&tweets);
    for name in [
        "arch-clip.toml",
        "arch-blip.toml",
        "arch-owlvit.toml",
        "arch-owlv2.toml",
    ] {
        let mut stage = QueryStage::load(name);
        let single: Vec<Vec<f64>> = items.iter().map(|i| stage.single(i).unwrap()).collect();
        let apart = max_diff(&single[..1], &single[1..]);
        assert!(
            apart > 1e-3,
            "{name}: the photos give the same outputs ({apart})"
        );
        let together: Vec<Vec<f64>> = stage
            .batch(&items, 2)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let diff = max_diff(&together, &single);
        assert!(
            diff < QUERY_TOLERANCE,
            "{name}: {diff} (tweets {apart} apart)"
        );
    }
}

#[test]
fn a_bad_tweet_in_a_multi_image_run_fails_alone() {
    crate::require_venv!();
    let mut tweets = query_tweets(12);
    tweets[3].image = None; // no decoded image
    tweets[5].queries.pop(); // one query fewer than entities
    tweets[7].queries.clear(); // no queries: nothing to run
    tweets[7].entities.clear();
    let items = query_items(&tweets);
    for name in ["arch-clip.toml", "arch-owlvit.toml"] {
        let mut stage = QueryStage::load(name);
        let out = stage.batch(&items, 32);
        assert_eq!(out.len(), 12);
        for (i, got) in out.into_iter().enumerate() {
            match i {
                3 => {
                    let e = got.unwrap_err();
                    assert!(
                        e.starts_with("tweet q3: image ") && e.contains("no decoded image"),
                        "{e}"
                    );
                }
                5 => {
                    let e = got.unwrap_err();
                    assert!(
                        e.contains("tweet q5") && e.contains("5 entities but 4 queries"),
                        "{e}"
                    );
                }
                7 => assert_eq!(got.unwrap(), Vec::<f64>::new()),
                _ => assert_eq!(
                    got.unwrap(),
                    stage.single(&items[i]).unwrap(),
                    "{name} q{i}"
                ),
            }
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
