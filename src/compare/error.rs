//! Errors of `compare` and of saved baselines: each says where (baseline, run directory, variant,
//! tweet id) and carries a hint. Exit code 2 (usage or input error) for all of them.

use crate::results::ResultsError;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("no baseline named {name:?} (looked in {dir})\n  hint: {hint}")]
    NoBaseline {
        name: String,
        dir: String,
        hint: String,
    },

    #[error("{dir}: the run is incomplete: results.json is missing (it is written when the first variant finishes, so the run was interrupted or is still running)\n  hint: re-run the suite (the stage cache makes finished work free: `riveg-bench run --suite {dir}/suite.toml`), or compare a finished run directory or a saved baseline")]
    IncompleteRun { dir: String },

    #[error("{what}: {source}\n  hint: {hint}")]
    Results {
        what: String,
        #[source]
        source: ResultsError,
        hint: String,
    },

    #[error("{path}: {why}\n  hint: {hint}")]
    Io {
        path: String,
        why: String,
        hint: String,
    },

    #[error("no variant named {name:?} in {side}; it has: {available}\n  hint: pick one with --variant NAME")]
    NoVariant {
        name: String,
        side: String,
        available: String,
    },

    #[error("{base} and {new} have no variant in common ({base}: {base_variants}; {new}: {new_variants})\n  hint: pick one with --variant NAME, or compare runs of the same suite")]
    NoCommonVariant {
        base: String,
        new: String,
        base_variants: String,
        new_variants: String,
    },

    #[error("variant {variant:?}: per-tweet counts cover different tweets ({detail})\n  hint: a paired test needs both runs scored on the same split; re-run one of them on the other's gold file")]
    TweetsDiffer { variant: String, detail: String },

    #[error("baseline name {name:?} is not usable as a directory name\n  hint: use letters, digits, '.', '_' or '-' (e.g. --save-baseline main-2026-11)")]
    BadName { name: String },

    #[error("gated metric {key:?} is not TASK.METRIC\n  hint: e.g. gmner.f1, mner.precision, eeg.recall (tasks: mner, eeg, gmner, fmnerg, smner; metrics: precision, recall, f1)")]
    BadGate { key: String },

    #[error("{what}\n  hint: {hint}")]
    Invalid { what: String, hint: String },

    #[error(transparent)]
    RunDir(#[from] crate::results::RunDirError),
}
