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
//! trtllm-prune commit v3
//! rename <temp> <target> <backup> <new>
//!     backup: `<name>:<identity>` (a link to the old file) or `new` (the
//!     target did not exist);
//!     new: the identity of the finished temp file;
//!     identity: `<inode>:<size>:<crc32>`, the crc32 (8 hex digits) of
//!     the file's sample (its first and last 64 KiB, see `apply.rs`),
//!     then `:<mtime>` (nanoseconds since the epoch) for a backup's file,
//!     whose modification time a write would move; `<inode>` alone for a
//!     symlink replaced in place.
//! crc32 <8 hex digits of every byte above>
//! ```
//!
//! A file is taken for one the journal names only when its inode, size and
//! sample all match: inode numbers alone do not identify a file, since a
//! copied or restored folder (`cp -a`, a backup, a FUSE remount) holds the
//! same bytes under other inode numbers, and a number can be reused. The
//! older records are still read: `v2` is `v3` without modification times;
//! in `v1` identities are inode numbers only (`<name>:<inode>` and
//! `<inode>`), and its backup may be `none` (the target existed but could
//! not be linked; later commits refuse instead).
//!
//! A journal is at most [`MAX_JOURNAL_BYTES`]: a bigger file named like one
//! is not read (see `recover.rs`).
//!
//! A record that does not decode (empty: the run never reached its commit;
//! cut short by a kill or a power cut while it was written) means no rename
//! had begun: renames start only after the whole record is on disk.

use std::ffi::OsString;
use std::fmt::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

const MAGIC_V1: &str = "trtllm-prune commit v1\n";
const MAGIC_V2: &str = "trtllm-prune commit v2\n";
const MAGIC: &str = "trtllm-prune commit v3\n";

/// The largest journal read: far more than the entries of any checkpoint
/// need (an entry is at most about 1.2 KiB, for names of 255 bytes), so a
/// bigger file named like a journal (planted, or a sparse file) is not one
/// and is never read into memory.
pub(crate) const MAX_JOURNAL_BYTES: u64 = 64 << 20;

/// Size and checksum of a file's sample: with the inode number, what
/// tells the file a journal names from a copy of it or a stranger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub len: u64,
    pub crc: u32,
}

/// Which file a journal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub inode: u64,
    /// `None` in a `v1` record.
    pub sample: Option<Sample>,
    /// The modification time (ns) a backup's file had when it was linked
    /// and compared; `None` for other files and in older records.
    pub mtime_ns: Option<i128>,
}

/// What keeps a replaced file's old bytes until the commit is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backup {
    /// The target did not exist: undoing the rename removes the name again.
    New,
    /// A hard link to the old file under this name, and the old file.
    Link(OsString, Identity),
    /// Only in a `v1` record: the target existed but could not be linked;
    /// once replaced, it cannot be put back.
    Unavailable,
}

/// One rename of the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub temp: OsString,
    pub target: OsString,
    pub backup: Backup,
    /// The finished temp file.
    pub new: Identity,
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

fn encode_identity(out: &mut String, id: &Identity) {
    let _ = write!(out, "{}", id.inode);
    if let Some(s) = id.sample {
        let _ = write!(out, ":{}:{:08x}", s.len, s.crc);
        if let Some(mtime) = id.mtime_ns {
            let _ = write!(out, ":{mtime}");
        }
    }
}

/// Which record a journal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
    V3,
}

/// `<inode>:<size>:<crc>[:<mtime>]`, or `<inode>` (every identity of a `v1`
/// record; a symlink's later, whose inode number is all there is to
/// compare). The mtime only in `v3`.
fn decode_identity(text: &str, version: Version) -> Option<Identity> {
    let mut parts = text.split(':');
    let inode = parts.next()?.parse().ok()?;
    let sample = match (parts.next(), parts.next()) {
        (None, _) => None,
        (Some(len), Some(crc)) if version != Version::V1 && crc.len() == 8 => Some(Sample {
            len: len.parse().ok()?,
            crc: u32::from_str_radix(crc, 16).ok()?,
        }),
        _ => return None,
    };
    let mtime_ns = match parts.next() {
        None => None,
        Some(m) if version == Version::V3 => Some(m.parse().ok()?),
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Identity {
        inode,
        sample,
        mtime_ns,
    })
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
                Backup::Link(name, id) => {
                    hex(&mut text, name.as_bytes());
                    text.push(':');
                    encode_identity(&mut text, id);
                }
            }
            text.push(' ');
            encode_identity(&mut text, &e.new);
            text.push('\n');
        }
        let crc = crc32fast::hash(text.as_bytes());
        let _ = writeln!(text, "crc32 {crc:08x}");
        text.into_bytes()
    }

    /// The journal in `bytes` (`v2` or `v1`), or `None` if they are not a
    /// whole one.
    pub fn decode(bytes: &[u8]) -> Option<Journal> {
        let text = std::str::from_utf8(bytes).ok()?;
        let body_end = text.rfind("crc32 ")?;
        let (body, trailer) = text.split_at(body_end);
        let crc =
            u32::from_str_radix(trailer.strip_prefix("crc32 ")?.strip_suffix('\n')?, 16).ok()?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return None;
        }
        let (lines, version) = [
            (MAGIC, Version::V3),
            (MAGIC_V2, Version::V2),
            (MAGIC_V1, Version::V1),
        ]
        .into_iter()
        .find_map(|(magic, v)| Some((body.strip_prefix(magic)?, v)))?;
        let mut entries = Vec::new();
        for line in lines.lines() {
            let mut words = line.strip_prefix("rename ")?.split(' ');
            let name = |w: Option<&str>| unhex(w?).map(OsString::from_vec);
            let temp = name(words.next())?;
            let target = name(words.next())?;
            let backup = match words.next()? {
                "new" => Backup::New,
                "none" if version == Version::V1 => Backup::Unavailable,
                w => {
                    let (name, id) = w.split_once(':')?;
                    Backup::Link(
                        OsString::from_vec(unhex(name)?),
                        decode_identity(id, version)?,
                    )
                }
            };
            let new = decode_identity(words.next()?, version)?;
            if words.next().is_some() {
                return None;
            }
            entries.push(Entry {
                temp,
                target,
                backup,
                new,
            });
        }
        Some(Journal { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(inode: u64, len: u64, crc: u32) -> Identity {
        Identity {
            inode,
            sample: Some(Sample { len, crc }),
            mtime_ns: None,
        }
    }

    fn sample() -> Journal {
        Journal {
            entries: vec![
                Entry {
                    temp: ".rank0.safetensors.trtllm-prune-ab.tmp".into(),
                    target: "rank0.safetensors".into(),
                    backup: Backup::Link(
                        ".rank0.safetensors.trtllm-prune-ab.old".into(),
                        Identity {
                            mtime_ns: Some(1_733_000_000_123_456_789),
                            ..id(77, 4096, 0xdead_beef)
                        },
                    ),
                    new: id(1, 0, 0),
                },
                Entry {
                    temp: OsString::from_vec(b".odd \n\xff name.tmp".to_vec()),
                    target: OsString::from_vec(b"odd \n\xff name".to_vec()),
                    backup: Backup::Link(".odd.old".into(), id(u64::MAX, u64::MAX, u32::MAX)),
                    new: id(u64::MAX, 12, 7),
                },
                Entry {
                    temp: ".config.json.trtllm-prune-ab.tmp".into(),
                    target: "link".into(),
                    // A symlink replaced in place: its inode number only.
                    backup: Backup::Link(
                        ".link.old".into(),
                        Identity {
                            inode: 9,
                            sample: None,
                            mtime_ns: None,
                        },
                    ),
                    new: id(u64::MAX, 12, 7),
                },
                Entry {
                    temp: ".config.json.trtllm-prune-ab.tmp".into(),
                    target: "config.json".into(),
                    backup: Backup::New,
                    new: id(12345, 99, 0x0102_0304),
                },
            ],
        }
    }

    #[test]
    fn reads_a_v1_record_with_inode_numbers_only() {
        let body = format!(
            "trtllm-prune commit v1\nrename {} {} {}:77 5\nrename {} {} none 6\n",
            "2e74", "74", "2e6f", "2e75", "75"
        );
        let bytes = format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
        let old = |inode| Identity {
            inode,
            sample: None,
            mtime_ns: None,
        };
        assert_eq!(
            Journal::decode(bytes.as_bytes()),
            Some(Journal {
                entries: vec![
                    Entry {
                        temp: ".t".into(),
                        target: "t".into(),
                        backup: Backup::Link(".o".into(), old(77)),
                        new: old(5),
                    },
                    Entry {
                        temp: ".u".into(),
                        target: "u".into(),
                        backup: Backup::Unavailable,
                        new: old(6),
                    },
                ],
            })
        );
    }

    #[test]
    fn reads_a_v2_record_without_modification_times_and_refuses_one_with_them() {
        let body = format!(
            "trtllm-prune commit v2\nrename {} {} {}:77:10:0000000a 5:3:00000001\n",
            "2e74", "74", "2e6f"
        );
        let bytes = format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
        let journal = Journal::decode(bytes.as_bytes()).expect("a v2 record");
        assert_eq!(
            journal.entries[0].backup,
            Backup::Link(".o".into(), id(77, 10, 10))
        );
        let body = body.replace(":0000000a ", ":0000000a:123 ");
        let bytes = format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
        assert_eq!(Journal::decode(bytes.as_bytes()), None);
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
