//! Tag schemes (BIO, BIOES) and chunk decoding exactly as seqeval 1.2.2, in its two modes:
//! - default (`seqeval.metrics.sequence_labeling.get_entities`, conlleval semantics): an `I-X`
//!   that does not continue an `X` chunk starts a new one, and `E-`/`S-` close chunks, so the same
//!   decoder reads BIO and BIOES;
//! - strict (`mode="strict"`, `seqeval.scheme.Tokens.entities` with IOB2 for BIO and IOBES for
//!   BIOES): a chunk starts only at `B-` (or `S-`), continues with `I-` (or `E-`) of its type, and
//!   counts only when it is closed properly; anything else is dropped.
//!
//! Tags are validated first; seqeval only warns on a bad tag (default mode), we refuse it. This
//! module must not know about files: readers add file and line to errors.

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

/// How tags become chunks (`--decode`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Decode {
    /// seqeval's default mode (conlleval): lenient, dangling `I-` starts a chunk.
    #[default]
    Default,
    /// seqeval's `mode="strict"` (IOB2 for BIO, IOBES for BIOES): ill-formed chunks are dropped.
    Strict,
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

/// Decodes one sentence's tags in a mode. `scheme` picks the strict scheme (IOB2 for BIO, IOBES
/// for BIOES; `Auto` detects from this sentence's tags); the default mode ignores it.
pub fn decode_tags<S: AsRef<str>>(tags: &[S], scheme: Scheme, decode: Decode) -> Vec<Chunk> {
    match decode {
        Decode::Default => decode_chunks(tags),
        Decode::Strict => {
            let scheme = match scheme {
                Scheme::Auto => detect_scheme(tags.iter().map(AsRef::as_ref)),
                s => s,
            };
            decode_chunks_strict(tags, scheme)
        }
    }
}

/// One tag as seqeval's `Token`: the prefix letter and `token[1:].strip('-') or '_'`.
#[derive(Clone, Copy)]
struct StrictToken<'a> {
    prefix: char,
    tag: &'a str,
}

impl<'a> StrictToken<'a> {
    fn parse(token: &'a str) -> Self {
        let prefix = token.chars().next().unwrap_or('O');
        let rest = token.get(prefix.len_utf8()..).unwrap_or("");
        let tag = rest.trim_matches('-');
        StrictToken {
            prefix,
            tag: if tag.is_empty() { "_" } else { tag },
        }
    }
}

const OUTSIDE: StrictToken<'static> = StrictToken {
    prefix: 'O',
    tag: "_",
};

/// seqeval's `start_patterns`: IOB2 `(ANY, B)`, IOBES `(ANY, B)`, `(ANY, S)`.
fn strict_is_start(bioes: bool, cur: StrictToken<'_>) -> bool {
    cur.prefix == 'B' || (bioes && cur.prefix == 'S')
}

/// `inside_patterns`: `(B|I, I)` same type; IOBES adds `(B|I, E)` same type.
fn strict_is_inside(bioes: bool, prev: StrictToken<'_>, cur: StrictToken<'_>) -> bool {
    matches!(prev.prefix, 'B' | 'I')
        && (cur.prefix == 'I' || (bioes && cur.prefix == 'E'))
        && prev.tag == cur.tag
}

/// `end_patterns` (does `prev` end a chunk, given `cur`?). IOB2: `(I|B, O)`, `(I|B, B)`,
/// `(I|B, I)` of another type. IOBES: `(S, ANY)`, `(E, ANY)`.
fn strict_is_end(bioes: bool, prev: StrictToken<'_>, cur: StrictToken<'_>) -> bool {
    if bioes {
        matches!(prev.prefix, 'S' | 'E')
    } else {
        matches!(prev.prefix, 'I' | 'B')
            && (matches!(cur.prefix, 'O' | 'B') || (cur.prefix == 'I' && prev.tag != cur.tag))
    }
}

/// seqeval 1.2.2 `Tokens.entities` in strict mode, step for step (its `_forward` and `_is_end`).
pub fn decode_chunks_strict<S: AsRef<str>>(tags: &[S], scheme: Scheme) -> Vec<Chunk> {
    let bioes = scheme == Scheme::Bioes;
    let ext: Vec<StrictToken<'_>> = tags
        .iter()
        .map(|t| StrictToken::parse(t.as_ref()))
        .chain(std::iter::once(OUTSIDE))
        .collect();
    let mut chunks = Vec::new();
    let mut i = 0usize;
    // seqeval also tracks `prev`, but strict start patterns accept any previous prefix.
    while i < ext.len() {
        let tok = ext[i];
        if strict_is_start(bioes, tok) {
            // _forward: the first index that does not continue the chunk.
            let mut end = tags.len().saturating_sub(1);
            let mut last = tok;
            for (j, t) in ext.iter().enumerate().skip(i + 1) {
                if strict_is_inside(bioes, last, *t) {
                    last = *t;
                } else {
                    end = j;
                    break;
                }
            }
            if end >= 1 && strict_is_end(bioes, ext[end - 1], ext[end]) {
                chunks.push(Chunk {
                    entity_type: tok.tag.to_string(),
                    start: i,
                    end,
                });
            }
            // seqeval sets i = end; a zero-progress step cannot happen because end > i.
            i = end.max(i + 1);
        } else {
            i += 1;
        }
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

    fn strict(tags: &[&str], scheme: Scheme) -> Vec<(String, usize, usize)> {
        decode_chunks_strict(tags, scheme)
            .into_iter()
            .map(|c| (c.entity_type, c.start, c.end))
            .collect()
    }

    #[test]
    fn strict_iob2_drops_dangling_i() {
        // seqeval strict IOB2: I-PER after O and I-ORG after it start nothing.
        assert_eq!(
            strict(&["O", "I-PER", "I-ORG", "B-LOC", "I-LOC"], Scheme::Bio),
            vec![("LOC".into(), 3, 5)]
        );
        assert_eq!(
            strict(&["B-PER", "I-LOC", "B-ORG"], Scheme::Bio),
            vec![("PER".into(), 0, 1), ("ORG".into(), 2, 3)]
        );
    }

    #[test]
    fn strict_iobes_needs_a_proper_end() {
        // B-LOC I-LOC then O: not closed by E-, dropped; S- alone is a chunk.
        assert_eq!(
            strict(
                &["B-LOC", "I-LOC", "O", "S-PER", "B-ORG", "E-ORG"],
                Scheme::Bioes
            ),
            vec![("PER".into(), 3, 4), ("ORG".into(), 4, 6)]
        );
        assert_eq!(strict(&["B-LOC", "E-PER"], Scheme::Bioes), vec![]);
        // Default mode keeps what strict drops.
        assert_eq!(
            decode_tags(&["I-PER"], Scheme::Bio, Decode::Default).len(),
            1
        );
        assert!(decode_tags(&["I-PER"], Scheme::Auto, Decode::Strict).is_empty());
    }

    #[test]
    fn detect() {
        assert_eq!(detect_scheme(["O", "B-PER", "E-PER"]), Scheme::Bioes);
        assert_eq!(detect_scheme(["O", "B-PER", "I-PER"]), Scheme::Bio);
    }
}
