//! Canonical JSONL in and out: one [`Tweet`] per line. Reading validates what serde cannot
//! (boxes, spans, groundable vs boxes, unknown keys, repeated ids) and names the record that is
//! wrong. Must not: guess what a malformed record meant, or drop any of its data silently.
//!
//! ## The optional header record
//! The first non-blank line may be a header instead of a tweet:
//! `{"header": {"side": "gold" | "predictions", "source": "twitter-gmner txt+xml"}}`.
//! `side` is required in a header, `source` (the format it was imported from) is optional, and no
//! other key is allowed. `import` writes one; files without it (everything written before headers
//! existed) read exactly as before, with no side known. A header anywhere but first is an error.
//! `eval` uses the sides to warn when `--gold` and `--pred` look swapped ([`swapped_roles_warning`]).
//!
//! ## Keys
//! Tweet keys: `id`, `image`, `tokens`, `entities`, `extra`; entity keys: `text`, `type`,
//! `fine_type`, `start`, `end`, `groundable`, `boxes`, `masks`, `expansion`, `uid`, `score`,
//! `extra`. Any other key is an error naming the record and the nearest valid key (a typo such
//! as `entites` would otherwise drop the entities). Extension data goes under `extra`, a JSON
//! object the harness keeps and writes back unchanged (keys sorted) but never reads.
//!
//! ## Decisions on repeated and inconsistent records
//! - A tweet id on two records is an error: the format is one record per tweet, and scoring
//!   aligns gold and predictions by id, so a second record would be merged into the first
//!   without a word (RiVEG's `statistic.py` keys by image too; no published file repeats an id).
//! - `groundable: false` with boxes or masks is an error for either side: FORMATS.md says boxes
//!   are empty when not groundable, and the scorers would ignore them.
//! - `groundable: true` with neither boxes nor masks is an error in a file whose header says
//!   `gold` (FORMATS.md: gold groundable means at least one box). In predictions it is legal (a
//!   text-only source, or a VE decision without grounding), and in a file without a header we
//!   cannot tell the side, so it is accepted.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::error::{DataError, DataResult, Location};
use super::model::{Dataset, DatasetMeta, Side, Tweet};
use super::text::{numbered_lines, read_text};

/// The keys of a tweet record.
pub const TWEET_KEYS: &[&str] = &["id", "image", "tokens", "entities", "extra"];
/// The keys of an entity record.
pub const ENTITY_KEYS: &[&str] = &[
    "text",
    "type",
    "fine_type",
    "start",
    "end",
    "groundable",
    "boxes",
    "masks",
    "expansion",
    "uid",
    "score",
    "extra",
];
/// The key of the optional header record.
pub const HEADER_KEY: &str = "header";
const HEADER_FIELDS: &[&str] = &["side", "source"];

const RECORD_HINT: &str =
    "each line must be one JSON object as in docs FORMATS.md (id, entities[text,type,groundable,boxes])";

/// Reads a canonical JSONL file. Blank lines are skipped; every other line must be one tweet
/// (or, first, the header).
pub fn read_jsonl(path: &Path) -> DataResult<Dataset> {
    let text = read_text(path)?;
    parse_jsonl(&text, path)
}

/// Parses canonical JSONL text; `path` is only used in error messages.
pub fn parse_jsonl(text: &str, path: &Path) -> DataResult<Dataset> {
    let mut tweets = Vec::new();
    let mut meta: Option<DatasetMeta> = None;
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    let mut seen_record = false;
    for (line_no, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location::line(path, line_no);
        let value: Value = serde_json::from_str(line).map_err(|e| {
            DataError::invalid(
                at.clone(),
                format!("not a canonical tweet record: {e}"),
                RECORD_HINT,
            )
        })?;
        if let Some(header) = value.as_object().and_then(|o| o.get(HEADER_KEY)) {
            if seen_record {
                return Err(DataError::invalid(
                    at,
                    "a header record after the first record",
                    "the `{\"header\": {...}}` record may only be the file's first line; merge the files with `import` or drop the extra header",
                ));
            }
            seen_record = true;
            meta = Some(parse_header(&value, header, &at)?);
            continue;
        }
        seen_record = true;
        check_keys(&value, &at)?;
        let tweet: Tweet = serde_json::from_value(value).map_err(|e| {
            DataError::invalid(
                at.clone(),
                format!("not a canonical tweet record: {e}"),
                RECORD_HINT,
            )
        })?;
        validate_tweet_side(&tweet, &at, meta.as_ref().map(|m| m.side))?;
        if let Some(first) = first_line_of.get(&tweet.id) {
            return Err(DataError::invalid(
                at,
                format!("tweet id {:?} already has a record on line {first}", tweet.id),
                "the canonical format has one record per tweet (gold and predictions are aligned by id); merge the two records' entities into one",
            ));
        }
        first_line_of.insert(tweet.id.clone(), line_no);
        tweets.push(tweet);
    }
    Ok(Dataset { tweets, meta })
}

fn parse_header(record: &Value, header: &Value, at: &Location) -> DataResult<DatasetMeta> {
    const HINT: &str = "the header is {\"header\": {\"side\": \"gold\" | \"predictions\", \"source\": \"...\"}}, alone on the first line";
    if let Some(other) = record
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != HEADER_KEY))
    {
        return Err(DataError::invalid(
            at.clone(),
            format!("the header record has the key `{other}` beside `header`"),
            HINT,
        ));
    }
    if let Some(fields) = header.as_object() {
        for key in fields.keys() {
            if !HEADER_FIELDS.contains(&key.as_str()) {
                return Err(unknown_key(at, "the header", key, HEADER_FIELDS));
            }
        }
    }
    serde_json::from_value(header.clone())
        .map_err(|e| DataError::invalid(at.clone(), format!("invalid header record: {e}"), HINT))
}

/// Rejects unknown keys at the tweet and entity level (see the module doc).
fn check_keys(value: &Value, at: &Location) -> DataResult<()> {
    let Some(record) = value.as_object() else {
        // Not an object: serde's message ("expected struct Tweet") is the clearer one.
        return Ok(());
    };
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .map(|id| format!("tweet {id:?}"))
        .unwrap_or_else(|| "the tweet record".to_string());
    if let Some(key) = record.keys().find(|k| !TWEET_KEYS.contains(&k.as_str())) {
        return Err(unknown_key(at, &id, key, TWEET_KEYS));
    }
    if let Some(entities) = record.get("entities").and_then(Value::as_array) {
        for (i, entity) in entities.iter().enumerate() {
            let Some(entity) = entity.as_object() else {
                continue;
            };
            if let Some(key) = entity.keys().find(|k| !ENTITY_KEYS.contains(&k.as_str())) {
                let text = entity.get("text").and_then(Value::as_str).unwrap_or("?");
                let whose = format!("{id} entity #{} ({text:?})", i + 1);
                return Err(unknown_key(at, &whose, key, ENTITY_KEYS));
            }
        }
    }
    Ok(())
}

fn unknown_key(at: &Location, whose: &str, key: &str, valid: &[&str]) -> DataError {
    let valid_list = valid
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = match nearest_key(key, valid) {
        Some(near) => format!(
            "did you mean `{near}`? valid keys: {valid_list}; put extension data under `extra`"
        ),
        None => format!("valid keys: {valid_list}; put extension data under `extra`"),
    };
    DataError::invalid(
        at.clone(),
        format!("{whose} has the unknown key `{key}`"),
        hint,
    )
}

/// The valid key closest to `key` by edit distance, when it is close enough to be a typo
/// (at most a third of the longer name, at least 1, e.g. `entites` → `entities`, `boxs` → `boxes`).
pub fn nearest_key<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_lowercase();
    valid
        .iter()
        .map(|v| (edit_distance(&lower, v), *v))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, v)| *d <= (v.chars().count().max(key.chars().count()) / 3).max(1))
        .map(|(_, v)| v)
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The `eval` warning when the two files look swapped (one line and a hint), or `None`.
/// Evidence, strongest first: the headers' recorded sides; then, for files without headers, the
/// shape FORMATS.md gives each side (gold may carry several boxes per entity, a prediction at
/// most one).
pub fn swapped_roles_warning(
    gold: &Dataset,
    gold_path: &Path,
    pred: &Dataset,
    pred_path: &Path,
) -> Option<String> {
    let hint = "  hint: `eval --gold` takes the reference annotations and `--pred` the system output; swap the two paths if they are the wrong way round";
    let said = |d: &Dataset, path: &Path, role: Side| -> Option<String> {
        let meta = d.meta.as_ref()?;
        (meta.side != role).then(|| {
            format!(
                "{} was imported as {}{}",
                path.display(),
                meta.side.name(),
                meta.source
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            )
        })
    };
    let reasons: Vec<String> = [
        said(gold, gold_path, Side::Gold),
        said(pred, pred_path, Side::Predictions),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !reasons.is_empty() {
        return Some(format!(
            "warning: --gold and --pred look swapped: {}\n{hint}",
            reasons.join("; ")
        ));
    }
    if gold.meta.is_none() && pred.meta.is_none() {
        let multi_box = |d: &Dataset| {
            d.tweets
                .iter()
                .flat_map(|t| &t.entities)
                .filter(|e| e.boxes.len() > 1)
                .count()
        };
        let (gold_multi, pred_multi) = (multi_box(gold), multi_box(pred));
        if pred_multi > 0 && gold_multi == 0 {
            return Some(format!(
                "warning: --gold and --pred look swapped: {pred_multi} entities of {} have several boxes (gold's shape), none of {} do\n{hint}",
                pred_path.display(),
                gold_path.display()
            ));
        }
    }
    None
}

/// Checks the invariants of one record that serde cannot express, for a file of unknown side.
pub fn validate_tweet(tweet: &Tweet, at: &Location) -> DataResult<()> {
    validate_tweet_side(tweet, at, None)
}

/// Checks the invariants of one record that serde cannot express; `side` from the header.
pub fn validate_tweet_side(tweet: &Tweet, at: &Location, side: Option<Side>) -> DataResult<()> {
    for (i, e) in tweet.entities.iter().enumerate() {
        let name = || format!("tweet {} entity #{} ({:?})", tweet.id, i + 1, e.text);
        if !e.groundable && (!e.boxes.is_empty() || !e.masks.is_empty()) {
            return Err(DataError::invalid(
                at.clone(),
                format!(
                    "{}: `groundable` is false but it has {} box(es) and {} mask(s)",
                    name(),
                    e.boxes.len(),
                    e.masks.len()
                ),
                "an ungroundable entity has empty `boxes` (and no `masks`); set `groundable: true` or drop the boxes",
            ));
        }
        if side == Some(Side::Gold) && e.groundable && e.boxes.is_empty() && e.masks.is_empty() {
            return Err(DataError::invalid(
                at.clone(),
                format!("{}: gold entity is groundable but has no box or mask", name()),
                "in gold, groundable means at least one box (FORMATS.md); give its boxes or set `groundable: false`",
            ));
        }
        for b in &e.boxes {
            b.validate().map_err(|why| {
                DataError::invalid(
                    at.clone(),
                    format!("{}: {why}", name()),
                    "boxes are [x1, y1, x2, y2] in pixels with x1 <= x2 and y1 <= y2",
                )
            })?;
        }
        for (k, m) in e.masks.iter().enumerate() {
            m.validate().map_err(|why| {
                let (what, hint) = why.what_and_hint();
                DataError::invalid(
                    at.clone(),
                    format!("{}: mask #{}: {what}", name(), k + 1),
                    hint,
                )
            })?;
        }
        match (e.start, e.end) {
            (Some(s), Some(t)) => {
                if s >= t {
                    return Err(DataError::invalid(
                        at.clone(),
                        format!("{}: span start {s} is not before end {t}", name()),
                        "token offsets are start inclusive, end exclusive",
                    ));
                }
                if let Some(tokens) = &tweet.tokens {
                    if t > tokens.len() {
                        return Err(DataError::invalid(
                            at.clone(),
                            format!(
                                "{}: span end {t} is past the {} tokens",
                                name(),
                                tokens.len()
                            ),
                            "token offsets index the record's `tokens`",
                        ));
                    }
                }
            }
            (None, None) => {}
            _ => {
                return Err(DataError::invalid(
                    at.clone(),
                    format!("{}: only one of start/end is set", name()),
                    "give both token offsets or neither",
                ))
            }
        }
    }
    Ok(())
}

/// Serialises a dataset as canonical JSONL (the header when the side is known, then one line
/// per tweet, trailing newline).
pub fn to_jsonl(dataset: &Dataset) -> String {
    let mut out = String::new();
    if let Some(meta) = &dataset.meta {
        let header = serde_json::json!({ HEADER_KEY: meta });
        out.push_str(&header.to_string());
        out.push('\n');
    }
    for tweet in &dataset.tweets {
        // A Tweet always serialises: all keys are strings and floats are finite (validated).
        out.push_str(&serde_json::to_string(tweet).expect("tweet serialises"));
        out.push('\n');
    }
    out
}

/// Writes canonical JSONL atomically.
pub fn write_jsonl(dataset: &Dataset, path: &Path) -> DataResult<()> {
    crate::io_util::write_atomic(path, to_jsonl(dataset).as_bytes())
        .map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn round_trip() {
        let line = r#"{"id":"O_2371","image":"O_2371.jpg","tokens":["Angelina","Jolie"],"entities":[{"text":"Angelina Jolie","type":"PER","start":0,"end":2,"groundable":true,"boxes":[[296.0,24.0,600.0,450.0]]}]}"#;
        let ds = parse_jsonl(line, &PathBuf::from("x.jsonl")).unwrap();
        assert_eq!(
            ds.tweets[0].entities[0].boxes[0].0,
            [296.0, 24.0, 600.0, 450.0]
        );
        assert_eq!(to_jsonl(&ds).trim_end(), line);
    }

    #[test]
    fn truncated_json_names_record() {
        let text = "{\"id\":\"a\",\"entities\":[]}\n{\"id\":\"b\",\"entit";
        let err = parse_jsonl(text, &PathBuf::from("p.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.jsonl:2:"), "{err}");
    }

    #[test]
    fn inverted_box_is_rejected() {
        let text = r#"{"id":"a","entities":[{"text":"x","type":"PER","groundable":true,"boxes":[[5,0,1,1]]}]}"#;
        let err = parse_jsonl(text, &PathBuf::from("p.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x2 < x1"), "{err}");
    }

    fn err(text: &str) -> String {
        parse_jsonl(text, &PathBuf::from("p.jsonl"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_keys_name_the_record_and_the_nearest_key() {
        let e = err("{\"id\":\"a\",\"entities\":[]}\n{\"id\":\"b\",\"entites\":[]}");
        assert!(
            e.starts_with("p.jsonl:2: tweet \"b\" has the unknown key `entites`"),
            "{e}"
        );
        assert!(e.contains("did you mean `entities`?"), "{e}");
        let e = err(
            r#"{"id":"a","entities":[{"text":"x","type":"PER","groundable":true,"boxs":[[0,0,1,1]]}]}"#,
        );
        assert!(
            e.starts_with("p.jsonl:1: tweet \"a\" entity #1 (\"x\") has the unknown key `boxs`"),
            "{e}"
        );
        assert!(e.contains("did you mean `boxes`?"), "{e}");
        // Nothing close: the hint lists the valid keys instead of guessing.
        let e = err(r#"{"id":"a","entities":[],"provenance":"x"}"#);
        assert!(!e.contains("did you mean"), "{e}");
        assert!(e.contains("valid keys: `id`, `image`"), "{e}");
    }

    #[test]
    fn nearest_key_and_edit_distance() {
        assert_eq!(edit_distance("entites", "entities"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(nearest_key("boxs", ENTITY_KEYS), Some("boxes"));
        assert_eq!(nearest_key("Type", ENTITY_KEYS), Some("type"));
        assert_eq!(nearest_key("fine-type", ENTITY_KEYS), Some("fine_type"));
        assert_eq!(nearest_key("zzz", ENTITY_KEYS), None);
    }

    #[test]
    fn extra_round_trips_at_both_levels() {
        let line = r#"{"id":"a","entities":[{"text":"x","type":"PER","groundable":false,"boxes":[],"extra":{"conf":[1,2],"note":"n"}}],"extra":{"annotator":7}}"#;
        let ds = parse_jsonl(line, &PathBuf::from("x.jsonl")).unwrap();
        assert_eq!(ds.tweets[0].extra["annotator"], 7);
        assert_eq!(ds.tweets[0].entities[0].extra["note"], "n");
        assert_eq!(to_jsonl(&ds).trim_end(), line);
        // `extra` must be an object.
        let e = err(r#"{"id":"a","entities":[],"extra":3}"#);
        assert!(
            e.starts_with("p.jsonl:1: not a canonical tweet record"),
            "{e}"
        );
    }

    #[test]
    fn header_round_trips_and_old_files_still_read() {
        let text = "{\"header\":{\"side\":\"gold\",\"source\":\"twitter-gmner txt+xml\"}}\n{\"id\":\"a\",\"entities\":[]}\n";
        let ds = parse_jsonl(text, &PathBuf::from("x.jsonl")).unwrap();
        assert_eq!(
            ds.meta,
            Some(DatasetMeta::new(Side::Gold, "twitter-gmner txt+xml"))
        );
        assert_eq!(ds.tweets.len(), 1);
        assert_eq!(to_jsonl(&ds), text);
        let old = parse_jsonl("{\"id\":\"a\",\"entities\":[]}", &PathBuf::from("x")).unwrap();
        assert_eq!(old.meta, None);
        assert_eq!(to_jsonl(&old), "{\"id\":\"a\",\"entities\":[]}\n");
    }

    #[test]
    fn bad_headers_are_errors() {
        let e = err("{\"id\":\"a\",\"entities\":[]}\n{\"header\":{\"side\":\"gold\"}}");
        assert!(
            e.starts_with("p.jsonl:2: a header record after the first"),
            "{e}"
        );
        let e = err("{\"header\":{\"side\":\"gold\",\"sourse\":\"x\"}}");
        assert!(
            e.starts_with("p.jsonl:1: the header has the unknown key `sourse`"),
            "{e}"
        );
        assert!(e.contains("did you mean `source`?"), "{e}");
        let e = err("{\"header\":{\"side\":\"silver\"}}");
        assert!(
            e.starts_with("p.jsonl:1: invalid header record: unknown variant `silver`"),
            "{e}"
        );
        let e = err("{\"header\":{\"side\":\"gold\"},\"id\":\"a\"}");
        assert!(
            e.contains("the header record has the key `id` beside `header`"),
            "{e}"
        );
    }

    #[test]
    fn repeated_tweet_id_is_an_error() {
        let e = err("{\"id\":\"a\",\"entities\":[]}\n\n{\"id\":\"b\",\"entities\":[]}\n{\"id\":\"a\",\"entities\":[]}");
        assert!(
            e.starts_with("p.jsonl:4: tweet id \"a\" already has a record on line 1"),
            "{e}"
        );
    }

    #[test]
    fn groundable_and_boxes_must_agree() {
        let ungroundable_with_box = r#"{"id":"a","entities":[{"text":"x","type":"PER","groundable":false,"boxes":[[0,0,1,1]]}]}"#;
        let e = err(ungroundable_with_box);
        assert!(
            e.contains("tweet a entity #1 (\"x\"): `groundable` is false but it has 1 box(es)"),
            "{e}"
        );
        let no_box =
            r#"{"id":"a","entities":[{"text":"x","type":"PER","groundable":true,"boxes":[]}]}"#;
        // Predictions (or an unknown side) may be groundable without a box ...
        assert!(parse_jsonl(no_box, &PathBuf::from("p")).is_ok());
        let pred = format!("{{\"header\":{{\"side\":\"predictions\"}}}}\n{no_box}");
        assert!(parse_jsonl(&pred, &PathBuf::from("p")).is_ok());
        // ... gold may not.
        let e = err(&format!("{{\"header\":{{\"side\":\"gold\"}}}}\n{no_box}"));
        assert!(
            e.starts_with("p.jsonl:2: tweet a entity #1 (\"x\"): gold entity is groundable but has no box or mask"),
            "{e}"
        );
    }

    fn dataset(side: Option<Side>, boxes_per_entity: usize) -> Dataset {
        let mut e = crate::data::model::Entity::new("x", "PER");
        e.groundable = true;
        e.boxes = vec![crate::geometry::BBox::new(0.0, 0.0, 1.0, 1.0); boxes_per_entity];
        Dataset {
            tweets: vec![Tweet {
                id: "a".into(),
                entities: vec![e],
                ..Default::default()
            }],
            meta: side.map(|s| DatasetMeta::new(s, "test")),
        }
    }

    #[test]
    fn swapped_roles_are_noticed() {
        let (g, p) = (Path::new("g.jsonl"), Path::new("p.jsonl"));
        let gold = dataset(Some(Side::Gold), 2);
        let pred = dataset(Some(Side::Predictions), 1);
        assert_eq!(swapped_roles_warning(&gold, g, &pred, p), None);
        let w = swapped_roles_warning(&pred, g, &gold, p).unwrap();
        assert!(
            w.starts_with("warning: --gold and --pred look swapped: g.jsonl was imported as predictions (test); p.jsonl was imported as gold (test)\n  hint: "),
            "{w}"
        );
        assert_eq!(w.lines().count(), 2);
        // Without headers: predictions with several boxes per entity against single-box gold.
        let w = swapped_roles_warning(&dataset(None, 1), g, &dataset(None, 2), p).unwrap();
        assert!(
            w.contains("1 entities of p.jsonl have several boxes"),
            "{w}"
        );
        assert_eq!(
            swapped_roles_warning(&dataset(None, 2), g, &dataset(None, 1), p),
            None
        );
    }
}
