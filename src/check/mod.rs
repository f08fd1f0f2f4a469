//! Looking at checkpoints and outputs: inspect and verify (after the
//! recovery of dead runs' leftovers every run makes; no checkpoint file is
//! changed).

pub(crate) mod inspect;
pub(crate) mod verify;
