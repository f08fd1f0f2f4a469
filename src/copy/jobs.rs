//! The copy jobs: one per output file, run on up to `--jobs` threads,
//! largest first. Each job creates its temp file in the staging area,
//! writes the new header, sizes the file, and copies the kept ranges
//! (`copy`); the first failure stops the others at their next chunk.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::base::error::{Error, Result};
use crate::base::file::file_name;
use crate::base::interrupt::Cancel;
use crate::base::progress::Progress;
use crate::base::sys::{self, XattrLoss};
use crate::commit::stage::{StagedFile, Staging};
use crate::copy::ranges::{CopyMethods, CopyStats, FilePair, Hooks, RangeCopier};
use crate::plan::file::{FilePlan, GeneratedFile};
use crate::plan::{CopyRange, SHARE_ALIGNMENT};
use crate::read::input::{InputFile, Source};
#[cfg(feature = "remote")]
use crate::read::remote::FetchOptions;

/// What the jobs take from the run's options.
pub(crate) struct CopySettings {
    /// Files copied at once; 0 means one per core.
    pub jobs: usize,
    /// The block size copies clone at (`None`: [`SHARE_ALIGNMENT`]).
    pub align: Option<u64>,
    pub methods: CopyMethods,
    /// Ranged requests in flight of a remote checkpoint.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub fetch_jobs: usize,
    pub cancel: Cancel,
}

/// One output file to produce.
pub(crate) enum Job<'a> {
    Prune(&'a FilePlan),
    Copy(&'a InputFile),
}

impl Job<'_> {
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Job::Prune(f) => f.plan.kept_bytes(),
            Job::Copy(f) => f.len(),
        }
    }

    pub(crate) fn input(&self) -> &InputFile {
        match self {
            Job::Prune(f) => &f.input,
            Job::Copy(f) => f,
        }
    }
}

/// Runs the jobs on up to `options.jobs` threads. The first failure stops
/// the others at their next chunk; an interruption wins over other errors
/// so the exit status says what happened.
pub(crate) fn run_jobs(
    staging: &Staging,
    jobs: &[(Job, StagedFile)],
    options: &CopySettings,
    fsync: bool,
    in_place: bool,
    progress: &dyn Progress,
) -> Result<(CopyStats, Vec<String>)> {
    let threads = worker_count(options.jobs, jobs.len());
    let outcomes = Outcomes::default();
    let cancel = || -> Result<()> {
        options.cancel.check()?;
        if outcomes.failed.load(Ordering::Relaxed) {
            return Err(Error::Aborted);
        }
        Ok(())
    };
    let worker = || loop {
        let i = outcomes.next.fetch_add(1, Ordering::Relaxed);
        let Some((job, staged)) = jobs.get(i) else {
            return;
        };
        match run_job(
            staging, job, staged, options, fsync, in_place, progress, &cancel,
        ) {
            Ok((stats, lines)) => outcomes.record(stats, lines),
            Err(e) => {
                outcomes.fail(e);
                return;
            }
        }
    };
    sys::share_malloc_arena_under_memory_limit();
    run_workers(threads, &worker);
    options.cancel.check()?;
    outcomes.finish()
}

/// The number of worker threads: `jobs` (0: one per core), at least one,
/// no more than there are files, and no more than an address-space limit
/// leaves room for.
fn worker_count(jobs: usize, files: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, files.max(1))
    .min(threads_that_fit())
}

/// What the workers share: the index of the next job to take, and what
/// the jobs taken so far came to.
#[derive(Default)]
struct Outcomes {
    next: AtomicUsize,
    /// Set on the first failure: the others stop at their next chunk.
    failed: AtomicBool,
    first_error: Mutex<Option<Error>>,
    totals: Mutex<CopyStats>,
    warnings: Mutex<Vec<String>>,
}

impl Outcomes {
    /// Adds a finished job's stats and warning lines.
    fn record(&self, stats: CopyStats, lines: Vec<String>) {
        let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        t.shared += stats.shared;
        t.copied += stats.copied;
        t.holes += stats.holes;
        drop(t);
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(lines);
    }

    /// Stops the other jobs and keeps the error, unless one is kept
    /// already: a job's own error replaces the `Aborted` of a job it
    /// stopped.
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::Relaxed);
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*slot, None | Some(Error::Aborted)) {
            *slot = Some(e);
        }
    }

    /// The kept error, else the totals and every warning line.
    fn finish(self) -> Result<(CopyStats, Vec<String>)> {
        if let Some(e) = self
            .first_error
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
        {
            return Err(e);
        }
        Ok((
            self.totals.into_inner().unwrap_or_else(|p| p.into_inner()),
            self.warnings
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// Runs `worker` on up to `threads` threads and waits for them all.
fn run_workers(threads: usize, worker: &(dyn Fn() + Sync)) {
    std::thread::scope(|scope| {
        // A thread the system refuses (`ulimit -u`, `ulimit -v`) means fewer
        // workers, not a failed run; with none, the calling thread works.
        // (Otherwise it stays out of the copy: the commit's system calls
        // are then the only ones on it, which tests/trust.rs counts.)
        let mut spawned = 0;
        while spawned < threads {
            let started = std::thread::Builder::new()
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, worker);
            if started.is_err() {
                break;
            }
            spawned += 1;
        }
        if spawned == 0 {
            worker();
        }
    });
}

/// Stack size of a worker thread (std's default, named: the thread budget
/// under an address-space limit counts it).
const WORKER_STACK: usize = 2 << 20;

/// How many workers an address-space limit (`ulimit -v`) leaves room for:
/// their stacks may take half of what is left, so the heap keeps the other
/// half. Without a limit, any number.
fn threads_that_fit() -> usize {
    match sys::address_space_headroom() {
        Some(free) => usize::try_from(free / 2 / WORKER_STACK as u64)
            .unwrap_or(usize::MAX)
            .max(1),
        None => usize::MAX,
    }
}

/// Produces one job's file as the temp file of `staged`: the new header,
/// the kept ranges (a copy: the whole input), the replaced file's
/// attributes when in place, and a flush when `fsync`; errors name its
/// target.
#[allow(clippy::too_many_arguments)]
fn run_job(
    staging: &Staging,
    job: &Job,
    staged: &StagedFile,
    options: &CopySettings,
    fsync: bool,
    in_place: bool,
    progress: &dyn Progress,
    cancel: &(dyn Fn() -> Result<()> + Sync),
) -> Result<(CopyStats, Vec<String>)> {
    cancel()?;
    let input = job.input();
    let whole_file;
    let (header, output_len, ranges): (&[u8], u64, &[CopyRange]) = match job {
        Job::Prune(f) => (&f.plan.header_bytes, f.plan.output_len, &f.plan.copies),
        Job::Copy(f) => {
            whole_file = [CopyRange {
                src: 0,
                dst: 0,
                len: f.len(),
            }];
            (&[], f.len(), &whole_file)
        }
    };
    let bar = progress.file(&file_name(&staged.target), job.bytes());
    let out = create_output(staging, staged, input, in_place, header, output_len)?;
    let on_progress = |n: u64| bar.inc(n);
    let stats = copy_kept(
        input,
        &out,
        &staged.target,
        ranges,
        options,
        &on_progress,
        cancel,
    )?;
    input.check_unchanged()?;
    let warnings = match &input.source {
        Source::Local(local) if in_place => keep_attributes(&staged.target, &local.file, &out),
        _ => Vec::new(),
    };
    if fsync {
        out.sync_all()
            .map_err(|e| Error::io(&staged.target, "cannot flush to disk", e))?;
    }
    bar.done();
    Ok((stats, warnings))
}

/// Creates the temp file of `staged` (owned as the input is), writes
/// `header` at its start and sizes it to `output_len`.
fn create_output(
    staging: &Staging,
    staged: &StagedFile,
    input: &InputFile,
    in_place: bool,
    header: &[u8],
    output_len: u64,
) -> Result<File> {
    let out = staging.create(staged, input.ownership(), in_place)?;
    out.write_all_at(header, 0)
        .map_err(|e| Error::io(&staged.target, "cannot write", e))?;
    // Sized up front so that clones and copies land inside the file.
    out.set_len(output_len)
        .map_err(|e| Error::io(&staged.target, "cannot size", e))?;
    Ok(out)
}

/// Copies `ranges` of the input into `out` (at `out_path`): a local file
/// through the range copier, a remote object by ranged reads.
fn copy_kept(
    input: &InputFile,
    out: &File,
    out_path: &Path,
    ranges: &[CopyRange],
    options: &CopySettings,
    on_progress: &(dyn Fn(u64) + Sync),
    cancel: &(dyn Fn() -> Result<()> + Sync),
) -> Result<CopyStats> {
    match &input.source {
        Source::Local(local) => {
            let files = FilePair {
                src: &local.file,
                src_path: &input.path,
                dst: out,
                dst_path: out_path,
            };
            let hooks = Hooks {
                on_progress,
                cancel,
            };
            let block = options.align.unwrap_or(SHARE_ALIGNMENT);
            let mut copier = RangeCopier::new(files, block, options.methods, hooks);
            for &range in ranges {
                copier.copy(range)?;
            }
            Ok(copier.stats())
        }
        // Ranged reads, written where they belong with pwrite.
        #[cfg(feature = "remote")]
        Source::Remote(o) => {
            let fetch = FetchOptions {
                jobs: options.fetch_jobs,
                ..FetchOptions::default()
            };
            let copied =
                o.folder
                    .copy_ranges(&o.name, &o.info, ranges, out, &fetch, on_progress, cancel)?;
            Ok(CopyStats {
                copied,
                ..CopyStats::default()
            })
        }
    }
}

/// Writes the text of `generated` to the temp file of `staged`; errors name
/// its target.
pub(crate) fn write_new(
    staging: &Staging,
    staged: &StagedFile,
    generated: &GeneratedFile,
    fsync: bool,
    in_place: bool,
) -> Result<Vec<String>> {
    let path = &staged.target;
    let file = staging.create(staged, generated.source, in_place)?;
    file.write_all_at(generated.text.as_bytes(), 0)
        .map_err(|e| Error::io(path, "cannot write", e))?;
    // In place, the file replaced is the one this text was made from.
    let warnings = match (in_place, generated.source) {
        // Non-blocking: a FIFO planted at the name since is not waited on.
        (true, Some(_)) => match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(replaced) => keep_attributes(path, &replaced, &file),
            Err(e) => vec![format!(
                "{}: cannot read its extended attributes and ACL to keep them: {e}",
                path.display()
            )],
        },
        _ => Vec::new(),
    };
    if fsync {
        file.sync_all()
            .map_err(|e| Error::io(path, "cannot flush to disk", e))?;
    }
    Ok(warnings)
}

/// In place, gives the replacement `to` of `target` the extended attributes
/// and ACL of `from`, the file it replaces (after its owner and mode, and
/// after its data: a write may clear some). One warning line per attribute
/// that cannot be kept: a run is not failed for one.
fn keep_attributes(target: &Path, from: &File, to: &File) -> Vec<String> {
    sys::copy_xattrs(from, to)
        .into_iter()
        .map(|loss| match loss {
            XattrLoss::Listing(e) => format!(
                "{}: cannot list its extended attributes to keep them: {e}",
                target.display()
            ),
            XattrLoss::Attribute(name, e) => format!(
                "{}: cannot keep the extended attribute {name}: {e}",
                target.display()
            ),
        })
        .collect()
}
