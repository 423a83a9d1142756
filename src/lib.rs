//! riveg-bench: evaluation and benchmarking harness for grounded multimodal NER.
//!
//! One canonical data model ([`data`]) in the middle: readers feed it, the [`pipeline`] produces
//! more of it, [`metrics`] read only it, and reports and comparisons read only results.

pub mod bench;
pub mod cli;
pub mod compare;
pub mod data;
pub mod geometry;
pub mod io_util;
pub mod llm;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod results;
pub mod run;
pub mod runtime;
pub mod stage;
pub mod task;
pub mod util;
