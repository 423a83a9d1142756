//! PNG figures (plotters on an in-memory RGB buffer, DejaVu Sans from the `dejavu` crate, PNG
//! encoded by `image`): ablation F1 bars, GMNER error sources, per-stage latency and throughput,
//! criterion estimates, and compare deltas. Each renderer returns PNG bytes; none writes files or
//! computes a metric (they only draw numbers already in results, estimates or a comparison).
//!
//! Output is deterministic: fixed sizes, fixed colours, input order kept, and PNG encoding has no
//! timestamp. Log scales are drawn on log10-transformed values with labels in the original units,
//! so every chart shares one linear coordinate type.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::ReportError;
use crate::bench::criterion_estimates::CriterionEstimate;
use crate::bench::{percentile, StageTiming};
use crate::compare::{Comparison, Verdict};
use crate::results::RunResults;

/// The font family every figure uses (registered once from the `dejavu` crate).
pub const FONT: &str = "sans-serif";

/// Okabe–Ito colours (readable with colour-vision deficiencies), in series order.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // green
    RGBColor(204, 121, 167), // purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(240, 228, 66),  // yellow
    RGBColor(80, 80, 80),    // grey
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Registers DejaVu Sans once; text drawing fails without a registered font.
fn ensure_fonts() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Figure {
            figure: "fonts".into(),
            why: "the embedded DejaVu Sans font did not load".into(),
        })
    }
}

/// Draws on a white `width`×`height` canvas and returns the PNG bytes.
fn render_png(
    figure: &str,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<Vec<u8>, ReportError> {
    ensure_fonts()?;
    let (w, h) = size;
    let fail = |why: String| ReportError::Figure {
        figure: figure.to_string(),
        why,
    };
    let mut buf = vec![255u8; (w as usize) * (h as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        draw(&root).map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img =
        image::RgbImage::from_raw(w, h, buf).ok_or_else(|| fail("buffer size mismatch".into()))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| fail(format!("PNG encoding: {e}")))?;
    Ok(out.into_inner())
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// A row of legend swatches, centred, at `y` (pixels from the top of `area`).
fn draw_legend(area: &Area<'_>, y: i32, items: &[(String, RGBColor)]) -> DrawResult {
    let style = font(15);
    let widths: Vec<i32> = items
        .iter()
        .map(|(t, _)| {
            area.estimate_text_size(t, &style)
                .map(|(w, _)| w as i32 + 40)
        })
        .collect::<Result<_, _>>()?;
    let total: i32 = widths.iter().sum();
    let mut x = ((area.dim_in_pixel().0 as i32) - total).max(0) / 2;
    for ((text, c), w) in items.iter().zip(widths) {
        area.draw(&Rectangle::new([(x, y - 7), (x + 18, y + 7)], c.filled()))?;
        area.draw(&Rectangle::new(
            [(x, y - 7), (x + 18, y + 7)],
            BLACK.stroke_width(1),
        ))?;
        area.draw_text(
            text,
            &style.pos(Pos::new(HPos::Left, VPos::Center)),
            (x + 24, y),
        )?;
        x += w;
    }
    Ok(())
}

/// Shortens a label to `max_chars` characters with an ellipsis.
fn fit(label: &str, max_chars: usize) -> String {
    if label.chars().count() <= max_chars {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max_chars.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Compact number for axis labels and bar values (3 significant digits, k/M suffixes).
fn compact(v: f64) -> String {
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e4 {
        format!("{v:.0}")
    } else if a >= 1e6 {
        let s = format!("{:.2}", v / 1e6);
        format!("{}M", s.trim_end_matches('0').trim_end_matches('.'))
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        let s = format!("{v:.3}");
        if s.trim_start_matches('-')
            .trim_start_matches('0')
            .trim_start_matches('.')
            .trim_start_matches('0')
            .is_empty()
        {
            format!("{v:.1e}")
        } else {
            s
        }
    }
}

/// A value axis, linear or log10 (values must then be > 0).
#[derive(Clone, Copy)]
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn linear(lo: f64, hi: f64) -> Axis {
        Axis { log: false, lo, hi }
    }
    /// Decade-aligned log axis covering every positive value (1..10 when there is none).
    fn log_over(values: impl Iterator<Item = f64>) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return Axis {
                log: true,
                lo: 0.0,
                hi: 1.0,
            };
        }
        let (a, b) = (lo.log10().floor(), hi.log10().ceil());
        Axis {
            log: true,
            lo: a,
            hi: if b <= a { a + 1.0 } else { b },
        }
    }
    fn t(&self, v: f64) -> f64 {
        if self.log {
            if v > 0.0 {
                v.log10().clamp(self.lo, self.hi)
            } else {
                self.lo
            }
        } else {
            v
        }
    }
    fn label(&self, v: f64) -> String {
        if self.log {
            compact(10f64.powf(v))
        } else {
            compact(v)
        }
    }
    fn labels(&self) -> usize {
        if self.log {
            ((self.hi - self.lo) as usize + 1).clamp(2, 12)
        } else {
            10
        }
    }
}

/// Category labels under the x axis, centred on each group.
fn draw_category_labels<X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    root: &Area<'_>,
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    categories: &[String],
    y0: f64,
) -> DrawResult {
    let n = categories.len().max(1);
    let (x0, _) = chart.backend_coord(&(0.0, y0));
    let (x1, y) = chart.backend_coord(&(n as f64, y0));
    let group_px = ((x1 - x0) / n as i32).max(1);
    let max_chars = ((group_px as f64) / 8.5).floor().max(4.0) as usize;
    let style = font(15).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, c) in categories.iter().enumerate() {
        let (px, _) = chart.backend_coord(&(i as f64 + 0.5, y0));
        root.draw_text(&fit(c, max_chars), &style, (px, y + 8))?;
    }
    Ok(())
}

/// Grouped bars: one group per category, one bar per series (`None` = no bar).
struct GroupedBars<'a> {
    title: &'a str,
    y_desc: &'a str,
    x_desc: &'a str,
    categories: &'a [String],
    series: &'a [(String, Vec<Option<f64>>)],
    axis: Axis,
    /// Print each bar's value above it, formatted so.
    value_labels: Option<fn(f64) -> String>,
    footer: Option<&'a str>,
}

fn grouped_bars(root: &Area<'_>, g: &GroupedBars<'_>) -> DrawResult {
    let n = g.categories.len().max(1);
    let k = g.series.len().max(1);
    let (w, h) = root.dim_in_pixel();
    root.draw_text(
        g.title,
        &font(24).pos(Pos::new(HPos::Center, VPos::Top)),
        (w as i32 / 2, 12),
    )?;
    let legend: Vec<(String, RGBColor)> = g
        .series
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (s.clone(), color(i)))
        .collect();
    draw_legend(root, 56, &legend)?;
    let footer_h = if g.footer.is_some() { 26 } else { 0 };
    let body = root.margin(76, 10 + footer_h, 10, 20);
    let y_label = |v: &f64| g.axis.label(*v);
    let mut chart = ChartBuilder::on(&body)
        .x_label_area_size(62)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, g.axis.lo..g.axis.hi)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2)
        .x_label_formatter(&|_| String::new())
        .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
        .y_labels(g.axis.labels())
        .y_label_formatter(&y_label)
        .y_desc(g.y_desc)
        .x_desc(g.x_desc)
        .axis_desc_style(font(17))
        .label_style(font(14))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    let slot = 0.8 / k as f64;
    let (bx0, _) = chart.backend_coord(&(0.0, g.axis.lo));
    let (bx1, _) = chart.backend_coord(&(slot, g.axis.lo));
    let bar_px = bx1 - bx0;
    for (si, (_, values)) in g.series.iter().enumerate() {
        let c = color(si);
        let bars = values.iter().enumerate().filter_map(|(ci, v)| {
            let v = (*v)?;
            let x0 = ci as f64 + 0.1 + si as f64 * slot;
            Some(Rectangle::new(
                [(x0, g.axis.lo), (x0 + slot * 0.92, g.axis.t(v))],
                c.filled(),
            ))
        });
        chart.draw_series(bars)?;
        if let (Some(format), true) = (g.value_labels, bar_px >= 30) {
            for (ci, v) in values.iter().enumerate() {
                let Some(v) = *v else { continue };
                let x = ci as f64 + 0.1 + si as f64 * slot + slot * 0.46;
                let (px, py) = chart.backend_coord(&(x, g.axis.t(v)));
                root.draw_text(
                    &format(v),
                    &font(12).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    (px, py - 3),
                )?;
            }
        }
    }
    draw_category_labels(root, &chart, g.categories, g.axis.lo)?;
    if let Some(f) = g.footer {
        root.draw_text(
            f,
            &font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
            (w as i32 / 2, h as i32 - 8),
        )?;
    }
    Ok(())
}

/// Tasks drawn in the ablation chart (label, accessor into an EvalReport).
fn report_f1s(r: &crate::metrics::EvalReport) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("MNER", Some(r.mner.f1)),
        ("EEG", Some(r.eeg.f1)),
        ("GMNER", Some(r.gmner.f1)),
        ("FMNERG", r.fmnerg.map(|p| p.f1)),
        ("SMNER", r.smner.map(|p| p.f1)),
    ]
}

/// F1 per variant and task (riveg protocol, or span where a variant has no riveg metrics).
pub fn ablation_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    let categories: Vec<String> = results.variants.iter().map(|v| v.name.clone()).collect();
    let mut series: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for task in ["MNER", "EEG", "GMNER", "FMNERG", "SMNER"] {
        let values: Vec<Option<f64>> = results
            .variants
            .iter()
            .map(|v| {
                let r = v.metrics.riveg.as_ref().or(v.metrics.span.as_ref())?;
                report_f1s(r)
                    .into_iter()
                    .find(|(t, _)| *t == task)?
                    .1
                    .map(|f| f * 100.0)
            })
            .collect();
        if values.iter().any(Option::is_some) {
            series.push((format!("{task} F1"), values));
        }
    }
    let protocols: Vec<&str> = results
        .variants
        .iter()
        .map(|v| {
            if v.metrics.riveg.is_some() {
                "riveg"
            } else {
                "span"
            }
        })
        .collect();
    let footer = if protocols.iter().all(|p| *p == "riveg") {
        "RiVEG seed protocol (statistic.py); F1 in percent".to_string()
    } else {
        "RiVEG seed protocol where available, span protocol otherwise; F1 in percent".to_string()
    };
    render_png("ablation", size, |root| {
        grouped_bars(
            root,
            &GroupedBars {
                title: &format!("Ablation: F1 per variant and task ({})", results.suite),
                y_desc: "F1 (%)",
                x_desc: "variant",
                categories: &categories,
                series: &series,
                axis: Axis::linear(0.0, 100.0),
                value_labels: Some(|v| format!("{v:.2}")),
                footer: Some(&footer),
            },
        )
    })
}

/// The GMNER outcome categories of the error-source chart, bottom to top.
pub const ERROR_KINDS: [&str; 6] = [
    "correct",
    "wrong type",
    "wrong groundability",
    "wrong or missing box",
    "missed",
    "spurious",
];

/// GMNER outcomes per variant as stacked bars (entity counts; riveg protocol where available).
pub fn error_sources_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    let categories: Vec<String> = results.variants.iter().map(|v| v.name.clone()).collect();
    let stacks: Vec<Option<[usize; 6]>> = results
        .variants
        .iter()
        .map(|v| {
            let e = &v.metrics.riveg.as_ref().or(v.metrics.span.as_ref())?.errors;
            Some([
                e.correct,
                e.wrong_type,
                e.wrong_groundability,
                e.wrong_box,
                e.missed,
                e.spurious,
            ])
        })
        .collect();
    let max = stacks
        .iter()
        .flatten()
        .map(|s| s.iter().sum::<usize>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    render_png("error_sources", size, |root| {
        let (w, h) = root.dim_in_pixel();
        root.draw_text(
            &format!("GMNER outcomes per variant ({})", results.suite),
            &font(24).pos(Pos::new(HPos::Center, VPos::Top)),
            (w as i32 / 2, 12),
        )?;
        let legend: Vec<(String, RGBColor)> = ERROR_KINDS
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), color(i)))
            .collect();
        draw_legend(root, 56, &legend)?;
        let body = root.margin(76, 36, 10, 20);
        let mut chart = ChartBuilder::on(&body)
            .x_label_area_size(62)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..categories.len().max(1) as f64, 0f64..max * 1.05)?;
        let y_label = |v: &f64| compact(*v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(2)
            .x_label_formatter(&|_| String::new())
            .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
            .y_label_formatter(&y_label)
            .y_desc("entities (count)")
            .x_desc("variant")
            .axis_desc_style(font(17))
            .label_style(font(14))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        for (ci, stack) in stacks.iter().enumerate() {
            let Some(stack) = stack else { continue };
            let mut base = 0.0;
            for (k, count) in stack.iter().enumerate() {
                let top = base + *count as f64;
                let x0 = ci as f64 + 0.2;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, base), (x0 + 0.6, top)],
                    color(k).filled(),
                )))?;
                base = top;
            }
        }
        draw_category_labels(root, &chart, &categories, 0.0)?;
        root.draw_text(
            "correct + wrong + missed = gold entities; spurious = predictions with no gold counterpart",
            &font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
            (w as i32 / 2, h as i32 - 8),
        )?;
        Ok(())
    })
}

/// Stages in pipeline order, then `pipeline`, then any other timing key, over all variants.
pub fn stage_order(results: &RunResults) -> Vec<String> {
    let known = [
        "tagger",
        "reformulator",
        "entailer",
        "grounder",
        "segmenter",
        "pipeline",
    ];
    let mut keys: Vec<String> = results
        .variants
        .iter()
        .flat_map(|v| v.timings.keys().cloned())
        .collect();
    keys.sort_by_key(|k| {
        (
            known.iter().position(|s| s == k).unwrap_or(known.len()),
            k.clone(),
        )
    });
    keys.dedup();
    keys
}

/// A latency glyph: (low whisker, box low, median, box high, high whisker), max, from samples.
type Glyph = ([f64; 5], f64, bool);

/// The five numbers of a latency glyph: (low whisker, box low, median, box high, high whisker), and max.
fn glyph(t: &StageTiming) -> Glyph {
    if t.samples_ms.is_empty() {
        // Summary only (results.json): box p50–p95, whisker to p99.
        (
            [t.p50_ms, t.p50_ms, t.p50_ms, t.p95_ms, t.p99_ms],
            t.max_ms,
            false,
        )
    } else {
        let mut s = t.samples_ms.clone();
        s.sort_by(f64::total_cmp);
        (
            [
                percentile(&s, 5.0),
                percentile(&s, 25.0),
                percentile(&s, 50.0),
                percentile(&s, 75.0),
                percentile(&s, 99.0),
            ],
            t.max_ms,
            true,
        )
    }
}

/// Per-stage latency distribution: one box per stage and variant, log scale.
pub fn latency_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    let stages = stage_order(results);
    let variants: Vec<&crate::results::VariantResult> = results.variants.iter().collect();
    let glyphs: Vec<Vec<Option<Glyph>>> = variants
        .iter()
        .map(|v| {
            stages
                .iter()
                .map(|s| v.timings.get(s).filter(|t| t.count > 0).map(glyph))
                .collect()
        })
        .collect();
    let axis = Axis::log_over(
        glyphs
            .iter()
            .flatten()
            .flatten()
            .flat_map(|(g, m, _)| g.iter().copied().chain([*m])),
    );
    render_png("latency", size, |root| {
        let (w, h) = root.dim_in_pixel();
        root.draw_text(
            &format!("Per-item latency by stage ({})", results.suite),
            &font(24).pos(Pos::new(HPos::Center, VPos::Top)),
            (w as i32 / 2, 12),
        )?;
        let legend: Vec<(String, RGBColor)> = variants
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), color(i)))
            .collect();
        draw_legend(root, 56, &legend)?;
        let body = root.margin(76, 52, 10, 20);
        let n = stages.len().max(1);
        let k = variants.len().max(1);
        let mut chart = ChartBuilder::on(&body)
            .x_label_area_size(62)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..n as f64, axis.lo..axis.hi)?;
        let y_label = |v: &f64| axis.label(*v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(2)
            .x_label_formatter(&|_| String::new())
            .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
            .y_labels(axis.labels())
            .y_label_formatter(&y_label)
            .y_desc("latency per item (ms, log scale)")
            .x_desc("stage")
            .axis_desc_style(font(17))
            .label_style(font(14))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        let slot = 0.8 / k as f64;
        for (vi, per_stage) in glyphs.iter().enumerate() {
            let c = color(vi);
            for (si, g) in per_stage.iter().enumerate() {
                let Some(([lw, bl, med, bh, hw], max, from_samples)) = g else {
                    continue;
                };
                let x0 = si as f64 + 0.1 + vi as f64 * slot;
                let (xl, xr, xm) = (x0 + slot * 0.15, x0 + slot * 0.85, x0 + slot * 0.5);
                let t = |v: f64| axis.t(v);
                let fill = if *from_samples {
                    c.mix(0.55)
                } else {
                    c.mix(0.25)
                };
                chart.draw_series([
                    PathElement::new(vec![(xm, t(*lw)), (xm, t(*bl))], c.stroke_width(2)),
                    PathElement::new(vec![(xm, t(*bh)), (xm, t(*hw))], c.stroke_width(2)),
                    PathElement::new(
                        vec![(x0 + slot * 0.3, t(*hw)), (x0 + slot * 0.7, t(*hw))],
                        c.stroke_width(2),
                    ),
                ])?;
                if *from_samples {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(x0 + slot * 0.3, t(*lw)), (x0 + slot * 0.7, t(*lw))],
                        c.stroke_width(2),
                    )))?;
                }
                chart.draw_series([
                    Rectangle::new([(xl, t(*bl)), (xr, t(*bh))], fill.filled()),
                    Rectangle::new([(xl, t(*bl)), (xr, t(*bh))], c.stroke_width(2)),
                ])?;
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(xl, t(*med)), (xr, t(*med))],
                    BLACK.stroke_width(3),
                )))?;
                chart.draw_series(std::iter::once(Circle::new(
                    (xm, t(*max)),
                    4,
                    BLACK.filled(),
                )))?;
            }
        }
        draw_category_labels(root, &chart, &stages, axis.lo)?;
        root.draw_text(
            "from samples: box p25-p75, line p50, whiskers p5-p99; from results.json (no samples): box p50-p95 (lighter), whisker to p99",
            &font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
            (w as i32 / 2, h as i32 - 28),
        )?;
        root.draw_text(
            "dot: max; warm-up items excluded, cached items not measured",
            &font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
            (w as i32 / 2, h as i32 - 8),
        )?;
        Ok(())
    })
}

/// Items per second per stage and variant (log scale).
pub fn throughput_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    let stages = stage_order(results);
    let series: Vec<(String, Vec<Option<f64>>)> = results
        .variants
        .iter()
        .map(|v| {
            let values = stages
                .iter()
                .map(|s| {
                    v.timings
                        .get(s)
                        .map(|t| t.throughput_per_s)
                        .filter(|x| *x > 0.0)
                })
                .collect();
            (v.name.clone(), values)
        })
        .collect();
    let axis = Axis::log_over(series.iter().flat_map(|(_, v)| v.iter().flatten().copied()));
    render_png("throughput", size, |root| {
        grouped_bars(
            root,
            &GroupedBars {
                title: &format!("Throughput by stage ({})", results.suite),
                y_desc: "items per second (log scale)",
                x_desc: "stage",
                categories: &stages,
                series: &series,
                axis,
                value_labels: Some(compact),
                footer: Some(
                    "measured items / measured time, one worker; warm-up and cached items excluded",
                ),
            },
        )
    })
}

/// One horizontal bar (criterion estimates, compare deltas).
struct HBar {
    label: String,
    value: f64,
    /// Error bar (low, high) in value units.
    err: Option<(f64, f64)>,
    color: RGBColor,
}

fn hbars(
    root: &Area<'_>,
    area: &Area<'_>,
    title: &str,
    x_desc: &str,
    rows: &[HBar],
    axis: Axis,
    label_px: u32,
) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let (ax, ay) = (
        area.get_pixel_range().0.start,
        area.get_pixel_range().1.start,
    );
    root.draw_text(
        title,
        &font(18).pos(Pos::new(HPos::Center, VPos::Top)),
        (ax + w as i32 / 2, ay + 4),
    )?;
    let body = area.margin(34, 4, 6, 16);
    let n = rows.len().max(1);
    let mut chart = ChartBuilder::on(&body)
        .x_label_area_size(56)
        .y_label_area_size(label_px)
        .build_cartesian_2d(axis.lo..axis.hi, 0f64..n as f64)?;
    let x_label = |v: &f64| axis.label(*v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(2)
        .y_label_formatter(&|_| String::new())
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .x_labels(axis.labels())
        .x_label_formatter(&x_label)
        .x_desc(x_desc)
        .axis_desc_style(font(16))
        .label_style(font(13))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    let zero = if axis.log {
        axis.lo
    } else {
        0f64.clamp(axis.lo, axis.hi)
    };
    let max_chars = (label_px as f64 / 7.5) as usize;
    for (i, r) in rows.iter().enumerate() {
        // Top row first.
        let y = (n - 1 - i) as f64;
        let v = axis.t(r.value);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(zero, y + 0.2), (v, y + 0.8)],
            r.color.filled(),
        )))?;
        if let Some((lo, hi)) = r.err {
            let (lo, hi) = (axis.t(lo), axis.t(hi));
            chart.draw_series([
                PathElement::new(vec![(lo, y + 0.5), (hi, y + 0.5)], BLACK.stroke_width(2)),
                PathElement::new(vec![(lo, y + 0.3), (lo, y + 0.7)], BLACK.stroke_width(2)),
                PathElement::new(vec![(hi, y + 0.3), (hi, y + 0.7)], BLACK.stroke_width(2)),
            ])?;
        }
        let (px, py) = chart.backend_coord(&(axis.lo, y + 0.5));
        root.draw_text(
            &fit(&r.label, max_chars),
            &font(13).pos(Pos::new(HPos::Right, VPos::Center)),
            (px - 6, py),
        )?;
    }
    if !axis.log && axis.lo < 0.0 && axis.hi > 0.0 {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (0.0, n as f64)],
            BLACK.stroke_width(1),
        )))?;
    }
    Ok(())
}

/// A unit for nanosecond times so the largest reads naturally.
fn time_unit(max_ns: f64) -> (&'static str, f64) {
    if max_ns >= 1e9 {
        ("s", 1e9)
    } else if max_ns >= 1e6 {
        ("ms", 1e6)
    } else if max_ns >= 1e3 {
        ("µs", 1e3)
    } else {
        ("ns", 1.0)
    }
}

/// Criterion estimates: mean time per iteration (± std dev), and elements/s where declared.
pub fn criterion_chart(
    estimates: &[CriterionEstimate],
    width: u32,
) -> Result<Vec<u8>, ReportError> {
    let n = estimates.len().max(1) as u32;
    let height = (130 + 30 * n).max(300);
    let with_elements: Vec<&CriterionEstimate> =
        estimates.iter().filter(|e| e.elements.is_some()).collect();
    let (unit, scale) = time_unit(estimates.iter().map(|e| e.mean_ns).fold(0.0, f64::max));
    let label_px = estimates
        .iter()
        .map(|e| e.id.chars().count() as u32 * 8 + 16)
        .max()
        .unwrap_or(100)
        .clamp(100, width / 3);
    let latency: Vec<HBar> = estimates
        .iter()
        .map(|e| HBar {
            label: e.id.clone(),
            value: e.mean_ns / scale,
            err: Some((
                ((e.mean_ns - e.std_dev_ns) / scale).max(f64::MIN_POSITIVE),
                (e.mean_ns + e.std_dev_ns) / scale,
            )),
            color: color(0),
        })
        .collect();
    let throughput: Vec<HBar> = with_elements
        .iter()
        .map(|e| HBar {
            label: e.id.clone(),
            value: e.elements.unwrap_or(0) as f64 / (e.mean_ns / 1e9).max(f64::MIN_POSITIVE),
            err: None,
            color: color(2),
        })
        .collect();
    let lat_axis = Axis::log_over(
        latency
            .iter()
            .flat_map(|b| [b.value, b.err.map(|e| e.1).unwrap_or(b.value)]),
    );
    let thr_axis = Axis::log_over(throughput.iter().map(|b| b.value));
    render_png("criterion", (width, height), |root| {
        let (w, _) = root.dim_in_pixel();
        root.draw_text(
            "criterion benchmarks (cargo bench)",
            &font(24).pos(Pos::new(HPos::Center, VPos::Top)),
            (w as i32 / 2, 10),
        )?;
        let body = root.margin(44, 8, 8, 8);
        if throughput.is_empty() {
            hbars(
                root,
                &body,
                "mean time per iteration (± std dev)",
                &format!("time per iteration ({unit}, log scale)"),
                &latency,
                lat_axis,
                label_px,
            )?;
        } else {
            let (left, right) = body.split_horizontally(body.dim_in_pixel().0 * 55 / 100);
            hbars(
                root,
                &left,
                "mean time per iteration (± std dev)",
                &format!("time per iteration ({unit}, log scale)"),
                &latency,
                lat_axis,
                label_px,
            )?;
            let label_px2 = label_px.min(right.dim_in_pixel().0 / 2);
            hbars(
                root,
                &right,
                "throughput (benches that declare elements)",
                "elements per second (log scale)",
                &throughput,
                thr_axis,
                label_px2,
            )?;
        }
        Ok(())
    })
}

/// Deltas of a comparison (percentage points) with their CIs as error bars, coloured by verdict.
pub fn compare_chart(c: &Comparison, width: u32) -> Result<Vec<u8>, ReportError> {
    let rows: Vec<HBar> = c
        .pairs
        .iter()
        .flat_map(|p| {
            let name = if p.base_variant == p.new_variant {
                p.new_variant.clone()
            } else {
                format!("{}→{}", p.base_variant, p.new_variant)
            };
            p.metrics.iter().map(move |m| HBar {
                label: format!(
                    "{name} · {}{}",
                    m.key,
                    if m.gated { " (gated)" } else { "" }
                ),
                value: m.delta * 100.0,
                err: m.ci.map(|[lo, hi]| (lo * 100.0, hi * 100.0)),
                color: match m.verdict {
                    Verdict::Improved => RGBColor(0, 158, 115),
                    Verdict::Regressed => RGBColor(213, 94, 0),
                    Verdict::NoChange => RGBColor(150, 150, 150),
                },
            })
        })
        .collect();
    let extent = rows
        .iter()
        .flat_map(|r| {
            [
                r.value,
                r.err.map(|e| e.0).unwrap_or(0.0),
                r.err.map(|e| e.1).unwrap_or(0.0),
            ]
        })
        .fold(0.5f64, |a, v| a.max(v.abs()))
        * 1.1;
    let height = (180 + 26 * rows.len() as u32).max(300);
    let label_px = rows
        .iter()
        .map(|r| r.label.chars().count() as u32 * 8 + 16)
        .max()
        .unwrap_or(120)
        .clamp(120, width / 2);
    render_png("compare", (width, height), |root| {
        let (w, h) = root.dim_in_pixel();
        root.draw_text(
            &format!("new: {}   vs   base: {}", c.new.label, c.base.label),
            &font(22).pos(Pos::new(HPos::Center, VPos::Top)),
            (w as i32 / 2, 10),
        )?;
        draw_legend(
            root,
            52,
            &[
                ("Improved".into(), RGBColor(0, 158, 115)),
                ("Regressed".into(), RGBColor(213, 94, 0)),
                ("No change".into(), RGBColor(150, 150, 150)),
            ],
        )?;
        let body = root.margin(66, 28, 8, 8);
        let ci = format!("{:.0}% CI", (1.0 - c.options.alpha) * 100.0);
        hbars(
            root,
            &body,
            &format!(
                "delta per metric, error bars: paired-bootstrap {ci} (none for published numbers)"
            ),
            "delta new - base (percentage points)",
            &rows,
            Axis::linear(-extent, extent),
            label_px,
        )?;
        root.draw_text(
            &format!(
                "{} protocol; gated: {}",
                c.protocol.name(),
                c.options.gated.join(", ")
            ),
            &font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
            (w as i32 / 2, h as i32 - 8),
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(12.345), "12.3");
        assert_eq!(compact(1234.0), "1234");
        assert_eq!(compact(80.0), "80");
        assert_eq!(compact(1234.4), "1234");
        assert_eq!(compact(25000.0), "25k");
        assert_eq!(compact(0.01), "0.010");
        assert_eq!(compact(0.0001), "1.0e-4");
        assert_eq!(compact(1_500_000.0), "1.5M");
    }

    #[test]
    fn log_axis_is_decade_aligned() {
        let a = Axis::log_over([3.0, 250.0].into_iter());
        assert_eq!((a.lo, a.hi), (0.0, 3.0));
        assert_eq!(a.t(0.0), 0.0);
        assert!((a.t(100.0) - 2.0).abs() < 1e-12);
    }
}
