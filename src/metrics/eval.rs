//! `eval`: every task, breakdown and stage diagnostic for one protocol, as a pure function of
//! gold and predictions. The JSON shape of [`EvalReport`] is a contract (`eval --format json`,
//! results.json): add fields, never rename them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compat::{score_tweet, Compat, CompatInfo};
use super::matching::{
    align, best_box_iou, match_tweet, same_key, AlignedTweet, Grounding, Protocol, TaskSpec,
    TypeKey,
};
use super::prf::{Counts, Prf};
use crate::data::model::{Dataset, Entity};

/// Options of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    pub protocol: Protocol,
    /// Box IoU needed for a grounded match (GMNER, EEG, FMNERG). Published: 0.5.
    pub iou_threshold: f64,
    /// Mask IoU needed for an SMNER match. Published: 0.5.
    pub mask_iou_threshold: f64,
    /// Reproduce a published scorer with its quirks (`--compat`); its key replaces `protocol`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<Compat>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            protocol: Protocol::Riveg,
            iou_threshold: 0.5,
            mask_iou_threshold: 0.5,
            compat: None,
        }
    }
}

/// Why a protocol cannot score a pair of files (e.g. span protocol without token offsets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{0}")]
pub struct NotApplicable(pub String);

/// Precision, recall and F1 without counts (an average of per-type scores).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// seqeval's `classification_report` averages over the types of `per_type` (gold or predicted):
/// macro = unweighted mean of the per-type scores, weighted = mean weighted by gold support
/// (0 when there is no gold entity). Micro is the task score itself.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TypeAverages {
    #[serde(rename = "macro")]
    pub macro_avg: Scores,
    #[serde(rename = "weighted")]
    pub weighted_avg: Scores,
}

/// Macro and weighted averages of MNER and GMNER over coarse types.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Averages {
    pub mner: TypeAverages,
    pub gmner: TypeAverages,
}

/// Averages of one task's per-type scores.
pub fn type_averages<'a>(per_type: impl IntoIterator<Item = &'a Prf>) -> TypeAverages {
    let rows: Vec<&Prf> = per_type.into_iter().collect();
    let mut out = TypeAverages::default();
    if rows.is_empty() {
        return out;
    }
    let n = rows.len() as f64;
    let support: usize = rows.iter().map(|p| p.gold).sum();
    let mean = |f: fn(&Prf) -> f64| rows.iter().map(|p| f(p)).sum::<f64>() / n;
    let weighted = |f: fn(&Prf) -> f64| {
        if support == 0 {
            0.0
        } else {
            rows.iter().map(|p| f(p) * p.gold as f64).sum::<f64>() / support as f64
        }
    };
    out.macro_avg = Scores {
        precision: mean(|p| p.precision),
        recall: mean(|p| p.recall),
        f1: mean(|p| p.f1),
    };
    out.weighted_avg = Scores {
        precision: weighted(|p| p.precision),
        recall: weighted(|p| p.recall),
        f1: weighted(|p| p.f1),
    };
    out
}

/// Per-type scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeScores {
    pub mner: Prf,
    pub gmner: Prf,
}

/// GMNER split by the gold entity's groundability (predicted counts by the prediction's decision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundabilitySplit {
    pub groundable: Prf,
    pub ungroundable: Prf,
}

/// Where GMNER errors come from. `correct + wrong_* + spurious = predicted` and
/// `correct + wrong_* + missed = gold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBreakdown {
    pub correct: usize,
    /// Gold entity with no prediction of the same text / span.
    pub missed: usize,
    /// Prediction with no gold entity of the same text / span.
    pub spurious: usize,
    /// Right text / span, wrong type.
    pub wrong_type: usize,
    /// Right text and type, wrong groundable / ungroundable decision.
    pub wrong_groundability: usize,
    /// Right text, type and decision (groundable), box IoU below the threshold or no box.
    pub wrong_box: usize,
}

/// Visual entailment judged on the entities the tagger got right (positive = groundable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntailmentDiagnostics {
    pub evaluated: usize,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub true_positive: usize,
    pub false_positive: usize,
    pub true_negative: usize,
    pub false_negative: usize,
}

/// Visual grounding judged on correctly tagged groundable entities that received a box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundingDiagnostics {
    /// Correctly tagged gold-groundable entities.
    pub candidates: usize,
    /// Of those, how many have a predicted box (the rest were stopped by VE or lack a box).
    pub with_box: usize,
    /// Acc@IoU>=threshold over `with_box`.
    pub accuracy: f64,
    pub mean_iou: f64,
}

/// The GMNER F1 each stage would give if every later stage were perfect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageUpperBounds {
    /// MNER as is, VE and VG perfect (= MNER F1).
    pub after_mner: f64,
    /// MNER and VE as is, VG perfect.
    pub after_ve: f64,
    /// Everything as is (= GMNER F1).
    pub after_vg: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageDiagnostics {
    pub entailment: EntailmentDiagnostics,
    pub grounding: GroundingDiagnostics,
    pub upper_bounds: StageUpperBounds,
}

/// Per-tweet counts of one task, for paired bootstrap in `compare`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PerTweet {
    pub ids: Vec<String>,
    /// task → `[correct, predicted, gold]` per tweet, aligned with `ids`.
    pub counts: BTreeMap<String, Vec<[u32; 3]>>,
}

/// Everything `eval` reports for one protocol. In JSON, a task listed in `not_scored` is `null`
/// (its counts measure nothing); reading such JSON back gives zero counts there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "EvalReportJson", from = "EvalReportJson")]
pub struct EvalReport {
    pub protocol: Protocol,
    /// The published scorer reproduced (`--compat`) and each quirk it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<CompatInfo>,
    pub iou_threshold: f64,
    pub mner: Prf,
    pub eeg: Prf,
    pub gmner: Prf,
    /// FMNERG (fine type + grounding), when both sides carry fine types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmnerg: Option<Prf>,
    /// FMNERG scored on coarse types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmnerg_coarse: Option<Prf>,
    /// MNER at fine-type level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmner: Option<Prf>,
    /// SMNER (masks), when gold carries masks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smner: Option<Prf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_iou_threshold: Option<f64>,
    /// Coarse type → MNER and GMNER scores.
    pub per_type: BTreeMap<String, TypeScores>,
    /// Macro and weighted averages of `per_type` (seqeval's classification_report convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub averages: Option<Averages>,
    /// Fine type → FMNERG scores (MNER at fine level in `mner`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_fine_type: BTreeMap<String, TypeScores>,
    pub groundability: GroundabilitySplit,
    pub errors: ErrorBreakdown,
    pub diagnostics: StageDiagnostics,
    /// Task (`eeg`, `gmner`, `fmnerg`, `fmnerg_coarse`, `smner`) → why it is not scored: one side
    /// carries no grounding information at all (see [`missing_grounding`]). The task's counts
    /// stay in memory but measure nothing: JSON writes the task as `null`, renderers show
    /// "n/a (reason)", `compare` and `aggregate` skip it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_scored: BTreeMap<String, String>,
    /// Per-tweet counts (not part of `eval --format json`; saved beside results for `compare`).
    #[serde(skip)]
    pub per_tweet: PerTweet,
}

/// The JSON shape of [`EvalReport`]: the same fields, with `eeg` and `gmner` `null` when
/// `not_scored` lists them (the optional tasks are already `Option`s and become `null` the same
/// way).
#[derive(Serialize, Deserialize)]
struct EvalReportJson {
    protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compat: Option<CompatInfo>,
    iou_threshold: f64,
    mner: Prf,
    eeg: Option<Prf>,
    gmner: Option<Prf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fmnerg: Option<Prf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fmnerg_coarse: Option<Prf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fmner: Option<Prf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smner: Option<Prf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mask_iou_threshold: Option<f64>,
    per_type: BTreeMap<String, TypeScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    averages: Option<Averages>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    per_fine_type: BTreeMap<String, TypeScores>,
    groundability: GroundabilitySplit,
    errors: ErrorBreakdown,
    diagnostics: StageDiagnostics,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    not_scored: BTreeMap<String, String>,
}

impl From<EvalReport> for EvalReportJson {
    fn from(r: EvalReport) -> Self {
        let listed = |task: &str| r.not_scored.contains_key(task);
        let (eeg, gmner) = (
            (!listed("eeg")).then_some(r.eeg),
            (!listed("gmner")).then_some(r.gmner),
        );
        let fmnerg = r.fmnerg.filter(|_| !listed("fmnerg"));
        let fmnerg_coarse = r.fmnerg_coarse.filter(|_| !listed("fmnerg_coarse"));
        let fmner = r.fmner.filter(|_| !listed("fmner"));
        let smner = r.smner.filter(|_| !listed("smner"));
        EvalReportJson {
            protocol: r.protocol,
            compat: r.compat,
            iou_threshold: r.iou_threshold,
            mner: r.mner,
            eeg,
            gmner,
            fmnerg,
            fmnerg_coarse,
            fmner,
            smner,
            mask_iou_threshold: r.mask_iou_threshold,
            per_type: r.per_type,
            averages: r.averages,
            per_fine_type: r.per_fine_type,
            groundability: r.groundability,
            errors: r.errors,
            diagnostics: r.diagnostics,
            not_scored: r.not_scored,
        }
    }
}

impl From<EvalReportJson> for EvalReport {
    fn from(j: EvalReportJson) -> Self {
        EvalReport {
            protocol: j.protocol,
            compat: j.compat,
            iou_threshold: j.iou_threshold,
            mner: j.mner,
            eeg: j.eeg.unwrap_or_default(),
            gmner: j.gmner.unwrap_or_default(),
            fmnerg: j.fmnerg,
            fmnerg_coarse: j.fmnerg_coarse,
            fmner: j.fmner,
            smner: j.smner,
            mask_iou_threshold: j.mask_iou_threshold,
            per_type: j.per_type,
            averages: j.averages,
            per_fine_type: j.per_fine_type,
            groundability: j.groundability,
            errors: j.errors,
            diagnostics: j.diagnostics,
            not_scored: j.not_scored,
            per_tweet: PerTweet::default(),
        }
    }
}

/// Why a side cannot be scored on the grounded tasks, or `None` when it can.
///
/// A side carries no grounding decision when it has entities and none of them is groundable,
/// has a box or a VE score: text-only sources (AdaSeq or CoNLL output, text-only gold). Its
/// entities read as "ungroundable" only because that is the field's default, so EEG and GMNER
/// would turn every groundable gold entity into a "wrong groundability" error: made-up numbers.
///
/// Decided from the content rather than the header's `source`, so hand-written and converted
/// files are judged the same way (the source, when the header names one, is quoted in the
/// reason). A pipeline whose VE rejected everything still has VE scores and is scored. RiVEG VE
/// output without REC boxes (`import riveg-ofa` without `--boxes`) does carry decisions (its
/// VE-positive entities are groundable): it stays scored, as the published replay numbers are,
/// with every groundable prediction a wrong box.
pub fn missing_grounding(ds: &Dataset, side: &str) -> Option<String> {
    let mut entities = ds.tweets.iter().flat_map(|t| &t.entities).peekable();
    entities.peek()?;
    if entities.any(|e| e.groundable || !e.boxes.is_empty() || e.score.is_some()) {
        return None;
    }
    let source = ds
        .meta
        .as_ref()
        .and_then(|m| m.source.as_deref())
        .map(|s| format!(" (source: {s})"))
        .unwrap_or_default();
    Some(format!(
        "the {side} carry no grounding decision{source}: no entity is groundable or has a box or a VE score"
    ))
}

/// Evaluates predictions against gold under one protocol.
pub fn evaluate(
    gold: &Dataset,
    pred: &Dataset,
    opts: &EvalOptions,
) -> Result<EvalReport, NotApplicable> {
    // A compat mode keys entities like its scorer (span for H-Index, entity string otherwise).
    let protocol = opts.compat.map_or(opts.protocol, Compat::protocol);
    if protocol == Protocol::Span {
        for (name, ds) in [("gold", gold), ("predictions", pred)] {
            if !ds.has_spans() {
                return Err(NotApplicable(format!(
                    "span protocol needs token offsets, and the {name} have entities without start/end (e.g. RiVEG release files hold entity strings only)"
                )));
            }
        }
    }
    let tweets = align(gold, pred);
    let compat = opts.compat;
    let boxes = Grounding::Box {
        iou_threshold: opts.iou_threshold,
    };
    let mner_spec = TaskSpec {
        types: TypeKey::Coarse,
        grounding: Grounding::Ignore,
    };
    let gmner_spec = TaskSpec {
        types: TypeKey::Coarse,
        grounding: boxes,
    };
    let eeg_spec = TaskSpec {
        types: TypeKey::None,
        grounding: boxes,
    };

    let mut per_tweet = PerTweet {
        ids: tweets.iter().map(|t| t.id.to_string()).collect(),
        counts: BTreeMap::new(),
    };
    let mut run = |name: &str, spec: TaskSpec| -> (Counts, Vec<Vec<Option<usize>>>) {
        let mut total = Counts::default();
        let mut all = Vec::with_capacity(tweets.len());
        let mut cells = Vec::with_capacity(tweets.len());
        for t in &tweets {
            let (m, predicted, gold) = match compat {
                None => (match_tweet(protocol, spec, t), t.pred.len(), t.gold.len()),
                Some(c) => {
                    let s = score_tweet(c, spec, t);
                    (s.matches, s.predicted, s.gold)
                }
            };
            let c = m.iter().filter(|x| x.is_some()).count();
            cells.push([c as u32, predicted as u32, gold as u32]);
            total.add(Counts {
                correct: c,
                predicted,
                gold,
            });
            all.push(m);
        }
        per_tweet.counts.insert(name.to_string(), cells);
        (total, all)
    };
    // The breakdown tables keep the base protocol's matching (the published scorers have none,
    // and its greedy pairing keeps their invariants); `standard` gives those matches.
    let standard = |spec: TaskSpec| -> Vec<Vec<Option<usize>>> {
        tweets
            .iter()
            .map(|t| match_tweet(protocol, spec, t))
            .collect()
    };

    let (mner_c, mner_m) = run("mner", mner_spec);
    let (eeg_c, _) = run("eeg", eeg_spec);
    let (gmner_c, gmner_m) = run("gmner", gmner_spec);

    let fine = gold.has_fine_types() && pred.has_fine_types();
    let (mut fmnerg, mut fmnerg_coarse, mut fmner) = (None, None, None);
    let mut fine_matches = None;
    if fine {
        let (c, m) = run(
            "fmnerg",
            TaskSpec {
                types: TypeKey::Fine,
                grounding: boxes,
            },
        );
        fmnerg = Some(c.prf());
        fmnerg_coarse = Some(gmner_c.prf());
        let (fc, fm) = run(
            "fmner",
            TaskSpec {
                types: TypeKey::Fine,
                grounding: Grounding::Ignore,
            },
        );
        fmner = Some(fc.prf());
        fine_matches = Some((fm, m));
    }
    let (mut smner, mut mask_iou_threshold) = (None, None);
    if gold.has_masks() {
        let (c, _) = run(
            "smner",
            TaskSpec {
                types: TypeKey::Coarse,
                grounding: Grounding::Mask {
                    iou_threshold: opts.mask_iou_threshold,
                },
            },
        );
        smner = Some(c.prf());
        mask_iou_threshold = Some(opts.mask_iou_threshold);
    }

    // Breakdowns: under a compat mode, recompute the base protocol's greedy matches.
    let counts_of = |m: &[Vec<Option<usize>>]| {
        let mut c = Counts::default();
        for (t, row) in tweets.iter().zip(m) {
            c.add(Counts {
                correct: row.iter().filter(|x| x.is_some()).count(),
                predicted: t.pred.len(),
                gold: t.gold.len(),
            });
        }
        c
    };
    let (mner_m, gmner_m, fine_matches) = match compat {
        None => (mner_m, gmner_m, fine_matches),
        Some(_) => (
            standard(mner_spec),
            standard(gmner_spec),
            fine_matches.map(|_| {
                (
                    standard(TaskSpec {
                        types: TypeKey::Fine,
                        grounding: Grounding::Ignore,
                    }),
                    standard(TaskSpec {
                        types: TypeKey::Fine,
                        grounding: boxes,
                    }),
                )
            }),
        ),
    };
    let (base_mner_c, base_gmner_c) = (counts_of(&mner_m), counts_of(&gmner_m));

    let per_type = per_type_scores(&tweets, &mner_m, &gmner_m, |e| Some(e.entity_type.as_str()));
    // Per fine type: MNER at fine level and FMNERG.
    let per_fine_type = match &fine_matches {
        Some((fmner_m, fmnerg_m)) => {
            per_type_scores(&tweets, fmner_m, fmnerg_m, |e| e.fine_type.as_deref())
        }
        None => BTreeMap::new(),
    };

    let averages = Averages {
        mner: type_averages(per_type.values().map(|s| &s.mner)),
        gmner: type_averages(per_type.values().map(|s| &s.gmner)),
    };
    Ok(EvalReport {
        protocol,
        averages: Some(averages),
        compat: compat.map(Compat::info),
        iou_threshold: opts.iou_threshold,
        mner: mner_c.prf(),
        eeg: eeg_c.prf(),
        gmner: gmner_c.prf(),
        fmnerg,
        fmnerg_coarse,
        fmner,
        smner,
        mask_iou_threshold,
        per_type,
        per_fine_type,
        groundability: groundability_split(&tweets, &gmner_m),
        errors: error_breakdown(protocol, &tweets, &gmner_m),
        diagnostics: diagnostics(
            &tweets,
            &mner_m,
            &base_gmner_c,
            &base_mner_c,
            opts.iou_threshold,
        ),
        not_scored: not_scored(gold, pred, fine, smner.is_some()),
        per_tweet,
    })
}

/// The grounded tasks neither side's content can support, with the reason.
fn not_scored(gold: &Dataset, pred: &Dataset, fine: bool, masks: bool) -> BTreeMap<String, String> {
    let why = missing_grounding(gold, "gold").or_else(|| missing_grounding(pred, "predictions"));
    let Some(why) = why else {
        return BTreeMap::new();
    };
    let mut tasks = vec!["eeg", "gmner"];
    if fine {
        tasks.extend(["fmnerg", "fmnerg_coarse"]);
    }
    if masks {
        tasks.push("smner");
    }
    tasks
        .into_iter()
        .map(|t| (t.to_string(), why.clone()))
        .collect()
}

impl EvalReport {
    /// Why `task` (a [`crate::task::Task`] name: `eeg`, `gmner`, ...) is not scored, if it is not.
    pub fn not_scored_reason(&self, task: &str) -> Option<&str> {
        self.not_scored.get(task).map(String::as_str)
    }

    /// Whether the grounded tasks and the VE / VG diagnostics mean anything for this report.
    pub fn grounding_scored(&self) -> bool {
        !self.not_scored.contains_key("gmner")
    }
}

fn per_type_scores<'a>(
    tweets: &[AlignedTweet<'a>],
    mner_m: &[Vec<Option<usize>>],
    gmner_m: &[Vec<Option<usize>>],
    type_of: impl Fn(&'a Entity) -> Option<&'a str>,
) -> BTreeMap<String, TypeScores> {
    let mut mner: BTreeMap<String, Counts> = BTreeMap::new();
    let mut gmner: BTreeMap<String, Counts> = BTreeMap::new();
    for (ti, t) in tweets.iter().enumerate() {
        for g in &t.gold {
            if let Some(ty) = type_of(g) {
                mner.entry(ty.to_string()).or_default().gold += 1;
                gmner.entry(ty.to_string()).or_default().gold += 1;
            }
        }
        for (pi, p) in t.pred.iter().enumerate() {
            if let Some(ty) = type_of(p) {
                mner.entry(ty.to_string()).or_default().predicted += 1;
                gmner.entry(ty.to_string()).or_default().predicted += 1;
                if mner_m[ti][pi].is_some() {
                    mner.entry(ty.to_string()).or_default().correct += 1;
                }
                if gmner_m[ti][pi].is_some() {
                    gmner.entry(ty.to_string()).or_default().correct += 1;
                }
            }
        }
    }
    mner.into_iter()
        .map(|(ty, c)| {
            let g = gmner.get(&ty).copied().unwrap_or_default();
            (
                ty,
                TypeScores {
                    mner: c.prf(),
                    gmner: g.prf(),
                },
            )
        })
        .collect()
}

fn groundability_split(
    tweets: &[AlignedTweet<'_>],
    gmner_m: &[Vec<Option<usize>>],
) -> GroundabilitySplit {
    let (mut yes, mut no) = (Counts::default(), Counts::default());
    for (ti, t) in tweets.iter().enumerate() {
        for g in &t.gold {
            if g.groundable {
                yes.gold += 1
            } else {
                no.gold += 1
            }
        }
        for (pi, p) in t.pred.iter().enumerate() {
            let cell = if p.groundable { &mut yes } else { &mut no };
            cell.predicted += 1;
            if gmner_m[ti][pi].is_some() {
                // A GMNER match implies the same groundability on both sides.
                cell.correct += 1;
            }
        }
    }
    GroundabilitySplit {
        groundable: yes.prf(),
        ungroundable: no.prf(),
    }
}

/// What happened to one entity under GMNER (the error-source table's rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Correct,
    Missed,
    Spurious,
    WrongType,
    WrongGroundability,
    WrongBox,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Correct => "correct",
            Outcome::Missed => "missed",
            Outcome::Spurious => "spurious",
            Outcome::WrongType => "wrong_type",
            Outcome::WrongGroundability => "wrong_groundability",
            Outcome::WrongBox => "wrong_box",
        }
    }
}

/// One tweet's GMNER error pairing: each prediction's outcome and counterpart, and each gold
/// entity's counterpart (a gold entity shares its counterpart's outcome; none = missed).
pub(crate) struct TweetPairing {
    pub pred_outcome: Vec<Outcome>,
    pub pred_pair: Vec<Option<usize>>,
    pub gold_pair: Vec<Option<usize>>,
}

/// Classifies every GMNER failure of one tweet, continuing the same greedy matching: first the
/// GMNER matches, then same text+type pairs (groundability or box errors), then same text pairs
/// (type errors).
pub(crate) fn pair_tweet(
    protocol: Protocol,
    t: &AlignedTweet<'_>,
    gmner_row: &[Option<usize>],
) -> TweetPairing {
    let mut taken = vec![false; t.gold.len()];
    let mut done = vec![false; t.pred.len()];
    let mut pred_outcome = vec![Outcome::Spurious; t.pred.len()];
    let mut pred_pair = vec![None; t.pred.len()];
    let mut gold_pair = vec![None; t.gold.len()];
    for (pi, m) in gmner_row.iter().enumerate() {
        if let Some(gi) = m {
            taken[*gi] = true;
            done[pi] = true;
            pred_outcome[pi] = Outcome::Correct;
            pred_pair[pi] = Some(*gi);
        }
    }
    let typed = super::matching::greedy_match(&t.gold, &t.pred, &mut taken, &done, |g, p| {
        same_key(protocol, TypeKey::Coarse, g, p)
    });
    for (pi, m) in typed.iter().enumerate() {
        if let Some(gi) = m {
            done[pi] = true;
            pred_pair[pi] = Some(*gi);
            pred_outcome[pi] = if t.gold[*gi].groundable != t.pred[pi].groundable {
                Outcome::WrongGroundability
            } else {
                Outcome::WrongBox
            };
        }
    }
    let untyped = super::matching::greedy_match(&t.gold, &t.pred, &mut taken, &done, |g, p| {
        same_key(protocol, TypeKey::None, g, p)
    });
    for (pi, m) in untyped.iter().enumerate() {
        if let Some(gi) = m {
            pred_pair[pi] = Some(*gi);
            pred_outcome[pi] = Outcome::WrongType;
        }
    }
    for (pi, g) in pred_pair.iter().enumerate() {
        if let Some(gi) = g {
            gold_pair[*gi] = Some(pi);
        }
    }
    TweetPairing {
        pred_outcome,
        pred_pair,
        gold_pair,
    }
}

fn error_breakdown(
    protocol: Protocol,
    tweets: &[AlignedTweet<'_>],
    gmner_m: &[Vec<Option<usize>>],
) -> ErrorBreakdown {
    let mut b = ErrorBreakdown::default();
    for (ti, t) in tweets.iter().enumerate() {
        let pairing = pair_tweet(protocol, t, &gmner_m[ti]);
        for o in &pairing.pred_outcome {
            match o {
                Outcome::Correct => b.correct += 1,
                Outcome::Spurious => b.spurious += 1,
                Outcome::WrongType => b.wrong_type += 1,
                Outcome::WrongGroundability => b.wrong_groundability += 1,
                Outcome::WrongBox => b.wrong_box += 1,
                Outcome::Missed => {}
            }
        }
        b.missed += pairing.gold_pair.iter().filter(|p| p.is_none()).count();
    }
    b
}

fn diagnostics(
    tweets: &[AlignedTweet<'_>],
    mner_m: &[Vec<Option<usize>>],
    gmner_c: &Counts,
    mner_c: &Counts,
    iou_threshold: f64,
) -> StageDiagnostics {
    let (mut tp, mut fp, mut tn, mut fnn) = (0usize, 0usize, 0usize, 0usize);
    let (mut candidates, mut with_box, mut hits) = (0usize, 0usize, 0usize);
    let mut iou_sum = 0.0;
    for (ti, t) in tweets.iter().enumerate() {
        for (pi, m) in mner_m[ti].iter().enumerate() {
            let Some(gi) = m else { continue };
            let (g, p) = (t.gold[*gi], t.pred[pi]);
            match (g.groundable, p.groundable) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
                (true, false) => fnn += 1,
            }
            if g.groundable {
                candidates += 1;
                if !p.boxes.is_empty() {
                    with_box += 1;
                    let iou = best_box_iou(g, p);
                    iou_sum += iou;
                    if iou >= iou_threshold {
                        hits += 1;
                    }
                }
            }
        }
    }
    let evaluated = tp + fp + tn + fnn;
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let ve = Prf::from_counts(tp, tp + fp, tp + fnn);
    // VG perfect: every correctly tagged entity with the right decision is a GMNER match.
    let after_ve = Prf::from_counts(tp + tn, mner_c.predicted, mner_c.gold).f1;
    StageDiagnostics {
        entailment: EntailmentDiagnostics {
            evaluated,
            accuracy: ratio(tp + tn, evaluated),
            precision: ve.precision,
            recall: ve.recall,
            f1: ve.f1,
            true_positive: tp,
            false_positive: fp,
            true_negative: tn,
            false_negative: fnn,
        },
        grounding: GroundingDiagnostics {
            candidates,
            with_box,
            accuracy: ratio(hits, with_box),
            mean_iou: if with_box == 0 {
                0.0
            } else {
                iou_sum / with_box as f64
            },
        },
        upper_bounds: StageUpperBounds {
            after_mner: mner_c.prf().f1,
            after_ve,
            after_vg: gmner_c.prf().f1,
        },
    }
}
