//! Pillow's convolution resize (`Image.resize` with BILINEAR / BICUBIC / LANCZOS on an 8-bit RGB
//! image), reproduced bit for bit, because every Hugging Face image processor resizes through
//! Pillow (`transformers.image_transforms.resize`). The `image` crate's filters differ (f32
//! accumulation, vertical pass first, no 8-bit rounding between passes), which shifts pixels by
//! one level here and there: enough for a random-weight model's outputs, or a real model's
//! borderline decisions, to differ from the Python reference.
//!
//! The port follows `src/libImaging/Resample.c` (Pillow 9-11): per output pixel, a window of
//! input pixels around `center = (x + 0.5) * scale` with support `filter_support * max(scale,
//! 1)`, weights normalised to sum 1, converted to 22-bit fixed point (rounded half away from
//! zero); a horizontal pass into an 8-bit image (only the rows the vertical pass reads), then a
//! vertical pass; each pass rounds (`+ 2^21`) and clips to 0..=255. A pass whose size does not
//! change is skipped, as in Pillow. Must not do anything but resize.
//!
//! Speed (issue 15) comes from the implementation only, never from the arithmetic: the weights
//! are computed once per (input size, output size, filter) and kept per thread, stored flat;
//! sums are i32 as in Pillow; the horizontal pass walks slices (no per-pixel bounds checks) and
//! the vertical pass accumulates a whole output row per input row, a loop the compiler
//! vectorises. The old per-pixel version is kept in the tests as the reference it must equal.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use image::RgbImage;

/// The filters Pillow resizes with by convolution (NEAREST uses another code path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PilFilter {
    Bilinear,
    Bicubic,
    Lanczos,
}

impl PilFilter {
    fn support(self) -> f64 {
        match self {
            PilFilter::Bilinear => 1.0,
            PilFilter::Bicubic => 2.0,
            PilFilter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            PilFilter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            PilFilter::Bicubic => {
                // Pillow's a = -0.5 (Keys' cubic, as in Catmull-Rom)
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            PilFilter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: the first input index and the length of its window, and the fixed-point
/// weights, `ksize` per pixel (zero-padded past the window), in one flat array.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

impl Coefficients {
    #[inline]
    fn window(&self, out: usize) -> (usize, &[i32]) {
        let (start, count) = self.bounds[out];
        let at = out * self.ksize;
        (start, &self.weights[at..at + count])
    }
}

fn precompute(in_size: usize, out_size: usize, filter: PilFilter) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    // Pillow's ksize: the widest window any output pixel can have.
    let ksize = (support.ceil() as usize) * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = Vec::with_capacity(ksize);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero, and these values are >= -support + 0.5.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin).min(ksize);
        k.clear();
        k.extend((0..count).map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss)));
        let total: f64 = k.iter().sum();
        if total != 0.0 {
            for w in &mut k {
                *w /= total;
            }
        }
        for (slot, &w) in weights[xx * ksize..].iter_mut().zip(&k) {
            let v = w * f64::from(1u32 << PRECISION_BITS);
            *slot = if w < 0.0 {
                (v - 0.5) as i32
            } else {
                (v + 0.5) as i32
            };
        }
        bounds.push((xmin, count));
    }
    Coefficients {
        bounds,
        ksize,
        weights,
    }
}

/// The coefficients of the last few (input size, output size, filter) triples of this thread: a
/// pipeline resizes photos of a handful of sizes to one model size, so most are reused.
fn coefficients(in_size: usize, out_size: usize, filter: PilFilter) -> Rc<Coefficients> {
    type Key = (usize, usize, PilFilter);
    const KEEP: usize = 16;
    thread_local! {
        static CACHE: RefCell<VecDeque<(Key, Rc<Coefficients>)>> = const { RefCell::new(VecDeque::new()) };
    }
    let key = (in_size, out_size, filter);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(found) = cache.iter().find(|(k, _)| *k == key) {
            return Rc::clone(&found.1);
        }
        let made = Rc::new(precompute(in_size, out_size, filter));
        if cache.len() == KEEP {
            cache.pop_back();
        }
        cache.push_front((key, Rc::clone(&made)));
        made
    })
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

// Sums are i32, as in Pillow (`INT32 ss0`): 255 times the weights' absolute sum (at most ~1.3
// x 2^22 for Lanczos) plus the rounding half stays below 2^31, so they cannot overflow.

/// One row of the horizontal pass: RGB `row` → `out_w` RGB pixels of `out`.
#[inline]
fn horizontal_row(row: &[u8], out: &mut [u8], coefficients: &Coefficients) {
    let half = 1i32 << (PRECISION_BITS - 1);
    for (xx, pixel) in out.chunks_exact_mut(3).enumerate() {
        let (xmin, k) = coefficients.window(xx);
        let window = &row[xmin * 3..(xmin + k.len()) * 3];
        let (mut s0, mut s1, mut s2) = (half, half, half);
        for (p, &w) in window.chunks_exact(3).zip(k) {
            s0 += i32::from(p[0]) * w;
            s1 += i32::from(p[1]) * w;
            s2 += i32::from(p[2]) * w;
        }
        pixel[0] = clip8(s0);
        pixel[1] = clip8(s1);
        pixel[2] = clip8(s2);
    }
}

/// `Image.resize((width, height), filter)` of Pillow on an RGB image.
pub fn pil_resize(image: &RgbImage, width: u32, height: u32, filter: PilFilter) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if (in_w, in_h) == (out_w, out_h) || in_w == 0 || in_h == 0 || out_w == 0 || out_h == 0 {
        return if (in_w, in_h) == (out_w, out_h) {
            image.clone()
        } else {
            RgbImage::new(width, height)
        };
    }
    let src = image.as_raw();
    let vertical = (in_h != out_h).then(|| coefficients(in_h, out_h, filter));

    // Horizontal pass over the rows the vertical pass reads (all rows when it is skipped).
    let (first_row, last_row) = match &vertical {
        Some(v) => {
            let first = v.bounds[0].0;
            let (start, count) = v.bounds[out_h - 1];
            (first, start + count)
        }
        None => (0, in_h),
    };
    let rows = last_row - first_row;
    let (tmp_w, tmp) = if in_w != out_w {
        let horizontal = coefficients(in_w, out_w, filter);
        let mut tmp = vec![0u8; out_w * rows * 3];
        let input = &src[first_row * in_w * 3..last_row * in_w * 3];
        for (row, out) in input
            .chunks_exact(in_w * 3)
            .zip(tmp.chunks_exact_mut(out_w * 3))
        {
            horizontal_row(row, out, &horizontal);
        }
        (out_w, tmp)
    } else {
        (
            in_w,
            src[first_row * in_w * 3..last_row * in_w * 3].to_vec(),
        )
    };
    let Some(vertical) = vertical else {
        return RgbImage::from_raw(tmp_w as u32, rows as u32, tmp)
            .unwrap_or_else(|| RgbImage::new(width, height));
    };
    // Vertical pass: a whole output row at once, one input row (weight) after the other, so the
    // inner loop runs over contiguous bytes and vectorises.
    let row_len = tmp_w * 3;
    let half = 1i32 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; row_len * out_h];
    let mut sums = vec![0i32; row_len];
    for (yy, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (ymin, k) = vertical.window(yy);
        let ymin = ymin - first_row;
        sums.fill(half);
        for (y, &w) in k.iter().enumerate() {
            let row = &tmp[(ymin + y) * row_len..(ymin + y + 1) * row_len];
            for (sum, &p) in sums.iter_mut().zip(row) {
                *sum += i32::from(p) * w;
            }
        }
        for (o, &sum) in out_row.iter_mut().zip(&sums) {
            *o = clip8(sum);
        }
    }
    RgbImage::from_raw(tmp_w as u32, out_h as u32, out)
        .unwrap_or_else(|| RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The per-pixel port this module had before issue 15 (i64 sums, weights recomputed per
    /// call, pixel-by-pixel vertical pass): what the fast version must equal, byte for byte.
    fn reference_resize(image: &RgbImage, width: u32, height: u32, filter: PilFilter) -> RgbImage {
        let (in_w, in_h) = (image.width() as usize, image.height() as usize);
        let (out_w, out_h) = (width as usize, height as usize);
        if (in_w, in_h) == (out_w, out_h) {
            return image.clone();
        }
        let horizontal = precompute(in_w, out_w, filter);
        let vertical = precompute(in_h, out_h, filter);
        let clip = |v: i64| (v >> PRECISION_BITS).clamp(0, 255) as u8;
        let half = 1i64 << (PRECISION_BITS - 1);
        let src = image.as_raw();
        let (first_row, last_row) = if in_h != out_h {
            let (start, count) = vertical.bounds[out_h - 1];
            (vertical.bounds[0].0, start + count)
        } else {
            (0, in_h)
        };
        let rows = last_row - first_row;
        let (tmp_w, tmp) = if in_w != out_w {
            let mut tmp = vec![0u8; out_w * rows * 3];
            for y in 0..rows {
                let row = &src[(y + first_row) * in_w * 3..(y + first_row + 1) * in_w * 3];
                for xx in 0..out_w {
                    let (xmin, k) = horizontal.window(xx);
                    for c in 0..3 {
                        let mut ss = half;
                        for (x, &w) in k.iter().enumerate() {
                            ss += i64::from(row[(x + xmin) * 3 + c]) * i64::from(w);
                        }
                        tmp[(y * out_w + xx) * 3 + c] = clip(ss);
                    }
                }
            }
            (out_w, tmp)
        } else {
            (
                in_w,
                src[first_row * in_w * 3..last_row * in_w * 3].to_vec(),
            )
        };
        if in_h == out_h {
            return RgbImage::from_raw(tmp_w as u32, rows as u32, tmp).expect("size");
        }
        let mut out = vec![0u8; tmp_w * out_h * 3];
        for yy in 0..out_h {
            let (ymin, k) = vertical.window(yy);
            let ymin = ymin - first_row;
            for x in 0..tmp_w {
                for c in 0..3 {
                    let mut ss = half;
                    for (y, &w) in k.iter().enumerate() {
                        ss += i64::from(tmp[((y + ymin) * tmp_w + x) * 3 + c]) * i64::from(w);
                    }
                    out[(yy * tmp_w + x) * 3 + c] = clip(ss);
                }
            }
        }
        RgbImage::from_raw(tmp_w as u32, out_h as u32, out).expect("size")
    }

    fn filters() -> impl Strategy<Value = PilFilter> {
        prop_oneof![
            Just(PilFilter::Bilinear),
            Just(PilFilter::Bicubic),
            Just(PilFilter::Lanczos)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Random images (extreme values included, where the negative lobes clip) and sizes,
        /// up, down and unchanged per axis: the fast resize equals the reference byte for byte.
        #[test]
        fn fast_resize_equals_the_reference(
            (w, h, pixels) in (1u32..40, 1u32..40).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), proptest::collection::vec(
                    prop_oneof![Just(0u8), Just(255u8), any::<u8>()],
                    (w * h * 3) as usize,
                ))
            }),
            out_w in 1u32..50,
            out_h in 1u32..50,
            filter in filters(),
        ) {
            let image = RgbImage::from_raw(w, h, pixels).expect("w x h x 3 bytes");
            let fast = pil_resize(&image, out_w, out_h, filter);
            let reference = reference_resize(&image, out_w, out_h, filter);
            prop_assert_eq!(fast.dimensions(), reference.dimensions());
            prop_assert_eq!(fast.as_raw(), reference.as_raw());
            // Again, with the coefficients now cached.
            let cached = pil_resize(&image, out_w, out_h, filter);
            prop_assert_eq!(cached.as_raw(), reference.as_raw());
        }
    }

    #[test]
    fn large_downscale_equals_the_reference() {
        // A 4000-pixel-wide photo to SAM's 1024: windows of ~8 taps per axis (bilinear) and ~24
        // (Lanczos), where the sums are largest.
        let image = RgbImage::from_fn(1500, 90, |x, y| {
            image::Rgb([
                (x * 7 + y) as u8,
                if (x / 3 + y) % 2 == 0 { 255 } else { 0 },
                (x ^ y) as u8,
            ])
        });
        for filter in [PilFilter::Bilinear, PilFilter::Bicubic, PilFilter::Lanczos] {
            let fast = pil_resize(&image, 190, 31, filter);
            assert_eq!(
                fast.as_raw(),
                reference_resize(&image, 190, 31, filter).as_raw(),
                "{filter:?}"
            );
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(13, 7, image::Rgb([10, 200, 255]));
        for filter in [PilFilter::Bilinear, PilFilter::Bicubic, PilFilter::Lanczos] {
            let out = pil_resize(&img, 5, 11, filter);
            assert_eq!((out.width(), out.height()), (5, 11));
            assert!(out.pixels().all(|p| p.0 == [10, 200, 255]), "{filter:?}");
        }
    }

    #[test]
    fn bilinear_halving_matches_pillow() {
        // 4x1 -> 2x1: scale 2, support 2; output 0 reads inputs 0..3 with tent weights
        // 0.75, 0.75, 0.25 (normalised by 1.75): 100 * 3/7 + 200 * 1/7 = 71.4 -> 71. Pillow 11.0:
        // Image.frombytes("RGB", (4, 1), bytes([0]*3 + [100]*3 + [200]*3 + [255]*3))
        //      .resize((2, 1), Image.BILINEAR) -> [(71,)*3, (209,)*3]
        let mut img = RgbImage::new(4, 1);
        for (x, v) in [0u8, 100, 200, 255].iter().enumerate() {
            img.put_pixel(x as u32, 0, image::Rgb([*v; 3]));
        }
        let out = pil_resize(&img, 2, 1, PilFilter::Bilinear);
        assert_eq!(out.get_pixel(0, 0).0, [71; 3]);
        assert_eq!(out.get_pixel(1, 0).0, [209; 3]);
    }

    #[test]
    fn all_filters_match_pillow_on_a_down_and_up_resize() {
        // 5x3 -> 3x4 (down in x, up in y); values from Pillow 11.0:
        // Image.fromarray(a).resize((3, 4), f) for f in BICUBIC, LANCZOS, BILINEAR, with
        // a[y, x] = [(53x + 17y) % 256, (11x^2 + 70y) % 256, 255 - (40x + 30y)].
        let img = RgbImage::from_fn(5, 3, |x, y| {
            image::Rgb([
                ((x * 53 + y * 17) % 256) as u8,
                ((x * x * 11 + y * 70) % 256) as u8,
                (255 - (x * 40 + y * 30)) as u8,
            ])
        });
        let cases: [(PilFilter, [u8; 36]); 3] = [
            (
                PilFilter::Bicubic,
                [
                    18, 0, 243, 105, 42, 177, 192, 143, 111, 28, 41, 224, 115, 84, 158, 202, 196,
                    92, 44, 103, 198, 131, 151, 132, 218, 192, 66, 54, 146, 179, 141, 200, 113,
                    228, 133, 47,
                ],
            ),
            (
                PilFilter::Lanczos,
                [
                    16, 0, 243, 105, 41, 176, 194, 142, 109, 25, 33, 229, 114, 73, 162, 203, 201,
                    95, 43, 108, 195, 132, 160, 128, 221, 195, 61, 52, 140, 181, 141, 207, 114,
                    230, 131, 47,
                ],
            ),
            (
                PilFilter::Bilinear,
                [
                    23, 5, 238, 106, 49, 175, 189, 143, 112, 34, 49, 219, 117, 93, 156, 200, 187,
                    93, 46, 101, 197, 129, 145, 134, 212, 185, 71, 57, 145, 178, 140, 189, 115,
                    223, 137, 52,
                ],
            ),
        ];
        for (filter, want) in cases {
            let out = pil_resize(&img, 3, 4, filter);
            assert_eq!(out.as_raw().as_slice(), want.as_slice(), "{filter:?}");
        }
    }
}
