//! Paired bootstrap over tweets for micro P/R/F1 deltas, with a local seeded PRNG (splitmix64)
//! so results are identical on every platform and for every version of every dependency.
//!
//! Definition (what `compare` reports):
//! - Both sides' per-tweet `[correct, predicted, gold]` counts are aligned by tweet id (n tweets).
//! - Each of `samples` resamples draws n tweet indices uniformly with replacement (the same indices
//!   for both sides and every task: the test is paired). Micro P/R/F1 are recomputed from the summed
//!   counts of each side, and `delta_b = new_b - base_b` is kept per task and metric.
//! - CI: the percentile interval of the `delta_b` at `alpha/2` and `1 - alpha/2` (linear
//!   interpolation between closest ranks, numpy's default): a 95% CI for alpha = 0.05.
//! - p-value (two-sided): with `d` the observed delta, the fraction of `delta_b` on the other side
//!   of zero (`delta_b <= 0` when `d > 0`, `delta_b >= 0` when `d < 0`; ties at zero count against
//!   the change), times 2, capped at 1. `d == 0` gives p = 1. With `samples` = B the smallest
//!   non-zero p is 2/B; p = 0 means no resample crossed zero (reported as `< 1/B`).
//!
//! The resamples run in parallel (rayon) and give the same result at any thread count: the
//! indices are drawn from one sequential stream, and only the sums are parallel.
//!
//! This module must not read files or know where counts come from.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::bench::percentile;
use crate::metrics::Prf;
pub use crate::util::SplitMix64;

/// The three metrics compared per task, in display order.
pub const METRICS: [&str; 3] = ["precision", "recall", "f1"];

/// One task's per-tweet counts on both sides, aligned by index.
#[derive(Debug, Clone, Copy)]
pub struct PairedTask<'a> {
    pub task: &'a str,
    pub base: &'a [[u32; 3]],
    pub new: &'a [[u32; 3]],
}

/// Bootstrap outcome of one task and metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapStat {
    /// Observed `new - base` (from the full sums).
    pub delta: f64,
    /// Percentile CI of the resampled deltas at level `1 - alpha`.
    pub ci: [f64; 2],
    pub p_value: f64,
}

fn metric(p: &Prf, m: usize) -> f64 {
    match m {
        0 => p.precision,
        1 => p.recall,
        _ => p.f1,
    }
}

fn prf_of(c: [u64; 3]) -> Prf {
    Prf::from_counts(c[0] as usize, c[1] as usize, c[2] as usize)
}

fn sum(counts: &[[u32; 3]]) -> [u64; 3] {
    counts.iter().fold([0u64; 3], |mut a, c| {
        for k in 0..3 {
            a[k] += c[k] as u64;
        }
        a
    })
}

/// Runs the paired bootstrap; keys are `(task, metric)` with metric one of [`METRICS`].
/// Every task must have the same number of tweets on both sides (the caller aligns them).
pub fn paired_bootstrap(
    tasks: &[PairedTask<'_>],
    samples: usize,
    seed: u64,
    alpha: f64,
) -> BTreeMap<(String, String), BootstrapStat> {
    let n = tasks.first().map(|t| t.base.len()).unwrap_or(0);
    debug_assert!(tasks.iter().all(|t| t.base.len() == n && t.new.len() == n));
    let mut deltas: Vec<Vec<Vec<f64>>> = (0..tasks.len())
        .map(|_| (0..3).map(|_| Vec::with_capacity(samples)).collect())
        .collect();
    // The resample indices come from one sequential stream (so results do not depend on the
    // thread count); the sums, the expensive part, run in parallel over resamples, in chunks
    // that bound the memory the drawn indices take. Ordered collection keeps the order.
    const CHUNK: usize = 256;
    let mut rng = SplitMix64::new(seed);
    let mut done = 0;
    while done < samples {
        let m = CHUNK.min(samples - done);
        let idx: Vec<Vec<usize>> = (0..m)
            .map(|_| (0..n).map(|_| rng.below(n)).collect())
            .collect();
        let chunk: Vec<Vec<[f64; 3]>> = idx
            .par_iter()
            .map(|idx| {
                tasks
                    .iter()
                    .map(|t| {
                        let (mut b, mut w) = ([0u64; 3], [0u64; 3]);
                        for &i in idx {
                            for k in 0..3 {
                                b[k] += t.base[i][k] as u64;
                                w[k] += t.new[i][k] as u64;
                            }
                        }
                        let (pb, pw) = (prf_of(b), prf_of(w));
                        [0, 1, 2].map(|m| metric(&pw, m) - metric(&pb, m))
                    })
                    .collect()
            })
            .collect();
        for per_task in chunk {
            for (ti, d3) in per_task.into_iter().enumerate() {
                for (m, d) in d3.into_iter().enumerate() {
                    deltas[ti][m].push(d);
                }
            }
        }
        done += m;
    }
    let mut out = BTreeMap::new();
    for (ti, t) in tasks.iter().enumerate() {
        let (pb, pw) = (prf_of(sum(t.base)), prf_of(sum(t.new)));
        for (m, name) in METRICS.iter().enumerate() {
            let observed = metric(&pw, m) - metric(&pb, m);
            let ds = &mut deltas[ti][m];
            out.insert(
                (t.task.to_string(), name.to_string()),
                summarize(observed, ds, alpha),
            );
        }
    }
    out
}

/// CI and p-value of one metric from its resampled deltas (see the module doc).
pub fn summarize(observed: f64, deltas: &mut [f64], alpha: f64) -> BootstrapStat {
    deltas.sort_by(f64::total_cmp);
    let b = deltas.len();
    let ci = [
        percentile(deltas, 100.0 * alpha / 2.0),
        percentile(deltas, 100.0 * (1.0 - alpha / 2.0)),
    ];
    let p_value = if b == 0 || observed == 0.0 {
        1.0
    } else {
        let other_side = if observed > 0.0 {
            deltas.iter().filter(|d| **d <= 0.0).count()
        } else {
            deltas.iter().filter(|d| **d >= 0.0).count()
        };
        (2.0 * other_side as f64 / b as f64).min(1.0)
    };
    BootstrapStat {
        delta: observed,
        ci,
        p_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Reference outputs of splitmix64 seeded with 1234567 (Vigna's C implementation).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        let mut r = SplitMix64::new(7);
        assert!((0..1000).all(|_| r.below(10) < 10));
    }

    #[test]
    fn identical_sides_give_zero_delta_and_p_one() {
        let c: Vec<[u32; 3]> = (0..50).map(|i| [i % 3, 2, 3]).collect();
        let t = [PairedTask {
            task: "gmner",
            base: &c,
            new: &c,
        }];
        let s = paired_bootstrap(&t, 200, 1, 0.05);
        let f1 = s[&("gmner".to_string(), "f1".to_string())];
        assert_eq!((f1.delta, f1.ci, f1.p_value), (0.0, [0.0, 0.0], 1.0));
    }

    #[test]
    fn p_value_counts_the_other_side() {
        let mut d = vec![-0.1, 0.1, 0.2, 0.3];
        let s = summarize(0.2, &mut d, 0.05);
        assert_eq!(s.p_value, 0.5);
        let mut d = vec![0.1, 0.2];
        assert_eq!(summarize(0.2, &mut d, 0.05).p_value, 0.0);
        let mut d = vec![0.1, -0.2, 0.3];
        assert_eq!(summarize(-0.2, &mut d, 0.05).p_value, 1.0);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let base: Vec<[u32; 3]> = (0..300).map(|i| [i % 4, 3, 4]).collect();
        let new: Vec<[u32; 3]> = (0..300).map(|i| [(i + 1) % 5, 3, 4]).collect();
        let t = [
            PairedTask {
                task: "mner",
                base: &base,
                new: &new,
            },
            PairedTask {
                task: "gmner",
                base: &new,
                new: &base,
            },
        ];
        let with_threads = |k: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(k)
                .build()
                .unwrap()
                .install(|| paired_bootstrap(&t, 600, 9, 0.05))
        };
        let one = with_threads(1);
        assert_eq!(one, with_threads(2));
        assert_eq!(one, with_threads(5));
        // 600 resamples span three chunks: a resample-by-resample sequential reference agrees.
        let mut rng = SplitMix64::new(9);
        let mut ds = Vec::new();
        for _ in 0..600 {
            let idx: Vec<usize> = (0..300).map(|_| rng.below(300)).collect();
            let (mut b, mut w) = ([0u64; 3], [0u64; 3]);
            for &i in &idx {
                for k in 0..3 {
                    b[k] += base[i][k] as u64;
                    w[k] += new[i][k] as u64;
                }
            }
            ds.push(prf_of(w).f1 - prf_of(b).f1);
        }
        let observed = prf_of(sum(&new)).f1 - prf_of(sum(&base)).f1;
        assert_eq!(
            one[&("mner".to_string(), "f1".to_string())],
            summarize(observed, &mut ds, 0.05)
        );
    }
}
