//! Committing outputs: where they go, staging them beside their targets,
//! the journal, applying or undoing it, and recovering what dead runs left.

pub mod apply;
pub mod journal;
pub mod out_dir;
pub mod recover;
pub mod stage;
