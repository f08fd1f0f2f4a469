//! The integration tests: one binary, one module per area. Checkpoints are
//! generated in temp dirs (see `trtllm_prune::fixture`); outputs are checked
//! with the official `safetensors` crate.

mod util;

mod cli;
mod commit_faults;
mod commit_recovery;
mod differential;
mod faults;
mod features;
mod first_hour;
mod header_memory;
mod header_rules;
mod hollow;
mod hostile_names;
mod limits;
mod locks_and_paths;
mod nothing_lost;
mod planner;
mod prune_output;
mod remote;
mod sharing;
mod trust;
mod world_fixes;
mod world_moves;
