//! Twitter-SMNER gold masks: per-image segmentation files joined to a GMNER-style text dataset.
//!
//! The released SMNER layout is not public here (docs PROTOCOLS.md), so two common layouts are
//! read, and a third is one small function: every layout only turns its files into
//! [`MaskRecord`]s (image id, label, mask, where it came from); [`attach_masks`] does the join.
//!
//! ## Layout (a): a folder of LabelMe JSON files, one per image, `<image id>.json`
//! ```json
//! {"imageHeight": 480, "imageWidth": 640,
//!  "shapes": [{"label": "Angelina Jolie", "shape_type": "polygon",
//!              "points": [[296.5, 24.0], [600.0, 30.2], [580.0, 450.0]], "group_id": null}]}
//! ```
//! `shape_type` is `polygon` (the default when absent, as in LabelMe) or `rectangle` (two corner
//! points, any order). Polygons are rasterised as pycocotools `frPoly`, rectangles as `frBbox`,
//! at `imageHeight x imageWidth`. Each shape is one mask, except that shapes with the same label
//! and the same non-null `group_id` are one object in LabelMe and are merged (union) into one.
//! Other files in the folder (images, `.txt`) are ignored; JSON files are read in name order.
//!
//! ## Layout (b): one COCO-style annotation JSON
//! ```json
//! {"images": [{"id": 1, "file_name": "O_2371.jpg", "height": 480, "width": 640}],
//!  "categories": [{"id": 7, "name": "Angelina Jolie"}],
//!  "annotations": [{"id": 1, "image_id": 1, "category_id": 7,
//!                   "segmentation": [[296.5, 24.0, 600.0, 30.2, 580.0, 450.0]]}]}
//! ```
//! `segmentation` is a polygon list (several polygons are one mask, their union, as
//! `COCO.annToRLE`), or an RLE `{"size": [h, w], "counts": "..." | [..]}` whose size must be
//! the image's. The label is the annotation's `entity`, else its `name`, else the name of its
//! `category_id` in `categories`. The image id is `file_name` without its extension (else `id`).
//!
//! ## The join
//! A mask belongs to the tweet whose id is the image id (or whose image file is `file_name`),
//! and to every entity of that tweet whose text equals the label exactly, as GMNER links xml
//! `<name>`s. Such an entity becomes groundable, gets the mask (compressed COCO RLE), and, if it
//! had no box, the mask's tight box, so that "groundable ⇒ at least one box" still holds. Masks
//! whose image or label matches nothing are data warnings, never dropped silently.
//!
//! Errors (with file, record and hint): malformed JSON, a mask whose size differs from its image,
//! RLE counts that do not sum to h*w, a polygon with fewer than 3 points or a coordinate that is
//! not finite or beyond ±1e7 px, an unknown shape type, an image or category id that two COCO
//! entries share (the last would win silently). Polygons reaching outside the image are
//! rasterised as pycocotools does (`geometry::polygon`), in time bounded by the image.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::data::error::{DataError, DataResult, Location};
use crate::data::model::Dataset;
use crate::data::text::read_text;
use crate::geometry::{polygon_to_rle, BBox, CocoRle, MaskError, Rle};

/// One mask of one image, as a layout reader produces it, before the join.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskRecord {
    /// The image id: a tweet id (e.g. `O_2371`) or an image file name (`O_2371.jpg`).
    pub image_id: String,
    /// The entity text this mask belongs to.
    pub label: String,
    pub mask: Rle,
    /// The file (and line, when known) the mask came from.
    pub at: Location,
    /// Which record inside the file, for messages (e.g. `shape #3`, `annotation #5 (id 17)`).
    pub record: String,
}

/// The joined dataset and the data warnings raised while joining.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmnerRead {
    pub dataset: Dataset,
    /// One line per problem, `file: record: message`.
    pub warnings: Vec<String>,
}

/// Reads layout (a), a folder of LabelMe JSONs, and joins it to `text`.
pub fn read_labelme_dir(dir: &Path, text: &Dataset) -> DataResult<SmnerRead> {
    Ok(attach_masks(text, labelme_dir_records(dir)?))
}

/// Reads layout (b), one COCO-style JSON, and joins it to `text`.
pub fn read_coco_json(path: &Path, text: &Dataset) -> DataResult<SmnerRead> {
    Ok(attach_masks(text, coco_records(path)?))
}

fn mask_error(at: &Location, record: &str, e: MaskError) -> DataError {
    let (what, hint) = e.what_and_hint();
    DataError::invalid(at.clone(), format!("{record}: {what}"), hint)
}

fn json_error(path: &Path, e: &serde_json::Error, layout: &str, hint: &str) -> DataError {
    let at = if e.line() > 0 {
        Location::line(path, e.line())
    } else {
        Location::file(path)
    };
    DataError::invalid(at, format!("not a {layout} JSON: {e}"), hint)
}

// ---------------------------------------------------------------------------------------------
// Layout (a): LabelMe

#[derive(Deserialize)]
struct LabelMeFile {
    shapes: Vec<LabelMeShape>,
    #[serde(rename = "imageHeight")]
    image_height: u32,
    #[serde(rename = "imageWidth")]
    image_width: u32,
}

#[derive(Deserialize)]
struct LabelMeShape {
    label: String,
    points: Vec<[f64; 2]>,
    #[serde(default)]
    shape_type: Option<String>,
    #[serde(default)]
    group_id: Option<i64>,
}

const LABELME_HINT: &str = "a LabelMe file is {\"imageHeight\": h, \"imageWidth\": w, \"shapes\": [{\"label\": ..., \"points\": [[x, y], ...], \"shape_type\": \"polygon\"}]}";

/// The masks of every `*.json` in `dir` (layout (a)), files in name order.
pub fn labelme_dir_records(dir: &Path) -> DataResult<Vec<MaskRecord>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("json"))
        {
            files.push(path);
        }
    }
    files.sort();
    let mut records = Vec::new();
    for path in files {
        let image_id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        records.extend(parse_labelme(&read_text(&path)?, &image_id, &path)?);
    }
    Ok(records)
}

/// The masks of one LabelMe JSON text; `path` is used in messages only.
pub fn parse_labelme(json: &str, image_id: &str, path: &Path) -> DataResult<Vec<MaskRecord>> {
    let file: LabelMeFile =
        serde_json::from_str(json).map_err(|e| json_error(path, &e, "LabelMe", LABELME_HINT))?;
    let at = Location::file(path);
    let (height, width) = (file.image_height, file.image_width);
    if height == 0 || width == 0 {
        return Err(DataError::invalid(
            at,
            format!("image size is {height}x{width}"),
            "imageHeight and imageWidth are the image's size in pixels and must be positive",
        ));
    }
    // (label, group_id) -> index in `records`, to merge the parts of one grouped object.
    let mut groups: HashMap<(String, i64), usize> = HashMap::new();
    let mut records: Vec<MaskRecord> = Vec::new();
    for (i, shape) in file.shapes.iter().enumerate() {
        let record = format!("shape #{} ({:?})", i + 1, shape.label);
        let mask = labelme_shape_mask(shape, height, width).map_err(|e| match e {
            ShapeError::Mask(e) => mask_error(&at, &record, e),
            ShapeError::Other { what, hint } => {
                DataError::invalid(at.clone(), format!("{record}: {what}"), hint)
            }
        })?;
        if let Some(group) = shape.group_id {
            if let Some(&k) = groups.get(&(shape.label.clone(), group)) {
                let merged = Rle::union(&[records[k].mask.clone(), mask])
                    .map_err(|e| mask_error(&at, &record, e))?;
                if let Some(merged) = merged {
                    records[k].mask = merged;
                    records[k].record.push_str(&format!(" + #{}", i + 1));
                }
                continue;
            }
            groups.insert((shape.label.clone(), group), records.len());
        }
        records.push(MaskRecord {
            image_id: image_id.to_string(),
            label: shape.label.clone(),
            mask,
            at: at.clone(),
            record,
        });
    }
    Ok(records)
}

enum ShapeError {
    Mask(MaskError),
    Other { what: String, hint: String },
}

impl From<MaskError> for ShapeError {
    fn from(e: MaskError) -> Self {
        ShapeError::Mask(e)
    }
}

fn labelme_shape_mask(shape: &LabelMeShape, height: u32, width: u32) -> Result<Rle, ShapeError> {
    match shape.shape_type.as_deref().unwrap_or("polygon") {
        "polygon" => {
            let xy: Vec<f64> = shape.points.iter().flatten().copied().collect();
            Ok(polygon_to_rle(&[xy], height, width)?)
        }
        "rectangle" => {
            let [[xa, ya], [xb, yb]] = shape.points[..] else {
                return Err(ShapeError::Other {
                    what: format!("a rectangle has {} points", shape.points.len()),
                    hint: "LabelMe rectangles have exactly two corner points".into(),
                });
            };
            let bbox = BBox::new(xa.min(xb), ya.min(yb), xa.max(xb), ya.max(yb));
            Ok(Rle::from_bbox(&bbox, height, width)?)
        }
        other => Err(ShapeError::Other {
            what: format!("shape_type {other:?} is not a region this reader can rasterise"),
            hint: "use polygon or rectangle shapes (LabelMe can convert circles and masks to polygons)"
                .into(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Layout (b): COCO

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
    #[serde(default)]
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: Value,
    #[serde(default)]
    file_name: Option<String>,
    height: u32,
    width: u32,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    #[serde(default)]
    id: Option<Value>,
    image_id: Value,
    segmentation: Value,
    #[serde(default)]
    category_id: Option<Value>,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: Value,
    name: String,
}

const COCO_HINT: &str = "a COCO file has \"images\" [{id, file_name, height, width}], \"annotations\" [{image_id, segmentation, category_id | entity | name}] and optionally \"categories\" [{id, name}]";

/// COCO ids are numbers or strings; both become the same map key.
fn id_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The masks of a COCO-style JSON file (layout (b)).
pub fn coco_records(path: &Path) -> DataResult<Vec<MaskRecord>> {
    parse_coco(&read_text(path)?, path)
}

/// The masks of a COCO-style JSON text; `path` is used in messages only.
pub fn parse_coco(json: &str, path: &Path) -> DataResult<Vec<MaskRecord>> {
    let file: CocoFile = serde_json::from_str(json)
        .map_err(|e| json_error(path, &e, "COCO annotation", COCO_HINT))?;
    let at = Location::file(path);
    // A repeated image or category id would let the last entry win silently (pycocotools'
    // COCO index does the same); which size or name was meant is unknowable, so it is an error.
    let mut images: HashMap<String, &CocoImage> = HashMap::with_capacity(file.images.len());
    for (i, img) in file.images.iter().enumerate() {
        if images.insert(id_key(&img.id), img).is_some() {
            return Err(DataError::invalid(
                at.clone(),
                format!("images #{}: id {} is repeated", i + 1, id_key(&img.id)),
                "each entry of \"images\" needs its own id",
            ));
        }
    }
    let mut categories: HashMap<String, &str> = HashMap::with_capacity(file.categories.len());
    for (i, c) in file.categories.iter().enumerate() {
        if categories.insert(id_key(&c.id), c.name.as_str()).is_some() {
            return Err(DataError::invalid(
                at.clone(),
                format!("categories #{}: id {} is repeated", i + 1, id_key(&c.id)),
                "each entry of \"categories\" needs its own id (its name is the entity text)",
            ));
        }
    }
    let mut records = Vec::with_capacity(file.annotations.len());
    for (i, ann) in file.annotations.iter().enumerate() {
        let record = match &ann.id {
            Some(id) => format!("annotation #{} (id {})", i + 1, id_key(id)),
            None => format!("annotation #{}", i + 1),
        };
        let invalid = |what: String, hint: &str| {
            DataError::invalid(at.clone(), format!("{record}: {what}"), hint)
        };
        let image_key = id_key(&ann.image_id);
        let Some(image) = images.get(&image_key) else {
            return Err(invalid(
                format!("image_id {image_key} is not in \"images\""),
                "every annotation's image_id must be the id of an entry of \"images\"",
            ));
        };
        let label = match (&ann.entity, &ann.name, &ann.category_id) {
            (Some(entity), _, _) => entity.clone(),
            (None, Some(name), _) => name.clone(),
            (None, None, Some(cat)) => match categories.get(&id_key(cat)) {
                Some(name) => name.to_string(),
                None => {
                    return Err(invalid(
                        format!("category_id {} is not in \"categories\"", id_key(cat)),
                        "add the category with its name (the entity text), or give the annotation an \"entity\" field",
                    ))
                }
            },
            (None, None, None) => {
                return Err(invalid(
                    "no label".into(),
                    "give the annotation an \"entity\" (the entity text), a \"name\", or a \"category_id\"",
                ))
            }
        };
        let mask =
            coco_segmentation_mask(&ann.segmentation, image.height, image.width).map_err(|e| {
                match e {
                    ShapeError::Mask(e) => mask_error(&at, &record, e),
                    ShapeError::Other { what, hint } => invalid(what, &hint),
                }
            })?;
        let image_id = match &image.file_name {
            Some(name) => Path::new(name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.clone()),
            None => image_key,
        };
        records.push(MaskRecord {
            image_id,
            label,
            mask,
            at: at.clone(),
            record,
        });
    }
    Ok(records)
}

fn coco_segmentation_mask(seg: &Value, height: u32, width: u32) -> Result<Rle, ShapeError> {
    match seg {
        Value::Array(_) => {
            let polys: Vec<Vec<f64>> =
                serde_json::from_value(seg.clone()).map_err(|e| ShapeError::Other {
                    what: format!("segmentation is a list but not a list of polygons: {e}"),
                    hint: "polygons are [[x1, y1, x2, y2, ...], ...] in pixels".into(),
                })?;
            if polys.is_empty() {
                return Err(ShapeError::Other {
                    what: "segmentation is an empty polygon list".into(),
                    hint: "give at least one polygon, or leave the annotation out".into(),
                });
            }
            Ok(polygon_to_rle(&polys, height, width)?)
        }
        Value::Object(_) => {
            let rle: CocoRle =
                serde_json::from_value(seg.clone()).map_err(|e| ShapeError::Other {
                    what: format!("segmentation is an object but not a COCO RLE: {e}"),
                    hint: "an RLE is {\"size\": [h, w], \"counts\": \"...\"} or with counts as a list of run lengths".into(),
                })?;
            if rle.size != [height, width] {
                return Err(ShapeError::Other {
                    what: format!(
                        "mask size {}x{} differs from its image's {height}x{width}",
                        rle.height(),
                        rle.width()
                    ),
                    hint: "the RLE size is [height, width] of the image it belongs to; check for a swapped size or a resized image".into(),
                });
            }
            Ok(rle.to_rle()?)
        }
        _ => Err(ShapeError::Other {
            what: "segmentation is neither a polygon list nor an RLE".into(),
            hint: "use [[x1, y1, ...]] or {\"size\": [h, w], \"counts\": ...}".into(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The join

/// Joins mask records to the text dataset (see the module doc). Never fails: what cannot be
/// joined becomes a warning.
pub fn attach_masks(text: &Dataset, records: Vec<MaskRecord>) -> SmnerRead {
    let mut dataset = text.clone();
    let mut warnings = Vec::new();
    let mut tweet_by_image: HashMap<String, usize> = HashMap::new();
    for (i, tweet) in dataset.tweets.iter().enumerate() {
        // The first tweet with an id wins, as in source order.
        tweet_by_image.entry(tweet.id.clone()).or_insert(i);
        if let Some(image) = &tweet.image {
            tweet_by_image.entry(image.clone()).or_insert(i);
            if let Some(stem) = Path::new(image).file_stem() {
                tweet_by_image
                    .entry(stem.to_string_lossy().into_owned())
                    .or_insert(i);
            }
        }
    }
    let mut got_mask: Vec<Vec<bool>> = dataset
        .tweets
        .iter()
        .map(|t| vec![false; t.entities.len()])
        .collect();
    for rec in records {
        let where_ = format!("{}: {}", rec.at, rec.record);
        let Some(&ti) = tweet_by_image.get(&rec.image_id) else {
            warnings.push(format!(
                "{where_}: image {:?} is not a tweet of the text dataset; mask {:?} not used",
                rec.image_id, rec.label
            ));
            continue;
        };
        let tweet = &mut dataset.tweets[ti];
        let matching: Vec<usize> = (0..tweet.entities.len())
            .filter(|&e| tweet.entities[e].text == rec.label)
            .collect();
        if matching.is_empty() {
            let names: Vec<&str> = tweet.entities.iter().map(|e| e.text.as_str()).collect();
            warnings.push(format!(
                "{where_}: label {:?} matches no entity of tweet {} (entities: {names:?}); mask not used",
                rec.label, tweet.id
            ));
            continue;
        }
        if rec.mask.area() == 0 {
            warnings.push(format!(
                "{where_}: mask of {:?} in tweet {} is empty; kept, but no prediction can match it",
                rec.label, tweet.id
            ));
        }
        let coco = rec.mask.to_coco();
        let bbox = (rec.mask.area() > 0).then(|| rec.mask.to_bbox());
        for e in matching {
            let entity = &mut tweet.entities[e];
            entity.groundable = true;
            entity.masks.push(coco.clone());
            if entity.boxes.is_empty() {
                entity.boxes.extend(bbox);
            }
            got_mask[ti][e] = true;
        }
    }
    let boxed_without_mask = dataset
        .tweets
        .iter()
        .zip(&got_mask)
        .flat_map(|(t, got)| t.entities.iter().zip(got))
        .filter(|(e, got)| e.groundable && !**got)
        .count();
    if boxed_without_mask > 0 {
        warnings.push(format!(
            "{boxed_without_mask} entities are groundable in the text dataset but got no mask; they keep their boxes and no masks"
        ));
    }
    SmnerRead { dataset, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::model::{Entity, Tweet};
    use std::path::PathBuf;

    fn text() -> Dataset {
        Dataset::new(vec![Tweet {
            id: "O_1".into(),
            image: Some("O_1.jpg".into()),
            tokens: None,
            entities: vec![
                Entity::new("Angelina Jolie", "PER"),
                Entity::new("Paris", "LOC"),
            ],
            ..Default::default()
        }])
    }

    #[test]
    fn labelme_polygon_and_rectangle_attach() {
        let json = r#"{"imageHeight": 10, "imageWidth": 12, "shapes": [
            {"label": "Angelina Jolie", "points": [[1, 1], [5, 1], [5, 6]], "shape_type": "polygon"},
            {"label": "Paris", "points": [[8, 9], [2, 3]], "shape_type": "rectangle"},
            {"label": "Justise Winslo", "points": [[0, 0], [3, 0], [3, 3]]}]}"#;
        let recs = parse_labelme(json, "O_1", &PathBuf::from("O_1.json")).unwrap();
        assert_eq!(recs.len(), 3);
        let out = attach_masks(&text(), recs);
        let ents = &out.dataset.tweets[0].entities;
        assert!(ents[0].groundable && ents[1].groundable);
        assert_eq!(ents[1].masks.len(), 1);
        let paris = ents[1].masks[0].to_rle().unwrap();
        assert_eq!(paris.area(), 6 * 6);
        assert_eq!(ents[1].boxes, vec![BBox::new(2.0, 3.0, 8.0, 9.0)]);
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        assert!(
            out.warnings[0].contains("Justise Winslo"),
            "{:?}",
            out.warnings
        );
        assert!(
            out.warnings[0].starts_with("O_1.json: shape #3"),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn labelme_groups_are_merged() {
        let json = r#"{"imageHeight": 10, "imageWidth": 10, "shapes": [
            {"label": "Paris", "points": [[0, 0], [2, 0], [2, 2], [0, 2]], "group_id": 4},
            {"label": "Paris", "points": [[5, 5], [7, 5], [7, 7], [5, 7]], "group_id": 4},
            {"label": "Paris", "points": [[5, 0], [7, 0], [7, 2], [5, 2]]}]}"#;
        let recs = parse_labelme(json, "O_1", &PathBuf::from("O_1.json")).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].mask.area(), 8);
        assert_eq!(recs[0].record, "shape #1 (\"Paris\") + #2");
    }

    #[test]
    fn labelme_errors_name_the_file_and_shape() {
        let short = r#"{"imageHeight": 10, "imageWidth": 10, "shapes": [
            {"label": "Paris", "points": [[0, 0], [2, 0]]}]}"#;
        let err = parse_labelme(short, "O_1", &PathBuf::from("d/O_1.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("d/O_1.json: shape #1 (\"Paris\"): polygon #0 has 2 point(s)"),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
        let broken = "{\"imageHeight\": 10,\n \"imageWidth\": 10, \"shapes\": [";
        let err = parse_labelme(broken, "O_1", &PathBuf::from("O_1.json"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("O_1.json:2: not a LabelMe JSON"), "{err}");
        let circle = r#"{"imageHeight": 10, "imageWidth": 10, "shapes": [
            {"label": "Paris", "points": [[0, 0], [2, 0]], "shape_type": "circle"}]}"#;
        let err = parse_labelme(circle, "O_1", &PathBuf::from("O_1.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"circle\""), "{err}");
    }

    #[test]
    fn coco_polygons_rle_and_labels() {
        let full = Rle::full(4, 5).unwrap().to_compressed_string();
        let json = format!(
            r#"{{"images": [{{"id": 1, "file_name": "O_1.jpg", "height": 4, "width": 5}}],
            "categories": [{{"id": 7, "name": "Paris"}}],
            "annotations": [
              {{"id": 10, "image_id": 1, "category_id": 7, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}},
              {{"id": 11, "image_id": 1, "entity": "Angelina Jolie", "segmentation": {{"size": [4, 5], "counts": "{full}"}}}},
              {{"id": 12, "image_id": 1, "name": "Angelina Jolie", "segmentation": {{"size": [4, 5], "counts": [0, 20]}}}}]}}"#
        );
        let recs = parse_coco(&json, &PathBuf::from("ann.json")).unwrap();
        let labels: Vec<&str> = recs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["Paris", "Angelina Jolie", "Angelina Jolie"]);
        assert_eq!(recs[0].mask.area(), 4);
        assert_eq!(recs[1].mask, recs[2].mask);
        let out = attach_masks(&text(), recs);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_eq!(out.dataset.tweets[0].entities[0].masks.len(), 2);
    }

    #[test]
    fn coco_size_mismatch_and_bad_counts_are_errors() {
        let json = r#"{"images": [{"id": 1, "file_name": "O_1.jpg", "height": 4, "width": 5}],
            "annotations": [{"id": 3, "image_id": 1, "entity": "Paris", "segmentation": {"size": [5, 4], "counts": [0, 20]}}]}"#;
        let err = parse_coco(json, &PathBuf::from("ann.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("annotation #1 (id 3): mask size 5x4 differs from its image's 4x5"),
            "{err}"
        );
        let json = r#"{"images": [{"id": 1, "file_name": "O_1.jpg", "height": 4, "width": 5}],
            "annotations": [{"image_id": 1, "entity": "Paris", "segmentation": {"size": [4, 5], "counts": [0, 19]}}]}"#;
        let err = parse_coco(json, &PathBuf::from("ann.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("annotation #1: RLE counts sum to 19 pixels"),
            "{err}"
        );
        let json = r#"{"images": [], "annotations": [{"image_id": 2, "entity": "Paris", "segmentation": []}]}"#;
        let err = parse_coco(json, &PathBuf::from("ann.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("image_id 2 is not in"), "{err}");
    }

    #[test]
    fn coco_repeated_ids_and_absurd_coordinates_are_errors() {
        let json = r#"{"images": [{"id": 1, "height": 4, "width": 5}, {"id": 1, "height": 9, "width": 9}], "annotations": []}"#;
        let err = parse_coco(json, &PathBuf::from("ann.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ann.json: images #2: id 1 is repeated"),
            "{err}"
        );
        let json = r#"{"images": [], "annotations": [], "categories": [{"id": "c", "name": "A"}, {"id": "c", "name": "B"}]}"#;
        let err = parse_coco(json, &PathBuf::from("ann.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ann.json: categories #2: id c is repeated"),
            "{err}"
        );
        // A coordinate beyond ±1e7 px names the annotation and the polygon.
        let json = r#"{"images": [{"id": 1, "height": 4, "width": 5}],
            "annotations": [{"id": 9, "image_id": 1, "entity": "Paris", "segmentation": [[0, 0, 3e9, 1, 2, 2]]}]}"#;
        let err = parse_coco(json, &PathBuf::from("ann.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("annotation #1 (id 9): polygon #0 has the coordinate 3000000000"),
            "{err}"
        );
        // Far outside but within the limit: rasterised (clipped), not rejected, not slow.
        let json = r#"{"images": [{"id": 1, "file_name": "O_1.jpg", "height": 4, "width": 5}],
            "annotations": [{"image_id": 1, "entity": "Paris", "segmentation": [[-9e6, -9e6, 9e6, -9e6, 9e6, 9e6, -9e6, 9e6]]}]}"#;
        let records = parse_coco(json, &PathBuf::from("ann.json")).unwrap();
        assert_eq!(records[0].mask.area(), 20);
    }

    #[test]
    fn reads_a_labelme_folder_and_a_coco_file() {
        let dir = tempfile::tempdir().unwrap();
        let shape = r#"{"imageHeight": 6, "imageWidth": 6, "shapes": [
            {"label": "Paris", "points": [[0, 0], [4, 0], [4, 4], [0, 4]]}]}"#;
        std::fs::write(dir.path().join("O_1.json"), shape).unwrap();
        std::fs::write(dir.path().join("O_2.json"), shape).unwrap();
        std::fs::write(dir.path().join("O_1.jpg"), b"not json").unwrap();
        let out = read_labelme_dir(dir.path(), &text()).unwrap();
        assert_eq!(out.dataset.tweets[0].entities[1].masks.len(), 1);
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        assert!(out.warnings[0].contains("O_2.json"), "{:?}", out.warnings);

        let coco = dir.path().join("ann.json");
        std::fs::write(
            &coco,
            r#"{"images": [{"id": "a", "file_name": "O_1.jpg", "height": 6, "width": 6}],
                "annotations": [{"image_id": "a", "entity": "Paris", "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}]}"#,
        )
        .unwrap();
        let from_coco = read_coco_json(&coco, &text()).unwrap();
        assert_eq!(
            from_coco.dataset.tweets[0].entities[1].masks,
            out.dataset.tweets[0].entities[1].masks
        );
        let missing = read_coco_json(&dir.path().join("nope.json"), &text()).unwrap_err();
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }

    #[test]
    fn unknown_image_is_a_warning() {
        let rec = MaskRecord {
            image_id: "O_9".into(),
            label: "Paris".into(),
            mask: Rle::full(2, 2).unwrap(),
            at: Location::file("x.json"),
            record: "annotation #1".into(),
        };
        let out = attach_masks(&text(), vec![rec]);
        assert_eq!(out.dataset, text());
        assert!(
            out.warnings[0].contains("image \"O_9\" is not a tweet"),
            "{:?}",
            out.warnings
        );
    }
}
