//! What a run tells whoever watches it: sizes first, then bytes as they
//! move. The library prints nothing; a front-end implements [`Progress`]
//! (the binary draws bars on stderr with it), and [`NoProgress`] shows
//! nothing. Every method has a no-op default.

use std::ffi::OsStr;

/// Watches a run ([`crate::execute`], [`crate::verify_existing`]). Called
/// from the copying threads, so it must be `Sync`.
pub trait Progress: Sync {
    /// The bytes the whole run will move (and check, with `--verify`).
    fn set_total(&self, _bytes: u64) {}

    /// The number of files the run writes.
    fn set_files(&self, _count: usize) {}

    /// A file of `len` bytes begins to be written. `name` is the user's (a
    /// file name need not be UTF-8 and may hold control characters): escape
    /// it before showing it.
    fn file(&self, _name: &OsStr, _len: u64) -> Box<dyn FileProgress + '_> {
        Box::new(NoProgress)
    }

    /// A file of `len` bytes begins to be checked (`verify`, `--verify`):
    /// as [`Progress::file`], but not one of the files written.
    fn check(&self, _name: &OsStr, _len: u64) -> Box<dyn FileProgress + '_> {
        Box::new(NoProgress)
    }
}

/// One file's progress, from [`Progress::file`] or [`Progress::check`].
pub trait FileProgress: Sync {
    /// `bytes` more of the file are done.
    fn inc(&self, _bytes: u64) {}

    /// The file is done.
    fn done(self: Box<Self>) {}
}

/// Progress that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

impl FileProgress for NoProgress {}
