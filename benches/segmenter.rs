//! The segmenter's work outside the models, per tweet (issue 15): decoding the photo, resizing /
//! normalising / padding it for a SAM ViT encoder (1024 x 1024, Pillow-exact bilinear), mapping
//! the boxes into the encoder frame, and turning each box's low-resolution mask logits
//! (256 x 256) into the original-size mask's COCO runs (`post_process_masks` + threshold + RLE).
//! No model runs here: on a GPU these are what is left on the CPU per tweet.
//!
//! Photos: `models/arch/photos/` (the arch fixture's real photos, small) and, when the Python
//! environment has them, scikit-learn's two sample photos (`china.jpg`, `flower.jpg`, 640 x 427,
//! the size of a typical tweet image) from `.venv`. Logits are a smooth ellipse inside each box
//! (what a SAM mask looks like), the same formula as `benches/segmenter_vs_python.py`.
//!
//! `cargo bench --bench segmenter` (results under target/criterion/segmenter/). The Python
//! reference for the same work: `bash benches/segmenter_vs_python.sh` (see benches/README.md).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use riveg_bench::data::model::Tweet;
use riveg_bench::geometry::BBox;
use riveg_bench::pipeline::onnx::{load_tweet_image, sam_mask_runs};
use riveg_bench::runtime::{
    image_to_tensor, ImageTransform, PreprocessSpec, ResizeFilter, ResizeMode,
};

/// SAM's `SamImageProcessor` (ViT-B/L/H): longest side 1024, bilinear, ImageNet mean/std,
/// padded to 1024 x 1024; the prompt decoder's low-res masks are 256 x 256.
fn sam_spec() -> PreprocessSpec {
    PreprocessSpec {
        image_size: [1024, 1024],
        resize: ResizeMode::LongestSide,
        filter: ResizeFilter::Bilinear,
        rescale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        pad_value: None,
    }
}
const LOW_RES: usize = 256;

/// `(folder, file)` of each photo benched.
fn photos() -> Vec<(PathBuf, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut photos = vec![(
        root.join("models/arch/photos"),
        "wide_150x100.jpg".to_string(),
    )];
    let sklearn = std::fs::read_dir(root.join(".venv/lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/sklearn/datasets/images"))
        .find(|dir| dir.is_dir());
    match sklearn {
        Some(dir) => {
            for name in ["china.jpg", "flower.jpg"] {
                photos.push((dir.clone(), name.to_string()));
            }
        }
        None => eprintln!(
            "note: scikit-learn's sample photos are not in .venv; only the small arch photo is benched"
        ),
    }
    photos
}

/// Two boxes per tweet (original pixels): a centred one and one in the top-left quarter.
fn boxes(w: f64, h: f64) -> Vec<BBox> {
    vec![
        BBox::new(0.2 * w, 0.15 * h, 0.75 * w, 0.9 * h),
        BBox::new(0.05 * w, 0.05 * h, 0.45 * w, 0.5 * h),
    ]
}

/// Row-major 256 x 256 logits: positive inside an ellipse inscribed in the box (low-res frame,
/// i.e. encoder-frame pixels / 4), with a gentle ripple so the boundary is not a perfect conic.
fn logits(bbox: &BBox, t: &ImageTransform) -> Vec<f32> {
    let (x1, y1) = t.to_input(bbox.x1(), bbox.y1());
    let (x2, y2) = t.to_input(bbox.x2(), bbox.y2());
    let scale = LOW_RES as f64 / t.input_width as f64;
    let (cx, cy) = ((x1 + x2) / 2.0 * scale, (y1 + y2) / 2.0 * scale);
    let (rx, ry) = (
        ((x2 - x1) / 2.0 * scale).max(1.0),
        ((y2 - y1) / 2.0 * scale).max(1.0),
    );
    let mut out = Vec::with_capacity(LOW_RES * LOW_RES);
    for y in 0..LOW_RES {
        for x in 0..LOW_RES {
            let (dx, dy) = ((x as f64 + 0.5 - cx) / rx, (y as f64 + 0.5 - cy) / ry);
            let ripple = 0.3 * ((x as f64) * 0.37).sin() * ((y as f64) * 0.23).cos();
            out.push((8.0 * (1.0 - dx * dx - dy * dy) + ripple) as f32);
        }
    }
    out
}

fn tweet(image: &str) -> Tweet {
    Tweet {
        id: "bench".into(),
        image: Some(image.to_string()),
        ..Default::default()
    }
}

fn bench_segmenter(c: &mut Criterion) {
    let spec = sam_spec();
    let mut group = c.benchmark_group("segmenter");
    for (dir, name) in photos() {
        let t = tweet(&name);
        let image = load_tweet_image(&dir, &t).unwrap_or_else(|e| panic!("{e}"));
        let (w, h) = (image.width(), image.height());
        let label = format!("{}_{w}x{h}", Path::new(&name).with_extension("").display());
        let transform = spec.transform_for(w, h);
        let bxs = boxes(f64::from(w), f64::from(h));
        let planes: Vec<Vec<f32>> = bxs.iter().map(|b| logits(b, &transform)).collect();
        // Mask areas, for benches/segmenter_vs_python.sh to compare with post_process_masks'.
        let areas: Vec<u64> = planes
            .iter()
            .map(|p| {
                let runs = sam_mask_runs(p, (LOW_RES, LOW_RES), &transform, false);
                runs.iter().skip(1).step_by(2).sum()
            })
            .collect();
        eprintln!("areas/{label}: {areas:?}");

        group.bench_function(format!("decode/{label}"), |b| {
            b.iter(|| load_tweet_image(black_box(&dir), black_box(&t)).unwrap())
        });
        group.bench_function(format!("preprocess/{label}"), |b| {
            b.iter(|| image_to_tensor(black_box(&image), &spec))
        });
        group.bench_function(format!("mask_per_box/{label}"), |b| {
            b.iter(|| sam_mask_runs(black_box(&planes[0]), (LOW_RES, LOW_RES), &transform, false))
        });
        // Everything but the two model calls, for one tweet with two boxes.
        group.bench_function(format!("tweet_2_boxes/{label}"), |b| {
            b.iter(|| {
                let image = load_tweet_image(black_box(&dir), black_box(&t)).unwrap();
                let (pixels, transform) = image_to_tensor(&image, &spec);
                black_box(&pixels);
                let mut runs = Vec::with_capacity(bxs.len());
                for (bbox, plane) in bxs.iter().zip(&planes) {
                    let corners = [
                        transform.to_input(bbox.x1(), bbox.y1()),
                        transform.to_input(bbox.x2(), bbox.y2()),
                    ];
                    black_box(corners);
                    runs.push(sam_mask_runs(plane, (LOW_RES, LOW_RES), &transform, false));
                }
                runs
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench_segmenter
}
criterion_main!(benches);
