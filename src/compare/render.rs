//! Renderers of a [`Comparison`]: a human table, a Markdown diff table and JSON. They return
//! strings; they must not print or write files (the report writer owns paths).
//! Scores are shown as percentages, deltas and CIs in percentage points, two decimals.

use tabled::builder::Builder;
use tabled::settings::{object::Columns, Alignment, Style};

use super::{Comparison, TestUsed, VariantComparison};

fn pct(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

fn points(v: f64) -> String {
    let p = v * 100.0;
    // -0.00 reads as a regression; show it as 0.00.
    if p.abs() < 0.005 {
        "+0.00".to_string()
    } else {
        format!("{p:+.2}")
    }
}

fn ci(c: &Option<[f64; 2]>) -> String {
    match c {
        Some([lo, hi]) => format!("[{}, {}]", points(*lo), points(*hi)),
        None => "-".to_string(),
    }
}

fn p_value(p: Option<f64>, samples: usize) -> String {
    match p {
        Some(p) if p <= 0.0 => format!("< {}", format_p(1.0 / samples.max(1) as f64)),
        Some(p) => format_p(p),
        None => "-".to_string(),
    }
}

fn format_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

fn pair_title(c: &Comparison, p: &VariantComparison) -> String {
    if p.base_variant == p.new_variant {
        p.base_variant.clone()
    } else {
        format!("{} → {}", p.base_variant, p.new_variant)
    }
    .to_string()
        + &match &p.test {
            TestUsed::PairedBootstrap { tweets, samples, seed, alpha } => format!(
                " (paired bootstrap over {tweets} tweets, {samples} resamples, seed {seed}, {:.0}% CI, {} protocol)",
                (1.0 - alpha) * 100.0,
                c.protocol.name()
            ),
            TestUsed::None { reason } => format!(" ({reason})"),
        }
}

fn table(c: &Comparison, p: &VariantComparison, markdown: bool) -> String {
    let ci_head = format!("{:.0}% CI (points)", (1.0 - c.options.alpha) * 100.0);
    // Without a significance test the CI and p columns would be all "-": leave them out so the
    // table fits a terminal.
    let tested = p
        .metrics
        .iter()
        .any(|m| m.ci.is_some() || m.p_value.is_some());
    let any_gate = p.metrics.iter().any(|m| m.gated);
    let mut head = vec!["metric", "base", "new", "delta (points)"];
    if tested {
        head.extend([ci_head.as_str(), "p"]);
    }
    head.push("verdict");
    if any_gate {
        head.push("gate");
    }
    let mut b = Builder::default();
    b.push_record(head.iter().map(|h| h.to_string()));
    for m in &p.metrics {
        let gate = match (m.gated, m.gate_failed) {
            (true, true) => "FAILED",
            (true, false) => "ok",
            _ => "",
        };
        let mut row = vec![m.key.clone(), pct(m.base), pct(m.new), points(m.delta)];
        if tested {
            row.extend([ci(&m.ci), p_value(m.p_value, c.options.samples)]);
        }
        row.push(m.verdict.label().to_string());
        if any_gate {
            row.push(gate.to_string());
        }
        b.push_record(row);
    }
    let mut t = b.build();
    if markdown {
        t.with(Style::markdown());
    } else {
        t.with(Style::rounded());
    }
    let numeric_end = if tested { 6 } else { 4 };
    t.modify(Columns::new(1..numeric_end), Alignment::right());
    t.to_string()
}

/// One metric per line, for terminals narrower than the table.
fn list(c: &Comparison, p: &VariantComparison) -> String {
    let ci_level = format!("{:.0}% CI", (1.0 - c.options.alpha) * 100.0);
    let mut out = String::new();
    for m in &p.metrics {
        let gate = match (m.gated, m.gate_failed) {
            (true, true) => "  gate FAILED",
            (true, false) => "  gate ok",
            _ => "",
        };
        out.push_str(&format!(
            "  {}: {} -> {} ({} points{}{}) {}{gate}\n",
            m.key,
            pct(m.base),
            pct(m.new),
            points(m.delta),
            m.ci.map(|_| format!(", {ci_level} {}", ci(&m.ci)))
                .unwrap_or_default(),
            m.p_value
                .map(|_| format!(", p {}", p_value(m.p_value, c.options.samples)))
                .unwrap_or_default(),
            m.verdict.label(),
        ));
    }
    out
}

/// The human output of `compare` for a terminal `columns` wide: tables, or one metric per line
/// when a table would wrap.
pub fn render_human_fit(c: &Comparison, columns: usize) -> String {
    let mut out = format!(
        "base: {}\n      {}\nnew:  {}\n      {}\n",
        c.base.label, c.base.detail, c.new.label, c.new.detail
    );
    for p in &c.pairs {
        out.push('\n');
        out.push_str(&pair_title(c, p));
        out.push('\n');
        let t = table(c, p, false);
        if t.lines().map(|l| l.chars().count()).max().unwrap_or(0) <= columns {
            out.push_str(&t);
            out.push('\n');
        } else {
            out.push_str(&list(c, p));
        }
        for n in &p.notes {
            out.push_str(&format!("note: {n}\n"));
        }
    }
    for n in &c.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&summary_line(c));
    out.push('\n');
    out
}

/// The human output of `compare`: one table per variant pair, then notes and the verdict line.
pub fn render_human(c: &Comparison) -> String {
    render_human_fit(c, usize::MAX)
}

fn summary_line(c: &Comparison) -> String {
    let failed = c.failed_gates();
    if c.options.gated.is_empty() {
        "result: nothing gated; exit code 0".to_string()
    } else if failed.is_empty() {
        format!(
            "result: no gated metric regressed ({}); exit code 0",
            c.options.gated.join(", ")
        )
    } else {
        let what: Vec<String> = failed
            .iter()
            .map(|(p, m)| format!("{} {} {}", p.new_variant, m.key, points(m.delta)))
            .collect();
        format!("result: REGRESSION in {}; exit code 1", what.join(", "))
    }
}

/// The Markdown of `compare --report DIR` (`compare.md`).
pub fn render_markdown(c: &Comparison) -> String {
    let mut out = String::from("# riveg-bench compare\n\n");
    out.push_str(&format!(
        "- base: **{}** ({})\n",
        c.base.label, c.base.detail
    ));
    if let Some(n) = &c.base.protocol_note {
        out.push_str(&format!("  - protocol: {n}\n"));
    }
    out.push_str(&format!("- new: **{}** ({})\n", c.new.label, c.new.detail));
    if let Some(n) = &c.new.protocol_note {
        out.push_str(&format!("  - protocol: {n}\n"));
    }
    out.push_str(&format!(
        "- run-side metrics: {} protocol; gated: {}; threshold: {} points; alpha: {}\n",
        c.protocol.name(),
        c.options.gated.join(", "),
        format_args!("{}", c.options.threshold * 100.0),
        c.options.alpha
    ));
    for p in &c.pairs {
        out.push_str(&format!("\n## {}\n\n", pair_title(c, p)));
        out.push_str(&table(c, p, true));
        out.push('\n');
        for n in &p.notes {
            out.push_str(&format!("\n> note: {n}\n"));
        }
    }
    if !c.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for n in &c.notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out.push_str("\n## How to read this\n\n");
    out.push_str(
        "Scores are percentages; deltas and CIs are percentage points (new - base). Paired bootstrap: \
         tweets are resampled with replacement (same draws for both sides), micro P/R/F1 recomputed \
         from summed per-tweet counts; the CI is the percentile interval of the resampled deltas; p is \
         twice the fraction of resampled deltas on the other side of zero (capped at 1). A change is \
         Improved / Regressed when p < alpha and |delta| >= threshold; without a test (published \
         numbers) when |delta| > threshold.\n",
    );
    out.push_str(&format!("\n**{}**\n", summary_line(c)));
    out
}

/// The JSON of `compare --format json` (pretty, stable field order).
pub fn render_json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise comparison: {e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, CompareOptions, Side};

    #[test]
    fn narrow_terminals_get_one_metric_per_line() {
        let base = Side::published("h-index").unwrap();
        let new = Side::published("riveg-roberta-dagger").unwrap();
        let c = compare(&base, &new, &CompareOptions::default()).unwrap();
        let wide = render_human_fit(&c, 200);
        assert!(wide.contains("│ gmner.f1 "), "{wide}");
        let narrow = render_human_fit(&c, 60);
        assert!(
            narrow.contains("  gmner.f1: 56.41 -> 67.06 (+10.65 points) Improved\n"),
            "{narrow}"
        );
        assert!(!narrow.contains('│'));
        assert!(narrow.ends_with("result: nothing gated; exit code 0\n"));
    }
}
