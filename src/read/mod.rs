//! Reading a checkpoint: the folder (local or remote), its config.json,
//! index and rank files, and each safetensors header, validated.

pub(crate) mod checkpoint;
pub(crate) mod config;
pub(crate) mod folder;
pub(crate) mod header;
pub(crate) mod index;
pub(crate) mod input;
pub(crate) mod json_scan;
pub(crate) mod ranks;
#[cfg(feature = "remote")]
pub(crate) mod remote;
#[cfg(feature = "remote")]
pub(crate) mod remote_folder;
