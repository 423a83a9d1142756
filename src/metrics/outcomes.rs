//! Entity-level outcomes: one row per gold and per predicted entity, saying which tasks it is
//! correct for, what it was paired with and which error it is, as a polars frame; and the
//! per-type, per-groundability and error-source tables as `group_by` aggregations of that frame
//! (equal to the [`EvalReport`](super::EvalReport) numbers, tests/it/outcomes.rs).
//!
//! The frame is what error analysis reads (`eval --outcomes FILE`, `outcomes.parquet` in a run
//! directory), like lm-eval's logged samples. Rows follow the base protocol's greedy matching
//! (under `--compat` too: the published scorers have no entity-level output). Everything here is
//! pure except [`write_outcomes`], the one entry point of `eval --outcomes`, which writes through
//! `io_util::write_atomic`.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::compat::Compat;
use super::eval::{pair_tweet, EvalOptions, NotApplicable, Outcome};
use super::matching::{
    align, best_box_iou, best_mask_iou, match_tweet, Grounding, Protocol, TaskSpec, TypeKey,
};
use super::prf::{Counts, Prf};
use crate::data::model::Dataset;

/// Which file an entity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Gold,
    Pred,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Gold => "gold",
            Side::Pred => "pred",
        }
    }
}

/// One entity's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRow {
    pub tweet_id: String,
    pub side: Side,
    /// Position of the entity among its tweet's entities on its side.
    pub index: u32,
    pub text: String,
    #[serde(rename = "type")]
    pub entity_type: String,
    pub fine_type: Option<String>,
    pub start: Option<u32>,
    pub end: Option<u32>,
    pub groundable: bool,
    /// Best box IoU of the pair, when both are groundable and the prediction has a box.
    pub iou: Option<f64>,
    /// Best mask IoU of the pair, when gold has masks and the prediction a mask.
    pub mask_iou: Option<f64>,
    pub mner_correct: bool,
    pub eeg_correct: bool,
    pub gmner_correct: bool,
    /// Set when both sides carry fine types.
    pub fmnerg_correct: Option<bool>,
    /// Set when gold carries masks.
    pub smner_correct: Option<bool>,
    /// `index` of the entity on the other side this one was paired with (GMNER match, else the
    /// same text and type, else the same text).
    pub matched_with: Option<u32>,
    pub error: Outcome,
}

/// Task matches of one tweet: `pred[i]` = matched gold index, `gold[j]` = matching pred index.
struct TaskMatch {
    pred: Vec<Option<usize>>,
    gold: Vec<Option<usize>>,
}

fn task_match(
    protocol: Protocol,
    spec: TaskSpec,
    t: &super::matching::AlignedTweet<'_>,
) -> TaskMatch {
    let pred = match_tweet(protocol, spec, t);
    let mut gold = vec![None; t.gold.len()];
    for (pi, g) in pred.iter().enumerate() {
        if let Some(gi) = g {
            gold[*gi] = Some(pi);
        }
    }
    TaskMatch { pred, gold }
}

/// Every gold and predicted entity's outcome, in tweet order (gold rows, then predicted rows of
/// each tweet).
pub fn outcomes(
    gold: &Dataset,
    pred: &Dataset,
    opts: &EvalOptions,
) -> Result<Vec<OutcomeRow>, NotApplicable> {
    let protocol = opts.compat.map_or(opts.protocol, Compat::protocol);
    if protocol == Protocol::Span && !(gold.has_spans() && pred.has_spans()) {
        return Err(NotApplicable(
            "span protocol needs token offsets on both sides".to_string(),
        ));
    }
    let boxes = Grounding::Box {
        iou_threshold: opts.iou_threshold,
    };
    let spec = |types, grounding| TaskSpec { types, grounding };
    let fine = gold.has_fine_types() && pred.has_fine_types();
    let masks = gold.has_masks();
    let mut rows = Vec::with_capacity(gold.entity_count() + pred.entity_count());
    for t in align(gold, pred) {
        let mner = task_match(protocol, spec(TypeKey::Coarse, Grounding::Ignore), &t);
        let eeg = task_match(protocol, spec(TypeKey::None, boxes), &t);
        let gmner = task_match(protocol, spec(TypeKey::Coarse, boxes), &t);
        let fmnerg = fine.then(|| task_match(protocol, spec(TypeKey::Fine, boxes), &t));
        let smner = masks.then(|| {
            task_match(
                protocol,
                spec(
                    TypeKey::Coarse,
                    Grounding::Mask {
                        iou_threshold: opts.mask_iou_threshold,
                    },
                ),
                &t,
            )
        });
        let pairing = pair_tweet(protocol, &t, &gmner.pred);
        let pair_ious = |gi: usize, pi: usize| {
            let (g, p) = (t.gold[gi], t.pred[pi]);
            let iou =
                (g.groundable && p.groundable && !p.boxes.is_empty()).then(|| best_box_iou(g, p));
            let mask_iou =
                (!g.masks.is_empty() && !p.masks.is_empty()).then(|| best_mask_iou(g, p));
            (iou, mask_iou)
        };
        let row = |side: Side, i: usize, e: &crate::data::model::Entity| OutcomeRow {
            tweet_id: t.id.to_string(),
            side,
            index: i as u32,
            text: e.text.clone(),
            entity_type: e.entity_type.clone(),
            fine_type: e.fine_type.clone(),
            start: e.start.map(|x| x as u32),
            end: e.end.map(|x| x as u32),
            groundable: e.groundable,
            iou: None,
            mask_iou: None,
            mner_correct: false,
            eeg_correct: false,
            gmner_correct: false,
            fmnerg_correct: None,
            smner_correct: None,
            matched_with: None,
            error: Outcome::Missed,
        };
        for (gi, g) in t.gold.iter().enumerate() {
            let mut r = row(Side::Gold, gi, g);
            r.mner_correct = mner.gold[gi].is_some();
            r.eeg_correct = eeg.gold[gi].is_some();
            r.gmner_correct = gmner.gold[gi].is_some();
            r.fmnerg_correct = fmnerg.as_ref().map(|m| m.gold[gi].is_some());
            r.smner_correct = smner.as_ref().map(|m| m.gold[gi].is_some());
            if let Some(pi) = pairing.gold_pair[gi] {
                r.matched_with = Some(pi as u32);
                r.error = pairing.pred_outcome[pi];
                (r.iou, r.mask_iou) = pair_ious(gi, pi);
            }
            rows.push(r);
        }
        for (pi, p) in t.pred.iter().enumerate() {
            let mut r = row(Side::Pred, pi, p);
            r.mner_correct = mner.pred[pi].is_some();
            r.eeg_correct = eeg.pred[pi].is_some();
            r.gmner_correct = gmner.pred[pi].is_some();
            r.fmnerg_correct = fmnerg.as_ref().map(|m| m.pred[pi].is_some());
            r.smner_correct = smner.as_ref().map(|m| m.pred[pi].is_some());
            r.error = pairing.pred_outcome[pi];
            if let Some(gi) = pairing.pred_pair[pi] {
                r.matched_with = Some(gi as u32);
                (r.iou, r.mask_iou) = pair_ious(gi, pi);
            }
            rows.push(r);
        }
    }
    Ok(rows)
}

/// The outcome rows as a frame (columns in the order of [`OutcomeRow`]'s fields).
pub fn outcome_frame(rows: &[OutcomeRow]) -> PolarsResult<DataFrame> {
    let s = |f: fn(&OutcomeRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let b = |f: fn(&OutcomeRow) -> bool| rows.iter().map(f).collect::<Vec<bool>>();
    let ob = |f: fn(&OutcomeRow) -> Option<bool>| rows.iter().map(f).collect::<Vec<_>>();
    let ou = |f: fn(&OutcomeRow) -> Option<u32>| rows.iter().map(f).collect::<Vec<_>>();
    let of = |f: fn(&OutcomeRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<_>>();
    df!(
        "tweet_id" => s(|r| &r.tweet_id),
        "side" => s(|r| r.side.name()),
        "index" => rows.iter().map(|r| r.index).collect::<Vec<u32>>(),
        "text" => s(|r| &r.text),
        "type" => s(|r| &r.entity_type),
        "fine_type" => rows.iter().map(|r| r.fine_type.as_deref()).collect::<Vec<_>>(),
        "start" => ou(|r| r.start),
        "end" => ou(|r| r.end),
        "groundable" => b(|r| r.groundable),
        "iou" => of(|r| r.iou),
        "mask_iou" => of(|r| r.mask_iou),
        "mner_correct" => b(|r| r.mner_correct),
        "eeg_correct" => b(|r| r.eeg_correct),
        "gmner_correct" => b(|r| r.gmner_correct),
        "fmnerg_correct" => ob(|r| r.fmnerg_correct),
        "smner_correct" => ob(|r| r.smner_correct),
        "matched_with" => ou(|r| r.matched_with),
        "error" => s(|r| r.error.name()),
    )
}

fn count_where(e: Expr) -> Expr {
    e.cast(DataType::UInt64).sum()
}

fn is_pred() -> Expr {
    col("side").eq(lit("pred"))
}

fn is_gold() -> Expr {
    col("side").eq(lit("gold"))
}

/// Per-group counts of a task: `correct` (predicted rows correct), `predicted`, `gold`.
fn task_counts(task: &str) -> [Expr; 3] {
    [
        count_where(is_pred().and(col(format!("{task}_correct"))))
            .alias(format!("{task}_correct_n")),
        count_where(is_pred()).alias("predicted"),
        count_where(is_gold()).alias("gold"),
    ]
}

fn column_u64(df: &DataFrame, name: &str) -> PolarsResult<Vec<u64>> {
    let col = df.column(name)?.cast(&DataType::UInt64)?;
    let ca = col.u64()?;
    Ok((0..ca.len()).map(|i| ca.get(i).unwrap_or(0)).collect())
}

fn column_str(df: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    let ca = df.column(name)?.str()?;
    Ok((0..ca.len())
        .map(|i| ca.get(i).unwrap_or("").to_string())
        .collect())
}

/// Per-type MNER and GMNER, `group_by("type")` of the frame (each row counts under its own
/// side's type), sorted by type.
pub fn per_type_from_outcomes(
    df: &DataFrame,
) -> PolarsResult<std::collections::BTreeMap<String, super::eval::TypeScores>> {
    let agg = df
        .clone()
        .lazy()
        .group_by([col("type")])
        .agg([
            count_where(is_pred().and(col("mner_correct"))).alias("mner"),
            count_where(is_pred().and(col("gmner_correct"))).alias("gmner"),
            count_where(is_pred()).alias("predicted"),
            count_where(is_gold()).alias("gold"),
        ])
        .sort(["type"], Default::default())
        .collect()?;
    let (types, mner, gmner, predicted, gold) = (
        column_str(&agg, "type")?,
        column_u64(&agg, "mner")?,
        column_u64(&agg, "gmner")?,
        column_u64(&agg, "predicted")?,
        column_u64(&agg, "gold")?,
    );
    Ok(types
        .into_iter()
        .enumerate()
        .map(|(i, ty)| {
            let prf =
                |c: u64| Prf::from_counts(c as usize, predicted[i] as usize, gold[i] as usize);
            (
                ty,
                super::eval::TypeScores {
                    mner: prf(mner[i]),
                    gmner: prf(gmner[i]),
                },
            )
        })
        .collect())
}

/// GMNER by groundability: gold rows by their groundability, predicted rows by the prediction's
/// decision (`group_by("groundable")`).
pub fn groundability_from_outcomes(
    df: &DataFrame,
) -> PolarsResult<super::eval::GroundabilitySplit> {
    let agg = df
        .clone()
        .lazy()
        .group_by([col("groundable")])
        .agg(task_counts("gmner"))
        .collect()?;
    let ca = agg.column("groundable")?.bool()?;
    let flags: Vec<bool> = (0..ca.len()).map(|i| ca.get(i).unwrap_or(false)).collect();
    let (c, p, g) = (
        column_u64(&agg, "gmner_correct_n")?,
        column_u64(&agg, "predicted")?,
        column_u64(&agg, "gold")?,
    );
    let mut split = [Counts::default(); 2];
    for (i, f) in flags.iter().enumerate() {
        split[usize::from(*f)] = Counts {
            correct: c[i] as usize,
            predicted: p[i] as usize,
            gold: g[i] as usize,
        };
    }
    Ok(super::eval::GroundabilitySplit {
        groundable: split[1].prf(),
        ungroundable: split[0].prf(),
    })
}

/// Error sources: `group_by("error")` of the predicted rows, plus the missed gold rows.
pub fn errors_from_outcomes(df: &DataFrame) -> PolarsResult<super::eval::ErrorBreakdown> {
    let agg = df
        .clone()
        .lazy()
        .filter(is_pred().or(col("error").eq(lit("missed"))))
        .group_by([col("error")])
        .agg([len().alias("n")])
        .collect()?;
    let mut b = super::eval::ErrorBreakdown::default();
    for (kind, n) in column_str(&agg, "error")?
        .into_iter()
        .zip(column_u64(&agg, "n")?)
    {
        let n = n as usize;
        match kind.as_str() {
            "correct" => b.correct = n,
            "missed" => b.missed = n,
            "spurious" => b.spurious = n,
            "wrong_type" => b.wrong_type = n,
            "wrong_groundability" => b.wrong_groundability = n,
            "wrong_box" => b.wrong_box = n,
            _ => {}
        }
    }
    Ok(b)
}

/// Why `eval --outcomes` could not write its file.
#[derive(Debug, thiserror::Error)]
pub enum OutcomesError {
    #[error("{0}")]
    NotApplicable(#[from] NotApplicable),
    #[error("{path}: {why}\n  hint: {hint}")]
    Format {
        path: std::path::PathBuf,
        why: String,
        hint: &'static str,
    },
    #[error("building the outcome frame: {0}")]
    Polars(#[from] PolarsError),
    #[error("{path}: {source}\n  hint: check that the folder exists and is writable")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The bytes of the frame in the format the file name asks for (`.csv`).
pub fn outcomes_bytes(df: &DataFrame, path: &std::path::Path) -> Result<Vec<u8>, OutcomesError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => Ok(frame_csv(df).into_bytes()),
        Some("parquet") => Err(OutcomesError::Format {
            path: path.to_path_buf(),
            why: "this build writes outcomes as CSV only".into(),
            hint: "use a .csv name (Parquet needs polars' parquet feature, left out to keep the build small; see benches/README.md)",
        }),
        _ => Err(OutcomesError::Format {
            path: path.to_path_buf(),
            why: "unknown outcomes format".into(),
            hint: "the file name must end in .csv",
        }),
    }
}

/// `eval --outcomes FILE`: the outcome rows of an evaluation, written atomically; returns the
/// number of rows.
pub fn write_outcomes(
    gold: &Dataset,
    pred: &Dataset,
    opts: &EvalOptions,
    path: &std::path::Path,
) -> Result<usize, OutcomesError> {
    let rows = outcomes(gold, pred, opts)?;
    let df = outcome_frame(&rows)?;
    let bytes = outcomes_bytes(&df, path)?;
    crate::io_util::write_atomic(path, &bytes).map_err(|source| OutcomesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(rows.len())
}

/// RFC 4180 CSV of a frame: a header, then one line per row; empty cell for null; fields with a
/// comma, quote or line break quoted. Written here rather than with polars' `csv` feature, which
/// would add a polars-io build for a few lines of code.
pub fn frame_csv(df: &DataFrame) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = df
        .get_column_names()
        .iter()
        .map(|n| quote(n.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for i in 0..df.height() {
        let cells: Vec<String> = df
            .columns()
            .iter()
            .map(|c| match c.get(i) {
                Ok(AnyValue::Null) | Err(_) => String::new(),
                Ok(AnyValue::String(s)) => quote(s),
                Ok(AnyValue::StringOwned(s)) => quote(s.as_str()),
                Ok(AnyValue::Boolean(b)) => b.to_string(),
                Ok(AnyValue::Float64(v)) => format!("{v}"),
                Ok(v) => quote(&v.to_string()),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_nulls() {
        let df = df!(
            "text" => ["a,b", "say \"hi\"", "plain"],
            "iou" => [Some(0.5), None, Some(1.0)],
            "ok" => [true, false, true],
        )
        .unwrap();
        assert_eq!(
            frame_csv(&df),
            "text,iou,ok\n\"a,b\",0.5,true\n\"say \"\"hi\"\"\",,false\nplain,1,true\n"
        );
    }

    #[test]
    fn unknown_extension_is_refused_with_a_hint() {
        let df = df!("a" => [1u32]).unwrap();
        let err = outcomes_bytes(&df, std::path::Path::new("o.xlsx")).unwrap_err();
        assert!(err
            .to_string()
            .contains("hint: the file name must end in .csv"));
    }
}
