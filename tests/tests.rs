//! The integration tests: one binary, one module per area. Checkpoints are
//! generated in temp dirs (see `trtllm_prune::fixture`); outputs are checked
//! with the official `safetensors` crate.

mod util;

mod cli;
mod commit_faults;
mod commit_recovery;
mod differential;
mod error_wording;
mod faults;
mod features;
mod first_hour;
mod header_memory;
mod header_rules;
mod hollow;
mod hostile_names;
#[cfg(feature = "remote")]
mod hub;
mod library;
mod limits;
mod locks_and_paths;
#[cfg(not(feature = "remote"))]
mod no_remote;
mod nothing_lost;
mod planner;
mod prune_output;
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "remote")]
mod remote_like_local;
#[cfg(feature = "remote")]
mod remote_stores;
mod sharing;
#[cfg(feature = "remote")]
mod stores;
mod trust;
mod world_fixes;
mod world_moves;
