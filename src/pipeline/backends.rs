//! The default [`BackendFactory`]: ONNX stages through `crate::runtime`, the LLM reformulator and
//! the MLLM stages (`mllm` tagger, entailer, grounder: one shared [`SharedMllm`]) through
//! `crate::llm`, built from the manifests and `[llm]` / `[mllm]` sections a plan resolved
//! ([`BackendConfig`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::llm::{
    Behaviour, IssuePolicy, LlmConfig, LlmReformulator, MllmAnnotator, MockServer, PromptTemplate,
};
use crate::pipeline::onnx::{OnnxEntailer, OnnxGrounder, OnnxSegmenter, OnnxTagger};
use crate::results::{LlmMeta, LlmStageMeta};
use crate::runtime::{
    self, Device, IoBinding, ModelManifest, OrtRuntime, RuntimeError, SessionConfig,
};
use crate::stage::{Stage, StageKind};

use super::captions::Captions;
use super::config::{
    DevicePreference, IoBindingPreference, LlmSection, MllmSection, OnError, RuntimeSection,
};
use super::llm_stages::{knowledge_prompt, wants_caption, LlmKnowledge, CAPTION_PLACEHOLDER};
use super::mllm_stages::{MllmEntailer, MllmGrounder, MllmTagger, SharedMllm};
use super::slots::{AnyStage, BackendFactory, BuildError};

/// What the real stages are built from (paths already resolved by the plan).
#[derive(Debug, Clone, Default)]
pub struct BackendConfig {
    pub device: DevicePreference,
    /// An explicit ONNX Runtime library (`--ort-lib`); else ORT_DYLIB_PATH or .venv.
    pub ort_library: Option<PathBuf>,
    /// Folder for the LLM response cache (`<cache>/llm`); `None`: no response cache.
    pub cache_dir: Option<PathBuf>,
    /// Stage → model manifest.
    pub models: BTreeMap<Stage, PathBuf>,
    pub llm: Option<LlmSection>,
    /// The MLLM settings (`None`: defaults, on `[llm]`'s endpoint).
    pub mllm: Option<MllmSection>,
    /// `fail`: an MLLM reply's first issue is an error; `skip`: issues are repaired and counted.
    pub on_error: OnError,
    /// Calls excluded from the MLLM's latency statistics as warm-up.
    pub warmup: usize,
    /// Where a prompt given as a relative path resolves from (the suite's base folder).
    pub base_dir: PathBuf,
    /// Intra-op threads, spinning and I/O binding of every session.
    pub runtime: RuntimeSection,
}

/// Builds real stages on demand.
pub struct DefaultBackends {
    config: BackendConfig,
    provider: Option<String>,
    hashes: BTreeMap<String, String>,
    /// The mock LLM server a suite with `start_mock = true` runs against (stopped on drop).
    mock: Option<MockServer>,
    /// The one MLLM the `mllm` stages share (built with the first of them).
    mllm: Option<Arc<SharedMllm>>,
    /// The reformulator's settings, once built (for results.json).
    reformulator_meta: Option<LlmStageMeta>,
    /// The knowledge stage's settings, once built (for results.json).
    knowledge_meta: Option<LlmStageMeta>,
}

impl DefaultBackends {
    pub fn new(config: BackendConfig) -> Self {
        DefaultBackends {
            config,
            provider: None,
            hashes: BTreeMap::new(),
            mock: None,
            mllm: None,
            reformulator_meta: None,
            knowledge_meta: None,
        }
    }

    fn runtime(&self, stage: Stage) -> Result<&'static OrtRuntime, BuildError> {
        runtime::init(self.config.ort_library.as_deref())
            .map_err(|source| BuildError::Runtime { stage, source })
    }

    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            device: match self.config.device {
                DevicePreference::Cpu => Device::Cpu,
                DevicePreference::Cuda => Device::Cuda,
                DevicePreference::Auto => Device::Auto,
            },
            intra_threads: self.config.runtime.threads,
            intra_spinning: Some(self.config.runtime.spinning.unwrap_or(false)),
            io_binding: match self.config.runtime.io_binding.unwrap_or_default() {
                IoBindingPreference::Auto => IoBinding::Auto,
                IoBindingPreference::On => IoBinding::On,
                IoBindingPreference::Off => IoBinding::Off,
            },
            ..SessionConfig::default()
        }
    }

    /// Loads a stage's manifest (hashes verified), records its model hashes and returns it with
    /// the cache fingerprint: the sha256 of the manifest text, which names every model's sha256
    /// and all preprocessing and label settings, and the content hashes of its tokenizer and CRF
    /// files (computed here when the manifest gives none; once per file and process).
    fn manifest(&mut self, stage: Stage) -> Result<(ModelManifest, String), BuildError> {
        let path = self
            .config
            .models
            .get(&stage)
            .cloned()
            .ok_or(BuildError::NoManifest {
                stage,
                kind: StageKind::Onnx,
            })?;
        let runtime_err = |source| BuildError::Runtime { stage, source };
        // Model hashes are remembered across runs next to the stage cache (issue 15).
        let sidecar = (self.config.cache_dir.as_ref()).map(|d| d.join("model-hashes/sha256.json"));
        let manifest = ModelManifest::load_with_hash_sidecar(&path, sidecar.as_deref())
            .map_err(runtime_err)?;
        let text = std::fs::read(&path).map_err(|e| {
            runtime_err(RuntimeError::ManifestRead {
                path: path.clone(),
                why: e.to_string(),
                hint: "check the [models] path of the suite".into(),
            })
        })?;
        // The manifest names every model's sha256 (verified on load) and all settings, but a
        // tokenizer or CRF file may come without one: hash their content too, so editing them
        // invalidates the cached outputs instead of silently returning old predictions.
        let mut fingerprint = format!("onnx|{}", super::cache::sha256_hex(&text));
        let side_files = [
            manifest.tokenizer.as_ref().map(|t| &t.path),
            manifest.crf.as_ref().and_then(|c| c.path.as_ref()),
        ];
        for rel in side_files.into_iter().flatten() {
            let file = manifest.resolve(rel);
            let hash = super::cache::file_sha256(&file).map_err(|e| {
                runtime_err(RuntimeError::ManifestRead {
                    path: file.clone(),
                    why: e.to_string(),
                    hint: format!("the manifest {} names this file", path.display()),
                })
            })?;
            fingerprint.push('|');
            fingerprint.push_str(&hash);
        }
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

    /// The LLM client configuration (starting the mock server when the suite asks for one).
    fn llm_config(&mut self, stage: Stage) -> Result<LlmConfig, BuildError> {
        let section = self.config.llm.clone().ok_or_else(|| BuildError::Config {
            stage,
            what: "the suite has no [llm] section".into(),
            hint: "add [llm] with base_url and model (or start_mock = true for a dry run)".into(),
        })?;
        let mut config = section.to_config().map_err(|what| BuildError::Config {
            stage,
            what,
            hint: "check the [llm] section of the suite".into(),
        })?;
        if section.start_mock {
            if self.mock.is_none() {
                let server =
                    MockServer::start(Behaviour::Echo).map_err(|e| BuildError::Config {
                        stage,
                        what: format!("cannot start the mock LLM server: {e}"),
                        hint: "the mock listens on a free loopback port; check that loopback works"
                            .into(),
                    })?;
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

    fn reformulator(&mut self) -> Result<(AnyStage, String), BuildError> {
        let stage = Stage::Reformulator;
        let config = self.llm_config(stage)?;
        let prompt = self
            .config
            .llm
            .as_ref()
            .and_then(|l| l.prompt.clone())
            .unwrap_or_else(|| "reformulate-v1".to_string());
        let template = match PromptTemplate::builtin(&prompt) {
            Some(t) => t,
            None => {
                let path = resolve(&self.config.base_dir, Path::new(&prompt));
                PromptTemplate::from_file(&path)
                    .map_err(|source| BuildError::Llm { stage, source })?
            }
        };
        // The template's text, not only its id: a built-in prompt edited without a version bump
        // must not reuse the old answers.
        let (system, user) = template.fill_with(&[]);
        let fingerprint = format!(
            "llm|{}|{}|{}|{}",
            config.model,
            template.id(),
            super::cache::cache_key(&[&system, &user]),
            config.sampling_fingerprint()
        );
        self.reformulator_meta = Some(LlmStageMeta {
            model: config.model.clone(),
            prompt: template.id().to_string(),
            request_fields: config.request_fields(),
        });
        let cache = self.config.cache_dir.as_ref().map(|d| d.join("llm"));
        let r = LlmReformulator::new(config, template, cache.as_deref())
            .map_err(|source| BuildError::Llm { stage, source })?;
        Ok((AnyStage::Reformulator(Box::new(r)), fingerprint))
    }

    /// The knowledge stage: `[llm]`'s client with the knowledge prompt; fingerprinted like the
    /// reformulator (model, prompt id, request fields).
    fn knowledge(&mut self) -> Result<(AnyStage, String), BuildError> {
        let stage = Stage::Knowledge;
        let config = self.llm_config(stage)?;
        let prompt = self
            .config
            .llm
            .as_ref()
            .and_then(|l| l.knowledge_prompt.clone())
            .unwrap_or_else(|| "knowledge-v1".to_string());
        let template = knowledge_prompt(&prompt, &self.config.base_dir)
            .map_err(|source| BuildError::Llm { stage, source })?;
        let captions = self.knowledge_captions(&template)?;
        let mut fingerprint = format!(
            "llm|{}|{}|{}",
            config.model,
            template.id(),
            config.sampling_fingerprint()
        );
        if let Some(c) = &captions {
            fingerprint.push_str(&format!("|captions:{}", c.sha256()));
        }
        self.knowledge_meta = Some(LlmStageMeta {
            model: config.model.clone(),
            prompt: template.id().to_string(),
            request_fields: config.request_fields(),
        });
        let cache = self.config.cache_dir.as_ref().map(|d| d.join("llm"));
        let k = LlmKnowledge::new(config, template, cache.as_deref(), captions)
            .map_err(|source| BuildError::Llm { stage, source })?;
        Ok((AnyStage::Knowledge(Box::new(k)), fingerprint))
    }

    /// The captions a knowledge prompt shows (`[llm] knowledge_captions`): required exactly when
    /// the prompt has `{caption}`, so that neither a caption-less prompt silently ignores the file
    /// nor a caption prompt runs without captions.
    fn knowledge_captions(
        &self,
        template: &crate::llm::PromptTemplate,
    ) -> Result<Option<Captions>, BuildError> {
        let stage = Stage::Knowledge;
        let file = self
            .config
            .llm
            .as_ref()
            .and_then(|l| l.knowledge_captions.clone());
        match (wants_caption(template), file) {
            (false, None) => Ok(None),
            (true, None) => Err(BuildError::Config {
                stage,
                what: format!(
                    "the knowledge prompt {} shows an image caption ({CAPTION_PLACEHOLDER}) but the suite gives no captions",
                    template.id()
                ),
                hint: "set [llm] knowledge_captions = \"captions.jsonl\" ({\"image\": ..., \"caption\": ...} per line), or use knowledge_prompt = \"knowledge-v1\"".into(),
            }),
            (false, Some(_)) => Err(BuildError::Config {
                stage,
                what: format!(
                    "[llm] knowledge_captions is set but the knowledge prompt {} has no {CAPTION_PLACEHOLDER} placeholder, so the captions would be ignored",
                    template.id()
                ),
                hint: "set knowledge_prompt = \"knowledge-caption-v1\" (or a template with {caption}), or drop knowledge_captions".into(),
            }),
            (true, Some(file)) => {
                let path = resolve(&self.config.base_dir, Path::new(&file));
                let captions = Captions::load(&path).map_err(|e| BuildError::Config {
                    stage,
                    what: e.what,
                    hint: e.hint,
                })?;
                Ok(Some(captions))
            }
        }
    }

    /// The shared MLLM, built on first use: `[llm]`'s client configuration (sampling settings
    /// included; the mock server's address when the suite starts one), with `[mllm]`'s endpoint
    /// and model when it names them.
    fn shared_mllm(&mut self, stage: Stage) -> Result<Arc<SharedMllm>, BuildError> {
        if let Some(m) = &self.mllm {
            return Ok(m.clone());
        }
        let section = self.config.mllm.clone().unwrap_or_default();
        let mut config = match (&self.config.llm, &section.base_url) {
            (Some(_), _) => self.llm_config(stage)?,
            (None, Some(url)) => LlmConfig::for_base_url(url.clone()),
            (None, None) => {
                return Err(BuildError::Config {
                    stage,
                    what: "an mllm stage needs an endpoint, and the suite has neither [llm] nor [mllm] base_url".into(),
                    hint: "add [llm] with base_url and model (or start_mock = true), or [mllm] with base_url and model".into(),
                })
            }
        };
        if let Some(url) = &section.base_url {
            config.base_url = url.clone();
        }
        if let Some(model) = &section.model {
            config.model = model.clone();
        }
        if section.api_key_env.is_some() {
            config.api_key_env = section.api_key_env.clone();
        }
        let mut settings = section.settings();
        if !crate::llm::mllm::BUILTIN_PROMPTS.contains(&settings.prompt.as_str())
            && settings.prompt != "gmner-mllm"
        {
            settings.prompt = resolve(&self.config.base_dir, Path::new(&settings.prompt))
                .display()
                .to_string();
        }
        let policy = match self.config.on_error {
            OnError::Fail => IssuePolicy::Error,
            OnError::Skip => IssuePolicy::Warn,
        };
        let cache = self.config.cache_dir.as_ref().map(|d| d.join("mllm"));
        let annotator = MllmAnnotator::new(config, settings, policy, cache.as_deref())
            .map_err(|source| BuildError::Llm { stage, source })?;
        let shared = Arc::new(SharedMllm::new(annotator, self.config.warmup));
        self.mllm = Some(shared.clone());
        Ok(shared)
    }

    fn mllm_stage(&mut self, stage: Stage) -> Result<(AnyStage, String), BuildError> {
        let shared = self.shared_mllm(stage)?;
        let fingerprint = shared.annotator().fingerprint();
        let built = match stage {
            Stage::Tagger => AnyStage::Tagger(Box::new(MllmTagger(shared))),
            Stage::Entailer => AnyStage::Entailer(Box::new(MllmEntailer(shared))),
            Stage::Grounder => AnyStage::Grounder(Box::new(MllmGrounder(shared))),
            _ => {
                return Err(BuildError::Unsupported {
                    stage,
                    kind: StageKind::Mllm,
                    hint: "mllm serves the tagger, entailer and grounder".into(),
                })
            }
        };
        Ok((built, fingerprint))
    }

    fn onnx(&mut self, stage: Stage) -> Result<(AnyStage, String), BuildError> {
        let (manifest, fp) = self.manifest(stage)?;
        let rt = self.runtime(stage)?;
        let config = self.session_config();
        let err = |source| BuildError::Runtime { stage, source };
        let built = match stage {
            Stage::Tagger => {
                let t = OnnxTagger::from_manifest(rt, &manifest, &config).map_err(err)?;
                self.note_provider(t.provider());
                AnyStage::Tagger(Box::new(t))
            }
            Stage::Entailer => {
                let e = OnnxEntailer::from_manifest(rt, &manifest, &config).map_err(err)?;
                self.note_provider(e.provider());
                AnyStage::Entailer(Box::new(e))
            }
            Stage::Grounder => {
                let g = OnnxGrounder::from_manifest(rt, &manifest, &config).map_err(err)?;
                self.note_provider(g.provider());
                AnyStage::Grounder(Box::new(g))
            }
            Stage::Segmenter => {
                let s = OnnxSegmenter::from_manifest(rt, &manifest, &config).map_err(err)?;
                self.note_provider(s.providers().0);
                AnyStage::Segmenter(Box::new(s))
            }
            Stage::Reformulator | Stage::Knowledge => {
                return Err(BuildError::Unsupported {
                    stage,
                    kind: StageKind::Onnx,
                    hint: format!(
                        "the {} stage is an LLM: use llm, replay or off",
                        stage.name()
                    ),
                })
            }
        };
        Ok((built, fp))
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl BackendFactory for DefaultBackends {
    fn build(&mut self, stage: Stage, kind: StageKind) -> Result<(AnyStage, String), BuildError> {
        match (stage, kind) {
            (Stage::Reformulator, StageKind::Llm) => self.reformulator(),
            (Stage::Knowledge, StageKind::Llm) => self.knowledge(),
            (_, StageKind::Onnx) => self.onnx(stage),
            (_, StageKind::Mllm) => self.mllm_stage(stage),
            _ => Err(BuildError::Unsupported {
                stage,
                kind,
                hint:
                    "the default backends build onnx stages, the llm reformulator and mllm stages"
                        .into(),
            }),
        }
    }
    fn execution_provider(&self) -> Option<String> {
        self.provider.clone()
    }
    fn model_hashes(&self) -> BTreeMap<String, String> {
        self.hashes.clone()
    }
    fn llm_meta(&self) -> Option<LlmMeta> {
        let meta = LlmMeta {
            reformulator: self.reformulator_meta.clone(),
            knowledge: self.knowledge_meta.clone(),
            mllm: self.mllm.as_ref().map(|m| m.meta()),
        };
        (meta.reformulator.is_some() || meta.knowledge.is_some() || meta.mllm.is_some())
            .then_some(meta)
    }
}
