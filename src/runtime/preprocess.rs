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

use image::imageops::FilterType;
use image::RgbImage;
use ndarray::Array4;
use serde::Deserialize;

use super::pil_resize::{pil_resize, PilFilter};

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    Nearest,
    #[default]
    Bilinear,
    Bicubic,
    Lanczos,
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

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.image_size.contains(&0) {
            return Err(format!("image_size {:?} has a zero side", self.image_size));
        }
        if self.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(format!("std {:?} has a zero or non-finite entry", self.std));
        }
        Ok(())
    }

    /// Where the original image lands in the model input.
    pub fn transform_for(&self, original_width: u32, original_height: u32) -> ImageTransform {
        let (input_w, input_h) = (self.input_width(), self.input_height());
        let (content_w, content_h) = match self.resize {
            ResizeMode::Stretch => (input_w, input_h),
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
    fn stretch_maps_axes_independently() {
        let tr = spec(ResizeMode::Stretch, 16, 16).transform_for(64, 48);
        assert_eq!(tr.to_original(4.0, 4.0), (16.0, 12.0));
    }
}
