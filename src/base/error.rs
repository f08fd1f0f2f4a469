//! The library's one error type. Every variant renders as a single line that
//! names the file, the problem and, where it applies, the tensor and the
//! byte offset; `main` prefixes it with `trtllm-prune: error: `.

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

/// Why a run, an inspection or a verification failed: one line naming the
/// file, the problem and where ([`Error::exit_code`] says the exit status).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A rank file's safetensors header breaks a format rule.
    Header {
        /// The file (or folder) it is about.
        file: PathBuf,
        /// The rule broken.
        source: HeaderError,
    },
    /// A rank file's pruned output cannot be laid out (its header would
    /// pass the format's limit).
    Plan {
        /// The file (or folder) it is about.
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
    /// An input file that must exist does not.
    NotFound {
        /// The missing file.
        file: PathBuf,
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
    /// An input file changed size while it was being copied.
    InputChanged {
        /// The input file.
        file: PathBuf,
        /// Where its bytes ran out or differed.
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

/// What went wrong with a remote object, for callers that act on it (a
/// missing `config.json` is not a failure; a changed object is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl fmt::Display for Error {
    /// The path is shown escaped (`crate::base::shown`), and so is every control
    /// left in the rest (a config value quoted in a problem), so the message
    /// stays one line and leaves the terminal as it was whatever the user's
    /// files hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = String::new();
        self.write_line(&mut line)?;
        f.write_str(&shown_line(&line))
    }
}

impl Error {
    fn write_line(&self, f: &mut String) -> fmt::Result {
        match self {
            Error::Header { file, source } => write!(f, "{}: {source}", shown_path(file)),
            Error::Plan { file, source } => write!(f, "{}: {source}", shown_path(file)),
            Error::Invalid { file, problem }
            | Error::Refused { file, problem }
            | Error::Mismatch { file, problem } => write!(f, "{}: {problem}", shown_path(file)),
            Error::Io {
                file,
                action,
                source,
            } => write!(f, "{}: {action}: {source}", shown_path(file)),
            Error::NotFound { file } => write!(f, "{}: file not found", shown_path(file)),
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
            Error::Header { source, .. } => Some(source),
            Error::Plan { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The variant as one word, for the `{"error": {"kind": ...}}` document
    /// of `--json` (a script branches on it, not on the message).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::Header { .. } => "header",
            Error::Plan { .. } => "plan",
            Error::Invalid { .. } => "invalid",
            Error::NotFound { .. } => "not_found",
            Error::Refused { .. } => "refused",
            Error::Io { .. } => "io",
            Error::InputChanged { .. } => "input_changed",
            Error::Mismatch { .. } => "mismatch",
            Error::Interrupted { .. } => "interrupted",
            Error::Aborted => "aborted",
            Error::AfterCommit { .. } => "after_commit",
            Error::CommitIncomplete { .. } => "commit_incomplete",
            Error::Remote { .. } => "remote",
        }
    }

    /// The file, folder or URL the error is about, when it is about one
    /// (as text: a path that is not UTF-8 gets U+FFFD, as in the JSON
    /// documents).
    pub fn location(&self) -> Option<String> {
        match self {
            Error::Header { file, .. }
            | Error::Plan { file, .. }
            | Error::Invalid { file, .. }
            | Error::NotFound { file }
            | Error::Refused { file, .. }
            | Error::Io { file, .. }
            | Error::InputChanged { file, .. }
            | Error::Mismatch { file, .. } => Some(file.to_string_lossy().into_owned()),
            Error::AfterCommit { dir, .. } | Error::CommitIncomplete { dir, .. } => {
                Some(dir.to_string_lossy().into_owned())
            }
            Error::Remote { url, .. } => Some(url.clone()),
            Error::Interrupted { .. } | Error::Aborted => None,
        }
    }
}
