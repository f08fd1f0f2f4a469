//! trtllm-prune: a streaming, zero-copy pruner for TensorRT-LLM safetensors
//! checkpoints.
//!
//! Data flows one way; the file list reads as the data flow:
//!
//! ```text
//! read      checkpoint (the folder), config, index, input (files, headers), ranks,
//!           remote (S3, GCS, Azure, HTTP: headers and kept ranges only)
//! validate  header: bytes -> validated Header             (pure; json_scan points at errors)
//! decide    rule: tensor name -> prune or keep             (pure)
//! plan      plan: Header + rule -> PrunePlan               (pure: header bytes via header_json, copy ranges)
//! copy      space (free space, ulimit -f) -> run (jobs on threads) -> copy (clone, copy_file_range, sendfile, pread/pwrite; holes skipped)
//! commit    stage (temp files, journal, locks) -> journal -> commit (apply or undo)
//!           recover (dead runs' leftovers), side_file (names), sys (folder-relative calls)
//! the run   prune (prepare: no writes; execute), out_dir (where outputs go, what they may not replace)
//! around    inspect, verify, report, progress, interrupt (signals, Cancel), error,
//!           shown (names and values made terminal-safe)
//! ```
//!
//! The library's API: [`prune::prepare`], [`prune::execute`] (or
//! [`prune::prune`] for both), [`inspect::inspect`],
//! [`verify::verify_existing`], [`recover::recover_folder`], and the pure
//! [`header::parse_header`], [`rule::PruneRule`] and [`plan::plan_prune`].
//!
//! Only headers are ever held in memory; tensor bytes go from the input file
//! to the output file without passing through the heap (except through one
//! fixed 1 MiB buffer on filesystems where no in-kernel copy works).

pub mod base;
pub mod check;
pub mod commit;
pub mod copy;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod read;
pub mod report;

// The old flat paths, until the curated API replaces them.
pub use base::{error, interrupt, shown};
pub use check::{inspect, verify};
pub use commit::{recover, stage};
pub use error::{CommitFailure, Error, ErrorKind, Missing, RemoteProblem, Result};
pub use plan::rule;
pub use read::{config, header, input, ranks, remote};
