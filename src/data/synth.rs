//! SYNTHETIC SMNER data, for exercising the SMNER scorer, readers and benches when the real
//! Twitter-SMNER masks are not available. The masks are NOT annotations: for each box of each
//! groundable gold entity (GMNER), an ellipse or a star-shaped polygon is drawn inside the box
//! with a seeded generator. Scores on this set say nothing about a system's segmentation quality;
//! label any report made from it with [`SYNTHETIC_SMNER_NOTE`].
//!
//! Deterministic: the same gold, seed and size give the same masks, on every platform (splitmix64
//! per tweet, seeded by the seed and the tweet id, so a tweet's masks do not depend on the
//! tweets before it). Masks are compressed COCO RLE, one per box, in box order.
//!
//! Must not read files or know about scorers; callers decide where the result goes.

use crate::data::model::Dataset;
use crate::geometry::{polygon_to_rle, BBox, MaskError, Rle};
pub use crate::util::SplitMix64;

/// The line to print with anything computed from [`synth_smner`]'s output.
pub const SYNTHETIC_SMNER_NOTE: &str = "SYNTHETIC SMNER: masks are random ellipses/polygons drawn inside the gold GMNER boxes, not real segmentations";

/// FNV-1a of the tweet id, to give each tweet its own stream.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Builds the synthetic SMNER set: a copy of `gold` where every groundable entity gets one mask
/// per box and every other entity none. `image_size` is `[height, width]` for every image; `None`
/// takes each tweet's image as just large enough for its boxes (`ceil` of the largest x2 / y2).
/// Errors only when a box makes the image too large for COCO RLE (h*w >= 2^32).
pub fn synth_smner(
    gold: &Dataset,
    seed: u64,
    image_size: Option<[u32; 2]>,
) -> Result<Dataset, MaskError> {
    let mut out = gold.clone();
    for tweet in &mut out.tweets {
        let mut rng = SplitMix64::new(seed ^ fnv1a(&tweet.id));
        let [height, width] = match image_size {
            Some(size) => size,
            None => size_from_boxes(tweet.entities.iter().flat_map(|e| &e.boxes))?,
        };
        for entity in &mut tweet.entities {
            entity.masks.clear();
            if !entity.groundable {
                continue;
            }
            for bbox in &entity.boxes {
                let mask = if rng.unit() < 0.5 {
                    ellipse_in_box(&mut rng, bbox, height, width)?
                } else {
                    polygon_in_box(&mut rng, bbox, height, width)?
                };
                entity.masks.push(mask.to_coco());
            }
        }
    }
    Ok(out)
}

/// `[height, width]` covering every box (at least 1x1).
fn size_from_boxes<'a>(boxes: impl Iterator<Item = &'a BBox>) -> Result<[u32; 2], MaskError> {
    let (mut max_x, mut max_y) = (1.0f64, 1.0f64);
    for b in boxes {
        b.validate()
            .map_err(|why| MaskError::BadBox { bbox: b.0, why })?;
        max_x = max_x.max(b.x2().ceil());
        max_y = max_y.max(b.y2().ceil());
    }
    let too_large = |what: f64| MaskError::BadBox {
        bbox: [0.0, 0.0, max_x, max_y],
        why: format!("an image {what} pixels across is too large for a synthetic mask"),
    };
    let height = if max_y <= f64::from(u32::MAX) {
        max_y as u32
    } else {
        return Err(too_large(max_y));
    };
    let width = if max_x <= f64::from(u32::MAX) {
        max_x as u32
    } else {
        return Err(too_large(max_x));
    };
    Ok([height, width])
}

/// An axis-aligned ellipse inside the box (radii 80-100% of the half sides), rasterised straight
/// into column runs: a pixel is in when its centre is inside.
fn ellipse_in_box(
    rng: &mut SplitMix64,
    bbox: &BBox,
    height: u32,
    width: u32,
) -> Result<Rle, MaskError> {
    let (cx, cy) = ((bbox.x1() + bbox.x2()) / 2.0, (bbox.y1() + bbox.y2()) / 2.0);
    let rx = bbox.width() / 2.0 * rng.range(0.8, 1.0);
    let ry = bbox.height() / 2.0 * rng.range(0.8, 1.0);
    let h = u64::from(height);
    let mut ranges = Vec::new();
    if rx > 0.0 && ry > 0.0 {
        let x_first = (cx - rx - 0.5).ceil().max(0.0);
        let x_last = (cx + rx - 0.5).floor().min(f64::from(width) - 1.0);
        let mut x = x_first;
        while x <= x_last {
            let dx = (x + 0.5 - cx) / rx;
            let half = ry * (1.0 - dx * dx).max(0.0).sqrt();
            let y_first = (cy - half - 0.5).ceil().max(0.0);
            let y_last = (cy + half - 0.5).floor().min(f64::from(height) - 1.0);
            if y_first <= y_last {
                let column = x as u64 * h;
                ranges.push((column + y_first as u64, column + y_last as u64 + 1));
            }
            x += 1.0;
        }
    }
    Rle::from_column_major_ranges(height, width, ranges)
}

/// A star-shaped polygon inside the box: 5-12 vertices at jittered angles, each at 55-100% of
/// the inscribed ellipse's radius in its direction; rasterised as pycocotools would.
fn polygon_in_box(
    rng: &mut SplitMix64,
    bbox: &BBox,
    height: u32,
    width: u32,
) -> Result<Rle, MaskError> {
    let (cx, cy) = ((bbox.x1() + bbox.x2()) / 2.0, (bbox.y1() + bbox.y2()) / 2.0);
    let (rx, ry) = (bbox.width() / 2.0, bbox.height() / 2.0);
    let vertices = 5 + (rng.next_u64() % 8) as usize;
    let mut xy = Vec::with_capacity(2 * vertices);
    for i in 0..vertices {
        let angle = std::f64::consts::TAU * (i as f64 + rng.range(0.0, 0.8)) / vertices as f64;
        let r = rng.range(0.55, 1.0);
        xy.push(cx + r * rx * angle.cos());
        xy.push(cy + r * ry * angle.sin());
    }
    polygon_to_rle(&[xy], height, width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::model::{Entity, Tweet};

    fn gold() -> Dataset {
        let mut jolie = Entity::new("Angelina Jolie", "PER");
        jolie.groundable = true;
        jolie.boxes = vec![
            BBox::new(296.0, 24.0, 600.0, 450.0),
            BBox::new(10.5, 20.2, 80.9, 200.0),
        ];
        let mut paris = Entity::new("Paris", "LOC");
        paris.groundable = true;
        paris.boxes = vec![BBox::new(0.0, 0.0, 33.3, 17.1)];
        let ungroundable = Entity::new("Trump", "PER");
        let tweets = (0..20)
            .map(|i| Tweet {
                id: format!("O_{i}"),
                image: None,
                tokens: None,
                entities: vec![jolie.clone(), ungroundable.clone(), paris.clone()],
                ..Default::default()
            })
            .collect();
        Dataset::new(tweets)
    }

    #[test]
    fn deterministic_under_a_seed() {
        let a = synth_smner(&gold(), 42, None).unwrap();
        let b = synth_smner(&gold(), 42, None).unwrap();
        assert_eq!(a, b);
        let c = synth_smner(&gold(), 43, None).unwrap();
        assert_ne!(a, c);
        // A tweet's masks do not depend on the tweets before it.
        let mut tail = gold();
        tail.tweets.drain(..5);
        let d = synth_smner(&tail, 42, None).unwrap();
        assert_eq!(d.tweets[0], a.tweets[5]);
        // Fixed value: guards against accidental changes of the generator or the shapes.
        let first = a.tweets[0].entities[2].masks[0].to_rle().unwrap();
        assert_eq!(first.size(), [450, 600]);
        assert_eq!(first.area(), 408, "pinned area");
        let big = a.tweets[0].entities[0].masks[0].to_rle().unwrap();
        assert_eq!(big.area(), 52290, "pinned area");
    }

    #[test]
    fn masks_lie_inside_their_boxes() {
        let synth = synth_smner(&gold(), 7, None).unwrap();
        let mut shapes = 0;
        for tweet in &synth.tweets {
            for e in &tweet.entities {
                assert_eq!(e.masks.len(), if e.groundable { e.boxes.len() } else { 0 });
                for (mask, bbox) in e.masks.iter().zip(&e.boxes) {
                    let rle = mask.to_rle().unwrap();
                    assert!(rle.area() > 0, "{}: empty mask", tweet.id);
                    // Canonical runs: what pycocotools' encode of the same pixels gives.
                    let pixels = rle.decode_column_major();
                    let reencoded =
                        Rle::encode_column_major(&pixels, rle.height(), rle.width()).unwrap();
                    assert_eq!(reencoded, rle);
                    let tight = rle.to_bbox();
                    assert!(tight.x1() >= bbox.x1().floor() && tight.x2() <= bbox.x2().ceil());
                    assert!(tight.y1() >= bbox.y1().floor() && tight.y2() <= bbox.y2().ceil());
                    let filled = bbox.width() * bbox.height();
                    assert!((rle.area() as f64) < filled, "mask fills its box");
                    assert!((rle.area() as f64) > 0.2 * filled, "mask too small");
                    shapes += 1;
                }
            }
        }
        assert_eq!(shapes, 20 * 3);
    }

    #[test]
    fn fixed_size_clips() {
        let synth = synth_smner(&gold(), 1, Some([100, 120])).unwrap();
        let m = synth.tweets[0].entities[0].masks[0].to_rle().unwrap();
        assert_eq!(m.size(), [100, 120]);
        assert!(m.to_bbox().x2() <= 120.0 && m.to_bbox().y2() <= 100.0);
    }
}
