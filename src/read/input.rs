//! Input files: opened once, stamped (identity, size, time) so a file
//! changed during the run is noticed, and safetensors headers read with
//! `pread` (prefix and header bytes only).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
#[cfg(feature = "remote")]
use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::base::file::{FileStamp, Ownership};
use crate::read::header::{self, Header, N_LEN};
#[cfg(feature = "remote")]
use crate::read::remote::{ObjectInfo, RemoteFolder};

/// An open input file: where its bytes are read from and what it was when
/// opened, to notice a change.
#[derive(Debug)]
pub struct InputFile {
    /// The local path, or the object's URL (for messages).
    pub path: PathBuf,
    /// Where its bytes are read from, with its identity.
    pub source: Source,
}

/// Where an input's bytes are, and its identity when it was opened.
#[derive(Debug)]
pub enum Source {
    /// A local file, open for reading.
    Local(LocalFile),
    /// An object in a store or behind a URL ([`crate::read::remote`]), as
    /// it was when its header was read.
    #[cfg(feature = "remote")]
    Remote(RemoteObject),
}

/// A local input file, open, with the stamp taken when it was opened.
#[derive(Debug)]
pub struct LocalFile {
    pub file: File,
    pub stamp: FileStamp,
    /// Owner, group and mode, which an in-place replacement keeps.
    pub ownership: Ownership,
    /// Where the path leads when it is a symlink: the target's bytes are
    /// what is read (and copied).
    pub link_target: Option<PathBuf>,
}

/// One object of a remote checkpoint folder; its identity is the
/// [`ObjectInfo`] its first read returned.
#[cfg(feature = "remote")]
#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub folder: Arc<RemoteFolder>,
    pub name: String,
    pub info: ObjectInfo,
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
            source: Source::Local(LocalFile {
                file,
                stamp: FileStamp::of(&meta),
                ownership: Ownership::of(&meta),
                link_target: fs::read_link(path).ok(),
            }),
        })
    }

    /// The object `name` of `folder`, with the identity `info` it had when
    /// it was first read.
    #[cfg(feature = "remote")]
    pub fn remote(folder: &Arc<RemoteFolder>, name: &str, info: ObjectInfo) -> InputFile {
        InputFile {
            path: PathBuf::from(folder.object_url(name)),
            source: Source::Remote(RemoteObject {
                folder: Arc::clone(folder),
                name: name.to_string(),
                info,
            }),
        }
    }

    /// The size it had when it was opened.
    pub fn len(&self) -> u64 {
        match &self.source {
            Source::Local(local) => local.stamp.len,
            #[cfg(feature = "remote")]
            Source::Remote(o) => o.info.size,
        }
    }

    /// The local file; `None` for a remote object.
    pub fn local(&self) -> Option<&LocalFile> {
        match &self.source {
            Source::Local(local) => Some(local),
            #[cfg(feature = "remote")]
            Source::Remote(_) => None,
        }
    }

    /// A local file's stamp; `None` for a remote object.
    pub fn stamp(&self) -> Option<FileStamp> {
        match &self.source {
            Source::Local(local) => Some(local.stamp),
            #[cfg(feature = "remote")]
            Source::Remote(_) => None,
        }
    }

    /// A local file's owner, group and mode; `None` for a remote object
    /// (its output belongs to whoever runs the tool).
    pub fn ownership(&self) -> Option<Ownership> {
        match &self.source {
            Source::Local(local) => Some(local.ownership),
            #[cfg(feature = "remote")]
            Source::Remote(_) => None,
        }
    }

    /// Where a local symlink leads.
    pub fn link_target(&self) -> Option<&Path> {
        match &self.source {
            Source::Local(local) => local.link_target.as_deref(),
            #[cfg(feature = "remote")]
            Source::Remote(_) => None,
        }
    }

    /// Checks that the file was not modified, resized or replaced since it
    /// was opened: the bytes just copied are then the bytes the header
    /// described.
    pub fn check_unchanged(&self) -> Result<()> {
        // A remote object is checked at every request (its ETag).
        let Some(local) = self.local() else {
            return Ok(());
        };
        let now = local
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, "cannot read metadata", e))?;
        let now = FileStamp::of(&now);
        if now.len < local.stamp.len {
            return Err(Error::InputChanged {
                file: self.path.clone(),
                offset: now.len,
            });
        }
        if !now.same_contents(&local.stamp) {
            return Err(Error::invalid(
                &self.path,
                "input file was modified while it was being copied; run again on a stable checkpoint",
            ));
        }
        match fs::metadata(&self.path) {
            Ok(meta) if FileStamp::of(&meta).same_file(&local.stamp) => Ok(()),
            _ => Err(Error::invalid(
                &self.path,
                "input file was replaced or removed while it was being copied; run again on a stable checkpoint",
            )),
        }
    }

    /// Reads up to `buf.len()` bytes at `offset` (fewer only at the end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        match &self.source {
            Source::Local(local) => read_fully_at(&local.file, buf, offset)
                .map_err(|e| Error::io(&self.path, "cannot read", e)),
            #[cfg(feature = "remote")]
            Source::Remote(o) => {
                let end = offset.saturating_add(buf.len() as u64).min(o.info.size);
                if end <= offset {
                    return Ok(0);
                }
                let bytes = o.folder.read_range(&o.name, &o.info, offset..end)?;
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                Ok(n)
            }
        }
    }
}

/// Opens a rank (or any safetensors) file and validates its header.
pub fn open_safetensors(path: &Path) -> Result<(InputFile, Header)> {
    let input = InputFile::open(path)?;
    let Some(local) = input.local() else {
        return Err(Error::invalid(path, "not a local file"));
    };
    let header = read_header(&local.file, path)?;
    Ok((input, header))
}

pub use crate::base::file::MAX_SMALL_OBJECT;

/// The whole of a small file (config.json, a shard index) and its stamp,
/// taken from the open descriptor before the first byte is read: a write
/// during the read moves the times past the stamp. A file larger than
/// [`MAX_SMALL_OBJECT`] (a real one is a few KiB; a sparse one could be
/// terabytes) is an error naming its size, as for a remote one.
pub(crate) fn read_stamped(path: &Path) -> Result<(Vec<u8>, FileStamp)> {
    use std::io::Read;
    let file = open_regular(path)?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot read metadata", e))?;
    if meta.len() > MAX_SMALL_OBJECT {
        return Err(Error::invalid(
            path,
            format!(
                "{} bytes: too large for a config or index file (limit {MAX_SMALL_OBJECT})",
                meta.len()
            ),
        ));
    }
    let stamp = FileStamp::of(&meta);
    let mut bytes = Vec::new();
    // A file that grows while it is read stops at the limit too.
    (&file)
        .take(MAX_SMALL_OBJECT)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    Ok((bytes, stamp))
}

/// Opens an existing regular file for reading, following a symlink. The
/// open does not block (`O_NONBLOCK`) and the type is checked on the open
/// descriptor: a file swapped for a FIFO after a look by path would
/// otherwise block the open until a writer comes, through SIGINT and
/// SIGTERM.
fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(path),
            _ => Error::io(path, "cannot open", e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot read metadata", e))?;
    if meta.is_dir() {
        return Err(Error::invalid(path, "is a directory, not a regular file"));
    }
    if !meta.is_file() {
        return Err(Error::invalid(path, "not a regular file"));
    }
    crate::base::sys::clear_nonblocking(&file).map_err(|e| Error::io(path, "cannot open", e))?;
    Ok(file)
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
