//! trtllm-prune: a streaming, zero-copy pruner for TensorRT-LLM safetensors
//! checkpoints.
//!
//! # The stages
//!
//! Data flows one way, and each stage is a folder of `src/`; a module
//! imports only from the stages listed above it (`base` the lowest, `prune`
//! on top), so the folder list reads as the data flow:
//!
//! ```text
//! base/     the vocabulary every stage shares: error (Error, exit codes),
//!           file (a file's name, stamp and owner; shared file names),
//!           copy_range (the bytes
//!           one copy moves), interrupt (Cancel),
//!           progress (the Progress observer), shown (names made
//!           terminal-safe, sizes), side_file (the tool's own file names),
//!           sys (folder-relative system calls)
//! read/     a checkpoint: folder (the seam: a Folder lists, reads small
//!           files, opens files; an argument resolved once into a Place),
//!           checkpoint (the layout rules, once, over any Folder), config,
//!           index, ranks, input (files, stamped; headers read with pread),
//!           header (bytes -> validated Header; pure; header/ holds the
//!           parser, its fast scan and serde visitors), json_scan,
//!           remote/ (S3, GCS, Azure, HTTP, the Hugging Face Hub: headers
//!           and kept ranges only; the `remote` feature), remote_folder (a
//!           remote folder as a Folder)
//! plan/     rule (tensor name -> prune or keep; pure), mod.rs (Header +
//!           rule -> PrunePlan; pure), layout (the order and alignment of
//!           the kept ranges), header_json (the output header's
//!           bytes), suggest (patterns for a rule that missed), file (one
//!           file planned), prepared (the whole run, before any write)
//! commit/   out_dir (where outputs go, what they may not replace), stage
//!           (temp files, locks), journal, apply (apply or undo), recover
//!           (dead runs' leftovers)
//! copy/     space (free space, ulimit -f), jobs (files on threads, into
//!           staged temp files), ranges (clone, copy_file_range, sendfile,
//!           pread/pwrite; holes skipped)
//! check/    inspect, verify: reading checkpoints and outputs (like every
//!           run, they first finish or remove what dead runs left in the
//!           folders they read; no checkpoint file is changed)
//! prune.rs  the run: prepare (no writes), execute (copy, verify, commit)
//! ```
//!
//! `commit/` sits below `copy/`: the copy jobs write into the temp files
//! that staging hands out, and the commit needs nothing of the copy. One
//! file looks up: `base/error.rs` wraps the errors of `read/header.rs` and
//! `plan/mod.rs` (neither imports anything that leads back to it).
//! The terminal front-end (arguments, signal handlers, progress bars,
//! tables and JSON documents) is the binary's, in `src/cli/`; the library
//! prints nothing.
//!
//! # The library's API
//!
//! - a run: [`prune()`] ([`recover_folders`], then [`prepare`] and
//!   [`execute`]) with [`Options`], giving a [`Prepared`] (of
//!   [`FilePlan`]s, as a [`LayoutKind`]) and a [`Summary`];
//!   [`unfinished_commits`] (what a dry run reports), [`lacking_ranks`],
//!   [`is_url`], [`DEFAULT_FETCH_JOBS`], [`NO_REMOTE_SUPPORT`];
//! - looking (after the recovery every run makes first): [`inspect()`]
//!   ([`Inspected`]),
//!   [`verify_existing`] ([`Verification`], [`FileVerdict`]),
//!   [`recover_folder`];
//! - the pure parts: [`parse_header`] ([`Header`], [`TensorEntry`], [`Tensors`],
//!   [`Dtype`], [`HeaderError`], [`HeaderErrorKind`]; [`is_emptied`]),
//!   [`PruneRule`]
//!   ([`Pattern`], [`Decision`], [`Reason`]) and [`plan_prune`]
//!   ([`PrunePlan`], [`TensorOutcome`], [`CopyRange`], [`PlanError`]);
//! - what those take and give: [`RankSet`], [`CopyMethods`], [`Cancel`],
//!   the [`Progress`] observer ([`FileProgress`], [`NoProgress`]),
//!   [`Error`] ([`Chain`], [`ErrorKind`], [`Missing`], [`CommitFailure`],
//!   [`RemoteProblem`], [`EXIT_FAILURE`], [`EXIT_AFTER_COMMIT`],
//!   [`EXIT_COMMIT_INCOMPLETE`]) and [`Result`];
//! - for front-ends that print names: [`shown`], [`shown_os`],
//!   [`shown_path`], [`shown_line`], [`shown_lines`], [`json_safe`].
//!
//! Only headers are ever held in memory; tensor bytes go from the input file
//! to the output file without passing through the heap (except through one
//! fixed 1 MiB buffer on filesystems where no in-kernel copy works).

#![deny(missing_docs)]

mod base;
mod check;
mod commit;
mod copy;
#[cfg(feature = "fixture")]
pub mod fixture;
mod plan;
mod prune;
mod read;

pub use base::error::{
    Chain, CommitFailure, Error, ErrorKind, Missing, RemoteProblem, Result, EXIT_AFTER_COMMIT,
    EXIT_COMMIT_INCOMPLETE, EXIT_FAILURE,
};
pub use base::interrupt::Cancel;
pub use base::progress::{FileProgress, NoProgress, Progress};
pub use base::shown::{json_safe, shown, shown_line, shown_lines, shown_os, shown_path};
pub use check::inspect::{inspect, Inspected};
pub use check::verify::{verify_existing, FileVerdict, Verification};
pub use commit::out_dir::is_url;
pub use commit::recover::recover_folder;
pub use copy::ranges::CopyMethods;
pub use plan::file::{is_emptied, FilePlan};
pub use plan::prepared::{LayoutKind, Prepared};
pub use plan::rule::{Decision, Pattern, PruneRule, Reason};
pub use plan::{plan_prune, CopyRange, PlanError, PrunePlan, TensorOutcome};
pub use prune::{
    execute, lacking_ranks, prepare, prune, recover_folders, unfinished_commits, Options, Summary,
    DEFAULT_FETCH_JOBS,
};
pub use read::folder::NO_REMOTE_SUPPORT;
pub use read::header::{
    parse_header, Dtype, Header, HeaderError, HeaderErrorKind, TensorEntry, Tensors,
};
pub use read::ranks::RankSet;
