//! The run plan: what the user asked for ([`RunRequest`], filled from the CLI or a test) resolved
//! once into a validated [`RunPlan`] that the rest of the run trusts (ripgrep's low-level args →
//! high-level args). Every choice is checked here: the suite, the variants, the shard, the
//! thresholds, the output folder (a fresh, unique run id unless `--out` names one).

use std::path::{Path, PathBuf};

use super::error::RunError;
use super::meta::timestamp;
use super::shard::ShardSpec;
use super::suite::Suite;
use crate::metrics::{EvalOptions, Protocol};
use crate::pipeline::backends::BackendConfig;
use crate::pipeline::{DevicePreference, IoBindingPreference, OnError};
use crate::report::ReportOptions;
use crate::results::RunDir;

/// What the user asked for, before validation.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// A suite file; `None`: the built-in default suite.
    pub suite: Option<PathBuf>,
    /// Run only these variants (empty: all).
    pub variants: Vec<String>,
    /// Run directory; `None`: `reports/<run id>`.
    pub out_dir: Option<PathBuf>,
    pub shard: Option<ShardSpec>,
    pub device: DevicePreference,
    /// Overrides the suite's `settings.on_error`.
    pub on_error: Option<OnError>,
    /// Overrides the suite's cache folder; `None` with no suite setting → `.riveg-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Keep the stage cache in memory only.
    pub no_disk_cache: bool,
    /// An explicit ONNX Runtime library.
    pub ort_library: Option<PathBuf>,
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// criterion's output folder for the report's benchmark figure.
    pub criterion_dir: Option<PathBuf>,
    /// Overrides the suite's `[runtime] threads`.
    pub threads: Option<usize>,
    /// Overrides the suite's `[runtime] spinning`.
    pub spinning: Option<bool>,
    /// Overrides the suite's `[runtime] batch` (tweets per tagger batch).
    pub batch: Option<usize>,
    /// Overrides the suite's `[runtime] image_batch` (images per VE/VG run).
    pub image_batch: Option<usize>,
    /// Overrides the suite's `[runtime] io_binding`.
    pub io_binding: Option<IoBindingPreference>,
    /// Overrides the suite's `settings.compat` (recorded in the plan's suite.toml, so `merge`
    /// scores the same way).
    pub compat: Option<crate::metrics::Compat>,
}

/// A validated plan: the suite with only the variants to run, and every choice resolved.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub suite: Suite,
    pub run_id: String,
    pub run_dir: RunDir,
    pub shard: Option<ShardSpec>,
    pub device: DevicePreference,
    pub on_error: OnError,
    /// The on-disk stage cache folder; `None`: memory only.
    pub cache_dir: Option<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub progress: bool,
    /// Thresholds for scoring (the protocol is set per call).
    pub eval: EvalOptions,
    pub report: ReportOptions,
    /// Unix seconds at planning time (the run's start).
    pub started_unix: u64,
}

impl RunPlan {
    /// Loads the suite the request names and resolves the plan.
    pub fn resolve(req: RunRequest) -> Result<RunPlan, RunError> {
        let suite = match &req.suite {
            Some(p) => Suite::load(p)?,
            None => Suite::default_suite()?,
        };
        RunPlan::for_suite(suite, req)
    }

    /// Resolves the plan for an already loaded suite (`req.suite` is ignored).
    pub fn for_suite(mut suite: Suite, req: RunRequest) -> Result<RunPlan, RunError> {
        if let Some(t) = req.threads {
            if t == 0 {
                return Err(RunError::Plan {
                    what: "--threads 0".into(),
                    hint: "give at least one thread, or leave it out (one per core)".into(),
                });
            }
            suite.file.runtime.threads = Some(t);
        }
        if let Some(s) = req.spinning {
            suite.file.runtime.spinning = Some(s);
        }
        if let Some(b) = req.io_binding {
            suite.file.runtime.io_binding = Some(b);
        }
        if let Some(b) = req.batch {
            if b == 0 {
                return Err(RunError::Plan {
                    what: "--batch 0".into(),
                    hint: "give at least one tweet per batch (1: one tagger call per tweet), or leave it out (32)".into(),
                });
            }
            suite.file.runtime.batch = Some(b);
        }
        if let Some(b) = req.image_batch {
            if b == 0 {
                return Err(RunError::Plan {
                    what: "--image-batch 0".into(),
                    hint: "give at least one image per VE/VG run (1: one run per tweet), or leave it out (8)".into(),
                });
            }
            suite.file.runtime.image_batch = Some(b);
        }
        if !req.variants.is_empty() {
            let known: Vec<&str> = suite
                .file
                .variants
                .iter()
                .map(|v| v.name.as_str())
                .collect();
            if let Some(bad) = req.variants.iter().find(|n| !known.contains(&n.as_str())) {
                return Err(RunError::Plan {
                    what: format!("no variant named {bad:?} in suite {:?}", suite.file.name),
                    hint: format!("it has: {}", known.join(", ")),
                });
            }
            suite
                .retain_variants(&req.variants)
                .map_err(|what| RunError::Plan {
                    what,
                    hint: "pick variants listed in some [[dataset]]'s `variants`".into(),
                })?;
        }
        if req.compat.is_some() {
            suite.file.settings.compat = req.compat;
        }
        let eval = eval_options(&suite.file.settings);
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let cache_dir = (!req.no_disk_cache).then(|| {
            req.cache_dir
                .clone()
                .or_else(|| suite.file.settings.cache_dir.clone())
                .unwrap_or_else(|| PathBuf::from(".riveg-cache"))
        });
        let (run_id, run_dir) = match &req.out_dir {
            Some(dir) => (run_id_base(&suite, req.shard, started_unix), dir.clone()),
            None => fresh_run_dir(Path::new("reports"), &suite, req.shard, started_unix)?,
        };
        Ok(RunPlan {
            on_error: req.on_error.unwrap_or(suite.file.settings.on_error),
            suite,
            run_id,
            run_dir: RunDir::new(run_dir),
            shard: req.shard,
            device: req.device,
            cache_dir,
            ort_library: req.ort_library,
            progress: req.progress,
            eval,
            report: ReportOptions {
                criterion_dir: req.criterion_dir,
                ..ReportOptions::default()
            },
            started_unix,
        })
    }

    /// What the default backend factory builds real stages from.
    pub fn backend_config(&self) -> BackendConfig {
        let f = &self.suite.file;
        BackendConfig {
            device: self.device,
            ort_library: self.ort_library.clone(),
            cache_dir: self.cache_dir.clone(),
            models: f
                .models
                .iter()
                .map(|(s, p)| (*s, self.suite.resolve(p)))
                .collect(),
            llm: f.llm.clone(),
            mllm: f.mllm.clone(),
            on_error: self.on_error,
            warmup: f.settings.warmup,
            base_dir: self.suite.base_dir.clone(),
            runtime: f.runtime,
        }
    }

    /// The suite actually run, as TOML (saved as the run directory's `suite.toml`): the suite
    /// with only the variants of this plan, so `merge` and later readers see what ran.
    pub fn plan_toml(&self) -> Result<String, RunError> {
        let body = toml::to_string(&self.suite.file).map_err(|e| RunError::Plan {
            what: format!("cannot serialise the plan: {e}"),
            hint: "this is a bug in riveg-bench; please report it".into(),
        })?;
        let mut text = format!(
            "# The plan riveg-bench ran: suite {:?} from {}, {} variant(s){}.\n# Relative paths resolve against {}.\n",
            self.suite.file.name,
            self.suite.origin,
            self.suite.file.variants.len(),
            self.shard
                .map(|s| format!(", shard {s}"))
                .unwrap_or_default(),
            self.suite.base_dir.display()
        );
        text.push_str(&body);
        Ok(text)
    }
}

/// The scoring options of a suite's settings (run and merge score alike; the protocol is set
/// per call by [`super::score`]).
pub fn eval_options(settings: &super::suite::Settings) -> EvalOptions {
    EvalOptions {
        protocol: Protocol::Riveg,
        iou_threshold: settings.iou,
        mask_iou_threshold: settings.mask_iou,
        compat: settings.compat,
    }
}

/// `<suite>-<YYYYmmdd-HHMMSS>[-shardKofN]`.
fn run_id_base(suite: &Suite, shard: Option<ShardSpec>, started: u64) -> String {
    let mut id = format!("{}-{}", suite.file.name, timestamp(started));
    if let Some(s) = shard {
        id.push_str(&format!("-shard{}of{}", s.k, s.n));
    }
    id
}

/// A new run directory under `root` whose name no other run has: the base id, or the base id
/// with `-2`, `-3`, ... when a run started in the same second already took it. The folder is
/// created here (atomically), so two runs started at once never share it.
fn fresh_run_dir(
    root: &Path,
    suite: &Suite,
    shard: Option<ShardSpec>,
    started: u64,
) -> Result<(String, PathBuf), RunError> {
    let base = run_id_base(suite, shard, started);
    std::fs::create_dir_all(root).map_err(|e| RunError::Plan {
        what: format!("cannot create {}: {e}", root.display()),
        hint: "check that the current folder is writable, or pass --out DIR".into(),
    })?;
    for n in 1..10_000 {
        let id = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = root.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(RunError::Plan {
                    what: format!("cannot create {}: {e}", dir.display()),
                    hint: "check that reports/ is writable, or pass --out DIR".into(),
                })
            }
        }
    }
    Err(RunError::Plan {
        what: format!("every run id {base}-N under {} is taken", root.display()),
        hint: "clean up reports/, or pass --out DIR".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_different_folders() {
        let root = tempfile::tempdir().unwrap();
        let suite = Suite::default_suite().unwrap();
        let (a, da) = fresh_run_dir(root.path(), &suite, None, 1_795_000_000).unwrap();
        let (b, db) = fresh_run_dir(root.path(), &suite, None, 1_795_000_000).unwrap();
        assert_eq!(a, "default-20261118-110640");
        assert_eq!(b, "default-20261118-110640-2");
        assert_ne!(da, db);
        assert!(da.is_dir() && db.is_dir());
    }

    #[test]
    fn unknown_variant_is_a_plan_error_listing_the_known_ones() {
        let req = RunRequest {
            variants: vec!["nope".into()],
            out_dir: Some(PathBuf::from("/nonexistent")),
            ..RunRequest::default()
        };
        let err = RunPlan::for_suite(Suite::default_suite().unwrap(), req)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no variant named \"nope\""), "{err}");
        assert!(err.contains("hint: it has: "), "{err}");
    }

    #[test]
    fn the_saved_plan_holds_only_the_variants_run_and_parses_back() {
        let suite = Suite::default_suite().unwrap();
        let first = suite.file.variants[0].name.clone();
        let req = RunRequest {
            variants: vec![first.clone()],
            out_dir: Some(PathBuf::from("/nonexistent")),
            ..RunRequest::default()
        };
        let plan = RunPlan::for_suite(suite, req).unwrap();
        let text = plan.plan_toml().unwrap();
        let back = Suite::parse(&text, "plan".into(), PathBuf::new()).unwrap();
        assert_eq!(back.file.variants.len(), 1);
        assert_eq!(back.file.variants[0].name, first);
        assert_eq!(back.file.settings, plan.suite.file.settings);
    }

    #[test]
    fn thread_settings_override_the_suite_and_reach_the_backends() {
        let req = RunRequest {
            out_dir: Some(PathBuf::from("/nonexistent")),
            threads: Some(1),
            spinning: Some(true),
            batch: Some(7),
            io_binding: Some(IoBindingPreference::On),
            ..RunRequest::default()
        };
        let plan = RunPlan::for_suite(Suite::default_suite().unwrap(), req).unwrap();
        let rt = plan.backend_config().runtime;
        assert_eq!((rt.threads, rt.spinning), (Some(1), Some(true)));
        assert_eq!(rt.batch(), 7);
        // Unset image_batch: the default 8, capped by batch.
        assert_eq!(rt.image_batch(), 7);
        assert_eq!(rt.io_binding, Some(IoBindingPreference::On));
        let toml = plan.plan_toml().unwrap();
        assert!(toml.contains("[runtime]"), "{toml}");
        assert!(toml.contains("batch = 7"), "{toml}");
        assert!(toml.contains("io_binding = \"on\""), "{toml}");
        let zero_batch = RunRequest {
            out_dir: Some(PathBuf::from("/nonexistent")),
            batch: Some(0),
            ..RunRequest::default()
        };
        let err = RunPlan::for_suite(Suite::default_suite().unwrap(), zero_batch)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--batch 0"), "{err}");
        let images = RunRequest {
            out_dir: Some(PathBuf::from("/nonexistent")),
            image_batch: Some(3),
            ..RunRequest::default()
        };
        let plan = RunPlan::for_suite(Suite::default_suite().unwrap(), images).unwrap();
        let rt = plan.backend_config().runtime;
        assert_eq!((rt.batch(), rt.image_batch()), (32, 3));
        assert!(plan.plan_toml().unwrap().contains("image_batch = 3"));
        let zero_images = RunRequest {
            out_dir: Some(PathBuf::from("/nonexistent")),
            image_batch: Some(0),
            ..RunRequest::default()
        };
        let err = RunPlan::for_suite(Suite::default_suite().unwrap(), zero_images)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--image-batch 0"), "{err}");
        let zero = RunRequest {
            out_dir: Some(PathBuf::from("/nonexistent")),
            threads: Some(0),
            ..RunRequest::default()
        };
        let err = RunPlan::for_suite(Suite::default_suite().unwrap(), zero)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--threads 0"), "{err}");
    }
}
