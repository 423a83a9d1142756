//! Errors of the geometry layer (masks and polygons). Geometry knows no files: each variant says
//! what is wrong with the mask or polygon and gives a hint; readers add the file and record.

/// What can be wrong with a mask, its counts string, or a polygon.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MaskError {
    #[error("RLE counts sum to {sum_px} pixels but the mask is {height}x{width} = {expected_px} pixels\n  hint: `size` is [height, width] and the counts must cover every pixel exactly once (column-major, starting with a run of zeros)")]
    CountsSum {
        sum_px: u64,
        expected_px: u64,
        height: u32,
        width: u32,
    },
    #[error("mask of {height}x{width} = {pixels} pixels is too large for COCO RLE\n  hint: pycocotools stores run lengths as 32-bit unsigned integers, so height * width must be below 2^32")]
    TooLarge {
        height: u32,
        width: u32,
        pixels: u64,
    },
    #[error("run #{index} of the counts is {value}, which does not fit a 32-bit run length\n  hint: counts are non-negative pixel counts below 2^32 (pycocotools' uint)")]
    RunOutOfRange { index: usize, value: i64 },
    #[error("compressed RLE counts: byte {byte:#04x} at offset {offset} is not in '0'..='o'\n  hint: a compressed COCO RLE string uses only ASCII 48..=111; was the string re-encoded or truncated?")]
    BadCountsByte { offset: usize, byte: u8 },
    #[error("compressed RLE counts end in the middle of a value (offset {offset})\n  hint: the string was probably truncated; re-export the mask")]
    TruncatedCounts { offset: usize },
    #[error("compressed RLE counts: value #{index} has more than {max_chars} characters\n  hint: no run of a real image needs that many; the string is corrupt")]
    CountsValueTooLong { index: usize, max_chars: usize },
    #[error("mask buffer has {len} bytes but {height}x{width} needs {expected}\n  hint: pass one byte per pixel, height * width bytes")]
    BufferLength {
        len: usize,
        expected: u64,
        height: u32,
        width: u32,
    },
    #[error("masks have different sizes: {a_height}x{a_width} vs {b_height}x{b_width}\n  hint: IoU and merge need masks of the same image; check the `size` fields (they are [height, width])")]
    SizeMismatch {
        a_height: u32,
        a_width: u32,
        b_height: u32,
        b_width: u32,
    },
    #[error("polygon #{index} has {points} point(s); a polygon needs at least 3\n  hint: polygons are flat lists [x1, y1, x2, y2, x3, y3, ...] of at least 6 numbers")]
    PolygonTooShort { index: usize, points: usize },
    #[error("polygon #{index} has an odd number of coordinates ({coords})\n  hint: polygons are flat lists of x, y pairs")]
    PolygonOddLength { index: usize, coords: usize },
    #[error("polygon #{index} has the coordinate {value}, which is not finite or is far outside any image (limit {limit})\n  hint: coordinates are pixels of the original image")]
    PolygonCoordinate {
        index: usize,
        value: f64,
        limit: f64,
    },
    #[error("foreground range [{start}, {end}) is out of order or past the mask (previous range ended at {previous_end}, mask has {pixels} pixels)\n  hint: ranges are column-major pixel indices (x * height + y), sorted and not overlapping")]
    RangeOutOfOrder {
        start: u64,
        end: u64,
        previous_end: u64,
        pixels: u64,
    },
    #[error("box {bbox:?} cannot be rasterised: {why}\n  hint: boxes are [x1, y1, x2, y2] in pixels with x1 <= x2 and y1 <= y2")]
    BadBox { bbox: [f64; 4], why: String },
}

impl MaskError {
    /// The message and the hint separately (the `Display` form joins them with `\n  hint: `), for
    /// callers that wrap the error in their own "where + what + hint" type.
    pub fn what_and_hint(&self) -> (String, String) {
        let text = self.to_string();
        match text.split_once("\n  hint: ") {
            Some((what, hint)) => (what.to_string(), hint.to_string()),
            None => (text, String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_a_hint() {
        let e = MaskError::PolygonTooShort {
            index: 2,
            points: 1,
        };
        let (what, hint) = e.what_and_hint();
        assert_eq!(
            what,
            "polygon #2 has 1 point(s); a polygon needs at least 3"
        );
        assert!(hint.starts_with("polygons are flat lists"), "{hint}");
    }
}
