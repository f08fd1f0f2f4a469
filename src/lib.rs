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
//! stage    temp files -> renamed into place all at once, or removed
//! prune    the run: checkpoint -> prepare (no writes) -> execute
//! ```
//!
//! Only headers are ever held in memory; tensor bytes go from the input file
//! to the output file without passing through the heap (except through one
//! fixed 1 MiB buffer on filesystems where no in-kernel copy works).

pub mod checkpoint;
pub mod copy;
pub mod error;
pub mod fixture;
pub mod header;
pub mod interrupt;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod report;
pub mod rule;
pub mod stage;
pub mod verify;

pub use error::{Error, Result};
