//! `riveg-bench list suites|variants|baselines|formats|prompts`: the names other commands accept,
//! read from the same places those commands read them (compiled-in suite and baselines, the
//! `suites/` folder, the saved-baseline store, the clap tree). This file only gathers names; it
//! must not load data or run anything.

use std::path::Path;

use clap::{CommandFactory, ValueEnum};
use serde::Serialize;

use crate::compare::baselines::published;
use crate::compare::saved::saved_root;
use crate::run::Suite;

/// What `list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Listing {
    /// The built-in suite and the suites/*.toml files of the current directory.
    Suites,
    /// The variants of a suite (--suite, default: the built-in one).
    Variants,
    /// Published rows (compiled in) and saved baselines (baselines/saved or $RIVEG_BENCH_BASELINE_DIR).
    Baselines,
    /// Input formats (`import` commands, suite sources) and output formats.
    Formats,
    /// Built-in prompt templates of the LLM stages.
    Prompts,
}

/// One listed name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// What to type (a file, a variant name, a slug, a format, a prompt id).
    pub name: String,
    /// What it is, for people.
    pub detail: String,
}

fn entry(name: impl Into<String>, detail: impl Into<String>) -> Entry {
    Entry {
        name: name.into(),
        detail: detail.into(),
    }
}

/// The entries of a listing.
pub fn list(what: Listing, suite: Option<&Path>) -> anyhow::Result<Vec<Entry>> {
    Ok(match what {
        Listing::Suites => suites(Path::new("suites")),
        Listing::Variants => {
            let suite = match suite {
                Some(p) => Suite::load(p)?,
                None => Suite::default_suite()?,
            };
            suite
                .file
                .variants
                .iter()
                .map(|v| {
                    let stages = v
                        .stages()
                        .iter()
                        .map(|(s, k)| format!("{}={}", s.name(), kind_name(*k)))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let detail = if v.description.is_empty() {
                        stages
                    } else {
                        format!("{stages}: {}", v.description)
                    };
                    entry(&v.name, detail)
                })
                .collect()
        }
        Listing::Baselines => baselines(&saved_root()),
        Listing::Formats => formats(),
        Listing::Prompts => crate::llm::prompt::PromptTemplate::BUILTIN_IDS
            .iter()
            .map(|id| entry(*id, "reformulation prompt (reformulator = \"llm\")"))
            .chain(
                crate::llm::mllm::BUILTIN_PROMPTS
                    .iter()
                    .map(|id| entry(*id, "multimodal LLM prompt (tagger = \"mllm\")")),
            )
            .chain(
                crate::pipeline::llm_stages::KNOWLEDGE_PROMPTS.iter().map(|id| {
                    let detail = if id.contains("caption") {
                        "knowledge prompt with an image caption (knowledge = \"llm\", [llm] knowledge_captions)"
                    } else {
                        "knowledge prompt (knowledge = \"llm\")"
                    };
                    entry(*id, detail)
                }),
            )
            .collect(),
    })
}

/// `onnx`, `replay`, ...: the name a suite file uses.
fn kind_name(k: crate::stage::StageKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{k:?}"))
}

/// The built-in suite, then every `*.toml` in `dir` (sorted), each with its name and variant
/// count, or why it does not load.
pub fn suites(dir: &Path) -> Vec<Entry> {
    let describe = |s: &Suite| {
        format!(
            "suite {:?}, {} variants{}",
            s.file.name,
            s.file.variants.len(),
            if s.file.description.is_empty() {
                String::new()
            } else {
                format!(": {}", s.file.description.trim())
            }
        )
    };
    let mut out = vec![match Suite::default_suite() {
        Ok(s) => entry("(built-in)", describe(&s)),
        Err(e) => entry("(built-in)", format!("invalid: {e}")),
    }];
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in files {
        let detail = match Suite::load(&f) {
            Ok(s) => describe(&s),
            Err(e) => format!("invalid: {}", e.to_string().lines().next().unwrap_or("")),
        };
        out.push(entry(f.display().to_string(), detail));
    }
    out
}

/// Published rows by slug, then the saved baselines under `saved_dir` (sorted).
pub fn baselines(saved_dir: &Path) -> Vec<Entry> {
    let mut out: Vec<Entry> = published()
        .iter()
        .flat_map(|t| t.rows.iter())
        .map(|r| {
            entry(
                format!("published:{}", r.slug),
                format!("{} [{} protocol]", r.display_name(), r.protocol),
            )
        })
        .collect();
    let mut saved: Vec<String> = std::fs::read_dir(saved_dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("results.json").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    saved.sort();
    out.extend(
        saved
            .into_iter()
            .map(|n| entry(&n, format!("saved in {}", saved_dir.join(&n).display()))),
    );
    out
}

/// `import` subcommands (from the clap tree, so the list cannot drift), suite source formats,
/// and output formats.
pub fn formats() -> Vec<Entry> {
    let cli = super::Cli::command();
    let mut out: Vec<Entry> = cli
        .find_subcommand("import")
        .map(|import| {
            import
                .get_subcommands()
                .map(|c| {
                    entry(
                        format!("import {}", c.get_name()),
                        c.get_about().map(|a| a.to_string()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.extend(crate::run::sources::FORMATS.iter().map(|f| {
        entry(
            format!("suite source {f}"),
            "format = \"...\" of [data.gold] / [data.replay] in a suite",
        )
    }));
    out.push(entry(
        "--format human|json",
        "output of eval, run, merge, compare, aggregate, list",
    ));
    out.push(entry(
        "report --format md|csv|latex",
        "the main results table on stdout",
    ));
    out
}

/// Entries as aligned `name  detail` lines.
pub fn render_human(entries: &[Entry]) -> String {
    let width = entries
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0);
    entries
        .iter()
        .map(|e| format!("{:width$}  {}\n", e.name, e.detail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_repository_suites_and_prompts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let s = suites(&root.join("suites"));
        assert_eq!(s[0].name, "(built-in)");
        assert!(s[0].detail.starts_with("suite "), "{:?}", s[0]);
        assert!(s.iter().any(|e| e.name.ends_with("smoke.toml")), "{s:?}");
        let p = list(Listing::Prompts, None).unwrap();
        let ids: Vec<&str> = p.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            ids,
            [
                "reformulate-v1",
                "gmner-mllm-v1",
                "knowledge-v1",
                "knowledge-caption-v1"
            ]
        );
        // Every listed knowledge prompt resolves.
        for id in &ids[2..] {
            crate::pipeline::llm_stages::knowledge_prompt(id, root).unwrap();
        }
    }

    #[test]
    fn baselines_include_published_rows_and_saved_ones() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("mine")).unwrap();
        std::fs::write(tmp.path().join("mine/results.json"), "{}").unwrap();
        // A folder without results.json is not a baseline.
        std::fs::create_dir_all(tmp.path().join("half")).unwrap();
        let b = baselines(tmp.path());
        assert!(
            b.iter().any(|e| e.name == "published:riveg-roberta-dagger"),
            "{b:?}"
        );
        let saved: Vec<&str> = b
            .iter()
            .filter(|e| !e.name.starts_with("published:"))
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(saved, ["mine"]);
    }

    #[test]
    fn formats_come_from_the_import_commands() {
        let f = formats();
        for name in [
            "import gmner",
            "import conll",
            "import riveg-ofa",
            "suite source jsonl",
        ] {
            assert!(f.iter().any(|e| e.name == name), "{name} missing: {f:?}");
        }
    }
}
