//! [`LlmReformulator`]: the pipeline's reformulation stage backed by an LLM. For one tweet it
//! renders the prompt per entity, answers what it can from the [`ResponseCache`], sends the rest
//! (at most `max_concurrency` at once, one request per distinct prompt) and returns the entity
//! expansion expressions in entity order.
//!
//! When a request fails (after the client's retries), no new request is started for that tweet,
//! replies already received are still cached, and the error of the first failed entity in entity
//! order is returned, naming the tweet and entity.
//!
//! [`LlmReformulator::reformulate_many`] does the same for several tweets at once (the pipeline's
//! window): every tweet's requests share one pool of at most `max_concurrency` in flight, so a
//! slow endpoint is kept busy across tweets; a failure stops only its own tweet's requests, and
//! each tweet's answer does not depend on the order in which replies arrive.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// One tweet's requests: its jobs, the answers so far, and the distinct prompts still to send
/// (each with the jobs it answers).
struct TweetPlan<'a> {
    tweet: &'a Tweet,
    jobs: Vec<Job<'a>>,
    results: Vec<Option<Result<String, LlmError>>>,
    to_send: Vec<Vec<usize>>,
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
        self.reformulate_many(&[(tweet, entities)])
            .pop()
            .unwrap_or_else(|| {
                Err(LlmError::Other {
                    what: format!("tweet {}: no answer", tweet.id),
                    hint: "this is a bug in riveg-bench's LLM stage; please report it".to_string(),
                })
            })
    }

    /// [`LlmReformulator::reformulate_entities`] for several tweets, their requests in flight
    /// together (see the module doc); answers in `items` order.
    pub fn reformulate_many(
        &self,
        items: &[(&Tweet, &[Entity])],
    ) -> Vec<Result<Vec<String>, LlmError>> {
        let config = self.client.config();
        let counters = self.client.counters();
        let mut plans: Vec<TweetPlan<'_>> = Vec::with_capacity(items.len());
        for (tweet, entities) in items {
            let text = tweet_text(tweet);
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
            // Distinct prompts still to ask, each with the jobs it answers (duplicates in one
            // tweet share a request).
            let mut to_send: Vec<Vec<usize>> = Vec::new();
            let mut first_of: HashMap<&CacheKey, usize> = HashMap::new();
            for (i, job) in jobs.iter().enumerate() {
                if let Some(expansion) = self.cached_expansion(job) {
                    counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    results[i] = Some(Ok(expansion));
                    continue;
                }
                counters.cache_misses.fetch_add(1, Ordering::Relaxed);
                match first_of.get(&job.key) {
                    Some(&slot) => to_send[slot].push(i),
                    None => {
                        first_of.insert(&job.key, to_send.len());
                        to_send.push(vec![i]);
                    }
                }
            }
            plans.push(TweetPlan {
                tweet,
                jobs,
                results,
                to_send,
            });
        }

        // Every tweet's requests in one bounded pool; a failure stops its own tweet only.
        let sends: Vec<(usize, usize)> = plans
            .iter()
            .enumerate()
            .flat_map(|(t, p)| (0..p.to_send.len()).map(move |slot| (t, slot)))
            .collect();
        let failed: Vec<AtomicBool> = plans.iter().map(|_| AtomicBool::new(false)).collect();
        let replies =
            super::bounded::run_bounded(sends.len(), config.max_concurrency, false, |s| {
                let (t, slot) = sends[s];
                if failed[t].load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let job = &plans[t].jobs[plans[t].to_send[slot][0]];
                match self.client.chat(&job.messages, &job.item) {
                    Ok(content) => Ok(Some(content)),
                    Err(e) => {
                        failed[t].store(true, Ordering::Relaxed);
                        Err(e)
                    }
                }
            });
        for (&(t, slot), reply) in sends.iter().zip(replies) {
            // `None` / `Ok(None)`: not sent, because an earlier request of the tweet failed.
            let content = match reply {
                Some(Ok(Some(content))) => content,
                Some(Ok(None)) | None => continue,
                Some(Err(e)) => {
                    let first = plans[t].to_send[slot][0];
                    plans[t].results[first] = Some(Err(e));
                    continue;
                }
            };
            let plan = &mut plans[t];
            let mut cacheable = true;
            for &i in &plan.to_send[slot] {
                let job = &plan.jobs[i];
                plan.results[i] = Some(
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
                self.store(&plan.jobs[plan.to_send[slot][0]], &content);
            }
        }

        plans
            .into_iter()
            .map(|plan| {
                // The first error in entity order; `None` slots exist only when some request
                // failed.
                let n = plan.jobs.len();
                let mut expansions = Vec::with_capacity(n);
                for result in plan.results.into_iter().flatten() {
                    expansions.push(result?);
                }
                if expansions.len() != n {
                    return Err(LlmError::Other {
                        what: format!("tweet {}: some entities got no expansion", plan.tweet.id),
                        hint: "this is a bug in riveg-bench's LLM stage; please report it"
                            .to_string(),
                    });
                }
                Ok(expansions)
            })
            .collect()
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
}
