//! Twitter-FMNERG on the shared test split: the reader (fine types, boxes linked from GMNER v2.0,
//! the type tree), and FMNERG scoring (fine + groundability + box) against perturbed predictions.

use riveg_bench::data::readers::fmnerg::{read_fmnerg, type_tree};
use riveg_bench::metrics::{evaluate, EvalOptions, Protocol};

use crate::common::shared;

#[test]
fn fmnerg_test_split_reads_with_boxes_and_type_tree() {
    let out = read_fmnerg(
        &shared("twitter-fmnerg"),
        "test",
        Some(&shared("twitter-gmner/v2.0")),
    )
    .unwrap();
    let ds = &out.dataset;
    assert_eq!(ds.tweets.len(), 1500);
    assert_eq!(ds.entity_count(), 2543);
    let groundable = ds
        .tweets
        .iter()
        .flat_map(|t| &t.entities)
        .filter(|e| e.groundable)
        .count();
    assert_eq!(groundable, 1046, "same linking as GMNER v2.0");
    let tree = type_tree(ds);
    // Counts from the dataset README.
    let coarse: Vec<(&str, usize)> = tree
        .iter()
        .map(|(c, f)| (c.as_str(), f.values().sum()))
        .collect();
    assert_eq!(coarse.len(), 8);
    assert!(
        coarse.contains(&("person", 1104)) && coarse.contains(&("organization", 638)),
        "{coarse:?}"
    );
    assert_eq!(
        tree.values().map(|f| f.len()).sum::<usize>(),
        51,
        "51 fine types"
    );
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn fmnerg_scores_fine_types_and_grounding() {
    let gold = read_fmnerg(
        &shared("twitter-fmnerg"),
        "test",
        Some(&shared("twitter-gmner/v2.0")),
    )
    .unwrap()
    .dataset;
    // Wrong fine type on every 10th entity (same coarse type), and every 7th groundable box moved away.
    let mut pred = gold.clone();
    let (mut n, mut wrong_fine, mut moved) = (0, 0, 0);
    for t in &mut pred.tweets {
        for e in &mut t.entities {
            n += 1;
            if n % 10 == 0 {
                e.fine_type = Some(format!("{}-other", e.fine_type.clone().unwrap()));
                wrong_fine += 1;
            } else if e.groundable && n % 7 == 0 {
                let b = e.boxes[0].0;
                e.boxes = vec![riveg_bench::geometry::BBox::new(
                    b[2] + 1.0,
                    b[3] + 1.0,
                    b[2] + 50.0,
                    b[3] + 50.0,
                )];
                moved += 1;
            } else if e.groundable {
                e.boxes.truncate(1);
            }
        }
    }
    for protocol in [Protocol::Riveg, Protocol::Span] {
        let r = evaluate(
            &gold,
            &pred,
            &EvalOptions {
                protocol,
                ..EvalOptions::default()
            },
        )
        .unwrap();
        let fine = r.fmnerg.unwrap();
        let coarse = r.fmnerg_coarse.unwrap();
        assert_eq!(coarse.correct, 2543 - moved, "{protocol:?}");
        assert_eq!(fine.correct, 2543 - moved - wrong_fine, "{protocol:?}");
        assert_eq!(r.fmner.unwrap().correct, 2543 - wrong_fine);
        assert_eq!(r.mner.correct, 2543);
        assert!(r.per_fine_type.contains_key("athlete"));
    }
}
