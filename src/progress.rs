//! Progress bars on stderr: one bar per file in flight and a total with
//! throughput and ETA. Hidden when stderr is not a terminal or `--quiet` is
//! given, in which case every call is a cheap no-op.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::shown::shown_os;

pub struct Progress {
    multi: MultiProgress,
    /// The total bar, made once the run knows its size: a bar of length 0
    /// would draw `0 B/0 B` for a frame.
    total: OnceLock<ProgressBar>,
    visible: bool,
}

/// Every line fits 80 columns: names are cut to 20 characters and the bars
/// take what the terminal's width leaves (`wide_bar`).
const FILE_TEMPLATE: &str = "{prefix:>20!} [{wide_bar}] {binary_bytes:>10}/{binary_total_bytes:10}";
const TOTAL_TEMPLATE: &str =
    "{prefix:>20!} [{wide_bar}] {binary_bytes:>10}/{binary_total_bytes:10} {binary_bytes_per_sec:>12} ETA {eta:>3}";

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
        Progress {
            multi: MultiProgress::with_draw_target(target),
            total: OnceLock::new(),
            visible,
        }
    }

    /// Sets the number of bytes the whole run will move, and shows the total.
    pub fn set_total(&self, bytes: u64) {
        let total = self.total.get_or_init(|| {
            let bar = self.multi.add(ProgressBar::new(bytes));
            bar.set_style(style(TOTAL_TEMPLATE));
            bar.set_prefix("total");
            // The ticker is a thread indicatif starts with a panic if it
            // cannot (`ulimit -u`): without one, the bar moves with the copy.
            if self.visible && crate::sys::can_start_threads(1) {
                bar.enable_steady_tick(Duration::from_millis(200));
            }
            bar
        });
        total.set_length(bytes);
    }

    /// A bar for one file of `len` bytes, labelled with its `name` (escaped:
    /// a file name is the user's, see `crate::shown`); finish it with
    /// [`FileBar::done`].
    pub fn file(&self, name: &OsStr, len: u64) -> FileBar<'_> {
        let bar = match self.total.get() {
            Some(total) => self.multi.insert_before(total, ProgressBar::new(len)),
            None => self.multi.add(ProgressBar::new(len)),
        };
        bar.set_style(style(FILE_TEMPLATE));
        bar.set_prefix(shown_os(name).into_owned());
        FileBar {
            bar,
            total: self.total.get(),
        }
    }

    /// Removes the bars, leaving the terminal clean for the summary.
    pub fn finish(&self) {
        if let Some(total) = self.total.get() {
            total.finish_and_clear();
        }
        let _ = self.multi.clear();
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
    total: Option<&'a ProgressBar>,
}

impl FileBar<'_> {
    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
        if let Some(total) = self.total {
            total.inc(bytes);
        }
    }

    pub fn done(self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal `width` columns wide that keeps what is written to it.
    #[derive(Debug, Clone)]
    struct Screen {
        width: u16,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            let mut lines = self.lines.lock().unwrap();
            lines.extend(s.lines().map(String::from));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_fits_an_80_column_terminal() {
        for width in [80u16, 100, 200] {
            let screen = Screen {
                width,
                lines: Arc::default(),
            };
            for (template, prefix) in [
                (FILE_TEMPLATE, "model-00001-of-00163.safetensors"),
                (TOTAL_TEMPLATE, "total"),
            ] {
                let bar = ProgressBar::with_draw_target(
                    Some(999 << 30),
                    ProgressDrawTarget::term_like(Box::new(screen.clone())),
                );
                bar.set_style(style(template));
                bar.set_prefix(prefix);
                bar.set_position(512 << 30);
                bar.tick();
            }
            let lines = screen.lines.lock().unwrap();
            assert!(lines.len() >= 2, "nothing drawn at {width}");
            for line in lines.iter() {
                let columns = console::measure_text_width(line);
                assert!(columns <= width as usize, "{columns} > {width}: {line}");
                if width > 80 {
                    // The bars grow with the terminal.
                    assert!(columns > 80, "{line}");
                }
            }
        }
    }
}
