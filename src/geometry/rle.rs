//! COCO run-length encoding, bit-for-bit as pycocotools (`common/maskApi.c`, cocodataset/cocoapi
//! and its PyPI fork ppwwyyxx/cocoapi): column-major runs that alternate 0/1 and start with a run
//! of zeros (possibly empty), and the compressed counts string (`rleToString` / `rleFrString`).
//!
//! [`CocoRle`] is the serde shape of the canonical format (`{"size": [h, w], "counts": ...}`);
//! [`Rle`] is the working form: checked run lengths that every operation (area, IoU, merge, box)
//! walks without expanding to pixels. Only the explicit `decode_*` functions allocate per pixel.
//!
//! Deliberate differences from pycocotools, all on input pycocotools mishandles:
//! - encoding treats any non-zero byte as foreground (pycocotools starts a new run at a 1 → 2
//!   change, breaking the 0/1 alternation);
//! - malformed counts (bad characters, truncated strings, negative or overflowing runs, runs that
//!   do not sum to h*w) are errors here, where pycocotools reads past the string or wraps;
//! - masks of different sizes are an error for IoU and merge (pycocotools returns -1 / an empty
//!   0x0 mask).

use serde::{Deserialize, Serialize};

use super::bbox::BBox;
use super::error::MaskError;
use super::polygon::rasterise_polygon;

/// A COCO RLE mask: `{"size": [h, w], "counts": "..."}` (compressed) or `"counts": [..]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoRle {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: RleCounts,
}

/// Compressed string counts (pycocotools) or an uncompressed list of run lengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RleCounts {
    Compressed(String),
    Runs(Vec<u64>),
}

impl CocoRle {
    pub fn height(&self) -> u32 {
        self.size[0]
    }
    pub fn width(&self) -> u32 {
        self.size[1]
    }

    /// Checks that the counts decode and sum to height * width.
    pub fn validate(&self) -> Result<(), MaskError> {
        self.to_rle().map(|_| ())
    }

    /// The checked working form (decodes a compressed string; no per-pixel work).
    pub fn to_rle(&self) -> Result<Rle, MaskError> {
        let counts = match &self.counts {
            RleCounts::Compressed(s) => counts_from_string(s)?,
            RleCounts::Runs(runs) => runs
                .iter()
                .enumerate()
                .map(|(index, &v)| {
                    u32::try_from(v).map_err(|_| MaskError::RunOutOfRange {
                        index,
                        value: i64::try_from(v).unwrap_or(i64::MAX),
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?,
        };
        Rle::from_counts(self.height(), self.width(), counts)
    }

    /// The same mask with compressed string counts (a no-op copy when already compressed and valid).
    pub fn compressed(&self) -> Result<CocoRle, MaskError> {
        Ok(self.to_rle()?.to_coco())
    }
}

/// A mask as checked run lengths: column-major, alternating 0/1, starting with zeros, summing to
/// `height * width`. pycocotools' `RLE` struct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rle {
    height: u32,
    width: u32,
    counts: Vec<u32>,
}

/// `height * width` as u64, or an error when it does not fit pycocotools' 32-bit runs.
pub(crate) fn pixel_count(height: u32, width: u32) -> Result<u64, MaskError> {
    let pixels = u64::from(height) * u64::from(width);
    if pixels > u64::from(u32::MAX) {
        return Err(MaskError::TooLarge {
            height,
            width,
            pixels,
        });
    }
    Ok(pixels)
}

impl Rle {
    /// Checks that `counts` sum to `height * width`.
    pub fn from_counts(height: u32, width: u32, counts: Vec<u32>) -> Result<Rle, MaskError> {
        let expected_px = pixel_count(height, width)?;
        let sum_px: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if sum_px != expected_px {
            return Err(MaskError::CountsSum {
                sum_px,
                expected_px,
                height,
                width,
            });
        }
        Ok(Rle {
            height,
            width,
            counts,
        })
    }

    /// Trusted constructor for counts produced by this module's algorithms.
    pub(crate) fn from_counts_unchecked(height: u32, width: u32, counts: Vec<u32>) -> Rle {
        debug_assert_eq!(
            counts.iter().map(|&c| u64::from(c)).sum::<u64>(),
            u64::from(height) * u64::from(width)
        );
        Rle {
            height,
            width,
            counts,
        }
    }

    /// Builds a mask from foreground pixel ranges `[start, end)` in column-major order (sorted,
    /// not overlapping; touching ranges are joined, empty ones skipped), e.g. one range per
    /// column of a convex shape. The counts are canonical, as pycocotools `encode` would give.
    pub fn from_column_major_ranges(
        height: u32,
        width: u32,
        ranges: impl IntoIterator<Item = (u64, u64)>,
    ) -> Result<Rle, MaskError> {
        let pixels = pixel_count(height, width)?;
        let mut counts: Vec<u32> = Vec::new();
        let mut pos = 0u64;
        for (start, end) in ranges {
            if end <= start {
                continue;
            }
            if start < pos || end > pixels {
                return Err(MaskError::RangeOutOfOrder {
                    start,
                    end,
                    previous_end: pos,
                    pixels,
                });
            }
            // Every value fits u32 because end <= pixels <= u32::MAX.
            if start == pos && counts.len() % 2 == 0 && !counts.is_empty() {
                // Touches the previous foreground run: extend it.
                if let Some(last) = counts.last_mut() {
                    *last += (end - start) as u32;
                }
            } else {
                counts.push((start - pos) as u32);
                counts.push((end - start) as u32);
            }
            pos = end;
        }
        counts.push((pixels - pos) as u32);
        Ok(Rle::from_counts_unchecked(height, width, counts))
    }

    /// An all-zero mask.
    pub fn empty(height: u32, width: u32) -> Result<Rle, MaskError> {
        let pixels = pixel_count(height, width)?;
        // pixels <= u32::MAX was checked above.
        Ok(Rle::from_counts_unchecked(
            height,
            width,
            vec![pixels as u32],
        ))
    }

    /// An all-one mask (`[0, h*w]`, as pycocotools encodes it).
    pub fn full(height: u32, width: u32) -> Result<Rle, MaskError> {
        let pixels = pixel_count(height, width)?;
        if pixels == 0 {
            return Ok(Rle::from_counts_unchecked(height, width, vec![0]));
        }
        Ok(Rle::from_counts_unchecked(
            height,
            width,
            vec![0, pixels as u32],
        ))
    }

    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    /// `[height, width]`, as in COCO's `size`.
    pub fn size(&self) -> [u32; 2] {
        [self.height, self.width]
    }
    /// The run lengths (even indices: zeros, odd indices: ones).
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Encodes a column-major mask (pycocotools' Fortran-order input); non-zero bytes are foreground.
    pub fn encode_column_major(mask: &[u8], height: u32, width: u32) -> Result<Rle, MaskError> {
        check_buffer(mask.len(), height, width)?;
        Ok(encode_pixels(height, width, mask.iter().map(|&v| v != 0)))
    }

    /// Encodes a row-major mask (`mask[y * width + x]`, the usual image layout) without copying it.
    pub fn encode_row_major(mask: &[u8], height: u32, width: u32) -> Result<Rle, MaskError> {
        check_buffer(mask.len(), height, width)?;
        let (h, w) = (height as usize, width as usize);
        let column_major = (0..w).flat_map(move |x| (0..h).map(move |y| mask[y * w + x] != 0));
        Ok(encode_pixels(height, width, column_major))
    }

    /// Expands to one byte (0/1) per pixel, column-major (`mask[x * height + y]`).
    pub fn decode_column_major(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.height as usize * self.width as usize);
        let mut value = 0u8;
        for &run in &self.counts {
            out.extend(std::iter::repeat_n(value, run as usize));
            value ^= 1;
        }
        out
    }

    /// Expands to one byte (0/1) per pixel, row-major (`mask[y * width + x]`).
    pub fn decode_row_major(&self) -> Vec<u8> {
        let (h, w) = (self.height as usize, self.width as usize);
        let mut out = vec![0u8; h * w];
        for (start, end) in self.foreground_runs() {
            for idx in start as usize..end as usize {
                out[(idx % h) * w + idx / h] = 1;
            }
        }
        out
    }

    /// Foreground runs as half-open column-major pixel ranges `[start, end)`; empty runs skipped.
    pub fn foreground_runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut pos = 0u64;
        self.counts.iter().enumerate().filter_map(move |(i, &c)| {
            let start = pos;
            pos += u64::from(c);
            (i % 2 == 1 && c > 0).then_some((start, pos))
        })
    }

    /// Number of foreground pixels (pycocotools `area`).
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| u64::from(c))
            .sum()
    }

    /// Compressed counts string (pycocotools `rleToString`).
    pub fn to_compressed_string(&self) -> String {
        counts_to_string(&self.counts)
    }

    /// The canonical-format mask with compressed counts.
    pub fn to_coco(&self) -> CocoRle {
        CocoRle {
            size: self.size(),
            counts: RleCounts::Compressed(self.to_compressed_string()),
        }
    }

    /// The canonical-format mask with uncompressed counts.
    pub fn to_coco_runs(&self) -> CocoRle {
        CocoRle {
            size: self.size(),
            counts: RleCounts::Runs(self.counts.iter().map(|&c| u64::from(c)).collect()),
        }
    }

    /// Tight bounding box `[x, y, width, height]` in pixels, as pycocotools `toBbox` (the fixed
    /// version in pycocotools >= 2.0.7: a foreground run that wraps to the next column makes the
    /// box span the full height). `[0, 0, 0, 0]` for an empty mask.
    pub fn to_bbox_xywh(&self) -> [f64; 4] {
        let h = u64::from(self.height);
        // pycocotools ignores a trailing unpaired count (`m = (m / 2) * 2`).
        let m = (self.counts.len() / 2) * 2;
        if m == 0 || h == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys, mut xe, mut ye) = (u64::from(self.width), h, 0u64, 0u64);
        let mut cc = 0u64;
        for (j, &run) in self.counts[..m].iter().enumerate() {
            let start = cc;
            cc += u64::from(run);
            if j % 2 == 0 || run == 0 {
                continue;
            }
            let (y_start, x_start) = (start % h, start / h);
            let (y_end, x_end) = ((cc - 1) % h, (cc - 1) / h);
            xs = xs.min(x_start);
            xe = xe.max(x_end);
            if x_start < x_end {
                ys = 0;
                ye = h - 1;
            } else {
                ys = ys.min(y_start);
                ye = ye.max(y_end);
            }
        }
        // An all-background mask with m >= 2 (e.g. counts [5, 0]) leaves xs = w > xe = 0, which
        // pycocotools turns into uint wrap-around; treat it as empty instead.
        if xs > xe || ys > ye {
            return [0.0; 4];
        }
        [
            xs as f64,
            ys as f64,
            (xe - xs + 1) as f64,
            (ye - ys + 1) as f64,
        ]
    }

    /// Tight bounding box as `[x1, y1, x2, y2]` (pixel edges: `x2 = x + width`).
    pub fn to_bbox(&self) -> BBox {
        let [x, y, w, h] = self.to_bbox_xywh();
        BBox::new(x, y, x + w, y + h)
    }

    /// The filled box as a mask, as pycocotools `frBbox`: the box `[x, y, w, h]` goes through the
    /// polygon rasteriser (so a pixel is in when its centre is inside, with its rounding quirks).
    pub fn from_bbox_xywh(xywh: [f64; 4], height: u32, width: u32) -> Result<Rle, MaskError> {
        if xywh.iter().any(|v| !v.is_finite()) {
            return Err(MaskError::BadBox {
                bbox: xywh,
                why: "a coordinate is not finite".into(),
            });
        }
        pixel_count(height, width)?;
        let [xs, ys, bw, bh] = xywh;
        let (xe, ye) = (xs + bw, ys + bh);
        let xy = [xs, ys, xs, ye, xe, ye, xe, ys];
        super::polygon::check_coordinates(0, &xy)?;
        Ok(rasterise_polygon(&xy, height, width))
    }

    /// The filled box `[x1, y1, x2, y2]` as a mask (converted to `[x, y, x2 - x1, y2 - y1]` and
    /// rasterised as [`Rle::from_bbox_xywh`]); the "no segmentation" ablation's mask.
    pub fn from_bbox(bbox: &BBox, height: u32, width: u32) -> Result<Rle, MaskError> {
        bbox.validate()
            .map_err(|why| MaskError::BadBox { bbox: bbox.0, why })?;
        Rle::from_bbox_xywh(
            [
                bbox.x1(),
                bbox.y1(),
                bbox.x2() - bbox.x1(),
                bbox.y2() - bbox.y1(),
            ],
            height,
            width,
        )
    }

    /// Union of masks of one size (pycocotools `merge(.., intersect=False)`).
    pub fn union(masks: &[Rle]) -> Result<Option<Rle>, MaskError> {
        merge(masks, false)
    }

    /// Intersection of masks of one size (pycocotools `merge(.., intersect=True)`).
    pub fn intersection(masks: &[Rle]) -> Result<Option<Rle>, MaskError> {
        merge(masks, true)
    }
}

fn check_buffer(len: usize, height: u32, width: u32) -> Result<(), MaskError> {
    let expected = pixel_count(height, width)?;
    if len as u64 != expected {
        return Err(MaskError::BufferLength {
            len,
            expected,
            height,
            width,
        });
    }
    Ok(())
}

/// pycocotools `rleEncode` over column-major pixels (already reduced to foreground / background).
fn encode_pixels(height: u32, width: u32, pixels: impl Iterator<Item = bool>) -> Rle {
    let mut counts = Vec::new();
    let mut previous = false;
    let mut run = 0u32;
    for fg in pixels {
        if fg != previous {
            counts.push(run);
            run = 0;
            previous = fg;
        }
        run += 1;
    }
    counts.push(run);
    Rle::from_counts_unchecked(height, width, counts)
}

fn check_same_size(a: &Rle, b: &Rle) -> Result<(), MaskError> {
    if a.size() != b.size() {
        return Err(MaskError::SizeMismatch {
            a_height: a.height,
            a_width: a.width,
            b_height: b.height,
            b_width: b.width,
        });
    }
    Ok(())
}

/// Walks two run sequences in lock step, as pycocotools' `rleIou` loop does: calls
/// `step(len, a_is_one, b_is_one)` for each piece over which neither mask changes value.
fn walk_pair(a: &[u32], b: &[u32], mut step: impl FnMut(u32, bool, bool)) {
    let (mut ca, mut cb) = (
        a.first().copied().unwrap_or(0),
        b.first().copied().unwrap_or(0),
    );
    let (mut ia, mut ib) = (1usize, 1usize);
    let (mut va, mut vb) = (false, false);
    loop {
        let c = ca.min(cb);
        step(c, va, vb);
        ca -= c;
        if ca == 0 && ia < a.len() {
            ca = a[ia];
            ia += 1;
            va = !va;
        }
        cb -= c;
        if cb == 0 && ib < b.len() {
            cb = b[ib];
            ib += 1;
            vb = !vb;
        }
        if ca == 0 && cb == 0 {
            break;
        }
    }
}

/// Mask IoU on runs (pycocotools `iou(dt, gt, iscrowd=[0])`): intersection / union pixels, 0 when
/// the masks do not intersect (also when both are empty). Errors when the sizes differ.
pub fn mask_iou(a: &Rle, b: &Rle) -> Result<f64, MaskError> {
    check_same_size(a, b)?;
    let (mut inter_px, mut union_px) = (0u64, 0u64);
    walk_pair(&a.counts, &b.counts, |c, va, vb| {
        if va || vb {
            union_px += u64::from(c);
            if va && vb {
                inter_px += u64::from(c);
            }
        }
    });
    if inter_px == 0 {
        return Ok(0.0);
    }
    Ok(inter_px as f64 / union_px as f64)
}

/// pycocotools `rleMerge`: union (or intersection) of masks of one size, output counts identical
/// to pycocotools'. `None` for an empty slice.
pub fn merge(masks: &[Rle], intersect: bool) -> Result<Option<Rle>, MaskError> {
    let Some(first) = masks.first() else {
        return Ok(None);
    };
    let mut acc = first.counts.clone();
    for b in &masks[1..] {
        check_same_size(first, b)?;
        let a = std::mem::take(&mut acc);
        let (mut ca, mut cb) = (
            a.first().copied().unwrap_or(0),
            b.counts.first().copied().unwrap_or(0),
        );
        let (mut ia, mut ib) = (1usize, 1usize);
        let (mut va, mut vb, mut v) = (false, false, false);
        let mut cc = 0u32;
        loop {
            let c = ca.min(cb);
            cc += c;
            ca -= c;
            if ca == 0 && ia < a.len() {
                ca = a[ia];
                ia += 1;
                va = !va;
            }
            cb -= c;
            if cb == 0 && ib < b.counts.len() {
                cb = b.counts[ib];
                ib += 1;
                vb = !vb;
            }
            let more = u64::from(ca) + u64::from(cb) > 0;
            let vp = v;
            v = if intersect { va && vb } else { va || vb };
            if v != vp || !more {
                acc.push(cc);
                cc = 0;
            }
            if !more {
                break;
            }
        }
    }
    Ok(Some(Rle::from_counts_unchecked(
        first.height,
        first.width,
        acc,
    )))
}

/// pycocotools `rleToString`: LEB128-like, 5 data bits per character (ASCII 48..=111), bit 0x20
/// = more characters follow, bit 0x10 of the last character = sign; from the fourth run on
/// (index > 2) the value stored is the difference to the run two places earlier.
pub fn counts_to_string(counts: &[u32]) -> String {
    let mut out = String::with_capacity(counts.len() * 2);
    for (i, &run) in counts.iter().enumerate() {
        let mut x = i64::from(run);
        if i > 2 {
            x -= i64::from(counts[i - 2]);
        }
        loop {
            let mut c = (x & 0x1f) as u8;
            x >>= 5; // arithmetic shift, as C's `long >>=` on the platforms pycocotools builds for
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            out.push(char::from(c + 48));
            if !more {
                break;
            }
        }
    }
    out
}

/// The most characters one value may take: 7 * 5 = 35 bits cover any 32-bit run or difference.
const MAX_CHARS_PER_VALUE: usize = 7;

/// pycocotools `rleFrString` (the inverse of [`counts_to_string`]), with errors where pycocotools
/// would read past the string or wrap a negative run into a huge one.
pub fn counts_from_string(s: &str) -> Result<Vec<u32>, MaskError> {
    let bytes = s.as_bytes();
    let mut counts: Vec<u32> = Vec::with_capacity(bytes.len());
    let mut p = 0usize;
    while p < bytes.len() {
        let mut x: i64 = 0;
        let mut k = 0usize;
        loop {
            let Some(&byte) = bytes.get(p) else {
                return Err(MaskError::TruncatedCounts { offset: p });
            };
            if !(48..=111).contains(&byte) {
                return Err(MaskError::BadCountsByte { offset: p, byte });
            }
            if k == MAX_CHARS_PER_VALUE {
                return Err(MaskError::CountsValueTooLong {
                    index: counts.len(),
                    max_chars: MAX_CHARS_PER_VALUE,
                });
            }
            let c = i64::from(byte - 48);
            x |= (c & 0x1f) << (5 * k);
            p += 1;
            k += 1;
            if c & 0x20 == 0 {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k); // sign-extend from the last character's bit 4
                }
                break;
            }
        }
        let m = counts.len();
        if m > 2 {
            x += i64::from(counts[m - 2]);
        }
        let run = u32::try_from(x).map_err(|_| MaskError::RunOutOfRange { index: m, value: x })?;
        counts.push(run);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row-major 3x3 mask with the centre column set plus the top-left pixel.
    fn sample_3x3() -> Vec<u8> {
        vec![1, 1, 0, 0, 1, 0, 0, 1, 0]
    }

    #[test]
    fn encode_3x3_matches_pycocotools() {
        // pycocotools 2.0.11: encode(asfortranarray(m)) -> {'size': [3, 3], 'counts': b'01221'}
        // (column-major pixels 1,0,0 | 1,1,1 | 0,0,0 -> runs 0,1,2,3,3; runs 3 and 4 are stored
        // as differences to runs 1 and 2: 3 - 1 = 2, 3 - 2 = 1).
        let rle = Rle::encode_row_major(&sample_3x3(), 3, 3).unwrap();
        assert_eq!(rle.counts(), &[0, 1, 2, 3, 3]);
        assert_eq!(rle.to_compressed_string(), "01221");
        assert_eq!(rle.area(), 4);
        assert_eq!(rle.decode_row_major(), sample_3x3());
        assert_eq!(rle.to_bbox_xywh(), [0.0, 0.0, 2.0, 3.0]);
    }

    #[test]
    fn string_codec_diff_and_sign_extension() {
        // Runs [5, 3, 2, 10]: index 3 is stored as 10 - 3 = 7; [10, 2, 8, 1]: 1 - 2 = -1 is
        // stored as one character with the sign bit, 0x1f + 48 = 'O'.
        assert_eq!(counts_to_string(&[5, 3, 2, 10]), "5327");
        assert_eq!(counts_from_string("5327").unwrap(), vec![5, 3, 2, 10]);
        assert_eq!(counts_to_string(&[10, 2, 8, 1]), ":28O");
        assert_eq!(counts_from_string(":28O").unwrap(), vec![10, 2, 8, 1]);
        // 300 needs two characters: 300 = 0b1001_01100 -> low 5 bits 12 | 0x20, then 9.
        assert_eq!(counts_to_string(&[300]), "\\9");
        assert_eq!(counts_from_string("\\9").unwrap(), vec![300]);
        // 16 alone would read as negative (bit 4), so it takes a second character.
        assert_eq!(counts_to_string(&[16]), "`0");
        assert_eq!(counts_from_string("`0").unwrap(), vec![16]);
    }

    #[test]
    fn string_codec_round_trips_large_values() {
        let runs = vec![0, 307_200, 0, 1, u32::MAX - 307_201, 17, 16, 15, 2_000_000];
        let s = counts_to_string(&runs);
        assert_eq!(counts_from_string(&s).unwrap(), runs);
    }

    #[test]
    fn bad_strings_are_errors() {
        assert!(matches!(
            counts_from_string("0 1"),
            Err(MaskError::BadCountsByte {
                offset: 1,
                byte: b' '
            })
        ));
        // 'P' = 0x20 | ... has the "more" bit and nothing follows.
        assert!(matches!(
            counts_from_string("P"),
            Err(MaskError::TruncatedCounts { offset: 1 })
        ));
        // [5, 3, 2] then a difference of -4 against 3 -> -1.
        let err = counts_from_string("532L").unwrap_err();
        assert!(
            matches!(
                err,
                MaskError::RunOutOfRange {
                    index: 3,
                    value: -1
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn validate_reports_wrong_sum_with_hint() {
        let rle = CocoRle {
            size: [3, 3],
            counts: RleCounts::Runs(vec![0, 1, 2, 3]),
        };
        let msg = rle.validate().unwrap_err().to_string();
        assert!(
            msg.contains("sum to 6 pixels") && msg.contains("3x3 = 9"),
            "{msg}"
        );
        assert!(msg.contains("hint:"), "{msg}");
        let ok = CocoRle {
            size: [3, 3],
            counts: RleCounts::Compressed("01221".into()),
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn iou_and_merge_on_runs() {
        let a = Rle::encode_row_major(&[1, 1, 0, 0, 0, 0], 2, 3).unwrap();
        let b = Rle::encode_row_major(&[0, 1, 1, 0, 0, 0], 2, 3).unwrap();
        assert!((mask_iou(&a, &b).unwrap() - 1.0 / 3.0).abs() < 1e-15);
        let u = Rle::union(&[a.clone(), b.clone()]).unwrap().unwrap();
        assert_eq!(u.decode_row_major(), vec![1, 1, 1, 0, 0, 0]);
        let i = Rle::intersection(&[a.clone(), b]).unwrap().unwrap();
        assert_eq!(i.decode_row_major(), vec![0, 1, 0, 0, 0, 0]);
        let other = Rle::empty(3, 2).unwrap();
        assert!(matches!(
            mask_iou(&a, &other),
            Err(MaskError::SizeMismatch { .. })
        ));
        let empty = Rle::empty(2, 3).unwrap();
        assert_eq!(mask_iou(&empty, &empty).unwrap(), 0.0);
    }

    #[test]
    fn full_and_empty_masks() {
        let full = Rle::encode_column_major(&[1; 6], 2, 3).unwrap();
        assert_eq!(full, Rle::full(2, 3).unwrap());
        assert_eq!(full.to_compressed_string(), "06");
        assert_eq!(full.to_bbox(), BBox::new(0.0, 0.0, 3.0, 2.0));
        let empty = Rle::encode_column_major(&[0; 6], 2, 3).unwrap();
        assert_eq!(empty, Rle::empty(2, 3).unwrap());
        assert_eq!(empty.to_bbox_xywh(), [0.0; 4]);
    }

    #[test]
    fn bbox_of_a_run_wrapping_columns_spans_the_height() {
        // 4x3, pixels (y=3, x=0) and (y=0, x=1): one run across the column break.
        // pycocotools 2.0.11 toBbox -> [0, 0, 2, 4] (older versions gave a wrong box).
        let mut mask = vec![0u8; 12];
        mask[3 * 3] = 1;
        mask[1] = 1;
        let rle = Rle::encode_row_major(&mask, 4, 3).unwrap();
        assert_eq!(rle.to_bbox_xywh(), [0.0, 0.0, 2.0, 4.0]);
    }

    #[test]
    fn from_ranges_joins_touching_runs() {
        // 3x2: column 0 rows 1..3, column 1 rows 0..1 -> one run of 3 across the column break.
        let rle = Rle::from_column_major_ranges(3, 2, [(1, 3), (3, 4), (5, 5)]).unwrap();
        assert_eq!(rle.counts(), &[1, 3, 2]);
        let mut row_major = vec![0u8; 6];
        for (x, y) in [(0, 1), (0, 2), (1, 0)] {
            row_major[y * 2 + x] = 1;
        }
        assert_eq!(rle, Rle::encode_row_major(&row_major, 3, 2).unwrap());
        assert!(Rle::from_column_major_ranges(3, 2, [(2, 4), (3, 5)]).is_err());
        assert!(Rle::from_column_major_ranges(3, 2, [(2, 7)]).is_err());
    }

    #[test]
    fn wrong_buffer_length_is_an_error() {
        assert!(matches!(
            Rle::encode_row_major(&[0; 5], 2, 3),
            Err(MaskError::BufferLength {
                len: 5,
                expected: 6,
                ..
            })
        ));
    }
}
