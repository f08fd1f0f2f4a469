//! The layout optimiser: the order of the kept tensors' copy ranges in the
//! output, chosen to keep tensors aligned and blocks shareable.
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
//! Eulerian trail of that graph (see `residue_trails`). Ranges of
//! input-adjacent tensors are tried first, then single tensors, which have
//! an order more often (see `congruent_order`). When none exists (e.g. F32
//! `a`, pruned F32 `b`, BF16 `c` of 4098 bytes: whatever the order, one of
//! `a`, `c` lands 2 or 4 bytes off), the planner falls back to
//! ordering ranges by dtype width, widest first, which keeps every tensor of
//! an aligned input aligned for its dtype (`PrunePlan::check_alignment`).
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

use std::collections::BTreeSet;
use std::ops::Bound;

use super::{dtype_alignment, TensorOutcome, TENSOR_ALIGNMENT};
use crate::read::header::Header;

/// Where the kept tensors go.
pub(super) struct Layout {
    /// Ranges of input-adjacent kept tensors, each copied in one call.
    pub runs: Vec<Run>,
    /// Indices into `runs`, in output order.
    pub order: Vec<usize>,
    /// For each tensor, the index of its run ([`NO_RUN`] for pruned and
    /// empty tensors).
    pub tensor_run: Vec<usize>,
    /// The residue and modulus the output data start must have.
    pub start: (u64, u64),
    /// Work units the filler search spent.
    pub filler_work: u64,
}

/// Lays out the kept tensors of `header` (what the rule does to each is in
/// `outcomes`) for an output whose large ranges should be congruent to
/// their input modulo `align` (0 or 1: none).
pub(super) fn lay_out(header: &Header, outcomes: &[TensorOutcome], align: u64) -> Layout {
    let (runs, order, tensor_run) = congruent_order(header, outcomes);
    let (order, start, filler_work) = share_blocks(&runs, order, header.data_start(), align);
    Layout {
        runs,
        order,
        tensor_run,
        start,
        filler_work,
    }
}

/// Where [`kept_runs`] ends a run besides where the input has a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Split {
    /// Nowhere else: runs as long as the input allows.
    Adjacent,
    /// Where the dtype alignment changes.
    Width,
    /// After every tensor.
    Tensor,
}

/// Runs, an order of them, and each tensor's run: an order that keeps every
/// kept tensor congruent to its input offset modulo 8 when one exists.
/// First choice: whole runs (input order when it does). Runs can have no
/// such order where their tensors have one (a run `0 -> 5` beside `1 ->
/// 1`, when the first run is tensors `0 -> 1`, `1 -> 5`): then single
/// tensors, merged back into one range where the order keeps
/// input-adjacent ones together. When neither has one: split ranges where
/// the dtype width changes and lay them out widest first. Every range of
/// an aligned input then starts and ends at a multiple of its own
/// alignment, so each lands aligned whatever comes before it; within one
/// width, trails still keep as many ranges congruent as they can.
fn congruent_order(
    header: &Header,
    outcomes: &[TensorOutcome],
) -> (Vec<Run>, Vec<usize>, Vec<usize>) {
    let data_start = header.data_start();
    let residues = |runs: &[Run]| -> Vec<(usize, usize)> {
        runs.iter()
            .map(|r| {
                let start = (data_start % TENSOR_ALIGNMENT + r.begin % TENSOR_ALIGNMENT) % 8;
                (start as usize, ((start + r.len % 8) % 8) as usize)
            })
            .collect()
    };
    let (runs, tensor_run) = kept_runs(header, outcomes, Split::Adjacent);
    let trails = residue_trails(&residues(&runs));
    if trails.len() <= 1 {
        return (runs, trails.into_iter().flatten().collect(), tensor_run);
    }
    let (runs, tensor_run) = kept_runs(header, outcomes, Split::Tensor);
    let trails = residue_trails(&residues(&runs));
    if trails.len() <= 1 {
        let order = trails.into_iter().flatten().collect();
        return merge_consecutive(runs, order, tensor_run);
    }
    let (runs, tensor_run) = kept_runs(header, outcomes, Split::Width);
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
    (runs, order, tensor_run)
}

/// Merges runs that `order` places back to back and that are adjacent in
/// the input too (they stay so in the output): one copy each instead of
/// several. Returns the merged runs, their order (the listing order) and
/// each tensor's merged run.
fn merge_consecutive(
    runs: Vec<Run>,
    order: Vec<usize>,
    mut tensor_run: Vec<usize>,
) -> (Vec<Run>, Vec<usize>, Vec<usize>) {
    let mut merged: Vec<Run> = Vec::with_capacity(order.len());
    let mut merged_index = vec![NO_RUN; runs.len()];
    for i in order {
        let run = runs[i];
        match merged.last_mut() {
            Some(last) if last.begin + last.len == run.begin => {
                last.len += run.len;
                last.alignment = last.alignment.max(run.alignment);
            }
            _ => merged.push(run),
        }
        merged_index[i] = merged.len() - 1;
    }
    for run in tensor_run.iter_mut().filter(|r| **r != NO_RUN) {
        *run = merged_index[*run];
    }
    let order = (0..merged.len()).collect();
    (merged, order, tensor_run)
}

/// A run of input-adjacent kept tensors, copied as one range.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    /// Offset in the input data buffer.
    pub begin: u64,
    pub len: u64,
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

/// Groups kept, non-empty tensors into runs of input-adjacent bytes, in
/// input data order, ending a run also where `split` says.
/// Also returns, for each tensor, the index of the run holding it
/// ([`NO_RUN`] for pruned and empty tensors).
pub(super) fn kept_runs(
    header: &Header,
    outcomes: &[TensorOutcome],
    split: Split,
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
                    && match split {
                        Split::Adjacent => true,
                        Split::Width => last.alignment == alignment,
                        Split::Tensor => false,
                    } =>
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
pub(super) const NO_RUN: usize = usize::MAX;

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
    if edges.is_empty() {
        return Vec::new();
    }
    let all = with_jumps(edges);
    cut_at_jumps(euler_circuit(&all), edges.len())
}

/// Vertices of the residue graph: the residues modulo 8.
const V: usize = TENSOR_ALIGNMENT as usize;

/// `edges` and after them the jump edges that give the graph an Eulerian
/// circuit: from each vertex with surplus ends to one with surplus starts,
/// then a cycle through one vertex of each connected part.
fn with_jumps(edges: &[(usize, usize)]) -> Vec<(usize, usize)> {
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
    all
}

/// Hierholzer's walk of a graph with an Eulerian circuit, from edge 0,
/// taking each vertex's lowest unused edge first: edge ids in circuit
/// order.
fn euler_circuit(all: &[(usize, usize)]) -> Vec<usize> {
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
    circuit
}

/// Cuts a circuit at its jump edges (ids from `real` on): the trails of
/// real edges.
fn cut_at_jumps(circuit: Vec<usize>, real: usize) -> Vec<Vec<usize>> {
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
