//! The matching core shared by every task and protocol: tweets aligned by id, then a greedy pass
//! over the predictions in file order where each takes the first still-unused gold entity of its
//! tweet that matches (the RiVEG seed protocol, ../shared/docs/PROTOCOLS.md). With unique spans
//! (the span protocol) this is exactly seqeval's set intersection.

use std::collections::HashMap;

use crate::data::model::{Dataset, Entity};
use crate::geometry::box_iou;

/// Which protocol keys entities.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// RiVEG `statistic.py`: image id + entity string (+ type), greedy in file order, gold used up.
    Riveg,
    /// H-Index / seqeval: (tweet, start token, end token, type).
    Span,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Riveg => "riveg",
            Protocol::Span => "span",
        }
    }
}

/// What part of the type an entity key includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKey {
    None,
    Coarse,
    Fine,
}

/// What the visual part of a match requires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grounding {
    /// Text only (MNER).
    Ignore,
    /// Both ungroundable, or the predicted box has IoU >= threshold with any gold box.
    Box { iou_threshold: f64 },
    /// Both ungroundable, or the predicted mask has IoU >= threshold with any gold mask.
    Mask { iou_threshold: f64 },
}

/// Gold and predicted entities of one tweet id (several records with one id are concatenated).
pub struct AlignedTweet<'a> {
    pub id: &'a str,
    pub gold: Vec<&'a Entity>,
    pub pred: Vec<&'a Entity>,
}

/// Aligns gold and predictions by tweet id: gold order first, then ids only the predictions have.
pub fn align<'a>(gold: &'a Dataset, pred: &'a Dataset) -> Vec<AlignedTweet<'a>> {
    let mut out: Vec<AlignedTweet<'a>> = Vec::with_capacity(gold.tweets.len());
    let mut index: HashMap<&'a str, usize> = HashMap::with_capacity(gold.tweets.len());
    for t in &gold.tweets {
        let i = *index.entry(t.id.as_str()).or_insert_with(|| {
            out.push(AlignedTweet {
                id: &t.id,
                gold: Vec::new(),
                pred: Vec::new(),
            });
            out.len() - 1
        });
        out[i].gold.extend(t.entities.iter());
    }
    for t in &pred.tweets {
        let i = *index.entry(t.id.as_str()).or_insert_with(|| {
            out.push(AlignedTweet {
                id: &t.id,
                gold: Vec::new(),
                pred: Vec::new(),
            });
            out.len() - 1
        });
        out[i].pred.extend(t.entities.iter());
    }
    out
}

/// Whether two entities have the same key under a protocol and type key.
pub fn same_key(protocol: Protocol, types: TypeKey, g: &Entity, p: &Entity) -> bool {
    let located = match protocol {
        Protocol::Riveg => g.text == p.text,
        Protocol::Span => g.start.is_some() && g.start == p.start && g.end == p.end,
    };
    located
        && match types {
            TypeKey::None => true,
            TypeKey::Coarse => g.entity_type == p.entity_type,
            TypeKey::Fine => g.fine_type.is_some() && g.fine_type == p.fine_type,
        }
}

/// The best IoU of the predicted box against the gold boxes (0 without a predicted box).
pub fn best_box_iou(g: &Entity, p: &Entity) -> f64 {
    match p.boxes.first() {
        None => 0.0,
        Some(pb) => g.boxes.iter().map(|gb| box_iou(gb, pb)).fold(0.0, f64::max),
    }
}

/// The best mask IoU of the predicted mask against the gold masks (0 without a predicted mask).
pub fn best_mask_iou(g: &Entity, p: &Entity) -> f64 {
    match p.masks.first() {
        None => 0.0,
        Some(pm) => g
            .masks
            .iter()
            .map(|gm| mask_iou_or_zero(gm, pm))
            .fold(0.0, f64::max),
    }
}

/// Whether the visual part of a prediction is right.
pub fn grounding_ok(grounding: Grounding, g: &Entity, p: &Entity) -> bool {
    match grounding {
        Grounding::Ignore => true,
        Grounding::Box { iou_threshold } => match (g.groundable, p.groundable) {
            (false, false) => true,
            (true, true) => best_box_iou(g, p) >= iou_threshold,
            _ => false,
        },
        Grounding::Mask { iou_threshold } => match (g.groundable, p.groundable) {
            (false, false) => true,
            (true, true) => best_mask_iou(g, p) >= iou_threshold,
            _ => false,
        },
    }
}

/// Greedy matching of one tweet: `result[i]` is the gold index that prediction i took.
/// `taken` marks gold entities already used (by an earlier pass), and is updated.
pub fn greedy_match(
    gold: &[&Entity],
    pred: &[&Entity],
    taken: &mut [bool],
    pred_done: &[bool],
    mut matches: impl FnMut(&Entity, &Entity) -> bool,
) -> Vec<Option<usize>> {
    let mut result = vec![None; pred.len()];
    for (i, p) in pred.iter().enumerate() {
        if pred_done[i] {
            continue;
        }
        for (j, g) in gold.iter().enumerate() {
            if !taken[j] && matches(g, p) {
                taken[j] = true;
                result[i] = Some(j);
                break;
            }
        }
    }
    result
}

/// A task's definition: key and visual requirement.
#[derive(Debug, Clone, Copy)]
pub struct TaskSpec {
    pub types: TypeKey,
    pub grounding: Grounding,
}

/// Matches one tweet for a task; returns (pred → gold) pairs.
pub fn match_tweet(protocol: Protocol, spec: TaskSpec, t: &AlignedTweet<'_>) -> Vec<Option<usize>> {
    let mut taken = vec![false; t.gold.len()];
    let done = vec![false; t.pred.len()];
    greedy_match(&t.gold, &t.pred, &mut taken, &done, |g, p| {
        same_key(protocol, spec.types, g, p) && grounding_ok(spec.grounding, g, p)
    })
}

/// Mask IoU; masks that cannot be compared (malformed, or of different sizes) count as no
/// overlap. Readers validate masks, so this only happens for sizes that differ between gold and
/// prediction.
fn mask_iou_or_zero(a: &crate::geometry::CocoRle, b: &crate::geometry::CocoRle) -> f64 {
    match (a.to_rle(), b.to_rle()) {
        (Ok(a), Ok(b)) => crate::geometry::rle::mask_iou(&a, &b).unwrap_or(0.0),
        _ => 0.0,
    }
}
