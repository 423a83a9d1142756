//! Tag schemes (BIO, BIOES) and chunk decoding exactly as seqeval 1.2.2's default mode
//! (`seqeval.metrics.sequence_labeling.get_entities`, conlleval semantics): an `I-X` that does not
//! continue an `X` chunk starts a new one, and `E-`/`S-` close chunks, so the same decoder reads
//! BIO and BIOES. Tags are validated first; seqeval only warns on a bad tag, we refuse it.

/// Which tag scheme a file uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Detect: BIOES when any `E-`/`S-` tag occurs, else BIO.
    Auto,
    Bio,
    Bioes,
}

/// A decoded chunk: type and token span (end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub entity_type: String,
    pub start: usize,
    pub end: usize,
}

/// Why a tag is not valid under a scheme (the caller adds file and line).
pub fn validate_tag(tag: &str, scheme: Scheme) -> Result<(), String> {
    if tag == "O" {
        return Ok(());
    }
    let allowed: &[char] = match scheme {
        Scheme::Bio => &['B', 'I'],
        Scheme::Bioes | Scheme::Auto => &['B', 'I', 'E', 'S'],
    };
    let mut chars = tag.chars();
    let prefix = chars.next();
    let dash = chars.next();
    let entity_type: &str = tag.get(2..).unwrap_or("");
    match (prefix, dash) {
        (Some(p), Some('-')) if allowed.contains(&p) && !entity_type.is_empty() => Ok(()),
        (Some(p), Some('-')) if !entity_type.is_empty() && ['E', 'S'].contains(&p) => Err(format!(
            "tag {tag:?} is BIOES but the scheme was forced to BIO"
        )),
        _ => Err(format!(
            "invalid tag {tag:?}: expected O or {}-TYPE",
            allowed
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("/")
        )),
    }
}

/// The scheme of a tag sequence: BIOES when any tag starts with `E-` or `S-`.
pub fn detect_scheme<'a>(tags: impl IntoIterator<Item = &'a str>) -> Scheme {
    for t in tags {
        if t.starts_with("E-") || t.starts_with("S-") {
            return Scheme::Bioes;
        }
    }
    Scheme::Bio
}

/// Decodes one sentence's tags into chunks, seqeval default mode (see the module doc).
pub fn decode_chunks<S: AsRef<str>>(tags: &[S]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut prev_tag = 'O';
    let mut prev_type: &str = "";
    let mut begin = 0usize;
    // seqeval appends one "O" to close the last chunk.
    let padded = tags.iter().map(AsRef::as_ref).chain(std::iter::once("O"));
    for (i, chunk) in padded.enumerate() {
        let tag = chunk.chars().next().unwrap_or('O');
        // seqeval: `chunk[1:].split('-', maxsplit=1)[-1] or '_'`
        let rest = chunk.get(tag.len_utf8()..).unwrap_or("");
        let ty = match rest.split_once('-') {
            Some((_, t)) => t,
            None => rest,
        };
        let ty = if ty.is_empty() { "_" } else { ty };
        if end_of_chunk(prev_tag, tag, prev_type, ty) {
            chunks.push(Chunk {
                entity_type: prev_type.to_string(),
                start: begin,
                end: i,
            });
        }
        if start_of_chunk(prev_tag, tag, prev_type, ty) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = ty;
    }
    chunks
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != ty)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(tags: &[&str]) -> Vec<(String, usize, usize)> {
        decode_chunks(tags)
            .into_iter()
            .map(|c| (c.entity_type, c.start, c.end))
            .collect()
    }

    #[test]
    fn bio_basic() {
        assert_eq!(
            spans(&["O", "B-LOC", "I-LOC", "O", "B-PER"]),
            vec![("LOC".into(), 1, 3), ("PER".into(), 4, 5)]
        );
    }

    #[test]
    fn dangling_i_starts_a_chunk() {
        // conlleval / seqeval default: I-PER after O starts a PER chunk; I-ORG after I-PER a new one.
        assert_eq!(
            spans(&["O", "I-PER", "I-ORG", "B-LOC", "I-LOC"]),
            vec![
                ("PER".into(), 1, 2),
                ("ORG".into(), 2, 3),
                ("LOC".into(), 3, 5)
            ]
        );
    }

    #[test]
    fn bioes() {
        assert_eq!(
            spans(&["B-LOC", "E-LOC", "S-PER", "O", "B-ORG", "I-ORG", "E-ORG"]),
            vec![
                ("LOC".into(), 0, 2),
                ("PER".into(), 2, 3),
                ("ORG".into(), 4, 7)
            ]
        );
    }

    #[test]
    fn validation() {
        assert!(validate_tag("B-PER", Scheme::Bio).is_ok());
        assert!(validate_tag("X-PER", Scheme::Bio).is_err());
        assert!(validate_tag("BPER", Scheme::Bio).is_err());
        assert!(validate_tag("B-", Scheme::Bio).is_err());
        assert!(validate_tag("S-PER", Scheme::Bio)
            .unwrap_err()
            .contains("forced to BIO"));
        assert!(validate_tag("S-PER", Scheme::Bioes).is_ok());
    }

    #[test]
    fn detect() {
        assert_eq!(detect_scheme(["O", "B-PER", "E-PER"]), Scheme::Bioes);
        assert_eq!(detect_scheme(["O", "B-PER", "I-PER"]), Scheme::Bio);
    }
}
