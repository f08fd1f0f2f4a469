//! The run: read and validate everything, plan every rank, then copy into
//! staged temp files (ranks in parallel) and commit them all at once.
//!
//! ```text
//! Checkpoint::open ──> plan_prune per rank ──> Prepared        (no writes)
//!        Prepared ──> Staging + worker threads ──> commit      (all or nothing)
//! ```

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::base::file::{file_name, Ownership};
use crate::base::interrupt::Cancel;
use crate::base::progress::Progress;
use crate::base::sys;
use crate::check::verify::{self, FileVerdict};
use crate::commit::out_dir::{
    default_out_dir, input_folders, is_url, open_folder, refuse_input_folders,
    refuse_mirrored_input_folders, refuse_stale_ranks, resolve_out_dir, OUT_DIR_IS_LOCAL,
};
use crate::commit::recover::{pending, recover_or_note};
use crate::commit::stage::{StagedFile, Staging};
use crate::copy::jobs::{run_jobs, write_new, CopySettings, Job};
use crate::copy::ranges::{clone_block_size, CopyMethods, CopyStats};
use crate::copy::space;
use crate::plan::file::{plan_file, plan_hollow_file, FilePlan, GeneratedFile};
use crate::plan::rule::PruneRule;
use crate::plan::{CopyRange, SHARE_ALIGNMENT};
use crate::read::checkpoint::{Checkpoint, Layout, SafetensorsInput};
use crate::read::config::{ConfigFile, CONFIG_FILE};
use crate::read::folder::{Folder, Place};
use crate::read::ranks::RankSet;

pub use crate::plan::prepared::{LayoutKind, Prepared};

/// Everything a run needs to know: [`Options::new`], then the fields to
/// change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The checkpoint folder, or its URL (`s3://`, `gs://`, `az://`,
    /// `http(s)://`).
    pub checkpoint_dir: PathBuf,
    /// `None`: the sibling folder `<checkpoint_dir>.pruned` (or the
    /// checkpoint folder itself with `in_place`).
    pub out_dir: Option<PathBuf>,
    /// What is pruned.
    pub rule: PruneRule,
    /// Files copied at once; 0 means one per core.
    pub jobs: usize,
    /// Block size the planner keeps large ranges congruent to and the copy
    /// clones at (0: none); `None`, the default: the block size of the
    /// output folder's filesystem (`clone_block_size`).
    pub align: Option<u64>,
    /// The in-kernel copies the run may try.
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
    /// What stops the run (by default: SIGINT, SIGTERM, SIGHUP).
    pub cancel: Cancel,
    /// Ranged requests in flight at once for a remote checkpoint, across
    /// all its files.
    pub fetch_jobs: usize,
    /// Copy a folder that is not a TensorRT-LLM checkpoint even when the
    /// rule prunes none of its tensors (refused otherwise: such a copy is
    /// almost always a rule that missed).
    pub full_copy: bool,
    /// Hollow outputs (`plan_hollow`, `--hollow`): pruned tensors keep their shape
    /// and offsets and read as zeros, stored as holes.
    pub hollow: bool,
}

impl Options {
    /// The defaults for the checkpoint `checkpoint_dir`: the original
    /// tool's rule into `<checkpoint_dir>.pruned`, a job per core, every
    /// copy method, flushed to disk, stopped by SIGINT, SIGTERM or SIGHUP.
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
            cancel: Cancel::on_signals(),
            fetch_jobs: DEFAULT_FETCH_JOBS,
            full_copy: false,
            hollow: false,
        }
    }
}

/// Ranged requests in flight per remote file, unless `--fetch-jobs` says.
pub const DEFAULT_FETCH_JOBS: usize = 8;

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// The output folder.
    pub out_dir: PathBuf,
    /// As in [`Prepared::layout`].
    pub layout: LayoutKind,
    /// Safetensors files written (ranks or shards).
    pub files: usize,
    /// Tensors pruned, in every file.
    pub tensors_pruned: usize,
    /// Tensors kept, in every file.
    pub tensors_kept: usize,
    /// Total size of the input safetensors files.
    pub bytes_in: u64,
    /// Total size of the output safetensors files.
    pub bytes_out: u64,
    /// Bytes the outputs share with the inputs (cloned blocks).
    pub bytes_shared: u64,
    /// For hollow outputs, the bytes they store ([`Prepared::bytes_stored`]).
    pub hollow_stored: Option<u64>,
    /// Other files copied beside the safetensors files.
    pub extra_files: usize,
    /// Per-file verdicts when `verify` was asked for.
    pub verified: Option<Vec<FileVerdict>>,
    /// Leftovers of dead runs dealt with in the output folder, one line each.
    pub recovered: Vec<String>,
    /// What the run could not do as asked but did not fail for (in place:
    /// an extended attribute or ACL that could not be kept), one line each.
    pub warnings: Vec<String>,
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
            hollow_stored: prepared.hollow.then(|| prepared.bytes_stored()),
            extra_files: prepared.extra_files.len(),
            verified,
            recovered,
            warnings: Vec::new(),
        }
    }
}

/// Prunes a checkpoint: [`recover_folders`], [`prepare`], [`execute`].
pub fn prune(options: &Options, progress: &dyn Progress) -> Result<Summary> {
    let recovered = recover_folders(options)?;
    let prepared = prepare(options)?;
    let mut summary = execute(&prepared, options, progress)?;
    summary.recovered.splice(0..0, recovered);
    Ok(summary)
}

/// Most missing ranks [`lacking_ranks`] names.
const MAX_LACKING_SHOWN: usize = 8;

/// After a `--ranks` run into a TensorRT-LLM output folder: the first
/// ranks below `world_size` the folder does not hold yet (at most
/// `MAX_LACKING_SHOWN`, 8) and how many it lacks in all; `None` when it
/// holds every rank (or the run was not by ranks).
pub fn lacking_ranks(prepared: &Prepared, options: &Options) -> Result<Option<(Vec<u64>, u64)>> {
    let (Some(_), Some(config)) = (&options.ranks, &prepared.config) else {
        return Ok(None);
    };
    let world_size = config.world_size;
    let dir = &prepared.out_dir;
    let listing = fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list", e))?;
    let present: std::collections::BTreeSet<u64> = listing
        .flatten()
        .filter_map(|e| crate::read::ranks::parse_rank_file_name(e.file_name().to_str()?))
        .filter(|&r| r < world_size)
        .collect();
    let count = world_size - present.len() as u64;
    if count == 0 {
        return Ok(None);
    }
    let first = (0..world_size)
        .filter(|r| !present.contains(r))
        .take(MAX_LACKING_SHOWN)
        .collect();
    Ok(Some((first, count)))
}

/// Finishes or removes what dead runs left in the checkpoint folder and the
/// output folder (see `commit/recover.rs`); returns one line per run dealt
/// with. A folder this process cannot change gets a line saying so instead.
pub fn recover_folders(options: &Options) -> Result<Vec<String>> {
    let folder = checkpoint_folder(options)?;
    let Some(checkpoint_dir) = folder.local_dir() else {
        // Only the (local) output folder can hold leftovers.
        return match local_out_dir(options)? {
            Some(dir) if dir.is_dir() => recover_or_note(&resolve_out_dir(dir)?, &options.cancel),
            _ => Ok(Vec::new()),
        };
    };
    // Resolved first: a path it refuses is refused before anything changes.
    let out_dir = out_dir_of(options, checkpoint_dir)?;
    let mut notes = recover_or_note(checkpoint_dir, &options.cancel)?;
    // What could not be finished (a read-only folder, another user's run)
    // leaves a checkpoint half old, half new: not one to read.
    if let Some(line) = pending(checkpoint_dir, &options.cancel)?.into_iter().next() {
        return Err(Error::refused(
            checkpoint_dir,
            format!(
                "not read: {}",
                line.trim_start_matches(&format!("{}: ", checkpoint_dir.display()))
            ),
        ));
    }
    if out_dir != checkpoint_dir && out_dir.is_dir() {
        notes.extend(recover_or_note(&out_dir, &options.cancel)?);
    }
    Ok(notes)
}

/// A dry run's warnings about unfinished commits in the folders a real run
/// would read and write (it changes nothing, so it only says so).
pub fn unfinished_commits(options: &Options) -> Result<Vec<String>> {
    let folder = checkpoint_folder(options)?;
    let Some(checkpoint_dir) = folder.local_dir() else {
        return match local_out_dir(options)? {
            Some(dir) if dir.is_dir() => pending(&resolve_out_dir(dir)?, &options.cancel),
            _ => Ok(Vec::new()),
        };
    };
    let mut lines = pending(checkpoint_dir, &options.cancel)?;
    let out_dir = out_dir_of(options, checkpoint_dir)?;
    if out_dir != checkpoint_dir && out_dir.is_dir() {
        lines.extend(pending(&out_dir, &options.cancel)?);
    }
    Ok(lines)
}

/// The checkpoint folder of a run, resolved from `--checkpoint_dir` (a
/// local path or a URL, see [`Place::resolve`]); a file is refused.
fn checkpoint_folder(options: &Options) -> Result<Arc<dyn Folder>> {
    Place::resolve(&options.checkpoint_dir)?.folder()
}

/// `--out_dir`, which must be a local folder: outputs are never written to
/// a store or a server.
pub(crate) fn local_out_dir(options: &Options) -> Result<Option<&Path>> {
    match &options.out_dir {
        Some(dir) if is_url(dir) => Err(Error::refused(dir, OUT_DIR_IS_LOCAL)),
        dir => Ok(dir.as_deref()),
    }
}

/// The output folder of a run: `--out_dir`, the checkpoint folder in place,
/// or the sibling `<checkpoint_dir>.pruned`.
fn out_dir_of(options: &Options, checkpoint_dir: &Path) -> Result<PathBuf> {
    match local_out_dir(options)? {
        Some(dir) => resolve_out_dir(dir),
        None if options.in_place => {
            // Walked as an output folder is, so another user's symlink in
            // a sticky folder cannot choose which folder is changed.
            resolve_out_dir(&options.checkpoint_dir)?;
            Ok(checkpoint_dir.to_path_buf())
        }
        None => default_out_dir(&options.checkpoint_dir, checkpoint_dir),
    }
}

/// The checkpoint folder (its path, or its URL) and the output folder of
/// a run, checked against each other.
fn run_folders(options: &Options, folder: &dyn Folder) -> Result<(PathBuf, PathBuf)> {
    let (checkpoint_dir, out_dir) = match folder.local_dir() {
        Some(dir) => (dir.to_path_buf(), out_dir_of(options, dir)?),
        None => match (local_out_dir(options)?, options.in_place) {
            (Some(dir), false) => (folder.shown().to_path_buf(), resolve_out_dir(dir)?),
            _ => {
                return Err(Error::refused(
                    folder.shown(),
                    "a remote checkpoint is pruned into a local folder: give --out_dir (and not --in-place)",
                ))
            }
        },
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
    Ok((checkpoint_dir, out_dir))
}

/// Reads, validates and plans everything. Writes nothing.
pub fn prepare(options: &Options) -> Result<Prepared> {
    let folder = checkpoint_folder(options)?;
    let (checkpoint_dir, out_dir) = run_folders(options, &*folder)?;
    let checkpoint = Checkpoint::open(&*folder, options.ranks.as_ref())?;
    options.cancel.check()?;
    let read_from = match folder.local_dir() {
        Some(dir) => {
            let paths: Vec<&Path> = checkpoint
                .files
                .iter()
                .map(|f| f.input.path.as_path())
                .chain(checkpoint.extra_files.iter().map(|f| f.path.as_path()))
                .collect();
            input_folders(dir, &paths)?
        }
        None => Vec::new(),
    };
    let Checkpoint {
        layout,
        files,
        extra_files,
        mut warnings,
    } = checkpoint;
    // Discovered before planning: the plans' layout depends on it.
    let block = options
        .align
        .unwrap_or_else(|| clone_block_size(&out_dir).unwrap_or(SHARE_ALIGNMENT));
    let files = plan_files(files, options, block)?;
    let (layout_name, mut generated, config) = generated_files(layout, &files);
    refuse_a_copy_that_prunes_nothing(options, &files, layout_name, &checkpoint_dir)?;
    warnings.extend(rule_warnings(&options.rule, &files, layout_name));
    if options.in_place {
        warnings.extend(ownership_warnings(&files, &checkpoint_dir));
    }
    for g in &mut generated {
        // Through a symlink: its target's mode, not the link's 0777.
        g.source = folder
            .local_dir()
            .and_then(|dir| fs::metadata(dir.join(&g.name)).ok())
            .map(|m| Ownership::of(&m));
    }
    let prepared = Prepared {
        rule: options.rule.clone(),
        checkpoint_dir,
        out_dir,
        in_place: options.in_place,
        hollow: options.hollow,
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
        input_folders: read_from,
    };
    // Checked again on the folder the run opens to write (`execute`).
    if let Some(out) = open_folder(&prepared.out_dir, false)? {
        refuse_input_folders(&out.dir, &prepared)?;
        refuse_stale_ranks(&out.dir, &prepared)?;
    }
    Ok(prepared)
}

/// Plans every safetensors file under the run's rule, at `block`.
fn plan_files(
    files: Vec<SafetensorsInput>,
    options: &Options,
    block: u64,
) -> Result<Vec<FilePlan>> {
    files
        .into_iter()
        .map(
            |SafetensorsInput {
                 name,
                 input,
                 header,
             }| {
                let plan = if options.hollow {
                    plan_hollow_file(&header, &input, &options.rule)?
                } else {
                    plan_file(&header, &options.rule, block, &input.path)?
                };
                Ok(FilePlan {
                    plan,
                    name,
                    input,
                    header,
                })
            },
        )
        .collect()
}

/// The small files a run writes from text: the pruned `config.json` of a
/// TensorRT-LLM checkpoint, or the shard index of another with its new
/// `total_size`; with the layout's kind and the input config.
fn generated_files(
    layout: Layout,
    files: &[FilePlan],
) -> (LayoutKind, Vec<GeneratedFile>, Option<ConfigFile>) {
    match layout {
        Layout::TrtLlm { config } => (
            LayoutKind::TrtLlm,
            vec![GeneratedFile {
                name: CONFIG_FILE.to_string(),
                text: config.pruned_text(),
                source: None,
                read: config.stamp,
            }],
            Some(config),
        ),
        Layout::Generic { index } => {
            // The index's total_size counts tensor bytes, not file bytes;
            // a hollow output keeps every tensor's bytes (as zeros).
            let total: u64 = files
                .iter()
                .map(|f| match f.plan.hollow {
                    true => f.header.tensors().map(|t| t.byte_len()).sum(),
                    false => f.plan.kept_bytes(),
                })
                .sum();
            let generated = index
                .map(|i| GeneratedFile {
                    text: i.pruned_text(total),
                    read: i.stamp,
                    name: i.name,
                    source: None,
                })
                .into_iter()
                .collect();
            (LayoutKind::Safetensors, generated, None)
        }
    }
}

/// In place, a file that belongs to someone else can only be replaced by
/// one that belongs to whoever runs the tool (unless that is root), and a
/// file whose group that user is not in by one with another group: say so
/// before it happens. The replacement is created in `folder`, so it starts
/// with the folder's group if the folder is set-group-ID, else the user's.
fn ownership_warnings(files: &[FilePlan], folder: &Path) -> Vec<String> {
    let me = sys::current_user();
    if me == 0 {
        return Vec::new();
    }
    let new_group = match fs::metadata(folder) {
        Ok(m) if m.mode() & libc::S_ISGID != 0 => m.gid(),
        _ => sys::current_group(),
    };
    let mut warnings = Vec::new();
    for f in files {
        let Some(o) = f.input.ownership() else {
            continue;
        };
        let path = f.input.path.display();
        if o.uid != me {
            warnings.push(format!(
                "{path}: belongs to uid {}; replaced in place, the pruned file will belong to you (uid {me})",
                o.uid
            ));
        }
        if o.gid != new_group && !sys::in_group(o.gid) {
            warnings.push(format!(
                "{path}: has group {}, which you are not in; replaced in place, the pruned file will have group {}",
                sys::group_shown(o.gid),
                sys::group_shown(new_group)
            ));
        }
    }
    warnings
}

/// What a user should hear about the rule before a run: patterns that match
/// no tensor, and a rule that prunes nothing at all.
fn rule_warnings(rule: &PruneRule, files: &[FilePlan], layout: LayoutKind) -> Vec<String> {
    let names = files
        .iter()
        .flat_map(|f| f.header.tensors().map(|t| t.name()));
    let mut warnings: Vec<String> = rule
        .unmatched(names)
        .into_iter()
        .map(|p| format!("{p} matches no tensor name"))
        .collect();
    let tensors: usize = files.iter().map(|f| f.plan.tensors.len()).sum();
    let pruned: usize = files.iter().map(|f| f.plan.pruned_count()).sum();
    // A folder of another layout that prunes nothing was refused (or asked
    // for with --full-copy); a TensorRT-LLM folder is written, as the
    // original did, with this warning.
    if tensors > 0 && pruned == 0 && layout == LayoutKind::TrtLlm {
        warnings.push("the rule prunes no tensor; the output will be a full copy".to_string());
    }
    warnings
}

/// Refuses a run over a folder that is not a TensorRT-LLM checkpoint (a
/// Hugging Face or other safetensors folder) whose rule prunes none of its
/// tensors: the default rule knows only TensorRT-LLM's names, and the
/// result would be a full copy of a checkpoint that may be 140 GB. The
/// message suggests `--prune` patterns of the folder's largest weight
/// families, each checked to match, and `--full-copy` for a copy meant.
fn refuse_a_copy_that_prunes_nothing(
    options: &Options,
    files: &[FilePlan],
    layout: LayoutKind,
    checkpoint_dir: &Path,
) -> Result<()> {
    let tensors: usize = files.iter().map(|f| f.plan.tensors.len()).sum();
    let pruned: usize = files.iter().map(|f| f.plan.pruned_count()).sum();
    if layout != LayoutKind::Safetensors || tensors == 0 || pruned > 0 || options.full_copy {
        return Ok(());
    }
    let families =
        crate::plan::suggest::largest_families(files.iter().flat_map(|f| f.header.tensors()), 3);
    let suggestion = if families.is_empty() {
        "use --prune PATTERN or --prune_all".to_string()
    } else {
        let sizes: Vec<String> = families
            .iter()
            .map(|f| {
                format!(
                    "'{}' ({} tensor{}, {})",
                    f.pattern,
                    f.tensors,
                    if f.tensors == 1 { "" } else { "s" },
                    crate::base::shown::human_bytes(f.bytes)
                )
            })
            .collect();
        let flags: Vec<String> = families
            .iter()
            .map(|f| format!("--prune '{}'", f.pattern))
            .collect();
        format!(
            "its largest weight families are {}: prune them with {}, or choose others",
            sizes.join(", "),
            flags.join(" ")
        )
    };
    let rule = if options.rule.prune.is_empty() && !options.rule.prune_all {
        "the default rule, which knows TensorRT-LLM's tensor names,"
    } else {
        "the rule"
    };
    Err(Error::refused(
        checkpoint_dir,
        format!(
            "{rule} prunes none of the {tensors} tensors of this folder, so the output would be a full copy, and nothing was written; {suggestion}; or give --full-copy to copy it as it is"
        ),
    ))
}

/// Writes every output to a temp file, verifies them if asked, then
/// commits them all (`stage`).
pub fn execute(prepared: &Prepared, options: &Options, progress: &dyn Progress) -> Result<Summary> {
    // The copies clone at the block size the plans were made for.
    let options = &Options {
        align: Some(prepared.block),
        ..options.clone()
    };
    let flush = options.fsync || prepared.in_place;
    let mut staging = open_staging(prepared, flush, &options.cancel)?;
    let StagedOutputs { jobs, generated } = stage_outputs(prepared, &mut staging);
    check_space(prepared, &staging, &jobs, &generated, options)?;

    let mut warnings = Vec::new();
    for (g, staged) in &generated {
        warnings.extend(write_new(&staging, staged, g, flush, prepared.in_place)?);
    }
    // With --verify, the total counts the bytes the check reads too.
    let to_verify: u64 = match options.verify {
        true => jobs.iter().map(|(job, _)| job_bytes_to_compare(job)).sum(),
        false => 0,
    };
    progress.set_total(prepared.bytes_to_move() + to_verify);
    progress.set_files(jobs.len());
    let in_place = prepared.in_place;
    let settings = CopySettings {
        jobs: options.jobs,
        align: options.align,
        methods: options.methods,
        fetch_jobs: options.fetch_jobs,
        cancel: options.cancel.clone(),
    };
    let (stats, job_warnings) = run_jobs(&staging, &jobs, &settings, flush, in_place, progress)?;
    warnings.extend(job_warnings);
    options.cancel.check()?;
    let verified = match options.verify {
        true => Some(verify_outputs(
            prepared, &jobs, &generated, options, progress,
        )?),
        false => None,
    };
    let mut recovered = std::mem::take(&mut staging.recovered);
    let report = staging.commit()?;
    recovered.extend(report.recovered);
    Ok(Summary {
        warnings,
        ..Summary::of(prepared, stats, verified, recovered)
    })
}

/// The staging area in the output folder, once the folder is known to be
/// none of the inputs' and to hold no stale ranks.
fn open_staging(prepared: &Prepared, flush: bool, cancel: &Cancel) -> Result<Staging> {
    let staging = Staging::open_checked(&prepared.out_dir, flush, cancel.clone(), &|dir| {
        refuse_input_folders(dir, prepared)?;
        refuse_stale_ranks(dir, prepared)
    })?;
    // Dropping `staging` removes its journal (and a folder it created).
    refuse_mirrored_input_folders(&prepared.out_dir, staging.journal_name(), prepared)?;
    Ok(staging)
}

/// The outputs of a run, each with its place in the staging area.
struct StagedOutputs<'a> {
    /// The pruned and copied files, largest first.
    jobs: Vec<(Job<'a>, StagedFile)>,
    /// The files produced from text (config.json, a shard index),
    /// committed last.
    generated: Vec<(&'a GeneratedFile, StagedFile)>,
}

/// Adds every output to the staging area: the copy jobs, largest first,
/// and the generated files, which are committed last.
fn stage_outputs<'a>(prepared: &'a Prepared, staging: &mut Staging) -> StagedOutputs<'a> {
    let mut jobs: Vec<(Job, StagedFile)> = Vec::new();
    // In place, each file is replaced only if it is still the one read.
    let read = |stamp| prepared.in_place.then_some(stamp);
    for file in &prepared.files {
        let staged = staging.add_made_from(&file.name, file.input.stamp().and_then(read));
        jobs.push((Job::Prune(file), staged));
    }
    for extra in &prepared.extra_files {
        jobs.push((Job::Copy(extra), staging.add(file_name(&extra.path))));
    }
    // Added last, so committed last: config.json (or the shard index) says
    // "pruned" only once every other file is in place.
    let generated: Vec<(&GeneratedFile, StagedFile)> = prepared
        .generated
        .iter()
        .map(|g| (g, staging.add_made_from(&g.name, g.read.and_then(read))))
        .collect();
    // Largest first, so parallel workers finish together.
    jobs.sort_by_key(|(job, _)| std::cmp::Reverse(job.bytes()));
    StagedOutputs { jobs, generated }
}

/// The verdicts of `--verify` on the staged outputs; the first failed one
/// is the run's error, and nothing is kept.
fn verify_outputs(
    prepared: &Prepared,
    jobs: &[(Job, StagedFile)],
    generated: &[(&GeneratedFile, StagedFile)],
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<FileVerdict>> {
    let verdicts = verify_staged(prepared, jobs, generated, &options.cancel, progress)?;
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
    Ok(verdicts)
}

/// Refuses the run, before anything is written, when its outputs would
/// not fit in the output filesystem or pass the file size limit (`space`).
fn check_space(
    prepared: &Prepared,
    staging: &Staging,
    jobs: &[(Job, StagedFile)],
    generated: &[(&GeneratedFile, StagedFile)],
    options: &Options,
) -> Result<()> {
    let whole_files: Vec<[CopyRange; 1]> = jobs
        .iter()
        .map(|(job, _)| {
            [CopyRange {
                src: 0,
                dst: 0,
                len: job.input().len(),
            }]
        })
        .collect();
    let mut outputs: Vec<space::Output> = jobs
        .iter()
        .zip(&whole_files)
        .map(|((job, staged), whole)| match job {
            Job::Prune(f) => space::Output {
                target: &staged.target,
                len: f.plan.output_len,
                written: f.plan.header_bytes.len() as u64,
                copied: Some((&f.input, &f.plan.copies)),
            },
            Job::Copy(input) => space::Output {
                target: &staged.target,
                len: input.len(),
                written: 0,
                copied: Some((input, whole)),
            },
        })
        .collect();
    outputs.extend(generated.iter().map(|(g, staged)| space::Output {
        target: &staged.target,
        len: g.text.len() as u64,
        written: g.text.len() as u64,
        copied: None,
    }));
    // The journal, written at the commit, is as much an output.
    let journal = prepared.out_dir.join(staging.journal_name());
    let journal_len = staging.journal_len_bound();
    outputs.push(space::Output {
        target: &journal,
        len: journal_len,
        written: journal_len,
        copied: None,
    });
    space::check(
        &prepared.out_dir,
        staging.filesystem().ok().as_ref(),
        &outputs,
        (options.methods, prepared.block),
        staging.scratch_file().ok().as_ref(),
    )
}

/// Verifies the finished temp files against their inputs.
/// The bytes `--verify` reads to check one job's output.
fn job_bytes_to_compare(job: &Job) -> u64 {
    match job {
        Job::Prune(f) => verify::bytes_to_compare(&f.plan, &f.header),
        Job::Copy(input) => 2 * input.len(),
    }
}

fn verify_staged(
    prepared: &Prepared,
    jobs: &[(Job, StagedFile)],
    generated: &[(&GeneratedFile, StagedFile)],
    cancel: &Cancel,
    progress: &dyn Progress,
) -> Result<Vec<FileVerdict>> {
    let mut verdicts = Vec::new();
    for (job, staged) in jobs {
        verdicts.push(match job {
            Job::Prune(f) => verify::verify_safetensors(
                &f.name,
                &f.input,
                &f.header,
                (&f.plan, &prepared.rule),
                &staged.temp,
                cancel,
                progress,
            )?,
            Job::Copy(input) => verify::verify_copy(
                &file_name(&input.path).to_string_lossy(),
                input,
                &staged.temp,
                cancel,
                progress,
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
