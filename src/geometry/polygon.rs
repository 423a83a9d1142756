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
//! Points outside the image: pycocotools never clips the polygon. It walks every upsampled point
//! of the whole perimeter, drops a crossing whose column is outside `[0, w - 1]`, and clamps the
//! row of a kept crossing to `[0, h]` (so an edge above the image toggles at row 0, one below it
//! at row h, i.e. not at all). We get the same crossings without the walk: per edge, only the
//! columns it spans inside the image are visited (see [`rasterise_polygon`]), so a polygon that
//! reaches 1e7 px out costs what an in-image one does. Only the crossings are stored, never
//! per-pixel buffers.
//!
//! Must not: change a single bit relative to pycocotools 2.0.11 (tests/it/geometry.rs checks it
//! on in-image, border-crossing and huge polygons), or walk the perimeter.

use super::error::MaskError;
use super::rle::{merge, pixel_count, Rle};

/// pycocotools' upsampling factor.
const SCALE: f64 = 5.0;

/// Coordinates beyond this (in pixels) are rejected: pycocotools' C arithmetic on the upsampled
/// points (`(int)(5 * v + .5)`, then `xe - xs` in `int`) overflows past about ±2e8 px, where its
/// answer is undefined; 1e7 px is still far beyond any image, and costs us nothing extra.
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

/// One edge of the polygon as pycocotools walks it (`rleFrPoly`'s first loop): the endpoints are
/// swapped (`flip`) so that the walk's parameter `t` runs along the longer axis, and the walk then
/// visits `point(t)` for `t = n, n-1, ..., 0` when flipped, `0..=n` otherwise — so the points still
/// come in the polygon's order.
struct Edge {
    xs: i32,
    ys: i32,
    /// `dx >= dy`: `t` runs along x (`u = xs + t`), else along y (`v = ys + t`).
    along_x: bool,
    flip: bool,
    /// The number of steps: `max(dx, dy)`.
    n: i32,
    s: f64,
}

impl Edge {
    fn new(x0: i32, y0: i32, x1: i32, y1: i32) -> Edge {
        let (mut xs, mut xe, mut ys, mut ye) = (x0, x1, y0, y1);
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
        Edge {
            xs,
            ys,
            along_x: dx >= dy,
            flip,
            n: dx.max(dy),
            s,
        }
    }

    /// The walk's point at parameter `t` (`0..=n`), with C's exact arithmetic.
    fn point(&self, t: i32) -> (i32, i32) {
        #[cfg(test)]
        tests::POINTS_EVALUATED.with(|c| c.set(c.get() + 1));
        if self.along_x {
            (
                t + self.xs,
                c_int(f64::from(self.ys) + self.s * f64::from(t) + 0.5),
            )
        } else {
            (
                c_int(f64::from(self.xs) + self.s * f64::from(t) + 0.5),
                t + self.ys,
            )
        }
    }

    /// The first and last point in walk order.
    fn ends(&self) -> ((i32, i32), (i32, i32)) {
        let (a, b) = (self.point(0), self.point(self.n));
        if self.flip {
            (b, a)
        } else {
            (a, b)
        }
    }

    /// Consecutive points `(t, t + 1)` in walk order (previous, current).
    fn step(&self, t: i32) -> ((i32, i32), (i32, i32)) {
        let (a, b) = (self.point(t), self.point(t + 1));
        if self.flip {
            (b, a)
        } else {
            (a, b)
        }
    }
}

/// `rleFrPoly`'s second loop for one pair of consecutive walk points: the column-major index
/// (`x * h + y`) of the boundary crossing they make, if any. Shared by the fast rasteriser and the
/// reference walk so both apply exactly C's arithmetic.
fn crossing(previous: (i32, i32), current: (i32, i32), height: u32, width: u32) -> Option<u32> {
    let ((pu, pv), (u, v)) = (previous, current);
    if u == pu {
        return None;
    }
    let xd = f64::from(if u < pu { u } else { u - 1 });
    let xd = (xd + 0.5) / SCALE - 0.5;
    if xd.floor() != xd || !(0.0..=f64::from(width) - 1.0).contains(&xd) {
        return None;
    }
    let h_f = f64::from(height);
    let yd = f64::from(if v < pv { v } else { pv });
    let mut yd = (yd + 0.5) / SCALE - 0.5;
    if yd < 0.0 {
        yd = 0.0;
    } else if yd > h_f {
        yd = h_f;
    }
    let yd = yd.ceil();
    // (uint)(x * (int)h + y) in C; in range because x <= w - 1 and y <= h.
    Some((xd as u32).wrapping_mul(height).wrapping_add(yd as u32))
}

/// The crossings of one edge that land in the image, without walking the edge: only the walk
/// steps that cross a pixel column's boundary (upsampled column `5x + 2` to `5x + 3`, the only
/// ones whose `xd` is a whole column) can make a crossing, and `u(t)` is monotone along an edge,
/// so for each image column the edge spans a binary search finds the one step that straddles it.
/// Cost: O(columns spanned inside the image × log n), whatever the edge's length outside it.
fn edge_crossings(edge: &Edge, height: u32, width: u32, toggles: &mut Vec<u32>) {
    if edge.n == 0 {
        return;
    }
    let u_at = |t: i32| edge.point(t).0;
    let (u0, un) = (u_at(0), u_at(edge.n));
    let increasing = un >= u0;
    let (u_lo, u_hi) = (i64::from(u0.min(un)), i64::from(u0.max(un)));
    // Columns x with u_lo <= 5x + 2 < u_hi, inside [0, w - 1].
    let first_x = (u_lo - 2).div_euclid(5) + i64::from((u_lo - 2).rem_euclid(5) != 0);
    let last_x = (u_hi - 3).div_euclid(5);
    let first_x = first_x.max(0);
    let last_x = last_x.min(i64::from(width) - 1);
    for x in first_x..=last_x {
        let c = 5 * x + 2;
        // The first t + 1 (in 1..=n) past c in the direction u moves: u(t) <= c < u(t + 1)
        // (increasing) or u(t) > c >= u(t + 1) (decreasing); it exists because c is in range.
        let past = |t: i32| {
            let u = i64::from(u_at(t));
            if increasing {
                u > c
            } else {
                u <= c
            }
        };
        let (mut lo, mut hi) = (1, edge.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if past(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let (previous, current) = edge.step(lo - 1);
        if let Some(index) = crossing(previous, current, height, width) {
            toggles.push(index);
        }
    }
}

/// The upsampled vertices: C's `(int)(scale * v + .5)`.
fn scaled_vertices(xy: &[f64]) -> (Vec<i32>, Vec<i32>) {
    let k = xy.len() / 2;
    let xs: Vec<i32> = (0..k).map(|j| c_int(SCALE * xy[2 * j] + 0.5)).collect();
    let ys: Vec<i32> = (0..k).map(|j| c_int(SCALE * xy[2 * j + 1] + 0.5)).collect();
    (xs, ys)
}

/// pycocotools `rleFrPoly` for one polygon; coordinates must have passed [`check_coordinates`]
/// and `height * width` must fit 32 bits.
///
/// Instead of walking the whole upsampled perimeter (C allocates and visits every point, which
/// for an edge far outside the image means millions of points that can never cross a column),
/// each edge contributes only the crossings of the columns it spans inside the image, plus the
/// pair of points where one edge's walk ends and the next one's begins (C compares those too).
/// Time is O(edges × min(width, span) × log(span)), independent of how far outside the image the
/// polygon reaches; the result is identical to the walk (`tests::fast_equals_reference_walk`).
pub(crate) fn rasterise_polygon(xy: &[f64], height: u32, width: u32) -> Rle {
    let pixels = u64::from(height) * u64::from(width);
    if pixels == 0 {
        return Rle::from_counts_unchecked(height, width, vec![0]);
    }
    let (xs, ys) = scaled_vertices(xy);
    let k = xs.len();
    let mut toggles: Vec<u32> = Vec::new();
    let mut previous_end: Option<(i32, i32)> = None;
    for j in 0..k {
        let next = (j + 1) % k;
        let edge = Edge::new(xs[j], ys[j], xs[next], ys[next]);
        let (first, last) = edge.ends();
        if let Some(end) = previous_end {
            toggles.extend(crossing(end, first, height, width));
        }
        edge_crossings(&edge, height, width, &mut toggles);
        previous_end = Some(last);
    }
    counts_from_toggles(toggles, height, width, pixels)
}

/// C's tail of `rleFrPoly`: sort the crossing indices, turn them into run lengths, and let two
/// crossings at the same pixel cancel.
fn counts_from_toggles(mut toggles: Vec<u32>, height: u32, width: u32, pixels: u64) -> Rle {
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

/// The literal port of C's walk (every upsampled boundary point), kept as the reference the fast
/// rasteriser is tested against. Slow for large polygons: tests only.
#[cfg(test)]
fn rasterise_polygon_walk(xy: &[f64], height: u32, width: u32) -> Rle {
    let pixels = u64::from(height) * u64::from(width);
    if pixels == 0 {
        return Rle::from_counts_unchecked(height, width, vec![0]);
    }
    let (xs, ys) = scaled_vertices(xy);
    let k = xs.len();
    let mut toggles = Vec::new();
    let mut previous: Option<(i32, i32)> = None;
    for j in 0..k {
        let next = (j + 1) % k;
        let edge = Edge::new(xs[j], ys[j], xs[next], ys[next]);
        for d in 0..=edge.n {
            let t = if edge.flip { edge.n - d } else { d };
            let point = edge.point(t);
            if let Some(p) = previous {
                toggles.extend(crossing(p, point, height, width));
            }
            previous = Some(point);
        }
    }
    counts_from_toggles(toggles, height, width, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;

    thread_local! {
        /// How many walk points the rasteriser computed: a deterministic measure of its work.
        pub(super) static POINTS_EVALUATED: Cell<u64> = const { Cell::new(0) };
    }

    fn points_evaluated<T>(f: impl FnOnce() -> T) -> (T, u64) {
        POINTS_EVALUATED.with(|c| c.set(0));
        let out = f();
        (out, POINTS_EVALUATED.with(Cell::get))
    }

    /// A polygon of `k` vertices on a circle of `radius` px around (cx, cy), jittered.
    fn star(k: usize, cx: f64, cy: f64, radius: f64) -> Vec<f64> {
        (0..k)
            .flat_map(|i| {
                let a = std::f64::consts::TAU * i as f64 / k as f64;
                let r = if i % 2 == 0 { radius } else { radius * 0.37 };
                [cx + r * a.cos(), cy + r * a.sin()]
            })
            .collect()
    }

    #[test]
    fn huge_polygon_work_is_bounded_by_the_image_not_the_perimeter() {
        // 200 vertices reaching 1e7 px out (the 3.7 KB COCO file that took minutes): the walk
        // would visit ~2e10 points; clipping to a 64x48 image needs a few per column and edge.
        let xy = star(200, 30.0, 20.0, 9.9e6);
        let (rle, work) = points_evaluated(|| single_polygon_to_rle(&xy, 48, 64).unwrap());
        assert!(work < 200 * (64 * 2 * 40 + 4), "{work} points evaluated");
        // The star's centre is inside, so the mask is not empty, and every pixel is accounted.
        assert!(rle.area() > 0);
        assert_eq!(
            rle.counts().iter().map(|&c| u64::from(c)).sum::<u64>(),
            48 * 64
        );
    }

    #[test]
    fn border_crossing_polygons_equal_the_walk() {
        for (xy, h, w) in [
            (vec![-50.0, -50.0, 70.0, 3.3, 12.0, 90.0], 20, 30),
            (vec![-1e4, 5.0, 1e4, 5.2, 1e4, 9.0, -1e4, 9.7], 16, 16),
            (star(40, 10.0, 8.0, 2.5e3), 17, 23),
            (vec![3.0, -7e3, 4.0, 7e3, 11.0, 7e3, 9.5, -7e3], 12, 14),
        ] {
            assert_eq!(
                rasterise_polygon(&xy, h, w),
                rasterise_polygon_walk(&xy, h, w),
                "{xy:?}"
            );
        }
    }

    fn coordinate() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => -3.0f64..40.0,
            1 => -400.0f64..400.0,
            1 => (-20i32..60).prop_map(|v| f64::from(v) * 0.5),
            1 => (-40i32..200).prop_map(|v| f64::from(v) * 0.1 - 0.05),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_c0c0),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn fast_equals_reference_walk(
            xy in proptest::collection::vec(coordinate(), 3..12).prop_map(|mut v| {
                if v.len() % 2 == 1 { v.pop(); }
                while v.len() < 6 { v.push(1.0); }
                v
            }),
            h in 1u32..40,
            w in 1u32..40,
        ) {
            prop_assert_eq!(rasterise_polygon(&xy, h, w), rasterise_polygon_walk(&xy, h, w));
        }
    }

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
