//! Space first: before a run writes its first byte, what it will allocate
//! in the output filesystem is compared with what that filesystem has free,
//! and each output's size with the file size limit (`ulimit -f`). Too
//! little is a refusal that names both sizes, with nothing written, instead
//! of a copy that runs until `ENOSPC` or `EFBIG`.
//!
//! The estimate counts what the copy will really allocate:
//! - holes of the input stay holes (`SEEK_DATA`/`SEEK_HOLE`), and so do the
//!   gaps the plan leaves between tensors;
//! - blocks that cloning will share with the input are free, but only where
//!   sharing was seen to work: a block of the input cloned (`FICLONERANGE`)
//!   into a nameless file in the output folder, once per input filesystem
//!   (XFS made without reflink, a btrfs `chattr +C` folder refuse; btrfs
//!   subvolumes, each its own `st_dev`, share), and only the block-aligned
//!   middles of ranges whose input and output offsets are congruent (what
//!   `copy` clones);
//! - the journal counts, at its largest (every file with a backup link),
//!   against free space and the file size limit;
//! - each file may take one block more than its bytes (its last, partial
//!   block).
//!
//! Free space is what an unprivileged user may use (`f_bavail`), not the
//! reserve only root may dip into. Files the run replaces (in place, or an
//! older output) are freed only after the commit, so they count as used.
//! Quotas are not looked at, nor is a filesystem that cannot tell its free
//! space (`statfs` fails, or reports no blocks at all): a full disk or quota then ends the copy with
//! `ENOSPC` or `EDQUOT`, and the run cleans up as for any failed write.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use rustix::fs::SeekFrom;

use crate::base::error::{Error, Result};
use crate::base::shown::human_bytes;
use crate::base::sys::Filesystem;
use crate::copy::ranges::{self, CopyMethods};
use crate::plan::CopyRange;
use crate::read::input::InputFile;

/// One output file, as the space check sees it.
pub(crate) struct Output<'a> {
    /// The final path, named in messages.
    pub target: &'a Path,
    /// The file's length.
    pub len: u64,
    /// Bytes written from memory (a header, a generated file's text).
    pub written: u64,
    /// Where the rest comes from: an input file and the ranges copied.
    pub copied: Option<(&'a InputFile, &'a [CopyRange])>,
}

/// Refuses the run, before anything is written, when an output would pass
/// the file size limit or the outputs would not fit in `filesystem` (the
/// output folder's; `None`, or no `free`, when it cannot say how much is
/// free: the copy then finds a full disk, and cleans up). `block` is the
/// block size the copies clone at; `scratch`, a nameless file in the output
/// folder, is what a block of each input is cloned into to learn whether
/// the copies will share blocks (`None`: they are taken not to).
pub(crate) fn check(
    out_dir: &Path,
    filesystem: Option<&Filesystem>,
    outputs: &[Output],
    (methods, block): (CopyMethods, u64),
    scratch: Option<&File>,
) -> Result<()> {
    if let Some(limit) = crate::base::sys::file_size_limit() {
        if let Some(big) = outputs.iter().find(|o| o.len > limit) {
            return Err(Error::refused(big.target, {
                let (len, limit) = two_sizes(big.len, limit);
                format!(
                        "file too large: it would be {len}, past the file size limit (ulimit -f) of {limit}; nothing was written"
                    )
            }));
        }
    }
    let Some((filesystem, free)) = filesystem.and_then(|f| Some((f, f.free?))) else {
        return Ok(());
    };
    let scratch = scratch.filter(|_| methods.clone && block > 1);
    // Whether copies from an input share blocks, by the input's st_dev:
    // one probe per filesystem (or btrfs subvolume) the inputs are on.
    let mut clones_from: HashMap<u64, bool> = HashMap::new();
    let mut shares = |input: &InputFile| -> bool {
        let (Some(scratch), Some(local)) = (scratch, input.local()) else {
            return false;
        };
        // Smaller than a block: nothing to share, and nothing to learn.
        if local.stamp.len < block {
            return false;
        }
        *clones_from
            .entry(local.stamp.dev)
            .or_insert_with(|| ranges::clones_into(&local.file, scratch, block))
    };
    let unit = filesystem.block.max(1);
    let mut needed: u64 = 0;
    for output in outputs {
        let copied = match output.copied {
            None => 0,
            Some((input, ranges)) => {
                bytes_to_allocate(input, ranges, shares(input).then_some(block))
            }
        };
        needed = needed
            .saturating_add(output.written)
            .saturating_add(copied)
            .saturating_add(unit);
    }
    if needed > free {
        let (needed, free) = two_sizes(needed, free);
        return Err(Error::no_space(out_dir, needed, free));
    }
    Ok(())
}

/// Two sizes for one message, readable (`133.23 MiB`), and in bytes as
/// well when they would read the same.
fn two_sizes(a: u64, b: u64) -> (String, String) {
    let (x, y) = (human_bytes(a), human_bytes(b));
    if x == y && a != b {
        return (format!("{x} ({a} bytes)"), format!("{y} ({b} bytes)"));
    }
    (x, y)
}

/// Bytes copying `ranges` of `input` will allocate: the data the input
/// stores within them, less the aligned middles cloning at `clone_block`
/// will share. A remote input (or a filesystem that does not report holes)
/// counts every byte.
fn bytes_to_allocate(input: &InputFile, ranges: &[CopyRange], clone_block: Option<u64>) -> u64 {
    let Some(local) = input.local() else {
        return ranges.iter().map(|r| r.len).sum();
    };
    let file = &local.file;
    let mut segments = DataSegments::new(file);
    let mut total: u64 = 0;
    for range in ranges {
        let end = range.src.saturating_add(range.len);
        segments
            .each_within(range.src, end, |data, data_end| {
                let len = data_end - data;
                let dst = range.dst + (data - range.src);
                let shared = clone_block.map_or(0, |b| ranges::clonable_middle(data, dst, len, b));
                total = total.saturating_add(len - shared);
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_else(|never| match never {});
    }
    total
}

/// The data segments of a file, looked up with `SEEK_DATA`/`SEEK_HOLE` and
/// the last one remembered (ranges come mostly in input order).
pub(crate) struct DataSegments<'a> {
    file: &'a File,
    last: Option<(u64, u64)>,
    reports_holes: bool,
}

impl<'a> DataSegments<'a> {
    pub(crate) fn new(file: &'a File) -> Self {
        DataSegments {
            file,
            last: None,
            reports_holes: true,
        }
    }

    /// The data segment holding `pos` or the first after it; `None` when
    /// only a hole follows.
    pub(crate) fn at_or_after(&mut self, pos: u64) -> Option<(u64, u64)> {
        if let Some((start, end)) = self.last {
            if start <= pos && pos < end {
                return Some((pos, end));
            }
        }
        if !self.reports_holes {
            return Some((pos, u64::MAX));
        }
        let start = match ranges::seek(self.file, SeekFrom::Data(pos)) {
            Ok(start) => start,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return None,
            Err(_) => {
                self.reports_holes = false;
                return Some((pos, u64::MAX));
            }
        };
        let end = ranges::seek(self.file, SeekFrom::Hole(start)).unwrap_or(u64::MAX);
        self.last = Some((start, end));
        Some((start, end))
    }

    /// Calls `each` with every data segment between `start` and `end`
    /// (clipped to them), in order; the holes between are skipped. Stops
    /// at the first error `each` returns.
    pub(crate) fn each_within<E>(
        &mut self,
        start: u64,
        end: u64,
        mut each: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut pos = start;
        while pos < end {
            let Some((data, data_end)) = self.at_or_after(pos) else {
                break;
            };
            if data >= end {
                break;
            }
            let data_end = data_end.min(end);
            each(data, data_end)?;
            pos = data_end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    fn range(src: u64, dst: u64, len: u64) -> CopyRange {
        CopyRange { src, dst, len }
    }

    #[test]
    fn holes_of_the_input_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let file = File::create(&path).unwrap();
        // 1 MiB of data, then 63 MiB of hole.
        file.write_all_at(&vec![7u8; 1 << 20], 0).unwrap();
        file.set_len(64 << 20).unwrap();
        let input = InputFile::open(&path).unwrap();

        let whole = [range(0, 0, 64 << 20)];
        let counted = bytes_to_allocate(&input, &whole, None);

        // Filesystems that do not report holes count every byte.
        assert!(counted == 1 << 20 || counted == 64 << 20, "{counted}");
    }

    #[test]
    fn sizes_that_read_the_same_are_shown_in_bytes_too() {
        let mib = 1 << 20;
        assert_eq!(
            two_sizes(133 * mib + 1, 133 * mib),
            (
                format!("133.00 MiB ({} bytes)", 133 * mib + 1),
                format!("133.00 MiB ({} bytes)", 133 * mib)
            )
        );
        assert_eq!(
            two_sizes(2 * mib, mib),
            ("2.00 MiB".to_string(), "1.00 MiB".to_string())
        );
    }

    #[test]
    fn only_aligned_middles_of_congruent_ranges_count_as_shared() {
        let block = 4096;
        assert_eq!(
            ranges::clonable_middle(100, 100, 3 * block, block),
            2 * block
        );
        assert_eq!(
            ranges::clonable_middle(0, 0, 3 * block + 5, block),
            3 * block
        );
        assert_eq!(ranges::clonable_middle(0, 8, 3 * block, block), 0);
        assert_eq!(ranges::clonable_middle(100, 100, block, block), 0);
    }
}
