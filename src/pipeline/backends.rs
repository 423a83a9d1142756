//! The default [`BackendFactory`]: ONNX stages through `crate::runtime` and the LLM reformulator
//! through `crate::llm`, built from the suite's `[models]` manifests and `[llm]` section.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::llm::{Behaviour, LlmConfig, LlmReformulator, MockServer, PromptTemplate};
use crate::pipeline::onnx::{OnnxEntailer, OnnxGrounder, OnnxSegmenter, OnnxTagger};
use crate::pipeline::stages::Stage;
use crate::runtime::{self, Device, ModelManifest, OrtRuntime, SessionConfig};

use super::runner::{BackendFactory, DevicePreference};
use super::stages::{Entailer, Grounder, Reformulator, Segmenter, Tagger};
use super::suite::Suite;

/// Builds real stages on demand.
pub struct DefaultBackends {
    pub device: DevicePreference,
    /// An explicit ONNX Runtime library (`--ort-lib`); else ORT_DYLIB_PATH or .venv.
    pub ort_library: Option<PathBuf>,
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
            ort_library: None,
            cache_dir,
            provider: None,
            hashes: BTreeMap::new(),
            mock: None,
        }
    }

    fn runtime(&self) -> Result<&'static OrtRuntime, String> {
        runtime::init(self.ort_library.as_deref()).map_err(|e| e.to_string())
    }

    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            device: match self.device {
                DevicePreference::Cpu => Device::Cpu,
                DevicePreference::Cuda => Device::Cuda,
                DevicePreference::Auto => Device::Auto,
            },
            ..SessionConfig::default()
        }
    }

    /// Loads a stage's manifest (hashes verified), records its model hashes and returns it with
    /// the cache fingerprint: the sha256 of the manifest text, which names every model's sha256
    /// and all preprocessing and label settings.
    fn manifest(&mut self, suite: &Suite, stage: Stage) -> Result<(ModelManifest, String), String> {
        let path = suite
            .file
            .models
            .get(&stage)
            .map(|p| suite.resolve(p))
            .ok_or_else(|| format!("[models] has no {} manifest", stage.name()))?;
        let manifest = ModelManifest::load(&path).map_err(|e| e.to_string())?;
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let fingerprint = format!(
            "onnx|{}",
            super::cache::hex(&<sha2::Sha256 as sha2::Digest>::digest(&text))
        );
        for (role, spec) in &manifest.models {
            self.hashes.insert(
                format!("{}:{}/{}", stage.name(), manifest.name, role),
                spec.sha256.clone(),
            );
        }
        Ok((manifest, fingerprint))
    }

    fn note_provider(&mut self, provider: impl std::fmt::Display) {
        let p = match provider.to_string().as_str() {
            "CUDAExecutionProvider" => "cuda".to_string(),
            "CPUExecutionProvider" => "cpu".to_string(),
            other => other.to_string(),
        };
        // The run reports CUDA if any stage got it.
        if self.provider.as_deref() != Some("cuda") {
            self.provider = Some(p);
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

impl BackendFactory for DefaultBackends {
    fn tagger(&mut self, suite: &Suite) -> Result<(Box<dyn Tagger>, String), String> {
        let (manifest, fp) = self.manifest(suite, Stage::Tagger)?;
        let t = OnnxTagger::from_manifest(self.runtime()?, &manifest, &self.session_config())
            .map_err(|e| e.to_string())?;
        self.note_provider(t.provider());
        Ok((Box::new(t), fp))
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
            "llm|{}|{}|{}",
            config.model,
            template.id(),
            config.sampling_fingerprint()
        );
        let cache = self.cache_dir.as_ref().map(|d| d.join("llm"));
        let r =
            LlmReformulator::new(config, template, cache.as_deref()).map_err(|e| e.to_string())?;
        Ok((Box::new(r), fingerprint))
    }
    fn entailer(&mut self, suite: &Suite) -> Result<(Box<dyn Entailer>, String), String> {
        let (manifest, fp) = self.manifest(suite, Stage::Entailer)?;
        let e = OnnxEntailer::from_manifest(self.runtime()?, &manifest, &self.session_config())
            .map_err(|e| e.to_string())?;
        self.note_provider(e.provider());
        Ok((Box::new(e), fp))
    }
    fn grounder(&mut self, suite: &Suite) -> Result<(Box<dyn Grounder>, String), String> {
        let (manifest, fp) = self.manifest(suite, Stage::Grounder)?;
        let g = OnnxGrounder::from_manifest(self.runtime()?, &manifest, &self.session_config())
            .map_err(|e| e.to_string())?;
        self.note_provider(g.provider());
        Ok((Box::new(g), fp))
    }
    fn segmenter(&mut self, suite: &Suite) -> Result<(Box<dyn Segmenter>, String), String> {
        let (manifest, fp) = self.manifest(suite, Stage::Segmenter)?;
        let s = OnnxSegmenter::from_manifest(self.runtime()?, &manifest, &self.session_config())
            .map_err(|e| e.to_string())?;
        self.note_provider(s.providers().0);
        Ok((Box::new(s), fp))
    }
    fn execution_provider(&self) -> Option<String> {
        self.provider.clone()
    }
    fn model_hashes(&self) -> BTreeMap<String, String> {
        self.hashes.clone()
    }
}
