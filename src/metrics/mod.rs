//! Scoring: protocols (RiVEG seed greedy, span), published scorers' quirks (`compat`), tasks (MNER, EEG, GMNER, FMNERG, SMNER),
//! breakdowns and stage diagnostics, and the polars tables built from them. Pure: no file IO.

pub mod aggregate;
mod by_task;
pub mod compat;
pub mod eval;
pub mod matching;
pub mod outcomes;
pub mod prf;
pub mod tables;

pub use compat::{Compat, CompatInfo, Quirk};
pub use eval::{evaluate, EvalOptions, EvalReport, NotApplicable};
pub use matching::Protocol;
pub use prf::{Counts, Prf};
