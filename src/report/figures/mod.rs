//! Figures (plotters), one file per chart family like criterion's `src/plot/`: [`ablation`] (F1
//! per variant and task), [`errors`] (GMNER outcomes and spurious predictions), [`timing`]
//! (per-stage latency and throughput), [`bench`] (criterion estimates) and [`deltas`] (compare).
//! Each family builds a [`Figure`]; [`encode`] draws it as PNG (plotters' bitmap backend, text
//! through [`text::GlyphLayout`], PNG encoded by `image`) or SVG (plotters' SVG backend, text left
//! to the viewer). Renderers return bytes; none writes files or computes a metric (they only draw
//! numbers already in results, criterion's estimates or a comparison; percentiles come from
//! `bench`).
//!
//! Sized for a paper: a figure is laid out in points for a 3.25 in (234 pt) column, scaled to its
//! pixel width, so at column width every text is at least [`MIN_FONT_PT`] (7 pt). Output is
//! deterministic: fixed sizes and colours, input order kept, no timestamps in PNG or SVG.
//! Log axes are drawn on log10-transformed values with labels in the original units.

pub mod ablation;
pub mod bench;
pub mod deltas;
pub mod errors;
pub mod text;
pub mod ticks;
pub mod timing;

use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::ReportError;
use crate::bench::criterion_estimates::CriterionEstimate;
use crate::compare::Comparison;
use crate::results::RunResults;
use text::{Faces, GlyphLayout, PLOTTERS_SIZE_PER_EM};

pub use timing::stage_order;

/// The font family every figure uses: DejaVu Sans (registered once from the `dejavu` crate). The
/// name is what the SVG's `font-family` says, so a viewer without DejaVu falls back to sans-serif.
pub const FONT: &str = "DejaVu Sans, sans-serif";

/// The column width figures are laid out for, in points (3.25 in: ACM, IEEE; ACL's is 3.03 in,
/// where text is still ≥ 6.5 pt).
pub const COLUMN_WIDTH_PT: f64 = 234.0;

/// The smallest text in any figure, in points at column width.
pub const MIN_FONT_PT: f64 = 7.0;

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

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Light grid and axis colours.
const GRID_LIGHT: RGBColor = RGBColor(238, 238, 238);
const GRID_BOLD: RGBColor = RGBColor(210, 210, 210);

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error>>;
pub(crate) type Area<DB> = DrawingArea<DB, Shift>;
/// Both axes carry their own ticks ([`ValueAxis`]); category axes carry none.
pub(crate) type Coord = Cartesian2d<Ticked, Ticked>;

/// A linear f64 coordinate whose key points are given (plotters' own f64 ranges pick ticks that
/// print as `-5.6e-17` and cannot be combined with `with_key_points` and a label formatter).
#[derive(Debug, Clone)]
pub(crate) struct Ticked {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let r = if span == 0.0 {
            0.0
        } else {
            (value - self.lo) / span
        };
        limit.0 + (r * (limit.1 - limit.0) as f64).round() as i32
    }
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Image formats a figure is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Svg => "svg",
        }
    }
}

/// Pixel size of a figure and its scale in pixels per point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    px_per_pt: f64,
}

impl Canvas {
    /// A `width`×`height` canvas laid out for a [`COLUMN_WIDTH_PT`] column.
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            px_per_pt: width as f64 / COLUMN_WIDTH_PT,
        }
    }
    /// Points to pixels.
    pub fn px(&self, pt: f64) -> i32 {
        (pt * self.px_per_pt).round() as i32
    }
    /// Points per pixel (for a font size in pixels to points).
    pub fn pt_of_px(&self, px: f64) -> f64 {
        px / self.px_per_pt
    }
    /// A text style of `pt` points (at least [`MIN_FONT_PT`]).
    pub fn font(&self, pt: f64) -> TextStyle<'static> {
        let em_px = pt.max(MIN_FONT_PT) * self.px_per_pt;
        (FONT, em_px * PLOTTERS_SIZE_PER_EM)
            .into_font()
            .color(&BLACK)
    }
    pub fn bold(&self, pt: f64) -> TextStyle<'static> {
        let em_px = pt.max(MIN_FONT_PT) * self.px_per_pt;
        (FONT, em_px * PLOTTERS_SIZE_PER_EM, FontStyle::Bold)
            .into_font()
            .color(&BLACK)
    }
}

/// Text sizes (points) shared by the chart families.
pub(crate) mod pt {
    pub const TITLE: f64 = 8.5;
    pub const AXIS: f64 = 7.5;
    pub const LABEL: f64 = 7.0;
    pub const NOTE: f64 = 7.0;
}

/// One chart: its file stem, its canvas, and how to draw it on any backend.
pub trait Figure {
    /// File stem (`ablation` → `ablation.png`, `ablation.svg`).
    fn name(&self) -> &'static str;
    fn canvas(&self) -> Canvas;
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

fn faces() -> Result<&'static Faces, ReportError> {
    static FACES: OnceLock<Option<Faces>> = OnceLock::new();
    let registered = FACES.get_or_init(|| {
        // plotters measures text (layout, SVG) through its registered fonts.
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok();
        if ok {
            Faces::dejavu()
        } else {
            None
        }
    });
    registered.as_ref().ok_or_else(|| ReportError::Figure {
        figure: "fonts".into(),
        why: "the embedded DejaVu Sans font did not load".into(),
    })
}

/// Draws `fig` and returns the encoded bytes.
pub fn encode(fig: &impl Figure, format: ImageFormat) -> Result<Vec<u8>, ReportError> {
    let faces = faces()?;
    let Canvas { width, height, .. } = fig.canvas();
    let fail = |why: String| ReportError::Figure {
        figure: format!("{}.{}", fig.name(), format.extension()),
        why,
    };
    match format {
        ImageFormat::Png => {
            let mut buf = vec![255u8; (width as usize) * (height as usize) * 3];
            {
                let backend = GlyphLayout {
                    inner: BitMapBackend::with_buffer(&mut buf, (width, height)),
                    faces: faces.clone(),
                };
                let root = backend.into_drawing_area();
                root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
                fig.draw(&root).map_err(|e| fail(e.to_string()))?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            let img = image::RgbImage::from_raw(width, height, buf)
                .ok_or_else(|| fail("buffer size mismatch".into()))?;
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png)
                .map_err(|e| fail(format!("PNG encoding: {e}")))?;
            Ok(out.into_inner())
        }
        ImageFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
                fig.draw(&root).map_err(|e| fail(e.to_string()))?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            Ok(svg.into_bytes())
        }
    }
}

/// Every run figure in every format, as `(file name, bytes)`, with a caption per figure stem.
pub type RenderedFigures = (Vec<(String, Vec<u8>)>, Vec<(String, String)>);

/// The run figures (and `criterion` when there are estimates) in `formats`; captions name the
/// first format's file.
pub fn run_figures(
    results: &RunResults,
    estimates: &[CriterionEstimate],
    size: (u32, u32),
    formats: &[ImageFormat],
) -> Result<RenderedFigures, ReportError> {
    let canvas = Canvas::new(size.0, size.1);
    let mut files = Vec::new();
    let mut captions = Vec::new();
    let mut add = |name: &str,
                   caption: String,
                   render: &dyn Fn(ImageFormat) -> Result<Vec<u8>, ReportError>|
     -> Result<(), ReportError> {
        for (i, f) in formats.iter().enumerate() {
            let file = format!("{name}.{}", f.extension());
            files.push((file.clone(), render(*f)?));
            if i == 0 {
                captions.push((file, caption.clone()));
            }
        }
        Ok(())
    };
    let ablation = ablation::Ablation::new(results, canvas);
    add("ablation", ablation.caption(), &|f| encode(&ablation, f))?;
    let errors = errors::ErrorSources::new(results, canvas);
    add("error_sources", errors.caption(), &|f| encode(&errors, f))?;
    let latency = timing::Latency::new(results, canvas);
    add("latency", latency.caption(), &|f| encode(&latency, f))?;
    let throughput = timing::Throughput::new(results, canvas);
    add("throughput", throughput.caption(), &|f| {
        encode(&throughput, f)
    })?;
    if !estimates.is_empty() {
        let crit = bench::Criterion::new(estimates, size.0);
        add("criterion", crit.caption(), &|f| encode(&crit, f))?;
    }
    Ok((files, captions))
}

/// F1 per variant and task as PNG.
pub fn ablation_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    encode(
        &ablation::Ablation::new(results, Canvas::new(size.0, size.1)),
        ImageFormat::Png,
    )
}

/// GMNER outcomes per variant as PNG.
pub fn error_sources_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    encode(
        &errors::ErrorSources::new(results, Canvas::new(size.0, size.1)),
        ImageFormat::Png,
    )
}

/// Per-stage latency as PNG.
pub fn latency_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    encode(
        &timing::Latency::new(results, Canvas::new(size.0, size.1)),
        ImageFormat::Png,
    )
}

/// Per-stage throughput as PNG.
pub fn throughput_chart(results: &RunResults, size: (u32, u32)) -> Result<Vec<u8>, ReportError> {
    encode(
        &timing::Throughput::new(results, Canvas::new(size.0, size.1)),
        ImageFormat::Png,
    )
}

/// criterion estimates as PNG (`width` pixels wide; the height grows with the benchmarks).
pub fn criterion_chart(
    estimates: &[CriterionEstimate],
    width: u32,
) -> Result<Vec<u8>, ReportError> {
    encode(&bench::Criterion::new(estimates, width), ImageFormat::Png)
}

/// The deltas of a comparison (`width` pixels wide) in `format`.
pub fn compare_figure(
    c: &Comparison,
    width: u32,
    format: ImageFormat,
) -> Result<Vec<u8>, ReportError> {
    encode(&deltas::Deltas::new(c, width), format)
}

/// The deltas of a comparison as PNG.
pub fn compare_chart(c: &Comparison, width: u32) -> Result<Vec<u8>, ReportError> {
    compare_figure(c, width, ImageFormat::Png)
}

// ---------------------------------------------------------------------------------------------
// Shared drawing helpers.

/// Width of `s` in pixels in `style` on `area`'s backend.
pub(crate) fn text_w<DB: DrawingBackend>(area: &Area<DB>, s: &str, style: &TextStyle<'_>) -> i32
where
    DB::ErrorType: 'static,
{
    area.estimate_text_size(s, style)
        .map(|(w, _)| w as i32)
        .unwrap_or((s.chars().count() as f64 * style.font.get_size() * 0.5) as i32)
}

/// Height of one line of text in `style`, in pixels.
pub(crate) fn line_h(style: &TextStyle<'_>) -> i32 {
    (style.font.get_size() / PLOTTERS_SIZE_PER_EM * 1.25).ceil() as i32
}

/// Breaks `label` into lines no wider than `max_px`, at `-`, `_`, `/`, `.`, `→` or spaces (the
/// separator stays at the end of its line); a piece wider than a line is broken between characters.
/// Nothing is cut.
pub(crate) fn wrap<DB: DrawingBackend>(
    area: &Area<DB>,
    label: &str,
    style: &TextStyle<'_>,
    max_px: i32,
) -> Vec<String>
where
    DB::ErrorType: 'static,
{
    let mut pieces: Vec<String> = Vec::new();
    let mut cur = String::new();
    for ch in label.chars() {
        cur.push(ch);
        if matches!(ch, '-' | '_' | '/' | '.' | ' ' | '→' | ',') {
            pieces.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for piece in pieces {
        let candidate = format!("{line}{piece}");
        if line.is_empty() || text_w(area, candidate.trim_end(), style) <= max_px {
            line = candidate;
        } else {
            lines.push(line.trim_end().to_string());
            line = piece;
        }
        // A single piece much wider than the line: break it between characters (a piece a
        // little wider may overhang into the gap between categories).
        while text_w(area, line.trim_end(), style) > max_px * 5 / 4 && line.chars().count() > 1 {
            let chars: Vec<char> = line.chars().collect();
            let mut k = chars.len() - 1;
            while k > 1 && text_w(area, &chars[..k].iter().collect::<String>(), style) > max_px {
                k -= 1;
            }
            lines.push(chars[..k].iter().collect());
            line = chars[k..].iter().collect();
        }
    }
    if !line.trim().is_empty() {
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// Draws `lines` centred (or left/right per `h`) from `(x, y)` downwards; returns the height used.
pub(crate) fn draw_lines<DB: DrawingBackend>(
    area: &Area<DB>,
    lines: &[String],
    style: &TextStyle<'_>,
    h: HPos,
    (x, y): (i32, i32),
) -> Result<i32, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let lh = line_h(style);
    for (i, l) in lines.iter().enumerate() {
        area.draw_text(
            l,
            &style.pos(Pos::new(h, VPos::Top)),
            (x, y + i as i32 * lh),
        )?;
    }
    Ok(lh * lines.len() as i32)
}

/// The title, centred at the top; returns the pixels used.
pub(crate) fn draw_title<DB: DrawingBackend>(
    area: &Area<DB>,
    c: &Canvas,
    title: &str,
) -> Result<i32, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let style = c.bold(pt::TITLE);
    let lines = wrap(area, title, &style, c.width as i32 - c.px(8.0));
    let top = c.px(3.0);
    Ok(top
        + draw_lines(
            area,
            &lines,
            &style,
            HPos::Center,
            (c.width as i32 / 2, top),
        )?)
}

/// How a legend entry is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swatch {
    Box,
    Dot,
}

/// Legend entries in rows that fit the width, centred, from `y`; returns the pixels used.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &Area<DB>,
    c: &Canvas,
    y: i32,
    items: &[(String, RGBColor)],
    swatch: Swatch,
) -> Result<i32, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let style = c.font(pt::LABEL);
    let sw = c.px(6.0);
    let gap = c.px(2.0);
    let sep = c.px(6.0);
    let widths: Vec<i32> = items
        .iter()
        .map(|(t, _)| sw + gap + text_w(area, t, &style))
        .collect();
    let avail = c.width as i32 - c.px(8.0);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0;
    for (i, w) in widths.iter().enumerate() {
        let row = rows.last_mut().expect("one row");
        if !row.is_empty() && used + sep + w > avail {
            rows.push(vec![i]);
            used = *w;
        } else {
            used += if row.is_empty() { *w } else { sep + w };
            row.push(i);
        }
    }
    let lh = line_h(&style);
    for (r, row) in rows.iter().enumerate() {
        let total: i32 = row.iter().map(|i| widths[*i]).sum::<i32>() + sep * (row.len() as i32 - 1);
        let mut x = (c.width as i32 - total) / 2;
        let cy = y + r as i32 * lh + lh / 2;
        for i in row {
            let (label, col) = &items[*i];
            match swatch {
                Swatch::Box => {
                    area.draw(&Rectangle::new(
                        [(x, cy - sw / 2), (x + sw, cy + sw / 2)],
                        col.filled(),
                    ))?;
                }
                Swatch::Dot => {
                    area.draw(&Circle::new((x + sw / 2, cy), sw / 3, col.filled()))?;
                }
            }
            area.draw_text(
                label,
                &style.pos(Pos::new(HPos::Left, VPos::Center)),
                (x + sw + gap, cy),
            )?;
            x += widths[*i] + sep;
        }
    }
    Ok(lh * rows.len() as i32)
}

/// Notes at the bottom, wrapped to the width; returns the lines (draw with [`draw_notes`]).
pub(crate) fn note_lines<DB: DrawingBackend>(
    area: &Area<DB>,
    c: &Canvas,
    notes: &[String],
) -> Vec<String>
where
    DB::ErrorType: 'static,
{
    let style = c.font(pt::NOTE);
    notes
        .iter()
        .flat_map(|n| wrap_words(area, n, &style, c.width as i32 - c.px(8.0)))
        .collect()
}

/// Word wrap (spaces only) for prose.
pub(crate) fn wrap_words<DB: DrawingBackend>(
    area: &Area<DB>,
    text: &str,
    style: &TextStyle<'_>,
    max_px: i32,
) -> Vec<String>
where
    DB::ErrorType: 'static,
{
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if line.is_empty() || text_w(area, &candidate, style) <= max_px {
            line = candidate;
        } else {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Draws note lines at the bottom of `area`; returns the pixels used.
pub(crate) fn draw_notes<DB: DrawingBackend>(
    area: &Area<DB>,
    c: &Canvas,
    lines: &[String],
) -> Result<i32, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let style = c.font(pt::NOTE);
    let h = line_h(&style) * lines.len() as i32;
    let y = c.height as i32 - c.px(2.0) - h;
    draw_lines(area, lines, &style, HPos::Center, (c.width as i32 / 2, y))?;
    Ok(h + c.px(3.0))
}

/// How tick values of a [`ValueAxis`] are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TickFormat {
    /// Fixed decimals (linear axes).
    Decimals(usize),
    /// SI prefixes (`100k`, `1M`).
    Si,
    /// Milliseconds as a duration (`10 ms`, `1 s`, `100 µs`).
    DurationMs,
    /// Nanoseconds as a duration.
    DurationNs,
}

/// A value axis with its own ticks: linear, or log10 (values then drawn as exponents).
#[derive(Debug, Clone)]
pub(crate) struct ValueAxis {
    pub log: bool,
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
    pub minor: Vec<f64>,
    pub format: TickFormat,
}

impl ValueAxis {
    /// Linear over `[lo, hi]` with 1-2-5 ticks.
    pub fn linear(lo: f64, hi: f64, max_ticks: usize) -> ValueAxis {
        let (ticks, decimals) = ticks::linear_ticks(lo, hi, max_ticks);
        ValueAxis {
            log: false,
            lo,
            hi,
            ticks,
            minor: Vec::new(),
            format: TickFormat::Decimals(decimals),
        }
    }
    /// Decade-aligned log axis over every positive finite value (1..10 when there is none).
    pub fn log_over(values: impl Iterator<Item = f64>, format: TickFormat) -> ValueAxis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let (a, b) = if lo.is_finite() {
            let (a, b) = (lo.log10().floor(), hi.log10().ceil());
            (a, if b <= a { a + 1.0 } else { b })
        } else {
            (0.0, 1.0)
        };
        let minor = (a as i32..b as i32)
            .flat_map(|e| (2..10).map(move |m| (m as f64).log10() + e as f64))
            .collect();
        ValueAxis {
            log: true,
            lo: a,
            hi: b,
            ticks: ticks::decade_ticks(a, b),
            minor,
            format,
        }
    }
    /// A value in axis coordinates (log10 on log axes; non-positive values sit at the bottom).
    pub fn t(&self, v: f64) -> f64 {
        if self.log {
            if v > 0.0 {
                v.log10().clamp(self.lo, self.hi)
            } else {
                self.lo
            }
        } else {
            v.clamp(self.lo, self.hi)
        }
    }
    /// The label of a tick (in axis coordinates).
    pub fn label(&self, v: f64) -> String {
        let x = if self.log { 10f64.powf(v) } else { v };
        match self.format {
            TickFormat::Decimals(d) => ticks::linear_label(x, d),
            TickFormat::Si => ticks::si(x),
            TickFormat::DurationMs => ticks::duration_ms(x),
            TickFormat::DurationNs => ticks::duration_ms(x / 1e6),
        }
    }
    pub fn range(&self) -> Ticked {
        Ticked {
            lo: self.lo,
            hi: self.hi,
            bold: self.ticks.clone(),
            light: self.minor.clone(),
        }
    }
    /// Keeps every k-th tick (k as small as possible; on log axes every k-th decade) so that the
    /// labels, side by side with a gap, fit into `span_px` pixels of a horizontal axis.
    pub fn fit_labels<DB: DrawingBackend>(
        mut self,
        area: &Area<DB>,
        style: &TextStyle<'_>,
        span_px: i32,
    ) -> ValueAxis
    where
        DB::ErrorType: 'static,
    {
        let widths: Vec<i32> = self
            .ticks
            .iter()
            .map(|t| text_w(area, &self.label(*t), style))
            .collect();
        let gap = text_w(area, "00", style);
        let all = self.ticks.clone();
        for k in 1..=all.len().max(1) {
            let kept: Vec<usize> = (0..all.len())
                .filter(|i| {
                    if self.log {
                        (all[*i] as i64).rem_euclid(k as i64) == 0
                    } else {
                        i % k == 0
                    }
                })
                .collect();
            let need: i32 = kept.iter().map(|i| widths[*i] + gap).sum();
            if need <= span_px || kept.len() <= 2 {
                self.ticks = kept.iter().map(|i| all[*i]).collect();
                break;
            }
        }
        self
    }
    /// The widest tick label in pixels.
    pub fn label_px<DB: DrawingBackend>(&self, area: &Area<DB>, style: &TextStyle<'_>) -> i32
    where
        DB::ErrorType: 'static,
    {
        self.ticks
            .iter()
            .map(|t| text_w(area, &self.label(*t), style))
            .max()
            .unwrap_or(0)
    }
}

/// A category axis of `n` slots (no ticks; labels are drawn by the chart).
pub(crate) fn categories(n: usize) -> Ticked {
    Ticked {
        lo: 0.0,
        hi: n.max(1) as f64,
        bold: Vec::new(),
        light: Vec::new(),
    }
}

/// Draws the mesh of a chart whose axes carry their ticks.
pub(crate) fn draw_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Coord>,
    c: &Canvas,
    x: Option<&ValueAxis>,
    y: Option<&ValueAxis>,
    x_desc: &str,
    y_desc: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let xl = |v: &f64| x.map(|a| a.label(*v)).unwrap_or_default();
    let yl = |v: &f64| y.map(|a| a.label(*v)).unwrap_or_default();
    let mut mesh = chart.configure_mesh();
    mesh.x_label_formatter(&xl)
        .y_label_formatter(&yl)
        .x_labels(x.map(|a| a.ticks.len()).unwrap_or(0).max(1))
        .y_labels(y.map(|a| a.ticks.len()).unwrap_or(0).max(1))
        .axis_desc_style(c.font(pt::AXIS))
        .label_style(c.font(pt::LABEL))
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .set_all_tick_mark_size(c.px(1.5));
    if x.is_none() {
        mesh.disable_x_mesh();
    }
    if y.is_none() {
        mesh.disable_y_mesh();
    }
    if !x_desc.is_empty() {
        mesh.x_desc(x_desc);
    }
    if !y_desc.is_empty() {
        mesh.y_desc(y_desc);
    }
    mesh.draw()?;
    Ok(())
}

/// Category labels under a vertical chart's x axis: wrapped to their slot, or, when a single
/// word would not fit its slot ("reformulator"), staggered on two rows so each label has two
/// slots of room. Nothing is cut.
pub(crate) struct XLabels {
    lines: Vec<Vec<String>>,
    stagger: bool,
    line_px: i32,
}

impl XLabels {
    pub fn new<DB: DrawingBackend>(
        area: &Area<DB>,
        c: &Canvas,
        names: &[String],
        slot_px: i32,
    ) -> XLabels
    where
        DB::ErrorType: 'static,
    {
        let style = c.font(pt::LABEL);
        let width = (slot_px - c.px(2.0)).max(c.px(12.0));
        let fits = |w: i32| {
            names.iter().all(|n| {
                n.split(['-', '_', '/', '.', ' '])
                    .all(|piece| text_w(area, piece, &style) <= w)
            })
        };
        let stagger = !fits(width) && names.len() > 1;
        let width = if stagger {
            2 * slot_px - c.px(4.0)
        } else {
            width
        };
        XLabels {
            lines: names.iter().map(|n| wrap(area, n, &style, width)).collect(),
            stagger,
            line_px: line_h(&style),
        }
    }
    fn rows_even(&self) -> i32 {
        self.lines
            .iter()
            .step_by(2)
            .map(Vec::len)
            .max()
            .unwrap_or(1) as i32
    }
    /// Pixels the labels need below the axis.
    pub fn height(&self, c: &Canvas) -> i32 {
        let odd = self
            .lines
            .iter()
            .skip(1)
            .step_by(2)
            .map(Vec::len)
            .max()
            .unwrap_or(0) as i32;
        let rows = if self.stagger {
            self.rows_even() + odd
        } else {
            self.lines.iter().map(Vec::len).max().unwrap_or(1) as i32
        };
        rows * self.line_px + c.px(4.0)
    }
    pub fn draw<DB: DrawingBackend>(
        &self,
        root: &Area<DB>,
        chart: &ChartContext<'_, DB, Coord>,
        c: &Canvas,
        y0: f64,
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let style = c.font(pt::LABEL);
        for (i, l) in self.lines.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, y0));
            let drop = if self.stagger && i % 2 == 1 {
                self.rows_even() * self.line_px
            } else {
                0
            };
            draw_lines(root, l, &style, HPos::Center, (px, py + c.px(2.0) + drop))?;
        }
        Ok(())
    }
}

/// Row labels left of a horizontal chart, right-aligned at the axis and wrapped to `width_px`.
pub(crate) fn draw_y_categories<DB: DrawingBackend>(
    root: &Area<DB>,
    chart: &ChartContext<'_, DB, Coord>,
    c: &Canvas,
    rows: &[Vec<String>],
    x0: f64,
    style: &TextStyle<'_>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = rows.len();
    let lh = line_h(style);
    for (i, l) in rows.iter().enumerate() {
        // Top row first.
        let y = (n - 1 - i) as f64 + 0.5;
        let (px, py) = chart.backend_coord(&(x0, y));
        let top = py - lh * l.len() as i32 / 2;
        draw_lines(root, l, style, HPos::Right, (px - c.px(2.0), top))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_area<T>(f: impl FnOnce(&Area<GlyphLayout<BitMapBackend<'_>>>) -> T) -> T {
        let faces = faces().unwrap().clone();
        let mut buf = vec![255u8; 1200 * 900 * 3];
        let backend = GlyphLayout {
            inner: BitMapBackend::with_buffer(&mut buf, (1200, 900)),
            faces,
        };
        let root = backend.into_drawing_area();
        f(&root)
    }

    #[test]
    fn text_is_at_least_seven_points_at_column_width() {
        let c = Canvas::new(1200, 900);
        // 1200 px over a 234 pt column: 5.13 px per point.
        assert!((c.px(7.0) - 36).abs() <= 0);
        let em_px = c.font(5.0).font.get_size() / PLOTTERS_SIZE_PER_EM;
        assert!((c.pt_of_px(em_px) - MIN_FONT_PT).abs() < 1e-9);
    }

    #[test]
    fn long_names_wrap_at_separators_and_nothing_is_cut() {
        with_area(|area| {
            let c = Canvas::new(1200, 900);
            let style = c.font(pt::LABEL);
            let name = "oracle-mner-replay-ve-oracle-vg";
            let lines = wrap(area, name, &style, c.px(40.0));
            assert!(lines.len() > 1, "{lines:?}");
            assert_eq!(lines.concat(), name);
            assert!(lines[..lines.len() - 1].iter().all(|l| l.ends_with('-')));
            for l in &lines {
                assert!(text_w(area, l, &style) <= c.px(40.0), "{l}");
            }
        });
    }

    #[test]
    fn stage_names_stagger_instead_of_breaking_words() {
        with_area(|area| {
            let c = Canvas::new(1200, 900);
            let names: Vec<String> = ["tagger", "reformulator", "entailer", "grounder"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let narrow = XLabels::new(area, &c, &names, c.px(30.0));
            assert!(narrow.stagger);
            assert!(
                narrow.lines.iter().all(|l| l.len() == 1),
                "{:?}",
                narrow.lines
            );
            let wide = XLabels::new(area, &c, &names, c.px(80.0));
            assert!(!wide.stagger);
        });
    }

    #[test]
    fn log_tick_labels_are_thinned_to_fit() {
        with_area(|area| {
            let c = Canvas::new(1200, 900);
            let style = c.font(pt::LABEL);
            let axis = ValueAxis::log_over([1e4, 4e8].into_iter(), TickFormat::DurationNs);
            assert_eq!(axis.ticks.len(), 6);
            let fitted = axis.clone().fit_labels(area, &style, c.px(80.0));
            assert!(fitted.ticks.len() < 6 && fitted.ticks.len() >= 2);
            let labels: Vec<String> = fitted.ticks.iter().map(|t| fitted.label(*t)).collect();
            // Every k-th decade, aligned to multiples of k (1 ms, 1 s rather than 10 µs, 10 ms).
            assert_eq!(labels, ["1 ms", "1 s"]);
        });
    }
}
