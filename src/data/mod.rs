//! The canonical data model, JSONL in/out, one reader per source format, tag-scheme decoding and
//! data warnings. Must not know about models, metrics or reports.

pub mod error;
pub mod fmnerg_types;
pub mod jsonl;
pub mod model;
pub mod readers;
pub mod synth;
pub mod tags;
pub mod text;
pub mod warnings;

pub use error::{DataError, DataResult, Location};
pub use model::{Dataset, DatasetMeta, Entity, Extra, Side, Tweet};
pub use warnings::{DataWarning, ReadOutput};
