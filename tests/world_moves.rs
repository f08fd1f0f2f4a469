//! An `--in-place` commit when the world moves under it: files changed
//! between the moment the run read them and its commit, a folder copied
//! after a run died mid-commit, targets that cannot be linked or replaced.
//! Nothing the run did not read is ever replaced, and nothing is claimed
//! that was not verified.
//!
//! A run is held still at its first `linkat` (the commit's first backup
//! link) by `strace` injecting SIGSTOP there, changed under, then let go.
//! `strace` and `chattr` (as root) must be installed: without them these
//! tests are ignored, and fail under CI.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use trtllm_prune::fixture::{CheckpointSpec, Family};

use crate::util::{self, assert_success, run, stderr, tree, write_checkpoint, TreeEntry};

fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = util::tempdir();
    let root = fs::canonicalize(dir.path()).expect("temp dir resolves");
    (dir, root)
}

fn checkpoint(root: &Path) -> PathBuf {
    write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1))
}

/// Runs the binary under `strace` with each of `injections`.
fn run_injected(injections: &[&str], args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null"]);
    for i in injections {
        cmd.args(["-e", i]);
    }
    cmd.arg(util::bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("strace runs")
}

/// A run on `ckpt` (`--in-place`, or into `out`), stopped (SIGSTOP) right
/// after its first `linkat`: the commit compared the first target and
/// linked it to its backup name. The signal is delivered on the way back
/// from that call, so once the backup name exists the run executes nothing
/// more until it is let go.
struct HeldRun {
    strace: Child,
}

impl HeldRun {
    /// Starts the run under `strace` with `injections` too.
    fn start(ckpt: &Path, injections: &[&str]) -> HeldRun {
        HeldRun::start_into(ckpt, None, injections)
    }

    fn start_into(ckpt: &Path, out: Option<&Path>, injections: &[&str]) -> HeldRun {
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o", "/dev/null"]);
        for i in injections {
            cmd.args(["-e", i]);
        }
        cmd.args(["-e", "inject=linkat:signal=STOP:when=1"])
            .arg(util::bin())
            .arg("--checkpoint_dir")
            .arg(ckpt);
        match out {
            Some(out) => cmd.arg("--out_dir").arg(out),
            None => cmd.arg("--in-place"),
        };
        // Every held run fails: `--json` gives its error's kind.
        let mut strace = cmd
            .args(["-q", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strace runs");
        let watched = out.unwrap_or(ckpt);
        let started = Instant::now();
        while !util::file_names(watched)
            .iter()
            .any(|n| n.ends_with(".old"))
        {
            let ended = strace.try_wait().expect("strace waits");
            assert!(
                ended.is_none(),
                "the run ended before its commit linked a backup"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the run never reached its commit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        HeldRun { strace }
    }

    /// Lets the run go on and waits for it. SIGCONT is sent until the run
    /// ends: one sent before the stop took hold would be lost.
    fn finish(mut self) -> Output {
        let children = format!("/proc/{0}/task/{0}/children", self.strace.id());
        while self.strace.try_wait().expect("strace waits").is_none() {
            let pids = fs::read_to_string(&children).unwrap_or_default();
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-CONT", pid]).status();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.strace.wait_with_output().expect("strace ends")
    }
}

/// Asserts exit 1 with one error line naming `file`, of kind
/// `input_changed`.
#[track_caller]
fn assert_refused_as_changed(out: &Output, file: &str) {
    let line = util::assert_error_kind(out, "input_changed");
    assert!(line.contains(file), "{line}");
}

/// The folder's files by name, without the one named `except`.
fn all_but(dir: &Path, except: &str) -> BTreeMap<String, TreeEntry> {
    let mut t = tree(dir);
    t.remove(except);
    t
}

fn replace_by_mv(path: &Path, bytes: &[u8]) {
    let new = path.with_extension("incoming");
    fs::write(&new, bytes).unwrap();
    fs::rename(&new, path).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Holds an in-place run at its commit, lets `change` act on `name`, and
/// checks the run refused with `name` exactly as `change` left it and every
/// other file as it was.
fn change_under_a_commit(name: &str, change: impl FnOnce(&Path)) {
    change_under_an_injected_commit(&[], name, change);
}

/// [`change_under_a_commit`], with more `strace` injections.
fn change_under_an_injected_commit(injections: &[&str], name: &str, change: impl FnOnce(&Path)) {
    let (_dir, root) = root();
    let ckpt = checkpoint(&root);
    let before = all_but(&ckpt, name);
    let held = HeldRun::start(&ckpt, injections);
    change(&ckpt.join(name));
    let changed = fs::read(ckpt.join(name)).unwrap();

    let out = held.finish();

    assert_refused_as_changed(&out, name);
    assert_eq!(fs::read(ckpt.join(name)).unwrap(), changed);
    assert!(all_but(&ckpt, name) == before, "another file changed");
    // A later run reads the new file and is not stuck.
    assert_ne!(
        run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"])
            .status
            .code(),
        Some(4)
    );
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn in_place_a_rank_replaced_by_mv_before_the_commit_is_not_replaced() {
    change_under_a_commit("rank1.safetensors", |p| replace_by_mv(p, b"NEWER RANK"));
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn in_place_a_rank_appended_to_before_the_commit_is_not_replaced() {
    change_under_a_commit("rank1.safetensors", |p| append(p, b"more"));
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn in_place_a_config_edited_before_the_commit_is_not_replaced() {
    change_under_a_commit("config.json", |p| {
        let text = fs::read_to_string(p).unwrap();
        fs::write(p, text.replace('{', "{\"edited\": 1, ")).unwrap();
    });
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn in_place_a_rank_replaced_after_its_backup_link_is_not_replaced() {
    change_under_a_commit("rank0.safetensors", |p| replace_by_mv(p, b"NEWER RANK"));
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn in_place_a_rank_appended_to_after_its_backup_link_is_not_replaced() {
    change_under_a_commit("rank0.safetensors", |p| append(p, b"more"));
}

/// `renameat2` failing with EINVAL stands for a filesystem that cannot
/// swap two names (`RENAME_EXCHANGE`): the commit falls back to `rename`.
const NO_EXCHANGE: &str = "inject=renameat2:error=EINVAL";

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn where_names_cannot_be_swapped_the_commit_renames_and_still_refuses_a_replaced_rank() {
    let (_dir, root) = root();
    let ckpt = checkpoint(&root);
    let out = run_injected(
        &[NO_EXCHANGE],
        &[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read_to_string(ckpt.join("config.json"))
        .unwrap()
        .contains("\"is_pruned\": true"));
    assert!(!util::file_names(&ckpt).iter().any(|n| n.starts_with('.')));

    change_under_an_injected_commit(&[NO_EXCHANGE], "rank0.safetensors", |p| {
        replace_by_mv(p, b"NEWER RANK")
    });
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn an_earlier_output_replaced_during_the_commit_is_not_replaced() {
    let (_dir, root) = root();
    let ckpt = checkpoint(&root);
    let out = root.join("out");
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));
    let before = all_but(&out, "rank0.safetensors");
    let held = HeldRun::start_into(&ckpt, Some(&out), &[]);
    replace_by_mv(&out.join("rank0.safetensors"), b"SOMEONE ELSE'S");

    let result = held.finish();

    let line = util::assert_error_kind(&result, "input_changed");
    assert!(line.contains("rank0.safetensors"), "{line}");
    assert_eq!(
        fs::read(out.join("rank0.safetensors")).unwrap(),
        b"SOMEONE ELSE'S"
    );
    assert!(all_but(&out, "rank0.safetensors") == before);
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_file_created_at_a_new_output_name_during_the_commit_is_not_replaced() {
    let (_dir, root) = root();
    let ckpt = checkpoint(&root);
    let out = root.join("out");
    // An earlier run made rank0 (linked first: the run is held there) and
    // config.json; rank1's name is free when the commit compares it.
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--ranks",
        &"0",
        &"-q",
    ]));
    let before = tree(&out);
    let held = HeldRun::start_into(&ckpt, Some(&out), &[]);
    fs::write(out.join("rank1.safetensors"), b"SOMEONE ELSE'S").unwrap();

    let result = held.finish();

    let line = util::assert_error_kind(&result, "input_changed");
    assert!(line.contains("rank1.safetensors"), "{line}");
    assert_eq!(
        fs::read(out.join("rank1.safetensors")).unwrap(),
        b"SOMEONE ELSE'S"
    );
    assert!(all_but(&out, "rank1.safetensors") == before);
}

// ------------------------------------------------- a copied folder

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_copy_of_a_folder_killed_mid_commit_is_not_called_as_it_was() {
    let (_dir, root) = root();
    let ckpt = checkpoint(&root);
    let killed = run_injected(
        &[
            "inject=renameat:signal=KILL:when=2",
            "inject=renameat2:signal=KILL:when=2",
        ],
        &[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"],
    );
    assert!(!killed.status.success(), "the run was not killed");
    let copy = root.join("copy");
    let cp = Command::new("cp").arg("-a").arg(&ckpt).arg(&copy).status();
    assert!(cp.expect("cp runs").success());
    let copied = tree(&copy);

    for args in [
        vec![&"inspect" as &dyn AsRef<std::ffi::OsStr>, &copy],
        vec![&"--checkpoint_dir", &copy, &"--in-place", &"-q"],
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(!err.contains("as it was"), "{err}");
        assert!(
            err.contains("does not describe the files here") && err.contains("by hand"),
            "{err}"
        );
        // Killed before its second swap: the first name holds the new file
        // (its temp name the original), the others their originals.
        assert!(
            err.contains("rank0.safetensors holds the new file")
                && err.contains("rank1.safetensors holds the original")
                && err.contains("config.json holds the original"),
            "{err}"
        );
        assert!(tree(&copy) == copied, "the copy was changed");
    }

    // The folder itself still recovers: its commit is finished.
    let out = run(&[&"inspect", &ckpt]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("finished the commit"),
        "{}",
        stderr(&out)
    );
    assert!(fs::read_to_string(ckpt.join("config.json"))
        .unwrap()
        .contains("\"is_pruned\": true"));
}

// ---------------------------------------- targets that cannot be linked

fn assert_refused_and_unchanged(
    out: &Output,
    file: &str,
    ckpt: &Path,
    before: &BTreeMap<String, TreeEntry>,
) {
    let line = util::assert_error(out);
    assert!(
        line.contains(file) && line.contains("nothing was replaced"),
        "{line}"
    );
    assert!(tree(ckpt) == *before, "the folder changed");
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn in_place_a_backup_link_that_cannot_be_made_replaces_nothing() {
    for error in ["EPERM", "EMLINK", "EOPNOTSUPP"] {
        let (_dir, root) = root();
        let ckpt = checkpoint(&root);
        let before = tree(&ckpt);
        let out = run_injected(
            &[&format!("inject=linkat:error={error}")],
            &[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"],
        );
        assert_refused_and_unchanged(&out, "rank0.safetensors", &ckpt, &before);
        assert!(stderr(&out).contains("cannot keep a hard link"), "{error}");
        assert_success(run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]));
    }
}

/// Sets a `chattr` flag on a file for the life of the value.
struct Flagged(PathBuf);

impl Flagged {
    fn set(path: &Path, flag: &str) -> Option<Flagged> {
        let ok = Command::new("chattr")
            .arg(format!("+{flag}"))
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "chattr +{flag} failed: this filesystem has no such flags"
            );
            eprintln!("chattr +{flag} failed: skipping");
            return None;
        }
        Some(Flagged(path.to_path_buf()))
    }
}

impl Drop for Flagged {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-i", "-a"])
            .arg(&self.0)
            .status();
    }
}

fn flagged_target_is_refused(name: &str, flag: &str, word: &str) {
    let (_dir, root) = root();
    let ckpt = checkpoint(&root);
    let before = tree(&ckpt);
    let Some(flagged) = Flagged::set(&ckpt.join(name), flag) else {
        return;
    };
    for _ in 0..2 {
        let out = run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]);
        assert_refused_and_unchanged(&out, name, &ckpt, &before);
        assert!(stderr(&out).contains(word), "{}", stderr(&out));
        let out = run(&[&"inspect", &ckpt]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    drop(flagged);
    assert_success(run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]));
}

#[test]
#[cfg_attr(
    not(all(has_root, has_chattr)),
    ignore = "needs root, chattr (apt install e2fsprogs)"
)]
fn in_place_an_immutable_config_is_found_before_the_commit() {
    flagged_target_is_refused("config.json", "i", "immutable");
}

#[test]
#[cfg_attr(
    not(all(has_root, has_chattr)),
    ignore = "needs root, chattr (apt install e2fsprogs)"
)]
fn in_place_an_immutable_rank_is_found_before_the_commit() {
    flagged_target_is_refused("rank1.safetensors", "i", "immutable");
}

#[test]
#[cfg_attr(
    not(all(has_root, has_chattr)),
    ignore = "needs root, chattr (apt install e2fsprogs)"
)]
fn in_place_an_append_only_rank_is_found_before_the_commit() {
    flagged_target_is_refused("rank0.safetensors", "a", "append-only");
}
