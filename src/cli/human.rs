//! Human-readable output: polars frames rendered as aligned tables (tabled), percentages with two
//! decimals. Only strings come out of here; the caller prints them.

use polars::prelude::DataFrame;
use tabled::settings::{object::Columns, Alignment, Style};

use crate::metrics::tables::{
    diagnostics_frame, errors_frame, frame_cells, groundability_frame, per_type_frame,
    per_type_frame_scored, task_frame,
};
use crate::metrics::EvalReport;

/// Renders a frame as an aligned table (numbers right-aligned).
pub fn render_frame(df: &DataFrame) -> String {
    let (headers, rows) = frame_cells(df);
    let mut b = tabled::builder::Builder::default();
    b.push_record(headers);
    let numeric: Vec<bool> = (0..df.width())
        .map(|c| {
            rows.iter()
                .all(|r| r[c] == "n/a" || r[c].parse::<f64>().is_ok())
        })
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
    if let Some(c) = &r.compat {
        out.push_str(&c.render_human());
    }
    out.push_str(&frame(task_frame(r)));
    out.push('\n');
    out.push_str(&not_scored_lines(r));
    out.push_str("\nper type (percent)\n");
    out.push_str(&frame(per_type_frame_scored(
        &r.per_type,
        r.grounding_scored(),
    )));
    out.push_str("\n\naverages over types (percent; seqeval's macro / weighted)\n");
    out.push_str(&frame(crate::metrics::tables::averages_frame(r)));
    if !r.per_fine_type.is_empty() {
        out.push_str("\n\nper fine type, FMNERG (top 15 by gold count)\n");
        let top: std::collections::BTreeMap<_, _> = {
            let mut v: Vec<_> = r.per_fine_type.iter().collect();
            v.sort_by(|a, b| b.1.mner.gold.cmp(&a.1.mner.gold).then(a.0.cmp(b.0)));
            v.into_iter()
                .take(15)
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect()
        };
        out.push_str(&frame(per_type_frame(&top)));
    }
    if r.grounding_scored() {
        out.push_str(
            "\n\nGMNER by gold groundability (predicted = by the prediction's decision)\n",
        );
        out.push_str(&frame(groundability_frame(r)));
        out.push_str("\n\nGMNER error sources\n");
        out.push_str(&frame(errors_frame(r)));
    } else {
        out.push_str(
            "\n\nGMNER by gold groundability and error sources: n/a (no grounding decisions)",
        );
    }
    out.push_str("\n\nstage diagnostics (percent)\n");
    out.push_str(&frame(diagnostics_frame(r)));
    out.push('\n');
    out
}

/// "EEG, GMNER: n/a (reason)" lines for the tasks a report could not score (empty when none).
pub fn not_scored_lines(r: &EvalReport) -> String {
    let mut by_reason: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (task, why) in &r.not_scored {
        by_reason
            .entry(why.as_str())
            .or_default()
            .push(task.to_ascii_uppercase());
    }
    by_reason
        .into_iter()
        .map(|(why, tasks)| format!("{}: n/a ({why})\n", tasks.join(", ")))
        .collect()
}

/// The short human summary of a run: one row per variant.
pub fn render_run(results: &crate::results::RunResults) -> String {
    let mut b = tabled::builder::Builder::default();
    // One F1 column per compact task ([`Task::HEADLINE`]): MNER, EEG and GMNER always, the
    // others when any variant scored them.
    use crate::task::Task;
    let tasks: Vec<Task> = Task::HEADLINE
        .into_iter()
        .filter(|t| {
            t.always_scored()
                || results
                    .variants
                    .iter()
                    .any(|v| v.metrics.riveg.as_ref().and_then(|r| r.task(*t)).is_some())
        })
        .collect();
    let mut header: Vec<String> = ["variant", "tagger", "reform.", "VE", "VG", "seg."]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(tasks.iter().map(|t| format!("{} F1", t.short_label())));
    header.extend(["span GMNER F1".to_string(), "skipped".to_string()]);
    b.push_record(header);
    let pct = |x: Option<f64>| {
        x.map(|v| format!("{:.2}", v * 100.0))
            .unwrap_or_else(|| "n/a".into())
    };
    for v in &results.variants {
        let kind = |s: crate::pipeline::stages::Stage| {
            v.stages
                .get(&s)
                .map(|k| {
                    serde_json::to_value(k)
                        .ok()
                        .and_then(|j| j.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .unwrap_or_default()
        };
        use crate::pipeline::stages::Stage::*;
        let r = v.metrics.riveg.as_ref();
        // A task listed in `not_scored` shows n/a, whatever its fields hold.
        let mut row = vec![
            v.key(),
            kind(Tagger),
            kind(Reformulator),
            kind(Entailer),
            kind(Grounder),
            kind(Segmenter),
        ];
        row.extend(
            tasks
                .iter()
                .map(|t| pct(r.and_then(|r| r.task(*t)).map(|p| p.f1))),
        );
        row.push(pct(v
            .metrics
            .span
            .as_ref()
            .and_then(|s| s.task(crate::task::Task::Gmner))
            .map(|p| p.f1)));
        row.push(v.skipped.to_string());
        b.push_record(row);
    }
    let mut t = b.build();
    t.with(Style::rounded());
    t.modify(Columns::new(6..), Alignment::right());
    let mut out = format!(
        "suite {} (run {}), F1 in percent, RiVEG seed protocol unless marked span\n",
        results.suite, results.run_id
    );
    out.push_str(&t.to_string());
    out.push('\n');
    let reasons: std::collections::BTreeSet<&String> = results
        .variants
        .iter()
        .filter_map(|v| v.not_applicable.get("span"))
        .collect();
    for r in reasons {
        out.push_str(&format!("span protocol n/a: {r}\n"));
    }
    let not_scored: std::collections::BTreeSet<String> = results
        .variants
        .iter()
        .filter_map(|v| v.metrics.riveg.as_ref())
        .map(not_scored_lines)
        .filter(|l| !l.is_empty())
        .collect();
    for l in not_scored {
        out.push_str(&l);
    }
    out
}

/// `cache stats` for people: totals, then one row per stage (entries, size, oldest, newest).
pub fn render_cache_stats(s: &crate::pipeline::cache_admin::CacheStats) -> String {
    use crate::pipeline::cache_admin::human_bytes;
    let days = |d: Option<f64>| d.map_or_else(|| "n/a".to_string(), |d| format!("{d:.1} d"));
    let mut b = tabled::builder::Builder::default();
    b.push_record(["stage", "entries", "size", "oldest", "newest"]);
    for (name, g) in &s.groups {
        b.push_record([
            name.clone(),
            g.entries.to_string(),
            human_bytes(g.bytes),
            days(g.oldest_days),
            days(g.newest_days),
        ]);
    }
    let mut t = b.build();
    t.with(Style::rounded());
    t.modify(Columns::new(1..), Alignment::right());
    let mut out = format!(
        "stage cache {}: {} entries, {}; oldest {}, newest {}",
        s.dir,
        s.entries,
        human_bytes(s.bytes),
        days(s.oldest_days),
        days(s.newest_days)
    );
    if s.tmp_files > 0 {
        out.push_str(&format!(
            "; {} temporary file(s) of runs in progress",
            s.tmp_files
        ));
    }
    out.push('\n');
    if !s.groups.is_empty() {
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}

/// `cache prune` for people: what went, then what is left.
pub fn render_prune(r: &crate::pipeline::cache_admin::PruneReport) -> String {
    let mut out = format!(
        "removed {} entries ({})",
        r.removed_entries,
        crate::pipeline::cache_admin::human_bytes(r.removed_bytes)
    );
    if r.removed_tmp_files > 0 {
        out.push_str(&format!(
            " and {} temporary file(s) of killed runs",
            r.removed_tmp_files
        ));
    }
    out.push('\n');
    out.push_str(&render_cache_stats(&r.after));
    out
}
