//! Names the build for `--version`: the commit (from git, when the source
//! is a git checkout; `unknown` from a source archive) and the target.

use std::process::Command;

/// The commit of a build from a source archive.
const UNKNOWN: &str = "unknown";

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown-target".into());
    println!("cargo:rustc-env=TRTLLM_PRUNE_TARGET={target}");
    let commit = commit();
    println!("cargo:rustc-env=TRTLLM_PRUNE_COMMIT={commit}");
    // A new commit or checkout changes HEAD or the branch it points to,
    // which may be packed or a new file under refs/heads (a file that does
    // not exist would rerun this script on every build).
    if commit != UNKNOWN {
        let branch = git(&["symbolic-ref", "-q", "HEAD"]);
        let watched = ["HEAD", "packed-refs", "refs/heads"];
        for file in watched.into_iter().chain(branch.as_deref()) {
            if let Some(path) = git(&["rev-parse", "--git-path", file]) {
                if std::path::Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// The short commit hash, when this package is the top of a git checkout
/// (not a source archive unpacked inside some other repository).
fn commit() -> String {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok();
    let top = git(&["rev-parse", "--show-toplevel"]);
    let ours = match (manifest_dir, top) {
        (Some(dir), Some(top)) => {
            std::fs::canonicalize(dir).ok() == std::fs::canonicalize(top).ok()
        }
        _ => false,
    };
    ours.then(|| git(&["rev-parse", "--short=9", "HEAD"]))
        .flatten()
        .unwrap_or_else(|| UNKNOWN.into())
}

/// One line of git's output, or `None` without git or a repository.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}
