//! `inspect`: the headers of a checkpoint folder or of one `.safetensors`
//! file, planned under a rule, for listing. Reads headers only.

use std::fs;
use std::path::{Path, PathBuf};

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::interrupt::Cancel;
use crate::commit::recover::recover_or_note;
use crate::copy::jobs::file_name;
use crate::plan::rule::PruneRule;
use crate::plan::{PrunePlan, SHARE_ALIGNMENT};
use crate::prune::{plan_file, remote_folder};
use crate::read::checkpoint::Checkpoint;
use crate::read::header::Header;
use crate::read::input::open_safetensors;
use crate::read::ranks::parse_rank_file_name;

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
pub fn inspect(
    path: &Path,
    rule: &PruneRule,
    cancel: &Cancel,
) -> Result<(Vec<Inspected>, Vec<String>)> {
    if let Some(folder) = remote_folder(path)? {
        let checkpoint = Checkpoint::open_remote(&folder, None)?;
        let files = checkpoint
            .files
            .into_iter()
            .map(|f| (f.name, f.input.path, f.header));
        return Ok((plan_all(files, rule)?, checkpoint.warnings));
    }
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::path_not_found(path),
        _ => Error::io(path, "cannot open", e),
    })?;
    let folder = if meta.is_dir() {
        Some(path)
    } else {
        path.parent().filter(|p| !p.as_os_str().is_empty())
    };
    let notes = match folder.map(fs::canonicalize) {
        Some(Ok(dir)) => recover_or_note(&dir, cancel)?,
        _ => Vec::new(),
    };
    let mut notes = notes;
    let files: Vec<(String, PathBuf, Header)> = if meta.is_dir() {
        match Checkpoint::open(path, None) {
            Ok(checkpoint) => checkpoint
                .files
                .into_iter()
                .map(|f| (f.name, f.input.path, f.header))
                .collect(),
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                // Exactly when one wants to look: show what is there.
                let (files, problems) = whatever_is_there(path)?;
                if files.is_empty() {
                    return Err(e);
                }
                notes.push(format!("{}; showing the files that can be read", e.chain()));
                notes.extend(problems);
                files
            }
        }
    } else {
        let (input, header) = open_safetensors(path)?;
        vec![(
            file_name(path).to_string_lossy().into_owned(),
            input.path,
            header,
        )]
    };
    Ok((plan_all(files, rule)?, notes))
}

/// A file's name, path and header.
type NamedHeader = (String, PathBuf, Header);

/// Every `.safetensors` file in a folder that is not a valid checkpoint
/// (a rank missing, a bad `config.json`), rank files first in rank order,
/// with a line for each that cannot be read.
fn whatever_is_there(dir: &Path) -> Result<(Vec<NamedHeader>, Vec<String>)> {
    let listing = fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list", e))?;
    let mut names: Vec<(u64, String)> = listing
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".safetensors"))
        .map(|n| (parse_rank_file_name(&n).unwrap_or(u64::MAX), n))
        .collect();
    names.sort();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (_, name) in names {
        match open_safetensors(&dir.join(&name)) {
            Ok((input, header)) => files.push((name, input.path, header)),
            Err(e) => problems.push(e.chain().to_string()),
        }
    }
    Ok((files, problems))
}

/// Plans each file under `rule`.
fn plan_all(
    files: impl IntoIterator<Item = (String, PathBuf, Header)>,
    rule: &PruneRule,
) -> Result<Vec<Inspected>> {
    files
        .into_iter()
        .map(|(name, path, header)| {
            Ok(Inspected {
                plan: plan_file(&header, rule, SHARE_ALIGNMENT, &path)?,
                name,
                path,
                header,
            })
        })
        .collect()
}
