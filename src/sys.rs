//! The folder operations std does not expose, on a folder's own file
//! descriptor: exclusive creation, rename, link and unlink relative to the
//! folder (so every name the commit touches is in the one folder it opened
//! and locked, whatever happens to the path meanwhile), `flock`, `fsync` of
//! the folder, and random run ids.
//!
//! Names passed here are single path components: a name holding `/`, a NUL
//! byte, `.` or `..` is refused with `EINVAL`, so a crafted journal cannot
//! reach outside the folder.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An open folder.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What `stat` says of a name in a folder (symlinks not followed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryStat {
    pub kind: libc::mode_t,
    pub uid: u32,
    pub ino: u64,
}

impl EntryStat {
    pub fn is_file(&self) -> bool {
        self.kind == libc::S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `name` as a C string, if it is one plain path component.
fn component(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

impl Dir {
    /// Opens the folder at `path`; a symlink as its last component is
    /// refused (`ELOOP`): callers pass resolved paths.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        Ok(Dir {
            // SAFETY: `fd` was just opened and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `name` in this folder, for messages.
    pub fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Creates `name`, which must not exist (a symlink at that name counts
    /// as existing: `O_EXCL` never follows one), open for reading and
    /// writing, with `mode` before the umask.
    pub fn create_new(&self, name: &OsStr, mode: libc::mode_t) -> io::Result<File> {
        let c = component(name)?;
        let flags =
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and string; the mode is passed as the
        // variadic argument open expects with O_CREAT.
        let fd =
            check(unsafe { libc::openat(self.raw(), c.as_ptr(), flags, mode as libc::c_uint) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Opens an existing regular file for reading and writing, without
    /// following a symlink and without blocking on a FIFO.
    pub fn open_regular_rw(&self, name: &OsStr) -> io::Result<File> {
        let c = component(name)?;
        let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: valid descriptor and string.
        let fd = check(unsafe { libc::openat(self.raw(), c.as_ptr(), flags) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(file)
    }

    /// What is at `name`, without following a symlink; `None` if nothing.
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<EntryStat>> {
        let c = component(name)?;
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, string and out-pointer.
        let r =
            unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(EntryStat {
            kind: st.st_mode & libc::S_IFMT,
            uid: st.st_uid,
            ino: st.st_ino,
        }))
    }

    pub fn exists(&self, name: &OsStr) -> io::Result<bool> {
        Ok(self.stat(name)?.is_some())
    }

    /// Renames `from` to `to` in this folder, replacing `to` atomically.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        // SAFETY: valid descriptors and strings.
        check(unsafe { libc::renameat(self.raw(), f.as_ptr(), self.raw(), t.as_ptr()) })?;
        Ok(())
    }

    /// Gives the file at `from` a second name `to` (a symlink is linked
    /// itself, not its target).
    pub fn link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        // SAFETY: valid descriptors and strings.
        check(unsafe { libc::linkat(self.raw(), f.as_ptr(), self.raw(), t.as_ptr(), 0) })?;
        Ok(())
    }

    /// Removes the name `name`; a missing name is not an error.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: valid descriptor and string.
        match check(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Flushes the folder's entries (creations, renames) to disk.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: valid descriptor.
        check(unsafe { libc::fsync(self.raw()) }).map(drop)
    }

    /// Whether the folder still has a name (it was not removed while open).
    pub fn is_linked(&self) -> io::Result<bool> {
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and out-pointer.
        check(unsafe { libc::fstat(self.raw(), &mut st) })?;
        Ok(st.st_nlink > 0)
    }

    /// Every name in the folder, listed through its descriptor (not its
    /// path, which may lead elsewhere by now).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        // SAFETY: valid descriptor and a static C string.
        let fd = check(unsafe {
            libc::openat(
                self.raw(),
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` is a fresh descriptor; fdopendir takes it over.
        let stream = unsafe { libc::fdopendir(fd) };
        if stream.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `fd` is still ours to close.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let mut names = Vec::new();
        let result = loop {
            // readdir reports errors through errno only.
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `stream` is a live directory stream.
            let entry = unsafe { libc::readdir64(stream) };
            if entry.is_null() {
                let e = io::Error::last_os_error();
                break match e.raw_os_error() {
                    Some(0) | None => Ok(()),
                    _ => Err(e),
                };
            }
            // SAFETY: readdir returned a live entry with a NUL-terminated name.
            let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                names.push(OsStr::from_bytes(bytes).to_os_string());
            }
        };
        // SAFETY: `stream` is live and closed once.
        unsafe { libc::closedir(stream) };
        result.map(|()| names)
    }

    /// Takes the folder's exclusive lock, waiting for it. `flock` on the
    /// folder itself needs no file in it; where the filesystem refuses
    /// that (NFS locks only files open for writing), a hidden lock file
    /// takes its place. `still_wanted` is asked when a signal interrupts
    /// the wait.
    pub fn lock(&self, still_wanted: &dyn Fn() -> io::Result<()>) -> io::Result<FolderLock> {
        match flock_wait(self.raw(), still_wanted) {
            Ok(()) => Ok(FolderLock::Folder(self.fd.try_clone()?)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBADF | libc::ENOLCK | libc::EOPNOTSUPP | libc::EINVAL)
                ) =>
            {
                let name = OsStr::new(LOCK_FILE);
                let c = component(name)?;
                let flags = libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC;
                // SAFETY: valid descriptor and string; mode as variadic.
                let fd = check(unsafe {
                    libc::openat(self.raw(), c.as_ptr(), flags, 0o600 as libc::c_uint)
                })?;
                // SAFETY: `fd` was just opened and is owned by nobody else.
                let file = unsafe { File::from_raw_fd(fd) };
                flock_wait(file.as_raw_fd(), still_wanted)?;
                Ok(FolderLock::File(file))
            }
            Err(e) => Err(e),
        }
    }
}

/// Name of the lock file used only where a folder cannot be locked itself.
pub(crate) const LOCK_FILE: &str = ".trtllm-prune.lock";

/// A held folder lock; released when dropped (and by the kernel when the
/// process dies, however it dies).
#[derive(Debug)]
pub(crate) enum FolderLock {
    Folder(OwnedFd),
    File(File),
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let fd = match self {
            FolderLock::Folder(fd) => fd.as_raw_fd(),
            FolderLock::File(f) => f.as_raw_fd(),
        };
        // SAFETY: valid descriptor. The lock also goes with the descriptor.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
    }
}

fn flock_wait(fd: RawFd, still_wanted: &dyn Fn() -> io::Result<()>) -> io::Result<()> {
    loop {
        // SAFETY: valid descriptor.
        match check(unsafe { libc::flock(fd, libc::LOCK_EX) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => still_wanted()?,
            other => return other.map(drop),
        }
    }
}

/// Takes `file`'s exclusive lock if no one holds it: `Ok(false)` when
/// another open file (in this process or another) holds it.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: valid descriptor.
    match check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives `file` the owner, group and permission bits of another file, as far
/// as this process may (a user who is not root can only set their own
/// groups: the rest is left as created).
pub(crate) fn copy_ownership(file: &File, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor. chown first: it clears set-id bits.
    let r = unsafe { libc::fchown(file.as_raw_fd(), uid, gid) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
    }
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchmod(file.as_raw_fd(), (mode & 0o7777) as libc::mode_t) }).map(drop)
}

/// 128 random bits in hex, for names no one can guess ahead of a run.
pub(crate) fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: the buffer is live and `len - done` bytes long from there.
        let n =
            unsafe { libc::getrandom(bytes[done..].as_mut_ptr().cast(), bytes.len() - done, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the process `pid` exists (on this machine).
pub(crate) fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// What the commit compares of a file: identity, size and times, as
/// `fstatat` gives them (symlinks not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FullStat {
    pub kind: libc::mode_t,
    pub stamp: crate::input::FileStamp,
}

/// The `chattr` flags that forbid replacing or linking a file
/// (`FS_IMMUTABLE_FL`, `FS_APPEND_FL` in `linux/fs.h`).
const FS_IMMUTABLE_FL: libc::c_long = 0x10;
const FS_APPEND_FL: libc::c_long = 0x20;

/// Why a file cannot be replaced, found before a commit begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreplaceable {
    /// `chattr +i`.
    Immutable,
    /// `chattr +a`.
    AppendOnly,
}

/// Whether [`Dir::exchange`] or [`Dir::rename_noreplace`] failed only
/// because the kernel or the filesystem lacks that `renameat2` flag.
pub(crate) fn exchange_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

impl Dir {
    /// Identity, size and times of `name` (of the file a symlink leads to
    /// with `follow`); `None` if nothing is there.
    pub fn stat_full(&self, name: &OsStr, follow: bool) -> io::Result<Option<FullStat>> {
        let c = component(name)?;
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        // SAFETY: valid descriptor, string and out-pointer.
        let r = unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ok(Some(FullStat {
            kind: st.st_mode & libc::S_IFMT,
            stamp: crate::input::FileStamp {
                dev: st.st_dev,
                ino: st.st_ino,
                len: st.st_size as u64,
                mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
                ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
            },
        }))
    }

    /// Opens the regular file `name` for reading, without following a
    /// symlink and without blocking on a FIFO.
    pub fn open_regular_read(&self, name: &OsStr) -> io::Result<File> {
        let c = component(name)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: valid descriptor and string.
        let fd = check(unsafe { libc::openat(self.raw(), c.as_ptr(), flags) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(file)
    }

    /// Whether the regular file `name` carries a flag that forbids
    /// replacing it. A filesystem without such flags has none; a file this
    /// user may not open is not looked at (linking it fails instead).
    pub fn unreplaceable(&self, name: &OsStr) -> io::Result<Option<Unreplaceable>> {
        let file = match self.open_regular_read(name) {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut flags: libc::c_long = 0;
        // SAFETY: valid descriptor; FS_IOC_GETFLAGS writes one long.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOTTY | libc::ENOTSUP | libc::EINVAL | libc::ENOSYS) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(if flags & FS_IMMUTABLE_FL != 0 {
            Some(Unreplaceable::Immutable)
        } else if flags & FS_APPEND_FL != 0 {
            Some(Unreplaceable::AppendOnly)
        } else {
            None
        })
    }

    /// Renames `from` to `to` only if nothing is at `to` (`renameat2` with
    /// `RENAME_NOREPLACE`; `EEXIST` otherwise). See [`exchange_unsupported`].
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        // SAFETY: valid descriptors and strings.
        check(unsafe {
            libc::renameat2(
                self.raw(),
                f.as_ptr(),
                self.raw(),
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        })?;
        Ok(())
    }

    /// Swaps the files at `a` and `b` atomically (`renameat2` with
    /// `RENAME_EXCHANGE`); both must exist. See [`exchange_unsupported`].
    pub fn exchange(&self, a: &OsStr, b: &OsStr) -> io::Result<()> {
        let (a, b) = (component(a)?, component(b)?);
        // SAFETY: valid descriptors and strings.
        check(unsafe {
            libc::renameat2(
                self.raw(),
                a.as_ptr(),
                self.raw(),
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        })?;
        Ok(())
    }
}
