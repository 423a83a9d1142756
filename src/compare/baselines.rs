//! Published result tables (`baselines/published/*.toml`), compiled in with `include_str!` so the
//! binary needs no files around it. Numbers are stored as published (percent) and handed out as
//! fractions, like every other score in riveg-bench. This module must not read files at run time.
//!
//! Slugs name rows on the command line: the lowercase method name with every run of
//! non-alphanumeric characters turned into `-`, `†` written `-dagger` (`riveg-roberta-dagger`,
//! `h-index`, `scanner`). See baselines/README.md for the format and the full list.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// `(file name, contents)` of every compiled-in table, in display order.
const PUBLISHED_FILES: &[(&str, &str)] = &[
    (
        "li2024-llms-as-bridges-main.toml",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/baselines/published/li2024-llms-as-bridges-main.toml"
        )),
    ),
    (
        "secondary-later-papers.toml",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/baselines/published/secondary-later-papers.toml"
        )),
    ),
];

/// The protocol name of rows scored with the RiVEG seed protocol.
pub const RIVEG_PROTOCOL: &str = "riveg";

/// Where a table comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedSource {
    pub id: String,
    pub title: String,
    pub authors: String,
    pub venue: String,
    /// Which table or figure, in words.
    pub table: String,
    /// arXiv id, empty when none.
    pub arxiv: String,
    pub url: String,
    #[serde(default)]
    pub also: Vec<String>,
    pub dataset: String,
    pub units: String,
    /// Quoted by a later paper, not checked against the original.
    pub secondary: bool,
    #[serde(default)]
    pub notes: String,
}

/// Precision / recall / F1 of one task as fractions (`None` where the source gives no number).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PublishedPrf {
    #[serde(default, rename = "p")]
    pub precision: Option<f64>,
    #[serde(default, rename = "r")]
    pub recall: Option<f64>,
    #[serde(default)]
    pub f1: Option<f64>,
}

impl PublishedPrf {
    /// The value of `precision`, `recall` or `f1`.
    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "precision" => self.precision,
            "recall" => self.recall,
            "f1" => self.f1,
            _ => None,
        }
    }
    fn percent_to_fraction(self) -> PublishedPrf {
        PublishedPrf {
            precision: self.precision.map(|v| v / 100.0),
            recall: self.recall.map(|v| v / 100.0),
            f1: self.f1.map(|v| v / 100.0),
        }
    }
}

/// One row of a published table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedRow {
    pub slug: String,
    /// As printed in the paper.
    pub method: String,
    pub citation: String,
    pub group: String,
    /// A key of the table's `protocols` (`riveg` = the RiVEG seed protocol).
    pub protocol: String,
    #[serde(default)]
    pub gmner: Option<PublishedPrf>,
    #[serde(default)]
    pub mner: Option<PublishedPrf>,
    #[serde(default)]
    pub eeg: Option<PublishedPrf>,
}

impl PublishedRow {
    /// Scores of `mner`, `eeg` or `gmner` (fractions).
    pub fn task(&self, task: &str) -> Option<&PublishedPrf> {
        match task {
            "mner" => self.mner.as_ref(),
            "eeg" => self.eeg.as_ref(),
            "gmner" => self.gmner.as_ref(),
            _ => None,
        }
    }

    /// `Method (Citation)`, or the method alone when the citation is the table's own paper.
    pub fn display_name(&self) -> String {
        if self.citation.is_empty() || self.group == "RiVEG" || self.citation == "secondary source"
        {
            self.method.clone()
        } else {
            format!("{} ({})", self.method, self.citation)
        }
    }

    pub fn is_riveg_protocol(&self) -> bool {
        self.protocol == RIVEG_PROTOCOL
    }
}

/// One published table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedTable {
    pub source: PublishedSource,
    /// Protocol name → what it means.
    pub protocols: BTreeMap<String, String>,
    pub rows: Vec<PublishedRow>,
}

impl PublishedTable {
    /// What a row's protocol means, for notes under tables.
    pub fn protocol_note(&self, row: &PublishedRow) -> &str {
        self.protocols
            .get(&row.protocol)
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// A published table that does not parse or breaks a rule of baselines/README.md.
#[derive(Debug, thiserror::Error)]
#[error("baselines/published/{file}: {why}\n  hint: see baselines/README.md for the format")]
pub struct PublishedTableError {
    pub file: String,
    pub why: String,
}

/// Parses one table file (percent) into fractions and checks it.
pub fn parse_table(file: &str, text: &str) -> Result<PublishedTable, PublishedTableError> {
    let err = |why: String| PublishedTableError {
        file: file.to_string(),
        why,
    };
    let mut t: PublishedTable = toml::from_str(text).map_err(|e| err(e.to_string()))?;
    for row in &mut t.rows {
        if !is_slug(&row.slug) {
            return Err(err(format!(
                "row {:?}: slug {:?} is not lowercase-with-dashes",
                row.method, row.slug
            )));
        }
        if !t.protocols.contains_key(&row.protocol) {
            return Err(err(format!(
                "row {}: protocol {:?} is not declared in [protocols]",
                row.slug, row.protocol
            )));
        }
        for prf in [&mut row.gmner, &mut row.mner, &mut row.eeg]
            .into_iter()
            .flatten()
        {
            for v in [prf.precision, prf.recall, prf.f1].into_iter().flatten() {
                if !(0.0..=100.0).contains(&v) {
                    return Err(err(format!("row {}: {v} is not a percentage", row.slug)));
                }
            }
            *prf = prf.percent_to_fraction();
        }
    }
    Ok(t)
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A slug from a method name (the rule of the module doc).
pub fn slugify(method: &str) -> String {
    let mut out = String::new();
    for c in method.replace('†', " dagger").chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Every compiled-in published table, in display order (the main table first).
///
/// The tables are checked by unit tests at build time of the test suite, so a failure here is a
/// bug in a committed file, not a user error.
pub fn published() -> &'static [PublishedTable] {
    static TABLES: OnceLock<Vec<PublishedTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        PUBLISHED_FILES
            .iter()
            .map(|(file, text)| {
                parse_table(file, text).unwrap_or_else(|e| panic!("compiled-in baseline: {e}"))
            })
            .collect()
    })
}

/// A published row by slug, with its table.
pub fn find_published(slug: &str) -> Option<(&'static PublishedTable, &'static PublishedRow)> {
    published()
        .iter()
        .flat_map(|t| t.rows.iter().map(move |r| (t, r)))
        .find(|(_, r)| r.slug == slug)
}

/// Every slug, in display order.
pub fn published_slugs() -> Vec<&'static str> {
    published()
        .iter()
        .flat_map(|t| t.rows.iter().map(|r| r.slug.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_parses_and_slugs_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (file, text) in PUBLISHED_FILES {
            let t = parse_table(file, text).unwrap();
            assert_eq!(format!("{}.toml", t.source.id), *file);
            for r in &t.rows {
                assert!(seen.insert(r.slug.clone()), "duplicate slug {}", r.slug);
                assert_eq!(slugify(&r.method), r.slug, "slug rule for {}", r.method);
            }
        }
        assert_eq!(seen.len(), 17);
    }

    #[test]
    fn headline_row_is_the_released_system_in_fractions() {
        let (table, row) = find_published("riveg-roberta-dagger").unwrap();
        assert!(!table.source.secondary);
        assert_eq!(table.source.arxiv, "2402.09989");
        assert!(row.is_riveg_protocol());
        let g = row.gmner.unwrap();
        assert!((g.f1.unwrap() - 0.6706).abs() < 1e-12);
        assert!((row.mner.unwrap().precision.unwrap() - 0.8571).abs() < 1e-12);
        let (_, h) = find_published("h-index").unwrap();
        assert_eq!(h.protocol, "as-reported");
        assert!((h.gmner.unwrap().f1.unwrap() - 0.5641).abs() < 1e-12);
    }

    #[test]
    fn secondary_rows_have_f1_only() {
        let (table, row) = find_published("mcr").unwrap();
        assert!(table.source.secondary);
        let g = row.gmner.unwrap();
        assert_eq!((g.precision, g.recall), (None, None));
        assert!((g.f1.unwrap() - 0.706).abs() < 1e-12);
        assert!(row.mner.is_none());
        assert!(find_published("scanner").is_some());
        assert!(find_published("nope").is_none());
    }

    #[test]
    fn bad_tables_are_rejected_with_the_file() {
        let bad = "[source]\nid='x'\ntitle=''\nauthors=''\nvenue=''\ntable=''\narxiv=''\nurl=''\ndataset=''\nunits='percent'\nsecondary=false\n[protocols]\nriveg='r'\n[[rows]]\nslug='a'\nmethod='A'\ncitation=''\ngroup=''\nprotocol='other'\n";
        let e = parse_table("x.toml", bad).unwrap_err();
        assert!(
            e.to_string().contains("x.toml") && e.to_string().contains("not declared"),
            "{e}"
        );
    }
}
