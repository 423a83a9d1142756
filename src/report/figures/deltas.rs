//! The deltas of a comparison: one dot per metric (new − base, percentage points) coloured by
//! verdict, with the paired-bootstrap CI as whiskers where there is one; each variant pair is
//! named once as a heading, its metrics below it. The title names the sides by their labels
//! (run directory names, baseline names, published slugs), never by a machine path. Draws only.

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::{
    categories, draw_legend, draw_lines, draw_mesh, draw_notes, draw_title, line_h, note_lines, pt,
    Area, Canvas, DrawResult, Figure, Swatch, ValueAxis,
};
use crate::compare::{Comparison, TestUsed, Verdict};

const IMPROVED: RGBColor = RGBColor(0, 158, 115);
const REGRESSED: RGBColor = RGBColor(213, 94, 0);
const NO_CHANGE: RGBColor = RGBColor(150, 150, 150);

/// Above this many metric rows only F1 and gated metrics are drawn.
pub const MAX_METRIC_ROWS: usize = 40;

enum Row {
    Heading(String),
    Metric {
        label: String,
        delta: f64,
        ci: Option<[f64; 2]>,
        verdict: Verdict,
    },
}

pub struct Deltas {
    canvas: Canvas,
    title: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Deltas {
    pub fn new(c: &Comparison, width: u32) -> Deltas {
        let mut rows = Vec::new();
        // Many pairs (a whole suite against a saved run) would make a figure metres long: then
        // only F1 and gated metrics are drawn (all are in compare.md and compare.json).
        let metric_rows: usize = c.pairs.iter().map(|p| p.metrics.len()).sum();
        let only_f1 = metric_rows > MAX_METRIC_ROWS;
        for p in &c.pairs {
            let name = if p.base_variant == p.new_variant {
                p.new_variant.clone()
            } else {
                format!("{} → {}", p.base_variant, p.new_variant)
            };
            rows.push(Row::Heading(name));
            for m in p
                .metrics
                .iter()
                .filter(|m| !only_f1 || m.metric == "f1" || m.gated)
            {
                rows.push(Row::Metric {
                    label: format!("{}{}", m.key, if m.gated { " (gated)" } else { "" }),
                    delta: m.delta * 100.0,
                    ci: m.ci.map(|[lo, hi]| [lo * 100.0, hi * 100.0]),
                    verdict: m.verdict,
                });
            }
        }
        let any_ci = rows
            .iter()
            .any(|r| matches!(r, Row::Metric { ci: Some(_), .. }));
        let reason = c
            .pairs
            .iter()
            .find_map(|p| match &p.test {
                TestUsed::None { reason } => Some(
                    reason
                        .trim_start_matches("no significance test: ")
                        .to_string(),
                ),
                TestUsed::PairedBootstrap { .. } => None,
            })
            .unwrap_or_default();
        let mut notes = vec![if any_ci {
            format!(
                "whiskers: paired-bootstrap {:.0}% CI of the delta; {} protocol",
                (1.0 - c.options.alpha) * 100.0,
                c.protocol.name()
            )
        } else {
            format!(
                "no confidence intervals ({reason}); {} protocol",
                c.protocol.name()
            )
        }];
        if only_f1 {
            notes.push(format!(
                "{metric_rows} metrics compared: F1 and gated metrics drawn, all in compare.md"
            ));
        }
        if !c.options.gated.is_empty() {
            notes.push(format!("gated: {}", c.options.gated.join(", ")));
        }
        let probe = Canvas::new(width, 1);
        let height = probe
            .px(62.0 + 10.0 * rows.len() as f64)
            .max(probe.px(120.0)) as u32;
        Deltas {
            canvas: Canvas::new(width, height),
            title: format!("new: {}   vs   base: {}", c.new.label, c.base.label),
            rows,
            notes,
        }
    }
}

impl Figure for Deltas {
    fn name(&self) -> &'static str {
        "compare_deltas"
    }
    fn canvas(&self) -> Canvas {
        self.canvas
    }
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let c = &self.canvas;
        let mut top = draw_title(root, c, &self.title)?;
        top += c.px(2.0)
            + draw_legend(
                root,
                c,
                top + c.px(2.0),
                &[
                    ("Improved".into(), IMPROVED),
                    ("Regressed".into(), REGRESSED),
                    ("No change".into(), NO_CHANGE),
                ],
                Swatch::Dot,
            )?;
        let notes = note_lines(root, c, &self.notes);
        let bottom = draw_notes(root, c, &notes)?;
        let extent = self
            .rows
            .iter()
            .flat_map(|r| match r {
                Row::Metric { delta, ci, .. } => {
                    let [lo, hi] = ci.unwrap_or([*delta, *delta]);
                    vec![delta.abs(), lo.abs(), hi.abs()]
                }
                Row::Heading(_) => Vec::new(),
            })
            .fold(0.5f64, f64::max)
            * 1.1;
        let axis = ValueAxis::linear(-extent, extent, 6);
        let label_style = c.font(pt::LABEL);
        let head_style = c.bold(pt::LABEL);
        let label_px = (c.width as i32 * 3 / 10).max(c.px(40.0));
        let n = self.rows.len().max(1);
        let body = root.margin(top + c.px(2.0), bottom, c.px(2.0), c.px(5.0));
        let axis = axis.fit_labels(root, &label_style, body.dim_in_pixel().0 as i32 - label_px);
        let mut chart = ChartBuilder::on(&body)
            .x_label_area_size(line_h(&label_style) * 2 + c.px(6.0))
            .y_label_area_size(label_px)
            .build_cartesian_2d(axis.range(), categories(n))?;
        draw_mesh(
            &mut chart,
            c,
            Some(&axis),
            None,
            "delta new − base (percentage points)",
            "",
        )?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (0.0, n as f64)],
            BLACK.stroke_width(1),
        )))?;
        let r = (c.px(1.5)).max(3) as u32;
        let stroke = (c.px(0.6)).max(1) as u32;
        let lh = line_h(&label_style);
        for (i, row) in self.rows.iter().enumerate() {
            let y = (n - 1 - i) as f64 + 0.5;
            let (ax, py) = chart.backend_coord(&(axis.lo, y));
            match row {
                Row::Heading(name) => {
                    let x0 = body.get_pixel_range().0.start;
                    draw_lines(
                        root,
                        std::slice::from_ref(name),
                        &head_style,
                        HPos::Left,
                        (x0 + c.px(1.0), py - lh / 2),
                    )?;
                }
                Row::Metric {
                    label,
                    delta,
                    ci,
                    verdict,
                } => {
                    let col = match verdict {
                        Verdict::Improved => IMPROVED,
                        Verdict::Regressed => REGRESSED,
                        Verdict::NoChange => NO_CHANGE,
                    };
                    if let Some([lo, hi]) = ci {
                        chart.draw_series([
                            PathElement::new(
                                vec![(axis.t(*lo), y), (axis.t(*hi), y)],
                                BLACK.stroke_width(stroke),
                            ),
                            PathElement::new(
                                vec![(axis.t(*lo), y - 0.25), (axis.t(*lo), y + 0.25)],
                                BLACK.stroke_width(stroke),
                            ),
                            PathElement::new(
                                vec![(axis.t(*hi), y - 0.25), (axis.t(*hi), y + 0.25)],
                                BLACK.stroke_width(stroke),
                            ),
                        ])?;
                    }
                    chart.draw_series(std::iter::once(Circle::new(
                        (axis.t(*delta), y),
                        r,
                        col.filled(),
                    )))?;
                    draw_lines(
                        root,
                        std::slice::from_ref(label),
                        &label_style,
                        HPos::Right,
                        (ax - c.px(2.0), py - lh / 2),
                    )?;
                }
            }
        }
        Ok(())
    }
}
