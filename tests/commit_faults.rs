//! The commit's promise, tried at every instant: the binary is killed
//! (SIGKILL) or failed (EIO from that call on) at the Nth call of each
//! system call it makes on files, for N = 1, 2, ... past the last call, with
//! `strace -e inject`. After each stop:
//!
//! - every name the folder held before is still there;
//! - every file is whole: all its old bytes or all its new bytes;
//! - `config.json` is new only if every rank file is new;
//! - a failure that exits 1 changed nothing a user sees;
//!
//! and after the same command runs again, undisturbed, the folder is
//! exactly what one clean run makes: no leftover of any kind.
//!
//! Three set-ups: a new output folder, an output folder holding an older
//! output (pruned with another rule) and a user's file, and `--in-place`.
//! `strace` must be installed (`.ci/run` installs it); without it these
//! tests are ignored, and under CI they fail.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trtllm_prune::fixture::{CheckpointSpec, Family};

use crate::util::{self, tree, write_checkpoint, TreeEntry};

/// System calls on files and folders, where a stop can matter.
const SYSCALLS: &[&str] = &[
    "openat",
    "close",
    "statx",
    "newfstatat",
    // rustix's fstat (glibc's is a newfstatat).
    "fstat",
    "getdents64",
    "read",
    "pread64",
    "pwrite64",
    "copy_file_range",
    "sendfile",
    "ioctl",
    "ftruncate",
    "fsync",
    "flock",
    "mkdir",
    "mkdirat",
    "readlink",
    "lseek",
    "fcntl",
    "fstatfs",
    "statfs",
    "flistxattr",
    "linkat",
    "renameat",
    "renameat2",
    "unlinkat",
    "fchown",
    "fchmod",
    "getrandom",
];

/// One set-up: a template folder tree to start every try from, and the
/// command to run in it.
struct SetUp {
    _root: tempfile::TempDir,
    template: PathBuf,
    /// Arguments, with `{}` standing for the try's own copy of the template.
    args: Vec<String>,
    /// The folder whose state is checked, relative to the copy.
    watched: &'static str,
}

impl SetUp {
    fn new(watched: &'static str, args: &[&str], prepare: impl FnOnce(&Path)) -> SetUp {
        let root = util::tempdir();
        let template = root.path().join("template");
        write_checkpoint(
            &template,
            "ckpt",
            &CheckpointSpec::tiny(Family::Llama, 2, 1),
        );
        fs::write(
            template.join("ckpt/quant_cfg.json"),
            "{\"quant_algo\": null}\n",
        )
        .expect("side file");
        prepare(&template);
        SetUp {
            _root: root,
            template,
            args: args.iter().map(|a| a.to_string()).collect(),
            watched,
        }
    }

    /// A fresh copy of the template in `dir`.
    fn copy_to(&self, dir: &Path) {
        let _ = fs::remove_dir_all(dir);
        let status = Command::new("cp")
            .arg("-a")
            .arg(&self.template)
            .arg(dir)
            .status()
            .expect("cp runs");
        assert!(status.success());
    }

    fn command(&self, dir: &Path, strace: Option<(&str, String)>) -> Command {
        let args = self
            .args
            .iter()
            .map(|a| a.replace("{}", &dir.display().to_string()));
        let mut cmd = match strace {
            Some((bin, inject)) => {
                let mut c = Command::new(bin);
                c.args(["-f", "-qq", "-o", "/dev/null", "-e"])
                    .arg(inject)
                    .arg(util::bin());
                c
            }
            None => Command::new(util::bin()),
        };
        cmd.args(args);
        cmd
    }

    fn run(&self, dir: &Path) -> Output {
        self.command(dir, None).output().expect("binary runs")
    }
}

/// Visible files (not hidden side files) of a tree, with their bytes.
fn visible(state: &BTreeMap<String, TreeEntry>) -> BTreeMap<&str, &TreeEntry> {
    state
        .iter()
        .filter(|(name, _)| !name.starts_with('.'))
        .map(|(n, e)| (n.as_str(), e))
        .collect()
}

/// The invariants that hold at every instant, for a folder that was `old`
/// and becomes `new`.
fn check_instant(
    what: &str,
    now: &BTreeMap<String, TreeEntry>,
    old: &BTreeMap<String, TreeEntry>,
    new: &BTreeMap<String, TreeEntry>,
) {
    let (now, old, new) = (visible(now), visible(old), visible(new));
    for name in old.keys() {
        assert!(now.contains_key(name), "{what}: `{name}` is gone");
    }
    for (name, entry) in &now {
        let is_old = old.get(name) == Some(entry);
        let is_new = new.get(name) == Some(entry);
        assert!(
            is_old || is_new,
            "{what}: `{name}` is neither its old nor its new self"
        );
    }
    let config_new = now
        .get("config.json")
        .is_some_and(|c| Some(c) == new.get("config.json"))
        && old.get("config.json") != new.get("config.json");
    if config_new {
        for (name, entry) in &new {
            assert!(
                now.get(name) == Some(entry),
                "{what}: config.json is new but `{name}` is not"
            );
        }
    }
}

/// Names whose entries differ between two states (contents are too long to
/// print).
fn differing<'a>(
    a: &BTreeMap<&'a str, &TreeEntry>,
    b: &BTreeMap<&'a str, &TreeEntry>,
) -> Vec<&'a str> {
    let mut names: Vec<&str> = a.keys().chain(b.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    names.retain(|n| a.get(n) != b.get(n));
    names
}

/// Kills or fails the command at every call of every system call, and
/// checks each stop and each rerun.
fn fault_matrix(setup: &SetUp, mode: &str) {
    let strace = "strace";
    let work = util::tempdir();
    let dir = work.path().join("try");
    // The state before, and the state one clean run makes.
    setup.copy_to(&dir);
    let old = tree(&dir.join(setup.watched));
    let out = setup.run(&dir);
    assert!(out.status.success(), "clean run: {}", util::stderr(&out));
    let new = tree(&dir.join(setup.watched));
    assert_ne!(visible(&old), visible(&new));

    // How often each system call is made in a clean run.
    setup.copy_to(&dir);
    let log = work.path().join("log");
    let status = Command::new(strace)
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg("-e")
        .arg(format!("trace={}", SYSCALLS.join(",")))
        .arg(util::bin())
        .args(
            setup
                .args
                .iter()
                .map(|a| a.replace("{}", &dir.display().to_string())),
        )
        .status()
        .expect("strace runs");
    assert!(status.success());
    let text = fs::read_to_string(&log).expect("log");
    let mut tries = 0;
    for syscall in SYSCALLS {
        // A failing close(2) still releases the descriptor, and what it can
        // report (a delayed write error) fsync reported first; std's debug
        // builds assert that closedir never fails. getrandom(2) cannot fail
        // with EIO (std's hash maps abort if it fails at all).
        if mode == "eio" && ["close", "getrandom"].contains(syscall) {
            continue;
        }
        let calls = text
            .lines()
            .filter(|l| {
                l.split_once(' ')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with(&format!("{syscall}(")))
            })
            .count();
        for n in 1..=calls + 1 {
            setup.copy_to(&dir);
            let inject = match mode {
                "kill" => format!("inject={syscall}:signal=KILL:when={n}"),
                _ => format!("inject={syscall}:error=EIO:when={n}+"),
            };
            let what = format!("{mode} at {syscall} #{n}");
            let out = setup
                .command(&dir, Some((strace, inject)))
                .output()
                .expect("strace runs");
            let now = tree(&dir.join(setup.watched));
            check_instant(&what, &now, &old, &new);
            let err = util::stderr(&out);
            assert!(!err.contains("panicked"), "{what}: panicked:\n{err}");
            let expected = match out.status.code() {
                Some(0) | Some(3) => Some(&new),
                Some(1) => Some(&old),
                _ => None,
            };
            if let Some(expected) = expected {
                let wrong = differing(&visible(&now), &visible(expected));
                assert!(
                    wrong.is_empty(),
                    "{what}: exit {:?}, but {wrong:?} are not as that says\n{err}",
                    out.status.code()
                );
            }
            let again = setup.run(&dir);
            assert!(
                again.status.success(),
                "{what}: the rerun failed: {}",
                util::stderr(&again)
            );
            let after = tree(&dir.join(setup.watched));
            let names = |t: &BTreeMap<String, TreeEntry>| t.keys().cloned().collect::<Vec<_>>();
            assert_eq!(
                names(&after),
                names(&new),
                "{what}: the rerun left other files"
            );
            assert!(
                after == new,
                "{what}: after the rerun, {:?} differ from a clean run's\n{}",
                differing(&visible(&after), &visible(&new)),
                util::stderr(&again)
            );
            tries += 1;
        }
    }
    assert!(tries > 100, "only {tries} tries: is strace tracing?");
}

fn into_new_folder() -> SetUp {
    SetUp::new(
        "out",
        &["--checkpoint_dir", "{}/ckpt", "--out_dir", "{}/out", "-q"],
        |_| {},
    )
}

fn over_an_older_output() -> SetUp {
    SetUp::new(
        "out",
        &["--checkpoint_dir", "{}/ckpt", "--out_dir", "{}/out", "-q"],
        |t| {
            let status = Command::new(util::bin())
                .arg("--checkpoint_dir")
                .arg(t.join("ckpt"))
                .arg("--out_dir")
                .arg(t.join("out"))
                .args(["--prune_all", "-q"])
                .status()
                .expect("binary runs");
            assert!(status.success());
            fs::write(t.join("out/notes.txt"), "the user's own\n").expect("notes");
        },
    )
}

fn in_place() -> SetUp {
    SetUp::new(
        "ckpt",
        &["--checkpoint_dir", "{}/ckpt", "--in-place", "-q"],
        |_| {},
    )
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn killed_at_any_call_into_a_new_folder() {
    fault_matrix(&into_new_folder(), "kill");
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn killed_at_any_call_over_an_older_output() {
    fault_matrix(&over_an_older_output(), "kill");
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn killed_at_any_call_in_place() {
    fault_matrix(&in_place(), "kill");
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn failing_calls_into_a_new_folder() {
    fault_matrix(&into_new_folder(), "eio");
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn failing_calls_over_an_older_output() {
    fault_matrix(&over_an_older_output(), "eio");
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn failing_calls_in_place() {
    fault_matrix(&in_place(), "eio");
}
