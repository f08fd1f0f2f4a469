//! SIGINT, SIGTERM and SIGHUP (a closed terminal or SSH session) become a
//! flag that copy loops poll between chunks, so an interrupted run unwinds
//! through the normal error path and removes its temp files. The handler
//! only stores the signal number: nothing else is async-signal-safe. A
//! signal the parent set to be ignored (`nohup`, background jobs) stays
//! ignored.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};

static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    PENDING.store(signal, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP. Without
/// `SA_RESTART`, a blocking system call returns `EINTR`, and the caller sees
/// the flag.
pub fn install() {
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

/// The signal received, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// An error when a signal has arrived.
pub fn check() -> Result<()> {
    match pending() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}

/// [`check`] for code that deals in `io::Error`: an interruption becomes
/// `ErrorKind::Interrupted`, which the caller turns back into [`check`]'s
/// error.
pub fn check_io() -> std::io::Result<()> {
    match pending() {
        Some(_) => Err(std::io::Error::from(std::io::ErrorKind::Interrupted)),
        None => Ok(()),
    }
}
