//! Finding and finishing what dead runs left in a folder.
//!
//! A run is alive while it holds the lock on its journal file (the kernel
//! drops it when the process dies, however it dies, and NFS carries it
//! across machines), so liveness needs no process ids. With the folder's
//! lock held (no other run is committing or recovering there), each dead
//! run's leftovers are dealt with by what its journal says:
//!
//! - a whole commit record: the commit is finished (`apply::apply`), or
//!   undone if a rename cannot be made;
//! - no record (the run died before its commit, or the journal is damaged
//!   or missing): nothing to finish;
//!
//! and then every side file of that run is removed, unless one may hold
//! the only copy of an original (a backup that is no longer its target):
//! then every one is kept, exit 4, and the message says how to finish by
//! hand. Side files of another user are left alone (but for the run's own
//! temps given their target's owner): a journal is obeyed only when it is
//! ours.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::interrupt::Cancel;
use crate::base::shown::shown_path;
use crate::base::side_file::{self, Kind};
use crate::base::sys::{self, Dir, FolderLock, LockMode};
use crate::commit::apply::{self, shown, Failure};
use crate::commit::journal::{Backup, Entry, Journal, MAX_JOURNAL_BYTES};

/// Finishes or removes the leftovers of dead runs in the folder at `path`,
/// waiting for its lock if there are any. Returns one line per run dealt
/// with. Reads only the listing when there is nothing to do.
pub fn recover_folder(path: &Path, cancel: &Cancel) -> Result<Vec<String>> {
    let has_leftovers = match std::fs::read_dir(path) {
        Ok(listing) => listing
            .flatten()
            .any(|e| side_file::parse(&e.file_name()).is_some()),
        Err(_) => false,
    };
    if !has_leftovers {
        return Ok(Vec::new());
    }
    let dir = Dir::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    // Not waited for while others (readers too) use the folder, unless a
    // dead run's commit must be finished for the folder to read right.
    let _lock = match dir
        .try_lock(LockMode::Exclusive)
        .map_err(|e| lock_error(path, e, cancel))?
    {
        Some(lock) => lock,
        None => {
            // Journals are probed only under the folder's lock: a run
            // creates and locks its journal under the exclusive one, and a
            // probe's brief lock on that journal must not make the run
            // think another holds it. The shared lock waits only for such
            // short steps, never for readers.
            let (must_finish, dead) = {
                let _shared = lock_folder(&dir, LockMode::Shared, cancel)?;
                (!unfinished_commits(&dir).is_empty(), dead_runs_left(&dir))
            };
            if must_finish {
                lock_folder(&dir, LockMode::Exclusive, cancel)?
            } else if dead {
                return Ok(vec![format!(
                    "{}: what an earlier run left stays for now: another process is using the folder",
                    shown_path(path)
                )]);
            } else {
                // Only live runs' files: nothing to say.
                return Ok(Vec::new());
            }
        }
    };
    recover_locked(&dir, None, true)
}

/// Whether side files of a dead run are in `dir`: a journal no live run
/// holds, or side files of a run without a journal (a live run creates its
/// journal before any other side file and removes it last). The caller
/// holds the folder's lock.
fn dead_runs_left(dir: &Dir) -> bool {
    let Ok(names) = dir.names() else {
        return false;
    };
    let mut journals = std::collections::BTreeSet::new();
    let mut runs = std::collections::BTreeSet::new();
    for name in &names {
        match side_file::parse(name) {
            Some((id, Kind::Journal)) => {
                journals.insert(id);
            }
            Some((id, _)) => {
                runs.insert(id);
            }
            None => {}
        }
    }
    if runs.iter().any(|id| !journals.contains(id)) {
        return true;
    }
    journals
        .iter()
        .any(|id| dead_journal(dir, &side_file::journal_name(id)).is_some())
}

/// The journal `name` opened for reading, with its metadata, when it is a
/// regular file no live run holds (a live run keeps its journal locked).
/// Read-only (a dry run may not write; another user's journal may not be
/// writable), never blocking on a FIFO, and locked shared, so probes under
/// the folder's shared lock never take each other for a live run.
fn dead_journal(dir: &Dir, name: &OsStr) -> Option<(std::fs::File, std::fs::Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(dir.join(name))
        .ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && sys::try_lock_shared(&file).ok() == Some(true)).then_some((file, meta))
}

/// The unfinished commits of dead runs in the folder at `path` (whose
/// journal is whole: some of its files may be new, others old), found
/// without changing anything, one line each. Probed under the folder's
/// shared lock, so a run recovering or committing there meanwhile (under the
/// exclusive lock) cannot take a dead run's journal, briefly locked by the
/// probe, for a live one; other probes share it.
pub fn pending(path: &Path, cancel: &Cancel) -> Result<Vec<String>> {
    let Ok(dir) = Dir::open(path) else {
        return Ok(Vec::new());
    };
    let _lock = lock_folder(&dir, LockMode::Shared, cancel)?;
    Ok(unfinished_commits(&dir)
        .into_iter()
        .map(|uid| {
            format!(
                "{}: a run{} was stopped in the middle of its commit: some files here are new, others old, until a run into the folder (or `trtllm-prune inspect` on it) by that user finishes it",
                path.display(),
                if uid == current_user() {
                    String::new()
                } else {
                    format!(" of another user (uid {uid})")
                }
            )
        })
        .collect())
}

/// The owners of dead runs' whole journals in `dir` (the caller holds the
/// folder's lock).
fn unfinished_commits(dir: &Dir) -> Vec<u32> {
    let Ok(names) = dir.names() else {
        return Vec::new();
    };
    let mut owners = Vec::new();
    for name in names {
        if !matches!(side_file::parse(&name), Some((_, Kind::Journal))) {
            continue;
        }
        let Some((mut file, meta)) = dead_journal(dir, &name) else {
            continue;
        };
        // A journal without entries describes no commit.
        if read_journal(&mut file).is_ok_and(|j| j.is_some_and(|j| !j.entries.is_empty())) {
            owners.push(std::os::unix::fs::MetadataExt::uid(&meta));
        }
    }
    owners
}

/// The journal in `file`, read only up to [`MAX_JOURNAL_BYTES`]: a larger
/// file (planted, or sparse) is no journal and never read into memory.
fn read_journal(file: &mut std::fs::File) -> std::io::Result<Option<Journal>> {
    if file.metadata()?.len() > MAX_JOURNAL_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_JOURNAL_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(Journal::decode(&bytes))
}

fn current_user() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses to write into a folder where a dead run of another user left an
/// unfinished commit: this user may not finish it, and committing over it
/// would let that user's next run replay the old commit over this one's
/// files. The caller holds the folder's lock.
pub(crate) fn refuse_foreign_commits(dir: &Dir) -> Result<()> {
    let me = current_user();
    match unfinished_commits(dir).into_iter().find(|&uid| uid != me) {
        None => Ok(()),
        Some(uid) => Err(Error::refused(
            dir.path(),
            format!(
                "a run of another user (uid {uid}) was stopped in the middle of its commit here; that user must finish it (`trtllm-prune inspect` on the folder) before this folder can be written"
            ),
        )),
    }
}

/// Takes `dir`'s lock in `mode`, telling the user through `cancel`'s wait
/// notice when it has to wait, and giving way to a stop request.
pub(crate) fn lock_folder(dir: &Dir, mode: LockMode, cancel: &Cancel) -> Result<FolderLock> {
    dir.lock(mode, &|| cancel.check_io(), &|| {
        cancel.waiting_for(dir.path())
    })
    .map_err(|e| lock_error(dir.path(), e, cancel))
}

pub(crate) fn lock_error(path: &Path, e: std::io::Error, cancel: &Cancel) -> Error {
    match cancel.check() {
        Err(interrupted) => interrupted,
        Ok(()) => Error::io(path, "cannot lock the folder", e),
    }
}

/// [`recover_folder`] for a folder whose lock the caller holds; the run
/// `own` (the caller's) is skipped. Leftovers left alone (another user's)
/// get a line only with `report_left_alone`, so a run says so once.
pub(crate) fn recover_locked(
    dir: &Dir,
    own: Option<&str>,
    report_left_alone: bool,
) -> Result<Vec<String>> {
    let io_err = |e| Error::io(dir.path(), "cannot list", e);
    let mut runs: BTreeMap<String, Vec<(OsString, Kind)>> = BTreeMap::new();
    for name in dir.names().map_err(io_err)? {
        if let Some((id, kind)) = side_file::parse(&name) {
            if Some(id.as_str()) != own {
                runs.entry(id).or_default().push((name, kind));
            }
        }
    }
    let me = current_user();
    let mut notes = Vec::new();
    for (id, files) in runs {
        let note = if let Some(pid) = id.strip_prefix("pid-").and_then(|p| p.parse().ok()) {
            recover_legacy(dir, pid, &files, me)?
        } else {
            recover_run(dir, &id, &files, me)?
        };
        match note {
            Some(Note::Done(line)) => notes.push(line),
            Some(Note::LeftAlone(line)) if report_left_alone => notes.push(line),
            _ => {}
        }
    }
    Ok(notes)
}

/// What dealing with one run's leftovers came to.
enum Note {
    /// Something was finished, undone or removed.
    Done(String),
    /// Nothing was touched, for the reason given.
    LeftAlone(String),
}

/// Deals with the leftovers `files` of run `id`; `None` when it is alive.
///
/// With this user's whole journal, its commit is finished (or undone);
/// then, or without one (the run died before its commit, or the journal is
/// damaged or gone), the run's side files are removed, unless one may hold
/// the only copy of an original (see [`originals_at_side_names`]): then
/// every one is kept and the user is told how to finish by hand. With this
/// user's journal, the run's files are this user's whatever their owner
/// (a run as root gives temps the owner of the files they replace).
fn recover_run(dir: &Dir, id: &str, files: &[(OsString, Kind)], me: u32) -> Result<Option<Note>> {
    let at = |name: &OsString| dir.join(name);
    let journal_name = side_file::journal_name(id);
    let mut finished = None;
    let mut journal = None;
    let journal_is_mine = match dir
        .stat(&journal_name)
        .map_err(|e| Error::io(&at(&journal_name), "cannot read metadata", e))?
    {
        Some(st) if !st.is_file() || st.uid != me => {
            return Ok(Some(Note::LeftAlone(format!(
                "{}: left alone: {}",
                at(&journal_name).display(),
                if st.is_file() {
                    "another user's run"
                } else {
                    "not a regular file, so not a journal"
                }
            ))))
        }
        Some(_) => {
            let mut file = dir
                .open_regular_rw(&journal_name)
                .map_err(|e| Error::io(&at(&journal_name), "cannot open", e))?;
            if !sys::try_lock(&file).map_err(|e| Error::io(&at(&journal_name), "cannot lock", e))? {
                return Ok(None); // A live run.
            }
            journal = read_journal(&mut file)
                .map_err(|e| Error::io(&at(&journal_name), "cannot read", e))?
                .filter(|j| belongs_to(j, id));
            if let Some(journal) = &journal {
                finished = Some(finish(dir, journal, &journal_name, &file)?);
            }
            true
        }
        None => false,
    };
    let kept = originals_at_side_names(dir, files, journal.as_ref())
        .map_err(|e| Error::io(dir.path(), "cannot read metadata", e))?;
    if !kept.is_empty() {
        return Err(Error::CommitIncomplete {
            dir: dir.path().to_path_buf(),
            problem: format!(
                "{}, and {}; every file is kept. To finish by hand, put each original back with `mv` (or keep the new files), then remove the hidden files of that run (`.*trtllm-prune-{id}*`)",
                if journal.is_some() {
                    format!("an earlier run's commit ({}) was dealt with", shown(&journal_name))
                } else if journal_is_mine {
                    format!("a run stopped in the middle of its commit left no whole journal ({} does not decode)", shown(&journal_name))
                } else {
                    format!("a run stopped in the middle of its commit left no journal ({} is missing)", shown(&journal_name))
                },
                kept.join("; ")
            ),
        });
    }
    // A run as root gives its temps the owner of the files they replace:
    // with this user's journal, a side file owned as its target is too is
    // the run's own. One another user planted at a free side name is not.
    let owned_as_target = |name: &OsString, uid: u32| {
        target_of(name, journal.as_ref())
            .and_then(|t| dir.stat(&t).ok().flatten())
            .is_some_and(|t| t.uid == uid)
    };
    let mut removed = 0;
    let mut left = 0;
    for (name, _) in files {
        if name == &journal_name {
            continue;
        }
        match dir.stat(name) {
            Ok(Some(st))
                if (st.uid == me || (journal_is_mine && owned_as_target(name, st.uid)))
                    && !st.is_dir() =>
            {
                match dir.unlink(name) {
                    Ok(()) => removed += 1,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                        left += 1
                    }
                    Err(e) => return Err(Error::io(&at(name), "cannot remove", e)),
                }
            }
            Ok(Some(_)) => left += 1,
            _ => {}
        }
    }
    if journal_is_mine {
        dir.unlink(&journal_name)
            .map_err(|e| Error::io(&at(&journal_name), "cannot remove", e))?;
        removed += 1;
    }
    let place = dir.path().display();
    if finished.is_none() && removed == 0 {
        return Ok(Some(Note::LeftAlone(format!(
            "{place}: left alone: {left} file{} an earlier run left, which this user cannot remove",
            plural(left)
        ))));
    }
    Ok(Some(Note::Done(match finished {
        Some(what) => format!("{place}: {what}"),
        None => format!(
            "{place}: removed what an earlier run left when it was stopped before its commit ({removed} file{}{})",
            plural(removed),
            if left > 0 {
                format!("; {left} left that this user cannot remove")
            } else {
                String::new()
            }
        ),
    })))
}

/// The output name the side file `name` stands for: from `journal` when it
/// names it, else from the side name itself (an output name cut short in
/// it names nothing that exists).
fn target_of(name: &OsString, journal: Option<&Journal>) -> Option<OsString> {
    let from_journal = journal.and_then(|j| {
        j.entries.iter().find_map(|e| {
            let backup = match &e.backup {
                Backup::Link(b, _) => Some(b),
                _ => None,
            };
            let undo = backup.and_then(|b| side_file::undo_name(b));
            (&e.temp == name || backup == Some(name) || undo.as_ref() == Some(name))
                .then(|| e.target.clone())
        })
    });
    from_journal.or_else(|| side_file::legacy_target(name))
}

/// The run's side names that may hold the only copy of an original, one
/// line each: a backup (or undo) name that is no longer another name of
/// its target (so the target was replaced: a commit had begun), and a temp
/// name that is the same file as such a backup (the original swapped out).
/// Told from the folder alone, for leftovers without a whole journal (and
/// checked again after one is finished). A backup's target comes from the
/// journal, else from the backup's name.
fn originals_at_side_names(
    dir: &Dir,
    files: &[(OsString, Kind)],
    journal: Option<&Journal>,
) -> std::io::Result<Vec<String>> {
    let target_of = |name: &OsString| target_of(name, journal);
    let mut lines = Vec::new();
    let mut originals = Vec::new();
    for (name, kind) in files {
        if !matches!(kind, Kind::Backup | Kind::Undo) {
            continue;
        }
        let Some(st) = dir.stat(name)? else { continue };
        let target = target_of(name);
        let target_st = match &target {
            Some(t) => dir.stat(t).ok().flatten(),
            None => None,
        };
        if target_st.is_some_and(|t| t.ino == st.ino) {
            continue;
        }
        originals.push(st.ino);
        lines.push(match target {
            Some(t) => format!(
                "{} holds the original of {}, which is now another file",
                shown(name),
                shown(&t)
            ),
            None => format!("{} holds an original", shown(name)),
        });
    }
    for (name, kind) in files {
        if *kind == Kind::Temp
            && dir
                .stat(name)?
                .is_some_and(|st| originals.contains(&st.ino))
        {
            lines.push(format!("{} is another name of that original", shown(name)));
        }
    }
    Ok(lines)
}

/// Whether every side name in `journal` is run `id`'s and every target is
/// an ordinary name: a record is obeyed only within its own run.
fn belongs_to(journal: &Journal, id: &str) -> bool {
    let ours = |name: &OsString, kinds: &[Kind]| {
        side_file::parse(name).is_some_and(|(i, k)| i == id && kinds.contains(&k))
    };
    journal.entries.iter().all(|e| {
        ours(&e.temp, &[Kind::Temp])
            && !side_file::is_side_file(&e.target)
            && match &e.backup {
                Backup::Link(b, _) => ours(b, &[Kind::Backup]),
                _ => true,
            }
    })
}

/// Finishes (or, failing that, undoes) a dead run's commit, once its
/// journal `journal_name` is proven to describe the folder (see
/// [`apply::prove`]); otherwise nothing is touched.
fn finish(
    dir: &Dir,
    journal: &Journal,
    journal_name: &OsStr,
    file: &std::fs::File,
) -> Result<String> {
    if let Err(unproven) = apply::prove(dir, journal) {
        // A copied or restored folder: other inode numbers, but its files
        // may still show, by size and sample, a commit complete or not
        // begun, with nothing to move.
        let settled = apply::settled(dir, journal)
            .map_err(|e| Error::io(dir.path(), "cannot read metadata", e))?;
        if let Some(settled) = settled {
            apply::settle(dir, journal, settled)
                .map_err(|e| Error::io(dir.path(), "cannot clean up", e))?;
            return Ok(match settled {
                apply::Settled::AllNew => "removed the journal of an earlier run's commit, which was complete".into(),
                apply::Settled::AllOld => "removed what an earlier run left when it was stopped before any file of its commit was replaced".into(),
            });
        }
        return Err(by_hand(
            dir,
            journal,
            journal_name,
            format!(
                "a run stopped in the middle of its commit left the journal {}, which does not describe the files here ({}: {}); a copied, restored or moved folder? Nothing was changed",
                dir.join(journal_name).display(),
                shown(&unproven.target),
                unproven.problem
            ),
        ));
    }
    let n = journal.entries.len();
    match apply::apply(dir, journal, true) {
        // The journal stays while a side file it names does.
        Ok(mut leftovers) if !leftovers.is_empty() => {
            let first = leftovers.swap_remove(0);
            Err(Error::commit(
                dir.path(),
                format!(
                    "finished the commit of an earlier run that was stopped, but a file it left cannot be removed yet (its journal stays for the next run): {}",
                    first.what
                ),
                first.source,
            ))
        }
        Ok(_) => Ok(format!(
            "finished the commit of an earlier run that was stopped ({n} file{} in place)",
            plural(n)
        )),
        Err(Failure::Undone { target, source }) => {
            if let Err(unproven) = apply::prove_undone(dir, journal) {
                return Err(by_hand(
                    dir,
                    journal,
                    journal_name,
                    format!(
                        "an earlier run's commit could not be finished ({}: {source}) and undoing it left {} {}",
                        shown(&target),
                        shown(&unproven.target),
                        unproven.problem
                    ),
                ));
            }
            // Cleared first: see `Staging::commit`.
            file.set_len(0)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(dir.path(), "cannot clear a journal", e))?;
            apply::discard(dir, journal)
                .map_err(|e| Error::commit(dir.path(), "cannot clean up", e))?;
            Ok(format!(
                "undid the commit of an earlier run that was stopped: {} cannot be replaced ({source}); every file is as it was before that run",
                shown(&target)
            ))
        }
        Err(Failure::Stuck {
            target,
            source,
            stuck,
            original,
            undo_error,
        }) => Err(Error::CommitIncomplete {
            dir: dir.path().to_path_buf(),
            problem: format!(
                "an earlier run's commit can be neither finished ({}: {source}) nor undone ({}: {undo_error}){}",
                shown(&target),
                shown(&stuck),
                original
                    .map(|o| format!("; the original of {} is {}", shown(&stuck), dir.join(&o).display()))
                    .unwrap_or_default()
            ),
        }),
    }
}

/// The error for a commit that must be finished by hand: `state`, then
/// what each name of each entry holds (the new file, the original: told by
/// size and sample, since inode numbers are what no longer match). The
/// journal and every file it names are kept.
fn by_hand(dir: &Dir, journal: &Journal, journal_name: &OsStr, state: String) -> Error {
    let files: Vec<String> = journal
        .entries
        .iter()
        .map(|e| {
            let mut names = vec![&e.target, &e.temp];
            if let Backup::Link(b, _) = &e.backup {
                names.push(b);
            }
            let held: Vec<String> = names
                .into_iter()
                .map(|name| format!("{} {}", shown(name), holding(dir, name, e)))
                .collect();
            held.join(", ")
        })
        .collect();
    Error::CommitIncomplete {
        dir: dir.path().to_path_buf(),
        problem: format!(
            "{state}, and every file is kept. To finish by hand, make each name hold its new file or its original (all new or all old; the last name listed last) with `mv`, then remove {} and the other hidden files listed: {}",
            shown(journal_name),
            files.join("; ")
        ),
    }
}

/// What the name `name` holds, for [`by_hand`]: the new file or the
/// original of `entry`, by size and sample (a `v1` journal has none).
fn holding(dir: &Dir, name: &OsStr, entry: &Entry) -> &'static str {
    match dir.stat(name) {
        Ok(None) => return "holds nothing",
        Ok(Some(st)) if st.is_file() => {}
        Ok(Some(_)) => return "is not a regular file",
        Err(_) => return "cannot be read",
    }
    let Ok(now) = apply::sample(dir, name) else {
        return "cannot be read";
    };
    let old = match &entry.backup {
        Backup::Link(_, old) => old.sample,
        _ => None,
    };
    if entry.new.sample == Some(now) {
        "holds the new file"
    } else if old == Some(now) {
        "holds the original"
    } else if entry.new.sample.is_none() {
        "holds an unknown file (an old journal: compare sizes)"
    } else {
        "holds neither the new file nor the original"
    }
}

/// Leftovers of a version before the journal: temp files and moved-aside
/// originals named with a process id. If the process is gone and its
/// commit was not complete (a temp file is left, or a moved-aside file's
/// name is empty), every original is put back; otherwise the commit had
/// completed and the originals are stale copies.
fn recover_legacy(
    dir: &Dir,
    pid: u32,
    files: &[(OsString, Kind)],
    me: u32,
) -> Result<Option<Note>> {
    if sys::process_exists(pid) {
        return Ok(None);
    }
    let at = |name: &OsString| dir.join(name);
    let ours: Vec<&(OsString, Kind)> = files
        .iter()
        .filter(|(name, _)| {
            dir.stat(name)
                .ok()
                .flatten()
                .is_some_and(|s| s.uid == me && s.is_file())
        })
        .collect();
    let target_missing = |name: &OsString| {
        side_file::legacy_target(name)
            .map(|t| !dir.exists(&t).unwrap_or(true))
            .unwrap_or(false)
    };
    let incomplete = ours.iter().any(|(name, kind)| match kind {
        Kind::LegacyTemp(_) => true,
        Kind::LegacyBackup(_) => target_missing(name),
        _ => false,
    });
    let mut restored = 0;
    for (name, kind) in &ours {
        match (kind, side_file::legacy_target(name)) {
            (Kind::LegacyBackup(_), Some(target)) if incomplete => {
                dir.rename(name, &target)
                    .map_err(|e| Error::io(&at(&target), "cannot put the original back", e))?;
                restored += 1;
            }
            _ => dir
                .unlink(name)
                .map_err(|e| Error::io(&at(name), "cannot remove", e))?,
        }
    }
    let place = dir.path().display();
    Ok(Some(Note::Done(if restored > 0 {
        format!("{place}: undid the unfinished commit of an older trtllm-prune run (process {pid}): {restored} original{} put back", plural(restored))
    } else {
        format!(
            "{place}: removed {} leftover file{} of an older trtllm-prune run (process {pid})",
            ours.len(),
            plural(ours.len())
        )
    })))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// [`recover_folder`], with a failure to change the folder turned into a
/// line of its own; an interruption or a commit that can be neither
/// finished nor undone stays an error.
pub(crate) fn recover_or_note(dir: &Path, cancel: &Cancel) -> Result<Vec<String>> {
    match recover_folder(dir, cancel) {
        Ok(notes) => Ok(notes),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Interrupted | ErrorKind::CommitIncomplete
            ) =>
        {
            Err(e)
        }
        Err(e) => Ok(vec![format!(
            "leftovers of an earlier run could not be dealt with: {}",
            e.chain()
        )]),
    }
}
