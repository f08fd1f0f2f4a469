//! Committing outputs: where they go, staging them beside their targets,
//! the journal, applying or undoing it, and recovering what dead runs left.

pub(crate) mod apply;
pub(crate) mod journal;
pub(crate) mod out_dir;
pub(crate) mod recover;
pub(crate) mod stage;
