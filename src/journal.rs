//! The commit record: which finished temp file replaces which name, and
//! where each replaced file's old bytes stay reachable (a hard link) until
//! the commit is over. Written and flushed before the first rename, so a
//! run that dies mid-commit leaves enough behind for the next one to
//! finish it. Pure encoding and decoding, no I/O.
//!
//! Format, one line each, names hex-encoded (a file name may hold any byte
//! but `/` and NUL):
//!
//! ```text
//! trtllm-prune commit v1
//! rename <temp> <target> <backup> <inode>
//!     backup: `<name>:<inode>` (a link to the old file), `new` (the target
//!     did not exist) or `none` (it existed, but could not be linked);
//!     inode: the temp file's. Inodes are checked before a name is used,
//!     so a file planted later at a temp or backup name that is no longer
//!     there is never taken for it.
//! crc32 <8 hex digits of every byte above>
//! ```
//!
//! A record that does not decode (empty: the run never reached its commit;
//! cut short by a kill or a power cut while it was written) means no rename
//! had begun: renames start only after the whole record is on disk.

use std::ffi::OsString;
use std::fmt::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

const MAGIC: &str = "trtllm-prune commit v1\n";

/// What keeps a replaced file's old bytes until the commit is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backup {
    /// The target did not exist: undoing the rename removes the name again.
    New,
    /// A hard link to the old file under this name, and the old file's
    /// inode number.
    Link(OsString, u64),
    /// The target existed but could not be linked (a filesystem without
    /// hard links): once replaced, it cannot be put back.
    Unavailable,
}

/// One rename of the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub temp: OsString,
    pub target: OsString,
    pub backup: Backup,
    /// Inode number of the finished temp file.
    pub inode: u64,
}

/// The renames of one commit, in the order they are made; the last one
/// (`config.json` or a shard index) declares the result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Journal {
    pub entries: Vec<Entry>,
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Journal {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::from(MAGIC);
        for e in &self.entries {
            text.push_str("rename ");
            hex(&mut text, e.temp.as_bytes());
            text.push(' ');
            hex(&mut text, e.target.as_bytes());
            text.push(' ');
            match &e.backup {
                Backup::New => text.push_str("new"),
                Backup::Unavailable => text.push_str("none"),
                Backup::Link(name, inode) => {
                    hex(&mut text, name.as_bytes());
                    let _ = write!(text, ":{inode}");
                }
            }
            let _ = writeln!(text, " {}", e.inode);
        }
        let crc = crc32fast::hash(text.as_bytes());
        let _ = writeln!(text, "crc32 {crc:08x}");
        text.into_bytes()
    }

    /// The journal in `bytes`, or `None` if they are not a whole one.
    pub fn decode(bytes: &[u8]) -> Option<Journal> {
        let text = std::str::from_utf8(bytes).ok()?;
        let body_end = text.rfind("crc32 ")?;
        let (body, trailer) = text.split_at(body_end);
        let crc =
            u32::from_str_radix(trailer.strip_prefix("crc32 ")?.strip_suffix('\n')?, 16).ok()?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return None;
        }
        let mut entries = Vec::new();
        for line in body.strip_prefix(MAGIC)?.lines() {
            let mut words = line.strip_prefix("rename ")?.split(' ');
            let name = |w: Option<&str>| unhex(w?).map(OsString::from_vec);
            let temp = name(words.next())?;
            let target = name(words.next())?;
            let backup = match words.next()? {
                "new" => Backup::New,
                "none" => Backup::Unavailable,
                w => {
                    let (name, inode) = w.split_once(':')?;
                    Backup::Link(OsString::from_vec(unhex(name)?), inode.parse().ok()?)
                }
            };
            let inode = words.next()?.parse().ok()?;
            if words.next().is_some() {
                return None;
            }
            entries.push(Entry {
                temp,
                target,
                backup,
                inode,
            });
        }
        Some(Journal { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Journal {
        Journal {
            entries: vec![
                Entry {
                    temp: ".rank0.safetensors.trtllm-prune-ab.tmp".into(),
                    target: "rank0.safetensors".into(),
                    backup: Backup::Link(".rank0.safetensors.trtllm-prune-ab.old".into(), 77),
                    inode: 1,
                },
                Entry {
                    temp: OsString::from_vec(b".odd \n\xff name.tmp".to_vec()),
                    target: OsString::from_vec(b"odd \n\xff name".to_vec()),
                    backup: Backup::Unavailable,
                    inode: u64::MAX,
                },
                Entry {
                    temp: ".config.json.trtllm-prune-ab.tmp".into(),
                    target: "config.json".into(),
                    backup: Backup::New,
                    inode: 12345,
                },
            ],
        }
    }

    #[test]
    fn round_trips_any_file_name() {
        let j = sample();
        assert_eq!(Journal::decode(&j.encode()), Some(j));
        assert_eq!(
            Journal::decode(&Journal::default().encode()),
            Some(Journal::default())
        );
    }

    #[test]
    fn a_record_cut_short_or_damaged_is_no_record() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert_eq!(Journal::decode(&bytes[..len]), None, "cut at {len}");
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert_eq!(Journal::decode(&damaged), None, "byte {i} flipped");
        }
        // A power cut can leave the size on disk without the data.
        assert_eq!(Journal::decode(&vec![0; bytes.len()]), None);
    }
}
