//! The run: read and validate everything, plan every rank, then copy into
//! staged temp files (ranks in parallel) and commit them all at once.
//!
//! ```text
//! Checkpoint::open ──> plan_prune per rank ──> Prepared        (no writes)
//!        Prepared ──> Staging + worker threads ──> commit      (all or nothing)
//! ```

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::checkpoint::{self, Checkpoint, FileStamp, InputFile, CONFIG_FILE};
use crate::copy::{CopyMethods, CopyStats, RangeCopier};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::plan::{plan_prune, CopyRange, PrunePlan, SHARE_ALIGNMENT};
use crate::progress::Progress;
use crate::rule::PruneRule;
use crate::stage::{StagedFile, Staging};

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub checkpoint_dir: PathBuf,
    /// `None`: the sibling folder `<checkpoint_dir>.pruned`.
    pub out_dir: Option<PathBuf>,
    pub rule: PruneRule,
    /// Files copied at once; 0 means one per core.
    pub jobs: usize,
    /// Block size the planner keeps large ranges congruent to (0: none).
    pub align: u64,
    pub methods: CopyMethods,
    /// `fsync` every output before it is renamed into place.
    pub fsync: bool,
}

impl Options {
    pub fn new(checkpoint_dir: impl Into<PathBuf>) -> Options {
        Options {
            checkpoint_dir: checkpoint_dir.into(),
            out_dir: None,
            rule: PruneRule::default(),
            jobs: 0,
            align: SHARE_ALIGNMENT,
            methods: CopyMethods::default(),
            fsync: false,
        }
    }
}

/// One rank, validated and planned.
#[derive(Debug)]
pub struct RankPlan {
    pub rank: u64,
    pub input: InputFile,
    pub plan: PrunePlan,
}

impl RankPlan {
    pub fn file_name(&self) -> String {
        checkpoint::rank_file_name(self.rank)
    }
}

/// A run that has been validated and planned, before anything is written.
#[derive(Debug)]
pub struct Prepared {
    pub checkpoint_dir: PathBuf,
    pub out_dir: PathBuf,
    pub ranks: Vec<RankPlan>,
    pub config_text: String,
    pub extra_files: Vec<InputFile>,
    pub warnings: Vec<String>,
}

impl Prepared {
    /// Bytes the run will move: kept tensor data plus the other files.
    pub fn bytes_to_move(&self) -> u64 {
        let ranks: u64 = self.ranks.iter().map(|r| r.plan.kept_bytes()).sum();
        let extra: u64 = self.extra_files.iter().map(|f| f.stamp.len).sum();
        ranks + extra
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub out_dir: PathBuf,
    pub ranks: usize,
    pub tensors_pruned: usize,
    pub tensors_kept: usize,
    /// Total size of the input rank files.
    pub bytes_in: u64,
    /// Total size of the output rank files.
    pub bytes_out: u64,
    /// Bytes the outputs share with the inputs (cloned blocks).
    pub bytes_shared: u64,
    /// Other files copied beside the ranks.
    pub extra_files: usize,
}

impl Summary {
    fn of(prepared: &Prepared, stats: CopyStats) -> Summary {
        let plans = prepared.ranks.iter().map(|r| &r.plan);
        Summary {
            out_dir: prepared.out_dir.clone(),
            ranks: prepared.ranks.len(),
            tensors_pruned: plans.clone().map(PrunePlan::pruned_count).sum(),
            tensors_kept: plans.clone().map(PrunePlan::kept_count).sum(),
            bytes_in: plans.clone().map(|p| p.input_len).sum(),
            bytes_out: plans.map(|p| p.output_len).sum(),
            bytes_shared: stats.shared,
            extra_files: prepared.extra_files.len(),
        }
    }
}

/// Prunes a checkpoint: [`prepare`] then [`execute`].
pub fn prune(options: &Options, progress: &Progress) -> Result<Summary> {
    let prepared = prepare(options)?;
    execute(&prepared, options, progress)
}

/// Reads, validates and plans everything. Writes nothing.
pub fn prepare(options: &Options) -> Result<Prepared> {
    let checkpoint_dir = canonical_checkpoint_dir(&options.checkpoint_dir)?;
    let out_dir = match &options.out_dir {
        Some(dir) => resolve_out_dir(dir)?,
        None => match pruned_sibling(&options.checkpoint_dir) {
            Some(dir) => resolve_out_dir(&dir)?,
            None => default_out_dir(&checkpoint_dir)?,
        },
    };
    if out_dir == checkpoint_dir {
        return Err(Error::refused(
            &out_dir,
            "the output folder is the checkpoint folder; refusing to overwrite the input",
        ));
    }
    if fs::metadata(&out_dir).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::refused(
            &out_dir,
            "the output path exists and is not a folder",
        ));
    }
    let checkpoint = Checkpoint::open(&checkpoint_dir)?;
    interrupt::check()?;
    let Checkpoint {
        config,
        ranks,
        extra_files,
        warnings,
        ..
    } = checkpoint;
    let ranks: Vec<RankPlan> = ranks
        .into_iter()
        .map(|r| RankPlan {
            rank: r.rank,
            plan: plan_prune(&r.header, &options.rule, options.align),
            input: r.input,
        })
        .collect();
    let prepared = Prepared {
        checkpoint_dir,
        out_dir,
        ranks,
        config_text: config.pruned_text(),
        extra_files,
        warnings,
    };
    refuse_overwriting_inputs(&prepared, &config.path)?;
    Ok(prepared)
}

/// Writes every output to a temp file, then renames them all into place.
pub fn execute(prepared: &Prepared, options: &Options, progress: &Progress) -> Result<Summary> {
    let mut staging = Staging::new(&prepared.out_dir)?;
    let config_out = staging.add(CONFIG_FILE);
    let mut jobs: Vec<(Job, StagedFile)> = Vec::new();
    for rank in &prepared.ranks {
        jobs.push((Job::Rank(rank), staging.add(rank.file_name())));
    }
    for extra in &prepared.extra_files {
        let name = extra.path.file_name().unwrap_or_default();
        jobs.push((Job::Copy(extra), staging.add(name)));
    }
    // Largest first, so parallel workers finish together.
    jobs.sort_by_key(|(job, _)| std::cmp::Reverse(job.bytes()));

    write_new(&config_out, prepared.config_text.as_bytes(), options.fsync)?;
    progress.set_total(prepared.bytes_to_move());
    let stats = run_jobs(&jobs, options, progress)?;
    interrupt::check()?;
    staging.commit()?;
    if options.fsync {
        sync_dir(&prepared.out_dir)?;
    }
    Ok(Summary::of(prepared, stats))
}

/// One output file to produce.
enum Job<'a> {
    Rank(&'a RankPlan),
    Copy(&'a InputFile),
}

impl Job<'_> {
    fn bytes(&self) -> u64 {
        match self {
            Job::Rank(r) => r.plan.kept_bytes(),
            Job::Copy(f) => f.stamp.len,
        }
    }

    fn input(&self) -> &InputFile {
        match self {
            Job::Rank(r) => &r.input,
            Job::Copy(f) => f,
        }
    }
}

/// Runs the jobs on up to `options.jobs` threads. The first failure stops
/// the others at their next chunk; an interruption wins over other errors
/// so the exit status says what happened.
fn run_jobs(
    jobs: &[(Job, StagedFile)],
    options: &Options,
    progress: &Progress,
) -> Result<CopyStats> {
    let threads = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let totals: Mutex<CopyStats> = Mutex::new(CopyStats::default());
    let cancel = || -> Result<()> {
        interrupt::check()?;
        if failed.load(Ordering::Relaxed) {
            return Err(Error::Aborted);
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((job, staged)) = jobs.get(i) else {
                    return;
                };
                match run_job(job, staged, options, progress, &cancel) {
                    Ok(stats) => {
                        let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                        t.shared += stats.shared;
                        t.copied += stats.copied;
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        if matches!(*slot, None | Some(Error::Aborted)) {
                            *slot = Some(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    interrupt::check()?;
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(totals.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn run_job(
    job: &Job,
    staged: &StagedFile,
    options: &Options,
    progress: &Progress,
    cancel: &dyn Fn() -> Result<()>,
) -> Result<CopyStats> {
    cancel()?;
    let input = job.input();
    let (header, output_len, ranges): (&[u8], u64, Vec<CopyRange>) = match job {
        Job::Rank(r) => (
            &r.plan.header_bytes,
            r.plan.output_len,
            r.plan.copies.clone(),
        ),
        Job::Copy(f) => (
            &[],
            f.stamp.len,
            vec![CopyRange {
                src: 0,
                dst: 0,
                len: f.stamp.len,
            }],
        ),
    };
    let name = staged
        .target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bar = progress.file(&name, job.bytes());
    // Errors name the output file the user asked for: the temp file is
    // removed when the run fails.
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&staged.temp)
        .map_err(|e| Error::io(&staged.target, "cannot create", e))?;
    out.write_all_at(header, 0)
        .map_err(|e| Error::io(&staged.target, "cannot write", e))?;
    // Sized up front so that clones and copies land inside the file.
    out.set_len(output_len)
        .map_err(|e| Error::io(&staged.target, "cannot size", e))?;
    let on_progress = |n: u64| bar.inc(n);
    let mut copier = RangeCopier::new(
        &input.file,
        &input.path,
        &out,
        &staged.target,
        options.align,
        options.methods,
        &on_progress,
        cancel,
    );
    for range in ranges {
        copier.copy(range)?;
    }
    let stats = copier.stats;
    input.check_unchanged()?;
    if options.fsync {
        out.sync_all()
            .map_err(|e| Error::io(&staged.target, "cannot flush to disk", e))?;
    }
    bar.done();
    Ok(stats)
}

/// Writes `bytes` to the temp file of `staged`; errors name its target.
fn write_new(staged: &StagedFile, bytes: &[u8], fsync: bool) -> Result<()> {
    let path = &staged.target;
    let file = fs::File::create(&staged.temp).map_err(|e| Error::io(path, "cannot create", e))?;
    file.write_all_at(bytes, 0)
        .map_err(|e| Error::io(path, "cannot write", e))?;
    if fsync {
        file.sync_all()
            .map_err(|e| Error::io(path, "cannot flush to disk", e))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "cannot flush to disk", e))
}

/// The checkpoint folder, absolute and with symlinks resolved.
fn canonical_checkpoint_dir(dir: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(dir, "checkpoint folder not found"),
        _ => Error::io(dir, "cannot open", e),
    })?;
    if !meta.is_dir() {
        return Err(Error::invalid(dir, "checkpoint path is not a folder"));
    }
    fs::canonicalize(dir).map_err(|e| Error::io(dir, "cannot resolve", e))
}

/// The original's default output, `Path(dir).with_name(name + ".pruned")`:
/// beside the folder as the user named it, so a checkpoint reached through
/// a symlink gets its output next to the link. `None` when the path has no
/// last name of its own (`.`, `..`, `/`).
fn pruned_sibling(checkpoint_dir: &Path) -> Option<PathBuf> {
    let mut name = checkpoint_dir.file_name()?.to_os_string();
    name.push(".pruned");
    Some(checkpoint_dir.with_file_name(name))
}

/// The sibling folder `<name>.pruned` of the checkpoint's real path.
pub fn default_out_dir(canonical_checkpoint: &Path) -> Result<PathBuf> {
    match (
        canonical_checkpoint.parent(),
        canonical_checkpoint.file_name(),
    ) {
        (Some(parent), Some(name)) => {
            let mut name = name.to_os_string();
            name.push(".pruned");
            Ok(parent.join(name))
        }
        _ => Err(Error::refused(
            canonical_checkpoint,
            "cannot derive a default output folder; give --out_dir",
        )),
    }
}

/// Resolves an output folder that may not exist yet, the way the kernel
/// will once it is created: the existing part with symlinks resolved, the
/// rest lexically (folders we create are never symlinks). So `new/../ckpt`
/// resolves to `ckpt` and is compared with the input as such.
pub fn resolve_out_dir(dir: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(dir).map_err(|e| Error::io(dir, "cannot resolve", e))?;
    let components: Vec<Component> = absolute.components().collect();
    // The longest prefix that exists.
    let mut split = components.len();
    let mut base = loop {
        let prefix: PathBuf = components[..split].iter().collect();
        match fs::canonicalize(&prefix) {
            Ok(p) => break p,
            Err(_) if split > 1 => split -= 1,
            Err(e) => return Err(Error::io(dir, "cannot resolve", e)),
        }
    };
    for c in &components[split..] {
        match c {
            Component::ParentDir => {
                base.pop();
            }
            Component::CurDir => {}
            other => base.push(other.as_os_str()),
        }
    }
    // The lexical part may lead back into an existing folder.
    match fs::canonicalize(&base) {
        Ok(p) => Ok(p),
        Err(_) => Ok(base),
    }
}

/// Refuses a run in which any output file would replace an input file
/// (through a hard link, a symlink, or the same folder under another name)
/// or a folder.
fn refuse_overwriting_inputs(prepared: &Prepared, config_path: &Path) -> Result<()> {
    let mut inputs: Vec<(PathBuf, FileStamp)> = prepared
        .ranks
        .iter()
        .map(|r| (r.input.path.clone(), r.input.stamp))
        .chain(
            prepared
                .extra_files
                .iter()
                .map(|f| (f.path.clone(), f.stamp)),
        )
        .collect();
    if let Ok(meta) = fs::metadata(config_path) {
        inputs.push((config_path.to_path_buf(), FileStamp::of(&meta)));
    }
    let mut names: Vec<OsString> = vec![CONFIG_FILE.into()];
    names.extend(prepared.ranks.iter().map(|r| r.file_name().into()));
    names.extend(
        prepared
            .extra_files
            .iter()
            .filter_map(|f| f.path.file_name().map(OsStr::to_os_string)),
    );
    for name in names {
        let target = prepared.out_dir.join(&name);
        // The commit would move a folder aside under a hidden temp name and
        // leave it there: refuse instead.
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(Error::refused(
                &target,
                "a folder has the name of an output file; move it away",
            ));
        }
        let Ok(meta) = fs::metadata(&target) else {
            continue;
        };
        let out = FileStamp::of(&meta);
        if let Some((input, _)) = inputs.iter().find(|(_, s)| s.same_file(&out)) {
            return Err(Error::refused(
                &target,
                format!("would overwrite the input file {}", input.display()),
            ));
        }
    }
    Ok(())
}
