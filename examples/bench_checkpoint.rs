//! Writes the large checkpoints the end-to-end benchmark (`benches/e2e.sh`)
//! and the block-sharing measurements use. Tensor names, shapes and config
//! follow TensorRT-LLM's Llama layout (`trtllm_prune::fixture`); the bytes are
//! the fixture's deterministic pseudo-random data, so nothing compresses or
//! deduplicates behind the benchmark's back.
//!
//! Run: `cargo run --release --example bench_checkpoint -- DIR PRESET [LAYERS]`
//!
//! Presets (LAYERS overrides the layer count):
//! - `tp2`: Llama-7B shape (hidden 4096, intermediate 11008, vocab 32000),
//!   6 layers, TP2: 2 ranks of 1.6 GB;
//! - `tp8`: the same shape, 8 layers, TP8: 8 ranks of 0.7 GB;
//! - `70b-rank`: rank 0 of Llama-2-70B at TP8 (hidden 8192, intermediate
//!   28672, vocab 32000) as a one-rank checkpoint, 68 layers: 17 GB, the size
//!   of a real 70B TP8 rank (the fixture's attention has no grouped KV heads,
//!   so its layers are a little larger than the real ones);
//! - `sparse-500g`: one 506 GB rank written as a sparse file: the header is
//!   real, the data buffer is a hole that reads as zeros, so it takes no disk
//!   space. The shape is a large mixture of experts (hidden 7168, 256 experts
//!   of intermediate 2048, a shared expert, vocab 32000, 22 layers), where
//!   the pruned expert matrices are 99% of the bytes: 5.3 GB survive (zeros,
//!   which the kernel still reads and writes).
//! - `million`: one rank of 1,000,000 small tensors (F16 `[4]`, TensorRT-LLM
//!   rule names, 8 per layer, half pruned by the default rule): an 80 MB
//!   header over 8 MB of data, for the memory bound of headers (LAYERS is
//!   the tensor count here).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use trtllm_prune::fixture::{
    write_safetensors, write_sparse_safetensors, CheckpointSpec, Family, TensorSpec,
};
use trtllm_prune::Dtype;

fn llama(hidden: u64, intermediate: u64, vocab: u64, layers: u64, tp: u64) -> CheckpointSpec {
    CheckpointSpec {
        family: Family::Llama,
        layers,
        hidden,
        intermediate,
        vocab,
        tp,
        pp: 1,
        dtype: Dtype::BF16,
    }
}

/// Writes `tensors` as the only rank of a checkpoint in `dir`, with the
/// config of `spec` saying world_size 1. `sparse` writes only the header and
/// leaves the data buffer a hole.
fn write_one_rank(
    spec: &CheckpointSpec,
    tensors: &[TensorSpec],
    dir: &Path,
    sparse: bool,
) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut config: serde_json::Value =
        serde_json::from_str(&spec.config_json()).expect("fixture config is JSON");
    config["mapping"] = serde_json::json!({"world_size": 1, "tp_size": 1, "pp_size": 1});
    fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).expect("json serializes"),
    )?;
    let path = dir.join("rank0.safetensors");
    if !sparse {
        return write_safetensors(&path, tensors, None);
    }
    write_sparse_safetensors(&path, tensors)
}

/// A large mixture of experts in TensorRT-LLM's names: stacked expert
/// matrices (`mlp.fc`, `mlp.proj`: pruned), a router and a shared expert
/// (kept, as the rule keeps `shared_expert.*`).
fn moe_tensors(spec: &CheckpointSpec, experts: u64) -> Vec<TensorSpec> {
    let (h, inter, dt) = (spec.hidden, spec.intermediate, spec.dtype);
    let mut out = vec![TensorSpec::new(
        "transformer.vocab_embedding.weight",
        dt,
        &[spec.vocab, h],
    )];
    for layer in 0..spec.layers {
        let p = format!("transformer.layers.{layer}.");
        let t = |name: &str, dtype: Dtype, shape: &[u64]| {
            TensorSpec::new(format!("{p}{name}"), dtype, shape)
        };
        out.extend([
            t("ln.weight", dt, &[h]),
            t("attention.qkv.weight", dt, &[3 * h, h]),
            t("attention.dense.weight", dt, &[h, h]),
            t("post_ln.weight", dt, &[h]),
            t("mlp.router.weight", Dtype::F32, &[experts, h]),
            t("mlp.fc.weight", dt, &[experts, 2 * inter, h]),
            t("mlp.proj.weight", dt, &[experts, h, inter]),
            t("mlp.shared_expert.fc.weight", dt, &[2 * inter, h]),
            t("mlp.shared_expert.proj.weight", dt, &[h, inter]),
        ]);
    }
    out.push(TensorSpec::new("transformer.ln_f.weight", dt, &[h]));
    out.push(TensorSpec::new("lm_head.weight", dt, &[spec.vocab, h]));
    out
}

/// `count` small tensors named like the layers of a very deep model.
fn million_tensors(count: u64) -> Vec<TensorSpec> {
    const KINDS: [&str; 8] = [
        "ln.weight",
        "attention.qkv.weight",
        "attention.dense.weight",
        "post_ln.weight",
        "mlp.fc.weight",
        "mlp.gate.weight",
        "mlp.proj.weight",
        "attention.qkv.weights_scaling_factor",
    ];
    (0..count)
        .map(|i| {
            let name = format!("l{}.{}", i / 8, KINDS[(i % 8) as usize]);
            TensorSpec::new(name, Dtype::F16, &[4])
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(preset)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bench_checkpoint DIR tp2|tp8|70b-rank|sparse-500g|million [LAYERS]");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let layers = |default: u64| {
        args.get(2)
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let result = match preset.as_str() {
        "tp2" => llama(4096, 11008, 32000, layers(6), 2).write(&dir),
        "tp8" => llama(4096, 11008, 32000, layers(8), 8).write(&dir),
        "70b-rank" => {
            let spec = llama(8192, 28672, 32000, layers(68), 8);
            write_one_rank(&spec, &spec.rank_tensors(0), &dir, false)
        }
        "million" => {
            let spec = llama(64, 128, 256, 1, 1);
            write_one_rank(&spec, &million_tensors(layers(1_000_000)), &dir, false)
        }
        "sparse-500g" => {
            let mut spec = llama(7168, 2048, 32000, layers(22), 1);
            spec.family = Family::Moe;
            write_one_rank(&spec, &moe_tensors(&spec, 256), &dir, true)
        }
        other => {
            eprintln!("bench_checkpoint: unknown preset `{other}`");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => {
            println!("wrote {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_checkpoint: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
