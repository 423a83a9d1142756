//! Latency recording and percentiles for `run` (MLPerf-style: per item, warm-up excluded), and
//! reading criterion's estimates for reports. Must not print.

pub mod criterion_estimates;

use serde::{Deserialize, Serialize};

/// Summary of one stage's per-item latencies.
///
/// An item is one tweet's call of a stage. When one call serves several tweets (the tagger's
/// batches of `[runtime] batch` tweets, LLM requests of a window in flight together), each tweet
/// records an equal share of the call's time, so `total_ms` is still the time the stage took and
/// `throughput_per_s` is tweets per second of it; with `batch = 1` every tagger call serves one
/// tweet. The `pipeline` row records, per tweet, the sum of that tweet's stage samples.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StageTiming {
    /// Items measured (warm-up items excluded).
    pub count: usize,
    /// Items served from the stage cache (not measured).
    #[serde(default)]
    pub cached: usize,
    /// Items excluded as warm-up (the first `warmup` calls of a stage instance).
    #[serde(default)]
    pub warmup_excluded: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub total_ms: f64,
    /// Items per second over the measured items (count / total time).
    pub throughput_per_s: f64,
    /// Raw per-item latencies, kept for plots (not serialised into results.json).
    #[serde(skip)]
    pub samples_ms: Vec<f64>,
}

/// Collects per-item latencies of one stage.
#[derive(Debug, Clone, Default)]
pub struct LatencyRecorder {
    warmup: usize,
    seen: usize,
    cached: usize,
    samples_ms: Vec<f64>,
}

impl LatencyRecorder {
    /// A recorder that drops the first `warmup` measurements (session warm-up, caches).
    pub fn new(warmup: usize) -> Self {
        LatencyRecorder {
            warmup,
            ..Default::default()
        }
    }

    pub fn record(&mut self, latency_ms: f64) {
        self.seen += 1;
        if self.seen > self.warmup {
            self.samples_ms.push(latency_ms);
        }
    }

    pub fn record_cached(&mut self) {
        self.cached += 1;
    }

    pub fn summary(&self) -> StageTiming {
        let mut s = summarize(&self.samples_ms);
        s.cached = self.cached;
        s.warmup_excluded = self.seen.min(self.warmup);
        s
    }
}

/// Percentile by linear interpolation between closest ranks (numpy's default).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Count, mean, p50/p95/p99, max and throughput of latencies in milliseconds.
pub fn summarize(samples_ms: &[f64]) -> StageTiming {
    let mut sorted = samples_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let total: f64 = sorted.iter().sum();
    let count = sorted.len();
    StageTiming {
        count,
        cached: 0,
        warmup_excluded: 0,
        mean_ms: if count == 0 {
            0.0
        } else {
            total / count as f64
        },
        p50_ms: percentile(&sorted, 50.0),
        p95_ms: percentile(&sorted, 95.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: sorted.last().copied().unwrap_or(0.0),
        total_ms: total,
        throughput_per_s: if total > 0.0 {
            count as f64 / (total / 1000.0)
        } else {
            0.0
        },
        samples_ms: samples_ms.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy_linear() {
        let v: Vec<f64> = (1..=10).map(|x| x as f64).collect();
        // numpy.percentile(range(1, 11), [50, 95, 99]) = 5.5, 9.55, 9.91
        assert!((percentile(&v, 50.0) - 5.5).abs() < 1e-12);
        assert!((percentile(&v, 95.0) - 9.55).abs() < 1e-12);
        assert!((percentile(&v, 99.0) - 9.91).abs() < 1e-12);
    }

    #[test]
    fn warmup_is_excluded() {
        let mut r = LatencyRecorder::new(2);
        for x in [100.0, 50.0, 1.0, 2.0, 3.0] {
            r.record(x);
        }
        let s = r.summary();
        assert_eq!((s.count, s.warmup_excluded), (3, 2));
        assert_eq!(s.max_ms, 3.0);
        assert!((s.throughput_per_s - 500.0).abs() < 1e-9);
    }
}
