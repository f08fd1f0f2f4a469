//! Progress bars on stderr: one bar per file in flight and a total with
//! throughput and ETA, drawn for the library's [`Progress`] calls. Hidden
//! when stderr is not a terminal or `--quiet` is given, in which case every
//! call is a cheap no-op.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use trtllm_prune::{shown_os, FileProgress, Progress};

/// The bars of one run.
pub struct Bars {
    multi: MultiProgress,
    /// The total bar, made once the run knows its size: a bar of length 0
    /// would draw `0 B/0 B` for a frame.
    total: OnceLock<ProgressBar>,
    /// The line under the total that counts files: done, in flight, queued.
    files: OnceLock<FileCount>,
    visible: bool,
}

/// The files of a run and where they are.
struct FileCount {
    line: ProgressBar,
    count: usize,
    started: AtomicUsize,
    done: AtomicUsize,
}

impl FileCount {
    /// `2 of 4 files done, 1 in flight, 1 queued` (cut to the width).
    fn show(&self) {
        let started = self.started.load(Ordering::Relaxed);
        let done = self.done.load(Ordering::Relaxed);
        let mut text = format!("{done} of {} files done", self.count);
        let flying = started.saturating_sub(done);
        if flying > 0 {
            text.push_str(&format!(", {flying} in flight"));
        }
        let queued = self.count.saturating_sub(started);
        if queued > 0 {
            text.push_str(&format!(", {queued} queued"));
        }
        self.line.set_message(text);
    }
}

/// The lines for a terminal of 80 columns or more: names are cut to 20
/// characters and the bars take what the width leaves (`wide_bar`). A size
/// is at most 11 columns (`1023.99 MiB`), a rate 13, the ETA 10 ([`eta`]).
const FILE_WIDE: &str = "{prefix:>20!} [{wide_bar}] {binary_bytes:>11}/{binary_total_bytes:11}";
const TOTAL_WIDE: &str = "{prefix:>20!} [{wide_bar}] {binary_bytes:>11}/{binary_total_bytes:11} {binary_bytes_per_sec:>13}{eta}";
/// From 60 columns: shorter names, the same fields (at most 39 and 56
/// columns without the bar).
const FILE_MEDIUM: &str = "{prefix:>12!} [{wide_bar}] {binary_bytes:>11}/{binary_total_bytes:11}";
const TOTAL_MEDIUM: &str = "{prefix:>5!} [{wide_bar}] {binary_bytes:>11}/{binary_total_bytes:11} {binary_bytes_per_sec:>13}{eta}";
/// From 40 columns: no bar, no rate (at most 39 columns each).
const FILE_NARROW: &str = "{prefix:>15!} {binary_bytes:>11}/{binary_total_bytes:11}";
const TOTAL_NARROW: &str = "{prefix:>5!} {binary_bytes:>11}/{binary_total_bytes:11}{eta}";

/// The file and total templates whose lines fit `width` columns (from 40).
fn templates(width: u16) -> (&'static str, &'static str) {
    match width {
        80.. => (FILE_WIDE, TOTAL_WIDE),
        60..=79 => (FILE_MEDIUM, TOTAL_MEDIUM),
        _ => (FILE_NARROW, TOTAL_NARROW),
    }
}

/// The width of stderr's terminal now (80 when it has none).
fn terminal_width() -> u16 {
    console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, columns)| columns)
}

/// No estimate before this much of the run has passed: the first rates
/// are those of cloned blocks and cache hits, and an ETA of 61 minutes for
/// a 2-second job is worse than none.
const ETA_AFTER: Duration = Duration::from_secs(1);
const ETA_AFTER_FRACTION: f32 = 0.01;

/// The `{eta}` key: ` ETA 4:05` (10 columns, blank until the rate means
/// something).
fn eta(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let known = state.elapsed() >= ETA_AFTER && state.fraction() >= ETA_AFTER_FRACTION;
    let text = match known {
        true => format!(" ETA {}", eta_text(state.eta())),
        false => String::new(),
    };
    let _ = write!(w, "{text:>10}");
}

/// A duration in at most 5 columns: `0:07`, `59:59`, `2h05`, `>99h`.
fn eta_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..3600 => format!("{}:{:02}", secs / 60, secs % 60),
        3600..360_000 => format!("{}h{:02}", secs / 3600, secs / 60 % 60),
        _ => ">99h".to_string(),
    }
}

impl Bars {
    /// Bars drawn on stderr when `wanted` and stderr is a terminal.
    pub fn stderr(wanted: bool) -> Bars {
        Bars::new(wanted && std::io::stderr().is_terminal())
    }

    fn new(visible: bool) -> Bars {
        let target = if visible {
            // Redraws at most 10 times a second, whatever the copy rate.
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            total: OnceLock::new(),
            files: OnceLock::new(),
            visible,
        }
    }

    /// A file's bar, above the total.
    fn bar(&self, name: &OsStr, len: u64) -> FileBar<'_> {
        let bar = match self.total.get() {
            Some(total) => self.multi.insert_before(total, ProgressBar::new(len)),
            None => self.multi.add(ProgressBar::new(len)),
        };
        bar.set_style(style(templates(terminal_width()).0));
        bar.set_prefix(shown_os(name).into_owned());
        FileBar {
            bar,
            total: self.total.get(),
            files: self.files.get(),
        }
    }

    /// Removes the bars, leaving the terminal clean for the summary.
    pub fn finish(&self) {
        if let Some(total) = self.total.get() {
            total.finish_and_clear();
        }
        if let Some(files) = self.files.get() {
            files.line.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

impl Progress for Bars {
    /// Sets the number of bytes the whole run will move, and shows the total.
    fn set_total(&self, bytes: u64) {
        let total = self.total.get_or_init(|| {
            let bar = self.multi.add(ProgressBar::new(bytes));
            bar.set_style(style(templates(terminal_width()).1));
            bar.set_prefix("total");
            // No ticker on the total: indicatif then ignores `tick`, and
            // the total would lag the files by a tick (see `FileBar::inc`).
            bar
        });
        total.set_length(bytes);
    }

    /// Sets the number of files the run writes, and shows how many are
    /// done, in flight and queued on a line under the total.
    fn set_files(&self, count: usize) {
        let files = self.files.get_or_init(|| {
            let line = self.multi.add(ProgressBar::new(0));
            line.set_style(
                ProgressStyle::with_template("{wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            // Redraws every line while no byte moves (a slow disk, a lock).
            // The ticker is a thread indicatif starts with a panic if it
            // cannot (`ulimit -u`): without one, the lines move with the copy.
            if self.visible && can_start_a_thread() {
                line.enable_steady_tick(Duration::from_millis(200));
            }
            FileCount {
                line,
                count,
                started: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
            }
        });
        files.show();
    }

    /// A bar for one file of `len` bytes, labelled with its `name` (escaped:
    /// a file name is the user's, see `trtllm_prune::shown_os`); finish it with
    /// [`FileProgress::done`].
    fn file(&self, name: &OsStr, len: u64) -> Box<dyn FileProgress + '_> {
        if let Some(files) = self.files.get() {
            files.started.fetch_add(1, Ordering::Relaxed);
            files.show();
        }
        Box::new(self.bar(name, len))
    }

    /// A bar for checking one file (`verify`, `--verify`): as [`Progress::file`],
    /// but not counted among the files written.
    fn check(&self, name: &OsStr, len: u64) -> Box<dyn FileProgress + '_> {
        Box::new(FileBar {
            files: None,
            ..self.bar(name, len)
        })
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("eta", eta)
        .progress_chars("=> ")
}

/// Progress of one file; counts into the total as well.
pub struct FileBar<'a> {
    bar: ProgressBar,
    total: Option<&'a ProgressBar>,
    files: Option<&'a FileCount>,
}

impl FileProgress for FileBar<'_> {
    fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
        if let Some(total) = self.total {
            total.inc(bytes);
            // `inc` redraws a bar only every so many calls: the total is
            // brought up to date every time (`tick`), so it never shows
            // less than the files above it.
            total.tick();
        }
    }

    fn done(self: Box<Self>) {
        self.bar.finish_and_clear();
        if let Some(files) = self.files {
            files.done.fetch_add(1, Ordering::Relaxed);
            files.show();
        }
    }
}

/// Whether a thread can be started now (indicatif's ticker panics where
/// the system refuses one: `ulimit -u`).
fn can_start_a_thread() -> bool {
    std::thread::Builder::new()
        .spawn(|| {})
        .is_ok_and(|t| t.join().is_ok())
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
    fn every_line_fits_any_terminal_from_40_columns() {
        for width in [40u16, 45, 50, 59, 60, 70, 79, 80, 100, 200] {
            let screen = Screen {
                width,
                lines: Arc::default(),
            };
            let (file, total) = templates(width);
            for (template, prefix) in [(file, "model-00001-of-00163.safetensors"), (total, "total")]
            {
                let bar = ProgressBar::with_draw_target(
                    Some(1023 << 20 | 1000 << 10),
                    ProgressDrawTarget::term_like(Box::new(screen.clone())),
                );
                bar.set_style(style(template));
                bar.set_prefix(prefix);
                bar.set_position(1023 << 20 | 1000 << 10);
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

    #[test]
    fn no_eta_until_the_rate_means_something() {
        let screen = Screen {
            width: 100,
            lines: Arc::default(),
        };
        let bar = ProgressBar::with_draw_target(
            Some(100 << 30),
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(style(TOTAL_WIDE));
        bar.set_position(50 << 30);
        bar.tick();
        let lines = screen.lines.lock().unwrap();
        assert!(!lines.is_empty());
        assert!(lines.iter().all(|l| !l.contains("ETA")), "{lines:?}");
    }

    #[test]
    fn an_eta_takes_at_most_5_columns() {
        for (secs, text) in [
            (7, "0:07"),
            (3599, "59:59"),
            (3600 * 2 + 300, "2h05"),
            (360_000, ">99h"),
        ] {
            assert_eq!(eta_text(Duration::from_secs(secs)), text);
        }
    }
}
