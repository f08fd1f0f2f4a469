//! Block sharing on XFS: a checkpoint inside a loop-mounted XFS image
//! (`reflink=1`) is pruned by the binary; the outputs must be byte for byte
//! the outputs of a plain buffered copy, and the kept tensors must share the
//! input's blocks: the summary says so, and the filesystem's free space
//! barely moves.
//!
//! Needs root that may mount, `mkfs.xfs` (Debian's `xfsprogs`) and loop
//! devices; without them the test is ignored (and fails under CI).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use trtllm_prune::fixture::{CheckpointSpec, Family};
use trtllm_prune::{CopyMethods, NoProgress, Options};

use crate::util;

/// Size of the (sparse) image file: XFS refuses filesystems under 300 MB.
const IMAGE_BYTES: u64 = 512 << 20;

/// An XFS image mounted on a folder, unmounted when dropped (whatever the
/// test did in between), so no mount outlives the test (also used by
/// `limits.rs`).
pub(crate) struct XfsMount {
    pub(crate) dir: PathBuf,
}

impl XfsMount {
    /// Formats `image` (created) with reflink and mounts it on `dir`. The
    /// caller's test needs `has_mount` and `has_mkfs_xfs`.
    pub(crate) fn new(image: &Path, dir: &Path) -> XfsMount {
        let mkfs = ["mkfs.xfs", "/usr/sbin/mkfs.xfs", "/sbin/mkfs.xfs"]
            .into_iter()
            .find(|p| Command::new(p).arg("-V").output().is_ok())
            .expect("mkfs.xfs is installed (apt-get install xfsprogs)");
        fs::File::create(image)
            .and_then(|f| f.set_len(IMAGE_BYTES))
            .expect("image file created");
        fs::create_dir_all(dir).expect("mount point created");
        let formatted = Command::new(mkfs)
            .args(["-q", "-f", "-m", "reflink=1"])
            .arg(image)
            .output();
        assert!(
            formatted.as_ref().is_ok_and(|o| o.status.success()),
            "mkfs.xfs failed: {formatted:?}"
        );
        let mounted = Command::new("mount")
            .args(["-t", "xfs", "-o", "loop"])
            .arg(image)
            .arg(dir)
            .output();
        assert!(
            mounted.as_ref().is_ok_and(|o| o.status.success()),
            "cannot loop-mount an XFS image: {mounted:?}"
        );
        XfsMount {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Busy (a file still open): detach now, free when released.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Bytes the filesystem holding `path` has in use, after a `sync` so that
/// delayed allocations are counted.
fn used_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: `c_path` is a valid C string and `stat` a writable statvfs.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    assert_eq!(r, 0, "statvfs {}", path.display());
    (stat.f_blocks - stat.f_bfree) * stat.f_frsize
}

/// A TP2 Llama whose kept tensors are mostly whole 4 KiB blocks (embedding,
/// lm_head, attention.dense) with 1 KiB norms between them: the planner has
/// both large ranges to align and small ones to place around them.
pub(crate) fn spec() -> CheckpointSpec {
    let mut spec = CheckpointSpec::tiny(Family::Llama, 2, 1);
    spec.layers = 6;
    spec.hidden = 512;
    spec.intermediate = 1376;
    spec.vocab = 2048;
    spec
}

#[test]
#[cfg_attr(
    not(all(has_mount, has_mkfs_xfs)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), mkfs.xfs (apt install xfsprogs)"
)]
fn kept_tensors_share_the_inputs_blocks_on_xfs() {
    let tmp = util::tempdir();
    let mount = XfsMount::new(&tmp.path().join("xfs.img"), &tmp.path().join("xfs"));
    let ckpt = mount.dir.join("ckpt");
    spec().write(&ckpt).expect("checkpoint written");

    // The reference: the same plan, copied through the buffer, off XFS.
    let expected = tmp.path().join("expected");
    let mut options = Options::new(&ckpt);
    options.out_dir = Some(expected.clone());
    options.methods = CopyMethods::buffered_only();
    let reference = trtllm_prune::prune(&options, &NoProgress).expect("reference prune");
    assert_eq!(reference.bytes_shared, 0);

    let out = mount.dir.join("out");
    let before = used_bytes(&mount.dir);
    let result = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    let after = used_bytes(&mount.dir);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "prune failed: {stderr}");
    assert!(
        stderr.contains("shared with the input"),
        "summary does not report shared bytes: {stderr}"
    );

    assert_eq!(util::file_names(&out), util::file_names(&expected));
    let mut output_bytes = 0;
    for name in util::file_names(&expected) {
        let got = fs::read(out.join(&name)).expect("output readable");
        let want = fs::read(expected.join(&name)).expect("reference readable");
        assert!(got == want, "{name} differs from the plain copy");
        output_bytes += got.len() as u64;
    }
    // Shared blocks take no new space: only headers, the small ranges
    // copied around the aligned spans, and the folder's metadata do.
    let new_bytes = after.saturating_sub(before);
    assert!(
        new_bytes * 4 < output_bytes,
        "{new_bytes} new bytes on disk for {output_bytes} bytes of output: blocks not shared"
    );
}
