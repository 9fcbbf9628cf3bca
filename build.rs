//! Build facts for `shadowtap_build_info`: the compiler's version and the git commit.
//!
//! Only local commands run (no network). Without git or a repository (a Docker build
//! context has no `.git`) the commit is `unknown`, unless `SHADOWTAP_GIT_COMMIT` gives it.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SHADOWTAP_GIT_COMMIT");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    // "rustc 1.85.0 (4d91de4e4 2025-02-17)" -> "1.85.0"
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    let commit = std::env::var("SHADOWTAP_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SHADOWTAP_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=SHADOWTAP_GIT_COMMIT={commit}");
}

/// The short commit of HEAD, and rebuild triggers on the files that move when HEAD does.
fn git_commit() -> Option<String> {
    let commit = output("git", &["rev-parse", "--short=12", "HEAD"])?;
    let branch = output("git", &["symbolic-ref", "-q", "HEAD"]);
    let watched = [
        Some("HEAD".to_string()),
        branch,
        Some("packed-refs".to_string()),
    ];
    for name in watched.into_iter().flatten() {
        if let Some(path) = output("git", &["rev-parse", "--git-path", &name]) {
            // A missing file would make cargo rerun this script on every build.
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(commit)
}

/// A command's trimmed stdout, if it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string()).filter(|text| !text.is_empty())
}
