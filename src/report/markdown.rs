//! `summary.md` of a run: Markdown tables (tabled's Markdown style) built from `results.json`,
//! the published baselines and criterion estimates. Returns a string; it must not write files or
//! compute a metric (the numbers come from [`RunResults`] as they are; only formatting happens here).
//!
//! Deterministic: variants in run order, stages in pipeline order, maps in key order, and no
//! clock: the only date is the run's own `meta.started_unix`.

use polars::prelude::{DataFrame, PolarsResult};
use tabled::builder::Builder;
use tabled::settings::{object::Columns, Alignment, Style};

use super::figures::stage_order;
use crate::bench::criterion_estimates::CriterionEstimate;
use crate::compare::baselines::{PublishedRow, PublishedTable};
use crate::metrics::eval::EvalReport;
use crate::metrics::tables::{
    diagnostics_frame, errors_frame, frame_cells, groundability_frame, per_type_frame_scored,
};
use crate::metrics::Prf;
use crate::results::{RunResults, VariantResult};
use crate::task::Task;

/// What the summary shows besides the results themselves.
#[derive(Debug, Clone, Default)]
pub struct SummaryInputs<'a> {
    /// Published rows shown beside the run in the main table, in order.
    pub baselines: Vec<(&'a PublishedTable, &'a PublishedRow)>,
    /// Criterion estimates (`--criterion-dir`), sorted by id.
    pub criterion: &'a [CriterionEstimate],
    /// The criterion directory as given, when one was.
    pub criterion_dir: Option<String>,
    /// Estimates files that could not be read.
    pub criterion_unreadable: Vec<String>,
    /// Figure files written beside summary.md (the first format), with a caption each.
    pub figures: Vec<(String, String)>,
    /// Table exports written beside summary.md (CSV, LaTeX).
    pub exports: Vec<String>,
    /// Other formats the figures were also written in (`svg`).
    pub other_figure_formats: Vec<String>,
}

/// Escapes a cell for a Markdown table (pipes, newlines).
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A Markdown table; columns whose every cell parses as a number are right-aligned.
pub fn md_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut b = Builder::default();
    b.push_record(headers.iter().map(|h| cell(h)));
    for r in rows {
        b.push_record(r.iter().map(|c| cell(c)));
    }
    let mut t = b.build();
    t.with(Style::markdown());
    for c in 0..headers.len() {
        let numeric = !rows.is_empty()
            && rows.iter().all(|r| {
                r.get(c).is_some_and(|v| {
                    // "n/a" (an undefined ratio, a task not scored) sits in number columns.
                    v == "-"
                        || v == "n/a"
                        || v.trim_start_matches(['+', '-']).parse::<f64>().is_ok()
                })
            });
        if numeric {
            t.modify(Columns::one(c), Alignment::right());
        }
    }
    t.to_string()
}

fn frame_table(df: PolarsResult<DataFrame>) -> String {
    match df {
        Ok(df) => {
            let (headers, rows) = frame_cells(&df);
            let h: Vec<&str> = headers.iter().map(String::as_str).collect();
            md_table(&h, &rows)
        }
        Err(e) => format!("(table unavailable: {e})"),
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

fn prf_cells(p: &Prf) -> [String; 3] {
    [pct(p.precision), pct(p.recall), pct(p.f1)]
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds.
pub fn format_utc(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = crate::util::utc_parts(unix);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// A path for people: `.` and `..` resolved without touching the disk, then relative to the
/// working directory (the project) when it lies inside it, or to its parent (`../shared/...`,
/// the data beside the project); other paths stay absolute. Machine paths such as
/// `/work/wt/reports/../shared/x` would otherwise leak into reports.
pub fn display_path(p: &str) -> String {
    use std::path::{Component, Path, PathBuf};
    let normalise = |p: &Path| -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    if !out.pop() {
                        out.push("..");
                    }
                }
                other => out.push(other.as_os_str()),
            }
        }
        out
    };
    let path = normalise(Path::new(p));
    let Ok(cwd) = std::env::current_dir() else {
        return path.display().to_string();
    };
    if !path.is_absolute() {
        return path.display().to_string();
    }
    if let Ok(rel) = path.strip_prefix(&cwd) {
        return rel.display().to_string();
    }
    if let Some(parent) = cwd.parent().filter(|p| p.parent().is_some()) {
        if let Ok(rel) = path.strip_prefix(parent) {
            return Path::new("..").join(rel).display().to_string();
        }
    }
    path.display().to_string()
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

fn reports(v: &VariantResult) -> Vec<(&'static str, &EvalReport)> {
    let mut out = Vec::new();
    if let Some(r) = &v.metrics.riveg {
        out.push(("riveg", r));
    }
    if let Some(r) = &v.metrics.span {
        out.push(("span", r));
    }
    out
}

/// The multimodal LLM's cost when one ran: requests, cache hits, latency per tweet, and tokens
/// per second where the endpoint reported usage.
fn llm_section(r: &RunResults, out: &mut String) {
    let Some(m) = r.meta.llm.as_ref().and_then(|l| l.mllm.as_ref()) else {
        return;
    };
    let t = &m.latency_ms;
    let rows = vec![vec![
        m.model.clone(),
        m.requests_sent.to_string(),
        m.cache_hits.to_string(),
        m.tweets_ok.to_string(),
        if t.count > 0 {
            ms(t.p50_ms)
        } else {
            "n/a".into()
        },
        if t.count > 0 {
            ms(t.p95_ms)
        } else {
            "n/a".into()
        },
        m.tokens_per_s
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "n/a (no usage reported)".into()),
    ]];
    out.push_str("## Multimodal LLM\n\n");
    out.push_str(&md_table(
        &[
            "model",
            "requests",
            "cache hits",
            "tweets answered",
            "p50 ms per tweet",
            "p95 ms per tweet",
            "tokens/s",
        ],
        &rows,
    ));
    out.push_str("\n\n");
}

fn meta_section(r: &RunResults, out: &mut String) {
    let m = &r.meta;
    let rows = vec![
        vec!["suite".into(), r.suite.clone()],
        vec!["run id".into(), r.run_id.clone()],
        vec!["started".into(), format_utc(m.started_unix)],
        vec!["tool version".into(), m.tool_version.clone()],
        vec!["git commit".into(), opt(&m.git_commit)],
        vec!["host".into(), opt(&m.hostname)],
        vec!["os".into(), m.os.clone()],
        vec!["cpu".into(), format!("{} ({} cores)", opt(&m.cpu), m.cores)],
        vec!["execution provider".into(), m.execution_provider.clone()],
        vec!["shard".into(), opt(&m.shard)],
        vec![
            "gold".into(),
            if m.gold.is_empty() {
                "-".into()
            } else {
                m.gold
                    .iter()
                    .map(|g| display_path(g))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ],
    ];
    out.push_str("## Run\n\n");
    out.push_str(&md_table(&["field", "value"], &rows));
    out.push_str("\n\n");
    llm_section(r, out);
}

fn variants_section(r: &RunResults, out: &mut String) {
    let rows: Vec<Vec<String>> = r
        .variants
        .iter()
        .map(|v| {
            let stages: Vec<String> = v
                .stages
                .iter()
                .map(|(s, k)| {
                    let kind = serde_json::to_value(k)
                        .ok()
                        .and_then(|x| x.as_str().map(str::to_string))
                        .unwrap_or_default();
                    format!("{}={kind}", s.name())
                })
                .collect();
            vec![
                v.name.clone(),
                if v.description.is_empty() {
                    "-".into()
                } else {
                    v.description.clone()
                },
                stages.join(", "),
                v.tweets.to_string(),
                v.skipped.to_string(),
            ]
        })
        .collect();
    out.push_str("## Variants\n\n");
    out.push_str(&md_table(
        &["variant", "description", "stages", "tweets", "skipped"],
        &rows,
    ));
    out.push_str("\n\n");
}

fn main_table(r: &RunResults, inputs: &SummaryInputs<'_>, out: &mut String) {
    let (table, not_applicable) = super::export::main_results_table(r, &inputs.baselines, Some(2));
    let headers: Vec<&str> = table.headers.iter().map(String::as_str).collect();
    let rows = table.rows;
    out.push_str("## Main results (percent)\n\n");
    out.push_str(&md_table(&headers, &rows));
    out.push_str("\n\n");
    out.push_str(
        "Protocols: `riveg` = the RiVEG seed protocol (statistic.py: image id + entity string (+ type), \
         greedy in file order, box IoU >= 0.5); `span` = H-Index / seqeval style (tweet, start, end, type), \
         scored against predicted boxes directly.",
    );
    if !inputs.baselines.is_empty() {
        out.push_str(
            " Published rows marked `as reported` come from their papers / H-Index (Yu et al., 2023) and were \
             not re-scored with the RiVEG protocol; `secondary source` rows are approximate F1 quoted by later papers.",
        );
        let mut sources: Vec<&PublishedTable> = Vec::new();
        for (t, _) in &inputs.baselines {
            if !sources.iter().any(|s| s.source.id == t.source.id) {
                sources.push(t);
            }
        }
        out.push_str("\n\nSources:\n");
        for t in sources {
            let s = &t.source;
            out.push_str(&format!(
                "- {}, \"{}\", {}; {}{}{}\n",
                s.authors,
                s.title,
                s.venue,
                s.table,
                if s.arxiv.is_empty() {
                    String::new()
                } else {
                    format!("; arXiv {}", s.arxiv)
                },
                if s.url.is_empty() {
                    String::new()
                } else {
                    format!("; {}", s.url)
                },
            ));
        }
    } else {
        out.push('\n');
    }
    for n in not_applicable {
        out.push_str(&format!("\n- not scored: {n}"));
    }
    out.push('\n');
}

fn fine_and_masks(r: &RunResults, out: &mut String) {
    out.push_str("\n## FMNERG and SMNER (percent)\n\n");
    let mut rows = Vec::new();
    for v in &r.variants {
        for (protocol, rep) in reports(v) {
            // The tasks that depend on the data (fine types, masks), in Task::ALL order.
            let tasks = Task::ALL
                .into_iter()
                .filter(|t| !t.always_scored())
                .map(|t| (t.label(), rep.task_present(t), rep.is_scored(t)));
            for (name, p, scored) in tasks {
                if let Some(p) = p {
                    let mut row = vec![v.name.clone(), protocol.to_string(), name.to_string()];
                    if scored {
                        row.extend(prf_cells(p));
                    } else {
                        row.extend(["n/a".to_string(), "n/a".into(), "n/a".into()]);
                    }
                    row.extend([
                        if scored {
                            p.correct.to_string()
                        } else {
                            "n/a".into()
                        },
                        p.predicted.to_string(),
                        p.gold.to_string(),
                    ]);
                    rows.push(row);
                }
            }
        }
    }
    let any_fine = r
        .variants
        .iter()
        .flat_map(reports)
        .any(|(_, rep)| rep.task(Task::Fmnerg).is_some());
    let any_masks = r
        .variants
        .iter()
        .flat_map(reports)
        .any(|(_, rep)| rep.task(Task::Smner).is_some());
    if !rows.is_empty() {
        out.push_str(&md_table(
            &[
                "variant",
                "protocol",
                "task",
                "P",
                "R",
                "F1",
                "correct",
                "predicted",
                "gold",
            ],
            &rows,
        ));
        out.push_str("\n\n");
    }
    if !any_fine {
        out.push_str(&format!(
            "- {}: not scored: no fine types in the data\n",
            Task::Fmnerg.short_label()
        ));
    }
    if !any_masks {
        out.push_str(&format!(
            "- {}: not scored: no masks in the data\n",
            Task::Smner.short_label()
        ));
    }
}

fn details(r: &RunResults, out: &mut String) {
    out.push_str("\n## Details per variant\n");
    for v in &r.variants {
        for (protocol, rep) in reports(v) {
            out.push_str(&format!("\n### {} ({protocol} protocol)\n\n", v.name));
            out.push_str("Per type (percent):\n\n");
            out.push_str(&frame_table(per_type_frame_scored(
                &rep.per_type,
                rep.grounding_scored(),
            )));
            if rep.grounding_scored() {
                out.push_str(
                    "\n\nGMNER by gold groundability (predicted = by the prediction's decision):\n\n",
                );
                out.push_str(&frame_table(groundability_frame(rep)));
                out.push_str("\n\nGMNER error sources (entities):\n\n");
                out.push_str(&frame_table(errors_frame(rep)));
            } else {
                // Error sources would count every groundable gold entity as a grounding error.
                let why = rep.not_scored_reason("gmner").unwrap_or_default();
                out.push_str(&format!(
                    "\n\nGMNER by gold groundability and error sources: n/a ({why})\n"
                ));
            }
            out.push_str("\n\nStage diagnostics (percent):\n\n");
            out.push_str(&frame_table(diagnostics_frame(rep)));
            out.push('\n');
        }
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

fn timings(r: &RunResults, out: &mut String) {
    out.push_str("\n## Stage timings\n\n");
    out.push_str(
        "Per-item latency in milliseconds. Warm-up items (the first calls of each stage instance) are \
         excluded from count, percentiles and throughput; cached items were served from the stage cache \
         and not measured. items/s = measured items / measured time. Rows marked (look-up) are replayed \
         recordings or gold oracles: their latencies are look-ups, not model work, and have no items/s.\n",
    );
    let order = stage_order(r);
    for v in &r.variants {
        out.push_str(&format!("\n### {}\n\n", v.name));
        if v.timings.is_empty() {
            out.push_str("(no timings recorded)\n");
            continue;
        }
        let rows: Vec<Vec<String>> = order
            .iter()
            .filter_map(|s| v.timings.get(s).map(|t| (s, t)))
            .map(|(s, t)| {
                // Replay / oracle rows time look-ups, not work: labelled, no throughput claim.
                let lookup = v.timing_is_lookup(s);
                vec![
                    if lookup {
                        format!("{s} (look-up)")
                    } else {
                        s.clone()
                    },
                    t.count.to_string(),
                    t.cached.to_string(),
                    t.warmup_excluded.to_string(),
                    ms(t.mean_ms),
                    ms(t.p50_ms),
                    ms(t.p95_ms),
                    ms(t.p99_ms),
                    ms(t.max_ms),
                    if lookup {
                        "n/a".to_string()
                    } else {
                        format!("{:.1}", t.throughput_per_s)
                    },
                ]
            })
            .collect();
        out.push_str(&md_table(
            &[
                "stage",
                "count",
                "cached",
                "warm-up excluded",
                "mean ms",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "items/s",
            ],
            &rows,
        ));
        out.push('\n');
        let few: Vec<String> = order
            .iter()
            .filter_map(|s| v.timings.get(s).map(|t| (s, t)))
            .filter(|(_, t)| t.count > 0 && t.count < super::figures::timing::MIN_ITEMS_FOR_BOX)
            .map(|(s, t)| format!("{s} (n = {})", t.count))
            .collect();
        if !few.is_empty() {
            out.push_str(&format!(
                "\nFewer than {} measured items: {}; their p95/p99 are close to the max and say \
                 little (latency figure: every item drawn).\n",
                super::figures::timing::MIN_ITEMS_FOR_BOX,
                few.join(", ")
            ));
        }
    }
}

/// How many skipped items are listed in the summary (all are in results.json).
pub const SKIPPED_LISTED: usize = 20;

fn skipped(r: &RunResults, out: &mut String) {
    let total: usize = r.variants.iter().map(|v| v.skipped).sum();
    out.push_str(&format!(
        "\n## Skipped items\n\n{total} skipped in total (`--on-error skip`).\n"
    ));
    if total == 0 {
        return;
    }
    out.push('\n');
    let counts: Vec<Vec<String>> = r
        .variants
        .iter()
        .map(|v| vec![v.name.clone(), v.skipped.to_string()])
        .collect();
    out.push_str(&md_table(&["variant", "skipped"], &counts));
    out.push('\n');
    let items: Vec<Vec<String>> = r
        .variants
        .iter()
        .flat_map(|v| {
            v.skipped_items.iter().map(move |s| {
                vec![
                    v.name.clone(),
                    s.tweet_id.clone(),
                    s.stage.name().to_string(),
                    s.error.clone(),
                ]
            })
        })
        .collect();
    if !items.is_empty() {
        out.push_str(&format!(
            "\nFirst {} of {} (all in results.json):\n\n",
            items.len().min(SKIPPED_LISTED),
            items.len()
        ));
        out.push_str(&md_table(
            &["variant", "tweet", "stage", "error"],
            &items[..items.len().min(SKIPPED_LISTED)],
        ));
        out.push('\n');
    }
}

fn criterion(inputs: &SummaryInputs<'_>, out: &mut String) {
    let Some(dir) = &inputs.criterion_dir else {
        return;
    };
    out.push_str(&format!(
        "\n## Criterion benchmarks (`{}`)\n\n",
        display_path(dir)
    ));
    if inputs.criterion.is_empty() {
        out.push_str(
            "No estimates found (run `cargo bench` first; estimates live in target/criterion).\n",
        );
    } else {
        // criterion's `time:` is its typical estimate (slope, or mean in flat sampling mode):
        // the table shows that one first so it matches what `cargo bench` printed.
        let ms = |ns: f64| format!("{:.4}", ns / 1e6);
        let rows: Vec<Vec<String>> = inputs
            .criterion
            .iter()
            .map(|e| {
                let typical = e.typical_ns();
                vec![
                    e.id.clone(),
                    ms(typical),
                    e.typical_ci_ns
                        .map(|[lo, hi]| format!("[{}, {}]", ms(lo), ms(hi)))
                        .unwrap_or_else(|| "-".into()),
                    if e.slope_ns.is_some() {
                        "slope"
                    } else {
                        "mean"
                    }
                    .to_string(),
                    ms(e.mean_ns),
                    ms(e.median_ns),
                    ms(e.std_dev_ns),
                    e.elements
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.elements
                        .filter(|_| typical > 0.0)
                        .map(|n| format!("{:.1}", n as f64 / (typical / 1e9)))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&md_table(
            &[
                "benchmark",
                "time ms",
                "time CI ms",
                "estimate",
                "mean ms",
                "median ms",
                "std dev ms",
                "elements",
                "elements/s",
            ],
            &rows,
        ));
        out.push_str(
            "\n\n`time` is what `cargo bench` prints (criterion's typical estimate: the regression slope, \
             or the mean in flat sampling mode), with its confidence interval; elements/s uses it too.\n",
        );
    }
    for p in &inputs.criterion_unreadable {
        out.push_str(&format!("\n- unreadable: `{}`", display_path(p)));
    }
    if !inputs.criterion_unreadable.is_empty() {
        out.push('\n');
    }
}

/// The whole `summary.md` of a run with one dataset.
pub fn render_summary(results: &RunResults, inputs: &SummaryInputs<'_>) -> String {
    let mut out = format!("# riveg-bench run `{}`\n\n", results.run_id);
    meta_section(results, &mut out);
    out.push_str(&render_sections(results, inputs));
    out
}

/// The part of a run with several datasets that comes before the per-dataset sections: the
/// run's meta data and which variants ran on which dataset.
pub fn datasets_overview(results: &RunResults) -> String {
    let mut out = String::from("\n");
    meta_section(results, &mut out);
    let rows: Vec<Vec<String>> = results
        .datasets()
        .into_iter()
        .map(|d| {
            let names: Vec<&str> = results
                .variants
                .iter()
                .filter(|v| v.dataset == d)
                .map(|v| v.name.as_str())
                .collect();
            vec![d.unwrap_or_else(|| "data".into()), names.join(", ")]
        })
        .collect();
    out.push_str("\n## Datasets\n\n");
    out.push_str(&md_table(&["dataset", "variants"], &rows));
    out.push('\n');
    out
}

/// Every Markdown heading one level deeper (a dataset's summary as a section of the run's).
pub fn demote_headings(md: &str) -> String {
    let mut out = String::with_capacity(md.len() + 64);
    let mut fence = false;
    for line in md.lines() {
        if line.starts_with("```") {
            fence = !fence;
        }
        if !fence && line.starts_with('#') {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Which tasks the results do not score, and why (`not_scored` of each entry; variants with
/// the same reason are listed together).
fn not_scored_section(results: &RunResults, out: &mut String) {
    let mut reasons: std::collections::BTreeMap<(Task, &str), Vec<&str>> =
        std::collections::BTreeMap::new();
    for v in &results.variants {
        for (key, why) in &v.not_scored {
            if let Some(t) = Task::parse(key) {
                reasons
                    .entry((t, why.as_str()))
                    .or_default()
                    .push(v.name.as_str());
            }
        }
    }
    if reasons.is_empty() {
        return;
    }
    out.push_str("\n## Not scored\n\n");
    let all = results.variants.len();
    let rows: Vec<Vec<String>> = reasons
        .into_iter()
        .map(|((t, why), names)| {
            let who = if names.len() == all {
                "all".to_string()
            } else {
                names.join(", ")
            };
            vec![t.label().to_string(), why.to_string(), who]
        })
        .collect();
    out.push_str(&md_table(&["task", "why", "variants"], &rows));
    out.push('\n');
}

/// The summary's sections after the meta data (one dataset's results).
pub fn render_sections(results: &RunResults, inputs: &SummaryInputs<'_>) -> String {
    let mut out = String::new();
    variants_section(results, &mut out);
    main_table(results, inputs, &mut out);
    fine_and_masks(results, &mut out);
    not_scored_section(results, &mut out);
    details(results, &mut out);
    timings(results, &mut out);
    skipped(results, &mut out);
    criterion(inputs, &mut out);
    if !inputs.exports.is_empty() {
        out.push_str("\n## Exports\n\n");
        out.push_str(
            "The tables as CSV (full precision) and LaTeX booktabs (two decimals, needs \
             `\\usepackage{booktabs}`):\n\n",
        );
        for e in &inputs.exports {
            out.push_str(&format!("- [{e}]({e})\n"));
        }
    }
    if !inputs.figures.is_empty() {
        out.push_str("\n## Figures\n\n");
        if !inputs.other_figure_formats.is_empty() {
            out.push_str(&format!(
                "Each figure is also written as {} (same name), laid out for a 3.25 in column \
                 (text >= 7 pt at that width).\n\n",
                inputs.other_figure_formats.join(", ")
            ));
        }
        for (file, caption) in &inputs.figures {
            out.push_str(&format!("### {caption}\n\n![{caption}]({file})\n\n"));
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_795_000_000), "2026-11-18 11:06:40 UTC");
    }

    #[test]
    fn paths_are_shown_relative_to_the_project() {
        let cwd = std::env::current_dir().unwrap();
        let inside = cwd.join("suites/../reports/x/results.json");
        assert_eq!(
            display_path(&inside.display().to_string()),
            "reports/x/results.json"
        );
        let beside = cwd.join("../shared/datasets/g.txt");
        assert_eq!(
            display_path(&beside.display().to_string()),
            "../shared/datasets/g.txt"
        );
        assert_eq!(display_path("a/./b/../c.txt"), "a/c.txt");
    }

    #[test]
    fn pipes_are_escaped() {
        let t = md_table(&["a"], &[vec!["x|y".into()]]);
        assert!(t.contains("x\\|y"), "{t}");
    }
}
