//! Reading a checkpoint folder: a TensorRT-LLM one (`config.json` and the
//! rank files it implies) or any folder of `.safetensors` files, and the
//! other files that travel with them.
//!
//! Nothing here writes. Every rank file is opened and its header validated
//! before the caller writes anything, so a bad input never leaves a partial
//! output behind.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::base::shown::shown_path;
use crate::read::config::{ConfigFile, CONFIG_FILE};
use crate::read::header::Header;
use crate::read::index::{IndexFile, INDEX_SUFFIX};
use crate::read::input::{open_remote_safetensors, open_safetensors, InputFile};
use crate::read::ranks::{parse_rank_file_name, rank_file_name, RankSet};
use crate::read::remote::RemoteFolder;

/// One safetensors file to prune.
#[derive(Debug)]
pub struct SafetensorsInput {
    /// File name inside the checkpoint folder (and the output folder).
    pub name: String,
    pub input: InputFile,
    pub header: Header,
}

/// What kind of checkpoint a folder holds.
#[derive(Debug)]
pub enum Layout {
    /// TensorRT-LLM: `config.json` and `rank{N}.safetensors`.
    TrtLlm { config: ConfigFile },
    /// Any other folder of `.safetensors` files (Hugging Face style), with
    /// an optional `model.safetensors.index.json`.
    Generic { index: Option<IndexFile> },
}

/// The whole input side of a run: the layout, every safetensors file to
/// prune, the other files.
#[derive(Debug)]
pub struct Checkpoint {
    pub layout: Layout,
    pub files: Vec<SafetensorsInput>,
    /// Other regular files at the top of the folder, copied as they are.
    pub extra_files: Vec<InputFile>,
    /// Things the user should know that are not errors.
    pub warnings: Vec<String>,
}

impl Checkpoint {
    /// Reads the folder, opens and validates every file to prune and lists
    /// the other files. Writes nothing. `ranks` limits a TensorRT-LLM
    /// checkpoint to some of its ranks.
    pub fn open(dir: &Path, ranks: Option<&RankSet>) -> Result<Checkpoint> {
        let meta = fs::metadata(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::invalid(dir, "checkpoint folder not found"),
            _ => Error::io(dir, "cannot open", e),
        })?;
        if !meta.is_dir() {
            return Err(Error::invalid(dir, "checkpoint path is not a folder"));
        }
        let listing = list_folder(dir)?;
        let generic = !listing.iter().any(|e| e.rank.is_some())
            && listing
                .iter()
                .any(|e| e.is_file && e.name.ends_with(".safetensors"));
        let has_config = listing.iter().any(|e| e.name == CONFIG_FILE);
        if !generic && has_config && !listing.iter().any(|e| e.rank.is_some()) {
            if let Ok(config) = ConfigFile::read(&dir.join(CONFIG_FILE)) {
                if !config.object.contains_key("mapping") {
                    return Err(Error::invalid(
                        dir,
                        "no checkpoint here: no rank{N}.safetensors (TensorRT-LLM) and no other .safetensors file; config.json alone has no weights",
                    ));
                }
            }
        }
        if generic {
            if ranks.is_some() {
                return Err(Error::invalid(
                    dir,
                    "--ranks applies to TensorRT-LLM checkpoints (rank{N}.safetensors); this folder has none",
                ));
            }
            Checkpoint::open_generic(listing)
        } else {
            Checkpoint::open_trtllm(dir, listing, ranks)
        }
    }

    fn open_trtllm(
        dir: &Path,
        listing: Vec<FolderEntry>,
        only: Option<&RankSet>,
    ) -> Result<Checkpoint> {
        let config = ConfigFile::read(&dir.join(CONFIG_FILE))?;
        let world_size = config.world_size;
        // world_size comes from a file: nothing is sized by it before it is
        // checked against the rank files that exist.
        let present: std::collections::BTreeSet<u64> =
            listing.iter().filter_map(|e| e.rank).collect();
        let first_missing = (0..=present.len() as u64)
            .find(|r| !present.contains(r))
            .unwrap_or(0);
        if only.is_none() && first_missing < world_size {
            return Err(Error::invalid(
                &dir.join(rank_file_name(first_missing)),
                format!(
                    "rank file missing: config.json has world_size {world_size}, the folder has {} rank file{}",
                    present.len(),
                    if present.len() == 1 { "" } else { "s" }
                ),
            ));
        }
        let ranks: Vec<u64> = match only {
            Some(set) => {
                check_rank_set(&config, set)?;
                set.ranks().to_vec()
            }
            None => (0..world_size).collect(),
        };
        let mut files = Vec::with_capacity(ranks.len());
        for rank in ranks {
            let name = rank_file_name(rank);
            let path = dir.join(&name);
            let (input, header) = open_safetensors(&path).map_err(|e| match e {
                Error::NotFound { file } => Error::Invalid {
                    file,
                    problem: format!("rank file missing: config.json has world_size {world_size}"),
                },
                other => other,
            })?;
            files.push(SafetensorsInput {
                name,
                input,
                header,
            });
        }
        let mut extra = Vec::new();
        let mut warnings = Vec::new();
        for entry in listing {
            if entry.is_dir {
                warnings.push(skipped_folder(&entry));
            }
            if entry.name == CONFIG_FILE || !entry.is_file {
                continue;
            }
            match entry.rank {
                Some(rank) if rank < world_size => {}
                Some(rank) => warnings.push(format!(
                    "{}: skipped: rank {rank} is outside world_size {world_size}",
                    shown_path(&entry.path)
                )),
                None => extra.push(InputFile::open(&entry.path)?),
            }
        }
        Ok(Checkpoint {
            layout: Layout::TrtLlm { config },
            files,
            extra_files: extra,
            warnings,
        })
    }

    fn open_generic(listing: Vec<FolderEntry>) -> Result<Checkpoint> {
        let mut files = Vec::new();
        let mut extra = Vec::new();
        let mut index = None;
        let mut warnings = Vec::new();
        for entry in &listing {
            if entry.is_dir {
                warnings.push(skipped_folder(entry));
            }
        }
        for entry in listing.into_iter().filter(|e| e.is_file) {
            if entry.name.ends_with(".safetensors")
                && entry.path.file_name().and_then(|n| n.to_str()).is_none()
            {
                // Its output would get another (lossy) name: refuse rather
                // than write a file the user did not ask for.
                return Err(Error::invalid(
                    &entry.path,
                    "the file name is not valid UTF-8; rename the shard first",
                ));
            }
            if entry.name.ends_with(".safetensors") {
                let (input, header) = open_safetensors(&entry.path)?;
                files.push(SafetensorsInput {
                    name: entry.name,
                    input,
                    header,
                });
            } else if entry.name.ends_with(INDEX_SUFFIX) && index.is_none() {
                index = Some(IndexFile::read(&entry.path, &entry.name)?);
            } else {
                extra.push(InputFile::open(&entry.path)?);
            }
        }
        if let Some(index) = &index {
            for shard in index.shards() {
                if !files.iter().any(|f| f.name == shard) {
                    return Err(Error::invalid(
                        &index.path,
                        format!("weight_map names shard `{shard}`, which is not in the folder"),
                    ));
                }
            }
        }
        Ok(Checkpoint {
            layout: Layout::Generic { index },
            files,
            extra_files: extra,
            warnings,
        })
    }
}

impl Checkpoint {
    /// [`Checkpoint::open`] for a folder in a store or behind a URL: the
    /// same layouts and checks, from what the remote side shows. A store
    /// lists the folder; over plain HTTP nothing can be listed, so the files
    /// come from `config.json` (TensorRT-LLM: its `world_size` ranks) or
    /// from `model.safetensors.index.json` (or a lone `model.safetensors`),
    /// and other files are not copied, which a warning says.
    pub fn open_remote(folder: &Arc<RemoteFolder>, ranks: Option<&RankSet>) -> Result<Checkpoint> {
        let url = |name: &str| PathBuf::from(folder.object_url(name));
        let root = PathBuf::from(folder.url());
        let text_of = |name: &str| -> Result<Option<String>> {
            match folder.get_small(name)? {
                None => Ok(None),
                Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| {
                    Error::invalid(
                        &url(name),
                        format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                    )
                }),
            }
        };
        let listing = folder.list()?;
        let mut warnings: Vec<String> = (folder.subfolders()?.iter())
            .map(|name| skipped_folder_at(&folder.object_url(name)))
            .collect();
        let names: Option<Vec<String>> = listing
            .as_ref()
            .map(|entries| entries.iter().map(|e| e.name.clone()).collect());
        let has_ranks = names
            .as_ref()
            .is_some_and(|n| n.iter().any(|n| parse_rank_file_name(n).is_some()));
        let config = match text_of(CONFIG_FILE)? {
            Some(text) => Some(ConfigFile::parse(&url(CONFIG_FILE), text)?),
            None => None,
        };
        // A TensorRT-LLM config names `architecture` (a Hugging Face one,
        // `architectures`) and a `mapping`.
        let trtllm_config = config.as_ref().is_some_and(|c| {
            c.object.contains_key("mapping") || c.object.contains_key("architecture")
        });
        let trtllm = has_ranks || (names.is_none() && trtllm_config);
        let mut files = Vec::new();
        let mut extra_files = Vec::new();
        let layout = if trtllm {
            let Some(config) = config else {
                return Err(Error::invalid(
                    &url(CONFIG_FILE),
                    "no config.json: not a TensorRT-LLM checkpoint folder",
                ));
            };
            let world_size = config.world_size;
            if let Some(set) = ranks {
                check_rank_set(&config, set)?;
            }
            // Without a listing, nothing shows how many ranks exist: a server
            // that answers any name would be asked for all of them.
            if names.is_none() && ranks.is_none() && world_size > MAX_UNLISTED_FILES {
                return Err(Error::invalid(
                    &config.path,
                    format!("world_size {world_size} is more rank files than a folder that cannot be listed is read for (at most {MAX_UNLISTED_FILES})"),
                ));
            }
            // Ranks are opened one by one, so a world_size from the file
            // sizes nothing: a missing rank ends the loop with an error.
            let wanted: Box<dyn Iterator<Item = u64>> = match ranks {
                Some(set) => Box::new(set.ranks().to_vec().into_iter()),
                None => Box::new(0..world_size),
            };
            for rank in wanted {
                let name = rank_file_name(rank);
                if names.as_ref().is_some_and(|n| !n.contains(&name)) {
                    return Err(Error::invalid(
                        &url(&name),
                        format!("rank file missing: config.json has world_size {world_size}"),
                    ));
                }
                let (input, header) =
                    open_remote_safetensors(folder, &name).map_err(|e| match e {
                        Error::Remote {
                            kind: crate::base::error::RemoteProblem::NotFound,
                            ..
                        } if names.is_none() => Error::invalid(
                            &url(&name),
                            format!("rank file missing: config.json has world_size {world_size}"),
                        ),
                        other => other,
                    })?;
                files.push(SafetensorsInput {
                    name,
                    input,
                    header,
                });
            }
            for entry in listing.iter().flatten() {
                match parse_rank_file_name(&entry.name) {
                    _ if entry.name == CONFIG_FILE => {}
                    Some(rank) if rank < world_size => {}
                    Some(rank) => warnings.push(format!(
                        "{}: skipped: rank {rank} is outside world_size {world_size}",
                        folder.object_url(&entry.name)
                    )),
                    None => extra_files.push(remote_side_file(folder, &entry.name, entry.size)?),
                }
            }
            Layout::TrtLlm { config }
        } else {
            if ranks.is_some() {
                return Err(Error::invalid(
                    &root,
                    "--ranks applies to TensorRT-LLM checkpoints (rank{N}.safetensors); this folder has none",
                ));
            }
            let index_name = match &names {
                Some(n) => n.iter().find(|n| n.ends_with(INDEX_SUFFIX)).cloned(),
                None => Some(format!("model{INDEX_SUFFIX}")),
            };
            let index = match index_name {
                Some(name) => match text_of(&name)? {
                    Some(text) => Some(IndexFile::parse(&url(&name), &name, &text)?),
                    None => None,
                },
                None => None,
            };
            let shards: Vec<String> = match (&names, &index) {
                (Some(n), _) => n
                    .iter()
                    .filter(|n| n.ends_with(".safetensors"))
                    .cloned()
                    .collect(),
                (None, Some(index)) => {
                    let shards = index.shards();
                    if shards.len() as u64 > MAX_UNLISTED_FILES {
                        return Err(Error::invalid(
                            &index.path,
                            format!("weight_map names {} shards, more than a folder that cannot be listed is read for (at most {MAX_UNLISTED_FILES})", shards.len()),
                        ));
                    }
                    shards
                }
                (None, None) => vec!["model.safetensors".to_string()],
            };
            if shards.is_empty() {
                return Err(Error::invalid(
                    &root,
                    "no checkpoint here: no rank{N}.safetensors (TensorRT-LLM) and no .safetensors file",
                ));
            }
            for name in shards {
                let (input, header) = open_remote_safetensors(folder, &name)?;
                files.push(SafetensorsInput {
                    name,
                    input,
                    header,
                });
            }
            if let Some(index) = &index {
                for shard in index.shards() {
                    if !files.iter().any(|f| f.name == shard) {
                        return Err(Error::invalid(
                            &index.path,
                            format!("weight_map names shard `{shard}`, which is not in the folder"),
                        ));
                    }
                }
            }
            for entry in listing.iter().flatten() {
                let is_index = index.as_ref().is_some_and(|i| i.name == entry.name);
                if !entry.name.ends_with(".safetensors") && !is_index {
                    extra_files.push(remote_side_file(folder, &entry.name, entry.size)?);
                }
            }
            Layout::Generic { index }
        };
        if listing.is_none() {
            warnings.push(format!(
                "{}: other files (tokenizer, quantization config, ...) are not copied: a plain HTTP server cannot list the folder, so only the files the config or the index names are read",
                folder.url()
            ));
        }
        Ok(Checkpoint {
            layout,
            files,
            extra_files,
            warnings,
        })
    }
}

/// Refuses a `--ranks` list that names a rank beyond `config`'s world_size.
fn check_rank_set(config: &ConfigFile, set: &RankSet) -> Result<()> {
    let world_size = config.world_size;
    match set.ranks().iter().find(|&&r| r >= world_size) {
        Some(bad) => Err(Error::invalid(
            &config.path,
            format!("--ranks asks for rank {bad} but world_size is {world_size}"),
        )),
        None => Ok(()),
    }
}

/// Most files read from a remote folder that cannot be listed (plain
/// HTTP), where only the config or the index says what exists: far more
/// ranks or shards than any real checkpoint has.
const MAX_UNLISTED_FILES: u64 = 4096;

/// A side file of a remote folder, to be copied whole; its identity is
/// taken from its first bytes' answer.
fn remote_side_file(folder: &Arc<RemoteFolder>, name: &str, size: u64) -> Result<InputFile> {
    let (_, info) = folder.read_prefix(name, 0)?;
    if info.size != size {
        return Err(Error::invalid(
            &PathBuf::from(folder.object_url(name)),
            "the object changed while the folder was listed; run again",
        ));
    }
    Ok(InputFile::remote(folder, name, info))
}

/// The warning for a subfolder of a checkpoint, which is not copied:
/// Hugging Face repositories keep the original framework's full weights in
/// `original/`, which a pruned copy must not carry along.
fn skipped_folder(entry: &FolderEntry) -> String {
    skipped_folder_at(&shown_path(&entry.path))
}

/// [`skipped_folder`] for a subfolder shown as `shown` (a URL).
fn skipped_folder_at(shown: &str) -> String {
    format!("{shown}: skipped: subfolders are not copied (copy it yourself if the output needs it)")
}

/// One entry at the top of a checkpoint folder.
struct FolderEntry {
    name: String,
    path: PathBuf,
    /// A regular file, or a symlink to one.
    is_file: bool,
    /// A folder, or a symlink to one.
    is_dir: bool,
    /// `N` for `rank{N}.safetensors`.
    rank: Option<u64>,
}

/// The folder's entries, sorted by name, without our own temp files.
fn list_folder(dir: &Path) -> Result<Vec<FolderEntry>> {
    let mut entries = Vec::new();
    let read = fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list", e))?;
    for entry in read {
        let entry = entry.map_err(|e| Error::io(dir, "cannot list", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::base::side_file::is_side_file(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let meta = fs::metadata(&path);
        let is_file = meta.as_ref().is_ok_and(|m| m.is_file());
        let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
        let rank = parse_rank_file_name(&name);
        entries.push(FolderEntry {
            name,
            path,
            is_file,
            is_dir,
            rank,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}
