//! The `mllm` stage kinds: a multimodal LLM ([`MllmAnnotator`], from `crate::llm`) serving as
//! tagger (its entities and types), entailer (its groundability decision) and grounder (its box).
//! A suite can run it end to end (all three `mllm`) or in hybrids with RiVEG's stages.
//!
//! The three stages of a run share one [`SharedMllm`], so a tweet costs one MLLM request however
//! many of them (and however many variants) ask: the answers of the last [`MEMO_TWEETS`] tweets
//! are kept in memory (the executor runs a window of tweets through the tagger, then through the
//! entailer and grounder, so a window's answers must all still be there), and the annotator's
//! response cache
//! keys on the image bytes as sent, the prompt and every request setting, so a re-run asks
//! nothing. For the same reason the stage cache does not hold `mllm` outputs (their slot has no
//! fingerprint): its keys do not cover the image. The `mllm` tagger's batch entry point asks for
//! the window's tweets concurrently (at most the endpoint's `max_concurrency` requests in flight,
//! through `llm::bounded`), answers in tweet order whatever order they come back in; in hybrids
//! with another tagger the `mllm` entailer does the same in `prepare_window`. This file must not
//! score or write anything.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::stages::{
    Entailer, Grounder, Grounding, StageError, StageKind, TagItem, Tagger, Timed, TweetInput,
};
use crate::bench::LatencyRecorder;
use crate::data::model::{Entity, Tweet};
use crate::geometry::BBox;
use crate::llm::mllm::Grounding as MllmGrounding;
use crate::llm::{MllmAnnotator, MllmAnswer, MllmError};
use crate::results::MllmMeta;

/// Answers kept in memory: more than the executor's largest window (512 tweets, or one batch
/// when `[runtime] batch` is larger), so the entailer and grounder of a window find every answer
/// the tagger asked for.
pub const MEMO_TWEETS: usize = 4096;

type MemoKey = (String, u64);
type Answer = Result<Arc<MllmAnswer>, Arc<MllmError>>;

/// The answers of the last [`MEMO_TWEETS`] (tweet, image) pairs asked about, oldest first out.
#[derive(Default)]
struct Memo {
    answers: HashMap<MemoKey, Answer>,
    order: VecDeque<MemoKey>,
}

impl Memo {
    fn insert(&mut self, key: MemoKey, answer: Answer) {
        if self.answers.insert(key.clone(), answer).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MEMO_TWEETS {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }
}

/// One MLLM shared by the `mllm` tagger, entailer and grounder of a run.
pub struct SharedMllm {
    annotator: MllmAnnotator,
    memo: Mutex<Memo>,
    /// Latency of each answer (requests and response-cache hits, which count as cached).
    latency: Mutex<LatencyRecorder>,
    /// Entities of another tagger that the MLLM did not list (entailer/grounder `mllm`).
    not_listed: AtomicU64,
    /// Entities the grounder was asked to box that the MLLM listed without a box.
    no_box: AtomicU64,
}

impl SharedMllm {
    pub fn new(annotator: MllmAnnotator, warmup: usize) -> Self {
        SharedMllm {
            annotator,
            memo: Mutex::new(Memo::default()),
            latency: Mutex::new(LatencyRecorder::new(warmup)),
            not_listed: AtomicU64::new(0),
            no_box: AtomicU64::new(0),
        }
    }

    pub fn annotator(&self) -> &MllmAnnotator {
        &self.annotator
    }

    /// The MLLM's answer for this tweet and image: asked once, then shared.
    pub fn answer(&self, input: &TweetInput<'_>) -> Result<Arc<MllmAnswer>, StageError> {
        let tweet = input.tweet;
        let Some(image) = input.image else {
            return Err(StageError::item(
                &tweet.id,
                None,
                "the mllm stage got no image",
                "this is a bug in riveg-bench (mllm stages read pixels); please report it",
            ));
        };
        let mut h = DefaultHasher::new();
        image.dimensions().hash(&mut h);
        image.as_raw().hash(&mut h);
        let key = (tweet.id.clone(), h.finish());
        if let Some(answer) = self
            .memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .answers
            .get(&key)
        {
            return answer.clone().map_err(StageError::Mllm);
        }
        // The lock is not held over the request, so several tweets' requests can be in flight.
        let t0 = Instant::now();
        let answer = self
            .annotator
            .annotate(tweet, image)
            .map(Arc::new)
            .map_err(Arc::new);
        {
            let mut rec = self.latency.lock().unwrap_or_else(|p| p.into_inner());
            match &answer {
                Ok(a) if a.from_cache => rec.record_cached(),
                _ => rec.record(t0.elapsed().as_secs_f64() * 1000.0),
            }
        }
        if let Ok(a) = &answer {
            if let Err(why) = a.span_protocol() {
                log::warn!("{why}: the span protocol will not apply to this variant");
            }
        }
        self.memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, answer.clone());
        answer.map_err(StageError::Mllm)
    }

    /// Asks for every input's answer, at most `max_concurrency` in flight; answers (and errors)
    /// land in the memo. Returns the wall time in ms.
    fn prefetch(&self, inputs: &[TweetInput<'_>]) -> f64 {
        let t0 = Instant::now();
        let workers = self.annotator.client().config().max_concurrency;
        crate::llm::bounded::run_bounded(inputs.len(), workers, false, |i| {
            self.answer(&inputs[i]).map(|_| ())
        });
        t0.elapsed().as_secs_f64() * 1000.0
    }

    /// What results.json records of the MLLM: settings, request and outcome counts, latency.
    pub fn meta(&self) -> MllmMeta {
        let stats = self.annotator.stats();
        let settings = self.annotator.settings();
        let config = self.annotator.client().config();
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .summary();
        MllmMeta {
            model: config.model.clone(),
            prompt: self.annotator.template().id().to_string(),
            request_fields: config.request_fields(),
            settings: serde_json::to_value(settings).unwrap_or_default(),
            fingerprint: self.annotator.fingerprint(),
            requests_sent: stats.llm.requests_sent,
            retries: stats.llm.retries,
            cache_hits: stats.llm.cache_hits,
            tweets_ok: stats.tweets_ok,
            errors: stats.errors,
            issues: stats.issues,
            not_listed: self.not_listed.load(Ordering::Relaxed),
            listed_without_box: self.no_box.load(Ordering::Relaxed),
            latency_ms: latency,
            completion_tokens: stats.llm.completion_tokens,
            tokens_per_s: stats.llm.tokens_per_s(),
        }
    }
}

/// `tagger = "mllm"`: the MLLM's entities and types (with token spans where they align), not
/// grounded: groundability and boxes are the entailer's and grounder's to decide.
pub struct MllmTagger(pub Arc<SharedMllm>);

impl Tagger for MllmTagger {
    fn kind(&self) -> StageKind {
        StageKind::Mllm
    }
    fn tag(&mut self, tweet: &Tweet) -> Result<Vec<Entity>, StageError> {
        Err(StageError::item(
            &tweet.id,
            None,
            "the mllm tagger needs the tweet's image",
            "this is a bug in riveg-bench (call tag_input); please report it",
        ))
    }
    fn needs_pixels(&self) -> bool {
        true
    }
    fn tag_input(&mut self, input: &TweetInput<'_>) -> Result<Vec<Entity>, StageError> {
        mllm_entities(&self.0, input)
    }
    /// The window's requests in flight together (at most `max_concurrency`); each tweet's
    /// latency row gets an equal share of the wall time (see [`Timed`]).
    fn tag_batch(&mut self, items: &[TagItem<'_>], _batch: usize) -> Vec<Timed<Vec<Entity>>> {
        let shared = &*self.0;
        let workers = shared.annotator.client().config().max_concurrency;
        let t0 = Instant::now();
        let answers = crate::llm::bounded::run_bounded(items.len(), workers, false, |i| {
            mllm_entities(shared, &items[i].input)
        });
        let results = answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                a.unwrap_or_else(|| {
                    Err(StageError::item(
                        &items[i].input.tweet.id,
                        None,
                        "the mllm request was never sent",
                        "this is a bug in riveg-bench; please report it",
                    ))
                })
            })
            .collect();
        Timed::shared(results, t0.elapsed().as_secs_f64() * 1000.0)
    }
}

/// The MLLM's entities for one tweet, not grounded (the tagger's view of the answer).
fn mllm_entities(shared: &SharedMllm, input: &TweetInput<'_>) -> Result<Vec<Entity>, StageError> {
    let answer = shared.answer(input)?;
    Ok(answer
        .to_entities()
        .into_iter()
        .map(|e| Entity {
            groundable: false,
            boxes: Vec::new(),
            ..e
        })
        .collect())
}

/// What the MLLM says of each entity (of any tagger), counting the ones it did not list.
fn groundings(
    shared: &SharedMllm,
    input: &TweetInput<'_>,
    entities: &[Entity],
) -> Result<Vec<MllmGrounding>, StageError> {
    let answer = shared.answer(input)?;
    Ok(entities
        .iter()
        .map(|e| {
            let g = answer.grounding_for(e);
            if g == MllmGrounding::NotListed {
                shared.not_listed.fetch_add(1, Ordering::Relaxed);
            }
            g
        })
        .collect())
}

/// `entailer = "mllm"`: probability 1 when the MLLM gave the entity a box, else 0 (listed
/// without a box, or not listed: counted as `not_listed`).
pub struct MllmEntailer(pub Arc<SharedMllm>);

impl Entailer for MllmEntailer {
    fn kind(&self) -> StageKind {
        StageKind::Mllm
    }
    fn needs_pixels(&self) -> bool {
        true
    }
    /// The window's answers in flight together (hybrids whose tagger is not the MLLM).
    fn prepare_window(&mut self, inputs: &[TweetInput<'_>]) -> f64 {
        self.0.prefetch(inputs)
    }
    fn entail(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        _queries: &[String],
    ) -> Result<Vec<f32>, StageError> {
        Ok(groundings(&self.0, input, entities)?
            .into_iter()
            .map(|g| match g {
                MllmGrounding::Listed { bbox: Some(_) } => 1.0,
                _ => 0.0,
            })
            .collect())
    }
}

/// `grounder = "mllm"`: the MLLM's box. An entity the MLLM gave no box (possible in hybrids,
/// where another entailer decided it is groundable) gets the degenerate box `[0, 0, 0, 0]` with
/// score 0, as the oracle and replay grounders do, and is counted (`listed_without_box` or
/// `not_listed`).
pub struct MllmGrounder(pub Arc<SharedMllm>);

impl Grounder for MllmGrounder {
    fn kind(&self) -> StageKind {
        StageKind::Mllm
    }
    fn needs_pixels(&self) -> bool {
        true
    }
    fn ground(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        _queries: &[String],
    ) -> Result<Vec<Grounding>, StageError> {
        Ok(groundings(&self.0, input, entities)?
            .into_iter()
            .map(|g| match g {
                MllmGrounding::Listed { bbox: Some(b) } => Grounding {
                    bbox: BBox(b),
                    score: 1.0,
                },
                other => {
                    if matches!(other, MllmGrounding::Listed { bbox: None }) {
                        self.0.no_box.fetch_add(1, Ordering::Relaxed);
                    }
                    Grounding {
                        bbox: BBox::new(0.0, 0.0, 0.0, 0.0),
                        score: 0.0,
                    }
                }
            })
            .collect())
    }
}
