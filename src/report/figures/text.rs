//! Figure text for the bitmap backend: glyph layout and rasterisation with `ab_glyph`, wrapped
//! around any plotters backend ([`GlyphLayout`]). plotters 0.3.7's own ab_glyph path draws each
//! glyph's bitmap at the pen position without its left side bearing and truncates the pen to whole
//! pixels, so narrow letters cluster and wide ones gap ("or acle", "mn er", "statistic.p y").
//! Here every glyph is placed at its fractional pen position (kerning included) and drawn where
//! its outline says. This file must not decide what a figure shows; it only draws strings.
//!
//! Sizes follow plotters' convention (a text style's size is 1.24 × the em size), which is also
//! what the SVG backend writes as `font-size`, so PNG and SVG text have the same size.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::style::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle,
};

/// plotters' ratio between a text style's size and the em size (see plotters-svg's `font-size`).
pub const PLOTTERS_SIZE_PER_EM: f64 = 1.24;

/// The faces figure text is drawn with (DejaVu Sans regular and bold).
#[derive(Clone)]
pub struct Faces {
    pub regular: FontRef<'static>,
    pub bold: FontRef<'static>,
}

impl Faces {
    /// DejaVu Sans from the `dejavu` crate; `None` when a face does not parse (a broken build).
    pub fn dejavu() -> Option<Faces> {
        Some(Faces {
            regular: FontRef::try_from_slice(dejavu::sans::regular()).ok()?,
            bold: FontRef::try_from_slice(dejavu::sans::bold()).ok()?,
        })
    }

    fn face(&self, style: FontStyle) -> &FontRef<'static> {
        match style {
            FontStyle::Bold => &self.bold,
            _ => &self.regular,
        }
    }
}

/// A laid-out line: glyph outlines with their pixel origin, and the line's box.
struct Line {
    /// `(x, y, coverage)` of every inked pixel, relative to the top-left of the line box.
    pixels: Vec<(i32, i32, f32)>,
    width: f32,
    height: f32,
}

fn scale_of(face: &FontRef<'static>, size: f64) -> PxScale {
    let em = (size / PLOTTERS_SIZE_PER_EM) as f32;
    let units = face.units_per_em().unwrap_or(2048.0);
    PxScale::from(em * face.height_unscaled() / units)
}

/// Advance width of `text` in pixels (kerning included), and the line height.
pub fn measure(faces: &Faces, style: FontStyle, size: f64, text: &str) -> (f32, f32) {
    let face = faces.face(style);
    let font = face.as_scaled(scale_of(face, size));
    let mut caret = 0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            caret += font.kern(p, id);
        }
        caret += font.h_advance(id);
        prev = Some(id);
    }
    (caret, font.ascent() - font.descent())
}

fn layout(faces: &Faces, style: FontStyle, size: f64, text: &str) -> Line {
    let face = faces.face(style);
    let scale = scale_of(face, size);
    let font = face.as_scaled(scale);
    let ascent = font.ascent();
    let mut caret = 0f32;
    let mut prev = None;
    let mut pixels = Vec::new();
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            caret += font.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, point(caret, ascent));
        caret += font.h_advance(id);
        prev = Some(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            let (x0, y0) = (b.min.x as i32, b.min.y as i32);
            outline.draw(|x, y, cov| {
                if cov > 0.0 {
                    pixels.push((x0 + x as i32, y0 + y as i32, cov.min(1.0)));
                }
            });
        }
    }
    Line {
        pixels,
        width: caret,
        height: ascent - font.descent(),
    }
}

/// A backend that draws text with [`Faces`] and forwards everything else to `inner`.
pub struct GlyphLayout<B: DrawingBackend> {
    pub inner: B,
    pub faces: Faces,
}

impl<B: DrawingBackend> DrawingBackend for GlyphLayout<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = measure(&self.faces, style.style(), style.size(), text);
        Ok((w.ceil() as u32, h.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let line = layout(&self.faces, style.style(), style.size(), text);
        let (w, h) = (line.width.round() as i32, line.height.round() as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let (cw, ch) = self.inner.get_size();
        for (x, y, cov) in line.pixels {
            let (x, y) = trans.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && x < cw as i32 && y < ch as i32 {
                let c = BackendColor {
                    alpha: color.alpha * cov as f64,
                    rgb: color.rgb,
                };
                self.inner.draw_pixel((x, y), c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_keep_their_side_bearings() {
        // plotters 0.3.7 drew each glyph's ink at the pen position, dropping the left side
        // bearing ("or acle"). The second "l" of "ll" must start at advance + bearing.
        let f = Faces::dejavu().unwrap();
        let face = &f.regular;
        let font = face.as_scaled(scale_of(face, 31.0));
        let id = font.glyph_id('l');
        let (adv, lsb) = (font.h_advance(id), font.h_side_bearing(id));
        assert!(lsb > 1.5, "DejaVu's l has a visible bearing ({lsb} px)");
        let line = layout(&f, FontStyle::Normal, 31.0, "ll");
        let mut cols: Vec<i32> = line.pixels.iter().map(|p| p.0).collect();
        cols.sort();
        cols.dedup();
        let second = cols
            .windows(2)
            .find(|w| w[1] > w[0] + 1)
            .map(|w| w[1])
            .expect("two separate glyphs");
        assert!(
            ((second as f32) - (adv + lsb)).abs() <= 1.0,
            "second l starts at {second}, expected {}",
            adv + lsb
        );
        let (w, _) = measure(&f, FontStyle::Normal, 31.0, "ll");
        assert!((w - 2.0 * adv - font.kern(id, id)).abs() < 1e-3);
    }
}
