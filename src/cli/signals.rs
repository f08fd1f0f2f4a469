//! SIGINT, SIGTERM and SIGHUP (a closed terminal or SSH session) become a
//! flag that the library's copy loops poll between chunks
//! ([`Cancel::note_signal`]), so an interrupted run unwinds through the
//! normal error path and removes its temp files. The handler only stores
//! the signal number: nothing else is async-signal-safe. A signal the
//! parent set to be ignored (`nohup`, background jobs) stays ignored.
//!
//! SIGXFSZ (a write past `ulimit -f`) is ignored: the write then fails with
//! `EFBIG`, which is an error like any other (one line naming the file,
//! nothing left behind), instead of a silent death with temp files left.

use trtllm_prune::Cancel;

extern "C" fn on_signal(signal: libc::c_int) {
    Cancel::note_signal(signal);
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP, and ignores
/// SIGXFSZ. Without `SA_RESTART`, a blocking system call returns `EINTR`,
/// and the caller sees the flag.
pub fn install() {
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
