//! ONNX Runtime I/O binding (`[runtime] io_binding`, `run --io-binding`) on the CPU: with the
//! binding path forced on, the SAM fixtures (tiny and real-architecture) and the OFA-style
//! grounder give exactly the outputs of plain runs (masks byte-equal, boxes and scores equal),
//! held tensors land where `OutputMemory` says, the CUDA memory description names CUDA device
//! memory (built, never used: there is no GPU here), and binding failures are clear errors with
//! the way around them. The CUDA path itself is only exercised by `benches/gpu_check.sh`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::ArrayD;
use riveg_bench::data::model::{Entity, Tweet};
use riveg_bench::geometry::{BBox, CocoRle, RleCounts};
use riveg_bench::pipeline::onnx::{OnnxGrounder, OnnxSegmenter};
use riveg_bench::pipeline::stages::{Grounder, Segmenter, TweetInput};
use riveg_bench::runtime::{
    self, Input, IoBinding, ModelManifest, OrtRuntime, OutputMemory, Provider, RuntimeError,
    SessionConfig,
};
use serde_json::Value;

use crate::common::{bin, path_str, root};

fn models_dir() -> PathBuf {
    root().join("models")
}

fn manifest(name: &str) -> PathBuf {
    models_dir().join(name)
}

fn ort_runtime() -> &'static OrtRuntime {
    runtime::init(None).unwrap_or_else(|e| panic!("ONNX Runtime is required for these tests:\n{e}"))
}

fn cpu(io_binding: IoBinding) -> SessionConfig {
    SessionConfig {
        intra_threads: Some(1),
        io_binding,
        ..SessionConfig::cpu()
    }
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn tweet(id: &str) -> Tweet {
    Tweet {
        id: id.to_string(),
        tokens: Some(Vec::new()),
        ..Default::default()
    }
}

fn image(path: &Path) -> image::RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

fn runs(mask: &CocoRle) -> &[u64] {
    match &mask.counts {
        RleCounts::Runs(r) => r,
        other => panic!("expected uncompressed runs, got {other:?}"),
    }
}

/// Both segmenters (binding off, on) on one image and its boxes: the masks of each.
fn segment_both(
    off: &mut OnnxSegmenter,
    on: &mut OnnxSegmenter,
    id: &str,
    img: &image::RgbImage,
    boxes: &[BBox],
) -> (Vec<CocoRle>, Vec<CocoRle>) {
    let t = tweet(id);
    let input = TweetInput {
        tweet: &t,
        image: Some(img),
    };
    let a = off.segment(&input, boxes).unwrap_or_else(|e| panic!("{e}"));
    let b = on.segment(&input, boxes).unwrap_or_else(|e| panic!("{e}"));
    (a, b)
}

fn segmenters(name: &str) -> (OnnxSegmenter, OnnxSegmenter) {
    let load = |mode| {
        OnnxSegmenter::load(ort_runtime(), &manifest(name), &cpu(mode))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    (load(IoBinding::Off), load(IoBinding::On))
}

#[test]
fn tiny_sam_masks_are_byte_equal_with_binding_on() {
    crate::require_venv!();
    let (mut off, mut on) = segmenters("tiny-sam.toml");
    let expected = json(&models_dir().join("tiny/expected.json"));
    let case = &expected["segmenter"][0];
    let img = image(
        &models_dir()
            .join("tiny")
            .join(case["image"].as_str().unwrap()),
    );
    let cases = case["masks"].as_array().unwrap();
    let boxes: Vec<BBox> = cases
        .iter()
        .map(|m| {
            let b = f64s(&m["box"]);
            BBox::new(b[0], b[1], b[2], b[3])
        })
        .collect();
    let (a, b) = segment_both(&mut off, &mut on, "sam", &img, &boxes);
    assert_eq!(a, b);
    // And both are onnxruntime's masks in Python (so the equality is not between two wrongs).
    for (mask, want) in b.iter().zip(cases) {
        let want: Vec<u64> = want["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(runs(mask), want.as_slice());
    }
    // A second image through the resize and padding, two boxes, the embedding reused.
    let img = image(&models_dir().join("tiny/sam_64x48.png"));
    let boxes = [
        BBox::new(0.0, 0.0, 64.0, 48.0),
        BBox::new(24.0, 0.0, 64.0, 48.0),
    ];
    let (a, b) = segment_both(&mut off, &mut on, "sam_big", &img, &boxes);
    assert_eq!(a, b);
    let (a2, b2) = segment_both(&mut off, &mut on, "sam_big", &img, &boxes[1..]);
    assert_eq!((a2, b2), (a[1..].to_vec(), b[1..].to_vec()));
    assert_eq!((off.encoder_runs, on.encoder_runs), (2, 2));
}

#[test]
fn arch_sam_masks_are_byte_equal_with_binding_on() {
    crate::require_venv!();
    let (mut off, mut on) = segmenters("arch-sam.toml");
    let reference = json(&models_dir().join("arch/reference/sam.json"));
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let img = image(&models_dir().join("arch/photos").join(name));
        let boxes: Vec<BBox> = case["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let b = f64s(b);
                BBox::new(b[0], b[1], b[2], b[3])
            })
            .collect();
        let (a, b) = segment_both(&mut off, &mut on, name, &img, &boxes);
        assert_eq!(a.len(), boxes.len());
        assert_eq!(a, b, "{name}");
        for mask in &b {
            // A mask, not an empty or full frame (the comparison would hold for those too).
            let r = runs(mask);
            assert!(r.len() > 2, "{name}: runs {r:?}");
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} masks compared");
}

#[test]
fn ofa_boxes_and_scores_are_equal_with_binding_on() {
    crate::require_venv!();
    let load = |mode| {
        OnnxGrounder::load(ort_runtime(), &manifest("tiny-ofa.toml"), &cpu(mode))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (mut off, mut on) = (load(IoBinding::Off), load(IoBinding::On));
    let expected = json(&models_dir().join("tiny/expected.json"));
    let mut checked = 0;
    for case in expected["ofa"].as_array().unwrap() {
        let img = image(
            &models_dir()
                .join("tiny")
                .join(case["image"].as_str().unwrap()),
        );
        let queries: Vec<String> = case["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q.as_str().unwrap().to_string())
            .collect();
        let entities: Vec<Entity> = queries
            .iter()
            .map(|q| Entity::new(q.clone(), "PER"))
            .collect();
        let t = tweet("ofa");
        let input = TweetInput {
            tweet: &t,
            image: Some(&img),
        };
        let a = off.ground(&input, &entities, &queries).unwrap();
        let b = on.ground(&input, &entities, &queries).unwrap();
        assert_eq!(a.len(), queries.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x.bbox.0, y.bbox.0, "query {i}");
            assert_eq!(x.score.to_bits(), y.score.to_bits(), "query {i}");
            let want = f64s(&case["boxes_xyxy_px"][i]);
            for (got, want) in y.bbox.0.iter().zip(&want) {
                assert!((got - want).abs() < 1e-4, "{:?} vs {want:?}", y.bbox);
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "{checked} boxes compared");
}

/// The tiny SAM encoder's input for one image (gray, so any values the model accepts).
fn tiny_pixels() -> Vec<(String, Input)> {
    let pixels = ArrayD::<f32>::from_elem(vec![1, 3, 32, 32], 0.25);
    vec![("pixel_values".to_string(), Input::F32(pixels))]
}

#[test]
fn held_tensors_stay_in_host_memory_on_cpu_and_feed_the_decoder_either_way() {
    crate::require_venv!();
    let m = ModelManifest::load(&manifest("tiny-sam.toml")).unwrap();
    let rt = ort_runtime();
    // `auto` binds CUDA sessions only: a CPU session runs plainly.
    let auto = rt
        .load_session(&m, "encoder", &cpu(IoBinding::Auto))
        .unwrap();
    assert_eq!((auto.provider, auto.binds()), (Provider::Cpu, false));
    let mut plain = rt
        .load_session(&m, "encoder", &cpu(IoBinding::Off))
        .unwrap();
    let mut bound = rt.load_session(&m, "encoder", &cpu(IoBinding::On)).unwrap();
    let decoder = rt.load_session(&m, "decoder", &cpu(IoBinding::On)).unwrap();
    assert!(bound.binds() && decoder.binds() && !plain.binds());
    assert_eq!(
        OutputMemory::for_feeding(bound.place(), decoder.place()),
        OutputMemory::Host
    );
    let a = plain
        .run_feeding(tiny_pixels(), &["image_embeddings"], &decoder)
        .unwrap()
        .pop()
        .unwrap();
    let b = bound
        .run_feeding(tiny_pixels(), &["image_embeddings"], &decoder)
        .unwrap()
        .pop()
        .unwrap();
    for held in [&a, &b] {
        assert_eq!(held.shape(), &[1, 1, 8, 8]);
        assert_eq!(held.location(), "Cpu:0");
        assert!(held.host_readable());
    }
    assert_eq!(a.view().unwrap(), b.view().unwrap());
    // The bound embedding feeds the decoder (bound too) like the plain one.
    let mut decoder = decoder;
    let feed = |held: Arc<_>| {
        vec![
            ("image_embeddings".to_string(), Input::Held(held)),
            (
                "point_coords".to_string(),
                Input::F32(
                    ArrayD::from_shape_vec(vec![1, 2, 2], vec![2.0, 2.0, 20.0, 20.0]).unwrap(),
                ),
            ),
            (
                "point_labels".to_string(),
                Input::F32(ArrayD::from_shape_vec(vec![1, 2], vec![2.0, 3.0]).unwrap()),
            ),
        ]
    };
    let from_plain = decoder.run_f32(feed(Arc::new(a)), &["masks"]).unwrap();
    let from_bound = decoder.run_f32(feed(Arc::new(b)), &["masks"]).unwrap();
    assert_eq!(from_plain[0].shape(), &[1, 1, 32, 32]);
    assert_eq!(from_plain, from_bound);
}

#[test]
fn cuda_memory_is_described_as_cuda_device_memory() {
    crate::require_venv!();
    ort_runtime();
    // Only described (no CUDA here): the memory BindOutputToDevice gets for a held output.
    let cuda = OutputMemory::Cuda { device_id: 0 }.memory_info().unwrap();
    assert_eq!(cuda.allocation_device().as_str(), "Cuda");
    assert_eq!(cuda.device_id(), 0);
    assert!(!cuda.is_cpu_accessible());
    let cuda1 = OutputMemory::Cuda { device_id: 1 }.memory_info().unwrap();
    assert_eq!(cuda1.device_id(), 1);
    let host = OutputMemory::Host.memory_info().unwrap();
    assert_eq!(host.allocation_device().as_str(), "Cpu");
    assert!(host.is_cpu_accessible());
}

#[test]
fn binding_failures_name_the_model_and_how_to_turn_binding_off() {
    crate::require_venv!();
    let m = ModelManifest::load(&manifest("tiny-sam.toml")).unwrap();
    let mut bound = ort_runtime()
        .load_session(&m, "encoder", &cpu(IoBinding::On))
        .unwrap();
    let check = |err: RuntimeError, name: &str| {
        let text = err.to_string();
        assert!(matches!(err, RuntimeError::Run { .. }), "{text}");
        assert!(text.contains("sam_encoder.onnx"), "{text}");
        assert!(text.contains("I/O binding"), "{text}");
        assert!(text.contains(name), "{text}");
        assert!(text.contains("--io-binding off"), "{text}");
    };
    let err = bound
        .run_held(tiny_pixels(), &["no_such_output"])
        .unwrap_err();
    check(err, "no_such_output");
    let mut inputs = tiny_pixels();
    inputs[0].0 = "no_such_input".into();
    let err = bound.run_held(inputs, &["image_embeddings"]).unwrap_err();
    check(err, "no_such_input");
    // The session still runs after a failed binding.
    let ok = bound.run_f32(tiny_pixels(), &["image_embeddings"]).unwrap();
    assert_eq!(ok[0].shape(), &[1, 1, 8, 8]);
}

#[test]
fn run_io_binding_on_and_off_give_the_same_predictions() {
    crate::require_venv!();
    let dir = tempfile::tempdir().unwrap();
    // The smoke suite's SMNER data, one variant with every ONNX stage and SAM (no LLM call).
    let text = std::fs::read_to_string(root().join("suites/smoke.toml")).unwrap();
    let mut v: toml::Value = toml::from_str(&text).unwrap();
    let abs = |p: &str| root().join(p).to_string_lossy().into_owned();
    let datasets = v["dataset"].as_array_mut().unwrap();
    datasets.retain(|d| d["name"].as_str() == Some("smner"));
    for data in datasets.iter_mut() {
        let data = data.as_table_mut().unwrap();
        for key in ["gold", "replay"] {
            let src = data[key].as_table_mut().unwrap();
            let p = src["path"].as_str().unwrap().to_string();
            src.insert("path".into(), abs(&p).into());
        }
        data.insert("images".into(), abs("tests/fixtures/smoke/images").into());
    }
    for (_, p) in v["models"].as_table_mut().unwrap().iter_mut() {
        *p = abs(p.as_str().unwrap()).into();
    }
    let variants = v["variant"].as_array_mut().unwrap();
    variants.retain(|x| x["name"].as_str() == Some("no-reformulation"));
    let suite = dir.path().join("suite.toml");
    std::fs::write(&suite, toml::to_string(&v).unwrap()).unwrap();
    let run = |mode: &str| {
        let out = dir.path().join(mode);
        let o = bin()
            .args([
                "-v",
                "run",
                "--suite",
                path_str(&suite),
                "--out",
                path_str(&out),
                "--no-cache",
                "--device",
                "cpu",
                "--io-binding",
                mode,
                "--format",
                "json",
            ])
            .current_dir(root())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "--io-binding {mode}: {stderr}");
        let plan = std::fs::read_to_string(out.join("suite.toml")).unwrap();
        assert!(plan.contains(&format!("io_binding = \"{mode}\"")), "{plan}");
        let predictions =
            std::fs::read(out.join("predictions/smner/no-reformulation.jsonl")).unwrap();
        (predictions, stderr)
    };
    let (off, off_log) = run("off");
    let (on, on_log) = run("on");
    assert!(on_log.contains("with I/O binding"), "{on_log}");
    assert!(!off_log.contains("with I/O binding"), "{off_log}");
    let text = String::from_utf8_lossy(&on);
    assert!(text.contains("mask"), "predictions carry masks: {text}");
    assert_eq!(off, on);
}
