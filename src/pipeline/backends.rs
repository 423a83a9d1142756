//! The default [`BackendFactory`]: ONNX stages through `crate::runtime` and the LLM reformulator
//! through `crate::llm`, built from the suite's `[models]` manifests and `[llm]` section.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::llm::{Behaviour, LlmConfig, LlmReformulator, MockServer, PromptTemplate};

use super::runner::{BackendFactory, DevicePreference};
use super::stages::{Entailer, Grounder, Reformulator, Segmenter, Tagger};
use super::suite::Suite;

/// Builds real stages on demand.
pub struct DefaultBackends {
    pub device: DevicePreference,
    /// Folder for the LLM response cache (`<cache>/llm`); `None`: no response cache.
    pub cache_dir: Option<PathBuf>,
    provider: Option<String>,
    hashes: BTreeMap<String, String>,
    /// The mock LLM server a suite with `start_mock = true` runs against (stopped on drop).
    mock: Option<MockServer>,
}

impl DefaultBackends {
    pub fn new(device: DevicePreference, cache_dir: Option<PathBuf>) -> Self {
        DefaultBackends {
            device,
            cache_dir,
            provider: None,
            hashes: BTreeMap::new(),
            mock: None,
        }
    }

    /// The LLM client configuration of a suite (starting the mock server when it asks for one).
    fn llm_config(&mut self, suite: &Suite) -> Result<LlmConfig, String> {
        let section = suite
            .file
            .llm
            .as_ref()
            .ok_or("the suite has no [llm] section")?;
        let mut config = LlmConfig::for_base_url(section.base_url.clone());
        config.model = section.model.clone();
        config.api_key_env = section.api_key_env.clone();
        if let Some(t) = section.timeout_ms {
            config.timeout_ms = t;
        }
        if let Some(r) = section.max_retries {
            config.max_retries = r;
        }
        if let Some(c) = section.max_concurrency {
            config.max_concurrency = c;
        }
        if section.start_mock {
            if self.mock.is_none() {
                let server = MockServer::start(Behaviour::Echo)
                    .map_err(|e| format!("cannot start the mock LLM server: {e}"))?;
                log::info!("mock LLM server on {}", server.base_url());
                self.mock = Some(server);
            }
            config.base_url = self
                .mock
                .as_ref()
                .map(MockServer::base_url)
                .unwrap_or_default();
        }
        Ok(config)
    }
}

const PENDING: &str = "this build has no ONNX/LLM backends yet";

impl BackendFactory for DefaultBackends {
    fn tagger(&mut self, _suite: &Suite) -> Result<(Box<dyn Tagger>, String), String> {
        Err(PENDING.into())
    }
    fn reformulator(&mut self, suite: &Suite) -> Result<(Box<dyn Reformulator>, String), String> {
        let config = self.llm_config(suite)?;
        let prompt = suite
            .file
            .llm
            .as_ref()
            .and_then(|l| l.prompt.clone())
            .unwrap_or_else(|| "reformulate-v1".to_string());
        let prompt_path = suite.resolve(std::path::Path::new(&prompt));
        let template = match PromptTemplate::builtin(&prompt) {
            Some(t) => t,
            None => PromptTemplate::from_file(&prompt_path).map_err(|e| e.to_string())?,
        };
        let fingerprint = format!(
            "llm|{}|{}|{}|{}",
            config.model,
            template.id(),
            config.temperature,
            config.max_tokens
        );
        let cache = self.cache_dir.as_ref().map(|d| d.join("llm"));
        let r =
            LlmReformulator::new(config, template, cache.as_deref()).map_err(|e| e.to_string())?;
        Ok((Box::new(r), fingerprint))
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
