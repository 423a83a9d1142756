//! `--decode strict` against seqeval 1.2.2's `mode="strict"` (IOB2 for BIO files, IOBES for
//! BIOES files) on the shared data, to 1e-9, like the default mode in eval.rs.

use riveg_bench::data::readers::{adaseq, conll, gmner};
use riveg_bench::data::tags::{Decode, Scheme};
use riveg_bench::metrics::{evaluate, EvalOptions, Protocol};

use crate::common::{bin, path_str, run_py, shared};
use crate::eval::assert_matches_seqeval;

fn span() -> EvalOptions {
    EvalOptions {
        protocol: Protocol::Span,
        ..EvalOptions::default()
    }
}

fn seqeval_strict(file: &std::path::Path, scheme: &str, eos: bool) -> serde_json::Value {
    let mut args = vec![path_str(file), "1", "2"];
    if eos {
        args.push("--eos");
    }
    args.extend(["--strict", scheme]);
    run_py("seqeval_check.py", &args)
}

#[test]
fn strict_matches_seqeval_on_adaseq_output() {
    crate::require_venv!();
    let file = shared("riveg-release/adaseq_test_pred.txt");
    let strict = adaseq::read_adaseq_decoded(&file, None, Decode::Strict).unwrap();
    let r = evaluate(&strict.gold, &strict.pred, &span()).unwrap();
    assert_matches_seqeval(&r, &seqeval_strict(&file, "IOBES", true));
}

/// GMNER v2.0 test gold against v1 test tags corrupted so that strict decoding matters: every
/// 7th `B-` becomes `I-` (a chunk that starts with `I-`), every 11th `I-` takes another type.
#[test]
fn strict_matches_seqeval_on_corrupted_bio() {
    crate::require_venv!();
    let v2 = std::fs::read_to_string(shared("twitter-gmner/v2.0/txt/test.txt")).unwrap();
    let v1 = std::fs::read_to_string(shared("twitter-gmner/v1/txt/test.txt")).unwrap();
    let (mut pred, mut combined) = (String::new(), String::new());
    let (mut nb, mut ni, mut changed) = (0, 0, 0);
    for (a, b) in v2.lines().zip(v1.lines()) {
        if a.is_empty() || a.starts_with("IMGID:") {
            pred.push_str(b);
            combined.push_str(a);
        } else {
            let (tok, ga) = a.split_once('\t').unwrap();
            let (_, gb) = b.split_once('\t').unwrap();
            let mut tag = gb.to_string();
            if let Some(ty) = gb.strip_prefix("B-") {
                nb += 1;
                if nb % 7 == 0 {
                    tag = format!("I-{ty}");
                    changed += 1;
                }
            } else if let Some(ty) = gb.strip_prefix("I-") {
                ni += 1;
                if ni % 11 == 0 {
                    tag = format!("I-{}", if ty == "PER" { "LOC" } else { "PER" });
                    changed += 1;
                }
            }
            pred.push_str(&format!("{tok}\t{tag}"));
            combined.push_str(&format!("{tok}\t{ga}\t{tag}"));
        }
        pred.push('\n');
        combined.push('\n');
    }
    assert!(changed > 300, "{changed}");
    let dir = tempfile::tempdir().unwrap();
    let (pred_file, combined_file) = (dir.path().join("pred.txt"), dir.path().join("both.txt"));
    std::fs::write(&pred_file, pred).unwrap();
    std::fs::write(&combined_file, combined).unwrap();

    let gold_dir = shared("twitter-gmner/v2.0");
    let gold = gmner::read_gmner_decoded(&gold_dir, "test", Decode::Strict)
        .unwrap()
        .dataset;
    let strict = conll::read_conll_decoded(&pred_file, Scheme::Auto, Decode::Strict)
        .unwrap()
        .dataset;
    let lenient = conll::read_conll(&pred_file, Scheme::Auto).unwrap().dataset;
    let r = evaluate(&gold, &strict, &span()).unwrap();
    assert_matches_seqeval(&r, &seqeval_strict(&combined_file, "IOB2", false));
    // Strict drops every chunk that starts with I-: fewer predictions than the default mode.
    let r_default = evaluate(&gold, &lenient, &span()).unwrap();
    assert!(
        r.mner.predicted + 200 < r_default.mner.predicted,
        "{} vs {}",
        r.mner.predicted,
        r_default.mner.predicted
    );

    // The same through the CLI: `import conll --decode strict`.
    let out = dir.path().join("strict.jsonl");
    let st = bin()
        .args([
            "import",
            "conll",
            path_str(&pred_file),
            "--decode",
            "strict",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let via_cli = riveg_bench::data::jsonl::read_jsonl(&out).unwrap();
    assert_eq!(via_cli.entity_count(), strict.entity_count());
}
