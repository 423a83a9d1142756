//! Loading a suite's data sources (gold, recordings) through the readers, by format name.

use std::path::Path;

use crate::data::readers::{adaseq, conll, fmnerg, gmner, riveg};
use crate::data::tags::Scheme;
use crate::data::{jsonl, DataError, DataResult, Location, ReadOutput};

use super::suite::{Source, Suite};

/// The formats a suite source may name.
pub const FORMATS: &[&str] = &[
    "jsonl",
    "gmner",
    "fmnerg",
    "conll",
    "riveg-labels",
    "riveg-ofa",
    "adaseq",
];

/// Reads a source (paths resolved against the suite).
pub fn load_source(suite: &Suite, source: &Source) -> DataResult<ReadOutput> {
    let path = suite.resolve(&source.path);
    let boxes = source.boxes.as_ref().map(|b| suite.resolve(b));
    let split = source.split.as_deref().unwrap_or("test");
    let plain = |dataset| ReadOutput {
        dataset,
        warnings: Vec::new(),
    };
    match source.format.as_str() {
        "jsonl" => Ok(plain(jsonl::read_jsonl(&path)?)),
        "gmner" => gmner::read_gmner(&path, split),
        "fmnerg" => fmnerg::read_fmnerg(&path, split, boxes.as_deref()),
        "conll" => conll::read_conll(&path, Scheme::Auto),
        "riveg-labels" => riveg::read_riveg_labels(&path),
        "riveg-ofa" => riveg::read_riveg_ofa(&path, boxes.as_deref()),
        "adaseq" => Ok(plain(adaseq::read_adaseq(&path, None)?.pred)),
        other => Err(DataError::invalid(
            Location::file(Path::new(&suite.origin)),
            format!("unknown source format {other:?}"),
            format!("use one of {}", FORMATS.join(", ")),
        )),
    }
}
