//! The LLM-backed stages: [`LlmReformulator`] (from `crate::llm`) as the pipeline's
//! [`Reformulator`]. `llm/` knows nothing of the pipeline; the adapters live here.

use super::stages::{Reformulator, StageError, StageKind};
use crate::data::model::{Entity, Tweet};
use crate::llm::LlmReformulator;

impl Reformulator for LlmReformulator {
    fn kind(&self) -> StageKind {
        StageKind::Llm
    }

    fn reformulate(
        &mut self,
        tweet: &Tweet,
        entities: &[Entity],
    ) -> Result<Vec<String>, StageError> {
        Ok(self.reformulate_entities(tweet, entities)?)
    }
}
