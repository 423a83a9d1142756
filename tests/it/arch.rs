//! Integration tests: real architectures (tiny configs, random weights) through the stage
//! adapters, against the Python reference pipeline. The fixtures under `models/arch/` and the
//! references under `models/arch/reference/` were made by `scripts/gen_arch_models.py`:
//! transformers builds each model from a config, `scripts/export/*.py` exports it (the same
//! scripts a user runs on real checkpoints), and the references come from PyTorch with the
//! Hugging Face processors doing the preprocessing and post-processing. No torch is needed here.
//!
//! Tolerances: graph outputs 1e-4 (ort vs PyTorch); preprocessing tensors 1e-5 (the Rust side
//! resizes like Pillow, bit for bit); end to end: labels equal, probabilities 1e-4, boxes 1e-3 px,
//! mask IoU >= 0.999. The photos are synthetic (gradients, discs, bars, noise; PNG and JPEG of
//! several sizes and aspect ratios): the repository has no real photos. For the JPEG those
//! tolerances apply to Pillow's decode (stored by the generator); the `image` crate's own decode
//! differs by up to 2 levels and gets looser bounds (see [`decodes`]).
//!
//! Graph-level checks run the sessions that `OrtRuntime::load_session` loads (hash- and
//! interface-checked against the manifest) directly on the reference's input tensors.

use std::path::PathBuf;

use ndarray::{Array2, ArrayD, IxDyn};
use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::geometry::{BBox, RleCounts};
use riveg_bench::pipeline::onnx::{
    OnnxEntailer, OnnxGrounder, OnnxSegmenter, OnnxTagger, TextEncoder,
};
use riveg_bench::pipeline::stages::{Entailer, Grounder, Segmenter, Tagger, TweetInput};
use riveg_bench::runtime::{
    self, image_to_tensor, Input, LoadedSession, ModelManifest, OrtRuntime, SessionConfig,
};
use serde_json::Value;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn manifest(name: &str) -> PathBuf {
    models_dir().join(name)
}

fn ort_runtime() -> &'static OrtRuntime {
    runtime::init(None).unwrap_or_else(|e| panic!("ONNX Runtime is required for these tests:\n{e}"))
}

fn cpu() -> SessionConfig {
    SessionConfig {
        intra_threads: Some(1),
        ..SessionConfig::cpu()
    }
}

fn reference(name: &str) -> Value {
    let path = models_dir().join("arch/reference").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with scripts/gen_arch_models.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("valid reference JSON")
}

/// A raw little-endian f32 tensor written by the generator: `{"file": .., "shape": [..]}`.
fn tensor(entry: &Value) -> ArrayD<f32> {
    let path = models_dir()
        .join("arch/reference")
        .join(entry["file"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let shape: Vec<usize> = usizes(&entry["shape"]);
    ArrayD::from_shape_vec(IxDyn(&shape), values).expect("shape matches the file")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn photo(name: &str) -> image::RgbImage {
    let path = models_dir().join("arch/photos").join(name);
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// The decodes of a photo the harness is checked on: `(label, image, strict)`. PNGs decode the
/// same everywhere. For a JPEG, Pillow (libjpeg-turbo) and the `image` crate (zune-jpeg) round
/// the IDCT differently, so the strict tolerances apply to Pillow's decode (stored by the
/// generator) and a looser one to the crate's own decode (see `arch_jpeg_decoders_differ_by_at_most_two_levels`).
fn decodes(name: &str) -> Vec<(String, image::RgbImage, bool)> {
    let own = photo(name);
    let photos = reference("photos.json");
    let entry = photos["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["image"] == name)
        .unwrap_or_else(|| panic!("{name} is not in photos.json"));
    match entry.get("pillow_rgb") {
        None => vec![(name.to_string(), own, true)],
        Some(raw) => vec![
            (format!("{name} (Pillow decode)"), pillow_decode(raw), true),
            (format!("{name} (zune-jpeg decode)"), own, false),
        ],
    }
}

fn pillow_decode(raw: &Value) -> image::RgbImage {
    let path = models_dir()
        .join("arch/reference")
        .join(raw["file"].as_str().unwrap());
    let shape = usizes(&raw["shape"]);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, bytes).expect("h x w x 3 bytes")
}

#[test]
fn arch_jpeg_decoders_differ_by_at_most_two_levels() {
    let photos = reference("photos.json");
    let mut jpegs = 0;
    for entry in photos["photos"].as_array().unwrap() {
        let Some(raw) = entry.get("pillow_rgb") else {
            continue;
        };
        let name = entry["image"].as_str().unwrap();
        let (own, pillow) = (photo(name), pillow_decode(raw));
        assert_eq!(own.dimensions(), pillow.dimensions());
        let diffs: Vec<i32> = own
            .as_raw()
            .iter()
            .zip(pillow.as_raw())
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .collect();
        let worst = diffs.iter().copied().max().unwrap_or(0);
        let changed = diffs.iter().filter(|d| **d > 0).count() as f64 / diffs.len() as f64;
        eprintln!(
            "{name}: zune-jpeg vs Pillow: max {worst} levels, {:.1}% of values differ",
            changed * 100.0
        );
        assert!(worst <= 2, "{name}: decoders differ by {worst} levels");
        jpegs += 1;
    }
    assert!(jpegs >= 1, "photos.json lists a JPEG");
}

fn max_abs_diff(a: impl IntoIterator<Item = f32>, b: impl IntoIterator<Item = f32>) -> f32 {
    let (a, b): (Vec<f32>, Vec<f32>) = (a.into_iter().collect(), b.into_iter().collect());
    assert_eq!(a.len(), b.len(), "tensor sizes differ");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs one session on named tensors and returns the named f32 output.
fn run(session: &mut LoadedSession, inputs: Vec<(&str, Input)>, output: &str) -> ArrayD<f32> {
    let inputs: Vec<(String, Input)> = inputs
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    session
        .run_f32(inputs, &[output])
        .expect("ort run")
        .remove(0)
}

fn ids_tensor(ids: &[i64]) -> Input {
    Input::I64(
        Array2::from_shape_vec((1, ids.len()), ids.to_vec())
            .unwrap()
            .into_dyn(),
    )
}

fn tweet(id: &str, tokens: Vec<String>) -> Tweet {
    Tweet {
        id: id.to_string(),
        tokens: Some(tokens),
        ..Default::default()
    }
}

/// A copy of an arch manifest in a temp dir, paths made absolute, `edit` applied.
fn edited_manifest(name: &str, edit: impl Fn(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(manifest(name)).unwrap();
    let absolute = text.replace(
        "path = \"arch/",
        &format!("path = \"{}/arch/", models_dir().display()),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, edit(absolute)).unwrap();
    (dir, path)
}

// ------------------------------------------------------------------ taggers (BERT / XLM-R + CRF)

/// The tagger fixtures and their references: BERT (WordPiece, token_type_ids) and XLM-R (PGIM's
/// backbone: SentencePiece-style Unigram tokenizer, no segment ids), both with a CRF.
const TAGGERS: [(&str, &str); 2] = [
    ("arch-tagger.toml", "tagger.json"),
    ("arch-xlmr-tagger.toml", "xlmr_tagger.json"),
];

#[test]
fn arch_tagger_tokenisation_matches_the_transformers_tokenizer() {
    crate::require_venv!();
    for (name, reference_name) in TAGGERS {
        let m = ModelManifest::load(&manifest(name)).unwrap_or_else(|e| panic!("{e}"));
        let text = TextEncoder::from_manifest(&m).unwrap();
        let reference = reference(reference_name);
        for case in reference["cases"].as_array().unwrap() {
            let words = strings(&case["words"]);
            let enc = text.encode_words("t", &words).unwrap();
            assert_eq!(enc.ids, i64s(&case["input_ids"]), "{name}: {words:?}");
            let want_word_ids: Vec<Option<usize>> = case["word_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().map(|w| w as usize))
                .collect();
            assert_eq!(enc.word_ids, want_word_ids, "{name}: {words:?}");
        }
    }
}

#[test]
fn arch_tagger_graph_matches_pytorch_with_one_and_two_segments() {
    crate::require_venv!();
    for (name, reference_name) in TAGGERS {
        let m = ModelManifest::load(&manifest(name)).unwrap();
        let has_segments = m.model("main").unwrap().input("token_type_ids").is_some();
        assert_eq!(
            has_segments,
            name == "arch-tagger.toml",
            "only BERT has segment ids"
        );
        let mut session = ort_runtime()
            .load_session(&m, "main", &cpu())
            .unwrap_or_else(|e| panic!("{e}"));
        let reference = reference(reference_name);
        let mut cases: Vec<(Vec<i64>, Vec<i64>, &Value)> = reference["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let ids = i64s(&c["input_ids"]);
                let zeros = vec![0; ids.len()];
                (ids, zeros, &c["logits"])
            })
            .collect();
        // Tweet + auxiliary knowledge as the second segment.
        let pair = &reference["pair"];
        let pair_ids = i64s(&pair["input_ids"]);
        let segments = match pair.get("token_type_ids") {
            Some(t) => i64s(t),
            None => vec![0; pair_ids.len()],
        };
        assert_eq!(segments.contains(&1), has_segments);
        cases.push((pair_ids, segments, &pair["logits"]));
        for (ids, segments, want) in cases {
            let mut inputs = vec![
                ("input_ids", ids_tensor(&ids)),
                ("attention_mask", ids_tensor(&vec![1; ids.len()])),
            ];
            if has_segments {
                inputs.push(("token_type_ids", ids_tensor(&segments)));
            }
            let logits = run(&mut session, inputs, "logits");
            assert_eq!(logits.shape(), &[1, ids.len(), 9]);
            let want: Vec<f32> = want
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| f64s(row).into_iter().map(|v| v as f32))
                .collect();
            let diff = max_abs_diff(logits.iter().copied(), want);
            assert!(diff < 1e-4, "{name}: logits differ from PyTorch by {diff}");
        }
    }
}

#[test]
fn arch_tagger_labels_equal_the_reference_pipeline_with_and_without_crf() {
    crate::require_venv!();
    for (name, reference_name) in TAGGERS {
        let reference = reference(reference_name);
        let mut with_crf = OnnxTagger::load(ort_runtime(), &manifest(name), &cpu())
            .unwrap_or_else(|e| panic!("{e}"));
        let (_dir, no_crf_path) = edited_manifest(name, |t| {
            let cut = t.find("[crf]").expect("the manifest has a CRF");
            t[..cut].to_string()
        });
        let mut argmax = OnnxTagger::load(ort_runtime(), &no_crf_path, &cpu()).unwrap();
        let mut differs = 0;
        for case in reference["cases"].as_array().unwrap() {
            let words = strings(&case["words"]);
            let t = tweet("t", words.clone());
            let crf_labels = with_crf.tag_words(&t, &words).unwrap();
            assert_eq!(
                crf_labels,
                strings(&case["labels_crf"]),
                "{name}: {words:?}"
            );
            let plain = argmax.tag_words(&t, &words).unwrap();
            assert_eq!(plain, strings(&case["labels_argmax"]), "{name}: {words:?}");
            differs += usize::from(crf_labels != plain);
            // Entities are the BIO spans of those labels.
            let entities = with_crf.tag(&t).unwrap();
            let spans = riveg_bench::data::tags::decode_chunks(&crf_labels);
            assert_eq!(entities.len(), spans.len());
        }
        assert!(differs > 0, "{name}: the CRF changes at least one sequence");
    }
}

// ------------------------------------------------------------------ SAM (two graphs)

fn sam_boxes(case: &Value) -> Vec<BBox> {
    case["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let b = f64s(b);
            BBox::new(b[0], b[1], b[2], b[3])
        })
        .collect()
}

/// Decodes uncompressed column-major runs into a row-major mask.
fn runs_to_mask(runs: &[u64], h: usize, w: usize) -> Vec<bool> {
    let mut column_major = Vec::with_capacity(h * w);
    for (i, &n) in runs.iter().enumerate() {
        column_major.extend(std::iter::repeat_n(i % 2 == 1, n as usize));
    }
    assert_eq!(column_major.len(), h * w, "runs cover the image");
    let mut mask = vec![false; h * w];
    for x in 0..w {
        for y in 0..h {
            mask[y * w + x] = column_major[x * h + y];
        }
    }
    mask
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[test]
fn arch_sam_preprocessing_matches_sam_processor() {
    let m = ModelManifest::load(&manifest("arch-sam.toml")).unwrap_or_else(|e| panic!("{e}"));
    let spec = m.require_preprocess().unwrap();
    let reference = reference("sam.json");
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let want = tensor(&case["pixel_values"]);
        let mut transform = None;
        for (label, img, strict) in decodes(name) {
            let (pixels, t) = image_to_tensor(&img, spec);
            assert_eq!(&pixels.shape()[1..], want.shape(), "{label}");
            let diff = max_abs_diff(pixels.iter().copied(), want.iter().copied());
            // Two 8-bit levels over the smallest ImageNet std (0.225) for another JPEG decoder.
            let tolerance = if strict {
                1e-5
            } else {
                2.0 / 255.0 / 0.225 + 1e-5
            };
            assert!(diff < tolerance, "{label}: pixel_values differ by {diff}");
            transform = Some(t);
        }
        let transform = transform.unwrap();
        let reshaped = usizes(&case["reshaped_input_size"]);
        assert_eq!(
            [
                transform.content_height as usize,
                transform.content_width as usize
            ],
            [reshaped[0], reshaped[1]],
            "{name}"
        );
        // SamProcessor's box coordinate transform (original -> model input pixels).
        for (b, want) in sam_boxes(case)
            .iter()
            .zip(case["input_boxes"].as_array().unwrap())
        {
            let want = f64s(want);
            let (x1, y1) = transform.to_input(b.x1(), b.y1());
            let (x2, y2) = transform.to_input(b.x2(), b.y2());
            for (got, want) in [x1, y1, x2, y2].iter().zip(&want) {
                assert!((got - want).abs() < 1e-3, "{name}: box {got} vs {want}");
            }
        }
    }
}

#[test]
fn arch_sam_graphs_match_pytorch() {
    crate::require_venv!();
    let m = ModelManifest::load(&manifest("arch-sam.toml")).unwrap();
    let mut encoder = ort_runtime().load_session(&m, "encoder", &cpu()).unwrap();
    let mut decoder = ort_runtime().load_session(&m, "decoder", &cpu()).unwrap();
    let reference = reference("sam.json");
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let pixels = tensor(&case["pixel_values"]).insert_axis(ndarray::Axis(0));
        let emb = run(
            &mut encoder,
            vec![("pixel_values", Input::f32(pixels))],
            "image_embeddings",
        );
        if name == reference["cases"][0]["image"].as_str().unwrap() {
            let want = tensor(&reference["embeddings_sample"]);
            let diff = max_abs_diff(emb.iter().copied(), want.iter().copied());
            assert!(diff < 1e-4, "{name}: embeddings differ by {diff}");
        }
        let lowres = tensor(&case["low_res_masks"]);
        for (i, b) in case["input_boxes"].as_array().unwrap().iter().enumerate() {
            let b: Vec<f32> = f64s(b).into_iter().map(|v| v as f32).collect();
            let boxes = Input::f32(Array2::from_shape_vec((1, 4), b).unwrap());
            let masks = run(
                &mut decoder,
                vec![
                    ("image_embeddings", Input::f32(emb.clone())),
                    ("box", boxes),
                ],
                "masks",
            );
            let want = lowres.index_axis(ndarray::Axis(0), i);
            let diff = max_abs_diff(masks.iter().copied(), want.iter().copied());
            assert!(
                diff < 1e-4,
                "{name} box {i}: low-res masks differ by {diff}"
            );
        }
    }
}

#[test]
fn arch_sam_masks_equal_post_process_masks_on_photos() {
    crate::require_venv!();
    let mut sam = OnnxSegmenter::load(ort_runtime(), &manifest("arch-sam.toml"), &cpu())
        .unwrap_or_else(|e| panic!("{e}"));
    let reference = reference("sam.json");
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        for (label, img, strict) in decodes(name) {
            let t = tweet(&label, Vec::new());
            let input = TweetInput {
                tweet: &t,
                image: Some(&img),
            };
            let masks = sam.segment(&input, &sam_boxes(case)).unwrap();
            let wants = case["masks"].as_array().unwrap();
            assert_eq!(masks.len(), wants.len());
            for (i, (mask, want)) in masks.iter().zip(wants).enumerate() {
                let size = usizes(&want["size"]);
                assert_eq!(mask.size, [size[0] as u32, size[1] as u32], "{label}");
                let RleCounts::Runs(runs) = &mask.counts else {
                    panic!("expected uncompressed runs")
                };
                let got = runs_to_mask(runs, size[0], size[1]);
                let want_mask = runs_to_mask(
                    &usizes(&want["runs"])
                        .into_iter()
                        .map(|v| v as u64)
                        .collect::<Vec<_>>(),
                    size[0],
                    size[1],
                );
                let area = want["area"].as_u64().unwrap() as usize;
                assert_eq!(want_mask.iter().filter(|v| **v).count(), area);
                let score = iou(&got, &want_mask);
                // Another JPEG decoder moves pixels by a level or two; a random-weight model's
                // mask boundary moves with them.
                let needed = if strict { 0.999 } else { 0.98 };
                assert!(score >= needed, "{label} box {i}: mask IoU {score}");
                if !strict {
                    eprintln!("{label} box {i}: mask IoU {score:.4}");
                }
                checked += 1;
            }
        }
    }
    // One encoder pass per decode of each photo (the JPEG has two).
    assert_eq!(
        sam.encoder_runs,
        reference["cases"].as_array().unwrap().len() + 1
    );
    assert!(checked >= 10);
}

// ------------------------------------------------------------------ CLIP entailer, OWL-ViT grounder

/// Entities and queries of the reference (entity text = query: the stage only pairs them up).
fn queries(reference: &Value) -> (Vec<Entity>, Vec<String>) {
    let queries = strings(&reference["queries"]);
    let entities = queries
        .iter()
        .map(|q| Entity::new(q.clone(), "PER"))
        .collect();
    (entities, queries)
}

/// Reference token ids per query, padded with 0 into `[n, len]` ids and mask.
fn padded_ids(reference: &Value) -> (Array2<i64>, Array2<i64>) {
    let rows: Vec<Vec<i64>> = reference["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(i64s)
        .collect();
    let len = rows.iter().map(Vec::len).max().unwrap();
    let mut ids = Array2::zeros((rows.len(), len));
    let mut mask = Array2::zeros((rows.len(), len));
    for (r, row) in rows.iter().enumerate() {
        for (c, &id) in row.iter().enumerate() {
            ids[[r, c]] = id;
            mask[[r, c]] = 1;
        }
    }
    (ids, mask)
}

#[test]
fn arch_clip_tokenisation_matches_the_transformers_tokenizer() {
    crate::require_venv!();
    for (name, reference) in [
        ("arch-clip.toml", reference("clip.json")),
        ("arch-owlvit.toml", reference("owlvit.json")),
    ] {
        let m = ModelManifest::load(&manifest(name)).unwrap_or_else(|e| panic!("{e}"));
        let text = TextEncoder::from_manifest(&m).unwrap();
        let (entities, queries) = queries(&reference);
        let names: Vec<&str> = entities.iter().map(|e| e.text.as_str()).collect();
        let (ids, mask) = text.encode_queries("t", &names, &queries).unwrap();
        let (want_ids, want_mask) = padded_ids(&reference);
        assert_eq!(mask, want_mask, "{name}: attention mask");
        // Padding ids may differ (the harness pads with 0); the masked tokens must not.
        assert_eq!(ids * &mask, want_ids * &want_mask, "{name}: token ids");
    }
}

#[test]
fn arch_clip_and_owlvit_preprocessing_match_the_image_processors() {
    for (name, reference) in [
        ("arch-clip.toml", reference("clip.json")),
        ("arch-owlvit.toml", reference("owlvit.json")),
    ] {
        let m = ModelManifest::load(&manifest(name)).unwrap();
        let spec = m.require_preprocess().unwrap();
        for case in reference["cases"].as_array().unwrap() {
            let want = tensor(&case["pixel_values"]);
            for (label, img, strict) in decodes(case["image"].as_str().unwrap()) {
                let (pixels, _) = image_to_tensor(&img, spec);
                let diff = max_abs_diff(pixels.iter().copied(), want.iter().copied());
                // Two levels over CLIP's smallest std (0.2613) for another JPEG decoder.
                let tolerance = if strict {
                    1e-5
                } else {
                    2.0 / 255.0 / 0.26 + 1e-5
                };
                assert!(
                    diff < tolerance,
                    "{name} {label}: pixel_values differ by {diff}"
                );
            }
        }
    }
}

/// The graph inputs of one photo's reference queries: one image, `image_index` all 0 (every VE/VG
/// arch export takes several images per run).
fn query_inputs(pixels: ArrayD<f32>, reference: &Value) -> Vec<(&'static str, Input)> {
    let (ids, mask) = padded_ids(reference);
    let n = ids.nrows();
    vec![
        (
            "pixel_values",
            Input::f32(pixels.insert_axis(ndarray::Axis(0))),
        ),
        ("input_ids", Input::I64(ids.into_dyn())),
        ("attention_mask", Input::I64(mask.into_dyn())),
        ("image_index", Input::I64(ndarray::ArrayD::zeros(vec![n]))),
    ]
}

#[test]
fn arch_clip_graph_and_probabilities_match_the_reference() {
    crate::require_venv!();
    let reference = reference("clip.json");
    let m = ModelManifest::load(&manifest("arch-clip.toml")).unwrap();
    let mut session = ort_runtime().load_session(&m, "main", &cpu()).unwrap();
    let mut entailer = OnnxEntailer::load(ort_runtime(), &manifest("arch-clip.toml"), &cpu())
        .unwrap_or_else(|e| panic!("{e}"));
    let (entities, queries) = queries(&reference);
    let mut spread = Vec::new();
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let want_cos: Vec<f32> = f64s(&case["cosine"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let want_p: Vec<f32> = f64s(&case["probability"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let inputs = query_inputs(tensor(&case["pixel_values"]), &reference);
        let cos = run(&mut session, inputs, "cosine");
        let diff = max_abs_diff(cos.iter().copied(), want_cos.iter().copied());
        assert!(diff < 1e-4, "{name}: cosine differs from PyTorch by {diff}");
        for (label, img, strict) in decodes(name) {
            let t = tweet(&label, Vec::new());
            let input = TweetInput {
                tweet: &t,
                image: Some(&img),
            };
            let got = entailer.entail(&input, &entities, &queries).unwrap();
            let diff = max_abs_diff(got.iter().copied(), want_p.iter().copied());
            if strict {
                assert!(diff < 1e-4, "{label}: probabilities differ by {diff}");
            } else {
                eprintln!("{label}: probabilities differ by {diff:.4}");
                assert!(diff < 0.1, "{label}: probabilities differ by {diff}");
            }
        }
        spread.extend(want_p);
    }
    // The calibrated threshold puts the reference pairs on both sides of 0.5.
    assert!(spread.iter().any(|p| *p < 0.5) && spread.iter().any(|p| *p > 0.5));
}

/// The BLIP ITM entailer and the OWLv2 grounder with their references.
const VL_EXPORTS: [(&str, &str); 2] = [
    ("arch-blip.toml", "blip.json"),
    ("arch-owlv2.toml", "owlv2.json"),
];

#[test]
fn arch_blip_and_owlv2_tokenisation_match_the_transformers_tokenizers() {
    // BLIP: BERT WordPiece (lower case, accents stripped, ## pieces); OWLv2: CLIP BPE.
    crate::require_venv!();
    for (name, reference_name) in VL_EXPORTS {
        let reference = reference(reference_name);
        let m = ModelManifest::load(&manifest(name)).unwrap_or_else(|e| panic!("{e}"));
        let text = TextEncoder::from_manifest(&m).unwrap();
        let (entities, queries) = queries(&reference);
        let names: Vec<&str> = entities.iter().map(|e| e.text.as_str()).collect();
        let (ids, mask) = text.encode_queries("t", &names, &queries).unwrap();
        let (want_ids, want_mask) = padded_ids(&reference);
        assert_eq!(mask, want_mask, "{name}: attention mask");
        assert_eq!(ids * &mask, want_ids * &want_mask, "{name}: token ids");
    }
}

#[test]
fn arch_blip_and_owlv2_preprocessing_match_the_image_processors() {
    // BLIP: Pillow bicubic stretch (bit for bit). OWLv2: rescale, pad to a square with 0.5,
    // skimage-style anti-aliased resize in float: scipy's arithmetic redone step by step, so the
    // tensors agree to float32 rounding on every photo (downsampled by 1.3 to 3.1 with blur, or
    // upsampled without).
    for (name, reference_name) in VL_EXPORTS {
        let reference = reference(reference_name);
        let m = ModelManifest::load(&manifest(name)).unwrap();
        let spec = m.require_preprocess().unwrap();
        for case in reference["cases"].as_array().unwrap() {
            let want = tensor(&case["pixel_values"]);
            for (label, img, strict) in decodes(case["image"].as_str().unwrap()) {
                let (pixels, _) = image_to_tensor(&img, spec);
                assert_eq!(pixels.shape()[1..], want.shape()[..], "{name} {label}");
                let diff = max_abs_diff(pixels.iter().copied(), want.iter().copied());
                eprintln!("{name} {label}: pixel_values differ by {diff:.2e}");
                let tolerance = if strict {
                    1e-5
                } else {
                    2.0 / 255.0 / 0.26 + 1e-5
                };
                assert!(
                    diff < tolerance,
                    "{name} {label}: pixel_values differ by {diff}"
                );
            }
        }
    }
}

#[test]
fn arch_blip_itm_graph_and_probabilities_match_the_reference() {
    // The reference runs BlipForImageTextRetrieval on the image repeated per query and takes
    // softmax(itm_score)[:, 1]; the exported graph runs the vision tower once, and the stage
    // applies the manifest's softmax[positive_index = 1].
    crate::require_venv!();
    let reference = reference("blip.json");
    let m = ModelManifest::load(&manifest("arch-blip.toml")).unwrap();
    assert_eq!(m.entailment.map(|e| e.positive_index), Some(1));
    let mut session = ort_runtime().load_session(&m, "main", &cpu()).unwrap();
    let mut entailer = OnnxEntailer::load(ort_runtime(), &manifest("arch-blip.toml"), &cpu())
        .unwrap_or_else(|e| panic!("{e}"));
    let (entities, queries) = queries(&reference);
    let mut all = Vec::new();
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let want_logits: Vec<f32> = case["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| f64s(row).into_iter().map(|v| v as f32))
            .collect();
        let want_p: Vec<f32> = f64s(&case["probability"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let inputs = query_inputs(tensor(&case["pixel_values"]), &reference);
        let logits = run(&mut session, inputs, "logits");
        assert_eq!(logits.shape(), [queries.len(), 2]);
        let diff = max_abs_diff(logits.iter().copied(), want_logits.iter().copied());
        assert!(
            diff < 1e-4,
            "{name}: ITM logits differ from PyTorch by {diff}"
        );
        for (label, img, strict) in decodes(name) {
            let t = tweet(&label, Vec::new());
            let input = TweetInput {
                tweet: &t,
                image: Some(&img),
            };
            let got = entailer.entail(&input, &entities, &queries).unwrap();
            let diff = max_abs_diff(got.iter().copied(), want_p.iter().copied());
            if strict {
                assert!(diff < 1e-4, "{label}: probabilities differ by {diff}");
            } else {
                eprintln!("{label}: probabilities differ by {diff:.4}");
                assert!(diff < 0.1, "{label}: probabilities differ by {diff}");
            }
        }
        all.extend(want_p);
    }
    // The fixture is informative: probabilities on both sides of 0.5, depending on the image.
    assert!(all.iter().any(|p| *p < 0.5) && all.iter().any(|p| *p > 0.5));
}

#[test]
fn arch_owlv2_manifest_errors_name_the_key() {
    let cases: [(&str, &str, &str); 4] = [
        ("pad_value = 0.5\n", "", "needs pad_value"),
        (
            "filter = \"skimage_linear\"",
            "filter = \"bicubic\"",
            "only \"skimage_linear\"",
        ),
        (
            "resize = \"pad_square\"",
            "resize = \"stretch\"",
            "only used with resize = \"pad_square\"",
        ),
        ("pad_value = 0.5\n", "pad_value = nan\n", "not finite"),
    ];
    for (from, to, want) in cases {
        let (_dir, path) = edited_manifest("arch-owlv2.toml", |t| {
            assert!(t.contains(from), "{from}");
            t.replacen(from, to, 1)
        });
        let err = ModelManifest::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(want) && err.contains("arch-owlv2.toml") && err.contains("[preprocess]"),
            "{from} -> {to}: {err}"
        );
    }
}

#[test]
fn arch_owlvit_graph_and_boxes_match_post_process_object_detection() {
    crate::require_venv!();
    check_detector("arch-owlvit.toml", "owlvit.json");
}

#[test]
fn arch_owlv2_graph_and_boxes_match_post_process_object_detection() {
    // OWLv2: the photos are padded to a square, resized with the processor's own anti-aliased
    // resize, and the boxes scaled by the longer side; the same tolerances as OWL-ViT hold.
    crate::require_venv!();
    check_detector("arch-owlv2.toml", "owlv2.json");
}

/// A single-pass detector fixture against its reference: the graph's raw boxes (PyTorch, 1e-4),
/// then the stage end to end on each photo: boxes 1e-3 px and scores 1e-4 against
/// `post_process_object_detection` (Pillow's decode; the other JPEG decode is printed).
fn check_detector(manifest_name: &str, reference_name: &str) {
    let reference = reference(reference_name);
    let m = ModelManifest::load(&manifest(manifest_name)).unwrap();
    let mut session = ort_runtime().load_session(&m, "main", &cpu()).unwrap();
    let mut grounder = OnnxGrounder::load(ort_runtime(), &manifest(manifest_name), &cpu())
        .unwrap_or_else(|e| panic!("{e}"));
    let (entities, queries) = queries(&reference);
    let mut distinct = std::collections::BTreeSet::new();
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let want_scores: Vec<f32> = f64s(&case["scores"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let raw: Vec<f32> = case["raw_boxes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| f64s(b).into_iter().map(|v| v as f32))
            .collect();
        let inputs = query_inputs(tensor(&case["pixel_values"]), &reference);
        let boxes = run(&mut session, inputs, "boxes");
        let diff = max_abs_diff(boxes.iter().copied(), raw.iter().copied());
        assert!(
            diff < 1e-4,
            "{name}: raw boxes differ from PyTorch by {diff}"
        );
        let wants = case["boxes"].as_array().unwrap();
        for (label, img, strict) in decodes(name) {
            let t = tweet(&label, Vec::new());
            let input = TweetInput {
                tweet: &t,
                image: Some(&img),
            };
            let got = grounder.ground(&input, &entities, &queries).unwrap();
            assert_eq!(got.len(), wants.len());
            for (i, (g, want)) in got.iter().zip(wants).enumerate() {
                let want = f64s(want);
                let have = [g.bbox.x1(), g.bbox.y1(), g.bbox.x2(), g.bbox.y2()];
                let worst = have
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                let score_diff = (g.score - want_scores[i]).abs();
                if strict {
                    assert!(worst < 1e-3, "{label} query {i}: box {have:?} vs {want:?}");
                    assert!(
                        score_diff < 1e-4,
                        "{label} query {i}: score off by {score_diff}"
                    );
                    distinct.insert(format!("{want:?}"));
                } else {
                    eprintln!(
                        "{label} query {i}: box off by {worst:.3} px, score by {score_diff:.4}"
                    );
                }
            }
        }
    }
    assert!(distinct.len() > 5, "queries pick different boxes");
}

// ------------------------------------------------------------------ suites/arch.toml

#[test]
fn arch_suite_runs_the_ablation_matrix_on_real_architectures() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_riveg-bench"))
        .args([
            "run",
            "--suite",
            "suites/arch.toml",
            "--no-cache",
            "--format",
            "json",
        ])
        .arg("--out")
        .arg(&out)
        .current_dir(&root)
        .output()
        .expect("run riveg-bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(r["suite"], "arch");
    assert_eq!(r["meta"]["execution_provider"], "cpu");
    let variants = r["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 8);
    let variant = |name: &str| variants.iter().find(|v| v["name"] == name).unwrap();
    let full = variant("full");
    for stage in ["tagger", "entailer", "grounder", "segmenter"] {
        assert_eq!(full["stages"][stage], "onnx");
        let t = &full["timings"][stage];
        assert!(
            t["count"].as_u64().unwrap() + t["warmup_excluded"].as_u64().unwrap() == 5,
            "{stage} ran once per tweet"
        );
    }
    let hashes = full["model_hashes"].as_object().unwrap();
    for key in [
        "tagger:arch-tagger/main",
        "entailer:arch-clip/main",
        "grounder:arch-owlvit/main",
        "segmenter:arch-sam/encoder",
        "segmenter:arch-sam/decoder",
    ] {
        assert!(hashes.contains_key(key), "{key} in {hashes:?}");
    }
    assert_eq!(
        variant("oracle-mner")["metrics"]["riveg"]["mner"]["f1"],
        1.0
    );
    assert_eq!(variant("no-ve")["stages"]["entailer"], "off");

    // The binary's tagger output is the library's OnnxTagger output, tweet by tweet; masks have
    // the size of each (differently sized) photo.
    let mut tagger =
        OnnxTagger::load(ort_runtime(), &manifest("arch-tagger.toml"), &cpu()).unwrap();
    let predictions = std::fs::read_to_string(out.join("predictions/full.jsonl")).unwrap();
    let mut masks = 0;
    for line in predictions.lines() {
        let p: Value = serde_json::from_str(line).unwrap();
        if p.get("header").is_some() {
            continue;
        }
        let t = tweet(p["id"].as_str().unwrap(), strings(&p["tokens"]));
        let want: Vec<(String, String)> = tagger
            .tag(&t)
            .unwrap()
            .into_iter()
            .map(|e| (e.text, e.entity_type))
            .collect();
        let got: Vec<(String, String)> = p["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["text"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, want, "tweet {}", p["id"]);
        let img = photo(p["image"].as_str().unwrap());
        for e in p["entities"].as_array().unwrap() {
            for m in e["masks"].as_array().into_iter().flatten() {
                assert_eq!(
                    usizes(&m["size"]),
                    [img.height() as usize, img.width() as usize]
                );
                masks += 1;
            }
        }
    }
    assert!(masks > 0, "the full variant segmented something");
}

#[test]
fn arch_blip_owlv2_suite_runs_blip_itm_and_owlv2_end_to_end() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_riveg-bench"))
        .args([
            "run",
            "--suite",
            "suites/arch-blip-owlv2.toml",
            "--no-cache",
            "--format",
            "json",
        ])
        .arg("--out")
        .arg(&out)
        .current_dir(&root)
        .output()
        .expect("run riveg-bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(r["suite"], "arch-blip-owlv2");
    let variants = r["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    let full = variants.iter().find(|v| v["name"] == "full").unwrap();
    let hashes = full["model_hashes"].as_object().unwrap();
    for key in ["entailer:arch-blip/main", "grounder:arch-owlv2/main"] {
        assert!(hashes.contains_key(key), "{key} in {hashes:?}");
    }
    for stage in ["entailer", "grounder"] {
        assert_eq!(full["stages"][stage], "onnx");
        let t = &full["timings"][stage];
        assert_eq!(
            t["count"].as_u64().unwrap() + t["warmup_excluded"].as_u64().unwrap(),
            5,
            "{stage} ran once per tweet"
        );
    }
    // Every OWLv2 box lies in its (differently shaped) photo: the longer-side scaling and the
    // clamp put the padded square's boxes back on the image.
    let predictions = std::fs::read_to_string(out.join("predictions/full.jsonl")).unwrap();
    let mut boxes = 0;
    for line in predictions.lines() {
        let p: Value = serde_json::from_str(line).unwrap();
        let Some(image) = p["image"].as_str() else {
            continue;
        };
        let img = photo(image);
        for e in p["entities"].as_array().unwrap() {
            for b in e["boxes"].as_array().into_iter().flatten() {
                let b = f64s(b);
                assert!(
                    b[0] >= 0.0 && b[1] >= 0.0 && b[0] <= b[2] && b[1] <= b[3],
                    "{b:?}"
                );
                assert!(
                    b[2] <= img.width() as f64 && b[3] <= img.height() as f64,
                    "{b:?}"
                );
                boxes += 1;
            }
        }
    }
    assert!(boxes > 0, "OWLv2 grounded something");
}
