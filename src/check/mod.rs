//! Looking at checkpoints without changing them: inspect and verify.

pub mod inspect;
pub mod verify;
