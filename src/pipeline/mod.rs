//! The RiVEG pipeline: stage traits and their implementations, suites, the variant matrix, the
//! stage cache and shards. Must not score or format output.

pub mod onnx;
pub mod stages;
