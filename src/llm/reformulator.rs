//! [`LlmReformulator`]: the pipeline's reformulation stage backed by an LLM. For one tweet it
//! renders the prompt per entity, answers what it can from the [`ResponseCache`], sends the rest
//! (at most `max_concurrency` at once, one request per distinct prompt) and returns the entity
//! expansion expressions in entity order.
//!
//! When a request fails (after the client's retries), no new request is started for that tweet,
//! replies already received are still cached, and the error of the first failed entity in entity
//! order is returned, naming the tweet and entity.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::cache::{CacheKey, CachedReply, ResponseCache};
use super::client::{ChatMessage, LlmClient, LlmConfig, LlmStats};
use super::error::{Item, LlmError};
use super::prompt::{parse_expansion, tweet_text, PromptTemplate};
use crate::data::model::{Entity, Tweet};

/// One entity's request.
struct Job<'a> {
    entity: &'a Entity,
    item: Item,
    messages: Vec<ChatMessage>,
    key: CacheKey,
}

/// The LLM reformulation stage.
#[derive(Debug)]
pub struct LlmReformulator {
    client: LlmClient,
    template: PromptTemplate,
    cache: Option<ResponseCache>,
}

impl LlmReformulator {
    /// A client for `config` (reads the API key variable now), the template, and a cache in
    /// `cache_dir` (created if needed; `None` = no cache). Makes no request.
    pub fn new(
        config: LlmConfig,
        template: PromptTemplate,
        cache_dir: Option<&Path>,
    ) -> Result<Self, LlmError> {
        let client = LlmClient::new(config)?;
        let cache = cache_dir.map(ResponseCache::open).transpose()?;
        Ok(LlmReformulator::with_parts(client, template, cache))
    }

    /// From parts built elsewhere.
    pub fn with_parts(
        client: LlmClient,
        template: PromptTemplate,
        cache: Option<ResponseCache>,
    ) -> Self {
        LlmReformulator {
            client,
            template,
            cache,
        }
    }

    pub fn client(&self) -> &LlmClient {
        &self.client
    }

    pub fn template(&self) -> &PromptTemplate {
        &self.template
    }

    pub fn cache(&self) -> Option<&ResponseCache> {
        self.cache.as_ref()
    }

    /// Requests, retries and cache use so far (for reports).
    pub fn stats(&self) -> LlmStats {
        self.client.stats()
    }

    /// The expansions of `entities` (of `tweet`), in entity order.
    pub fn reformulate_entities(
        &self,
        tweet: &Tweet,
        entities: &[Entity],
    ) -> Result<Vec<String>, LlmError> {
        let text = tweet_text(tweet);
        let config = self.client.config();
        let jobs: Vec<Job<'_>> = entities
            .iter()
            .map(|entity| {
                let messages = self
                    .template
                    .render(&text, &entity.text, &entity.entity_type);
                let key = CacheKey::for_chat(config, &self.template, &messages);
                Job {
                    entity,
                    item: Item::entity(&tweet.id, &entity.text),
                    messages,
                    key,
                }
            })
            .collect();

        let mut results: Vec<Option<Result<String, LlmError>>> =
            jobs.iter().map(|_| None).collect();
        // Distinct prompts still to ask, each with the jobs it answers (duplicates in one tweet
        // share a request).
        let mut to_send: Vec<usize> = Vec::new();
        let mut sharing: HashMap<&CacheKey, Vec<usize>> = HashMap::new();
        let counters = self.client.counters();
        for (i, job) in jobs.iter().enumerate() {
            if let Some(expansion) = self.cached_expansion(job) {
                counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                results[i] = Some(Ok(expansion));
                continue;
            }
            counters.cache_misses.fetch_add(1, Ordering::Relaxed);
            let same = sharing.entry(&job.key).or_default();
            if same.is_empty() {
                to_send.push(i);
            }
            same.push(i);
        }

        let replies = self.send_bounded(&jobs, &to_send);
        for (first, reply) in to_send.iter().zip(replies) {
            let Some(reply) = reply else { continue };
            let content = match reply {
                Ok(content) => content,
                Err(e) => {
                    results[*first] = Some(Err(e));
                    continue;
                }
            };
            let mut cacheable = true;
            for &i in &sharing[&jobs[*first].key] {
                let job = &jobs[i];
                results[i] = Some(
                    match parse_expansion(&content, &job.entity.text, &job.entity.entity_type) {
                        Some(expansion) => Ok(expansion),
                        None => {
                            cacheable = false;
                            Err(LlmError::EmptyReply {
                                endpoint: self.client.chat_url().to_string(),
                                item: Box::new(job.item.clone()),
                                why: format!(
                                    "the reply {content:?} holds no description after normalisation"
                                ),
                                hint: "the model should answer `Entity(TYPE)-description`: check the prompt template".to_string(),
                            })
                        }
                    },
                );
            }
            if cacheable {
                self.store(&jobs[*first], &content);
            }
        }

        // The first error in entity order; `None` slots exist only when some request failed.
        let mut expansions = Vec::with_capacity(jobs.len());
        for result in results.into_iter().flatten() {
            expansions.push(result?);
        }
        if expansions.len() != jobs.len() {
            return Err(LlmError::Other {
                what: format!("tweet {}: some entities got no expansion", tweet.id),
                hint: "this is a bug in riveg-bench's LLM stage; please report it".to_string(),
            });
        }
        Ok(expansions)
    }

    fn cached_expansion(&self, job: &Job<'_>) -> Option<String> {
        let entry = self.cache.as_ref()?.get(&job.key)?;
        let expansion = parse_expansion(&entry.content, &job.entity.text, &job.entity.entity_type);
        if expansion.is_none() {
            log::warn!(
                "{}cached LLM reply {:?} is empty after normalisation; asking again",
                job.item,
                entry.content
            );
        }
        expansion
    }

    fn store(&self, job: &Job<'_>, content: &str) {
        let Some(cache) = &self.cache else { return };
        let entry = CachedReply::new(
            &job.key,
            &self.client.config().model,
            &self.template,
            content,
        );
        if let Err(e) = cache.put(&job.key, &entry) {
            log::warn!(
                "{}cannot write LLM cache file {} ({e}); the reply is used but not cached",
                job.item,
                cache.path_for(&job.key).display()
            );
        }
    }

    /// Sends `jobs[i]` for each `i` in `order`, at most `max_concurrency` at once; the replies
    /// come back in `order`'s order. After a failure no new request starts (their slot is `None`).
    fn send_bounded(
        &self,
        jobs: &[Job<'_>],
        order: &[usize],
    ) -> Vec<Option<Result<String, LlmError>>> {
        super::bounded::run_bounded(
            order.len(),
            self.client.config().max_concurrency,
            true,
            |slot| {
                let i = order[slot];
                self.client.chat(&jobs[i].messages, &jobs[i].item)
            },
        )
    }
}
