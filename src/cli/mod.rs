//! The terminal front-end: arguments (clap), the signal handlers, progress
//! bars (indicatif) and the tables and JSON documents a run prints. The
//! library below prints nothing.

pub mod args;
pub mod progress;
pub mod report;
pub mod signals;
