//! Twitter-FMNERG: `txt_fine/{split}.txt` with `token<TAB>coarse-BIO<TAB>fine-BIO` (same tweets and
//! order as Twitter-GMNER v2.0), boxes linked from a GMNER xml folder by the GMNER rule. The type
//! tree (coarse → fine) is taken from the data and checked: a fine type seen under two coarse
//! types is a data warning. A repeated `IMGID:` is an error (see `columns::check_unique_ids`).
//! The result is marked gold (`DatasetMeta`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::data::error::{DataError, DataResult, Location};
use crate::data::model::{Dataset, DatasetMeta, Side, Tweet};
use crate::data::readers::columns::{check_unique_ids, decode_column, read_sentences};
use crate::data::readers::conll::attach_fine_types;
use crate::data::tags::{Decode, Scheme};
use crate::data::text::read_text;
use crate::data::warnings::{DataWarning, ReadOutput};

/// Reads `DIR/txt_fine/{split}.txt` and links boxes from `boxes_from/xml` (a GMNER v2.0 folder).
pub fn read_fmnerg(
    dataset_dir: &Path,
    split: &str,
    boxes_from: Option<&Path>,
) -> DataResult<ReadOutput> {
    read_fmnerg_decoded(dataset_dir, split, boxes_from, Decode::Default)
}

/// [`read_fmnerg`] with a chunk decoding mode (`import fmnerg --decode`).
pub fn read_fmnerg_decoded(
    dataset_dir: &Path,
    split: &str,
    boxes_from: Option<&Path>,
    decode: Decode,
) -> DataResult<ReadOutput> {
    let path = dataset_dir.join("txt_fine").join(format!("{split}.txt"));
    if !path.is_file() {
        return Err(DataError::invalid(
            Location::file(&path),
            format!("no {split} split in {}", dataset_dir.display()),
            "--dataset must point at a Twitter-FMNERG folder with txt_fine/{split}.txt",
        ));
    }
    let text = read_text(&path)?;
    let sentences = read_sentences(&text, &path, 2)?;
    check_unique_ids(&sentences, &path)?;
    let mut tweets = Vec::with_capacity(sentences.len());
    let mut types = Vec::new();
    for s in &sentences {
        let id = s.id.clone().ok_or_else(|| {
            DataError::invalid(
                Location::line(&path, s.id_line),
                "sentence without an IMGID: line",
                "every tweet starts with `IMGID:<id>`",
            )
        })?;
        let mut entities = decode_column(s, 0, Scheme::Bio, decode, &path)?;
        attach_fine_types(s, &mut entities, Scheme::Bio, decode, &path)?;
        for e in &entities {
            let line = s.lines[e.start.unwrap_or(0)];
            types.push((
                e.entity_type.clone(),
                e.fine_type.clone().unwrap_or_default(),
                line,
            ));
        }
        tweets.push(Tweet {
            image: Some(format!("{id}.jpg")),
            id,
            tokens: Some(s.tokens.clone()),
            entities,
            extra: Default::default(),
        });
    }
    let mut out = ReadOutput {
        dataset: Dataset {
            tweets,
            meta: Some(DatasetMeta::new(Side::Gold, "twitter-fmnerg txt_fine")),
        },
        warnings: type_tree_warnings(&path, &types),
    };
    if let Some(gmner) = boxes_from {
        super::gmner::link_boxes(&mut out, &gmner.join("xml"))?;
    }
    Ok(out)
}

/// The coarse → fine type tree of a dataset.
pub fn type_tree(dataset: &Dataset) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut tree: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for e in dataset.tweets.iter().flat_map(|t| &t.entities) {
        if let Some(f) = &e.fine_type {
            *tree
                .entry(e.entity_type.clone())
                .or_default()
                .entry(f.clone())
                .or_default() += 1;
        }
    }
    tree
}

fn type_tree_warnings(path: &Path, types: &[(String, String, usize)]) -> Vec<DataWarning> {
    let mut first_parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (coarse, fine, line) in types {
        match first_parent.get(fine.as_str()) {
            None => {
                first_parent.insert(fine, coarse);
            }
            Some(parent) if *parent != coarse.as_str() => {
                let msg = format!(
                    "fine type {fine:?} occurs under coarse types {parent:?} and {coarse:?}"
                );
                if !warnings.iter().any(|w: &DataWarning| w.message == msg) {
                    warnings.push(DataWarning::new(&Location::line(path, *line), msg));
                }
            }
            Some(_) => {}
        }
    }
    warnings
}
