//! SIGINT, SIGTERM and SIGHUP (a closed terminal or SSH session) become a
//! flag that copy loops poll between chunks, so an interrupted run unwinds
//! through the normal error path and removes its temp files. The handler
//! only stores the signal number: nothing else is async-signal-safe. A
//! signal the parent set to be ignored (`nohup`, background jobs) stays
//! ignored.
//!
//! SIGXFSZ (a write past `ulimit -f`) is ignored: the write then fails with
//! `EFBIG`, which is an error like any other (one line naming the file,
//! nothing left behind), instead of a silent death with temp files left.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::base::error::{Error, Result};

static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    PENDING.store(signal, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP, and ignores
/// SIGXFSZ. Without `SA_RESTART`, a blocking system call returns `EINTR`,
/// and the caller sees the flag.
pub fn install() {
    // rustix offers signal dispositions only in its own unsafe runtime API.
    // SAFETY: setting a signal's disposition to "ignore" has no handler to
    // be unsafe in.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `sigaction` is zeroed then filled with a handler that only
        // performs an atomic store, which is async-signal-safe; the query
        // only writes into a live local.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = 0;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// A run's stop request, handed to everything that loops or waits (copy
/// loops, checksums, lock waits) and checked between steps. `on_signals`
/// stops on SIGINT, SIGTERM or SIGHUP (after [`install`]); `new` makes one a
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
