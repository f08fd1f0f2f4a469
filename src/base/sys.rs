//! The folder operations std does not expose, on a folder's own file
//! descriptor: exclusive creation, rename, link and unlink relative to the
//! folder (so every name the commit touches is in the one folder it opened
//! and locked, whatever happens to the path meanwhile), `flock`, `fsync` of
//! the folder, and random run ids; and the few other calls std lacks that
//! the stages share: file stamps (`fstatat`), extended attributes and ACLs
//! kept in place, the user and group of the run, resource limits, malloc
//! arenas and whether threads can be started.
//!
//! Names passed here are single path components: a name holding `/`, a NUL
//! byte, `.` or `..` is refused with `EINVAL`, so a crafted journal cannot
//! reach outside the folder.
//!
//! The calls go through `rustix`; only the user and group databases (NSS,
//! which only libc's functions read) and `mallopt` are called through
//! `libc`, each in one `unsafe` block with its `SAFETY` note.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FlockOperation, IFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

/// An open folder.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
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
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(Dir {
            fd: rfs::open(path, flags, Mode::empty())?,
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

    fn raw(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Creates `name`, which must not exist (a symlink at that name counts
    /// as existing: `O_EXCL` never follows one), open for reading and
    /// writing, with `mode` before the umask.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let c = component(name)?;
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(rfs::openat(self.raw(), &c, flags, Mode::from_raw_mode(mode))?.into())
    }

    /// Creates a file with no name in this folder (`O_TMPFILE`), open for
    /// reading and writing, removed when closed. Not every filesystem can.
    pub fn create_unnamed(&self) -> io::Result<File> {
        let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
        Ok(rfs::openat(self.raw(), c".", flags, Mode::from_raw_mode(0o600))?.into())
    }

    /// Opens an existing regular file for reading and writing, without
    /// following a symlink and without blocking on a FIFO.
    pub fn open_regular_rw(&self, name: &OsStr) -> io::Result<File> {
        self.open_regular(name, OFlags::RDWR)
    }

    /// Opens the regular file `name` for reading, without following a
    /// symlink and without blocking on a FIFO.
    pub fn open_regular_read(&self, name: &OsStr) -> io::Result<File> {
        self.open_regular(name, OFlags::RDONLY)
    }

    /// Opens the regular file `name` with `access`; anything else there
    /// (a folder, a FIFO, a device) is refused with `EINVAL`.
    fn open_regular(&self, name: &OsStr, access: OFlags) -> io::Result<File> {
        let c = component(name)?;
        let flags = access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let file = File::from(rfs::openat(self.raw(), &c, flags, Mode::empty())?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(file)
    }

    /// What is at `name`, without following a symlink; `None` if nothing.
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<Identity>> {
        Ok(stat_at(self.raw(), name, false)?.as_ref().map(Identity::of))
    }

    /// Renames `from` to `to` in this folder, replacing `to` atomically.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        Ok(rfs::renameat(self.raw(), &f, self.raw(), &t)?)
    }

    /// Gives the file at `from` a second name `to` (a symlink is linked
    /// itself, not its target).
    pub fn link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        Ok(rfs::linkat(
            self.raw(),
            &f,
            self.raw(),
            &t,
            AtFlags::empty(),
        )?)
    }

    /// Removes the name `name`; a missing name is not an error.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        match rfs::unlinkat(self.raw(), &component(name)?, AtFlags::empty()) {
            Err(Errno::NOENT) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Flushes the folder's entries (creations, renames) to disk.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rfs::fsync(self.raw())?)
    }

    /// Whether the folder still has a name (it was not removed while open).
    pub fn is_linked(&self) -> io::Result<bool> {
        Ok(rfs::fstat(self.raw())?.st_nlink > 0)
    }

    /// Every name in the folder, listed through its descriptor (not its
    /// path, which may lead elsewhere by now).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(self.raw())? {
            let bytes = entry?.file_name().to_bytes().to_vec();
            if bytes != b"." && bytes != b".." {
                names.push(OsString::from_vec(bytes));
            }
        }
        Ok(names)
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
        self.lock_with(&|fd| flock_now(fd, mode))
    }

    /// Takes the folder's lock with `take` (on the folder, or on the lock
    /// file where the folder cannot be locked), `None` if `take` says it
    /// is held.
    fn lock_with(
        &self,
        take: &dyn Fn(BorrowedFd<'_>) -> io::Result<bool>,
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
                let c = component(OsStr::new(LOCK_FILE))?;
                let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rfs::openat(self.raw(), &c, flags, Mode::from_raw_mode(0o600))?;
                let file = File::from(fd);
                Ok(take(file.as_fd())?.then_some(FolderLock::File(file)))
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
        let fd = match &*self {
            FolderLock::Folder(fd) => fd.as_fd(),
            FolderLock::File(f) => f.as_fd(),
        };
        // The lock also goes with the descriptor: a failure leaves nothing.
        let _ = rfs::flock(fd, FlockOperation::Unlock);
    }
}

/// Takes the lock on `fd` in `mode` if it is free: `Ok(false)` when
/// another open file (in this process or another) holds it.
fn flock_now(fd: BorrowedFd<'_>, mode: LockMode) -> io::Result<bool> {
    match rfs::flock(fd, mode.operation(false)) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn flock_wait(
    fd: BorrowedFd<'_>,
    mode: LockMode,
    still_wanted: &dyn Fn() -> io::Result<()>,
    on_wait: &dyn Fn(),
) -> io::Result<()> {
    if flock_now(fd, mode)? {
        return Ok(());
    }
    on_wait();
    loop {
        match rfs::flock(fd, mode.operation(true)) {
            Err(Errno::INTR) => still_wanted()?,
            other => return Ok(other?),
        }
    }
}

/// Takes `file`'s exclusive lock if no one holds it: `Ok(false)` when
/// another open file (in this process or another) holds it.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    flock_now(file.as_fd(), LockMode::Exclusive)
}

/// Gives `file` the owner, group and permission bits of another file, as far
/// as this process may (a user who is not root can only set their own
/// groups: the rest is left as created).
pub(crate) fn copy_ownership(file: &File, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    // -1 (`None`) leaves an id as it is.
    let owner = (uid != u32::MAX).then(|| Uid::from_raw(uid));
    let group = (gid != u32::MAX).then(|| Gid::from_raw(gid));
    // chown first: it clears set-id bits.
    match rfs::fchown(file, owner, group) {
        // The owner cannot be given away; the group may still be kept (one
        // of this user's groups). If not, the planner has warned.
        Err(Errno::PERM) => match rfs::fchown(file, None, group) {
            Ok(()) | Err(Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        },
        other => other?,
    }
    Ok(rfs::fchmod(file, Mode::from_raw_mode(mode & 0o7777))?)
}

/// 128 random bits in hex, for names no one can guess ahead of a run.
pub(crate) fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut done = 0;
    while done < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[done..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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
    /// The `flock` operation that takes this lock, waiting or not.
    fn operation(self, wait: bool) -> FlockOperation {
        match (self, wait) {
            (LockMode::Shared, true) => FlockOperation::LockShared,
            (LockMode::Exclusive, true) => FlockOperation::LockExclusive,
            (LockMode::Shared, false) => FlockOperation::NonBlockingLockShared,
            (LockMode::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
        }
    }
}

/// Takes `file`'s shared lock if no one holds it exclusively: `Ok(false)`
/// when a live run holds it. A probe that only reads takes this one, so
/// two probes never take each other for a live run.
pub(crate) fn try_lock_shared(file: &File) -> io::Result<bool> {
    flock_now(file.as_fd(), LockMode::Shared)
}

/// A folder reached while resolving a path, open only to resolve names in
/// it (`O_PATH`: no read permission needed, as for the kernel's own walk).
/// Each step is relative to the folder before, so no later change to a
/// path's components can redirect a step already taken.
#[derive(Debug)]
pub(crate) struct PathHandle(OwnedFd);

/// What `lstat` says of an entry or a folder, as much as a walk or a
/// commit needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub kind: libc::mode_t,
    pub mode: libc::mode_t,
    pub uid: u32,
}

impl Identity {
    fn of(st: &rfs::Stat) -> Identity {
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

    pub fn is_file(&self) -> bool {
        self.kind == libc::S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<Identity> {
    Ok(Identity::of(&rfs::fstat(fd)?))
}

/// What is at `name` in the folder `dir` (what a symlink there leads to
/// with `follow`); `None` if nothing.
fn stat_at(dir: BorrowedFd<'_>, name: &OsStr, follow: bool) -> io::Result<Option<rfs::Stat>> {
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    match rfs::statat(dir, &component(name)?, flags) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn open_path(dirfd: BorrowedFd<'_>, name: &CStr) -> io::Result<PathHandle> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(PathHandle(rfs::openat(dirfd, name, flags, Mode::empty())?))
}

impl PathHandle {
    /// The root folder.
    pub fn root() -> io::Result<PathHandle> {
        open_path(rfs::CWD, c"/")
    }

    /// The folder above this one (`..`, as the kernel resolves it).
    pub fn parent(&self) -> io::Result<PathHandle> {
        open_path(self.0.as_fd(), c"..")
    }

    /// The folder `name` in this one; a symlink or a file there fails
    /// (`ENOTDIR`), as does nothing (`ENOENT`).
    pub fn child(&self, name: &OsStr) -> io::Result<PathHandle> {
        open_path(self.0.as_fd(), &component(name)?)
    }

    pub fn try_clone(&self) -> io::Result<PathHandle> {
        Ok(PathHandle(self.0.try_clone()?))
    }

    /// This folder's own identity.
    pub fn identity(&self) -> io::Result<Identity> {
        fstat(self.0.as_fd())
    }

    /// What is at `name`, without following a symlink; `None` if nothing.
    pub fn entry(&self, name: &OsStr) -> io::Result<Option<Identity>> {
        Ok(stat_at(self.0.as_fd(), name, false)?
            .as_ref()
            .map(Identity::of))
    }

    /// The target of the symlink `name`.
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        let target = rfs::readlinkat(self.0.as_fd(), &component(name)?, Vec::new())?;
        Ok(OsString::from_vec(target.into_bytes()))
    }

    /// Creates the folder `name` in this one (`EEXIST` if anything is
    /// there, a symlink included: `mkdir` never follows one).
    pub fn create_dir(&self, name: &OsStr) -> io::Result<()> {
        let c = component(name)?;
        Ok(rfs::mkdirat(
            self.0.as_fd(),
            &c,
            Mode::from_raw_mode(0o777),
        )?)
    }

    /// Removes the folder `name` in this one if it is empty.
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        let c = component(name)?;
        Ok(rfs::unlinkat(self.0.as_fd(), &c, AtFlags::REMOVEDIR)?)
    }

    /// This folder opened for listing, locking and the folder-relative
    /// calls of [`Dir`]; `path` is its name in messages.
    pub fn open(&self, path: PathBuf) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(Dir {
            fd: rfs::openat(self.0.as_fd(), c".", flags, Mode::empty())?,
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
        Ok(stat_at(self.raw(), name, true)?.as_ref().map(Identity::of))
    }
}

// The user and group databases are read through NSS (files, LDAP, sssd),
// which only libc's functions do: rustix offers no call for them.

/// The name of user `uid` in the user database, if it has one.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is live and writable for the call and `buffer`
    // is `len` long. On success with `found` set, getpwuid_r has filled the
    // entry `found` points to, whose `pw_name` is null or a NUL-terminated
    // string inside `buffer`, still live when it is read.
    unsafe {
        let r = libc::getpwuid_r(
            uid,
            entry.as_mut_ptr(),
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        );
        if r != 0 || found.is_null() || (*found).pw_name.is_null() {
            return None;
        }
        Some(
            CStr::from_ptr((*found).pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// A group as people read it: `gid 0 (root)`, or `gid 1234` when it has no
/// name.
pub(crate) fn group_shown(gid: u32) -> String {
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut entry = std::mem::MaybeUninit::<libc::group>::uninit();
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_name`, with getgrgid_r and `gr_name`.
    let name = unsafe {
        let r = libc::getgrgid_r(
            gid,
            entry.as_mut_ptr(),
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        );
        if r != 0 || found.is_null() || (*found).gr_name.is_null() {
            return format!("gid {gid}");
        }
        CStr::from_ptr((*found).gr_name).to_string_lossy()
    };
    format!("gid {gid} ({name})")
}

/// Bytes of address space this process may still map under its
/// `RLIMIT_AS` (`ulimit -v`); `None` when there is no limit (or it cannot
/// be read, which is treated the same way).
pub(crate) fn address_space_headroom() -> Option<u64> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::As).current?;
    // The first field of /proc/self/statm: pages mapped now.
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    let page = u64::try_from(rustix::param::page_size()).ok()?;
    Some(limit.saturating_sub(pages.saturating_mul(page)))
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
    rustix::process::getrlimit(rustix::process::Resource::Fsize).current
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
    pub fn filesystem(&self) -> io::Result<Filesystem> {
        let vfs = rfs::fstatvfs(self.raw())?;
        let block = vfs.f_frsize;
        Ok(Filesystem {
            block,
            free: (vfs.f_blocks > 0).then(|| vfs.f_bavail.saturating_mul(block)),
        })
    }
}

/// The names of `file`'s extended attributes (those this process may see:
/// `trusted.*` only for root). A filesystem without them has none.
fn xattr_names(file: &File) -> io::Result<Vec<CString>> {
    let list = match sized_read(
        || rfs::flistxattr_query(file),
        |buffer| rfs::flistxattr(file, buffer),
    ) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        other => other?,
    };
    Ok(list
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .filter_map(|name| CString::new(name).ok())
        .collect())
}

/// The value of `file`'s extended attribute `name`.
fn xattr_value(file: &File, name: &CStr) -> io::Result<Vec<u8>> {
    sized_read(
        || rfs::fgetxattr_query(file, name),
        |buffer| rfs::fgetxattr(file, name, buffer),
    )
}

/// What `read` gives, in a buffer of the size `size` says first (the way
/// the xattr calls are used). `ERANGE`, when what is read grew between the
/// two calls, asks again.
fn sized_read(
    size: impl Fn() -> Result<usize, Errno>,
    read: impl Fn(&mut [u8]) -> Result<usize, Errno>,
) -> io::Result<Vec<u8>> {
    loop {
        let mut buffer = vec![0; size()?];
        match read(&mut buffer) {
            Ok(got) => {
                buffer.truncate(got);
                return Ok(buffer);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
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
        if let Err(e) = rfs::fsetxattr(to, &name, &value, rfs::XattrFlags::empty()) {
            failed.push(XattrLoss::Attribute(shown, e.into()));
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
    match rfs::fremovexattr(to, ACCESS_ACL) {
        Err(Errno::NODATA | Errno::NOTSUP) => return Ok(()),
        other => other?,
    }
    use std::os::unix::fs::MetadataExt;
    let mode = from.metadata()?.mode() & 0o7777;
    Ok(rfs::fchmod(to, Mode::from_raw_mode(mode))?)
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
        let Some(st) = stat_at(self.raw(), name, follow)? else {
            return Ok(None);
        };
        let ns = |s: i64, n: u64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ok(Some(FullStat {
            kind: st.st_mode & libc::S_IFMT,
            stamp: crate::base::file::FileStamp {
                dev: st.st_dev,
                ino: st.st_ino,
                len: u64::try_from(st.st_size)
                    .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?,
                mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
                ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
            },
        }))
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
        unreplaceable_flag(file.as_fd())
    }

    /// Whether the folder itself carries a flag that forbids renaming or
    /// removing names in it (`chattr +a`: names can be added, none
    /// replaced; `+i`: nothing changes).
    pub fn unreplaceable_names(&self) -> io::Result<Option<Unreplaceable>> {
        unreplaceable_flag(self.raw())
    }
}

/// The [`Unreplaceable`] flag of the file or folder open at `fd`, if any.
fn unreplaceable_flag(fd: BorrowedFd<'_>) -> io::Result<Option<Unreplaceable>> {
    let flags = match rfs::ioctl_getflags(fd) {
        Ok(flags) => flags,
        Err(Errno::NOTTY | Errno::NOTSUP | Errno::INVAL | Errno::NOSYS) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(if flags.contains(IFlags::IMMUTABLE) {
        Some(Unreplaceable::Immutable)
    } else if flags.contains(IFlags::APPEND) {
        Some(Unreplaceable::AppendOnly)
    } else {
        None
    })
}

impl Dir {
    /// Renames `from` to `to` only if nothing is at `to` (`renameat2` with
    /// `RENAME_NOREPLACE`; `EEXIST` otherwise). See [`exchange_unsupported`].
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        self.rename_with(from, to, RenameFlags::NOREPLACE)
    }

    /// Swaps the files at `a` and `b` atomically (`renameat2` with
    /// `RENAME_EXCHANGE`); both must exist. See [`exchange_unsupported`].
    pub fn exchange(&self, a: &OsStr, b: &OsStr) -> io::Result<()> {
        self.rename_with(a, b, RenameFlags::EXCHANGE)
    }

    fn rename_with(&self, from: &OsStr, to: &OsStr, flags: RenameFlags) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        Ok(rfs::renameat_with(self.raw(), &f, self.raw(), &t, flags)?)
    }
}

/// Clears `O_NONBLOCK` on `file`, opened with it so that a FIFO put where
/// a file was expected could not block the open.
pub fn clear_nonblocking(file: &File) -> io::Result<()> {
    let flags = rfs::fcntl_getfl(file)?;
    Ok(rfs::fcntl_setfl(file, flags - OFlags::NONBLOCK)?)
}

/// The effective user id of this process.
pub(crate) fn current_user() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The effective group id of this process.
pub(crate) fn current_group() -> u32 {
    rustix::process::getegid().as_raw()
}

/// Whether this process may give a file it owns the group `gid`: its
/// effective group or one of its supplementary groups.
pub(crate) fn in_group(gid: u32) -> bool {
    current_group() == gid
        || rustix::process::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}
