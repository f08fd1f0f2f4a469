//! Input files: opened once, stamped (identity, size, time) so a file
//! changed during the run is noticed, and safetensors headers read with
//! `pread` (prefix and header bytes only).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::header::{self, Header, N_LEN};
use crate::stage::Ownership;

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
        io::ErrorKind::NotFound => Error::NotFound {
            file: path.to_path_buf(),
        },
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
