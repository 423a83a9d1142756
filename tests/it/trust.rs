//! Issue 12 "Trust": the stage cache never returns stale or damaged outputs (image bytes and
//! tokenizer content key the entries; entries carry their key and a checksum), killed runs'
//! temporary files are cleaned, `cache stats|prune`, `--on-error skip` that skipped everything
//! is an error, and numbers that cannot apply are n/a. Runs the binary on a copy of the smoke
//! suite's tiny models and fixtures in a temporary folder, so files can be edited.

use std::path::{Path, PathBuf};

use crate::common::{bin, path_str, root};

/// A temporary copy of the smoke suite: models (manifests and tiny/), fixtures, a suite with
/// absolute paths keeping only `variants`.
struct Sandbox {
    dir: tempfile::TempDir,
    suite: PathBuf,
}

impl Sandbox {
    fn new(variants: &[&str]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        copy_dir(&root().join("models/tiny"), &d.join("models/tiny"));
        for e in std::fs::read_dir(root().join("models")).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("tiny-") && name.ends_with(".toml") {
                std::fs::copy(&p, d.join("models").join(&name)).unwrap();
            }
        }
        copy_dir(&root().join("tests/fixtures/smoke"), &d.join("data"));
        let text = std::fs::read_to_string(root().join("suites/smoke.toml")).unwrap();
        let mut v: toml::Value = toml::from_str(&text).unwrap();
        let abs = |p: &str| d.join(p).to_string_lossy().into_owned();
        // The smoke suite's SMNER-like dataset (the original fixture) as a one-dataset `[data]`.
        let root_table = v.as_table_mut().unwrap();
        let datasets = root_table.remove("dataset").unwrap();
        let smner = datasets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"].as_str() == Some("smner"))
            .unwrap()
            .as_table()
            .unwrap();
        let mut data_table = toml::map::Map::new();
        for key in ["gold", "replay"] {
            data_table.insert(key.into(), smner[key].clone());
        }
        root_table.insert("data".into(), toml::Value::Table(data_table));
        let data = v["data"].as_table_mut().unwrap();
        for key in ["gold", "replay"] {
            let src = data[key].as_table_mut().unwrap();
            let p = src["path"]
                .as_str()
                .unwrap()
                .replace("tests/fixtures/smoke", "data");
            src.insert("path".into(), abs(&p).into());
        }
        data.insert("images".into(), abs("data/images").into());
        for (_, p) in v["models"].as_table_mut().unwrap().iter_mut() {
            *p = abs(p.as_str().unwrap()).into();
        }
        let all = v["variant"].as_array_mut().unwrap();
        all.retain(|x| variants.contains(&x["name"].as_str().unwrap()));
        assert_eq!(all.len(), variants.len(), "smoke variants {variants:?}");
        let suite = d.join("suite.toml");
        std::fs::write(&suite, toml::to_string(&v).unwrap()).unwrap();
        Sandbox { dir, suite }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `run --format json` into `out` (under the sandbox): exit code, results, stderr.
    fn run(&self, out: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
        let out = self.path(out);
        let mut args = vec![
            "run",
            "--suite",
            path_str(&self.suite),
            "--out",
            path_str(&out),
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = bin().args(&args).current_dir(root()).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        (o.status.code().unwrap_or(-1), json, stderr)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, dest).unwrap();
        }
    }
}

fn variant<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variant {name} in {r}"))
}

/// Calls a stage actually executed (cache misses) in one variant.
fn executed(r: &serde_json::Value, name: &str, stage: &str) -> u64 {
    let t = &variant(r, name)["timings"][stage];
    t["count"].as_u64().unwrap_or(0) + t["warmup_excluded"].as_u64().unwrap_or(0)
}

/// What a variant decided per tweet: entities with type, groundability and boxes rounded to a
/// hundredth of a pixel (ORT's last float digit depends on session history).
fn decisions(r: &serde_json::Value, name: &str) -> Vec<String> {
    let file = variant(r, name)["predictions"].as_str().unwrap();
    let _ = file;
    let mut out = Vec::new();
    let run_dir = r["__dir"].as_str().unwrap();
    let text = std::fs::read_to_string(Path::new(run_dir).join(file)).unwrap();
    for line in text.lines() {
        let t: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(id) = t["id"].as_str() else {
            continue;
        };
        for e in t["entities"].as_array().unwrap() {
            let boxes: Vec<String> = e["boxes"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .map(|bb| {
                            bb.as_array()
                                .unwrap()
                                .iter()
                                .map(|x| format!("{:.2}", x.as_f64().unwrap()))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(format!(
                "{id} {} {} {} [{}]",
                e["text"],
                e["type"],
                e["groundable"],
                boxes.join(";")
            ));
        }
    }
    out
}

/// Runs and remembers the run directory in the JSON (for [`decisions`]).
fn run_ok(sb: &Sandbox, out: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let (code, mut r, stderr) = sb.run(out, extra);
    assert_eq!(code, 0, "{stderr}");
    r["__dir"] = sb.path(out).to_string_lossy().into_owned().into();
    (r, stderr)
}

#[test]
fn swapped_images_and_an_edited_tokenizer_are_recomputed_not_served_stale() {
    crate::require_venv!();
    let sb = Sandbox::new(&["full"]);
    let cache = sb.path("cache");
    let cache_arg = ["--cache-dir", path_str(&cache)];
    let (before, _) = run_ok(&sb, "cold", &cache_arg);
    // Sanity: a warm rerun computes nothing.
    let (warm, _) = run_ok(&sb, "warm", &cache_arg);
    for stage in ["tagger", "entailer", "grounder", "segmenter"] {
        assert_eq!(executed(&warm, "full", stage), 0, "{stage}");
    }
    assert_eq!(decisions(&before, "full"), decisions(&warm, "full"));

    // Swap two images' bytes (same names, so only the content says they changed).
    let (a, b) = (sb.path("data/images/s1.png"), sb.path("data/images/s2.png"));
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_ne!(ba, bb);
    std::fs::write(&a, &bb).unwrap();
    std::fs::write(&b, &ba).unwrap();
    let (swapped, _) = run_ok(&sb, "swapped", &cache_arg);
    let (fresh, _) = run_ok(&sb, "swapped-fresh", &["--no-cache"]);
    assert!(executed(&swapped, "full", "grounder") > 0, "VG recomputed");
    assert!(
        executed(&swapped, "full", "segmenter") > 0,
        "SAM recomputed"
    );
    assert_eq!(
        executed(&swapped, "full", "tagger"),
        0,
        "text work still cached"
    );
    assert_eq!(
        decisions(&swapped, "full"),
        decisions(&fresh, "full"),
        "the warm rerun equals a run with no cache"
    );
    assert_ne!(
        decisions(&swapped, "full"),
        decisions(&before, "full"),
        "swapping the images changes the predictions"
    );

    // Edit the tokenizer (no sha256 in the manifest): "Angelina" and "Paris" swap ids.
    let tok = sb.path("models/tiny/tokenizer.json");
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tok).unwrap()).unwrap();
    let vocab = t["model"]["vocab"].as_object_mut().unwrap();
    let (x, y) = (vocab["Angelina"].clone(), vocab["Paris"].clone());
    vocab.insert("Angelina".into(), y);
    vocab.insert("Paris".into(), x);
    std::fs::write(&tok, serde_json::to_vec(&t).unwrap()).unwrap();
    let (edited, _) = run_ok(&sb, "edited", &cache_arg);
    let (edited_fresh, _) = run_ok(&sb, "edited-fresh", &["--no-cache"]);
    assert!(executed(&edited, "full", "tagger") > 0, "tagger recomputed");
    assert_eq!(decisions(&edited, "full"), decisions(&edited_fresh, "full"));
    assert_ne!(
        variant(&edited, "full")["metrics"]["riveg"]["mner"],
        variant(&swapped, "full")["metrics"]["riveg"]["mner"],
        "the edited tokenizer changes what the tiny tagger finds"
    );
}

#[test]
fn a_damaged_cache_entry_is_recomputed_with_a_warning() {
    crate::require_venv!();
    let sb = Sandbox::new(&["full"]);
    let cache = sb.path("cache");
    let cache_arg = ["--cache-dir", path_str(&cache)];
    let (before, _) = run_ok(&sb, "cold", &cache_arg);
    // Truncate a float in one VE record (a probability like 0.7310586 → 0.73). Records are
    // lines of the stage's segment files (pipeline::cache_log).
    let segments: Vec<PathBuf> = walk(&cache.join("entailer"));
    assert_eq!(
        segments.len(),
        1,
        "one segment per stage and process: {segments:?}"
    );
    let entry = &segments[0];
    let text = std::fs::read_to_string(entry).unwrap();
    let first = text.lines().next().unwrap();
    let v: serde_json::Value = serde_json::from_str(first).unwrap();
    let f = v["value"]
        .as_f64()
        .expect("a VE record holds a probability");
    let full = serde_json::to_string(&v["value"]).unwrap();
    let cut = &full[..full.len().min(4)];
    assert_ne!(cut.parse::<f64>().unwrap(), f, "{full} is cut");
    let damaged = first.replacen(&full, cut, 1);
    std::fs::write(entry, text.replacen(first, &damaged, 1)).unwrap();
    let (after, stderr) = run_ok(&sb, "warm", &cache_arg);
    assert!(
        stderr.contains("not trusted") && stderr.contains(&entry.display().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains("stage cache: 1 damaged entr(y/ies) recomputed"),
        "{stderr}"
    );
    assert_eq!(
        executed(&after, "full", "entailer"),
        1,
        "one tweet's VE batch"
    );
    assert_eq!(executed(&after, "full", "grounder"), 0);
    assert_eq!(decisions(&after, "full"), decisions(&before, "full"));
    // The recomputed value replaced the damaged one: the next run trusts it again.
    let (_, stderr) = run_ok(&sb, "again", &cache_arg);
    assert!(!stderr.contains("not trusted"), "{stderr}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn skip_that_skipped_every_tweet_is_an_error_and_skips_are_summarized() {
    crate::require_venv!();
    let sb = Sandbox::new(&["full", "replay"]);
    // One image missing: a warning line per variant that skipped, exit 0.
    std::fs::remove_file(sb.path("data/images/s3.png")).unwrap();
    let (code, r, stderr) = sb.run("one", &["--no-cache", "--on-error", "skip"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(variant(&r, "full")["skipped"], 1);
    assert!(
        stderr.contains("warning: variant full: skipped 1 of 8 tweets")
            && stderr.contains("first: tweet s3, entailer"),
        "{stderr}"
    );
    assert!(!stderr.contains("variant replay: skipped"), "{stderr}");
    // Replayed stages time look-ups: labelled, with no throughput claim; real stages are not.
    let summary = std::fs::read_to_string(sb.path("one/summary.md")).unwrap();
    let summary = summary.split("## Stage timings").nth(1).unwrap();
    let summary = summary.split("\n## ").next().unwrap();
    let replay = summary.split("\n### replay").nth(1).unwrap();
    let replay = replay.split("\n### ").next().unwrap();
    let row = replay
        .lines()
        .find(|l| l.starts_with("| entailer"))
        .unwrap_or_else(|| panic!("{replay}"));
    assert!(
        row.contains("entailer (look-up)") && row.trim_end().ends_with("n/a |"),
        "{row}"
    );
    let full = summary.split("\n### full").nth(1).unwrap();
    let full = full.split("\n### ").next().unwrap();
    assert!(!full.contains("(look-up)"), "{full}");
    // Only the tweets with images (s5..s8 have no entity to ground, so they need no pixels),
    // and no image at all: every tweet of `full` fails; an error, results still written.
    for f in ["data/gold.jsonl", "data/recorded.jsonl"] {
        let text = std::fs::read_to_string(sb.path(f)).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                ["s1", "s2", "s3", "s4"]
                    .iter()
                    .any(|id| l.contains(&format!("\"id\": \"{id}\"")))
            })
            .collect();
        assert_eq!(kept.len(), 4, "{f}");
        std::fs::write(sb.path(f), kept.join("\n") + "\n").unwrap();
    }
    for i in [1, 2, 4] {
        std::fs::remove_file(sb.path(&format!("data/images/s{i}.png"))).unwrap();
    }
    let (code, r, stderr) = sb.run("all", &["--no-cache", "--on-error", "skip"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("skipped 4 of 4 tweets")
            && stderr.contains("error: variant full skipped every tweet (4 of 4)")
            && stderr.contains("hint:"),
        "{stderr}"
    );
    assert_eq!(
        variant(&r, "full")["skipped"],
        4,
        "results are still printed"
    );
    assert!(sb.path("all/results.json").is_file());
}

#[test]
fn compare_names_an_interrupted_run_directory_as_such() {
    // `compare NAME ...` with NAME a folder beside us (one path component): formerly looked up
    // as a saved baseline ("no baseline named ...").
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("smoke-20261129");
    std::fs::create_dir_all(run_dir.join("predictions")).unwrap();
    std::fs::write(run_dir.join("suite.toml"), "name = \"smoke\"\n").unwrap();
    let o = bin()
        .args([
            "compare",
            "smoke-20261129",
            "published:riveg-roberta-dagger",
        ])
        .env("RIVEG_BENCH_BASELINE_DIR", dir.path().join("saved"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("smoke-20261129: the run is incomplete: results.json is missing")
            && stderr.contains("hint: re-run the suite"),
        "{stderr}"
    );
    assert!(!stderr.contains("no baseline named"), "{stderr}");
}

#[test]
fn text_only_predictions_and_gold_are_not_scored_on_grounded_tasks() {
    use riveg_bench::data::readers::{adaseq, gmner};
    use riveg_bench::metrics::{evaluate, EvalOptions};
    let gold = gmner::read_gmner(&crate::common::shared("twitter-gmner/v2.0"), "test")
        .unwrap()
        .dataset;
    let ada = adaseq::read_adaseq(
        &crate::common::shared("riveg-release/adaseq_test_pred.txt"),
        Some(&gold),
    )
    .unwrap();
    // AdaSeq predictions (text only) against grounded gold: MNER is real, EEG / GMNER are not.
    let r = evaluate(&gold, &ada.pred, &EvalOptions::default()).unwrap();
    assert!(r.mner.f1 > 0.8, "{:?}", r.mner);
    assert_eq!(
        r.not_scored.keys().collect::<Vec<_>>(),
        ["eeg", "gmner"],
        "{:?}",
        r.not_scored
    );
    let why = &r.not_scored["gmner"];
    assert!(
        why.contains("the predictions carry no grounding decision (source: adaseq"),
        "{why}"
    );
    // Formerly every groundable gold entity became a "wrong groundability" error, silently.
    assert!(r.errors.wrong_groundability > 900);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["not_scored"]["eeg"], why.as_str());
    assert!(
        json["mner"]["f1"].is_number(),
        "MNER needs no grounding and stays scored"
    );
    // The grounded tasks are null in JSON, with the reason in not_scored; read back, they are
    // still not scored.
    assert!(
        json["eeg"].is_null() && json["gmner"].is_null(),
        "{}",
        json["gmner"]
    );
    let back: riveg_bench::metrics::EvalReport = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back.not_scored, r.not_scored);
    assert!(back.task(riveg_bench::task::Task::Gmner).is_none());
    let human = riveg_bench::cli::human::render_eval(&r);
    assert!(
        human.contains(&format!("EEG, GMNER: n/a ({why})")),
        "{human}"
    );
    assert!(!human.contains("wrong groundability"), "{human}");
    let eeg_row = human.lines().find(|l| l.contains(" EEG ")).unwrap();
    assert!(eeg_row.matches("n/a").count() >= 4, "{eeg_row}");
    // VE / VG diagnostics measure nothing without decisions: n/a, not 0.00.
    let vg = human.lines().find(|l| l.contains("Acc@IoU")).unwrap();
    assert!(vg.contains("n/a") && !vg.contains("0.00"), "{vg}");

    // Text-only gold (AdaSeq's gold column) is not scored on grounded tasks either.
    let r = evaluate(&ada.gold, &ada.pred, &EvalOptions::default()).unwrap();
    assert!(
        r.not_scored["eeg"].starts_with("the gold carry no grounding decision"),
        "{:?}",
        r.not_scored
    );

    // Predictions with decisions (RiVEG VE output) stay scored; VG with no box is n/a.
    let labels = riveg_bench::data::readers::riveg::read_riveg_labels(&crate::common::shared(
        "riveg-release/GMNER_finall_label.txt",
    ))
    .unwrap()
    .dataset;
    let ve = riveg_bench::data::readers::riveg::read_riveg_ofa(
        &crate::common::shared("riveg-release/OFAVE_to_OFAREC.txt"),
        None,
    )
    .unwrap()
    .dataset;
    let r = evaluate(&labels, &ve, &EvalOptions::default()).unwrap();
    assert!(r.not_scored.is_empty(), "{:?}", r.not_scored);
    let human = riveg_bench::cli::human::render_eval(&r);
    let vg = human.lines().find(|l| l.contains("Acc@IoU")).unwrap();
    assert!(vg.contains("on 0 of") && vg.contains("n/a"), "{vg}");
}
