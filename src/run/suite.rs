//! Suites: commented TOML files (`suites/*.toml`) declaring data, models, the LLM endpoint,
//! settings and the variant matrix; the default suite is compiled in. [`SuiteFile`] is what the
//! user wrote; [`Suite`] is the validated, path-resolved plan the runner trusts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::config::{
    LlmSection, MllmSection, OnError, ReplayMissing, RuntimeSection, VariantSpec,
};
use crate::stage::{Stage, StageKind};
use crate::task::Task;

/// The compiled-in default suite (replays RiVEG's released outputs; no models, images or network).
pub const DEFAULT_SUITE: &str = include_str!("../../suites/default.toml");

/// Errors in a suite file: each names the file and key, with a hint.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{file}: {what}\n  hint: {hint}")]
    Invalid {
        file: String,
        what: String,
        hint: String,
    },
}

fn invalid(file: &str, what: impl Into<String>, hint: impl Into<String>) -> SuiteError {
    SuiteError::Invalid {
        file: file.to_string(),
        what: what.into(),
        hint: hint.into(),
    }
}

/// A data source: a format and its paths (relative paths are resolved against the suite's base).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `jsonl`, `gmner`, `fmnerg`, `conll`, `riveg-labels`, `riveg-ofa`, `adaseq`.
    pub format: String,
    /// The file (jsonl, conll, riveg-*, adaseq) or dataset folder (gmner, fmnerg).
    pub path: PathBuf,
    #[serde(default)]
    pub split: Option<String>,
    /// riveg-ofa: OFA REC boxes JSON. fmnerg: the GMNER v2.0 folder whose xml gives boxes.
    #[serde(default)]
    pub boxes: Option<PathBuf>,
}

/// A dataset: the suite's `[data]` (one implicit dataset, no name) or one of its
/// `[[dataset]]` tables (a name, and optionally which variants and tasks apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The dataset's name (`[[dataset]]` only): results.json's `dataset`, file and section names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub gold: Source,
    /// Folder with the tweets' images (`<id>.jpg`); needed by stages that read pixels.
    #[serde(default)]
    pub images: Option<PathBuf>,
    /// Recorded stage outputs for `replay` stages (and the replay tagger's entities).
    #[serde(default)]
    pub replay: Option<Source>,
    /// Score only the first N tweets (quick runs).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The variants that run on this dataset (empty: all of the suite's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
    /// The tasks scored on this dataset (empty: every task its data allows); a task left out
    /// is removed from the results with a reason in `not_scored`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
    /// Task → why it is not scored on this dataset (said in results.json and the report).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_scored: BTreeMap<Task, String>,
}

impl DataSection {
    /// Whether variant `name` runs on this dataset.
    pub fn applies_to(&self, name: &str) -> bool {
        self.variants.is_empty() || self.variants.iter().any(|v| v == name)
    }

    /// The name people read (`[data]` for the implicit dataset).
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("[data]")
    }
}

/// Run-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// VE probability at or above which an entity is groundable.
    #[serde(default = "default_threshold")]
    pub ve_threshold: f64,
    #[serde(default = "default_threshold")]
    pub iou: f64,
    #[serde(default = "default_threshold")]
    pub mask_iou: f64,
    /// `fail` stops at the first failing item; `skip` records it and goes on.
    #[serde(default)]
    pub on_error: OnError,
    /// Stage cache folder (relative to the current directory); shared by all runs.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Calls per stage excluded from latency statistics as warm-up.
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// Replay stages: what an entity missing from the recording gets (`error` or `negative`:
    /// ungroundable / no box), counted in the results.
    #[serde(default)]
    pub replay_missing: ReplayMissing,
    /// Score every variant the way a published scorer does, quirks included (`riveg-initial`,
    /// `h-index`, `fmnerg`; `run --compat` overrides it). The compat report takes its
    /// protocol's slot in results.json and names the quirks (`metrics.<protocol>.compat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<crate::metrics::Compat>,
}

fn default_threshold() -> f64 {
    0.5
}
fn default_warmup() -> usize {
    1
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ve_threshold: 0.5,
            iou: 0.5,
            mask_iou: 0.5,
            on_error: OnError::Fail,
            cache_dir: None,
            warmup: 1,
            replay_missing: ReplayMissing::Error,
            compat: None,
        }
    }
}

/// A suite file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// One implicit dataset; a suite has either `[data]` or `[[dataset]]` tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSection>,
    /// Several named datasets; every variant runs on every dataset it applies to.
    #[serde(default, rename = "dataset", skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DataSection>,
    /// Stage → model manifest (`models/*.toml`), for `onnx` stages.
    #[serde(default)]
    pub models: BTreeMap<Stage, PathBuf>,
    #[serde(default)]
    pub llm: Option<LlmSection>,
    /// A multimodal LLM for `mllm` stages (endpoint defaults to `[llm]`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mllm: Option<MllmSection>,
    #[serde(default)]
    pub settings: Settings,
    /// ONNX Runtime threads and spinning, and the tagger batch size (`[runtime]`).
    #[serde(default, skip_serializing_if = "is_default_runtime")]
    pub runtime: RuntimeSection,
    #[serde(rename = "variant")]
    pub variants: Vec<VariantSpec>,
}

/// A validated suite: paths resolved, every variant's stage kinds allowed and backed by config.
#[derive(Debug, Clone)]
pub struct Suite {
    pub file: SuiteFile,
    /// Where the suite came from (a path, or `<built-in default>`).
    pub origin: String,
    pub base_dir: PathBuf,
}

impl Suite {
    /// Loads and validates a suite file; relative paths resolve against the file's folder.
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                &origin,
                format!("cannot read suite: {e}"),
                "pass a suites/*.toml file to --suite",
            )
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Suites in suites/ refer to models/ and ../shared relative to the project root.
        let base_dir = if base.file_name().is_some_and(|n| n == "suites") {
            base.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            base
        };
        Suite::parse(&text, origin, base_dir)
    }

    /// The compiled-in default suite; its paths resolve against the current directory, or the
    /// source checkout when run from elsewhere.
    pub fn default_suite() -> Result<Suite, SuiteError> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let base = if cwd.join("../shared/datasets").is_dir() {
            cwd
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        };
        Suite::parse(DEFAULT_SUITE, "<built-in default suite>".into(), base)
    }

    pub fn parse(text: &str, origin: String, base_dir: PathBuf) -> Result<Suite, SuiteError> {
        let file: SuiteFile = toml::from_str(text).map_err(|e| {
            invalid(
                &origin,
                format!("invalid suite: {e}"),
                "see suites/default.toml for a commented example",
            )
        })?;
        let suite = Suite {
            file,
            origin,
            base_dir,
        };
        suite.validate()?;
        Ok(suite)
    }

    /// Resolves a path of the suite against its base folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn validate(&self) -> Result<(), SuiteError> {
        let f = &self.file;
        let o = &self.origin;
        if !is_plain_name(&f.name) {
            return Err(invalid(
                o,
                format!("suite name {:?} is not a plain name", f.name),
                "use letters, digits, '-', '_' and '.' (the name becomes part of the run folder's name)",
            ));
        }
        if f.runtime.batch == Some(0) {
            return Err(invalid(
                o,
                "[runtime] batch = 0: a batch holds at least one tweet",
                "use batch = 1 for one tagger call per tweet, or leave it out (32 tweets)",
            ));
        }
        if f.runtime.image_batch == Some(0) {
            return Err(invalid(
                o,
                "[runtime] image_batch = 0: a VE/VG run holds at least one image",
                "use image_batch = 1 for one VE/VG run per tweet, or leave it out (8 images)",
            ));
        }
        if f.variants.is_empty() {
            return Err(invalid(
                o,
                "no [[variant]] entries",
                "add at least one variant (see suites/default.toml)",
            ));
        }
        self.validate_datasets()?;
        let mut names = std::collections::HashSet::new();
        for v in &f.variants {
            if !names.insert(v.name.as_str()) {
                return Err(invalid(
                    o,
                    format!("variant name {:?} is used twice", v.name),
                    "variant names must be unique",
                ));
            }
            if !is_plain_name(&v.name) {
                return Err(invalid(
                    o,
                    format!("variant name {:?} is not a plain name", v.name),
                    "use letters, digits, '-', '_' and '.' (names become file names)",
                ));
            }
            check_knowledge(o, v, f.llm.is_some())?;
            let allowed: [(Stage, StageKind, &[StageKind]); 5] = [
                (
                    Stage::Tagger,
                    v.tagger,
                    &[
                        StageKind::Onnx,
                        StageKind::Replay,
                        StageKind::Oracle,
                        StageKind::Mllm,
                    ],
                ),
                (
                    Stage::Reformulator,
                    v.reformulator,
                    &[StageKind::Llm, StageKind::Replay, StageKind::Off],
                ),
                (
                    Stage::Entailer,
                    v.entailer,
                    &[
                        StageKind::Onnx,
                        StageKind::Replay,
                        StageKind::Oracle,
                        StageKind::Off,
                        StageKind::Mllm,
                    ],
                ),
                (
                    Stage::Grounder,
                    v.grounder,
                    &[
                        StageKind::Onnx,
                        StageKind::Replay,
                        StageKind::Oracle,
                        StageKind::Off,
                        StageKind::Mllm,
                    ],
                ),
                (
                    Stage::Segmenter,
                    v.segmenter,
                    &[StageKind::Onnx, StageKind::Box, StageKind::Off],
                ),
            ];
            for (stage, kind, ok) in allowed {
                if !ok.contains(&kind) {
                    return Err(invalid(
                        o,
                        format!(
                            "variant {:?}: {} cannot be {:?}",
                            v.name,
                            stage.name(),
                            kind
                        ),
                        format!("{} takes one of {:?}", stage.name(), ok),
                    ));
                }
                if kind == StageKind::Onnx && !f.models.contains_key(&stage) {
                    return Err(invalid(
                        o,
                        format!(
                            "variant {:?}: {} is onnx but [models] has no {} manifest",
                            v.name,
                            stage.name(),
                            stage.name()
                        ),
                        format!(
                            "add `{} = \"models/<name>.toml\"` under [models]",
                            stage.name()
                        ),
                    ));
                }
                if kind == StageKind::Replay {
                    if let Some(d) = self
                        .datasets()
                        .into_iter()
                        .find(|d| d.applies_to(&v.name) && d.replay.is_none())
                    {
                        return Err(invalid(
                            o,
                            format!(
                                "variant {:?}: {} is replay but dataset {} has no replay source",
                                v.name,
                                stage.name(),
                                d.label()
                            ),
                            "set its `replay` to recorded outputs (e.g. format = \"riveg-ofa\"), or leave the variant out of the dataset's `variants`",
                        ));
                    }
                }
                if kind == StageKind::Llm && f.llm.is_none() {
                    return Err(invalid(
                        o,
                        format!(
                            "variant {:?}: {} is llm but there is no [llm] section",
                            v.name,
                            stage.name()
                        ),
                        "add [llm] with base_url and model (or start_mock = true for a dry run)",
                    ));
                }
            }
        }
        if let Some(llm) = &f.llm {
            let config = llm
                .to_config()
                .map_err(|what| invalid(o, what, "see suites/smoke.toml for an [llm] example"))?;
            // The mock's address replaces base_url, so only the settings are checked then.
            let checked = if llm.start_mock {
                crate::llm::LlmConfig {
                    base_url: "http://127.0.0.1:1/v1".into(),
                    ..config
                }
            } else {
                config
            };
            checked.validate().map_err(|e| match e {
                crate::llm::LlmError::Config { what, hint } => {
                    invalid(o, format!("[llm] {what}"), hint)
                }
                other => invalid(o, format!("[llm] {other}"), "check the [llm] section"),
            })?;
        }
        if let Some(m) = &f.mllm {
            m.settings().validate().map_err(|e| match e {
                crate::llm::LlmError::Config { what, hint } => {
                    invalid(o, format!("[mllm] {what}"), hint)
                }
                other => invalid(o, format!("[mllm] {other}"), "check the [mllm] section"),
            })?;
            if f.llm.is_none() && (m.base_url.is_none() || m.model.is_none()) {
                return Err(invalid(
                    o,
                    "[mllm] has no endpoint of its own and there is no [llm] section",
                    "set [mllm] base_url and model, or add [llm] (its endpoint is the default)",
                ));
            }
        }
        let uses_mllm = f
            .variants
            .iter()
            .any(|v| [v.tagger, v.entailer, v.grounder].contains(&StageKind::Mllm));
        if uses_mllm && f.llm.is_none() && f.mllm.is_none() {
            return Err(invalid(
                o,
                "a variant has an mllm stage but the suite has neither [mllm] nor [llm]",
                "add [mllm] with base_url and model (or [llm], whose endpoint [mllm] defaults to)",
            ));
        }
        for (name, kind, value) in [
            (
                "settings.ve_threshold",
                Threshold::Probability,
                f.settings.ve_threshold,
            ),
            ("settings.iou", Threshold::Iou, f.settings.iou),
            ("settings.mask_iou", Threshold::Iou, f.settings.mask_iou),
        ] {
            kind.check(name, value)
                .map_err(|(what, hint)| invalid(o, what, hint))?;
        }
        Ok(())
    }

    /// The suite's datasets: its `[[dataset]]` tables, or the one implicit dataset of `[data]`.
    pub fn datasets(&self) -> Vec<&DataSection> {
        match &self.file.data {
            Some(d) => vec![d],
            None => self.file.datasets.iter().collect(),
        }
    }

    /// One of `[data]` or `[[dataset]]`; dataset names plain and unique; `variants` lists
    /// name variants of the suite.
    fn validate_datasets(&self) -> Result<(), SuiteError> {
        let f = &self.file;
        let o = &self.origin;
        match (&f.data, f.datasets.is_empty()) {
            (None, true) => {
                return Err(invalid(
                    o,
                    "no data: neither [data] nor [[dataset]]",
                    "add [data] with gold (see suites/default.toml) or [[dataset]] tables (see suites/smoke.toml)",
                ))
            }
            (Some(_), false) => {
                return Err(invalid(
                    o,
                    "both [data] and [[dataset]] are set",
                    "use [data] for one dataset, or name each dataset in a [[dataset]] table",
                ))
            }
            (Some(d), true) if d.name.is_some() || !d.variants.is_empty() => {
                return Err(invalid(
                    o,
                    "[data] takes no name or variants",
                    "name datasets and choose their variants in [[dataset]] tables",
                ))
            }
            _ => {}
        }
        let mut seen = std::collections::HashSet::new();
        for d in &f.datasets {
            let Some(name) = d.name.as_deref() else {
                return Err(invalid(
                    o,
                    "a [[dataset]] has no name",
                    "give each [[dataset]] a plain name (name = \"gmner\")",
                ));
            };
            if !is_plain_name(name) {
                return Err(invalid(
                    o,
                    format!("dataset name {name:?} is not a plain name"),
                    "use letters, digits, '-', '_' and '.' (names become folder names)",
                ));
            }
            if !seen.insert(name) {
                return Err(invalid(
                    o,
                    format!("dataset name {name:?} is used twice"),
                    "dataset names must be unique",
                ));
            }
        }
        for d in self.datasets() {
            if let Some(t) = Task::ALL
                .into_iter()
                .find(|t| t.always_scored() && !d.tasks.is_empty() && !d.tasks.contains(t))
            {
                return Err(invalid(
                    o,
                    format!("dataset {}: tasks leaves out {}", d.label(), t.key()),
                    "MNER, EEG and GMNER are always scored; list them too, or leave `tasks` out",
                ));
            }
            if let Some(bad) = d
                .variants
                .iter()
                .find(|n| !f.variants.iter().any(|v| &v.name == *n))
            {
                return Err(invalid(
                    o,
                    format!("dataset {}: no variant named {bad:?}", d.label()),
                    format!(
                        "the suite's variants: {}",
                        f.variants
                            .iter()
                            .map(|v| v.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Keeps only the variants named in `keep` (`run --variant`), and the datasets some kept
    /// variant applies to; `Err` with the dataset-free message when none is left.
    pub fn retain_variants(&mut self, keep: &[String]) -> Result<(), String> {
        let f = &mut self.file;
        f.variants.retain(|v| keep.contains(&v.name));
        // An explicit list keeps its kept names; one left empty would mean "all", so that
        // dataset goes instead.
        f.datasets.retain_mut(|d| {
            if d.variants.is_empty() {
                return true;
            }
            d.variants.retain(|n| keep.contains(n));
            !d.variants.is_empty()
        });
        if f.data.is_none() && f.datasets.is_empty() {
            return Err("none of the selected variants runs on any dataset of the suite".into());
        }
        Ok(())
    }

    /// Whether any variant needs pixels (an onnx VE, VG or segmenter, or any mllm stage).
    pub fn needs_images(&self) -> bool {
        self.file.variants.iter().any(|v| {
            v.entailer == StageKind::Onnx
                || v.grounder == StageKind::Onnx
                || v.segmenter == StageKind::Onnx
                || [v.tagger, v.entailer, v.grounder].contains(&StageKind::Mllm)
        })
    }
}

/// The knowledge stage: `llm` (needs `[llm]` and a tagger that reads a second segment, i.e.
/// `onnx`), `replay` (marks a replayed tagger's recorded output as knowledge-augmented) or `off`.
fn check_knowledge(o: &str, v: &VariantSpec, has_llm: bool) -> Result<(), SuiteError> {
    let Some(kind) = v.knowledge else {
        return Ok(());
    };
    let why = match kind {
        StageKind::Off => return Ok(()),
        StageKind::Llm if !has_llm => "knowledge is llm but there is no [llm] section",
        StageKind::Llm if v.tagger != StageKind::Onnx => {
            "knowledge = \"llm\" needs tagger = \"onnx\" (the tagger reads the context as a second segment)"
        }
        StageKind::Llm => return Ok(()),
        StageKind::Replay if v.tagger != StageKind::Replay => {
            "knowledge = \"replay\" needs tagger = \"replay\" (it marks recorded tagger output as made with knowledge)"
        }
        StageKind::Replay => return Ok(()),
        _ => "knowledge takes llm, replay or off",
    };
    Err(invalid(
        o,
        format!("variant {:?}: {why} (knowledge = {kind:?})", v.name),
        "see suites/arch.toml (knowledge = \"llm\" / \"off\") and suites/default.toml (\"replay\")",
    ))
}

/// The kinds of threshold a user sets, each checked the same way wherever it is set (suite
/// settings, `eval --iou/--mask-iou`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// An IoU a match needs: in (0, 1] (at 0 any two boxes would match, even disjoint ones).
    Iou,
    /// A probability cut (VE): in [0, 1].
    Probability,
}

impl Threshold {
    /// `Ok(value)` or `(what is wrong, hint)`; `name` is how the user set it (`--iou`,
    /// `settings.iou`).
    pub fn check(self, name: &str, value: f64) -> Result<f64, (String, String)> {
        let ok = match self {
            Threshold::Iou => value > 0.0 && value <= 1.0,
            Threshold::Probability => (0.0..=1.0).contains(&value),
        };
        if ok {
            return Ok(value);
        }
        let range = match self {
            Threshold::Iou => "(0, 1]",
            Threshold::Probability => "[0, 1]",
        };
        Err((
            format!("{name} = {value} is outside {range}"),
            "thresholds are fractions (the published protocols use 0.5), not percentages".into(),
        ))
    }
}

fn is_default_runtime(r: &RuntimeSection) -> bool {
    *r == RuntimeSection::default()
}

/// Letters, digits, `-`, `_`, `.`; not empty and not `.`/`..` (safe as a file name).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_suite_parses() {
        let s = Suite::default_suite().unwrap();
        assert!(s.file.variants.len() >= 4);
        assert!(!s.needs_images());
    }

    #[test]
    fn onnx_without_manifest_is_rejected() {
        let text = r#"
name = "x"
[data]
gold = { format = "jsonl", path = "g.jsonl" }
[[variant]]
name = "full"
tagger = "onnx"
reformulator = "off"
entailer = "off"
grounder = "off"
segmenter = "off"
"#;
        let err = Suite::parse(text, "x.toml".into(), PathBuf::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tagger is onnx but [models] has no tagger manifest"),
            "{err}"
        );
    }

    #[test]
    fn zero_batches_are_rejected_and_image_batch_defaults_below_batch() {
        let suite = |runtime: &str| {
            format!(
                r#"
name = "x"
[data]
gold = {{ format = "jsonl", path = "g.jsonl" }}
[runtime]
{runtime}
[[variant]]
name = "oracle"
tagger = "oracle"
reformulator = "off"
entailer = "off"
grounder = "off"
segmenter = "off"
"#
            )
        };
        let parse = |runtime: &str| Suite::parse(&suite(runtime), "x.toml".into(), PathBuf::new());
        for (runtime, what) in [
            ("batch = 0", "[runtime] batch = 0"),
            ("image_batch = 0", "[runtime] image_batch = 0"),
        ] {
            let err = parse(runtime).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
        let images = |runtime: &str| parse(runtime).unwrap().file.runtime.image_batch();
        assert_eq!(images("batch = 32"), 8);
        assert_eq!(images("batch = 4"), 4);
        assert_eq!(images("batch = 4\nimage_batch = 16"), 16);
    }

    #[test]
    fn unknown_stage_kind_is_rejected() {
        let text = r#"
name = "x"
[data]
gold = { format = "jsonl", path = "g.jsonl" }
[[variant]]
name = "full"
tagger = "oracle"
reformulator = "onnx"
entailer = "off"
grounder = "off"
segmenter = "off"
"#;
        let err = Suite::parse(text, "x.toml".into(), PathBuf::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("reformulator cannot be Onnx"), "{err}");
    }
}

#[cfg(test)]
mod dataset_tests {
    use super::*;

    const VARIANTS: &str = r#"
[[variant]]
name = "a"
tagger = "oracle"
reformulator = "off"
entailer = "off"
grounder = "off"
segmenter = "off"

[[variant]]
name = "b"
tagger = "replay"
reformulator = "off"
entailer = "off"
grounder = "off"
segmenter = "off"
"#;

    fn parse(head: &str) -> Result<Suite, String> {
        Suite::parse(
            &format!("name = \"x\"\n{head}\n{VARIANTS}"),
            "x.toml".into(),
            PathBuf::new(),
        )
        .map_err(|e| e.to_string())
    }

    const TWO: &str = r#"
[[dataset]]
name = "one"
gold = { format = "jsonl", path = "g1.jsonl" }
replay = { format = "jsonl", path = "r1.jsonl" }
tasks = ["mner", "eeg", "gmner", "fmnerg"]
not_scored = { smner = "no masks" }

[[dataset]]
name = "two"
gold = { format = "jsonl", path = "g2.jsonl" }
variants = ["a"]
"#;

    #[test]
    fn datasets_parse_and_say_which_variants_apply() {
        let s = parse(TWO).unwrap();
        let d = s.datasets();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name.as_deref(), Some("one"));
        assert!(d[0].applies_to("a") && d[0].applies_to("b"));
        assert!(d[1].applies_to("a") && !d[1].applies_to("b"));
        assert_eq!(d[0].tasks[3], Task::Fmnerg);
        assert_eq!(d[0].not_scored[&Task::Smner], "no masks");
        // The plan written to the run directory parses back to the same suite.
        let text = toml::to_string(&s.file).unwrap();
        let back = Suite::parse(&text, "plan".into(), PathBuf::new()).unwrap();
        assert_eq!(back.file, s.file);
    }

    #[test]
    fn a_replay_variant_needs_a_recording_on_every_dataset_it_runs_on() {
        let err = parse(&TWO.replace("variants = [\"a\"]", "")).unwrap_err();
        assert!(
            err.contains("variant \"b\": tagger is replay but dataset two has no replay source"),
            "{err}"
        );
    }

    #[test]
    fn bad_dataset_tables_are_named() {
        let cases = [
            (
                format!("[data]\ngold = {{ format = \"jsonl\", path = \"g.jsonl\" }}\n{TWO}"),
                "both [data] and [[dataset]] are set",
            ),
            (String::new(), "no data: neither [data] nor [[dataset]]"),
            (
                TWO.replace("name = \"two\"", "name = \"one\""),
                "dataset name \"one\" is used twice",
            ),
            (
                TWO.replace("name = \"two\"", "name = \"../two\""),
                "dataset name \"../two\" is not a plain name",
            ),
            (
                TWO.replace("variants = [\"a\"]", "variants = [\"c\"]"),
                "dataset two: no variant named \"c\"",
            ),
            (
                TWO.replace("\"mner\", \"eeg\", \"gmner\", ", "\"mner\", \"eeg\", "),
                "dataset one: tasks leaves out gmner",
            ),
        ];
        for (head, want) in cases {
            let err = parse(&head).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
            assert!(err.contains("x.toml") && err.contains("hint:"), "{err}");
        }
    }

    #[test]
    fn selecting_variants_drops_the_datasets_none_of_them_runs_on() {
        let mut s = parse(TWO).unwrap();
        s.retain_variants(&["b".to_string()]).unwrap();
        let names: Vec<_> = s.datasets().iter().map(|d| d.label().to_string()).collect();
        assert_eq!(names, ["one"]);
        let mut s =
            parse(&TWO.replace("name = \"one\"", "name = \"one\"\nvariants = [\"a\"]")).unwrap();
        let err = s.retain_variants(&["b".to_string()]).unwrap_err();
        assert!(err.contains("none of the selected variants"), "{err}");
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn thresholds_are_checked_one_way() {
        assert_eq!(Threshold::Iou.check("--iou", 0.5), Ok(0.5));
        assert!(Threshold::Iou.check("--iou", 0.0).is_err());
        assert!(Threshold::Iou.check("--mask-iou", 50.0).is_err());
        assert!(Threshold::Iou.check("--mask-iou", f64::NAN).is_err());
        assert_eq!(Threshold::Probability.check("ve", 0.0), Ok(0.0));
        assert!(Threshold::Probability.check("ve", f64::NAN).is_err());
        let (what, _) = Threshold::Iou.check("settings.iou", 0.0).unwrap_err();
        assert_eq!(what, "settings.iou = 0 is outside (0, 1]");
    }

    #[test]
    fn a_suite_name_that_could_leave_reports_is_rejected() {
        let text = r#"
name = "../../etc"
[data]
gold = { format = "jsonl", path = "g.jsonl" }
[[variant]]
name = "full"
tagger = "oracle"
reformulator = "off"
entailer = "off"
grounder = "off"
segmenter = "off"
"#;
        let err = Suite::parse(text, "x.toml".into(), PathBuf::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("suite name \"../../etc\" is not a plain name"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod llm_section_tests {
    use super::*;

    const HEAD: &str = r#"
name = "x"
[data]
gold = { format = "jsonl", path = "g.jsonl" }
"#;
    const MLLM_VARIANT: &str = r#"
[[variant]]
name = "mllm"
tagger = "mllm"
reformulator = "off"
entailer = "mllm"
grounder = "mllm"
segmenter = "off"
"#;

    fn parse(body: &str) -> Result<Suite, String> {
        Suite::parse(&format!("{HEAD}{body}"), "x.toml".into(), PathBuf::new())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sampling_settings_reach_the_client_and_omit_sends_none() {
        let s = parse(&format!(
            "[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\ntemperature = \"omit\"\ntop_p = 0.9\nmax_tokens = \"omit\"\nmax_completion_tokens = 1024\nseed = 3\nextra = {{ reasoning_effort = \"low\" }}\n{MLLM_VARIANT}"
        ))
        .unwrap();
        let config = s.file.llm.as_ref().unwrap().to_config().unwrap();
        assert_eq!(config.temperature, None);
        assert_eq!(config.max_tokens, None);
        assert_eq!(config.max_completion_tokens, Some(1024));
        assert_eq!(config.seed, Some(3));
        assert_eq!(
            config.sampling_fingerprint(),
            r#"{"max_completion_tokens":1024,"reasoning_effort":"low","seed":3,"top_p":0.9}"#
        );
        // The plan written to the run directory reads back the same (the "omit" words kept).
        let text = toml::to_string(&s.file).unwrap();
        assert!(text.contains("temperature = \"omit\""), "{text}");
        let again = Suite::parse(&text, "plan".into(), PathBuf::new()).unwrap();
        assert_eq!(again.file, s.file);
    }

    #[test]
    fn bad_sampling_settings_name_the_file() {
        let err = parse(&format!(
            "[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\ntemperature = 7\n{MLLM_VARIANT}"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("x.toml: [llm] temperature 7 is outside 0..=2"),
            "{err}"
        );
        let err = parse(&format!(
            "[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\ntemperature = \"hot\"\n{MLLM_VARIANT}"
        ))
        .unwrap_err();
        assert!(err.contains("x.toml: invalid suite"), "{err}");
    }

    #[test]
    fn mllm_stages_need_an_endpoint() {
        let err = parse(MLLM_VARIANT).unwrap_err();
        assert!(
            err.contains("a variant has an mllm stage but the suite has neither [mllm] nor [llm]"),
            "{err}"
        );
        let err = parse(&format!(
            "[mllm]\nbox_convention = \"grid1000\"\n{MLLM_VARIANT}"
        ))
        .unwrap_err();
        assert!(err.contains("[mllm] has no endpoint of its own"), "{err}");
        let s = parse(&format!(
            "[mllm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"qwen\"\nbox_convention = \"grid1000\"\n{MLLM_VARIANT}"
        ))
        .unwrap();
        assert!(s.needs_images());
        assert_eq!(
            s.file.mllm.unwrap().settings().box_convention,
            crate::llm::BoxConvention::Grid1000
        );
        let err = parse(&format!(
            "[mllm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"q\"\njpeg_quality = 0\n{MLLM_VARIANT}"
        ))
        .unwrap_err();
        assert!(
            err.contains("[mllm] mllm jpeg_quality 0 is outside 1..=100"),
            "{err}"
        );
    }

    #[test]
    fn mllm_cannot_reformulate_or_segment() {
        let err = parse(
            "[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n[[variant]]\nname = \"v\"\ntagger = \"oracle\"\nreformulator = \"mllm\"\nentailer = \"off\"\ngrounder = \"off\"\nsegmenter = \"off\"\n",
        )
        .unwrap_err();
        assert!(err.contains("reformulator cannot be Mllm"), "{err}");
    }
}

#[cfg(test)]
mod knowledge_tests {
    use super::*;

    fn variant(knowledge: &str, tagger: &str) -> String {
        format!(
            r#"
name = "x"
[data]
gold = {{ format = "jsonl", path = "g.jsonl" }}
replay = {{ format = "jsonl", path = "r.jsonl" }}
[models]
tagger = "models/t.toml"
[llm]
base_url = "http://127.0.0.1:9/v1"
model = "m"
[[variant]]
name = "v"
{knowledge}
tagger = "{tagger}"
reformulator = "off"
entailer = "off"
grounder = "off"
segmenter = "off"
"#
        )
    }

    fn parse(text: &str) -> Result<Suite, String> {
        Suite::parse(text, "k.toml".into(), PathBuf::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn knowledge_is_optional_and_named_in_stages_only_when_written() {
        let s = parse(&variant("", "onnx")).unwrap();
        let v = &s.file.variants[0];
        assert_eq!(v.knowledge(), StageKind::Off);
        assert!(!v.stages().contains_key(&Stage::Knowledge));
        let s = parse(&variant("knowledge = \"llm\"", "onnx")).unwrap();
        assert_eq!(
            s.file.variants[0].stages().get(&Stage::Knowledge),
            Some(&StageKind::Llm)
        );
        let s = parse(&variant("knowledge = \"replay\"", "replay")).unwrap();
        assert_eq!(s.file.variants[0].knowledge(), StageKind::Replay);
        // The default suite marks the released (knowledge-augmented) predictions.
        let d = Suite::default_suite().unwrap();
        for v in &d.file.variants {
            if v.tagger == StageKind::Replay {
                assert_eq!(v.knowledge, Some(StageKind::Replay), "{}", v.name);
            }
        }
    }

    #[test]
    fn knowledge_kinds_must_fit_the_tagger() {
        let err = parse(&variant("knowledge = \"llm\"", "oracle")).unwrap_err();
        assert!(
            err.contains("variant \"v\": knowledge = \"llm\" needs tagger = \"onnx\""),
            "{err}"
        );
        let err = parse(&variant("knowledge = \"replay\"", "onnx")).unwrap_err();
        assert!(
            err.contains("knowledge = \"replay\" needs tagger = \"replay\""),
            "{err}"
        );
        let err = parse(&variant("knowledge = \"onnx\"", "onnx")).unwrap_err();
        assert!(err.contains("knowledge takes llm, replay or off"), "{err}");
        let no_llm = variant("knowledge = \"llm\"", "onnx").replace(
            "[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n",
            "",
        );
        let err = parse(&no_llm).unwrap_err();
        assert!(
            err.contains("knowledge is llm but there is no [llm] section"),
            "{err}"
        );
    }
}
