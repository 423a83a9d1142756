//! Precision / recall / F1 from counts, as fractions.

use serde::{Deserialize, Serialize};

/// Counts and the scores derived from them. F1 is 0 when nothing is correct (never NaN).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub correct: usize,
    pub predicted: usize,
    pub gold: usize,
}

impl Prf {
    pub fn from_counts(correct: usize, predicted: usize, gold: usize) -> Self {
        let precision = if predicted == 0 {
            0.0
        } else {
            correct as f64 / predicted as f64
        };
        let recall = if gold == 0 {
            0.0
        } else {
            correct as f64 / gold as f64
        };
        // The seed computes F1 from the two fractions: (2 * p * r) / (p + r).
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            precision,
            recall,
            f1,
            correct,
            predicted,
            gold,
        }
    }
}

/// Running counts for one cell of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub correct: usize,
    pub predicted: usize,
    pub gold: usize,
}

impl Counts {
    pub fn prf(&self) -> Prf {
        Prf::from_counts(self.correct, self.predicted, self.gold)
    }
    pub fn add(&mut self, other: Counts) {
        self.correct += other.correct;
        self.predicted += other.predicted;
        self.gold += other.gold;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_division_is_zero() {
        let p = Prf::from_counts(0, 0, 0);
        assert_eq!((p.precision, p.recall, p.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn harmonic_mean() {
        let p = Prf::from_counts(2187, 2535, 2542);
        assert!((p.precision - 2187.0 / 2535.0).abs() < 1e-15);
        assert!((p.f1 - 2.0 * 2187.0 / (2535.0 + 2542.0)).abs() < 1e-12);
    }
}
