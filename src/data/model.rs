//! The canonical data model (../shared/docs/FORMATS.md): one [`Tweet`] per line of a JSONL file,
//! entities in source order. Readers produce it, the pipeline extends it, scorers read only it.
//! This module must not know about models, metrics or reports.

use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, CocoRle};

/// A whole split (gold) or a system's output for it (predictions), in source order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub tweets: Vec<Tweet>,
    /// Which side the data is and where it came from, when known (the canonical JSONL header
    /// record; readers set it on import). `None` for files written before headers existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<DatasetMeta>,
}

/// Which side of an evaluation a dataset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Reference annotations: a groundable entity has at least one box or mask.
    Gold,
    /// A system's output: a groundable entity may lack a box (a text-only source, or VE without
    /// grounding).
    Predictions,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Gold => "gold",
            Side::Predictions => "predictions",
        }
    }
}

/// The canonical JSONL header (see `data::jsonl`): the side and the source format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetMeta {
    pub side: Side,
    /// The source format the file was imported from (e.g. `twitter-gmner txt+xml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl DatasetMeta {
    pub fn new(side: Side, source: impl Into<String>) -> Self {
        DatasetMeta {
            side,
            source: Some(source.into()),
        }
    }
}

/// Extension data kept verbatim (the canonical `extra` object; written back with sorted keys).
pub type Extra = serde_json::Map<String, serde_json::Value>;

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
    /// Extension data (any JSON object), read and written back unchanged; the harness ignores it.
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
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
    /// Extension data (any JSON object), read and written back unchanged; the harness ignores it.
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
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
    /// A dataset of these tweets with no header.
    pub fn new(tweets: Vec<Tweet>) -> Self {
        Dataset { tweets, meta: None }
    }

    /// The recorded side, if the file said.
    pub fn side(&self) -> Option<Side> {
        self.meta.as_ref().map(|m| m.side)
    }

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
