//! Checking a pruned output against its input and the plan for it: every
//! name present with its dtype, every tensor the plan prunes empty (shape
//! `[0]`, no bytes), every tensor it keeps with its shape and its bytes
//! (CRC32 of input and output ranges), other files identical. For a hollow
//! plan, every tensor keeps its shape and offsets and the pruned ones must
//! read as zeros (only their data segments are read). The same
//! check serves `--verify` after a run and `verify` on any pair, given the
//! rule the output was made with.

use std::path::{Path, PathBuf};

use crate::base::error::{Error, Result};
use crate::base::file::file_name;
use crate::base::interrupt::Cancel;
use crate::base::progress::Progress;
use crate::base::shown::shown;
use crate::commit::out_dir::{default_out_dir, is_url, resolve_out_dir, OUT_DIR_IS_LOCAL};
use crate::commit::recover::recover_or_note;
use crate::copy::space::DataSegments;
use crate::plan::file::{is_emptied, plan_file, plan_hollow_file};
use crate::plan::rule::PruneRule;
use crate::plan::PrunePlan;
use crate::plan::SHARE_ALIGNMENT;
use crate::read::checkpoint::{Checkpoint, Layout};
use crate::read::config::{ConfigFile, CONFIG_FILE, IS_PRUNED_KEY};
use crate::read::folder::{Folder, Place};
use crate::read::header::{Header, TensorEntry};
use crate::read::index::IndexFile;
use crate::read::input::{open_safetensors, InputFile};
use crate::read::ranks::parse_rank_file_name;

/// The verdict on one output file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileVerdict {
    /// The file's name in the output folder.
    pub name: String,
    /// Tensors the rule prunes.
    pub tensors_pruned: usize,
    /// Tensors the rule keeps.
    pub tensors_kept: usize,
    /// Kept tensors whose bytes were compared (the others failed before).
    pub tensors_compared: usize,
    /// Bytes whose CRC32 was compared (and, in a hollow output, the bytes
    /// of pruned tensors read to check they are zeros).
    pub bytes_checked: u64,
    /// The file was checked as a hollow output: pruned tensors read as
    /// zeros instead of being empty.
    pub hollow: bool,
    /// The mismatches found, one line each (the first
    /// [`FileVerdict::MAX_PROBLEMS`]).
    pub problems: Vec<String>,
    /// Mismatches found beyond those in `problems`.
    pub problems_omitted: usize,
}

impl FileVerdict {
    /// Most problems a verdict lists; it counts the others.
    pub const MAX_PROBLEMS: usize = MAX_PROBLEMS;

    /// Whether the file matched: no problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The re-read buffer: the copier's fallible, halving allocation, so a
/// low `ulimit -v` with many jobs is an error naming the file, not an
/// abort (exit 134).
fn verify_buffer(output: &Path) -> Result<Vec<u8>> {
    crate::copy::ranges::fallback_buffer().ok_or_else(|| {
        Error::io(
            output,
            "cannot get a buffer to verify",
            std::io::Error::from(std::io::ErrorKind::OutOfMemory),
        )
    })
}

/// CRC32 of `len` bytes of `input` from `offset`, read through `buffer`
/// (for a remote input, one ranged read per buffer), telling `on_read` the
/// bytes of each read.
fn crc32_counted(
    input: &InputFile,
    (offset, len): (u64, u64),
    buffer: &mut [u8],
    cancel: &Cancel,
    on_read: &dyn Fn(u64),
) -> Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut done = 0u64;
    while done < len {
        cancel.check()?;
        let want = (len - done).min(buffer.len() as u64) as usize;
        let n = match input.read_at(&mut buffer[..want], offset + done)? {
            0 => {
                return Err(Error::InputChanged {
                    file: input.path.clone(),
                    offset: offset + done,
                })
            }
            n => n,
        };
        hasher.update(&buffer[..n]);
        on_read(n as u64);
        done += n as u64;
    }
    Ok(hasher.finalize())
}

/// Compares the safetensors file at `output` with its input under `plan`.
pub fn verify_safetensors(
    name: &str,
    input: &InputFile,
    in_header: &Header,
    (plan, rule): (&PrunePlan, &PruneRule),
    output: &Path,
    cancel: &Cancel,
    progress: &dyn Progress,
) -> Result<FileVerdict> {
    if let Some(missing) = missing(name, output) {
        return Ok(missing);
    }
    let (out_file, out_header) = open_safetensors(output)?;
    let bar = progress.check(
        std::ffi::OsStr::new(name),
        bytes_to_compare(plan, in_header),
    );
    let on_read = |n: u64| bar.inc(n);
    let mut check = FileCheck {
        input: (input, in_header),
        output: (&out_file, &out_header),
        rule,
        buffer: verify_buffer(output)?,
        cancel,
        on_read: &on_read,
        verdict: FileVerdict {
            name: name.to_string(),
            hollow: plan.hollow,
            ..FileVerdict::default()
        },
        kept_emptied: 0,
        pruned_whole: 0,
    };
    let mut out_by_name = std::collections::HashMap::with_capacity(out_header.tensor_count());
    for t in out_header.tensors() {
        out_by_name.insert(t.name(), t);
    }
    for (t, outcome) in plan.tensors_of(in_header) {
        match out_by_name.remove(t.name()) {
            Some(o) => check.tensor(&t, &o, outcome.pruned)?,
            None => check.problem(format!(
                "tensor `{}` is missing from the output",
                shown(t.name())
            )),
        }
    }
    for name in out_by_name.keys() {
        check.problem(format!(
            "tensor `{}` is in the output but not in the input",
            shown(name)
        ));
    }
    let verdict = check.finish();
    bar.done();
    Ok(verdict)
}

/// One output file's check under way: the input and the output with their
/// headers, and what was found so far.
struct FileCheck<'a> {
    input: (&'a InputFile, &'a Header),
    output: (&'a InputFile, &'a Header),
    rule: &'a PruneRule,
    buffer: Vec<u8>,
    cancel: &'a Cancel,
    on_read: &'a dyn Fn(u64),
    verdict: FileVerdict,
    /// Kept tensors found empty, pruned ones found whole: an output made
    /// with another rule (--prune_all, --hollow) shows as all of one.
    kept_emptied: usize,
    pruned_whole: usize,
}

impl FileCheck<'_> {
    fn problem(&mut self, problem: String) {
        verdict_problem(&mut self.verdict, problem);
    }

    /// Checks the input tensor `t` against its output `o`; `pruned`: the
    /// plan prunes it.
    fn tensor(&mut self, t: &TensorEntry, o: &TensorEntry, pruned: bool) -> Result<()> {
        if o.dtype() != t.dtype() {
            self.problem(format!(
                "tensor `{}` has dtype {} in the output but {} in the input",
                shown(t.name()),
                o.dtype(),
                t.dtype()
            ));
            return Ok(());
        }
        if self.verdict.hollow {
            if !self.hollow_in_place(t, o) {
                return Ok(());
            }
            if pruned {
                return self.zeros(t, o);
            }
        }
        let empty = is_emptied(*o);
        if pruned {
            self.verdict.tensors_pruned += 1;
            if !empty {
                if o.shape() == t.shape() {
                    self.pruned_whole += 1;
                }
                self.problem(format!(
                    "tensor `{}` should be empty ({}) but the output holds {:?}",
                    shown(t.name()),
                    self.rule.decide(t.name()).reason,
                    o.shape()
                ));
            }
            return Ok(());
        }
        self.verdict.tensors_kept += 1;
        if empty && t.shape() != [0] {
            self.kept_emptied += 1;
            self.problem(format!(
                "tensor `{}` was emptied, but the rule keeps it ({})",
                shown(t.name()),
                self.rule.decide(t.name()).reason
            ));
            return Ok(());
        }
        if o.shape() != t.shape() {
            self.problem(format!(
                "tensor `{}` has shape {:?} in the output but {:?} in the input",
                shown(t.name()),
                o.shape(),
                t.shape()
            ));
            return Ok(());
        }
        self.same_bytes(t, o)
    }

    /// Whether a tensor of a hollow output keeps its shape and its place
    /// (a problem says otherwise).
    fn hollow_in_place(&mut self, t: &TensorEntry, o: &TensorEntry) -> bool {
        let (in_start, out_start) = (self.input.1.data_start(), self.output.1.data_start());
        let same_place = o.begin() == t.begin() && o.end() == t.end() && out_start == in_start;
        if o.shape() == t.shape() && same_place {
            return true;
        }
        self.problem(format!(
            "tensor `{}` has shape {:?} at output bytes {}..{} but {:?} at input bytes {}..{} (a hollow output keeps both)",
            shown(t.name()),
            o.shape(),
            out_start + o.begin(),
            out_start + o.end(),
            t.shape(),
            in_start + t.begin(),
            in_start + t.end(),
        ));
        false
    }

    /// A pruned tensor of a hollow output must read as zeros.
    fn zeros(&mut self, t: &TensorEntry, o: &TensorEntry) -> Result<()> {
        self.verdict.tensors_pruned += 1;
        let start = self.output.1.data_start() + o.begin();
        let (nonzero, scanned) = first_nonzero(
            self.output.0,
            start,
            o.byte_len(),
            &mut self.buffer,
            self.cancel,
        )?;
        self.verdict.bytes_checked += scanned;
        if let Some(at) = nonzero {
            self.problem(format!(
                "tensor `{}` should read as zeros ({}) but output byte {at} is not zero",
                shown(t.name()),
                self.rule.decide(t.name()).reason,
            ));
        }
        Ok(())
    }

    /// A kept tensor's bytes: the CRC32 of both, and where they first
    /// differ when they do.
    fn same_bytes(&mut self, t: &TensorEntry, o: &TensorEntry) -> Result<()> {
        let ((input, in_header), (out_file, out_header)) = (self.input, self.output);
        let len = t.byte_len();
        let in_start = in_header.data_start() + t.begin();
        let out_start = out_header.data_start() + o.begin();
        let (buffer, cancel, on_read) = (&mut self.buffer, self.cancel, self.on_read);
        let a = crc32_counted(input, (in_start, len), buffer, cancel, on_read)?;
        let b = crc32_counted(out_file, (out_start, len), buffer, cancel, on_read)?;
        self.verdict.bytes_checked += len;
        self.verdict.tensors_compared += 1;
        if a == b {
            return Ok(());
        }
        let first = first_difference(
            (input, in_start),
            (out_file, out_start),
            len,
            buffer,
            cancel,
        )?;
        let at = match first {
            Some(k) => format!(
                "first at output byte {} (input byte {}, byte {k} of the tensor)",
                out_start + k,
                in_start + k
            ),
            // Changed between the two reads.
            None => format!("output bytes from {out_start}"),
        };
        self.problem(format!(
            "tensor `{}`: bytes differ, {at}; crc32 {a:08x} in the input, {b:08x} in the output",
            shown(t.name()),
        ));
        Ok(())
    }

    /// The verdict, with a hint first when the output looks made with
    /// another rule.
    fn finish(mut self) -> FileVerdict {
        let (pruned, kept) = (self.verdict.tensors_pruned, self.verdict.tensors_kept);
        let hint = if kept > 0 && self.kept_emptied == kept {
            Some("every tensor is empty: the output looks pruned with --prune_all; verify with the rule it was made with")
        } else if pruned > 0 && self.pruned_whole == pruned && !self.verdict.hollow {
            Some("no pruned tensor is empty, each keeps its shape: the output looks pruned with --hollow; verify with --hollow")
        } else {
            None
        };
        if let Some(hint) = hint {
            // First, so the listing's cap never hides it.
            self.verdict.problems.insert(0, hint.to_string());
        }
        self.verdict
    }
}

/// The file offset of the first byte that is not zero in `len` bytes of
/// `file` from `offset`, and the bytes read to find out: only its data
/// segments are read (`SEEK_DATA`/`SEEK_HOLE`), so checking a hollow file
/// costs what it stores, not its size.
fn first_nonzero(
    file: &InputFile,
    offset: u64,
    len: u64,
    buffer: &mut [u8],
    cancel: &Cancel,
) -> Result<(Option<u64>, u64)> {
    let Some(local) = file.local() else {
        return Err(Error::invalid(&file.path, "not a local file"));
    };
    let end = offset.saturating_add(len);
    let mut segments = DataSegments::new(&local.file);
    let mut scanned = 0u64;
    let mut found = None;
    segments.each_within(offset, end, |data, data_end| {
        let mut at = data;
        while at < data_end && found.is_none() {
            cancel.check()?;
            let want = (data_end - at).min(buffer.len() as u64) as usize;
            let n = match file.read_at(&mut buffer[..want], at)? {
                0 => {
                    return Err(Error::InputChanged {
                        file: file.path.clone(),
                        offset: at,
                    })
                }
                n => n,
            };
            match buffer[..n].iter().position(|&b| b != 0) {
                Some(i) => {
                    found = Some(at + i as u64);
                    scanned += i as u64 + 1;
                }
                None => {
                    at += n as u64;
                    scanned += n as u64;
                }
            }
        }
        Ok(())
    })?;
    Ok((found, scanned))
}

/// Compares a copied file with its input, byte for byte (by CRC32).
pub fn verify_copy(
    name: &str,
    input: &InputFile,
    output: &Path,
    cancel: &Cancel,
    progress: &dyn Progress,
) -> Result<FileVerdict> {
    if let Some(missing) = missing(name, output) {
        return Ok(missing);
    }
    let out = InputFile::open(output)?;
    let mut verdict = FileVerdict {
        name: name.to_string(),
        ..FileVerdict::default()
    };
    let mut buffer = verify_buffer(output)?;
    if out.len() != input.len() {
        verdict.problems.push(format!(
            "{} bytes in the output but {} in the input",
            out.len(),
            input.len()
        ));
        return Ok(verdict);
    }
    let bar = progress.check(std::ffi::OsStr::new(name), 2 * input.len());
    let on_read = |n: u64| bar.inc(n);
    let a = crc32_counted(input, (0, input.len()), &mut buffer, cancel, &on_read)?;
    let b = crc32_counted(&out, (0, out.len()), &mut buffer, cancel, &on_read)?;
    bar.done();
    verdict.bytes_checked = input.len();
    if a != b {
        verdict.problems.push(format!(
            "contents differ (crc32 {a:08x} in the input, {b:08x} in the output)"
        ));
    }
    Ok(verdict)
}

/// Checks that the output config is the input's with `"is_pruned": true`.
pub fn verify_config(input: &ConfigFile, output: &Path) -> Result<FileVerdict> {
    if let Some(missing) = missing(CONFIG_FILE, output) {
        return Ok(missing);
    }
    let out = ConfigFile::read(output)?;
    let mut verdict = FileVerdict {
        name: CONFIG_FILE.to_string(),
        bytes_checked: out.text.len() as u64,
        ..FileVerdict::default()
    };
    if !out.is_pruned() {
        verdict
            .problems
            .push("`is_pruned` is not true (for every JSON reader)".to_string());
    }
    let strip = |c: &ConfigFile| {
        let mut o = c.object.clone();
        o.shift_remove(IS_PRUNED_KEY);
        o
    };
    if strip(input) != strip(&out) {
        verdict
            .problems
            .push("differs from the input's config beyond `is_pruned`".to_string());
    }
    Ok(verdict)
}

/// Checks the output shard index `name` in `out_dir` against the output
/// shards `shards`: every tensor of every shard mapped to its shard, no
/// name mapped that no shard holds, and `metadata.total_size` equal to the
/// bytes of tensor data the shards hold.
pub fn verify_index(name: &str, out_dir: &Path, shards: &[String]) -> Result<FileVerdict> {
    let path = out_dir.join(name);
    let mut verdict = FileVerdict {
        name: name.to_string(),
        ..FileVerdict::default()
    };
    if let Some(missing) = missing(name, &path) {
        return Ok(missing);
    }
    let index = IndexFile::read(&path, name)?;
    let map = index.weight_map();
    let mut problem = |p: String| verdict_problem(&mut verdict, p);
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for shard in shards {
        let shard_path = out_dir.join(shard);
        if !shard_path.exists() {
            continue; // The shard's own verdict says it is missing.
        }
        let (_, header) = open_safetensors(&shard_path)?;
        for t in header.tensors() {
            total = total.saturating_add(t.byte_len());
            seen.insert(t.name().to_owned());
            match map.get(t.name()) {
                Some(file) if file == shard => {}
                Some(file) => problem(format!(
                    "tensor `{}` is in {} but weight_map says {}",
                    shown(t.name()),
                    shown(shard),
                    shown(file)
                )),
                None => problem(format!(
                    "tensor `{}` of {} is missing from weight_map",
                    shown(t.name()),
                    shown(shard)
                )),
            }
        }
    }
    for (tensor, file) in &map {
        if !seen.contains(*tensor) {
            problem(format!(
                "weight_map maps `{}` to {}, which does not hold it",
                shown(tensor),
                shown(file)
            ));
        }
    }
    match index.total_size() {
        Some(size) if size == total => {}
        Some(size) => problem(format!(
            "metadata.total_size is {size} but the shards hold {total} bytes of tensor data"
        )),
        None => problem("metadata.total_size is missing".to_string()),
    }
    Ok(verdict)
}

/// Verdicts for rank files in `out_dir` beyond `world_size`: a folder whose
/// config says fewer ranks than it holds disagrees with itself.
pub fn verify_no_extra_ranks(out_dir: &Path, world_size: u64) -> Result<Vec<FileVerdict>> {
    let listing = std::fs::read_dir(out_dir).map_err(|e| Error::io(out_dir, "cannot list", e))?;
    let mut verdicts = Vec::new();
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rank) = parse_rank_file_name(&name).filter(|&r| r >= world_size) {
            verdicts.push(FileVerdict {
                problems: vec![format!(
                    "rank {rank} is beyond world_size {world_size} of config.json"
                )],
                name,
                ..FileVerdict::default()
            });
        }
    }
    Ok(verdicts)
}

/// A failing verdict for an output that is not there, or `None`.
fn missing(name: &str, output: &Path) -> Option<FileVerdict> {
    std::fs::symlink_metadata(output)
        .is_err()
        .then(|| FileVerdict {
            name: name.to_string(),
            problems: vec!["missing from the output".to_string()],
            ..FileVerdict::default()
        })
}

/// The bytes verifying a file under `plan` reads: each kept tensor in the
/// input and in the output.
pub(crate) fn bytes_to_compare(plan: &PrunePlan, header: &Header) -> u64 {
    let kept: u64 = plan
        .tensors_of(header)
        .filter(|(_, t)| !t.pruned)
        .map(|(entry, _)| entry.byte_len())
        .sum();
    2 * kept
}

/// Most mismatches a verdict keeps, one line each: a badly broken output
/// could list thousands; the first ones tell, the rest are counted.
pub const MAX_PROBLEMS: usize = 100;

fn verdict_problem(verdict: &mut FileVerdict, problem: String) {
    if verdict.problems.len() < MAX_PROBLEMS {
        verdict.problems.push(problem);
    } else {
        verdict.problems_omitted += 1;
    }
}

/// The offset, from the start of both ranges, of the first byte that
/// differs in `len` bytes of `a` and `b` (each a file and an offset), read
/// through the two halves of `buffer`; `None` if they read the same.
fn first_difference(
    (a, a_start): (&InputFile, u64),
    (b, b_start): (&InputFile, u64),
    len: u64,
    buffer: &mut [u8],
    cancel: &Cancel,
) -> Result<Option<u64>> {
    let half = (buffer.len() / 2).max(1);
    let (left, right) = buffer.split_at_mut(half.min(buffer.len()));
    let step = left.len().min(right.len()).max(1) as u64;
    let mut done = 0u64;
    while done < len {
        cancel.check()?;
        let want = (len - done).min(step) as usize;
        read_exact_at(a, &mut left[..want], a_start + done)?;
        read_exact_at(b, &mut right[..want], b_start + done)?;
        if let Some(i) = left[..want]
            .iter()
            .zip(&right[..want])
            .position(|(x, y)| x != y)
        {
            return Ok(Some(done + i as u64));
        }
        done += want as u64;
    }
    Ok(None)
}

/// Fills `buf` from `file` at `offset`; a file that ends first changed
/// since it was read.
fn read_exact_at(file: &InputFile, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64)? {
            0 => {
                return Err(Error::InputChanged {
                    file: file.path.clone(),
                    offset: offset + filled as u64,
                })
            }
            n => filled += n,
        }
    }
    Ok(())
}

/// What `verify` found.
#[derive(Debug)]
#[non_exhaustive]
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

/// The checkpoint folder (its path or URL) and the output folder that
/// `verify` compares: `--out_dir`, or beside a local checkpoint folder its
/// default; it must exist.
fn verify_folders(
    folder: &dyn Folder,
    given_checkpoint_dir: &Path,
    out_dir: Option<&Path>,
) -> Result<(PathBuf, PathBuf)> {
    let checkpoint_dir = folder.shown().to_path_buf();
    let out_dir = match (out_dir, folder.local_dir()) {
        (Some(dir), _) if is_url(dir) => return Err(Error::refused(dir, OUT_DIR_IS_LOCAL)),
        (Some(dir), _) => resolve_out_dir(dir)?,
        (None, Some(dir)) => default_out_dir(given_checkpoint_dir, dir)?,
        (None, None) => {
            return Err(Error::refused(
                &checkpoint_dir,
                "give --out_dir: the output of a remote checkpoint is a local folder",
            ))
        }
    };
    if !out_dir.is_dir() {
        return Err(Error::invalid(&out_dir, "output folder not found"));
    }
    Ok((checkpoint_dir, out_dir))
}

/// Verifies an existing output folder against its checkpoint and the rule
/// it was pruned with.
pub fn verify_existing(
    given_checkpoint_dir: &Path,
    out_dir: Option<&Path>,
    rule: &PruneRule,
    hollow: bool,
    cancel: &Cancel,
    progress: &dyn Progress,
) -> Result<Verification> {
    let folder = Place::resolve(given_checkpoint_dir)?.folder()?;
    let (checkpoint_dir, out_dir) = verify_folders(&*folder, given_checkpoint_dir, out_dir)?;
    let mut recovered = match folder.local_dir() {
        Some(dir) => recover_or_note(dir, cancel)?,
        None => Vec::new(),
    };
    recovered.extend(recover_or_note(&out_dir, cancel)?);
    let checkpoint = Checkpoint::open(&*folder, None)?;
    let mut verdicts = Vec::new();
    // Only the plan's decisions are compared, not its layout (a hollow
    // layout is the input's).
    let plans = checkpoint
        .files
        .iter()
        .map(|f| match hollow {
            true => plan_hollow_file(&f.header, &f.input, rule),
            false => plan_file(&f.header, rule, SHARE_ALIGNMENT, &f.input.path),
        })
        .collect::<Result<Vec<_>>>()?;
    let to_compare: u64 = checkpoint
        .files
        .iter()
        .zip(&plans)
        .map(|(f, plan)| bytes_to_compare(plan, &f.header))
        .chain(checkpoint.extra_files.iter().map(|f| 2 * f.len()))
        .sum();
    progress.set_total(to_compare);
    for (f, plan) in checkpoint.files.iter().zip(plans) {
        verdicts.push(verify_safetensors(
            &f.name,
            &f.input,
            &f.header,
            (&plan, rule),
            &out_dir.join(&f.name),
            cancel,
            progress,
        )?);
    }
    for extra in &checkpoint.extra_files {
        let name = file_name(&extra.path);
        verdicts.push(verify_copy(
            &name.to_string_lossy(),
            extra,
            &out_dir.join(&name),
            cancel,
            progress,
        )?);
    }
    match &checkpoint.layout {
        Layout::TrtLlm { config } => {
            verdicts.push(verify_config(config, &out_dir.join(CONFIG_FILE))?);
            verdicts.extend(verify_no_extra_ranks(&out_dir, config.world_size)?);
        }
        Layout::Generic { index: Some(index) } => {
            let shards: Vec<String> = checkpoint.files.iter().map(|f| f.name.clone()).collect();
            verdicts.push(verify_index(&index.name, &out_dir, &shards)?);
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
