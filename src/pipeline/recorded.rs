//! Replay and oracle stage implementations: outputs recorded in files (e.g. RiVEG's released VE
//! file and its expansions) and answers derived from gold. Both look entities up per tweet: by
//! `uid` when the entity has one, else the first not-yet-used entity with the same text and type
//! (the seed protocol's greedy rule), so duplicates pair up in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::data::model::{Dataset, Entity, Tweet};
use crate::geometry::{BBox, CocoRle};

use super::config::ReplayMissing;
use super::slots::{AnyStage, BuildError, Recordings};
use super::stages::{
    Entailer, Grounder, Grounding, Reformulator, StageError, StageKind, Tagger, TweetInput,
};
use crate::stage::Stage;

/// Entities of a dataset by tweet id, in order.
#[derive(Debug, Default)]
pub struct EntityIndex {
    by_tweet: HashMap<String, Vec<Entity>>,
    /// Lookups that found nothing and fell back to the negative answer.
    pub missing: AtomicUsize,
}

impl EntityIndex {
    pub fn new(dataset: &Dataset) -> Self {
        let mut by_tweet: HashMap<String, Vec<Entity>> = HashMap::new();
        for t in &dataset.tweets {
            by_tweet
                .entry(t.id.clone())
                .or_default()
                .extend(t.entities.iter().cloned());
        }
        EntityIndex {
            by_tweet,
            missing: AtomicUsize::new(0),
        }
    }

    pub fn tweet(&self, id: &str) -> &[Entity] {
        self.by_tweet.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// For each query entity, the index of its counterpart in this tweet (see the module doc).
    pub fn pair(&self, tweet_id: &str, entities: &[Entity]) -> Vec<Option<usize>> {
        let recorded = self.tweet(tweet_id);
        let mut used = vec![false; recorded.len()];
        entities
            .iter()
            .map(|e| {
                let by_uid = e
                    .uid
                    .as_ref()
                    .and_then(|u| recorded.iter().position(|r| r.uid.as_ref() == Some(u)));
                let found = by_uid.filter(|&i| !used[i]).or_else(|| {
                    recorded.iter().enumerate().position(|(i, r)| {
                        !used[i] && r.text == e.text && r.entity_type == e.entity_type
                    })
                });
                if let Some(i) = found {
                    used[i] = true;
                }
                found
            })
            .collect()
    }
}

impl EntityIndex {
    /// The replay answer for each entity: `answer(recorded counterpart)` when the recording has
    /// one that answers, else per `missing` an error naming the entity or `negative(entity)`
    /// (counted in [`EntityIndex::missing`]).
    pub fn replay<T>(
        &self,
        stage: &str,
        tweet_id: &str,
        entities: &[Entity],
        missing: ReplayMissing,
        answer: impl Fn(&Entity) -> Option<T>,
        negative: impl Fn(&Entity) -> T,
    ) -> Result<Vec<T>, StageError> {
        let recorded = self.tweet(tweet_id);
        let pairs = self.pair(tweet_id, entities);
        entities
            .iter()
            .zip(pairs)
            .map(|(e, p)| match p.and_then(|i| answer(&recorded[i])) {
                Some(x) => Ok(x),
                None => match missing {
                    ReplayMissing::Error => Err(missing_error(stage, tweet_id, e)),
                    ReplayMissing::Negative => {
                        self.missing.fetch_add(1, Ordering::Relaxed);
                        Ok(negative(e))
                    }
                },
            })
            .collect()
    }
}

fn missing_error(stage: &str, tweet: &str, e: &Entity) -> StageError {
    StageError::item(
        tweet,
        Some(&e.text),
        format!(
            "the recording has no {stage} output for this entity ({})",
            e.entity_type
        ),
        "record outputs for every entity, or set settings.replay_missing = \"negative\"",
    )
}

/// Replays a recorded tagger output (the entities of a prediction file).
pub struct ReplayTagger {
    pub recording: Arc<EntityIndex>,
}

impl Tagger for ReplayTagger {
    fn kind(&self) -> StageKind {
        StageKind::Replay
    }
    fn tag(&mut self, tweet: &Tweet) -> Result<Vec<Entity>, StageError> {
        Ok(self
            .recording
            .tweet(&tweet.id)
            .iter()
            .map(|e| Entity {
                text: e.text.clone(),
                entity_type: e.entity_type.clone(),
                fine_type: e.fine_type.clone(),
                start: e.start,
                end: e.end,
                uid: e.uid.clone(),
                ..Default::default()
            })
            .collect())
    }
}

/// Replays recorded expansions.
pub struct ReplayReformulator {
    pub recording: Arc<EntityIndex>,
    pub missing: ReplayMissing,
}

impl Reformulator for ReplayReformulator {
    fn kind(&self) -> StageKind {
        StageKind::Replay
    }
    fn reformulate(
        &mut self,
        tweet: &Tweet,
        entities: &[Entity],
    ) -> Result<Vec<String>, StageError> {
        self.recording.replay(
            "reformulation",
            &tweet.id,
            entities,
            self.missing,
            |r| r.expansion.clone(),
            |e| e.text.clone(),
        )
    }
}

/// Replays recorded VE decisions (probability 1 for groundable, 0 otherwise).
pub struct ReplayEntailer {
    pub recording: Arc<EntityIndex>,
    pub missing: ReplayMissing,
}

impl Entailer for ReplayEntailer {
    fn kind(&self) -> StageKind {
        StageKind::Replay
    }
    fn needs_pixels(&self) -> bool {
        false
    }
    fn entail(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        _queries: &[String],
    ) -> Result<Vec<f32>, StageError> {
        self.recording.replay(
            "VE",
            &input.tweet.id,
            entities,
            self.missing,
            |r| Some(if r.groundable { 1.0 } else { 0.0 }),
            |_| 0.0,
        )
    }
}

/// Replays recorded boxes.
pub struct ReplayGrounder {
    pub recording: Arc<EntityIndex>,
    pub missing: ReplayMissing,
}

impl Grounder for ReplayGrounder {
    fn kind(&self) -> StageKind {
        StageKind::Replay
    }
    fn needs_pixels(&self) -> bool {
        false
    }
    fn ground(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        _queries: &[String],
    ) -> Result<Vec<Grounding>, StageError> {
        self.recording.replay(
            "VG",
            &input.tweet.id,
            entities,
            self.missing,
            |r| {
                r.boxes.first().map(|b| Grounding {
                    bbox: *b,
                    score: 1.0,
                })
            },
            |_| Grounding {
                bbox: BBox::new(0.0, 0.0, 0.0, 0.0),
                score: 0.0,
            },
        )
    }
}

/// Oracle MNER: the gold entities (text, type, span), not grounded.
pub struct OracleTagger {
    pub gold: Arc<EntityIndex>,
}

impl Tagger for OracleTagger {
    fn kind(&self) -> StageKind {
        StageKind::Oracle
    }
    fn tag(&mut self, tweet: &Tweet) -> Result<Vec<Entity>, StageError> {
        Ok(self
            .gold
            .tweet(&tweet.id)
            .iter()
            .map(|e| Entity {
                text: e.text.clone(),
                entity_type: e.entity_type.clone(),
                fine_type: e.fine_type.clone(),
                start: e.start,
                end: e.end,
                ..Default::default()
            })
            .collect())
    }
}

/// Oracle VE: groundable exactly when the matched gold entity (same text and type, greedy) is.
pub struct OracleEntailer {
    pub gold: Arc<EntityIndex>,
}

impl Entailer for OracleEntailer {
    fn kind(&self) -> StageKind {
        StageKind::Oracle
    }
    fn needs_pixels(&self) -> bool {
        false
    }
    fn entail(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        _queries: &[String],
    ) -> Result<Vec<f32>, StageError> {
        let gold = self.gold.tweet(&input.tweet.id);
        // Gold entities carry no uid: pairing is by text and type.
        let stripped: Vec<Entity> = entities
            .iter()
            .map(|e| Entity {
                uid: None,
                ..e.clone()
            })
            .collect();
        Ok(self
            .gold
            .pair(&input.tweet.id, &stripped)
            .into_iter()
            .map(|p| match p {
                Some(i) if gold[i].groundable => 1.0,
                _ => 0.0,
            })
            .collect())
    }
}

/// Oracle VG: a box of the gold entity with the same tweet and text (any type); a degenerate box
/// `[0, 0, 0, 0]` when there is none.
pub struct OracleGrounder {
    pub gold: Arc<EntityIndex>,
}

impl Grounder for OracleGrounder {
    fn kind(&self) -> StageKind {
        StageKind::Oracle
    }
    fn needs_pixels(&self) -> bool {
        false
    }
    fn ground(
        &mut self,
        input: &TweetInput<'_>,
        entities: &[Entity],
        _queries: &[String],
    ) -> Result<Vec<Grounding>, StageError> {
        let gold = self.gold.tweet(&input.tweet.id);
        Ok(entities
            .iter()
            .map(|e| {
                match gold
                    .iter()
                    .find(|g| g.text == e.text && !g.boxes.is_empty())
                {
                    Some(g) => Grounding {
                        bbox: g.boxes[0],
                        score: 1.0,
                    },
                    None => Grounding {
                        bbox: BBox::new(0.0, 0.0, 0.0, 0.0),
                        score: 0.0,
                    },
                }
            })
            .collect())
    }
}

/// The image size to use for box-as-mask: a gold mask's size for this tweet when there is one.
pub fn gold_mask_size(gold: &EntityIndex, tweet_id: &str) -> Option<[u32; 2]> {
    gold.tweet(tweet_id)
        .iter()
        .flat_map(|e| e.masks.iter())
        .map(|m: &CocoRle| m.size)
        .next()
}

/// Builds the recorded implementation of `stage` for `kind` (replay from the recording, oracle
/// from gold); `None` when `kind` is not a recorded kind, or this stage has no recorded form.
pub fn build_recorded(
    stage: Stage,
    kind: StageKind,
    from: &Recordings,
) -> Option<Result<AnyStage, BuildError>> {
    let missing = from.replay_missing;
    let gold = || from.gold.clone();
    let recording = || {
        from.recording
            .clone()
            .ok_or(BuildError::NoRecording { stage })
    };
    let built = match (stage, kind) {
        (Stage::Tagger, StageKind::Replay) => {
            recording().map(|recording| AnyStage::Tagger(Box::new(ReplayTagger { recording })))
        }
        (Stage::Tagger, StageKind::Oracle) => {
            Ok(AnyStage::Tagger(Box::new(OracleTagger { gold: gold() })))
        }
        (Stage::Reformulator, StageKind::Replay) => recording().map(|recording| {
            AnyStage::Reformulator(Box::new(ReplayReformulator { recording, missing }))
        }),
        (Stage::Entailer, StageKind::Replay) => recording()
            .map(|recording| AnyStage::Entailer(Box::new(ReplayEntailer { recording, missing }))),
        (Stage::Entailer, StageKind::Oracle) => Ok(AnyStage::Entailer(Box::new(OracleEntailer {
            gold: gold(),
        }))),
        (Stage::Grounder, StageKind::Replay) => recording()
            .map(|recording| AnyStage::Grounder(Box::new(ReplayGrounder { recording, missing }))),
        (Stage::Grounder, StageKind::Oracle) => Ok(AnyStage::Grounder(Box::new(OracleGrounder {
            gold: gold(),
        }))),
        (_, StageKind::Replay | StageKind::Oracle) => Err(BuildError::Unsupported {
            stage,
            kind,
            hint: format!(
                "{} has no recorded form; use onnx, box or off",
                stage.name()
            ),
        }),
        _ => return None,
    };
    Some(built)
}
