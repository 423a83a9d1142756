//! Integration tests: geometry. The COCO RLE code is cross-checked against pycocotools itself:
//! masks, polygons and boxes are generated here deterministically, `tests/py/coco_crosscheck.py`
//! computes pycocotools' answers in `.venv`, and every compressed string, area, IoU, bbox and
//! polygon mask must match exactly.

use std::path::{Path, PathBuf};
use std::process::Command;

use riveg_bench::geometry::{mask_iou, polygon_to_rle, BBox, CocoRle, Rle, RleCounts};
use serde_json::{json, Value};

/// splitmix64: a tiny seeded generator, enough for test data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} not found: the pycocotools cross-check needs the project's Python environment; \
         run scripts/install-python-deps.sh (it creates .venv with numpy and pycocotools)",
        venv.display()
    );
    venv
}

/// A row-major mask.
struct TestMask {
    name: String,
    height: u32,
    width: u32,
    row_major: Vec<u8>,
}

impl TestMask {
    fn column_major_bits(&self) -> String {
        let (h, w) = (self.height as usize, self.width as usize);
        (0..w)
            .flat_map(|x| (0..h).map(move |y| (x, y)))
            .map(|(x, y)| {
                if self.row_major[y * w + x] != 0 {
                    '1'
                } else {
                    '0'
                }
            })
            .collect()
    }
}

/// Random blobs: a few filled ellipses plus salt noise; values other than 1 for foreground too.
fn blob_mask(rng: &mut SplitMix64, name: &str, height: u32, width: u32) -> TestMask {
    let (h, w) = (height as usize, width as usize);
    let mut row_major = vec![0u8; h * w];
    let blobs = 1 + rng.below(4);
    for _ in 0..blobs {
        let (cx, cy) = (rng.range(0.0, w as f64), rng.range(0.0, h as f64));
        let (rx, ry) = (
            rng.range(0.5, w as f64 / 2.0 + 1.0),
            rng.range(0.5, h as f64 / 2.0 + 1.0),
        );
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = ((x as f64 + 0.5 - cx) / rx, (y as f64 + 0.5 - cy) / ry);
                if dx * dx + dy * dy <= 1.0 {
                    row_major[y * w + x] = 1;
                }
            }
        }
    }
    for v in row_major.iter_mut() {
        if rng.below(50) == 0 {
            *v ^= 1;
        }
    }
    TestMask {
        name: name.to_string(),
        height,
        width,
        row_major,
    }
}

fn fixed_mask(name: &str, height: u32, width: u32, value: impl Fn(usize, usize) -> u8) -> TestMask {
    let (h, w) = (height as usize, width as usize);
    let row_major = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| value(x, y))
        .collect();
    TestMask {
        name: name.to_string(),
        height,
        width,
        row_major,
    }
}

fn test_masks() -> Vec<TestMask> {
    let mut rng = SplitMix64(20251125);
    let mut masks = vec![
        fixed_mask("1x1 empty", 1, 1, |_, _| 0),
        fixed_mask("1x1 full", 1, 1, |_, _| 1),
        fixed_mask("7x13 empty", 7, 13, |_, _| 0),
        fixed_mask("7x13 full", 7, 13, |_, _| 1),
        fixed_mask("7x13 last pixel", 7, 13, |x, y| u8::from(x == 12 && y == 6)),
        fixed_mask("7x13 first pixel", 7, 13, |x, y| u8::from(x == 0 && y == 0)),
        fixed_mask("7x13 checkerboard", 7, 13, |x, y| ((x + y) % 2) as u8),
        fixed_mask("31x17 stripes", 31, 17, |_, y| u8::from(y % 3 == 0)),
        fixed_mask("31x17 wrap", 31, 17, |x, y| {
            u8::from((x == 4 && y > 20) || (x == 5 && y < 3))
        }),
        fixed_mask("640x480 full", 480, 640, |_, _| 1),
        fixed_mask("640x480 all but one", 480, 640, |x, y| {
            u8::from(!(x == 320 && y == 200))
        }),
    ];
    for (i, (h, w)) in [
        (1, 1),
        (7, 13),
        (7, 13),
        (31, 17),
        (31, 17),
        (31, 17),
        (64, 48),
        (480, 640),
        (480, 640),
    ]
    .into_iter()
    .enumerate()
    {
        masks.push(blob_mask(&mut rng, &format!("blob #{i} {h}x{w}"), h, w));
    }
    masks
}

/// Polygons with fractional, negative and out-of-image coordinates, repeated vertices, concave
/// shapes and multi-part segmentations.
fn test_polygons() -> Vec<(String, u32, u32, Vec<Vec<f64>>)> {
    let mut rng = SplitMix64(7);
    let mut cases = vec![
        (
            "unit square".into(),
            5,
            6,
            vec![vec![1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]],
        ),
        (
            "triangle".into(),
            7,
            13,
            vec![vec![0.3, 0.2, 12.7, 3.1, 2.5, 6.9]],
        ),
        (
            "half pixels".into(),
            9,
            9,
            vec![vec![0.5, 0.5, 8.5, 0.5, 8.5, 8.5, 0.5, 8.5]],
        ),
        (
            "tenths".into(),
            9,
            9,
            vec![vec![0.1, 0.1, 0.9, 8.9, 8.1, 4.3]],
        ),
        (
            "outside".into(),
            10,
            8,
            vec![vec![-5.0, -3.0, 20.0, -1.0, 4.0, 30.0]],
        ),
        (
            "negative rounding".into(),
            6,
            6,
            vec![vec![-0.3, -0.3, 5.2, -0.09, 2.0, 5.7]],
        ),
        (
            "repeated vertex".into(),
            12,
            12,
            vec![vec![1.0, 1.0, 1.0, 1.0, 10.5, 2.0, 10.5, 2.0, 6.0, 11.0]],
        ),
        (
            "concave".into(),
            20,
            20,
            vec![vec![1.0, 1.0, 18.0, 1.0, 10.0, 10.0, 18.0, 18.0, 1.0, 18.0]],
        ),
        (
            "two parts".into(),
            31,
            17,
            vec![
                vec![0.0, 0.0, 8.0, 0.0, 8.0, 8.0],
                vec![4.0, 4.0, 16.0, 10.0, 3.0, 29.0, 2.0, 12.0],
            ],
        ),
        (
            "1x1".into(),
            1,
            1,
            vec![vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]],
        ),
        // Crossing the border on every side, with vertices at fractional negative coordinates
        // (C's truncation toward zero) and past the right and bottom edges.
        (
            "crosses every border".into(),
            23,
            19,
            vec![vec![
                -7.3, 4.2, 9.6, -11.8, 31.4, 6.1, 25.0, 29.9, 8.8, 40.2, -2.45, 17.5,
            ]],
        ),
        (
            "thin sliver across the image".into(),
            12,
            40,
            vec![vec![-300.0, 5.0, 420.0, 5.9, 420.0, 6.4, -300.0, 6.1]],
        ),
        // Huge coordinates: pycocotools walks every upsampled boundary point (1e6 per edge
        // here), the Rust side only the columns inside the image.
        (
            "huge coordinates".into(),
            30,
            50,
            vec![vec![
                -2.0e5, -1.5e5, 2.0e5, -1.0e5, 1.2e5, 1.9e5, 24.5, 15.2,
            ]],
        ),
        (
            "huge star".into(),
            64,
            48,
            vec![(0..16)
                .flat_map(|i| {
                    let a = std::f64::consts::TAU * f64::from(i) / 16.0;
                    let r = if i % 2 == 0 { 1.0e5 } else { 9.0 };
                    [24.0 + r * a.cos(), 30.0 + r * a.sin()]
                })
                .collect()],
        ),
    ];
    for i in 0..12 {
        let (h, w) = if i < 6 { (31, 17) } else { (480, 640) };
        let parts = 1 + rng.below(3) as usize;
        let polys = (0..parts)
            .map(|_| {
                let (cx, cy) = (rng.range(0.0, w as f64), rng.range(0.0, h as f64));
                let points = 3 + rng.below(12) as usize;
                let radius = rng.range(1.0, (w.min(h) as f64) * 0.6);
                let mut xy = Vec::new();
                for p in 0..points {
                    let angle =
                        std::f64::consts::TAU * (p as f64 + rng.range(0.0, 0.9)) / points as f64;
                    let r = radius * rng.range(0.2, 1.0);
                    xy.push(cx + r * angle.cos());
                    xy.push(cy + r * angle.sin());
                }
                xy
            })
            .collect();
        cases.push((format!("random #{i}"), h, w, polys));
    }
    cases
}

fn test_boxes() -> Vec<(String, u32, u32, [f64; 4])> {
    let mut rng = SplitMix64(99);
    let mut cases: Vec<(String, u32, u32, [f64; 4])> = vec![
        ("integer".into(), 7, 13, [1.0, 2.0, 5.0, 6.0]),
        ("whole image".into(), 7, 13, [0.0, 0.0, 13.0, 7.0]),
        ("halves".into(), 7, 13, [0.5, 0.5, 4.5, 3.5]),
        ("zero width".into(), 7, 13, [3.0, 1.0, 3.0, 5.0]),
        ("zero area".into(), 7, 13, [3.0, 3.0, 3.0, 3.0]),
        ("partly outside".into(), 31, 17, [-4.2, 20.1, 12.3, 40.0]),
        ("1x1".into(), 1, 1, [0.0, 0.0, 1.0, 1.0]),
        ("gmner-like".into(), 480, 640, [296.0, 24.0, 600.0, 450.0]),
    ];
    for i in 0..20 {
        let (h, w) = if i % 2 == 0 { (31, 17) } else { (480, 640) };
        let x1 = rng.range(-2.0, w as f64);
        let y1 = rng.range(-2.0, h as f64);
        let x2 = x1 + rng.range(0.0, w as f64 / 2.0);
        let y2 = y1 + rng.range(0.0, h as f64 / 2.0);
        cases.push((format!("random #{i}"), h, w, [x1, y1, x2, y2]));
    }
    cases
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("answer lacks string {key}: {v}"))
}

fn bbox_field(v: &Value) -> [f64; 4] {
    let b: Vec<f64> = serde_json::from_value(v["bbox_xywh"].clone()).expect("bbox_xywh");
    [b[0], b[1], b[2], b[3]]
}

#[test]
fn rle_matches_pycocotools() {
    crate::require_venv!();
    let masks = test_masks();
    let rles: Vec<Rle> = masks
        .iter()
        .map(|m| Rle::encode_row_major(&m.row_major, m.height, m.width).expect("encode"))
        .collect();
    // Column-major encoding agrees with row-major encoding.
    for (m, rle) in masks.iter().zip(&rles) {
        let col: Vec<u8> = m.column_major_bits().bytes().map(|b| b - b'0').collect();
        assert_eq!(
            &Rle::encode_column_major(&col, m.height, m.width).unwrap(),
            rle,
            "{}",
            m.name
        );
        assert_eq!(rle.decode_column_major(), col, "{}", m.name);
        assert_eq!(rle.decode_row_major(), m.row_major, "{}", m.name);
    }
    let mut iou_pairs = Vec::new();
    for a in 0..masks.len() {
        for b in a..masks.len() {
            if rles[a].size() == rles[b].size() {
                iou_pairs.push((a, b));
            }
        }
    }
    let merge_groups: Vec<Vec<usize>> = {
        let by_size = |h: u32, w: u32| -> Vec<usize> {
            (0..masks.len())
                .filter(|&i| rles[i].size() == [h, w])
                .collect()
        };
        vec![
            by_size(7, 13),
            by_size(31, 17),
            by_size(480, 640),
            by_size(1, 1),
        ]
    };
    assert!(iou_pairs.len() > 30 && merge_groups.iter().all(|g| g.len() >= 2));

    let polygons = test_polygons();
    let polygon_rles: Vec<Rle> = polygons
        .iter()
        .map(|(name, h, w, polys)| {
            polygon_to_rle(polys, *h, *w).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect();
    let boxes = test_boxes();
    let box_rles: Vec<Rle> = boxes
        .iter()
        .map(|(name, h, w, b)| {
            Rle::from_bbox(&BBox(*b), *h, *w).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect();

    let cases = json!({
        "masks": masks.iter().zip(&rles).map(|(m, r)| json!({
            "name": m.name, "h": m.height, "w": m.width, "bits": m.column_major_bits(),
            "rust_counts": r.to_compressed_string(), "rust_runs": r.counts(),
        })).collect::<Vec<_>>(),
        "iou_pairs": iou_pairs,
        "merge_groups": merge_groups,
        "polygons": polygons.iter().zip(&polygon_rles).map(|((name, h, w, polys), r)| json!({
            "name": name, "h": h, "w": w, "polys": polys, "rust_counts": r.to_compressed_string(),
        })).collect::<Vec<_>>(),
        "boxes": boxes.iter().map(|(name, h, w, b)| json!({"name": name, "h": h, "w": w, "xyxy": b}))
            .collect::<Vec<_>>(),
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let cases_path = dir.path().join("cases.json");
    let answers_path = dir.path().join("answers.json");
    std::fs::write(&cases_path, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/coco_crosscheck.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(&cases_path)
        .arg(&answers_path)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{} failed (is pycocotools installed? run scripts/install-python-deps.sh):\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Value = serde_json::from_slice(&std::fs::read(&answers_path).unwrap()).unwrap();

    // Masks: compressed strings, areas, boxes, and both decoders.
    for (i, (m, rle)) in masks.iter().zip(&rles).enumerate() {
        let ans = &answers["masks"][i];
        assert_eq!(
            rle.to_compressed_string(),
            str_field(ans, "counts"),
            "counts of {}",
            m.name
        );
        assert_eq!(
            rle.area(),
            ans["area"].as_u64().unwrap(),
            "area of {}",
            m.name
        );
        assert_eq!(rle.to_bbox_xywh(), bbox_field(ans), "bbox of {}", m.name);
        assert_eq!(
            str_field(ans, "decoded_rust"),
            m.column_major_bits(),
            "pycocotools decode of {}",
            m.name
        );
        assert_eq!(
            str_field(ans, "from_runs"),
            rle.to_compressed_string(),
            "runs -> string of {}",
            m.name
        );
        let parsed = CocoRle {
            size: rle.size(),
            counts: RleCounts::Compressed(str_field(ans, "counts").to_string()),
        }
        .to_rle()
        .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        assert_eq!(&parsed, rle, "string -> runs of {}", m.name);
        let from_runs = rle.to_coco_runs().compressed().unwrap();
        assert_eq!(from_runs, rle.to_coco(), "{}", m.name);
    }

    // IoU on runs.
    let mut nontrivial = 0;
    for (k, &(a, b)) in iou_pairs.iter().enumerate() {
        let expected = answers["ious"][k].as_f64().unwrap();
        let got = mask_iou(&rles[a], &rles[b]).unwrap();
        assert!(
            (got - expected).abs() <= 1e-12,
            "iou({}, {}) = {got}, pycocotools {expected}",
            masks[a].name,
            masks[b].name
        );
        assert_eq!(got, mask_iou(&rles[b], &rles[a]).unwrap());
        if expected > 0.0 && expected < 1.0 {
            nontrivial += 1;
        }
    }
    assert!(
        nontrivial >= 10,
        "only {nontrivial} IoUs strictly between 0 and 1"
    );

    // Merges.
    for (k, group) in merge_groups.iter().enumerate() {
        let members: Vec<Rle> = group.iter().map(|&i| rles[i].clone()).collect();
        let union = Rle::union(&members).unwrap().unwrap();
        let inter = Rle::intersection(&members).unwrap().unwrap();
        assert_eq!(
            union.to_compressed_string(),
            str_field(&answers["merges"][k], "union"),
            "union #{k}"
        );
        assert_eq!(
            inter.to_compressed_string(),
            str_field(&answers["merges"][k], "intersection"),
            "intersection #{k}"
        );
    }

    // Polygons.
    let mut nonempty_polygons = 0;
    for (i, ((name, h, w, _), rle)) in polygons.iter().zip(&polygon_rles).enumerate() {
        let ans = &answers["polygons"][i];
        assert_eq!(
            rle.to_compressed_string(),
            str_field(ans, "counts"),
            "polygon {name} ({h}x{w})"
        );
        assert_eq!(rle.area(), ans["area"].as_u64().unwrap(), "polygon {name}");
        assert_eq!(rle.to_bbox_xywh(), bbox_field(ans), "polygon {name}");
        let bits: String = rle
            .decode_column_major()
            .iter()
            .map(|&b| char::from(b'0' + b))
            .collect();
        assert_eq!(str_field(ans, "decoded_rust"), bits, "polygon {name}");
        if rle.area() > 0 {
            nonempty_polygons += 1;
        }
    }
    assert!(nonempty_polygons >= polygons.len() - 1);

    // Boxes through frBbox.
    for (i, ((name, _, _, b), rle)) in boxes.iter().zip(&box_rles).enumerate() {
        let ans = &answers["boxes"][i];
        assert_eq!(
            rle.to_compressed_string(),
            str_field(ans, "counts"),
            "box {name} {b:?}"
        );
        assert_eq!(rle.area(), ans["area"].as_u64().unwrap(), "box {name}");
        assert_eq!(rle.to_bbox_xywh(), bbox_field(ans), "box {name}");
    }
}

#[test]
fn known_pycocotools_strings() {
    // From pycocotools 2.0.11 by hand: encode of a 3x3 mask and frPyObjects of a square.
    let rle = CocoRle {
        size: [3, 3],
        counts: RleCounts::Compressed("01221".into()),
    }
    .to_rle()
    .unwrap();
    assert_eq!(rle.counts(), &[0, 1, 2, 3, 3]);
    assert_eq!(rle.decode_row_major(), vec![1, 1, 0, 0, 1, 0, 0, 1, 0]);
    let square = polygon_to_rle(&[vec![1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]], 5, 6).unwrap();
    assert_eq!(square.to_compressed_string(), "6230009");
}

#[test]
fn invalid_masks_are_rejected_with_hints() {
    let wrong_sum = CocoRle {
        size: [4, 4],
        counts: RleCounts::Compressed("01221".into()),
    };
    let msg = wrong_sum.validate().unwrap_err().to_string();
    assert!(
        msg.contains("sum to 9 pixels but the mask is 4x4 = 16"),
        "{msg}"
    );
    assert!(msg.contains("hint:"), "{msg}");
    let a = Rle::empty(4, 4).unwrap();
    let b = Rle::empty(4, 5).unwrap();
    let msg = mask_iou(&a, &b).unwrap_err().to_string();
    assert!(msg.contains("4x4 vs 4x5"), "{msg}");
}
