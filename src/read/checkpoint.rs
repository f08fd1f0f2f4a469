//! Reading a checkpoint folder: a TensorRT-LLM one (`config.json` and the
//! rank files it implies) or any folder of `.safetensors` files, and the
//! other files that travel with them.
//!
//! The rules are written once, over [`Folder`]: a local folder and a remote
//! one are read alike. Where a folder cannot be listed (plain HTTP), the
//! files come from `config.json` (TensorRT-LLM: its `world_size` ranks) or
//! from `model.safetensors.index.json` (or a lone `model.safetensors`), and
//! the side files of a Hugging Face model from a list of names it is known
//! to need ([`KNOWN_SIDE_FILES`]); a warning says that others could not be
//! discovered.
//!
//! Nothing here writes. Every rank file is opened and its header validated
//! before the caller writes anything, so a bad input never leaves a partial
//! output behind.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;

use crate::base::error::{Error, ErrorKind, RemoteProblem, Result};
use crate::base::shown::shown_path;
use crate::read::config::{ConfigFile, CONFIG_FILE};
use crate::read::folder::{is_not_found, Entry, EntryKind, Folder};
use crate::read::header::Header;
use crate::read::index::{IndexFile, INDEX_SUFFIX};
use crate::read::input::InputFile;
use crate::read::ranks::{parse_rank_file_name, rank_file_name, RankSet};

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

/// Files a Hugging Face model needs beside its weights, looked for by name
/// where a folder cannot be listed (plain HTTP).
pub const KNOWN_SIDE_FILES: [&str; 16] = [
    CONFIG_FILE,
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "spiece.model",
    "README.md",
];

/// Most files read from a remote folder that cannot be listed (plain
/// HTTP), where only the config or the index says what exists: far more
/// ranks or shards than any real checkpoint has.
const MAX_UNLISTED_FILES: u64 = 4096;

/// The layout one rule ([`Checkpoint::open`]) finds; a TensorRT-LLM one
/// with its config when the rule already read it.
enum Found {
    TrtLlm(Option<Box<ConfigFile>>),
    Generic,
}

impl Checkpoint {
    /// Reads the folder, opens and validates every file to prune and lists
    /// the other files. Writes nothing. `ranks` limits a TensorRT-LLM
    /// checkpoint to some of its ranks.
    ///
    /// The layout: rank files make a TensorRT-LLM checkpoint; other
    /// `.safetensors` files a generic one; with neither (or where nothing
    /// can be listed), a `config.json` of TensorRT-LLM's (`mapping` or
    /// `architecture`, where Hugging Face writes `architectures`) makes a
    /// TensorRT-LLM one.
    pub fn open(folder: &dyn Folder, ranks: Option<&RankSet>) -> Result<Checkpoint> {
        let listing = folder.list()?;
        let found = match &listing {
            Some(entries) => found_in_listing(folder, entries)?,
            None => match read_config(folder)? {
                Some(config) if is_trtllm_config(&config) => Found::TrtLlm(Some(Box::new(config))),
                _ => Found::Generic,
            },
        };
        let mut checkpoint = match found {
            Found::TrtLlm(config) => open_trtllm(folder, listing.as_deref(), config, ranks)?,
            Found::Generic => {
                if ranks.is_some() {
                    return Err(Error::invalid(
                        folder.shown(),
                        "--ranks applies to TensorRT-LLM checkpoints (rank{N}.safetensors); this folder has none",
                    ));
                }
                open_generic(folder, listing.as_deref())?
            }
        };
        if let Some(entries) = &listing {
            let subfolders = entries.iter().filter(|e| e.kind == EntryKind::Folder);
            let skipped = subfolders.map(|e| skipped_folder(folder, e));
            checkpoint.warnings.splice(0..0, skipped);
        }
        Ok(checkpoint)
    }
}

/// The layout of a listed folder (see [`Checkpoint::open`]).
fn found_in_listing(folder: &dyn Folder, entries: &[Entry]) -> Result<Found> {
    if entries
        .iter()
        .any(|e| parse_rank_file_name(&e.name).is_some())
    {
        return Ok(Found::TrtLlm(None));
    }
    let is_shard = |e: &Entry| e.kind == EntryKind::File && e.name.ends_with(".safetensors");
    if entries.iter().any(is_shard) {
        return Ok(Found::Generic);
    }
    if !entries.iter().any(|e| e.name == CONFIG_FILE) {
        return Err(Error::invalid(
            folder.shown(),
            "no checkpoint here: no rank{N}.safetensors (TensorRT-LLM) and no other .safetensors file",
        ));
    }
    // A config that cannot be read is reported by the TensorRT-LLM reader.
    match read_config(folder) {
        Ok(Some(config)) if !is_trtllm_config(&config) => Err(Error::invalid(
            folder.shown(),
            "no checkpoint here: no rank{N}.safetensors (TensorRT-LLM) and no other .safetensors file; config.json alone has no weights",
        )),
        _ => Ok(Found::TrtLlm(None)),
    }
}

/// Whether a config is TensorRT-LLM's (`mapping`, or the singular
/// `architecture`) rather than Hugging Face's (`architectures`).
fn is_trtllm_config(config: &ConfigFile) -> bool {
    config.object.contains_key("mapping") || config.object.contains_key("architecture")
}

/// `config.json`, when the folder has one.
fn read_config(folder: &dyn Folder) -> Result<Option<ConfigFile>> {
    let path = folder.path_of(OsStr::new(CONFIG_FILE));
    let Some(file) = folder.read_small(CONFIG_FILE)? else {
        return Ok(None);
    };
    let mut config = ConfigFile::parse(&path, utf8_text(&path, file.bytes)?)?;
    config.stamp = file.stamp;
    Ok(Some(config))
}

/// The index `name`, when the folder has it.
fn read_index(folder: &dyn Folder, name: &str) -> Result<Option<IndexFile>> {
    let path = folder.path_of(OsStr::new(name));
    let Some(file) = folder.read_small(name)? else {
        return Ok(None);
    };
    let mut index = IndexFile::parse(&path, name, &utf8_text(&path, file.bytes)?)?;
    index.stamp = file.stamp;
    Ok(Some(index))
}

fn utf8_text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        Error::invalid(
            path,
            format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// A TensorRT-LLM checkpoint: `config.json` (`read`, or read now), its
/// ranks (or `only`), and the other files of a listed folder.
fn open_trtllm(
    folder: &dyn Folder,
    listing: Option<&[Entry]>,
    read: Option<Box<ConfigFile>>,
    only: Option<&RankSet>,
) -> Result<Checkpoint> {
    let config = match read {
        Some(config) => Some(*config),
        None => read_config(folder)?,
    };
    let Some(config) = config else {
        return Err(Error::no_config(&folder.path_of(OsStr::new(CONFIG_FILE))));
    };
    let world_size = config.world_size;
    if let Some(set) = only {
        check_rank_set(&config, set)?;
    }
    // world_size comes from a file: nothing is sized by it before it is
    // checked against the rank files that exist (or, where none can be
    // listed, against a bound: a server that answers any name would be
    // asked for all of them).
    match listing {
        Some(entries) if only.is_none() => check_no_rank_missing(folder, entries, world_size)?,
        None if only.is_none() && world_size > MAX_UNLISTED_FILES => {
            return Err(Error::invalid(
                &config.path,
                format!("world_size {world_size} is more rank files than a folder that cannot be listed is read for (at most {MAX_UNLISTED_FILES})"),
            ));
        }
        _ => {}
    }
    let wanted: Box<dyn Iterator<Item = u64>> = match only {
        Some(set) => Box::new(set.ranks().to_vec().into_iter()),
        None => Box::new(0..world_size),
    };
    let mut files = Vec::new();
    for rank in wanted {
        let name = rank_file_name(rank);
        let missing = || Error::missing_rank(&folder.path_of(OsStr::new(&name)), world_size);
        if listing.is_some_and(|entries| !entries.iter().any(|e| e.name == name)) {
            return Err(missing());
        }
        let (input, header) = folder.open_safetensors(OsStr::new(&name)).map_err(|e| {
            if is_not_found(&e) {
                missing()
            } else {
                e
            }
        })?;
        files.push(SafetensorsInput {
            name,
            input,
            header,
        });
    }
    let (extra_files, mut warnings) = trtllm_side_files(folder, listing, world_size)?;
    if listing.is_none() {
        warnings.push(format!(
            "{}: other files (tokenizer, quantization config, ...) are not copied: a plain HTTP server cannot list the folder, so only the files the config names are read",
            shown_path(folder.shown())
        ));
    }
    Ok(Checkpoint {
        layout: Layout::TrtLlm { config },
        files,
        extra_files,
        warnings,
    })
}

/// The other files of a listed TensorRT-LLM folder, opened to be copied,
/// and a warning for each rank file beyond `world_size`.
fn trtllm_side_files(
    folder: &dyn Folder,
    listing: Option<&[Entry]>,
    world_size: u64,
) -> Result<(Vec<InputFile>, Vec<String>)> {
    let mut extra_files = Vec::new();
    let mut warnings = Vec::new();
    for entry in listing.into_iter().flatten() {
        if entry.name == CONFIG_FILE || entry.kind != EntryKind::File {
            continue;
        }
        match parse_rank_file_name(&entry.name) {
            Some(rank) if rank < world_size => {}
            Some(rank) => warnings.push(format!(
                "{}: skipped: rank {rank} is outside world_size {world_size}",
                shown_path(&folder.path_of(&entry.file_name))
            )),
            None => extra_files.push(open_side_file(folder, entry)?),
        }
    }
    Ok((extra_files, warnings))
}

/// Refuses a listed folder that lacks one of the `world_size` ranks.
fn check_no_rank_missing(folder: &dyn Folder, entries: &[Entry], world_size: u64) -> Result<()> {
    let present: BTreeSet<u64> = entries
        .iter()
        .filter_map(|e| parse_rank_file_name(&e.name))
        .collect();
    let first_missing = (0..=present.len() as u64)
        .find(|r| !present.contains(r))
        .unwrap_or(0);
    if first_missing < world_size {
        return Err(Error::invalid(
            &folder.path_of(OsStr::new(&rank_file_name(first_missing))),
            format!(
                "rank file missing: config.json has world_size {world_size}, the folder has {} rank file{}",
                present.len(),
                if present.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(())
}

/// What a generic folder holds besides its shards.
struct GenericParts {
    shards: Vec<String>,
    index: Option<IndexFile>,
    extra_files: Vec<InputFile>,
    warnings: Vec<String>,
}

/// A folder of `.safetensors` files (Hugging Face style), with its index.
fn open_generic(folder: &dyn Folder, listing: Option<&[Entry]>) -> Result<Checkpoint> {
    let parts = match listing {
        Some(entries) => listed_generic(folder, entries)?,
        None => unlisted_generic(folder)?,
    };
    if parts.shards.is_empty() {
        return Err(Error::invalid(
            folder.shown(),
            "no checkpoint here: no rank{N}.safetensors (TensorRT-LLM) and no .safetensors file",
        ));
    }
    let mut files = Vec::with_capacity(parts.shards.len());
    for name in parts.shards {
        let (input, header) = folder.open_safetensors(OsStr::new(&name))?;
        files.push(SafetensorsInput {
            name,
            input,
            header,
        });
    }
    if let Some(index) = &parts.index {
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
        layout: Layout::Generic { index: parts.index },
        files,
        extra_files: parts.extra_files,
        warnings: parts.warnings,
    })
}

/// The shards, the first index and the side files of a listed folder.
fn listed_generic(folder: &dyn Folder, entries: &[Entry]) -> Result<GenericParts> {
    let mut parts = GenericParts {
        shards: Vec::new(),
        index: None,
        extra_files: Vec::new(),
        warnings: Vec::new(),
    };
    for entry in entries.iter().filter(|e| e.kind == EntryKind::File) {
        if entry.name.ends_with(".safetensors") {
            if !entry.name_is_utf8() {
                // Its output would get another (lossy) name: refuse rather
                // than write a file the user did not ask for.
                return Err(Error::invalid(
                    &folder.path_of(&entry.file_name),
                    "the file name is not valid UTF-8; rename the shard first",
                ));
            }
            parts.shards.push(entry.name.clone());
        } else if entry.name.ends_with(INDEX_SUFFIX) && parts.index.is_none() {
            parts.index = read_index(folder, &entry.name)?;
        } else {
            parts.extra_files.push(open_side_file(folder, entry)?);
        }
    }
    Ok(parts)
}

/// What a folder that cannot be listed shows: the index (or a lone
/// `model.safetensors`), the shards it names, and the known side files the
/// server has.
fn unlisted_generic(folder: &dyn Folder) -> Result<GenericParts> {
    let index = read_index(folder, &format!("model{INDEX_SUFFIX}"))?;
    let shards = match &index {
        Some(index) => {
            let shards = index.shards();
            if shards.len() as u64 > MAX_UNLISTED_FILES {
                return Err(Error::invalid(
                    &index.path,
                    format!("weight_map names {} shards, more than a folder that cannot be listed is read for (at most {MAX_UNLISTED_FILES})", shards.len()),
                ));
            }
            shards
        }
        None => vec!["model.safetensors".to_string()],
    };
    let mut extra_files = Vec::new();
    let mut refused: Vec<&str> = Vec::new();
    for name in KNOWN_SIDE_FILES {
        match folder.open_file(OsStr::new(name)) {
            Ok(input) => extra_files.push(input),
            Err(e) if is_not_found(&e) => {}
            // Many CDNs answer 403 for a file they do not have: an optional
            // file refused is named, not fatal.
            Err(e) if e.kind() == ErrorKind::Remote(RemoteProblem::Denied) => refused.push(name),
            Err(e) => return Err(e),
        }
    }
    let mut warnings = vec![format!(
        "{}: other files could not be discovered over plain HTTP, which cannot list a folder: only the shards, the index and the files a Hugging Face model is known to need (config.json, tokenizer files, ...) were looked for",
        shown_path(folder.shown())
    )];
    if !refused.is_empty() {
        warnings.push(format!(
            "{}: not copied: the server refused (403) {}; a server that answers 403 for a missing file is taken at its word",
            shown_path(folder.shown()),
            refused.join(", ")
        ));
    }
    Ok(GenericParts {
        shards,
        index,
        extra_files,
        warnings,
    })
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

/// A listed side file, opened to be copied whole; one that is no longer
/// the size it was listed with changed in between.
fn open_side_file(folder: &dyn Folder, entry: &Entry) -> Result<InputFile> {
    let input = folder.open_file(&entry.file_name)?;
    if input.len() != entry.size {
        return Err(Error::listing_changed(&input.path));
    }
    Ok(input)
}

/// The warning for a subfolder of a checkpoint, which is not copied:
/// Hugging Face repositories keep the original framework's full weights in
/// `original/`, which a pruned copy must not carry along.
fn skipped_folder(folder: &dyn Folder, entry: &Entry) -> String {
    format!(
        "{}: skipped: subfolders are not copied (copy it yourself if the output needs it)",
        shown_path(&folder.path_of(&entry.file_name))
    )
}
