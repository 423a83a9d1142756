//! Errors of planning, running and merging runs; each says what and gives a hint (the wrapped
//! module errors carry their own file, line and hint).

use crate::data::DataError;
use crate::metrics::outcomes::OutcomesError;
use crate::pipeline::ExecError;
use crate::report::ReportError;
use crate::results::RunDirError;

use super::suite::SuiteError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Suite(#[from] SuiteError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Exec(Box<ExecError>),
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Outcomes(#[from] OutcomesError),
    #[error("{what}\n  hint: {hint}")]
    Plan { what: String, hint: String },
    #[error("merge: {what}\n  hint: {hint}")]
    Merge { what: String, hint: String },
}

impl From<ExecError> for RunError {
    fn from(e: ExecError) -> Self {
        RunError::Exec(Box::new(e))
    }
}
