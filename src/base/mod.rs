//! The shared vocabulary every stage uses: errors, a file's name, stamp
//! and owner, the byte range a copy moves, cancellation, the progress
//! observer, how names are shown, the names of the tool's own side files,
//! and the folder-relative system calls.

pub(crate) mod copy_range;
pub(crate) mod error;
pub(crate) mod file;
pub(crate) mod interrupt;
pub(crate) mod progress;
pub(crate) mod shown;
pub(crate) mod side_file;
pub(crate) mod sys;
