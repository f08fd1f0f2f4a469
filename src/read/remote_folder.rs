//! A remote folder as the reader's [`Folder`]: `read/remote` fetches, this
//! file turns its objects into entries and [`InputFile`]s (kept apart, so
//! `read/remote` imports nothing of the reader above it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::error::{Error, RemoteProblem, Result};
use crate::read::folder::{Entry, EntryKind, Folder, SmallFile};
use crate::read::header::{self, Header, N_LEN};
use crate::read::input::InputFile;
use crate::read::remote::RemoteFolder;

/// A remote folder behind the seam `checkpoint` reads through. It is held
/// in an [`Arc`] because each [`InputFile`] it opens keeps a handle on it.
impl Folder for Arc<RemoteFolder> {
    fn shown(&self) -> &Path {
        self.shown_path()
    }

    fn path_of(&self, name: &OsStr) -> PathBuf {
        PathBuf::from(self.object_url(&name.to_string_lossy()))
    }

    fn local_dir(&self) -> Option<&Path> {
        None
    }

    fn list(&self) -> Result<Option<Vec<Entry>>> {
        let Some((objects, subfolders)) = self.list_with_subfolders()? else {
            return Ok(None);
        };
        let files = objects
            .into_iter()
            .map(|o| (o.name, EntryKind::File, o.size));
        let folders = subfolders.into_iter().map(|n| (n, EntryKind::Folder, 0));
        let mut entries: Vec<Entry> = files
            .chain(folders)
            .map(|(name, kind, size)| Entry {
                file_name: name.clone().into(),
                name,
                kind,
                size,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(entries))
    }

    fn read_small(&self, name: &str) -> Result<Option<SmallFile>> {
        Ok(self
            .get_small(name)?
            .map(|bytes| SmallFile { bytes, stamp: None }))
    }

    fn open_file(&self, name: &OsStr) -> Result<InputFile> {
        let name = name_of(self, name)?;
        // The identity comes from one HEAD: every later read carries it.
        let (_, info) = self.read_prefix(name, 0)?;
        Ok(InputFile::remote(self, name, info))
    }

    fn open_safetensors(&self, name: &OsStr) -> Result<(InputFile, Header)> {
        open_remote_safetensors(self, name_of(self, name)?)
    }
}

/// An object name as text (names of remote objects are UTF-8).
fn name_of<'a>(folder: &RemoteFolder, name: &'a OsStr) -> Result<&'a str> {
    name.to_str().ok_or_else(|| Error::Remote {
        url: folder.url().to_string(),
        range: None,
        kind: RemoteProblem::Invalid,
        problem: format!("`{}` is not a UTF-8 name", name.to_string_lossy()),
    })
}

/// Bytes read speculatively from a remote file: its length prefix and, for
/// most headers, the whole header, in one request.
const REMOTE_PREFIX_READ: u64 = 64 << 10;

/// Reads and validates the header of the remote object `name`: one ranged
/// read of its first bytes, one more for a header longer than that.
pub fn open_remote_safetensors(
    folder: &Arc<RemoteFolder>,
    name: &str,
) -> Result<(InputFile, Header)> {
    let (prefix, info) = folder.read_prefix(name, REMOTE_PREFIX_READ)?;
    let url = PathBuf::from(folder.object_url(name));
    let header_error = |source| Error::Header {
        file: url.clone(),
        source,
    };
    let n = header::header_len_from_prefix(&prefix, info.size).map_err(header_error)?;
    // header_len_from_prefix checked that 8 + n fits the object's size.
    let end = (N_LEN + n) as usize;
    let json = if prefix.len() >= end {
        prefix[N_LEN as usize..end].to_vec()
    } else {
        let mut json = prefix[N_LEN as usize..].to_vec();
        json.extend(folder.read_range(name, &info, prefix.len() as u64..end as u64)?);
        json
    };
    let header = header::parse_header(&json, info.size).map_err(header_error)?;
    Ok((InputFile::remote(folder, name, info), header))
}
