//! The LLM-backed stages: [`LlmReformulator`] (from `crate::llm`) as the pipeline's
//! [`Reformulator`], and [`LlmKnowledge`], the `knowledge = "llm"` stage (auxiliary context for
//! the tagger, prompt `prompts/knowledge-v1.txt`, or `prompts/knowledge-caption-v1.txt` with an
//! image caption per tweet from [`Captions`]; answers in the LLM response cache). `llm/` knows
//! nothing of the pipeline; the adapters live here.
//!
//! Both keep the requests of a whole window in flight together (their batch entry points), at
//! most the endpoint's `max_concurrency` at once (`llm::bounded`); answers come back in tweet
//! order whatever order the replies arrive in, and each tweet's latency row gets an equal share
//! of the wall time (see [`Timed`]).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::captions::Captions;
use super::stages::{Knowledge, Reformulator, StageError, StageKind, Timed};
use crate::data::model::{Entity, Tweet};
use crate::llm::cache::CachedReply;
use crate::llm::prompt::tweet_text;
use crate::llm::{
    CacheKey, ChatMessage, Item, LlmClient, LlmConfig, LlmError, LlmReformulator, PromptTemplate,
    ResponseCache,
};

/// The built-in knowledge prompt (versioned like the reformulation prompts).
const KNOWLEDGE_V1: &str = include_str!("prompts/knowledge-v1.txt");
/// The built-in knowledge prompt that also shows the LLM a caption of the tweet's image.
const KNOWLEDGE_CAPTION_V1: &str = include_str!("prompts/knowledge-caption-v1.txt");

/// Ids of the built-in knowledge prompts (`[llm] knowledge_prompt`).
pub const KNOWLEDGE_PROMPTS: [&str; 2] = ["knowledge-v1", "knowledge-caption-v1"];

/// The placeholder a knowledge prompt fills with the tweet image's caption.
pub const CAPTION_PLACEHOLDER: &str = "{caption}";

/// Whether a knowledge prompt shows the LLM an image caption (and so needs captions).
pub fn wants_caption(template: &PromptTemplate) -> bool {
    template.user.contains(CAPTION_PLACEHOLDER) || template.system.contains(CAPTION_PLACEHOLDER)
}

/// The knowledge prompt: `knowledge-v1` (or `knowledge`, the latest), `knowledge-caption-v1`
/// (or `knowledge-caption`; needs captions), else a template file whose `[user]` section holds
/// `{tweet}` (and `{caption}` when it wants captions).
pub fn knowledge_prompt(id_or_path: &str, base: &Path) -> Result<PromptTemplate, LlmError> {
    match id_or_path {
        "knowledge" | "knowledge-v1" => PromptTemplate::parse_requiring(
            "knowledge",
            "v1",
            KNOWLEDGE_V1,
            "src/pipeline/prompts/knowledge-v1.txt",
            &["{tweet}"],
        ),
        "knowledge-caption" | "knowledge-caption-v1" => PromptTemplate::parse_requiring(
            "knowledge-caption",
            "v1",
            KNOWLEDGE_CAPTION_V1,
            "src/pipeline/prompts/knowledge-caption-v1.txt",
            &["{tweet}", CAPTION_PLACEHOLDER],
        ),
        path => {
            let p = Path::new(path);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            PromptTemplate::from_file_requiring(&p, &["{tweet}"])
        }
    }
}

/// `knowledge = "llm"`: one request per tweet (response cache first); the reply, on one line, is
/// the context.
pub struct LlmKnowledge {
    client: LlmClient,
    template: PromptTemplate,
    cache: Option<ResponseCache>,
    /// Image captions, when the prompt shows them ([`wants_caption`]).
    captions: Option<Captions>,
}

impl LlmKnowledge {
    /// `captions` must be given exactly when the template [`wants_caption`] (the backend checks
    /// that with a suite-level error; here a missing caption is a per-tweet error).
    pub fn new(
        config: LlmConfig,
        template: PromptTemplate,
        cache_dir: Option<&Path>,
        captions: Option<Captions>,
    ) -> Result<Self, LlmError> {
        Ok(LlmKnowledge {
            client: LlmClient::new(config)?,
            template,
            cache: cache_dir.map(ResponseCache::open).transpose()?,
            captions,
        })
    }

    pub fn template(&self) -> &PromptTemplate {
        &self.template
    }

    pub fn client(&self) -> &LlmClient {
        &self.client
    }

    fn messages(&self, tweet: &Tweet) -> Result<Vec<ChatMessage>, StageError> {
        let text = tweet_text(tweet)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut values = vec![("{tweet}", text)];
        if let Some(captions) = &self.captions {
            let image = tweet.image_name();
            let caption = captions.get(&image).ok_or_else(|| {
                StageError::item(
                    &tweet.id,
                    None,
                    format!(
                        "{} has no caption for image {image}",
                        captions.path().display()
                    ),
                    format!(
                        "add a line {{\"image\": \"{image}\", \"caption\": \"...\"}}, or use a \
                         knowledge prompt without {CAPTION_PLACEHOLDER}"
                    ),
                )
            })?;
            values.push((CAPTION_PLACEHOLDER, caption.to_string()));
        }
        let (system, user) = self.template.fill_with(&values);
        let mut messages = Vec::with_capacity(2);
        if !system.is_empty() {
            messages.push(ChatMessage::system(system));
        }
        messages.push(ChatMessage::user(user));
        Ok(messages)
    }
}

impl Knowledge for LlmKnowledge {
    fn kind(&self) -> StageKind {
        StageKind::Llm
    }

    fn context(&mut self, tweet: &Tweet) -> Result<String, StageError> {
        self.context_of(tweet)
    }

    /// Every tweet's request in flight together (at most `max_concurrency`).
    fn context_batch(&mut self, tweets: &[&Tweet]) -> Vec<Timed<String>> {
        let t0 = Instant::now();
        let this = &*self;
        let answers = crate::llm::bounded::run_bounded(
            tweets.len(),
            this.client.config().max_concurrency,
            false,
            |i| this.context_of(tweets[i]),
        );
        let results = answers
            .into_iter()
            .zip(tweets)
            .map(|(a, t)| a.unwrap_or_else(|| Err(never_sent(t))))
            .collect();
        Timed::shared(results, t0.elapsed().as_secs_f64() * 1000.0)
    }
}

/// A job `run_bounded` did not start (it starts every job when not stopping on errors).
fn never_sent(tweet: &Tweet) -> StageError {
    StageError::item(
        &tweet.id,
        None,
        "the LLM request was never sent",
        "this is a bug in riveg-bench; please report it",
    )
}

impl LlmKnowledge {
    fn context_of(&self, tweet: &Tweet) -> Result<String, StageError> {
        let messages = self.messages(tweet)?;
        let key = CacheKey::for_chat(self.client.config(), &self.template, &messages);
        let counters = self.client.counters();
        if let Some(entry) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(self.client.redactor().redact(&entry.content).into_owned());
        }
        counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        let item = Item {
            tweet_id: Some(tweet.id.clone()),
            entity: None,
        };
        let reply = self.client.chat(&messages, &item)?;
        // One segment of plain text: line breaks would only be whitespace to the tokenizer.
        let context = reply.split_whitespace().collect::<Vec<_>>().join(" ");
        if context.is_empty() {
            return Err(StageError::item(
                &tweet.id,
                None,
                "the LLM wrote an empty knowledge context",
                "check the knowledge prompt and the endpoint's model",
            ));
        }
        if let Some(cache) = &self.cache {
            let entry =
                CachedReply::new(&key, &self.client.config().model, &self.template, &context);
            if let Err(e) = cache.put(&key, &entry) {
                log::warn!("LLM response cache write failed ({e}); continuing without caching");
            }
        }
        Ok(context)
    }
}

impl Reformulator for LlmReformulator {
    fn kind(&self) -> StageKind {
        StageKind::Llm
    }

    fn reformulate(
        &mut self,
        tweet: &Tweet,
        entities: &[Entity],
    ) -> Result<Vec<String>, StageError> {
        Ok(self.reformulate_entities(tweet, entities)?)
    }

    /// Every tweet's requests in one bounded pool (see `LlmReformulator::reformulate_many`).
    fn reformulate_batch(&mut self, items: &[(&Tweet, Vec<Entity>)]) -> Vec<Timed<Vec<String>>> {
        let t0 = Instant::now();
        let borrowed: Vec<(&Tweet, &[Entity])> =
            items.iter().map(|(t, e)| (*t, e.as_slice())).collect();
        let results = self
            .reformulate_many(&borrowed)
            .into_iter()
            .map(|r| r.map_err(StageError::from))
            .collect();
        Timed::shared(results, t0.elapsed().as_secs_f64() * 1000.0)
    }
}
