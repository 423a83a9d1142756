//! Loading ONNX Runtime once per process and building sessions on a device.
//!
//! `ort` is built with `load-dynamic`: the library comes from the `onnxruntime` PyPI wheel at run
//! time. Without a path `ort` falls back to `libonnxruntime.so` on the loader path and **panics**
//! when that fails, so the path is always resolved here first (explicit path → `ORT_DYLIB_PATH`
//! → `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` under the current
//! directory, then under the crate root known at compile time) and handed to `ort::init_from`.
//! Only [`init`] creates an [`OrtRuntime`], and sessions are only built through one, so no `ort`
//! call can happen before the library is loaded.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::ep::ExecutionProvider as _;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use serde::{Deserialize, Serialize};

use super::manifest::{ModelManifest, ModelSpec};
use super::RuntimeError;
use ort::ep::CUDA as CudaExecutionProvider;

/// What to do when the library is missing; repeated in every library error.
pub const INSTALL_HINT: &str = "run `bash scripts/install-python-deps.sh` (installs onnxruntime 1.31.1 into .venv, where riveg-bench finds it), or set ORT_DYLIB_PATH to a libonnxruntime.so* of ONNX Runtime >= 1.24";

/// Where the library path came from (shown in logs and errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySource {
    /// A flag or an explicit argument.
    Explicit,
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// Found in a `.venv` under this directory.
    Venv(PathBuf),
}

impl fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LibrarySource::Explicit => f.write_str("the explicit path"),
            LibrarySource::EnvVar => f.write_str("ORT_DYLIB_PATH"),
            LibrarySource::Venv(root) => write!(f, "{}/.venv", root.display()),
        }
    }
}

/// Resolves the library path from the process environment: `explicit`, else `ORT_DYLIB_PATH`,
/// else a `.venv` under the current directory or the crate root.
pub fn resolve_library_path(
    explicit: Option<&Path>,
) -> Result<(PathBuf, LibrarySource), RuntimeError> {
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    let crate_root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if !roots.contains(&crate_root) {
        roots.push(crate_root);
    }
    resolve_library_path_with(explicit, std::env::var_os("ORT_DYLIB_PATH"), &roots)
}

/// [`resolve_library_path`] with the environment passed in (testable without touching the
/// process environment). An explicit or `ORT_DYLIB_PATH` path that does not exist is an error,
/// never a silent fall-through to the next source.
pub fn resolve_library_path_with(
    explicit: Option<&Path>,
    env_value: Option<OsString>,
    venv_roots: &[PathBuf],
) -> Result<(PathBuf, LibrarySource), RuntimeError> {
    if let Some(path) = explicit {
        return existing(path.to_path_buf(), LibrarySource::Explicit);
    }
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        return existing(PathBuf::from(value), LibrarySource::EnvVar);
    }
    for root in venv_roots {
        if let Some(path) = find_in_venv(root) {
            return Ok((path, LibrarySource::Venv(root.clone())));
        }
    }
    let searched = std::iter::once("ORT_DYLIB_PATH (unset)".to_string())
        .chain(venv_roots.iter().map(|r| {
            format!(
                "{}/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*",
                r.display()
            )
        }))
        .collect::<Vec<_>>()
        .join(", ");
    Err(RuntimeError::LibraryNotFound { searched })
}

fn existing(
    path: PathBuf,
    source: LibrarySource,
) -> Result<(PathBuf, LibrarySource), RuntimeError> {
    if path.is_file() {
        Ok((path, source))
    } else {
        Err(RuntimeError::LibraryMissing {
            path,
            source_name: source.to_string(),
        })
    }
}

/// `root/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`, the highest
/// name when several match (sorted, so the choice is stable).
fn find_in_venv(root: &Path) -> Option<PathBuf> {
    let lib = root.join(".venv").join("lib");
    let mut found = Vec::new();
    for python in std::fs::read_dir(&lib).ok()?.flatten() {
        if !python.file_name().to_string_lossy().starts_with("python3") {
            continue;
        }
        let capi = python.path().join("site-packages/onnxruntime/capi");
        let Ok(entries) = std::fs::read_dir(&capi) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("libonnxruntime.so")
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found.pop()
}

/// The loaded ONNX Runtime: the `ort` environment and where the library came from.
pub struct OrtRuntime {
    environment: ort::environment::Environment,
    library_path: PathBuf,
    source: LibrarySource,
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime once per process and returns it; later calls return the same runtime.
///
/// The path is resolved on every call (so a wrong explicit path is always reported), and an
/// explicit path different from the one already loaded is an error: a process can hold one
/// ONNX Runtime only.
pub fn init(explicit: Option<&Path>) -> Result<&'static OrtRuntime, RuntimeError> {
    let (path, source) = resolve_library_path(explicit)?;
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        if explicit.is_some() && !same_file(&runtime.library_path, &path) {
            return Err(RuntimeError::AlreadyLoaded {
                loaded: runtime.library_path.clone(),
                requested: path,
            });
        }
        return Ok(runtime);
    }
    let builder = ort::init_from(&path).map_err(|e| load_error(&path, e))?;
    let environment = builder
        .with_name("riveg-bench")
        .build()
        .map_err(|e| RuntimeError::Ort {
            context: format!("creating the environment from {}", path.display()),
            why: e.to_string(),
            hint: INSTALL_HINT.to_string(),
        })?;
    log::info!("ONNX Runtime loaded from {} ({source})", path.display());
    let runtime = OrtRuntime {
        environment,
        library_path: path,
        source,
    };
    // Cannot be set already: we hold INIT_LOCK and checked above.
    let _ = RUNTIME.set(runtime);
    RUNTIME.get().ok_or_else(|| RuntimeError::Other {
        what: "ONNX Runtime initialisation did not persist".into(),
        hint: "this is a bug in riveg-bench; please report it".into(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn load_error(path: &Path, error: ort::LoadDynamicError) -> RuntimeError {
    match error {
        ort::LoadDynamicError::BadVersion { .. } => RuntimeError::LibraryTooOld {
            path: path.to_path_buf(),
            why: error.to_string(),
        },
        other => RuntimeError::LibraryLoad {
            path: path.to_path_buf(),
            why: other.to_string(),
        },
    }
}

/// Which hardware a session should run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// CPU only.
    Cpu,
    /// CUDA or an error (needs the `onnxruntime-gpu` wheel and CUDA/cuDNN at run time).
    Cuda,
    /// CUDA when it loads, else CPU, with a log line saying which ran.
    #[default]
    Auto,
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "auto" => Ok(Device::Auto),
            other => Err(format!(
                "unknown device {other:?}: expected cpu, cuda or auto"
            )),
        }
    }
}

/// The execution provider a session actually got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cpu,
    Cuda,
}

impl Provider {
    /// ONNX Runtime's name for it.
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda => CudaExecutionProvider::NAME,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ort_name())
    }
}

/// Whether runs go through ONNX Runtime's I/O binding ([`tensor`](super::tensor) says how):
/// outputs bound to the memory where the next step wants them, so a tensor one session feeds to
/// another (SAM's image embedding, OFA's encoder states) stays in CUDA memory between runs
/// instead of going to the host after the first and back to the device for every later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoBinding {
    /// On for CUDA sessions, off for CPU ones (on the CPU every memory is host memory, so the
    /// plain run path already shares held tensors without copies). A CUDA session binds only
    /// the runs whose outputs stay on the device for the next session
    /// (`LoadedSession::run_feeding`: SAM's embedding, OFA's encoder states), the one place
    /// binding saves copies; its other runs take ONNX Runtime's plain path, so `auto` changes
    /// nothing else on a GPU.
    #[default]
    Auto,
    /// On whatever the provider (so the binding path is exercised on CPU too).
    On,
    /// Never: plain runs, outputs in host memory.
    Off,
}

impl IoBinding {
    /// Whether a session on `provider` runs through I/O binding.
    pub fn binds(self, provider: Provider) -> bool {
        match self {
            IoBinding::Auto => provider == Provider::Cuda,
            IoBinding::On => true,
            IoBinding::Off => false,
        }
    }
}

impl std::str::FromStr for IoBinding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(IoBinding::Auto),
            "on" => Ok(IoBinding::On),
            "off" => Ok(IoBinding::Off),
            other => Err(format!(
                "unknown io_binding {other:?}: expected auto, on or off"
            )),
        }
    }
}

/// How to build sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub device: Device,
    /// Intra-op threads; `None` lets ONNX Runtime choose (one per core).
    pub intra_threads: Option<usize>,
    /// Whether intra-op worker threads spin while waiting for work; `None` keeps ONNX Runtime's
    /// default (on). Off by default here: a pipeline holds several sessions on few cores, and an
    /// idle pool spinning took 38 % of a BERT run's CPU (issue 15's measurement; Python onnxruntime
    /// with spinning off took 0.64x the time per tweet on this 2-core machine).
    pub intra_spinning: Option<bool>,
    /// CUDA device ordinal.
    pub cuda_device_id: i32,
    /// Whether runs go through I/O binding (default: on for CUDA sessions only).
    pub io_binding: IoBinding,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            device: Device::Auto,
            intra_threads: None,
            intra_spinning: Some(false),
            cuda_device_id: 0,
            io_binding: IoBinding::Auto,
        }
    }
}

impl SessionConfig {
    pub fn cpu() -> Self {
        SessionConfig {
            device: Device::Cpu,
            ..Default::default()
        }
    }
}

/// A session checked against its manifest entry, and the provider it runs on.
pub struct LoadedSession {
    pub(super) session: Session,
    pub provider: Provider,
    /// The model file (for error messages).
    pub path: PathBuf,
    /// The I/O binding setting it was built with ([`LoadedSession::binds`] for its provider).
    pub(super) io_binding: IoBinding,
    /// The CUDA device ordinal the session was built for (where device outputs are bound).
    pub(super) cuda_device_id: i32,
    /// Whether the "output not on the device" warning was logged (once per session).
    pub(super) warned_placement: bool,
}

impl LoadedSession {
    /// Whether this session's runs go through I/O binding.
    pub fn binds(&self) -> bool {
        self.io_binding.binds(self.provider)
    }

    /// Whether every run binds (`io_binding = "on"`), not only those feeding device memory.
    pub(super) fn binds_every_run(&self) -> bool {
        self.binds() && self.io_binding == IoBinding::On
    }
}

impl OrtRuntime {
    pub fn library_path(&self) -> &Path {
        &self.library_path
    }

    pub fn library_source(&self) -> &LibrarySource {
        &self.source
    }

    /// ONNX Runtime's build string (version, commit), for result metadata.
    pub fn build_info(&self) -> &'static str {
        ort::info()
    }

    /// Whether this ONNX Runtime build lists the CUDA execution provider (the CPU wheel does not).
    pub fn cuda_listed(&self) -> bool {
        CudaExecutionProvider::is_available().unwrap_or(false)
    }

    /// Builds a session for the manifest's model `role` (e.g. `main`, `encoder`) on
    /// `config.device` and checks its inputs and outputs against the manifest.
    pub fn load_session(
        &self,
        manifest: &ModelManifest,
        role: &str,
        config: &SessionConfig,
    ) -> Result<LoadedSession, RuntimeError> {
        let spec = manifest.model(role)?;
        let path = manifest.resolve(&spec.path);
        let (session, provider) = match config.device {
            Device::Cpu => (self.build(&path, config, false)?, Provider::Cpu),
            Device::Cuda => (self.build(&path, config, true)?, Provider::Cuda),
            Device::Auto => {
                if !self.cuda_listed() {
                    log::info!(
                        "{}: CUDA execution provider not in this ONNX Runtime build; running on CPU",
                        path.display()
                    );
                    (self.build(&path, config, false)?, Provider::Cpu)
                } else {
                    match self.build(&path, config, true) {
                        Ok(session) => (session, Provider::Cuda),
                        Err(e) => {
                            log::warn!(
                                "{}: CUDA did not load ({e}); falling back to CPU",
                                path.display()
                            );
                            (self.build(&path, config, false)?, Provider::Cpu)
                        }
                    }
                }
            }
        };
        let binds = config.io_binding.binds(provider);
        log::info!(
            "{}: running on {provider}{}",
            path.display(),
            if binds { " with I/O binding" } else { "" }
        );
        check_session(&session, spec, &path, &manifest.path)?;
        Ok(LoadedSession {
            session,
            provider,
            path,
            io_binding: config.io_binding,
            cuda_device_id: config.cuda_device_id,
            warned_placement: false,
        })
    }

    fn build(
        &self,
        path: &Path,
        config: &SessionConfig,
        cuda: bool,
    ) -> Result<Session, RuntimeError> {
        let ort_err = |context: &str, why: String| RuntimeError::Ort {
            context: format!("{context} for {}", path.display()),
            why,
            hint: "check that the file is a valid ONNX model for ONNX Runtime >= 1.24".into(),
        };
        let mut builder = Session::builder(&self.environment)
            .map_err(|e| ort_err("creating session options", e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| ort_err("setting the optimisation level", e.to_string()))?;
        if let Some(threads) = config.intra_threads {
            builder = builder
                .with_intra_threads(threads)
                .map_err(|e| ort_err("setting the thread count", e.to_string()))?;
        }
        if let Some(spinning) = config.intra_spinning {
            builder = builder
                .with_intra_op_spinning(spinning)
                .map_err(|e| ort_err("setting intra-op spinning", e.to_string()))?;
        }
        if cuda {
            CudaExecutionProvider::default()
                .with_device_id(config.cuda_device_id)
                .register(&mut builder)
                .map_err(|e| RuntimeError::CudaUnavailable {
                    model: path.to_path_buf(),
                    why: e.to_string(),
                })?;
        }
        builder.commit_from_file(path).map_err(|e| {
            if cuda {
                RuntimeError::CudaUnavailable {
                    model: path.to_path_buf(),
                    why: e.to_string(),
                }
            } else {
                ort_err("loading the model", e.to_string())
            }
        })
    }
}

/// Checks a session's inputs and outputs against the manifest: every manifest tensor exists with
/// its dtype and rank, fixed dims agree, and the model takes no input the manifest leaves out
/// (the stage would not feed it). Extra model outputs are allowed (SAM exports several).
pub fn check_session(
    session: &Session,
    spec: &ModelSpec,
    model: &Path,
    manifest: &Path,
) -> Result<(), RuntimeError> {
    let mismatch = |what: String| RuntimeError::ModelMismatch {
        model: model.to_path_buf(),
        manifest: manifest.to_path_buf(),
        what,
    };
    let names = |outlets: &[ort::value::Outlet]| {
        outlets
            .iter()
            .map(|o| o.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (kind, wanted, actual) in [
        ("input", &spec.inputs, session.inputs()),
        ("output", &spec.outputs, session.outputs()),
    ] {
        for tensor in wanted {
            let Some(outlet) = actual.iter().find(|o| o.name() == tensor.name) else {
                return Err(mismatch(format!(
                    "the manifest lists {kind} {:?} but the model's {kind}s are [{}]",
                    tensor.name,
                    names(actual)
                )));
            };
            let dtype = outlet.dtype();
            let (Some(ty), Some(shape)) = (dtype.tensor_type(), dtype.tensor_shape()) else {
                return Err(mismatch(format!(
                    "{kind} {:?} is not a tensor ({dtype:?})",
                    tensor.name
                )));
            };
            if ty != tensor.dtype.element_type() {
                return Err(mismatch(format!(
                    "{kind} {:?} has dtype {} in the model but {} in the manifest",
                    tensor.name,
                    super::manifest::DType::name_of(ty),
                    tensor.dtype
                )));
            }
            if shape.len() != tensor.shape.len() {
                return Err(mismatch(format!(
                    "{kind} {:?} has rank {} in the model ({:?}) but {} in the manifest ({})",
                    tensor.name,
                    shape.len(),
                    &shape[..],
                    tensor.shape.len(),
                    super::manifest::format_shape(&tensor.shape)
                )));
            }
            for (axis, (model_dim, dim)) in shape.iter().zip(&tensor.shape).enumerate() {
                if let Some(fixed) = dim.fixed() {
                    if *model_dim >= 0 && *model_dim != fixed {
                        return Err(mismatch(format!(
                            "{kind} {:?} axis {axis} is {model_dim} in the model but {fixed} in the manifest",
                            tensor.name
                        )));
                    }
                }
            }
        }
    }
    for outlet in session.inputs() {
        if !spec.inputs.iter().any(|t| t.name == outlet.name()) {
            return Err(mismatch(format!(
                "the model takes input {:?}, which the manifest does not list (listed: [{}])",
                outlet.name(),
                spec.inputs
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_path_is_an_error_not_a_fallthrough() {
        let err = resolve_library_path_with(
            Some(Path::new("/nonexistent/libonnxruntime.so.1.31.1")),
            None,
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/nonexistent/libonnxruntime.so.1.31.1"),
            "{err}"
        );
        assert!(err.contains("install-python-deps.sh"), "{err}");
    }

    #[test]
    fn env_var_missing_path_names_the_variable() {
        let err = resolve_library_path_with(None, Some("/nope/libonnxruntime.so".into()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(err.contains("/nope/libonnxruntime.so"), "{err}");
    }

    #[test]
    fn venv_glob_finds_the_versioned_library() {
        let dir = tempfile::tempdir().unwrap();
        let capi = dir
            .path()
            .join(".venv/lib/python3.12/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        let (path, source) =
            resolve_library_path_with(None, None, &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(path, capi.join("libonnxruntime.so.1.31.1"));
        assert_eq!(source, LibrarySource::Venv(dir.path().to_path_buf()));
    }

    #[test]
    fn nothing_found_lists_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_library_path_with(None, None, &[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(err.contains(".venv/lib/python3*"), "{err}");
        assert!(err.contains("bash scripts/install-python-deps.sh"), "{err}");
    }

    #[test]
    fn io_binding_auto_binds_cuda_sessions_only() {
        use IoBinding::*;
        assert!(Auto.binds(Provider::Cuda));
        assert!(!Auto.binds(Provider::Cpu));
        assert!(On.binds(Provider::Cpu) && On.binds(Provider::Cuda));
        assert!(!Off.binds(Provider::Cpu) && !Off.binds(Provider::Cuda));
        assert_eq!(SessionConfig::default().io_binding, Auto);
        assert_eq!("ON".parse::<IoBinding>().unwrap(), On);
        let err = "yes".parse::<IoBinding>().unwrap_err();
        assert!(err.contains("auto, on or off"), "{err}");
    }

    #[test]
    fn device_parses() {
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda);
        assert!("tpu".parse::<Device>().is_err());
    }
}
