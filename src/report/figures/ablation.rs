//! F1 per variant and task: grouped bars on a linear 0–100 axis (bars are honest there: they start
//! at zero). Variant names wrap at `-` instead of being cut. Draws only; the numbers are the
//! variants' riveg metrics (span where a variant has none).

use plotters::prelude::*;

use super::{
    categories, color, draw_legend, draw_mesh, draw_notes, draw_title, note_lines, pt, Area,
    Canvas, DrawResult, Figure, Swatch, ValueAxis, XLabels,
};
use crate::results::RunResults;
use crate::task::Task;

pub struct Ablation {
    canvas: Canvas,
    suite: String,
    variants: Vec<String>,
    /// (task, F1 in percent per variant).
    series: Vec<(String, Vec<Option<f64>>)>,
    all_riveg: bool,
}

impl Ablation {
    pub fn new(results: &RunResults, canvas: Canvas) -> Ablation {
        let mut series = Vec::new();
        // The compact task list ([`Task::HEADLINE`]); a task no variant scored is left out.
        for task in Task::HEADLINE {
            let values: Vec<Option<f64>> = results
                .variants
                .iter()
                .map(|v| {
                    let r = v.metrics.riveg.as_ref().or(v.metrics.span.as_ref())?;
                    r.task(task).map(|p| p.f1 * 100.0)
                })
                .collect();
            if values.iter().any(Option::is_some) {
                series.push((task.short_label().to_string(), values));
            }
        }
        Ablation {
            canvas,
            suite: results.suite.clone(),
            variants: results.variants.iter().map(|v| v.name.clone()).collect(),
            series,
            all_riveg: results.variants.iter().all(|v| v.metrics.riveg.is_some()),
        }
    }
    pub fn caption(&self) -> String {
        "F1 per variant and task".into()
    }
}

impl Figure for Ablation {
    fn name(&self) -> &'static str {
        "ablation"
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
            &format!("F1 per variant and task ({})", self.suite),
        )?;
        let legend: Vec<(String, RGBColor)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (s.clone(), color(i)))
            .collect();
        top += c.px(2.0) + draw_legend(root, c, top + c.px(2.0), &legend, Swatch::Box)?;
        let protocol = if self.all_riveg {
            "RiVEG seed protocol (statistic.py)"
        } else {
            "RiVEG seed protocol where available, span protocol otherwise"
        };
        let notes = note_lines(
            root,
            c,
            &[format!(
                "{protocol}; exact values in summary.md and main_results.csv"
            )],
        );
        let bottom = draw_notes(root, c, &notes)?;
        let axis = ValueAxis::linear(0.0, 100.0, 5);
        let label_style = c.font(pt::LABEL);
        let y_area = axis.label_px(root, &label_style) + c.px(12.0);
        let n = self.variants.len().max(1);
        let slot = (c.width as i32 - y_area - c.px(6.0)) / n as i32;
        let xlabels = XLabels::new(root, c, &self.variants, slot);
        let x_area = xlabels.height(c);
        let body = root.margin(top + c.px(2.0), bottom, c.px(2.0), c.px(4.0));
        let mut chart = ChartBuilder::on(&body)
            .x_label_area_size(x_area)
            .y_label_area_size(y_area)
            .build_cartesian_2d(categories(n), axis.range())?;
        draw_mesh(&mut chart, c, None, Some(&axis), "", "F1 (%)")?;
        let k = self.series.len().max(1);
        let w = 0.8 / k as f64;
        for (si, (_, values)) in self.series.iter().enumerate() {
            let col = color(si);
            chart.draw_series(values.iter().enumerate().filter_map(|(ci, v)| {
                let v = (*v)?;
                let x0 = ci as f64 + 0.1 + si as f64 * w;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + w * 0.9, axis.t(v))],
                    col.filled(),
                ))
            }))?;
        }
        xlabels.draw(root, &chart, c, 0.0)?;
        Ok(())
    }
}
