//! The output folder is decided on descriptors, not paths (a component
//! swapped for a symlink mid-run, a symlink planted by another user in a
//! sticky folder), and lock waits that say so, with shared locks for
//! read-only work.
//!
//! Needs `strace` (the swap race), root and `useradd` (another user's
//! symlink) and `flock(2)` from the test itself; without root or strace
//! those tests are ignored, and fail under CI.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use trtllm_prune::fixture::{CheckpointSpec, Family};

use crate::util::{self, assert_error, assert_success, run, snapshot, stderr, write_checkpoint};

fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = util::tempdir();
    let root = fs::canonicalize(dir.path()).expect("temp dir resolves");
    (dir, root)
}

/// The uid of a user made for these tests (created with `useradd` if
/// missing).
fn other_user() -> u32 {
    const NAME: &str = "trtllm-links";
    let uid = || {
        Command::new("id")
            .args(["-u", NAME])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    };
    if let Some(uid) = uid() {
        return uid;
    }
    // Another test may be creating it at the same time: ask again after.
    let _ = Command::new("useradd")
        .args(["-M", "-r", "-s", "/usr/sbin/nologin", NAME])
        .status();
    uid().expect("useradd made the test user")
}

/// Takes a folder's lock as another process would; held until the file
/// is dropped.
fn hold_lock(dir: &Path, operation: libc::c_int) -> fs::File {
    let file = fs::File::open(dir).expect("folder opens");
    // SAFETY: valid descriptor.
    let r = unsafe { libc::flock(file.as_raw_fd(), operation) };
    assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
    file
}

/// Kills `child` unless it has ended within `limit`: a hanging run fails
/// its test instead of hanging the suite.
fn watchdog(child: &Child, limit: Duration) {
    let pid = child.id() as libc::pid_t;
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        // SAFETY: plain kill; the pid may be gone (then nothing happens,
        // or, after pid reuse within `limit`, nothing of ours).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
}

/// Runs the binary with `args` and a generous overall time limit; returns
/// its exit status and stderr.
fn run_limited(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Option<i32>, String) {
    let mut cmd = Command::new(util::bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    watchdog(&child, Duration::from_secs(60));
    let out = child.wait_with_output().expect("binary ends");
    (out.status.code(), stderr(&out))
}

// ------------------------------------------------ the output folder's path

/// Runs the binary with `args` (which must make it warn that a pattern
/// matches no tensor name) under strace, with a delay after the write of
/// that warning, the last thing before the run opens its output folder to
/// write; `swap` runs as soon as the warning is read. Returns the exit code
/// and stderr.
fn run_swapping(
    args: &[&dyn AsRef<std::ffi::OsStr>],
    swap: impl FnOnce(),
) -> (Option<i32>, String) {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=write"])
        .args(["-e", "inject=write:delay_exit=1500000:when=1"])
        .arg(util::bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    let mut child = cmd
        .args(["--prune", "no.tensor.has.this.name", "-j", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace runs");
    watchdog(&child, Duration::from_secs(60));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("matches no tensor name") {
            break;
        }
    }
    assert!(seen.contains("matches no tensor name"), "{seen}");
    swap();
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    (child.wait().unwrap().code(), seen)
}

/// The race of issue 15 made deterministic: while the run is stopped after
/// every check on the path, a component of `--out_dir` is swapped for a
/// symlink to the checkpoint's parent, so the same path now names the
/// checkpoint folder.
#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn an_out_dir_component_swapped_for_a_symlink_to_the_checkpoint_mid_run_never_prunes_the_input() {
    let (_dir, root) = root();
    // The checkpoint folder is `x/out`; the output is `p/a/out`.
    fs::create_dir(root.join("x")).unwrap();
    let ckpt = write_checkpoint(
        &root.join("x"),
        "out",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let before = snapshot(&ckpt);
    let component = root.join("p/a");
    fs::create_dir_all(&component).unwrap();
    let out_dir = component.join("out");

    let (code, seen) = run_swapping(
        &[&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir],
        || {
            fs::rename(&component, root.join("p/a.real")).unwrap();
            std::os::unix::fs::symlink(root.join("x"), &component).unwrap();
        },
    );

    assert!(
        snapshot(&ckpt) == before,
        "the checkpoint was changed (exit {code:?}):\n{seen}"
    );
    match code {
        Some(1) => assert!(seen.contains("checkpoint folder"), "{seen}"),
        Some(0) => assert!(root.join("p/a.real/out/config.json").is_file(), "{seen}"),
        other => panic!("exit {other:?}:\n{seen}"),
    }
}

/// A folder the run creates for `--out_dir`, replaced by a symlink to the
/// checkpoint's parent right after its `mkdir` (a strace delay on the first
/// two: `create_dir_all` tries the whole path first), is never followed
/// into the checkpoint.
#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_folder_the_run_creates_swapped_for_a_symlink_is_not_followed() {
    let (_dir, root) = root();
    fs::create_dir(root.join("x")).unwrap();
    let ckpt = write_checkpoint(
        &root.join("x"),
        "out",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let before = snapshot(&ckpt);
    let created = root.join("new");
    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=mkdir,mkdirat"])
        .args(["-e", "inject=mkdir,mkdirat:delay_exit=1500000:when=1..2"])
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .arg("--out_dir")
        .arg(created.join("out"))
        .args(["-q", "-j", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace runs");
    watchdog(&child, Duration::from_secs(60));
    // The folder exists once its mkdir returned, during the delay.
    while !created.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(5));
    }
    fs::remove_dir(&created).unwrap();
    std::os::unix::fs::symlink(root.join("x"), &created).unwrap();
    let out = child.wait_with_output().unwrap();

    let err = stderr(&out);
    assert!(
        snapshot(&ckpt) == before,
        "the checkpoint was changed:\n{err}"
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
}

/// In place, the folder committed into must be the one read: a checkpoint
/// folder replaced by another (a copy, a restore) while the run is stopped
/// after reading is refused, and neither folder changes.
#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn an_in_place_run_whose_checkpoint_folder_is_replaced_mid_run_changes_nothing() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let before = snapshot(&ckpt);
    let read = root.join("ckpt.read");

    let (code, seen) = run_swapping(&[&"--checkpoint_dir", &ckpt, &"--in-place"], || {
        fs::rename(&ckpt, &read).unwrap();
        fs::create_dir(&ckpt).unwrap();
        for (name, bytes) in &before {
            fs::write(ckpt.join(name), bytes).unwrap();
        }
    });

    assert_eq!(code, Some(1), "{seen}");
    assert!(seen.contains("no longer the checkpoint folder"), "{seen}");
    assert!(snapshot(&ckpt) == before, "the new folder was changed");
    assert!(snapshot(&read) == before, "the folder read was changed");
}

/// A symlink `out` that another user made in a sticky world-writable
/// folder (like /tmp): following it is what `protected_symlinks` forbids,
/// and the tool refuses it itself even where that sysctl is off.
#[test]
#[cfg_attr(
    not(all(has_root, has_useradd)),
    ignore = "needs root, useradd (apt install passwd)"
)]
fn an_out_dir_symlink_of_another_user_in_a_sticky_folder_is_refused() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let shared = root.join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(
        &shared,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let elsewhere = root.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let uid = other_user();
    let link = shared.join("out");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(uid), None).unwrap();

    for out_dir in [link.clone(), link.join("sub")] {
        let line = assert_error(&run(&[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out_dir,
            &"-q",
        ]));
        assert!(line.contains(&link.display().to_string()), "{line}");
        assert!(line.contains(&format!("uid {uid}, trtllm-links")), "{line}");
        assert_eq!(util::file_names(&elsewhere), Vec::<String>::new());
    }
    // Nor is a checkpoint pruned in place through such a link.
    let ckpt_link = shared.join("ckpt");
    std::os::unix::fs::symlink(&ckpt, &ckpt_link).unwrap();
    std::os::unix::fs::lchown(&ckpt_link, Some(uid), None).unwrap();
    let before = snapshot(&ckpt);
    let line = assert_error(&run(&[
        &"--checkpoint_dir",
        &ckpt_link,
        &"--in-place",
        &"-q",
    ]));
    assert!(line.contains(&format!("uid {uid}")), "{line}");
    assert!(
        snapshot(&ckpt) == before,
        "pruned in place through the link"
    );
    // The same symlink made by root (who owns the sticky folder's
    // neighbours) is followed, as the kernel would.
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &link,
        &"-q",
    ]));
    assert!(elsewhere.join("config.json").is_file());
}

/// Output names are checked through the opened output folder: a hard link
/// there to an input file is refused, and the input stays as it was.
#[test]
fn an_output_name_that_is_a_hard_link_to_an_input_is_refused() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let before = snapshot(&ckpt);
    let out = root.join("out");
    fs::create_dir(&out).unwrap();
    fs::hard_link(
        ckpt.join("rank1.safetensors"),
        out.join("rank1.safetensors"),
    )
    .unwrap();
    let result = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
        &"--json",
    ]);
    let line = util::assert_error_kind(&result, "refused");
    assert!(line.contains("rank1.safetensors"), "{line}");
    assert!(snapshot(&ckpt) == before);
}

// ------------------------------------------------------------------ locks

/// Reads `child`'s stderr until a line contains `wanted` (then kills the
/// child) or the stream ends; returns everything read.
fn stderr_until(child: &mut Child, wanted: &str) -> String {
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(wanted) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

const WAITING: &str = "another trtllm-prune run is committing here, or another process holds its lock; waiting (Ctrl-C to stop)";

#[test]
fn a_run_waiting_for_a_held_folder_lock_says_so() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let _held = hold_lock(&ckpt, libc::LOCK_EX);
    for extra in [&["--dry-run"][..], &[][..], &["--in-place"][..]] {
        let mut child = Command::new(util::bin())
            .arg("--checkpoint_dir")
            .arg(&ckpt)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        watchdog(&child, Duration::from_secs(30));
        let seen = stderr_until(&mut child, WAITING);
        let line = seen.lines().last().unwrap_or_default();
        assert!(line.contains(WAITING), "{extra:?}: {seen}");
        assert!(line.contains(&ckpt.display().to_string()), "{line}");
    }
}

#[test]
fn dry_runs_inspect_and_verify_are_not_blocked_by_a_reader() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));
    let _reading_ckpt = hold_lock(&ckpt, libc::LOCK_SH);
    let _reading_out = hold_lock(&out, libc::LOCK_SH);
    let runs: [Vec<&dyn AsRef<std::ffi::OsStr>>; 4] = [
        vec![&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"--dry-run"],
        vec![&"inspect", &ckpt],
        vec![&"inspect", &out],
        vec![&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out],
    ];
    for args in runs {
        let (code, err) = run_limited(&args);
        assert_eq!(code, Some(0), "{err}");
        assert!(!err.contains("waiting"), "{err}");
    }
}

/// With a dead run's commit to finish (a whole journal), `inspect` needs
/// the folder's exclusive lock to read the folder right: a reader holding
/// it makes it wait, and say so. (Mere leftovers are not waited for:
/// `commit_recovery::inspect_and_verify_are_not_blocked_by_a_reader_when_leftovers_exist`.)
#[test]
fn inspect_with_a_dead_runs_commit_to_finish_waits_for_a_reader_and_says_so() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let id = "0123456789abcdef0123456789abcdef";
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let body = format!(
        "trtllm-prune commit v3\nrename {} {} new 1:7:00000000\n",
        hex(&format!(".rank0.safetensors.trtllm-prune-{id}.tmp")),
        hex("rank0.safetensors")
    );
    let journal = format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
    fs::write(ckpt.join(format!(".trtllm-prune-{id}.journal")), journal).unwrap();
    let _reading = hold_lock(&ckpt, libc::LOCK_SH);
    let mut child = Command::new(util::bin())
        .arg("inspect")
        .arg(&ckpt)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    watchdog(&child, Duration::from_secs(30));
    let seen = stderr_until(&mut child, WAITING);
    assert!(seen.contains(WAITING), "{seen}");
}
