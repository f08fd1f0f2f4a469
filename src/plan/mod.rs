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
//!   [`CopyRange`], so they are copied in one call (unless the fallback
//!   layout below splits them where the dtype width changes);
//! - copy ranges tile the output's data buffer exactly, in `dst` order;
//! - the header is at most [`MAX_HEADER_SIZE`] bytes, or planning fails with
//!   [`PlanError::HeaderTooLarge`];
//! - planning takes O(n log n) time for n tensors, whatever the header.
//!
//! Alignment: readers that view tensor bytes in place (mmap + cast, numpy
//! views, direct GPU loads) need each tensor at a file offset aligned for
//! its dtype, which the official writer gives its files (it sorts tensors
//! widest dtype first and pads the header to a multiple of 8). So every
//! kept tensor's output file offset is kept congruent to its input offset
//! modulo [`TENSOR_ALIGNMENT`] whenever some order of the copy ranges allows
//! it. The data buffer has no holes, so only the header's trailing spaces
//! and the order of ranges can move a range: a range starting at residue
//! `r` (mod 8) and ending at residue `e` is an edge `r -> e` of a graph on
//! the 8 residues, and an order that keeps every range congruent is an
//! Eulerian trail of that graph (see `residue_trails`). When none exists
//! (e.g. F32 `a`, pruned F32 `b`, BF16 `c` of 4098 bytes: whatever the
//! order, one of `a`, `c` lands 2 or 4 bytes off), the planner falls back to
//! ordering ranges by dtype width, widest first, which keeps every tensor of
//! an aligned input aligned for its dtype ([`PrunePlan::check_alignment`]).
//!
//! Shared blocks: on XFS and btrfs a copy can share the input's blocks
//! instead of writing new ones, but only for spans whose input and output
//! offsets are congruent modulo the block size. So when `align` is set the
//! planner picks the header padding to make the first large range
//! congruent, and in front of every later large range that would land
//! off-congruence it places small ranges (moved from elsewhere: tensors may
//! sit in any order in the data buffer) whose sizes add up to exactly the
//! missing bytes. Only ranges whose length is a multiple of 8 and that start
//! at the large range's residue serve as such fillers, so moving them never
//! breaks the alignment above; and the search for them has a work budget
//! linear in the number of ranges, so a crafted header cannot make it slow.
//!
//! Hollow plans ([`plan_hollow`], `--hollow`) keep none of the invariants
//! about the data buffer above: the output is the input's header bytes and
//! length, every tensor at its input offset, and the copy ranges cover only
//! the kept tensors, leaving pruned ones as holes that read as zeros.

pub(crate) mod header_json;
pub mod rule;
pub(crate) mod suggest;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;

use crate::plan::header_json::HeaderJson;
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
pub enum PlanError {
    /// The rewritten header (object form, new offsets) would not fit the
    /// format's limit even without padding.
    HeaderTooLarge { len: u64 },
    /// An offset of the header does not fit 64 bits (a header that did not
    /// come from `parse_header`).
    OffsetOverflow { tensor: usize },
    /// The header bytes given for a hollow plan are not as long as the
    /// header says (`8 + N`).
    HeaderBytes { len: u64, expected: u64 },
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

/// Bytes to copy from the input file to the output file (file offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRange {
    pub src: u64,
    pub dst: u64,
    pub len: u64,
}

/// What happens to one input tensor. `PrunePlan::tensors[i]` is about
/// `Header::tensors[i]` (name and shape are there; not copied, so planning
/// allocates nothing per tensor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorOutcome {
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
    pub input_len: u64,
    pub output_len: u64,
    /// Work units the filler search spent (candidates examined, bitset
    /// words): at most [`filler_budget`] of the number of ranges, which
    /// tests check to pin the planner's bound without timing it.
    pub filler_work: u64,
    /// A hollow plan ([`plan_hollow`]): the input's header, every tensor
    /// at its input offset, pruned tensors left as holes.
    pub hollow: bool,
}

impl PrunePlan {
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

    pub fn pruned_count(&self) -> usize {
        self.tensors.iter().filter(|t| t.pruned).count()
    }

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
    /// their input offset modulo [`TENSOR_ALIGNMENT`], by index.
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

/// A run of input-adjacent kept tensors, copied as one range.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Offset in the input data buffer.
    begin: u64,
    len: u64,
    /// The largest [`dtype_alignment`] of its tensors.
    alignment: u64,
}

/// Work units of filler search allowed for a file of `runs` copy ranges:
/// linear, so planning stays O(n log n) (each unit is a set lookup) on any
/// header; a real checkpoint uses a small fraction of it.
pub fn filler_budget(runs: usize) -> u64 {
    const BASE: u64 = 1 << 16;
    const PER_RUN: u64 = 64;
    BASE.saturating_add(PER_RUN.saturating_mul(runs as u64))
}

/// Plans the pruned output of a file with `header`. `align` is the block
/// size to keep large ranges congruent to (0 or 1: none; tensor alignment
/// modulo 8 is kept either way).
pub fn plan_prune(header: &Header, rule: &PruneRule, align: u64) -> Result<PrunePlan, PlanError> {
    let data_start = header.data_start();
    let mut tensors = Vec::with_capacity(header.tensor_count());
    for (i, t) in header.tensors().enumerate() {
        let overflow = || PlanError::OffsetOverflow { tensor: i };
        // Checked so that every later sum of offsets is in range.
        data_start.checked_add(t.end()).ok_or_else(overflow)?;
        tensors.push(TensorOutcome {
            dtype: t.dtype(),
            bytes: t.end().checked_sub(t.begin()).ok_or_else(overflow)?,
            input_offset: data_start + t.begin(),
            output_offset: 0,
            pruned: rule.prunes(t.name()),
        });
    }

    // First choice: ranges of input-adjacent kept tensors, in an order that
    // keeps every one congruent modulo 8 (input order when it does).
    let residues = |runs: &[Run]| -> Vec<(usize, usize)> {
        runs.iter()
            .map(|r| {
                let start = (data_start % TENSOR_ALIGNMENT + r.begin % TENSOR_ALIGNMENT) % 8;
                (start as usize, ((start + r.len % 8) % 8) as usize)
            })
            .collect()
    };
    let (mut runs, mut tensor_run) = kept_runs(header, &tensors, false);
    let trails = residue_trails(&residues(&runs));
    let order: Vec<usize> = if trails.len() <= 1 {
        trails.into_iter().flatten().collect()
    } else {
        // No such order: split ranges where the dtype width changes and lay
        // them out widest first. Every range of an aligned input then starts
        // and ends at a multiple of its own alignment, so each lands
        // aligned whatever comes before it; within one width, trails still
        // keep as many ranges congruent as they can.
        (runs, tensor_run) = kept_runs(header, &tensors, true);
        let ends = residues(&runs);
        let mut order = Vec::with_capacity(runs.len());
        for width in [8, 4, 2, 1] {
            let of_width: Vec<usize> = (0..runs.len())
                .filter(|&i| runs[i].alignment == width)
                .collect();
            let edges: Vec<(usize, usize)> = of_width.iter().map(|&i| ends[i]).collect();
            for trail in residue_trails(&edges) {
                order.extend(trail.into_iter().map(|k| of_width[k]));
            }
        }
        order
    };
    let (order, start_residue, filler_work) = share_blocks(&runs, order, data_start, align);

    // Output offset of each run, relative to the output data buffer: at
    // most the input's data length, so no sum here overflows.
    let mut run_dst = vec![0u64; runs.len()];
    let mut offset = 0u64;
    for &i in &order {
        run_dst[i] = offset;
        offset += runs[i].len;
    }
    let data_len = offset;
    let tensor_dst: Vec<Option<u64>> = header
        .tensors()
        .zip(&tensor_run)
        .map(|(t, &run)| (run != NO_RUN).then(|| run_dst[run] + (t.begin() - runs[run].begin)))
        .collect();

    let json = header_json(header, &tensors, &tensor_dst);
    let padded = padded_len(json.len() as u64, start_residue)?;
    let mut header_bytes = Vec::with_capacity((N_LEN + padded) as usize);
    header_bytes.extend_from_slice(&padded.to_le_bytes());
    header_bytes.extend_from_slice(&json);
    header_bytes.resize((N_LEN + padded) as usize, b' ');

    let out_data_start = N_LEN + padded;
    let output_len = out_data_start
        .checked_add(data_len)
        .ok_or(PlanError::OffsetOverflow {
            tensor: header.tensor_count().saturating_sub(1),
        })?;
    for (t, dst) in tensors.iter_mut().zip(&tensor_dst) {
        // Below output_len, checked above.
        t.output_offset = out_data_start + dst.unwrap_or(0);
    }
    let copies = order
        .iter()
        .map(|&i| CopyRange {
            src: data_start + runs[i].begin,
            dst: out_data_start + run_dst[i],
            len: runs[i].len,
        })
        .collect();
    Ok(PrunePlan {
        header_bytes,
        copies,
        tensors,
        input_len: header.file_len(),
        output_len,
        filler_work,
        hollow: false,
    })
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
    let mut tensors = Vec::with_capacity(header.tensor_count());
    for (i, t) in header.tensors().enumerate() {
        let overflow = || PlanError::OffsetOverflow { tensor: i };
        let input_offset = data_start.checked_add(t.begin()).ok_or_else(overflow)?;
        data_start.checked_add(t.end()).ok_or_else(overflow)?;
        tensors.push(TensorOutcome {
            dtype: t.dtype(),
            bytes: t.end().checked_sub(t.begin()).ok_or_else(overflow)?,
            input_offset,
            output_offset: input_offset,
            pruned: rule.prunes(t.name()),
        });
    }
    let (runs, _) = kept_runs(header, &tensors, false);
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

/// Groups kept, non-empty tensors into runs of input-adjacent bytes, in
/// input data order; with `split_by_width`, a run also ends where the
/// dtype alignment changes.
/// Also returns, for each tensor, the index of the run holding it
/// ([`NO_RUN`] for pruned and empty tensors).
fn kept_runs(
    header: &Header,
    outcomes: &[TensorOutcome],
    split_by_width: bool,
) -> (Vec<Run>, Vec<usize>) {
    let mut kept: Vec<(u64, u64, usize)> = header
        .tensors()
        .zip(outcomes)
        .enumerate()
        .filter(|(_, (t, o))| !o.pruned && t.end() > t.begin())
        .map(|(i, (t, _))| (t.begin(), t.end(), i))
        .collect();
    kept.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    let mut tensor_run = vec![NO_RUN; header.tensor_count()];
    for (begin, end, tensor) in kept {
        let alignment = dtype_alignment(outcomes[tensor].dtype);
        match runs.last_mut() {
            Some(last)
                if last.begin + last.len == begin
                    && (!split_by_width || last.alignment == alignment) =>
            {
                last.len += end - begin;
                last.alignment = last.alignment.max(alignment);
            }
            _ => runs.push(Run {
                begin,
                len: end - begin,
                alignment,
            }),
        }
        tensor_run[tensor] = runs.len() - 1;
    }
    (runs, tensor_run)
}

/// The run index of a tensor that is in no run.
const NO_RUN: usize = usize::MAX;

/// Orders `edges` (each range's start and end residue modulo 8) into as
/// few trails as possible: within a trail each edge starts where the
/// previous one ended, so placed back to back, every range of a trail lands
/// congruent once its first one does. Returns indices into `edges`; one
/// trail means every range can be congruent. Where possible the trails
/// follow the input order: the walk always takes the lowest unused edge.
///
/// Hierholzer's algorithm on the 8 residues, after adding "jump" edges
/// from every vertex with more ends than starts to one with more starts
/// than ends, and between disconnected parts, so that an Eulerian circuit
/// exists; cutting the circuit at the jumps gives the trails. O(edges).
fn residue_trails(edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    const V: usize = TENSOR_ALIGNMENT as usize;
    let real = edges.len();
    if real == 0 {
        return Vec::new();
    }
    let mut all = edges.to_vec();
    let mut balance = [0i64; V];
    for &(from, to) in edges {
        balance[from] += 1;
        balance[to] -= 1;
    }
    let surplus_ends = (0..V).flat_map(|v| std::iter::repeat_n(v, (-balance[v]).max(0) as usize));
    let surplus_starts = (0..V).flat_map(|v| std::iter::repeat_n(v, balance[v].max(0) as usize));
    all.extend(surplus_ends.zip(surplus_starts));
    // Connect the parts: a cycle of jumps through one vertex of each.
    let mut part: [usize; V] = std::array::from_fn(|v| v);
    fn root(part: &mut [usize], mut v: usize) -> usize {
        while part[v] != v {
            part[v] = part[part[v]];
            v = part[v];
        }
        v
    }
    for &(from, to) in &all {
        let (a, b) = (root(&mut part, from), root(&mut part, to));
        part[a] = b;
    }
    let mut used = [false; V];
    for &(from, _) in &all {
        used[from] = true;
    }
    let mut reps: Vec<usize> = Vec::new();
    for (v, &used) in used.iter().enumerate() {
        if used
            && !reps
                .iter()
                .any(|&r| root(&mut part, r) == root(&mut part, v))
        {
            reps.push(v);
        }
    }
    if reps.len() > 1 {
        for k in 0..reps.len() {
            all.push((reps[k], reps[(k + 1) % reps.len()]));
        }
    }

    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); V];
    for (id, &(from, _)) in all.iter().enumerate() {
        out_edges[from].push(id);
    }
    let mut next = [0usize; V];
    let mut stack: Vec<(usize, usize)> = vec![(all[0].0, usize::MAX)];
    let mut circuit = Vec::with_capacity(all.len());
    while let Some(&(v, via)) = stack.last() {
        if let Some(&id) = out_edges[v].get(next[v]) {
            next[v] += 1;
            stack.push((all[id].1, id));
        } else {
            stack.pop();
            if via != usize::MAX {
                circuit.push(via);
            }
        }
    }
    circuit.reverse();
    // The circuit starts with edge 0; cut it at the jumps. Its last piece
    // ends where the circuit began, so it continues into the first.
    let mut trails: Vec<Vec<usize>> = vec![Vec::new()];
    for id in circuit {
        if id < real {
            trails.last_mut().expect("never empty").push(id);
        } else if !trails.last().expect("never empty").is_empty() {
            trails.push(Vec::new());
        }
    }
    if trails.len() > 1 {
        let last = trails.pop().expect("more than one");
        if !last.is_empty() {
            let first = std::mem::take(&mut trails[0]);
            trails[0] = last.into_iter().chain(first).collect();
        }
    }
    trails.retain(|t| !t.is_empty());
    trails
}

/// Places large runs congruent to their input modulo `align` where it can:
/// chooses the output data start's residue for the first large run that is
/// congruent modulo 8, and puts fillers in front of later ones (see
/// [`FillerPool`]). Returns the final order, the residue and modulus the
/// output data start must have, and the filler work spent.
fn share_blocks(
    runs: &[Run],
    order: Vec<usize>,
    data_start: u64,
    align: u64,
) -> (Vec<usize>, (u64, u64), u64) {
    let input_residue = |i: usize, m: u64| (data_start % m + runs[i].begin % m) % m;
    let Some(&first) = order.first() else {
        return (order, (0, TENSOR_ALIGNMENT), 0);
    };
    // The data start's residue modulo 8 is fixed by the first range: the
    // trails were built for it.
    let start8 = input_residue(first, TENSOR_ALIGNMENT);
    // Block alignment is a refinement of the 8-byte one; a block size that
    // is not a multiple of 8 (none is, in practice) gets none.
    if align < TENSOR_ALIGNMENT || !align.is_multiple_of(TENSOR_ALIGNMENT) {
        return (order, (start8, TENSOR_ALIGNMENT), 0);
    }
    let mut before = 0u64;
    let mut start = None;
    for &i in &order {
        let congruent8 = (start8 + before) % TENSOR_ALIGNMENT == input_residue(i, TENSOR_ALIGNMENT);
        if runs[i].len >= align && congruent8 {
            start = Some((input_residue(i, align) + align - before) % align);
            break;
        }
        before = (before + runs[i].len % align) % align;
    }
    let Some(start) = start else {
        return (order, (start8, TENSOR_ALIGNMENT), 0);
    };

    let mut pool = FillerPool::new(runs, align, |i| input_residue(i, TENSOR_ALIGNMENT) as usize);
    let budget = filler_budget(runs.len());
    let mut work = 0u64;
    let mut placed = vec![false; runs.len()];
    let mut out = Vec::with_capacity(order.len());
    let mut at = start;
    for i in order {
        if placed[i] {
            continue;
        }
        let want = input_residue(i, align);
        if runs[i].len >= align && at != want && at % TENSOR_ALIGNMENT == want % TENSOR_ALIGNMENT {
            let need = (want + align - at) % align;
            let residue = (want % TENSOR_ALIGNMENT) as usize;
            if let Some(fillers) = pool.pick(residue, need, &mut work, budget) {
                for (_, f) in fillers {
                    placed[f] = true;
                    out.push(f);
                }
                at = want;
            }
        }
        placed[i] = true;
        pool.remove(runs, i);
        out.push(i);
        at = (at + runs[i].len % align) % align;
    }
    (out, (start, align), work)
}

/// The small runs (shorter than the alignment) that can serve as fillers
/// without breaking the 8-byte alignment: those of a multiple of 8 bytes,
/// by their input residue modulo 8, each set ordered by (length, run) so
/// that every lookup is O(log n).
struct FillerPool {
    sets: [BTreeSet<(u64, usize)>; TENSOR_ALIGNMENT as usize],
    /// Bytes of each set.
    bytes: [u64; TENSOR_ALIGNMENT as usize],
    residues: Vec<usize>,
}

impl FillerPool {
    /// Largest-first steps of the greedy pass, per pick.
    const GREEDY_STEPS: usize = 32;
    /// Candidates of the subset sum, per pick, and of one length.
    const SUBSET_ITEMS: usize = 48;
    const SUBSET_SAME_LEN: usize = 4;

    fn new(runs: &[Run], align: u64, residue: impl Fn(usize) -> usize) -> FillerPool {
        let mut pool = FillerPool {
            sets: Default::default(),
            bytes: [0; TENSOR_ALIGNMENT as usize],
            residues: (0..runs.len()).map(residue).collect(),
        };
        for (i, run) in runs.iter().enumerate() {
            if run.len < align && run.len.is_multiple_of(TENSOR_ALIGNMENT) {
                let r = pool.residues[i];
                pool.sets[r].insert((run.len, i));
                pool.bytes[r] += run.len;
            }
        }
        pool
    }

    fn remove(&mut self, runs: &[Run], i: usize) {
        let r = self.residues[i];
        if self.sets[r].remove(&(runs[i].len, i)) {
            self.bytes[r] -= runs[i].len;
        }
    }

    /// Finds fillers of input residue `residue` whose lengths add up to
    /// exactly `need` bytes and takes them out of the pool. Bounded work,
    /// counted in `work` and refused past `budget`: an exact single run,
    /// then a greedy pass from the largest length down, then a small subset
    /// sum over a few candidates of each length.
    fn pick(
        &mut self,
        residue: usize,
        need: u64,
        work: &mut u64,
        budget: u64,
    ) -> Option<Vec<(u64, usize)>> {
        if self.bytes[residue] < need || *work >= budget {
            return None;
        }
        let set = &self.sets[residue];
        *work += 1;
        let picked = match set.range((need, 0)..=(need, usize::MAX)).next() {
            Some(&exact) => vec![exact],
            None => Self::greedy(set, need, work)
                .or_else(|| Self::subset_sum(set, need, work, budget))?,
        };
        for key in &picked {
            self.sets[residue].remove(key);
            self.bytes[residue] -= key.0;
        }
        Some(picked)
    }

    /// Takes the largest run that fits, while one does; all or nothing.
    fn greedy(
        set: &BTreeSet<(u64, usize)>,
        need: u64,
        work: &mut u64,
    ) -> Option<Vec<(u64, usize)>> {
        let mut left = need;
        let mut picked = Vec::new();
        let mut below = Bound::Included((need, usize::MAX));
        for _ in 0..Self::GREEDY_STEPS {
            *work += 1;
            let fits = (left, usize::MAX);
            let upper = match below {
                Bound::Included(k) | Bound::Excluded(k) if fits < k => Bound::Included(fits),
                b => b,
            };
            let &key = set.range((Bound::Unbounded, upper)).next_back()?;
            picked.push(key);
            left -= key.0;
            if left == 0 {
                return Some(picked);
            }
            below = Bound::Excluded(key);
        }
        None
    }

    /// 0/1 subset sum on bitsets (lengths in units of 8 bytes, all being
    /// multiples of 8): `reach[k]` holds the sums reachable with items
    /// `0..=k`, so the item that first reaches a sum is found again when
    /// walking back.
    fn subset_sum(
        set: &BTreeSet<(u64, usize)>,
        need: u64,
        work: &mut u64,
        budget: u64,
    ) -> Option<Vec<(u64, usize)>> {
        let mut items: Vec<(u64, usize)> = Vec::new();
        let mut upper = Bound::Included((need, usize::MAX));
        let mut same = 0;
        while items.len() < Self::SUBSET_ITEMS && *work < budget {
            *work += 1;
            let Some(&key) = set.range((Bound::Unbounded, upper)).next_back() else {
                break;
            };
            same = if items.last().is_some_and(|last| last.0 == key.0) {
                same + 1
            } else {
                1
            };
            if same <= Self::SUBSET_SAME_LEN {
                items.push(key);
                upper = Bound::Excluded(key);
            } else {
                // Skip the rest of this length.
                upper = Bound::Excluded((key.0, 0));
            }
        }
        // Sums of the items are multiples of their gcd: often this alone
        // shows that no subset fits.
        let gcd = items.iter().fold(0, |g, &(len, _)| gcd(g, len));
        if gcd == 0 || !need.is_multiple_of(gcd) {
            return None;
        }
        let unit = TENSOR_ALIGNMENT;
        let target = (need / unit) as usize;
        let words = target / 64 + 1;
        let cost = (items.len() * words) as u64;
        if work.saturating_add(cost) > budget {
            return None;
        }
        *work += cost;
        let mut reach: Vec<Vec<u64>> = Vec::with_capacity(items.len());
        let mut current = vec![0u64; words];
        current[0] = 1;
        let has = |bits: &[u64], sum: usize| bits[sum / 64] >> (sum % 64) & 1 == 1;
        for &(len, _) in &items {
            let size = (len / unit) as usize;
            let (shift_words, shift_bits) = (size / 64, size % 64);
            let mut next = current.clone();
            for w in shift_words..words {
                let mut moved = current[w - shift_words] << shift_bits;
                if shift_bits > 0 && w > shift_words {
                    moved |= current[w - shift_words - 1] >> (64 - shift_bits);
                }
                next[w] |= moved;
            }
            reach.push(next.clone());
            current = next;
            if has(&current, target) {
                break;
            }
        }
        if !has(&current, target) {
            return None;
        }
        let mut picked = Vec::new();
        let mut sum = target;
        while sum > 0 {
            let k = reach.iter().position(|bits| has(bits, sum))?;
            picked.push(items[k]);
            sum -= (items[k].0 / unit) as usize;
        }
        Some(picked)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
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

/// The output header JSON, without padding. `tensor_dst` is each tensor's
/// offset in the output data buffer, `None` for pruned and empty ones.
fn header_json(header: &Header, tensors: &[TensorOutcome], tensor_dst: &[Option<u64>]) -> Vec<u8> {
    let mut json = HeaderJson::with_capacity(header.header_len() as usize);
    if let Some(metadata) = &header.metadata() {
        json.metadata_raw(metadata);
    }
    for ((entry, outcome), dst) in header.tensors().zip(tensors).zip(tensor_dst) {
        let (begin, end) = match *dst {
            None => (0, 0),
            Some(begin) => (begin, begin + outcome.bytes),
        };
        let shape: &[u64] = if outcome.pruned { &[0] } else { entry.shape() };
        json.tensor(entry.name(), entry.dtype(), shape, begin, end);
    }
    json.finish()
}
