//! The seam between where a checkpoint is and the rules that read it: a
//! [`Folder`] lists its entries, reads a small file whole, opens a file to
//! copy and opens a safetensors file with its header. A local folder
//! ([`LocalFolder`]) and a remote one (`remote::RemoteFolder`, with the
//! `remote` feature) implement it; `checkpoint` writes the layout rules
//! once, over this trait.
//!
//! The command-line argument becomes a [`Place`] once, at the edge
//! ([`Place::resolve`]): a folder, or one file in a folder.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, Result};
pub(crate) use crate::base::file::looks_like_url;
use crate::base::file::FileStamp;
use crate::read::header::Header;
use crate::read::input::{open_safetensors, read_stamped, InputFile};

/// What an entry at the top of a folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (or a symlink to one; an object in a store).
    File,
    /// A folder (or a symlink to one; a common prefix in a store).
    Folder,
    /// Anything else: a FIFO, a socket, a device, a dangling symlink.
    Other,
}

/// One entry at the top of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name, for the layout rules and messages (lossy for a local name
    /// that is not UTF-8).
    pub name: String,
    /// The name exactly, to open it by.
    pub file_name: OsString,
    pub kind: EntryKind,
    /// Its size when listed (0 for a folder).
    pub size: u64,
}

impl Entry {
    /// Whether the name is the lossless `name` (valid UTF-8).
    pub fn name_is_utf8(&self) -> bool {
        self.file_name.to_str().is_some()
    }
}

/// A small file read whole (`config.json`, a shard index).
#[derive(Debug)]
pub struct SmallFile {
    pub bytes: Vec<u8>,
    /// A local file as it was when read: an in-place commit replaces it
    /// only if it is still that file. `None` for a remote one.
    pub stamp: Option<FileStamp>,
}

/// A folder a checkpoint is read from.
pub trait Folder: fmt::Debug + Send + Sync {
    /// The folder as messages name it: its path, or its URL without
    /// credentials.
    fn shown(&self) -> &Path;

    /// Where the entry `name` is, for messages and [`InputFile::path`].
    fn path_of(&self, name: &OsStr) -> PathBuf;

    /// The folder on this machine, when it is a local one: what recovery,
    /// `--in-place` and the default output folder need.
    fn local_dir(&self) -> Option<&Path>;

    /// Every entry at the top of the folder, sorted by name, without our
    /// own side files; `None` when the folder cannot be listed (a plain web
    /// server).
    fn list(&self) -> Result<Option<Vec<Entry>>>;

    /// The whole file `name`, bounded (`MAX_SMALL_OBJECT`); `None` when it
    /// does not exist.
    fn read_small(&self, name: &str) -> Result<Option<SmallFile>>;

    /// Opens the file `name`, to be copied as it is.
    fn open_file(&self, name: &OsStr) -> Result<InputFile>;

    /// Opens the safetensors file `name` and validates its header.
    fn open_safetensors(&self, name: &OsStr) -> Result<(InputFile, Header)>;
}

/// Whether `e` says that a file does not exist (locally or remotely).
pub fn is_not_found(e: &Error) -> bool {
    match e {
        Error::NotFound { .. } => true,
        #[cfg(feature = "remote")]
        Error::Remote { kind, .. } => *kind == crate::base::error::RemoteProblem::NotFound,
        _ => false,
    }
}

/// A folder on this machine.
#[derive(Debug, Clone)]
pub struct LocalFolder {
    dir: PathBuf,
}

impl LocalFolder {
    /// The folder `dir`, as it is given (callers resolve it first when
    /// they need an absolute path).
    pub fn new(dir: impl Into<PathBuf>) -> LocalFolder {
        LocalFolder { dir: dir.into() }
    }
}

impl Folder for LocalFolder {
    fn shown(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &OsStr) -> PathBuf {
        self.dir.join(name)
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn list(&self) -> Result<Option<Vec<Entry>>> {
        let dir = &self.dir;
        let mut entries = Vec::new();
        let read = fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list", e))?;
        for entry in read {
            let entry = entry.map_err(|e| Error::io(dir, "cannot list", e))?;
            let file_name = entry.file_name();
            if crate::base::side_file::is_side_file(&file_name) {
                continue;
            }
            // Through a symlink: what it leads to.
            let meta = fs::metadata(entry.path());
            let kind = match &meta {
                Ok(m) if m.is_file() => EntryKind::File,
                Ok(m) if m.is_dir() => EntryKind::Folder,
                _ => EntryKind::Other,
            };
            entries.push(Entry {
                name: file_name.to_string_lossy().into_owned(),
                file_name,
                kind,
                size: meta.map_or(0, |m| if m.is_file() { m.len() } else { 0 }),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(entries))
    }

    fn read_small(&self, name: &str) -> Result<Option<SmallFile>> {
        match read_stamped(&self.dir.join(name)) {
            Ok((bytes, stamp)) => Ok(Some(SmallFile {
                bytes,
                stamp: Some(stamp),
            })),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_file(&self, name: &OsStr) -> Result<InputFile> {
        InputFile::open(&self.dir.join(name))
    }

    fn open_safetensors(&self, name: &OsStr) -> Result<(InputFile, Header)> {
        open_safetensors(&self.dir.join(name))
    }
}

/// What a checkpoint argument names, resolved once.
#[derive(Debug, Clone)]
pub enum Place {
    /// A checkpoint folder.
    Folder(Arc<dyn Folder>),
    /// One safetensors file, `name` in `folder`.
    File {
        folder: Arc<dyn Folder>,
        name: OsString,
    },
}

impl Place {
    /// The folder or file `arg` names: a local path (a folder is made
    /// absolute), or a URL (`s3://`, `gs://`, `az://`, `http(s)://`; with
    /// the `remote` feature). A URL whose last part ends in `.safetensors`
    /// and names an object is that file.
    pub fn resolve(arg: &Path) -> Result<Place> {
        if let Some(text) = arg.to_str().filter(|t| looks_like_url(t)) {
            return resolve_url(text);
        }
        let meta = fs::metadata(arg).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::folder_not_found(arg),
            _ => Error::io(arg, "cannot open", e),
        })?;
        if meta.is_dir() {
            let dir = fs::canonicalize(arg).map_err(|e| Error::io(arg, "cannot resolve", e))?;
            return Ok(Place::Folder(Arc::new(LocalFolder::new(dir))));
        }
        let parent = arg.parent().unwrap_or(Path::new(""));
        let name = arg.file_name().map(OsStr::to_os_string);
        let dir = match parent.as_os_str().is_empty() {
            true => PathBuf::new(),
            false => parent.to_path_buf(),
        };
        match name {
            Some(name) => Ok(Place::File {
                folder: Arc::new(LocalFolder::new(dir)),
                name,
            }),
            None => Err(Error::invalid(arg, "not a file or a folder")),
        }
    }

    /// The folder, refusing a file with the line local and remote runs
    /// share.
    pub fn folder(self) -> Result<Arc<dyn Folder>> {
        match self {
            Place::Folder(folder) => Ok(folder),
            Place::File { folder, name } => Err(Error::invalid(
                &folder.path_of(&name),
                "checkpoint path is a file, not a folder: give the folder that holds it, or look at the file with `trtllm-prune inspect`",
            )),
        }
    }
}

/// The line for a URL given to a build without remote support.
pub const NO_REMOTE_SUPPORT: &str =
    "built without remote support (the `remote` cargo feature): give a local path";

#[cfg(not(feature = "remote"))]
fn resolve_url(text: &str) -> Result<Place> {
    Err(Error::invalid(Path::new(text), NO_REMOTE_SUPPORT))
}

#[cfg(feature = "remote")]
fn resolve_url(text: &str) -> Result<Place> {
    use crate::read::remote::RemoteFolder;
    let folder = |text: &str| match RemoteFolder::parse(text) {
        Some(parsed) => parsed.map(Arc::new),
        None => Err(Error::invalid(Path::new(text), "not a URL")),
    };
    // The last part of an http(s) URL is percent-encoded as the URL is, and
    // the object's name is the decoded one; a bucket or Hub URL names its
    // keys as written.
    let http = crate::base::file::is_http_url(text);
    let named = text.rsplit_once('/').and_then(|(parent, last)| {
        let name = match http {
            true => percent_encoding::percent_decode_str(last)
                .decode_utf8()
                .ok()?
                .into_owned(),
            false => last.to_string(),
        };
        let has_folder = !parent.ends_with('/') && parent.contains("://");
        (has_folder && name.ends_with(".safetensors")).then_some((parent, name))
    });
    if let Some((parent, name)) = named {
        let parent_folder = folder(parent)?;
        if !parent_folder.exists(&name)? {
            // As a local path that does not exist: a URL naming a
            // `.safetensors` file is not taken for a folder.
            return Err(Error::path_not_found(Path::new(text)));
        }
        return Ok(Place::File {
            folder: Arc::new(parent_folder),
            name: name.into(),
        });
    }
    Ok(Place::Folder(Arc::new(folder(text)?)))
}
