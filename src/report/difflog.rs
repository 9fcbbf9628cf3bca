//! The JSONL diff log: one object per divergent pair, appended, rotated by size.
//!
//! Rotation: when a write would take the file past `max_bytes`, `FILE` becomes `FILE.1`,
//! `FILE.1` becomes `FILE.2`, … and the oldest beyond `max_files` is removed, like logrotate's
//! `rotate N`. Writes happen on comparison worker threads, never on the live path.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An open, size-rotated JSONL file.
pub struct DiffLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: usize,
}

impl DiffLog {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path, max_bytes: u64, max_files: usize) -> io::Result<DiffLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(DiffLog {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files,
        })
    }

    /// Appends one record as a line.
    pub fn write<T: serde::Serialize>(&mut self, record: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.write_line(&line)
    }

    /// Appends one line already serialized (ending in a newline), rotating first when it
    /// would take the file past its size (the recorder writes its own lines).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let numbered = |n: usize| {
                let mut name = self.path.clone().into_os_string();
                name.push(format!(".{n}"));
                PathBuf::from(name)
            };
            let _ = std::fs::remove_file(numbered(self.max_files));
            for n in (1..self.max_files).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diffs.jsonl");
        let mut log = DiffLog::open(&path, 100, 2).unwrap();
        for i in 0..20 {
            log.write(&serde_json::json!({"i": i, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}))
                .unwrap();
        }
        assert!(path.exists());
        assert!(dir.path().join("diffs.jsonl.1").exists());
        assert!(dir.path().join("diffs.jsonl.2").exists());
        assert!(!dir.path().join("diffs.jsonl.3").exists());
        for file in ["diffs.jsonl", "diffs.jsonl.1"] {
            let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(text.len() <= 100, "{file} has {} bytes", text.len());
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
        }
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.contains("\"i\":19"));
    }
}
