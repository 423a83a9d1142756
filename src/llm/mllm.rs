//! A multimodal LLM (MLLM) as a whole GMNER system: one request per tweet with the tweet's text
//! and its image, one reply listing the entities, their types and boxes.
//!
//! - [`EncodedImage`]: the image resized to `max_image_side` (aspect kept) and encoded as JPEG
//!   or PNG, sent as a base64 `data:` URL in an `image_url` content part.
//! - The prompt is versioned like the reformulation prompt (`prompts/gmner-mllm-v1.txt`, compiled
//!   in; a file path gives a custom template versioned by its sha256).
//! - [`parse_reply`] reads the JSON list `[{"entity", "type", "box": [x1, y1, x2, y2] | null}]`
//!   out of a reply robustly: code fences, text before or after, an `{"entities": [...]}`
//!   wrapper, `text`/`label`/`bbox` as field names. Boxes follow the suite's [`BoxConvention`]
//!   (pixels of the image as sent, 0-1 normalised, or Qwen-VL's 0-1000 grid) and are returned in
//!   pixels of the original image.
//! - [`validate`] checks what a well-formed reply can still get wrong: a box outside the image,
//!   negative or swapped coordinates, an empty box, a type outside the label set, an entity that
//!   is not in the tweet. Each is an [`MllmIssue`], counted; [`IssuePolicy`] decides whether it
//!   is repaired with a warning (box clipped or swapped, entity kept without a span) or is an
//!   error naming the tweet. Nothing is dropped silently.
//! - [`align`] finds an entity's tokens in the tweet (exact, then ignoring case), so the span
//!   protocol applies; when some entity cannot be found, [`MllmAnswer::span_protocol`] says why
//!   it cannot.
//! - [`MllmAnnotator`] ties these to the [`LlmClient`] (its retries, timeouts, concurrency limit
//!   and key handling) and the [`ResponseCache`] (the key covers the image bytes as sent).
//!
//! This module must not know about pipeline stages, scoring or reports: the pipeline's `mllm`
//! stage kinds wrap [`MllmAnnotator`] and map [`IssuePolicy`] from `--on-error` (fail → `Error`,
//! skip → `Warn`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use base64::Engine as _;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::cache::{CacheKey, CachedReply, ResponseCache};
use super::client::{ContentPart, LlmClient, LlmConfig, LlmStats, MultimodalMessage};
use super::error::{Item, LlmError};
use super::prompt::{tweet_text, PromptTemplate};
use crate::data::model::{Entity, Tweet};
use crate::geometry::bbox::BBox;

const GMNER_MLLM_V1: &str = include_str!("prompts/gmner-mllm-v1.txt");

/// Placeholders every MLLM prompt's `[user]` section must hold.
const REQUIRED_PLACEHOLDERS: [&str; 1] = ["{tweet}"];

/// The built-in MLLM prompt ids.
pub const BUILTIN_PROMPTS: [&str; 1] = ["gmner-mllm-v1"];

/// The MLLM prompt: a built-in id (`gmner-mllm-v1`, or `gmner-mllm` for the latest) or the path
/// of a template file whose `[user]` section holds `{tweet}`.
pub fn mllm_prompt(id_or_path: &str) -> Result<PromptTemplate, LlmError> {
    match id_or_path {
        "gmner-mllm" | "gmner-mllm-v1" => PromptTemplate::parse_requiring(
            "gmner-mllm",
            "v1",
            GMNER_MLLM_V1,
            "prompts/gmner-mllm-v1.txt",
            &REQUIRED_PLACEHOLDERS,
        ),
        path => PromptTemplate::from_file_requiring(Path::new(path), &REQUIRED_PLACEHOLDERS),
    }
}

/// How the image is encoded for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Smaller requests; what most hosted APIs recommend for photos.
    #[default]
    Jpeg,
    /// Lossless.
    Png,
}

impl ImageFormat {
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }
}

/// The coordinates a model writes its boxes in (declared per suite: models differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxConvention {
    /// Pixels of the image as sent (after resizing).
    #[default]
    Pixel,
    /// Fractions of the width and height, 0 to 1.
    Normalized,
    /// A 0-1000 grid over the width and height (Qwen-VL, Qwen2-VL).
    Grid1000,
}

impl BoxConvention {
    pub fn name(self) -> &'static str {
        match self {
            BoxConvention::Pixel => "pixel",
            BoxConvention::Normalized => "normalized",
            BoxConvention::Grid1000 => "grid1000",
        }
    }

    /// The sentence the prompt uses for `{box_format}`.
    pub fn describe(self, width: u32, height: u32) -> String {
        match self {
            BoxConvention::Pixel => format!(
                "pixel coordinates of the image as you see it ({width}x{height} pixels, origin at the top-left)"
            ),
            BoxConvention::Normalized => "coordinates normalised to 0-1 (x divided by the image width, y by its height, origin at the top-left)".to_string(),
            BoxConvention::Grid1000 => "coordinates on a 0-1000 grid (x scaled so that the image width is 1000, y so that its height is 1000, origin at the top-left)".to_string(),
        }
    }

    /// The factors that take a box in this convention to pixels of an image of
    /// `original` size, given the size `sent` to the model.
    fn scale(self, sent: (u32, u32), original: (u32, u32)) -> (f64, f64) {
        let (ow, oh) = (f64::from(original.0), f64::from(original.1));
        match self {
            BoxConvention::Pixel => (ow / f64::from(sent.0.max(1)), oh / f64::from(sent.1.max(1))),
            BoxConvention::Normalized => (ow, oh),
            BoxConvention::Grid1000 => (ow / 1000.0, oh / 1000.0),
        }
    }
}

impl std::str::FromStr for BoxConvention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pixel" => Ok(BoxConvention::Pixel),
            "normalized" | "normalised" => Ok(BoxConvention::Normalized),
            "grid1000" => Ok(BoxConvention::Grid1000),
            other => Err(format!(
                "unknown box convention {other:?}; use pixel, normalized or grid1000"
            )),
        }
    }
}

/// What to do with a well-formed reply's [`MllmIssue`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuePolicy {
    /// The first issue is an [`MllmError::Invalid`] naming the tweet (`--on-error fail`).
    #[default]
    Error,
    /// Repair (clip or swap the box, keep the entity without a span), count and log a warning
    /// (`--on-error skip`).
    Warn,
}

/// The MLLM settings of a suite (the endpoint itself is the `[llm]` table's [`LlmConfig`]).
/// Every field has a default; e.g. for Qwen2-VL behind vLLM:
///
/// ```toml
/// [llm]
/// base_url = "http://127.0.0.1:8000/v1"
/// model = "Qwen/Qwen2-VL-7B-Instruct"
/// temperature = 0
/// max_tokens = 512
/// seed = 1
///
/// [mllm]
/// prompt = "gmner-mllm-v1"
/// max_image_side = 1024
/// image_format = "jpeg"      # or "png"
/// box_convention = "grid1000" # "pixel" (of the image as sent) or "normalized" (0-1)
/// labels = ["PER", "LOC", "ORG", "OTHER"]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MllmSettings {
    /// A built-in prompt id (`gmner-mllm-v1`) or a template file.
    pub prompt: String,
    /// The image's longer side is scaled down to this many pixels (aspect kept; never up);
    /// 0 sends the image at its size.
    pub max_image_side: u32,
    pub image_format: ImageFormat,
    /// JPEG quality, 1-100 (ignored for PNG).
    pub jpeg_quality: u8,
    /// The coordinates the model writes boxes in.
    pub box_convention: BoxConvention,
    /// The entity types the model may use (its answers are matched ignoring case).
    pub labels: Vec<String>,
}

impl Default for MllmSettings {
    fn default() -> Self {
        MllmSettings {
            prompt: "gmner-mllm-v1".to_string(),
            max_image_side: 1024,
            image_format: ImageFormat::Jpeg,
            jpeg_quality: 90,
            box_convention: BoxConvention::Pixel,
            labels: ["PER", "LOC", "ORG", "OTHER"]
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }
}

impl MllmSettings {
    /// Checks what can be checked without a request.
    pub fn validate(&self) -> Result<(), LlmError> {
        let config_error = |what: String, hint: &str| {
            Err(LlmError::Config {
                what,
                hint: hint.to_string(),
            })
        };
        if !(1..=100).contains(&self.jpeg_quality) {
            return config_error(
                format!("mllm jpeg_quality {} is outside 1..=100", self.jpeg_quality),
                "use e.g. jpeg_quality = 90",
            );
        }
        if self.labels.iter().all(|l| l.trim().is_empty()) {
            return config_error(
                "mllm labels is empty".to_string(),
                "list the entity types, e.g. labels = [\"PER\", \"LOC\", \"ORG\", \"OTHER\"]",
            );
        }
        if (1..16).contains(&self.max_image_side) {
            return config_error(
                format!(
                    "mllm max_image_side {} is too small to show anything",
                    self.max_image_side
                ),
                "use e.g. max_image_side = 1024, or 0 to send images at their size",
            );
        }
        Ok(())
    }
}

/// An image ready to send: its encoded bytes and both sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedImage {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    /// Width and height as sent.
    pub sent_size: (u32, u32),
    /// Width and height of the original image (boxes are returned in these pixels).
    pub original_size: (u32, u32),
}

impl EncodedImage {
    /// Resizes `image` so that its longer side is at most `max_side` (0: no limit) and encodes it.
    pub fn encode(
        image: &RgbImage,
        max_side: u32,
        format: ImageFormat,
        jpeg_quality: u8,
    ) -> Result<EncodedImage, image::ImageError> {
        let original_size = image.dimensions();
        let (w, h) = original_size;
        let longer = w.max(h);
        let resized;
        let to_send = if max_side > 0 && longer > max_side {
            let scale = f64::from(max_side) / f64::from(longer);
            let nw = ((f64::from(w) * scale).round() as u32).clamp(1, max_side);
            let nh = ((f64::from(h) * scale).round() as u32).clamp(1, max_side);
            resized = image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle);
            &resized
        } else {
            image
        };
        let mut bytes = Vec::new();
        match format {
            ImageFormat::Jpeg => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(
                    &mut Cursor::new(&mut bytes),
                    jpeg_quality.clamp(1, 100),
                )
                .encode_image(to_send)?;
            }
            ImageFormat::Png => {
                to_send.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)?;
            }
        }
        Ok(EncodedImage {
            bytes,
            format,
            sent_size: to_send.dimensions(),
            original_size,
        })
    }

    /// `data:image/jpeg;base64,...`.
    pub fn data_url(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.format.mime(),
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }
}

/// One entity as the model gave it, its box in pixels of the original image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MllmEntity {
    pub text: String,
    pub entity_type: String,
    /// `[x1, y1, x2, y2]` in original-image pixels; `None`: not shown in the image.
    pub bbox: Option<[f64; 4]>,
    /// Token offsets in the tweet (end exclusive), when [`align`] found the entity.
    pub start: Option<usize>,
    pub end: Option<usize>,
}

impl MllmEntity {
    /// The canonical prediction: groundable when it has a box.
    pub fn to_entity(&self) -> Entity {
        Entity {
            text: self.text.clone(),
            entity_type: self.entity_type.clone(),
            start: self.start,
            end: self.end,
            groundable: self.bbox.is_some(),
            boxes: self.bbox.map(BBox).into_iter().collect(),
            ..Entity::default()
        }
    }
}

/// Something a well-formed reply got wrong. Each is counted (by [`MllmIssue::kind`]) and,
/// under [`IssuePolicy::Warn`], repaired as its doc says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MllmIssue {
    /// A coordinate below 0: clipped to 0.
    BoxNegative { entity: String, bbox: [f64; 4] },
    /// A coordinate beyond the image's width or height: clipped to the edge.
    BoxOutside {
        entity: String,
        bbox: [f64; 4],
        width: u32,
        height: u32,
    },
    /// x1 > x2 or y1 > y2: the corners are swapped.
    BoxSwapped { entity: String, bbox: [f64; 4] },
    /// No area left (after clipping): the entity is kept as not groundable.
    BoxEmpty { entity: String, bbox: [f64; 4] },
    /// A type not in the label set: kept as the model wrote it (scored as a wrong type).
    TypeOutsideLabels {
        entity: String,
        entity_type: String,
        labels: Vec<String>,
    },
    /// The entity's words are not in the tweet: kept without a span (the span protocol cannot
    /// apply to this tweet).
    EntityNotFound { entity: String },
}

impl MllmIssue {
    /// A short stable name for counting (`box_outside`, `entity_not_found`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            MllmIssue::BoxNegative { .. } => "box_negative",
            MllmIssue::BoxOutside { .. } => "box_outside",
            MllmIssue::BoxSwapped { .. } => "box_swapped",
            MllmIssue::BoxEmpty { .. } => "box_empty",
            MllmIssue::TypeOutsideLabels { .. } => "type_outside_labels",
            MllmIssue::EntityNotFound { .. } => "entity_not_found",
        }
    }
}

fn show_box(b: &[f64; 4]) -> String {
    format!("[{:.1}, {:.1}, {:.1}, {:.1}]", b[0], b[1], b[2], b[3])
}

impl fmt::Display for MllmIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MllmIssue::BoxNegative { entity, bbox } => write!(
                f,
                "entity {entity:?}: box {} has a negative coordinate",
                show_box(bbox)
            ),
            MllmIssue::BoxOutside {
                entity,
                bbox,
                width,
                height,
            } => write!(
                f,
                "entity {entity:?}: box {} reaches outside the {width}x{height} image",
                show_box(bbox)
            ),
            MllmIssue::BoxSwapped { entity, bbox } => write!(
                f,
                "entity {entity:?}: box {} has swapped corners (x1 > x2 or y1 > y2)",
                show_box(bbox)
            ),
            MllmIssue::BoxEmpty { entity, bbox } => write!(
                f,
                "entity {entity:?}: box {} has no area inside the image",
                show_box(bbox)
            ),
            MllmIssue::TypeOutsideLabels {
                entity,
                entity_type,
                labels,
            } => write!(
                f,
                "entity {entity:?}: type {entity_type:?} is not one of {}",
                labels.join(", ")
            ),
            MllmIssue::EntityNotFound { entity } => {
                write!(f, "entity {entity:?} is not in the tweet's tokens")
            }
        }
    }
}

impl MllmIssue {
    /// What [`IssuePolicy::Warn`] did about it.
    pub fn repair(&self) -> &'static str {
        match self {
            MllmIssue::BoxNegative { .. } => "clipped to 0",
            MllmIssue::BoxOutside { .. } => "clipped to the image",
            MllmIssue::BoxSwapped { .. } => "corners swapped back",
            MllmIssue::BoxEmpty { .. } => "entity kept as not groundable",
            MllmIssue::TypeOutsideLabels { .. } => "type kept as written",
            MllmIssue::EntityNotFound { .. } => "entity kept without a span",
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            MllmIssue::BoxNegative { .. }
            | MllmIssue::BoxOutside { .. }
            | MllmIssue::BoxSwapped { .. }
            | MllmIssue::BoxEmpty { .. } => {
                "check box_convention against what the model writes (pixel, normalized 0-1, grid1000 for Qwen-VL); with --on-error skip such boxes are repaired and counted"
            }
            MllmIssue::TypeOutsideLabels { .. } => {
                "check the labels setting and the prompt; with --on-error skip the type is kept and counted"
            }
            MllmIssue::EntityNotFound { .. } => {
                "the model paraphrased or invented an entity; with --on-error skip it is kept without a span and counted"
            }
        }
    }
}

/// Errors of the MLLM system, each naming the tweet.
#[derive(Debug, thiserror::Error)]
pub enum MllmError {
    /// The request failed (unreachable, timeout, HTTP error, empty reply): see [`LlmError`].
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The endpoint refused a request carrying an image (HTTP 400/415/422).
    #[error("tweet {tweet_id}: LLM endpoint {endpoint} refused the image: HTTP {status}: {message}\n  hint: {hint}")]
    NoVision {
        tweet_id: String,
        endpoint: String,
        status: u16,
        message: String,
        hint: String,
    },
    /// The tweet's image cannot be loaded or encoded.
    #[error(
        "tweet {tweet_id}: cannot load or encode its image for the MLLM: {why}\n  hint: {hint}"
    )]
    Image {
        tweet_id: String,
        why: String,
        hint: String,
    },
    /// The reply holds no readable entity list.
    #[error("tweet {tweet_id}: the MLLM's reply is not a JSON entity list: {why}; the reply starts with {excerpt:?}\n  hint: {hint}")]
    MalformedReply {
        tweet_id: String,
        why: String,
        excerpt: String,
        hint: String,
    },
    /// A well-formed reply with an [`MllmIssue`], under [`IssuePolicy::Error`].
    #[error("tweet {tweet_id}: {issue}\n  hint: {}", issue.hint())]
    Invalid {
        tweet_id: String,
        issue: Box<MllmIssue>,
    },
}

impl MllmError {
    /// A short stable name for counting outcomes.
    pub fn kind(&self) -> &'static str {
        match self {
            MllmError::Llm(_) => "request_failed",
            MllmError::NoVision { .. } => "no_vision",
            MllmError::Image { .. } => "image",
            MllmError::MalformedReply { .. } => "malformed_reply",
            MllmError::Invalid { issue, .. } => issue.kind(),
        }
    }
}

/// One entity as read from the reply, before validation (box in the reply's convention).
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntity {
    pub text: String,
    pub entity_type: String,
    pub bbox: Option<[f64; 4]>,
}

/// Why a reply could not be read (becomes [`MllmError::MalformedReply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError(pub String);

/// Reads the entity list out of a reply: the first JSON list (or `{"entities": [...]}` object,
/// or a single entity object) found, inside a code fence if there is one, with any text around
/// it ignored. Each item needs
/// an entity text (`entity`, or `text` / `name`), a type (`type` or `label`) and a box (`box`
/// or `bbox`: four numbers, `null`, or absent for none).
pub fn parse_reply(reply: &str) -> Result<Vec<RawEntity>, ReplyError> {
    let fenced = fenced_blocks(reply);
    let candidates = fenced.iter().map(String::as_str).chain([reply]);
    let mut first_error: Option<ReplyError> = None;
    for text in candidates {
        match find_entity_list(text) {
            Some(Ok(items)) => return Ok(items),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    Err(first_error.unwrap_or_else(|| {
        ReplyError("no JSON list of entities found (expected [{\"entity\": ..., \"type\": ..., \"box\": ...}])".to_string())
    }))
}

/// The contents of ```` ``` ```` fenced blocks (a language tag after the opening fence is dropped).
fn fenced_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
        let body = &after[body_start..];
        let Some(close) = body.find("```") else { break };
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

/// The first JSON value starting at a `[` or `{` of `text` that is an entity list. `None` when
/// there is none; `Some(Err)` when a list was found but an item is unusable.
fn find_entity_list(text: &str) -> Option<Result<Vec<RawEntity>, ReplyError>> {
    for (at, c) in text.char_indices() {
        if c != '[' && c != '{' {
            continue;
        }
        let mut stream =
            serde_json::Deserializer::from_str(&text[at..]).into_iter::<serde_json::Value>();
        let Some(Ok(value)) = stream.next() else {
            continue;
        };
        let single;
        let list = match &value {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Object(o) => match o.get("entities") {
                Some(serde_json::Value::Array(items)) => items,
                // One entity written as a bare object.
                _ if o.contains_key("entity") => {
                    single = vec![value.clone()];
                    &single
                }
                _ => continue,
            },
            _ => continue,
        };
        // A bare list of numbers (e.g. a box inside prose) is not the entity list.
        if !list.iter().all(serde_json::Value::is_object) {
            if list.is_empty() {
                return Some(Ok(Vec::new()));
            }
            continue;
        }
        return Some(
            list.iter()
                .enumerate()
                .map(|(i, v)| raw_entity(i, v))
                .collect(),
        );
    }
    None
}

fn raw_entity(index: usize, value: &serde_json::Value) -> Result<RawEntity, ReplyError> {
    let field = |names: &[&str]| names.iter().find_map(|n| value.get(*n));
    let text_of = |names: &[&str], what: &str| -> Result<String, ReplyError> {
        match field(names) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                Ok(s.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            Some(other) => Err(ReplyError(format!(
                "item {index}: {what} is not a non-empty text: {other}"
            ))),
            None => Err(ReplyError(format!(
                "item {index} has no \"{}\" field: {value}",
                names[0]
            ))),
        }
    };
    let text = text_of(&["entity", "text", "name"], "the entity")?;
    let entity_type = text_of(&["type", "label"], "the type")?;
    let bbox = match field(&["box", "bbox"]) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(numbers)) if numbers.is_empty() => None,
        Some(serde_json::Value::Array(numbers)) => {
            let values: Option<Vec<f64>> = numbers.iter().map(serde_json::Value::as_f64).collect();
            match values.as_deref() {
                Some([x1, y1, x2, y2]) => Some([*x1, *y1, *x2, *y2]),
                _ => {
                    return Err(ReplyError(format!(
                        "item {index} ({text:?}): box {} is not four numbers [x1, y1, x2, y2]",
                        serde_json::Value::Array(numbers.clone())
                    )))
                }
            }
        }
        Some(other) => {
            return Err(ReplyError(format!(
                "item {index} ({text:?}): box {other} is neither [x1, y1, x2, y2] nor null"
            )))
        }
    };
    Ok(RawEntity {
        text,
        entity_type,
        bbox,
    })
}

/// How an entity was found among the tweet's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// The same tokens: `start..end`.
    Exact(usize, usize),
    /// The same tokens ignoring case.
    CaseInsensitive(usize, usize),
    NotFound,
}

impl Alignment {
    pub fn span(self) -> Option<(usize, usize)> {
        match self {
            Alignment::Exact(s, e) | Alignment::CaseInsensitive(s, e) => Some((s, e)),
            Alignment::NotFound => None,
        }
    }
}

/// Finds `entity` (split on whitespace) in `tokens`: exactly first, then ignoring case; among
/// several occurrences the first one not in `taken` (spans already given to earlier entities),
/// else the first one.
pub fn align(tokens: &[String], entity: &str, taken: &[(usize, usize)]) -> Alignment {
    let words: Vec<&str> = entity.split_whitespace().collect();
    if words.is_empty() || words.len() > tokens.len() {
        return Alignment::NotFound;
    }
    let find = |same: &dyn Fn(&str, &str) -> bool| -> Option<(usize, usize)> {
        let mut first = None;
        for start in 0..=tokens.len() - words.len() {
            let end = start + words.len();
            if tokens[start..end]
                .iter()
                .zip(&words)
                .all(|(t, w)| same(t, w))
            {
                if !taken.contains(&(start, end)) {
                    return Some((start, end));
                }
                first.get_or_insert((start, end));
            }
        }
        first
    };
    if let Some((s, e)) = find(&|a, b| a == b) {
        return Alignment::Exact(s, e);
    }
    match find(&|a, b| a.to_lowercase() == b.to_lowercase()) {
        Some((s, e)) => Alignment::CaseInsensitive(s, e),
        None => Alignment::NotFound,
    }
}

/// Converts, checks and aligns the entities of one reply. Returns the entities (in reply order,
/// none dropped) and the issues found; under [`IssuePolicy::Error`] the first issue is an error.
pub fn validate(
    tweet: &Tweet,
    raw: Vec<RawEntity>,
    image: &EncodedImage,
    convention: BoxConvention,
    labels: &[String],
    policy: IssuePolicy,
) -> Result<(Vec<MllmEntity>, Vec<MllmIssue>), MllmError> {
    let (sx, sy) = convention.scale(image.sent_size, image.original_size);
    let (w, h) = image.original_size;
    let (wf, hf) = (f64::from(w), f64::from(h));
    // Rounding of the scale factors must not make an edge box "outside".
    let eps = 1e-6 * wf.max(hf).max(1.0);
    let mut issues = Vec::new();
    let mut entities = Vec::with_capacity(raw.len());
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut note = |issue: MllmIssue| -> Result<(), MllmError> {
        if policy == IssuePolicy::Error {
            return Err(MllmError::Invalid {
                tweet_id: tweet.id.clone(),
                issue: Box::new(issue),
            });
        }
        issues.push(issue);
        Ok(())
    };
    for r in raw {
        let entity_type = match labels
            .iter()
            .find(|l| l.trim().eq_ignore_ascii_case(r.entity_type.trim()))
        {
            Some(label) => label.trim().to_string(),
            None => {
                note(MllmIssue::TypeOutsideLabels {
                    entity: r.text.clone(),
                    entity_type: r.entity_type.clone(),
                    labels: labels.to_vec(),
                })?;
                r.entity_type.clone()
            }
        };
        let mut bbox = None;
        if let Some(b) = r.bbox {
            let mut b = [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy];
            let as_written = b;
            if b[0] > b[2] || b[1] > b[3] {
                note(MllmIssue::BoxSwapped {
                    entity: r.text.clone(),
                    bbox: as_written,
                })?;
                b = [
                    b[0].min(b[2]),
                    b[1].min(b[3]),
                    b[0].max(b[2]),
                    b[1].max(b[3]),
                ];
            }
            if b.iter().any(|&v| v < -eps) {
                note(MllmIssue::BoxNegative {
                    entity: r.text.clone(),
                    bbox: as_written,
                })?;
            }
            if b[0] > wf + eps || b[2] > wf + eps || b[1] > hf + eps || b[3] > hf + eps {
                note(MllmIssue::BoxOutside {
                    entity: r.text.clone(),
                    bbox: as_written,
                    width: w,
                    height: h,
                })?;
            }
            let clipped = [
                b[0].clamp(0.0, wf),
                b[1].clamp(0.0, hf),
                b[2].clamp(0.0, wf),
                b[3].clamp(0.0, hf),
            ];
            if clipped[2] - clipped[0] <= 0.0 || clipped[3] - clipped[1] <= 0.0 {
                note(MllmIssue::BoxEmpty {
                    entity: r.text.clone(),
                    bbox: as_written,
                })?;
            } else {
                bbox = Some(clipped);
            }
        }
        let (start, end) = match tweet.tokens.as_deref() {
            // No tokens: the span protocol cannot apply at all; MllmAnswer says so.
            None => (None, None),
            Some(tokens) => match align(tokens, &r.text, &taken).span() {
                Some((s, e)) => {
                    taken.push((s, e));
                    (Some(s), Some(e))
                }
                None => {
                    note(MllmIssue::EntityNotFound {
                        entity: r.text.clone(),
                    })?;
                    (None, None)
                }
            },
        };
        entities.push(MllmEntity {
            text: r.text,
            entity_type,
            bbox,
            start,
            end,
        });
    }
    Ok((entities, issues))
}

/// The MLLM's answer for one tweet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MllmAnswer {
    pub tweet_id: String,
    pub entities: Vec<MllmEntity>,
    /// What was repaired (under [`IssuePolicy::Warn`]); empty under `Error`.
    pub issues: Vec<MllmIssue>,
    /// The reply's text (API key redacted).
    pub reply: String,
    pub from_cache: bool,
    /// Whether the tweet had tokens to align entities to.
    pub tokens_available: bool,
}

impl MllmAnswer {
    /// `Ok(())` when every entity has a token span (the span protocol applies), else the reason.
    pub fn span_protocol(&self) -> Result<(), String> {
        if !self.tokens_available {
            return Err(format!(
                "tweet {} has no tokens to align the MLLM's entities to",
                self.tweet_id
            ));
        }
        let missing: Vec<&str> = self
            .entities
            .iter()
            .filter(|e| e.start.is_none())
            .map(|e| e.text.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "tweet {}: {} MLLM entit{} not found in the tweet's tokens ({})",
                self.tweet_id,
                missing.len(),
                if missing.len() == 1 { "y" } else { "ies" },
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// The canonical predictions, in reply order.
    pub fn to_entities(&self) -> Vec<Entity> {
        self.entities.iter().map(MllmEntity::to_entity).collect()
    }

    /// The MLLM's grounding of an entity found by another tagger (for `entailer`/`grounder` =
    /// `mllm`): the MLLM entity with the same token span when both have one, else the first with
    /// the same text ignoring case and whitespace.
    pub fn grounding_for(&self, entity: &Entity) -> Grounding {
        let key = |t: &str| {
            t.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let by_span = entity.span().and_then(|span| {
            self.entities
                .iter()
                .find(|m| m.start.zip(m.end) == Some(span))
        });
        let wanted = key(&entity.text);
        match by_span.or_else(|| self.entities.iter().find(|m| key(&m.text) == wanted)) {
            Some(m) => Grounding::Listed { bbox: m.bbox },
            None => Grounding::NotListed,
        }
    }
}

/// What an [`MllmAnswer`] says about an entity found by another tagger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grounding {
    /// The MLLM listed the entity: groundable when it gave a box.
    Listed { bbox: Option<[f64; 4]> },
    /// The MLLM did not list it (callers usually treat it as not groundable, and count it).
    NotListed,
}

/// Counts for reports: requests (from the client) and every outcome by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MllmStats {
    pub llm: LlmStats,
    /// Tweets answered (with or without issues).
    pub tweets_ok: u64,
    /// Errors by [`MllmError::kind`] (tweets that got no answer).
    pub errors: BTreeMap<String, u64>,
    /// Repaired issues by [`MllmIssue::kind`].
    pub issues: BTreeMap<String, u64>,
}

/// A multimodal LLM answering whole tweets. `Sync`: one instance can serve several threads;
/// [`MllmAnnotator::annotate_all`] runs at most `max_concurrency` requests at once.
#[derive(Debug)]
pub struct MllmAnnotator {
    client: LlmClient,
    template: PromptTemplate,
    settings: MllmSettings,
    cache: Option<ResponseCache>,
    policy: IssuePolicy,
    tweets_ok: AtomicU64,
    outcomes: Mutex<(BTreeMap<String, u64>, BTreeMap<String, u64>)>,
}

impl MllmAnnotator {
    /// A client for `config` (reads the API key variable now), the prompt named by `settings`,
    /// and a cache in `cache_dir` (`None`: no cache). Makes no request.
    pub fn new(
        config: LlmConfig,
        settings: MllmSettings,
        policy: IssuePolicy,
        cache_dir: Option<&Path>,
    ) -> Result<Self, LlmError> {
        settings.validate()?;
        let template = mllm_prompt(&settings.prompt)?;
        let client = LlmClient::new(config)?;
        let cache = cache_dir.map(ResponseCache::open).transpose()?;
        Ok(MllmAnnotator {
            client,
            template,
            settings,
            cache,
            policy,
            tweets_ok: AtomicU64::new(0),
            outcomes: Mutex::new((BTreeMap::new(), BTreeMap::new())),
        })
    }

    pub fn client(&self) -> &LlmClient {
        &self.client
    }

    pub fn template(&self) -> &PromptTemplate {
        &self.template
    }

    pub fn settings(&self) -> &MllmSettings {
        &self.settings
    }

    /// A fingerprint of everything that decides the answers (for stage fingerprints).
    pub fn fingerprint(&self) -> String {
        let s = &self.settings;
        format!(
            "mllm|{}|{}|{}|side={}|{:?}|q={}|{}|{}",
            self.client.config().model,
            self.template.id(),
            self.client.config().sampling_fingerprint(),
            s.max_image_side,
            s.image_format,
            s.jpeg_quality,
            s.box_convention.name(),
            s.labels.join(",")
        )
    }

    pub fn stats(&self) -> MllmStats {
        let outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        MllmStats {
            llm: self.client.stats(),
            tweets_ok: self.tweets_ok.load(Ordering::Relaxed),
            errors: outcomes.0.clone(),
            issues: outcomes.1.clone(),
        }
    }

    /// The messages for one tweet: the system text, then the image and the user text.
    pub fn messages(&self, tweet: &Tweet, image: &EncodedImage) -> Vec<MultimodalMessage> {
        let (w, h) = image.sent_size;
        let convention = self.settings.box_convention;
        let values = [
            ("{tweet}", one_line(&tweet_text(tweet))),
            ("{labels}", self.settings.labels.join(", ")),
            ("{box_format}", convention.describe(w, h)),
            ("{box_convention}", convention.name().to_string()),
            ("{width}", w.to_string()),
            ("{height}", h.to_string()),
        ];
        let (system, user) = self.template.fill_with(&values);
        let mut messages = Vec::with_capacity(2);
        if !system.is_empty() {
            messages.push(MultimodalMessage {
                role: "system".to_string(),
                content: vec![ContentPart::text(system)],
            });
        }
        messages.push(MultimodalMessage {
            role: "user".to_string(),
            content: vec![
                ContentPart::image(image.data_url()),
                ContentPart::text(user),
            ],
        });
        messages
    }

    /// Asks the MLLM about `tweet` and its `image` (cache first), and checks the answer.
    pub fn annotate(&self, tweet: &Tweet, image: &RgbImage) -> Result<MllmAnswer, MllmError> {
        let result = self.annotate_inner(tweet, image);
        let mut outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &result {
            Ok(answer) => {
                self.tweets_ok.fetch_add(1, Ordering::Relaxed);
                for issue in &answer.issues {
                    log::warn!("tweet {}: {issue} ({})", answer.tweet_id, issue.repair());
                    *outcomes.1.entry(issue.kind().to_string()).or_default() += 1;
                }
            }
            Err(e) => *outcomes.0.entry(e.kind().to_string()).or_default() += 1,
        }
        result
    }

    /// [`MllmAnnotator::annotate`] for many tweets, at most `max_concurrency` requests at once,
    /// each worker loading its tweet's image with `load` (so only that many images are in memory).
    /// Answers come back in `tweets`' order. With `stop_on_error` (`--on-error fail`) no new
    /// tweet starts after an error, and the tweets not started are `None`.
    pub fn annotate_all<F>(
        &self,
        tweets: &[Tweet],
        load: F,
        stop_on_error: bool,
    ) -> Vec<Option<Result<MllmAnswer, MllmError>>>
    where
        F: Fn(&Tweet) -> Result<RgbImage, String> + Sync,
    {
        super::bounded::run_bounded(
            tweets.len(),
            self.client.config().max_concurrency,
            stop_on_error,
            |slot| {
                let tweet = &tweets[slot];
                match load(tweet) {
                    Ok(image) => self.annotate(tweet, &image),
                    Err(why) => {
                        let error = MllmError::Image {
                            tweet_id: tweet.id.clone(),
                            why,
                            hint: "check the image folder and the tweet's image name".to_string(),
                        };
                        self.count_error(&error);
                        Err(error)
                    }
                }
            },
        )
    }

    fn count_error(&self, error: &MllmError) {
        let mut outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *outcomes.0.entry(error.kind().to_string()).or_default() += 1;
    }

    fn annotate_inner(&self, tweet: &Tweet, image: &RgbImage) -> Result<MllmAnswer, MllmError> {
        let s = &self.settings;
        let encoded = EncodedImage::encode(image, s.max_image_side, s.image_format, s.jpeg_quality)
            .map_err(|e| MllmError::Image {
                tweet_id: tweet.id.clone(),
                why: e.to_string(),
                hint: "try image_format = \"png\"".to_string(),
            })?;
        let messages = self.messages(tweet, &encoded);
        let key = CacheKey::for_chat(self.client.config(), &self.template, &messages);
        let counters = self.client.counters();
        if let Some(entry) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            // An entry written before redaction existed may still hold the key.
            let reply = self.client.redactor().redact(&entry.content).into_owned();
            if let Ok(raw) = parse_reply(&reply) {
                counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                return self.answer(tweet, raw, &encoded, reply, true);
            }
            log::warn!(
                "tweet {}: cached MLLM reply is not an entity list; asking again",
                tweet.id
            );
        }
        counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        let item = Item {
            tweet_id: Some(tweet.id.clone()),
            entity: None,
        };
        let reply = self
            .client
            .chat_multimodal(&messages, &item)
            .map_err(|e| match e {
                LlmError::Http {
                    endpoint,
                    status: status @ (400 | 415 | 422),
                    message,
                    hint,
                    ..
                } => MllmError::NoVision {
                    tweet_id: tweet.id.clone(),
                    endpoint,
                    status,
                    message,
                    hint,
                },
                other => MllmError::Llm(other),
            })?;
        let raw = parse_reply(&reply).map_err(|ReplyError(why)| MllmError::MalformedReply {
            tweet_id: tweet.id.clone(),
            why,
            excerpt: reply.chars().take(160).collect(),
            hint: "the model should answer a JSON list [{\"entity\", \"type\", \"box\"}]: check the prompt, or raise max_tokens if the reply was cut".to_string(),
        })?;
        // Cached before validation: the reply is well-formed, and a policy change needs no
        // new request.
        if let Some(cache) = &self.cache {
            let entry = CachedReply::new(&key, &self.client.config().model, &self.template, &reply);
            if let Err(e) = cache.put(&key, &entry) {
                log::warn!(
                    "tweet {}: cannot write the LLM cache file {}: {e}",
                    tweet.id,
                    cache.path_for(&key).display()
                );
            }
        }
        self.answer(tweet, raw, &encoded, reply, false)
    }

    fn answer(
        &self,
        tweet: &Tweet,
        raw: Vec<RawEntity>,
        image: &EncodedImage,
        reply: String,
        from_cache: bool,
    ) -> Result<MllmAnswer, MllmError> {
        let (entities, issues) = validate(
            tweet,
            raw,
            image,
            self.settings.box_convention,
            &self.settings.labels,
            self.policy,
        )?;
        Ok(MllmAnswer {
            tweet_id: tweet.id.clone(),
            entities,
            issues,
            reply,
            from_cache,
            tokens_available: tweet.tokens.is_some(),
        })
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tweet(text: &str) -> Tweet {
        Tweet {
            id: "T_1".to_string(),
            tokens: Some(text.split(' ').map(str::to_string).collect()),
            ..Tweet::default()
        }
    }

    fn image(sent: (u32, u32), original: (u32, u32)) -> EncodedImage {
        EncodedImage {
            bytes: Vec::new(),
            format: ImageFormat::Png,
            sent_size: sent,
            original_size: original,
        }
    }

    fn labels() -> Vec<String> {
        MllmSettings::default().labels
    }

    #[test]
    fn builtin_prompt_parses_with_its_placeholders() {
        let t = mllm_prompt("gmner-mllm-v1").unwrap();
        assert_eq!(t.id(), "gmner-mllm@v1");
        for p in [
            "{tweet}",
            "{labels}",
            "{box_format}",
            "{box_convention}",
            "{width}",
            "{height}",
        ] {
            assert!(t.user.contains(p), "{p}");
        }
        let err = mllm_prompt("/nonexistent/prompt.txt").unwrap_err();
        assert!(err.to_string().contains("prompt.txt"), "{err}");
    }

    #[test]
    fn reply_parsing_is_robust() {
        let want = vec![
            RawEntity {
                text: "Angelina Jolie".to_string(),
                entity_type: "PER".to_string(),
                bbox: Some([1.0, 2.0, 3.0, 4.0]),
            },
            RawEntity {
                text: "UN".to_string(),
                entity_type: "ORG".to_string(),
                bbox: None,
            },
        ];
        let list = r#"[{"entity": "Angelina  Jolie", "type": "PER", "box": [1, 2, 3, 4]}, {"entity": "UN", "type": "ORG", "box": null}]"#;
        for reply in [
            list.to_string(),
            format!("```json\n{list}\n```\nThe entities are above."),
            format!("Sure! Here is the list: {list} Hope this helps [1]."),
            format!("{{\"entities\": {list}}}"),
            list.replace("\"entity\"", "\"text\"")
                .replace("\"box\"", "\"bbox\""),
            // A box in prose before the list is not the list.
            format!("The box [0, 0, 5, 5] is mine.\n{list}"),
        ] {
            assert_eq!(parse_reply(&reply).as_ref(), Ok(&want), "{reply}");
        }
        assert_eq!(parse_reply("[]"), Ok(vec![]));
        assert_eq!(
            parse_reply("Only one: {\"entity\": \"UN\", \"type\": \"ORG\", \"box\": null}")
                .as_deref(),
            Ok(&want[1..])
        );
        assert_eq!(parse_reply("No entities here: []"), Ok(vec![]));
        for bad in [
            "I cannot see any entities.",
            "[{\"entity\": \"X\"}]",
            "[{\"entity\": \"X\", \"type\": \"PER\", \"box\": [1, 2, 3]}]",
            "[{\"entity\": \"X\", \"type\": \"PER\", \"box\": \"top left\"}]",
            "[{\"entity\": \"\", \"type\": \"PER\"}]",
            "[{\"entity\": \"X\", \"type\": \"PER\", \"box\": [1, 2,",
        ] {
            assert!(parse_reply(bad).is_err(), "{bad}");
        }
        let missing = parse_reply("[{\"entity\": \"X\"}]").unwrap_err();
        assert!(missing.0.contains("item 0 has no \"type\""), "{missing:?}");
    }

    #[test]
    fn boxes_convert_to_original_pixels() {
        let t = tweet("Angelina Jolie at the UN");
        let raw = |b: [f64; 4]| {
            vec![RawEntity {
                text: "UN".to_string(),
                entity_type: "ORG".to_string(),
                bbox: Some(b),
            }]
        };
        // Sent at half size: pixel boxes double.
        let img = image((320, 240), (640, 480));
        let check = |conv, b, want: [f64; 4]| {
            let (e, issues) =
                validate(&t, raw(b), &img, conv, &labels(), IssuePolicy::Error).unwrap();
            assert!(issues.is_empty());
            assert_eq!(e[0].bbox, Some(want), "{conv:?}");
            assert_eq!((e[0].start, e[0].end), (Some(4), Some(5)));
        };
        check(
            BoxConvention::Pixel,
            [10.0, 20.0, 160.0, 240.0],
            [20.0, 40.0, 320.0, 480.0],
        );
        check(
            BoxConvention::Normalized,
            [0.25, 0.5, 0.75, 1.0],
            [160.0, 240.0, 480.0, 480.0],
        );
        check(
            BoxConvention::Grid1000,
            [250.0, 500.0, 750.0, 1000.0],
            [160.0, 240.0, 480.0, 480.0],
        );
    }

    #[test]
    fn bad_boxes_are_repaired_and_counted_or_errors() {
        let t = tweet("Angelina Jolie at the UN");
        let img = image((100, 100), (100, 100));
        let entity = |b: [f64; 4]| RawEntity {
            text: "Angelina Jolie".to_string(),
            entity_type: "PER".to_string(),
            bbox: Some(b),
        };
        let cases = [
            (
                [-5.0, 10.0, 50.0, 60.0],
                "box_negative",
                Some([0.0, 10.0, 50.0, 60.0]),
            ),
            (
                [10.0, 10.0, 150.0, 60.0],
                "box_outside",
                Some([10.0, 10.0, 100.0, 60.0]),
            ),
            (
                [50.0, 60.0, 10.0, 10.0],
                "box_swapped",
                Some([10.0, 10.0, 50.0, 60.0]),
            ),
            ([120.0, 10.0, 150.0, 60.0], "box_outside", None),
            ([10.0, 10.0, 10.0, 60.0], "box_empty", None),
        ];
        for (b, kind, want) in cases {
            let (e, issues) = validate(
                &t,
                vec![entity(b)],
                &img,
                BoxConvention::Pixel,
                &labels(),
                IssuePolicy::Warn,
            )
            .unwrap();
            assert_eq!(e.len(), 1, "never dropped");
            assert_eq!(e[0].bbox, want, "{b:?}");
            assert_eq!(issues[0].kind(), kind, "{b:?}");
            let err = validate(
                &t,
                vec![entity(b)],
                &img,
                BoxConvention::Pixel,
                &labels(),
                IssuePolicy::Error,
            )
            .unwrap_err();
            assert_eq!(err.kind(), kind);
            assert!(err.to_string().starts_with("tweet T_1: "), "{err}");
        }
        // Entirely outside: counted as outside and as empty.
        let (_, issues) = validate(
            &t,
            vec![entity([120.0, 10.0, 150.0, 60.0])],
            &img,
            BoxConvention::Pixel,
            &labels(),
            IssuePolicy::Warn,
        )
        .unwrap();
        let kinds: Vec<_> = issues.iter().map(MllmIssue::kind).collect();
        assert_eq!(kinds, ["box_outside", "box_empty"]);
    }

    #[test]
    fn types_and_unknown_entities_are_counted() {
        let t = tweet("angelina jolie at the UN");
        let raw = vec![
            RawEntity {
                text: "Angelina Jolie".to_string(),
                entity_type: "per".to_string(),
                bbox: None,
            },
            RawEntity {
                text: "United Nations".to_string(),
                entity_type: "ORGANIZATION".to_string(),
                bbox: None,
            },
        ];
        let img = image((10, 10), (10, 10));
        let (e, issues) = validate(
            &t,
            raw.clone(),
            &img,
            BoxConvention::Pixel,
            &labels(),
            IssuePolicy::Warn,
        )
        .unwrap();
        assert_eq!(e[0].entity_type, "PER", "label matched ignoring case");
        assert_eq!((e[0].start, e[0].end), (Some(0), Some(2)));
        assert_eq!(e[1].entity_type, "ORGANIZATION", "kept as written");
        assert_eq!(e[1].start, None);
        let kinds: Vec<_> = issues.iter().map(MllmIssue::kind).collect();
        assert_eq!(kinds, ["type_outside_labels", "entity_not_found"]);
        let answer = MllmAnswer {
            tweet_id: "T_1".to_string(),
            entities: e,
            issues,
            reply: String::new(),
            from_cache: false,
            tokens_available: true,
        };
        let why = answer.span_protocol().unwrap_err();
        assert!(why.contains("\"United Nations\""), "{why}");
        let predictions = answer.to_entities();
        assert_eq!(predictions.len(), 2);
        assert!(!predictions[1].groundable);
    }

    #[test]
    fn grounding_for_matches_span_then_text() {
        let entity = |text: &str, start: usize, bbox: Option<[f64; 4]>| MllmEntity {
            text: text.to_string(),
            entity_type: "PER".to_string(),
            bbox,
            start: Some(start),
            end: Some(start + text.split(' ').count()),
        };
        let boxed = Some([1.0, 2.0, 3.0, 4.0]);
        let answer = MllmAnswer {
            tweet_id: "T".to_string(),
            entities: vec![entity("Trump", 0, None), entity("Trump", 5, boxed)],
            issues: Vec::new(),
            reply: String::new(),
            from_cache: false,
            tokens_available: true,
        };
        let mut second = Entity::new("Trump", "PER");
        (second.start, second.end) = (Some(5), Some(6));
        assert_eq!(
            answer.grounding_for(&second),
            Grounding::Listed { bbox: boxed }
        );
        // No span: the first with the same text, ignoring case.
        assert_eq!(
            answer.grounding_for(&Entity::new("TRUMP", "PER")),
            Grounding::Listed { bbox: None }
        );
        assert_eq!(
            answer.grounding_for(&Entity::new("Obama", "PER")),
            Grounding::NotListed
        );
    }

    #[test]
    fn alignment_prefers_exact_then_unused_occurrences() {
        let tokens: Vec<String> = "RT Trump meets trump fans in New York"
            .split(' ')
            .map(str::to_string)
            .collect();
        assert_eq!(align(&tokens, "Trump", &[]), Alignment::Exact(1, 2));
        assert_eq!(align(&tokens, "Trump", &[(1, 2)]), Alignment::Exact(1, 2));
        assert_eq!(
            align(&tokens, "TRUMP", &[(1, 2)]),
            Alignment::CaseInsensitive(3, 4)
        );
        assert_eq!(
            align(&tokens, "new york", &[]),
            Alignment::CaseInsensitive(6, 8)
        );
        assert_eq!(align(&tokens, "New  York", &[]), Alignment::Exact(6, 8));
        assert_eq!(align(&tokens, "Boston", &[]), Alignment::NotFound);
        assert_eq!(align(&tokens, "", &[]), Alignment::NotFound);
    }

    #[test]
    fn images_are_resized_and_encoded() {
        let img = RgbImage::from_fn(400, 200, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let jpeg = EncodedImage::encode(&img, 100, ImageFormat::Jpeg, 80).unwrap();
        assert_eq!(jpeg.sent_size, (100, 50));
        assert_eq!(jpeg.original_size, (400, 200));
        assert_eq!(&jpeg.bytes[..2], &[0xFF, 0xD8], "JPEG magic");
        assert!(jpeg.data_url().starts_with("data:image/jpeg;base64,/9j/"));
        let png = EncodedImage::encode(&img, 0, ImageFormat::Png, 80).unwrap();
        assert_eq!(png.sent_size, (400, 200));
        let decoded = image::load_from_memory(&png.bytes).unwrap().to_rgb8();
        assert_eq!(decoded, img, "PNG is lossless");
        // Never scaled up.
        let small = EncodedImage::encode(&img, 1000, ImageFormat::Png, 80).unwrap();
        assert_eq!(small.sent_size, (400, 200));
    }

    #[test]
    fn settings_read_from_toml() {
        let s: MllmSettings =
            toml::from_str("box_convention = \"grid1000\"\nimage_format = \"png\"\n").unwrap();
        assert_eq!(s.box_convention, BoxConvention::Grid1000);
        assert_eq!(s.image_format, ImageFormat::Png);
        assert!(s.validate().is_ok());
        assert!(toml::from_str::<MllmSettings>("box_convention = \"xyxy\"").is_err());
        let bad = MllmSettings {
            jpeg_quality: 0,
            ..MllmSettings::default()
        };
        assert!(bad.validate().is_err());
    }
}
