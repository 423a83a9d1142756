//! Data warnings: things in an input that are suspicious but not fatal (an xml box whose name
//! matches no entity, a fine type under two coarse types). They are reported, never hidden.

use super::error::Location;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DataWarning {
    pub at: String,
    pub message: String,
}

impl DataWarning {
    pub fn new(at: &Location, message: impl Into<String>) -> Self {
        DataWarning {
            at: at.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for DataWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "warning: {}: {}", self.at, self.message)
    }
}

/// A reader's result: the dataset and the warnings raised while reading it.
#[derive(Debug, Clone, Default)]
pub struct ReadOutput {
    pub dataset: super::model::Dataset,
    pub warnings: Vec<DataWarning>,
}
