//! The terminal front-end: arguments (clap), the signal handlers, progress
//! bars (indicatif) and the tables and JSON documents a run prints. The
//! library below prints nothing.

pub(crate) mod args;
pub(crate) mod man;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod signals;
