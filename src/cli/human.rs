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

/// One variant's cells for the run summary (strings, already formatted).
struct RunRow {
    name: String,
    /// tagger, reformulator, VE, VG, segmenter kinds.
    stages: [String; 5],
    /// (column header, value) of each F1 shown, then `skipped` and throughput.
    f1: Vec<String>,
    skipped: String,
    tweets_per_s: Option<String>,
    /// Every stage that runs is a replay or oracle look-up: the pipeline's timing is no
    /// throughput (shown as "look-up", as in summary.md's timing tables).
    lookup: bool,
}

const STAGE_HEADERS: [&str; 5] = ["tagger", "reform.", "VE", "VG", "seg."];

fn run_rows(results: &crate::results::RunResults) -> (Vec<&'static str>, Vec<RunRow>) {
    use crate::stage::Stage;
    use crate::task::Task;
    // One F1 column per compact task ([`Task::HEADLINE`]): MNER, EEG and GMNER always, the
    // others when any variant scored them.
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
    let mut headers: Vec<&'static str> = tasks.iter().map(|t| t.short_label()).collect();
    headers.push("span GMNER");
    let pct = |x: Option<f64>| {
        x.map(|v| format!("{:.2}", v * 100.0))
            .unwrap_or_else(|| "n/a".into())
    };
    let rows = results
        .variants
        .iter()
        .map(|v| {
            let kind = |s: Stage| {
                v.stages
                    .get(&s)
                    .and_then(|k| serde_json::to_value(k).ok())
                    .and_then(|j| j.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let r = v.metrics.riveg.as_ref();
            let mut f1: Vec<String> = tasks
                .iter()
                .map(|t| pct(r.and_then(|r| r.task(*t)).map(|p| p.f1)))
                .collect();
            f1.push(pct(v
                .metrics
                .span
                .as_ref()
                .and_then(|s| s.task(Task::Gmner))
                .map(|p| p.f1)));
            RunRow {
                // `<dataset>/<variant>` in multi-dataset suites.
                name: v.key(),
                stages: [
                    kind(Stage::Tagger),
                    kind(Stage::Reformulator),
                    kind(Stage::Entailer),
                    kind(Stage::Grounder),
                    kind(Stage::Segmenter),
                ],
                f1,
                skipped: v.skipped.to_string(),
                // SI prefixes as in the figures' axes (report::figures::ticks): `12.3k`, not 12345.6.
                tweets_per_s: v
                    .timings
                    .get("pipeline")
                    .filter(|t| t.count > 0 && !v.timing_is_lookup("pipeline"))
                    .map(|t| crate::report::figures::ticks::si(t.throughput_per_s)),
                lookup: v.timing_is_lookup("pipeline"),
            }
        })
        .collect();
    (headers, rows)
}

/// A rounded table, numbers (every column from `first_numeric`) right-aligned.
fn table(records: Vec<Vec<String>>, first_numeric: usize) -> String {
    let mut b = tabled::builder::Builder::default();
    for r in records {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::rounded());
    t.modify(Columns::new(first_numeric..), Alignment::right());
    t.to_string()
}

fn widest_line(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Greedy word wrap to `columns`, keeping the text's leading spaces; continuation lines are
/// indented by `indent` spaces. A word longer than a line stays whole rather than being cut.
pub fn wrap(text: &str, columns: usize, indent: usize) -> String {
    let lead = text.len() - text.trim_start().len();
    let mut out = String::new();
    let mut line = " ".repeat(lead);
    let mut has_word = false;
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if has_word && len + 1 + word.chars().count() > columns {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(indent);
            has_word = false;
        }
        if has_word {
            line.push(' ');
        }
        line.push_str(word);
        has_word = true;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `prefix` then the items joined by `, `, wrapped between items (an item such as
/// `span GMNER F1 n/a` is never split), continuation lines indented by `indent` spaces.
fn wrap_items(prefix: &str, items: &[String], columns: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut line = prefix.to_string();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        let at_start = i == 0 || line.chars().count() == indent;
        if !at_start && line.chars().count() + 1 + piece.chars().count() > columns {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(indent);
        } else if !at_start {
            line.push(' ');
        }
        line.push_str(&piece);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The short human summary of a run, as wide as it needs (no terminal to fit).
pub fn render_run(results: &crate::results::RunResults) -> String {
    render_run_fit(results, usize::MAX)
}

/// The short human summary of a run, fitted to `columns` characters: one table with the stage
/// kinds when it fits; else a table of scores with the stage kinds listed under it; else one
/// block per variant. Notes (why a protocol is n/a) are wrapped to the same width.
pub fn render_run_fit(results: &crate::results::RunResults, columns: usize) -> String {
    let (f1_headers, rows) = run_rows(results);
    let throughput = rows.iter().any(|r| r.tweets_per_s.is_some());
    let score_cells = |r: &RunRow| {
        let mut cells = r.f1.clone();
        cells.push(r.skipped.clone());
        if throughput {
            cells.push(match (&r.tweets_per_s, r.lookup) {
                (Some(t), _) => t.clone(),
                (None, true) => "look-up".into(),
                (None, false) => "n/a".into(),
            });
        }
        cells
    };
    let mut score_headers: Vec<String> = f1_headers.iter().map(|h| format!("{h} F1")).collect();
    score_headers.push("skipped".into());
    if throughput {
        score_headers.push("tweets/s".into());
    }
    let mut out = wrap(
        &format!(
            "suite {} (run {}), F1 in percent, RiVEG seed protocol unless marked span",
            results.suite, results.run_id
        ),
        columns,
        2,
    );

    let wide = {
        let mut header = vec!["variant".to_string()];
        header.extend(STAGE_HEADERS.iter().map(|s| s.to_string()));
        header.extend(score_headers.iter().cloned());
        let mut records = vec![header];
        records.extend(rows.iter().map(|r| {
            let mut row = vec![r.name.clone()];
            row.extend(r.stages.iter().cloned());
            row.extend(score_cells(r));
            row
        }));
        table(records, 1 + STAGE_HEADERS.len())
    };
    let narrow = || {
        let mut header = vec!["variant".to_string()];
        header.extend(f1_headers.iter().map(|h| h.to_string()));
        header.push("skip".into());
        if throughput {
            header.push("tweets/s".into());
        }
        let mut records = vec![header];
        records.extend(rows.iter().map(|r| {
            let mut row = vec![r.name.clone()];
            row.extend(score_cells(r));
            row
        }));
        table(records, 1)
    };
    let stage_items = |r: &RunRow| -> Vec<String> {
        STAGE_HEADERS
            .iter()
            .zip(&r.stages)
            .map(|(h, k)| format!("{h} {k}"))
            .collect()
    };
    if widest_line(&wide) <= columns {
        out.push_str(&wide);
        out.push('\n');
    } else if let Some(t) = Some(narrow()).filter(|t| widest_line(t) <= columns) {
        out.push_str(&t);
        out.push_str("\nstages of each variant:\n");
        for r in &rows {
            out.push_str(&wrap_items(
                &format!("  {}: ", r.name),
                &stage_items(r),
                columns,
                4,
            ));
        }
    } else {
        for r in &rows {
            out.push_str(&format!("\n{}\n", r.name));
            out.push_str(&wrap_items("  stages: ", &stage_items(r), columns, 4));
            let scores: Vec<String> = score_headers
                .iter()
                .zip(score_cells(r))
                .map(|(h, v)| format!("{h} {v}"))
                .collect();
            out.push_str(&wrap_items("  ", &scores, columns, 4));
        }
    }
    // One note per distinct reason, naming its variants (the reason is often long and shared).
    let mut reasons: std::collections::BTreeMap<&String, Vec<&str>> = Default::default();
    for v in &results.variants {
        if let Some(r) = v.not_applicable.get("span") {
            reasons.entry(r).or_default().push(&v.name);
        }
    }
    for (reason, variants) in reasons {
        let which = if variants.len() == results.variants.len() {
            "all variants".to_string()
        } else {
            variants.join(", ")
        };
        out.push_str(&wrap(
            &format!("span protocol n/a ({which}): {reason}"),
            columns,
            2,
        ));
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
    if s.superseded > 0 {
        out.push_str(&format!(
            "; {} superseded or unreadable record(s) (`cache prune` drops them)",
            s.superseded
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_indents() {
        assert_eq!(
            wrap("span protocol n/a: needs token offsets", 21, 2),
            "span protocol n/a:\n  needs token offsets\n"
        );
        // A word longer than the line is kept whole.
        assert_eq!(
            wrap("  a verylongword b", 6, 4),
            "  a\n    verylongword\n    b\n"
        );
        assert_eq!(wrap("short", usize::MAX, 2), "short\n");
    }

    #[test]
    fn wrap_items_breaks_between_items_only() {
        let items: Vec<String> = ["MNER F1 86.15", "span GMNER F1 n/a", "skipped 0"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            wrap_items("  ", &items, 36, 4),
            "  MNER F1 86.15, span GMNER F1 n/a,\n    skipped 0\n"
        );
    }
}
