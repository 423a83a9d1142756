//! Per-stage timings: latency distributions (boxes from 20 measured items up; every item as a
//! dot below that, since percentiles of a handful of samples say little) and throughput as dots
//! on a log axis (bars on a log axis suggest a zero that is not there). `n` (measured items) is
//! printed with every glyph. Draws only: percentiles come from `bench::percentile`, throughput
//! from the timings as recorded.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    categories, color, draw_legend, draw_mesh, draw_notes, draw_title, note_lines, pt, text_w,
    Area, Canvas, DrawResult, Figure, Swatch, TickFormat, ValueAxis, XLabels,
};
use crate::bench::{percentile, StageTiming};
use crate::results::RunResults;

/// Below this many measured items a latency glyph shows every item instead of a box.
pub const MIN_ITEMS_FOR_BOX: usize = 20;

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

/// What one latency glyph draws.
#[derive(Debug, Clone)]
enum Glyph {
    /// Every measured item (fewer than [`MIN_ITEMS_FOR_BOX`]) and their median.
    Dots { samples: Vec<f64>, median: f64 },
    /// Box p25–p75, median, whiskers p5–p99, max.
    Box { q: [f64; 5], max: f64 },
    /// From results.json (no samples): p50, p95 (box), p99 (whisker), max.
    Summary {
        p50: f64,
        p95: f64,
        p99: f64,
        max: f64,
    },
}

impl Glyph {
    fn of(t: &StageTiming) -> Glyph {
        if t.samples_ms.is_empty() {
            return Glyph::Summary {
                p50: t.p50_ms,
                p95: t.p95_ms,
                p99: t.p99_ms,
                max: t.max_ms,
            };
        }
        let mut s = t.samples_ms.clone();
        s.sort_by(f64::total_cmp);
        if s.len() < MIN_ITEMS_FOR_BOX {
            let median = percentile(&s, 50.0);
            Glyph::Dots { samples: s, median }
        } else {
            Glyph::Box {
                q: [5.0, 25.0, 50.0, 75.0, 99.0].map(|p| percentile(&s, p)),
                max: t.max_ms,
            }
        }
    }
    fn values(&self) -> Vec<f64> {
        match self {
            Glyph::Dots { samples, .. } => samples.clone(),
            Glyph::Box { q, max } => q.iter().copied().chain([*max]).collect(),
            Glyph::Summary { p50, p95, p99, max } => vec![*p50, *p95, *p99, *max],
        }
    }
}

pub struct Latency {
    canvas: Canvas,
    suite: String,
    stages: Vec<String>,
    variants: Vec<String>,
    /// `[variant][stage]`: glyph and measured items.
    glyphs: Vec<Vec<Option<(Glyph, usize)>>>,
}

impl Latency {
    pub fn new(results: &RunResults, canvas: Canvas) -> Latency {
        let stages = stage_order(results);
        let glyphs = results
            .variants
            .iter()
            .map(|v| {
                stages
                    .iter()
                    .map(|s| {
                        v.timings
                            .get(s)
                            .filter(|t| t.count > 0)
                            .map(|t| (Glyph::of(t), t.count))
                    })
                    .collect()
            })
            .collect();
        Latency {
            canvas,
            suite: results.suite.clone(),
            stages,
            variants: results.variants.iter().map(|v| v.name.clone()).collect(),
            glyphs,
        }
    }
    pub fn caption(&self) -> String {
        "Per-item latency by stage".into()
    }
}

impl Figure for Latency {
    fn name(&self) -> &'static str {
        "latency"
    }
    fn canvas(&self) -> Canvas {
        self.canvas
    }
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let c = &self.canvas;
        let axis = ValueAxis::log_over(
            self.glyphs
                .iter()
                .flatten()
                .flatten()
                .flat_map(|(g, _)| g.values()),
            TickFormat::DurationMs,
        );
        let mut top = draw_title(
            root,
            c,
            &format!("Per-item latency by stage ({})", self.suite),
        )?;
        let legend: Vec<(String, RGBColor)> = self
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), color(i)))
            .collect();
        top += c.px(2.0) + draw_legend(root, c, top + c.px(2.0), &legend, Swatch::Box)?;
        let counts: Vec<usize> = self
            .glyphs
            .iter()
            .flatten()
            .flatten()
            .map(|(_, n)| *n)
            .collect();
        let (nmin, nmax) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        let glyphs = || self.glyphs.iter().flatten().flatten().map(|(g, _)| g);
        let mut rules = Vec::new();
        if glyphs().any(|g| matches!(g, Glyph::Dots { .. })) {
            rules.push(format!(
                "n < {MIN_ITEMS_FOR_BOX}: every item a dot, bar = median"
            ));
        }
        if glyphs().any(|g| matches!(g, Glyph::Box { .. })) {
            rules.push("box p25–p75, bar median, whiskers p5–p99, dot max".to_string());
        }
        let mut notes = vec![format!(
            "n = {} measured items per glyph; {}",
            if nmin == nmax {
                format!("{nmin}")
            } else {
                format!("{nmin}–{nmax}")
            },
            rules.join("; ")
        )];
        let any_summary = self
            .glyphs
            .iter()
            .flatten()
            .flatten()
            .any(|(g, _)| matches!(g, Glyph::Summary { .. }));
        if any_summary {
            notes.push(
                "lighter boxes: from results.json (no samples): p50–p95, whisker to p99".into(),
            );
        }
        let notes = note_lines(root, c, &notes);
        let bottom = draw_notes(root, c, &notes)?;
        let label_style = c.font(pt::LABEL);
        let y_area = axis.label_px(root, &label_style) + c.px(12.0);
        let n = self.stages.len().max(1);
        let slot = (c.width as i32 - y_area - c.px(6.0)) / n as i32;
        let xlabels = XLabels::new(root, c, &self.stages, slot);
        let body = root.margin(top + c.px(2.0), bottom, c.px(2.0), c.px(4.0));
        let mut chart = ChartBuilder::on(&body)
            .x_label_area_size(xlabels.height(c))
            .y_label_area_size(y_area)
            .build_cartesian_2d(categories(n), axis.range())?;
        draw_mesh(
            &mut chart,
            c,
            None,
            Some(&axis),
            "",
            "latency per item (log)",
        )?;
        let k = self.variants.len().max(1);
        let w = 0.8 / k as f64;
        let (px0, _) = chart.backend_coord(&(0.0, axis.lo));
        let (px1, _) = chart.backend_coord(&(w, axis.lo));
        let slot_px = px1 - px0;
        let stroke = (c.px(0.6)).max(1) as u32;
        let dot = (c.px(0.9)).max(2) as u32;
        let n_style = c.font(pt::LABEL);
        for (vi, per_stage) in self.glyphs.iter().enumerate() {
            let col = color(vi);
            for (si, g) in per_stage.iter().enumerate() {
                let Some((g, count)) = g else { continue };
                let x0 = si as f64 + 0.1 + vi as f64 * w;
                let (xl, xr, xm) = (x0 + w * 0.15, x0 + w * 0.85, x0 + w * 0.5);
                let t = |v: f64| axis.t(v);
                let top_value = match g {
                    Glyph::Dots { samples, median } => {
                        chart.draw_series(
                            samples
                                .iter()
                                .map(|s| Circle::new((xm, t(*s)), dot, col.mix(0.7).filled())),
                        )?;
                        chart.draw_series(std::iter::once(PathElement::new(
                            vec![(xl, t(*median)), (xr, t(*median))],
                            BLACK.stroke_width(stroke + 1),
                        )))?;
                        samples.last().copied().unwrap_or(*median)
                    }
                    Glyph::Box {
                        q: [lw, bl, med, bh, hw],
                        max,
                    } => {
                        chart.draw_series([
                            PathElement::new(
                                vec![(xm, t(*lw)), (xm, t(*bl))],
                                col.stroke_width(stroke),
                            ),
                            PathElement::new(
                                vec![(xm, t(*bh)), (xm, t(*hw))],
                                col.stroke_width(stroke),
                            ),
                        ])?;
                        chart.draw_series([
                            Rectangle::new([(xl, t(*bl)), (xr, t(*bh))], col.mix(0.55).filled()),
                            Rectangle::new([(xl, t(*bl)), (xr, t(*bh))], col.stroke_width(stroke)),
                        ])?;
                        chart.draw_series([PathElement::new(
                            vec![(xl, t(*med)), (xr, t(*med))],
                            BLACK.stroke_width(stroke + 1),
                        )])?;
                        chart.draw_series(std::iter::once(Circle::new(
                            (xm, t(*max)),
                            dot,
                            BLACK.filled(),
                        )))?;
                        *max
                    }
                    Glyph::Summary { p50, p95, p99, max } => {
                        chart.draw_series([PathElement::new(
                            vec![(xm, t(*p95)), (xm, t(*p99))],
                            col.stroke_width(stroke),
                        )])?;
                        chart.draw_series([
                            Rectangle::new([(xl, t(*p50)), (xr, t(*p95))], col.mix(0.25).filled()),
                            Rectangle::new(
                                [(xl, t(*p50)), (xr, t(*p95))],
                                col.stroke_width(stroke),
                            ),
                        ])?;
                        chart.draw_series([PathElement::new(
                            vec![(xl, t(*p50)), (xr, t(*p50))],
                            BLACK.stroke_width(stroke + 1),
                        )])?;
                        chart.draw_series(std::iter::once(Circle::new(
                            (xm, t(*max)),
                            dot,
                            BLACK.filled(),
                        )))?;
                        *max
                    }
                };
                let label = format!("{count}");
                if text_w(root, &label, &n_style) <= slot_px + c.px(1.0) {
                    let (px, py) = chart.backend_coord(&(xm, t(top_value)));
                    root.draw_text(
                        &label,
                        &n_style.pos(Pos::new(HPos::Center, VPos::Bottom)),
                        (px, py - c.px(1.5)),
                    )?;
                }
            }
        }
        xlabels.draw(root, &chart, c, axis.lo)?;
        Ok(())
    }
}

pub struct Throughput {
    canvas: Canvas,
    suite: String,
    stages: Vec<String>,
    /// (variant, items/s per stage).
    series: Vec<(String, Vec<Option<f64>>)>,
}

impl Throughput {
    pub fn new(results: &RunResults, canvas: Canvas) -> Throughput {
        let stages = stage_order(results);
        let series = results
            .variants
            .iter()
            .map(|v| {
                let values = stages
                    .iter()
                    .map(|s| {
                        v.timings
                            .get(s)
                            .map(|t| t.throughput_per_s)
                            .filter(|x| *x > 0.0 && x.is_finite())
                    })
                    .collect();
                (v.name.clone(), values)
            })
            .collect();
        Throughput {
            canvas,
            suite: results.suite.clone(),
            stages,
            series,
        }
    }
    pub fn caption(&self) -> String {
        "Throughput by stage".into()
    }
}

impl Figure for Throughput {
    fn name(&self) -> &'static str {
        "throughput"
    }
    fn canvas(&self) -> Canvas {
        self.canvas
    }
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let c = &self.canvas;
        let axis = ValueAxis::log_over(
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter().flatten().copied()),
            TickFormat::Si,
        );
        let mut top = draw_title(root, c, &format!("Throughput by stage ({})", self.suite))?;
        let legend: Vec<(String, RGBColor)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, (v, _))| (v.clone(), color(i)))
            .collect();
        top += c.px(2.0) + draw_legend(root, c, top + c.px(2.0), &legend, Swatch::Dot)?;
        let notes = note_lines(
            root,
            c,
            &[
                "measured items / measured time, one worker; warm-up and cached items excluded"
                    .into(),
            ],
        );
        let bottom = draw_notes(root, c, &notes)?;
        let label_style = c.font(pt::LABEL);
        let y_area = axis.label_px(root, &label_style) + c.px(12.0);
        let n = self.stages.len().max(1);
        let slot = (c.width as i32 - y_area - c.px(6.0)) / n as i32;
        let xlabels = XLabels::new(root, c, &self.stages, slot);
        let body = root.margin(top + c.px(2.0), bottom, c.px(2.0), c.px(4.0));
        let mut chart = ChartBuilder::on(&body)
            .x_label_area_size(xlabels.height(c))
            .y_label_area_size(y_area)
            .build_cartesian_2d(categories(n), axis.range())?;
        draw_mesh(&mut chart, c, None, Some(&axis), "", "items/s (log)")?;
        let k = self.series.len().max(1);
        let w = 0.8 / k as f64;
        let r = (c.px(1.6)).max(3) as u32;
        for (vi, (_, values)) in self.series.iter().enumerate() {
            let col = color(vi);
            chart.draw_series(values.iter().enumerate().filter_map(|(si, v)| {
                let v = (*v)?;
                let x = si as f64 + 0.1 + vi as f64 * w + w * 0.5;
                Some(Circle::new((x, axis.t(v)), r, col.filled()))
            }))?;
            chart.draw_series(values.iter().enumerate().filter_map(|(si, v)| {
                let v = (*v)?;
                let x = si as f64 + 0.1 + vi as f64 * w + w * 0.5;
                Some(Circle::new((x, axis.t(v)), r, BLACK.stroke_width(1)))
            }))?;
        }
        xlabels.draw(root, &chart, c, axis.lo)?;
        Ok(())
    }
}
