//! Progress bars on stderr: one bar per file in flight and a total with
//! throughput and ETA. Hidden when stderr is not a terminal or `--quiet` is
//! given, in which case every call is a cheap no-op.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
    total: ProgressBar,
    visible: bool,
}

impl Progress {
    /// Bars drawn on stderr when `wanted` and stderr is a terminal.
    pub fn stderr(wanted: bool) -> Progress {
        Progress::new(wanted && std::io::stderr().is_terminal())
    }

    /// Bars that draw nothing.
    pub fn hidden() -> Progress {
        Progress::new(false)
    }

    fn new(visible: bool) -> Progress {
        let target = if visible {
            // Redraws at most 10 times a second, whatever the copy rate.
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0));
        total.set_style(style(
            "{prefix:>24} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ));
        total.set_prefix("total");
        if visible {
            total.enable_steady_tick(Duration::from_millis(200));
        }
        Progress {
            multi,
            total,
            visible,
        }
    }

    pub fn is_visible(&self) -> bool {
        self.visible
    }

    /// Sets the number of bytes the whole run will move.
    pub fn set_total(&self, bytes: u64) {
        self.total.set_length(bytes);
    }

    /// A bar for one file of `len` bytes; finish it with [`FileBar::done`].
    pub fn file(&self, name: &str, len: u64) -> FileBar<'_> {
        let bar = self.multi.insert_before(&self.total, ProgressBar::new(len));
        bar.set_style(style(
            "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        ));
        bar.set_prefix(name.to_string());
        FileBar {
            bar,
            total: &self.total,
        }
    }

    /// Removes the bars, leaving the terminal clean for the summary.
    pub fn finish(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else {
            // Not eprintln!, which panics when stderr is a closed pipe.
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Progress of one file; counts into the total as well.
pub struct FileBar<'a> {
    bar: ProgressBar,
    total: &'a ProgressBar,
}

impl FileBar<'_> {
    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
        self.total.inc(bytes);
    }

    pub fn done(self) {
        self.bar.finish_and_clear();
    }
}
