//! Moving bytes from an input file to an output file without passing them
//! through the heap where the kernel allows it.
//!
//! For each [`CopyRange`], in order of preference:
//! 1. `FICLONERANGE` on the block-aligned middle of a range whose input and
//!    output offsets are congruent: the output shares the input's blocks
//!    (XFS, btrfs) and nothing is copied;
//! 2. `copy_file_range`: an in-kernel copy (and server-side on NFS);
//! 3. `sendfile`: in-kernel too, and works across filesystems where
//!    `copy_file_range` answers `EXDEV`;
//! 4. `pread`/`pwrite` through one fixed buffer of [`FALLBACK_BUFFER`] bytes.
//!
//! A method that answers "not supported here" (`EXDEV`, `EINVAL`,
//! `EOPNOTSUPP`, `ENOSYS`, ...) is dropped for the rest of the file and the
//! next one is tried for the remaining bytes. We never map the input: a file
//! truncated while mapped kills the reader with `SIGBUS`, whereas every call
//! here reports a short input as a zero-length read, which becomes
//! [`Error::InputChanged`].
//!
//! Copies go in chunks of at most [`CHUNK`] bytes so that progress is
//! reported and an interruption is noticed within a fraction of a second.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

use rustix::fs::SeekFrom;
use std::path::Path;

use crate::base::error::{Error, Result};
use crate::plan::CopyRange;

/// Largest single copy call, so progress and interruptions stay responsive.
pub const CHUNK: u64 = 64 << 20;
/// Size of the one buffer the last-resort path uses.
pub const FALLBACK_BUFFER: usize = 1 << 20;
/// The smallest buffer the last-resort path makes do with when memory is
/// short.
pub const MIN_BUFFER: usize = 4 << 10;
/// Output offset every copy call after the first of a long range starts at
/// a multiple of. The page cache gives a write large folios only where the
/// file offset is aligned to their size, and the kernel's in-kernel copies
/// move 16 pages (64 KiB) per step; a copy that starts 8 KiB past such a
/// boundary stays off it and writes 8-32 KiB folios. Ending the first call
/// on the boundary costs one call and saves a quarter of the kernel's CPU
/// time on ext4 (see docs/BENCHMARKS.md).
pub const WRITE_ALIGNMENT: u64 = 64 << 10;

/// What a file's copy did, for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    /// Bytes the output shares with the input (cloned extents).
    pub shared: u64,
    /// Bytes copied by the kernel or through the buffer.
    pub copied: u64,
    /// Bytes the input does not store (holes): neither read nor written,
    /// they stay holes in the output.
    pub holes: u64,
}

/// Which in-kernel copy methods a run may try, best first (all by
/// default); where none works, bytes go through one fixed buffer.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CopyMethods {
    /// Share the input's blocks (`FICLONERANGE`: XFS, btrfs).
    pub clone: bool,
    /// `copy_file_range`.
    pub copy_file_range: bool,
    /// `sendfile`.
    pub sendfile: bool,
}

impl Default for CopyMethods {
    fn default() -> Self {
        CopyMethods {
            clone: true,
            copy_file_range: true,
            sendfile: true,
        }
    }
}

impl CopyMethods {
    /// Only the portable `pread`/`pwrite` path (used by tests to exercise
    /// the fallback on any filesystem).
    pub fn buffered_only() -> Self {
        CopyMethods {
            clone: false,
            copy_file_range: false,
            sendfile: false,
        }
    }
}

/// One input file and the output file it is copied into, each with the
/// path that errors name.
pub(crate) struct FilePair<'a> {
    pub src: &'a File,
    pub src_path: &'a Path,
    pub dst: &'a File,
    pub dst_path: &'a Path,
}

/// What a copy reports to, and what stops it.
pub(crate) struct Hooks<'a> {
    /// Called with each number of bytes completed (holes included).
    pub on_progress: &'a dyn Fn(u64),
    /// Checked between chunks: an error stops the copy.
    pub cancel: &'a dyn Fn() -> Result<()>,
}

/// Copies ranges from one input file to one output file.
pub(crate) struct RangeCopier<'a> {
    src: &'a File,
    dst: &'a File,
    src_path: &'a Path,
    dst_path: &'a Path,
    /// Block size for cloning; spans are cloned only at multiples of it.
    block: u64,
    methods: CopyMethods,
    on_progress: &'a dyn Fn(u64),
    check_cancel: &'a dyn Fn() -> Result<()>,
    stats: CopyStats,
    buffer: Vec<u8>,
    /// The input data segment found last (`SEEK_DATA`, `SEEK_HOLE`):
    /// ranges within it need no new look-up.
    segment: Option<(u64, u64)>,
    /// Whether the input's filesystem reports holes.
    find_holes: bool,
}

impl<'a> RangeCopier<'a> {
    pub fn new(files: FilePair<'a>, block: u64, methods: CopyMethods, hooks: Hooks<'a>) -> Self {
        RangeCopier {
            src: files.src,
            dst: files.dst,
            src_path: files.src_path,
            dst_path: files.dst_path,
            block,
            methods,
            on_progress: hooks.on_progress,
            check_cancel: hooks.cancel,
            stats: CopyStats::default(),
            buffer: Vec::new(),
            segment: None,
            find_holes: true,
        }
    }

    /// What the copies so far did.
    pub fn stats(&self) -> CopyStats {
        self.stats
    }

    /// Copies one range: the parts the input stores, cloning their aligned
    /// middles where possible; holes are skipped (the output was sized with
    /// `ftruncate`, so they read as zeros there too, and take no space).
    pub fn copy(&mut self, range: CopyRange) -> Result<()> {
        let end = range.src + range.len;
        let mut pos = range.src;
        while pos < end {
            let (data, data_end) = match self.data_segment(pos)? {
                Some((data, data_end)) if data < end => (data, data_end.min(end)),
                // The rest of the range is a hole (or past the input's end:
                // `check_unchanged` reports a shrunk input).
                _ => {
                    self.skip_hole(end - pos);
                    break;
                }
            };
            self.skip_hole(data - pos);
            self.copy_span(CopyRange {
                src: data,
                dst: range.dst + (data - range.src),
                len: data_end - data,
            })?;
            pos = data_end;
        }
        Ok(())
    }

    /// The input's data segment that holds `pos` or is the first after it,
    /// as `(start, end)` with `start >= pos`; `None` when only a hole (or
    /// the end of the file) follows.
    fn data_segment(&mut self, pos: u64) -> Result<Option<(u64, u64)>> {
        if let Some((start, end)) = self.segment {
            if start <= pos && pos < end {
                return Ok(Some((pos, end)));
            }
        }
        if !self.find_holes {
            return Ok(Some((pos, u64::MAX)));
        }
        let start = match seek(self.src, SeekFrom::Data(pos)) {
            Ok(start) => start,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
            // No hole reporting here: every byte counts as data.
            Err(_) => {
                self.find_holes = false;
                return Ok(Some((pos, u64::MAX)));
            }
        };
        let end = seek(self.src, SeekFrom::Hole(start))
            .map_err(|e| Error::io(self.src_path, "cannot find the holes of", e))?;
        self.segment = Some((start, end));
        Ok(Some((start, end)))
    }

    fn skip_hole(&mut self, len: u64) {
        if len > 0 {
            self.stats.holes += len;
            (self.on_progress)(len);
        }
    }

    /// Copies one span of input data, cloning its aligned middle where
    /// possible.
    fn copy_span(&mut self, range: CopyRange) -> Result<()> {
        let CopyRange { src, dst, len } = range;
        if self.methods.clone && self.block > 1 {
            let middle = clonable_middle(src, dst, len, self.block);
            if middle > 0 {
                let head = (self.block - src % self.block) % self.block;
                self.copy_bytes(src, dst, head)?;
                let cloned = self.clone_span(src + head, dst + head, middle)?;
                let rest = head + cloned;
                return self.copy_bytes(src + rest, dst + rest, len - rest);
            }
        }
        self.copy_bytes(src, dst, len)
    }

    /// Clones as much of an aligned span as the filesystem allows, chunk by
    /// chunk; returns how many bytes were cloned (a prefix of the span).
    fn clone_span(&mut self, src: u64, dst: u64, len: u64) -> Result<u64> {
        let mut done = 0;
        while done < len && self.methods.clone {
            (self.check_cancel)()?;
            let n = (len - done).min(CHUNK);
            match ficlonerange(self.src, self.dst, src + done, dst + done, n) {
                Ok(()) => {
                    done += n;
                    self.stats.shared += n;
                    (self.on_progress)(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Any refusal (unsupported filesystem, different
                // filesystems, unaligned block size) means "copy instead".
                Err(_) => self.methods.clone = false,
            }
        }
        Ok(done)
    }

    fn copy_bytes(&mut self, src: u64, dst: u64, len: u64) -> Result<()> {
        let mut done = 0;
        while done < len {
            (self.check_cancel)()?;
            let (s, d) = (src + done, dst + done);
            let want = (len - done).min(chunk_limit(d, len - done));
            let n = if self.methods.copy_file_range {
                match copy_file_range(self.src, self.dst, s, d, want) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if is_unsupported(&e) => {
                        self.methods.copy_file_range = false;
                        continue;
                    }
                    Err(e) => return Err(self.io_error(e)),
                }
            } else if self.methods.sendfile {
                match sendfile(self.src, self.dst, s, d, want) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if is_unsupported(&e) => {
                        self.methods.sendfile = false;
                        continue;
                    }
                    Err(e) => return Err(self.io_error(e)),
                }
            } else {
                self.buffered(s, d, want)?
            };
            if n == 0 {
                // The input ended before the header said it would.
                return Err(Error::InputChanged {
                    file: self.src_path.to_path_buf(),
                    offset: s,
                });
            }
            done += n;
            self.stats.copied += n;
            (self.on_progress)(n);
        }
        Ok(())
    }

    /// One read and one full write through the fixed buffer.
    fn buffered(&mut self, src: u64, dst: u64, want: u64) -> Result<u64> {
        if self.buffer.is_empty() {
            self.buffer = fallback_buffer().ok_or_else(|| {
                Error::io(
                    self.dst_path,
                    "cannot get a copy buffer for",
                    io::Error::from(io::ErrorKind::OutOfMemory),
                )
            })?;
        }
        let n = count(want).min(self.buffer.len());
        let read = loop {
            match self.src.read_at(&mut self.buffer[..n], src) {
                Ok(r) => break r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => (self.check_cancel)()?,
                Err(e) => return Err(Error::io(self.src_path, "cannot read", e)),
            }
        };
        self.dst
            .write_all_at(&self.buffer[..read], dst)
            .map_err(|e| Error::io(self.dst_path, "cannot write", e))?;
        Ok(read as u64)
    }

    /// A failed kernel copy: blame the output for a full disk or a write
    /// error, the input otherwise.
    fn io_error(&self, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) | Some(libc::EROFS) => {
                Error::io(self.dst_path, "cannot write", e)
            }
            _ => Error::io(self.src_path, "cannot copy", e),
        }
    }
}

/// The copy buffer, as large as memory allows up to [`FALLBACK_BUFFER`]
/// and at least [`MIN_BUFFER`]: under `ulimit -v` a smaller buffer only
/// means more calls. `None` when not even the smallest can be had.
pub(crate) fn fallback_buffer() -> Option<Vec<u8>> {
    let mut size = FALLBACK_BUFFER;
    loop {
        let mut buffer = Vec::new();
        if buffer.try_reserve_exact(size).is_ok() {
            buffer.resize(size, 0);
            return Some(buffer);
        }
        if size <= MIN_BUFFER {
            return None;
        }
        size /= 2;
    }
}

/// Bytes of the span of `len` bytes from input offset `src` to output
/// offset `dst` that cloning at `block` covers: the block-aligned middle
/// when the offsets are congruent, nothing otherwise (`block` > 1).
pub(crate) fn clonable_middle(src: u64, dst: u64, len: u64, block: u64) -> u64 {
    if src % block != dst % block {
        return 0;
    }
    let head = (block - src % block) % block;
    if head >= len {
        return 0;
    }
    (len - head) / block * block
}

/// Bytes the copy call at output offset `dst` may move when `left` bytes of
/// the range remain: a chunk, or up to the next [`WRITE_ALIGNMENT`]
/// boundary when the call starts off one and more than a boundary's worth
/// remains (shorter tails gain nothing from a split).
fn chunk_limit(dst: u64, left: u64) -> u64 {
    let misalign = dst % WRITE_ALIGNMENT;
    if misalign != 0 && left > WRITE_ALIGNMENT {
        WRITE_ALIGNMENT - misalign
    } else {
        CHUNK
    }
}

/// Errors by which a kernel copy method says "not for these files".
fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV)
            | Some(libc::EINVAL)
            | Some(libc::EOPNOTSUPP)
            | Some(libc::ENOSYS)
            | Some(libc::EPERM)
            | Some(libc::EBADF)
            | Some(libc::ETXTBSY)
    )
}

/// `lseek(2)` to `to` (`SEEK_DATA`, `SEEK_HOLE`). Only the input's file
/// position moves, which nothing else uses: every read and copy gives its
/// offset.
pub(crate) fn seek(file: &File, to: SeekFrom) -> io::Result<u64> {
    if let SeekFrom::Start(pos) | SeekFrom::Data(pos) | SeekFrom::Hole(pos) = to {
        offset(pos)?;
    }
    Ok(rustix::fs::seek(file, to)?)
}

/// `pos` if it is a file offset the kernel takes (an `off_t`); `EOVERFLOW`
/// otherwise, where the kernel would take it for a negative one.
fn offset(pos: u64) -> io::Result<u64> {
    match i64::try_from(pos) {
        Ok(_) => Ok(pos),
        Err(_) => Err(io::Error::from_raw_os_error(libc::EOVERFLOW)),
    }
}

/// `len` as one call's byte count; a length past `usize` asks for less,
/// which the copy loops take as a short copy.
fn count(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

fn copy_file_range(src: &File, dst: &File, s: u64, d: u64, len: u64) -> io::Result<u64> {
    let (mut off_in, mut off_out) = (offset(s)?, offset(d)?);
    let n =
        rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), count(len))?;
    Ok(n as u64)
}

fn sendfile(src: &File, dst: &File, s: u64, d: u64, len: u64) -> io::Result<u64> {
    // sendfile writes at the output's file position; each output file is
    // written by one thread only, so seeking here is race-free.
    seek(dst, SeekFrom::Start(d))?;
    let mut off_in = offset(s)?;
    let n = rustix::fs::sendfile(dst, src, Some(&mut off_in), count(len))?;
    Ok(n as u64)
}

fn ficlonerange(src: &File, dst: &File, s: u64, d: u64, len: u64) -> io::Result<()> {
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: s,
        src_length: len,
        dest_offset: d,
    };
    // rustix offers FICLONE (whole files) but not FICLONERANGE.
    // SAFETY: `arg` is a live, correctly laid out `file_clone_range` and
    // `dst` an open descriptor, both for the length of the call; the kernel
    // only reads `arg`.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether `FICLONERANGE` shares a block of `src` (its first `block`
/// bytes) with `scratch`, a file in the output folder: whether the copies
/// will clone, learnt by trying. A filesystem may clone as a rule and not
/// here (XFS made without reflink, a btrfs `chattr +C` folder), or clone
/// across what `st_dev` calls two filesystems (btrfs subvolumes).
pub(crate) fn clones_into(src: &File, scratch: &File, block: u64) -> bool {
    ficlonerange(src, scratch, 0, 0, block).is_ok()
}

/// The block size of the filesystem that holds `dir`, or of its nearest
/// existing ancestor (the output folder may not exist yet): the unit
/// `FICLONERANGE` shares blocks in, so the one the planner aligns to.
/// `None` when it cannot be read or is implausible for cloning (not a
/// power of two from 512 bytes to 64 KiB: network filesystems report their
/// transfer size, and aligning to it would only pad headers).
pub fn clone_block_size(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let stat = rustix::fs::statfs(existing).ok()?;
    let block = u64::try_from(stat.f_bsize).ok()?;
    (block.is_power_of_two() && (512..=64 << 10).contains(&block)).then_some(block)
}
