//! The library's one error type. Every error, with its causes
//! ([`Error::chain`]), renders as a single line that names the file, the
//! problem and, where it applies, the tensor and the byte offset; `main`
//! prefixes it with `trtllm-prune: error: `. Code that acts on a failure
//! asks [`Error::kind`]; a message made from another error has one
//! constructor here, so each sentence is written once.

use std::fmt::{self, Write};
use std::io;
use std::path::{Path, PathBuf};

use crate::base::shown::{shown_line, shown_path};
use crate::plan::PlanError;
use crate::read::header::HeaderError;

/// Exit status for bad input, refused set-ups and I/O failures.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status when the output was committed and is in place, but a step
/// after the commit failed (flushing the folder, removing a leftover).
pub const EXIT_AFTER_COMMIT: i32 = 3;
/// Exit status when a commit was started and could be neither finished nor
/// undone: some files are new, the rest old, and `config.json` still old;
/// the next run into the folder finishes it.
pub const EXIT_COMMIT_INCOMPLETE: i32 = 4;

/// A failed run: what went wrong ([`Error::kind`]) and where.
///
/// `Display` writes this error's own words; the cause (an [`io::Error`],
/// a [`HeaderError`], a [`PlanError`], a [`CommitFailure`]) is
/// [`source`](std::error::Error::source), never repeated in the text.
/// [`Error::chain`] writes the whole one-line message (the words, then each
/// cause, joined by `": "`), which is what the binary prints.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A rank file's safetensors header breaks a format rule.
    Header {
        /// The file it is about.
        file: PathBuf,
        /// The rule broken.
        source: HeaderError,
    },
    /// A rank file's pruned output cannot be laid out (its header would
    /// pass the format's limit).
    Plan {
        /// The file it is about.
        file: PathBuf,
        /// Why no layout fits.
        source: PlanError,
    },
    /// An input is malformed or missing (config.json, the checkpoint folder).
    Invalid {
        /// The file (or folder) it is about.
        file: PathBuf,
        /// What is wrong, and where.
        problem: String,
    },
    /// A file or folder that must exist does not (`what` says which).
    NotFound {
        /// The missing file or folder.
        file: PathBuf,
        /// What it was to be.
        what: Missing,
    },
    /// A set-up that would risk the user's data; refused before any write.
    Refused {
        /// The file (or folder) it is about.
        file: PathBuf,
        /// What the risk is, and what to do instead.
        problem: String,
    },
    /// A system call failed.
    Io {
        /// The file (or folder) it is about.
        file: PathBuf,
        /// What was being done (`cannot open`, `cannot write`).
        action: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// A commit step on `file` failed, for a reason of the commit's own
    /// (the file changed since it was compared, a backup missing) or an
    /// I/O error.
    Commit {
        /// The file the step was about.
        file: PathBuf,
        /// The step (`cannot put it in place`).
        action: String,
        /// Why it failed.
        source: CommitFailure,
    },
    /// The output folder's filesystem has too little free space for the
    /// run (`needed` and `free` as shown, e.g. `133.23 MiB`); refused
    /// before any write.
    NoSpace {
        /// The output folder.
        dir: PathBuf,
        /// The bytes the run needs, as shown.
        needed: String,
        /// The bytes free, as shown.
        free: String,
    },
    /// A file changed while the run used it (an input since it was read,
    /// a target during the commit); nothing was replaced. `problem` is one
    /// of the fixed sentences of the constructors ([`Error::changed_since_read`]
    /// and the others).
    Changed {
        /// The file that changed.
        file: PathBuf,
        /// How, in the constructor's words.
        problem: &'static str,
    },
    /// An input file changed size while it was being copied.
    InputChanged {
        /// The input file.
        file: PathBuf,
        /// Where its bytes ran out.
        offset: u64,
    },
    /// `--verify` found an output that does not match its input.
    Mismatch {
        /// The output file.
        file: PathBuf,
        /// The first difference found.
        problem: String,
    },
    /// SIGINT, SIGTERM or SIGHUP arrived; the run was rolled back.
    Interrupted {
        /// The signal (SIGINT for a [`crate::Cancel::stop`]).
        signal: i32,
    },
    /// This worker stopped because another one failed; the other error is
    /// the one reported.
    Aborted,
    /// Every output is in place, but a step after the commit failed.
    AfterCommit {
        /// The output folder.
        dir: PathBuf,
        /// What failed.
        problem: String,
    },
    /// A commit could be neither finished nor undone; its journal is left
    /// for the next run.
    CommitIncomplete {
        /// The output folder, which holds the journal.
        dir: PathBuf,
        /// What failed, and how to finish.
        problem: String,
    },
    /// A remote object (`s3://`, `gs://`, `az://`, `http(s)://`) could not
    /// be read. `url` never holds credentials; `range` is the byte range
    /// asked for, when the failure is about one.
    Remote {
        /// The object's URL, without credentials.
        url: String,
        /// The byte range asked for, when the failure is about one.
        range: Option<std::ops::Range<u64>>,
        /// What went wrong, for a caller that acts on it.
        kind: RemoteProblem,
        /// What the server said (secrets redacted), or what was wrong.
        problem: String,
    },
}

/// What kind of failure an [`Error`] is, for a caller that acts on it (a
/// missing file that may be skipped, an input to read again, credentials to
/// fix) instead of reading its message. A remote object that is missing,
/// replaced or wrongly named has the kind a local file would have
/// (`NotFound`, `Changed`, `Invalid`); `Remote` carries the problems only a
/// store has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file, folder or object that must exist does not.
    NotFound,
    /// An input is malformed, incomplete or not a checkpoint (config.json,
    /// the folder's files, a URL).
    Invalid,
    /// A safetensors header breaks a format rule.
    Header,
    /// A pruned file cannot be laid out (its header would pass the limit).
    Plan,
    /// A set-up that would risk the user's data; refused before any write.
    Refused,
    /// The output's filesystem is full, or would be: the free-space check
    /// before any write, or `ENOSPC`/`EDQUOT` during one.
    NoSpace,
    /// An input changed or was replaced while the run read it, or a file
    /// of the output folder changed since it was compared: run again.
    Changed,
    /// `--verify` or `verify` found an output that does not match.
    Mismatch,
    /// A local system call failed.
    Io,
    /// A remote store failed in a way a local file cannot: credentials
    /// ([`RemoteProblem::Denied`]), no byte ranges
    /// ([`RemoteProblem::Unsupported`]), the transfer
    /// ([`RemoteProblem::Transfer`]).
    Remote(RemoteProblem),
    /// A signal stopped the run; nothing of it was kept.
    Interrupted,
    /// A worker stopped because another one failed.
    Aborted,
    /// The output is in place, but a step after the commit failed (exit 3).
    AfterCommit,
    /// A commit could be neither finished nor undone (exit 4).
    CommitIncomplete,
}

impl ErrorKind {
    /// The kind as one word, for the `{"error": {"kind": ...}}` document
    /// of `--json` (a script branches on it, not on the message). The
    /// names are those of schema `trtllm-prune/v1`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Header => "header",
            ErrorKind::Plan => "plan",
            ErrorKind::Refused => "refused",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::Changed => "input_changed",
            ErrorKind::Mismatch => "mismatch",
            ErrorKind::Io => "io",
            ErrorKind::Remote(_) => "remote",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Aborted => "aborted",
            ErrorKind::AfterCommit => "after_commit",
            ErrorKind::CommitIncomplete => "commit_incomplete",
        }
    }
}

/// What an [`Error::NotFound`] is about, for its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// An input file (`file not found`).
    File,
    /// The checkpoint folder (`checkpoint folder not found`).
    CheckpointFolder,
    /// A path that may name a file or a folder (`not found`).
    Path,
}

/// Why a commit could not put a file in place, put it back or remove a
/// side file: the commit's own reasons, or an I/O error.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommitFailure {
    /// A system call failed.
    Io(io::Error),
    /// The target is no longer the file compared before the commit:
    /// replaced, written or truncated since.
    ChangedSinceRead,
    /// `name` (shown) is not the file this commit wrote.
    NotWritten {
        /// The side file's name.
        name: String,
    },
    /// The temp file `temp` is gone and `target` is not it.
    Gone {
        /// The temp file's name.
        temp: String,
        /// The target's name.
        target: String,
    },
    /// The backup `backup` is not the original it was.
    BackupChanged {
        /// The backup's name.
        backup: String,
    },
    /// The original could not be kept as a hard link, so it cannot be put
    /// back.
    BackupUnavailable,
}

impl CommitFailure {
    /// The kind of an [`Error`] that reports this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommitFailure::Io(e) if is_no_space(e) => ErrorKind::NoSpace,
            CommitFailure::Io(_) | CommitFailure::BackupUnavailable => ErrorKind::Io,
            CommitFailure::ChangedSinceRead
            | CommitFailure::NotWritten { .. }
            | CommitFailure::Gone { .. }
            | CommitFailure::BackupChanged { .. } => ErrorKind::Changed,
        }
    }
}

impl From<io::Error> for CommitFailure {
    fn from(e: io::Error) -> CommitFailure {
        CommitFailure::Io(e)
    }
}

impl fmt::Display for CommitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Transparent: the I/O error's words, and its causes.
            CommitFailure::Io(e) => write!(f, "{e}"),
            CommitFailure::ChangedSinceRead => f.write_str("changed since it was compared"),
            CommitFailure::NotWritten { name } => {
                write!(f, "{name} is not the file this commit wrote")
            }
            CommitFailure::Gone { temp, target } => {
                write!(f, "{temp} is gone, and {target} is not it")
            }
            CommitFailure::BackupChanged { backup } => {
                write!(f, "{backup} is not the original it was")
            }
            CommitFailure::BackupUnavailable => f.write_str(
                "its original could not be kept as a hard link (not permitted, or no hard links on this filesystem)",
            ),
        }
    }
}

impl std::error::Error for CommitFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommitFailure::Io(e) => e.source(),
            _ => None,
        }
    }
}

/// Whether `e` says the filesystem (or the user's quota) is full.
fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// What went wrong with a remote object, for callers that act on it (a
/// missing `config.json` is not a failure; a changed object is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteProblem {
    /// A malformed or unsupported URL, object name or byte range.
    Invalid,
    /// The bucket, container or object does not exist (HTTP 404).
    NotFound,
    /// Credentials missing, wrong or without permission (HTTP 401, 403).
    Denied,
    /// The object is no longer the one first read: its ETag, version or
    /// size changed (HTTP 412, or a different answer).
    Changed,
    /// The server cannot do what is needed (no range requests).
    Unsupported,
    /// Anything else, after the retries: server errors, timeouts,
    /// connections cut.
    Transfer,
}

impl Error {
    /// A system call on `file` failed while doing `action`.
    pub fn io(file: &Path, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            file: file.to_path_buf(),
            action,
            source,
        }
    }

    /// `file` is malformed or missing: `problem` says how.
    pub fn invalid(file: &Path, problem: impl Into<String>) -> Error {
        Error::Invalid {
            file: file.to_path_buf(),
            problem: problem.into(),
        }
    }

    /// A set-up refused before any write: `problem` says why.
    pub fn refused(file: &Path, problem: impl Into<String>) -> Error {
        Error::Refused {
            file: file.to_path_buf(),
            problem: problem.into(),
        }
    }

    /// `file`, which must exist, does not.
    pub fn not_found(file: &Path) -> Error {
        Error::NotFound {
            file: file.to_path_buf(),
            what: Missing::File,
        }
    }

    /// `path`, a file or a folder, does not exist.
    pub fn path_not_found(path: &Path) -> Error {
        Error::NotFound {
            file: path.to_path_buf(),
            what: Missing::Path,
        }
    }

    /// The commit step `action` on `file` failed for `source`.
    pub fn commit(file: &Path, action: impl Into<String>, source: CommitFailure) -> Error {
        Error::Commit {
            file: file.to_path_buf(),
            action: action.into(),
            source,
        }
    }

    /// The filesystem of the output folder `dir` has `free` bytes free, the
    /// run needs `needed` (both as shown to the user).
    pub fn no_space(dir: &Path, needed: impl Into<String>, free: impl Into<String>) -> Error {
        Error::NoSpace {
            dir: dir.to_path_buf(),
            needed: needed.into(),
            free: free.into(),
        }
    }

    /// The checkpoint folder `dir` does not exist.
    pub fn folder_not_found(dir: &Path) -> Error {
        Error::NotFound {
            file: dir.to_path_buf(),
            what: Missing::CheckpointFolder,
        }
    }

    /// The rank file `file` is missing from a checkpoint whose config.json
    /// says `world_size`.
    pub fn missing_rank(file: &Path, world_size: impl fmt::Display) -> Error {
        Error::invalid(
            file,
            format!("rank file missing: config.json has world_size {world_size}"),
        )
    }

    /// The folder of `config` has no config.json.
    pub fn no_config(config: &Path) -> Error {
        Error::invalid(
            config,
            "no config.json: not a TensorRT-LLM checkpoint folder",
        )
    }

    /// The commit's target `file` is no longer the file the run read.
    pub fn changed_since_read(file: &Path) -> Error {
        Error::changed(
            file,
            "changed since it was read; nothing was replaced, run again",
        )
    }

    /// The commit's target `file`, absent when the run began, appeared or
    /// changed during the commit.
    pub fn changed_during_commit(file: &Path) -> Error {
        Error::changed(
            file,
            "changed during the commit; nothing was replaced, run again",
        )
    }

    /// The header of `file` is not the one read when the run began.
    pub fn header_changed(file: &Path) -> Error {
        Error::changed(
            file,
            "header changed since it was read; run again on a stable checkpoint",
        )
    }

    /// The file (or remote object) `file` is not the size the folder's
    /// listing gave.
    pub fn listing_changed(file: &Path) -> Error {
        Error::changed(
            file,
            "the file changed while the folder was listed; run again",
        )
    }

    fn changed(file: &Path, problem: &'static str) -> Error {
        Error::Changed {
            file: file.to_path_buf(),
            problem,
        }
    }

    /// What kind of failure this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Header { .. } => ErrorKind::Header,
            Error::Plan { .. } => ErrorKind::Plan,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Refused { .. } => ErrorKind::Refused,
            Error::Io { source, .. } if is_no_space(source) => ErrorKind::NoSpace,
            Error::Io { .. } => ErrorKind::Io,
            Error::NoSpace { .. } => ErrorKind::NoSpace,
            Error::Commit { source, .. } => source.kind(),
            Error::InputChanged { .. } | Error::Changed { .. } => ErrorKind::Changed,
            Error::Mismatch { .. } => ErrorKind::Mismatch,
            Error::Interrupted { .. } => ErrorKind::Interrupted,
            Error::Aborted => ErrorKind::Aborted,
            Error::AfterCommit { .. } => ErrorKind::AfterCommit,
            Error::CommitIncomplete { .. } => ErrorKind::CommitIncomplete,
            Error::Remote { kind, .. } => match kind {
                RemoteProblem::NotFound => ErrorKind::NotFound,
                RemoteProblem::Changed => ErrorKind::Changed,
                RemoteProblem::Invalid => ErrorKind::Invalid,
                other => ErrorKind::Remote(*other),
            },
        }
    }

    /// The process exit status a shell expects for this error: 128 + the
    /// signal number for an interruption, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { signal } => 128 + signal,
            Error::AfterCommit { .. } => EXIT_AFTER_COMMIT,
            Error::CommitIncomplete { .. } => EXIT_COMMIT_INCOMPLETE,
            _ => EXIT_FAILURE,
        }
    }

    /// The whole one-line message: this error's words, then each cause's,
    /// joined by `": "` (what `main` prints after `trtllm-prune: error: `).
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// Writes an error and its causes ([`source`](std::error::Error::source))
/// on one line, joined by `": "`, with every control escaped
/// (`crate::base::shown`). From [`Error::chain`].
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(next) = cause {
            write!(line, ": {next}")?;
            cause = next.source();
        }
        f.write_str(&shown_line(&line))
    }
}

impl fmt::Display for Error {
    /// This error's own words, without its cause's (see [`Error::chain`]).
    /// The path is shown escaped (`crate::base::shown`), and so is every
    /// control left in the rest (a config value quoted in a problem), so
    /// the message stays one line and leaves the terminal as it was
    /// whatever the user's files hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = String::new();
        self.write_line(&mut line)?;
        f.write_str(&shown_line(&line))
    }
}

impl Error {
    fn write_line(&self, f: &mut String) -> fmt::Result {
        match self {
            Error::Header { file, .. } | Error::Plan { file, .. } => f.write_str(&shown_path(file)),
            Error::Invalid { file, problem }
            | Error::Refused { file, problem }
            | Error::Mismatch { file, problem } => write!(f, "{}: {problem}", shown_path(file)),
            Error::Io { file, action, .. } => write!(f, "{}: {action}", shown_path(file)),
            Error::Commit { file, action, .. } => write!(f, "{}: {action}", shown_path(file)),
            Error::Changed { file, problem } => write!(f, "{}: {problem}", shown_path(file)),
            Error::NoSpace { dir, needed, free } => write!(
                f,
                "{}: not enough free space: the output needs {needed}, {free} free; nothing was written",
                shown_path(dir)
            ),
            Error::NotFound { file, what } => {
                let what = match what {
                    Missing::File => "file not found",
                    Missing::CheckpointFolder => "checkpoint folder not found",
                    Missing::Path => "not found",
                };
                write!(f, "{}: {what}", shown_path(file))
            }
            Error::InputChanged { file, offset } => write!(
                f,
                "{}: input file changed while it was being copied: it ends before byte {offset}",
                shown_path(file)
            ),
            Error::Interrupted { signal } => {
                let name = match *signal {
                    libc::SIGINT => "SIGINT",
                    libc::SIGTERM => "SIGTERM",
                    libc::SIGHUP => "SIGHUP",
                    _ => "a signal",
                };
                write!(f, "interrupted by {name}; nothing of this run was kept")
            }
            Error::Aborted => f.write_str("stopped because another file failed"),
            Error::AfterCommit { dir, problem } => write!(
                f,
                "{}: the output is in place, but {problem}",
                shown_path(dir)
            ),
            Error::CommitIncomplete { dir, problem } => {
                write!(f, "{}: commit incomplete: {problem}", shown_path(dir))
            }
            Error::Remote {
                url,
                range,
                problem,
                ..
            } => match range {
                Some(r) => write!(f, "{url}: {problem} (bytes {}..{})", r.start, r.end),
                None => write!(f, "{url}: {problem}"),
            },
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Commit { source, .. } => Some(source),
            Error::Header { source, .. } => Some(source),
            Error::Plan { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The library's result: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind as one word ([`ErrorKind::name`]), for the
    /// `{"error": {"kind": ...}}` document of `--json`.
    pub fn kind_name(&self) -> &'static str {
        self.kind().name()
    }

    /// The file, folder or URL the error is about, when it is about one
    /// (as text: a path that is not UTF-8 gets U+FFFD, as in the JSON
    /// documents).
    pub fn location(&self) -> Option<String> {
        match self {
            Error::Header { file, .. }
            | Error::Plan { file, .. }
            | Error::Invalid { file, .. }
            | Error::NotFound { file, .. }
            | Error::Refused { file, .. }
            | Error::Io { file, .. }
            | Error::Commit { file, .. }
            | Error::Changed { file, .. }
            | Error::InputChanged { file, .. }
            | Error::Mismatch { file, .. } => Some(file.to_string_lossy().into_owned()),
            Error::AfterCommit { dir, .. }
            | Error::CommitIncomplete { dir, .. }
            | Error::NoSpace { dir, .. } => Some(dir.to_string_lossy().into_owned()),
            Error::Remote { url, .. } => Some(url.clone()),
            Error::Interrupted { .. } | Error::Aborted => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::header::parse_file;

    /// What anyhow, eyre or a `while let Some(e) = e.source()` loop print:
    /// each error of the chain, on its own.
    fn links(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut texts = vec![error.to_string()];
        let mut cause = error.source();
        while let Some(next) = cause {
            texts.push(next.to_string());
            cause = next.source();
        }
        texts
    }

    fn errors_with_causes() -> Vec<Error> {
        let file = Path::new("ckpt/rank0.safetensors");
        let header = parse_file(b"\x02\0\0\0\0\0\0\0{x").expect_err("not JSON");
        vec![
            Error::io(file, "cannot read", io::Error::other("disk on fire")),
            Error::io(
                file,
                "cannot open",
                io::Error::from_raw_os_error(libc::EACCES),
            ),
            Error::Header {
                file: file.to_path_buf(),
                source: header,
            },
            Error::Plan {
                file: file.to_path_buf(),
                source: PlanError::HeaderTooLarge { len: 1 << 40 },
            },
            Error::commit(
                file,
                "cannot put the finished file in place",
                CommitFailure::ChangedSinceRead,
            ),
            Error::commit(
                Path::new("out"),
                "cannot clean up",
                CommitFailure::Io(io::Error::from_raw_os_error(libc::EROFS)),
            ),
        ]
    }

    #[test]
    fn a_chain_printer_shows_each_cause_once() {
        for error in errors_with_causes() {
            let texts = links(&error);
            assert!(texts.len() >= 2, "{texts:?}: the cause is a source");
            for (i, outer) in texts.iter().enumerate() {
                for inner in &texts[i + 1..] {
                    assert!(
                        !outer.contains(inner.as_str()),
                        "{outer:?} repeats {inner:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_one_line_message_is_every_link_joined() {
        for error in errors_with_causes() {
            assert_eq!(error.chain().to_string(), links(&error).join(": "));
        }
        let error = Error::io(
            Path::new("a/b"),
            "cannot open",
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(
            error.chain().to_string(),
            "a/b: cannot open: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_full_filesystem_is_no_space_whichever_step_meets_it() {
        let out = Path::new("out");
        let full = |errno| io::Error::from_raw_os_error(errno);
        assert_eq!(
            Error::no_space(out, "2 MiB", "1 MiB").kind(),
            ErrorKind::NoSpace
        );
        assert_eq!(
            Error::io(out, "cannot write", full(libc::ENOSPC)).kind(),
            ErrorKind::NoSpace
        );
        assert_eq!(
            Error::io(out, "cannot write", full(libc::EDQUOT)).kind(),
            ErrorKind::NoSpace
        );
        let commit = Error::commit(
            out,
            "cannot clean up",
            CommitFailure::Io(full(libc::ENOSPC)),
        );
        assert_eq!(commit.kind(), ErrorKind::NoSpace);
        assert_eq!(
            Error::io(out, "cannot write", full(libc::EFBIG)).kind(),
            ErrorKind::Io
        );
        assert_eq!(ErrorKind::NoSpace.name(), "no_space");
    }

    #[test]
    fn a_remote_object_has_the_kind_a_local_file_would() {
        let remote = |kind| Error::Remote {
            url: "s3://b/k".into(),
            range: None,
            kind,
            problem: "x".into(),
        };
        assert_eq!(remote(RemoteProblem::NotFound).kind(), ErrorKind::NotFound);
        assert_eq!(remote(RemoteProblem::Changed).kind(), ErrorKind::Changed);
        assert_eq!(
            remote(RemoteProblem::Denied).kind(),
            ErrorKind::Remote(RemoteProblem::Denied)
        );
        assert_eq!(remote(RemoteProblem::Denied).kind_name(), "remote");
        let changed = Error::InputChanged {
            file: "f".into(),
            offset: 8,
        };
        assert_eq!(changed.kind(), remote(RemoteProblem::Changed).kind());
    }
}
