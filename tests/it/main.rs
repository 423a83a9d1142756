//! The one integration-test binary (one link step keeps `cargo test` fast). One module per area.

mod aggregate;
mod arch;
mod batching;
mod cli;
mod common;
mod compare;
mod compat;
mod datasets;
mod eval;
mod fmnerg;
mod fuzz;
mod geometry;
mod io_binding;
mod knowledge;
mod llm;
mod mllm;
mod outcomes;
mod quantized;
mod report;
mod run_layer;
mod smoke;
mod stages;
mod strict;
mod trust;
