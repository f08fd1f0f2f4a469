//! Reading a checkpoint: the folder (local or remote), its config.json,
//! index and rank files, and each safetensors header, validated.

pub mod checkpoint;
pub mod config;
pub mod folder;
pub mod header;
pub mod index;
pub mod input;
pub(crate) mod json_scan;
pub mod ranks;
#[cfg(feature = "remote")]
pub mod remote;
