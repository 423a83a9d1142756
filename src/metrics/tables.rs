//! Polars frames of an [`EvalReport`]: the task table, per type, groundability, errors and stage
//! diagnostics. Scores stay fractions here; renderers format them (percent, two decimals).

use polars::prelude::*;

use super::eval::EvalReport;
use super::prf::Prf;
use crate::task::Task;

/// Columns whose values are fractions and are shown as percentages.
pub const FRACTION_COLUMNS: &[&str] = &[
    "precision",
    "recall",
    "f1",
    "mner_f1",
    "gmner_p",
    "gmner_r",
    "gmner_f1",
    "accuracy",
    "mean_iou",
    "value",
];

fn prf_frame(rows: &[(String, Prf)], label: &str) -> PolarsResult<DataFrame> {
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    let col = |f: fn(&Prf) -> f64| rows.iter().map(|(_, p)| f(p)).collect::<Vec<f64>>();
    let cnt = |f: fn(&Prf) -> usize| rows.iter().map(|(_, p)| f(p) as u64).collect::<Vec<u64>>();
    df!(
        label => names,
        "precision" => col(|p| p.precision),
        "recall" => col(|p| p.recall),
        "f1" => col(|p| p.f1),
        "correct" => cnt(|p| p.correct),
        "predicted" => cnt(|p| p.predicted),
        "gold" => cnt(|p| p.gold),
    )
}

/// One row per task the report scored, in [`Task::ALL`] order (MNER, EEG, GMNER, then the
/// FMNERG and SMNER tasks when scored), labelled by [`Task::label`].
pub fn task_frame(r: &EvalReport) -> PolarsResult<DataFrame> {
    let rows: Vec<(String, Prf)> = r
        .scored_tasks()
        .map(|(t, p)| (t.label().to_string(), *p))
        .collect();
    prf_frame(&rows, "task")
}

/// Micro (the task score), macro and weighted averages of MNER and GMNER over types.
pub fn averages_frame(r: &EvalReport) -> PolarsResult<DataFrame> {
    let Some(a) = r.averages else {
        return df!("task" => Vec::<&str>::new());
    };
    let micro = |p: &Prf| super::eval::Scores {
        precision: p.precision,
        recall: p.recall,
        f1: p.f1,
    };
    let rows = [
        (Task::Mner.label(), "micro", micro(&r.mner)),
        (Task::Mner.label(), "macro", a.mner.macro_avg),
        (Task::Mner.label(), "weighted", a.mner.weighted_avg),
        (Task::Gmner.label(), "micro", micro(&r.gmner)),
        (Task::Gmner.label(), "macro", a.gmner.macro_avg),
        (Task::Gmner.label(), "weighted", a.gmner.weighted_avg),
    ];
    df!(
        "task" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "average" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "precision" => rows.iter().map(|r| r.2.precision).collect::<Vec<_>>(),
        "recall" => rows.iter().map(|r| r.2.recall).collect::<Vec<_>>(),
        "f1" => rows.iter().map(|r| r.2.f1).collect::<Vec<_>>(),
    )
}

/// Per-type MNER and GMNER, sorted by gold count (descending), then name.
pub fn per_type_frame(
    per_type: &std::collections::BTreeMap<String, super::eval::TypeScores>,
) -> PolarsResult<DataFrame> {
    let mut rows: Vec<(&String, &super::eval::TypeScores)> = per_type.iter().collect();
    rows.sort_by(|a, b| b.1.mner.gold.cmp(&a.1.mner.gold).then(a.0.cmp(b.0)));
    df!(
        "type" => rows.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        "gold" => rows.iter().map(|(_, s)| s.mner.gold as u64).collect::<Vec<_>>(),
        "mner_f1" => rows.iter().map(|(_, s)| s.mner.f1).collect::<Vec<_>>(),
        "gmner_p" => rows.iter().map(|(_, s)| s.gmner.precision).collect::<Vec<_>>(),
        "gmner_r" => rows.iter().map(|(_, s)| s.gmner.recall).collect::<Vec<_>>(),
        "gmner_f1" => rows.iter().map(|(_, s)| s.gmner.f1).collect::<Vec<_>>(),
    )
}

/// GMNER for gold-groundable vs gold-ungroundable entities.
pub fn groundability_frame(r: &EvalReport) -> PolarsResult<DataFrame> {
    prf_frame(
        &[
            ("groundable".into(), r.groundability.groundable),
            ("ungroundable".into(), r.groundability.ungroundable),
        ],
        "gold entities",
    )
}

/// Where GMNER errors come from, with each share of the gold entities.
pub fn errors_frame(r: &EvalReport) -> PolarsResult<DataFrame> {
    let e = &r.errors;
    let kinds = [
        ("correct", e.correct),
        ("missed", e.missed),
        ("spurious", e.spurious),
        ("wrong type", e.wrong_type),
        ("wrong groundability", e.wrong_groundability),
        ("wrong or missing box", e.wrong_box),
    ];
    df!(
        "outcome" => kinds.iter().map(|k| k.0).collect::<Vec<_>>(),
        "count" => kinds.iter().map(|k| k.1 as u64).collect::<Vec<_>>(),
    )
}

/// Stage diagnostics as (stage, metric, value) rows.
pub fn diagnostics_frame(r: &EvalReport) -> PolarsResult<DataFrame> {
    let d = &r.diagnostics;
    let rows: Vec<(&str, String, f64)> = vec![
        (
            "VE",
            format!("accuracy on {} correctly tagged", d.entailment.evaluated),
            d.entailment.accuracy,
        ),
        (
            "VE",
            "precision (groundable)".into(),
            d.entailment.precision,
        ),
        ("VE", "recall (groundable)".into(), d.entailment.recall),
        ("VE", "F1 (groundable)".into(), d.entailment.f1),
        (
            "VG",
            format!(
                "Acc@IoU>={} on {} of {} with a box",
                r.iou_threshold, d.grounding.with_box, d.grounding.candidates
            ),
            d.grounding.accuracy,
        ),
        ("VG", "mean IoU".into(), d.grounding.mean_iou),
        (
            "bound",
            "GMNER F1 if VE+VG perfect".into(),
            d.upper_bounds.after_mner,
        ),
        (
            "bound",
            "GMNER F1 if VG perfect".into(),
            d.upper_bounds.after_ve,
        ),
        ("bound", "GMNER F1 as is".into(), d.upper_bounds.after_vg),
    ];
    df!(
        "stage" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "metric" => rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        "value" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    )
}

/// Cells of a frame as display strings: fractions as percentages with two decimals.
pub fn frame_cells(df: &DataFrame) -> (Vec<String>, Vec<Vec<String>>) {
    let headers: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut rows = vec![Vec::with_capacity(headers.len()); df.height()];
    for (c, col) in df.columns().iter().enumerate() {
        let pct = FRACTION_COLUMNS.contains(&headers[c].as_str());
        for (i, row) in rows.iter_mut().enumerate() {
            let cell = match col.get(i) {
                Ok(AnyValue::Float64(v)) if pct => format!("{:.2}", v * 100.0),
                Ok(AnyValue::Float64(v)) => format!("{v:.4}"),
                Ok(AnyValue::String(s)) => s.to_string(),
                Ok(AnyValue::StringOwned(s)) => s.to_string(),
                Ok(v) => v.to_string(),
                Err(_) => String::new(),
            };
            row.push(cell);
        }
    }
    (headers, rows)
}
