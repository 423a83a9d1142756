//! OWLv2's image resize, reproduced: `Owlv2ImageProcessor.resize` (transformers 4.46), which is
//! `skimage.transform.resize(order=1, anti_aliasing=True, mode="reflect")` on the rescaled float
//! image: a Gaussian blur (`scipy.ndimage.gaussian_filter`, sigma = max(0, (factor - 1) / 2) per
//! axis, truncate 4, mirror edges), then linear interpolation (`scipy.ndimage.zoom(order=1,
//! grid_mode=True, mode="mirror")`), then a clip to the input's value range. Pillow is not
//! involved, so [`super::pil_resize`] does not apply.
//!
//! The arithmetic follows scipy's C code step by step (`ni_filters.c` `NI_Correlate1D`'s symmetric
//! branch, `ni_support.c`'s mirror extension, `ni_interpolation.c` `NI_ZoomShift` and
//! `map_coordinate`, `ni_splines.c`'s order-1 weights): f64 inside each pass, f32 between passes
//! (scipy keeps the float32 array's dtype), in the same order of summation, so the result matches
//! the processor to float32 rounding. It must not know about manifests or tensors: it maps an
//! `H x W x 3` float image to another.

/// An `height x width x 3` float image, rows first, channels last (the processor's numpy layout).
#[derive(Debug, Clone, PartialEq)]
pub struct FloatImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl FloatImage {
    fn at(&self, y: usize, x: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * 3 + c]
    }
}

/// Resizes like `Owlv2ImageProcessor.resize` to `width x height`.
pub fn skimage_resize(image: &FloatImage, width: usize, height: usize) -> FloatImage {
    if image.width == 0 || image.height == 0 || image.data.len() != image.width * image.height * 3 {
        // Nothing to sample (decoders do not produce empty images; never index out of bounds).
        return FloatImage {
            width,
            height,
            data: vec![0.0; width * height * 3],
        };
    }
    let factor_y = image.height as f64 / height as f64;
    let factor_x = image.width as f64 / width as f64;
    let mut filtered = image.clone();
    // scipy skips an axis whose sigma is <= 1e-15 (upsampling: factor <= 1, sigma 0).
    let sigma_y = f64::max(0.0, (factor_y - 1.0) / 2.0);
    if sigma_y > 1e-15 {
        gaussian_along(&mut filtered, sigma_y, true);
    }
    let sigma_x = f64::max(0.0, (factor_x - 1.0) / 2.0);
    if sigma_x > 1e-15 {
        gaussian_along(&mut filtered, sigma_x, false);
    }
    let mut out = zoom_linear(&filtered, width, height);
    // skimage's _clip_warp_output: the range of the image before filtering.
    let (lo, hi) = image
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    if lo <= hi {
        for v in &mut out.data {
            *v = v.clamp(lo, hi);
        }
    }
    out
}

/// numpy's pairwise sum for short arrays (`pairwise_sum` in `loops_utils.h`): sequential below 8
/// elements, else 8 interleaved accumulators combined as a tree, then the tail.
fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |acc, v| acc + v);
    }
    if n > 128 {
        // Blocks of 128 halve recursively (n is the kernel length: never this long in practice).
        let half = (n / 2) / 8 * 8;
        return numpy_sum(&a[..half]) + numpy_sum(&a[half..]);
    }
    let mut r = [0.0f64; 8];
    r.copy_from_slice(&a[..8]);
    let mut i = 8;
    while i < n - n % 8 {
        for (j, acc) in r.iter_mut().enumerate() {
            *acc += a[i + j];
        }
        i += 8;
    }
    let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    while i < n {
        res += a[i];
        i += 1;
    }
    res
}

/// `scipy.ndimage._filters._gaussian_kernel1d(sigma, 0, radius)` with radius
/// `int(4.0 * sigma + 0.5)`: the half kernel, centre first.
fn gaussian_half_kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as i64;
    let factor = -0.5 / (sigma * sigma);
    let phi: Vec<f64> = (-radius..=radius)
        .map(|x| (factor * (x * x) as f64).exp())
        .collect();
    let total = numpy_sum(&phi);
    phi[radius as usize..].iter().map(|p| p / total).collect()
}

/// Index `i` of a line of length `n` extended by mirroring about the end samples
/// (`d c b | a b c d | c b a`, period `2n - 2`), as `NI_ExtendLine`'s mirror mode.
fn mirror_index(i: i64, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * n as i64 - 2;
    let i = i.rem_euclid(period);
    if i >= n as i64 {
        (period - i) as usize
    } else {
        i as usize
    }
}

/// One `gaussian_filter1d` pass along y (`along_y`) or x, in place; each output sample is
/// `w0 * v[0] + sum_{j = r..1} (v[-j] + v[j]) * w[j]` in f64 (scipy's symmetric branch), stored
/// as f32.
fn gaussian_along(image: &mut FloatImage, sigma: f64, along_y: bool) {
    let weights = gaussian_half_kernel(sigma);
    let radius = weights.len() as i64 - 1;
    let (len, lines) = if along_y {
        (image.height, image.width)
    } else {
        (image.width, image.height)
    };
    let source = image.clone();
    let mut line = vec![0.0f64; len];
    for other in 0..lines {
        for c in 0..3 {
            for (k, v) in line.iter_mut().enumerate() {
                *v = f64::from(if along_y {
                    source.at(k, other, c)
                } else {
                    source.at(other, k, c)
                });
            }
            for k in 0..len {
                let mut acc = line[k] * weights[0];
                for j in (1..=radius).rev() {
                    let before = line[mirror_index(k as i64 - j, len)];
                    let after = line[mirror_index(k as i64 + j, len)];
                    acc += (before + after) * weights[j as usize];
                }
                let (y, x) = if along_y { (k, other) } else { (other, k) };
                image.data[(y * image.width + x) * 3 + c] = acc as f32;
            }
        }
    }
}

/// `map_coordinate` of `ni_interpolation.c`, mirror mode: a coordinate outside `[0, len - 1]`
/// reflected back in (with C's truncating integer casts).
fn map_coordinate_mirror(mut x: f64, len: usize) -> f64 {
    let len_i = len as i64;
    if x < 0.0 {
        if len <= 1 {
            return 0.0;
        }
        let sz2 = (2 * len_i - 2) as f64;
        x += sz2 * ((-x / sz2) as i64) as f64;
        x = if x <= (1 - len_i) as f64 { x + sz2 } else { -x };
    } else if x > (len_i - 1) as f64 {
        if len <= 1 {
            return 0.0;
        }
        let sz2 = (2 * len_i - 2) as f64;
        x -= sz2 * ((x / sz2) as i64) as f64;
        if x >= len as f64 {
            x = sz2 - x;
        }
    }
    x
}

/// Per output index along one axis: the two input indices and their order-1 spline weights.
fn zoom_taps(in_len: usize, out_len: usize) -> Vec<([usize; 2], [f64; 2])> {
    // grid_mode: zoom = input / output lengths, sample centres aligned.
    let zoom = in_len as f64 / out_len as f64;
    (0..out_len)
        .map(|k| {
            let cc = map_coordinate_mirror((k as f64 + 0.5) * zoom - 0.5, in_len);
            let start = cc.floor();
            let w0 = 1.0 - (cc - start);
            let w1 = 1.0 - w0;
            let start = start as i64;
            let index = |i: i64| -> usize {
                if i < 0 || i >= in_len as i64 {
                    map_coordinate_mirror(i as f64, in_len) as usize
                } else {
                    i as usize
                }
            };
            ([index(start), index(start + 1)], [w0, w1])
        })
        .collect()
}

/// `scipy.ndimage.zoom(order=1, mode="mirror", grid_mode=True)` of the `H x W x 3` array (the
/// channel axis has zoom 1: weight 1 on the channel itself, 0 on its neighbour).
fn zoom_linear(image: &FloatImage, width: usize, height: usize) -> FloatImage {
    let rows = zoom_taps(image.height, height);
    let cols = zoom_taps(image.width, width);
    let mut data = vec![0.0f32; width * height * 3];
    for (y, (yi, wy)) in rows.iter().enumerate() {
        for (x, (xi, wx)) in cols.iter().enumerate() {
            for c in 0..3 {
                // NI_ZoomShift's sum, the last axis fastest: ((v * wy) * wx) * wc; the channel
                // neighbour's term is v' * .. * 0 = +0 and leaves the sum unchanged.
                let mut t = 0.0f64;
                for a in 0..2 {
                    for b in 0..2 {
                        t += f64::from(image.at(yi[a], xi[b], c)) * wy[a] * wx[b] * 1.0;
                    }
                }
                data[(y * width + x) * 3 + c] = t as f32;
            }
        }
    }
    FloatImage {
        width,
        height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: usize, height: usize, f: impl Fn(usize, usize) -> f32) -> FloatImage {
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                data.extend([f(y, x); 3]);
            }
        }
        FloatImage {
            width,
            height,
            data,
        }
    }

    #[test]
    fn mirror_extension_matches_scipy() {
        // scipy mirror of [a b c d]: ... c b | a b c d | c b a ...
        let got: Vec<usize> = (-4..8).map(|i| mirror_index(i, 4)).collect();
        assert_eq!(got, [2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(map_coordinate_mirror(-0.25, 23), 0.25);
        assert_eq!(map_coordinate_mirror(22.3, 23), 22.3);
        assert_eq!(map_coordinate_mirror(23.0, 23), 21.0);
    }

    #[test]
    fn gaussian_kernel_matches_scipy() {
        // scipy.ndimage._filters._gaussian_kernel1d(1.015625, 0, 4)[4:]
        let want = [
            0.392_806_398_326_081_2,
            0.241_914_204_770_178_47,
            0.056_507_984_916_499_186,
            0.005_006_381_081_535_152,
            0.000_168_230_068_746_500_1,
        ];
        let got = gaussian_half_kernel(1.015625);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?}");
        }
    }

    #[test]
    fn linear_upsampling_matches_scipy_zoom() {
        // scipy.ndimage.zoom(np.array([[0, 1, 4]], np.float32), (1, 2), order=1,
        // mode="mirror", grid_mode=True)[0] = [0.25, 0.25, 0.75, 1.75, 3.25, 3.25]
        let img = gray(3, 1, |_, x| [0.0, 1.0, 4.0][x]);
        let out = zoom_linear(&img, 6, 1);
        let row: Vec<f32> = (0..6).map(|x| out.at(0, x, 0)).collect();
        assert_eq!(row, [0.25, 0.25, 0.75, 1.75, 3.25, 3.25]);
    }

    #[test]
    fn constant_stays_constant_and_range_is_kept() {
        let img = gray(37, 23, |_, _| 0.5);
        let out = skimage_resize(&img, 8, 8);
        assert!(out.data.iter().all(|v| *v == 0.5), "{:?}", &out.data[..6]);
        let ramp = gray(40, 40, |y, x| ((x + y) % 7) as f32 / 6.0);
        let out = skimage_resize(&ramp, 13, 9);
        assert_eq!((out.width, out.height, out.data.len()), (13, 9, 13 * 9 * 3));
        assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
        let empty = gray(0, 0, |_, _| 0.0);
        assert_eq!(skimage_resize(&empty, 2, 3).data, vec![0.0; 18]);
    }
}
