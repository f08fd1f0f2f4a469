//! Stopping a run: [`Cancel`], which copy loops, checksums and lock waits
//! poll between steps, so a stopped run unwinds through the normal error
//! path and removes its temp files. A signal handler (the binary installs
//! one for SIGINT, SIGTERM and SIGHUP) reports a signal with
//! [`Cancel::note_signal`], which every [`Cancel::on_signals`] then sees.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::base::error::{Error, Result};

static PENDING: AtomicI32 = AtomicI32::new(0);

/// A run's stop request, handed to everything that loops or waits (copy
/// loops, checksums, lock waits) and checked between steps. `on_signals`
/// stops on a signal ([`Cancel::note_signal`]); `new` makes one a
/// library caller stops itself, from another thread, with [`Cancel::stop`].
/// It also carries what to tell the user when a wait begins
/// ([`Cancel::on_wait`]): the library itself prints nothing.
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Option<std::sync::Arc<AtomicI32>>,
    notice: Option<std::sync::Arc<WaitNotice>>,
}

/// Called with the folder a run is about to wait for (its lock is held by
/// someone else).
type WaitNotice = dyn Fn(&std::path::Path) + Send + Sync;

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("flag", &self.flag)
            .field("notice", &self.notice.is_some())
            .finish()
    }
}

impl Cancel {
    /// Stops when a handled signal arrives.
    pub fn on_signals() -> Cancel {
        Cancel::default()
    }

    /// Stops when [`Cancel::stop`] is called on it or a clone (or when a
    /// handled signal arrives).
    pub fn new() -> Cancel {
        Cancel {
            flag: Some(std::sync::Arc::new(AtomicI32::new(0))),
            notice: None,
        }
    }

    /// The same, calling `notice` with a folder whenever the run is about
    /// to wait for that folder's lock (another run is committing there, or
    /// another process holds it). Once per wait, before it begins.
    pub fn on_wait(self, notice: impl Fn(&std::path::Path) + Send + Sync + 'static) -> Cancel {
        Cancel {
            notice: Some(std::sync::Arc::new(notice)),
            ..self
        }
    }

    /// Tells the user (through [`Cancel::on_wait`]'s hook) that the run
    /// waits for the lock of `folder`.
    pub(crate) fn waiting_for(&self, folder: &std::path::Path) {
        if let Some(notice) = &self.notice {
            notice(folder);
        }
    }

    /// Asks the run to stop; it ends with [`Error::Interrupted`] (signal 0
    /// reads as SIGINT's status).
    pub fn stop(&self) {
        if let Some(flag) = &self.flag {
            flag.store(libc::SIGINT, Ordering::SeqCst);
        }
    }

    /// Records that `signal` arrived: every `Cancel` stops from now on,
    /// with that signal's status. Only an atomic store: safe to call from
    /// a signal handler.
    pub fn note_signal(signal: i32) {
        PENDING.store(signal, Ordering::SeqCst);
    }

    /// An error when the run should stop.
    pub fn check(&self) -> Result<()> {
        let own = self.flag.as_ref().map_or(0, |f| f.load(Ordering::SeqCst));
        match (own, pending()) {
            (0, None) => Ok(()),
            (_, Some(signal)) => Err(Error::Interrupted { signal }),
            (signal, None) => Err(Error::Interrupted { signal }),
        }
    }

    /// [`Cancel::check`] for code that deals in `io::Error`: a stop becomes
    /// `ErrorKind::Interrupted`, which the caller turns back into
    /// [`Cancel::check`]'s error.
    pub fn check_io(&self) -> std::io::Result<()> {
        self.check()
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::Interrupted))
    }
}

/// The signal received, if any.
fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}
