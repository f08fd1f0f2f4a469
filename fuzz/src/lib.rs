//! The properties the fuzz targets check, as plain functions over bytes.
//!
//! They live here rather than in the targets so that the integration tests
//! (`tests/differential.rs`) run the very same checks on the seed corpus and
//! on every regression input, without a nightly toolchain.
//!
//! A check panics when a property fails; an input the reader rejects is
//! simply uninteresting.

use trtllm_prune::fixture::tensor_byte_len;
use trtllm_prune::{plan_prune, Header, Pattern, PrunePlan, PruneRule};

/// Patterns a roundtrip input can pick: substrings and globs that hit
/// real tensor names, everything, nothing, and a multi-byte character.
pub const PATTERNS: [&str; 8] = [
    "weight",
    "*.bias",
    "layers.?.*",
    "*",
    "a",
    "",
    "\u{e9}",
    "*t*",
];

/// Block sizes a roundtrip input can pick (0 and 1: no alignment).
pub const ALIGNS: [u64; 4] = [0, 1, 8, 4096];

/// The header reader on arbitrary bytes: never panics, and an accepted file
/// satisfies every invariant of [`Header`].
pub fn check_header(bytes: &[u8]) {
    let result = trtllm_prune::fixture::parse_file(bytes);
    // The fast scan of common headers reads exactly what serde_json reads.
    assert_eq!(
        result,
        trtllm_prune::fixture::parse_file_without_fast_scan(bytes)
    );
    let Ok(parsed) = result else {
        return;
    };
    assert_header_invariants(&parsed, bytes);
}

/// Asserts the invariants `trtllm_prune::header` promises for a header
/// parsed from the whole file `bytes`.
pub fn assert_header_invariants(parsed: &Header, bytes: &[u8]) {
    let file_len = bytes.len() as u64;
    assert_eq!(parsed.file_len(), file_len, "header describes the file");
    // The streaming path (prefix, then header bytes) agrees with parse_file.
    let n =
        trtllm_prune::fixture::header_len_from_prefix(bytes, file_len).expect("prefix accepted");
    assert_eq!(n, parsed.header_len());
    let json = &bytes[8..(8 + n) as usize];
    let again = trtllm_prune::parse_header(json, file_len).expect("header accepted twice");
    assert!(again.tensors().eq(parsed.tensors()));
    assert_eq!(again.metadata(), parsed.metadata());

    let mut names: Vec<&str> = parsed.tensors().map(|t| t.name()).collect();
    names.sort_unstable();
    assert!(
        names.windows(2).all(|w| w[0] != w[1]),
        "tensor names are unique"
    );
    let mut spans: Vec<(u64, u64)> = parsed.tensors().map(|t| (t.begin(), t.end())).collect();
    spans.sort_unstable();
    let mut next = 0;
    for (begin, end) in spans {
        assert_eq!(begin, next, "tensors tile the data buffer");
        next = end;
    }
    assert_eq!(next, parsed.data_len());
    for t in parsed.tensors() {
        assert_eq!(Ok(t.byte_len()), tensor_byte_len(t.dtype(), t.shape()));
    }
}

/// The prune rule and alignment a roundtrip input's first byte picks:
/// bit 0 `prune_all`, bits 1-2 the alignment, bit 3 a `--prune` pattern,
/// bit 4 a `--keep` pattern, bits 5-7 which patterns.
pub fn rule_from(control: u8) -> (PruneRule, u64) {
    let pick = usize::from(control >> 5);
    let mut rule = PruneRule::original(control & 1 != 0);
    if control & 0x08 != 0 {
        rule.prune.push(Pattern::new(PATTERNS[pick]));
    }
    if control & 0x10 != 0 {
        rule.keep
            .push(Pattern::new(PATTERNS[(pick + 3) % PATTERNS.len()]));
    }
    (rule, ALIGNS[usize::from((control >> 1) & 3)])
}

/// The output file a plan describes, built in memory: the planned header,
/// then the data buffer zero-filled and overwritten by every copy range.
/// Panics when the copy ranges do not tile the output's data buffer in
/// `dst` order or reach outside the input.
pub fn apply_plan(input: &[u8], plan: &PrunePlan) -> Vec<u8> {
    let mut out = plan.header_bytes.clone();
    out.resize(plan.output_len as usize, 0);
    let mut next = plan.header_bytes.len() as u64;
    for c in &plan.copies {
        assert_eq!(c.dst, next, "copy ranges tile the output in dst order");
        assert!(c.len > 0, "no empty copy range");
        let (src, dst, len) = (c.src as usize, c.dst as usize, c.len as usize);
        out[dst..dst + len].copy_from_slice(&input[src..src + len]);
        next += c.len;
    }
    assert_eq!(next, plan.output_len, "copy ranges fill the output");
    out
}

/// Reader -> planner -> reader. The first byte of `data` picks the rule
/// (see [`rule_from`]), the rest is the input file. Whatever the reader
/// accepts, the planned output parses and lists the same names, in the same
/// order, with the same dtypes and metadata; kept tensors keep shape and
/// bytes, pruned ones are empty with shape `[0]`; in an input whose kept
/// tensors are aligned for their dtypes, they stay aligned.
pub fn check_roundtrip(data: &[u8]) {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let Ok(input) = trtllm_prune::fixture::parse_file(file) else {
        return;
    };
    let (rule, align) = rule_from(control);
    let plan = plan_prune(&input, &rule, align).expect("a parsed header plans");
    assert_eq!(plan.input_len, file.len() as u64);
    assert!(plan.header_bytes.len() as u64 <= 8 + trtllm_prune::fixture::MAX_HEADER_SIZE);
    // The data start is congruent to the first range's input offset modulo
    // 8 (a multiple of 8 with nothing to copy), and kept tensors aligned
    // for their dtype in an aligned input stay aligned.
    let first_src = plan.copies.first().map_or(0, |c| c.src);
    assert_eq!(
        plan.header_bytes.len() as u64 % 8,
        first_src % 8,
        "data start"
    );
    if let Err(e) = plan.check_alignment() {
        panic!("{e}");
    }
    let out = apply_plan(file, &plan);
    let output = trtllm_prune::fixture::parse_file(&out)
        .unwrap_or_else(|e| panic!("the planned output is rejected: {e}"));
    assert_header_invariants(&output, &out);
    assert_eq!(
        output.metadata(),
        input.metadata(),
        "metadata kept verbatim"
    );
    assert_eq!(output.tensor_count(), input.tensor_count(), "no name lost");
    assert_eq!(plan.tensors.len(), input.tensor_count());
    let out_start = output.data_start();
    for ((before, after), outcome) in input.tensors().zip(output.tensors()).zip(&plan.tensors) {
        assert_eq!(after.name(), before.name(), "listing order kept");
        assert_eq!(
            after.dtype(),
            before.dtype(),
            "dtype kept: {}",
            before.name()
        );
        assert_eq!(outcome.pruned, rule.decide(before.name()).prune);
        if outcome.pruned {
            assert_eq!(after.shape(), [0], "pruned shape: {}", before.name());
            assert_eq!(after.byte_len(), 0, "pruned is empty: {}", before.name());
        } else {
            assert_eq!(
                after.shape(),
                before.shape(),
                "kept shape: {}",
                before.name()
            );
            let kept =
                &out[(out_start + after.begin()) as usize..(out_start + after.end()) as usize];
            let orig = &file[(input.data_start() + before.begin()) as usize
                ..(input.data_start() + before.end()) as usize];
            assert!(kept == orig, "kept bytes exact: {}", before.name());
        }
    }
}
