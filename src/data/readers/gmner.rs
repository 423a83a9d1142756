//! Twitter-GMNER v1 / v2.0: `txt/{split}.txt` (IMGID + `token<TAB>BIO`) and `xml/<id>.xml`
//! (Pascal VOC). An entity is groundable when some xml `<name>` equals its text exactly (tokens
//! joined by single spaces, case-sensitive: how both published systems link them) and gets every
//! box of that name. Names that match no entity of the tweet are data warnings (a handful carry
//! typos in the release, e.g. `Justise Winslo`).
//!
//! Decisions: a repeated `IMGID:` is an error naming both lines (the published GMNER code reads
//! one xml per id, and our scorers align by id; the release repeats none, see
//! `columns::check_unique_ids`). An entity is groundable exactly when it got a box, so gold
//! groundable-without-box cannot arise here. The result is marked gold (`DatasetMeta`).

use std::collections::HashMap;
use std::path::Path;

use crate::data::error::{DataError, DataResult, Location};
use crate::data::model::{Dataset, DatasetMeta, Side, Tweet};
use crate::data::readers::columns::{check_unique_ids, decode_column, read_sentences};
use crate::data::tags::{Decode, Scheme};
use crate::data::text::read_text;
use crate::data::warnings::{DataWarning, ReadOutput};
use crate::geometry::BBox;

/// One `<object>` of a VOC file.
#[derive(Debug, Clone, PartialEq)]
pub struct VocObject {
    pub name: String,
    pub bbox: BBox,
}

/// The objects and image size of one VOC xml file.
#[derive(Debug, Clone, PartialEq)]
pub struct VocAnnotation {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub objects: Vec<VocObject>,
}

/// Reads `DIR/txt/{split}.txt` and links boxes from `DIR/xml/`.
pub fn read_gmner(dataset_dir: &Path, split: &str) -> DataResult<ReadOutput> {
    read_gmner_decoded(dataset_dir, split, Decode::Default)
}

/// [`read_gmner`] with a chunk decoding mode (`import gmner --decode`).
pub fn read_gmner_decoded(
    dataset_dir: &Path,
    split: &str,
    decode: Decode,
) -> DataResult<ReadOutput> {
    let txt = dataset_dir.join("txt").join(format!("{split}.txt"));
    let xml_dir = dataset_dir.join("xml");
    if !txt.is_file() {
        return Err(DataError::invalid(
            Location::file(&txt),
            format!("no {split} split in {}", dataset_dir.display()),
            "--dataset must point at a Twitter-GMNER folder with txt/{train,dev,test}.txt and xml/",
        ));
    }
    let mut out = read_text_column_file(&txt, 0, 1, decode)?;
    out.dataset.meta = Some(DatasetMeta::new(Side::Gold, "twitter-gmner txt+xml"));
    link_boxes(&mut out, &xml_dir)?;
    Ok(out)
}

/// Reads a GMNER-style text file (`n_columns` tag columns, entities from column `column`).
pub(crate) fn read_text_column_file(
    path: &Path,
    column: usize,
    n_columns: usize,
    decode: Decode,
) -> DataResult<ReadOutput> {
    let text = read_text(path)?;
    let sentences = read_sentences(&text, path, n_columns)?;
    check_unique_ids(&sentences, path)?;
    let mut tweets = Vec::with_capacity(sentences.len());
    for s in &sentences {
        let id = s.id.clone().ok_or_else(|| {
            DataError::invalid(
                Location::line(path, s.id_line),
                "sentence without an IMGID: line",
                "every tweet in a Twitter-GMNER file starts with `IMGID:<id>`",
            )
        })?;
        let entities = decode_column(s, column, Scheme::Bio, decode, path)?;
        tweets.push(Tweet {
            image: Some(format!("{id}.jpg")),
            id,
            tokens: Some(s.tokens.clone()),
            entities,
            extra: Default::default(),
        });
    }
    Ok(ReadOutput {
        dataset: Dataset::new(tweets),
        warnings: Vec::new(),
    })
}

/// Links VOC boxes to the entities of each tweet (see the module doc).
pub fn link_boxes(out: &mut ReadOutput, xml_dir: &Path) -> DataResult<()> {
    if !xml_dir.is_dir() {
        return Err(DataError::invalid(
            Location::file(xml_dir),
            "box folder not found",
            "expected the dataset's xml/ folder with one Pascal VOC file per image",
        ));
    }
    for tweet in &mut out.dataset.tweets {
        let xml_path = xml_dir.join(format!("{}.xml", tweet.id));
        if !xml_path.is_file() {
            continue; // no groundable entity in this tweet
        }
        let ann = read_voc(&xml_path)?;
        let mut by_name: HashMap<&str, Vec<BBox>> = HashMap::new();
        for o in &ann.objects {
            by_name.entry(o.name.as_str()).or_default().push(o.bbox);
        }
        for e in &mut tweet.entities {
            if let Some(boxes) = by_name.get(e.text.as_str()) {
                e.groundable = true;
                e.boxes = boxes.clone();
            }
        }
        let mut warned: Vec<&str> = Vec::new();
        for o in &ann.objects {
            if !tweet.entities.iter().any(|e| e.text == o.name)
                && !warned.contains(&o.name.as_str())
            {
                warned.push(&o.name);
                out.warnings.push(DataWarning::new(
                    &Location::file(&xml_path),
                    format!(
                        "box name {:?} matches no entity of tweet {} (its boxes are not used)",
                        o.name, tweet.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Parses one Pascal VOC xml file.
pub fn read_voc(path: &Path) -> DataResult<VocAnnotation> {
    let text = read_text(path)?;
    parse_voc(&text, path)
}

pub fn parse_voc(text: &str, path: &Path) -> DataResult<VocAnnotation> {
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        DataError::invalid(
            Location::line(path, e.pos().row as usize),
            format!("invalid XML: {e}"),
            "box files are Pascal VOC xml (annotation/object/name, bndbox/xmin..ymax)",
        )
    })?;
    let line_of = |n: roxmltree::Node| doc.text_pos_at(n.range().start).row as usize;
    let child_text = |n: roxmltree::Node, tag: &str| -> Option<String> {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let size = doc.descendants().find(|n| n.has_tag_name("size"));
    let dim = |tag: &str| {
        size.and_then(|s| child_text(s, tag))
            .and_then(|t| t.parse::<u32>().ok())
    };
    let mut objects = Vec::new();
    for obj in doc.descendants().filter(|n| n.has_tag_name("object")) {
        let at = Location::line(path, line_of(obj));
        let name = child_text(obj, "name").ok_or_else(|| {
            DataError::invalid(
                at.clone(),
                "object without <name>",
                "each <object> needs the entity text in <name>",
            )
        })?;
        let bnd = obj
            .children()
            .find(|c| c.has_tag_name("bndbox"))
            .ok_or_else(|| {
                DataError::invalid(
                    at.clone(),
                    format!("object {name:?} without <bndbox>"),
                    "each <object> needs a <bndbox>",
                )
            })?;
        let mut coords = [0f64; 4];
        for (i, tag) in ["xmin", "ymin", "xmax", "ymax"].iter().enumerate() {
            let t = child_text(bnd, tag).unwrap_or_default();
            coords[i] = t.parse::<f64>().map_err(|_| {
                DataError::invalid(
                    at.clone(),
                    format!("object {name:?}: <{tag}> is {t:?}, not a number"),
                    "bndbox coordinates are pixel numbers",
                )
            })?;
        }
        let bbox = BBox(coords);
        bbox.validate().map_err(|why| {
            DataError::invalid(
                at.clone(),
                format!("object {name:?}: {why}"),
                "bndbox needs xmin <= xmax and ymin <= ymax",
            )
        })?;
        objects.push(VocObject { name, bbox });
    }
    Ok(VocAnnotation {
        width: dim("width"),
        height: dim("height"),
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_voc() {
        // ../shared/datasets/twitter-gmner/v2.0/xml/1000046.xml
        let xml = "<annotation>\n\t<size>\n\t\t<width>500</width>\n\t\t<height>706</height>\n\t</size>\n\t<object>\n\t\t<name>Bieber</name>\n\t\t<bndbox>\n\t\t\t<xmin>132</xmin>\n\t\t\t<ymin>22</ymin>\n\t\t\t<xmax>500</xmax>\n\t\t\t<ymax>706</ymax>\n\t\t</bndbox>\n\t</object>\n</annotation>";
        let ann = parse_voc(xml, Path::new("1000046.xml")).unwrap();
        assert_eq!(ann.width, Some(500));
        assert_eq!(ann.objects[0].name, "Bieber");
        assert_eq!(ann.objects[0].bbox.0, [132.0, 22.0, 500.0, 706.0]);
    }

    #[test]
    fn bad_coordinate_names_line() {
        let xml = "<annotation>\n<object><name>X</name><bndbox><xmin>a</xmin><ymin>0</ymin><xmax>1</xmax><ymax>1</ymax></bndbox></object></annotation>";
        let err = parse_voc(xml, Path::new("b.xml")).unwrap_err().to_string();
        assert!(
            err.starts_with("b.xml:2: object \"X\": <xmin> is \"a\""),
            "{err}"
        );
    }
}
