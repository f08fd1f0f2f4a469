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
//!   [`CopyRange`], so they are copied in one call;
//! - copy ranges tile the output's data buffer exactly, in `dst` order;
//! - the JSON header is padded with spaces to a multiple of 8 bytes.
//!
//! Shared blocks: on XFS and btrfs a copy can share the input's blocks
//! instead of writing new ones, but only for spans whose input and output
//! offsets are congruent modulo the block size. So when `align` is set the
//! planner picks the header padding to make the first large range congruent,
//! and in front of every later large range that would land off-congruence it
//! places small ranges (moved from elsewhere: tensors may sit in any order in
//! the data buffer) whose sizes add up to exactly the missing bytes.

use std::collections::{BTreeMap, VecDeque};

use crate::header::{Dtype, Header, N_LEN};
use crate::rule::{PruneRule, Reason};

/// Block size the planner aligns large ranges to: the block size of XFS and
/// btrfs in their default configuration.
pub const SHARE_ALIGNMENT: u64 = 4096;

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
    pub pruned: bool,
    pub reason: Reason,
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
}

impl PrunePlan {
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

    /// Ranges whose input and output offsets are congruent modulo `block`:
    /// the ones a sharing filesystem can clone.
    pub fn congruent_bytes(&self, block: u64) -> u64 {
        self.copies
            .iter()
            .filter(|c| c.src % block == c.dst % block)
            .map(|c| c.len)
            .sum()
    }
}

/// A run of input-adjacent kept tensors, copied as one range.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Offset in the input data buffer.
    begin: u64,
    len: u64,
}

/// Plans the pruned output of a file with `header`. `align` is the block
/// size to keep large ranges congruent to (0 or 1: no alignment, ranges stay
/// in input order).
pub fn plan_prune(header: &Header, rule: &PruneRule, align: u64) -> PrunePlan {
    let data_start = header.data_start();
    let tensors: Vec<TensorOutcome> = header
        .tensors
        .iter()
        .map(|t| {
            let decision = rule.decide(&t.name);
            TensorOutcome {
                dtype: t.dtype,
                bytes: t.byte_len(),
                input_offset: data_start + t.begin,
                pruned: decision.prune,
                reason: decision.reason,
            }
        })
        .collect();

    let (runs, tensor_run) = kept_runs(header, &tensors);
    let (residue, order) = if align > 1 && runs.iter().any(|r| r.len >= align) {
        aligned_order(&runs, data_start, align)
    } else {
        (0, (0..runs.len()).collect())
    };

    // Output offset of each run, relative to the output data buffer.
    let mut run_dst = vec![0u64; runs.len()];
    let mut offset = 0u64;
    for &i in &order {
        run_dst[i] = offset;
        offset += runs[i].len;
    }
    let data_len = offset;

    let json = header_json(header, &tensors, &runs, &tensor_run, &run_dst);
    let padded = padded_len(json.len() as u64, residue, align);
    let mut header_bytes = Vec::with_capacity((N_LEN + padded) as usize);
    header_bytes.extend_from_slice(&padded.to_le_bytes());
    header_bytes.extend_from_slice(&json);
    header_bytes.resize((N_LEN + padded) as usize, b' ');

    let out_data_start = N_LEN + padded;
    let copies = order
        .iter()
        .map(|&i| CopyRange {
            src: data_start + runs[i].begin,
            dst: out_data_start + run_dst[i],
            len: runs[i].len,
        })
        .collect();
    PrunePlan {
        header_bytes,
        copies,
        tensors,
        input_len: header.file_len(),
        output_len: out_data_start + data_len,
    }
}

/// Groups kept, non-empty tensors into runs of input-adjacent bytes, in
/// input data order.
/// Also returns, for each tensor, the index of the run holding it
/// ([`NO_RUN`] for pruned and empty tensors).
fn kept_runs(header: &Header, outcomes: &[TensorOutcome]) -> (Vec<Run>, Vec<usize>) {
    let mut kept: Vec<(u64, u64, usize)> = header
        .tensors
        .iter()
        .zip(outcomes)
        .enumerate()
        .filter(|(_, (t, o))| !o.pruned && t.end > t.begin)
        .map(|(i, (t, _))| (t.begin, t.end, i))
        .collect();
    kept.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    let mut tensor_run = vec![NO_RUN; header.tensors.len()];
    for (begin, end, tensor) in kept {
        match runs.last_mut() {
            Some(last) if last.begin + last.len == begin => last.len += end - begin,
            _ => runs.push(Run {
                begin,
                len: end - begin,
            }),
        }
        tensor_run[tensor] = runs.len() - 1;
    }
    (runs, tensor_run)
}

/// The run index of a tensor that is in no run.
const NO_RUN: usize = usize::MAX;

/// Chooses the residue of the output data start modulo `align` and the order
/// of runs in the output so that large runs land congruent to their input.
fn aligned_order(runs: &[Run], data_start: u64, align: u64) -> (u64, Vec<usize>) {
    let input_residue = |r: &Run| (data_start + r.begin) % align;
    let first_large = runs
        .iter()
        .position(|r| r.len >= align)
        .expect("caller checked that a large run exists");
    // The header is padded to a multiple of 8, so the data start can only
    // take residues that are multiples of 8; fillers make up the rest.
    let residue = input_residue(&runs[first_large]) / 8 * 8;

    let mut pool = FillerPool::new(runs, align);
    // Subset-sum work allowed for the whole file: keeps planning fast on
    // adversarial layouts (a few milliseconds at most).
    let mut budget: u64 = 1 << 22;
    let mut order = Vec::with_capacity(runs.len());
    let mut offset = 0u64;
    for (i, run) in runs.iter().enumerate() {
        if run.len < align {
            continue;
        }
        let have = (residue + offset) % align;
        let need = (input_residue(run) + align - have) % align;
        if need != 0 {
            if let Some(fillers) = pool.pick(runs, need, &mut budget) {
                for &f in &fillers {
                    order.push(f);
                    offset += runs[f].len;
                }
            }
        }
        order.push(i);
        offset += run.len;
    }
    // Small runs not used as fillers go last, in input order.
    order.extend(pool.unused());
    (residue, order)
}

/// The small runs (shorter than the alignment) not yet used as fillers,
/// indexed so that a pick costs about the number of runs it returns rather
/// than the number of small runs: a 20,000-tensor header has thousands.
struct FillerPool {
    /// Unused small runs by length, each list in input order.
    by_len: BTreeMap<u64, VecDeque<usize>>,
    /// Every small run in input order; entries marked used are dropped
    /// lazily, once they are half of the list.
    in_order: Vec<usize>,
    used: Vec<bool>,
    used_in_order: usize,
    /// Bytes of the unused small runs.
    bytes: u64,
}

impl FillerPool {
    fn new(runs: &[Run], align: u64) -> FillerPool {
        let in_order: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].len < align).collect();
        let mut by_len: BTreeMap<u64, VecDeque<usize>> = BTreeMap::new();
        for &i in &in_order {
            by_len.entry(runs[i].len).or_default().push_back(i);
        }
        FillerPool {
            by_len,
            bytes: in_order.iter().map(|&i| runs[i].len).sum(),
            in_order,
            used: vec![false; runs.len()],
            used_in_order: 0,
        }
    }

    /// The unused small runs, in input order.
    fn unused(self) -> impl Iterator<Item = usize> {
        let used = self.used;
        self.in_order.into_iter().filter(move |&i| !used[i])
    }

    /// Finds unused small runs whose lengths add up to exactly `need`
    /// bytes and marks them used. Bounded work: an exact single run, then a
    /// greedy pass from the largest length down (ties in input order), then
    /// a small subset-sum over the first candidates in input order.
    fn pick(&mut self, runs: &[Run], need: u64, budget: &mut u64) -> Option<Vec<usize>> {
        if self.bytes < need {
            return None;
        }
        let picked = self
            .by_len
            .get(&need)
            .and_then(|same| same.front())
            .map(|&i| vec![i])
            .or_else(|| self.greedy(need))
            .or_else(|| self.subset_sum(runs, need, budget))?;
        for &i in &picked {
            self.take(runs, i);
        }
        Some(picked)
    }

    /// Takes runs largest first while they fit; all or nothing.
    fn greedy(&self, need: u64) -> Option<Vec<usize>> {
        let mut left = need;
        let mut picked = Vec::new();
        let mut below = need;
        while left > 0 {
            let (&len, same) = self.by_len.range(..=below.min(left)).next_back()?;
            let count = (left / len).min(same.len() as u64) as usize;
            picked.extend(same.iter().take(count));
            left -= len * count as u64;
            below = len - 1;
            if below == 0 {
                break;
            }
        }
        (left == 0).then_some(picked)
    }

    /// 0/1 subset sum over the first candidates (in input order) that fit,
    /// on bitsets: `reach[k]` holds the sums reachable with items `0..=k`,
    /// so the item that first reaches a sum is found again when walking
    /// back.
    fn subset_sum(&mut self, runs: &[Run], need: u64, budget: &mut u64) -> Option<Vec<usize>> {
        const MAX_ITEMS: usize = 48;
        // Every candidate costs `need` work units: with none, or with more
        // than the budget left, no subset is tried.
        if need > *budget {
            return None;
        }
        if self.used_in_order * 2 > self.in_order.len() {
            let used = &self.used;
            self.in_order.retain(|&i| !used[i]);
            self.used_in_order = 0;
        }
        let items: Vec<usize> = self
            .in_order
            .iter()
            .copied()
            .filter(|&i| !self.used[i] && runs[i].len <= need)
            .take(MAX_ITEMS)
            .collect();
        // Sums of the items are multiples of their gcd: often this alone shows
        // that no subset fits (e.g. 8-byte fillers for a 4-byte gap).
        let gcd = items.iter().fold(0, |g, &i| gcd(g, runs[i].len));
        if gcd == 0 || !need.is_multiple_of(gcd) {
            return None;
        }
        let cost = items.len() as u64 * need;
        if cost > *budget {
            return None;
        }
        *budget -= cost;
        let target = need as usize;
        let words = target / 64 + 1;
        let mut reach: Vec<Vec<u64>> = Vec::with_capacity(items.len());
        let mut current = vec![0u64; words];
        current[0] = 1;
        let has = |bits: &[u64], sum: usize| bits[sum / 64] >> (sum % 64) & 1 == 1;
        for &i in &items {
            let size = runs[i].len as usize;
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
            sum -= runs[items[k]].len as usize;
        }
        Some(picked)
    }

    fn take(&mut self, runs: &[Run], i: usize) {
        self.used[i] = true;
        self.used_in_order += 1;
        self.bytes -= runs[i].len;
        if let Some(same) = self.by_len.get_mut(&runs[i].len) {
            if same.front() == Some(&i) {
                same.pop_front();
            } else {
                same.retain(|&j| j != i);
            }
            if same.is_empty() {
                self.by_len.remove(&runs[i].len);
            }
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Smallest padded header length >= `len` that is a multiple of 8 and, when
/// aligning, puts the data start (8 + length) at `residue` modulo `align`.
fn padded_len(len: u64, residue: u64, align: u64) -> u64 {
    let len8 = len.div_ceil(8) * 8;
    if align <= 1 {
        return len8;
    }
    let have = (N_LEN + len8) % align;
    len8 + (residue + align - have) % align
}

/// The output header JSON, without padding.
fn header_json(
    header: &Header,
    tensors: &[TensorOutcome],
    runs: &[Run],
    tensor_run: &[usize],
    run_dst: &[u64],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.header_len as usize);
    out.push(b'{');
    let mut first = true;
    if let Some(metadata) = &header.metadata {
        out.extend_from_slice(b"\"__metadata__\":");
        out.extend_from_slice(metadata.as_bytes());
        first = false;
    }
    for ((entry, outcome), &run) in header.tensors.iter().zip(tensors).zip(tensor_run) {
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(&mut out, &entry.name);
        let (begin, end) = if run == NO_RUN {
            (0, 0)
        } else {
            let begin = run_dst[run] + (entry.begin - runs[run].begin);
            (begin, begin + entry.byte_len())
        };
        out.extend_from_slice(b":{\"dtype\":\"");
        out.extend_from_slice(entry.dtype.name().as_bytes());
        out.extend_from_slice(b"\",\"shape\":");
        if outcome.pruned {
            out.extend_from_slice(b"[0]");
        } else {
            write_u64_list(&mut out, &entry.shape);
        }
        out.extend_from_slice(b",\"data_offsets\":");
        write_u64_list(&mut out, &[begin, end]);
        out.push(b'}');
    }
    out.push(b'}');
    out
}

fn write_u64_list(out: &mut Vec<u8>, values: &[u64]) {
    out.push(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_u64(out, *v);
    }
    out.push(b']');
}

/// `text` as a JSON string. Text that needs no escape (every real tensor
/// name) is copied as it is, which is what serde_json writes for it too.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    // A fold without an early exit, so the check runs on whole vectors.
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Serializing a &str into a Vec cannot fail.
        serde_json::to_writer(out, text).expect("string serializes");
    }
}

/// Decimal digits of `v`, without going through `fmt` (a 20,000-tensor
/// header has over 100,000 numbers).
fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
