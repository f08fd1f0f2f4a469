//! Limits of the machine a run meets: a file size limit, an address-space
//! limit, a process limit, a filesystem too small for the output (each an
//! error with a message, never a death or a half-written folder), and what
//! a user set on the files an in-place run replaces (ACLs, extended
//! attributes), which stays.
//!
//! Limits are set with `ulimit` in a `bash` subshell that then `exec`s the
//! binary; small filesystems are tmpfs mounts. A test that needs root, a
//! mount or a tool is ignored without it, and fails under CI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trtllm_prune::fixture::{CheckpointSpec, Family, TensorSpec};

#[cfg(feature = "remote")]
use crate::remote::HttpServer;
use crate::sharing::{self, XfsMount};
use crate::util::{self, assert_error, assert_success, stderr, tree, write_checkpoint};

fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = util::tempdir();
    let root = fs::canonicalize(dir.path()).expect("temp dir resolves");
    (dir, root)
}

/// A checkpoint whose pruned ranks are about 58 KiB each.
fn small_checkpoint(root: &Path, name: &str, tp: u64) -> PathBuf {
    let mut spec = CheckpointSpec::tiny(Family::Llama, tp, 1);
    spec.hidden = 64;
    spec.intermediate = 176;
    spec.vocab = 256;
    write_checkpoint(root, name, &spec)
}

/// Whether what a test needs of this filesystem (ACLs where the temp
/// folder has none: a loop mount) is there, which no build-time probe
/// tells. Outside CI a missing one is said and the test passes; under CI
/// it fails.
fn can_run(what: &str, available: bool) -> bool {
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what}: unavailable in CI"
        );
        eprintln!("{what} unavailable: skipping");
    }
    available
}

/// Runs the binary with `args` after `setup` (shell commands such as
/// `ulimit -f 16`) in a bash subshell.
fn run_after(setup: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("{setup} && exec \"$0\" \"$@\""))
        .arg(util::bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("bash runs")
}

/// Names starting with a dot: temp files, journals, backups.
fn hidden_names(dir: &Path) -> Vec<String> {
    util::file_names(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Asserts that a run ended by itself with status 0 or 1 (one error line),
/// not by a signal, a panic (101) or an abort (134).
#[track_caller]
fn assert_no_death(out: &Output, what: &str) {
    match out.status.code() {
        Some(0) => {}
        Some(1) => {
            assert_error(out);
        }
        other => panic!("{what}: status {other:?}\nstderr:\n{}", stderr(out)),
    }
}

// ------------------------------------------------------------ file size

#[test]
fn a_file_size_limit_below_an_output_is_an_error_naming_the_file() {
    let (_dir, root) = root();
    let ckpt = small_checkpoint(&root, "ckpt", 2);
    let out = root.join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("notes.txt"), "the user's").unwrap();
    let before = tree(&out);

    // 16 KiB: the config fits, a 58 KiB rank does not.
    let result = run_after(
        "ulimit -f 16",
        &[&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"-q"],
    );

    let line = assert_error(&result);
    assert!(line.to_lowercase().contains("file too large"), "{line}");
    assert!(line.contains("rank"), "{line}");
    assert!(line.contains("16.00 KiB"), "the limit is not named: {line}");
    assert!(tree(&out) == before, "the output folder changed");
}

#[test]
fn a_file_size_limit_in_place_leaves_the_checkpoint_as_it_was() {
    let (_dir, root) = root();
    let ckpt = small_checkpoint(&root, "ckpt", 2);
    let before = tree(&ckpt);

    let result = run_after(
        "ulimit -f 16",
        &[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"],
    );

    let line = assert_error(&result);
    assert!(line.to_lowercase().contains("file too large"), "{line}");
    assert!(tree(&ckpt) == before, "the checkpoint changed");
    assert!(hidden_names(&ckpt).is_empty());
}

#[test]
fn a_write_past_the_file_size_limit_is_an_error_not_a_kill() {
    // The one output the space check cannot size up front: a report on
    // stdout, redirected to a file. SIGXFSZ used to kill the run silently.
    let (_dir, root) = root();
    let ckpt = small_checkpoint(&root, "ckpt", 2);
    let report = root.join("plan.json");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg("ulimit -f 1 && exec \"$0\" \"$@\" > \"$REPORT\"")
        .arg(util::bin())
        .env("REPORT", &report)
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .args(["--dry-run", "--json"]);
    let result = cmd.output().expect("bash runs");

    assert_no_death(&result, "ulimit -f 1, stdout to a file");
    let line = assert_error(&result);
    assert!(
        line.contains("<stdout>") && line.contains("File too large"),
        "{line}"
    );
}

// ------------------------------------------------------------ memory and threads

/// The smallest address-space limit, in KiB and in steps of 4 MiB, under
/// which the binary starts at all (prints its version).
fn startup_floor_kib() -> u64 {
    (4..64)
        .map(|mib| (mib * 4) << 10)
        .find(|kib| {
            run_after(&format!("ulimit -v {kib}"), &[&"--version"])
                .status
                .success()
        })
        .expect("the binary starts under some limit below 256 MiB")
}

#[test]
fn thirty_two_jobs_under_a_low_address_space_limit_still_prune() {
    let (_dir, root) = root();
    let ckpt = small_checkpoint(&root, "ckpt", 32);
    let floor = startup_floor_kib();

    // From just above what the binary needs to start, where not even one
    // worker thread fits, to 64 MiB above it: 32 threads never fit.
    for extra_mib in [8, 12, 16, 24, 32, 64] {
        let limit = floor + (extra_mib << 10);
        let out = root.join(format!("out{extra_mib}"));
        let result = run_after(
            &format!("ulimit -v {limit}"),
            &[
                &"--checkpoint_dir",
                &ckpt,
                &"--out_dir",
                &out,
                &"-j",
                &"32",
                &"-q",
            ],
        );
        let what = format!("ulimit -v {limit} (floor {floor} KiB + {extra_mib} MiB)");
        assert_no_death(&result, &what);
        assert!(
            result.status.success(),
            "{what}: expected success\n{}",
            stderr(&result)
        );
        assert_eq!(util::file_names(&out).len(), 33, "{what}");
    }
}

#[test]
#[cfg_attr(
    not(all(has_root, has_setpriv)),
    ignore = "needs root, setpriv (apt install util-linux)"
)]
fn a_user_at_the_process_limit_prunes_on_the_calling_thread() {
    let (_dir, root) = root();
    let ckpt = small_checkpoint(&root, "ckpt", 8);
    let out = root.join("out");
    let status = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());

    // RLIMIT_NPROC 1: the process itself; no thread can be started. Root
    // ignores the limit, hence user nobody.
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "bash",
        "-c",
    ])
    .arg("ulimit -u 1 && exec \"$0\" \"$@\"")
    .arg(util::bin())
    .arg("--checkpoint_dir")
    .arg(&ckpt)
    .arg("--out_dir")
    .arg(&out)
    .args(["-j", "8", "-q"]);
    let result = cmd.output().expect("setpriv runs");

    assert_no_death(&result, "ulimit -u 1");
    assert_success(result);
    assert_eq!(util::file_names(&out).len(), 9);
}

#[cfg(feature = "remote")]
#[test]
#[cfg_attr(
    not(all(has_root, has_setpriv)),
    ignore = "needs root, setpriv (apt install util-linux)"
)]
fn a_user_at_the_process_limit_prunes_a_remote_checkpoint() {
    let (_dir, root) = root();
    let server = HttpServer::start();
    small_checkpoint(server.root(), "ckpt", 4);
    let out = root.join("out");
    output_of("chmod", &[&"-R", &"a+rwX", &root]).expect("chmod");

    // No thread at all: not the runtime's workers, not the copy's.
    let result = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-c",
        ])
        .arg("ulimit -u 1 && exec \"$0\" \"$@\"")
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(server.url("ckpt"))
        .arg("--out_dir")
        .arg(&out)
        .args(["-j", "4", "-q"])
        .output()
        .expect("setpriv runs");

    assert_no_death(&result, "ulimit -u 1, remote");
    assert_success(result);
    assert_eq!(util::file_names(&out).len(), 5);
}

#[cfg(feature = "remote")]
#[test]
#[cfg_attr(
    not(all(has_root, has_setpriv)),
    ignore = "needs root, setpriv (apt install util-linux)"
)]
fn a_user_at_the_process_limit_naming_a_remote_host_gets_an_error_not_a_panic() {
    let (_dir, root) = root();
    let server = HttpServer::start();
    small_checkpoint(server.root(), "ckpt", 2);
    let out = root.join("out");
    output_of("chmod", &[&"-R", &"a+rwX", &root]).expect("chmod");
    // A host name, not an address: its lookup needs a thread of the
    // network client's own, which tokio panics without.
    let url = server.url("ckpt").replace("127.0.0.1", "localhost");

    let result = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-c",
        ])
        .arg("ulimit -u 1 && exec \"$0\" \"$@\"")
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(&url)
        .arg("--out_dir")
        .arg(&out)
        .arg("-q")
        .output()
        .expect("setpriv runs");

    assert_no_death(&result, "ulimit -u 1, remote host name");
    let line = assert_error(&result);
    assert!(
        line.contains("localhost") && line.contains("the network client stopped"),
        "{line}"
    );
    assert!(!out.exists(), "an output folder was left");
}

#[test]
#[cfg_attr(
    not(all(has_root, has_setpriv, has_script)),
    ignore = "needs root, setpriv (apt install util-linux), script (apt install bsdutils)"
)]
fn a_user_at_the_process_limit_on_a_terminal_gets_progress_bars_not_a_panic() {
    let (_dir, root) = root();
    let ckpt = small_checkpoint(&root, "ckpt", 4);
    let out = root.join("out");
    output_of("chmod", &[&"-R", &"a+rwX", &root]).expect("chmod");

    // `script` gives the run a terminal, so progress bars are drawn, and
    // their ticker is one more thread to be refused.
    let inner = format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups bash -c 'ulimit -u 1 && exec {} --checkpoint_dir {} --out_dir {}'",
        util::bin().display(),
        ckpt.display(),
        out.display()
    );
    let result = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .output()
        .expect("script runs");

    let shown = String::from_utf8_lossy(&result.stdout);
    assert_eq!(result.status.code(), Some(0), "{shown}");
    assert!(shown.contains("pruned 4 ranks"), "{shown}");
}

// ------------------------------------------------------------ free space

/// A tmpfs of `size` mounted at `dir` (created) for the guard's life.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot mount a tmpfs on {}", dir.display());
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Runs the binary under `strace -f -e trace=openat,creat` (when strace
/// is there) and returns the run and the names of files it created.
fn run_tracing_creations(
    root: &Path,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> (Output, Vec<String>) {
    let log = root.join("strace.log");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=openat,creat", "-o"])
        .arg(&log)
        .arg(util::bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    let out = cmd.output().expect("strace runs");
    let created = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("O_CREAT") && !l.contains("= -1"))
        .map(str::to_string)
        .collect();
    (out, created)
}

#[test]
#[cfg_attr(
    not(all(has_mount, has_strace)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), strace (apt install strace)"
)]
fn a_filesystem_too_small_is_refused_with_both_sizes_before_any_write() {
    let (_dir, root) = root();
    let ckpt = small_checkpoint(&root, "ckpt", 4);
    let small = Tmpfs::mount(&root.join("small"), "96k");
    let out = small.dir.join("out");

    let (result, created) = run_tracing_creations(
        &root,
        &[&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"-q"],
    );

    let line = assert_error(&result);
    assert!(line.contains(&out.display().to_string()), "{line}");
    assert!(
        line.contains("needs ") && line.contains(" KiB free"),
        "both sizes are not named: {line}"
    );
    let temp_files: Vec<&String> = created.iter().filter(|l| l.contains(".tmp")).collect();
    assert!(
        temp_files.is_empty(),
        "temp files were created: {temp_files:?}"
    );
    assert!(tree(&small.dir).is_empty(), "the filesystem was written to");

    // With room enough, the same run succeeds.
    small.resize("2m");
    assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));
    assert_eq!(util::file_names(&out).len(), 5);
}

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn in_place_the_files_replaced_count_as_used_until_the_commit() {
    let (_dir, root) = root();
    // A filesystem that holds the checkpoint and 48 KiB more: the pruned
    // ranks (about 117 KiB) fit in the space the old ones will free, but
    // not beside them, where they are written.
    let template = small_checkpoint(&root, "template", 2);
    let used: u64 = fs::read_dir(&template)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum();
    let fs_ = Tmpfs::mount(&root.join("fs"), &format!("{}k", used / 1024 + 48));
    let ckpt = small_checkpoint(&fs_.dir, "ckpt", 2);
    let before = tree(&ckpt);

    let result = util::run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q", &"--json"]);

    util::assert_error_kind(&result, "no_space");
    assert!(tree(&ckpt) == before, "the checkpoint changed");
}

#[test]
#[cfg_attr(
    not(has_mount),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices)"
)]
fn holes_in_the_input_do_not_count_against_free_space() {
    let (_dir, root) = root();
    let ckpt = root.join("sparse");
    fs::create_dir(&ckpt).unwrap();
    // 64 MiB of tensor data, all of it a hole.
    let tensors = [
        TensorSpec::new("a.weight", trtllm_prune::Dtype::F32, &[4096, 2048]),
        TensorSpec::new("b.weight", trtllm_prune::Dtype::F32, &[4096, 2048]),
    ];
    trtllm_prune::fixture::write_sparse_safetensors(&ckpt.join("model.safetensors"), &tensors)
        .unwrap();
    let small = Tmpfs::mount(&root.join("small"), "1m");
    let out = small.dir.join("out");

    assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--prune",
        &"a.*",
        &"-q",
    ]));
}

/// Free bytes of the filesystem holding `path`, as the tool reads them.
fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string and a writable statvfs.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) }, 0);
    stat.f_bavail * stat.f_frsize
}

#[test]
#[cfg_attr(
    not(all(has_mount, has_mkfs_xfs)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), mkfs.xfs (apt install xfsprogs)"
)]
fn blocks_cloning_will_share_count_as_free_on_xfs() {
    let (_dir, root) = root();
    let xfs = XfsMount::new(&root.join("xfs.img"), &root.join("xfs"));
    let ckpt = xfs.dir.join("ckpt");
    sharing::spec().write(&ckpt).unwrap();
    // The output's size, from a run off XFS.
    let reference = root.join("reference");
    assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &reference,
        &"-q",
    ]));
    let output: u64 = util::file_names(&reference)
        .iter()
        .map(|n| fs::metadata(reference.join(n)).unwrap().len())
        .sum();
    // Leave free half the output: enough for what is not shared.
    let filler = xfs.dir.join("filler");
    let fill = free_bytes(&xfs.dir) - output / 2;
    output_of("fallocate", &[&"-l", &fill.to_string(), &filler]).expect("fallocate");
    assert!(
        free_bytes(&xfs.dir) < output,
        "the filesystem is not full enough"
    );

    let out = xfs.dir.join("out");
    let result = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out]);

    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("shared with the input"),
        "{}",
        stderr(&result)
    );
}

// ------------------------------------------------------------ what the user set

/// Runs `program` with `args`, returning its stdout if it succeeded.
fn output_of(program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Option<String> {
    let mut cmd = Command::new(program);
    for a in args {
        cmd.arg(a.as_ref());
    }
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A folder under `root` on a filesystem with ACLs and user extended
/// attributes: `root` itself when it has them, else a loop-mounted ext4
/// image (root only). The guard unmounts it.
fn folder_with_acls(root: &Path) -> Option<(PathBuf, Option<LoopMount>)> {
    let probe = root.join("probe");
    fs::write(&probe, "").unwrap();
    let supported = output_of("setfacl", &[&"-m", &"u:nobody:r", &probe]).is_some()
        && output_of("setfattr", &[&"-n", &"user.probe", &"-v", &"1", &probe]).is_some();
    fs::remove_file(&probe).unwrap();
    if supported {
        return Some((root.to_path_buf(), None));
    }
    let mount = LoopMount::ext4(root)?;
    Some((mount.dir.clone(), Some(mount)))
}

/// An ext4 image mounted through a loop device.
struct LoopMount {
    dir: PathBuf,
}

impl LoopMount {
    fn ext4(root: &Path) -> Option<LoopMount> {
        let image = root.join("ext4.img");
        let dir = root.join("ext4");
        fs::create_dir(&dir).unwrap();
        let made = output_of("truncate", &[&"-s", &"32M", &image]).is_some()
            && output_of("mkfs.ext4", &[&"-q", &image]).is_some()
            && output_of("mount", &[&"-o", &"loop,acl,user_xattr", &image, &dir]).is_some();
        can_run("a loop-mounted ext4 with ACLs", made).then_some(LoopMount { dir })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
#[cfg_attr(
    not(has_acl_tools),
    ignore = "needs setfacl and setfattr (apt install acl attr)"
)]
fn in_place_keeps_acls_and_extended_attributes() {
    let (_dir, root) = root();
    let Some((folder, _mount)) = folder_with_acls(&root) else {
        return;
    };
    let ckpt = small_checkpoint(&folder, "ckpt", 2);
    let rank = ckpt.join("rank0.safetensors");
    let config = ckpt.join("config.json");
    // Private to its owner, and readable by one named user.
    fs::set_permissions(&rank, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    output_of("setfacl", &[&"-m", &"u:nobody:r", &rank]).expect("setfacl");
    output_of("setfattr", &[&"-n", &"user.test", &"-v", &"1", &config]).expect("setfattr");
    output_of("setfattr", &[&"-n", &"user.origin", &"-v", &"hub", &rank]).expect("setfattr");
    let acl = |f: &Path| output_of("getfacl", &[&"-c", &f]).expect("getfacl");
    let attrs =
        |f: &Path| output_of("getfattr", &[&"-d", &"-m", &"^user\\.", &f]).expect("getfattr");
    let (rank_acl, rank_attrs, config_attrs) = (acl(&rank), attrs(&rank), attrs(&config));
    assert!(rank_acl.contains("user:nobody:r--"), "{rank_acl}");

    let result = util::run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]);

    assert_success(result);
    assert_eq!(acl(&rank), rank_acl, "the ACL of rank0 was not kept");
    assert_eq!(attrs(&rank), rank_attrs);
    assert_eq!(attrs(&config), config_attrs);
    assert!(attrs(&config).contains("user.test=\"1\""));
}

#[test]
#[cfg_attr(
    not(all(has_root, has_setpriv, has_acl_tools)),
    ignore = "needs root, setpriv (apt install util-linux), setfacl and setfattr (apt install acl attr)"
)]
fn in_place_warns_about_an_attribute_it_cannot_keep_and_still_succeeds() {
    let (_dir, root) = root();
    let Some((folder, _mount)) = folder_with_acls(&root) else {
        return;
    };
    let ckpt = small_checkpoint(&folder, "ckpt", 2);
    let rank = ckpt.join("rank0.safetensors");
    // A file capability (cap_net_raw, effective): only a process with
    // CAP_SETFCAP may set one, so user nobody cannot keep it.
    let capability = "0x0100000200200000000000000000000000000000";
    output_of(
        "setfattr",
        &[&"-n", &"security.capability", &"-v", &capability, &rank],
    )
    .expect("setfattr security.capability");
    output_of("chmod", &[&"-R", &"a+rwX", &root]).expect("chmod");

    let result = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .arg("--in-place")
        .output()
        .expect("setpriv runs");

    assert!(result.status.success(), "{}", stderr(&result));
    let err = stderr(&result);
    let warning = format!(
        "trtllm-prune: warning: {}: cannot keep the extended attribute security.capability: Operation not permitted",
        rank.display()
    );
    assert!(err.lines().any(|l| l.starts_with(&warning)), "{err}");
}
