//! Integration tests: a multimodal LLM as a GMNER system ([`MllmAnnotator`]) against the mock
//! server on 127.0.0.1, through the real client (image encoding, data URLs, HTTP, cache).
//!
//! The mock's answer is predictable (see `riveg_bench::llm::mock::mllm_text`): entities are runs
//! of capitalised tweet tokens, boxes the image's bright regions, largest first. The test image
//! is black with two white rectangles drawn here, so every expected box is known exactly.

use image::{Rgb, RgbImage};
use riveg_bench::data::model::Tweet;
use riveg_bench::llm::{
    Behaviour, BoxConvention, ImageFormat, IssuePolicy, LlmConfig, MllmAnnotator, MllmError,
    MllmSettings, MockServer,
};

/// White rectangles (x1, y1, x2, y2; end exclusive) on a 640x480 black image, largest first.
const BIG: [f64; 4] = [100.0, 50.0, 300.0, 250.0];
const SMALL: [f64; 4] = [400.0, 300.0, 480.0, 360.0];

fn picture() -> RgbImage {
    let inside = |r: [f64; 4], x: u32, y: u32| {
        (r[0]..r[2]).contains(&f64::from(x)) && (r[1]..r[3]).contains(&f64::from(y))
    };
    RgbImage::from_fn(640, 480, |x, y| {
        if inside(BIG, x, y) || inside(SMALL, x, y) {
            Rgb([255, 255, 255])
        } else {
            Rgb([0, 0, 0])
        }
    })
}

fn tweet() -> Tweet {
    Tweet {
        id: "O_42".to_string(),
        tokens: Some(
            "Angelina Jolie visits the UN in New York today"
                .split(' ')
                .map(str::to_string)
                .collect(),
        ),
        ..Tweet::default()
    }
}

fn config(server: &MockServer) -> LlmConfig {
    LlmConfig {
        timeout_ms: 5_000,
        max_retries: 0,
        backoff_base_ms: 1,
        backoff_max_ms: 20,
        ..LlmConfig::for_base_url(server.base_url())
    }
}

fn png_settings(convention: BoxConvention) -> MllmSettings {
    MllmSettings {
        image_format: ImageFormat::Png,
        max_image_side: 0,
        box_convention: convention,
        ..MllmSettings::default()
    }
}

fn assert_box_near(got: Option<[f64; 4]>, want: [f64; 4], tolerance: f64) {
    let got = got.unwrap_or_else(|| panic!("no box, want {want:?}"));
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tolerance, "got {got:?}, want {want:?}");
    }
}

#[test]
fn mllm_entities_types_boxes_and_spans_in_every_convention() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    // Tolerances: pixel is exact; normalized is rounded to 4 decimals (0.064 px on 640);
    // grid1000 to whole grid cells (0.64 px).
    for (convention, tolerance) in [
        (BoxConvention::Pixel, 0.0),
        (BoxConvention::Normalized, 0.07),
        (BoxConvention::Grid1000, 0.65),
    ] {
        let annotator = MllmAnnotator::new(
            config(&server),
            png_settings(convention),
            IssuePolicy::Error,
            None,
        )
        .unwrap();
        let answer = annotator.annotate(&tweet(), &picture()).unwrap();
        let summary: Vec<(&str, &str, Option<usize>, Option<usize>)> = answer
            .entities
            .iter()
            .map(|e| (e.text.as_str(), e.entity_type.as_str(), e.start, e.end))
            .collect();
        assert_eq!(
            summary,
            [
                ("Angelina Jolie", "PER", Some(0), Some(2)),
                ("UN", "ORG", Some(4), Some(5)),
                ("New York", "PER", Some(6), Some(8)),
            ],
            "{convention:?}"
        );
        assert_box_near(answer.entities[0].bbox, BIG, tolerance);
        assert_box_near(answer.entities[1].bbox, SMALL, tolerance);
        assert_eq!(answer.entities[2].bbox, None);
        assert!(answer.issues.is_empty());
        assert_eq!(answer.span_protocol(), Ok(()));
        let predictions = answer.to_entities();
        assert!(predictions[0].groundable && !predictions[2].groundable);
        assert_eq!(predictions[1].boxes.len(), 1);
        // The request really was multimodal: a data URL image part, then the prompt.
        let sent = server.last_request().unwrap();
        let parts = &sent["messages"][1]["content"];
        assert_eq!(parts[0]["type"], "image_url");
        let url = parts[0]["image_url"]["url"].as_str().unwrap();
        assert!(url.starts_with("data:image/png;base64,iVBOR"), "{url:.40}");
        let text = parts[1]["text"].as_str().unwrap();
        assert!(
            text.contains(&format!("Box format: {}", convention.name())),
            "{text}"
        );
        assert!(text.contains("Image size: 640x480"), "{text}");
        assert!(text.ends_with("Tweet: Angelina Jolie visits the UN in New York today"));
    }
}

#[test]
fn mllm_resized_jpeg_boxes_come_back_in_original_pixels() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let settings = MllmSettings {
        max_image_side: 320,
        image_format: ImageFormat::Jpeg,
        ..MllmSettings::default()
    };
    let annotator =
        MllmAnnotator::new(config(&server), settings, IssuePolicy::Error, None).unwrap();
    let answer = annotator.annotate(&tweet(), &picture()).unwrap();
    let sent = server.last_request().unwrap();
    let text = sent["messages"][1]["content"][1]["text"].as_str().unwrap();
    assert!(text.contains("Image size: 320x240"), "{text}");
    // Sent at half size, JPEG-compressed: edges move by a pixel or two of the small image.
    assert_box_near(answer.entities[0].bbox, BIG, 4.0);
    assert_box_near(answer.entities[1].bbox, SMALL, 4.0);
}

#[test]
fn mllm_cache_key_covers_the_image() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let make = || {
        MllmAnnotator::new(
            config(&server),
            png_settings(BoxConvention::Pixel),
            IssuePolicy::Error,
            Some(dir.path()),
        )
        .unwrap()
    };
    let cold = make().annotate(&tweet(), &picture()).unwrap();
    assert!(!cold.from_cache);
    assert_eq!(server.requests(), 1);
    server.set_behaviour(Behaviour::AlwaysFail(500));
    let annotator = make();
    let warm = annotator.annotate(&tweet(), &picture()).unwrap();
    assert!(warm.from_cache);
    assert_eq!(warm.entities, cold.entities);
    assert_eq!(server.requests(), 1, "a warm cache sends no request");
    // One pixel changed: another image, another key.
    let mut other = picture();
    other.put_pixel(0, 0, Rgb([1, 0, 0]));
    let err = annotator.annotate(&tweet(), &other).unwrap_err();
    assert!(matches!(err, MllmError::Llm(_)), "{err:?}");
    assert_eq!(server.requests(), 2);
    let stats = annotator.stats();
    assert_eq!((stats.llm.cache_hits, stats.llm.cache_misses), (1, 1));
    assert_eq!(stats.tweets_ok, 1);
    assert_eq!(stats.errors.get("request_failed"), Some(&1));
}

#[test]
fn mllm_endpoint_without_vision_is_a_clear_error() {
    let server = MockServer::start(Behaviour::NoVision).unwrap();
    let annotator = MllmAnnotator::new(
        LlmConfig {
            model: "text-only-7b".to_string(),
            ..config(&server)
        },
        MllmSettings::default(),
        IssuePolicy::Warn,
        None,
    )
    .unwrap();
    let err = annotator.annotate(&tweet(), &picture()).unwrap_err();
    assert!(
        matches!(err, MllmError::NoVision { status: 400, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    for needle in [
        "tweet O_42",
        "refused the image",
        "text-only-7b is not a multimodal model",
        "hint: the endpoint refused a request with an image",
    ] {
        assert!(message.contains(needle), "{needle:?} missing in {message}");
    }
    assert_eq!(annotator.stats().errors.get("no_vision"), Some(&1));
}

/// A prompt that makes the mock answer in the 0-1000 grid while the suite declares pixels, about
/// a tweet whose first entity is not in ours: boxes outside the image, and an unknown entity.
const MISMATCHED_PROMPT: &str = "[user]\nThe tweet is: {tweet}\nBox format: grid1000\nTweet: Boston Celtics fans meet Angelina Jolie\n";

fn mismatched(policy: IssuePolicy, dir: &std::path::Path) -> (MockServer, MllmAnnotator) {
    let path = dir.join("mismatched.txt");
    std::fs::write(&path, MISMATCHED_PROMPT).unwrap();
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let settings = MllmSettings {
        prompt: path.display().to_string(),
        labels: vec!["PER".to_string(), "LOC".to_string()],
        ..png_settings(BoxConvention::Pixel)
    };
    let annotator = MllmAnnotator::new(config(&server), settings, policy, None).unwrap();
    (server, annotator)
}

#[test]
fn mllm_bad_boxes_and_unknown_entities_are_counted_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, annotator) = mismatched(IssuePolicy::Warn, dir.path());
    let answer = annotator.annotate(&tweet(), &picture()).unwrap();
    // Nothing dropped: both entities kept, repaired.
    assert_eq!(answer.entities.len(), 2);
    let boston = &answer.entities[0];
    assert_eq!(
        (boston.text.as_str(), boston.start),
        ("Boston Celtics", None)
    );
    // Grid values read as pixels: [156, 104, 469, 521] clipped to the 640x480 image.
    assert_eq!(boston.bbox, Some([156.0, 104.0, 469.0, 480.0]));
    let jolie = &answer.entities[1];
    assert_eq!((jolie.start, jolie.end), (Some(0), Some(2)));
    // [625, 625, 750, 750] lies wholly below the image: no area left.
    assert_eq!(jolie.bbox, None);
    let kinds: Vec<&str> = answer.issues.iter().map(|i| i.kind()).collect();
    assert_eq!(
        kinds,
        [
            "box_outside",
            "entity_not_found",
            "box_outside",
            "box_empty"
        ]
    );
    let why = answer.span_protocol().unwrap_err();
    assert!(why.contains("\"Boston Celtics\""), "{why}");
    let stats = annotator.stats();
    assert_eq!(stats.issues.get("box_outside"), Some(&2));
    assert_eq!(stats.issues.get("entity_not_found"), Some(&1));
    assert_eq!(stats.issues.get("box_empty"), Some(&1));
    assert_eq!(stats.tweets_ok, 1);
}

#[test]
fn mllm_bad_boxes_are_errors_naming_the_tweet_under_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, annotator) = mismatched(IssuePolicy::Error, dir.path());
    let err = annotator.annotate(&tweet(), &picture()).unwrap_err();
    assert_eq!(err.kind(), "box_outside");
    let message = err.to_string();
    assert!(
        message.starts_with("tweet O_42: entity \"Boston Celtics\": box [156.0, 104.0, 469.0, 521.0] reaches outside the 640x480 image\n"),
        "{message}"
    );
    assert!(message.contains("hint: check box_convention"), "{message}");
    assert_eq!(annotator.stats().errors.get("box_outside"), Some(&1));
}

#[test]
fn mllm_type_outside_the_labels_is_counted() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let settings = MllmSettings {
        labels: vec!["PER".to_string(), "LOC".to_string()],
        ..png_settings(BoxConvention::Pixel)
    };
    let annotator = MllmAnnotator::new(config(&server), settings, IssuePolicy::Warn, None).unwrap();
    let answer = annotator.annotate(&tweet(), &picture()).unwrap();
    assert_eq!(answer.entities[1].entity_type, "ORG", "kept as written");
    assert_eq!(
        annotator.stats().issues.get("type_outside_labels"),
        Some(&1)
    );
    let text = server.last_request().unwrap()["messages"][1]["content"][1]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("Its type is one of: PER, LOC."), "{text}");
}

#[test]
fn mllm_echoed_key_never_reaches_the_answer_or_cache() {
    let server = MockServer::start(Behaviour::EchoAuthorization).unwrap();
    let var = format!("RIVEG_TEST_MLLM_KEY_{}", std::process::id());
    let secret = "sk-mllm-echo-secret-9000";
    std::env::set_var(&var, secret);
    let dir = tempfile::tempdir().unwrap();
    let annotator = MllmAnnotator::new(
        LlmConfig {
            api_key_env: Some(var),
            ..config(&server)
        },
        png_settings(BoxConvention::Pixel),
        IssuePolicy::Error,
        Some(dir.path()),
    )
    .unwrap();
    let answer = annotator.annotate(&tweet(), &picture()).unwrap();
    assert_eq!(
        answer.entities.len(),
        3,
        "trailing text after the list is ignored"
    );
    assert!(answer
        .reply
        .ends_with("(sent with Authorization: Bearer <redacted>)"));
    let mut cached = String::new();
    for shard in std::fs::read_dir(dir.path()).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            cached.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
        }
    }
    assert!(
        cached.contains("<redacted>") && !cached.contains(secret),
        "{cached}"
    );
}

#[test]
fn mllm_malformed_reply_is_a_typed_error_naming_the_tweet() {
    let server = MockServer::start(Behaviour::Content(
        "I can see a woman in front of a building, but I am not sure who she is.".to_string(),
    ))
    .unwrap();
    let annotator = MllmAnnotator::new(
        config(&server),
        MllmSettings::default(),
        IssuePolicy::Warn,
        None,
    )
    .unwrap();
    let err = annotator.annotate(&tweet(), &picture()).unwrap_err();
    assert!(matches!(err, MllmError::MalformedReply { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("tweet O_42: the MLLM's reply is not a JSON entity list: no JSON list of entities found"),
        "{message}"
    );
    assert!(message.contains("\"I can see a woman"), "{message}");
    assert_eq!(annotator.stats().errors.get("malformed_reply"), Some(&1));
    // An item without a type is malformed too, and says which item.
    server.set_behaviour(Behaviour::Content(
        "```json\n[{\"entity\": \"UN\", \"type\": \"ORG\", \"box\": null}, {\"entity\": \"Angelina Jolie\"}]\n```".to_string(),
    ));
    let message = annotator
        .annotate(&tweet(), &picture())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("item 1 has no \"type\" field"),
        "{message}"
    );
}

#[test]
fn mllm_swapped_and_negative_boxes_are_repaired_under_skip() {
    let server = MockServer::start(Behaviour::Content(
        "[{\"entity\": \"Angelina Jolie\", \"type\": \"PER\", \"box\": [300, 250, 100, 50]},\
          {\"entity\": \"un\", \"type\": \"org\", \"box\": [-20, 300, 480, 360]}]"
            .to_string(),
    ))
    .unwrap();
    let annotator = MllmAnnotator::new(
        config(&server),
        png_settings(BoxConvention::Pixel),
        IssuePolicy::Warn,
        None,
    )
    .unwrap();
    let answer = annotator.annotate(&tweet(), &picture()).unwrap();
    assert_eq!(answer.entities[0].bbox, Some(BIG));
    let un = &answer.entities[1];
    assert_eq!(un.bbox, Some([0.0, 300.0, 480.0, 360.0]));
    assert_eq!(un.entity_type, "ORG", "type matched ignoring case");
    assert_eq!(
        (un.start, un.end),
        (Some(4), Some(5)),
        "found ignoring case"
    );
    let kinds: Vec<&str> = answer.issues.iter().map(|i| i.kind()).collect();
    assert_eq!(kinds, ["box_swapped", "box_negative"]);
    assert_eq!(answer.span_protocol(), Ok(()));
}

#[test]
fn mllm_annotate_all_keeps_order_and_stops_on_error_when_asked() {
    let server = MockServer::start(Behaviour::Echo).unwrap();
    let tweets: Vec<Tweet> = ["Paris", "Rome", "missing", "Berlin Wall", "UN"]
        .iter()
        .enumerate()
        .map(|(i, text)| Tweet {
            id: format!("T_{i}"),
            tokens: Some(text.split(' ').map(str::to_string).collect()),
            ..Tweet::default()
        })
        .collect();
    let load = |t: &Tweet| {
        if t.id == "T_2" {
            Err("no such file: T_2.jpg".to_string())
        } else {
            Ok(picture())
        }
    };
    let annotator = MllmAnnotator::new(
        LlmConfig {
            max_concurrency: 3,
            ..config(&server)
        },
        png_settings(BoxConvention::Pixel),
        IssuePolicy::Error,
        None,
    )
    .unwrap();
    let all = annotator.annotate_all(&tweets, load, false);
    let firsts: Vec<String> = all
        .iter()
        .map(|a| match a.as_ref().unwrap() {
            Ok(answer) => format!("{}:{}", answer.tweet_id, answer.entities[0].text),
            Err(e) => e.kind().to_string(),
        })
        .collect();
    assert_eq!(
        firsts,
        [
            "T_0:Paris",
            "T_1:Rome",
            "image",
            "T_3:Berlin Wall",
            "T_4:UN"
        ]
    );
    let err = all[2].as_ref().unwrap().as_ref().unwrap_err().to_string();
    assert!(
        err.starts_with("tweet T_2: cannot load or encode its image"),
        "{err}"
    );
    assert_eq!(annotator.stats().errors.get("image"), Some(&1));
    assert_eq!(server.requests(), 4);

    // One worker, stop on error: nothing starts after T_2.
    let sequential = MllmAnnotator::new(
        LlmConfig {
            max_concurrency: 1,
            ..config(&server)
        },
        png_settings(BoxConvention::Pixel),
        IssuePolicy::Error,
        None,
    )
    .unwrap();
    let stopped = sequential.annotate_all(&tweets, load, true);
    let started: Vec<bool> = stopped.iter().map(Option::is_some).collect();
    assert_eq!(started, [true, true, true, false, false]);
}
