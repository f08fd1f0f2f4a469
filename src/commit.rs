//! Applying a commit record ([`Journal`]) to a folder: the one code path
//! for a run's own commit and for finishing a dead run's.
//!
//! Forward: each finished temp file is renamed over its target, in order.
//! `rename(2)` replaces a name atomically, so a target never disappears and
//! is always either all old bytes or all new ones. Before the last rename
//! (the file that declares the result, `config.json` or a shard index) the
//! folder is flushed, so that file can only be new on disk once every other
//! one is. An entry whose temp file is gone (or is a second name of the
//! target) has already been applied: applying a record twice is harmless.
//!
//! Undo, when a rename fails: every applied entry is put back from its
//! backup link, through a second link so the backup survives, and with the
//! new bytes linked back to the temp name first. At every step the record
//! still describes a forward commit that works, so a run killed while
//! undoing is finished forward by the next one.

use std::ffi::{OsStr, OsString};
use std::io;

use crate::journal::{Backup, Entry, Journal};
use crate::side_file;
use crate::sys::Dir;

/// Why a commit did not happen.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `target` could not be put in place; every file is as it was.
    Undone { target: OsString, source: io::Error },
    /// `target` could not be put in place, and `stuck` could not be put
    /// back (`original`: where its old bytes are, if anywhere).
    Stuck {
        target: OsString,
        source: io::Error,
        stuck: OsString,
        original: Option<OsString>,
        undo_error: io::Error,
    },
}

/// Something that failed after every file was in place.
#[derive(Debug)]
pub(crate) struct Leftover {
    pub what: String,
    pub source: io::Error,
}

/// Applies `journal` forward, or undoes it if a rename fails. On success,
/// returns the problems of the steps after the point where every file was
/// in place (flushing the folder, removing the backups): the commit stands
/// whatever they are.
pub(crate) fn apply(dir: &Dir, journal: &Journal, flush: bool) -> Result<Vec<Leftover>, Failure> {
    let entries = &journal.entries;
    for (i, entry) in entries.iter().enumerate() {
        let step = || -> io::Result<()> {
            if flush && i + 1 == entries.len() && i > 0 {
                dir.sync()?;
            }
            if !is_applied(dir, entry)? {
                dir.rename(&entry.temp, &entry.target)?;
            }
            Ok(())
        };
        if let Err(source) = step() {
            return Err(undo(dir, &entries[..i], entry.target.clone(), source));
        }
    }
    let mut leftovers = Vec::new();
    if flush {
        if let Err(source) = dir.sync() {
            leftovers.push(Leftover {
                what: "cannot flush the folder to disk".into(),
                source,
            });
        }
    }
    for entry in entries {
        // A temp still there is a second name of its target (see `is_applied`).
        let mut names = vec![(&entry.temp, entry.inode)];
        if let Backup::Link(backup, inode) = &entry.backup {
            names.push((backup, *inode));
        }
        for (name, inode) in names {
            if let Err(source) = unlink_own(dir, name, inode) {
                leftovers.push(Leftover {
                    what: format!("cannot remove {}", dir.join(name).display()),
                    source,
                });
            }
        }
    }
    Ok(leftovers)
}

/// Whether `entry`'s rename has happened: the target is the file the journal
/// recorded (whatever is at the temp name: a second link left by an undo cut
/// short, or a file someone planted there since). Otherwise the temp name
/// must still hold the recorded file, to be renamed. Anything else (the
/// temp file gone, or another file there) means the journal no longer
/// describes this folder: an error, so the commit is undone, never applied
/// over files it did not write.
fn is_applied(dir: &Dir, entry: &Entry) -> io::Result<bool> {
    if dir
        .stat(&entry.target)?
        .is_some_and(|t| t.ino == entry.inode)
    {
        return Ok(true);
    }
    match dir.stat(&entry.temp)? {
        Some(temp) if temp.ino == entry.inode && temp.is_file() => Ok(false),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not the file this commit wrote",
                entry.temp.to_string_lossy()
            ),
        )),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is gone, and {} is not it",
                entry.temp.to_string_lossy(),
                entry.target.to_string_lossy()
            ),
        )),
    }
}

/// Removes `name` if it is still the file with inode `inode`: a file someone
/// else put at one of our names is not ours to remove.
fn unlink_own(dir: &Dir, name: &OsStr, inode: u64) -> io::Result<()> {
    match dir.stat(name)? {
        Some(st) if st.ino == inode && !st.is_dir() => dir.unlink(name),
        _ => Ok(()),
    }
}

/// Puts back every applied entry of `done`, newest first.
fn undo(dir: &Dir, done: &[Entry], target: OsString, source: io::Error) -> Failure {
    for entry in done.iter().rev() {
        if let Err(undo_error) = undo_entry(dir, entry) {
            let original = match &entry.backup {
                Backup::Link(b, _) => Some(b.clone()),
                _ => None,
            };
            return Failure::Stuck {
                target,
                source,
                stuck: entry.target.clone(),
                original,
                undo_error,
            };
        }
    }
    Failure::Undone { target, source }
}

fn undo_entry(dir: &Dir, entry: &Entry) -> io::Result<()> {
    // Only a target that is this commit's file is put back.
    if dir
        .stat(&entry.target)?
        .is_none_or(|t| t.ino != entry.inode)
    {
        return Ok(());
    }
    // The new bytes stay reachable under the temp name, so the journal still
    // describes a forward commit that works.
    let temp_is_ours = match dir.stat(&entry.temp)? {
        None => false,
        Some(t) if t.ino == entry.inode => true,
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not the file this commit wrote",
                    entry.temp.to_string_lossy()
                ),
            ))
        }
    };
    match &entry.backup {
        Backup::New if temp_is_ours => dir.unlink(&entry.target),
        Backup::New => dir.rename(&entry.target, &entry.temp),
        Backup::Link(backup, inode) => {
            if !dir.stat(backup)?.is_some_and(|b| b.ino == *inode && !b.is_dir()) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is not the original it was", backup.to_string_lossy()),
                ));
            }
            if !temp_is_ours {
                dir.link(&entry.target, &entry.temp)?;
            }
            let undo = side_file::undo_name(backup)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
            dir.unlink(&undo)?;
            dir.link(backup, &undo)?;
            dir.rename(&undo, &entry.target)
        }
        Backup::Unavailable => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "its original could not be kept as a hard link (not permitted, or no hard links on this filesystem)",
        )),
    }
}

/// Removes every side file `journal` names (temps, backups, undo links):
/// after a completed undo, nothing of the commit is left.
pub(crate) fn discard(dir: &Dir, journal: &Journal) -> io::Result<()> {
    for entry in &journal.entries {
        unlink_own(dir, &entry.temp, entry.inode)?;
        if let Backup::Link(backup, inode) = &entry.backup {
            unlink_own(dir, backup, *inode)?;
            if let Some(undo) = side_file::undo_name(backup) {
                unlink_own(dir, &undo, *inode)?;
            }
        }
    }
    Ok(())
}

/// A file name for messages.
pub(crate) fn shown(name: &OsStr) -> String {
    crate::shown::shown_os(name).into_owned()
}
