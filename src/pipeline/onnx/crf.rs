//! CRF Viterbi decoding for the ONNX tagger (emissions + transitions → the best label sequence).
//! Label sequences become entity spans through [`crate::data::tags::decode_chunks`], the one
//! tag-scheme decoder of the crate.

use crate::runtime::Crf;

/// Viterbi: the label sequence maximising `start[y0] + Σ emissions[t][y_t] +
/// Σ transitions[y_{t-1}][y_t] + end[y_last]`. Ties go to the lower label index.
pub fn viterbi(emissions: &[Vec<f64>], crf: &Crf) -> Vec<usize> {
    let Some(first) = emissions.first() else {
        return Vec::new();
    };
    let n = first.len();
    let mut score: Vec<f64> = (0..n).map(|j| crf.start[j] + first[j]).collect();
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(emissions.len());
    for row in &emissions[1..] {
        let mut next = vec![f64::NEG_INFINITY; n];
        let mut from = vec![0usize; n];
        for j in 0..n {
            for (i, previous) in score.iter().enumerate() {
                let s = previous + crf.transitions[i][j];
                if s > next[j] {
                    next[j] = s;
                    from[j] = i;
                }
            }
            next[j] += row[j];
        }
        back.push(from);
        score = next;
    }
    let mut best = 0;
    for j in 0..n {
        if score[j] + crf.end[j] > score[best] + crf.end[best] {
            best = j;
        }
    }
    let mut path = vec![best];
    for from in back.iter().rev() {
        best = from[best];
        path.push(best);
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viterbi_respects_forbidden_transitions() {
        // labels O, B-PER, I-PER; O -> I-PER forbidden and start -> I-PER forbidden
        let crf = Crf {
            transitions: vec![
                vec![0.0, 0.0, -1e4],
                vec![0.0, 0.0, 0.0],
                vec![0.0, 0.0, 0.0],
            ],
            start: vec![0.0, 0.0, -1e4],
            end: vec![0.0; 3],
        };
        // emissions prefer I-PER at t=1 after O: the CRF turns it into B-PER
        let em = vec![vec![2.0, 0.0, 0.0], vec![0.0, 1.0, 2.0]];
        assert_eq!(viterbi(&em, &crf), vec![0, 1]);
        // start -> I-PER forbidden too
        assert_eq!(viterbi(&[vec![0.0, 1.0, 2.0]], &crf), vec![1]);
        assert!(viterbi(&[], &crf).is_empty());
    }
}
