//! GMNER outcomes per variant, in two panels with their own denominators: gold entities by
//! outcome (correct, wrong type, wrong groundability, wrong or missing box, missed; the bar is
//! the gold count), and spurious predictions (predictions with no gold counterpart), which are
//! not part of the gold and so are not stacked on it. Variants are rows, so long names wrap at
//! the left. Draws only; the counts are the variants' error tables.

use plotters::prelude::*;

use super::{
    categories, color, draw_legend, draw_mesh, draw_notes, draw_title, draw_y_categories, line_h,
    note_lines, pt, wrap, Area, Canvas, DrawResult, Figure, Swatch, TickFormat, ValueAxis,
};
use crate::results::RunResults;

/// The gold outcome categories, left to right.
pub const GOLD_OUTCOMES: [&str; 5] = [
    "correct",
    "wrong type",
    "wrong groundability",
    "wrong or missing box",
    "missed",
];

pub struct ErrorSources {
    canvas: Canvas,
    suite: String,
    variants: Vec<String>,
    /// Per variant: gold outcome counts and spurious predictions (`None`: not scored).
    counts: Vec<Option<([usize; 5], usize)>>,
}

impl ErrorSources {
    pub fn new(results: &RunResults, canvas: Canvas) -> ErrorSources {
        let counts = results
            .variants
            .iter()
            .map(|v| {
                let e = &v.metrics.riveg.as_ref().or(v.metrics.span.as_ref())?.errors;
                Some((
                    [
                        e.correct,
                        e.wrong_type,
                        e.wrong_groundability,
                        e.wrong_box,
                        e.missed,
                    ],
                    e.spurious,
                ))
            })
            .collect();
        ErrorSources {
            canvas,
            suite: results.suite.clone(),
            variants: results.variants.iter().map(|v| v.name.clone()).collect(),
            counts,
        }
    }
    pub fn caption(&self) -> String {
        "GMNER outcomes of gold entities, and spurious predictions, per variant".into()
    }
}

impl Figure for ErrorSources {
    fn name(&self) -> &'static str {
        "error_sources"
    }
    fn canvas(&self) -> Canvas {
        self.canvas
    }
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let c = &self.canvas;
        let mut top = draw_title(
            root,
            c,
            &format!("GMNER outcomes per variant ({})", self.suite),
        )?;
        let legend: Vec<(String, RGBColor)> = GOLD_OUTCOMES
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), color(i)))
            .chain([("spurious".to_string(), color(5))])
            .collect();
        top += c.px(2.0) + draw_legend(root, c, top + c.px(2.0), &legend, Swatch::Box)?;
        let notes = note_lines(
            root,
            c,
            &["left: gold entities by outcome (bar length = gold count); right: predictions with no gold entity".into()],
        );
        let bottom = draw_notes(root, c, &notes)?;
        let label_style = c.font(pt::LABEL);
        // Labels as wide as the longest name, up to 40% of the width (then wrapped).
        let label_px = self
            .variants
            .iter()
            .map(|v| super::text_w(root, v, &label_style))
            .max()
            .unwrap_or(0)
            .clamp(c.px(20.0), c.width as i32 * 2 / 5)
            + c.px(3.0);
        let rows: Vec<Vec<String>> = self
            .variants
            .iter()
            .map(|v| wrap(root, v, &label_style, label_px - c.px(3.0)))
            .collect();
        let n = rows.len().max(1);
        let gold_max = self
            .counts
            .iter()
            .flatten()
            .map(|(g, _)| g.iter().sum::<usize>())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let spurious_max = self
            .counts
            .iter()
            .flatten()
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let gold_axis = ValueAxis::linear(0.0, gold_max * 1.02, 4);
        let spur_axis = ValueAxis::linear(0.0, spurious_max * 1.05, 2);
        let gold_axis = ValueAxis {
            format: TickFormat::Si,
            ..gold_axis
        };
        let spur_axis = ValueAxis {
            format: TickFormat::Si,
            ..spur_axis
        };
        let body = root.margin(top + c.px(2.0), bottom, c.px(2.0), c.px(8.0));
        let (bw, _) = body.dim_in_pixel();
        let (left, right) =
            body.split_horizontally(((bw as i32 - label_px) * 7 / 10 + label_px) as u32);
        let x_area = line_h(&label_style) * 2 + c.px(6.0);
        let gold_axis =
            gold_axis.fit_labels(root, &label_style, left.dim_in_pixel().0 as i32 - label_px);
        let spur_axis = spur_axis.fit_labels(
            root,
            &label_style,
            right.dim_in_pixel().0 as i32 - c.px(8.0),
        );
        let mut gold = ChartBuilder::on(&left)
            .x_label_area_size(x_area)
            .y_label_area_size(label_px)
            .build_cartesian_2d(gold_axis.range(), categories(n))?;
        draw_mesh(&mut gold, c, Some(&gold_axis), None, "gold entities", "")?;
        let mut spur = ChartBuilder::on(&right)
            .x_label_area_size(x_area)
            .y_label_area_size(c.px(4.0))
            .margin_left(c.px(4.0))
            .build_cartesian_2d(spur_axis.range(), categories(n))?;
        draw_mesh(&mut spur, c, Some(&spur_axis), None, "spurious", "")?;
        for (i, counts) in self.counts.iter().enumerate() {
            let Some((outcomes, spurious)) = counts else {
                continue;
            };
            let y = (n - 1 - i) as f64;
            let mut base = 0.0;
            for (k, count) in outcomes.iter().enumerate() {
                let end = base + *count as f64;
                gold.draw_series(std::iter::once(Rectangle::new(
                    [(base, y + 0.15), (end, y + 0.85)],
                    color(k).filled(),
                )))?;
                base = end;
            }
            spur.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.15), (*spurious as f64, y + 0.85)],
                color(5).filled(),
            )))?;
        }
        draw_y_categories(root, &gold, c, &rows, 0.0, &label_style)?;
        Ok(())
    }
}
