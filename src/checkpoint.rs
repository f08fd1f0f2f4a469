//! Reading a TensorRT-LLM checkpoint folder: `config.json`, the rank files
//! it implies, and the other files that travel with them.
//!
//! Nothing here writes. Every rank file is opened and its header validated
//! before the caller writes anything, so a bad input never leaves a partial
//! output behind.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::header::{self, Header, N_LEN};
use crate::stage::Ownership;

pub const CONFIG_FILE: &str = "config.json";
/// The key the original tool adds to `config.json`.
pub const IS_PRUNED_KEY: &str = "is_pruned";

/// Name of rank `rank`'s weights file.
pub fn rank_file_name(rank: u64) -> String {
    format!("rank{rank}.safetensors")
}

/// The rank number of a file named `rank{N}.safetensors`.
pub fn parse_rank_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("rank")?.strip_suffix(".safetensors")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `rank01` is not a name the original would read for rank 1: it is an
    // ordinary file, copied like any other.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// A checkpoint's `config.json`, as text and as parsed JSON.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
    pub object: Map<String, Value>,
    pub world_size: u64,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile> {
        // Opening a FIFO would block until a writer comes, and the open is
        // retried through Ctrl-C: look before opening, as for rank files.
        if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(Error::invalid(path, "not a regular file"));
        }
        let bytes = fs::read(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                Error::invalid(path, "no config.json: not a TensorRT-LLM checkpoint folder")
            }
            _ => Error::io(path, "cannot read", e),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::invalid(
                path,
                format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            )
        })?;
        ConfigFile::parse(path, text)
    }

    /// Validates the text of a config file: a JSON object whose
    /// `mapping.world_size`, when present, is a positive integer.
    pub fn parse(path: &Path, text: String) -> Result<ConfigFile> {
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(path, format!("invalid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(Error::invalid(path, "top level is not a JSON object"));
        };
        let world_size = match object.get("mapping") {
            None | Some(Value::Null) => 1,
            Some(Value::Object(mapping)) => match mapping.get("world_size") {
                None | Some(Value::Null) => 1,
                Some(v) => match v.as_u64() {
                    Some(n) if n > 0 => n,
                    _ => {
                        return Err(Error::invalid(
                            path,
                            format!("mapping.world_size must be a positive integer, found {v}"),
                        ))
                    }
                },
            },
            Some(other) => {
                return Err(Error::invalid(
                    path,
                    format!("`mapping` must be an object, found {other}"),
                ))
            }
        };
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
            object,
            world_size,
        })
    }

    /// The config as the original tool writes it back: the same JSON with
    /// `"is_pruned": true`. When the key is new, it is inserted as text after
    /// the last member, so every other byte of the file stays as it was.
    pub fn pruned_text(&self) -> String {
        if self.object.contains_key(IS_PRUNED_KEY) {
            // Replace the value's text in place, so every other byte (floats
            // spelled `1e-05`, huge integers) stays as written.
            if let Some((start, end)) = top_level_value_span(&self.text, IS_PRUNED_KEY) {
                return format!("{}true{}", &self.text[..start], &self.text[end..]);
            }
            // The key is spelled with escapes: re-serialize (same keys,
            // values and order).
            let mut object = self.object.clone();
            object.insert(IS_PRUNED_KEY.to_string(), Value::Bool(true));
            // Key order is preserved (serde_json's preserve_order).
            let mut text = Value::Object(object).to_string();
            text.push('\n');
            return text;
        }
        // The text parsed as an object, so its last non-space byte is `}`.
        let close = self.text.trim_end().len() - 1;
        let body_end = self.text[..close].trim_end().len();
        let empty = self.text[..body_end].ends_with('{');
        let member = if empty {
            "\"is_pruned\": true"
        } else {
            ", \"is_pruned\": true"
        };
        let mut text = String::with_capacity(self.text.len() + member.len());
        text.push_str(&self.text[..body_end]);
        text.push_str(member);
        text.push_str(&self.text[body_end..]);
        text
    }
}

/// Byte span of the value of the last top-level `key` in `text`, a JSON
/// object already validated by serde_json (the last one is the one JSON
/// readers keep). `None` if the key is only spelled with escapes.
fn top_level_value_span(text: &str, key: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    // End (exclusive) of the string starting at the quote at `i`.
    let string_end = |mut i: usize| {
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    };
    // End (exclusive) of the value starting at `i`.
    let value_end = |i: usize| -> Option<usize> {
        match b.get(i)? {
            b'"' => string_end(i),
            b'{' | b'[' => {
                let (mut depth, mut j) = (0usize, i);
                loop {
                    match b.get(j)? {
                        b'"' => {
                            j = string_end(j)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            _ => {
                let mut j = i;
                while b.get(j).is_some_and(|c| !b",}] \t\r\n".contains(c)) {
                    j += 1;
                }
                Some(j)
            }
        }
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    let mut found = None;
    while b.get(i) == Some(&b'"') {
        let key_end = string_end(i)?;
        let raw_key = text.get(i + 1..key_end - 1)?;
        i = ws(key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = ws(i + 1);
        let end = value_end(start)?;
        if raw_key == key {
            found = Some((start, end));
        }
        i = ws(end);
        if b.get(i) == Some(&b',') {
            i = ws(i + 1);
        }
    }
    found
}

/// Identity and state of an input file when it was opened, to notice a file
/// that is modified, truncated or replaced while it is being copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }

    /// Whether `other` is the same file (device and inode).
    pub fn same_file(&self, other: &FileStamp) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// An open input file with the stamp taken when it was opened.
#[derive(Debug)]
pub struct InputFile {
    pub path: PathBuf,
    pub file: File,
    pub stamp: FileStamp,
    /// Owner, group and mode, which an in-place replacement keeps.
    pub ownership: Ownership,
    /// Where the path leads when it is a symlink: the target's bytes are
    /// what is read (and copied).
    pub link_target: Option<PathBuf>,
}

impl InputFile {
    /// Opens an existing regular file for reading, with a clear error for a
    /// missing file, a directory, a symlink loop or a special file.
    pub fn open(path: &Path) -> Result<InputFile> {
        let file = open_regular(path)?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot read metadata", e))?;
        Ok(InputFile {
            path: path.to_path_buf(),
            file,
            stamp: FileStamp::of(&meta),
            ownership: Ownership::of(&meta),
            link_target: fs::read_link(path).ok(),
        })
    }

    /// Checks that the file was not modified, resized or replaced since it
    /// was opened: the bytes just copied are then the bytes the header
    /// described.
    pub fn check_unchanged(&self) -> Result<()> {
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, "cannot read metadata", e))?;
        let now = FileStamp::of(&now);
        if now.len < self.stamp.len {
            return Err(Error::InputChanged {
                file: self.path.clone(),
                offset: now.len,
            });
        }
        if now != self.stamp {
            return Err(Error::invalid(
                &self.path,
                "input file was modified while it was being copied; run again on a stable checkpoint",
            ));
        }
        match fs::metadata(&self.path) {
            Ok(meta) if FileStamp::of(&meta).same_file(&self.stamp) => Ok(()),
            _ => Err(Error::invalid(
                &self.path,
                "input file was replaced or removed while it was being copied; run again on a stable checkpoint",
            )),
        }
    }
}

/// Opens a rank (or any safetensors) file and validates its header.
pub fn open_safetensors(path: &Path) -> Result<(InputFile, Header)> {
    let input = InputFile::open(path)?;
    let header = read_header(&input.file, path)?;
    Ok((input, header))
}

/// Opens an existing regular file for reading.
fn open_regular(path: &Path) -> Result<File> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::invalid(path, "file not found"),
        _ => Error::io(path, "cannot open", e),
    })?;
    if meta.is_dir() {
        return Err(Error::invalid(path, "is a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(Error::invalid(path, "not a regular file"));
    }
    File::open(path).map_err(|e| Error::io(path, "cannot open", e))
}

/// Reads and validates the header of an open safetensors file, reading only
/// the length prefix and the header bytes.
pub fn read_header(file: &File, path: &Path) -> Result<Header> {
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot read metadata", e))?
        .len();
    let header_error = |source| Error::Header {
        file: path.to_path_buf(),
        source,
    };
    let mut prefix = [0u8; N_LEN as usize];
    let got = read_fully_at(file, &mut prefix, 0).map_err(|e| Error::io(path, "cannot read", e))?;
    // A text file given where a safetensors file belongs (config.json to
    // `inspect`) reads as an absurd header length: say what it is instead.
    if got == prefix.len()
        && u64::from_le_bytes(prefix) > header::MAX_HEADER_SIZE
        && prefix
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return Err(Error::invalid(
            path,
            format!(
                "not a safetensors file: it starts with the text `{}`",
                String::from_utf8_lossy(&prefix).escape_debug()
            ),
        ));
    }
    let n = header::header_len_from_prefix(&prefix[..got], file_len).map_err(header_error)?;
    let mut json = vec![0u8; n as usize];
    let got =
        read_fully_at(file, &mut json, N_LEN).map_err(|e| Error::io(path, "cannot read", e))?;
    if got < json.len() {
        return Err(Error::InputChanged {
            file: path.to_path_buf(),
            offset: N_LEN + got as u64,
        });
    }
    header::parse_header(&json, file_len).map_err(header_error)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_fully_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Most ranks a `--ranks` list may name (far beyond any real world size).
const MAX_RANKS: u64 = 1 << 20;

/// The set of ranks a run processes (`--ranks 0-3,6`), sorted, unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankSet(Vec<u64>);

impl RankSet {
    /// Parses `0-3,6`: comma-separated ranks and inclusive ranges.
    pub fn parse(text: &str) -> std::result::Result<RankSet, String> {
        let mut ranks = Vec::new();
        for part in text.split(',').map(str::trim) {
            let number = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("`{s}` is not a rank number (in `{text}`)"))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("range `{part}` is empty"));
                    }
                    if b - a >= MAX_RANKS {
                        return Err(format!("range `{part}` is too large"));
                    }
                    ranks.extend(a..=b);
                }
                None => ranks.push(number(part)?),
            }
            // Bounded as a whole, not only per range: `0-1048575,1048576-…`
            // repeated would otherwise grow without limit.
            if ranks.len() as u64 > MAX_RANKS {
                return Err(format!("`{text}` lists more than {MAX_RANKS} ranks"));
            }
        }
        ranks.sort_unstable();
        ranks.dedup();
        Ok(RankSet(ranks))
    }

    pub fn ranks(&self) -> &[u64] {
        &self.0
    }
}

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

/// A Hugging Face shard index, `model.safetensors.index.json`.
#[derive(Debug, Clone)]
pub struct IndexFile {
    pub name: String,
    pub path: PathBuf,
    pub object: Map<String, Value>,
}

pub const INDEX_SUFFIX: &str = ".safetensors.index.json";

impl IndexFile {
    pub(crate) fn read(path: &Path, name: &str) -> Result<IndexFile> {
        let text = fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read", e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(path, format!("invalid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(Error::invalid(path, "top level is not a JSON object"));
        };
        match object.get("weight_map") {
            Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
            _ => {
                return Err(Error::invalid(
                    path,
                    "`weight_map` must be an object mapping tensor names to shard file names",
                ))
            }
        }
        Ok(IndexFile {
            name: name.to_string(),
            path: path.to_path_buf(),
            object,
        })
    }

    /// Tensor name to shard file name.
    pub fn weight_map(&self) -> std::collections::HashMap<&str, &str> {
        self.object
            .get("weight_map")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `metadata.total_size`, when it is a number.
    pub fn total_size(&self) -> Option<u64> {
        self.object.get("metadata")?.get("total_size")?.as_u64()
    }

    /// Shard file names the index refers to, sorted and unique.
    pub fn shards(&self) -> Vec<String> {
        let mut shards: Vec<String> = self.object["weight_map"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        shards
    }

    /// The index with `metadata.total_size` set to `total_size` (the bytes
    /// of tensor data in the pruned shards); everything else is kept.
    pub fn pruned_text(&self, total_size: u64) -> String {
        let mut object = self.object.clone();
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        if let Value::Object(m) = metadata {
            m.insert("total_size".into(), Value::from(total_size));
        }
        let mut text = serde_json::to_string_pretty(&Value::Object(object)).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The whole input side of a run: the layout, every safetensors file to
/// prune, the other files.
#[derive(Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
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
            Checkpoint::open_generic(dir, listing)
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
                if let Some(bad) = set.ranks().iter().find(|&&r| r >= world_size) {
                    return Err(Error::invalid(
                        &config.path,
                        format!("--ranks asks for rank {bad} but world_size is {world_size}"),
                    ));
                }
                set.ranks().to_vec()
            }
            None => (0..world_size).collect(),
        };
        let mut files = Vec::with_capacity(ranks.len());
        for rank in ranks {
            let name = rank_file_name(rank);
            let path = dir.join(&name);
            let (input, header) = open_safetensors(&path).map_err(|e| match e {
                Error::Invalid { file, problem } if problem == "file not found" => Error::Invalid {
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
                    entry.path.display()
                )),
                None => extra.push(InputFile::open(&entry.path)?),
            }
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            layout: Layout::TrtLlm { config },
            files,
            extra_files: extra,
            warnings,
        })
    }

    fn open_generic(dir: &Path, listing: Vec<FolderEntry>) -> Result<Checkpoint> {
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
            dir: dir.to_path_buf(),
            layout: Layout::Generic { index },
            files,
            extra_files: extra,
            warnings,
        })
    }
}

/// The warning for a subfolder of a checkpoint, which is not copied:
/// Hugging Face repositories keep the original framework's full weights in
/// `original/`, which a pruned copy must not carry along.
fn skipped_folder(entry: &FolderEntry) -> String {
    format!(
        "{}: skipped: subfolders are not copied (copy it yourself if the output needs it)",
        entry.path.display()
    )
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
        if crate::side_file::is_side_file(&entry.file_name()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<ConfigFile> {
        ConfigFile::parse(Path::new("config.json"), text.to_string())
    }

    #[test]
    fn world_size_defaults_to_one() {
        assert_eq!(config("{}").unwrap().world_size, 1);
        assert_eq!(
            config(r#"{"mapping": {"tp_size": 1}}"#).unwrap().world_size,
            1
        );
        assert_eq!(
            config(r#"{"mapping": {"world_size": 8}}"#)
                .unwrap()
                .world_size,
            8
        );
    }

    #[test]
    fn rejects_bad_world_size() {
        for bad in [
            r#"{"mapping": {"world_size": 0}}"#,
            r#"{"mapping": {"world_size": -2}}"#,
            r#"{"mapping": {"world_size": 2.5}}"#,
            r#"{"mapping": {"world_size": "2"}}"#,
            r#"{"mapping": 3}"#,
            "[1, 2]",
            "{",
        ] {
            assert!(config(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn pruned_text_inserts_key_and_keeps_every_other_byte() {
        let c = config("{\n    \"b\": 1e-05,\n    \"a\": [1, 2]\n}\n").unwrap();
        assert_eq!(
            c.pruned_text(),
            "{\n    \"b\": 1e-05,\n    \"a\": [1, 2], \"is_pruned\": true\n}\n"
        );
        assert_eq!(
            config(" { } ").unwrap().pruned_text(),
            " {\"is_pruned\": true } "
        );
    }

    #[test]
    fn pruned_text_overwrites_existing_flag_in_place() {
        let c = config(r#"{"a": 1e-05, "is_pruned": false, "z": 2}"#).unwrap();
        assert_eq!(
            c.pruned_text(),
            r#"{"a": 1e-05, "is_pruned": true, "z": 2}"#
        );
        // Nested keys of the same name and strings holding braces are skipped;
        // of a duplicated key, the last one (the one readers keep) is set.
        let c = config(
            r#"{"m": {"is_pruned": 0}, "s": "}\"{", "is_pruned": [1, {"x": "]"}], "is_pruned": null, "n": 123456789012345678901234567890}"#,
        )
        .unwrap();
        assert_eq!(
            c.pruned_text(),
            r#"{"m": {"is_pruned": 0}, "s": "}\"{", "is_pruned": [1, {"x": "]"}], "is_pruned": true, "n": 123456789012345678901234567890}"#
        );
    }

    #[test]
    fn pruned_text_reserializes_a_key_spelled_with_escapes() {
        let c = config(r#"{"a": 1, "is\u005fpruned": false}"#).unwrap();
        assert_eq!(c.pruned_text(), "{\"a\":1,\"is_pruned\":true}\n");
    }

    #[test]
    fn parses_rank_lists() {
        assert_eq!(RankSet::parse("0-3,6").unwrap().ranks(), &[0, 1, 2, 3, 6]);
        assert_eq!(RankSet::parse("5, 1,1").unwrap().ranks(), &[1, 5]);
        assert!(RankSet::parse("3-1").is_err());
        assert!(RankSet::parse("a").is_err());
        assert!(RankSet::parse("").is_err());
    }

    #[test]
    fn a_rank_list_is_bounded_as_a_whole() {
        let many: Vec<String> = (0..4u64)
            .map(|i| format!("{}-{}", i << 20, (i << 20) + (1 << 20) - 1))
            .collect();
        let err = RankSet::parse(&many.join(",")).unwrap_err();
        assert!(err.contains("lists more than 1048576 ranks"), "{err}");
        assert_eq!(RankSet::parse("0-1048575").unwrap().ranks().len(), 1 << 20);
    }

    #[test]
    fn parses_rank_file_names() {
        assert_eq!(parse_rank_file_name("rank0.safetensors"), Some(0));
        assert_eq!(parse_rank_file_name("rank17.safetensors"), Some(17));
        assert_eq!(parse_rank_file_name("rank.safetensors"), None);
        assert_eq!(parse_rank_file_name("rank01.safetensors"), None);
        assert_eq!(parse_rank_file_name("rank10.safetensors"), Some(10));
        assert_eq!(parse_rank_file_name("rank-1.safetensors"), None);
        assert_eq!(parse_rank_file_name("model.safetensors"), None);
    }
}
