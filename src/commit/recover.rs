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

/// The side files in `dir` of each run, by run id.
type Runs = BTreeMap<String, Vec<(OsString, Kind)>>;

/// Every side file in `dir`, by the run it belongs to.
fn runs_in(dir: &Dir) -> std::io::Result<Runs> {
    let mut runs = Runs::new();
    for name in dir.names()? {
        if let Some((id, kind)) = side_file::parse(&name) {
            runs.entry(id).or_default().push((name, kind));
        }
    }
    Ok(runs)
}

/// The name of run `files`' journal, if it left one.
fn journal_of(files: &[(OsString, Kind)]) -> Option<&OsString> {
    files
        .iter()
        .find_map(|(name, kind)| (*kind == Kind::Journal).then_some(name))
}

/// Whether side files of a dead run are in `dir`: a journal no live run
/// holds, or side files of a run without a journal (a live run creates its
/// journal before any other side file and removes it last). The caller
/// holds the folder's lock.
fn dead_runs_left(dir: &Dir) -> bool {
    let Ok(runs) = runs_in(dir) else {
        return false;
    };
    runs.values().any(|files| match journal_of(files) {
        None => true,
        Some(journal) => dead_journal(dir, journal).is_some(),
    })
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
                if uid == sys::current_user() {
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
    let Ok(runs) = runs_in(dir) else {
        return Vec::new();
    };
    let mut owners = Vec::new();
    for name in runs.values().filter_map(|files| journal_of(files)) {
        let Some((mut file, meta)) = dead_journal(dir, name) else {
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

/// Refuses to write into a folder where a dead run of another user left an
/// unfinished commit: this user may not finish it, and committing over it
/// would let that user's next run replay the old commit over this one's
/// files. The caller holds the folder's lock.
pub(crate) fn refuse_foreign_commits(dir: &Dir) -> Result<()> {
    let me = sys::current_user();
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
    let mut runs = runs_in(dir).map_err(|e| Error::io(dir.path(), "cannot list", e))?;
    if let Some(own) = own {
        runs.remove(own);
    }
    let me = sys::current_user();
    let mut notes = Vec::new();
    for (id, files) in runs {
        match recover_run(dir, &id, &files, me)? {
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
    let journal_name = side_file::journal_name(id);
    let (journal_is_mine, journal, finished) = match own_journal(dir, id, &journal_name, me)? {
        RunJournal::Live => return Ok(None),
        RunJournal::NotOurs(why) => {
            return Ok(Some(Note::LeftAlone(format!(
                "{}: left alone: {why}",
                dir.join(&journal_name).display()
            ))))
        }
        RunJournal::Mine { journal, finished } => (true, journal, finished),
        RunJournal::Missing => (false, None, None),
    };
    let kept = originals_at_side_names(dir, files, journal.as_ref())
        .map_err(|e| Error::io(dir.path(), "cannot read metadata", e))?;
    if !kept.is_empty() {
        let state = if journal.is_some() {
            format!(
                "an earlier run's commit ({}) was dealt with",
                shown(&journal_name)
            )
        } else if journal_is_mine {
            format!("a run stopped in the middle of its commit left no whole journal ({} does not decode)", shown(&journal_name))
        } else {
            format!(
                "a run stopped in the middle of its commit left no journal ({} is missing)",
                shown(&journal_name)
            )
        };
        return Err(Error::CommitIncomplete {
            dir: dir.path().to_path_buf(),
            problem: format!(
                "{state}, and {}; every file is kept. To finish by hand, put each original back with `mv` (or keep the new files), then remove the hidden files of that run (`.*trtllm-prune-{id}*`)",
                kept.join("; ")
            ),
        });
    }
    let owner = Owner {
        me,
        journal: journal.as_ref(),
        journal_is_mine,
    };
    let (mut removed, left) = remove_side_files(dir, files, &journal_name, &owner)?;
    if journal_is_mine {
        dir.unlink(&journal_name)
            .map_err(|e| Error::io(&dir.join(&journal_name), "cannot remove", e))?;
        removed += 1;
    }
    Ok(Some(run_note(dir, finished, removed, left)))
}

/// What the journal of a dead run's leftovers says of it.
enum RunJournal {
    /// It is held: the run is alive.
    Live,
    /// Not this user's journal, or not a journal (why, in words).
    NotOurs(&'static str),
    /// This user's: what it holds when it is whole and the run's own, and
    /// what finishing its commit came to.
    Mine {
        journal: Option<Journal>,
        finished: Option<String>,
    },
    /// No journal.
    Missing,
}

/// Reads the journal `journal_name` of run `id` and, when it is this
/// user's (`me`) and whole, finishes its commit.
fn own_journal(dir: &Dir, id: &str, journal_name: &OsStr, me: u32) -> Result<RunJournal> {
    let path = dir.join(journal_name);
    match dir
        .stat(journal_name)
        .map_err(|e| Error::io(&path, "cannot read metadata", e))?
    {
        None => Ok(RunJournal::Missing),
        Some(st) if !st.is_file() => {
            Ok(RunJournal::NotOurs("not a regular file, so not a journal"))
        }
        Some(st) if st.uid != me => Ok(RunJournal::NotOurs("another user's run")),
        Some(_) => {
            let mut file = dir
                .open_regular_rw(journal_name)
                .map_err(|e| Error::io(&path, "cannot open", e))?;
            if !sys::try_lock(&file).map_err(|e| Error::io(&path, "cannot lock", e))? {
                return Ok(RunJournal::Live);
            }
            let journal = read_journal(&mut file)
                .map_err(|e| Error::io(&path, "cannot read", e))?
                .filter(|j| belongs_to(j, id));
            let finished = match &journal {
                Some(journal) => Some(finish(dir, journal, journal_name, &file)?),
                None => None,
            };
            Ok(RunJournal::Mine { journal, finished })
        }
    }
}

/// Whose side files a run's are, for [`remove_side_files`].
struct Owner<'a> {
    me: u32,
    journal: Option<&'a Journal>,
    journal_is_mine: bool,
}

/// Removes the side files of a dead run but its journal: those of this
/// user, and, with this user's journal, those owned as their target is
/// (a run as root gives its temps the owner of the files they replace;
/// one another user planted at a free side name is not the run's).
/// Returns how many were removed and how many left.
fn remove_side_files(
    dir: &Dir,
    files: &[(OsString, Kind)],
    journal_name: &OsStr,
    owner: &Owner<'_>,
) -> Result<(usize, usize)> {
    let owned_as_target = |name: &OsString, uid: u32| {
        target_of(name, owner.journal)
            .and_then(|t| dir.stat(&t).ok().flatten())
            .is_some_and(|t| t.uid == uid)
    };
    let (mut removed, mut left) = (0, 0);
    for (name, _) in files {
        if name == journal_name {
            continue;
        }
        match dir.stat(name) {
            Ok(Some(st))
                if (st.uid == owner.me
                    || (owner.journal_is_mine && owned_as_target(name, st.uid)))
                    && !st.is_dir() =>
            {
                match dir.unlink(name) {
                    Ok(()) => removed += 1,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                        left += 1
                    }
                    Err(e) => return Err(Error::io(&dir.join(name), "cannot remove", e)),
                }
            }
            Ok(Some(_)) => left += 1,
            _ => {}
        }
    }
    Ok((removed, left))
}

/// The line for a dead run dealt with: its commit `finished` (what became
/// of it), else the side files `removed` and `left`.
fn run_note(dir: &Dir, finished: Option<String>, removed: usize, left: usize) -> Note {
    let place = dir.path().display();
    if finished.is_none() && removed == 0 {
        return Note::LeftAlone(format!(
            "{place}: left alone: {left} file{} an earlier run left, which this user cannot remove",
            plural(left)
        ));
    }
    Note::Done(match finished {
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
    })
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
    from_journal.or_else(|| side_file::target_in_name(name))
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
        return settle_unproven(dir, journal, journal_name, &unproven);
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
            // Cleared first: see `Staging::undone`.
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
        Err(Failure::Stuck(stuck)) => Err(Error::CommitIncomplete {
            dir: dir.path().to_path_buf(),
            problem: format!(
                "finishing the commit of an earlier run that was stopped: {}",
                stuck.problem(dir)
            ),
        }),
    }
}

/// [`finish`] for a journal that does not describe the folder (`unproven`
/// says how): a copied or restored folder has other inode numbers, but its
/// files may still show, by size and sample, a commit complete or not
/// begun, with nothing to move; otherwise it is left to be finished by
/// hand.
fn settle_unproven(
    dir: &Dir,
    journal: &Journal,
    journal_name: &OsStr,
    unproven: &apply::Unproven,
) -> Result<String> {
    let settled = apply::settled(dir, journal)
        .map_err(|e| Error::io(dir.path(), "cannot read metadata", e))?;
    let Some(settled) = settled else {
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
    };
    apply::settle(dir, journal, settled)
        .map_err(|e| Error::io(dir.path(), "cannot clean up", e))?;
    Ok(match settled {
        apply::Settled::AllNew => {
            "removed the journal of an earlier run's commit, which was complete".into()
        }
        apply::Settled::AllOld => "removed what an earlier run left when it was stopped before any file of its commit was replaced".into(),
    })
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
