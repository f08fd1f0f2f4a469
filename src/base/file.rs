//! What every stage knows of a file: its name in its folder, its stamp
//! when it was read (to notice a change), and the owner, group and mode a
//! replacement takes over.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::Path;

/// The last component of `path`, as it is (names need not be UTF-8).
pub(crate) fn file_name(path: &Path) -> OsString {
    path.file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_default()
}

/// Identity and state of an input file when it was opened, to notice a file
/// that is modified, truncated or replaced while it is being copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
    /// The change time: moves with every write, `chmod`, `chown` and
    /// `link`, and cannot be set back by `touch`.
    pub ctime_ns: i128,
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }

    /// Whether the file `now` describes is the one stamped with the same
    /// size and modification time: its bytes were not written to since
    /// (the change time, which a `chmod`, `link` or `rename` also moves, is
    /// left out; the commit compares whole stamps).
    pub fn same_contents(&self, now: &FileStamp) -> bool {
        (self.dev, self.ino, self.len, self.mtime_ns) == (now.dev, now.ino, now.len, now.mtime_ns)
    }

    /// Whether `other` is the same file (device and inode).
    pub fn same_file(&self, other: &FileStamp) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Owner, group and permission bits a replacement file takes over from the
/// file it replaces (`--in-place`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Ownership {
    pub fn of(meta: &std::fs::Metadata) -> Ownership {
        use std::os::unix::fs::MetadataExt;
        Ownership {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
        }
    }
}

/// The config file of a TensorRT-LLM checkpoint.
pub const CONFIG_FILE: &str = "config.json";

/// Largest small file read whole (a config or an index), local or remote.
pub const MAX_SMALL_OBJECT: u64 = 64 << 20;

/// Whether `text` is an `http://` or `https://` URL (any case), whose path
/// is percent-decoded as URLs are (a bucket or Hub URL names keys as
/// written).
#[cfg(feature = "remote")]
pub fn is_http_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
    })
}

/// Whether `text` is a URL (`scheme://...`) rather than a local path.
pub fn looks_like_url(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}
