//! `inspect`: the headers of a checkpoint folder or of one `.safetensors`
//! file, planned under a rule, for listing. Reads headers only.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::interrupt::Cancel;
use crate::commit::out_dir::is_url;
use crate::commit::recover::recover_or_note;
use crate::plan::file::plan_file;
use crate::plan::rule::PruneRule;
use crate::plan::{PrunePlan, SHARE_ALIGNMENT};
use crate::read::checkpoint::Checkpoint;
use crate::read::folder::{Entry, Folder, Place};
use crate::read::header::Header;
use crate::read::ranks::parse_rank_file_name;

/// One safetensors file as `inspect` shows it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspected {
    /// The file's name in its folder.
    pub name: String,
    /// Its path (or URL).
    pub path: PathBuf,
    /// Its header, validated.
    pub header: Header,
    /// What the rule would do to it.
    pub plan: PrunePlan,
}

/// Reads the headers of a checkpoint folder (TensorRT-LLM or generic) or a
/// single `.safetensors` file, local or remote, and plans them under
/// `rule`. Reads headers only.
pub fn inspect(
    path: &Path,
    rule: &PruneRule,
    cancel: &Cancel,
) -> Result<(Vec<Inspected>, Vec<String>)> {
    // What inspect is given may be a file: a missing one is a path, not a
    // checkpoint folder.
    let place = Place::resolve(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound if !is_url(path) => Error::path_not_found(path),
        _ => e,
    })?;
    let folder = match &place {
        Place::Folder(folder) | Place::File { folder, .. } => Arc::clone(folder),
    };
    let local = folder.local_dir().filter(|d| !d.as_os_str().is_empty());
    let mut notes = match local.map(fs::canonicalize) {
        Some(Ok(dir)) => recover_or_note(&dir, cancel)?,
        _ => Vec::new(),
    };
    let files: Vec<NamedHeader> = match place {
        Place::File { folder, name } => {
            let (input, header) = folder.open_safetensors(&name)?;
            vec![(name.to_string_lossy().into_owned(), input.path, header)]
        }
        Place::Folder(folder) => match Checkpoint::open(&*folder, None) {
            Ok(checkpoint) => {
                notes.extend(checkpoint.warnings);
                checkpoint
                    .files
                    .into_iter()
                    .map(|f| (f.name, f.input.path, f.header))
                    .collect()
            }
            Err(e @ Error::Interrupted { .. }) => return Err(e),
            Err(e) => {
                // Exactly when one wants to look: show what is there.
                let (files, problems) = whatever_is_there(&*folder)?;
                if files.is_empty() {
                    return Err(e);
                }
                notes.push(format!("{}; showing the files that can be read", e.chain()));
                notes.extend(problems);
                files
            }
        },
    };
    Ok((plan_all(files, rule)?, notes))
}

/// A file's name, path and header.
type NamedHeader = (String, PathBuf, Header);

/// Every `.safetensors` file in a folder that is not a valid checkpoint
/// (a rank missing, a bad `config.json`), rank files first in rank order,
/// with a line for each that cannot be read.
fn whatever_is_there(folder: &dyn Folder) -> Result<(Vec<NamedHeader>, Vec<String>)> {
    let listing = folder.list()?.unwrap_or_default();
    let mut names: Vec<(u64, Entry)> = listing
        .into_iter()
        .filter(|e| e.name_is_utf8() && e.name.ends_with(".safetensors"))
        .map(|e| (parse_rank_file_name(&e.name).unwrap_or(u64::MAX), e))
        .collect();
    names.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (_, entry) in names {
        match folder.open_safetensors(&entry.file_name) {
            Ok((input, header)) => files.push((entry.name, input.path, header)),
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
