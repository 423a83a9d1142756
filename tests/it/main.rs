//! The one integration-test binary (one link step keeps `cargo test` fast). One module per area.

mod aggregate;
mod cli;
mod common;
mod compare;
mod compat;
mod eval;
mod fmnerg;
mod geometry;
mod llm;
mod outcomes;
mod report;
mod smoke;
mod stages;
mod strict;
