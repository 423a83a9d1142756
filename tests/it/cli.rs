//! The binary's contract: exit codes, `eval --format json` keys, the bad-input table (every
//! malformed input is exit 2 with file, line, what and a hint), `run` on the default suite, and
//! `--shard` + `merge` equal to an unsharded run.

use std::path::{Path, PathBuf};

use crate::common::{bin, path_str, shared};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let o = bin().args(args).output().expect("run riveg-bench");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn eval_json_has_the_contract_keys() {
    let dir = tempfile::tempdir().unwrap();
    let gold = dir.path().join("gold.jsonl");
    let pred = dir.path().join("pred.jsonl");
    let labels = shared("riveg-release/GMNER_finall_label.txt");
    let ve = shared("riveg-release/OFAVE_to_OFAREC_augment.txt");
    assert_eq!(
        run(&[
            "import",
            "riveg-labels",
            path_str(&labels),
            "-o",
            path_str(&gold)
        ])
        .code,
        0
    );
    assert_eq!(
        run(&["import", "riveg-ofa", path_str(&ve), "-o", path_str(&pred)]).code,
        0
    );
    let out = run(&[
        "eval",
        "--gold",
        path_str(&gold),
        "--pred",
        path_str(&pred),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["protocol"], "riveg");
    for task in ["mner", "eeg", "gmner"] {
        for key in ["precision", "recall", "f1", "correct", "predicted", "gold"] {
            assert!(v[task][key].is_number(), "{task}.{key}");
        }
    }
    assert_eq!(v["mner"]["correct"], 2187);
    assert!(v["per_type"]["PER"]["mner"]["f1"].is_number());
    assert!(v["errors"]["wrong_groundability"].is_number());
    // Span protocol on files without offsets: exit 2 with the reason.
    let out = run(&[
        "eval",
        "--gold",
        path_str(&gold),
        "--pred",
        path_str(&pred),
        "--protocol",
        "span",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("token offsets"), "{}", out.stderr);
}

#[test]
fn eval_human_prints_percentages() {
    let dir = tempfile::tempdir().unwrap();
    let gold = dir.path().join("g.jsonl");
    let pred = dir.path().join("p.jsonl");
    let v2 = shared("twitter-gmner/v2.0");
    let v1 = shared("twitter-gmner/v1/txt/test.txt");
    assert_eq!(
        run(&[
            "import",
            "gmner",
            "--dataset",
            path_str(&v2),
            "--split",
            "test",
            "-o",
            path_str(&gold)
        ])
        .code,
        0
    );
    assert_eq!(
        run(&["import", "conll", path_str(&v1), "-o", path_str(&pred)]).code,
        0
    );
    let out = run(&[
        "eval",
        "--gold",
        path_str(&gold),
        "--pred",
        path_str(&pred),
        "--protocol",
        "span",
        "--format",
        "human",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("protocol: span"));
    let mner = out.stdout.lines().find(|l| l.contains("│ MNER ")).unwrap();
    // Two decimals, percent.
    assert!(
        mner.split('│').nth(2).unwrap().trim().contains('.'),
        "{mner}"
    );
}

/// (name, file contents, command builder, expected stderr fragments)
#[test]
fn bad_input_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good_ve = write(d, "ve.txt", b"Imageid:O_2371.jpg#182b###Angelina Jolie(PER)###Angelina Jolie(PER)-A prominent actress.###2\n");
    let cases: Vec<(&str, &[u8], &str, Vec<&str>)> =
        vec![
        (
            "token line without a tab",
            b"IMGID:1\nGarfield B-LOC\n",
            "conll",
            vec![":2:", "has no tab", "hint"],
        ),
        (
            "invalid tag prefix",
            b"IMGID:1\nGarfield\tX-LOC\n",
            "conll",
            vec![":2:", "invalid tag \"X-LOC\"", "hint"],
        ),
        (
            "tag without dash",
            b"IMGID:1\nGarfield\tBPER\n",
            "conll",
            vec![":2:", "invalid tag \"BPER\""],
        ),
        (
            "invalid UTF-8",
            b"IMGID:1\nGar\xfffield\tO\n",
            "conll",
            vec![":2:", "invalid UTF-8", "hint"],
        ),
        (
            "labels with 4 fields",
            b"71044.jpg###Garfield Park(LOC)###0###&[0, 0, 0, 0]\n",
            "riveg-labels",
            vec![":1:", "4 `###`-separated fields, expected 5", "hint"],
        ),
        (
            "box with 3 numbers",
            b"1.jpg###A(PER)###d###2###&[1, 2, 3]\n",
            "riveg-labels",
            vec![":1:", "has 3 numbers, not 4"],
        ),
        (
            "box not finite",
            b"1.jpg###A(PER)###d###2###&[1, 2, inf, 4]\n",
            "riveg-labels",
            vec![":1:", "not a finite number"],
        ),
        (
            "box x2 < x1",
            b"ok.jpg###A(PER)###d###2###&[0, 0, 1, 1]\n2.jpg###A(PER)###d###2###&[9, 0, 1, 1]\n",
            "riveg-labels",
            vec![":2:", "x2 < x1"],
        ),
        (
            "entity without type",
            b"1.jpg###Angelina Jolie###d###0###&[0, 0, 0, 0]\n",
            "riveg-labels",
            vec![":1:", "is not `Entity(TYPE)`"],
        ),
        (
            "bad groundability flag",
            b"1.jpg###A(PER)###d###x###&[0, 0, 0, 0]\n",
            "riveg-labels",
            vec![":1:", "groundability flag \"x\""],
        ),
        (
            "ve line without Imageid",
            b"O_2371.jpg#182b###A(PER)###A(PER)-x###2\n",
            "riveg-ofa",
            vec![":1:", "does not start with `Imageid:`"],
        ),
        (
            "conll repeated IMGID",
            b"IMGID:1\nA\tO\n\nIMGID:1\nB\tO\n",
            "conll",
            vec![":4:", "IMGID:1 repeats the tweet of line 1", "hint"],
        ),
        (
            "ve repeated uid",
            b"Imageid:1.jpg#aa###A(PER)###A(PER)-x###0\nImageid:1.jpg#aa###B(PER)###B(PER)-x###0\n",
            "riveg-ofa",
            vec![":2:", "prediction uid 1.jpg#aa is already on line 1", "hint"],
        ),
    ];
    for (name, contents, format, expect) in cases {
        let f = write(d, "input.txt", contents);
        let out = run(&[
            "import",
            format,
            path_str(&f),
            "-o",
            path_str(&d.join("o.jsonl")),
        ]);
        assert_eq!(out.code, 2, "{name}: exit code; stderr: {}", out.stderr);
        assert!(
            out.stderr.contains(path_str(&f)),
            "{name}: names the file: {}",
            out.stderr
        );
        for e in expect {
            assert!(
                out.stderr.contains(e),
                "{name}: expected {e:?} in {}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
    }

    // A REC boxes file that misses a VE-positive uid.
    let rec = write(d, "rec.json", b"[]");
    let out = run(&[
        "import",
        "riveg-ofa",
        path_str(&good_ve),
        "--boxes",
        path_str(&rec),
        "-o",
        path_str(&d.join("o.jsonl")),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("ve.txt:1: VE-positive prediction O_2371.jpg#182b has no box"),
        "{}",
        out.stderr
    );
    // Invalid REC JSON.
    let rec = write(d, "rec.json", b"[{\"uniq_id\": \"x\", \"box\": [1, 2");
    let out = run(&[
        "import",
        "riveg-ofa",
        path_str(&good_ve),
        "--boxes",
        path_str(&rec),
        "-o",
        path_str(&d.join("o.jsonl")),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("rec.json:1: invalid REC boxes JSON"),
        "{}",
        out.stderr
    );

    // A missing file.
    let out = run(&[
        "import",
        "conll",
        "/nonexistent/pred.txt",
        "-o",
        path_str(&d.join("o.jsonl")),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("/nonexistent/pred.txt") && out.stderr.contains("hint"),
        "{}",
        out.stderr
    );

    // Truncated canonical JSONL given to eval.
    let gold = write(
        d,
        "gold.jsonl",
        b"{\"id\":\"1\",\"entities\":[]}\n{\"id\":\"2\",\"entit",
    );
    let out = run(&["eval", "--gold", path_str(&gold), "--pred", path_str(&gold)]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("gold.jsonl:2: not a canonical tweet record"),
        "{}",
        out.stderr
    );

    // Canonical JSONL rows (issue 12): each given to eval as --gold and as --pred.
    let jsonl_cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "tweet key typo",
            "{\"id\":\"1\",\"entites\":[]}\n",
            vec![":1:", "tweet \"1\" has the unknown key `entites`", "did you mean `entities`?"],
        ),
        (
            "entity key typo",
            "{\"id\":\"1\",\"entities\":[{\"text\":\"A\",\"type\":\"PER\",\"groundable\":true,\"boxs\":[[0,0,1,1]]}]}\n",
            vec![":1:", "entity #1 (\"A\") has the unknown key `boxs`", "did you mean `boxes`?"],
        ),
        (
            "repeated tweet id",
            "{\"id\":\"1\",\"entities\":[]}\n{\"id\":\"1\",\"entities\":[]}\n",
            vec![":2:", "tweet id \"1\" already has a record on line 1", "hint"],
        ),
        (
            "header after a record",
            "{\"id\":\"1\",\"entities\":[]}\n{\"header\":{\"side\":\"gold\"}}\n",
            vec![":2:", "a header record after the first record", "hint"],
        ),
        (
            "ungroundable with boxes",
            "{\"id\":\"1\",\"entities\":[{\"text\":\"A\",\"type\":\"PER\",\"groundable\":false,\"boxes\":[[0,0,1,1]]}]}\n",
            vec![":1:", "`groundable` is false but it has 1 box(es)", "hint"],
        ),
        (
            "gold groundable without a box",
            "{\"header\":{\"side\":\"gold\"}}\n{\"id\":\"1\",\"entities\":[{\"text\":\"A\",\"type\":\"PER\",\"groundable\":true,\"boxes\":[]}]}\n",
            vec![":2:", "gold entity is groundable but has no box or mask", "hint"],
        ),
    ];
    let fine = write(d, "fine.jsonl", b"{\"id\":\"1\",\"entities\":[]}\n");
    for (name, contents, expect) in jsonl_cases {
        let bad = write(d, "bad.jsonl", contents.as_bytes());
        for (g, p) in [(&bad, &fine), (&fine, &bad)] {
            let out = run(&["eval", "--gold", path_str(g), "--pred", path_str(p)]);
            assert_eq!(out.code, 2, "{name}: exit code; stderr: {}", out.stderr);
            assert!(
                out.stderr.contains(path_str(&bad)),
                "{name}: {}",
                out.stderr
            );
            for e in &expect {
                assert!(
                    out.stderr.contains(e),
                    "{name}: expected {e:?} in {}",
                    out.stderr
                );
            }
            assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        }
    }
    // REC rows: a missing uid names both files; one uid with two different boxes is an error.
    let rec = write(d, "rec.json", b"[]");
    let out = run(&[
        "import",
        "riveg-ofa",
        path_str(&good_ve),
        "--boxes",
        path_str(&rec),
        "-o",
        path_str(&d.join("o.jsonl")),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains(&format!("no box in the REC boxes file {}", path_str(&rec)))
            && out.stderr.contains(path_str(&good_ve)),
        "{}",
        out.stderr
    );
    let rec = write(
        d,
        "rec.json",
        b"[{\"uniq_id\": \"O_2371.jpg#182b\", \"box\": [1, 2, 3, 4]}, {\"uniq_id\": \"O_2371.jpg#182b\", \"box\": [1, 2, 3, 5]}]",
    );
    let out = run(&[
        "import",
        "riveg-ofa",
        path_str(&good_ve),
        "--boxes",
        path_str(&rec),
        "-o",
        path_str(&d.join("o.jsonl")),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(
            "rec.json: entries #1 and #2 both have uniq_id O_2371.jpg#182b but different boxes"
        ),
        "{}",
        out.stderr
    );
    // Swapped --gold/--pred (sides recorded by import): a one-line warning and a hint, exit 0.
    let labels = write(
        d,
        "labels.txt",
        b"O_2371.jpg###Angelina Jolie(PER)###d###2###&[1, 2, 3, 4]\n",
    );
    let (imported_gold, imported_pred) = (d.join("ig.jsonl"), d.join("ip.jsonl"));
    let import = |format: &str, input: &PathBuf, output: &PathBuf| {
        run(&["import", format, path_str(input), "-o", path_str(output)]).code
    };
    assert_eq!(import("riveg-labels", &labels, &imported_gold), 0);
    assert_eq!(import("riveg-ofa", &good_ve, &imported_pred), 0);
    let eval = |g: &PathBuf, p: &PathBuf| {
        run(&[
            "eval",
            "--gold",
            path_str(g),
            "--pred",
            path_str(p),
            "--format",
            "json",
        ])
    };
    let right = eval(&imported_gold, &imported_pred);
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert!(!right.stderr.contains("swapped"), "{}", right.stderr);
    let swapped = eval(&imported_pred, &imported_gold);
    assert_eq!(swapped.code, 0, "{}", swapped.stderr);
    assert!(
        swapped.stderr.contains(&format!(
            "warning: --gold and --pred look swapped: {} was imported as predictions",
            path_str(&imported_pred)
        )) && swapped
            .stderr
            .contains("  hint: `eval --gold` takes the reference"),
        "{}",
        swapped.stderr
    );

    // Issue 12 (trust): the stage cache commands and an interrupted run directory.
    let interrupted = d.join("interrupted-run");
    std::fs::create_dir_all(&interrupted).unwrap();
    write(&interrupted, "suite.toml", b"name = \"x\"\n");
    write(&interrupted, "gold.jsonl", b"");
    let no_cache = d.join("no-cache-here");
    let cache = d.join("cache");
    std::fs::create_dir_all(cache.join("tagger/ab")).unwrap();
    let trust_rows: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["cache", "stats", "--cache-dir", path_str(&no_cache)],
            vec!["no-cache-here: no stage cache here", "hint: runs create it"],
        ),
        (
            vec!["cache", "prune", "--cache-dir", path_str(&cache)],
            vec![
                "nothing to prune",
                "hint: give --older-than DAYS and/or --max-size",
            ],
        ),
        (
            vec![
                "cache",
                "prune",
                "--cache-dir",
                path_str(&cache),
                "--older-than",
                "-3",
            ],
            vec!["--older-than \"-3\"", "0 or more", "hint: a number of days"],
        ),
        (
            vec![
                "cache",
                "prune",
                "--cache-dir",
                path_str(&cache),
                "--max-size",
                "lots",
            ],
            vec![
                "--max-size \"lots\": not a size",
                "hint: bytes with an optional K, M, G",
            ],
        ),
        (
            vec!["compare", path_str(&interrupted), path_str(&interrupted)],
            vec![
                "interrupted-run: the run is incomplete: results.json is missing",
                "hint: re-run the suite",
            ],
        ),
    ];
    for (args, wants) in trust_rows {
        let o = run(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        for w in wants {
            assert!(o.stderr.contains(w), "{args:?}: want {w:?} in {}", o.stderr);
        }
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }

    // Usage errors are exit 2 too.
    assert_eq!(run(&["eval", "--gold"]).code, 2);
    assert_eq!(
        run(&[
            "eval",
            "--gold",
            path_str(&gold),
            "--pred",
            path_str(&gold),
            "--iou",
            "1.5"
        ])
        .code,
        2
    );
}

#[test]
fn crlf_and_bom_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.txt",
        "\u{feff}IMGID:71044\r\nGarfield\tB-LOC\r\nPark\tI-LOC\r\n\r\n".as_bytes(),
    );
    let o = dir.path().join("o.jsonl");
    let out = run(&["import", "conll", path_str(&f), "-o", path_str(&o)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&o).unwrap();
    assert!(
        text.contains("\"id\":\"71044\"") && text.contains("\"text\":\"Garfield Park\""),
        "{text}"
    );
}

fn results_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn default_suite_runs_and_shards_merge_to_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let full = dir.path().join("full");
    let out = run(&[
        "run",
        "--out",
        path_str(&full),
        "--cache-dir",
        path_str(&cache),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut stdout: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let r = results_of(&full);
    assert_eq!(
        stdout.as_object_mut().unwrap().remove("run_dir"),
        Some(serde_json::Value::String(path_str(&full).to_string())),
        "run --format json names the run directory"
    );
    assert_eq!(
        stdout, r,
        "run --format json prints results.json (and run_dir)"
    );
    assert_eq!(r["suite"], "default");
    let variants = r["variants"].as_array().unwrap();
    assert!(variants.len() >= 5);
    let replay = &variants[0];
    assert_eq!(replay["name"], "replay");
    for stage in [
        "tagger",
        "reformulator",
        "entailer",
        "grounder",
        "segmenter",
    ] {
        assert!(replay["stages"][stage].is_string(), "{stage}");
    }
    assert_eq!(replay["metrics"]["riveg"]["mner"]["correct"], 2187);
    assert!(replay["metrics"]["span"].is_null());
    assert!(replay["not_applicable"]["span"]
        .as_str()
        .unwrap()
        .contains("token offsets"));
    let oracle_vg = variants
        .iter()
        .find(|v| v["name"] == "replay-oracle-vg")
        .unwrap();
    // Oracle VG = the "VG perfect" upper bound of the replayed stages.
    let bound = replay["metrics"]["riveg"]["diagnostics"]["upper_bounds"]["after_ve"]
        .as_f64()
        .unwrap();
    assert!(
        (oracle_vg["metrics"]["riveg"]["gmner"]["f1"]
            .as_f64()
            .unwrap()
            - bound)
            .abs()
            < 1e-12
    );
    assert!(full.join("predictions/replay.jsonl").is_file());
    assert!(full.join("per_tweet/replay.json").is_file());
    // The schema version and the sha256 of the gold and replay files, computed independently here.
    assert_eq!(
        r["meta"]["schema_version"],
        riveg_bench::results::SCHEMA_VERSION
    );
    let hashes = r["meta"]["data_hashes"].as_object().unwrap();
    assert_eq!(hashes.len(), 2, "gold and replay: {hashes:?}");
    for (path, hash) in hashes {
        use sha2::Digest;
        // Keys are the suite's own paths (relative to the project root for the built-in suite).
        assert!(!Path::new(path).is_absolute(), "{path}");
        let bytes = std::fs::read(crate::common::root().join(path)).unwrap();
        let expected: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash.as_str(), Some(expected.as_str()), "{path}");
    }
    assert!(hashes
        .keys()
        .any(|k| k.ends_with("riveg-release/GMNER_finall_label.txt")));

    let mut shard_dirs = Vec::new();
    for k in 1..=3 {
        let d = dir.path().join(format!("shard{k}"));
        let out = run(&[
            "run",
            "--shard",
            &format!("{k}/3"),
            "--out",
            path_str(&d),
            "--cache-dir",
            path_str(&cache),
            "--format",
            "json",
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        shard_dirs.push(d);
    }
    let merged = dir.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(shard_dirs.iter().map(|d| path_str(d)));
    args.extend(["--out", path_str(&merged), "--format", "json"]);
    let out = run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = results_of(&merged);
    for (a, b) in r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .zip(m["variants"].as_array().unwrap())
    {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["metrics"], b["metrics"], "variant {}", a["name"]);
        let pa = std::fs::read_to_string(full.join(a["predictions"].as_str().unwrap())).unwrap();
        let pb = std::fs::read_to_string(merged.join(b["predictions"].as_str().unwrap())).unwrap();
        assert_eq!(pa, pb);
    }
    // An incomplete set of shards is refused.
    let out = run(&[
        "merge",
        path_str(&shard_dirs[0]),
        path_str(&shard_dirs[2]),
        "--out",
        path_str(&dir.path().join("bad")),
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("missing: 2/3"), "{}", out.stderr);
}

#[test]
fn synth_smner_then_eval_scores_masks() {
    let dir = tempfile::tempdir().unwrap();
    let gold = dir.path().join("gold.jsonl");
    let smner = dir.path().join("smner.jsonl");
    let v2 = shared("twitter-gmner/v2.0");
    assert_eq!(
        run(&[
            "import",
            "gmner",
            "--dataset",
            path_str(&v2),
            "-o",
            path_str(&gold)
        ])
        .code,
        0
    );
    let out = run(&[
        "synth",
        "smner",
        "--gold",
        path_str(&gold),
        "--seed",
        "3",
        "-o",
        path_str(&smner),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("SYNTHETIC SMNER"),
        "clearly labelled: {}",
        out.stderr
    );
    // Masks against themselves: SMNER is perfect; against box-only predictions only the
    // ungroundable entities (no mask on either side) match.
    let out = run(&[
        "eval",
        "--gold",
        path_str(&smner),
        "--pred",
        path_str(&smner),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["smner"]["f1"], 1.0);
    let out = run(&[
        "eval",
        "--gold",
        path_str(&smner),
        "--pred",
        path_str(&gold),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["smner"]["correct"], 2543 - 1046);
    // A mask whose counts do not sum to h*w is refused with the record named.
    let text = std::fs::read_to_string(&smner).unwrap();
    let broken = dir.path().join("broken.jsonl");
    let line = text.lines().position(|l| l.contains("\"masks\"")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[line] = lines[line].replacen("\"size\":[", "\"size\":[9", 1);
    std::fs::write(&broken, lines.join("\n")).unwrap();
    let out = run(&[
        "eval",
        "--gold",
        path_str(&broken),
        "--pred",
        path_str(&smner),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("broken.jsonl:{}:", line + 1))
            && out.stderr.contains("mask #1"),
        "{}",
        out.stderr
    );
}

#[test]
fn eval_baselines_and_compare_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let gold = dir.path().join("gold.jsonl");
    let pred = dir.path().join("pred.jsonl");
    let worse = dir.path().join("worse.jsonl");
    let v2 = shared("twitter-gmner/v2.0");
    assert_eq!(
        run(&[
            "import",
            "gmner",
            "--dataset",
            path_str(&v2),
            "-o",
            path_str(&gold)
        ])
        .code,
        0
    );
    // Predictions: the v2.0 gold itself (with boxes), and a copy that drops every 5th entity.
    std::fs::copy(&gold, &pred).unwrap();
    let mut n = 0;
    let degraded: Vec<String> = std::fs::read_to_string(&gold)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("{\"header\""))
        .map(|l| {
            let mut t: serde_json::Value = serde_json::from_str(l).unwrap();
            let ents = t["entities"].as_array_mut().unwrap();
            ents.retain(|_| {
                n += 1;
                n % 5 != 0
            });
            t.to_string()
        })
        .collect();
    std::fs::write(&worse, degraded.join("\n")).unwrap();
    let eval_save = |p: &PathBuf, name: &str| {
        let o = bin()
            .env("RIVEG_BENCH_BASELINE_DIR", &store)
            .args([
                "eval",
                "--gold",
                path_str(&gold),
                "--pred",
                path_str(p),
                "--format",
                "json",
                "--save-baseline",
                name,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    eval_save(&pred, "good");
    eval_save(&worse, "worse");
    let compare = |base: &str, new: &str| {
        bin()
            .env("RIVEG_BENCH_BASELINE_DIR", &store)
            .args(["compare", base, new, "--format", "json", "--samples", "200"])
            .output()
            .unwrap()
    };
    let same = compare("good", "good");
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let regressed = compare("good", "worse");
    assert_eq!(
        regressed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&regressed.stderr)
    );
    let improved = compare("worse", "good");
    assert_eq!(improved.status.code(), Some(0));
    let missing = compare("good", "no-such-baseline");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("save-baseline"),
        "hint"
    );
}

#[test]
fn eval_warns_when_prediction_ids_do_not_match_the_gold() {
    let dir = tempfile::tempdir().unwrap();
    let gold = dir.path().join("gold.jsonl");
    let pred = dir.path().join("pred.jsonl");
    let v2 = shared("twitter-gmner/v2.0");
    let ada = shared("riveg-release/adaseq_test_pred.txt");
    assert_eq!(
        run(&[
            "import",
            "gmner",
            "--dataset",
            path_str(&v2),
            "-o",
            path_str(&gold)
        ])
        .code,
        0
    );
    assert_eq!(
        run(&["import", "adaseq", path_str(&ada), "-o", path_str(&pred)]).code,
        0
    );
    let out = run(&[
        "eval",
        "--gold",
        path_str(&gold),
        "--pred",
        path_str(&pred),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0);
    assert!(
        out.stderr
            .contains("1500 of 1500 predicted tweets have ids not in the gold"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--ids-from"), "{}", out.stderr);
}

#[test]
fn run_selects_variants_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "run",
        "--variant",
        "replay",
        "--out",
        path_str(&out),
        "--no-cache",
        "--format",
        "json",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(r["variants"].as_array().unwrap().len(), 1);
    let o = run(&[
        "run",
        "--variant",
        "nope",
        "--out",
        path_str(&out),
        "--no-cache",
    ]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("no variant named \"nope\"") && o.stderr.contains("replay-oracle-vg"),
        "{}",
        o.stderr
    );
}

/// Every option, positional and subcommand says what it is for in `--help`.
#[test]
fn every_argument_has_help_text() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_name() != "help" && sub.get_about().is_none() {
                missing.push(format!("{sub_path} (the subcommand)"));
            }
            walk(sub, &sub_path, missing);
        }
    }
    let cmd = riveg_bench::cli::Cli::command();
    let mut missing = Vec::new();
    walk(&cmd, "riveg-bench", &mut missing);
    assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    // The walk reaches the arguments the issue named.
    let help = run(&["import", "gmner", "--help"]).stdout;
    assert!(help.contains("txt/<SPLIT>.txt"), "{help}");
    assert!(help.contains("`-`: stdout"), "{help}");
}

#[test]
fn dash_means_stdout_and_stdin() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let labels = shared("riveg-release/GMNER_finall_label.txt");
    let ve = shared("riveg-release/OFAVE_to_OFAREC_augment.txt");
    let gold = dir.path().join("gold.jsonl");
    assert_eq!(
        run(&[
            "import",
            "riveg-labels",
            path_str(&labels),
            "-o",
            path_str(&gold)
        ])
        .code,
        0
    );
    // `-o -` writes the same JSONL to stdout, and no file named `-`.
    let o = bin()
        .current_dir(dir.path())
        .args(["import", "riveg-ofa", path_str(&ve), "-o", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("-").exists(), "wrote a file named -");
    let pred = write(dir.path(), "pred.jsonl", &o.stdout);
    assert!(String::from_utf8_lossy(&o.stderr).contains("entities to stdout"));
    let by_file = run(&[
        "import",
        "riveg-ofa",
        path_str(&ve),
        "-o",
        path_str(&dir.path().join("p2.jsonl")),
    ]);
    assert_eq!(by_file.code, 0);
    assert_eq!(
        std::fs::read(dir.path().join("p2.jsonl")).unwrap(),
        o.stdout
    );

    // `--pred -` reads stdin; the scores equal those of the file.
    let from_file = run(&[
        "eval",
        "--gold",
        path_str(&gold),
        "--pred",
        path_str(&pred),
        "--format",
        "json",
    ]);
    assert_eq!(from_file.code, 0, "{}", from_file.stderr);
    let store = dir.path().join("store");
    let mut child = bin()
        .env("RIVEG_BENCH_BASELINE_DIR", &store)
        .args([
            "eval",
            "--gold",
            path_str(&gold),
            "--pred",
            "-",
            "--format",
            "json",
            "--save-baseline",
            "piped",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let a: serde_json::Value = serde_json::from_str(&from_file.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(a["gmner"], b["gmner"]);
    // The saved baseline records the sha256 of both inputs, stdin's under `-`.
    let saved = results_of(&store.join("piped"));
    let sha = |bytes: &[u8]| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(saved["meta"]["data_hashes"]["-"], sha(&o.stdout).as_str());
    assert_eq!(
        saved["meta"]["data_hashes"][path_str(&gold)],
        sha(&std::fs::read(&gold).unwrap()).as_str()
    );
    assert_eq!(a["gmner"]["correct"].as_u64().map(|c| c > 0), Some(true));

    // Bad stdin names <stdin> and the line; formats that need a real file refuse `-`.
    let mut child = bin()
        .args(["eval", "--gold", "-", "--pred", path_str(&pred)])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\": 1}\n")
        .unwrap();
    let bad = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("<stdin>:1"), "{err}");
    let refused = run(&["import", "conll", "-", "-o", "x.jsonl"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("FILE cannot be `-`"),
        "{}",
        refused.stderr
    );
    let both = run(&["eval", "--gold", "-", "--pred", "-"]);
    assert_eq!(both.code, 2);
    assert!(
        both.stderr.contains("cannot both be `-`"),
        "{}",
        both.stderr
    );
}

#[test]
fn list_and_completions() {
    let out = run(&["list", "variants", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let suite = riveg_bench::run::Suite::default_suite().unwrap();
    let expected: Vec<&str> = suite
        .file
        .variants
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, expected);
    assert!(
        v[0]["detail"].as_str().unwrap().contains("tagger=replay"),
        "{v}"
    );
    let human = run(&["list", "baselines", "--format", "human"]);
    assert_eq!(human.code, 0);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("published:riveg-roberta-dagger ")),
        "{}",
        human.stdout
    );
    let bad = run(&["list", "models"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("suites"), "{}", bad.stderr);
    for shell in ["bash", "zsh", "fish"] {
        let c = run(&["completions", shell]);
        assert_eq!(c.code, 0, "{shell}: {}", c.stderr);
        assert!(
            c.stdout.contains("riveg-bench") && c.stdout.contains("compare"),
            "{shell}"
        );
    }
}

#[test]
fn run_table_fits_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for (columns, layout_word) in [
        ("200", "│ tagger"),
        ("100", "stages of each variant"),
        ("60", "  stages: "),
    ] {
        let out = bin()
            .env("COLUMNS", columns)
            .args([
                "run",
                "--format",
                "human",
                "--cache-dir",
                path_str(&cache),
                "--out",
            ])
            .arg(dir.path().join(format!("run{columns}")))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let width: usize = columns.parse().unwrap();
        let widest = stdout
            .lines()
            .filter(|l| !l.starts_with("run directory: "))
            .map(|l| l.chars().count())
            .max()
            .unwrap();
        assert!(
            widest <= width,
            "{columns} columns: a {widest}-char line\n{stdout}"
        );
        assert!(stdout.contains(layout_word), "{columns} columns:\n{stdout}");
        // Every layout still shows every variant and the replay's MNER F1 (2187 correct).
        for v in ["replay", "oracle-mner-replay-ve-oracle-vg"] {
            assert!(stdout.contains(v), "{columns}: {v}\n{stdout}");
        }
        assert!(stdout.contains("86.15"), "{stdout}");
        assert!(
            stdout.contains("span protocol n/a (all variants)"),
            "{stdout}"
        );
    }
}

/// The human run table makes no throughput claim for variants whose stages are all look-ups
/// (replay / oracle): their tweets/s cell reads "look-up", as summary.md's timing tables do,
/// while a variant that runs models shows a number.
#[test]
fn human_run_table_labels_lookup_variants() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["run", "--suite", "suites/smoke.toml", "--variant", "full"])
        .args(["--variant", "replay", "--format", "human", "--out"])
        .arg(dir.path().join("run"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("COLUMNS", "400")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last_cell = |variant: &str| -> String {
        let row = stdout
            .lines()
            .find(|l| l.contains(&format!(" {variant} ")))
            .unwrap_or_else(|| panic!("no row for {variant}:\n{stdout}"));
        let cells: Vec<&str> = row.split('│').map(str::trim).collect();
        cells[cells.len() - 2].to_string()
    };
    assert!(stdout.contains("tweets/s"), "{stdout}");
    assert_eq!(last_cell("gmner/replay"), "look-up");
    let full = last_cell("gmner/full");
    assert!(
        full.trim_end_matches('k').parse::<f64>().is_ok(),
        "a number for a variant that runs models, got {full:?}"
    );
}
