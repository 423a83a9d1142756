//! `--compat NAME`: published scorers reproduced with their quirks, as named matching rules.
//!
//! Each mode changes only how one tweet's gold and predicted entities are paired and counted;
//! keys, IoU and P/R/F1 are shared with the normal protocols (matching.rs, prf.rs). The counts
//! of every mode were checked against the published Python code run on the shared data
//! (tests/py/published_scorers.py, tests/it/compat.rs). What this module must not do: read
//! files, or change what the default protocols compute.
//!
//! - `riveg-initial`: RiVEG `statistic/statistic.py` as first released (commits 37f3057 to
//!   7b98aa6, 2024-01-07..2024-03-08): the loop over gold lines never removes a matched line,
//!   so a prediction is right when *any* gold entity matches, and duplicated predictions can all
//!   match one gold entity. The 2024-03-10 fix (bf5b9ee, 43f7c70) added `label.remove(gl)` and
//!   `break`, which is what the `riveg` protocol does.
//! - `h-index`: NUSTM/GMNER `model/metrics.py` (`Seq2SeqSpanMetric.evaluate`,
//!   `_compute_tp_fn_fp`): predictions and gold are dicts keyed by token span, so two entities of
//!   one span collapse into the last one (its type and region), on both sides; a prediction is
//!   right when its span is a gold key with the same type and an overlapping region.
//! - `fmnerg`: NUSTM/FMNERG `eval_utils.py` (`extract_spans_para_quad`,
//!   `compute_f1_scores_quad`) and `more_eval.py`: per tweet, dicts keyed by the string
//!   `"entity fine_type True|False"` (coarse: `"entity coarse_type True|False"`), so duplicate
//!   entities collapse into the last one; a prediction is right when its key is a gold key and
//!   `'False' in key` or its region is among the gold entity's (a substring test on the whole
//!   key). FMNER drops the flag from the key (`eval_ouput_file_FMNER`); EEG
//!   (`elaluate_EEG`) compares each predicted key with every gold key of the same entity string
//!   and flag, gold never used up.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::matching::{
    grounding_ok, same_key, AlignedTweet, Grounding, Protocol, TaskSpec, TypeKey,
};
use crate::data::model::Entity;

/// A published scorer reproduced with its quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Compat {
    /// RiVEG `statistic.py` before its 2024-03-10 fix: gold entities are never used up.
    RivegInitial,
    /// NUSTM/GMNER (H-Index) metric: entities keyed by span in a dict.
    HIndex,
    /// NUSTM/FMNERG scorer: entities keyed by `entity type groundable` in a dict.
    Fmnerg,
}

/// A named departure of a published scorer from the default protocols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quirk {
    pub name: String,
    pub description: String,
}

/// What `eval --compat` adds to a report: which scorer, and each quirk applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatInfo {
    pub name: String,
    /// The published code reproduced (repository, file, version).
    pub scorer: String,
    pub quirks: Vec<Quirk>,
    /// Which parts of the report follow the published scorer.
    pub scope: String,
}

/// `Compat` names that parse, for error hints.
pub const COMPAT_NAMES: &[&str] = &["riveg-initial", "h-index", "fmnerg"];

/// An unknown `--compat` / suite `compat` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compat mode {given:?}\n  hint: choose one of {}", COMPAT_NAMES.join(", "))]
pub struct UnknownCompat {
    pub given: String,
}

impl FromStr for Compat {
    type Err = UnknownCompat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "riveg-initial" => Ok(Compat::RivegInitial),
            "h-index" => Ok(Compat::HIndex),
            "fmnerg" => Ok(Compat::Fmnerg),
            other => Err(UnknownCompat {
                given: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Compat {
    pub const ALL: [Compat; 3] = [Compat::RivegInitial, Compat::HIndex, Compat::Fmnerg];

    pub fn name(self) -> &'static str {
        match self {
            Compat::RivegInitial => "riveg-initial",
            Compat::HIndex => "h-index",
            Compat::Fmnerg => "fmnerg",
        }
    }

    /// The protocol whose entity key (entity string, or token span) the scorer uses.
    pub fn protocol(self) -> Protocol {
        match self {
            Compat::RivegInitial | Compat::Fmnerg => Protocol::Riveg,
            Compat::HIndex => Protocol::Span,
        }
    }

    /// The published code this mode reproduces.
    pub fn scorer(self) -> &'static str {
        match self {
            Compat::RivegInitial => {
                "JinYuanLi0012/RiVEG statistic/statistic.py, commits 37f3057..7b98aa6 (2024-01-07..2024-03-08, before the 2024-03-10 fix)"
            }
            Compat::HIndex => {
                "NUSTM/GMNER model/metrics.py (Seq2SeqSpanMetric.evaluate, _compute_tp_fn_fp)"
            }
            Compat::Fmnerg => {
                "NUSTM/FMNERG eval_utils.py (extract_spans_para_quad, compute_f1_scores_quad) and more_eval.py (eval_ouput_file_FMNER, elaluate_EEG)"
            }
        }
    }

    /// Every quirk this mode applies, named and described, for the report.
    pub fn quirks(self) -> Vec<Quirk> {
        let q = |name: &str, description: &str| Quirk {
            name: name.to_string(),
            description: description.to_string(),
        };
        match self {
            Compat::RivegInitial => vec![
                q(
                    "gold-not-used-up",
                    "a matched gold entity stays available: a prediction is right when any gold entity of its image matches, so duplicated predictions can match one gold entity twice",
                ),
            ],
            Compat::HIndex => vec![
                q(
                    "span-dict-collapse",
                    "predictions and gold are dicts keyed by token span: two entities of one span collapse into the last one (its type and region), on both sides, and count once",
                ),
                q(
                    "type-is-a-value",
                    "the type is not part of the key: a span predicted twice with two types keeps only the last type",
                ),
                q(
                    "regions-are-predicted-boxes",
                    "H-Index picks one of a fixed set of detector boxes (right when that candidate has IoU > 0.5 with a gold box); here the predicted box itself is compared with the gold boxes at the IoU threshold",
                ),
                q(
                    "fastnlp-epsilon",
                    "fastNLP's _compute_f_pre_rec adds 1e-13 to each denominator and the metric rounds to two decimals; scores here are the exact fractions of the same counts",
                ),
            ],
            Compat::Fmnerg => vec![
                q(
                    "key-dict-collapse",
                    "entities are dict keys \"entity type True|False\" per tweet (fine type for FMNERG, coarse for the coarse score): duplicate gold or predicted entities collapse into the last one and count once",
                ),
                q(
                    "false-substring",
                    "a key matches without a box check when the string 'False' occurs anywhere in it (the flag, or the entity text)",
                ),
                q(
                    "fmner-key-without-flag",
                    "FMNER (more_eval.eval_ouput_file_FMNER) keys by \"entity fine_type\": the groundability flag is dropped before collapsing",
                ),
                q(
                    "eeg-gold-not-used-up",
                    "EEG (more_eval.elaluate_EEG) pairs each collapsed predicted key with the first gold key of the same entity string and flag; gold keys are never used up",
                ),
                q(
                    "regions-are-predicted-boxes",
                    "FMNERG picks one of a fixed set of detector boxes; here the predicted box itself is compared with the gold boxes at the IoU threshold",
                ),
                q(
                    "logged-counts-not-reproduced",
                    "main.py logs P/R from compute_f1_scores_quad, which lowers the gold count (not the predicted count) for each tweet without a prediction, and more_eval prints P and R under swapped labels; this mode reports the counts of the keying above, correctly labelled (see docs/COMPAT.md)",
                ),
            ],
        }
    }

    /// The report's description of this mode.
    pub fn info(self) -> CompatInfo {
        CompatInfo {
            name: self.name().to_string(),
            scorer: self.scorer().to_string(),
            quirks: self.quirks(),
            scope: format!(
                "task scores and per-tweet counts follow the published scorer; per-type, groundability, error-source and stage tables use the {} protocol (the published scorer has none)",
                self.protocol().name()
            ),
        }
    }
}

impl CompatInfo {
    /// Lines for the human report: the scorer, each quirk, and the scope.
    pub fn render_human(&self) -> String {
        let mut out = format!("compat: {} ({})\n", self.name, self.scorer);
        for q in &self.quirks {
            out.push_str(&format!("  quirk {}: {}\n", q.name, q.description));
        }
        out.push_str(&format!("  {}\n", self.scope));
        out
    }
}

/// One tweet scored for one task under a compat mode.
pub struct TweetScore {
    /// `matches[i]`: the gold index that prediction `i` matched (None also for a prediction
    /// that collapsed into a later one).
    pub matches: Vec<Option<usize>>,
    /// Predictions that count (after collapsing).
    pub predicted: usize,
    /// Gold entities that count (after collapsing).
    pub gold: usize,
}

/// Scores one tweet for one task the way `compat`'s published scorer does.
pub fn score_tweet(compat: Compat, spec: TaskSpec, t: &AlignedTweet<'_>) -> TweetScore {
    match compat {
        Compat::RivegInitial => {
            let matches = t
                .pred
                .iter()
                .map(|p| {
                    t.gold.iter().position(|g| {
                        same_key(Protocol::Riveg, spec.types, g, p)
                            && grounding_ok(spec.grounding, g, p)
                    })
                })
                .collect();
            TweetScore {
                matches,
                predicted: t.pred.len(),
                gold: t.gold.len(),
            }
        }
        Compat::HIndex => {
            // The dict key is the span; type and region are the value.
            let key = |e: &Entity| (e.start, e.end);
            let gold_kept = last_per_key(&t.gold, key);
            let pred_kept = last_per_key(&t.pred, key);
            let gold_index: HashMap<_, usize> =
                gold_kept.iter().map(|&gi| (key(t.gold[gi]), gi)).collect();
            let mut matches = vec![None; t.pred.len()];
            for &pi in &pred_kept {
                let p = t.pred[pi];
                if let Some(&gi) = gold_index.get(&key(p)) {
                    let g = t.gold[gi];
                    if type_equal(spec.types, g, p) && grounding_ok(spec.grounding, g, p) {
                        matches[pi] = Some(gi);
                    }
                }
            }
            TweetScore {
                matches,
                predicted: pred_kept.len(),
                gold: gold_kept.len(),
            }
        }
        Compat::Fmnerg => score_fmnerg(spec, t),
    }
}

fn type_equal(types: TypeKey, g: &Entity, p: &Entity) -> bool {
    match types {
        TypeKey::None => true,
        TypeKey::Coarse => g.entity_type == p.entity_type,
        TypeKey::Fine => g.fine_type == p.fine_type,
    }
}

/// Indices of the last entity of each key, in order of the key's first occurrence (a Python
/// dict assignment overwrites the value and keeps the key's place).
fn last_per_key<K: std::hash::Hash + Eq>(
    entities: &[&Entity],
    key: impl Fn(&Entity) -> K,
) -> Vec<usize> {
    let mut slot: HashMap<K, usize> = HashMap::new();
    let mut kept: Vec<usize> = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        match slot.entry(key(e)) {
            std::collections::hash_map::Entry::Occupied(o) => kept[*o.get()] = i,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(kept.len());
                kept.push(i);
            }
        }
    }
    kept
}

/// The FMNERG scorer's type word: fine for fine tasks, coarse for coarse ones; EEG uses the
/// fine dicts (more_eval reads the `fine GT/Pred` lines), coarse when there is no fine type.
fn fmnerg_type(types: TypeKey, e: &Entity) -> &str {
    match types {
        TypeKey::Coarse => &e.entity_type,
        TypeKey::Fine | TypeKey::None => e.fine_type.as_deref().unwrap_or(&e.entity_type),
    }
}

/// `str(entity) + ' ' + str(label) + ' ' + str(in_the_image)`, the flag left out for FMNER.
fn fmnerg_key(spec: TaskSpec, e: &Entity) -> String {
    let ty = fmnerg_type(spec.types, e);
    match spec.grounding {
        Grounding::Ignore => format!("{} {}", e.text, ty),
        _ => format!(
            "{} {} {}",
            e.text,
            ty,
            if e.groundable { "True" } else { "False" }
        ),
    }
}

fn score_fmnerg(spec: TaskSpec, t: &AlignedTweet<'_>) -> TweetScore {
    let gold_kept = last_per_key(&t.gold, |e| fmnerg_key(spec, e));
    let pred_kept = last_per_key(&t.pred, |e| fmnerg_key(spec, e));
    let mut matches = vec![None; t.pred.len()];
    if spec.types == TypeKey::None && spec.grounding != Grounding::Ignore {
        // elaluate_EEG: `entity == gt_entity and appear in gt_key`, then no box needed for
        // 'False', else the predicted region must be one of the gold key's; first match wins.
        for &pi in &pred_kept {
            let p = t.pred[pi];
            let appear = if p.groundable { "True" } else { "False" };
            matches[pi] = gold_kept.iter().copied().find(|&gi| {
                let g = t.gold[gi];
                g.text == p.text
                    && fmnerg_key(spec, g).contains(appear)
                    && (!p.groundable || grounding_ok(spec.grounding, g, p))
            });
        }
    } else {
        let gold_index: HashMap<String, usize> = gold_kept
            .iter()
            .map(|&gi| (fmnerg_key(spec, t.gold[gi]), gi))
            .collect();
        for &pi in &pred_kept {
            let p = t.pred[pi];
            let key = fmnerg_key(spec, p);
            if let Some(&gi) = gold_index.get(&key) {
                let ok = match spec.grounding {
                    Grounding::Ignore => true,
                    // `'False' in key or ('True' in key and pred vis in gold vis)`
                    _ => key.contains("False") || grounding_ok(spec.grounding, t.gold[gi], p),
                };
                if ok {
                    matches[pi] = Some(gi);
                }
            }
        }
    }
    TweetScore {
        matches,
        predicted: pred_kept.len(),
        gold: gold_kept.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn ent(text: &str, ty: &str, span: (usize, usize), bx: Option<[f64; 4]>) -> Entity {
        let mut e = Entity::new(text, ty);
        e.start = Some(span.0);
        e.end = Some(span.1);
        if let Some(b) = bx {
            e.groundable = true;
            e.boxes = vec![BBox::new(b[0], b[1], b[2], b[3])];
        }
        e
    }

    fn tweet<'a>(gold: &'a [Entity], pred: &'a [Entity]) -> AlignedTweet<'a> {
        AlignedTweet {
            id: "1",
            gold: gold.iter().collect(),
            pred: pred.iter().collect(),
        }
    }

    const GMNER: TaskSpec = TaskSpec {
        types: TypeKey::Coarse,
        grounding: Grounding::Box { iou_threshold: 0.5 },
    };
    const MNER: TaskSpec = TaskSpec {
        types: TypeKey::Coarse,
        grounding: Grounding::Ignore,
    };

    #[test]
    fn names_round_trip() {
        for c in Compat::ALL {
            assert_eq!(c.name().parse::<Compat>().unwrap(), c);
            assert!(!c.quirks().is_empty());
        }
        // Suites name the mode in TOML/JSON with the same spelling.
        let c: Compat = serde_json::from_str("\"h-index\"").unwrap();
        assert_eq!(c, Compat::HIndex);
        let err = "hindex".parse::<Compat>().unwrap_err().to_string();
        assert!(err.contains("h-index") && err.contains("hint"), "{err}");
    }

    #[test]
    fn riveg_initial_lets_duplicates_match_one_gold() {
        let gold = [ent("Obama", "PER", (0, 1), None)];
        let pred = [
            ent("Obama", "PER", (0, 1), None),
            ent("Obama", "PER", (0, 1), None),
        ];
        let s = score_tweet(Compat::RivegInitial, MNER, &tweet(&gold, &pred));
        assert_eq!(s.matches, vec![Some(0), Some(0)]);
        assert_eq!((s.predicted, s.gold), (2, 1));
    }

    #[test]
    fn h_index_keeps_the_last_entity_of_a_span() {
        let gold = [ent("Obama", "PER", (0, 1), None)];
        // Same span twice: the second (wrong type) overwrites the first.
        let pred = [
            ent("Obama", "PER", (0, 1), None),
            ent("Obama", "ORG", (0, 1), None),
        ];
        let s = score_tweet(Compat::HIndex, MNER, &tweet(&gold, &pred));
        assert_eq!(s.matches, vec![None, None]);
        assert_eq!((s.predicted, s.gold), (1, 1));
        let pred = [
            ent("Obama", "ORG", (0, 1), None),
            ent("Obama", "PER", (0, 1), None),
        ];
        let s = score_tweet(Compat::HIndex, MNER, &tweet(&gold, &pred));
        assert_eq!(s.matches, vec![None, Some(0)]);
    }

    #[test]
    fn fmnerg_collapses_keys_and_trusts_false() {
        let b = [0.0, 0.0, 10.0, 10.0];
        let far = [50.0, 50.0, 60.0, 60.0];
        let gold = [
            ent("Obama", "PER", (0, 1), Some(b)),
            ent("Obama", "PER", (3, 4), Some(b)),
            ent("False Alarm", "ORG", (5, 7), Some(b)),
        ];
        let pred = [
            ent("Obama", "PER", (0, 1), Some(b)),
            ent("Obama", "PER", (3, 4), Some(far)),
            ent("False Alarm", "ORG", (5, 7), Some(far)),
        ];
        let s = score_tweet(Compat::Fmnerg, GMNER, &tweet(&gold, &pred));
        // The two "Obama PER True" collapse into the last one on both sides (a far box), and
        // "False Alarm ORG True" needs no box because the key contains "False".
        assert_eq!((s.predicted, s.gold), (2, 2));
        assert_eq!(s.matches, vec![None, None, Some(2)]);
    }
}
