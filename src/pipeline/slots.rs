//! One generic home for built stages: a [`StageSet`] maps (stage, kind) to a [`Slot`] holding
//! the implementation ([`AnyStage`]) and how its outputs are cached. Recorded kinds (replay,
//! oracle) are built by [`super::recorded::build_recorded`], real ones (onnx, llm) by a
//! [`BackendFactory`]; both through [`StageSet::prepare`], with typed [`BuildError`]s. A new
//! stage is one trait in `stages.rs`, one [`AnyStage`] variant and one typed getter here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::recorded::{build_recorded, EntityIndex};
use super::stages::{Entailer, Grounder, Knowledge, Reformulator, Segmenter, Tagger};
use crate::pipeline::config::{ReplayMissing, VariantSpec};
use crate::stage::{Stage, StageKind};

/// A built stage implementation, of the stage family it serves.
pub enum AnyStage {
    Knowledge(Box<dyn Knowledge>),
    Tagger(Box<dyn Tagger>),
    Reformulator(Box<dyn Reformulator>),
    Entailer(Box<dyn Entailer>),
    Grounder(Box<dyn Grounder>),
    Segmenter(Box<dyn Segmenter>),
}

impl AnyStage {
    /// The stage family this implementation serves.
    pub fn stage(&self) -> Stage {
        match self {
            AnyStage::Knowledge(_) => Stage::Knowledge,
            AnyStage::Tagger(_) => Stage::Tagger,
            AnyStage::Reformulator(_) => Stage::Reformulator,
            AnyStage::Entailer(_) => Stage::Entailer,
            AnyStage::Grounder(_) => Stage::Grounder,
            AnyStage::Segmenter(_) => Stage::Segmenter,
        }
    }
}

/// A stage that could not be built; each names the stage and gives a hint.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the {} stage is {kind:?} but [models] has no {} manifest\n  hint: add `{} = \"models/<name>.toml\"` under [models]", stage.name(), stage.name(), stage.name())]
    NoManifest { stage: Stage, kind: StageKind },
    #[error("the {} stage is replay but the suite has no recording\n  hint: point [data.replay] at recorded outputs (e.g. format = \"riveg-ofa\")", stage.name())]
    NoRecording { stage: Stage },
    #[error("the {} stage cannot be {kind:?}\n  hint: {hint}", stage.name())]
    Unsupported {
        stage: Stage,
        kind: StageKind,
        hint: String,
    },
    #[error("the factory built a {} stage where a {} stage was asked for\n  hint: this is a bug in the backend factory", built.name(), wanted.name())]
    WrongFamily { wanted: Stage, built: Stage },
    #[error("cannot build the {} stage: {source}", stage.name())]
    Runtime {
        stage: Stage,
        #[source]
        source: crate::runtime::RuntimeError,
    },
    #[error("cannot build the {} stage: {source}", stage.name())]
    Llm {
        stage: Stage,
        #[source]
        source: crate::llm::LlmError,
    },
    #[error("cannot build the {} stage: {what}\n  hint: {hint}", stage.name())]
    Config {
        stage: Stage,
        what: String,
        hint: String,
    },
}

/// Builds the real (onnx / llm) stage implementations. The default is
/// [`super::backends::DefaultBackends`]; tests and tools may pass their own.
pub trait BackendFactory {
    /// Builds `kind` for `stage`, with the fingerprint that keys its cached outputs (it must
    /// change whenever the implementation's outputs could: model hashes, settings, prompts).
    fn build(&mut self, stage: Stage, kind: StageKind) -> Result<(AnyStage, String), BuildError>;
    /// The execution provider that ran (`cpu`, `cuda`), once a model was loaded.
    fn execution_provider(&self) -> Option<String>;
    /// `stage:manifest/role` → sha256 of every model loaded so far.
    fn model_hashes(&self) -> BTreeMap<String, String>;
    /// The LLM stages' settings and counts so far (results.json `meta.llm`); `None` when no
    /// LLM stage was built.
    fn llm_meta(&self) -> Option<crate::results::LlmMeta> {
        None
    }
}

/// A built stage and how its outputs are cached.
pub struct Slot {
    pub stage: AnyStage,
    /// The cache fingerprint; `None` for recorded stages (replay, oracle), whose answers are
    /// look-ups and are not cached.
    pub fingerprint: Option<String>,
}

/// What recorded stages read: gold (oracles) and the recording (replays).
pub struct Recordings {
    pub gold: Arc<EntityIndex>,
    pub recording: Option<Arc<EntityIndex>>,
    pub replay_missing: ReplayMissing,
}

/// Every stage instance of a run, built once per (stage, kind) and shared by the variants.
pub struct StageSet<'f> {
    factory: &'f mut dyn BackendFactory,
    recordings: Recordings,
    slots: HashMap<(Stage, StageKind), Slot>,
}

impl<'f> StageSet<'f> {
    pub fn new(factory: &'f mut dyn BackendFactory, recordings: Recordings) -> Self {
        StageSet {
            factory,
            recordings,
            slots: HashMap::new(),
        }
    }

    pub fn recordings(&self) -> &Recordings {
        &self.recordings
    }

    pub fn factory(&self) -> &dyn BackendFactory {
        &*self.factory
    }

    /// Builds every stage instance `variant` needs that is not built yet.
    pub fn prepare(&mut self, variant: &VariantSpec) -> Result<(), (Stage, BuildError)> {
        for (stage, kind) in variant.stages() {
            // Replayed knowledge has nothing to run: the recorded tagger output was made with it.
            if matches!(kind, StageKind::Off | StageKind::Box)
                || (stage, kind) == (Stage::Knowledge, StageKind::Replay)
                || self.slots.contains_key(&(stage, kind))
            {
                continue;
            }
            let slot = match build_recorded(stage, kind, &self.recordings) {
                Some(built) => Slot {
                    stage: built.map_err(|e| (stage, e))?,
                    fingerprint: None,
                },
                None => {
                    let (built, fingerprint) =
                        self.factory.build(stage, kind).map_err(|e| (stage, e))?;
                    Slot {
                        stage: built,
                        // mllm outputs are not stage-cached: the MLLM's own response cache
                        // keys on the image bytes as sent, which the stage cache's keys do not
                        // cover (see pipeline::mllm_stages).
                        fingerprint: (kind != StageKind::Mllm).then_some(fingerprint),
                    }
                }
            };
            if slot.stage.stage() != stage {
                let built = slot.stage.stage();
                return Err((
                    stage,
                    BuildError::WrongFamily {
                        wanted: stage,
                        built,
                    },
                ));
            }
            self.slots.insert((stage, kind), slot);
        }
        Ok(())
    }

    fn slot(&mut self, stage: Stage, kind: StageKind) -> Option<&mut Slot> {
        self.slots.get_mut(&(stage, kind))
    }
}

/// A typed view of a slot: the implementation and its cache fingerprint.
pub struct SlotRef<'a, T: ?Sized> {
    pub stage: &'a mut T,
    pub fingerprint: Option<&'a str>,
}

macro_rules! typed_getter {
    ($name:ident, $variant:ident, $trait:ident) => {
        impl StageSet<'_> {
            /// The prepared implementation of this stage for `kind` (`None`: off, or not prepared).
            pub fn $name(&mut self, kind: StageKind) -> Option<SlotRef<'_, dyn $trait>> {
                let slot = self.slot(Stage::$variant, kind)?;
                match &mut slot.stage {
                    AnyStage::$variant(s) => Some(SlotRef {
                        stage: s.as_mut(),
                        fingerprint: slot.fingerprint.as_deref(),
                    }),
                    // prepare() refuses a slot of the wrong family.
                    _ => None,
                }
            }
        }
    };
}

typed_getter!(knowledge, Knowledge, Knowledge);
typed_getter!(tagger, Tagger, Tagger);
typed_getter!(reformulator, Reformulator, Reformulator);
typed_getter!(entailer, Entailer, Entailer);
typed_getter!(grounder, Grounder, Grounder);
typed_getter!(segmenter, Segmenter, Segmenter);
