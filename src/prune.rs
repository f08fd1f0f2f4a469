//! The run: read and validate everything, plan every rank, then copy into
//! staged temp files (ranks in parallel) and commit them all at once.
//!
//! ```text
//! Checkpoint::open ──> plan_prune per rank ──> Prepared        (no writes)
//!        Prepared ──> Staging + worker threads ──> commit      (all or nothing)
//! ```

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::checkpoint::{
    self, Checkpoint, ConfigFile, FileStamp, InputFile, Layout, RankSet, SafetensorsInput,
    CONFIG_FILE,
};
use crate::copy::{clone_block_size, CopyMethods, CopyStats, RangeCopier};
use crate::error::{Error, Result};
use crate::header::Header;
use crate::interrupt;
use crate::plan::{plan_prune, CopyRange, PrunePlan, SHARE_ALIGNMENT};
use crate::progress::Progress;
use crate::recover::recover_folder;
use crate::rule::PruneRule;
use crate::stage::{Ownership, StagedFile, Staging};
use crate::verify::{self, FileVerdict};

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub checkpoint_dir: PathBuf,
    /// `None`: the sibling folder `<checkpoint_dir>.pruned` (or the
    /// checkpoint folder itself with `in_place`).
    pub out_dir: Option<PathBuf>,
    pub rule: PruneRule,
    /// Files copied at once; 0 means one per core.
    pub jobs: usize,
    /// Block size the planner keeps large ranges congruent to and the copy
    /// clones at (0: none); `None`, the default: the block size of the
    /// output folder's filesystem ([`clone_block_size`]).
    pub align: Option<u64>,
    pub methods: CopyMethods,
    /// Flush every output, the journal and the folder to disk at the
    /// commit, so a power cut cannot undo or tear it (on by default; always
    /// on with `in_place`, where the originals are replaced).
    pub fsync: bool,
    /// Prune the checkpoint folder itself.
    pub in_place: bool,
    /// Only these ranks of a TensorRT-LLM checkpoint.
    pub ranks: Option<RankSet>,
    /// Re-read every output before committing and compare with the input.
    pub verify: bool,
}

impl Options {
    pub fn new(checkpoint_dir: impl Into<PathBuf>) -> Options {
        Options {
            checkpoint_dir: checkpoint_dir.into(),
            out_dir: None,
            rule: PruneRule::default(),
            jobs: 0,
            align: None,
            methods: CopyMethods::default(),
            fsync: true,
            in_place: false,
            ranks: None,
            verify: false,
        }
    }
}

/// One safetensors file, validated and planned.
#[derive(Debug)]
pub struct FilePlan {
    /// File name in the checkpoint and in the output folder.
    pub name: String,
    pub input: InputFile,
    pub header: Header,
    pub plan: PrunePlan,
}

/// A small output file produced from text (config.json, a shard index).
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub name: String,
    pub text: String,
    /// The input file it is made from (owner, group, mode), if any.
    pub source: Option<Ownership>,
}

/// A run that has been validated and planned, before anything is written.
#[derive(Debug)]
pub struct Prepared {
    pub checkpoint_dir: PathBuf,
    pub out_dir: PathBuf,
    pub in_place: bool,
    /// `"trtllm"` or `"safetensors"` (a generic folder).
    pub layout: &'static str,
    pub files: Vec<FilePlan>,
    pub generated: Vec<GeneratedFile>,
    /// Other files, copied as they are (none in place: they stay).
    pub extra_files: Vec<InputFile>,
    /// The input config of a TensorRT-LLM checkpoint, for verification.
    pub config: Option<ConfigFile>,
    pub warnings: Vec<String>,
    /// The block size the plans align to and the copies clone at.
    pub block: u64,
}

impl Prepared {
    /// Bytes the run will move: kept tensor data plus the other files.
    pub fn bytes_to_move(&self) -> u64 {
        let files: u64 = self.files.iter().map(|f| f.plan.kept_bytes()).sum();
        let extra: u64 = self.extra_files.iter().map(|f| f.stamp.len).sum();
        files + extra
    }

    pub fn tensors_pruned(&self) -> usize {
        self.files.iter().map(|f| f.plan.pruned_count()).sum()
    }

    pub fn tensors_kept(&self) -> usize {
        self.files.iter().map(|f| f.plan.kept_count()).sum()
    }

    /// Total size of the input safetensors files.
    pub fn bytes_in(&self) -> u64 {
        self.files.iter().map(|f| f.plan.input_len).sum()
    }

    /// Total size of the output safetensors files.
    pub fn bytes_out(&self) -> u64 {
        self.files.iter().map(|f| f.plan.output_len).sum()
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub out_dir: PathBuf,
    /// `"trtllm"` or `"safetensors"`, as in [`Prepared::layout`].
    pub layout: &'static str,
    /// Safetensors files written (ranks or shards).
    pub files: usize,
    pub tensors_pruned: usize,
    pub tensors_kept: usize,
    /// Total size of the input safetensors files.
    pub bytes_in: u64,
    /// Total size of the output safetensors files.
    pub bytes_out: u64,
    /// Bytes the outputs share with the inputs (cloned blocks).
    pub bytes_shared: u64,
    /// Other files copied beside the safetensors files.
    pub extra_files: usize,
    /// Per-file verdicts when `verify` was asked for.
    pub verified: Option<Vec<FileVerdict>>,
    /// Leftovers of dead runs dealt with in the output folder, one line each.
    pub recovered: Vec<String>,
}

impl Summary {
    fn of(
        prepared: &Prepared,
        stats: CopyStats,
        verified: Option<Vec<FileVerdict>>,
        recovered: Vec<String>,
    ) -> Summary {
        Summary {
            out_dir: prepared.out_dir.clone(),
            layout: prepared.layout,
            files: prepared.files.len(),
            tensors_pruned: prepared.tensors_pruned(),
            tensors_kept: prepared.tensors_kept(),
            bytes_in: prepared.bytes_in(),
            bytes_out: prepared.bytes_out(),
            bytes_shared: stats.shared,
            extra_files: prepared.extra_files.len(),
            verified,
            recovered,
        }
    }
}

/// Prunes a checkpoint: [`recover_folders`], [`prepare`], [`execute`].
pub fn prune(options: &Options, progress: &Progress) -> Result<Summary> {
    let recovered = recover_folders(options)?;
    let prepared = prepare(options)?;
    let mut summary = execute(&prepared, options, progress)?;
    summary.recovered.splice(0..0, recovered);
    Ok(summary)
}

/// Finishes or removes what dead runs left in the checkpoint folder and the
/// output folder (see [`crate::recover`]); returns one line per run dealt
/// with. A folder this process cannot change gets a line saying so instead.
pub fn recover_folders(options: &Options) -> Result<Vec<String>> {
    let checkpoint_dir = canonical_checkpoint_dir(&options.checkpoint_dir)?;
    let mut notes = recover_or_say(&checkpoint_dir)?;
    let out_dir = match &options.out_dir {
        Some(dir) => resolve_out_dir(dir)?,
        None if options.in_place => checkpoint_dir.clone(),
        None => default_out_dir(&options.checkpoint_dir, &checkpoint_dir)?,
    };
    if out_dir != checkpoint_dir && out_dir.is_dir() {
        notes.extend(recover_or_say(&out_dir)?);
    }
    Ok(notes)
}

/// [`recover_folder`], with a failure to change the folder turned into a
/// line of its own; an interruption or a commit that can be neither
/// finished nor undone stays an error.
fn recover_or_say(dir: &Path) -> Result<Vec<String>> {
    match recover_folder(dir) {
        Ok(notes) => Ok(notes),
        Err(e @ (Error::Interrupted { .. } | Error::CommitIncomplete { .. })) => Err(e),
        Err(e) => Ok(vec![format!(
            "leftovers of an earlier run could not be dealt with: {e}"
        )]),
    }
}

/// Reads, validates and plans everything. Writes nothing.
pub fn prepare(options: &Options) -> Result<Prepared> {
    let checkpoint_dir = canonical_checkpoint_dir(&options.checkpoint_dir)?;
    let out_dir = match &options.out_dir {
        Some(dir) => resolve_out_dir(dir)?,
        None if options.in_place => checkpoint_dir.clone(),
        None => default_out_dir(&options.checkpoint_dir, &checkpoint_dir)?,
    };
    if options.in_place && out_dir != checkpoint_dir {
        return Err(Error::refused(
            &out_dir,
            "--in-place writes into the checkpoint folder; drop --out_dir or give the checkpoint folder",
        ));
    }
    if out_dir == checkpoint_dir && !options.in_place {
        return Err(Error::refused(
            &out_dir,
            "the output folder is the checkpoint folder; refusing to overwrite the input (use --in-place to prune it in place)",
        ));
    }
    if fs::metadata(&out_dir).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::refused(
            &out_dir,
            "the output path exists and is not a folder",
        ));
    }
    let checkpoint = Checkpoint::open(&checkpoint_dir, options.ranks.as_ref())?;
    interrupt::check()?;
    let Checkpoint {
        layout,
        files,
        extra_files,
        warnings,
        ..
    } = checkpoint;
    // Discovered before planning: the plans' layout depends on it.
    let block = options
        .align
        .unwrap_or_else(|| clone_block_size(&out_dir).unwrap_or(SHARE_ALIGNMENT));
    let files: Vec<FilePlan> = files
        .into_iter()
        .map(
            |SafetensorsInput {
                 name,
                 input,
                 header,
             }| {
                Ok(FilePlan {
                    plan: plan_file(&header, &options.rule, block, &input.path)?,
                    name,
                    input,
                    header,
                })
            },
        )
        .collect::<Result<_>>()?;
    let (layout_name, generated, config) = match layout {
        Layout::TrtLlm { config } => (
            "trtllm",
            vec![GeneratedFile {
                name: CONFIG_FILE.to_string(),
                text: config.pruned_text(),
                source: None,
            }],
            Some(config),
        ),
        Layout::Generic { index } => {
            // The index's total_size counts tensor bytes, not file bytes.
            let total: u64 = files.iter().map(|f| f.plan.kept_bytes()).sum();
            let generated = index
                .map(|i| GeneratedFile {
                    text: i.pruned_text(total),
                    name: i.name,
                    source: None,
                })
                .into_iter()
                .collect();
            ("safetensors", generated, None)
        }
    };
    let mut warnings = warnings;
    warnings.extend(rule_warnings(&options.rule, &files, layout_name));
    if options.in_place {
        warnings.extend(ownership_warnings(&files));
    }
    let mut generated = generated;
    for g in &mut generated {
        // Through a symlink: its target's mode, not the link's 0777.
        g.source = fs::metadata(checkpoint_dir.join(&g.name))
            .ok()
            .map(|m| Ownership::of(&m));
    }
    let prepared = Prepared {
        checkpoint_dir,
        out_dir,
        in_place: options.in_place,
        layout: layout_name,
        files,
        generated,
        // In place, the other files are already where they belong.
        extra_files: if options.in_place {
            Vec::new()
        } else {
            extra_files
        },
        config,
        warnings,
        block,
    };
    if !prepared.in_place {
        refuse_overwriting_inputs(&prepared)?;
    }
    Ok(prepared)
}

/// In place, a file that belongs to someone else can only be replaced by
/// one that belongs to whoever runs the tool (unless that is root): say so
/// before it happens.
fn ownership_warnings(files: &[FilePlan]) -> Vec<String> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if me == 0 {
        return Vec::new();
    }
    files
        .iter()
        .filter(|f| f.input.ownership.uid != me)
        .map(|f| {
            format!(
                "{}: belongs to uid {}; replaced in place, the pruned file will belong to you (uid {me})",
                f.input.path.display(),
                f.input.ownership.uid
            )
        })
        .collect()
}

/// What a user should hear about the rule before a run: patterns that match
/// no tensor, and a rule that prunes nothing at all.
fn rule_warnings(rule: &PruneRule, files: &[FilePlan], layout: &str) -> Vec<String> {
    let names = files
        .iter()
        .flat_map(|f| f.header.tensors.iter().map(|t| t.name.as_str()));
    let mut warnings: Vec<String> = rule
        .unmatched(names)
        .into_iter()
        .map(|p| format!("{p} matches no tensor name"))
        .collect();
    let tensors: usize = files.iter().map(|f| f.plan.tensors.len()).sum();
    let pruned: usize = files.iter().map(|f| f.plan.pruned_count()).sum();
    if tensors > 0 && pruned == 0 {
        let hint = if layout == "safetensors" && rule.prune.is_empty() && !rule.prune_all {
            ": the default rule looks for TensorRT-LLM names (`attention.qkv.weight`, `mlp.fc.weight`, ...) and this folder's tensors have other names; use --prune PATTERN (e.g. '*_proj.weight') or --prune_all"
        } else {
            ""
        };
        warnings.push(format!(
            "the rule prunes no tensor; the output will be a full copy{hint}"
        ));
    }
    warnings
}

/// Writes every output to a temp file, verifies them if asked, then
/// commits them all (`stage`).
pub fn execute(prepared: &Prepared, options: &Options, progress: &Progress) -> Result<Summary> {
    // The copies clone at the block size the plans were made for.
    let options = &Options {
        align: Some(prepared.block),
        ..options.clone()
    };
    let flush = options.fsync || prepared.in_place;
    let mut staging = Staging::open(&prepared.out_dir, flush)?;
    let mut jobs: Vec<(Job, StagedFile)> = Vec::new();
    for file in &prepared.files {
        jobs.push((Job::Prune(file), staging.add(&file.name)));
    }
    for extra in &prepared.extra_files {
        jobs.push((Job::Copy(extra), staging.add(file_name(&extra.path))));
    }
    // Added last, so committed last: config.json (or the shard index) says
    // "pruned" only once every other file is in place.
    let generated: Vec<(&GeneratedFile, StagedFile)> = prepared
        .generated
        .iter()
        .map(|g| (g, staging.add(&g.name)))
        .collect();
    // Largest first, so parallel workers finish together.
    jobs.sort_by_key(|(job, _)| std::cmp::Reverse(job.bytes()));

    for (g, staged) in &generated {
        write_new(&staging, staged, g, flush, prepared.in_place)?;
    }
    progress.set_total(prepared.bytes_to_move());
    let in_place = prepared.in_place;
    let stats = run_jobs(&staging, &jobs, options, flush, in_place, progress)?;
    interrupt::check()?;
    let verified = if options.verify {
        let verdicts = verify_staged(prepared, &jobs, &generated)?;
        if let Some(bad) = verdicts.iter().find(|v| !v.ok()) {
            return Err(Error::Mismatch {
                file: prepared.out_dir.join(&bad.name),
                problem: format!(
                    "verification failed, nothing was kept: {}",
                    bad.problems
                        .first()
                        .map(String::as_str)
                        .unwrap_or("mismatch")
                ),
            });
        }
        Some(verdicts)
    } else {
        None
    };
    let mut recovered = std::mem::take(&mut staging.recovered);
    let report = staging.commit()?;
    recovered.extend(report.recovered);
    Ok(Summary::of(prepared, stats, verified, recovered))
}

/// Verifies the finished temp files against their inputs.
fn verify_staged(
    prepared: &Prepared,
    jobs: &[(Job, StagedFile)],
    generated: &[(&GeneratedFile, StagedFile)],
) -> Result<Vec<FileVerdict>> {
    let mut verdicts = Vec::new();
    for (job, staged) in jobs {
        verdicts.push(match job {
            Job::Prune(f) => {
                verify::verify_safetensors(&f.name, &f.input, &f.header, &f.plan, &staged.temp)?
            }
            Job::Copy(input) => verify::verify_copy(
                &file_name(&input.path).to_string_lossy(),
                input,
                &staged.temp,
            )?,
        });
    }
    if let Some(config) = &prepared.config {
        if let Some((_, staged)) = generated.iter().find(|(g, _)| g.name == CONFIG_FILE) {
            verdicts.push(verify::verify_config(config, &staged.temp)?);
        }
    }
    verdicts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(verdicts)
}

/// What `verify` found.
#[derive(Debug)]
pub struct Verification {
    /// The checkpoint folder, absolute.
    pub checkpoint_dir: PathBuf,
    /// The output folder checked, absolute.
    pub out_dir: PathBuf,
    /// One verdict per file, by name.
    pub verdicts: Vec<FileVerdict>,
    /// Leftovers of dead runs dealt with first, one line each.
    pub recovered: Vec<String>,
}

/// Verifies an existing output folder against its checkpoint and the rule
/// it was pruned with.
pub fn verify_existing(
    given_checkpoint_dir: &Path,
    out_dir: Option<&Path>,
    rule: &PruneRule,
) -> Result<Verification> {
    let checkpoint_dir = canonical_checkpoint_dir(given_checkpoint_dir)?;
    let out_dir = match out_dir {
        Some(dir) => resolve_out_dir(dir)?,
        None => default_out_dir(given_checkpoint_dir, &checkpoint_dir)?,
    };
    if !out_dir.is_dir() {
        return Err(Error::invalid(&out_dir, "output folder not found"));
    }
    let mut recovered = recover_or_say(&checkpoint_dir)?;
    recovered.extend(recover_or_say(&out_dir)?);
    let checkpoint = Checkpoint::open(&checkpoint_dir, None)?;
    let mut verdicts = Vec::new();
    for f in &checkpoint.files {
        // Only the plan's decisions are compared, not its layout.
        let plan = plan_file(&f.header, rule, SHARE_ALIGNMENT, &f.input.path)?;
        verdicts.push(verify::verify_safetensors(
            &f.name,
            &f.input,
            &f.header,
            &plan,
            &out_dir.join(&f.name),
        )?);
    }
    for extra in &checkpoint.extra_files {
        let name = file_name(&extra.path);
        verdicts.push(verify::verify_copy(
            &name.to_string_lossy(),
            extra,
            &out_dir.join(&name),
        )?);
    }
    match &checkpoint.layout {
        Layout::TrtLlm { config } => {
            verdicts.push(verify::verify_config(config, &out_dir.join(CONFIG_FILE))?);
            verdicts.extend(verify::verify_no_extra_ranks(&out_dir, config.world_size)?);
        }
        Layout::Generic { index: Some(index) } => {
            let shards: Vec<String> = checkpoint.files.iter().map(|f| f.name.clone()).collect();
            verdicts.push(verify::verify_index(&index.name, &out_dir, &shards)?);
        }
        Layout::Generic { index: None } => {}
    }
    verdicts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Verification {
        checkpoint_dir,
        out_dir,
        verdicts,
        recovered,
    })
}

/// The last component of `path`, as it is (names need not be UTF-8).
fn file_name(path: &Path) -> OsString {
    path.file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_default()
}

/// One output file to produce.
enum Job<'a> {
    Prune(&'a FilePlan),
    Copy(&'a InputFile),
}

impl Job<'_> {
    fn bytes(&self) -> u64 {
        match self {
            Job::Prune(f) => f.plan.kept_bytes(),
            Job::Copy(f) => f.stamp.len,
        }
    }

    fn input(&self) -> &InputFile {
        match self {
            Job::Prune(f) => &f.input,
            Job::Copy(f) => f,
        }
    }
}

/// Runs the jobs on up to `options.jobs` threads. The first failure stops
/// the others at their next chunk; an interruption wins over other errors
/// so the exit status says what happened.
fn run_jobs(
    staging: &Staging,
    jobs: &[(Job, StagedFile)],
    options: &Options,
    fsync: bool,
    in_place: bool,
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
                match run_job(
                    staging, job, staged, options, fsync, in_place, progress, &cancel,
                ) {
                    Ok(stats) => {
                        let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                        t.shared += stats.shared;
                        t.copied += stats.copied;
                        t.holes += stats.holes;
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

#[allow(clippy::too_many_arguments)]
fn run_job(
    staging: &Staging,
    job: &Job,
    staged: &StagedFile,
    options: &Options,
    fsync: bool,
    in_place: bool,
    progress: &Progress,
    cancel: &dyn Fn() -> Result<()>,
) -> Result<CopyStats> {
    cancel()?;
    let input = job.input();
    let whole_file;
    let (header, output_len, ranges): (&[u8], u64, &[CopyRange]) = match job {
        Job::Prune(f) => (&f.plan.header_bytes, f.plan.output_len, &f.plan.copies),
        Job::Copy(f) => {
            whole_file = [CopyRange {
                src: 0,
                dst: 0,
                len: f.stamp.len,
            }];
            (&[], f.stamp.len, &whole_file)
        }
    };
    let bar = progress.file(&file_name(&staged.target).to_string_lossy(), job.bytes());
    let out = staging.create(staged, Some(input.ownership), in_place)?;
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
        options.align.unwrap_or(SHARE_ALIGNMENT),
        options.methods,
        &on_progress,
        cancel,
    );
    for &range in ranges {
        copier.copy(range)?;
    }
    let stats = copier.stats;
    input.check_unchanged()?;
    if fsync {
        out.sync_all()
            .map_err(|e| Error::io(&staged.target, "cannot flush to disk", e))?;
    }
    bar.done();
    Ok(stats)
}

/// Writes the text of `generated` to the temp file of `staged`; errors name
/// its target.
fn write_new(
    staging: &Staging,
    staged: &StagedFile,
    generated: &GeneratedFile,
    fsync: bool,
    in_place: bool,
) -> Result<()> {
    let path = &staged.target;
    let file = staging.create(staged, generated.source, in_place)?;
    file.write_all_at(generated.text.as_bytes(), 0)
        .map_err(|e| Error::io(path, "cannot write", e))?;
    if fsync {
        file.sync_all()
            .map_err(|e| Error::io(path, "cannot flush to disk", e))?;
    }
    Ok(())
}

/// The checkpoint folder, absolute and with symlinks resolved.
fn canonical_checkpoint_dir(dir: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(dir, "checkpoint folder not found"),
        _ => Error::io(dir, "cannot open", e),
    })?;
    if !meta.is_dir() {
        return Err(Error::invalid(
            dir,
            "checkpoint path is a file, not a folder: give the folder that holds it, or look at the file with `trtllm-prune inspect`",
        ));
    }
    fs::canonicalize(dir).map_err(|e| Error::io(dir, "cannot resolve", e))
}

/// The original's default output, `Path(dir).with_name(name + ".pruned")`:
/// beside the folder as the user named it (`given`), so a checkpoint reached
/// through a symlink gets its output next to the link. A path without a
/// last name of its own (`.`, `..`) uses its real path (`canonical`).
pub fn default_out_dir(given: &Path, canonical: &Path) -> Result<PathBuf> {
    let sibling = |dir: &Path| {
        let mut name = dir.file_name()?.to_os_string();
        name.push(".pruned");
        Some(dir.with_file_name(name))
    };
    match sibling(given) {
        Some(dir) => resolve_out_dir(&dir),
        None => sibling(canonical).ok_or_else(|| {
            Error::refused(
                canonical,
                "cannot derive a default output folder; give --out_dir",
            )
        }),
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
fn refuse_overwriting_inputs(prepared: &Prepared) -> Result<()> {
    let mut inputs: Vec<(PathBuf, FileStamp)> = prepared
        .files
        .iter()
        .map(|f| (f.input.path.clone(), f.input.stamp))
        .chain(
            prepared
                .extra_files
                .iter()
                .map(|f| (f.path.clone(), f.stamp)),
        )
        .collect();
    for g in &prepared.generated {
        let source = prepared.checkpoint_dir.join(&g.name);
        if let Ok(meta) = fs::metadata(&source) {
            inputs.push((source, FileStamp::of(&meta)));
        }
    }
    let names = prepared
        .files
        .iter()
        .map(|f| OsString::from(&f.name))
        .chain(prepared.generated.iter().map(|g| OsString::from(&g.name)))
        .chain(prepared.extra_files.iter().map(|f| file_name(&f.path)));
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

/// One safetensors file as `inspect` shows it.
#[derive(Debug)]
pub struct Inspected {
    pub name: String,
    pub path: PathBuf,
    pub header: Header,
    pub plan: PrunePlan,
}

/// Reads the headers of a checkpoint folder (TensorRT-LLM or generic) or a
/// single `.safetensors` file and plans them under `rule`. Reads headers
/// only.
pub fn inspect(path: &Path, rule: &PruneRule) -> Result<(Vec<Inspected>, Vec<String>)> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(path, "not found"),
        _ => Error::io(path, "cannot open", e),
    })?;
    let folder = if meta.is_dir() {
        Some(path)
    } else {
        path.parent().filter(|p| !p.as_os_str().is_empty())
    };
    let notes = match folder.map(fs::canonicalize) {
        Some(Ok(dir)) => recover_or_say(&dir)?,
        _ => Vec::new(),
    };
    let files: Vec<(String, PathBuf, Header)> = if meta.is_dir() {
        Checkpoint::open(path, None)?
            .files
            .into_iter()
            .map(|f| (f.name, f.input.path, f.header))
            .collect()
    } else {
        let (input, header) = checkpoint::open_safetensors(path)?;
        vec![(
            file_name(path).to_string_lossy().into_owned(),
            input.path,
            header,
        )]
    };
    let files = files
        .into_iter()
        .map(|(name, path, header)| {
            Ok(Inspected {
                plan: plan_file(&header, rule, SHARE_ALIGNMENT, &path)?,
                name,
                path,
                header,
            })
        })
        .collect::<Result<_>>()?;
    Ok((files, notes))
}

/// [`plan_prune`], its error naming the file.
fn plan_file(header: &Header, rule: &PruneRule, align: u64, path: &Path) -> Result<PrunePlan> {
    plan_prune(header, rule, align).map_err(|source| Error::Plan {
        file: path.to_path_buf(),
        source,
    })
}
