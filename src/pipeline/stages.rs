//! One small trait per pipeline stage. Each has real implementations (ONNX through ort, HTTP for
//! the LLM) and replay / oracle ones; mocks live in tests. ort sessions need `&mut self` to run,
//! so the traits take `&mut self`. The one-tweet methods see one tweet at a time, so that image
//! work is batched per image (VE and VG score every entity of a tweet in one call; the segmenter
//! encodes the image once and decodes every box against that embedding).
//!
//! The executor runs a window of tweets stage by stage, so the stages also have entry points over
//! many tweets ([`Knowledge::context_batch`], [`Tagger::tag_batch`],
//! [`Reformulator::reformulate_batch`], [`Entailer::entail_batch`], [`Grounder::ground_batch`]):
//! the ONNX tagger batches across tweets, the ONNX entailer and single-pass grounder put several
//! tweets' images and queries in one run when their model takes an `image_index`, the LLM stages
//! keep several tweets' requests in flight. Their default implementations call the one-tweet
//! method per item and time each call, so replay, oracle, MLLM and mock stages need nothing more.
//! Every batch entry point answers each item on its own ([`Timed`]), in item order: one tweet's
//! error never fails another's. The segmenter stays per tweet (the executor shares its image
//! embedding across the variants of a tweet).

use serde::{Deserialize, Serialize};

use crate::data::model::{Entity, Tweet};
use crate::geometry::{BBox, CocoRle};
pub use crate::stage::{Stage, StageKind};

/// What a stage sees of one tweet: the canonical record and, for stages that need pixels, the
/// decoded RGB image (the runner loads it once per tweet).
#[derive(Clone, Copy)]
pub struct TweetInput<'a> {
    pub tweet: &'a Tweet,
    pub image: Option<&'a image::RgbImage>,
}

/// One grounding answer: a box in original-image pixels and the model's confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Grounding {
    pub bbox: BBox,
    pub score: f32,
}

/// One item's answer from a batch entry point, with its share of the time spent.
///
/// `ms` is what the item's latency row records: a call that served one item records its own
/// time; a batched call (several tweets in one ONNX run, or requests in flight together) shares
/// its wall time equally over the items it served (`time / n`), so the rows of a stage still sum
/// to the time the stage took.
#[derive(Debug)]
pub struct Timed<T> {
    pub result: Result<T, StageError>,
    pub ms: f64,
}

impl<T> Timed<T> {
    /// Times one call.
    pub fn call(f: impl FnOnce() -> Result<T, StageError>) -> Self {
        let t0 = std::time::Instant::now();
        let result = f();
        Timed {
            result,
            ms: t0.elapsed().as_secs_f64() * 1000.0,
        }
    }

    /// The answers of one batched call that took `total_ms`, each with an equal share.
    pub fn shared(results: Vec<Result<T, StageError>>, total_ms: f64) -> Vec<Self> {
        let share = total_ms / results.len().max(1) as f64;
        results
            .into_iter()
            .map(|result| Timed { result, ms: share })
            .collect()
    }
}

/// One tweet for [`Tagger::tag_batch`]: the tweet (with its image when the tagger needs pixels)
/// and the knowledge context, if the variant has one.
pub struct TagItem<'a> {
    pub input: TweetInput<'a>,
    pub context: Option<&'a str>,
}

/// Auxiliary knowledge: a tweet → context text for the tagger (PGIM-style: an LLM writes what
/// it knows about the tweet's names; the tagger reads it as a second segment).
pub trait Knowledge {
    fn kind(&self) -> StageKind;
    fn context(&mut self, tweet: &Tweet) -> Result<String, StageError>;
    /// The context of each tweet, in order; by default one [`Knowledge::context`] call each.
    fn context_batch(&mut self, tweets: &[&Tweet]) -> Vec<Timed<String>> {
        tweets
            .iter()
            .map(|t| Timed::call(|| self.context(t)))
            .collect()
    }
}

/// MNER: tokens → typed entity spans (text, type, start, end; not yet grounded).
pub trait Tagger {
    fn kind(&self) -> StageKind;
    fn tag(&mut self, tweet: &Tweet) -> Result<Vec<Entity>, StageError>;
    /// Whether [`Tagger::tag_input`] needs the image (the MLLM tagger reads it; text taggers
    /// do not, and the runner then never decodes it for them).
    fn needs_pixels(&self) -> bool {
        false
    }
    /// Tags a tweet with its image at hand (when [`Tagger::needs_pixels`]); text taggers tag
    /// the tokens.
    fn tag_input(&mut self, input: &TweetInput<'_>) -> Result<Vec<Entity>, StageError> {
        self.tag(input.tweet)
    }
    /// Tags the tweet's tokens reading `context` (the knowledge stage's text) as a second
    /// segment; labels only the tweet's words. Taggers that cannot read a context say so.
    fn tag_with_context(
        &mut self,
        input: &TweetInput<'_>,
        context: &str,
    ) -> Result<Vec<Entity>, StageError> {
        let _ = context;
        Err(StageError::item(
            &input.tweet.id,
            None,
            format!("a {:?} tagger cannot read a knowledge context", self.kind()),
            "use knowledge with tagger = \"onnx\" (a model exported with segments), or knowledge = \"off\"",
        ))
    }
    /// Tags many tweets, answers in item order. `batch` is the most tweets a model call may
    /// take at once (`[runtime] batch`); by default each item is one call
    /// ([`Tagger::tag_with_context`] with a context, else [`Tagger::tag_input`]).
    fn tag_batch(&mut self, items: &[TagItem<'_>], batch: usize) -> Vec<Timed<Vec<Entity>>> {
        let _ = batch;
        items
            .iter()
            .map(|item| {
                Timed::call(|| match item.context {
                    Some(c) => self.tag_with_context(&item.input, c),
                    None => self.tag_input(&item.input),
                })
            })
            .collect()
    }
}

/// Reformulation: each entity → an "entity expansion expression" (`Entity(TYPE)-description`).
pub trait Reformulator {
    fn kind(&self) -> StageKind;
    fn reformulate(
        &mut self,
        tweet: &Tweet,
        entities: &[Entity],
    ) -> Result<Vec<String>, StageError>;
    /// The expansions of each (tweet, entities) item, in order; by default one
    /// [`Reformulator::reformulate`] call per tweet.
    fn reformulate_batch(&mut self, items: &[(&Tweet, Vec<Entity>)]) -> Vec<Timed<Vec<String>>> {
        items
            .iter()
            .map(|(tweet, entities)| Timed::call(|| self.reformulate(tweet, entities)))
            .collect()
    }
}

/// One tweet for [`Entailer::entail_batch`] and [`Grounder::ground_batch`]: the tweet (with its
/// image when the stage reads pixels), its entities and one query per entity.
pub struct QueryItem<'a> {
    pub input: TweetInput<'a>,
    pub entities: &'a [Entity],
    pub queries: &'a [String],
}

/// The answer of a batch entry point called with one item: that item's result (no item, no
/// answer: nothing to score).
pub fn only_answer<T>(mut answers: Vec<Timed<Vec<T>>>) -> Result<Vec<T>, StageError> {
    answers.pop().map_or(Ok(Vec::new()), |a| a.result)
}

/// Visual entailment: image + query per entity → probability that the entity is in the image.
pub trait Entailer {
    fn kind(&self) -> StageKind;
    fn needs_pixels(&self) -> bool;
    /// Called with the window's tweets (those with entities) before [`Entailer::entail_batch`]:
    /// a stage whose answers come from a slow endpoint (the MLLM, which answers one tweet per
    /// `entail` call) asks for them all here, in flight together. Returns the time it took
    /// (shared by those tweets' latency rows); by default does nothing.
    fn prepare_window(&mut self, inputs: &[TweetInput<'_>]) -> f64 {
        let _ = inputs;
        0.0
    }
    fn entail(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        queries: &[String],
    ) -> Result<Vec<f32>, StageError>;
    /// The probabilities of each item's entities, in item order. `batch` is the most images
    /// (tweets) a model run may take at once (`[runtime] batch`); by default each item is one
    /// [`Entailer::entail`] call.
    fn entail_batch(&mut self, items: &[QueryItem<'_>], batch: usize) -> Vec<Timed<Vec<f32>>> {
        let _ = batch;
        items
            .iter()
            .map(|i| Timed::call(|| self.entail(&i.input, i.entities, i.queries)))
            .collect()
    }
}

/// Visual grounding: image + query per entity → one box in original-image pixels.
pub trait Grounder {
    fn kind(&self) -> StageKind;
    fn needs_pixels(&self) -> bool;
    fn ground(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        queries: &[String],
    ) -> Result<Vec<Grounding>, StageError>;
    /// The boxes of each item's entities, in item order; `batch` as in
    /// [`Entailer::entail_batch`]. By default each item is one [`Grounder::ground`] call.
    fn ground_batch(
        &mut self,
        items: &[QueryItem<'_>],
        batch: usize,
    ) -> Vec<Timed<Vec<Grounding>>> {
        let _ = batch;
        items
            .iter()
            .map(|i| Timed::call(|| self.ground(&i.input, i.entities, i.queries)))
            .collect()
    }
}

/// Box-prompted segmentation: image + one box per entity → one mask each.
pub trait Segmenter {
    fn kind(&self) -> StageKind;
    fn needs_pixels(&self) -> bool;
    fn segment(
        &mut self,
        input: &TweetInput<'_>,
        boxes: &[BBox],
    ) -> Result<Vec<CocoRle>, StageError>;
}

/// A stage failed on one item (tweet / entity) or could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("tweet {tweet_id}: image {path} is missing or unreadable: {why}\n  hint: {hint}")]
    Image {
        tweet_id: String,
        path: String,
        why: String,
        hint: String,
    },
    #[error("tweet {tweet_id}{}: {what}\n  hint: {hint}", entity.as_ref().map(|e| format!(", entity {e:?}")).unwrap_or_default())]
    Item {
        tweet_id: String,
        entity: Option<String>,
        what: String,
        hint: String,
    },
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
    /// The MLLM's answer for the tweet failed; shared (`Arc`) because the tagger, entailer and
    /// grounder of a tweet share one request, and so its one error.
    #[error(transparent)]
    Mllm(std::sync::Arc<crate::llm::MllmError>),
}

impl StageError {
    pub fn item(
        tweet_id: impl Into<String>,
        entity: Option<&str>,
        what: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        StageError::Item {
            tweet_id: tweet_id.into(),
            entity: entity.map(str::to_string),
            what: what.into(),
            hint: hint.into(),
        }
    }
}
