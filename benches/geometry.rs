//! Geometry benchmarks: COCO RLE encode/decode, the compressed string codec, mask IoU on runs,
//! union, and polygon/box rasterisation, on typical image sizes (Twitter images are mostly around
//! 640x480; 1280x960 shows how costs scale). No models, no GPU: runs with plain `cargo bench`.
//!
//! `cargo bench --bench geometry` (add `-- --quick` for a short run). Inputs are deterministic
//! star-shaped polygons, so numbers are comparable across runs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riveg_bench::geometry::{counts_from_string, mask_iou, polygon_to_rle, BBox, Rle};

const SIZES: [(u32, u32); 2] = [(480, 640), (960, 1280)];

/// A star-shaped polygon with `vertices` points around `(cx, cy)`, deterministic.
fn star(cx: f64, cy: f64, radius: f64, vertices: usize) -> Vec<f64> {
    (0..vertices)
        .flat_map(|i| {
            let angle = std::f64::consts::TAU * i as f64 / vertices as f64;
            let r = radius * if i % 2 == 0 { 1.0 } else { 0.6 };
            [cx + r * angle.cos(), cy + r * angle.sin()]
        })
        .collect()
}

/// Two overlapping object-like masks on an image of the given size.
fn two_masks(height: u32, width: u32) -> (Rle, Rle) {
    let (h, w) = (f64::from(height), f64::from(width));
    let a =
        polygon_to_rle(&[star(w * 0.45, h * 0.5, h * 0.35, 24)], height, width).expect("polygon a");
    let b =
        polygon_to_rle(&[star(w * 0.55, h * 0.45, h * 0.3, 16)], height, width).expect("polygon b");
    (a, b)
}

fn encode_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("rle");
    for (height, width) in SIZES {
        let (mask, _) = two_masks(height, width);
        let row_major = mask.decode_row_major();
        let column_major = mask.decode_column_major();
        let label = format!("{width}x{height}");
        group.throughput(Throughput::Elements(u64::from(height) * u64::from(width)));
        group.bench_with_input(
            BenchmarkId::new("encode_row_major", &label),
            &row_major,
            |b, m| b.iter(|| Rle::encode_row_major(black_box(m), height, width)),
        );
        group.bench_with_input(
            BenchmarkId::new("encode_column_major", &label),
            &column_major,
            |b, m| b.iter(|| Rle::encode_column_major(black_box(m), height, width)),
        );
        group.bench_with_input(
            BenchmarkId::new("decode_column_major", &label),
            &mask,
            |b, m| b.iter(|| black_box(m).decode_column_major()),
        );
        group.bench_with_input(
            BenchmarkId::new("decode_row_major", &label),
            &mask,
            |b, m| b.iter(|| black_box(m).decode_row_major()),
        );
    }
    group.finish();
}

fn string_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("rle_string");
    for (height, width) in SIZES {
        let (mask, _) = two_masks(height, width);
        let text = mask.to_compressed_string();
        let label = format!("{width}x{height}");
        group.throughput(Throughput::Elements(mask.counts().len() as u64));
        group.bench_with_input(BenchmarkId::new("to_string", &label), &mask, |b, m| {
            b.iter(|| black_box(m).to_compressed_string())
        });
        group.bench_with_input(BenchmarkId::new("from_string", &label), &text, |b, s| {
            b.iter(|| counts_from_string(black_box(s)))
        });
        group.bench_with_input(BenchmarkId::new("round_trip", &label), &mask, |b, m| {
            b.iter(|| counts_from_string(&black_box(m).to_compressed_string()))
        });
    }
    group.finish();
}

fn iou_and_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask_iou");
    for (height, width) in SIZES {
        let masks = two_masks(height, width);
        let label = format!("{width}x{height}");
        group.bench_with_input(BenchmarkId::new("iou_runs", &label), &masks, |b, (x, y)| {
            b.iter(|| mask_iou(black_box(x), black_box(y)))
        });
        let pair = [masks.0.clone(), masks.1.clone()];
        group.bench_with_input(BenchmarkId::new("union_runs", &label), &pair, |b, p| {
            b.iter(|| Rle::union(black_box(p)))
        });
        // The pixel baseline the run walk avoids: decode both, count.
        group.bench_with_input(
            BenchmarkId::new("iou_pixels", &label),
            &masks,
            |b, (x, y)| {
                b.iter(|| {
                    let (px, py) = (
                        black_box(x).decode_column_major(),
                        black_box(y).decode_column_major(),
                    );
                    let (mut inter, mut union) = (0u64, 0u64);
                    for (p, q) in px.iter().zip(&py) {
                        inter += u64::from(p & q);
                        union += u64::from(p | q);
                    }
                    inter as f64 / union.max(1) as f64
                })
            },
        );
    }
    group.finish();
}

fn rasterise(c: &mut Criterion) {
    let mut group = c.benchmark_group("polygon");
    for (height, width) in SIZES {
        let (h, w) = (f64::from(height), f64::from(width));
        let label = format!("{width}x{height}");
        for vertices in [8usize, 64] {
            let poly = vec![star(w * 0.5, h * 0.5, h * 0.4, vertices)];
            group.bench_with_input(
                BenchmarkId::new(format!("to_rle_{vertices}_vertices"), &label),
                &poly,
                |b, p| b.iter(|| polygon_to_rle(black_box(p), height, width)),
            );
        }
        let bbox = BBox::new(w * 0.2 + 0.3, h * 0.1 + 0.7, w * 0.8 - 0.2, h * 0.9 - 0.4);
        group.bench_with_input(BenchmarkId::new("from_bbox", &label), &bbox, |b, bb| {
            b.iter(|| Rle::from_bbox(black_box(bb), height, width))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    encode_decode,
    string_codec,
    iou_and_merge,
    rasterise
);
criterion_main!(benches);
