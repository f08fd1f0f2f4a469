//! The pure planner, `trtllm_prune::plan::plan_prune`: its header bytes and
//! copy ranges are applied to an in-memory input, and the result is read
//! back with our reader and with the official crate.

use std::collections::BTreeMap;

use safetensors::SafeTensors;
use trtllm_prune::fixture::{fill, CheckpointSpec, Family, TensorSpec};
use trtllm_prune::header::{parse_file, Dtype, Header, N_LEN};
use trtllm_prune::plan::{plan_prune, CopyRange, PrunePlan, SHARE_ALIGNMENT};
use trtllm_prune::rule::PruneRule;

const ALIGN: u64 = SHARE_ALIGNMENT;

/// A header listing `tensors` in `listing` order (indices into `tensors`),
/// with data offsets for the tensors laid out in their own order.
fn json_listed(tensors: &[TensorSpec], listing: &[usize]) -> String {
    let mut offsets = Vec::new();
    let mut offset = 0u64;
    for t in tensors {
        offsets.push((offset, offset + t.byte_len()));
        offset += t.byte_len();
    }
    let entries: Vec<String> = listing
        .iter()
        .map(|&i| {
            let t = &tensors[i];
            format!(
                "{}:{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{},{}]}}",
                serde_json::to_string(&t.name).unwrap(),
                t.dtype.name(),
                t.shape,
                offsets[i].0,
                offsets[i].1
            )
        })
        .collect();
    format!("{{{}}}", entries.join(","))
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
    h.tensors
        .iter()
        .map(|t| {
            let data = bytes[start + t.begin as usize..start + t.end as usize].to_vec();
            (t.name.clone(), (t.dtype, t.shape.clone(), data))
        })
        .collect()
}

/// Checks everything a plan promises about its output, for `input`
/// planned with `rule` and `align`; returns the plan.
#[track_caller]
fn check_plan(input: &[u8], rule: &PruneRule, align: u64) -> PrunePlan {
    let in_header = header(input);
    let plan = plan_prune(&in_header, rule, align);
    let output = apply(&plan, input);
    assert_eq!(output.len() as u64, plan.output_len);
    assert_eq!(plan.input_len, input.len() as u64);

    // The header: N in the prefix, a multiple of 8, padding is spaces.
    let n = u64::from_le_bytes(plan.header_bytes[..8].try_into().unwrap());
    assert_eq!(plan.header_bytes.len() as u64, N_LEN + n);
    assert_eq!(n % 8, 0, "header length {n} is not a multiple of 8");

    // Both readers accept it.
    let out_header = header(&output);
    let official = SafeTensors::deserialize(&output)
        .unwrap_or_else(|e| panic!("the official reader rejects it: {e}"));
    assert_eq!(official.len(), in_header.tensors.len());

    // Names in listing order; pruned are [0,0] shape [0]; kept unchanged.
    let in_names: Vec<&str> = in_header.tensors.iter().map(|t| t.name.as_str()).collect();
    let out_names: Vec<&str> = out_header.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(out_names, in_names, "listing order");
    let before = contents(input);
    let after = contents(&output);
    for ((t, input_entry), outcome) in out_header
        .tensors
        .iter()
        .zip(&in_header.tensors)
        .zip(&plan.tensors)
    {
        assert_eq!(t.name, input_entry.name);
        assert_eq!(t.dtype, outcome.dtype);
        let decision = rule.decide(&t.name);
        assert_eq!(outcome.pruned, decision.prune, "{}", t.name);
        let (dtype, shape, data) = &before[&t.name];
        if decision.prune {
            assert_eq!((t.begin, t.end), (0, 0), "{}", t.name);
            assert_eq!((t.dtype, &t.shape[..]), (*dtype, &[0][..]), "{}", t.name);
        } else {
            assert_eq!(&after[&t.name], &(*dtype, shape.clone(), data.clone()));
            let view = official.tensor(&t.name).unwrap();
            assert_eq!(view.data(), &data[..], "{}", t.name);
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
    let spec = CheckpointSpec::tiny(Family::Fp8, 1, 1);
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
        let unaligned = plan_prune(&header(&input), &PruneRule::original(false), 0);
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
            plan_prune(&header(&input), &rule, ALIGN)
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
    // fillers keep ranges congruent only until they run out. Pinned: the
    // first large ranges are congruent, and at least half the large bytes.
    let spec = realistic_llama(Family::Fp8);
    for rank in 0..spec.world_size() {
        let input = rank_file(&spec, rank);
        let plan = check_plan(&input, &PruneRule::original(false), ALIGN);
        let large: Vec<&CopyRange> = plan.copies.iter().filter(|c| c.len >= ALIGN).collect();
        assert_eq!(large.len(), 6);
        for c in &large[..3] {
            assert_eq!(c.src % ALIGN, c.dst % ALIGN, "rank {rank}: {c:?}");
        }
        let (total, congruent) = large_range_bytes(&plan, ALIGN);
        assert!(
            congruent * 2 >= total,
            "rank {rank}: only {congruent} of {total} large bytes congruent"
        );
        let unaligned = plan_prune(&header(&input), &PruneRule::original(false), 0);
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
