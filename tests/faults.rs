//! Faults: whatever goes wrong (a full disk, a read-only or wrong output
//! folder, Ctrl-C, an input changed under our feet, a bad input), the run
//! ends with one clear error line and the right exit status, never crashes
//! or hangs, leaves no file of its own in the output folder (and removes the
//! folder if it created it), and touches neither the input nor the files
//! that were already in the output folder.
//!
//! Faults that need a mount (a full or read-only filesystem, a busy file)
//! use tmpfs or bind mounts, which need root that may mount; tests that
//! stop a run mid-copy slow it down with strace. Without them these tests
//! are ignored (and fail under CI). Mounts are undone by a guard, even when
//! a test fails.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use trtllm_prune::fixture::{self, CheckpointSpec, Family, TensorSpec};
use trtllm_prune::Dtype;

use crate::util::{self, tree, write_checkpoint};

/// Longest a single run may take before the test calls it a hang. Generous:
/// CI machines are slow and shared.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// Size of the kept tensor of a "slow" rank file ([`slow_checkpoint`]): a
/// hole with 4 KiB of data every MiB, so the run looks up thousands of data
/// segments (holes are skipped, not copied), each look-up slowed down by
/// strace ([`slow_command`]). It uses 32 MB of disk.
const SLOW_RANK_BYTES: u64 = 8 << 30;

/// Data and hole pattern of a slow rank: `DATA_BYTES` of data at the start
/// of every `DATA_EVERY` bytes.
const DATA_EVERY: u64 = 1 << 20;
const DATA_BYTES: usize = 4096;

/// Delay strace adds to every `lseek` (the run's SEEK_DATA/SEEK_HOLE
/// look-ups), in microseconds: a slow rank takes tens of seconds to copy,
/// a run stopped early is stopped within milliseconds.
const SEEK_DELAY_US: u64 = 2000;

/// A mount that is undone when dropped.
struct Mount {
    path: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs with `options` (e.g. `size=2m`) on `path` (created),
    /// or says on stderr why it cannot and returns `None`.
    fn tmpfs(path: &Path, options: &str) -> Option<Mount> {
        fs::create_dir_all(path).expect("mount point created");
        Mount::attach(Some("tmpfs"), path, Some("tmpfs"), 0, options)
    }

    /// Bind-mounts the file or folder `source` on `path`.
    fn bind(source: &Path, path: &Path) -> Option<Mount> {
        let source = source.to_str().expect("utf-8 path");
        Mount::attach(Some(source), path, None, libc::MS_BIND, "")
    }

    fn attach(
        source: Option<&str>,
        path: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        options: &str,
    ) -> Option<Mount> {
        let source = source.map(|s| CString::new(s).expect("no NUL"));
        let fstype = fstype.map(|s| CString::new(s).expect("no NUL"));
        let target = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
        let data = CString::new(options).expect("no NUL");
        // SAFETY: every pointer is a live NUL-terminated string or null.
        let r = unsafe {
            libc::mount(
                source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                target.as_ptr(),
                fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                flags,
                data.as_ptr().cast(),
            )
        };
        if r != 0 {
            eprintln!(
                "cannot mount on {} ({})",
                path.display(),
                io::Error::last_os_error()
            );
            return None;
        }
        Some(Mount {
            path: path.to_path_buf(),
        })
    }

    /// Makes the mount read-only.
    fn remount_read_only(&self) -> bool {
        let target = CString::new(self.path.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: `target` is a live NUL-terminated string; null source,
        // type and data are allowed for a remount.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        if r != 0 {
            eprintln!(
                "cannot remount {} read-only ({})",
                self.path.display(),
                io::Error::last_os_error()
            );
        }
        r == 0
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = CString::new(self.path.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: `target` is a live NUL-terminated string. A lazy unmount
        // is the fallback so that no mount outlives the test.
        unsafe {
            if libc::umount2(target.as_ptr(), 0) != 0 {
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// A running binary, killed if the test ends (or fails) before it does.
struct Running {
    child: Child,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        Running { child }
    }

    /// The binary's process id: the child's own, or, under strace, the
    /// child's child (strace's tracee).
    fn binary_pid(&self) -> libc::pid_t {
        let pid = self.child.id();
        let children = format!("/proc/{pid}/task/{pid}/children");
        let is_strace =
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "strace");
        if !is_strace {
            return pid as libc::pid_t;
        }
        let tracee = fs::read_to_string(&children)
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()));
        tracee.expect("strace has started the binary")
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: a plain syscall on our own child's (or grandchild's) pid.
        let r = unsafe { libc::kill(self.binary_pid(), signal) };
        assert_eq!(r, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Waits until the run has created the temp file of output `name` in
    /// `out_dir`, i.e. it is writing that file.
    fn wait_for_temp_file(&mut self, out_dir: &Path, name: &str) {
        let prefix = format!(".{name}.trtllm-prune-");
        let start = Instant::now();
        loop {
            if util::file_names(out_dir)
                .iter()
                .any(|n| n.starts_with(&prefix))
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait works") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("the run ended ({status}) before writing {name}:\n{err}");
            }
            assert!(
                start.elapsed() < RUN_DEADLINE,
                "the run did not start writing {name} within {RUN_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the run to end, failing the test if it hangs.
    fn finish(mut self) -> Output {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                break status;
            }
            assert!(
                start.elapsed() < RUN_DEADLINE,
                "the run hung for {RUN_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut output = Output {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        // The binary writes a few lines at most: no pipe fills up before exit.
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_end(&mut output.stdout).expect("stdout reads");
        }
        if let Some(mut err) = self.child.stderr.take() {
            err.read_to_end(&mut output.stderr).expect("stderr reads");
        }
        output
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary on `checkpoint_dir` (and `--out_dir out_dir` when given).
fn command(checkpoint_dir: &Path, out_dir: Option<&Path>, extra: &[&str]) -> Command {
    let mut cmd = Command::new(util::bin());
    cmd.arg("--checkpoint_dir").arg(checkpoint_dir);
    if let Some(out) = out_dir {
        cmd.arg("--out_dir").arg(out);
    }
    cmd.args(extra);
    cmd
}

/// Runs the binary to the end, failing the test if it hangs.
fn run(checkpoint_dir: &Path, out_dir: Option<&Path>, extra: &[&str]) -> Output {
    Running::spawn(command(checkpoint_dir, out_dir, extra)).finish()
}

/// Asserts a clean failure: exit status `code` (not a crash), nothing on
/// stdout, no panic, and exactly one stderr line
/// `trtllm-prune: error: <file>...` that contains `problem`.
#[track_caller]
fn assert_fails(out: &Output, code: i32, file: Option<&Path>, problem: &str) {
    let err = util::stderr(out);
    assert_eq!(
        out.status.signal(),
        None,
        "the run was killed by a signal (crash)\nstderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "the run panicked:\n{err}");
    assert_eq!(
        out.status.code(),
        Some(code),
        "wrong exit status\nstderr:\n{err}"
    );
    assert!(out.stdout.is_empty(), "stdout is not empty");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{err}");
    let prefix = match file {
        Some(file) => format!("trtllm-prune: error: {}", file.display()),
        None => "trtllm-prune: error: ".to_string(),
    };
    assert!(
        lines[0].starts_with(&prefix),
        "the error does not start with {prefix:?}:\n{err}"
    );
    assert!(
        lines[0].contains(problem),
        "the error does not say {problem:?}:\n{err}"
    );
}

/// A temp dir with its canonical path (error messages name canonical paths).
fn temp_root() -> (tempfile::TempDir, PathBuf) {
    let dir = util::tempdir();
    let root = fs::canonicalize(dir.path()).expect("temp dir resolves");
    (dir, root)
}

/// A tiny Llama TP2 checkpoint in `root/ckpt`.
fn tiny_checkpoint(root: &Path) -> PathBuf {
    write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1))
}

fn config_for_world_size(world_size: u64) -> String {
    format!(
        "{{\"architecture\": \"LlamaForCausalLM\", \"dtype\": \"bfloat16\", \
         \"mapping\": {{\"world_size\": {world_size}, \"tp_size\": {world_size}, \"pp_size\": 1}}}}\n"
    )
}

/// The tensors of a rank that keeps `kept` bytes: one kept embedding of
/// `kept` bytes and one small pruned matrix.
fn rank_keeping(kept: u64) -> Vec<TensorSpec> {
    vec![
        TensorSpec::new("transformer.vocab_embedding.weight", Dtype::U8, &[kept]),
        TensorSpec::new("transformer.layers.0.mlp.fc.weight", Dtype::BF16, &[8, 8]),
    ]
}

/// A checkpoint in `root/ckpt` whose rank N keeps `kept[N]` bytes of data.
fn checkpoint_keeping(root: &Path, kept: &[u64]) -> PathBuf {
    let dir = root.join("ckpt");
    fs::create_dir_all(&dir).expect("ckpt folder");
    fs::write(
        dir.join("config.json"),
        config_for_world_size(kept.len() as u64),
    )
    .expect("config written");
    for (rank, &bytes) in kept.iter().enumerate() {
        let path = dir.join(format!("rank{rank}.safetensors"));
        fixture::write_safetensors(&path, &rank_keeping(bytes), None).expect("rank written");
    }
    dir
}

/// A one-rank checkpoint in `root/ckpt` whose kept tensor is `kept` bytes
/// of holes and data (see [`SLOW_RANK_BYTES`]).
fn slow_checkpoint(root: &Path, kept: u64) -> PathBuf {
    let dir = root.join("ckpt");
    fs::create_dir_all(&dir).expect("ckpt folder");
    fs::write(dir.join("config.json"), config_for_world_size(1)).expect("config written");
    let tensors = rank_keeping(kept);
    let rank0 = dir.join("rank0.safetensors");
    fixture::write_sparse_safetensors(&rank0, &tensors).expect("sparse rank written");
    let data_start = 8 + fixture::padded_header_json(&tensors, None).len() as u64;
    let file = File::options()
        .write(true)
        .open(&rank0)
        .expect("rank opens");
    let block = [0x5a_u8; DATA_BYTES];
    for at in (0..kept).step_by(DATA_EVERY as usize) {
        std::os::unix::fs::FileExt::write_all_at(&file, &block, data_start + at)
            .expect("data written");
    }
    dir
}

/// [`command`] under strace, each `lseek` delayed by [`SEEK_DELAY_US`]: the
/// copy of a [`slow_checkpoint`] takes long enough to be stopped mid-way.
/// Signals are sent to the traced binary, not to strace ([`Running::signal`]).
fn slow_command(checkpoint_dir: &Path, out_dir: Option<&Path>, extra: &[&str]) -> Command {
    let inner = command(checkpoint_dir, out_dir, extra);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject=lseek:delay_enter={SEEK_DELAY_US}"))
        .arg(inner.get_program())
        .args(inner.get_args());
    cmd
}

/// [`run`] with every `fstatfs` failing (`ENOSYS`, injected by strace), so
/// the run cannot check free space first and writes until the disk is
/// full: the path a disk filled by someone else mid-run takes.
fn run_blind_to_free_space(
    checkpoint_dir: &Path,
    out_dir: Option<&Path>,
    extra: &[&str],
) -> Output {
    let inner = command(checkpoint_dir, out_dir, extra);
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "inject=fstatfs:error=ENOSYS",
    ])
    .arg(inner.get_program())
    .args(inner.get_args());
    Running::spawn(cmd).finish()
}

/// Files a test puts in an output folder before the run: they must survive
/// a failed run byte for byte.
fn put_existing_files(out: &Path) {
    fs::create_dir_all(out).expect("out folder");
    fs::write(out.join("notes.txt"), "mine, not the tool's\n").expect("notes");
    fs::write(out.join("config.json"), "{\"old\": true}\n").expect("old config");
    fs::write(out.join("rank0.safetensors"), b"an older output").expect("old rank");
}

// ---------------------------------------------------------------- disk full

#[test]
#[cfg_attr(
    not(all(has_mount, has_strace)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), strace (apt install strace)"
)]
fn disk_full_removes_temp_files_and_the_output_folder_it_created() {
    let (_dir, root) = temp_root();
    let ckpt = checkpoint_keeping(&root, &[4 << 20]);
    let input = tree(&ckpt);
    let _mount = Mount::tmpfs(&root.join("small"), "size=2m").expect("a tmpfs mount");
    let out = root.join("small/out");

    let result = run_blind_to_free_space(&ckpt, Some(&out), &[]);

    assert_fails(
        &result,
        1,
        Some(&out.join("rank0.safetensors: cannot write")),
        "No space left on device",
    );
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(
    not(all(has_mount, has_strace)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), strace (apt install strace)"
)]
fn disk_full_on_a_later_rank_removes_the_ranks_already_written() {
    let (_dir, root) = temp_root();
    // Each rank fits on the 2 MiB filesystem alone, both together do not;
    // with one job, rank0 is complete before rank1 fills the disk.
    let ckpt = checkpoint_keeping(&root, &[1280 << 10, 1280 << 10]);
    let input = tree(&ckpt);
    let _mount = Mount::tmpfs(&root.join("small"), "size=2m").expect("a tmpfs mount");
    let out = root.join("small");
    put_existing_files(&out);
    let before = tree(&out);

    let result = run_blind_to_free_space(&ckpt, Some(&out), &["--jobs", "1"]);

    assert_fails(
        &result,
        1,
        Some(&out.join("rank1.safetensors: cannot write")),
        "No space left on device",
    );
    assert_eq!(tree(&out), before, "the output folder changed");
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn out_of_inodes_removes_the_temp_files_already_created() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    // Inodes for the root, the output folder and config.json's temp file:
    // creating the first rank's temp file fails.
    let _mount = Mount::tmpfs(&root.join("small"), "size=1m,nr_inodes=3").expect("a tmpfs mount");
    let out = root.join("small/out");

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&out), "No space left on device");
    assert_eq!(util::file_names(&root.join("small")), Vec::<String>::new());
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(
    not(all(has_mount, has_strace)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), strace (apt install strace)"
)]
fn disk_full_removes_the_parent_folders_it_created() {
    let (_dir, root) = temp_root();
    let ckpt = checkpoint_keeping(&root, &[4 << 20]);
    let _mount = Mount::tmpfs(&root.join("small"), "size=2m").expect("a tmpfs mount");
    let out = root.join("small/new/deeper/out");

    let result = run_blind_to_free_space(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&out), "No space left on device");
    assert_eq!(util::file_names(&root.join("small")), Vec::<String>::new());
}

// -------------------------------------------------- output folder refusals

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn read_only_output_folder_fails_and_keeps_its_files() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    let out = root.join("ro");
    let mount = Mount::tmpfs(&out, "size=1m").expect("a tmpfs mount");
    put_existing_files(&out);
    assert!(mount.remount_read_only(), "cannot remount read-only");
    let before = tree(&out);

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(
        &result,
        1,
        Some(Path::new(&format!(
            "{}: cannot create files in the output folder",
            out.display()
        ))),
        "Read-only file system",
    );
    assert_eq!(tree(&out), before);
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn output_folder_on_a_read_only_filesystem_cannot_be_created() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    let mount = Mount::tmpfs(&root.join("ro"), "size=1m").expect("a tmpfs mount");
    assert!(mount.remount_read_only(), "cannot remount read-only");
    let out = root.join("ro/new");

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&out), "cannot create folder");
    assert!(!out.exists());
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn refuses_an_output_path_that_is_a_file() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    let out = root.join("out.txt");
    fs::write(&out, "not a folder\n").unwrap();

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&out), "exists and is not a folder");
    assert_eq!(fs::read_to_string(&out).unwrap(), "not a folder\n");
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn output_under_a_file_cannot_be_created() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    fs::write(root.join("out.txt"), "not a folder\n").unwrap();
    let out = root.join("out.txt/sub");

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&out), "cannot create folder");
    assert_eq!(
        fs::read_to_string(root.join("out.txt")).unwrap(),
        "not a folder\n"
    );
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn output_that_is_a_dangling_symlink_is_left_alone() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let out = root.join("out");
    symlink("nowhere/out", &out).unwrap();

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&out), "cannot create folder");
    assert_eq!(fs::read_link(&out).unwrap(), Path::new("nowhere/out"));
    assert!(!root.join("nowhere").exists());
}

/// Asserts that `--out_dir spelling` is refused as the checkpoint folder
/// and that neither the checkpoint nor its parent changed.
#[track_caller]
fn assert_refused_as_checkpoint_folder(root: &Path, ckpt: &Path, spelling: &Path) {
    let before = tree(root);

    let result = run(ckpt, Some(spelling), &[]);

    assert_fails(
        &result,
        1,
        Some(ckpt),
        "the output folder is the checkpoint folder",
    );
    assert_eq!(tree(root), before, "something was written");
}

#[test]
fn refuses_the_checkpoint_folder_as_output() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    assert_refused_as_checkpoint_folder(&root, &ckpt, &ckpt);
    assert_refused_as_checkpoint_folder(&root, &ckpt, &ckpt.join("."));
}

#[test]
fn refuses_the_checkpoint_folder_as_output_via_dot_dot() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    fs::create_dir(root.join("other")).unwrap();
    // Through an existing folder, and through one that does not exist yet
    // (which must not be created either).
    assert_refused_as_checkpoint_folder(&root, &ckpt, &root.join("other/../ckpt"));
    assert_refused_as_checkpoint_folder(&root, &ckpt, &ckpt.join("new/.."));
    assert_refused_as_checkpoint_folder(&root, &ckpt, &ckpt.join("rank0.safetensors/.."));
}

#[test]
fn refuses_the_checkpoint_folder_as_output_via_a_symlink() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    symlink(&ckpt, root.join("link")).unwrap();
    symlink("ckpt", root.join("relative-link")).unwrap();
    assert_refused_as_checkpoint_folder(&root, &ckpt, &root.join("link"));
    assert_refused_as_checkpoint_folder(&root, &ckpt, &root.join("relative-link"));
    // And the other way round: the checkpoint given through the link.
    let before = tree(&root);
    let result = run(&root.join("link"), Some(&ckpt), &[]);
    assert_fails(&result, 1, Some(&ckpt), "checkpoint folder");
    assert_eq!(tree(&root), before);
}

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn refuses_the_checkpoint_folder_as_output_via_a_bind_mount() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let alias = root.join("alias");
    fs::create_dir(&alias).unwrap();
    let _mount = Mount::bind(&ckpt, &alias).expect("a bind mount");
    let input = tree(&ckpt);

    // Another path, so only the files' identities tell it is the input.
    let result = run(&ckpt, Some(&alias), &[]);

    assert_fails(
        &result,
        1,
        Some(&alias),
        "the output folder is the checkpoint folder",
    );
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn refuses_an_output_file_that_is_a_hard_link_to_an_input() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    let out = root.join("out");
    fs::create_dir(&out).unwrap();
    fs::hard_link(
        ckpt.join("rank1.safetensors"),
        out.join("rank1.safetensors"),
    )
    .unwrap();
    symlink(ckpt.join("config.json"), out.join("config.json")).unwrap();
    let before = tree(&out);

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&out), "would overwrite the input file");
    assert_eq!(tree(&out), before);
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn refuses_an_output_file_name_taken_by_a_folder() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    let out = root.join("out");
    fs::create_dir_all(out.join("rank1.safetensors")).unwrap();
    fs::write(out.join("rank1.safetensors/precious"), "user data\n").unwrap();
    let before = tree(&out);

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(
        &result,
        1,
        Some(&out.join("rank1.safetensors")),
        "a folder has the name of an output file",
    );
    assert_eq!(tree(&out), before);
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn an_output_name_that_is_a_mount_point_is_refused_before_the_commit() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let input = tree(&ckpt);
    let out = root.join("out");
    put_existing_files(&out);
    // A mount point cannot be renamed over (EBUSY): the commit finds out
    // when it links the file it replaces (EXDEV), before it changes anything.
    fs::write(out.join("rank1.safetensors"), "mount point").unwrap();
    fs::write(root.join("busy"), "mounted over rank1").unwrap();
    let _mount =
        Mount::bind(&root.join("busy"), &out.join("rank1.safetensors")).expect("a bind mount");
    let before = tree(&out);

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(
        &result,
        1,
        Some(&out.join("rank1.safetensors")),
        "cannot be replaced: it is a mount point",
    );
    assert_eq!(tree(&out), before);
    assert_eq!(tree(&ckpt), input);
}

// -------------------------------------------------------------- interrupts

/// Where a run copying a [`slow_checkpoint`] writes: `out` in a tmpfs when
/// one can be mounted, so that the data is really copied everywhere (within
/// one XFS or btrfs filesystem the kernel could share its blocks). The tmpfs
/// is bounded: a run that is not stopped fails with a full disk rather than
/// eat the memory.
fn slow_output_folder(root: &Path) -> (Option<Mount>, PathBuf) {
    let mount = Mount::tmpfs(&root.join("tmpfs"), "size=2g");
    (mount, root.join("tmpfs/out"))
}

/// Interrupts a run with `signal` while it copies a slow rank into `out`,
/// and asserts the exit status and the one-line message.
fn interrupt_mid_copy(ckpt: &Path, out: &Path, signal: libc::c_int, name: &str) {
    let mut running = Running::spawn(slow_command(ckpt, Some(out), &[]));
    running.wait_for_temp_file(out, "rank0.safetensors");
    running.signal(signal);
    let result = running.finish();
    assert_fails(
        &result,
        128 + signal,
        None,
        &format!("interrupted by {name}; nothing of this run was kept"),
    );
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn sigint_mid_copy_exits_130_and_leaves_nothing() {
    let (_dir, root) = temp_root();
    let ckpt = slow_checkpoint(&root, SLOW_RANK_BYTES);
    let input = tree(&ckpt);
    let (_mount, out) = slow_output_folder(&root);

    interrupt_mid_copy(&ckpt, &out, libc::SIGINT, "SIGINT");

    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn sigterm_mid_copy_exits_143_and_keeps_existing_files() {
    let (_dir, root) = temp_root();
    let ckpt = slow_checkpoint(&root, SLOW_RANK_BYTES);
    let input = tree(&ckpt);
    let (_mount, out) = slow_output_folder(&root);
    put_existing_files(&out);
    let before = tree(&out);

    interrupt_mid_copy(&ckpt, &out, libc::SIGTERM, "SIGTERM");

    assert_eq!(tree(&out), before);
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn sighup_mid_copy_exits_129_and_leaves_nothing() {
    // A closed terminal or SSH session.
    let (_dir, root) = temp_root();
    let ckpt = slow_checkpoint(&root, SLOW_RANK_BYTES);
    let input = tree(&ckpt);
    let (_mount, out) = slow_output_folder(&root);

    interrupt_mid_copy(&ckpt, &out, libc::SIGHUP, "SIGHUP");

    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn sighup_ignored_by_the_parent_stays_ignored() {
    // `nohup trtllm-prune ...` must survive the hangup.
    let (_dir, root) = temp_root();
    let ckpt = slow_checkpoint(&root, SLOW_RANK_BYTES);
    let (_mount, out) = slow_output_folder(&root);
    let mut cmd = slow_command(&ckpt, Some(&out), &[]);
    // SAFETY: signal() is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut running = Running::spawn(cmd);
    running.wait_for_temp_file(&out, "rank0.safetensors");

    running.signal(libc::SIGHUP);
    // A handled SIGHUP ends the run within a chunk or two.
    std::thread::sleep(Duration::from_millis(300));
    let still_running = matches!(running.child.try_wait(), Ok(None));
    running.signal(libc::SIGINT);
    let result = running.finish();

    assert!(still_running, "an ignored SIGHUP stopped the run");
    assert_fails(&result, 130, None, "interrupted by SIGINT");
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
}

// ---------------------------------------------------------------- in place
//
// `--in-place` stages the outputs beside the inputs and renames them over
// the inputs: every failure before the commit, and a failure during it,
// must leave the checkpoint exactly as it was.

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn in_place_interrupted_mid_copy_leaves_the_checkpoint_as_it_was() {
    let (_dir, root) = temp_root();
    // On a bounded tmpfs when possible, for the reasons of
    // `slow_output_folder`: here the output folder is the checkpoint's.
    let _mount = Mount::tmpfs(&root.join("fs"), "size=2g");
    let ckpt = slow_checkpoint(&root.join("fs"), SLOW_RANK_BYTES);
    let input = tree(&ckpt);

    let mut running = Running::spawn(slow_command(&ckpt, None, &["--in-place"]));
    running.wait_for_temp_file(&ckpt, "rank0.safetensors");
    running.signal(libc::SIGINT);
    let result = running.finish();

    assert_fails(&result, 130, None, "interrupted by SIGINT");
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(
    not(all(has_mount, has_strace)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), strace (apt install strace)"
)]
fn in_place_disk_full_leaves_the_checkpoint_as_it_was() {
    // Pruning in place to free space, on a nearly full disk: the pruned
    // copy does not fit beside the original.
    let (_dir, root) = temp_root();
    let _mount = Mount::tmpfs(&root.join("small"), "size=2m").expect("a tmpfs mount");
    let ckpt = checkpoint_keeping(&root.join("small"), &[1280 << 10]);
    let input = tree(&ckpt);

    let result = run_blind_to_free_space(&ckpt, None, &["--in-place"]);

    assert_fails(
        &result,
        1,
        Some(&ckpt.join("rank0.safetensors: cannot write")),
        "No space left on device",
    );
    assert_eq!(tree(&ckpt), input);
}

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn in_place_over_a_mount_point_is_refused_before_the_commit() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    // rank1 is a mount point (a bind mount of a copy of itself): the
    // commit cannot replace it, and finds out before it changes anything.
    let copy = root.join("rank1.copy");
    fs::copy(ckpt.join("rank1.safetensors"), &copy).unwrap();
    let _mount = Mount::bind(&copy, &ckpt.join("rank1.safetensors")).expect("a bind mount");
    let input = tree(&ckpt);

    let result = run(&ckpt, None, &["--in-place"]);

    assert_fails(
        &result,
        1,
        Some(&ckpt.join("rank1.safetensors")),
        "cannot be replaced: it is a mount point",
    );
    assert_eq!(tree(&ckpt), input);
}

// ------------------------------------------------ input changed mid-copy

/// Runs on a one-rank checkpoint whose kept tensor is `kept` bytes of holes
/// and data, pauses the run once it writes rank0, lets `change` alter the input
/// (given the checkpoint folder and the test's root), resumes, and asserts
/// an error naming rank0 with `problem`, no output left, and config.json
/// untouched.
fn change_input_mid_copy(kept: u64, change: impl FnOnce(&Path, &Path), problem: &str) {
    let (_dir, root) = temp_root();
    let ckpt = slow_checkpoint(&root, kept);
    let config = fs::read(ckpt.join("config.json")).unwrap();
    let rank0 = ckpt.join("rank0.safetensors");
    let (_mount, out) = slow_output_folder(&root);

    let mut running = Running::spawn(slow_command(&ckpt, Some(&out), &[]));
    running.wait_for_temp_file(&out, "rank0.safetensors");
    // Paused, the run cannot finish the copy before the change lands.
    running.signal(libc::SIGSTOP);
    change(&ckpt, &root);
    running.signal(libc::SIGCONT);
    let result = running.finish();

    assert_fails(&result, 1, Some(&rank0), problem);
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(
        util::file_names(&ckpt),
        ["config.json", "rank0.safetensors"]
    );
    assert_eq!(fs::read(ckpt.join("config.json")).unwrap(), config);
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn input_truncated_mid_copy_is_reported_without_sigbus() {
    change_input_mid_copy(
        SLOW_RANK_BYTES,
        |ckpt, _| {
            File::options()
                .write(true)
                .open(ckpt.join("rank0.safetensors"))
                .and_then(|f| f.set_len(1 << 20))
                .expect("input truncated");
        },
        "input file changed while it was being copied: it ends before byte",
    );
}

// A replaced or rewritten input is noticed only after the whole (old)
// file is copied: these use a smaller rank than the interrupt tests.
const REPLACED_RANK_BYTES: u64 = 512 << 20;

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn input_replaced_mid_copy_is_reported() {
    change_input_mid_copy(
        REPLACED_RANK_BYTES,
        |ckpt, root| {
            // Made beside the checkpoint, not in it, or it would be copied
            // as an extra file.
            let replacement = root.join("replacement.safetensors");
            fixture::write_safetensors(&replacement, &rank_keeping(16), None).unwrap();
            fs::rename(&replacement, ckpt.join("rank0.safetensors")).expect("input replaced");
        },
        "input file was replaced or removed while it was being copied",
    );
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn input_removed_mid_copy_is_reported() {
    change_input_mid_copy(
        REPLACED_RANK_BYTES,
        |ckpt, _| {
            let rank0 = ckpt.join("rank0.safetensors");
            fs::remove_file(&rank0).expect("input removed");
            // Back in place as a new file, so the folder listing matches.
            fixture::write_safetensors(&rank0, &rank_keeping(16), None).unwrap();
        },
        "input file was replaced or removed while it was being copied",
    );
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn input_rewritten_in_place_mid_copy_is_reported() {
    change_input_mid_copy(
        REPLACED_RANK_BYTES,
        |ckpt, _| {
            // Same size, same inode, new bytes (and a new mtime: past a
            // coarse timestamp tick on kernels without fine-grained ones).
            std::thread::sleep(Duration::from_millis(20));
            let file = File::options()
                .write(true)
                .open(ckpt.join("rank0.safetensors"))
                .expect("input opens");
            std::os::unix::fs::FileExt::write_all_at(&file, b"new bytes", 1 << 20)
                .expect("input rewritten");
        },
        "input file was modified while it was being copied",
    );
}

// ------------------------------------------------------ unusable rank files

/// Replaces rank1 of a tiny checkpoint with what `make` creates, runs, and
/// asserts an error naming rank1 and containing `problem`, with nothing
/// written and the input unchanged.
fn assert_bad_rank1(make: impl FnOnce(&Path), problem: &str) {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let rank1 = ckpt.join("rank1.safetensors");
    fs::remove_file(&rank1).unwrap();
    make(&rank1);
    let input = tree(&ckpt);
    let out = root.join("out");

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&rank1), problem);
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn rank_file_that_is_a_directory() {
    assert_bad_rank1(|p| fs::create_dir(p).unwrap(), "is a directory");
}

#[test]
fn rank_file_that_is_a_symlink_loop() {
    assert_bad_rank1(
        |p| symlink("rank1.safetensors", p).unwrap(),
        "Too many levels of symbolic links",
    );
}

#[test]
fn rank_file_that_is_a_dangling_symlink() {
    assert_bad_rank1(
        |p| symlink("gone.safetensors", p).unwrap(),
        "rank file missing",
    );
}

#[test]
fn rank_file_that_is_a_fifo_does_not_block() {
    assert_bad_rank1(mkfifo, "not a regular file");
}

#[test]
fn rank_file_that_is_cut_short() {
    assert_bad_rank1(
        |p| {
            let tensors = CheckpointSpec::tiny(Family::Llama, 2, 1).rank_tensors(1);
            fixture::write_safetensors(p, &tensors, None).unwrap();
            let len = fs::metadata(p).unwrap().len();
            File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_len(len - 1))
                .unwrap();
        },
        "",
    );
}

#[test]
fn unreadable_rank_file() {
    let (dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let rank1 = ckpt.join("rank1.safetensors");
    // Taken while the test can still read every file.
    let input = tree(&ckpt);
    fs::set_permissions(&rank1, fs::Permissions::from_mode(0o000)).unwrap();
    let out = root.join("out");
    let mut cmd = command(&ckpt, Some(&out), &[]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root reads anything: run as `nobody`, who can reach the folder
        // but not the file.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        cmd.uid(65534).gid(65534);
    } else if File::open(&rank1).is_ok() {
        eprintln!("skipped: a mode 000 file is still readable by this user");
        return;
    }
    let running = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => Running { child },
        Err(e) => {
            eprintln!("skipped: cannot run the binary as another user ({e})");
            return;
        }
    };
    let result = running.finish();

    assert_fails(&result, 1, Some(&rank1), "Permission denied");
    assert!(!out.exists());
    fs::set_permissions(&rank1, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(tree(&ckpt), input);
}

// -------------------------------------------------- config and the folder

/// Writes `config` over a tiny checkpoint's config.json, runs, and asserts
/// an error naming `file` (relative to the checkpoint) with `problem`.
fn assert_bad_config(config: Option<&str>, file: &str, problem: &str) {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    match config {
        Some(text) => fs::write(ckpt.join("config.json"), text).unwrap(),
        None => fs::remove_file(ckpt.join("config.json")).unwrap(),
    }
    let input = tree(&ckpt);
    let out = root.join("out");

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&ckpt.join(file)), problem);
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(tree(&ckpt), input);
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `path` is a live NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
}

#[test]
fn config_that_is_a_fifo_does_not_block() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let config = ckpt.join("config.json");
    fs::remove_file(&config).unwrap();
    mkfifo(&config);
    let input = tree(&ckpt);
    let out = root.join("out");

    let mut running = Running::spawn(command(&ckpt, Some(&out), &[]));
    // A reader blocked on the FIFO would wait for a writer forever (and
    // retry through Ctrl-C); give it a moment, then unblock it so that the
    // test ends either way.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = running.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let blocked = matches!(running.child.try_wait(), Ok(None));
    if blocked {
        let _ = File::options()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&config)
            .and_then(|mut f| f.write_all(b"{}"));
    }
    let result = running.finish();

    assert!(!blocked, "the run blocked reading a FIFO config.json");
    assert_fails(&result, 1, Some(&config), "not a regular file");
    assert!(!out.exists());
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn config_that_is_a_directory() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let config = ckpt.join("config.json");
    fs::remove_file(&config).unwrap();
    fs::create_dir(&config).unwrap();
    let out = root.join("out");

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&config), "not a regular file");
    assert!(!out.exists());
}

#[test]
fn config_missing() {
    assert_bad_config(None, "config.json", "not a TensorRT-LLM checkpoint folder");
}

#[test]
fn config_not_json() {
    assert_bad_config(Some("{\"mapping\": "), "config.json", "invalid JSON");
}

#[test]
fn config_not_utf8() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    fs::write(ckpt.join("config.json"), b"{\"a\": \"\xff\"}").unwrap();
    let result = run(&ckpt, Some(&root.join("out")), &[]);
    assert_fails(
        &result,
        1,
        Some(&ckpt.join("config.json")),
        "not valid UTF-8",
    );
}

#[test]
fn config_not_an_object() {
    assert_bad_config(Some("[1, 2]\n"), "config.json", "not a JSON object");
}

#[test]
fn config_world_size_zero() {
    assert_bad_config(
        Some(&config_for_world_size(0)),
        "config.json",
        "mapping.world_size must be a positive integer, found 0",
    );
}

#[test]
fn config_world_size_not_an_integer() {
    for bad in ["-1", "1.5", "\"2\"", "true", "18446744073709551616"] {
        assert_bad_config(
            Some(&format!("{{\"mapping\": {{\"world_size\": {bad}}}}}")),
            "config.json",
            "mapping.world_size must be a positive integer",
        );
    }
}

#[test]
fn config_mapping_not_an_object() {
    assert_bad_config(
        Some("{\"mapping\": [2]}"),
        "config.json",
        "`mapping` must be an object",
    );
}

#[test]
fn rank_file_missing() {
    assert_bad_config(
        Some(&config_for_world_size(3)),
        "rank2.safetensors",
        "rank file missing: config.json has world_size 3",
    );
}

#[test]
fn more_rank_files_than_the_open_file_limit() {
    // Every rank stays open from validation to copy; past the process's
    // file limit that is an error naming the rank, not a crash.
    let (_dir, root) = temp_root();
    let ckpt = checkpoint_keeping(&root, &[64; 40]);
    let input = tree(&ckpt);
    let out = root.join("out");
    let mut cmd = command(&ckpt, Some(&out), &[]);
    // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 24,
                rlim_max: 24,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }

    let result = Running::spawn(cmd).finish();

    assert_fails(&result, 1, Some(&ckpt.join("rank")), "Too many open files");
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(tree(&ckpt), input);
}

// ------------------------------------------- generic safetensors folders

/// A Hugging Face style folder in `root/hf`: two shards and their index
/// (as `index` gives it, or none), no config.json and no rank files.
fn generic_checkpoint(root: &Path, index: Option<&str>) -> PathBuf {
    let dir = root.join("hf");
    fs::create_dir_all(&dir).unwrap();
    for shard in ["model-00001-of-00002", "model-00002-of-00002"] {
        let path = dir.join(format!("{shard}.safetensors"));
        let tensors = vec![TensorSpec::new(
            format!("{shard}.mlp.fc.weight"),
            Dtype::BF16,
            &[4, 4],
        )];
        fixture::write_safetensors(&path, &tensors, None).unwrap();
    }
    if let Some(text) = index {
        fs::write(dir.join("model.safetensors.index.json"), text).unwrap();
    }
    dir
}

/// Runs on a generic folder with `index` and asserts an error naming
/// `file` (relative to the folder) with `problem`, nothing written.
fn assert_bad_generic(index: Option<&str>, extra: &[&str], file: &str, problem: &str) {
    let (_dir, root) = temp_root();
    let ckpt = generic_checkpoint(&root, index);
    let input = tree(&ckpt);
    let out = root.join("out");

    let result = run(&ckpt, Some(&out), extra);

    let file = match file {
        "" => ckpt.clone(),
        name => ckpt.join(name),
    };
    assert_fails(&result, 1, Some(&file), problem);
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
    assert_eq!(tree(&ckpt), input);
}

const INDEX: &str = "model.safetensors.index.json";

#[test]
fn shard_index_not_json() {
    assert_bad_generic(Some("{\"weight_map\": "), &[], INDEX, "invalid JSON");
}

#[test]
fn shard_index_without_a_weight_map_of_strings() {
    assert_bad_generic(Some("[]"), &[], INDEX, "top level is not a JSON object");
    for bad in ["{}", "{\"weight_map\": []}", "{\"weight_map\": {\"a\": 1}}"] {
        assert_bad_generic(
            Some(bad),
            &[],
            INDEX,
            "`weight_map` must be an object mapping tensor names to shard file names",
        );
    }
}

#[test]
fn shard_index_naming_a_missing_shard() {
    assert_bad_generic(
        Some("{\"weight_map\": {\"x\": \"model-00003-of-00003.safetensors\"}}"),
        &[],
        INDEX,
        "weight_map names shard `model-00003-of-00003.safetensors`, which is not in the folder",
    );
}

#[test]
fn generic_shard_with_a_bad_header_writes_nothing() {
    let (_dir, root) = temp_root();
    let ckpt = generic_checkpoint(&root, None);
    let shard = ckpt.join("model-00002-of-00002.safetensors");
    let len = fs::metadata(&shard).unwrap().len();
    File::options()
        .write(true)
        .open(&shard)
        .and_then(|f| f.set_len(len + 3))
        .unwrap();
    let input = tree(&ckpt);
    let out = root.join("out");

    let result = run(&ckpt, Some(&out), &[]);

    assert_fails(&result, 1, Some(&shard), "3 trailing bytes");
    assert!(!out.exists());
    assert_eq!(tree(&ckpt), input);
}

#[test]
fn ranks_option_on_a_generic_folder() {
    assert_bad_generic(
        None,
        &["--ranks", "0"],
        "",
        "--ranks applies to TensorRT-LLM checkpoints",
    );
}

#[test]
fn checkpoint_folder_missing() {
    let (_dir, root) = temp_root();
    let ckpt = root.join("nowhere");
    let result = run(&ckpt, None, &[]);
    assert_fails(&result, 1, Some(&ckpt), "checkpoint folder not found");
    assert_eq!(util::file_names(&root), Vec::<String>::new());
}

#[test]
fn checkpoint_path_is_a_file() {
    let (_dir, root) = temp_root();
    let ckpt = root.join("ckpt");
    fs::write(&ckpt, "a file").unwrap();
    let result = run(&ckpt, None, &[]);
    assert_fails(
        &result,
        1,
        Some(&ckpt),
        "checkpoint path is a file, not a folder: give the folder that holds it, or look at the file with `trtllm-prune inspect`",
    );
    assert_eq!(util::file_names(&root), ["ckpt"]);
}

#[test]
fn special_files_beside_the_ranks_are_skipped_without_blocking() {
    // Only regular files travel with the ranks; a FIFO is never opened
    // (it would block), a folder is not copied.
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    mkfifo(&ckpt.join("pipe"));
    fs::create_dir(ckpt.join("tokenizer")).unwrap();
    fs::write(ckpt.join("tokenizer/vocab.json"), "{}").unwrap();
    let input = tree(&ckpt);
    let out = root.join("out");

    util::assert_success(run(&ckpt, Some(&out), &["--quiet"]));

    assert_eq!(
        util::file_names(&out),
        ["config.json", "rank0.safetensors", "rank1.safetensors"]
    );
    assert_eq!(tree(&ckpt), input);
}

// ------------------------------------------------------------ long names

#[test]
fn files_with_the_longest_names_are_copied() {
    // A temp file name adds ~30 bytes to the output's name: names near
    // NAME_MAX (255 bytes) once made a valid checkpoint fail with
    // "File name too long".
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let long_a = format!("{}a.json", "x".repeat(248));
    let long_b = format!("{}b.json", "x".repeat(248));
    let long_utf8 = format!("{}.json", "é".repeat(125));
    for (name, text) in [(&long_a, "a"), (&long_b, "b"), (&long_utf8, "é")] {
        assert!(name.len() <= 255, "{}", name.len());
        fs::write(ckpt.join(name), text).unwrap();
    }
    let out = root.join("out");
    // An earlier output with one of the names, to go through the backup path.
    fs::create_dir(&out).unwrap();
    fs::write(out.join(&long_a), "old").unwrap();

    let result = run(&ckpt, Some(&out), &[]);

    util::assert_success(result);
    for (name, text) in [(&long_a, "a"), (&long_b, "b"), (&long_utf8, "é")] {
        assert_eq!(fs::read_to_string(out.join(name)).unwrap(), text);
    }
    assert_eq!(
        util::file_names(&out).len(),
        6,
        "{:?}",
        util::file_names(&out)
    );
}

// ------------------------------------------------------------ closed stderr

/// Runs the binary with stderr a pipe whose reader is gone, as in
/// `trtllm-prune ... 2>&1 | head -0`.
fn run_with_broken_stderr(mut cmd: Command) -> Output {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe() just opened both descriptors and nothing else owns them.
    let (reader, writer) = unsafe {
        use std::os::fd::{FromRawFd, OwnedFd};
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    drop(reader);
    cmd.stderr(Stdio::from(writer));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    Running { child }.finish()
}

#[test]
fn closed_stderr_does_not_change_the_exit_status() {
    let (_dir, root) = temp_root();
    let ckpt = tiny_checkpoint(&root);
    let out = root.join("out");

    let ok = run_with_broken_stderr(command(&ckpt, Some(&out), &[]));
    assert_eq!(ok.status.code(), Some(0), "a finished run: {:?}", ok.status);
    assert!(out.join("rank1.safetensors").is_file());

    let failed = run_with_broken_stderr(command(&root.join("nowhere"), None, &[]));
    assert_eq!(
        failed.status.code(),
        Some(1),
        "a failed run: {:?}",
        failed.status
    );
}
