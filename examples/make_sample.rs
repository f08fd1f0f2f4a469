//! Writes the sample checkpoint shipped in `sample/`: a tiny Llama at TP2
//! with TensorRT-LLM's names and config, and a MIXED_PRECISION-style
//! `quant_cfg.json` beside it (a file the original tool would drop).
//!
//! Run: `cargo run --example make_sample -- sample/tinyllama-tp2`

use std::path::PathBuf;

use trtllm_prune::fixture::{CheckpointSpec, Family};

fn main() -> std::io::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("sample/tinyllama-tp2"));
    let mut spec = CheckpointSpec::tiny(Family::Llama, 2, 1);
    spec.hidden = 64;
    spec.intermediate = 176;
    spec.vocab = 256;
    spec.write(&dir)?;
    std::fs::write(
        dir.join("quant_cfg.json"),
        "{\"quant_algo\": null, \"kv_cache_quant_algo\": null, \"quantized_layers\": {}}\n",
    )?;
    println!("wrote {}", dir.display());
    Ok(())
}
