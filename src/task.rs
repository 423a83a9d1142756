//! The scored tasks, once: the order, keys and labels that tables, figures, `compare` and human
//! output share, so a new task is one variant here (and one field of the metrics report).
//! Ground floor: every module may import it; it imports nothing of the crate.

use serde::{Deserialize, Serialize};

/// A task scored by [`crate::metrics`] (see PROTOCOLS.md for each definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Entity text + coarse type.
    Mner,
    /// Entity text + groundability (+ box IoU when groundable): entity extraction and grounding.
    Eeg,
    /// MNER + EEG: text, type, groundability and box.
    Gmner,
    /// MNER at the fine-type level (FMNERG data).
    Fmner,
    /// GMNER with fine types.
    Fmnerg,
    /// FMNERG scored on coarse types.
    FmnergCoarse,
    /// GMNER with masks instead of boxes (mask IoU).
    Smner,
}

impl Task {
    /// Every task, in the order reports list them.
    pub const ALL: [Task; 7] = [
        Task::Mner,
        Task::Eeg,
        Task::Gmner,
        Task::Fmner,
        Task::Fmnerg,
        Task::FmnergCoarse,
        Task::Smner,
    ];

    /// The tasks of compact views (ablation figure, run table, compare gates): the three GMNER
    /// tasks always, FMNERG and SMNER when scored.
    pub const HEADLINE: [Task; 5] = [
        Task::Mner,
        Task::Eeg,
        Task::Gmner,
        Task::Fmnerg,
        Task::Smner,
    ];

    /// The key in JSON and gate names (`mner`, `fmnerg_coarse`).
    pub fn key(self) -> &'static str {
        match self {
            Task::Mner => "mner",
            Task::Eeg => "eeg",
            Task::Gmner => "gmner",
            Task::Fmner => "fmner",
            Task::Fmnerg => "fmnerg",
            Task::FmnergCoarse => "fmnerg_coarse",
            Task::Smner => "smner",
        }
    }

    /// The label people read (`MNER`, `FMNERG (coarse)`).
    pub fn label(self) -> &'static str {
        match self {
            Task::Mner => "MNER",
            Task::Eeg => "EEG",
            Task::Gmner => "GMNER",
            Task::Fmner => "FMNER (fine)",
            Task::Fmnerg => "FMNERG (fine)",
            Task::FmnergCoarse => "FMNERG (coarse)",
            Task::Smner => "SMNER",
        }
    }

    /// The short label of figures and narrow tables (`FMNERG` for the fine-type task).
    pub fn short_label(self) -> &'static str {
        match self {
            Task::Fmner => "FMNER",
            Task::Fmnerg => "FMNERG",
            Task::FmnergCoarse => "FMNERG-c",
            other => other.label(),
        }
    }

    /// Whether every scored report has it (MNER, EEG, GMNER); the others depend on the data.
    pub fn always_scored(self) -> bool {
        matches!(self, Task::Mner | Task::Eeg | Task::Gmner)
    }

    /// Parses a key or label, case-insensitively (`gmner`, `GMNER`, `fmnerg_coarse`).
    pub fn parse(s: &str) -> Option<Task> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Task::ALL.into_iter().find(|t| t.key() == s)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_match_serde() {
        for t in Task::ALL {
            assert_eq!(Task::parse(t.key()), Some(t));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.key())
            );
        }
        assert_eq!(Task::parse("FMNERG-coarse"), Some(Task::FmnergCoarse));
        assert_eq!(Task::parse("ner"), None);
    }
}
