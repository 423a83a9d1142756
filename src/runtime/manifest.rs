//! Model manifests (`models/*.toml`): what a stage's model files are and what they expect.
//!
//! ```toml
//! name = "tiny-grounder"
//! stage = "grounder"                    # tagger | entailer | grounder | segmenter
//!
//! [models.main]                         # roles: `main`; `encoder` + `decoder` for SAM / OFA
//! path = "tiny/grounder.onnx"           # relative to this manifest
//! sha256 = "…"                          # verified on load
//! [[models.main.inputs]]
//! name = "pixel_values"
//! dtype = "float32"                     # float32 | float16 | float64 | int64 | int32 | uint8 | bool
//! shape = ["num_queries", 3, 16, 16]    # strings are symbolic dims
//! role = "pixel_values"                 # optional: what the stage feeds (default: the name)
//!                                       # VE/VG may add `image_index` (int64 [num_queries]): the
//!                                       # row of pixel_values [num_images, 3, H, W] each query
//!                                       # belongs to, so one run holds several tweets' images
//! [[models.main.outputs]]
//! name = "boxes"
//! dtype = "float32"
//! shape = ["num_queries", 4]
//!
//! [tokenizer]                           # tagger, entailer, grounder
//! path = "tiny/tokenizer.json"          # a Hugging Face tokenizer.json
//! max_length = 16                       # tokens, special tokens included
//! vocab_size = 47                       # rows of the model's embedding (checked)
//!
//! [preprocess]                          # entailer, grounder, segmenter
//! image_size = [16, 16]                 # [height, width] of the model input
//! resize = "stretch"                    # stretch | longest_side (SAM: scale, pad bottom/right)
//!                                       # | pad_square (OWLv2: pad bottom/right to a square, resize it)
//! filter = "bilinear"                   # nearest | bilinear | bicubic | lanczos (Pillow's)
//!                                       # | skimage_linear (OWLv2's anti-aliased float resize)
//! rescale = 0.00392156862745098         # pixel * rescale, then (x - mean) / std
//! mean = [0.5, 0.5, 0.5]
//! std = [0.5, 0.5, 0.5]
//! pad_value = 0.5                       # pad_square only (required there): padding, before mean/std
//!
//! [labels]                              # tagger: index → label
//! scheme = "bio"                        # bio | bioes
//! names = ["O", "B-PER", "I-PER"]
//! [crf]                                 # tagger, optional: file or inline
//! path = "tiny/tagger_crf.json"         # {"transitions": [[from][to]], "start": [], "end": []}
//! transitions = [[0.0]]                 # or inline, with start / end
//!
//! [boxes]                               # grounder
//! format = "cxcywh"                     # xyxy | cxcywh
//! units = "normalized"                  # normalized (0..1 of the model input) | pixels
//!                                       # (with pad_square the input is the padded square, so
//!                                       # boxes scale by the longer image side, as OWLv2's)
//!
//! [entailment]                          # entailer: logits [n, k] → softmax[positive_index]
//! positive_index = 1
//!
//! [location_tokens]                     # grounder, OFA-style decoders (see pipeline::onnx)
//! first_bin_id = 50265
//! num_bins = 1000
//! ```
//!
//! Loading checks the hashes (each file hashed once per size and mtime, [`sha256_cached`]) and
//! the internal consistency (labels vs CRF size, mean/std); the
//! sessions are checked against the tensors in [`super::env::check_session`]. Must not run models.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::preprocess::PreprocessSpec;
use super::RuntimeError;
use crate::stage::Stage;

/// One manifest, with the path it was read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub name: String,
    pub stage: Stage,
    pub models: BTreeMap<String, ModelSpec>,
    #[serde(default)]
    pub tokenizer: Option<TokenizerSpec>,
    #[serde(default)]
    pub preprocess: Option<PreprocessSpec>,
    #[serde(default)]
    pub labels: Option<LabelSpec>,
    #[serde(default)]
    pub crf: Option<CrfSpec>,
    #[serde(default)]
    pub boxes: Option<BoxSpec>,
    #[serde(default)]
    pub entailment: Option<EntailmentSpec>,
    #[serde(default)]
    pub location_tokens: Option<LocationTokenSpec>,
    /// The manifest file (set by [`ModelManifest::load`]).
    #[serde(skip)]
    pub path: PathBuf,
    /// Where file hashes are remembered across processes, if anywhere
    /// ([`ModelManifest::load_with_hash_sidecar`]).
    #[serde(skip)]
    pub hash_sidecar: Option<PathBuf>,
}

/// One ONNX file and its interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub path: PathBuf,
    pub sha256: String,
    /// The weights file of a graph saved with external data (ONNX's 2 GiB protobuf limit: e.g.
    /// XLM-R-large), relative to the manifest; ONNX Runtime finds it beside the graph by the
    /// name the graph records. Its sha256 is verified like the graph's, so both are part of what
    /// keys cached outputs.
    #[serde(default)]
    pub external_data: Option<PathBuf>,
    #[serde(default)]
    pub external_data_sha256: Option<String>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl ModelSpec {
    /// The input the stage feeds as `role`.
    pub fn input(&self, role: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.role() == role)
    }
    /// The output the stage reads as `role`.
    pub fn output(&self, role: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.role() == role)
    }
}

/// A tensor's name, element type and shape (fixed or symbolic dims).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
    /// What the stage uses it for; defaults to the name.
    #[serde(default)]
    pub role: Option<String>,
}

impl TensorSpec {
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Float32,
    Float16,
    Float64,
    Int64,
    Int32,
    Uint8,
    Bool,
}

impl DType {
    pub const ALL: [DType; 7] = [
        DType::Float32,
        DType::Float16,
        DType::Float64,
        DType::Int64,
        DType::Int32,
        DType::Uint8,
        DType::Bool,
    ];

    /// The manifest name of an ort element type (`int64`, ...), or ort's own name.
    pub fn name_of(ty: ort::value::TensorElementType) -> String {
        DType::ALL
            .iter()
            .find(|d| d.element_type() == ty)
            .map_or_else(|| ty.to_string(), |d| d.to_string())
    }

    pub fn element_type(self) -> ort::value::TensorElementType {
        use ort::value::TensorElementType as T;
        match self {
            DType::Float32 => T::Float32,
            DType::Float16 => T::Float16,
            DType::Float64 => T::Float64,
            DType::Int64 => T::Int64,
            DType::Int32 => T::Int32,
            DType::Uint8 => T::Uint8,
            DType::Bool => T::Bool,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DType::Float32 => "float32",
            DType::Float16 => "float16",
            DType::Float64 => "float64",
            DType::Int64 => "int64",
            DType::Int32 => "int32",
            DType::Uint8 => "uint8",
            DType::Bool => "bool",
        };
        f.write_str(name)
    }
}

/// The role of a query-image model's optional input that maps each query to its image (see
/// [`ModelManifest`]'s validation and `pipeline::onnx::query_image`).
pub const IMAGE_INDEX: &str = "image_index";

/// A fixed dim or a symbolic one (`"batch"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Symbolic(String),
}

impl Dim {
    pub fn fixed(&self) -> Option<i64> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Symbolic(_) => None,
        }
    }
}

pub(crate) fn format_shape(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Symbolic(s) => s.clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSpec {
    pub path: PathBuf,
    /// Tokens per sequence, special tokens included; longer inputs are truncated with a warning.
    pub max_length: usize,
    /// Rows of the model's token embedding: every id must be below it.
    #[serde(default)]
    pub vocab_size: Option<usize>,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagScheme {
    Bio,
    Bioes,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    pub scheme: TagScheme,
    /// Output index → label (`O`, `B-PER`, ...).
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrfSpec {
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub transitions: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    pub start: Option<Vec<f64>>,
    #[serde(default)]
    pub end: Option<Vec<f64>>,
}

/// CRF scores: `transitions[from][to]`, plus start and end scores per label.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Crf {
    pub transitions: Vec<Vec<f64>>,
    #[serde(default)]
    pub start: Vec<f64>,
    #[serde(default)]
    pub end: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxFormat {
    Xyxy,
    Cxcywh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxUnits {
    /// 0..1 of the model input's width/height.
    #[serde(alias = "normalised")]
    Normalized,
    /// Pixels of the model input.
    Pixels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxSpec {
    pub format: BoxFormat,
    pub units: BoxUnits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntailmentSpec {
    /// Which class of a `[n, k]` logits output means "entailed".
    #[serde(default = "one")]
    pub positive_index: usize,
}

fn one() -> usize {
    1
}

/// OFA-style grounding: the decoder emits 4 location tokens `<bin_i>` (x1, y1, x2, y2), bins
/// spread evenly over the model input (`coord = i / (num_bins - 1) * size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationTokenSpec {
    pub first_bin_id: i64,
    pub num_bins: i64,
    /// Decoder start token.
    #[serde(default)]
    pub decoder_start_id: i64,
}

impl ModelManifest {
    /// Reads, parses and checks a manifest, including the sha256 of every file it lists (each
    /// file hashed once per process while its size and mtime stay the same, [`sha256_cached`]).
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        Self::load_with_hash_sidecar(path, None)
    }

    /// [`load`](Self::load), also remembering file hashes across processes in `sidecar` (a small
    /// JSON file, e.g. `<stage cache>/model-hashes.json`; written atomically, a missing or
    /// unreadable one is a miss): re-running a suite does not re-read gigabytes of weights.
    pub fn load_with_hash_sidecar(
        path: &Path,
        sidecar: Option<&Path>,
    ) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::ManifestRead {
            path: path.to_path_buf(),
            why: e.to_string(),
            hint: "check the path; manifests live under models/ (see models/README.md)".into(),
        })?;
        let mut manifest: ModelManifest =
            toml::from_str(&text).map_err(|e| RuntimeError::ManifestInvalid {
                path: path.to_path_buf(),
                what: e.to_string(),
                hint: "see src/runtime/manifest.rs for the fields and an example".into(),
            })?;
        manifest.path = path.to_path_buf();
        manifest.hash_sidecar = sidecar.map(Path::to_path_buf);
        manifest.validate()?;
        Ok(manifest)
    }

    /// `relative` resolved against the manifest's folder (absolute paths are kept).
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) => dir.join(relative),
            None => relative.to_path_buf(),
        }
    }

    /// The model listed under `role`.
    pub fn model(&self, role: &str) -> Result<&ModelSpec, RuntimeError> {
        self.models.get(role).ok_or_else(|| {
            self.invalid(
                format!(
                    "no [models.{role}] (has: {})",
                    self.models.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                format!("a {} manifest needs [models.{role}]", self.stage.name()),
            )
        })
    }

    /// Refuses a manifest written for another stage (e.g. a grounder manifest given to the tagger).
    pub fn require_stage(&self, stage: Stage) -> Result<(), RuntimeError> {
        if self.stage == stage {
            return Ok(());
        }
        let name = stage.name();
        let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        Err(self.invalid(
            format!("stage is {:?}, expected {name:?}", self.stage.name()),
            format!("pass {article} {name} manifest to the {name}"),
        ))
    }

    pub fn require_tokenizer(&self) -> Result<&TokenizerSpec, RuntimeError> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| self.missing_section("tokenizer"))
    }

    pub fn require_preprocess(&self) -> Result<&PreprocessSpec, RuntimeError> {
        self.preprocess
            .as_ref()
            .ok_or_else(|| self.missing_section("preprocess"))
    }

    pub fn require_labels(&self) -> Result<&LabelSpec, RuntimeError> {
        self.labels
            .as_ref()
            .ok_or_else(|| self.missing_section("labels"))
    }

    pub fn require_boxes(&self) -> Result<&BoxSpec, RuntimeError> {
        self.boxes
            .as_ref()
            .ok_or_else(|| self.missing_section("boxes"))
    }

    /// The CRF, read from its file (hash-checked) or inline; `None` when the manifest has none.
    pub fn crf(&self) -> Result<Option<Crf>, RuntimeError> {
        let Some(spec) = &self.crf else {
            return Ok(None);
        };
        let mut crf = match (&spec.path, &spec.transitions) {
            (Some(rel), None) => {
                let path = self.resolve(rel);
                if let Some(expected) = &spec.sha256 {
                    self.verify_hash(&path, expected)?;
                }
                let text =
                    std::fs::read_to_string(&path).map_err(|e| self.file_missing(&path, e))?;
                serde_json::from_str::<Crf>(&text).map_err(|e| {
                    self.invalid(
                        format!("CRF file {}: {e}", path.display()),
                        "expected {\"transitions\": [[..]], \"start\": [..], \"end\": [..]}",
                    )
                })?
            }
            (None, Some(transitions)) => Crf {
                transitions: transitions.clone(),
                start: spec.start.clone().unwrap_or_default(),
                end: spec.end.clone().unwrap_or_default(),
            },
            _ => {
                return Err(self.invalid(
                    "[crf] needs exactly one of `path` and `transitions`",
                    "give the transition matrix in a JSON file or inline",
                ))
            }
        };
        let n = self.labels.as_ref().map(|l| l.names.len()).unwrap_or(0);
        if crf.start.is_empty() {
            crf.start = vec![0.0; n];
        }
        if crf.end.is_empty() {
            crf.end = vec![0.0; n];
        }
        let square = crf.transitions.len() == n && crf.transitions.iter().all(|r| r.len() == n);
        if !square || crf.start.len() != n || crf.end.len() != n {
            return Err(self.invalid(
                format!(
                    "CRF sizes ({}x{}, start {}, end {}) do not match the {n} labels",
                    crf.transitions.len(),
                    crf.transitions.first().map_or(0, Vec::len),
                    crf.start.len(),
                    crf.end.len()
                ),
                "the CRF must have one row/column per entry of [labels] names, in the same order",
            ));
        }
        Ok(Some(crf))
    }

    fn validate(&self) -> Result<(), RuntimeError> {
        if self.models.is_empty() {
            return Err(self.invalid("no [models.*] entry", "list at least one ONNX file"));
        }
        for (role, spec) in &self.models {
            let path = self.resolve(&spec.path);
            self.verify_hash(&path, &spec.sha256)?;
            match (&spec.external_data, &spec.external_data_sha256) {
                (None, None) => {}
                (Some(data), Some(expected)) => {
                    let data_path = self.resolve(data);
                    if data_path.parent() != path.parent() {
                        return Err(self.invalid(
                            format!(
                                "[models.{role}] external_data {} is not in the graph's folder",
                                data.display()
                            ),
                            "ONNX Runtime reads external weights beside the graph file; keep them together",
                        ));
                    }
                    self.verify_hash(&data_path, expected)?;
                }
                (Some(_), None) => {
                    return Err(self.invalid(
                        format!("[models.{role}] has external_data but no external_data_sha256"),
                        "add external_data_sha256 = \"<sha256 of the weights file>\" (scripts/export writes both)",
                    ))
                }
                (None, Some(_)) => {
                    return Err(self.invalid(
                        format!("[models.{role}] has external_data_sha256 but no external_data"),
                        "name the weights file with external_data = \"<file>\", or drop the hash",
                    ))
                }
            }
            self.validate_image_index(role, spec)?;
        }
        if let Some(tok) = &self.tokenizer {
            let path = self.resolve(&tok.path);
            match &tok.sha256 {
                Some(expected) => self.verify_hash(&path, expected)?,
                None if !path.is_file() => {
                    return Err(self.file_missing(
                        &path,
                        std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
                    ))
                }
                None => {}
            }
            if tok.max_length < 2 {
                return Err(self.invalid(
                    format!("tokenizer max_length {} is too small", tok.max_length),
                    "use the model's maximum sequence length (e.g. 512)",
                ));
            }
        }
        if let Some(pre) = &self.preprocess {
            pre.validate()
                .map_err(|(what, hint)| self.invalid(format!("[preprocess]: {what}"), hint))?;
        }
        if let Some(labels) = &self.labels {
            for name in &labels.names {
                let ok = name == "O"
                    || match labels.scheme {
                        TagScheme::Bio => ["B-", "I-"].iter().any(|p| name.starts_with(p)),
                        TagScheme::Bioes => {
                            ["B-", "I-", "E-", "S-"].iter().any(|p| name.starts_with(p))
                        }
                    };
                if !ok {
                    return Err(self.invalid(
                        format!(
                            "label {name:?} is not valid in the {:?} scheme",
                            labels.scheme
                        ),
                        "labels are O or PREFIX-TYPE (B-/I- for bio, also E-/S- for bioes)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The optional `image_index` input of a query-image model (VE, VG): int64 `[num_queries]`,
    /// the row of `pixel_values` each query belongs to, so one run can hold several images. Its
    /// `pixel_values` must then take any number of images (not a fixed batch of 1).
    fn validate_image_index(&self, role: &str, spec: &ModelSpec) -> Result<(), RuntimeError> {
        let Some(index) = spec.input(IMAGE_INDEX) else {
            return Ok(());
        };
        if index.dtype != DType::Int64 || index.shape.len() != 1 {
            return Err(self.invalid(
                format!(
                    "[models.{role}] input {:?} (role \"{IMAGE_INDEX}\") is {} {}; expected int64 [num_queries]",
                    index.name,
                    index.dtype,
                    format_shape(&index.shape)
                ),
                "image_index holds, per query, the row of pixel_values its image is in: export it as a 1-D int64 tensor (scripts/export does), or drop it to run one tweet per call",
            ));
        }
        if let Some(pixels) = spec.input("pixel_values") {
            if pixels.shape.first().and_then(Dim::fixed) == Some(1) {
                return Err(self.invalid(
                    format!(
                        "[models.{role}] has an {IMAGE_INDEX} input but pixel_values {:?} has shape {}: one image per run",
                        pixels.name,
                        format_shape(&pixels.shape)
                    ),
                    "export pixel_values with a dynamic first axis (\"num_images\"), or drop image_index",
                ));
            }
        }
        Ok(())
    }

    /// The file's sha256 ([`sha256_cached`]) compared with `expected` (case-insensitive hex).
    pub fn verify_hash(&self, path: &Path, expected: &str) -> Result<(), RuntimeError> {
        let actual = sha256_cached(path, self.hash_sidecar.as_deref())
            .map_err(|e| self.file_missing(path, e))?;
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(RuntimeError::HashMismatch {
                path: path.to_path_buf(),
                manifest: self.path.clone(),
                expected: expected.trim().to_string(),
                actual,
            });
        }
        Ok(())
    }

    pub(crate) fn invalid(&self, what: impl Into<String>, hint: impl Into<String>) -> RuntimeError {
        RuntimeError::ManifestInvalid {
            path: self.path.clone(),
            what: what.into(),
            hint: hint.into(),
        }
    }

    fn missing_section(&self, section: &str) -> RuntimeError {
        self.invalid(
            format!(
                "a {} manifest needs a [{section}] section",
                self.stage.name()
            ),
            "see src/runtime/manifest.rs for the fields and an example",
        )
    }

    fn file_missing(&self, path: &Path, e: std::io::Error) -> RuntimeError {
        RuntimeError::FileMissing {
            path: path.to_path_buf(),
            manifest: self.path.clone(),
            why: e.to_string(),
            hint: "paths in a manifest are relative to the manifest's folder; download the model or fix the path".into(),
        }
    }
}

/// What a file's hash is remembered by: its canonical path, size and modification time. A
/// changed size or mtime re-hashes; a rewrite that keeps both (and the path) is not noticed,
/// the trade every build tool's "modified?" check makes (`make`, cargo's fingerprints).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct FileStamp {
    path: PathBuf,
    size: u64,
    mtime_ns: u128,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let path = std::fs::canonicalize(path)?;
        let meta = std::fs::metadata(&path)?;
        let mtime_ns = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(FileStamp {
            path,
            size: meta.len(),
            mtime_ns,
        })
    }
}

/// The sidecar file: hashes by stamp.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HashSidecar {
    version: u32,
    files: Vec<(FileStamp, String)>,
}

const SIDECAR_VERSION: u32 = 1;
/// Entries kept in a sidecar (the oldest go first): a few suites' worth of models.
const SIDECAR_KEEP: usize = 256;

type HashMemory = Mutex<HashMap<FileStamp, String>>;

fn process_hashes() -> &'static HashMemory {
    static HASHES: OnceLock<HashMemory> = OnceLock::new();
    HASHES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The sha256 of `path`, computed at most once per (canonical path, size, mtime) in this
/// process, and, with `sidecar`, remembered across processes in that file. Model loads hash
/// every file they list (hundreds of MB to GB for real models), so without this a run, a
/// cache-admin command or a test paid it at every load.
pub fn sha256_cached(path: &Path, sidecar: Option<&Path>) -> std::io::Result<String> {
    sha256_with(path, process_hashes(), sidecar)
}

fn sha256_with(
    path: &Path,
    memory: &HashMemory,
    sidecar: Option<&Path>,
) -> std::io::Result<String> {
    let stamp = FileStamp::of(path)?;
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    let remembered = |memory: &HashMemory| {
        memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&stamp)
            .cloned()
    };
    if let Some(hash) = remembered(memory) {
        return Ok(hash);
    }
    let mut stored = sidecar.map(read_sidecar).unwrap_or_default();
    let hash = match stored.files.iter().find(|(s, _)| *s == stamp) {
        Some((_, hash)) => hash.clone(),
        None => {
            let hash = sha256_file(path)?;
            if let Some(sidecar) = sidecar {
                stored.files.retain(|(s, _)| s.path != stamp.path);
                stored.files.push((stamp.clone(), hash.clone()));
                let excess = stored.files.len().saturating_sub(SIDECAR_KEEP);
                stored.files.drain(..excess);
                stored.version = SIDECAR_VERSION;
                // A sidecar that cannot be written costs a re-hash next time, nothing else.
                if let Ok(bytes) = serde_json::to_vec_pretty(&stored) {
                    if let Err(e) = crate::io_util::write_atomic_unsynced(sidecar, &bytes) {
                        log::debug!("model hash cache {}: {e}", sidecar.display());
                    }
                }
            }
            hash
        }
    };
    memory
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(stamp, hash.clone());
    Ok(hash)
}

/// The sidecar's entries; a missing, unreadable or other-version file is empty.
fn read_sidecar(path: &Path) -> HashSidecar {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<HashSidecar>(&bytes).ok())
        .filter(|s| s.version == SIDECAR_VERSION)
        .unwrap_or_default()
}

/// Lower-case hex sha256 of a file, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Rewrites `path` with `bytes` and gives it the modification time `mtime`.
    fn rewrite(path: &Path, bytes: &[u8], mtime: std::time::SystemTime) {
        std::fs::write(path, bytes).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }

    fn sha(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn external_data_is_hash_checked_and_needs_both_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "m.onnx", "graph");
        write(d, "m.onnx.data", "weights");
        let manifest = |extra: &str| {
            format!(
                "name = \"x\"\nstage = \"tagger\"\n[models.main]\npath = \"m.onnx\"\nsha256 = \"{}\"\n{extra}\ninputs = []\noutputs = []\n",
                sha(b"graph")
            )
        };
        let load = |extra: &str, name: &str| {
            ModelManifest::load(&write(d, name, &manifest(extra)))
                .map(|m| m.models["main"].external_data.clone())
        };
        let good = format!(
            "external_data = \"m.onnx.data\"\nexternal_data_sha256 = \"{}\"",
            sha(b"weights")
        );
        assert_eq!(
            load(&good, "a.toml").unwrap(),
            Some(PathBuf::from("m.onnx.data"))
        );
        assert_eq!(load("", "b.toml").unwrap(), None);
        let wrong = format!(
            "external_data = \"m.onnx.data\"\nexternal_data_sha256 = \"{}\"",
            sha(b"other")
        );
        let e = load(&wrong, "c.toml").unwrap_err().to_string();
        assert!(e.contains("m.onnx.data"), "{e}");
        let e = load("external_data = \"m.onnx.data\"", "d.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no external_data_sha256") && e.contains("hint"),
            "{e}"
        );
        let e = load(
            &format!("external_data_sha256 = \"{}\"", sha(b"weights")),
            "e.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("but no external_data"), "{e}");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        write(d, "sub/m.onnx.data", "weights");
        let elsewhere = format!(
            "external_data = \"sub/m.onnx.data\"\nexternal_data_sha256 = \"{}\"",
            sha(b"weights")
        );
        let e = load(&elsewhere, "f.toml").unwrap_err().to_string();
        assert!(e.contains("not in the graph's folder"), "{e}");
    }

    #[test]
    fn hashes_are_remembered_by_path_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.onnx");
        let t0 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        rewrite(&file, b"weights A", t0);
        let memory = HashMemory::default();
        assert_eq!(
            sha256_with(&file, &memory, None).unwrap(),
            sha(b"weights A")
        );
        // Same size and mtime, other bytes: the remembered hash is returned (proof that it
        // was not recomputed; the documented blind spot of any stamp-based cache).
        rewrite(&file, b"weights B", t0);
        assert_eq!(
            sha256_with(&file, &memory, None).unwrap(),
            sha(b"weights A")
        );
        // Another path to the same file shares the entry (canonical paths).
        let aliased = dir.path().join(".").join("model.onnx");
        assert_eq!(
            sha256_with(&aliased, &memory, None).unwrap(),
            sha(b"weights A")
        );
        // A changed mtime re-hashes.
        rewrite(&file, b"weights B", t0 + std::time::Duration::from_nanos(1));
        assert_eq!(
            sha256_with(&file, &memory, None).unwrap(),
            sha(b"weights B")
        );
        // A changed size re-hashes, even with the old mtime.
        rewrite(&file, b"weights CC", t0);
        assert_eq!(
            sha256_with(&file, &memory, None).unwrap(),
            sha(b"weights CC")
        );
        // A missing file is an error, never a remembered hash.
        std::fs::remove_file(&file).unwrap();
        assert!(sha256_with(&file, &memory, None).is_err());
    }

    #[test]
    fn the_hash_sidecar_carries_hashes_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.onnx");
        let sidecar = dir.path().join("cache/model-hashes/sha256.json");
        let t0 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        rewrite(&file, b"weights A", t0);
        // "Process" 1 hashes and writes the sidecar.
        assert_eq!(
            sha256_with(&file, &HashMemory::default(), Some(&sidecar)).unwrap(),
            sha(b"weights A")
        );
        let stored = read_sidecar(&sidecar);
        assert_eq!(stored.files.len(), 1);
        assert_eq!(stored.files[0].1, sha(b"weights A"));
        assert_eq!(stored.files[0].0.size, 9);
        // "Process" 2 (empty memory) reads it: same stamp, so the sidecar's hash comes back
        // although the bytes changed.
        rewrite(&file, b"weights B", t0);
        assert_eq!(
            sha256_with(&file, &HashMemory::default(), Some(&sidecar)).unwrap(),
            sha(b"weights A")
        );
        // A new mtime re-hashes and replaces the entry of that path.
        rewrite(&file, b"weights B", t0 + std::time::Duration::from_secs(1));
        assert_eq!(
            sha256_with(&file, &HashMemory::default(), Some(&sidecar)).unwrap(),
            sha(b"weights B")
        );
        let stored = read_sidecar(&sidecar);
        assert_eq!(stored.files.len(), 1);
        assert_eq!(stored.files[0].1, sha(b"weights B"));
        // A corrupt sidecar is a miss (re-hash), then rewritten.
        std::fs::write(&sidecar, b"{not json").unwrap();
        assert_eq!(
            sha256_with(&file, &HashMemory::default(), Some(&sidecar)).unwrap(),
            sha(b"weights B")
        );
        assert_eq!(read_sidecar(&sidecar).files.len(), 1);
    }

    #[test]
    fn a_manifest_loaded_with_a_sidecar_still_refuses_a_changed_model() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.onnx", "");
        let p = write(
            dir.path(),
            "m.toml",
            &format!(
                "name = \"x\"\nstage = \"tagger\"\n[models.main]\npath = \"m.onnx\"\nsha256 = \"{EMPTY_SHA}\"\ninputs = []\noutputs = []\n"
            ),
        );
        let sidecar = dir.path().join("hashes.json");
        let m = ModelManifest::load_with_hash_sidecar(&p, Some(&sidecar)).unwrap();
        assert_eq!(m.hash_sidecar.as_deref(), Some(sidecar.as_path()));
        assert_eq!(read_sidecar(&sidecar).files.len(), 1);
        // The model grows: size differs, so it is re-hashed and refused.
        std::fs::write(dir.path().join("m.onnx"), "changed").unwrap();
        let err = ModelManifest::load_with_hash_sidecar(&p, Some(&sidecar))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sha256 mismatch"), "{err}");
    }

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_symbolic_dims_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.onnx", "");
        let p = write(
            dir.path(),
            "m.toml",
            &format!(
                "name = \"x\"\nstage = \"tagger\"\n[models.main]\npath = \"m.onnx\"\nsha256 = \"{EMPTY_SHA}\"\n\
                 [[models.main.inputs]]\nname = \"input_ids\"\ndtype = \"int64\"\nshape = [\"batch\", 7]\n\
                 [[models.main.outputs]]\nname = \"logits\"\ndtype = \"float32\"\nshape = [1, \"s\", 3]\n"
            ),
        );
        let m = ModelManifest::load(&p).unwrap();
        let main = m.model("main").unwrap();
        assert_eq!(
            main.inputs[0].shape,
            vec![Dim::Symbolic("batch".into()), Dim::Fixed(7)]
        );
        assert_eq!(m.resolve(&main.path), dir.path().join("m.onnx"));
        assert!(m
            .model("encoder")
            .unwrap_err()
            .to_string()
            .contains("has: main"));
    }

    #[test]
    fn wrong_hash_shows_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.onnx", "not the model");
        let p = write(
            dir.path(),
            "m.toml",
            &format!(
                "name = \"x\"\nstage = \"tagger\"\n[models.main]\npath = \"m.onnx\"\nsha256 = \"{EMPTY_SHA}\"\ninputs = []\noutputs = []\n"
            ),
        );
        let err = ModelManifest::load(&p).unwrap_err().to_string();
        assert!(err.contains(EMPTY_SHA), "{err}");
        assert!(
            err.contains(&sha256_file(&dir.path().join("m.onnx")).unwrap()),
            "{err}"
        );
        assert!(err.contains("m.onnx"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected_with_the_manifest_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "m.toml",
            "name = \"x\"\nstage = \"tagger\"\nmodelz = 1\n",
        );
        let err = ModelManifest::load(&p).unwrap_err().to_string();
        assert!(err.contains("m.toml") && err.contains("modelz"), "{err}");
    }

    #[test]
    fn inline_crf_size_is_checked_against_labels() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.onnx", "");
        let p = write(
            dir.path(),
            "m.toml",
            &format!(
                "name = \"x\"\nstage = \"tagger\"\n[models.main]\npath = \"m.onnx\"\nsha256 = \"{EMPTY_SHA}\"\ninputs = []\noutputs = []\n\
                 [labels]\nscheme = \"bio\"\nnames = [\"O\", \"B-PER\", \"I-PER\"]\n[crf]\ntransitions = [[0.0, 1.0], [1.0, 0.0]]\n"
            ),
        );
        let m = ModelManifest::load(&p).unwrap();
        let err = m.crf().unwrap_err().to_string();
        assert!(err.contains("3 labels"), "{err}");
    }

    #[test]
    fn image_index_must_be_one_dim_int64_beside_a_multi_image_pixel_input() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.onnx", "");
        let load = |pixels: &str, index: &str, name: &str| {
            let p = write(
                dir.path(),
                name,
                &format!(
                    "name = \"x\"\nstage = \"entailer\"\n[models.main]\npath = \"m.onnx\"\nsha256 = \"{EMPTY_SHA}\"\noutputs = []\n\
                     [[models.main.inputs]]\nname = \"pixel_values\"\ndtype = \"float32\"\nshape = [{pixels}, 3, 8, 8]\n\
                     [[models.main.inputs]]\nname = \"query_image\"\nrole = \"image_index\"\n{index}\n"
                ),
            );
            ModelManifest::load(&p)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        load(
            "\"num_images\"",
            "dtype = \"int64\"\nshape = [\"n\"]",
            "ok.toml",
        )
        .unwrap();
        let e = load(
            "\"num_images\"",
            "dtype = \"int32\"\nshape = [\"n\"]",
            "a.toml",
        )
        .unwrap_err();
        assert!(
            e.contains("a.toml")
                && e.contains("input \"query_image\" (role \"image_index\") is int32 [n]; expected int64 [num_queries]")
                && e.contains("hint: image_index holds"),
            "{e}"
        );
        let e = load(
            "\"num_images\"",
            "dtype = \"int64\"\nshape = [\"n\", 1]",
            "b.toml",
        )
        .unwrap_err();
        assert!(
            e.contains("is int64 [n, 1]; expected int64 [num_queries]"),
            "{e}"
        );
        let e = load("1", "dtype = \"int64\"\nshape = [\"n\"]", "c.toml").unwrap_err();
        assert!(
            e.contains("c.toml")
                && e.contains("has an image_index input but pixel_values \"pixel_values\" has shape [1, 3, 8, 8]")
                && e.contains("dynamic first axis"),
            "{e}"
        );
    }
}
