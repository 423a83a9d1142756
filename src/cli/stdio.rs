//! `-` as a file name: stdout for outputs, stdin for canonical JSONL inputs (`eval --gold -`,
//! `synth smner --gold -`, `import smner --text -`, `import adaseq --ids-from -`). Other readers
//! take folders or need to reopen their file, so they refuse `-` with a hint instead of reading a
//! file literally named `-`. This file must not parse anything but canonical JSONL.

use std::io::Read;
use std::path::Path;

use crate::data::{jsonl, Dataset};

/// Whether a path argument is `-`.
pub fn is_std(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A canonical JSONL input and where it came from.
pub struct CanonicalInput {
    pub dataset: Dataset,
    /// sha256 of the bytes read from stdin (they cannot be read again); `None` for a file, which
    /// [`CanonicalInput::sha256`] hashes only when asked (most `eval`s never need it).
    stdin_sha256: Option<String>,
}

impl CanonicalInput {
    /// sha256 of the input (for `meta.data_hashes`).
    pub fn sha256(&self, path: &Path) -> anyhow::Result<String> {
        match &self.stdin_sha256 {
            Some(h) => Ok(h.clone()),
            None => Ok(crate::run::meta::hash_path(path)?),
        }
    }
}

/// Reads canonical JSONL from a file, or from stdin when the path is `-` (errors then name
/// `<stdin>` and the line).
pub fn read_canonical(path: &Path) -> anyhow::Result<CanonicalInput> {
    if !is_std(path) {
        return Ok(CanonicalInput {
            dataset: jsonl::read_jsonl(path)?,
            stdin_sha256: None,
        });
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| {
        anyhow::anyhow!(
            "<stdin>: cannot read canonical JSONL: {e}\n  hint: pipe UTF-8 JSONL in, or give a file instead of `-`"
        )
    })?;
    Ok(CanonicalInput {
        dataset: jsonl::parse_jsonl(&text, Path::new("<stdin>"))?,
        stdin_sha256: Some(crate::run::meta::sha256_hex(text.as_bytes())),
    })
}

/// Refuses `-` for an input that must be a real file or folder.
pub fn require_file(path: &Path, what: &str) -> anyhow::Result<()> {
    if is_std(path) {
        anyhow::bail!(
            "{what} cannot be `-`: only canonical JSONL inputs can be read from stdin\n  hint: save the data to a file and pass its path"
        );
    }
    Ok(())
}

/// Writes canonical JSONL to a file (atomically), or to stdout when the path is `-`.
pub fn write_canonical(dataset: &Dataset, path: &Path) -> anyhow::Result<()> {
    if is_std(path) {
        super::out(jsonl::to_jsonl(dataset))
    } else {
        Ok(jsonl::write_jsonl(dataset, path)?)
    }
}
