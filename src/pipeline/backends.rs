//! The default [`BackendFactory`]: ONNX stages through `crate::runtime` and the LLM reformulator
//! through `crate::llm`, built from the suite's `[models]` manifests and `[llm]` section.

use std::collections::BTreeMap;

use super::runner::{BackendFactory, DevicePreference};
use super::stages::{Entailer, Grounder, Reformulator, Segmenter, Tagger};
use super::suite::Suite;

/// Builds real stages on demand.
pub struct DefaultBackends {
    pub device: DevicePreference,
    provider: Option<String>,
    hashes: BTreeMap<String, String>,
}

impl DefaultBackends {
    pub fn new(device: DevicePreference) -> Self {
        DefaultBackends {
            device,
            provider: None,
            hashes: BTreeMap::new(),
        }
    }
}

const PENDING: &str = "this build has no ONNX/LLM backends yet";

impl BackendFactory for DefaultBackends {
    fn tagger(&mut self, _suite: &Suite) -> Result<(Box<dyn Tagger>, String), String> {
        Err(PENDING.into())
    }
    fn reformulator(&mut self, _suite: &Suite) -> Result<(Box<dyn Reformulator>, String), String> {
        Err(PENDING.into())
    }
    fn entailer(&mut self, _suite: &Suite) -> Result<(Box<dyn Entailer>, String), String> {
        Err(PENDING.into())
    }
    fn grounder(&mut self, _suite: &Suite) -> Result<(Box<dyn Grounder>, String), String> {
        Err(PENDING.into())
    }
    fn segmenter(&mut self, _suite: &Suite) -> Result<(Box<dyn Segmenter>, String), String> {
        Err(PENDING.into())
    }
    fn execution_provider(&self) -> Option<String> {
        self.provider.clone()
    }
    fn model_hashes(&self) -> BTreeMap<String, String> {
        self.hashes.clone()
    }
}
