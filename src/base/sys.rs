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
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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

    /// Creates a file with no name in this folder (`O_TMPFILE`), open for
    /// reading and writing, removed when closed. Not every filesystem can.
    pub fn create_unnamed(&self) -> io::Result<File> {
        let flags = libc::O_RDWR | libc::O_TMPFILE | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and string; the mode is passed as the
        // variadic argument open expects with O_TMPFILE.
        let fd = check(unsafe {
            libc::openat(self.raw(), c".".as_ptr(), flags, 0o600 as libc::c_uint)
        })?;
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

    /// Takes the folder's lock in `mode`, waiting for it; `on_wait` is
    /// called once, before the wait, when someone else holds it. `flock` on
    /// the folder itself needs no file in it; where the filesystem refuses
    /// that (NFS locks only files open for writing), a hidden lock file
    /// takes its place. `still_wanted` is asked when a signal interrupts
    /// the wait.
    pub fn lock(
        &self,
        mode: LockMode,
        still_wanted: &dyn Fn() -> io::Result<()>,
        on_wait: &dyn Fn(),
    ) -> io::Result<FolderLock> {
        let taken = self.lock_with(&|fd| {
            flock_wait(fd, mode, still_wanted, on_wait)?;
            Ok(true)
        })?;
        taken.ok_or_else(|| io::Error::from_raw_os_error(libc::EWOULDBLOCK))
    }

    /// [`Dir::lock`] without waiting: `None` when someone else holds it.
    pub fn try_lock(&self, mode: LockMode) -> io::Result<Option<FolderLock>> {
        self.lock_with(&|fd| {
            // SAFETY: valid descriptor.
            match check(unsafe { libc::flock(fd, mode.operation() | libc::LOCK_NB) }) {
                Ok(_) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// Takes the folder's lock with `take` (on the folder, or on the lock
    /// file where the folder cannot be locked), `None` if `take` says it
    /// is held.
    fn lock_with(
        &self,
        take: &dyn Fn(RawFd) -> io::Result<bool>,
    ) -> io::Result<Option<FolderLock>> {
        match take(self.raw()) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(FolderLock::Folder(self.fd.try_clone()?))),
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
                Ok(take(file.as_raw_fd())?.then_some(FolderLock::File(file)))
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

fn flock_wait(
    fd: RawFd,
    mode: LockMode,
    still_wanted: &dyn Fn() -> io::Result<()>,
    on_wait: &dyn Fn(),
) -> io::Result<()> {
    // SAFETY: valid descriptor.
    match check(unsafe { libc::flock(fd, mode.operation() | libc::LOCK_NB) }) {
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => on_wait(),
        other => return other.map(drop),
    }
    loop {
        // SAFETY: valid descriptor.
        match check(unsafe { libc::flock(fd, mode.operation()) }) {
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
        // The owner cannot be given away; the group may still be kept (one
        // of this user's groups). If not, the planner has warned.
        // SAFETY: valid descriptor; -1 leaves the owner as it is.
        let r = unsafe { libc::fchown(file.as_raw_fd(), u32::MAX, gid) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(e);
            }
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

/// The kind of lock a folder is taken with: readers share the folder,
/// runs that change it take it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// `--dry-run`, `inspect` and `verify` with nothing to recover: never
    /// blocked by another reader.
    Shared,
    /// A run that commits or recovers.
    Exclusive,
}

impl LockMode {
    fn operation(self) -> libc::c_int {
        match self {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        }
    }
}

/// Takes `file`'s shared lock if no one holds it exclusively: `Ok(false)`
/// when a live run holds it. A probe that only reads takes this one, so
/// two probes never take each other for a live run.
pub(crate) fn try_lock_shared(file: &File) -> io::Result<bool> {
    // SAFETY: valid descriptor.
    match check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A folder reached while resolving a path, open only to resolve names in
/// it (`O_PATH`: no read permission needed, as for the kernel's own walk).
/// Each step is relative to the folder before, so no later change to a
/// path's components can redirect a step already taken.
#[derive(Debug)]
pub(crate) struct PathHandle(OwnedFd);

/// What `lstat` says of an entry or a folder, as much as a walk needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub kind: libc::mode_t,
    pub mode: libc::mode_t,
    pub uid: u32,
}

impl Identity {
    fn of(st: &libc::stat) -> Identity {
        Identity {
            dev: st.st_dev,
            ino: st.st_ino,
            kind: st.st_mode & libc::S_IFMT,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
        }
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == libc::S_IFLNK
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }
}

fn fstat(fd: RawFd) -> io::Result<Identity> {
    // SAFETY: zeroed `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out-pointer.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(Identity::of(&st))
}

fn open_path(dirfd: RawFd, name: &CString) -> io::Result<PathHandle> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid descriptor (or AT_FDCWD) and string.
    let fd = check(unsafe { libc::openat(dirfd, name.as_ptr(), flags) })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(PathHandle(unsafe { OwnedFd::from_raw_fd(fd) }))
}

impl PathHandle {
    /// The root folder.
    pub fn root() -> io::Result<PathHandle> {
        open_path(libc::AT_FDCWD, &CString::from(c"/"))
    }

    /// The folder above this one (`..`, as the kernel resolves it).
    pub fn parent(&self) -> io::Result<PathHandle> {
        open_path(self.0.as_raw_fd(), &CString::from(c".."))
    }

    /// The folder `name` in this one; a symlink or a file there fails
    /// (`ENOTDIR`), as does nothing (`ENOENT`).
    pub fn child(&self, name: &OsStr) -> io::Result<PathHandle> {
        open_path(self.0.as_raw_fd(), &component(name)?)
    }

    pub fn try_clone(&self) -> io::Result<PathHandle> {
        Ok(PathHandle(self.0.try_clone()?))
    }

    /// This folder's own identity.
    pub fn identity(&self) -> io::Result<Identity> {
        fstat(self.0.as_raw_fd())
    }

    /// What is at `name`, without following a symlink; `None` if nothing.
    pub fn entry(&self, name: &OsStr) -> io::Result<Option<Identity>> {
        let c = component(name)?;
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, string and out-pointer.
        let r = unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Identity::of(&st)))
    }

    /// The target of the symlink `name`.
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        let c = component(name)?;
        let mut buffer = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: valid descriptor and string; the buffer is live and
        // `len` bytes long.
        let n = unsafe {
            libc::readlinkat(
                self.0.as_raw_fd(),
                c.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n >= buffer.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        buffer.truncate(n);
        Ok(OsString::from_vec(buffer))
    }

    /// Creates the folder `name` in this one (`EEXIST` if anything is
    /// there, a symlink included: `mkdir` never follows one).
    pub fn create_dir(&self, name: &OsStr) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: valid descriptor and string.
        check(unsafe { libc::mkdirat(self.0.as_raw_fd(), c.as_ptr(), 0o777) }).map(drop)
    }

    /// Removes the folder `name` in this one if it is empty.
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: valid descriptor and string.
        check(unsafe { libc::unlinkat(self.0.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
    }

    /// This folder opened for listing, locking and the folder-relative
    /// calls of [`Dir`]; `path` is its name in messages.
    pub fn open(&self, path: PathBuf) -> io::Result<Dir> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and a static C string.
        let fd = check(unsafe { libc::openat(self.0.as_raw_fd(), c".".as_ptr(), flags) })?;
        Ok(Dir {
            // SAFETY: `fd` was just opened and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path,
        })
    }
}

impl Dir {
    /// The folder's own identity.
    pub fn identity(&self) -> io::Result<Identity> {
        fstat(self.raw())
    }

    /// The identity of what `name` in this folder leads to (a symlink
    /// followed); `None` if nothing, or a dangling symlink.
    pub fn target_identity(&self, name: &OsStr) -> io::Result<Option<Identity>> {
        let c = component(name)?;
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, string and out-pointer.
        let r = unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Identity::of(&st)))
    }
}

/// The name of user `uid` in the user database, if it has one.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    // SAFETY: zeroed `passwd` is a valid out-parameter.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid out-pointers; the buffer is live and `len` bytes long.
    let r = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    if r != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success `pw_name` points to a NUL-terminated string in
    // `buffer`, which is still live.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Bytes of address space this process may still map under its
/// `RLIMIT_AS` (`ulimit -v`); `None` when there is no limit (or it cannot
/// be read, which is treated the same way).
pub(crate) fn address_space_headroom() -> Option<u64> {
    // SAFETY: zeroed `rlimit` is a valid out-parameter.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: valid resource and out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    // The first field of /proc/self/statm: pages mapped now.
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some(limit.rlim_cur.saturating_sub(pages.saturating_mul(page)))
}

/// Under an address-space limit (`ulimit -v`), makes every thread share
/// one malloc arena. glibc otherwise reserves 64 MiB of address space for
/// each thread that allocates, and a few workers use up the limit before
/// the heap can grow, which ends the process with an allocation failure.
/// Called before threads are started: an arena already made stays.
pub(crate) fn share_malloc_arena_under_memory_limit() {
    if address_space_headroom().is_none() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter, under glibc's own
    // lock.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The file size limit (`ulimit -f`) in bytes; `None` when there is none.
pub(crate) fn file_size_limit() -> Option<u64> {
    // SAFETY: zeroed `rlimit` is a valid out-parameter.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: valid resource and out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(limit.rlim_cur)
}

/// The filesystem a folder is on, as the space check needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filesystem {
    /// Its allocation unit (`f_frsize`).
    pub block: u64,
    /// Bytes an unprivileged user may still allocate (`f_bavail` units);
    /// `None` when the filesystem reports no size at all (`f_blocks` 0, as
    /// some FUSE and virtual filesystems do).
    pub free: Option<u64>,
}

impl Dir {
    /// The filesystem this folder is on, through its descriptor.
    // The field types vary with the architecture: the casts are not no-ops
    // everywhere.
    #[allow(clippy::unnecessary_cast)]
    pub fn filesystem(&self) -> io::Result<Filesystem> {
        // SAFETY: a zeroed `statvfs` is a valid out-parameter.
        let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and out-pointer.
        check(unsafe { libc::fstatvfs(self.raw(), &mut vfs) })?;
        let block = vfs.f_frsize as u64;
        Ok(Filesystem {
            block,
            free: (vfs.f_blocks > 0).then(|| (vfs.f_bavail as u64).saturating_mul(block)),
        })
    }
}

/// The names of `file`'s extended attributes (those this process may see:
/// `trusted.*` only for root). A filesystem without them has none.
fn xattr_names(file: &File) -> io::Result<Vec<CString>> {
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        // SAFETY: valid descriptor; a null buffer of size 0 asks for the size.
        let size = unsafe { libc::flistxattr(file.as_raw_fd(), std::ptr::null_mut(), 0) };
        if size < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        buffer.resize(size as usize, 0);
        // SAFETY: valid descriptor; the buffer is live and `len` bytes long.
        let got =
            unsafe { libc::flistxattr(file.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        if got < 0 {
            let e = io::Error::last_os_error();
            // Attributes added since the size was asked: ask again.
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buffer.truncate(got as usize);
        return Ok(buffer
            .split(|&b| b == 0)
            .filter(|name| !name.is_empty())
            .filter_map(|name| CString::new(name).ok())
            .collect());
    }
}

/// The value of `file`'s extended attribute `name`.
fn xattr_value(file: &File, name: &CString) -> io::Result<Vec<u8>> {
    let mut value: Vec<u8> = Vec::new();
    loop {
        // SAFETY: valid descriptor and name; a null buffer asks for the size.
        let size =
            unsafe { libc::fgetxattr(file.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        value.resize(size as usize, 0);
        // SAFETY: valid descriptor and name; the buffer is live and `len`
        // bytes long.
        let got = unsafe {
            libc::fgetxattr(
                file.as_raw_fd(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        value.truncate(got as usize);
        return Ok(value);
    }
}

/// What [`copy_xattrs`] could not copy.
#[derive(Debug)]
pub(crate) enum XattrLoss {
    /// The source's attributes could not be listed: none were copied.
    Listing(io::Error),
    /// This attribute (by name) could not be read or set.
    Attribute(String, io::Error),
}

/// Gives `to` every extended attribute of `from` — `user.*`, `security.*`,
/// `trusted.*` (root), and the POSIX ACL (`system.posix_acl_access`), which
/// also sets the group bits of the mode, so it goes after `fchmod`. Returns
/// what could not be kept, with why; the rest is kept.
///
/// `to`, created in the folder, may have inherited the folder's default
/// ACL: when `from` has no ACL, that one is removed and `from`'s mode set
/// again, so in place a file does not gain readers it did not have.
pub(crate) fn copy_xattrs(from: &File, to: &File) -> Vec<XattrLoss> {
    let names = match xattr_names(from) {
        Ok(names) => names,
        Err(e) => return vec![XattrLoss::Listing(e)],
    };
    let mut failed = Vec::new();
    if !names.iter().any(|n| n.as_bytes() == ACCESS_ACL.to_bytes()) {
        if let Err(e) = remove_inherited_acl(from, to) {
            failed.push(XattrLoss::Attribute(
                ACCESS_ACL.to_string_lossy().into_owned(),
                e,
            ));
        }
    }
    for name in names {
        let shown = name.to_string_lossy().into_owned();
        let value = match xattr_value(from, &name) {
            Ok(value) => value,
            // Removed since it was listed: nothing to keep.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => {
                failed.push(XattrLoss::Attribute(shown, e));
                continue;
            }
        };
        // Already there (a security label the new file was given): a set
        // that would be refused is not needed.
        if xattr_value(to, &name).is_ok_and(|v| v == value) {
            continue;
        }
        // SAFETY: valid descriptor and name; the value is live and `len`
        // bytes long.
        let r = unsafe {
            libc::fsetxattr(
                to.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r < 0 {
            failed.push(XattrLoss::Attribute(shown, io::Error::last_os_error()));
        }
    }
    failed
}

/// The extended attribute that holds a file's POSIX access ACL.
const ACCESS_ACL: &std::ffi::CStr = c"system.posix_acl_access";

/// Removes the access ACL `to` inherited from its folder's default ACL (if
/// any) and gives it `from`'s permission bits again: an ACL's mask entry
/// stood for the group bits.
fn remove_inherited_acl(from: &File, to: &File) -> io::Result<()> {
    // SAFETY: valid descriptor and name.
    let r = unsafe { libc::fremovexattr(to.as_raw_fd(), ACCESS_ACL.as_ptr()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA | libc::ENOTSUP) => Ok(()),
            _ => Err(e),
        };
    }
    use std::os::unix::fs::MetadataExt;
    let mode = from.metadata()?.mode() & 0o7777;
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchmod(to.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// Whether `count` threads (with std's 2 MiB stack) can be started now:
/// they are, and end at once. For threads that libraries start with a
/// panic when the system refuses (`ulimit -u`, `ulimit -v`): tokio's
/// workers, indicatif's ticker.
#[cfg(feature = "remote")]
pub(crate) fn can_start_threads(count: usize) -> bool {
    let started: Vec<_> = (0..count)
        .map(|_| std::thread::Builder::new().stack_size(2 << 20).spawn(|| {}))
        .collect();
    let mut all = true;
    for thread in started {
        all &= thread.is_ok_and(|t| t.join().is_ok());
    }
    all
}

/// What the commit compares of a file: identity, size and times, as
/// `fstatat` gives them (symlinks not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FullStat {
    pub kind: libc::mode_t,
    pub stamp: crate::base::file::FileStamp,
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
            stamp: crate::base::file::FileStamp {
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
        unreplaceable_flag(file.as_raw_fd())
    }

    /// Whether the folder itself carries a flag that forbids renaming or
    /// removing names in it (`chattr +a`: names can be added, none
    /// replaced; `+i`: nothing changes).
    pub fn unreplaceable_names(&self) -> io::Result<Option<Unreplaceable>> {
        unreplaceable_flag(self.raw())
    }
}

/// The [`Unreplaceable`] flag of the file or folder open at `fd`, if any.
fn unreplaceable_flag(fd: RawFd) -> io::Result<Option<Unreplaceable>> {
    let mut flags: libc::c_long = 0;
    // SAFETY: valid descriptor; FS_IOC_GETFLAGS writes one long.
    let r = unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) };
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

impl Dir {
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

/// Clears `O_NONBLOCK` on `file`, opened with it so that a FIFO put where
/// a file was expected could not block the open.
pub fn clear_nonblocking(file: &File) -> io::Result<()> {
    // SAFETY: valid descriptor; F_GETFL takes no argument.
    let flags = check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: valid descriptor; F_SETFL takes the flags as an int.
    check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    Ok(())
}

/// Whether this process may give a file it owns the group `gid`: its
/// effective group or one of its supplementary groups.
pub(crate) fn in_group(gid: u32) -> bool {
    // SAFETY: getegid cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: a null list of size 0 asks for the count.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if count <= 0 {
        return false;
    }
    let mut groups = vec![0 as libc::gid_t; count as usize];
    // SAFETY: the list is live and `count` entries long.
    let got = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    got > 0 && groups[..got as usize].contains(&gid)
}

/// A group as people read it: `gid 0 (root)`, or `gid 1234` when it has no
/// name.
pub(crate) fn group_shown(gid: u32) -> String {
    // SAFETY: a zeroed `group` is a valid out-parameter.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is live for the call; `buffer` is `len` long.
    let r = unsafe {
        libc::getgrgid_r(
            gid,
            &mut group,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if r != 0 || found.is_null() || group.gr_name.is_null() {
        return format!("gid {gid}");
    }
    // SAFETY: getgrgid_r set `gr_name` to a NUL-terminated string in `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(group.gr_name) };
    format!("gid {gid} ({})", name.to_string_lossy())
}
