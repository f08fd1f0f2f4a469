//! Builders for safetensors files and TensorRT-LLM-like checkpoints, used by
//! the tests, the benchmarks, the fuzz seeds and the shipped sample.
//!
//! Names and shapes follow TensorRT-LLM's checkpoint layout (per rank, with
//! tensor and pipeline parallelism: layer numbers restart at 0 in every
//! pipeline stage, the embedding lives on the first stage, `ln_f` and
//! `lm_head` on the last). Tensor bytes are deterministic pseudo-random data
//! derived from the tensor name, so any byte moved to the wrong place shows.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::json;

use crate::plan::header_json::HeaderJson;
use crate::read::header::{Dtype, Header};

// What the tests, benchmarks and fuzz targets reach below the public API
// (this module exists only with the `fixture` feature).
pub use crate::commit::stage::Staging;
pub use crate::copy::ranges::clone_block_size;
pub use crate::plan::{plan_hollow, SHARE_ALIGNMENT};
pub use crate::read::header::{
    header_len_from_prefix, parse_file, parse_file_without_fast_scan, tensor_byte_len,
    MAX_HEADER_SIZE, METADATA_KEY, N_LEN,
};
pub use crate::read::input::read_header;
#[cfg(feature = "remote")]
pub use crate::read::remote::{FetchOptions, ObjectInfo, RemoteFolder, MAX_SMALL_OBJECT};

/// One tensor to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its dimensions.
    pub shape: Vec<u64>,
}

impl TensorSpec {
    /// A tensor `name` of `dtype` and `shape`.
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: &[u64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    /// Byte size; panics on a shape that is not a whole number of bytes
    /// (fixtures are written by us, not read from users).
    pub fn byte_len(&self) -> u64 {
        tensor_byte_len(self.dtype, &self.shape).expect("fixture shape is valid")
    }
}

/// The header JSON (unpadded) for tensors laid out in the given order.
pub fn header_json(tensors: &[TensorSpec], metadata: Option<&[(&str, &str)]>) -> String {
    let listing: Vec<usize> = (0..tensors.len()).collect();
    header_json_listed(tensors, &listing, metadata)
}

/// The header JSON (unpadded) listing `tensors` in `listing` order (indices
/// into `tensors`), with data offsets for the tensors laid out in their own
/// order: the listing order and the data order of a header are independent.
pub fn header_json_listed(
    tensors: &[TensorSpec],
    listing: &[usize],
    metadata: Option<&[(&str, &str)]>,
) -> String {
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    for t in tensors {
        offsets.push((offset, offset + t.byte_len()));
        offset += t.byte_len();
    }
    let mut json = HeaderJson::with_capacity(64 * tensors.len());
    if let Some(meta) = metadata {
        let meta: serde_json::Map<String, serde_json::Value> = meta
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json.metadata_raw(&serde_json::Value::Object(meta).to_string());
    }
    for &i in listing {
        let t = &tensors[i];
        json.tensor(&t.name, t.dtype, &t.shape, offsets[i].0, offsets[i].1);
    }
    String::from_utf8(json.finish()).expect("header JSON is UTF-8")
}

/// The header JSON padded with spaces to a multiple of 8 bytes, as the
/// official writer pads it.
pub fn padded_header_json(tensors: &[TensorSpec], metadata: Option<&[(&str, &str)]>) -> Vec<u8> {
    let mut json = header_json(tensors, metadata).into_bytes();
    let padded = json.len().next_multiple_of(8);
    json.resize(padded, b' ');
    json
}

/// Writes a safetensors file whose data buffer is a hole: only the header
/// takes disk space, so a file of hundreds of GB costs nothing to make.
pub fn write_sparse_safetensors(path: &Path, tensors: &[TensorSpec]) -> io::Result<()> {
    let json = padded_header_json(tensors, None);
    let data: u64 = tensors.iter().map(TensorSpec::byte_len).sum();
    let mut file = File::create(path)?;
    file.write_all(&(json.len() as u64).to_le_bytes())?;
    file.write_all(&json)?;
    file.set_len(8 + json.len() as u64 + data)?;
    file.sync_all()
}

/// Deterministic bytes of `tensor` starting at byte `from`.
pub fn fill(tensor: &TensorSpec, from: u64, out: &mut [u8]) {
    let seed = tensor.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    for (i, byte) in out.iter_mut().enumerate() {
        let x = (from + i as u64)
            .wrapping_add(seed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        *byte = (x >> 56) as u8;
    }
}

/// Writes a safetensors file: header padded with spaces to a multiple of 8,
/// tensors in the given order, streamed in chunks (fit for GB-sized files).
pub fn write_safetensors(
    path: &Path,
    tensors: &[TensorSpec],
    metadata: Option<&[(&str, &str)]>,
) -> io::Result<()> {
    let json = padded_header_json(tensors, metadata);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(&json)?;
    let mut chunk = vec![0u8; 1 << 20];
    for t in tensors {
        let len = t.byte_len();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            fill(t, done, &mut chunk[..n]);
            out.write_all(&chunk[..n])?;
            done += n as u64;
        }
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Model families with their characteristic tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// LlamaForCausalLM: gated MLP, no biases.
    Llama,
    /// GPTForCausalLM: biases, learned positions, no `mapping` in config.
    Gpt,
    /// MixtralForCausalLM: router and expert-stacked MLP weights.
    Moe,
    /// Llama quantized to FP8, with per-tensor scales.
    Fp8,
    /// Llama with INT4 AWQ packed weights and scales.
    Awq,
}

impl Family {
    /// Every family, in the order of the enum.
    pub const ALL: [Family; 5] = [
        Family::Llama,
        Family::Gpt,
        Family::Moe,
        Family::Fp8,
        Family::Awq,
    ];
}

/// Shape of a generated checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointSpec {
    /// The model family: which tensor names.
    pub family: Family,
    /// Transformer layers, in all pipeline stages.
    pub layers: u64,
    /// Hidden size.
    pub hidden: u64,
    /// MLP intermediate size.
    pub intermediate: u64,
    /// Vocabulary size.
    pub vocab: u64,
    /// Tensor parallelism.
    pub tp: u64,
    /// Pipeline parallelism.
    pub pp: u64,
    /// Element type of the weights.
    pub dtype: Dtype,
}

impl CheckpointSpec {
    /// A tiny checkpoint of `family`: fast to write, every name present.
    pub fn tiny(family: Family, tp: u64, pp: u64) -> CheckpointSpec {
        CheckpointSpec {
            family,
            layers: 2 * pp,
            hidden: 32,
            intermediate: 64,
            vocab: 128,
            tp,
            pp,
            dtype: Dtype::BF16,
        }
    }

    /// Ranks: `tp * pp`.
    pub fn world_size(&self) -> u64 {
        self.tp * self.pp
    }

    fn architecture(&self) -> &'static str {
        match self.family {
            Family::Llama | Family::Fp8 | Family::Awq => "LlamaForCausalLM",
            Family::Gpt => "GPTForCausalLM",
            Family::Moe => "MixtralForCausalLM",
        }
    }

    /// The config.json text, shaped like TensorRT-LLM's (indented, with
    /// floats and nested objects that must survive unchanged).
    pub fn config_json(&self) -> String {
        let quant_algo = match self.family {
            Family::Fp8 => json!("FP8"),
            Family::Awq => json!("W4A16_AWQ"),
            _ => serde_json::Value::Null,
        };
        let mut config = json!({
            "architecture": self.architecture(),
            "dtype": dtype_word(self.dtype),
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": 4,
            "intermediate_size": self.intermediate,
            "norm_epsilon": 1e-05,
            "rotary_base": 500000.0,
            "max_position_embeddings": 256,
            "quantization": {"quant_algo": quant_algo, "kv_cache_quant_algo": null, "group_size": 128},
        });
        if self.family != Family::Gpt {
            config["mapping"] = json!({
                "world_size": self.world_size(),
                "tp_size": self.tp,
                "pp_size": self.pp,
            });
        }
        if self.family == Family::Moe {
            config["moe"] = json!({"num_experts": 4, "top_k": 2});
        }
        serde_json::to_string_pretty(&config).expect("json serializes")
    }

    /// The tensors of `rank`, in TensorRT-LLM's naming.
    pub fn rank_tensors(&self, rank: u64) -> Vec<TensorSpec> {
        let (h, tp, dt) = (self.hidden, self.tp, self.dtype);
        let stage = rank / tp;
        let per_stage = self.layers / self.pp;
        let mut out = Vec::new();
        let mut add = |name: String, dtype: Dtype, shape: &[u64]| {
            out.push(TensorSpec::new(name, dtype, shape));
        };
        if stage == 0 {
            add(
                "transformer.vocab_embedding.weight".into(),
                dt,
                &[self.vocab, h],
            );
            if self.family == Family::Gpt {
                add(
                    "transformer.position_embedding.weight".into(),
                    dt,
                    &[256, h],
                );
            }
        }
        for layer in 0..per_stage {
            let p = format!("transformer.layers.{layer}.");
            add(format!("{p}input_layernorm.weight"), dt, &[h]);
            if self.family == Family::Gpt {
                add(format!("{p}input_layernorm.bias"), dt, &[h]);
            }
            self.attention_tensors(&p, &mut add);
            if self.family == Family::Gpt {
                add(format!("{p}attention.qkv.bias"), dt, &[3 * h / tp]);
                add(format!("{p}attention.dense.bias"), dt, &[h]);
            }
            add(format!("{p}post_layernorm.weight"), dt, &[h]);
            if self.family == Family::Gpt {
                add(format!("{p}post_layernorm.bias"), dt, &[h]);
            }
            self.mlp_tensors(&p, &mut add);
        }
        if stage == self.pp - 1 {
            add("transformer.ln_f.weight".into(), dt, &[h]);
            if self.family == Family::Gpt {
                add("transformer.ln_f.bias".into(), dt, &[h]);
            }
            add("lm_head.weight".into(), dt, &[self.vocab / tp, h]);
        }
        out
    }

    /// The attention weights (and scales) of the layer whose names start
    /// with `p`.
    fn attention_tensors(&self, p: &str, add: &mut impl FnMut(String, Dtype, &[u64])) {
        let (h, tp, dt) = (self.hidden, self.tp, self.dtype);
        match self.family {
            Family::Fp8 => {
                for linear in ["attention.qkv", "attention.dense"] {
                    let shape = if linear == "attention.qkv" {
                        [3 * h / tp, h]
                    } else {
                        [h, h / tp]
                    };
                    fp8_linear(&format!("{p}{linear}"), &shape, add);
                }
                add(
                    format!("{p}attention.kv_cache_scaling_factor"),
                    Dtype::F32,
                    &[1],
                );
            }
            Family::Awq => {
                add(
                    format!("{p}attention.qkv.weight"),
                    Dtype::I8,
                    &[h, 3 * h / tp / 2],
                );
                add(
                    format!("{p}attention.qkv.weights_scaling_factor"),
                    Dtype::F16,
                    &[h / 16, 3 * h / tp],
                );
                add(
                    format!("{p}attention.qkv.prequant_scaling_factor"),
                    Dtype::F16,
                    &[h],
                );
                add(
                    format!("{p}attention.dense.weight"),
                    Dtype::I8,
                    &[h / tp, h / 2],
                );
                add(
                    format!("{p}attention.dense.weights_scaling_factor"),
                    Dtype::F16,
                    &[h / tp / 16, h],
                );
            }
            _ => {
                add(format!("{p}attention.qkv.weight"), dt, &[3 * h / tp, h]);
                add(format!("{p}attention.dense.weight"), dt, &[h, h / tp]);
            }
        }
    }

    /// The MLP weights (and scales, and experts) of the layer whose names
    /// start with `p`.
    fn mlp_tensors(&self, p: &str, add: &mut impl FnMut(String, Dtype, &[u64])) {
        let (h, tp, dt) = (self.hidden, self.tp, self.dtype);
        let inter = self.intermediate / tp;
        match self.family {
            Family::Llama => {
                add(format!("{p}mlp.fc.weight"), dt, &[inter, h]);
                add(format!("{p}mlp.gate.weight"), dt, &[inter, h]);
                add(format!("{p}mlp.proj.weight"), dt, &[h, inter]);
            }
            Family::Gpt => {
                add(format!("{p}mlp.fc.weight"), dt, &[inter, h]);
                add(format!("{p}mlp.fc.bias"), dt, &[inter]);
                add(format!("{p}mlp.proj.weight"), dt, &[h, inter]);
                add(format!("{p}mlp.proj.bias"), dt, &[h]);
            }
            Family::Moe => {
                add(format!("{p}mlp.router.weight"), Dtype::F32, &[4, h]);
                add(format!("{p}mlp.fc.weight"), dt, &[4, 2 * inter, h]);
                add(format!("{p}mlp.proj.weight"), dt, &[4, h, inter]);
                add(format!("{p}mlp.shared_expert.fc.weight"), dt, &[inter, h]);
                add(format!("{p}mlp.shared_expert_gate.weight"), dt, &[1, h]);
            }
            Family::Fp8 => {
                for (linear, shape) in [
                    ("mlp.fc", [inter, h]),
                    ("mlp.gate", [inter, h]),
                    ("mlp.proj", [h, inter]),
                ] {
                    fp8_linear(&format!("{p}{linear}"), &shape, add);
                }
            }
            Family::Awq => {
                for (linear, shape, scale) in [
                    ("mlp.fc", [h, inter / 2], [h / 16, inter]),
                    ("mlp.gate", [h, inter / 2], [h / 16, inter]),
                    ("mlp.proj", [inter, h / 2], [inter / 16, h]),
                ] {
                    add(format!("{p}{linear}.weight"), Dtype::I8, &shape);
                    add(
                        format!("{p}{linear}.weights_scaling_factor"),
                        Dtype::F16,
                        &scale,
                    );
                    add(
                        format!("{p}{linear}.prequant_scaling_factor"),
                        Dtype::F16,
                        &[shape[0]],
                    );
                }
            }
        }
    }

    /// Writes config.json and every rank file into `dir` (created).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        fs::write(dir.join("config.json"), self.config_json())?;
        for rank in 0..self.world_size() {
            let path = dir.join(format!("rank{rank}.safetensors"));
            write_safetensors(&path, &self.rank_tensors(rank), None)?;
        }
        Ok(())
    }
}

fn dtype_word(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F16 => "float16",
        Dtype::F32 => "float32",
        _ => "bfloat16",
    }
}

/// One tensor of every dtype, plus scalars and zero-size tensors, with
/// names that hit and miss the default rule.
pub fn every_dtype_tensors() -> Vec<TensorSpec> {
    let mut out = Vec::new();
    for (i, dtype) in Dtype::ALL.iter().enumerate() {
        // 4 x 12 elements: whole bytes for F4 (even) and F6 (multiple of 4).
        let name = if i % 2 == 0 {
            format!("transformer.layers.{i}.mlp.fc.weight")
        } else {
            format!("transformer.layers.{i}.attention.dense.weight")
        };
        out.push(TensorSpec::new(name, *dtype, &[4, 12]));
        out.push(
            TensorSpec::new(format!("scalars.{i}.{}", dtype.name()), *dtype, &[])
                .with_whole_bytes(),
        );
        out.push(TensorSpec::new(
            format!("empty.{i}.attention.qkv.weight"),
            *dtype,
            &[0, 7],
        ));
        out.push(TensorSpec::new(format!("empty.{i}.kept"), *dtype, &[3, 0]));
    }
    out
}

impl TensorSpec {
    /// Sub-byte dtypes cannot hold a scalar; give them the smallest
    /// whole-byte vector instead.
    fn with_whole_bytes(mut self) -> TensorSpec {
        if tensor_byte_len(self.dtype, &self.shape).is_err() {
            self.shape = match self.dtype.bits() {
                4 => vec![2],
                _ => vec![4],
            };
        }
        self
    }
}

/// Issue 9's planning bomb, in memory: `count` kept 4 KiB tensors separated
/// by pruned ones of `gaps` bytes, alternately (so each kept one lands off
/// its block), then `count` small kept tensors of multiples of 8 bytes, each
/// after a pruned one of 8, as filler candidates.
pub fn filler_bomb(count: u64, gaps: (u64, u64)) -> Header {
    let mut tensors: Vec<(String, u64)> = Vec::new();
    for i in 0..count {
        tensors.push((format!("k{i}"), 4096));
        let gap = if i % 2 == 0 { gaps.0 } else { gaps.1 };
        tensors.push((format!("p{i}.mlp.fc.weight"), gap));
    }
    for i in 0..count {
        tensors.push((format!("s{i}"), 8 * (1 + i % 509)));
        tensors.push((format!("q{i}.mlp.fc.weight"), 8));
    }
    let specs: Vec<(&str, Dtype, [u64; 1])> = tensors
        .iter()
        .map(|(name, len)| (name.as_str(), Dtype::U8, [*len]))
        .collect();
    unchecked_header(4096, None, &specs)
}

/// A header of `tensors` (name, dtype, shape) laid out back to back in
/// listing order, built without the parser's checks and whatever
/// `header_len` says: for tests of the planner on headers no file of a
/// test's size could carry (a header at the format's size limit). Panics
/// on a shape that is not a whole number of bytes.
pub fn unchecked_header<S: AsRef<[u64]>>(
    header_len: u64,
    metadata: Option<String>,
    tensors: &[(&str, Dtype, S)],
) -> Header {
    let mut at = 0u64;
    let entries: Vec<(&str, Dtype, &[u64], u64, u64)> = tensors
        .iter()
        .map(|(name, dtype, shape)| {
            let len = tensor_byte_len(*dtype, shape.as_ref()).expect("fixture shape is valid");
            at += len;
            (*name, *dtype, shape.as_ref(), at - len, at)
        })
        .collect();
    Header::unchecked(header_len, metadata, entries, at)
}

/// An FP8 linear layer `name`: its weight of `shape` and the two scaling
/// factors TensorRT-LLM's FP8 checkpoints hold beside it.
fn fp8_linear(name: &str, shape: &[u64], add: &mut impl FnMut(String, Dtype, &[u64])) {
    add(format!("{name}.weight"), Dtype::F8_E4M3, shape);
    add(format!("{name}.weights_scaling_factor"), Dtype::F32, &[]);
    add(format!("{name}.activation_scaling_factor"), Dtype::F32, &[]);
}
