//! The canonical data model (../shared/docs/FORMATS.md): one [`Tweet`] per line of a JSONL file,
//! entities in source order. Readers produce it, the pipeline extends it, scorers read only it.
//! This module must not know about models, metrics or reports.

use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, CocoRle};

/// A whole split (gold) or a system's output for it (predictions), in source order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub tweets: Vec<Tweet>,
}

/// One tweet and its entities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tweet {
    /// Tweet / image id as in the dataset (`IMGID:` value, e.g. `O_2371` or `71044`).
    pub id: String,
    /// Image file name relative to the dataset's image folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The tweet's tokens; absent when the source has only entity strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
    #[serde(default)]
    pub entities: Vec<Entity>,
}

/// One entity (gold or predicted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Surface text: tokens joined by single spaces.
    pub text: String,
    /// Coarse type as in the source (PER/LOC/ORG/OTHER, or FMNERG's coarse names).
    #[serde(rename = "type")]
    pub entity_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_type: Option<String>,
    /// Token offsets, end exclusive; required for the span protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<usize>,
    /// Gold: has at least one box. Prediction: the VE decision.
    pub groundable: bool,
    /// Gold: all boxes; prediction: at most one. Empty when not groundable.
    #[serde(default)]
    pub boxes: Vec<BBox>,
    /// COCO RLE masks (SMNER); gold: all, prediction: at most one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<CocoRle>,
    /// The reformulation stage's output (entity expansion expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expansion: Option<String>,
    /// A stable id of this prediction (RiVEG's `img.jpg#hhhh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Confidence, for threshold sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl Entity {
    /// A text-only entity (no grounding yet).
    pub fn new(text: impl Into<String>, entity_type: impl Into<String>) -> Self {
        Entity {
            text: text.into(),
            entity_type: entity_type.into(),
            ..Default::default()
        }
    }

    /// The token span, when both offsets are known.
    pub fn span(&self) -> Option<(usize, usize)> {
        Some((self.start?, self.end?))
    }
}

impl Tweet {
    /// The image file name: the explicit one, else `<id>.jpg` as in Twitter-GMNER.
    pub fn image_name(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("{}.jpg", self.id))
    }
}

impl Dataset {
    pub fn entity_count(&self) -> usize {
        self.tweets.iter().map(|t| t.entities.len()).sum()
    }

    /// Whether every entity has token offsets (needed by the span protocol).
    pub fn has_spans(&self) -> bool {
        self.tweets
            .iter()
            .flat_map(|t| &t.entities)
            .all(|e| e.span().is_some())
    }

    /// Whether any entity carries a fine type (FMNERG).
    pub fn has_fine_types(&self) -> bool {
        self.tweets
            .iter()
            .flat_map(|t| &t.entities)
            .any(|e| e.fine_type.is_some())
    }

    /// Whether any entity carries a mask (SMNER).
    pub fn has_masks(&self) -> bool {
        self.tweets
            .iter()
            .flat_map(|t| &t.entities)
            .any(|e| !e.masks.is_empty())
    }
}
