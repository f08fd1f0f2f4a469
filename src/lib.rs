//! trtllm-prune: a streaming, zero-copy pruner for TensorRT-LLM safetensors
//! checkpoints.
//!
//! Data flows one way, one module per step:
//!
//! ```text
//! header   bytes -> validated Header             (pure)
//! rule     tensor name -> prune or keep           (pure)
//! plan     Header + rule -> PrunePlan            (pure: new header bytes, copy ranges)
//! copy     CopyRange -> bytes moved in the kernel (clone, copy_file_range, sendfile, pread/pwrite)
//! stage    temp files, the run's journal and lock -> committed all at once, or removed
//! commit   a journal -> applied forward, or undone (also for a dead run's, by recover)
//! prune    the run: checkpoint -> prepare (no writes) -> execute
//! ```
//!
//! Only headers are ever held in memory; tensor bytes go from the input file
//! to the output file without passing through the heap (except through one
//! fixed 1 MiB buffer on filesystems where no in-kernel copy works).

pub mod checkpoint;
mod commit;
pub mod copy;
pub mod error;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod header;
pub mod interrupt;
mod journal;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod recover;
pub mod remote;
pub mod report;
pub mod rule;
mod side_file;
pub mod stage;
mod sys;
pub mod verify;

pub use error::{Error, Result};
