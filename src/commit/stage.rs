//! All-or-nothing output: every output file is written to a temp file in
//! the output folder, and the finished set is committed through a journal
//! (`journal.rs`, `apply.rs`).
//!
//! A run's life in its output folder:
//!
//! 1. **Open**: open the folder once, component by component, creating what
//!    is missing (`out_dir::open_folder`; every later step is relative to
//!    that descriptor), check it, take the folder's lock, finish
//!    what dead runs left there ([`crate::commit::recover`]), create this run's
//!    journal (empty) and hold its lock for the whole run (that lock is how
//!    other runs know this one is alive), release the folder's lock.
//! 2. **Write**: temp files, each created exclusively under a name carrying
//!    the run's random id; with `flush`, each is flushed to disk when done.
//! 3. **Commit**: take the folder's lock (runs into one folder commit one
//!    at a time), link every file about to be replaced to a backup name,
//!    flush the folder, write and flush the journal — the point of no
//!    return — then `apply::apply` it and remove the journal.
//!
//! Until the journal is written, dropping the [`Staging`] removes every
//! temp file, backup link, the journal and the folders this run created (if
//! empty). After it, a failure leaves the journal for the next run to finish.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::base::error::{CommitFailure, Error, Result};
use crate::base::file::{FileStamp, Ownership};
use crate::base::interrupt::Cancel;
use crate::base::side_file::{self, Kind};
use crate::base::sys::{self, Dir, FullStat, LockMode, PathHandle, Unreplaceable};
use crate::commit::apply::{self, shown, Failure};
use crate::commit::journal::{Backup, Entry, Identity, Journal, Sample};
use crate::commit::out_dir::{open_folder, OpenedFolder};
use crate::commit::recover::{lock_folder, recover_locked, refuse_foreign_commits};

/// One output file: where it is written, and where it ends up.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// The temp file's path, while the run writes it.
    pub temp: PathBuf,
    /// The final path, named in messages.
    pub target: PathBuf,
    temp_name: OsString,
    target_name: OsString,
    index: usize,
    /// In place: the target as the run read it, which the commit replaces
    /// only if it is still exactly that file.
    read: Option<FileStamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing committed: dropping removes everything of the run.
    Writing,
    /// The journal is written: what is left is for the next run to finish.
    Recoverable,
    Done,
}

/// What a commit has to say beyond success.
#[derive(Debug, Default)]
pub struct CommitReport {
    /// One line per dead run whose leftovers were dealt with.
    pub recovered: Vec<String>,
}

/// A run's outputs in one folder, from its open to its commit (see the
/// module's steps).
#[derive(Debug)]
pub struct Staging {
    dir: Dir,
    id: String,
    journal: File,
    journal_name: OsString,
    files: Vec<StagedFile>,
    /// Backup links made by a commit that has not reached its journal.
    backups: Vec<OsString>,
    /// Folders this run created, innermost first, each with the folder it
    /// is in.
    created_dirs: Vec<(PathHandle, OsString)>,
    flush: bool,
    state: State,
    /// Lines about dead runs' leftovers dealt with while opening.
    pub recovered: Vec<String>,
    cancel: Cancel,
}

impl Staging {
    /// Creates the output folder if needed and starts a run in it. With
    /// `flush`, everything the commit relies on is flushed to disk, so the
    /// guarantees hold across a power cut, not only a kill.
    #[cfg(feature = "fixture")]
    pub fn open(path: &Path, flush: bool, cancel: Cancel) -> Result<Staging> {
        Staging::open_checked(path, flush, cancel, &|_| Ok(()))
    }

    /// [`Staging::open`], with `check` asked about the folder as opened
    /// (its descriptor, which every later step uses) before anything is
    /// written in it: the folder is opened once, component by component
    /// (`out_dir::open_folder`), so what `check` approves is where the run
    /// writes, whatever happens to the path meanwhile.
    pub(crate) fn open_checked(
        path: &Path,
        flush: bool,
        cancel: Cancel,
        check: &dyn Fn(&Dir) -> Result<()>,
    ) -> Result<Staging> {
        // Another run may remove a folder it created (and we found) when it
        // fails; the folder is then created again.
        for _ in 0..8 {
            let Some(OpenedFolder { dir, created }) = open_folder(path, true)? else {
                continue;
            };
            // Until the journal exists (and dropping the staging cleans up),
            // a failure removes the folders this run created.
            let started = (|| {
                check(&dir)?;
                refuse_unreplaceable_names(&dir)?;
                let lock = lock_folder(&dir, LockMode::Exclusive, &cancel)?;
                if !dir
                    .is_linked()
                    .map_err(|e| Error::io(dir.path(), "cannot read metadata", e))?
                {
                    return Ok(None);
                }
                let recovered = recover_locked(&dir, None, false)?;
                refuse_foreign_commits(&dir)?;
                let id = sys::random_id()
                    .map_err(|e| Error::io(dir.path(), "cannot get random bytes", e))?;
                let journal_name = side_file::journal_name(&id);
                let journal = dir.create_new(&journal_name, 0o600).map_err(|e| {
                    Error::io(dir.path(), "cannot create files in the output folder", e)
                })?;
                Ok(Some((lock, recovered, id, journal_name, journal)))
            })();
            let (lock, recovered, id, journal_name, journal) = match started {
                Ok(Some(started)) => started,
                Ok(None) => continue,
                Err(e) => {
                    remove_empty_dirs(&created);
                    return Err(e);
                }
            };
            let staging = Staging {
                dir,
                id,
                journal,
                journal_name,
                files: Vec::new(),
                backups: Vec::new(),
                created_dirs: created,
                flush,
                state: State::Writing,
                recovered,
                cancel: cancel.clone(),
            };
            // Just created under the folder's lock: no one else can hold it.
            // If the lock cannot be taken, dropping `staging` removes the
            // journal again.
            if !sys::try_lock(&staging.journal)
                .map_err(|e| Error::io(&staging.journal_path(), "cannot lock", e))?
            {
                return Err(Error::io(
                    &staging.journal_path(),
                    "cannot lock",
                    std::io::Error::from_raw_os_error(libc::EWOULDBLOCK),
                ));
            }
            drop(lock);
            return Ok(staging);
        }
        Err(Error::invalid(
            path,
            "the output folder keeps being removed while this run starts",
        ))
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(&self.journal_name)
    }

    /// Reserves a temp name for the output file `name`. The name is
    /// registered before anything is created, so it is cleaned up whatever
    /// happens next.
    pub fn add(&mut self, name: impl AsRef<OsStr>) -> StagedFile {
        self.add_made_from(name, None)
    }

    /// [`Self::add`] for an output that replaces the file it is made from
    /// (in place), stamped when the run read it: the commit refuses to
    /// replace a file that no longer matches `read`.
    pub fn add_made_from(
        &mut self,
        name: impl AsRef<OsStr>,
        read: Option<FileStamp>,
    ) -> StagedFile {
        let name = name.as_ref();
        let index = self.files.len();
        let temp_name = side_file::side_name(name, index, &self.id, Kind::Temp);
        let staged = StagedFile {
            temp: self.dir.join(&temp_name),
            target: self.dir.join(name),
            temp_name,
            target_name: name.to_os_string(),
            index,
            read,
        };
        self.files.push(staged.clone());
        staged
    }

    /// Creates the temp file of `staged`, which must not exist (a symlink
    /// planted at its name is never followed). It gets the permission bits
    /// of `source`, the file it is made from, less the umask, as `cp` does:
    /// a private input stays private. `replace` (in place): it gets the
    /// source's owner, group and mode exactly, as far as this process may.
    pub fn create(
        &self,
        staged: &StagedFile,
        source: Option<Ownership>,
        replace: bool,
    ) -> Result<File> {
        let mode = source.map_or(0o666, |o| o.mode & 0o777);
        let file = self
            .dir
            .create_new(&staged.temp_name, mode)
            .map_err(|e| Error::io(&staged.target, "cannot create", e))?;
        if let Some(o) = source.filter(|_| replace) {
            sys::copy_ownership(&file, o.uid, o.gid, o.mode).map_err(|e| {
                Error::io(&staged.target, "cannot set the owner and permissions", e)
            })?;
        }
        Ok(file)
    }

    /// The name of this run's journal in the output folder.
    pub(crate) fn journal_name(&self) -> &OsStr {
        &self.journal_name
    }

    /// The most bytes this run's journal can take: the record of every
    /// staged file with a backup link and the longest identities, encoded
    /// as the commit will encode it. For the space and file size checks.
    pub(crate) fn journal_len_bound(&self) -> u64 {
        let widest = Identity {
            inode: u64::MAX,
            sample: Some(Sample {
                len: u64::MAX,
                crc: u32::MAX,
            }),
            mtime_ns: Some(i128::MIN),
        };
        let entries = self
            .files
            .iter()
            .map(|file| Entry {
                temp: file.temp_name.clone(),
                target: file.target_name.clone(),
                backup: Backup::Link(
                    side_file::side_name(&file.target_name, file.index, &self.id, Kind::Backup),
                    widest,
                ),
                new: widest,
            })
            .collect();
        Journal { entries }.encode().len() as u64
    }

    /// A file with no name in the output folder, gone when closed: what
    /// the space check clones a block into to learn whether the run's
    /// copies will share blocks with their inputs.
    pub(crate) fn scratch_file(&self) -> std::io::Result<File> {
        self.dir.create_unnamed()
    }

    /// The filesystem of the output folder, for the space check.
    pub(crate) fn filesystem(&self) -> std::io::Result<sys::Filesystem> {
        self.dir.filesystem()
    }

    /// Puts every staged file in place, or none of them. Each staged file
    /// must have been created and completely written.
    pub fn commit(mut self) -> Result<CommitReport> {
        let lock = lock_folder(&self.dir, LockMode::Exclusive, &self.cancel)?;
        let report = self.recover_dead_runs()?;
        let journal = self.backup_targets()?;
        self.write_journal(&journal)?;
        self.state = State::Recoverable;
        match apply::apply(&self.dir, &journal, self.flush) {
            Ok(leftovers) => {
                let leftovers = self.remove_journal(leftovers);
                self.state = State::Done;
                drop(lock);
                match leftovers_error(self.dir.path(), &leftovers) {
                    None => Ok(report),
                    Some(e) => Err(e),
                }
            }
            Err(Failure::Undone { target, source }) => Err(self.undone(&target, source)),
            Err(Failure::Stuck(stuck)) => Err(Error::CommitIncomplete {
                dir: self.dir.path().to_path_buf(),
                problem: format!(
                    "{}; the next run into this folder finishes the commit",
                    stuck.problem(&self.dir)
                ),
            }),
        }
    }

    /// Finishes or removes what dead runs left in the folder (its lock
    /// held), then refuses another user's unfinished commit there. The
    /// commit's report, with every line of what was recovered.
    fn recover_dead_runs(&mut self) -> Result<CommitReport> {
        let mut recovered = std::mem::take(&mut self.recovered);
        recovered.extend(recover_locked(&self.dir, Some(&self.id), false)?);
        refuse_foreign_commits(&self.dir)?;
        Ok(CommitReport { recovered })
    }

    /// Flushes the folder (its backup links), then writes and flushes the
    /// journal: from then on, a run stopped is finished by the next one.
    fn write_journal(&mut self, journal: &Journal) -> Result<()> {
        if self.flush {
            self.dir
                .sync()
                .map_err(|e| Error::io(self.dir.path(), "cannot flush the folder to disk", e))?;
        }
        // The last moment a signal can stop the run with nothing changed.
        self.cancel.check()?;
        let journal_path = self.journal_path();
        self.journal
            .write_all_at(&journal.encode(), 0)
            .map_err(|e| Error::io(&journal_path, "cannot write", e))?;
        if self.flush {
            self.journal
                .sync_all()
                .map_err(|e| Error::io(&journal_path, "cannot flush to disk", e))?;
        }
        Ok(())
    }

    /// Removes the journal of a commit applied whose side files are all
    /// gone, and returns what is left. The journal outlives every side file
    /// it names: without it, a backup left behind could not be told from
    /// the only copy of an original. Kept, the next run removes them.
    fn remove_journal(&self, mut leftovers: Vec<apply::Leftover>) -> Vec<apply::Leftover> {
        if leftovers.is_empty() {
            if let Err(source) = self.dir.unlink(&self.journal_name) {
                leftovers.push(apply::Leftover {
                    what: format!("cannot remove {}", self.journal_path().display()),
                    source: source.into(),
                });
            }
        }
        leftovers
    }

    /// The error of a commit undone because `target` could not be put in
    /// place (`source`): every file is as it was.
    fn undone(&mut self, target: &OsStr, source: CommitFailure) -> Error {
        // The journal is cleared before any temp file goes: a journal whose
        // temp files are partly gone must never be taken for a commit to
        // finish.
        if let Err(e) = self
            .journal
            .set_len(0)
            .and_then(|()| self.journal.sync_all())
        {
            return Error::CommitIncomplete {
                dir: self.dir.path().to_path_buf(),
                problem: format!(
                    "{} could not be put in place ({source}) and every file was put back, but the journal {} cannot be cleared ({e}): the next run into this folder applies this commit",
                    shown(target),
                    self.journal_path().display()
                ),
            };
        }
        self.state = State::Writing;
        if matches!(source, CommitFailure::ChangedSinceRead) {
            if let Some(file) = self.files.iter().find(|f| f.target_name == target) {
                return changed(file);
            }
        }
        Error::commit(
            &self.dir.join(target),
            "cannot put the finished file in place (every file was put back as it was)",
            source,
        )
    }

    /// Compares every target with what the run read, links every file
    /// about to be replaced to a backup name, and returns the journal of the
    /// commit: the staged files in the order they were added (the file that
    /// declares the result is added last). Refuses, with nothing replaced,
    /// a target that changed since it was read or cannot be replaced.
    fn backup_targets(&mut self) -> Result<Journal> {
        // Every target is checked before the first link: a link changes
        // the file's ctime, and a refusal here must change nothing.
        let mut found = Vec::with_capacity(self.files.len());
        for file in &self.files {
            found.push(self.check_target(file)?);
        }
        let mut entries = Vec::with_capacity(self.files.len());
        for (file, found) in self.files.clone().into_iter().zip(found) {
            let backup = match found {
                None => Backup::New,
                Some(st) => self.link_backup(&file, &st)?,
            };
            let new = apply::identity(&self.dir, &file.temp_name)
                .map_err(|e| Error::io(&file.temp, "cannot read", e))?;
            entries.push(Entry {
                temp: file.temp_name,
                target: file.target_name,
                backup,
                new,
            });
        }
        Ok(Journal { entries })
    }

    /// What is at `file`'s target now (`None`: nothing), after checking
    /// that it is the file the run read (in place), not a folder, and not
    /// flagged immutable or append-only.
    fn check_target(&self, file: &StagedFile) -> Result<Option<FullStat>> {
        let stat = |follow| {
            self.dir
                .stat_full(&file.target_name, follow)
                .map_err(|e| Error::io(&file.target, "cannot read metadata", e))
        };
        let Some(st) = stat(false)? else {
            return match file.read {
                Some(_) => Err(changed(file)),
                None => Ok(None),
            };
        };
        if st.kind == libc::S_IFDIR {
            return Err(Error::refused(
                &file.target,
                "a folder has the name of an output file; move it away",
            ));
        }
        if let Some(read) = file.read {
            // What was read through a symlink is the file it leads to.
            let now = if st.kind == libc::S_IFLNK {
                stat(true)?
            } else {
                Some(st)
            };
            if now.map(|n| n.stamp) != Some(read) {
                return Err(changed(file));
            }
        }
        if st.kind == libc::S_IFREG {
            let flag = self
                .dir
                .unreplaceable(&file.target_name)
                .map_err(|e| Error::io(&file.target, "cannot read the file's flags", e))?;
            if let Some(flag) = flag {
                let what = match flag {
                    Unreplaceable::Immutable => "immutable (chattr +i)",
                    Unreplaceable::AppendOnly => "append-only (chattr +a)",
                };
                return Err(Error::refused(
                    &file.target,
                    format!("cannot be replaced: it is {what}; nothing was replaced"),
                ));
            }
        }
        Ok(Some(st))
    }

    /// Links `file`'s target, found as `st` by [`Self::check_target`], to
    /// its backup name, and checks the link is that same file. A target
    /// that cannot be linked is refused: without its backup, a failure
    /// later in the commit could not put it back.
    fn link_backup(&mut self, file: &StagedFile, st: &FullStat) -> Result<Backup> {
        let name = side_file::side_name(&file.target_name, file.index, &self.id, Kind::Backup);
        match self.dir.link(&file.target_name, &name) {
            Ok(()) => self.backups.push(name.clone()),
            // A mount point (or a file on another filesystem mounted over
            // the name) cannot be renamed over.
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return Err(Error::refused(
                    &file.target,
                    "cannot be replaced: it is a mount point",
                ))
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS | libc::EMLINK)
                ) =>
            {
                return Err(Error::io(
                    &file.target,
                    "cannot keep a hard link to the file it replaces, without which a failed commit could not put it back (not permitted, or no hard links on this filesystem); nothing was replaced",
                    e,
                ))
            }
            Err(e) => {
                return Err(Error::io(
                    &file.target,
                    "cannot keep a hard link to the file it replaces; nothing was replaced",
                    e,
                ))
            }
        }
        // Sampled before the check below, so a write after the check shows
        // as a changed sample when the file is swapped out.
        let identity = if st.kind == libc::S_IFREG {
            apply::identity(&self.dir, &name)
                .map_err(|e| Error::io(&file.target, "cannot read", e))?
        } else {
            Identity {
                inode: st.stamp.ino,
                sample: None,
                mtime_ns: None,
            }
        };
        // The link itself moved the ctime: identity, size and mtime must be
        // the ones just compared.
        let linked = self
            .dir
            .stat_full(&name, false)
            .map_err(|e| Error::io(&file.target, "cannot read metadata", e))?;
        let same = linked.is_some_and(|l| {
            let (a, b) = (l.stamp, st.stamp);
            l.kind == st.kind
                && (a.dev, a.ino, a.len, a.mtime_ns) == (b.dev, b.ino, b.len, b.mtime_ns)
        });
        if !same {
            return Err(changed(file));
        }
        // Its modification time too, so the swap tells a write anywhere in
        // the file (not only in the sampled ends) since this check.
        let identity = Identity {
            mtime_ns: identity.sample.map(|_| st.stamp.mtime_ns),
            ..identity
        };
        Ok(Backup::Link(name, identity))
    }
}

/// The refusal when `file`'s target changed between the moment the run
/// read it (in place) or compared it (an earlier output) and its rename.
fn changed(file: &StagedFile) -> Error {
    if file.read.is_some() {
        Error::changed_since_read(&file.target)
    } else {
        Error::changed_during_commit(&file.target)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.state != State::Writing {
            return;
        }
        for file in &self.files {
            let _ = self.dir.unlink(&file.temp_name);
        }
        for backup in &self.backups {
            let _ = self.dir.unlink(backup);
        }
        let _ = self.dir.unlink(&self.journal_name);
        if !self.created_dirs.is_empty() {
            // Under the lock, so no run is starting in a folder we remove;
            // never waited for: anyone who can open the folder can hold it.
            match self.dir.try_lock(LockMode::Exclusive) {
                Ok(Some(_lock)) => remove_empty_dirs(&self.created_dirs),
                _ => {
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr(),
                        "trtllm-prune: warning: {}: left the empty folder this run created: another process holds its lock",
                        crate::base::shown::shown_path(self.dir.path())
                    );
                }
            }
        }
    }
}

/// Refuses a folder whose names cannot be replaced or removed (`chattr +a`
/// or `+i` on the folder itself): every commit renames its temp files, so
/// it would fail there after writing them, and leave them for good.
fn refuse_unreplaceable_names(dir: &Dir) -> Result<()> {
    let flag = dir
        .unreplaceable_names()
        .map_err(|e| Error::io(dir.path(), "cannot read the folder's flags", e))?;
    match flag {
        None => Ok(()),
        Some(flag) => Err(Error::refused(
            dir.path(),
            format!(
                "cannot write here: the folder is {} (no name in it can be replaced or removed); nothing was written",
                match flag {
                    Unreplaceable::Immutable => "immutable (chattr +i)",
                    Unreplaceable::AppendOnly => "append-only (chattr +a)",
                }
            ),
        )),
    }
}

/// Removes `dirs`, innermost first, stopping at the first that is not
/// empty: never removes user files.
fn remove_empty_dirs(dirs: &[(PathHandle, OsString)]) {
    for (parent, name) in dirs {
        if parent.remove_dir(name).is_err() {
            break;
        }
    }
}

/// The error for a commit in place whose `leftovers` (side files, its
/// journal) could not all be removed: the first, and how many more;
/// `None` when there are none.
fn leftovers_error(dir: &Path, leftovers: &[apply::Leftover]) -> Option<Error> {
    let first = leftovers.first()?;
    Some(Error::AfterCommit {
        dir: dir.to_path_buf(),
        problem: format!(
            "{}: {}{}",
            first.what,
            first.source,
            if leftovers.len() > 1 {
                format!(" (and {} more)", leftovers.len() - 1)
            } else {
                String::new()
            }
        ),
    })
}
