//! criterion estimates: per benchmark, the time criterion reports (`time:`, its typical estimate:
//! the regression slope, or the mean in flat sampling mode) with its confidence interval, on a
//! log axis as dots with whiskers, and elements per second where a bench declares them. Uses the
//! same estimate as `cargo bench` printed, so the figure, the table and the terminal agree.
//! Draws only; the estimates come from `bench::criterion_estimates`.

use plotters::prelude::*;

use super::{
    categories, color, draw_mesh, draw_notes, draw_title, draw_y_categories, line_h, note_lines,
    pt, wrap, Area, Canvas, DrawResult, Figure, TickFormat, ValueAxis,
};
use crate::bench::criterion_estimates::CriterionEstimate;

/// One benchmark row: id, typical ns, its CI in ns, elements per second.
type BenchRow = (String, f64, Option<[f64; 2]>, Option<f64>);

pub struct Criterion {
    canvas: Canvas,
    /// (id, typical ns, CI ns, elements/s).
    rows: Vec<BenchRow>,
    any_slope: bool,
    any_mean: bool,
}

impl Criterion {
    pub fn new(estimates: &[CriterionEstimate], width: u32) -> Criterion {
        let probe = Canvas::new(width, 1);
        let n = estimates.len().max(1) as f64;
        // Title, notes and axis (about 70 pt) plus about 17 pt per benchmark (two label lines).
        let height = probe.px(70.0 + 17.0 * n).max(probe.px(120.0)) as u32;
        let rows = estimates
            .iter()
            .map(|e| {
                let typical = e.typical_ns();
                (
                    e.id.clone(),
                    typical,
                    e.typical_ci_ns,
                    e.elements
                        .filter(|_| typical > 0.0)
                        .map(|n| n as f64 / (typical / 1e9)),
                )
            })
            .collect();
        Criterion {
            canvas: Canvas::new(width, height),
            rows,
            any_slope: estimates.iter().any(|e| e.slope_ns.is_some()),
            any_mean: estimates.iter().any(|e| e.slope_ns.is_none()),
        }
    }
    pub fn caption(&self) -> String {
        "criterion benchmarks (time as `cargo bench` reports it)".into()
    }
}

impl Figure for Criterion {
    fn name(&self) -> &'static str {
        "criterion"
    }
    fn canvas(&self) -> Canvas {
        self.canvas
    }
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let c = &self.canvas;
        let top = draw_title(root, c, "criterion benchmarks (cargo bench)")?;
        let estimate = match (self.any_slope, self.any_mean) {
            (true, false) => "slope of the linear regression",
            (false, _) => "mean (flat sampling)",
            (true, true) => "slope (linear sampling) or mean (flat sampling)",
        };
        let notes = note_lines(
            root,
            c,
            &[format!(
                "time per iteration as criterion reports it: {estimate}; whiskers: its confidence interval"
            )],
        );
        let bottom = draw_notes(root, c, &notes)?;
        let label_style = c.font(pt::LABEL);
        let label_px = (c.width as i32 * 3 / 10).max(c.px(30.0));
        let labels: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| wrap(root, &r.0, &label_style, label_px - c.px(3.0)))
            .collect();
        let n = self.rows.len().max(1);
        let time_axis = ValueAxis::log_over(
            self.rows
                .iter()
                .flat_map(|r| [r.1].into_iter().chain(r.2.into_iter().flatten())),
            TickFormat::DurationNs,
        );
        let with_elements = self.rows.iter().any(|r| r.3.is_some());
        let thr_axis = ValueAxis::log_over(self.rows.iter().filter_map(|r| r.3), TickFormat::Si);
        let body = root.margin(top + c.px(3.0), bottom, c.px(2.0), c.px(5.0));
        let (bw, _) = body.dim_in_pixel();
        let (left, right) = if with_elements {
            let (l, r) =
                body.split_horizontally(((bw as i32 - label_px) * 6 / 10 + label_px) as u32);
            (l, Some(r))
        } else {
            (body, None)
        };
        let x_area = line_h(&label_style) * 2 + c.px(6.0);
        let time_axis =
            time_axis.fit_labels(root, &label_style, left.dim_in_pixel().0 as i32 - label_px);
        let mut chart = ChartBuilder::on(&left)
            .x_label_area_size(x_area)
            .y_label_area_size(label_px)
            .build_cartesian_2d(time_axis.range(), categories(n))?;
        draw_mesh(
            &mut chart,
            c,
            Some(&time_axis),
            None,
            "time per iteration (log)",
            "",
        )?;
        let r = (c.px(1.6)).max(3) as u32;
        let stroke = (c.px(0.6)).max(1) as u32;
        for (i, (_, typical, ci, _)) in self.rows.iter().enumerate() {
            let y = (n - 1 - i) as f64 + 0.5;
            if let Some([lo, hi]) = ci {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(time_axis.t(*lo), y), (time_axis.t(*hi), y)],
                    BLACK.stroke_width(stroke),
                )))?;
            }
            chart.draw_series(std::iter::once(Circle::new(
                (time_axis.t(*typical), y),
                r,
                color(0).filled(),
            )))?;
        }
        draw_y_categories(root, &chart, c, &labels, time_axis.lo, &label_style)?;
        if let Some(right) = right {
            let thr_axis = thr_axis.fit_labels(
                root,
                &label_style,
                right.dim_in_pixel().0 as i32 - c.px(8.0),
            );
            let mut thr = ChartBuilder::on(&right)
                .x_label_area_size(x_area)
                .y_label_area_size(c.px(4.0))
                .margin_left(c.px(4.0))
                .build_cartesian_2d(thr_axis.range(), categories(n))?;
            draw_mesh(&mut thr, c, Some(&thr_axis), None, "elements/s (log)", "")?;
            for (i, (_, _, _, eps)) in self.rows.iter().enumerate() {
                let Some(eps) = eps else { continue };
                let y = (n - 1 - i) as f64 + 0.5;
                thr.draw_series(std::iter::once(Circle::new(
                    (thr_axis.t(*eps), y),
                    r,
                    color(2).filled(),
                )))?;
            }
        }
        Ok(())
    }
}
