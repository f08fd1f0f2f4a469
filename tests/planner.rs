//! The pure planner, `trtllm_prune::plan_prune`: its header bytes and
//! copy ranges are applied to an in-memory input, and the result is read
//! back with our reader and with the official crate.

use std::collections::BTreeMap;

use safetensors::SafeTensors;
use trtllm_prune::fixture::{
    fill, filler_bomb, header_json_listed, parse_file, unchecked_header, CheckpointSpec, Family,
    TensorSpec, MAX_HEADER_SIZE, N_LEN, SHARE_ALIGNMENT,
};
use trtllm_prune::{
    plan_prune, CopyRange, Dtype, Header, Pattern, PlanError, PrunePlan, PruneRule,
};

const ALIGN: u64 = SHARE_ALIGNMENT;

/// A header listing `tensors` in `listing` order (indices into `tensors`),
/// with data offsets for the tensors laid out in their own order.
fn json_listed(tensors: &[TensorSpec], listing: &[usize]) -> String {
    header_json_listed(tensors, listing, None)
}

/// The data buffer of `tensors` in their order, with the fixture's bytes.
fn data_of(tensors: &[TensorSpec]) -> Vec<u8> {
    let mut data = Vec::new();
    for t in tensors {
        let start = data.len();
        data.resize(start + t.byte_len() as usize, 0);
        fill(t, 0, &mut data[start..]);
    }
    data
}

/// A file from header JSON followed by `pad` spaces, then `data`.
fn assemble(json: &str, pad: usize, data: &[u8]) -> Vec<u8> {
    let n = json.len() + pad;
    let mut bytes = Vec::with_capacity(8 + n + data.len());
    bytes.extend_from_slice(&(n as u64).to_le_bytes());
    bytes.extend_from_slice(json.as_bytes());
    bytes.resize(8 + n, b' ');
    bytes.extend_from_slice(data);
    bytes
}

/// A safetensors file in memory whose data buffer holds `tensors` in the
/// given order, while its header lists them in `listing` order, with `pad`
/// spaces after the JSON.
fn file_listed(tensors: &[TensorSpec], listing: &[usize], pad: usize) -> Vec<u8> {
    assemble(&json_listed(tensors, listing), pad, &data_of(tensors))
}

/// A file listing the tensors in data order, header padded to 8.
fn file(tensors: &[TensorSpec]) -> Vec<u8> {
    let listing: Vec<usize> = (0..tensors.len()).collect();
    let json = json_listed(tensors, &listing);
    assemble(&json, (8 - json.len() % 8) % 8, &data_of(tensors))
}

/// The output file a plan describes, built in memory.
fn apply(plan: &PrunePlan, input: &[u8]) -> Vec<u8> {
    let mut out = plan.header_bytes.clone();
    out.resize(plan.output_len as usize, 0xAA);
    for c in &plan.copies {
        let (src, dst, len) = (c.src as usize, c.dst as usize, c.len as usize);
        out[dst..dst + len].copy_from_slice(&input[src..src + len]);
    }
    out
}

fn header(bytes: &[u8]) -> Header {
    parse_file(bytes).unwrap_or_else(|e| panic!("our reader rejects it: {e}"))
}

/// Name -> (dtype, shape, bytes), by our reader.
fn contents(bytes: &[u8]) -> BTreeMap<String, (Dtype, Vec<u64>, Vec<u8>)> {
    let h = header(bytes);
    let start = h.data_start() as usize;
    h.tensors()
        .map(|t| {
            let data = bytes[start + t.begin() as usize..start + t.end() as usize].to_vec();
            (t.name().to_owned(), (t.dtype(), t.shape().to_owned(), data))
        })
        .collect()
}

/// Checks everything a plan promises about its output, for `input`
/// planned with `rule` and `align`; returns the plan.
#[track_caller]
fn check_plan(input: &[u8], rule: &PruneRule, align: u64) -> PrunePlan {
    let in_header = header(input);
    let plan = plan_prune(&in_header, rule, align).expect("plans");
    let output = apply(&plan, input);
    assert_eq!(output.len() as u64, plan.output_len);
    assert_eq!(plan.input_len, input.len() as u64);

    // The header: N in the prefix, within the limit; the data start is
    // congruent to the first range's input offset modulo 8 (a multiple of
    // 8 with nothing to copy).
    let n = u64::from_le_bytes(plan.header_bytes[..8].try_into().unwrap());
    assert_eq!(plan.header_bytes.len() as u64, N_LEN + n);
    assert!(n <= MAX_HEADER_SIZE);
    let first_src = plan.copies.first().map_or(0, |c| c.src);
    assert_eq!((N_LEN + n) % 8, first_src % 8, "header length {n}");
    // Kept tensors aligned for their dtype in the input stay aligned.
    plan.check_alignment().unwrap_or_else(|e| panic!("{e}"));

    // Both readers accept it.
    let out_header = header(&output);
    let official = SafeTensors::deserialize(&output)
        .unwrap_or_else(|e| panic!("the official reader rejects it: {e}"));
    assert_eq!(official.len(), in_header.tensor_count());

    // Names in listing order; pruned are [0,0] shape [0]; kept unchanged.
    let in_names: Vec<&str> = in_header.tensors().map(|t| t.name()).collect();
    let out_names: Vec<&str> = out_header.tensors().map(|t| t.name()).collect();
    assert_eq!(out_names, in_names, "listing order");
    let before = contents(input);
    let after = contents(&output);
    for ((t, input_entry), outcome) in out_header
        .tensors()
        .zip(in_header.tensors())
        .zip(&plan.tensors)
    {
        assert_eq!(t.name(), input_entry.name());
        assert_eq!(t.dtype(), outcome.dtype);
        let decision = rule.decide(t.name());
        assert_eq!(outcome.pruned, decision.prune, "{}", t.name());
        let (dtype, shape, data) = &before[t.name()];
        if decision.prune {
            assert_eq!((t.begin(), t.end()), (0, 0), "{}", t.name());
            assert_eq!((t.dtype(), t.shape()), (*dtype, &[0][..]), "{}", t.name());
        } else {
            assert_eq!(&after[t.name()], &(*dtype, shape.clone(), data.clone()));
            let view = official.tensor(t.name()).unwrap();
            assert_eq!(view.data(), &data[..], "{}", t.name());
        }
    }

    // Copy ranges tile the output's data buffer in dst order, read
    // disjoint spans of the input's data buffer, and carry exactly the
    // kept bytes.
    let mut next = N_LEN + n;
    for c in &plan.copies {
        assert_eq!(c.dst, next, "copy ranges do not tile the output");
        assert!(c.len > 0, "empty copy range");
        next += c.len;
    }
    assert_eq!(next, plan.output_len);
    let mut spans: Vec<&CopyRange> = plan.copies.iter().collect();
    spans.sort_by_key(|c| c.src);
    for w in spans.windows(2) {
        assert!(w[0].src + w[0].len <= w[1].src, "input spans overlap");
    }
    for c in &spans {
        assert!(c.src >= in_header.data_start() && c.src + c.len <= in_header.file_len());
    }
    let kept: u64 = plan
        .tensors
        .iter()
        .filter(|t| !t.pruned)
        .map(|t| t.bytes)
        .sum();
    assert_eq!(plan.kept_bytes(), kept);
    assert_eq!(plan.output_len - N_LEN - n, kept);
    plan
}

fn rank_file(spec: &CheckpointSpec, rank: u64) -> Vec<u8> {
    file(&spec.rank_tensors(rank))
}

#[test]
fn planned_files_are_valid_for_both_readers_in_every_family() {
    for family in Family::ALL {
        let spec = CheckpointSpec::tiny(family, 2, 2);
        for rank in 0..spec.world_size() {
            let input = rank_file(&spec, rank);
            for align in [0, 1, 8, 64, ALIGN] {
                for prune_all in [false, true] {
                    let plan = check_plan(&input, &PruneRule::original(prune_all), align);
                    if prune_all {
                        assert!(plan.copies.is_empty());
                    }
                }
            }
        }
    }
}

#[test]
fn plans_every_dtype_scalars_and_zero_size_tensors() {
    // FNUZ dtypes are left out: the official 0.7.0 reader, used by
    // check_plan, does not know them.
    let tensors: Vec<TensorSpec> = trtllm_prune::fixture::every_dtype_tensors()
        .into_iter()
        .filter(|t| !matches!(t.dtype, Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ))
        .collect();
    let input = file(&tensors);
    for align in [0, ALIGN] {
        let plan = check_plan(&input, &PruneRule::original(false), align);
        // A kept zero-size tensor needs no bytes, so no copy range.
        assert!(plan.copies.iter().all(|c| c.len > 0));
    }
}

#[test]
fn adjacent_kept_tensors_make_one_copy_range() {
    let bf16 = |name: &str, n: u64| TensorSpec::new(name, Dtype::BF16, &[n]);
    let tensors = [
        bf16("a.input_layernorm.weight", 8),  // kept   \ one range
        bf16("a.attention.dense.weight", 16), // kept   /
        bf16("a.attention.qkv.weight", 32),   // pruned
        bf16("a.post_layernorm.weight", 8),   // kept   \
        bf16("empty.kept", 0),                // kept, no bytes
        bf16("b.attention.dense.bias", 4),    // kept   / one range
        bf16("b.mlp.fc.weight", 16),          // pruned
        bf16("b.mlp.gate.weight", 16),        // pruned
        bf16("lm_head.weight", 8),            // kept: one range
    ];
    let input = file(&tensors);
    let data_start = header(&input).data_start();
    let plan = check_plan(&input, &PruneRule::original(false), 0);
    let ranges: Vec<(u64, u64)> = plan
        .copies
        .iter()
        .map(|c| (c.src - data_start, c.len))
        .collect();
    assert_eq!(ranges, [(0, 48), (112, 24), (200, 16)]);
    assert_eq!(plan.pruned_count(), 3);
    assert_eq!(plan.kept_count(), 6);
}

#[test]
fn without_alignment_ranges_keep_input_order() {
    // (Where input order keeps every range congruent modulo 8: with FP8's
    // 4-byte scales in layer order it does not, and ranges move.)
    let spec = CheckpointSpec::tiny(Family::Llama, 1, 1);
    let input = rank_file(&spec, 0);
    let plan = check_plan(&input, &PruneRule::original(false), 0);
    assert!(plan.copies.windows(2).all(|w| w[0].src < w[1].src));
    // And the header is padded only up to the next multiple of 8.
    let n = plan.header_bytes.len() - 8;
    let json = std::str::from_utf8(&plan.header_bytes[8..]).unwrap();
    assert!(json.len() - json.trim_end().len() < 8, "padding of {n}");
}

#[test]
fn keeps_the_listing_order_when_it_differs_from_the_data_order() {
    let tensors = [
        TensorSpec::new("z.mlp.fc.weight", Dtype::F16, &[64]),
        TensorSpec::new("m.norm", Dtype::F32, &[3]),
        TensorSpec::new("a.attention.qkv.weight", Dtype::I8, &[5]),
        TensorSpec::new("b.dense", Dtype::U8, &[7]),
        TensorSpec::new("c.scale", Dtype::F32, &[]),
    ];
    let input = file_listed(&tensors, &[3, 0, 4, 2, 1], 3);
    for align in [0, ALIGN] {
        let plan = check_plan(&input, &PruneRule::original(false), align);
        // Outcomes follow the listing: b.dense, z.mlp.fc.weight, c.scale,
        // a.attention.qkv.weight, m.norm.
        let listed: Vec<(Dtype, bool)> = plan.tensors.iter().map(|t| (t.dtype, t.pruned)).collect();
        assert_eq!(
            listed,
            [
                (Dtype::U8, false),
                (Dtype::F16, true),
                (Dtype::F32, false),
                (Dtype::I8, true),
                (Dtype::F32, false)
            ]
        );
    }
}

#[test]
fn keeps_metadata_and_handles_headers_with_none() {
    let json = r#"{"__metadata__":{"format":"pt"},"w.mlp.fc.weight":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"k":{"dtype":"U8","shape":[3],"data_offsets":[2,5]}}"#;
    let mut input = (json.len() as u64).to_le_bytes().to_vec();
    input.extend_from_slice(json.as_bytes());
    input.extend_from_slice(&[1, 2, 3, 4, 5]);
    let plan = check_plan(&input, &PruneRule::original(false), 0);
    let output = apply(&plan, &input);
    let (_, meta) = SafeTensors::read_metadata(&output).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
    assert_eq!(&output[output.len() - 3..], &[3, 4, 5]);
}

/// Bytes of copy ranges of at least `align` bytes, and of those congruent.
fn large_range_bytes(plan: &PrunePlan, align: u64) -> (u64, u64) {
    let large = plan.copies.iter().filter(|c| c.len >= align);
    let total = large.clone().map(|c| c.len).sum();
    let congruent = large
        .filter(|c| c.src % align == c.dst % align)
        .map(|c| c.len)
        .sum();
    (total, congruent)
}

/// A llama rank with realistic proportions: every matrix a multiple of
/// 4096 bytes, norms of 512 bytes between them.
fn realistic_llama(family: Family) -> CheckpointSpec {
    CheckpointSpec {
        family,
        layers: 4,
        hidden: 256,
        intermediate: 1024,
        vocab: 1024,
        tp: 2,
        pp: 1,
        dtype: Dtype::BF16,
    }
}

#[test]
fn aligned_plan_makes_every_large_range_congruent_on_a_llama_rank() {
    let spec = realistic_llama(Family::Llama);
    for rank in 0..spec.world_size() {
        let input = rank_file(&spec, rank);
        let plan = check_plan(&input, &PruneRule::original(false), ALIGN);
        for c in plan.copies.iter().filter(|c| c.len >= ALIGN) {
            assert_eq!(c.src % ALIGN, c.dst % ALIGN, "{c:?} is not congruent");
        }
        let (total, congruent) = large_range_bytes(&plan, ALIGN);
        assert!(total > 0 && congruent == total);
        assert_eq!(plan.congruent_bytes(ALIGN), {
            // Small ranges may be congruent by chance; large ones all are.
            plan.copies
                .iter()
                .filter(|c| c.src % ALIGN == c.dst % ALIGN)
                .map(|c| c.len)
                .sum::<u64>()
        });
        // Unaligned, the same rank would lose congruence.
        let unaligned = plan_prune(&header(&input), &PruneRule::original(false), 0).unwrap();
        let (_, by_chance) = large_range_bytes(&unaligned, ALIGN);
        assert!(by_chance < total, "alignment made no difference");
    }
}

#[test]
fn aligned_plan_makes_the_first_large_range_congruent_whatever_the_header_size() {
    // The input header's length moves every input offset; the plan follows
    // it with its own padding. That padding keeps N a multiple of 8, so for
    // an input whose N is a multiple of 8 too (what writers produce) the
    // first large range is congruent; for any other input it lands within
    // 8 bytes, closer only when small ranges of the right size exist (here
    // there are none: the norms are 512 bytes).
    let spec = realistic_llama(Family::Llama);
    let tensors = spec.rank_tensors(0);
    let listing: Vec<usize> = (0..tensors.len()).collect();
    let json = json_listed(&tensors, &listing);
    let data = data_of(&tensors);
    let rule = PruneRule::original(false);
    for pad in 0..64 {
        let input = assemble(&json, pad, &data);
        let plan = if pad < 8 {
            check_plan(&input, &rule, ALIGN)
        } else {
            plan_prune(&header(&input), &rule, ALIGN).unwrap()
        };
        let first = plan.copies.iter().find(|c| c.len >= ALIGN).unwrap();
        let (src, dst) = (first.src % ALIGN, first.dst % ALIGN);
        if (json.len() + pad).is_multiple_of(8) {
            assert_eq!(src, dst, "input header padded by {pad}");
        } else {
            assert!(src.abs_diff(dst) < 8, "input header padded by {pad}");
        }
    }
}

#[test]
fn aligned_plan_keeps_the_first_large_ranges_of_an_fp8_rank_congruent() {
    // In layer order (a writer that keeps insertion order; the fixture's),
    // FP8 puts 4-byte scales between the matrices, and the rule prunes the
    // `weights_scaling_factor` of qkv, fc, gate and proj: 16 bytes per layer
    // that the kept 4-byte scales (8 bytes per layer) cannot make up, so
    // fillers keep ranges congruent only until they run out; and only
    // fillers of a multiple of 8 bytes qualify, so that every tensor stays
    // congruent modulo 8. Pinned: every tensor congruent modulo 8, and at
    // least half the large bytes modulo the block.
    let spec = realistic_llama(Family::Fp8);
    for rank in 0..spec.world_size() {
        let input = rank_file(&spec, rank);
        let plan = check_plan(&input, &PruneRule::original(false), ALIGN);
        let incongruent: Vec<usize> = plan.incongruent_tensors().collect();
        assert_eq!(incongruent, Vec::<usize>::new(), "rank {rank}");
        let (total, congruent) = large_range_bytes(&plan, ALIGN);
        assert!(
            congruent * 2 >= total,
            "rank {rank}: only {congruent} of {total} large bytes congruent"
        );
        let unaligned = plan_prune(&header(&input), &PruneRule::original(false), 0).unwrap();
        assert!(large_range_bytes(&unaligned, ALIGN).1 < congruent);
    }
}

#[test]
fn aligned_plan_is_still_a_valid_plan_with_few_or_no_fillers() {
    // One large tensor after an odd-sized small one and nothing to fill
    // with: the plan must still be valid even if it cannot be congruent.
    let tensors = [
        TensorSpec::new("n", Dtype::U8, &[3]),
        TensorSpec::new("big", Dtype::U8, &[3 * 4096 + 5]),
        TensorSpec::new("x.mlp.fc.weight", Dtype::U8, &[1]),
        TensorSpec::new("big2", Dtype::U8, &[2 * 4096]),
        TensorSpec::new("y.mlp.fc.weight", Dtype::U8, &[9]),
        TensorSpec::new("tail", Dtype::U8, &[1]),
    ];
    for pad in 0..8 {
        let listing: Vec<usize> = (0..tensors.len()).collect();
        let input = file_listed(&tensors, &listing, pad);
        check_plan(&input, &PruneRule::original(false), ALIGN);
    }
}

/// A tensor list from proptest's numbers: names that hit and miss the rule,
/// every dtype the official reader knows, scalars, zero-size tensors and
/// tensors of a few blocks (so that alignment has work to do).
fn arbitrary_tensors(raw: &[(u8, u8, u8, u16)]) -> Vec<TensorSpec> {
    const NAMES: [&str; 6] = [
        "attention.qkv.weight",
        "mlp.fc.weight",
        "attention.dense.weight",
        "input_layernorm.weight",
        "attention.qkv.weights_scaling_factor",
        "mlp.router.weight",
    ];
    let dtypes: Vec<Dtype> = Dtype::ALL
        .into_iter()
        .filter(|d| !matches!(d, Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ))
        .collect();
    raw.iter()
        .enumerate()
        .map(|(i, &(name, dtype, shape, n))| {
            let dtype = dtypes[dtype as usize % dtypes.len()];
            // Multiples of 4 elements fill whole bytes for F4 and F6 too.
            let n = 4 * u64::from(n);
            let shape: Vec<u64> = match shape % 4 {
                0 if dtype.bits() >= 8 => vec![],
                0 | 1 => vec![n],
                2 => vec![2, n],
                _ => vec![0, n],
            };
            let name = format!("layers.{i}.{}", NAMES[name as usize % NAMES.len()]);
            TensorSpec::new(name, dtype, &shape)
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn every_plan_is_valid_for_both_readers(
        raw in proptest::collection::vec(
            (0u8..6, proptest::prelude::any::<u8>(), 0u8..4, 0u16..1600),
            0..24,
        ),
        shuffle in proptest::prelude::any::<u64>(),
        pad in 0usize..16,
        align in proptest::sample::select(vec![0u64, 8, 512, ALIGN]),
        prune_all in proptest::prelude::any::<bool>(),
    ) {
        let tensors = arbitrary_tensors(&raw);
        // Listing order: a Fisher-Yates shuffle driven by `shuffle`.
        let mut listing: Vec<usize> = (0..tensors.len()).collect();
        let mut state = shuffle | 1;
        for i in (1..listing.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            listing.swap(i, (state >> 33) as usize % (i + 1));
        }
        let input = file_listed(&tensors, &listing, pad);
        check_plan(&input, &PruneRule::original(prune_all), align);
    }
}

#[test]
fn aligned_plan_makes_every_large_range_congruent_in_the_official_writers_order() {
    // The official writer (which TensorRT-LLM uses) sorts tensors by dtype,
    // widest first, then by name: the 4-byte FP8 scales then sit together
    // at the start instead of between the matrices, and every large range
    // can be congruent, in every family.
    for family in Family::ALL {
        let spec = realistic_llama(family);
        let mut tensors = spec.rank_tensors(0);
        tensors.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
        let input = file(&tensors);
        let plan = check_plan(&input, &PruneRule::original(false), ALIGN);
        let (total, congruent) = large_range_bytes(&plan, ALIGN);
        assert!(total > 0, "{family:?}: no large range");
        assert_eq!(congruent, total, "{family:?}: {:?}", plan.copies);
    }
}

/// A rule that also prunes names containing `prune` (issue 9's examples).
fn prune_named_prune() -> PruneRule {
    let mut rule = PruneRule::original(false);
    rule.prune.push(Pattern::new("prune"));
    rule
}

#[test]
fn a_pruned_4_byte_tensor_does_not_misalign_its_neighbours() {
    // Issue 9: in the official writer's order, F32 `a.keep`, F32
    // `b.prune`, BF16 `c.keep` of 4098 bytes. The old planner put `c` first
    // (congruent to its block) and `a` after it, at 2 modulo 4. No order
    // keeps both congruent modulo 8 (the data buffer has no holes, and
    // 4 and 4098 are not multiples of 8); widest first keeps `a` congruent
    // and `c` aligned for BF16.
    let tensors = [
        TensorSpec::new("a.keep", Dtype::F32, &[1]),
        TensorSpec::new("b.prune", Dtype::F32, &[1]),
        TensorSpec::new("c.keep", Dtype::BF16, &[2049]),
    ];
    let input = file(&tensors);
    for align in [0, 8, ALIGN] {
        let plan = check_plan(&input, &prune_named_prune(), align);
        let (a, c) = (&plan.tensors[0], &plan.tensors[2]);
        assert_eq!(a.output_offset % 8, a.input_offset % 8, "align {align}");
        assert_eq!(c.output_offset % 2, 0, "align {align}");
    }
}

#[test]
fn ranges_move_to_stay_congruent_when_a_pruned_scale_shifts_them() {
    // F32 scales in the writer's order, every other one pruned: kept ones
    // sit at 0 and 8 modulo 16 ... in input order they would land 4 bytes
    // off after each gap; the planner pairs them up instead.
    let mut tensors = Vec::new();
    for i in 0..4 {
        tensors.push(TensorSpec::new(format!("s{i}.keep"), Dtype::F32, &[1]));
        tensors.push(TensorSpec::new(format!("s{i}.prune"), Dtype::F32, &[1]));
        tensors.push(TensorSpec::new(format!("t{i}.keep"), Dtype::F32, &[3]));
    }
    let input = file(&tensors);
    for align in [0, ALIGN] {
        let plan = check_plan(&input, &prune_named_prune(), align);
        assert_eq!(plan.incongruent_tensors().count(), 0, "{:?}", plan.copies);
    }
}

/// Kept, non-empty tensors merged into runs of input-adjacent bytes:
/// (input file offset, length), the units a plan may reorder.
fn kept_runs_of(input: &[u8], rule: &PruneRule) -> Vec<(u64, u64)> {
    let h = header(input);
    let mut kept: Vec<(u64, u64)> = h
        .tensors()
        .filter(|t| !rule.decide(t.name()).prune && t.end() > t.begin())
        .map(|t| (h.data_start() + t.begin(), t.byte_len()))
        .collect();
    kept.sort_unstable();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (offset, len) in kept {
        match runs.last_mut() {
            Some(last) if last.0 + last.1 == offset => last.1 += len,
            _ => runs.push((offset, len)),
        }
    }
    runs
}

/// Whether some order of `runs` puts every one at an output offset
/// congruent to its input offset modulo 8: tries them all (Heap's
/// algorithm), so keep `runs` short.
fn congruent_order_exists(runs: &[(u64, u64)]) -> bool {
    fn fits(runs: &[(u64, u64)], order: &[usize]) -> bool {
        let Some(&first) = order.first() else {
            return true;
        };
        let mut at = runs[first].0 % 8;
        order.iter().all(|&i| {
            let ok = at == runs[i].0 % 8;
            at = (at + runs[i].1) % 8;
            ok
        })
    }
    let mut order: Vec<usize> = (0..runs.len()).collect();
    let mut c = vec![0; runs.len()];
    if fits(runs, &order) {
        return true;
    }
    let mut i = 1;
    while i < order.len() {
        if c[i] < i {
            order.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
            if fits(runs, &order) {
                return true;
            }
            c[i] += 1;
            i = 1;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    false
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn plans_of_official_writer_files_keep_tensors_aligned(
        raw in proptest::collection::vec(
            (proptest::prelude::any::<bool>(), proptest::prelude::any::<u8>(), 1u64..6, 0u8..8),
            0..8,
        ),
        align in proptest::sample::select(vec![0u64, ALIGN]),
    ) {
        // The official writer's order: widest dtype first, then by name;
        // mostly a few bytes per tensor, sometimes a block or more.
        let dtypes: Vec<Dtype> = Dtype::ALL
            .into_iter()
            .filter(|d| !matches!(d, Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ))
            .collect();
        let mut tensors: Vec<TensorSpec> = raw
            .iter()
            .enumerate()
            .map(|(i, &(prune, dtype, n, big))| {
                let dtype = dtypes[dtype as usize % dtypes.len()];
                let n = if big == 0 { 4 * (1024 + n) } else { 4 * n };
                let n = if dtype.bits() >= 8 { n / 4 } else { n };
                let name = format!("t{i}.{}", if prune { "prune" } else { "keep" });
                TensorSpec::new(name, dtype, &[n])
            })
            .collect();
        tensors.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
        let input = file(&tensors);
        let rule = prune_named_prune();
        // check_plan checks that every kept tensor stays aligned for its
        // dtype.
        let plan = check_plan(&input, &rule, align);
        if congruent_order_exists(&kept_runs_of(&input, &rule)) {
            let incongruent: Vec<usize> = plan.incongruent_tensors().collect();
            proptest::prop_assert_eq!(incongruent, Vec::<usize>::new(), "{:?}", plan.copies);
        }
    }
}

/// Kept, non-empty tensors one by one: (input file offset, length).
fn kept_tensors_of(input: &[u8], rule: &PruneRule) -> Vec<(u64, u64)> {
    let h = header(input);
    h.tensors()
        .filter(|t| !rule.decide(t.name()).prune && t.end() > t.begin())
        .map(|t| (h.data_start() + t.begin(), t.byte_len()))
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Issue 18: in about 11 of 300 such files the planner moved a kept
    /// tensor off its input residue modulo 8 although an order keeping
    /// every one existed: it only reordered whole ranges of input-adjacent
    /// tensors, and some orders need a range taken apart.
    #[test]
    fn a_congruent_order_of_single_tensors_is_found(
        raw in proptest::collection::vec(
            (proptest::prelude::any::<bool>(), 0usize..4, 1u64..12),
            1..8,
        ),
        align in proptest::sample::select(vec![0u64, ALIGN]),
    ) {
        // Small tensors of 1-, 2-, 4- and 8-byte dtypes in any order: their
        // ends fall on every residue.
        let dtypes = [Dtype::U8, Dtype::BF16, Dtype::F32, Dtype::I64];
        let tensors: Vec<TensorSpec> = raw
            .iter()
            .enumerate()
            .map(|(i, &(prune, dtype, n))| {
                let name = format!("t{i}.{}", if prune { "prune" } else { "keep" });
                TensorSpec::new(name, dtypes[dtype], &[n])
            })
            .collect();
        let input = file(&tensors);
        let rule = prune_named_prune();
        let plan = check_plan(&input, &rule, align);
        if congruent_order_exists(&kept_tensors_of(&input, &rule)) {
            let incongruent: Vec<usize> = plan.incongruent_tensors().collect();
            proptest::prop_assert_eq!(incongruent, Vec::<usize>::new(), "{:?}", plan.copies);
        }
    }
}

/// A header in memory with one kept U8 tensor whose name makes the
/// planned JSON exactly `json_len` bytes long.
fn header_with_json_len(json_len: usize) -> Header {
    let header = |name: &str| unchecked_header(4, None, &[(name, Dtype::U8, [8192])]);
    let rule = PruneRule::original(false);
    let base = plan_prune(&header(""), &rule, 0).unwrap().header_bytes;
    let base_json = String::from_utf8_lossy(&base[8..]).trim_end().len();
    header(&"n".repeat(json_len - base_json))
}

#[test]
fn a_header_at_the_limit_is_planned_without_the_padding_that_would_pass_it() {
    // The input's data starts at 12 (4 modulo 8): the output wants its data
    // start there too, which would take 3 bytes of padding past the limit.
    let limit = MAX_HEADER_SIZE as usize;
    for align in [0, ALIGN] {
        let plan = plan_prune(
            &header_with_json_len(limit - 1),
            &PruneRule::original(false),
            align,
        )
        .expect("fits without padding");
        assert!(plan.header_bytes.len() as u64 <= N_LEN + MAX_HEADER_SIZE);
        let mut output = plan.header_bytes.clone();
        output.resize(plan.output_len as usize, 0);
        SafeTensors::deserialize(&output)
            .unwrap_or_else(|e| panic!("the official reader rejects it: {e}"));
    }
}

#[test]
fn a_header_over_the_limit_is_an_error_not_a_file_the_official_crate_refuses() {
    let too_long = header_with_json_len(MAX_HEADER_SIZE as usize + 1);
    let error = plan_prune(&too_long, &PruneRule::original(false), ALIGN).unwrap_err();
    assert_eq!(
        error,
        PlanError::HeaderTooLarge {
            len: MAX_HEADER_SIZE + 1
        }
    );
    assert_eq!(
        error.to_string(),
        "the pruned header would be 100000001 bytes, over the format's limit of 100000000 bytes"
    );
}

#[test]
fn the_filler_search_is_bounded_on_a_planning_bomb() {
    // Work is counted, not timed: c·n·log2(n) filler candidates at most.
    // Gaps of 2 and 4094 bytes are issue 9's; 8 and 4088 keep every range
    // congruent modulo 8, so that the search runs for every large one.
    let count = 20_000;
    for gaps in [(2, 4094), (8, 4088)] {
        let bomb = filler_bomb(count, gaps);
        let n = bomb.tensor_count() as u64;
        let plan = plan_prune(&bomb, &PruneRule::original(false), ALIGN).unwrap();
        assert_eq!(plan.kept_count() as u64, 2 * count);
        plan.check_alignment().unwrap();
        let bound = 8 * n * u64::from(n.ilog2());
        assert!(
            plan.filler_work() <= bound,
            "{gaps:?}: {} > {bound}",
            plan.filler_work()
        );
        if gaps.0 == 8 {
            assert!(plan.filler_work() > 0, "the search ran");
            assert_eq!(plan.incongruent_tensors().count(), 0);
        }
    }
    let bomb = filler_bomb(count, (8, 4088));
    let plan = plan_prune(&bomb, &PruneRule::original(false), ALIGN).unwrap();
    // Still a valid plan: the ranges tile the output.
    let mut next = plan.header_bytes.len() as u64;
    for c in &plan.copies {
        assert_eq!(c.dst, next);
        next += c.len;
    }
    assert_eq!(next, plan.output_len);
}
