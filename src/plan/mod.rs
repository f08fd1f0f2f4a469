//! The planner: a pure function from a validated [`Header`] and a
//! [`PruneRule`] to a [`PrunePlan`] — the output file's header bytes and the
//! byte ranges to copy from input to output. No I/O happens here.
//!
//! Invariants of a plan:
//! - every input tensor name appears in the output header once, in the
//!   input's listing order, with its dtype; a pruned tensor has shape `[0]`
//!   and `data_offsets` `[0, 0]` (an empty tensor is valid at any tile
//!   boundary, and 0 always is one);
//! - kept tensors keep shape and bytes; input-adjacent kept tensors form one
//!   [`CopyRange`], so they are copied in one call (unless the layout
//!   optimiser takes them apart to keep tensors aligned: see `layout.rs`);
//! - copy ranges tile the output's data buffer exactly, in `dst` order;
//! - the header is at most [`MAX_HEADER_SIZE`] bytes, or planning fails with
//!   [`PlanError::HeaderTooLarge`];
//! - planning takes O(n log n) time for n tensors, whatever the header.
//!
//! Where kept tensors go in the output, the order of the copy ranges
//! that keeps them aligned and lets a cloning filesystem share their
//! blocks, is the layout optimiser's choice: see `layout.rs`.
//!
//! Hollow plans ([`plan_hollow`], `--hollow`) keep none of the invariants
//! about the data buffer above: the output is the input's header bytes and
//! length, every tensor at its input offset, and the copy ranges cover only
//! the kept tensors, leaving pruned ones as holes that read as zeros.

pub(crate) mod file;
pub(crate) mod header_json;
mod layout;
pub(crate) mod prepared;
pub(crate) mod rule;
pub(crate) mod suggest;

use std::fmt;

pub use crate::base::copy_range::CopyRange;
use crate::plan::header_json::HeaderJson;
use crate::plan::layout::{kept_runs, lay_out, Split, NO_RUN};
use crate::plan::rule::PruneRule;
use crate::read::header::{Dtype, Header, TensorEntry, MAX_HEADER_SIZE, N_LEN};

/// Block size the planner aligns large ranges to when the output
/// filesystem's own is unknown: the block size of XFS and btrfs in their
/// default configuration.
pub const SHARE_ALIGNMENT: u64 = 4096;

/// The modulus tensor offsets are kept congruent to: the widest element
/// (8 bytes) the format has, and what the official writer aligns to.
pub const TENSOR_ALIGNMENT: u64 = 8;

/// Alignment a tensor of `dtype` needs to be viewed in place: its element
/// size in bytes, 1 for the sub-byte types.
pub fn dtype_alignment(dtype: Dtype) -> u64 {
    (dtype.bits() / 8).clamp(1, TENSOR_ALIGNMENT)
}

/// Why a header cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The rewritten header (object form, new offsets) would not fit the
    /// format's limit even without padding.
    HeaderTooLarge {
        /// The unpadded length it would have.
        len: u64,
    },
    /// An offset of the header does not fit 64 bits (a header that did not
    /// come from `parse_header`).
    OffsetOverflow {
        /// The tensor, by its index in the header.
        tensor: usize,
    },
    /// The header bytes given for a hollow plan are not as long as the
    /// header says (`8 + N`).
    HeaderBytes {
        /// The length given.
        len: u64,
        /// The length the prefix says.
        expected: u64,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::HeaderTooLarge { len } => write!(
                f,
                "the pruned header would be {len} bytes, over the format's limit of {MAX_HEADER_SIZE} bytes"
            ),
            PlanError::OffsetOverflow { tensor } => write!(
                f,
                "the offsets of tensor #{tensor} overflow a 64-bit file offset"
            ),
            PlanError::HeaderBytes { len, expected } => write!(
                f,
                "the header read is {len} bytes, but the file's length prefix says {expected}"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// What happens to one input tensor. `PrunePlan::tensors[i]` is about
/// `Header::tensors[i]` (name and shape are there; not copied, so planning
/// allocates nothing per tensor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorOutcome {
    /// The tensor's element type.
    pub dtype: Dtype,
    /// Bytes of the tensor in the input.
    pub bytes: u64,
    /// File offset of the tensor's data in the input.
    pub input_offset: u64,
    /// File offset of the tensor's data in the output (the output's data
    /// start for pruned and empty tensors).
    pub output_offset: u64,
    /// Whether the rule prunes it (why: `PruneRule::decide`, when shown;
    /// not kept here, a million tensors would carry a million reasons).
    pub pruned: bool,
}

/// The complete plan for one output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePlan {
    /// The 8-byte length prefix followed by the padded JSON header.
    pub header_bytes: Vec<u8>,
    /// Ranges to copy, sorted by `dst`, tiling the output data buffer.
    pub copies: Vec<CopyRange>,
    /// One entry per input tensor, in the input's listing order.
    pub tensors: Vec<TensorOutcome>,
    /// Length of the input file.
    pub input_len: u64,
    /// Length of the output file.
    pub output_len: u64,
    /// Work units the filler search spent (candidates examined, bitset
    /// words): at most `layout::filler_budget` of the number of ranges, which
    /// tests check to pin the planner's bound without timing it.
    pub(crate) filler_work: u64,
    /// A hollow plan (`plan_hollow`): the input's header, every tensor
    /// at its input offset, pruned tensors left as holes.
    pub hollow: bool,
}

impl PrunePlan {
    /// Work units the filler search spent (a test probe: see the field).
    #[cfg(feature = "fixture")]
    pub fn filler_work(&self) -> u64 {
        self.filler_work
    }

    /// Each tensor of `header` (the header this plan was made from) with
    /// what the plan does to it, in the header's order: the one place the
    /// two lists are matched up.
    pub fn tensors_of<'a>(
        &'a self,
        header: &'a Header,
    ) -> impl Iterator<Item = (TensorEntry<'a>, &'a TensorOutcome)> + 'a {
        debug_assert_eq!(header.tensor_count(), self.tensors.len());
        header.tensors().zip(&self.tensors)
    }

    /// Tensors the plan prunes.
    pub fn pruned_count(&self) -> usize {
        self.tensors.iter().filter(|t| t.pruned).count()
    }

    /// Tensors the plan keeps.
    pub fn kept_count(&self) -> usize {
        self.tensors.len() - self.pruned_count()
    }

    /// Bytes of tensor data the output carries.
    pub fn kept_bytes(&self) -> u64 {
        self.copies.iter().map(|c| c.len).sum()
    }

    /// Bytes the output stores: its header and the kept tensor data (for a
    /// hollow plan, what it allocates, give or take partial blocks; its
    /// apparent size is `output_len`).
    pub fn stored_bytes(&self) -> u64 {
        (self.header_bytes.len() as u64).saturating_add(self.kept_bytes())
    }

    /// Ranges whose input and output offsets are congruent modulo `block`:
    /// the ones a sharing filesystem can clone.
    pub fn congruent_bytes(&self, block: u64) -> u64 {
        self.copies
            .iter()
            .filter(|c| c.src % block == c.dst % block)
            .map(|c| c.len)
            .sum()
    }

    /// Kept tensors with data whose output offset is not congruent to
    /// their input offset modulo 8 (`TENSOR_ALIGNMENT`), by index.
    pub fn incongruent_tensors(&self) -> impl Iterator<Item = usize> + '_ {
        self.tensors.iter().enumerate().filter_map(|(i, t)| {
            let moved = t.output_offset % TENSOR_ALIGNMENT != t.input_offset % TENSOR_ALIGNMENT;
            (!t.pruned && t.bytes > 0 && moved).then_some(i)
        })
    }

    /// Checks the alignment promise every plan keeps: when every kept
    /// tensor of the input is aligned for its dtype (as the official
    /// writer's files are), every kept tensor of the output is too. The
    /// error names the first tensor that breaks it.
    pub fn check_alignment(&self) -> Result<(), String> {
        let kept = || self.tensors.iter().filter(|t| !t.pruned && t.bytes > 0);
        let aligned = |offset: u64, dtype| offset.is_multiple_of(dtype_alignment(dtype));
        if !kept().all(|t| aligned(t.input_offset, t.dtype)) {
            return Ok(());
        }
        match self
            .tensors
            .iter()
            .enumerate()
            .find(|(_, t)| !t.pruned && t.bytes > 0 && !aligned(t.output_offset, t.dtype))
        {
            None => Ok(()),
            Some((i, t)) => Err(format!(
                "tensor #{i} ({}) is aligned at input offset {} but not at output offset {}",
                t.dtype, t.input_offset, t.output_offset
            )),
        }
    }
}

/// Plans the pruned output of a file with `header`. `align` is the block
/// size to keep large ranges congruent to (0 or 1: none; tensor alignment
/// modulo 8 is kept either way).
pub fn plan_prune(header: &Header, rule: &PruneRule, align: u64) -> Result<PrunePlan, PlanError> {
    let mut tensors = outcomes(header, rule)?;
    let layout = lay_out(header, &tensors, align);
    let data_start = header.data_start();
    // Output offset of each run, relative to the output data buffer: at
    // most the input's data length, so no sum here overflows.
    let mut run_dst = vec![0u64; layout.runs.len()];
    let mut data_len = 0u64;
    for &i in &layout.order {
        run_dst[i] = data_len;
        data_len += layout.runs[i].len;
    }
    // Each kept tensor's offset in the output data buffer, for now (0 for
    // pruned and empty ones, which have no run).
    for ((t, outcome), &run) in header.tensors().zip(&mut tensors).zip(&layout.tensor_run) {
        if run != NO_RUN {
            outcome.output_offset = run_dst[run] + (t.begin() - layout.runs[run].begin);
        }
    }
    let header_bytes = header_bytes(header, &tensors, layout.start)?;
    let out_data_start = header_bytes.len() as u64;
    let output_len = out_data_start
        .checked_add(data_len)
        .ok_or(PlanError::OffsetOverflow {
            tensor: header.tensor_count().saturating_sub(1),
        })?;
    for t in &mut tensors {
        // Below output_len, checked above.
        t.output_offset += out_data_start;
    }
    let copies = layout
        .order
        .iter()
        .map(|&i| CopyRange {
            src: data_start + layout.runs[i].begin,
            dst: out_data_start + run_dst[i],
            len: layout.runs[i].len,
        })
        .collect();
    Ok(PrunePlan {
        header_bytes,
        copies,
        tensors,
        input_len: header.file_len(),
        output_len,
        filler_work: layout.filler_work,
        hollow: false,
    })
}

/// What `rule` does to each tensor of `header`, at its input offset; the
/// output offset is left 0. Checks that every offset fits 64 bits, so
/// that later sums of offsets are in range.
fn outcomes(header: &Header, rule: &PruneRule) -> Result<Vec<TensorOutcome>, PlanError> {
    let data_start = header.data_start();
    let mut tensors = Vec::with_capacity(header.tensor_count());
    for (i, t) in header.tensors().enumerate() {
        let overflow = || PlanError::OffsetOverflow { tensor: i };
        data_start.checked_add(t.end()).ok_or_else(overflow)?;
        tensors.push(TensorOutcome {
            dtype: t.dtype(),
            bytes: t.end().checked_sub(t.begin()).ok_or_else(overflow)?,
            input_offset: data_start.checked_add(t.begin()).ok_or_else(overflow)?,
            output_offset: 0,
            pruned: rule.prunes(t.name()),
        });
    }
    Ok(tensors)
}

/// Plans the hollow output of a file with `header`, whose first bytes (the
/// length prefix and the JSON, `header.data_start()` bytes) are
/// `header_bytes`: the output is those bytes unchanged and the input's
/// length, and only the kept tensors' bytes are copied, each to its own
/// input offset (input-adjacent ones in one range). Pruned tensors keep
/// their dtype, shape and offsets; the file is sized to the input's length
/// and nothing is written there, so they read as zeros and are holes.
///
/// Every range is at its input offset, so input and output offsets are
/// congruent modulo every block size: a cloning filesystem shares every
/// kept block, and alignment needs no planning.
pub fn plan_hollow(
    header: &Header,
    header_bytes: Vec<u8>,
    rule: &PruneRule,
) -> Result<PrunePlan, PlanError> {
    let data_start = header.data_start();
    if header_bytes.len() as u64 != data_start {
        return Err(PlanError::HeaderBytes {
            len: header_bytes.len() as u64,
            expected: data_start,
        });
    }
    let mut tensors = outcomes(header, rule)?;
    for t in &mut tensors {
        t.output_offset = t.input_offset;
    }
    let (runs, _) = kept_runs(header, &tensors, Split::Adjacent);
    let copies = runs
        .iter()
        .map(|r| CopyRange {
            src: data_start + r.begin,
            dst: data_start + r.begin,
            len: r.len,
        })
        .collect();
    Ok(PrunePlan {
        header_bytes,
        copies,
        tensors,
        input_len: header.file_len(),
        output_len: header.file_len(),
        filler_work: 0,
        hollow: true,
    })
}

/// The padded header length: the smallest length >= `len` that puts the
/// data start (8 + length) at `residue` modulo `modulus`. Where that
/// padding would pass the format's limit, the data start is placed modulo
/// 8 only, then not at all: a header the official reader refuses is never
/// an option, alignment is.
fn padded_len(len: u64, (residue, modulus): (u64, u64)) -> Result<u64, PlanError> {
    if len > MAX_HEADER_SIZE {
        return Err(PlanError::HeaderTooLarge { len });
    }
    for m in [modulus, TENSOR_ALIGNMENT] {
        let have = (N_LEN + len) % m;
        let padded = len + (residue % m + m - have) % m;
        if padded <= MAX_HEADER_SIZE {
            return Ok(padded);
        }
    }
    Ok(len)
}

/// The output's header bytes: the length prefix, the JSON and the padding
/// that puts the data start at `start` (residue, modulus). `tensors` have
/// their offsets in the output data buffer (pruned and empty ones: none).
fn header_bytes(
    header: &Header,
    tensors: &[TensorOutcome],
    start: (u64, u64),
) -> Result<Vec<u8>, PlanError> {
    // One buffer, prefix first: a million-tensor header is tens of MB, and
    // a copy of it would be as many again.
    let mut json = HeaderJson::after_prefix(N_LEN as usize + header.header_len() as usize);
    if let Some(metadata) = header.metadata() {
        json.metadata_raw(metadata);
    }
    for (entry, outcome) in header.tensors().zip(tensors) {
        let (begin, end) = match outcome.pruned || outcome.bytes == 0 {
            true => (0, 0),
            false => (outcome.output_offset, outcome.output_offset + outcome.bytes),
        };
        let shape: &[u64] = if outcome.pruned { &[0] } else { entry.shape() };
        json.tensor(entry.name(), entry.dtype(), shape, begin, end);
    }
    let mut bytes = json.finish();
    let json_len = bytes.len() as u64 - N_LEN;
    let padded = padded_len(json_len, start)?;
    bytes[..N_LEN as usize].copy_from_slice(&padded.to_le_bytes());
    bytes.resize((N_LEN + padded) as usize, b' ');
    Ok(bytes)
}
