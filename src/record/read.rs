//! Reading recordings back: JSON Lines of HAR entries (what `--record` writes, rotated files
//! included), or a browser's `.har` export. A line or entry that does not parse is reported
//! with its line number (or entry index) and skipped, never fatal: a recording cut short by
//! a crash still replays.

use super::har::{Entry, HarFile};
use std::path::Path;

/// Every entry that was read, and what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Entries in file order.
    pub entries: Vec<Entry>,
    /// Lines (or browser-HAR entries) that did not parse.
    pub skipped: Vec<Skipped>,
}

/// One line that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The file it came from.
    pub file: String,
    /// 1-based line number (JSON Lines), or 1-based entry index (a browser's `.har`).
    pub line: usize,
    /// The parser's words.
    pub reason: String,
}

/// Why a recording could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
pub struct ReadError {
    /// The file.
    pub path: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

impl Loaded {
    /// Reads one file and adds its entries.
    pub fn read_file(&mut self, path: &Path) -> Result<(), ReadError> {
        let bytes = std::fs::read(path).map_err(|source| ReadError {
            path: path.display().to_string(),
            source,
        })?;
        // A line cut mid-character by a crash is a corrupt line, not an unreadable file.
        let text = String::from_utf8_lossy(&bytes);
        self.read_text(&path.display().to_string(), &text);
        Ok(())
    }

    /// Reads one recording's text (`file` names it in skip reports).
    pub fn read_text(&mut self, file: &str, text: &str) {
        if let Some(har) = browser_har(text) {
            for (index, value) in har.log.entries.into_iter().enumerate() {
                match serde_json::from_value::<Entry>(value) {
                    Ok(entry) => self.entries.push(entry),
                    Err(error) => self.skipped.push(Skipped {
                        file: file.to_string(),
                        line: index + 1,
                        reason: format!("entry {}: {error}", index + 1),
                    }),
                }
            }
            return;
        }
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(line) {
                Ok(entry) => self.entries.push(entry),
                Err(error) => self.skipped.push(Skipped {
                    file: file.to_string(),
                    line: index + 1,
                    reason: error.to_string(),
                }),
            }
        }
    }
}

/// The file as a browser's export, when it is one: a single JSON object with `log`. A JSON
/// Lines file fails this at once (its first line is an entry, with no `log`).
fn browser_har(text: &str) -> Option<HarFile> {
    let start = text.trim_start();
    if !start.starts_with('{') {
        return None;
    }
    // Cheap test first: an entry line starts with its own fields, never `"log"`.
    let head = start.get(..start.len().min(4096)).unwrap_or(start);
    if !head.contains("\"log\"") {
        return None;
    }
    serde_json::from_str::<HarFile>(text).ok()
}

/// Reads every file, in order, into one set of entries.
pub fn read_files(paths: &[impl AsRef<Path>]) -> Result<Loaded, ReadError> {
    let mut loaded = Loaded::default();
    for path in paths {
        loaded.read_file(path.as_ref())?;
    }
    Ok(loaded)
}
