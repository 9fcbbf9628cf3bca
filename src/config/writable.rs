//! Can the proxy append to a file it opens only later (the diff log)?
//!
//! Checked while the config is loaded, so `check` reports an unwritable path with every
//! other problem, and `run` refuses it before binding anything, instead of `check` saying
//! "ok" and `run` failing afterwards. Nothing is created or truncated by the check: an
//! existing file is opened for appending and closed, a missing one has its directory
//! checked for write access.

use std::io::ErrorKind;
use std::path::Path;

/// `Ok` when `path` can be opened for appending (created if missing); else why not.
pub(crate) fn appendable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!("{} is a directory", path.display())),
        // Append without create or truncate: the permission check the real open makes,
        // with no change to the file.
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|err| format!("cannot open {} for appending: {err}", path.display())),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => directory_writable(dir),
                Ok(_) => Err(format!("{} is not a directory", dir.display())),
                Err(err) => Err(format!("cannot use directory {}: {err}", dir.display())),
            }
        }
        Err(err) => Err(format!("cannot use {}: {err}", path.display())),
    }
}

/// access(2) asks the kernel the question the later `open(O_CREAT)` will ask (permissions
/// for this user, read-only mounts) without creating anything.
#[cfg(unix)]
fn directory_writable(dir: &Path) -> Result<(), String> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).map_err(|err| {
        format!(
            "cannot create files in {}: {}",
            dir.display(),
            std::io::Error::from(err)
        )
    })
}

/// Elsewhere only the read-only attribute can be asked without creating a file.
#[cfg(not(unix))]
fn directory_writable(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.permissions().readonly() => Err(format!(
            "cannot create files in {}: read-only",
            dir.display()
        )),
        Ok(_) => Ok(()),
        Err(err) => Err(format!("cannot use directory {}: {err}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_unusable_shape_is_refused_and_nothing_is_created_or_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("existing.jsonl");
        std::fs::write(&existing, b"kept\n").unwrap();
        let missing = dir.path().join("new.jsonl");
        let file_as_dir = existing.join("diff.jsonl");
        let no_dir = dir.path().join("no-such-dir").join("diff.jsonl");

        assert_eq!(appendable(&existing), Ok(()));
        assert_eq!(std::fs::read(&existing).unwrap(), b"kept\n");
        assert_eq!(appendable(&missing), Ok(()));
        assert!(!missing.exists(), "the check created the file");

        for (bad, says) in [
            (dir.path().to_path_buf(), "is a directory"),
            (file_as_dir, "Not a directory"),
            (no_dir, "No such file or directory"),
        ] {
            let reason = appendable(&bad).unwrap_err();
            assert!(reason.contains(says), "{}: {reason}", bad.display());
        }
        // A bare file name is created in the working directory.
        assert_eq!(
            appendable(Path::new("diff-log-probe-never-created.jsonl")),
            Ok(())
        );
    }
}
