//! RiVEG's released files (github.com/JinYuanLi0012/RiVEG, `statistic/`):
//! - gold labels `GMNER_finall_label.txt`: `img.jpg###Entity(TYPE)###description###F###&[x1, y1, x2, y2]&...`
//!   with F = 0 (ungroundable, box `[0, 0, 0, 0]`) or non-zero (groundable, one `&[...]` per box);
//! - VE output `OFAVE_to_OFAREC*.txt`: `Imageid:img.jpg#hhhh###Entity(TYPE)###Entity(TYPE)-expansion###F`;
//! - OFA REC boxes `[{"uniq_id": "img.jpg#hhhh", "box": [x1, y1, x2, y2]}]`, one per VE-positive line.
//!
//! These files hold entity strings only (no tokens, no offsets), so the span protocol cannot score
//! them. Lines are grouped into tweets by image in order of first appearance; the order of the
//! entities of one image is kept, which is all the seed's greedy matching depends on.
//!
//! Decisions on repeats and inconsistencies, by what `statistic/statistic.py` does:
//! - Repeated (image, entity) lines in the labels or the VE output are kept: they are real
//!   (PROTOCOLS.md: 14 in the gold file, 20 in the predictions) and `statistic.py` counts each.
//! - A labels line with F = 0 and a box other than `[0, 0, 0, 0]`: `statistic.py` only looks at
//!   boxes when F != 0, so the box is ignored, as there, and counted in one data warning.
//! - A uid (`Imageid:` value) on two VE lines is an error: it is "the unique id of that
//!   prediction", and both lines would get the same REC box.
//! - A `uniq_id` on two REC entries: with the same box, a counted warning (harmless); with
//!   different boxes, an error naming both entries. `statistic.py` pairs boxes with VE-positive
//!   lines by position, so which of two boxes belongs to the uid is unknowable once keyed by uid.
//! - A VE-positive line whose uid has no REC entry is an error naming both files.
//! - Without a REC file, VE-positive predictions are groundable with no box: legal for
//!   predictions (a text-only source), and marked as predictions (`DatasetMeta`).

use std::collections::HashMap;
use std::path::Path;

use crate::data::error::{DataError, DataResult, Location};
use crate::data::model::{Dataset, DatasetMeta, Entity, Side, Tweet};
use crate::data::text::{numbered_lines, read_text};
use crate::data::warnings::{DataWarning, ReadOutput};
use crate::geometry::BBox;

const LABELS_HINT: &str =
    "each line is `img.jpg###Entity(TYPE)###description###F###&[x1, y1, x2, y2]`";
const OFA_HINT: &str =
    "each line is `Imageid:img.jpg#hhhh###Entity(TYPE)###Entity(TYPE)-expansion###F`";

/// Splits `Garfield Park(LOC)` into (`Garfield Park`, `LOC`).
pub fn split_entity_type(field: &str) -> Option<(&str, &str)> {
    let field = field.trim_end();
    let body = field.strip_suffix(')')?;
    let open = body.rfind('(')?;
    let (text, ty) = (&body[..open], &body[open + 1..]);
    if text.is_empty() || ty.is_empty() {
        return None;
    }
    Some((text, ty))
}

fn parse_entity_field(field: &str, at: &Location, hint: &str) -> DataResult<(String, String)> {
    split_entity_type(field)
        .map(|(t, ty)| (t.to_string(), ty.to_string()))
        .ok_or_else(|| {
            DataError::invalid(
                at.clone(),
                format!("entity field {field:?} is not `Entity(TYPE)`"),
                hint,
            )
        })
}

fn parse_flag(field: &str, at: &Location, hint: &str) -> DataResult<bool> {
    field.trim().parse::<i64>().map(|f| f != 0).map_err(|_| {
        DataError::invalid(
            at.clone(),
            format!(
                "groundability flag {field:?} is not an integer (0 = ungroundable, 2 = groundable)"
            ),
            hint,
        )
    })
}

/// Parses `[x1, y1, x2, y2]` (the seed writes Python lists).
pub fn parse_box(text: &str, at: &Location) -> DataResult<BBox> {
    let bad = |why: String| {
        DataError::invalid(
            at.clone(),
            why,
            "a box is `[x1, y1, x2, y2]`: four finite numbers with x1 <= x2 and y1 <= y2",
        )
    };
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| bad(format!("box {text:?} is not a [..] list")))?;
    let nums: Vec<&str> = inner.split(',').map(str::trim).collect();
    if nums.len() != 4 {
        return Err(bad(format!(
            "box {text:?} has {} numbers, not 4",
            nums.len()
        )));
    }
    let mut v = [0f64; 4];
    for (i, n) in nums.iter().enumerate() {
        v[i] = n
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad(format!("box {text:?}: {n:?} is not a finite number")))?;
    }
    let b = BBox(v);
    b.validate().map_err(bad)?;
    Ok(b)
}

/// Groups entities into tweets by image id, in order of first appearance.
struct TweetGrouper {
    tweets: Vec<Tweet>,
    index: HashMap<String, usize>,
}

impl TweetGrouper {
    fn new() -> Self {
        TweetGrouper {
            tweets: Vec::new(),
            index: HashMap::new(),
        }
    }
    fn push(&mut self, image: &str, entity: Entity) {
        let id = image.strip_suffix(".jpg").unwrap_or(image).to_string();
        let i = *self.index.entry(id.clone()).or_insert_with(|| {
            self.tweets.push(Tweet {
                id,
                image: Some(image.to_string()),
                tokens: None,
                entities: Vec::new(),
                extra: Default::default(),
            });
            self.tweets.len() - 1
        });
        self.tweets[i].entities.push(entity);
    }
    fn finish(self, side: Side, source: &str) -> Dataset {
        Dataset {
            tweets: self.tweets,
            meta: Some(DatasetMeta::new(side, source)),
        }
    }
}

/// Reads RiVEG gold labels (`GMNER_finall_label.txt`).
pub fn read_riveg_labels(path: &Path) -> DataResult<ReadOutput> {
    let text = read_text(path)?;
    let mut grouper = TweetGrouper::new();
    let mut ignored_boxes: Vec<usize> = Vec::new();
    for (line_no, line) in numbered_lines(&text) {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location::line(path, line_no);
        let fields: Vec<&str> = line.split("###").collect();
        if fields.len() != 5 {
            return Err(DataError::invalid(
                at,
                format!("{} `###`-separated fields, expected 5", fields.len()),
                LABELS_HINT,
            ));
        }
        let image = fields[0].trim();
        let (text, ty) = parse_entity_field(fields[1], &at, LABELS_HINT)?;
        let groundable = parse_flag(fields[3], &at, LABELS_HINT)?;
        let box_field = fields[4].trim();
        let pieces: Vec<&str> = box_field.split('&').collect();
        if pieces.len() < 2 || !pieces[0].trim().is_empty() {
            return Err(DataError::invalid(
                at,
                format!("box field {box_field:?} does not start with `&[`"),
                LABELS_HINT,
            ));
        }
        let mut boxes = Vec::new();
        for p in &pieces[1..] {
            boxes.push(parse_box(p, &at)?);
        }
        if !groundable {
            // The seed writes `&[0, 0, 0, 0]` for ungroundable entities; anything else is
            // ignored by statistic.py too, but said.
            if boxes.iter().any(|b| b.0 != [0.0; 4]) {
                ignored_boxes.push(line_no);
            }
            boxes.clear();
        }
        grouper.push(
            image,
            Entity {
                text,
                entity_type: ty,
                groundable,
                boxes,
                expansion: Some(fields[2].to_string()).filter(|d| !d.is_empty()),
                ..Default::default()
            },
        );
    }
    let mut warnings = Vec::new();
    if let Some(&first) = ignored_boxes.first() {
        warnings.push(DataWarning::new(
            &Location::line(path, first),
            format!(
                "{} ungroundable line(s) (F = 0) carry a box other than [0, 0, 0, 0] (first here); the boxes are ignored, as statistic.py does",
                ignored_boxes.len()
            ),
        ));
    }
    Ok(ReadOutput {
        dataset: grouper.finish(Side::Gold, "riveg GMNER_finall_label.txt"),
        warnings,
    })
}

/// One entry of the OFA REC output.
#[derive(Debug, Clone, serde::Deserialize)]
struct RecEntry {
    uniq_id: String,
    #[serde(rename = "box")]
    bbox: Vec<f64>,
}

/// OFA REC boxes by uid, and the warnings raised reading them.
#[derive(Debug, Clone, Default)]
pub struct RecBoxes {
    pub boxes: HashMap<String, BBox>,
    pub warnings: Vec<DataWarning>,
}

/// Reads OFA REC boxes (`[{"uniq_id", "box"}]`) into a uid → box map (see the module doc for
/// repeated uids).
pub fn read_rec_boxes(path: &Path) -> DataResult<RecBoxes> {
    let text = read_text(path)?;
    let entries: Vec<RecEntry> = serde_json::from_str(&text).map_err(|e| {
        DataError::invalid(
            Location::line(path, e.line()),
            format!("invalid REC boxes JSON: {e}"),
            "expected a list of {\"uniq_id\": \"img.jpg#hhhh\", \"box\": [x1, y1, x2, y2]}",
        )
    })?;
    let mut map: HashMap<String, BBox> = HashMap::with_capacity(entries.len());
    let mut entry_of: HashMap<String, usize> = HashMap::with_capacity(entries.len());
    let mut repeats: Vec<String> = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let at = Location {
            file: path.to_path_buf(),
            line: None,
        };
        let rendered = format!("{:?}", e.bbox);
        let b = parse_box(&rendered, &at).map_err(|_| {
            DataError::invalid(
                at.clone(),
                format!("entry #{} ({}): box {rendered} is not four finite numbers with x1 <= x2, y1 <= y2", i + 1, e.uniq_id),
                "each box is [x1, y1, x2, y2] in original-image pixels",
            )
        })?;
        if let (Some(&first), Some(old)) = (entry_of.get(&e.uniq_id), map.get(&e.uniq_id)) {
            if *old != b {
                return Err(DataError::invalid(
                    at,
                    format!(
                        "entries #{} and #{} both have uniq_id {} but different boxes ({:?} vs {rendered})",
                        first + 1,
                        i + 1,
                        e.uniq_id,
                        old.0
                    ),
                    "each VE-positive prediction has exactly one REC entry; keep the box that belongs to it",
                ));
            }
            repeats.push(e.uniq_id);
            continue;
        }
        entry_of.insert(e.uniq_id.clone(), i);
        map.insert(e.uniq_id, b);
    }
    let mut warnings = Vec::new();
    if let Some(first) = repeats.first() {
        warnings.push(DataWarning::new(
            &Location::file(path),
            format!(
                "{} repeated uniq_id entr(ies) with the same box as before (first: {first}); used once",
                repeats.len()
            ),
        ));
    }
    Ok(RecBoxes {
        boxes: map,
        warnings,
    })
}

/// Reads RiVEG VE output (`OFAVE_to_OFAREC*.txt`), with boxes from the OFA REC output when given.
/// Without boxes, VE-positive entities are groundable with no box (GMNER then counts them wrong;
/// oracle VG can fill them).
pub fn read_riveg_ofa(path: &Path, boxes: Option<&Path>) -> DataResult<ReadOutput> {
    let text = read_text(path)?;
    let rec = boxes.map(read_rec_boxes).transpose()?;
    let mut grouper = TweetGrouper::new();
    let mut used = std::collections::HashSet::new();
    let mut line_of_uid: HashMap<String, usize> = HashMap::new();
    for (line_no, line) in numbered_lines(&text) {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location::line(path, line_no);
        let fields: Vec<&str> = line.split("###").collect();
        if fields.len() != 4 {
            return Err(DataError::invalid(
                at,
                format!("{} `###`-separated fields, expected 4", fields.len()),
                OFA_HINT,
            ));
        }
        let uid = fields[0].trim().strip_prefix("Imageid:").ok_or_else(|| {
            DataError::invalid(at.clone(), "line does not start with `Imageid:`", OFA_HINT)
        })?;
        if let Some(first) = line_of_uid.insert(uid.to_string(), line_no) {
            return Err(DataError::invalid(
                at,
                format!("prediction uid {uid} is already on line {first}"),
                "each VE line has its own `Imageid:img.jpg#hhhh` (the unique id of that prediction)",
            ));
        }
        let image = uid.rsplit_once('#').map(|(img, _)| img).unwrap_or(uid);
        let (text, ty) = parse_entity_field(fields[1], &at, OFA_HINT)?;
        let groundable = parse_flag(fields[3], &at, OFA_HINT)?;
        let mut entity_boxes = Vec::new();
        if groundable {
            if let (Some(rec), Some(rec_path)) = (&rec, boxes) {
                let b = rec.boxes.get(uid).ok_or_else(|| {
                    DataError::invalid(
                        at.clone(),
                        format!(
                            "VE-positive prediction {uid} has no box in the REC boxes file {}",
                            rec_path.display()
                        ),
                        format!(
                            "{} needs one entry per VE-positive line of {} (uniq_id = the Imageid value)",
                            rec_path.display(),
                            path.display()
                        ),
                    )
                })?;
                entity_boxes.push(*b);
                used.insert(uid.to_string());
            }
        }
        grouper.push(
            image,
            Entity {
                text,
                entity_type: ty,
                groundable,
                boxes: entity_boxes,
                expansion: Some(fields[2].to_string()),
                uid: Some(uid.to_string()),
                ..Default::default()
            },
        );
    }
    let mut warnings = Vec::new();
    if let (Some(rec), Some(bpath)) = (&rec, boxes) {
        warnings.extend(rec.warnings.iter().cloned());
        let mut unused: Vec<&String> = rec.boxes.keys().filter(|k| !used.contains(*k)).collect();
        unused.sort();
        for uid in unused {
            warnings.push(DataWarning::new(
                &Location::file(bpath),
                format!("box for {uid} matches no VE-positive line (ignored)"),
            ));
        }
    }
    Ok(ReadOutput {
        dataset: grouper.finish(Side::Predictions, "riveg OFAVE_to_OFAREC (VE + REC)"),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn labels_real_lines() {
        let (_d, p) = write(
            "GMNER_finall_label.txt",
            "71044.jpg###Garfield Park(LOC)###a park with a greenhouse###0###&[0, 0, 0, 0]\n\
             475049.jpg###San Francisco City Hall(LOC)###a prominent building###2###&[1.0, 339.0, 597.0, 631.0]\n",
        );
        let ds = read_riveg_labels(&p).unwrap().dataset;
        assert_eq!(ds.tweets.len(), 2);
        assert_eq!(ds.tweets[0].id, "71044");
        assert!(!ds.tweets[0].entities[0].groundable);
        assert!(ds.tweets[0].entities[0].boxes.is_empty());
        assert_eq!(
            ds.tweets[1].entities[0].boxes[0].0,
            [1.0, 339.0, 597.0, 631.0]
        );
    }

    #[test]
    fn ofa_with_boxes_and_missing_uid() {
        let ve = "Imageid:O_2371.jpg#182b###Angelina Jolie(PER)###Angelina Jolie(PER)-A prominent actress.###2\r\n\
                  Imageid:71044.jpg#7060###Garfield Park(LOC)###Garfield Park(LOC)-A conservatory.###0\r\n";
        let (d, p) = write("ve.txt", ve);
        let rec = d.path().join("rec.json");
        std::fs::write(
            &rec,
            r#"[{"uniq_id": "O_2371.jpg#182b", "box": [296.0, 24.0, 600.0, 450.0]}]"#,
        )
        .unwrap();
        let ds = read_riveg_ofa(&p, Some(&rec)).unwrap().dataset;
        let e = &ds.tweets[0].entities[0];
        assert_eq!(e.uid.as_deref(), Some("O_2371.jpg#182b"));
        assert_eq!(e.boxes[0].0, [296.0, 24.0, 600.0, 450.0]);
        std::fs::write(&rec, "[]").unwrap();
        let err = read_riveg_ofa(&p, Some(&rec)).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "ve.txt:1: VE-positive prediction O_2371.jpg#182b has no box in the REC boxes file {}",
                rec.display()
            )),
            "{err}"
        );
        assert!(
            err.contains("rec.json needs one entry per VE-positive line of"),
            "{err}"
        );
    }

    #[test]
    fn repeated_rec_uid_same_box_warns_different_box_fails() {
        let ve = "Imageid:O_2371.jpg#182b###Angelina Jolie(PER)###Angelina Jolie(PER)-A.###2\n";
        let (d, p) = write("ve.txt", ve);
        let rec = d.path().join("rec.json");
        let entry = r#"{"uniq_id": "O_2371.jpg#182b", "box": [1.0, 2.0, 3.0, 4.0]}"#;
        std::fs::write(&rec, format!("[{entry}, {entry}]")).unwrap();
        let out = read_riveg_ofa(&p, Some(&rec)).unwrap();
        assert_eq!(
            out.dataset.tweets[0].entities[0].boxes[0].0,
            [1.0, 2.0, 3.0, 4.0]
        );
        assert_eq!(out.warnings.len(), 1);
        assert!(
            out.warnings[0].message.starts_with(
                "1 repeated uniq_id entr(ies) with the same box as before (first: O_2371.jpg#182b)"
            ),
            "{:?}",
            out.warnings
        );
        let other = r#"{"uniq_id": "O_2371.jpg#182b", "box": [1.0, 2.0, 3.0, 9.0]}"#;
        std::fs::write(&rec, format!("[{entry}, {other}]")).unwrap();
        let err = read_riveg_ofa(&p, Some(&rec)).unwrap_err().to_string();
        assert!(
            err.contains("rec.json: entries #1 and #2 both have uniq_id O_2371.jpg#182b but different boxes ([1.0, 2.0, 3.0, 4.0] vs [1.0, 2.0, 3.0, 9.0])"),
            "{err}"
        );
    }

    #[test]
    fn repeated_ve_uid_is_an_error() {
        let ve = "Imageid:O_1.jpg#aaaa###A(PER)###A(PER)-x###0\nImageid:O_1.jpg#bbbb###B(PER)###B(PER)-x###0\nImageid:O_1.jpg#aaaa###C(PER)###C(PER)-x###0\n";
        let (_d, p) = write("ve.txt", ve);
        let err = read_riveg_ofa(&p, None).unwrap_err().to_string();
        assert!(
            err.contains("ve.txt:3: prediction uid O_1.jpg#aaaa is already on line 1"),
            "{err}"
        );
    }

    #[test]
    fn ungroundable_label_with_a_real_box_is_a_counted_warning() {
        let (_d, p) = write(
            "l.txt",
            "1.jpg###A(PER)###d###0###&[0, 0, 0, 0]\n2.jpg###B(PER)###d###0###&[1, 2, 3, 4]\n3.jpg###C(PER)###d###0###&[5, 6, 7, 8]\n",
        );
        let out = read_riveg_labels(&p).unwrap();
        assert!(out
            .dataset
            .tweets
            .iter()
            .all(|t| t.entities[0].boxes.is_empty()));
        assert_eq!(out.warnings.len(), 1);
        assert_eq!(out.warnings[0].at, format!("{}:2", p.display()));
        assert!(
            out.warnings[0]
                .message
                .starts_with("2 ungroundable line(s) (F = 0) carry a box other than [0, 0, 0, 0]"),
            "{:?}",
            out.warnings
        );
        assert_eq!(out.dataset.meta.as_ref().map(|m| m.side), Some(Side::Gold));
    }

    #[test]
    fn wrong_field_count() {
        let (_d, p) = write(
            "l.txt",
            "71044.jpg###Garfield Park(LOC)###0###&[0, 0, 0, 0]\n",
        );
        let err = read_riveg_labels(&p).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:1: 4 `###`-separated fields, expected 5",
                p.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn bad_boxes() {
        let at = Location::line("x", 1);
        assert!(parse_box("[1, 2, 3]", &at).is_err());
        assert!(parse_box("[1, 2, nan, 4]", &at).is_err());
        assert!(parse_box("[5, 2, 3, 4]", &at)
            .unwrap_err()
            .to_string()
            .contains("x2 < x1"));
        assert_eq!(
            parse_box("[1, 2, 3, 4]", &at).unwrap().0,
            [1.0, 2.0, 3.0, 4.0]
        );
    }
}
