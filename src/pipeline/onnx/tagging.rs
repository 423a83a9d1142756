//! Pure helpers of the ONNX tagger: label sequences → entity spans, and CRF Viterbi decoding.
//!
//! Span decoding follows seqeval's default (non-strict) `get_entities`, which is also what
//! conlleval does for BIO: an `I-X` that does not continue an `X` chunk starts a new one. The same
//! rules handle BIOES tags (`E-X` ends a chunk, `S-X` is a chunk of one; a dangling `E-`/`I-`
//! starts one), so BIOES output is decoded as BIOES rather than by stripping prefixes. See
//! <https://github.com/chakki-works/seqeval/blob/master/seqeval/metrics/sequence_labeling.py>.
//! A local copy for now; it will be unified with `data`'s tag-scheme decoding.

use crate::runtime::Crf;

/// One decoded chunk: type and word span `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub entity_type: String,
    pub start: usize,
    pub end: usize,
}

/// `(prefix, type)` as seqeval splits a tag: `B-PER` → (`B`, `PER`); `O` → (`O`, `_`).
fn split_tag(tag: &str) -> (char, &str) {
    let prefix = tag.chars().next().unwrap_or('O');
    let rest = tag.get(prefix.len_utf8()..).unwrap_or("");
    let kind = rest.split_once('-').map_or(rest, |(_, t)| t);
    (prefix, if kind.is_empty() { "_" } else { kind })
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != kind)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// Chunks of a BIO or BIOES label sequence, seqeval default semantics, end exclusive.
pub fn decode_spans<S: AsRef<str>>(labels: &[S]) -> Vec<Span> {
    let mut spans = Vec::new();
    let (mut prev_tag, mut prev_type) = ('O', "_".to_string());
    let mut begin = 0;
    let tags = labels.iter().map(AsRef::as_ref).chain(std::iter::once("O"));
    for (i, label) in tags.enumerate() {
        let (tag, kind) = split_tag(label);
        if end_of_chunk(prev_tag, tag, &prev_type, kind) {
            spans.push(Span {
                entity_type: prev_type.clone(),
                start: begin,
                end: i,
            });
        }
        if start_of_chunk(prev_tag, tag, &prev_type, kind) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = kind.to_string();
    }
    spans
}

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

    fn spans(labels: &[&str]) -> Vec<(String, usize, usize)> {
        decode_spans(labels)
            .into_iter()
            .map(|s| (s.entity_type, s.start, s.end))
            .collect()
    }

    fn s(t: &str, a: usize, b: usize) -> (String, usize, usize) {
        (t.to_string(), a, b)
    }

    #[test]
    fn bio_dangling_i_starts_a_chunk() {
        // seqeval.get_entities(['I-PER','O','B-LOC','I-PER']) == [('PER',0,0),('LOC',2,2),('PER',3,3)]
        assert_eq!(
            spans(&["I-PER", "O", "B-LOC", "I-PER"]),
            vec![s("PER", 0, 1), s("LOC", 2, 3), s("PER", 3, 4)]
        );
        assert_eq!(
            spans(&["B-PER", "I-PER", "B-PER"]),
            vec![s("PER", 0, 2), s("PER", 2, 3)]
        );
        assert_eq!(spans(&["I-ORG", "I-ORG"]), vec![s("ORG", 0, 2)]);
        assert!(spans(&["O", "O"]).is_empty());
    }

    #[test]
    fn bioes_chunks() {
        assert_eq!(
            spans(&["B-PER", "I-PER", "E-PER", "S-LOC", "O", "S-ORG"]),
            vec![s("PER", 0, 3), s("LOC", 3, 4), s("ORG", 5, 6)]
        );
        // E- then I- of the same type: E ends the chunk, I starts a new one (seqeval default).
        assert_eq!(
            spans(&["B-PER", "E-PER", "I-PER"]),
            vec![s("PER", 0, 2), s("PER", 2, 3)]
        );
        // A dangling E- is a chunk of one.
        assert_eq!(spans(&["O", "E-LOC"]), vec![s("LOC", 1, 2)]);
        assert_eq!(
            spans(&["S-PER", "S-PER"]),
            vec![s("PER", 0, 1), s("PER", 1, 2)]
        );
    }

    #[test]
    fn types_with_dashes_and_fine_types() {
        assert_eq!(
            spans(&["B-sports_team", "I-sports_team"]),
            vec![s("sports_team", 0, 2)]
        );
    }

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
