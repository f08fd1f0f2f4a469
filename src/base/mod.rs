//! The shared vocabulary every stage uses: errors, how names are shown,
//! cancellation, the names of the tool's own side files, and the
//! folder-relative system calls.

pub mod error;
pub mod file;
pub mod interrupt;
pub mod shown;
pub mod side_file;
pub mod sys;
