//! Human-readable output: polars frames rendered as aligned tables (tabled), percentages with two
//! decimals. Only strings come out of here; the caller prints them.

use polars::prelude::DataFrame;
use tabled::settings::{object::Columns, Alignment, Style};

use crate::metrics::tables::{
    diagnostics_frame, errors_frame, frame_cells, groundability_frame, per_type_frame, task_frame,
};
use crate::metrics::EvalReport;

/// Renders a frame as an aligned table (numbers right-aligned).
pub fn render_frame(df: &DataFrame) -> String {
    let (headers, rows) = frame_cells(df);
    let mut b = tabled::builder::Builder::default();
    b.push_record(headers);
    let numeric: Vec<bool> = (0..df.width())
        .map(|c| rows.iter().all(|r| r[c].parse::<f64>().is_ok()))
        .collect();
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::rounded());
    for (c, is_num) in numeric.iter().enumerate() {
        if *is_num {
            t.modify(Columns::one(c), Alignment::right());
        }
    }
    t.to_string()
}

/// The whole human report of one evaluation.
pub fn render_eval(r: &EvalReport) -> String {
    let mut out = String::new();
    let frame = |res: polars::prelude::PolarsResult<DataFrame>| match res {
        Ok(df) => render_frame(&df),
        Err(e) => format!("(table unavailable: {e})"),
    };
    out.push_str(&format!(
        "protocol: {}   IoU threshold: {}\n",
        r.protocol.name(),
        r.iou_threshold
    ));
    out.push_str(&frame(task_frame(r)));
    out.push_str("\n\nper type (percent)\n");
    out.push_str(&frame(per_type_frame(&r.per_type)));
    if !r.per_fine_type.is_empty() {
        out.push_str("\n\nper fine type, FMNERG (top 15 by gold count)\n");
        let top: std::collections::BTreeMap<_, _> = {
            let mut v: Vec<_> = r.per_fine_type.iter().collect();
            v.sort_by(|a, b| b.1.mner.gold.cmp(&a.1.mner.gold).then(a.0.cmp(b.0)));
            v.into_iter().take(15).map(|(k, s)| (k.clone(), s.clone())).collect()
        };
        out.push_str(&frame(per_type_frame(&top)));
    }
    out.push_str("\n\nGMNER by gold groundability (predicted = by the prediction's decision)\n");
    out.push_str(&frame(groundability_frame(r)));
    out.push_str("\n\nGMNER error sources\n");
    out.push_str(&frame(errors_frame(r)));
    out.push_str("\n\nstage diagnostics (percent)\n");
    out.push_str(&frame(diagnostics_frame(r)));
    out.push('\n');
    out
}
