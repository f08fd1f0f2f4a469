//! Looking at checkpoints without changing them: inspect and verify.

pub(crate) mod inspect;
pub(crate) mod verify;
