//! The arithmetic between SAM's prompt decoder and a COCO mask: low-resolution logits →
//! original-size mask → uncompressed column-major runs, exactly as
//! `SamImageProcessor.post_process_masks` (transformers) + threshold 0 + COCO RLE. Split from
//! [`super::segmenter`] so it can be tested and timed on its own (benches/segmenter.rs). Must not
//! run models or know tweets: slices in, runs out.
//!
//! Issue 15: both bilinear passes run separably (PyTorch's f32 expressions, operation for
//! operation, so the same bits), over the content crop only, column by column, emitting runs as
//! each column is produced; no full-size frame or mask is materialised. The tests keep the
//! straightforward implementation as the reference it must equal (fixture and proptest).

use crate::runtime::ImageTransform;

/// One axis of PyTorch's `upsample_bilinear2d` (CPU, `align_corners=False`, no scale factor):
/// per output index, the two source indices and their weights.
fn linear_taps(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(in_size.saturating_sub(1));
            let lambda1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 + 1 < in_size { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - lambda1, lambda1)
        })
        .collect()
}

/// Column-major COCO runs written as the mask is produced: alternating 0/1 runs starting with
/// 0 (a leading 0-length run when the first pixel is set).
struct RunWriter {
    runs: Vec<u64>,
    current: bool,
    count: u64,
}

impl RunWriter {
    fn new() -> Self {
        RunWriter {
            runs: Vec::new(),
            current: false,
            count: 0,
        }
    }

    #[inline]
    fn push(&mut self, value: bool) {
        if value == self.current {
            self.count += 1;
        } else {
            self.runs.push(self.count);
            self.current = value;
            self.count = 1;
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.runs.push(self.count);
        self.runs
    }
}

/// Row-major `rows x cols` values (`stride` apart) → column-major, `cols` columns of `rows`.
fn transpose(values: &[f32], stride: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for (y, row) in values.chunks(stride).take(rows).enumerate() {
        for (x, &v) in row[..cols].iter().enumerate() {
            out[x * rows + y] = v;
        }
    }
    out
}

/// One bilinear pass of PyTorch's `upsample_bilinear2d` over column-major data, horizontal half
/// first: output column `x` blends input columns `x0`, `x1` (`column[y] = a[y] * wx0 + b[y] *
/// wx1`, PyTorch's "top"/"bottom" terms), then each output row blends two of those
/// (`c[y0] * wy0 + c[y1] * wy1`). That is PyTorch's expression, operation for operation, so the
/// value is the same f32; only the loop order differs. `emit` gets each output column in turn.
fn bilinear_columns(
    columns: &[f32],
    in_rows: usize,
    col_taps: &[(usize, usize, f32, f32)],
    row_taps: &[(usize, usize, f32, f32)],
    mut emit: impl FnMut(usize, &mut dyn Iterator<Item = f32>),
) {
    let mut blended = vec![0.0f32; in_rows];
    for (x, &(x0, x1, wx0, wx1)) in col_taps.iter().enumerate() {
        let a = &columns[x0 * in_rows..(x0 + 1) * in_rows];
        let b = &columns[x1 * in_rows..(x1 + 1) * in_rows];
        for ((c, &va), &vb) in blended.iter_mut().zip(a).zip(b) {
            *c = va * wx0 + vb * wx1;
        }
        let mut column = row_taps
            .iter()
            .map(|&(y0, y1, wy0, wy1)| blended[y0] * wy0 + blended[y1] * wy1);
        emit(x, &mut column);
    }
}

/// Low-resolution mask logits (row-major `mh x mw`, covering the model-input frame) → the
/// original-size mask as uncompressed column-major COCO runs, exactly as
/// `SamImageProcessor.post_process_masks` + threshold 0: bilinear to the input frame, crop the
/// padding, bilinear to the original size, `> 0`. `at_original_size`: the decoder took
/// `orig_im_size` and its logits are already at the original size (then only thresholded).
///
/// Only the content crop of the input frame is computed (the padding is dropped anyway), both
/// passes are separable over columns, and the runs are counted as each output column is
/// produced, so no full-size frame or mask is materialised.
pub fn sam_mask_runs(
    logits: &[f32],
    (mh, mw): (usize, usize),
    transform: &ImageTransform,
    at_original_size: bool,
) -> Vec<u64> {
    let (w, h) = (
        transform.original_width as usize,
        transform.original_height as usize,
    );
    let mut runs = RunWriter::new();
    if mh == 0 || mw == 0 || logits.len() < mh * mw {
        // Nothing to sample (the stage rejects empty logits before this): an empty mask.
        for _ in 0..w * h {
            runs.push(false);
        }
        return runs.finish();
    }
    if at_original_size && (mh, mw) == (h, w) {
        for x in 0..w {
            for y in 0..h {
                runs.push(logits[y * w + x] > 0.0);
            }
        }
        return runs.finish();
    }
    let (ih, iw) = (
        transform.input_height as usize,
        transform.input_width as usize,
    );
    let (ch, cw) = (
        (transform.content_height as usize).clamp(1, ih),
        (transform.content_width as usize).clamp(1, iw),
    );
    // Pass 1: low-res → the content crop of the input frame, kept column-major.
    let low = transpose(logits, mw, mh, mw);
    let mut frame = Vec::with_capacity(cw * ch);
    let frame_cols = linear_taps(mw, iw);
    let frame_rows = linear_taps(mh, ih);
    bilinear_columns(
        &low,
        mh,
        &frame_cols[..cw],
        &frame_rows[..ch],
        |_, column| frame.extend(column),
    );
    // Pass 2: content crop → original size, thresholded into runs column by column.
    bilinear_columns(
        &frame,
        ch,
        &linear_taps(cw, w),
        &linear_taps(ch, h),
        |_, column| {
            for v in column {
                runs.push(v > 0.0);
            }
        },
    );
    runs.finish()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use proptest::prelude::*;

    // The straightforward implementation this module had before issue 15 (a full-size frame,
    // then a full-size row-major mask, then runs): the reference the fast path must equal.

    /// `F.interpolate(plane, (out_h, out_w), mode="bilinear", align_corners=False)` of the
    /// top-left `in_h x in_w` window of a row-major plane `stride` values wide.
    fn interpolate_bilinear(
        plane: &[f32],
        stride: usize,
        (in_h, in_w): (usize, usize),
        (out_h, out_w): (usize, usize),
    ) -> Vec<f32> {
        let rows = linear_taps(in_h, out_h);
        let cols = linear_taps(in_w, out_w);
        let mut out = Vec::with_capacity(out_h * out_w);
        for &(y0, y1, wy0, wy1) in &rows {
            for &(x0, x1, wx0, wx1) in &cols {
                let at = |y: usize, x: usize| plane[y * stride + x];
                let top = at(y0, x0) * wx0 + at(y0, x1) * wx1;
                let bottom = at(y1, x0) * wx0 + at(y1, x1) * wx1;
                out.push(top * wy0 + bottom * wy1);
            }
        }
        out
    }

    fn reference_mask(
        plane: &[f32],
        (mh, mw): (usize, usize),
        transform: &ImageTransform,
        at_original_size: bool,
    ) -> Vec<bool> {
        let (w, h) = (
            transform.original_width as usize,
            transform.original_height as usize,
        );
        if at_original_size && (mh, mw) == (h, w) {
            return plane.iter().map(|v| *v > 0.0).collect();
        }
        let (ih, iw) = (
            transform.input_height as usize,
            transform.input_width as usize,
        );
        let frame = interpolate_bilinear(plane, mw, (mh, mw), (ih, iw));
        let content = (
            (transform.content_height as usize).clamp(1, ih),
            (transform.content_width as usize).clamp(1, iw),
        );
        interpolate_bilinear(&frame, iw, content, (h, w))
            .into_iter()
            .map(|v| v > 0.0)
            .collect()
    }

    fn mask_to_runs(mask: &[bool], height: usize, width: usize) -> Vec<u64> {
        let mut runs = RunWriter::new();
        for x in 0..width {
            for y in 0..height {
                runs.push(mask[y * width + x]);
            }
        }
        runs.finish()
    }

    fn reference_runs(
        plane: &[f32],
        dims: (usize, usize),
        transform: &ImageTransform,
        at_original_size: bool,
    ) -> Vec<u64> {
        let mask = reference_mask(plane, dims, transform, at_original_size);
        mask_to_runs(
            &mask,
            transform.original_height as usize,
            transform.original_width as usize,
        )
    }

    #[test]
    fn runs_are_column_major_and_start_with_zeros() {
        // 2x3, row-major:
        // 1 0 1
        // 1 0 0
        let mask = [true, false, true, true, false, false];
        assert_eq!(mask_to_runs(&mask, 2, 3), vec![0, 2, 2, 1, 1]);
        assert_eq!(mask_to_runs(&[false; 4], 2, 2), vec![4]);
        // The same through the fast path, logits already at the original size.
        let t = ImageTransform {
            original_width: 3,
            original_height: 2,
            input_width: 4,
            input_height: 4,
            content_width: 4,
            content_height: 3,
        };
        let logits = [1.0f32, -1.0, 2.0, 0.5, 0.0, -3.0];
        assert_eq!(
            sam_mask_runs(&logits, (2, 3), &t, true),
            vec![0, 2, 2, 1, 1]
        );
    }

    #[test]
    fn bilinear_sampling_thresholds_at_zero() {
        let t = ImageTransform {
            original_width: 4,
            original_height: 2,
            input_width: 2,
            input_height: 2,
            content_width: 2,
            content_height: 1,
        };
        // input frame 2x2, content is the top row; left positive, right negative
        let logits = [1.0f32, -1.0, -5.0, -5.0];
        let mask = reference_mask(&logits, (2, 2), &t, false);
        assert_eq!(
            mask,
            vec![true, true, false, false, true, true, false, false]
        );
        // Columns 0 and 1 set in both rows: runs 0, 4, 4.
        assert_eq!(sam_mask_runs(&logits, (2, 2), &t, false), vec![0, 4, 4]);
    }

    #[test]
    fn interpolation_matches_torch_bilinear() {
        // torch 2.5.1: F.interpolate(x, size, mode="bilinear", align_corners=False) of the 2x3
        // plane below, to 4x5 (up) and to 1x2 (down).
        let x = [1.0f32, -2.0, 0.5, 3.0, 0.25, -1.0];
        let up = interpolate_bilinear(&x, 3, (2, 3), (4, 5));
        let want_up = [
            1.0f32,
            -0.2000001,
            -2.0,
            -0.49999964,
            0.5,
            1.5,
            0.32499996,
            -1.4375,
            -0.49999976,
            0.125,
            2.5,
            1.375,
            -0.3125,
            -0.50000006,
            -0.625,
            3.0,
            1.8999999,
            0.25,
            -0.5000002,
            -1.0,
        ];
        for (got, want) in up.iter().zip(want_up) {
            assert!((got - want).abs() < 1e-6, "{up:?}");
        }
        assert_eq!(
            interpolate_bilinear(&x, 3, (2, 3), (1, 2)),
            vec![1.28125, -0.40625]
        );
        // A window of a wider plane (the crop of the padding).
        assert_eq!(
            interpolate_bilinear(&x, 3, (2, 2), (2, 2)),
            vec![1.0, -2.0, 3.0, 0.25]
        );
        // The separable column pass gives the same f32 values, bit for bit.
        let columns = transpose(&x, 3, 2, 3);
        let mut separable = vec![0.0f32; 20];
        bilinear_columns(
            &columns,
            2,
            &linear_taps(3, 5),
            &linear_taps(2, 4),
            |c, column| {
                for (r, v) in column.enumerate() {
                    separable[r * 5 + c] = v;
                }
            },
        );
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&separable), bits(&up));
    }

    /// The arch SAM fixture: `post_process_masks` (transformers 4.46.3, torch 2.5.1) of PyTorch's
    /// own low-resolution masks, stored by scripts/gen_arch_models.py. Both paths must give
    /// exactly its runs.
    #[test]
    fn fast_and_reference_paths_equal_post_process_masks_on_the_arch_photos() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/arch/reference");
        let text = std::fs::read_to_string(dir.join("sam.json")).expect("sam.json");
        let reference: serde_json::Value = serde_json::from_str(&text).expect("json");
        let mut checked = 0;
        for case in reference["cases"].as_array().expect("cases") {
            let low = &case["low_res_masks"];
            let bytes =
                std::fs::read(dir.join(low["file"].as_str().expect("file"))).expect("lowres");
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let shape: Vec<usize> = serde_json::from_value(low["shape"].clone()).expect("shape");
            let reshaped: Vec<u32> =
                serde_json::from_value(case["reshaped_input_size"].clone()).expect("size");
            let size: Vec<u32> =
                serde_json::from_value(case["masks"][0]["size"].clone()).expect("size");
            // models/arch-sam.toml: image_size [64, 64] (SamProcessor longest_edge 64, pad 64x64).
            let input = [64u32, 64];
            let t = ImageTransform {
                original_width: size[1],
                original_height: size[0],
                input_width: input[1],
                input_height: input[0],
                content_width: reshaped[1],
                content_height: reshaped[0],
            };
            let (mh, mw) = (shape[1], shape[2]);
            for (i, want) in case["masks"].as_array().expect("masks").iter().enumerate() {
                let want: Vec<u64> = serde_json::from_value(want["runs"].clone()).expect("runs");
                let plane = &values[i * mh * mw..(i + 1) * mh * mw];
                let fast = sam_mask_runs(plane, (mh, mw), &t, false);
                assert_eq!(fast, reference_runs(plane, (mh, mw), &t, false));
                assert_eq!(fast, want, "{} box {i}", case["image"]);
                checked += 1;
            }
        }
        assert!(checked >= 10, "{checked} masks checked");
    }

    fn transforms() -> impl Strategy<Value = ImageTransform> {
        (1u32..40, 1u32..40, 1u32..60, 1u32..60).prop_flat_map(|(ih, iw, oh, ow)| {
            (1..=ih, 1..=iw).prop_map(move |(ch, cw)| ImageTransform {
                original_width: ow,
                original_height: oh,
                input_width: iw,
                input_height: ih,
                content_width: cw,
                content_height: ch,
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Random logits (with exact zeros and ties, around the threshold) and geometries, up and
        /// down in each axis: the fast path's runs equal the reference's.
        #[test]
        fn fast_mask_runs_equal_the_reference(
            (mh, mw, values) in (1usize..20, 1usize..20).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), proptest::collection::vec(
                    prop_oneof![Just(0.0f32), Just(-0.0f32), -4.0f32..4.0, -1e-6f32..1e-6],
                    h * w,
                ))
            }),
            t in transforms(),
        ) {
            prop_assert_eq!(
                sam_mask_runs(&values, (mh, mw), &t, false),
                reference_runs(&values, (mh, mw), &t, false)
            );
            // Logits already at the original size are only thresholded.
            let at = ImageTransform { original_width: mw as u32, original_height: mh as u32, ..t };
            prop_assert_eq!(
                sam_mask_runs(&values, (mh, mw), &at, true),
                reference_runs(&values, (mh, mw), &at, true)
            );
        }
    }
}
