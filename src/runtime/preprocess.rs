//! Image → tensor: resize (stretch, or SAM's longest-side scale + bottom/right zero padding),
//! `(pixel * rescale - mean) / std`, NCHW `f32`; and the [`ImageTransform`] that maps
//! coordinates between the original image and the model input, both ways.
//!
//! An image already at the model size is not resampled, so the tensor is exactly what Python
//! computes from the same PNG (the tiny-model tests rely on it). Bilinear, bicubic and Lanczos
//! resizing is Pillow's, bit for bit ([`super::pil_resize`]), because the Hugging Face image
//! processors resize through Pillow; nearest uses the `image` crate. Normalisation is a
//! per-channel lookup of the 256 possible values (same bits as computing each), written plane
//! by plane; the padding stays 0.
//!
//! OWLv2 is the exception: `Owlv2ImageProcessor` rescales first, pads bottom/right to a square
//! with grey (`pad_value`, before mean/std), then resizes the float image with its own
//! skimage-style anti-aliased resize (`filter = "skimage_linear"`, [`super::skimage_resize`]);
//! its boxes are relative to the padded square ([`PreprocessSpec::input_to_original_scale`]).

use image::imageops::FilterType;
use image::RgbImage;
use ndarray::Array4;
use serde::Deserialize;

use super::pil_resize::{pil_resize, PilFilter};
use super::skimage_resize::{skimage_resize, FloatImage};

/// The `[preprocess]` section of a manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    /// `[height, width]` of the model input, pixels.
    pub image_size: [u32; 2],
    pub resize: ResizeMode,
    #[serde(default)]
    pub filter: ResizeFilter,
    /// Multiplied into the 0..255 pixel values first (1/255 for most models).
    #[serde(default = "default_rescale")]
    pub rescale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// `pad_square` only: the padding's value in rescaled units, before mean/std (OWLv2: 0.5).
    #[serde(default)]
    pub pad_value: Option<f32>,
}

fn default_rescale() -> f32 {
    1.0 / 255.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Resize to exactly `image_size`, ignoring the aspect ratio.
    Stretch,
    /// Scale so the longer side fits, keep the aspect ratio, pad bottom/right with zeros (SAM).
    LongestSide,
    /// Pad bottom/right to a square (side = the longer side) with `pad_value`, then resize the
    /// square to `image_size` (OWLv2; needs `filter = "skimage_linear"`).
    PadSquare,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    Nearest,
    #[default]
    Bilinear,
    Bicubic,
    Lanczos,
    /// `Owlv2ImageProcessor.resize`: skimage-style Gaussian anti-aliasing + linear zoom on the
    /// rescaled float image ([`super::skimage_resize`]), not Pillow.
    #[serde(rename = "skimage_linear")]
    SkimageLinear,
}

impl ResizeFilter {
    fn name(self) -> &'static str {
        match self {
            ResizeFilter::Nearest => "nearest",
            ResizeFilter::Bilinear => "bilinear",
            ResizeFilter::Bicubic => "bicubic",
            ResizeFilter::Lanczos => "lanczos",
            ResizeFilter::SkimageLinear => "skimage_linear",
        }
    }
}

impl ResizeFilter {
    /// Resizes like Pillow's `Image.resize` (what the Hugging Face processors call).
    fn resize(self, image: &RgbImage, width: u32, height: u32) -> RgbImage {
        let pil = match self {
            ResizeFilter::Nearest => {
                return image::imageops::resize(image, width, height, FilterType::Nearest)
            }
            ResizeFilter::Bilinear => PilFilter::Bilinear,
            ResizeFilter::Bicubic => PilFilter::Bicubic,
            ResizeFilter::Lanczos => PilFilter::Lanczos,
            // Float images take the skimage path in `image_to_tensor` before reaching here.
            ResizeFilter::SkimageLinear => PilFilter::Bilinear,
        };
        pil_resize(image, width, height, pil)
    }
}

impl PreprocessSpec {
    pub fn input_height(&self) -> u32 {
        self.image_size[0]
    }
    pub fn input_width(&self) -> u32 {
        self.image_size[1]
    }

    /// `Err((what is wrong, hint))`.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let basics = "image_size is [height, width] > 0; std entries must be non-zero";
        if self.image_size.contains(&0) {
            return Err((
                format!("image_size {:?} has a zero side", self.image_size),
                basics.into(),
            ));
        }
        if self.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err((
                format!("std {:?} has a zero or non-finite entry", self.std),
                basics.into(),
            ));
        }
        match (self.resize, self.pad_value, self.filter) {
            (ResizeMode::PadSquare, None, _) => Err((
                "resize = \"pad_square\" needs pad_value".into(),
                "the padding's value before mean/std; OWLv2 pads with 0.5".into(),
            )),
            (ResizeMode::PadSquare, Some(_), filter) if filter != ResizeFilter::SkimageLinear => {
                Err((
                    format!(
                        "resize = \"pad_square\" with filter = {:?}: only \"skimage_linear\" is implemented for it",
                        filter.name()
                    ),
                    "OWLv2's processor resizes the padded float image with its own resize: set filter = \"skimage_linear\"".into(),
                ))
            }
            (ResizeMode::PadSquare, Some(v), _) if !v.is_finite() => Err((
                format!("pad_value {v} is not finite"),
                "OWLv2 pads with 0.5".into(),
            )),
            (ResizeMode::Stretch | ResizeMode::LongestSide, Some(v), _) => Err((
                format!("pad_value {v} is only used with resize = \"pad_square\""),
                "remove pad_value (longest_side pads with 0 after mean/std, stretch does not pad)".into(),
            )),
            (ResizeMode::LongestSide, None, ResizeFilter::SkimageLinear) => Err((
                "filter = \"skimage_linear\" with resize = \"longest_side\" is not implemented".into(),
                "skimage_linear goes with pad_square (OWLv2) or stretch".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Model-input pixels per original-image pixel, per axis, for mapping boxes back. Usually the
    /// transform's content/original ratio; for `pad_square` exactly `input / longer side` (the
    /// padded square is what was resized, as in Owlv2ImageProcessor.post_process_object_detection,
    /// which scales boxes by the longer side), where the transform's content size is rounded.
    pub fn input_to_original_scale(&self, transform: &ImageTransform) -> (f64, f64) {
        match self.resize {
            ResizeMode::PadSquare => {
                let side = transform
                    .original_width
                    .max(transform.original_height)
                    .max(1) as f64;
                (
                    transform.input_width as f64 / side,
                    transform.input_height as f64 / side,
                )
            }
            ResizeMode::Stretch | ResizeMode::LongestSide => {
                (transform.scale_x(), transform.scale_y())
            }
        }
    }

    /// Where the original image lands in the model input.
    pub fn transform_for(&self, original_width: u32, original_height: u32) -> ImageTransform {
        let (input_w, input_h) = (self.input_width(), self.input_height());
        let (content_w, content_h) = match self.resize {
            ResizeMode::Stretch => (input_w, input_h),
            ResizeMode::PadSquare => {
                // The image's part of the resized square, rounded to whole pixels (boxes use the
                // exact scale, `input_to_original_scale`).
                let side = original_width.max(original_height).max(1) as f64;
                let w = ((original_width as f64 * input_w as f64 / side).round() as u32)
                    .clamp(1, input_w);
                let h = ((original_height as f64 * input_h as f64 / side).round() as u32)
                    .clamp(1, input_h);
                (w, h)
            }
            ResizeMode::LongestSide => {
                let scale = f64::min(
                    input_w as f64 / original_width.max(1) as f64,
                    input_h as f64 / original_height.max(1) as f64,
                );
                // SAM's ResizeLongestSide: int(x * scale + 0.5)
                let w = ((original_width as f64 * scale + 0.5) as u32).clamp(1, input_w);
                let h = ((original_height as f64 * scale + 0.5) as u32).clamp(1, input_h);
                (w, h)
            }
        };
        ImageTransform {
            original_width,
            original_height,
            input_width: input_w,
            input_height: input_h,
            content_width: content_w,
            content_height: content_h,
        }
    }
}

/// The geometry of one preprocessing: the original image is resized to
/// `content_width x content_height` and placed at the top-left of the
/// `input_width x input_height` model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageTransform {
    pub original_width: u32,
    pub original_height: u32,
    pub input_width: u32,
    pub input_height: u32,
    pub content_width: u32,
    pub content_height: u32,
}

impl ImageTransform {
    fn scale_x(&self) -> f64 {
        self.content_width as f64 / self.original_width.max(1) as f64
    }
    fn scale_y(&self) -> f64 {
        self.content_height as f64 / self.original_height.max(1) as f64
    }
    /// Original-image pixels → model-input pixels (continuous coordinates).
    pub fn to_input(&self, x: f64, y: f64) -> (f64, f64) {
        (x * self.scale_x(), y * self.scale_y())
    }
    /// Model-input pixels → original-image pixels (continuous coordinates, not clamped).
    pub fn to_original(&self, x: f64, y: f64) -> (f64, f64) {
        (x / self.scale_x(), y / self.scale_y())
    }
}

/// Resizes and normalises `image` into a `[1, 3, H, W]` tensor; padding (longest-side mode) is 0
/// after normalisation, as in SAM.
pub fn image_to_tensor(image: &RgbImage, spec: &PreprocessSpec) -> (Array4<f32>, ImageTransform) {
    let transform = spec.transform_for(image.width(), image.height());
    if spec.filter == ResizeFilter::SkimageLinear {
        return (skimage_tensor(image, spec), transform);
    }
    let resized_storage;
    let resized: &RgbImage =
        if image.width() == transform.content_width && image.height() == transform.content_height {
            image
        } else {
            resized_storage =
                spec.filter
                    .resize(image, transform.content_width, transform.content_height);
            &resized_storage
        };
    let (h, w) = (spec.input_height() as usize, spec.input_width() as usize);
    // `(pixel * rescale - mean) / std` has 256 possible values per channel: compute them once
    // (the same f32 expression, so the same bits) and fill each channel plane row by row.
    let lut: [[f32; 256]; 3] = std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 * spec.rescale - spec.mean[c]) / spec.std[c])
    });
    let mut values = vec![0.0f32; 3 * h * w];
    let (rw, rh) = (
        (resized.width() as usize).min(w),
        (resized.height() as usize).min(h),
    );
    let src_row_len = resized.width() as usize * 3;
    for (c, (plane, lut)) in values.chunks_exact_mut(h * w).zip(&lut).enumerate() {
        for (src, dst) in resized
            .as_raw()
            .chunks_exact(src_row_len)
            .take(rh)
            .zip(plane.chunks_exact_mut(w))
        {
            for (d, p) in dst[..rw].iter_mut().zip(src.chunks_exact(3)) {
                *d = lut[usize::from(p[c])];
            }
        }
    }
    let tensor = Array4::from_shape_vec((1, 3, h, w), values)
        .unwrap_or_else(|_| Array4::<f32>::zeros((1, 3, h, w)));
    (tensor, transform)
}

/// OWLv2's order: rescale (f64 product stored as f32, as `BaseImageProcessor.rescale`), pad to a
/// square with `pad_value` (`pad_square`), resize the float image, then `(x - mean) / std` in f32.
fn skimage_tensor(image: &RgbImage, spec: &PreprocessSpec) -> Array4<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (padded_w, padded_h) = match spec.resize {
        ResizeMode::PadSquare => (w.max(h), w.max(h)),
        ResizeMode::Stretch | ResizeMode::LongestSide => (w, h),
    };
    let mut data = vec![spec.pad_value.unwrap_or(0.0); padded_w * padded_h * 3];
    let rescale = f64::from(spec.rescale);
    for (x, y, pixel) in image.enumerate_pixels() {
        let at = (y as usize * padded_w + x as usize) * 3;
        for c in 0..3 {
            data[at + c] = (f64::from(pixel.0[c]) * rescale) as f32;
        }
    }
    let padded = FloatImage {
        width: padded_w,
        height: padded_h,
        data,
    };
    let (out_h, out_w) = (spec.input_height() as usize, spec.input_width() as usize);
    let resized = skimage_resize(&padded, out_w, out_h);
    let mut tensor = Array4::<f32>::zeros((1, 3, out_h, out_w));
    for y in 0..out_h {
        for x in 0..out_w {
            for c in 0..3 {
                let value = resized.data[(y * out_w + x) * 3 + c];
                tensor[[0, c, y, x]] = (value - spec.mean[c]) / spec.std[c];
            }
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(resize: ResizeMode, h: u32, w: u32) -> PreprocessSpec {
        PreprocessSpec {
            image_size: [h, w],
            resize,
            filter: ResizeFilter::Bilinear,
            rescale: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
            pad_value: None,
        }
    }

    #[test]
    fn same_size_is_not_resampled() {
        let img = RgbImage::from_fn(4, 2, |x, y| {
            image::Rgb([(x * 60) as u8, (y * 255) as u8, 0])
        });
        let (t, tr) = image_to_tensor(&img, &spec(ResizeMode::Stretch, 2, 4));
        assert_eq!(t.shape(), &[1, 3, 2, 4]);
        assert!((t[[0, 0, 0, 3]] - ((180.0 / 255.0 - 0.5) / 0.5)).abs() < 1e-6);
        assert_eq!(t[[0, 1, 1, 0]], 1.0);
        assert_eq!(t[[0, 2, 0, 0]], -1.0);
        assert_eq!(tr.to_original(2.0, 1.0), (2.0, 1.0));
    }

    #[test]
    fn longest_side_scales_and_pads() {
        let img = RgbImage::from_pixel(64, 48, image::Rgb([255, 255, 255]));
        let (t, tr) = image_to_tensor(&img, &spec(ResizeMode::LongestSide, 32, 32));
        assert_eq!((tr.content_width, tr.content_height), (32, 24));
        assert_eq!(t[[0, 0, 23, 31]], 1.0);
        assert_eq!(t[[0, 0, 24, 0]], 0.0, "padding is zero after normalisation");
        assert_eq!(tr.to_input(64.0, 48.0), (32.0, 24.0));
        assert_eq!(tr.to_original(16.0, 12.0), (32.0, 24.0));
    }

    #[test]
    fn pad_square_scales_boxes_by_the_longer_side() {
        let mut s = spec(ResizeMode::PadSquare, 48, 48);
        s.filter = ResizeFilter::SkimageLinear;
        s.pad_value = Some(0.5);
        let tr = s.transform_for(97, 64);
        // 64 * 48 / 97 = 31.67: the content is rounded, the box scale is not.
        assert_eq!((tr.content_width, tr.content_height), (48, 32));
        assert_eq!(s.input_to_original_scale(&tr), (48.0 / 97.0, 48.0 / 97.0));
        // A white 4x2 image: the padding (rows 2..4 of the 4x4 square) stays grey, 0.5 before
        // mean/std 0.5, so 0 after; the image part stays 1.
        let img = RgbImage::from_pixel(4, 2, image::Rgb([255, 255, 255]));
        let mut small = spec(ResizeMode::PadSquare, 4, 4);
        small.filter = ResizeFilter::SkimageLinear;
        small.pad_value = Some(0.5);
        let (t, _) = image_to_tensor(&img, &small);
        assert_eq!(t[[0, 0, 0, 0]], 1.0);
        assert_eq!(t[[0, 2, 3, 3]], 0.0);
        // Stretch keeps its content/original scale.
        let st = spec(ResizeMode::Stretch, 16, 16);
        assert_eq!(
            st.input_to_original_scale(&st.transform_for(64, 48)),
            (0.25, 16.0 / 48.0)
        );
    }

    #[test]
    fn invalid_combinations_name_the_keys() {
        let err = |s: &PreprocessSpec| s.validate().unwrap_err();
        let mut s = spec(ResizeMode::PadSquare, 8, 8);
        s.filter = ResizeFilter::SkimageLinear;
        assert!(err(&s).0.contains("needs pad_value"), "{:?}", err(&s));
        s.pad_value = Some(0.5);
        assert_eq!(s.validate(), Ok(()));
        s.filter = ResizeFilter::Bicubic;
        assert!(err(&s).0.contains("\"bicubic\""), "{:?}", err(&s));
        let mut s = spec(ResizeMode::LongestSide, 8, 8);
        s.filter = ResizeFilter::SkimageLinear;
        assert!(err(&s).0.contains("longest_side"), "{:?}", err(&s));
        s.filter = ResizeFilter::Bilinear;
        s.pad_value = Some(0.0);
        assert!(err(&s).1.contains("remove pad_value"), "{:?}", err(&s));
        let mut s = spec(ResizeMode::Stretch, 8, 8);
        s.filter = ResizeFilter::SkimageLinear;
        assert_eq!(s.validate(), Ok(()), "skimage_linear also stretches");
    }

    #[test]
    fn stretch_maps_axes_independently() {
        let tr = spec(ResizeMode::Stretch, 16, 16).transform_for(64, 48);
        assert_eq!(tr.to_original(4.0, 4.0), (16.0, 12.0));
    }
}
