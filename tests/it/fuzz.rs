//! Fuzzing every reader and the COCO RLE codec with proptest (issue 12): readers must return a
//! `DataError`, never panic, on any input; what they accept must survive a canonical round trip;
//! the RLE codec must round-trip exactly and reject garbage with a `MaskError`.
//!
//! Inputs are not uniform noise (which every parser rejects on its first byte) but soups of the
//! formats' own pieces (`IMGID:`, tabs, `B-PER`, `###`, `&[`, JSON keys, numbers at the edges),
//! and structured JSON values mutated by truncation, so the deep paths get exercised. Every
//! target runs [`CASES`] cases from a fixed seed (reproducible, no persistence files); the whole
//! module takes a few seconds in a debug build.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Map, Value};

use riveg_bench::data::jsonl::{parse_jsonl, to_jsonl};
use riveg_bench::data::readers::{adaseq, conll, fmnerg, gmner, riveg, smner};
use riveg_bench::data::tags::Scheme;
use riveg_bench::data::{Dataset, Tweet};
use riveg_bench::geometry::{
    counts_from_string, counts_to_string, polygon_to_rle, CocoRle, Rle, RleCounts,
};

/// Cases per target.
const CASES: u32 = 256;

/// Runs `test` on `CASES` values of `strategy` from a seed derived from the target's name.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let config = Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("fuzz target {name}: {e}");
    }
}

/// Text made of `pieces` (chosen with repetition), sometimes with a stray byte of noise.
fn soup(pieces: &'static [&'static str], max_pieces: usize) -> impl Strategy<Value = String> {
    let pieces_text = proptest::collection::vec(proptest::sample::select(pieces), 0..max_pieces)
        .prop_map(|v| v.concat());
    prop_oneof![
        8 => pieces_text.clone(),
        1 => (pieces_text, any::<char>(), any::<prop::sample::Index>()).prop_map(|(s, c, at)| {
            let mut chars: Vec<char> = s.chars().collect();
            let i = at.index(chars.len() + 1);
            chars.insert(i, c);
            chars.into_iter().collect()
        }),
        1 => ".{0,40}",
    ]
}

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "-1",
    "0.5",
    "-0.3",
    "480",
    "65535",
    "1e7",
    "-2e7",
    "4294967296",
    "1e308",
    "nan",
    "inf",
    "x",
];

const COLUMN_PIECES: &[&str] = &[
    "IMGID:1\n",
    "IMGID:2\n",
    "IMGID:\n",
    "IMGID:O_1\n",
    "\n",
    "\r\n",
    "\t",
    "Jolie",
    "Paris",
    "<EOS>",
    "B-PER",
    "I-PER",
    "E-PER",
    "S-LOC",
    "B-LOC",
    "I-LOC",
    "O",
    "B-",
    "X-PER",
    "B-actor",
    "I-actor",
    "B-city",
    "S-city",
    "\u{feff}",
    " ",
];

const RIVEG_PIECES: &[&str] = &[
    "Imageid:",
    "O_1.jpg",
    "1.jpg",
    "#aa",
    "#bb",
    "###",
    "Jolie(PER)",
    "Paris(LOC)",
    "(",
    ")",
    "-x",
    "0",
    "2",
    "&",
    "[",
    "]",
    ", ",
    "1",
    "2.5",
    "-1",
    "nan",
    "9",
    "\n",
    "\r\n",
    " ",
];

const XML_PIECES: &[&str] = &[
    "<annotation>",
    "</annotation>",
    "<object>",
    "</object>",
    "<name>",
    "</name>",
    "Jolie",
    "Paris",
    "<bndbox>",
    "</bndbox>",
    "<xmin>",
    "</xmin>",
    "<ymin>",
    "</ymin>",
    "<xmax>",
    "</xmax>",
    "<ymax>",
    "</ymax>",
    "<size>",
    "</size>",
    "<width>",
    "</width>",
    "<height>",
    "</height>",
    "1",
    "5",
    "-3",
    "2.5",
    "x",
    "\n",
    "&amp;",
    "<",
    ">",
];

const JSON_KEYS: &[&str] = &[
    "id",
    "image",
    "tokens",
    "entities",
    "extra",
    "text",
    "type",
    "fine_type",
    "start",
    "end",
    "groundable",
    "boxes",
    "masks",
    "expansion",
    "uid",
    "score",
    "size",
    "counts",
    "header",
    "side",
    "source",
    "entites",
    "shapes",
    "label",
    "points",
    "shape_type",
    "group_id",
    "imageHeight",
    "imageWidth",
    "images",
    "annotations",
    "categories",
    "image_id",
    "category_id",
    "segmentation",
    "iscrowd",
    "file_name",
    "height",
    "width",
    "name",
    "uniq_id",
    "box",
];

const JSON_STRINGS: &[&str] = &[
    "O_1",
    "O_2",
    "Jolie",
    "Paris",
    "PER",
    "LOC",
    "gold",
    "predictions",
    "polygon",
    "rectangle",
    "circle",
    "O_1.jpg",
    "6230009",
    "V<R1>0jS1",
    "\u{7f}",
    "",
    "01",
    "O_1.jpg#aa",
];

/// A JSON value built from the formats' own keys and values, up to a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..600).prop_map(Value::from),
        proptest::sample::select(&[0.5f64, -0.3, 1e7, -1e9, 65535.0, 4294967296.0, 1e300][..])
            .prop_map(Value::from),
        proptest::sample::select(JSON_STRINGS).prop_map(|s| Value::from(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(JSON_KEYS), inner), 0..7).prop_map(
                |kv| {
                    Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

/// JSON text: a generated value, sometimes cut short (truncated files are common in practice).
fn json_text() -> impl Strategy<Value = String> {
    (json_value(), any::<prop::sample::Index>(), 0u8..4).prop_map(|(v, at, mode)| {
        let s = v.to_string();
        if mode == 0 {
            let cut = at.index(s.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0);
            s[..cut].to_string()
        } else {
            s
        }
    })
}

/// Several JSON lines.
fn jsonl_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(json_text(), 0..5).prop_map(|lines| lines.join("\n"))
}

/// Pick one of `items`.
fn one(items: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    proptest::sample::select(items)
}

/// Whole lines of a column file (right column counts, mostly valid tags), mixed with pieces, so
/// most files get past the line checks and into tag decoding and id handling.
fn column_file(columns: usize) -> impl Strategy<Value = String> {
    let tags = &[
        "O", "O", "B-PER", "I-PER", "E-PER", "S-LOC", "B-LOC", "I-LOC", "B-actor", "I-actor",
        "B-city", "E-city", "I-", "X-PER", "B-PER ",
    ][..];
    let token_line = (
        one(&["Jolie", "Paris", "the", "<EOS>", "x", "", "ü"][..]),
        proptest::collection::vec(proptest::sample::select(tags), columns..=columns),
    )
        .prop_map(|(token, tags)| format!("{token}\t{}\n", tags.join("\t")));
    let sentence = (
        prop_oneof![
            8 => (1u32..5).prop_map(|i| format!("IMGID:{i}\n")),
            1 => Just(String::new()),
        ],
        proptest::collection::vec(token_line.clone(), 1..7),
    )
        .prop_map(|(id, tokens)| format!("{id}{}\n", tokens.concat()));
    let line = prop_oneof![
        6 => token_line,
        2 => one(&["IMGID:1\n", "IMGID:2\n", "IMGID:O_1\n", "\n", "\n"][..]).prop_map(str::to_string),
        1 => soup(COLUMN_PIECES, 4),
    ];
    prop_oneof![
        3 => proptest::collection::vec(sentence, 0..5).prop_map(|l| l.concat()),
        1 => proptest::collection::vec(line, 0..24).prop_map(|l| l.concat()),
    ]
}

/// RiVEG labels (`labels = true`) or VE lines: right field counts, mostly valid fields.
fn riveg_file(labels: bool) -> impl Strategy<Value = String> {
    let number = one(NUMBERS);
    let a_box = prop_oneof![
        4 => (0u32..50, 0u32..50, 0u32..20, 0u32..20)
            .prop_map(|(x, y, w, h)| format!("&[{x}, {y}, {}, {}]", x + w, y + h)),
        1 => Just("&[0, 0, 0, 0]".to_string()),
        1 => proptest::collection::vec(number, 3..=5).prop_map(|n| format!("&[{}]", n.join(", "))),
    ];
    let boxes = proptest::collection::vec(a_box, 1..3).prop_map(|b| b.concat());
    let line = (
        one(&["O_1.jpg", "1.jpg", "O_2.jpg", "O_1"][..]),
        one(&["#aa", "#bb"][..]),
        one(&[
            "Jolie(PER)",
            "Paris(LOC)",
            "Jolie(PER)",
            "Paris(LOC)",
            "Jolie",
            "(PER)",
            "New York(LOC) ",
        ][..]),
        one(&["0", "2", "0", "2", "1", "x"][..]),
        boxes,
    )
        .prop_map(move |(img, hash, ent, flag, boxes)| {
            if labels {
                format!("{img}###{ent}###a description###{flag}###{boxes}\n")
            } else {
                format!("Imageid:{img}{hash}###{ent}###{ent}-expansion###{flag}\n")
            }
        });
    let line = prop_oneof![8 => line, 1 => soup(RIVEG_PIECES, 8)];
    proptest::collection::vec(line, 0..8).prop_map(|l| l.concat())
}

/// A Pascal VOC file with plausible objects.
fn voc_file() -> impl Strategy<Value = String> {
    let coordinate = one(&["0", "1", "5", "2.5", "-3", "x", ""][..]);
    let corners = prop_oneof![
        4 => Just(vec!["1", "2", "5", "7"]),
        1 => proptest::collection::vec(coordinate, 4..=4),
    ];
    let object = (
        one(&["Jolie", "Paris", "Nobody"][..]),
        corners,
        prop_oneof![6 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(name, c, bndbox)| {
            let bnd = format!(
                "<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>",
                c[0], c[1], c[2], c[3]
            );
            format!(
                "<object><name>{name}</name>{}</object>",
                if bndbox { bnd.as_str() } else { "" }
            )
        });
    prop_oneof![
        6 => proptest::collection::vec(object, 0..4).prop_map(|o| format!(
            "<annotation><size><width>9</width><height>9</height></size>{}</annotation>",
            o.concat()
        )),
        1 => soup(XML_PIECES, 40),
    ]
}

fn coordinates() -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::vec(
        prop_oneof![
            30 => (-3.0f64..12.0).prop_map(Value::from),
            1 => proptest::sample::select(&[1e7, -2e8, 1e300, 0.0][..]).prop_map(Value::from),
            1 => Just(Value::from("x")),
        ],
        6..12,
    )
    .prop_flat_map(|xy| {
        // Sometimes too short for a polygon (fewer than 3 points).
        let n = xy.len();
        (Just(xy), prop_oneof![6 => Just(n), 1 => 0..n])
    })
    .prop_map(|(mut xy, keep)| {
        xy.truncate(keep);
        xy
    })
}

/// A LabelMe file with plausible shapes.
fn labelme_file() -> impl Strategy<Value = String> {
    let shape = (
        one(&["Jolie", "Paris", "Nobody"][..]),
        coordinates(),
        one(&["polygon", "rectangle", "circle", ""][..]),
        prop_oneof![Just(Value::Null), (0i64..2).prop_map(Value::from)],
    )
        .prop_map(|(label, xy, shape_type, group)| {
            let points: Vec<Value> = xy.chunks(2).map(|c| Value::from(c.to_vec())).collect();
            let mut shape =
                serde_json::json!({"label": label, "points": points, "group_id": group});
            if !shape_type.is_empty() {
                shape["shape_type"] = Value::from(shape_type);
            }
            shape
        });
    let file =
        (0u32..14, 0u32..14, proptest::collection::vec(shape, 0..4)).prop_map(|(h, w, shapes)| {
            serde_json::json!({"imageHeight": h, "imageWidth": w, "shapes": shapes}).to_string()
        });
    prop_oneof![6 => file, 1 => json_text()]
}

/// A COCO file with plausible images, categories and annotations (polygons or RLE).
fn coco_file() -> impl Strategy<Value = String> {
    let segmentation = prop_oneof![
        3 => proptest::collection::vec(coordinates().prop_map(Value::from), 0..3).prop_map(Value::from),
        // A real mask of image 2 (5x6), compressed: these must attach.
        3 => proptest::collection::vec(0u8..2, 30..=30).prop_map(|bits| {
            serde_json::to_value(Rle::encode_column_major(&bits, 5, 6).unwrap().to_coco()).unwrap()
        }),
        1 => (
            0u32..14,
            0u32..14,
            prop_oneof!["[0-o]{0,8}", Just("6230009".to_string())]
        )
            .prop_map(|(h, w, counts)| serde_json::json!({"size": [h, w], "counts": counts})),
        1 => proptest::collection::vec(0u64..50, 0..5)
            .prop_map(|runs| serde_json::json!({"size": [5, 6], "counts": runs})),
        1 => json_value(),
    ];
    let annotation = (0i64..4, prop_oneof![4 => 1i64..3, 1 => 0i64..5], segmentation, one(&["", "Jolie", "Paris"][..])).prop_map(
        |(id, image, seg, entity)| {
            let mut a = serde_json::json!({"id": id, "image_id": image, "category_id": 1, "segmentation": seg});
            if !entity.is_empty() {
                a["entity"] = Value::from(entity);
            }
            a
        },
    );
    let file = (
        0u32..14,
        0u32..14,
        proptest::collection::vec(annotation, 0..4),
    )
        .prop_map(|(h, w, annotations)| {
            serde_json::json!({
                "images": [
                    {"id": 1, "file_name": "O_1.jpg", "height": h, "width": w},
                    {"id": 2, "file_name": "O_1.png", "height": 5, "width": 6},
                ],
                "categories": [{"id": 1, "name": "Paris"}],
                "annotations": annotations,
            })
            .to_string()
        });
    prop_oneof![6 => file, 1 => json_text()]
}

/// Canonical JSONL with plausible tweets (mostly the right keys, sometimes a typo or a header).
fn canonical_jsonl() -> impl Strategy<Value = String> {
    let bbox = prop_oneof![
        8 => (0.0f64..20.0, 0.0f64..20.0, 0.0f64..9.0, 0.0f64..9.0)
            .prop_map(|(x, y, w, h)| Value::from(vec![x, y, x + w, y + h])),
        1 => proptest::collection::vec((-1.0f64..20.0).prop_map(Value::from), 3..=5)
            .prop_map(Value::from),
    ];
    let mask = prop_oneof![
        6 => Just(serde_json::json!({"size": [5, 6], "counts": "6230009"})),
        1 => (0u32..6, 0u32..6, "[0-o]{0,4}")
            .prop_map(|(h, w, c)| serde_json::json!({"size": [h, w], "counts": c})),
    ];
    let entity = (
        one(&["Jolie", "Paris"][..]),
        prop_oneof![8 => Just(None), 1 => any::<bool>().prop_map(Some)],
        proptest::collection::vec(bbox, 0..3),
        prop_oneof![4 => Just(vec![]), 1 => proptest::collection::vec(mask, 1..2)],
        proptest::option::of((0usize..3, 1usize..4)),
        one(&["", "", "", "", "", "", "boxs", "extra", "fine_type"][..]),
    )
        .prop_map(|(text, groundable, boxes, masks, span, key)| {
            // Mostly consistent with the boxes, sometimes not (an error the reader must name).
            let groundable = groundable.unwrap_or(!boxes.is_empty() || !masks.is_empty());
            let mut e = serde_json::json!({"text": text, "type": "PER", "groundable": groundable, "boxes": boxes});
            if !masks.is_empty() {
                e["masks"] = Value::from(masks);
            }
            if let Some((start, end)) = span {
                e["start"] = Value::from(start);
                e["end"] = Value::from(end);
            }
            if !key.is_empty() {
                e[key] = if key == "extra" { serde_json::json!({"k": 1}) } else { Value::from("v") };
            }
            e
        });
    let tweet = (
        one(&["O_1", "O_2", "O_3"][..]),
        proptest::option::of(proptest::collection::vec(
            one(&["Jolie", "Paris", "x"][..]),
            0..4,
        )),
        proptest::collection::vec(entity, 0..3),
    )
        .prop_map(|(id, tokens, entities)| {
            let mut t = serde_json::json!({"id": id, "entities": entities});
            if let Some(tokens) = tokens {
                t["tokens"] = Value::from(tokens);
            }
            t.to_string()
        });
    let line = prop_oneof![
        8 => tweet,
        1 => one(&[
            "{\"header\":{\"side\":\"gold\"}}",
            "{\"header\":{\"side\":\"predictions\",\"source\":\"x\"}}",
            "",
        ][..]).prop_map(str::to_string),
        1 => json_text(),
    ];
    proptest::collection::vec(line, 0..5).prop_map(|l| l.join("\n"))
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// How many cases a target's reader accepted, so a generator that stopped reaching the deep
/// paths (every case rejected up front) fails the test instead of passing vacuously.
#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    with_entities: AtomicUsize,
    grounded: AtomicUsize,
}

impl Tally {
    /// Counts an accepted dataset and checks that it round-trips.
    fn accept(&self, dataset: &Dataset) -> Result<(), TestCaseError> {
        let entities = dataset.tweets.iter().flat_map(|t| &t.entities);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if dataset.entity_count() > 0 {
            self.with_entities.fetch_add(1, Ordering::Relaxed);
        }
        if entities
            .clone()
            .any(|e| !e.boxes.is_empty() || !e.masks.is_empty())
        {
            self.grounded.fetch_add(1, Ordering::Relaxed);
        }
        round_trips(dataset)
    }

    /// Requires at least `min_entities` accepted cases with entities and `min_grounded` with a
    /// box or mask (the counts are deterministic under the fixed seeds; the minimums leave room).
    fn require(&self, name: &str, min_entities: usize, min_grounded: usize) {
        let (a, e, g) = (
            self.accepted.load(Ordering::Relaxed),
            self.with_entities.load(Ordering::Relaxed),
            self.grounded.load(Ordering::Relaxed),
        );
        eprintln!("fuzz {name}: {a} accepted, {e} with entities, {g} grounded of {CASES}");
        assert!(
            e >= min_entities && g >= min_grounded,
            "fuzz target {name} reaches too little: {a} accepted, {e} with entities (need {min_entities}), {g} grounded (need {min_grounded}) of {CASES}"
        );
    }
}

/// The accepted-input property shared by all readers: the dataset survives canonical JSONL.
fn round_trips(dataset: &Dataset) -> Result<(), TestCaseError> {
    let text = to_jsonl(dataset);
    match parse_jsonl(&text, Path::new("round-trip.jsonl")) {
        Ok(back) => prop_assert_eq!(&back, dataset),
        Err(e) => prop_assert!(false, "a reader's output does not read back: {e}\n{text}"),
    }
    Ok(())
}

#[test]
fn column_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let tally_conll = Tally::default();
    fuzz(
        "conll",
        prop_oneof![column_file(1), column_file(2), soup(COLUMN_PIECES, 40)],
        |text| {
            let p = d.join("pred.txt");
            write(&p, &text);
            for scheme in [Scheme::Auto, Scheme::Bio, Scheme::Bioes] {
                if let Ok(out) = conll::read_conll(&p, scheme) {
                    tally_conll.accept(&out.dataset)?;
                }
            }
            Ok(())
        },
    );
    tally_conll.require("conll", 25, 0);
    let ids = Dataset::new(vec![
        Tweet {
            id: "O_1".into(),
            ..Default::default()
        },
        Tweet {
            id: "O_2".into(),
            ..Default::default()
        },
    ]);
    let tally_adaseq = Tally::default();
    fuzz(
        "adaseq",
        prop_oneof![column_file(2), soup(COLUMN_PIECES, 40)],
        |text| {
            let p = d.join("adaseq.txt");
            write(&p, &text);
            for ids_from in [None, Some(&ids)] {
                if let Ok(out) = adaseq::read_adaseq(&p, ids_from) {
                    tally_adaseq.accept(&out.pred)?;
                    tally_adaseq.accept(&out.gold)?;
                }
            }
            Ok(())
        },
    );
    tally_adaseq.require("adaseq", 20, 0);
}

#[test]
fn gmner_and_fmnerg_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    fuzz("voc xml", voc_file(), |text| {
        let _ = gmner::parse_voc(&text, Path::new("1.xml"));
        Ok(())
    });
    let tally_gmner = Tally::default();
    fuzz(
        "gmner txt+xml",
        (column_file(1), voc_file()),
        |(txt, xml)| {
            write(&d.join("gmner/txt/test.txt"), &txt);
            write(&d.join("gmner/xml/1.xml"), &xml);
            write(&d.join("gmner/xml/2.xml"), &xml);
            if let Ok(out) = gmner::read_gmner(&d.join("gmner"), "test") {
                tally_gmner.accept(&out.dataset)?;
            }
            Ok(())
        },
    );
    tally_gmner.require("gmner txt+xml", 4, 1);
    let tally_fmnerg = Tally::default();
    fuzz("fmnerg", column_file(2), |txt| {
        write(&d.join("fmnerg/txt_fine/test.txt"), &txt);
        let dataset = d.join("fmnerg");
        for boxes in [None, Some(d.join("gmner"))] {
            if let Ok(out) = fmnerg::read_fmnerg(&dataset, "test", boxes.as_deref()) {
                tally_fmnerg.accept(&out.dataset)?;
            }
        }
        Ok(())
    });
    tally_fmnerg.require("fmnerg", 3, 0);
}

#[test]
fn riveg_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let tally_riveg_labels = Tally::default();
    fuzz("riveg labels", riveg_file(true), |text| {
        let p = d.join("labels.txt");
        write(&p, &text);
        if let Ok(out) = riveg::read_riveg_labels(&p) {
            tally_riveg_labels.accept(&out.dataset)?;
        }
        Ok(())
    });
    tally_riveg_labels.require("riveg labels", 12, 8);
    let rec_json = prop_oneof![
        1 => json_text(),
        // Mostly well-formed REC lists, so the VE join itself is exercised.
        4 => proptest::collection::vec(
            (
                proptest::sample::select(
                    &["O_1.jpg#aa", "O_1.jpg#bb", "O_2.jpg#aa", "1.jpg#aa", "O_2.jpg#bb", "x"][..]
                ),
                prop_oneof![
                    4 => (0u32..50, 0u32..50, 0u32..20, 0u32..20)
                        .prop_map(|(x, y, w, h)| format!("{x}, {y}, {}, {}", x + w, y + h)),
                    1 => proptest::collection::vec(proptest::sample::select(NUMBERS), 3..6)
                        .prop_map(|n| n.join(", ")),
                ],
            ),
            0..7
        )
        .prop_map(|entries| {
            let items: Vec<String> = entries
                .iter()
                .map(|(uid, b)| format!("{{\"uniq_id\": \"{uid}\", \"box\": [{b}]}}"))
                .collect();
            format!("[{}]", items.join(", "))
        }),
    ];
    let tally_riveg_ofa_rec = Tally::default();
    fuzz(
        "riveg ofa + rec",
        (riveg_file(false), rec_json),
        |(ve, rec)| {
            let (ve_path, rec_path) = (d.join("ve.txt"), d.join("rec.json"));
            write(&ve_path, &ve);
            write(&rec_path, &rec);
            for boxes in [None, Some(rec_path.as_path())] {
                if let Ok(out) = riveg::read_riveg_ofa(&ve_path, boxes) {
                    tally_riveg_ofa_rec.accept(&out.dataset)?;
                }
            }
            let _ = riveg::read_rec_boxes(&rec_path);
            Ok(())
        },
    );
    tally_riveg_ofa_rec.require("riveg ofa + rec", 20, 2);
}

fn smner_text() -> Dataset {
    let mut jolie = riveg_bench::data::Entity::new("Jolie", "PER");
    jolie.groundable = false;
    Dataset::new(vec![
        Tweet {
            id: "O_1".into(),
            image: Some("O_1.jpg".into()),
            entities: vec![jolie, riveg_bench::data::Entity::new("Paris", "LOC")],
            ..Default::default()
        },
        Tweet {
            id: "O_2".into(),
            ..Default::default()
        },
    ])
}

#[test]
fn smner_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let text = smner_text();
    let tally_smner_labelme = Tally::default();
    fuzz("smner labelme", labelme_file(), |json| {
        if let Ok(records) = smner::parse_labelme(&json, "O_1", Path::new("O_1.json")) {
            tally_smner_labelme.accept(&smner::attach_masks(&text, records).dataset)?;
        }
        Ok(())
    });
    tally_smner_labelme.require("smner labelme", 25, 4);
    let tally_smner_labelme_dir = Tally::default();
    fuzz("smner labelme dir", labelme_file(), |json| {
        write(&d.join("labelme/O_1.json"), &json);
        if let Ok(read) = smner::read_labelme_dir(&d.join("labelme"), &text) {
            tally_smner_labelme_dir.accept(&read.dataset)?;
        }
        Ok(())
    });
    tally_smner_labelme_dir.require("smner labelme dir", 20, 1);
    let tally_smner_coco = Tally::default();
    fuzz("smner coco", coco_file(), |json| {
        if let Ok(records) = smner::parse_coco(&json, Path::new("coco.json")) {
            tally_smner_coco.accept(&smner::attach_masks(&text, records).dataset)?;
        }
        let p = d.join("coco.json");
        write(&p, &json);
        let _ = smner::read_coco_json(&p, &text);
        Ok(())
    });
    tally_smner_coco.require("smner coco", 30, 4);
}

#[test]
fn canonical_jsonl_never_panics_and_round_trips() {
    let tally_jsonl = Tally::default();
    fuzz(
        "jsonl",
        prop_oneof![4 => canonical_jsonl(), 1 => jsonl_text()],
        |text| {
            if let Ok(dataset) = parse_jsonl(&text, Path::new("f.jsonl")) {
                tally_jsonl.accept(&dataset)?;
            }
            Ok(())
        },
    );
    tally_jsonl.require("jsonl", 7, 6);
}

/// A random mask of up to 12x12 pixels: blocks of ones and zeros, so runs vary in length.
fn mask() -> impl Strategy<Value = (u32, u32, Vec<u8>)> {
    (0u32..13, 0u32..13).prop_flat_map(|(h, w)| {
        let n = (h * w) as usize;
        (
            Just(h),
            Just(w),
            proptest::collection::vec(prop_oneof![3 => Just(0u8), 2 => Just(1u8)], n..=n),
        )
    })
}

#[test]
fn rle_codec_round_trips_and_rejects_garbage() {
    fuzz("rle encode/decode", mask(), |(h, w, bits)| {
        let rle = Rle::encode_column_major(&bits, h, w).unwrap();
        prop_assert_eq!(rle.decode_column_major(), bits.clone());
        prop_assert_eq!(rle.area(), bits.iter().filter(|&&b| b == 1).count() as u64);
        let text = rle.to_compressed_string();
        prop_assert_eq!(counts_from_string(&text).unwrap(), rle.counts().to_vec());
        let coco = rle.to_coco();
        prop_assert_eq!(coco.to_rle().unwrap(), rle.clone());
        prop_assert_eq!(rle.to_coco_runs().to_rle().unwrap(), rle.clone());
        let row_major = rle.decode_row_major();
        prop_assert_eq!(Rle::encode_row_major(&row_major, h, w).unwrap(), rle);
        Ok(())
    });
    fuzz(
        "rle counts strings",
        proptest::collection::vec(any::<u32>(), 0..8),
        |counts| {
            prop_assert_eq!(
                counts_from_string(&counts_to_string(&counts)).unwrap(),
                counts
            );
            Ok(())
        },
    );
    fuzz(
        "rle garbage",
        (
            prop_oneof!["[0-o]{0,12}", ".{0,12}"],
            proptest::collection::vec(any::<u64>(), 0..6),
            0u32..70000,
            0u32..70000,
        ),
        |(text, runs, h, w)| {
            let _ = counts_from_string(&text);
            for counts in [
                RleCounts::Compressed(text.clone()),
                RleCounts::Runs(runs.clone()),
            ] {
                let coco = CocoRle {
                    size: [h, w],
                    counts,
                };
                // A mask that decodes must cover every pixel exactly once.
                if let Ok(rle) = coco.to_rle() {
                    let sum: u64 = rle.counts().iter().map(|&c| u64::from(c)).sum();
                    prop_assert_eq!(sum, u64::from(h) * u64::from(w));
                }
            }
            let counts: Vec<u32> = runs.iter().map(|&r| r as u32).collect();
            let _ = Rle::from_counts(h % 64, w % 64, counts);
            Ok(())
        },
    );
    fuzz(
        "polygons",
        (
            proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        6 => -5.0f64..40.0,
                        1 => proptest::sample::select(&[f64::NAN, f64::INFINITY, -1e7, 1e7, 2e7, -0.0][..]),
                    ],
                    0..14,
                ),
                0..3,
            ),
            0u32..48,
            0u32..48,
        ),
        |(polys, h, w)| {
            if let Ok(rle) = polygon_to_rle(&polys, h, w) {
                let sum: u64 = rle.counts().iter().map(|&c| u64::from(c)).sum();
                prop_assert_eq!(sum, u64::from(h) * u64::from(w));
            }
            Ok(())
        },
    );
}

/// A sanity check of the harness itself: a target that panics is reported, not swallowed.
#[test]
#[should_panic(expected = "fuzz target self-check")]
fn fuzz_reports_a_panicking_target() {
    fuzz("self-check", 0u8..4, |v| {
        if v == 3 {
            panic!("boom");
        }
        Ok(())
    });
}
