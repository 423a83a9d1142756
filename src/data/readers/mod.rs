//! One reader per source format, each turning its files into the canonical [`Dataset`](crate::data::Dataset).
//! Adding a format is one new file here.

pub mod adaseq;
pub mod columns;
pub mod conll;
pub mod fmnerg;
pub mod gmner;
pub mod riveg;
pub mod smner;
