//! Versioned prompt templates and the parsing of the LLM's replies.
//!
//! A template is a text file with comment lines (`#`) first, then a `[system]` and a `[user]`
//! section, each header on its own line. `{tweet}`, `{entity}` and `{type}` are replaced in one
//! pass (a `{type}` inside an entity's text is not expanded again); other braces stay as they are.
//! Built-in templates live in `src/llm/prompts/` and are compiled in with `include_str!`; their
//! version is their name's suffix (`reformulate-v1` → `v1`). A template loaded from a file is
//! versioned by the sha256 of its bytes, so editing it invalidates cached replies.
//!
//! Replies are normalised to RiVEG's entity expansion expression, `Entity(TYPE)-description`
//! (e.g. `Angelina Jolie(PER)-A prominent actress ...`), on one line.
//!
//! This module must not do IO beyond reading a template file.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::client::ChatMessage;
use super::error::LlmError;
use crate::data::model::Tweet;

const REFORMULATE_V1: &str = include_str!("prompts/reformulate-v1.txt");

/// A chat prompt with `{tweet}`, `{entity}` and `{type}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    /// E.g. `reformulate`, or a file's stem.
    pub name: String,
    /// E.g. `v1`, or the first 12 hex digits of a file's sha256.
    pub version: String,
    /// The system message; empty → no system message is sent.
    pub system: String,
    /// The user message; always contains `{entity}`.
    pub user: String,
}

impl Default for PromptTemplate {
    fn default() -> Self {
        PromptTemplate::reformulate_v1()
    }
}

impl PromptTemplate {
    /// Ids accepted by [`PromptTemplate::builtin`].
    pub const BUILTIN_IDS: [&'static str; 1] = ["reformulate-v1"];

    /// The default reformulation prompt (`src/llm/prompts/reformulate-v1.txt`).
    pub fn reformulate_v1() -> Self {
        // The file is part of the crate and covered by a unit test, so this cannot fail at run time.
        PromptTemplate::parse(
            "reformulate",
            "v1",
            REFORMULATE_V1,
            "prompts/reformulate-v1.txt",
        )
        .expect("the built-in prompt template prompts/reformulate-v1.txt is valid")
    }

    /// A built-in template by id (`reformulate-v1`; `reformulate` means the latest version).
    pub fn builtin(id: &str) -> Option<Self> {
        match id {
            "reformulate" | "reformulate-v1" => Some(PromptTemplate::reformulate_v1()),
            _ => None,
        }
    }

    /// A built-in id, or else a path to a template file.
    pub fn resolve(id_or_path: &str) -> Result<Self, LlmError> {
        match PromptTemplate::builtin(id_or_path) {
            Some(t) => Ok(t),
            None => PromptTemplate::from_file(Path::new(id_or_path)),
        }
    }

    /// Loads a template file; its name is the file stem, its version the sha256 prefix.
    pub fn from_file(path: &Path) -> Result<Self, LlmError> {
        PromptTemplate::from_file_requiring(path, &["{entity}"])
    }

    /// [`PromptTemplate::from_file`] for a template whose `[user]` section must hold each of
    /// `required` (e.g. `{tweet}` for the MLLM prompt).
    pub fn from_file_requiring(path: &Path, required: &[&str]) -> Result<Self, LlmError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| LlmError::Template {
            path: shown.clone(),
            what: format!("cannot read it: {e}"),
            hint: format!(
                "give a built-in template ({}) or the path of a template file",
                PromptTemplate::BUILTIN_IDS.join(", ")
            ),
        })?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| LlmError::Template {
            path: shown.clone(),
            what: "it is not UTF-8 text".to_string(),
            hint: "save the template as UTF-8".to_string(),
        })?;
        let digest = Sha256::digest(&bytes);
        let version: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".to_string());
        PromptTemplate::parse_requiring(&name, &version, &text, &shown, required)
    }

    /// Parses template text (`origin` names it in errors); the `[user]` section must hold
    /// `{entity}`.
    pub fn parse(name: &str, version: &str, text: &str, origin: &str) -> Result<Self, LlmError> {
        PromptTemplate::parse_requiring(name, version, text, origin, &["{entity}"])
    }

    /// [`PromptTemplate::parse`] with the placeholders the `[user]` section must hold.
    pub fn parse_requiring(
        name: &str,
        version: &str,
        text: &str,
        origin: &str,
        required: &[&str],
    ) -> Result<Self, LlmError> {
        let error = |what: &str| LlmError::Template {
            path: origin.to_string(),
            what: what.to_string(),
            hint: format!(
                "a template is comment lines (#), then a line `[system]`, the system message, \
                 a line `[user]` and the user message with {}; see the built-in templates in \
                 src/llm/prompts/",
                required.join(", ")
            ),
        };
        // sections[0]: system, sections[1]: user; None until its header is seen.
        let mut sections: [Option<Vec<&str>>; 2] = [None, None];
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let header = match line.trim_end() {
                "[system]" => Some(0),
                "[user]" => Some(1),
                _ => None,
            };
            match (header, current) {
                (Some(i), _) => {
                    if sections[i].is_some() {
                        return Err(error("it has a section header twice"));
                    }
                    sections[i] = Some(Vec::new());
                    current = Some(i);
                }
                (None, Some(i)) => sections[i].get_or_insert_with(Vec::new).push(line),
                (None, None) if line.trim().is_empty() || line.starts_with('#') => {}
                (None, None) => {
                    return Err(error(
                        "it has text before the first [system] or [user] line",
                    ))
                }
            }
        }
        let [system, user] = sections;
        let join = |lines: Option<Vec<&str>>| lines.map(|l| l.join("\n").trim().to_string());
        let system = join(system).unwrap_or_default();
        let Some(user) = join(user).filter(|u| !u.is_empty()) else {
            return Err(error("it has no [user] section, or an empty one"));
        };
        if let Some(missing) = required.iter().find(|p| !user.contains(**p)) {
            return Err(error(&format!(
                "its [user] section lacks the {missing} placeholder"
            )));
        }
        Ok(PromptTemplate {
            name: name.to_string(),
            version: version.to_string(),
            system,
            user,
        })
    }

    /// `name@version`, as recorded in results and cache entries.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The messages for one entity. Line breaks in the inputs become spaces, so each placeholder
    /// stays on its line.
    pub fn render(&self, tweet: &str, entity: &str, entity_type: &str) -> Vec<ChatMessage> {
        let values = [
            ("{tweet}", one_line(tweet)),
            ("{entity}", one_line(entity)),
            ("{type}", one_line(entity_type)),
        ];
        let mut messages = Vec::with_capacity(2);
        if !self.system.is_empty() {
            messages.push(ChatMessage::system(fill(&self.system, &values)));
        }
        messages.push(ChatMessage::user(fill(&self.user, &values)));
        messages
    }

    /// The system and user texts with `values` (`("{name}", value)`) filled in one pass; other
    /// braces stay as they are. The system text is empty when the template has none.
    pub fn fill_with(&self, values: &[(&str, String)]) -> (String, String) {
        (fill(&self.system, values), fill(&self.user, values))
    }
}

/// The tweet's text: its tokens joined by single spaces (empty when the source has no tokens).
pub fn tweet_text(tweet: &Tweet) -> String {
    tweet
        .tokens
        .as_deref()
        .map(|t| t.join(" "))
        .unwrap_or_default()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces each placeholder in one left-to-right pass.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        match values.iter().find(|(key, _)| tail.starts_with(key)) {
            Some((key, value)) => {
                out.push_str(value);
                rest = &tail[key.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Normalises a reply to `Entity(TYPE)-description` on one line: collapses whitespace, strips
/// surrounding quotes and an `Answer:` label, replaces an `Entity(ANY)` header the model wrote
/// (keeping the tagger's type), and prefixes `Entity(TYPE)-` otherwise. `None` when nothing of a
/// description is left: callers report it as [`LlmError::EmptyReply`].
pub fn parse_expansion(reply: &str, entity: &str, entity_type: &str) -> Option<String> {
    let mut text = one_line(reply);
    loop {
        let before = text.len();
        text = strip_quotes(&text).to_string();
        text = strip_label(&text).to_string();
        if text.len() == before {
            break;
        }
    }
    let entity = one_line(entity);
    let description = strip_header(&text, &entity).unwrap_or(&text);
    let description = description
        .trim_start_matches(['-', '–', '—', ':', ' '])
        .trim();
    let description = strip_quotes(description).trim();
    if description.is_empty() {
        return None;
    }
    Some(format!("{entity}({})-{description}", one_line(entity_type)))
}

/// Strips one pair of matching quotes around the whole text.
fn strip_quotes(text: &str) -> &str {
    const PAIRS: [(char, char); 5] = [('"', '"'), ('\'', '\''), ('`', '`'), ('“', '”'), ('‘', '’')];
    let text = text.trim();
    for (open, close) in PAIRS {
        if let Some(inner) = text.strip_prefix(open).and_then(|t| t.strip_suffix(close)) {
            return inner.trim();
        }
    }
    text
}

/// Strips a leading `Answer:` / `Expression:` / `Output:` label (any case).
fn strip_label(text: &str) -> &str {
    for label in ["answer:", "expression:", "output:"] {
        if let Some(head) = text.get(..label.len()) {
            if head.eq_ignore_ascii_case(label) {
                return text[label.len()..].trim_start();
            }
        }
    }
    text
}

/// The text after an `Entity(ANY)` header (entity compared ignoring ASCII case), if present.
fn strip_header<'a>(text: &'a str, entity: &str) -> Option<&'a str> {
    let head = text.get(..entity.len())?;
    if !head.eq_ignore_ascii_case(entity) {
        return None;
    }
    let after = text[entity.len()..].trim_start().strip_prefix('(')?;
    let close = after.find(')')?;
    // A type tag is short; a longer parenthesis is part of the description.
    (close <= 24).then(|| &after[close + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_template_parses_and_renders() {
        let t = PromptTemplate::reformulate_v1();
        assert_eq!(t.id(), "reformulate@v1");
        assert!(t.system.contains("Entity(TYPE)-description"));
        let messages = t.render("Angelina Jolie slams\nTrump", "Angelina Jolie", "PER");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].role, "system");
        assert!(messages[1]
            .content
            .ends_with("Tweet: Angelina Jolie slams Trump\nEntity: Angelina Jolie\nType: PER"));
    }

    #[test]
    fn placeholders_are_filled_in_one_pass() {
        let t = PromptTemplate::parse("t", "1", "[user]\n{entity}/{type}/{other}", "t").unwrap();
        let m = t.render("", "a {type} b", "PER");
        assert_eq!(m.len(), 1, "no system message when [system] is absent");
        assert_eq!(m[0].content, "a {type} b/PER/{other}");
    }

    #[test]
    fn bad_templates_are_rejected() {
        for text in [
            "",
            "[system]\nhello",
            "[user]\nno placeholder",
            "junk\n[user]\n{entity}",
        ] {
            assert!(
                matches!(
                    PromptTemplate::parse("t", "1", text, "t.txt"),
                    Err(LlmError::Template { .. })
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn file_template_is_versioned_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.txt");
        std::fs::write(&path, "# c\n[system]\nS\n[user]\nE={entity}\n").unwrap();
        let a = PromptTemplate::from_file(&path).unwrap();
        std::fs::write(&path, "[system]\nS2\n[user]\nE={entity}\n").unwrap();
        let b = PromptTemplate::from_file(&path).unwrap();
        assert_eq!(a.name, "mine");
        assert_eq!(a.version.len(), 12);
        assert_ne!(a.version, b.version);
        let missing = PromptTemplate::from_file(&dir.path().join("nope.txt")).unwrap_err();
        assert!(missing.to_string().contains("nope.txt"), "{missing}");
    }

    #[test]
    fn replies_are_normalised() {
        let p = |r: &str| parse_expansion(r, "Angelina Jolie", "PER");
        let want = "Angelina Jolie(PER)-A prominent actress.";
        assert_eq!(p(want).as_deref(), Some(want));
        assert_eq!(
            p("  \"Angelina Jolie(PER)-A prominent actress.\"\n").as_deref(),
            Some(want)
        );
        assert_eq!(
            p("Answer: Angelina Jolie(PER)-A prominent actress.").as_deref(),
            Some(want)
        );
        assert_eq!(p("A prominent actress.").as_deref(), Some(want));
        assert_eq!(p("“A prominent\nactress.”").as_deref(), Some(want));
        assert_eq!(
            p("Angelina Jolie (PER) - A prominent actress.").as_deref(),
            Some(want)
        );
        // The tagger's type wins over the one the model wrote.
        assert_eq!(
            p("angelina jolie(ORG)-A prominent actress.").as_deref(),
            Some(want)
        );
        // A long parenthesis is description, not a type tag.
        assert_eq!(
            p("Angelina Jolie (born 1975 in Los Angeles, California) is an actress").as_deref(),
            Some("Angelina Jolie(PER)-Angelina Jolie (born 1975 in Los Angeles, California) is an actress")
        );
        for empty in ["", "  \n ", "\"\"", "Angelina Jolie(PER)-", "Answer: ''"] {
            assert_eq!(p(empty), None, "{empty:?}");
        }
    }
}
