//! One side of a comparison: a run directory, a saved baseline, or a published table row. Loading
//! reads `results.json` and `per_tweet/<variant>.json`; this module must not compare anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::baselines::{find_published, published_slugs, PublishedRow, PublishedTable};
use super::error::CompareError;
use super::saved;
use crate::results::{RunDir, RunResults, VariantPerTweet};

/// Where a run side came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RunOrigin {
    /// A run directory (`reports/<run-id>`).
    Run { dir: PathBuf },
    /// A baseline saved with `--save-baseline NAME`.
    Saved { name: String, dir: PathBuf },
}

/// A run's results and the per-tweet counts of each variant that has them.
#[derive(Debug, Clone)]
pub struct RunSide {
    pub origin: RunOrigin,
    pub results: RunResults,
    /// Variant name → per-tweet counts (variants without a `per_tweet/<variant>.json` are absent).
    pub per_tweet: BTreeMap<String, VariantPerTweet>,
}

/// A published table row (numbers only: no per-tweet counts, no significance test).
#[derive(Debug, Clone, Copy)]
pub struct PublishedSide {
    pub table: &'static PublishedTable,
    pub row: &'static PublishedRow,
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub enum Side {
    Run(Box<RunSide>),
    Published(PublishedSide),
}

impl Side {
    /// A run held in memory (e.g. the run `run --baseline` just made), without re-reading it.
    pub fn from_results(
        dir: &Path,
        results: RunResults,
        per_tweet: BTreeMap<String, VariantPerTweet>,
    ) -> Side {
        Side::Run(Box::new(RunSide {
            origin: RunOrigin::Run {
                dir: dir.to_path_buf(),
            },
            results,
            per_tweet,
        }))
    }

    /// Loads `results.json` and every `per_tweet/<variant>.json` of a run directory.
    pub fn from_run_dir(dir: &Path) -> Result<Side, CompareError> {
        let results = load_results(dir, &format!("run {}", dir.display()))?;
        let per_tweet = load_per_tweet(dir, &results)?;
        Ok(Side::Run(Box::new(RunSide {
            origin: RunOrigin::Run {
                dir: dir.to_path_buf(),
            },
            results,
            per_tweet,
        })))
    }

    /// A published row by slug (`riveg-roberta-dagger`, `h-index`, ...).
    pub fn published(slug: &str) -> Result<Side, CompareError> {
        let slug = slug.strip_prefix("published:").unwrap_or(slug);
        match find_published(slug) {
            Some((table, row)) => Ok(Side::Published(PublishedSide { table, row })),
            None => Err(CompareError::NoBaseline {
                name: format!("published:{slug}"),
                dir: "the compiled-in tables of baselines/published".into(),
                hint: format!("published baselines: {}", published_slugs().join(", ")),
            }),
        }
    }

    /// A baseline saved under the default directory (see [`saved::saved_root`]).
    pub fn saved(name: &str) -> Result<Side, CompareError> {
        saved::load_saved(name)
    }

    /// Resolves what the user typed after `--base` / `--new`:
    /// `published:SLUG` → a published row; an existing directory → a run directory; otherwise a
    /// saved baseline by name, then a published row by bare slug.
    pub fn resolve(spec: &str) -> Result<Side, CompareError> {
        Side::resolve_in(&saved::saved_root(), spec)
    }

    /// [`Side::resolve`] with saved baselines under `saved_root`.
    pub fn resolve_in(saved_root: &Path, spec: &str) -> Result<Side, CompareError> {
        if let Some(slug) = spec.strip_prefix("published:") {
            return Side::published(slug);
        }
        let p = Path::new(spec);
        if p.is_dir() && (p.join("results.json").is_file() || p.components().count() > 1) {
            // A directory path: a run directory (a missing results.json is reported as such).
            return Side::from_run_dir(p);
        }
        match saved::load_saved_in(saved_root, spec) {
            Ok(s) => Ok(s),
            Err(CompareError::NoBaseline { name, dir, .. }) => {
                if find_published(spec).is_some() {
                    return Side::published(spec);
                }
                Err(CompareError::NoBaseline {
                    name,
                    dir,
                    hint: format!(
                        "save one with --save-baseline {spec}, pass a run directory (reports/<run-id>), or a published baseline: published:{}",
                        published_slugs().join(", published:")
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A short human label: `run reports/x`, `baseline main`, `published riveg-roberta-dagger`.
    pub fn label(&self) -> String {
        match self {
            Side::Run(r) => match &r.origin {
                RunOrigin::Run { dir } => format!("run {}", dir.display()),
                RunOrigin::Saved { name, .. } => format!("baseline {name}"),
            },
            Side::Published(p) => format!("published {}", p.row.slug),
        }
    }

    /// Variant names (a published side has one pseudo-variant, its slug).
    pub fn variant_names(&self) -> Vec<String> {
        match self {
            // Entry keys: the variant name, or `<dataset>/<variant>` in a multi-dataset run.
            Side::Run(r) => r.results.variants.iter().map(|v| v.key()).collect(),
            Side::Published(p) => vec![p.row.slug.clone()],
        }
    }
}

pub(crate) fn load_results(dir: &Path, what: &str) -> Result<RunResults, CompareError> {
    RunResults::load(dir).map_err(|e| CompareError::Results {
        what: what.to_string(),
        source: e,
        hint: "a run directory holds results.json (written by `riveg-bench run`)".into(),
    })
}

/// `per_tweet/<variant>.json` of every variant: a missing file means "no paired test" (a note
/// later); an unreadable one is an error (the [`RunDir`] policy).
pub(crate) fn load_per_tweet(
    dir: &Path,
    results: &RunResults,
) -> Result<BTreeMap<String, VariantPerTweet>, CompareError> {
    let run = RunDir::open(dir);
    let mut out = BTreeMap::new();
    for v in &results.variants {
        if let Some(pt) = run.load_per_tweet(&v.key())? {
            out.insert(v.key(), pt);
        }
    }
    Ok(out)
}
