//! The RiVEG pipeline: stage traits and their implementations, suites, the variant matrix, the
//! stage cache and shards. Must not score or format output (the runner calls the metrics core
//! and hands results to the report writer).

pub mod backends;
pub mod cache;
pub mod merge;
pub mod onnx;
pub mod recorded;
pub mod runner;
pub mod shard;
pub mod sources;
pub mod stages;
pub mod suite;
