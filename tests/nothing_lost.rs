//! Nothing lost: many prunes of random valid checkpoints, each output
//! compared with its input tensor by tensor. Kept tensors keep dtype, shape
//! and every byte; pruned ones keep their dtype with shape `[0]` and no
//! bytes; no name is missing and none is added; metadata, the other files
//! and the config (plus `"is_pruned": true`) survive.
//!
//! Runs go through the library with every copy path (the kernel's, and the
//! `pread`/`pwrite` fallback), with and without alignment, and some through
//! the binary. Outputs are read with the official `safetensors` crate.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use safetensors::SafeTensors;
use trtllm_prune::fixture::{
    parse_file, tensor_byte_len, write_safetensors, CheckpointSpec, Family, TensorSpec,
};
use trtllm_prune::{prune, CopyMethods, Dtype, NoProgress, Options, Pattern, PruneRule};

use crate::util;

/// Fixed seed, few cases: every case writes and prunes a checkpoint.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x006e_6f74_6869_6e67),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

/// A checkpoint to generate: TensorRT-LLM-like ranks, or ranks of random
/// tensors (every dtype, scalars, zero-size, odd names, metadata).
#[derive(Debug, Clone)]
enum Source {
    Family(CheckpointSpec),
    Random {
        ranks: Vec<Vec<TensorSpec>>,
        metadata: Vec<(String, String)>,
    },
}

impl Source {
    /// Writes config.json, the ranks and one extra file into `dir`.
    fn write(&self, dir: &Path) {
        match self {
            Source::Family(spec) => spec.write(dir).expect("write checkpoint"),
            Source::Random { ranks, metadata } => {
                fs::create_dir_all(dir).expect("mkdir");
                let config = serde_json::json!({
                    "architecture": "AnyForCausalLM",
                    "mapping": {"world_size": ranks.len()},
                });
                fs::write(dir.join("config.json"), config.to_string()).expect("config");
                let meta: Vec<(&str, &str)> = metadata
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let meta = (!meta.is_empty()).then_some(meta.as_slice());
                for (rank, tensors) in ranks.iter().enumerate() {
                    let path = dir.join(format!("rank{rank}.safetensors"));
                    write_safetensors(&path, tensors, meta).expect("write rank");
                }
            }
        }
        fs::write(dir.join("quant_cfg.json"), b"{\"quant_algo\": \"MIXED\"}\n").expect("extra");
    }

    fn world_size(&self) -> usize {
        match self {
            Source::Family(spec) => spec.world_size() as usize,
            Source::Random { ranks, .. } => ranks.len(),
        }
    }
}

/// One random run: what to prune and how to copy.
#[derive(Debug, Clone)]
struct Run {
    source: Source,
    rule: PruneRule,
    align: u64,
    buffered_only: bool,
    jobs: usize,
}

fn family() -> impl Strategy<Value = Family> {
    proptest::sample::select(Family::ALL.to_vec())
}

fn family_source() -> impl Strategy<Value = Source> {
    (family(), 1u64..4, 1u64..3, 1u64..3).prop_map(|(family, tp, pp, layers)| {
        // GPT configs carry no `mapping`: one rank.
        let (tp, pp) = if family == Family::Gpt {
            (1, 1)
        } else {
            (tp, pp)
        };
        let mut spec = CheckpointSpec::tiny(family, tp, pp);
        spec.layers = layers * pp;
        spec.hidden = 48;
        spec.intermediate = 96;
        spec.vocab = 24 * tp;
        spec.dtype = if tp == 2 { Dtype::F16 } else { Dtype::BF16 };
        Source::Family(spec)
    })
}

fn tensor() -> impl Strategy<Value = TensorSpec> {
    let name = prop_oneof![
        3 => "transformer\\.layers\\.[0-3]\\.(attention\\.(qkv|dense|proj)|mlp\\.(fc|gate|proj|router))\\.(weight|bias|weights_scaling_factor)",
        2 => "[a-z_.]{1,10}",
        1 => "\\PC{1,6}",
    ]
    .prop_filter("reserved key", |n: &String| n != "__metadata__");
    let dim = prop_oneof![5 => 1u64..40, 1 => Just(0u64)];
    (
        name,
        proptest::sample::select(Dtype::ALL.to_vec()),
        proptest::collection::vec(dim, 0..3),
    )
        .prop_map(|(name, dtype, mut shape)| {
            if tensor_byte_len(dtype, &shape).is_err() {
                shape.push(4);
            }
            TensorSpec::new(name, dtype, &shape)
        })
}

fn random_source() -> impl Strategy<Value = Source> {
    let rank = proptest::collection::vec(tensor(), 0..14).prop_map(|mut tensors| {
        let mut seen = std::collections::HashSet::new();
        tensors.retain(|t| seen.insert(t.name.clone()));
        tensors
    });
    (
        proptest::collection::vec(rank, 1..4),
        proptest::collection::vec(("[a-z]{1,5}", "\\PC{0,8}"), 0..3),
    )
        .prop_map(|(ranks, metadata)| Source::Random { ranks, metadata })
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        Just("weight"),
        Just("bias"),
        Just("*.bias"),
        Just("transformer.layers.?.*"),
        Just("*layernorm*"),
        Just("lm_head"),
        Just("*"),
        Just("attention.dense.weight"),
        Just("mlp.fc.weight"),
    ]
    .prop_map(Pattern::new)
}

fn rule() -> impl Strategy<Value = PruneRule> {
    (
        prop::bool::weighted(0.25),
        proptest::collection::vec(pattern(), 0..2),
        proptest::collection::vec(pattern(), 0..2),
    )
        .prop_map(|(prune_all, prune, keep)| PruneRule::new(prune_all, prune, keep))
}

fn run() -> impl Strategy<Value = Run> {
    (
        prop_oneof![family_source(), random_source()],
        rule(),
        prop_oneof![Just(0u64), Just(1), Just(64), Just(4096)],
        any::<bool>(),
        1usize..4,
    )
        .prop_map(|(source, rule, align, buffered_only, jobs)| Run {
            source,
            rule,
            align,
            buffered_only,
            jobs,
        })
}

/// Name -> (dtype, shape, bytes).
type Contents = BTreeMap<String, (Dtype, Vec<u64>, Vec<u8>)>;

/// Every tensor of a file and its metadata text, read with our reader (the
/// official crate 0.7 cannot read the FNUZ dtypes).
fn tensors_of(bytes: &[u8]) -> (Contents, Option<String>) {
    let header = parse_file(bytes).expect("file reads");
    let start = header.data_start();
    let tensors = header
        .tensors()
        .map(|t| {
            let data = bytes[(start + t.begin()) as usize..(start + t.end()) as usize].to_vec();
            (t.name().to_owned(), (t.dtype(), t.shape().to_owned(), data))
        })
        .collect();
    (tensors, header.metadata().map(str::to_string))
}

/// Compares every output rank with its input, tensor by tensor, and the
/// other files of the folder.
fn assert_nothing_lost(input: &Path, output: &Path, world_size: usize, rule: &PruneRule) {
    for rank in 0..world_size {
        let name = format!("rank{rank}.safetensors");
        let before_bytes = fs::read(input.join(&name)).expect("read input");
        let after_bytes = fs::read(output.join(&name)).expect("output rank exists");
        let (before, before_meta) = tensors_of(&before_bytes);
        let (after, after_meta) = tensors_of(&after_bytes);
        assert_eq!(after_meta, before_meta, "{name}: metadata kept verbatim");
        let names = |m: &BTreeMap<String, _>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&after),
            names(&before),
            "{name}: the same names, nothing extra"
        );
        for (tensor, (dtype, shape, data)) in &before {
            let (out_dtype, out_shape, out_data) = &after[tensor];
            assert_eq!(out_dtype, dtype, "{name}: dtype of `{tensor}`");
            if rule.decide(tensor).prune {
                assert_eq!(out_shape, &[0], "{name}: pruned `{tensor}` has shape [0]");
                assert!(out_data.is_empty(), "{name}: pruned `{tensor}` is empty");
            } else {
                assert_eq!(out_shape, shape, "{name}: shape of `{tensor}`");
                assert!(out_data == data, "{name}: bytes of kept `{tensor}` differ");
            }
        }
        // The official crate reads the output alike (0.7 knows no FNUZ).
        if !before.values().any(|(d, ..)| d.name().ends_with("FNUZ")) {
            let official = SafeTensors::deserialize(&after_bytes)
                .unwrap_or_else(|e| panic!("{name}: the official crate rejects the output: {e:?}"));
            assert_eq!(official.len(), after.len(), "{name}");
            for (tensor, (_, shape, data)) in &after {
                let view = official.tensor(tensor).expect("name listed");
                let view_shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
                assert_eq!(&view_shape, shape, "{name}: `{tensor}`");
                assert!(view.data() == data.as_slice(), "{name}: `{tensor}`");
            }
        }
    }
    assert_eq!(
        fs::read(output.join("quant_cfg.json")).expect("extra file copied"),
        fs::read(input.join("quant_cfg.json")).expect("read")
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(output.join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(config["is_pruned"], serde_json::Value::Bool(true));
    let mut expected: Vec<String> = (0..world_size)
        .map(|r| format!("rank{r}.safetensors"))
        .chain(["config.json".to_string(), "quant_cfg.json".to_string()])
        .collect();
    expected.sort();
    assert_eq!(
        util::file_names(output),
        expected,
        "no other file in the output"
    );
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn library_prunes_lose_nothing(run in run()) {
        let dir = util::tempdir();
        let (input, output) = (dir.path().join("ckpt"), dir.path().join("out"));
        run.source.write(&input);
        let mut options = Options::new(&input);
        options.out_dir = Some(output.clone());
        options.rule = run.rule.clone();
        options.align = Some(run.align);
        options.jobs = run.jobs;
        if run.buffered_only {
            options.methods = CopyMethods::buffered_only();
        }
        let summary = prune(&options, &NoProgress).expect("prune succeeds");
        prop_assert_eq!(summary.files, run.source.world_size());
        assert_nothing_lost(&input, &output, run.source.world_size(), &run.rule);
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn binary_prunes_lose_nothing(
        source in prop_oneof![family_source(), random_source()],
        prune_all: bool,
        jobs in 1usize..3,
    ) {
        let dir = util::tempdir();
        let (input, output) = (dir.path().join("ckpt"), dir.path().join("out"));
        source.write(&input);
        let jobs = jobs.to_string();
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"--checkpoint_dir", &input, &"--out_dir", &output, &"--quiet", &"--jobs", &jobs];
        if prune_all {
            args.push(&"--prune_all");
        }
        let out = util::run(&args);
        prop_assert!(
            out.status.success(),
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_nothing_lost(&input, &output, source.world_size(), &PruneRule::original(prune_all));
    }
}

/// The fallback copy path and no alignment, on every dtype at once.
#[test]
fn buffered_copies_without_alignment_lose_nothing() {
    let tensors = trtllm_prune::fixture::every_dtype_tensors();
    let source = Source::Random {
        ranks: vec![tensors.clone(), tensors.into_iter().rev().collect()],
        metadata: vec![("format".into(), "pt".into())],
    };
    for prune_all in [false, true] {
        let dir = util::tempdir();
        let (input, output) = (dir.path().join("ckpt"), dir.path().join("out"));
        source.write(&input);
        let mut options = Options::new(&input);
        options.out_dir = Some(output.clone());
        options.rule = PruneRule::original(prune_all);
        options.align = Some(0);
        options.methods = CopyMethods::buffered_only();
        prune(&options, &NoProgress).expect("prune succeeds");
        assert_nothing_lost(&input, &output, 2, &options.rule);
    }
}

#[test]
fn a_library_caller_can_stop_a_run_and_nothing_is_written() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let out = tmp.path().join("out");
    let mut options = Options::new(&ckpt);
    options.out_dir = Some(out.clone());
    options.cancel = trtllm_prune::Cancel::new();
    options.cancel.clone().stop();
    let result = prune(&options, &NoProgress);
    assert!(
        matches!(result, Err(trtllm_prune::Error::Interrupted { .. })),
        "{result:?}"
    );
    assert!(!out.exists(), "left {:?}", util::file_names(&out));
}
