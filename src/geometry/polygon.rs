//! Polygons → COCO RLE, bit-for-bit as pycocotools `rleFrPoly` (`common/maskApi.c`) followed by
//! `rleMerge` for a multi-part segmentation (what `COCO.annToRLE` does with a polygon list).
//!
//! The rasteriser's quirks are kept on purpose, since gold masks made by pycocotools carry them:
//! vertices are scaled by 5 and rounded with C's `(int)(v * 5 + .5)` (truncation toward zero, so
//! -0.3 and 0.0 land on the same point), the boundary is walked densely at that resolution, and a
//! pixel column `x` gets a boundary crossing where the walk crosses `x` at the 5x scale; the row is
//! `ceil` of the downscaled y, clamped to `[0, h]`. The result is close to "pixel centre inside
//! the polygon" but not equal to it. Boxes go through the same rasteriser (`frBbox`).
//!
//! The walk is streamed: only the boundary crossings are stored, never per-pixel buffers.

use super::error::MaskError;
use super::rle::{merge, pixel_count, Rle};

/// pycocotools' upsampling factor.
const SCALE: f64 = 5.0;

/// Coordinates beyond this (in pixels) are rejected: pycocotools' `(int)(5 * v + .5)` would
/// overflow near 4e8, and the dense walk costs time in proportion to the polygon's perimeter.
pub const MAX_ABS_COORDINATE_PX: f64 = 1.0e7;

/// Rasterises polygons (each a flat `[x1, y1, x2, y2, ...]` list in pixels) into one mask of
/// `height x width`: each polygon as pycocotools `frPyObjects`, then their union as `merge`.
/// No polygons gives an empty mask (pycocotools would give a 0x0 one).
pub fn polygon_to_rle(polys: &[Vec<f64>], height: u32, width: u32) -> Result<Rle, MaskError> {
    pixel_count(height, width)?;
    let mut parts = Vec::with_capacity(polys.len());
    for (index, xy) in polys.iter().enumerate() {
        check_polygon(index, xy)?;
        parts.push(rasterise_polygon(xy, height, width));
    }
    match merge(&parts, false)? {
        Some(mask) => Ok(mask),
        None => Rle::empty(height, width),
    }
}

/// One polygon, as pycocotools `frPoly` of a single polygon.
pub fn single_polygon_to_rle(xy: &[f64], height: u32, width: u32) -> Result<Rle, MaskError> {
    pixel_count(height, width)?;
    check_polygon(0, xy)?;
    Ok(rasterise_polygon(xy, height, width))
}

/// At least 3 points, an even number of coordinates, all finite and not absurdly far out.
fn check_polygon(index: usize, xy: &[f64]) -> Result<(), MaskError> {
    if xy.len() % 2 != 0 {
        return Err(MaskError::PolygonOddLength {
            index,
            coords: xy.len(),
        });
    }
    if xy.len() < 6 {
        return Err(MaskError::PolygonTooShort {
            index,
            points: xy.len() / 2,
        });
    }
    check_coordinates(index, xy)
}

pub(crate) fn check_coordinates(index: usize, xy: &[f64]) -> Result<(), MaskError> {
    match xy
        .iter()
        .find(|v| !v.is_finite() || v.abs() > MAX_ABS_COORDINATE_PX)
    {
        Some(&value) => Err(MaskError::PolygonCoordinate {
            index,
            value,
            limit: MAX_ABS_COORDINATE_PX,
        }),
        None => Ok(()),
    }
}

/// C's `(int)(v)` for the values we allow (in range): truncation toward zero. Rust's `as` does
/// the same and maps NaN to 0 (C: undefined; the NaN only arises for a repeated vertex, whose
/// single point is never compared, see below).
fn c_int(v: f64) -> i32 {
    v as i32
}

/// pycocotools `rleFrPoly` for one polygon; coordinates must have passed [`check_coordinates`]
/// and `height * width` must fit 32 bits.
pub(crate) fn rasterise_polygon(xy: &[f64], height: u32, width: u32) -> Rle {
    let pixels = u64::from(height) * u64::from(width);
    if pixels == 0 {
        return Rle::from_counts_unchecked(height, width, vec![0]);
    }
    let k = xy.len() / 2;
    let xs_scaled: Vec<i32> = (0..k).map(|j| c_int(SCALE * xy[2 * j] + 0.5)).collect();
    let ys_scaled: Vec<i32> = (0..k).map(|j| c_int(SCALE * xy[2 * j + 1] + 0.5)).collect();
    let h_f = f64::from(height);
    let w_max = f64::from(width) - 1.0;

    // Column-major indices (x * h + y) where the mask toggles, plus the end h * w.
    let mut toggles: Vec<u32> = Vec::new();
    let mut previous: Option<(i32, i32)> = None;
    let mut visit = |u: i32, v: i32| {
        if let Some((pu, pv)) = previous {
            if u != pu {
                let xd = f64::from(if u < pu { u } else { u - 1 });
                let xd = (xd + 0.5) / SCALE - 0.5;
                if xd.floor() == xd && (0.0..=w_max).contains(&xd) {
                    let yd = f64::from(if v < pv { v } else { pv });
                    let mut yd = (yd + 0.5) / SCALE - 0.5;
                    if yd < 0.0 {
                        yd = 0.0;
                    } else if yd > h_f {
                        yd = h_f;
                    }
                    let yd = yd.ceil();
                    // (uint)(x * (int)h + y) in C; in range because x <= w - 1 and y <= h.
                    toggles.push((xd as u32).wrapping_mul(height).wrapping_add(yd as u32));
                }
            }
        }
        previous = Some((u, v));
    };

    for j in 0..k {
        let next = (j + 1) % k;
        let (mut xs, mut xe) = (xs_scaled[j], xs_scaled[next]);
        let (mut ys, mut ye) = (ys_scaled[j], ys_scaled[next]);
        let dx = (xe - xs).abs();
        let dy = (ys - ye).abs();
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            std::mem::swap(&mut xs, &mut xe);
            std::mem::swap(&mut ys, &mut ye);
        }
        // dx == dy == 0 (a repeated vertex) gives 0/0 = NaN, as in C; that lone point shares its
        // x with both neighbours, so it never produces a crossing.
        let s = if dx >= dy {
            f64::from(ye - ys) / f64::from(dx)
        } else {
            f64::from(xe - xs) / f64::from(dy)
        };
        if dx >= dy {
            for d in 0..=dx {
                let t = if flip { dx - d } else { d };
                visit(t + xs, c_int(f64::from(ys) + s * f64::from(t) + 0.5));
            }
        } else {
            for d in 0..=dy {
                let t = if flip { dy - d } else { d };
                visit(c_int(f64::from(xs) + s * f64::from(t) + 0.5), t + ys);
            }
        }
    }

    // pixels <= u32::MAX (checked by callers).
    toggles.push(pixels as u32);
    toggles.sort_unstable();
    let mut previous_index = 0u32;
    for t in toggles.iter_mut() {
        let index = *t;
        *t -= previous_index;
        previous_index = index;
    }
    // Two crossings at the same pixel cancel: a zero run merges its neighbours (C's loop).
    let mut counts = Vec::with_capacity(toggles.len());
    counts.push(toggles[0]);
    let mut j = 1;
    while j < toggles.len() {
        if toggles[j] > 0 {
            counts.push(toggles[j]);
            j += 1;
        } else {
            j += 1;
            if j < toggles.len() {
                if let Some(last) = counts.last_mut() {
                    *last += toggles[j];
                }
                j += 1;
            }
        }
    }
    Rle::from_counts_unchecked(height, width, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_polygon_covers_pixel_centres() {
        // The square [1, 4] x [1, 3] covers pixel centres x in {1.5, 2.5, 3.5}, y in {1.5, 2.5}.
        let rle = polygon_to_rle(&[vec![1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]], 5, 6).unwrap();
        assert_eq!(rle.area(), 6);
        assert_eq!(rle.to_bbox_xywh(), [1.0, 1.0, 3.0, 2.0]);
        // pycocotools 2.0.11: frPyObjects([[1, 1, 4, 1, 4, 3, 1, 3]], 5, 6)
        assert_eq!(rle.to_compressed_string(), "6230009");
    }

    #[test]
    fn union_of_two_polygons() {
        let a = vec![0.0, 0.0, 2.0, 0.0, 2.0, 2.0, 0.0, 2.0];
        let b = vec![3.0, 3.0, 5.0, 3.0, 5.0, 5.0, 3.0, 5.0];
        let both = polygon_to_rle(&[a.clone(), b], 6, 6).unwrap();
        let only_a = polygon_to_rle(&[a], 6, 6).unwrap();
        assert_eq!(only_a.area(), 4);
        assert_eq!(both.area(), 8);
    }

    #[test]
    fn short_odd_and_non_finite_polygons_are_errors() {
        assert!(matches!(
            polygon_to_rle(&[vec![0.0, 0.0, 1.0, 1.0]], 4, 4),
            Err(MaskError::PolygonTooShort {
                index: 0,
                points: 2
            })
        ));
        assert!(matches!(
            polygon_to_rle(&[vec![0.0; 6], vec![0.0; 7]], 4, 4),
            Err(MaskError::PolygonOddLength {
                index: 1,
                coords: 7
            })
        ));
        assert!(matches!(
            polygon_to_rle(&[vec![0.0, 0.0, 1.0, f64::NAN, 2.0, 2.0]], 4, 4),
            Err(MaskError::PolygonCoordinate { index: 0, .. })
        ));
    }

    #[test]
    fn repeated_vertex_and_outside_points_do_not_panic() {
        let xy = [-3.0, -3.0, -3.0, -3.0, 9.0, 1.0, 9.0, 9.0, 1.0, 9.0];
        let rle = single_polygon_to_rle(&xy, 7, 5).unwrap();
        assert_eq!(rle.counts().iter().map(|&c| u64::from(c)).sum::<u64>(), 35);
    }
}
