//! Applying a commit record ([`Journal`]) to a folder: the one code path
//! for a run's own commit and for finishing a dead run's.
//!
//! Forward: each finished temp file is put in place over its target, in
//! order. A target with a backup is swapped with its temp file in one step
//! (`renameat2` with `RENAME_EXCHANGE`): the temp name then holds the old
//! file, which must be the one the backup links, with the sample the
//! journal recorded; if it is not (someone replaced or rewrote the target
//! after it was compared), the swap is reversed and the commit undone:
//! nothing is renamed over a file the run did not compare. A target that
//! did not exist is renamed with `RENAME_NOREPLACE`: a file created at its
//! name since is not renamed over either. Where the filesystem cannot swap
//! (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`), a plain `rename(2)` replaces the
//! target right after the same whole check (inode, size, modification
//! time, sample): a change in the instant between that check and the
//! rename is not noticed there. Either way a target never disappears and
//! is always all old bytes or all new ones. Before the last rename (the file that
//! declares the result, `config.json` or a shard index) the folder is
//! flushed, so that file can only be new on disk once every other one is.
//! An entry whose target already holds the new file has been applied:
//! applying a record twice is harmless.
//!
//! Undo, when a rename fails: every applied entry is put back, newest
//! first: swapped back when the temp name holds the old file, otherwise
//! from its backup link, through a second link so the backup survives, and
//! with the new bytes linked back to the temp name first. At every step the
//! record still describes a forward commit that works, so a run killed
//! while undoing is finished forward by the next one.
//!
//! Recovery acts only on a journal [`prove`]d to describe the folder: each
//! entry applied (its target is the new file, and a file swapped out to its
//! temp name is the recorded original) or pending (its temp name holds the
//! new file, its target the original), every identity checked by inode,
//! size, sample and a backup's modification time (see `journal.rs`); or,
//! for a copied folder, on one whose commit is [`settled`] by size and
//! sample alone.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::FileExt;

use crate::base::error::CommitFailure;
use crate::base::side_file;
use crate::base::sys::{self, Dir};
use crate::commit::journal::{Backup, Entry, Identity, Journal, Sample};

/// Bytes read from each end of a file for its [`Sample`]: the header of a
/// safetensors file (or all of a small file) and its last tensor bytes.
const SAMPLE_END: u64 = 64 << 10;

/// Why a commit did not happen.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `target` could not be put in place; every file is as it was.
    Undone {
        target: OsString,
        source: CommitFailure,
    },
    /// A file could not be put in place, nor another put back.
    Stuck(Stuck),
}

/// A commit stuck halfway: `target` could not be put in place, and
/// `stuck` could not be put back (`original`: where its old bytes are, if
/// anywhere).
#[derive(Debug)]
pub(crate) struct Stuck {
    target: OsString,
    source: CommitFailure,
    stuck: OsString,
    original: Option<OsString>,
    undo_error: CommitFailure,
}

impl Stuck {
    /// What is wrong, for the message of a commit that must be finished:
    /// `cannot put X in place (...), nor put Y back (...); its original
    /// is <dir>/<backup>`.
    pub(crate) fn problem(&self, dir: &Dir) -> String {
        format!(
            "cannot put {} in place ({}), nor put {} back ({}){}",
            shown(&self.target),
            self.source,
            shown(&self.stuck),
            self.undo_error,
            self.original
                .as_ref()
                .map(|o| format!("; its original is {}", dir.join(o).display()))
                .unwrap_or_default()
        )
    }
}

/// Something that failed after every file was in place.
#[derive(Debug)]
pub(crate) struct Leftover {
    pub what: String,
    pub source: CommitFailure,
}

/// The sample of the regular file `name`: its size and the CRC32 of its
/// first and last [`SAMPLE_END`] bytes (all of it when smaller).
pub(crate) fn sample(dir: &Dir, name: &OsStr) -> io::Result<Sample> {
    let file = dir.open_regular_read(name)?;
    let len = file.metadata()?.len();
    let mut hasher = crc32fast::Hasher::new();
    let head = len.min(SAMPLE_END);
    let tail_start = len.saturating_sub(SAMPLE_END).max(head);
    for (start, end) in [(0, head), (tail_start, len)] {
        let want = usize::try_from(end - start)
            .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        let mut buf = vec![0u8; want];
        file.read_exact_at(&mut buf, start)?;
        hasher.update(&buf);
    }
    Ok(Sample {
        len,
        crc: hasher.finalize(),
    })
}

/// The identity of the regular file `name`, for a journal: its inode
/// number alone when this user may not read it (an earlier output of
/// another user, linked where `protected_hardlinks` is off).
pub(crate) fn identity(dir: &Dir, name: &OsStr) -> io::Result<Identity> {
    let inode = dir
        .stat(name)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?
        .ino;
    let sample = match sample(dir, name) {
        Ok(s) => Some(s),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => None,
        Err(e) => return Err(e),
    };
    Ok(Identity {
        inode,
        sample,
        mtime_ns: None,
    })
}

/// Whether `name` holds the file `id` by inode number (the cheap check
/// used while committing, once [`prove`] or the commit itself has tied the
/// numbers to the files).
fn holds(dir: &Dir, name: &OsStr, id: &Identity) -> io::Result<bool> {
    Ok(dir
        .stat(name)?
        .is_some_and(|st| st.ino == id.inode && !st.is_dir()))
}

/// Whether `name` is the file `id`: inode number, size, sample and (when
/// recorded) modification time.
fn is(dir: &Dir, name: &OsStr, id: &Identity) -> io::Result<bool> {
    Ok(holds(dir, name, id)? && same_content(dir, name, id)?)
}

/// Whether `name` holds a file with `id`'s size, sample and (when
/// recorded) modification time, whatever its inode number: what still
/// tells a file in a copied folder (`cp -a` keeps times) from another.
fn same_content(dir: &Dir, name: &OsStr, id: &Identity) -> io::Result<bool> {
    if let Some(mtime) = id.mtime_ns {
        let now = dir.stat_full(name, false)?;
        if now.map(|st| st.stamp.mtime_ns) != Some(mtime) {
            return Ok(false);
        }
    }
    match id.sample {
        None => Ok(true),
        Some(s) => match sample(dir, name) {
            Ok(now) => Ok(now == s),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// Why a journal does not describe its folder: the first entry whose files
/// are not where any step of the commit leaves them.
#[derive(Debug)]
pub(crate) struct Unproven {
    pub target: OsString,
    pub problem: String,
}

/// Checks that every entry of `journal` is applied or pending in `dir`, by
/// identity, before a recovery acts on it.
pub(crate) fn prove(dir: &Dir, journal: &Journal) -> Result<(), Unproven> {
    for entry in &journal.entries {
        let unproven = |problem: String| Unproven {
            target: entry.target.clone(),
            problem,
        };
        let io_problem = |e: io::Error| unproven(format!("cannot be checked: {e}"));
        if is(dir, &entry.target, &entry.new).map_err(io_problem)? {
            // Applied. The temp name holds nothing, a second link of the
            // new file (an undo cut short), or after a swap the original,
            // which finishing the commit removes: it must be the original
            // recorded, not a file written to since (the run may have died
            // before the check that would have swapped it back).
            let at_temp = dir.stat(&entry.temp).map_err(io_problem)?;
            let swapped_out = at_temp.is_some_and(|st| st.ino != entry.new.inode);
            if let (true, Backup::Link(_, old)) = (swapped_out, &entry.backup) {
                if !is(dir, &entry.temp, old).map_err(io_problem)? {
                    return Err(unproven(format!(
                        "{} holds the file swapped out for it, which is not the original the journal names (written to since?)",
                        shown(&entry.temp)
                    )));
                }
            }
            continue;
        }
        if !is(dir, &entry.temp, &entry.new).map_err(io_problem)? {
            return Err(unproven(format!(
                "neither it nor {} is the new file the journal names (by inode number, size and sample)",
                shown(&entry.temp)
            )));
        }
        if let Backup::Link(backup, old) = &entry.backup {
            if !is(dir, &entry.target, old).map_err(io_problem)? {
                return Err(unproven(format!(
                    "it is not the original the journal names (kept as {})",
                    shown(backup)
                )));
            }
            if !is(dir, backup, old).map_err(io_problem)? {
                return Err(unproven(format!("{} is not its original", shown(backup))));
            }
        }
    }
    Ok(())
}

/// A journal's commit found, by size and sample alone, either complete or
/// not begun: what a copy of a folder (other inode numbers) can still
/// prove. [`settle`] then leaves nothing of the commit behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Every target holds its new file and no side name of the commit
    /// is left: only the journal remains.
    AllNew,
    /// Every target is as it was (its original, or no file), every temp
    /// name holds its new file, and every backup name is another name of
    /// its target (or gone): the temps and backups are redundant.
    AllOld,
}

/// Whether `journal`'s commit is [`Settled`] in `dir`, told without
/// inode numbers from the journal (a `v1` journal, without samples, never
/// is).
pub(crate) fn settled(dir: &Dir, journal: &Journal) -> io::Result<Option<Settled>> {
    let absent = |name: &OsStr| dir.stat(name).map(|st| st.is_none());
    let has = |name: &OsStr, id: &Identity| -> io::Result<bool> {
        Ok(id.sample.is_some()
            && dir.stat(name)?.is_some_and(|st| st.is_file())
            && same_content(dir, name, id)?)
    };
    let mut all_new = true;
    let mut all_old = true;
    for entry in &journal.entries {
        let undo = match &entry.backup {
            Backup::Link(b, _) => side_file::undo_name(b),
            _ => None,
        };
        if let Some(undo) = &undo {
            if !absent(undo)? {
                return Ok(None);
            }
        }
        if all_new {
            all_new = has(&entry.target, &entry.new)?
                && absent(&entry.temp)?
                && match &entry.backup {
                    Backup::Link(b, _) => absent(b)?,
                    _ => true,
                };
        }
        if all_old {
            all_old = has(&entry.temp, &entry.new)?
                && match &entry.backup {
                    Backup::New => absent(&entry.target)?,
                    Backup::Link(b, old) => {
                        has(&entry.target, old)? && {
                            let (t, b) = (dir.stat(&entry.target)?, dir.stat(b)?);
                            match (t, b) {
                                (_, None) => true,
                                (Some(t), Some(b)) => t.ino == b.ino,
                                (None, Some(_)) => false,
                            }
                        }
                    }
                    Backup::Unavailable => false,
                };
        }
        if !all_new && !all_old {
            return Ok(None);
        }
    }
    Ok(if all_new {
        Some(Settled::AllNew)
    } else {
        Some(Settled::AllOld)
    })
}

/// Removes what a [`Settled`] commit left but the journal: nothing when
/// all new; the temps and the backup names when all old (each checked
/// again right before it goes).
pub(crate) fn settle(dir: &Dir, journal: &Journal, settled: Settled) -> io::Result<()> {
    if settled == Settled::AllNew {
        return Ok(());
    }
    for entry in &journal.entries {
        if same_content(dir, &entry.temp, &entry.new)? {
            dir.unlink(&entry.temp)?;
        }
        if let Backup::Link(b, _) = &entry.backup {
            let (t, bk) = (dir.stat(&entry.target)?, dir.stat(b)?);
            if let (Some(t), Some(bk)) = (t, bk) {
                if t.ino == bk.ino {
                    dir.unlink(b)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks, after an undo, that every target of `journal` is what it was
/// before the commit: the original (by identity), or not the new file.
pub(crate) fn prove_undone(dir: &Dir, journal: &Journal) -> Result<(), Unproven> {
    for entry in &journal.entries {
        let as_it_was = match &entry.backup {
            Backup::Link(_, old) => is(dir, &entry.target, old),
            _ => is(dir, &entry.target, &entry.new).map(|new| !new),
        };
        match as_it_was {
            Ok(true) => {}
            Ok(false) => {
                return Err(Unproven {
                    target: entry.target.clone(),
                    problem: "is not as it was before the commit".into(),
                })
            }
            Err(e) => {
                return Err(Unproven {
                    target: entry.target.clone(),
                    problem: format!("cannot be checked: {e}"),
                })
            }
        }
    }
    Ok(())
}

/// Applies `journal` forward, or undoes it if a rename fails. On success,
/// returns the problems of the steps after the point where every file was
/// in place (flushing the folder, removing the backups): the commit stands
/// whatever they are.
// A `Failure` is returned once per failed commit, never in a loop: its
// size (two typed causes and three names) costs nothing worth a box.
#[allow(clippy::result_large_err)]
pub(crate) fn apply(dir: &Dir, journal: &Journal, flush: bool) -> Result<Vec<Leftover>, Failure> {
    let entries = &journal.entries;
    for (i, entry) in entries.iter().enumerate() {
        let step = || -> Result<(), CommitFailure> {
            if flush && i + 1 == entries.len() && i > 0 {
                dir.sync()?;
            }
            if !is_applied(dir, entry)? {
                put_in_place(dir, entry)?;
            }
            Ok(())
        };
        if let Err(source) = step() {
            // This entry too: a swap whose check failed and could not be
            // swapped back is put back like any applied entry (an entry
            // not applied is left as it is).
            return Err(undo(dir, &entries[..=i], entry.target.clone(), source));
        }
    }
    let mut leftovers = Vec::new();
    if flush {
        if let Err(source) = dir.sync() {
            leftovers.push(Leftover {
                what: "cannot flush the folder to disk".into(),
                source: source.into(),
            });
        }
    }
    for entry in entries {
        // A temp still there is a second name of its target (see
        // `is_applied`) or, after a swap, the old file.
        let mut names = vec![(&entry.temp, entry.new)];
        if let Backup::Link(backup, old) = &entry.backup {
            names.push((&entry.temp, *old));
            names.push((backup, *old));
        }
        for (name, id) in names {
            if let Err(source) = unlink_own(dir, name, &id) {
                leftovers.push(Leftover {
                    what: format!("cannot remove {}", dir.join(name).display()),
                    source,
                });
            }
        }
    }
    Ok(leftovers)
}

/// Puts `entry`'s temp file in place over its target (see the module
/// docs): swapped with a target that has a backup, renamed to a name
/// that must still be free otherwise.
fn put_in_place(dir: &Dir, entry: &Entry) -> Result<(), CommitFailure> {
    let old = match &entry.backup {
        Backup::Link(_, old) => old,
        // A name that was free at the compare: a file created there since
        // is not renamed over.
        Backup::New => {
            return match dir.rename_noreplace(&entry.temp, &entry.target) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    Err(CommitFailure::ChangedSinceRead)
                }
                Err(e) if sys::exchange_unsupported(&e) => {
                    Ok(dir.rename(&entry.temp, &entry.target)?)
                }
                other => other.map_err(CommitFailure::Io),
            }
        }
        Backup::Unavailable => return Ok(dir.rename(&entry.temp, &entry.target)?),
    };
    match dir.exchange(&entry.temp, &entry.target) {
        Ok(()) => {
            // The file swapped out must be the original, with the size and
            // sample recorded: nothing replaced, wrote to or truncated it
            // between the comparison and the swap. If it is not (or cannot
            // be checked), it gets its name back, untouched.
            let problem = match is(dir, &entry.temp, old) {
                Ok(true) => return Ok(()),
                Ok(false) => CommitFailure::ChangedSinceRead,
                Err(e) => e.into(),
            };
            dir.exchange(&entry.temp, &entry.target)?;
            Err(problem)
        }
        Err(e) if sys::exchange_unsupported(&e) => {
            // Checked whole (inode, size, modification time, sample) right
            // before the rename: only a change in the instant between the
            // two is not seen.
            if !is(dir, &entry.target, old)? {
                return Err(CommitFailure::ChangedSinceRead);
            }
            Ok(dir.rename(&entry.temp, &entry.target)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `entry`'s rename has happened: the target is the file the journal
/// recorded (whatever is at the temp name: a second link left by an undo cut
/// short, the old file after a swap, or a file someone planted there since).
/// Otherwise the temp name must still hold the recorded file, to be renamed.
/// Anything else (the temp file gone, or another file there) means the
/// journal no longer describes this folder: an error, so the commit is
/// undone, never applied over files it did not write.
fn is_applied(dir: &Dir, entry: &Entry) -> Result<bool, CommitFailure> {
    if holds(dir, &entry.target, &entry.new)? {
        return Ok(true);
    }
    match dir.stat(&entry.temp)? {
        Some(temp) if temp.ino == entry.new.inode && temp.is_file() => Ok(false),
        Some(_) => Err(CommitFailure::NotWritten {
            name: entry.temp.to_string_lossy().into_owned(),
        }),
        None => Err(CommitFailure::Gone {
            temp: entry.temp.to_string_lossy().into_owned(),
            target: entry.target.to_string_lossy().into_owned(),
        }),
    }
}

/// Removes `name` if it is still the file `id` (by inode number): a file
/// someone else put at one of our names is not ours to remove. The
/// original's file (`id` with a modification time) must also still be
/// the one recorded: written to since, it is kept, and said so.
fn unlink_own(dir: &Dir, name: &OsStr, id: &Identity) -> Result<(), CommitFailure> {
    if holds(dir, name, id)? {
        if id.mtime_ns.is_some() && !same_content(dir, name, id)? {
            return Err(CommitFailure::ChangedSinceRead);
        }
        dir.unlink(name)?;
    }
    Ok(())
}

/// Puts back every applied entry of `done`, newest first.
fn undo(dir: &Dir, done: &[Entry], target: OsString, source: CommitFailure) -> Failure {
    for entry in done.iter().rev() {
        if let Err(undo_error) = undo_entry(dir, entry) {
            let original = match &entry.backup {
                Backup::Link(b, _) => Some(b.clone()),
                _ => None,
            };
            return Failure::Stuck(Stuck {
                target,
                source,
                stuck: entry.target.clone(),
                original,
                undo_error,
            });
        }
    }
    Failure::Undone { target, source }
}

fn undo_entry(dir: &Dir, entry: &Entry) -> Result<(), CommitFailure> {
    // Only a target that is this commit's file is put back.
    if !holds(dir, &entry.target, &entry.new)? {
        return Ok(());
    }
    let not_ours = || CommitFailure::NotWritten {
        name: entry.temp.to_string_lossy().into_owned(),
    };
    // The new bytes stay reachable under the temp name, so the journal still
    // describes a forward commit that works.
    let temp_is_ours = match dir.stat(&entry.temp)? {
        None => false,
        Some(t) if t.ino == entry.new.inode => true,
        Some(t) => match &entry.backup {
            // Swapped: swap back (the old file returns, the new one goes
            // back to the temp name, in one step).
            Backup::Link(backup, old) if t.ino == old.inode => {
                match dir.exchange(&entry.temp, &entry.target) {
                    Ok(()) => return Ok(()),
                    // The backup keeps the old file: this name is a spare.
                    Err(e) if sys::exchange_unsupported(&e) => {
                        if !holds(dir, backup, old)? {
                            return Err(not_ours());
                        }
                        dir.unlink(&entry.temp)?;
                        false
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ => return Err(not_ours()),
        },
    };
    match &entry.backup {
        Backup::New if temp_is_ours => Ok(dir.unlink(&entry.target)?),
        Backup::New => Ok(dir.rename(&entry.target, &entry.temp)?),
        Backup::Link(backup, old) => {
            if !holds(dir, backup, old)? {
                return Err(CommitFailure::BackupChanged {
                    backup: backup.to_string_lossy().into_owned(),
                });
            }
            if !temp_is_ours {
                dir.link(&entry.target, &entry.temp)?;
            }
            let undo = side_file::undo_name(backup)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
            dir.unlink(&undo)?;
            dir.link(backup, &undo)?;
            Ok(dir.rename(&undo, &entry.target)?)
        }
        Backup::Unavailable => Err(CommitFailure::BackupUnavailable),
    }
}

/// Removes every side file `journal` names (temps, backups, undo links):
/// after a completed undo, nothing of the commit is left.
pub(crate) fn discard(dir: &Dir, journal: &Journal) -> Result<(), CommitFailure> {
    for entry in &journal.entries {
        unlink_own(dir, &entry.temp, &entry.new)?;
        if let Backup::Link(backup, old) = &entry.backup {
            unlink_own(dir, &entry.temp, old)?;
            unlink_own(dir, backup, old)?;
            if let Some(undo) = side_file::undo_name(backup) {
                unlink_own(dir, &undo, old)?;
            }
        }
    }
    Ok(())
}

/// A file name for messages.
pub(crate) fn shown(name: &OsStr) -> String {
    crate::base::shown::shown_os(name).into_owned()
}
