//! The command line, as clap derive types, turned into plain [`Options`].

use std::path::PathBuf;

use clap::Parser;

use trtllm_prune::prune::Options;
use trtllm_prune::rule::PruneRule;

const ABOUT: &str = "Empty the large weight matrices of a TensorRT-LLM checkpoint, keeping every \
tensor name, dtype and the config.";

const LONG_ABOUT: &str = "\
Empty the large weight matrices of a TensorRT-LLM checkpoint (config.json + rank{N}.safetensors), \
keeping every tensor name, dtype and the config, so the checkpoint can be shipped, tested or built \
into a weight-stripped engine without its weights.

Prune rule (the original trtllm-prune's, exactly): a tensor is emptied when its name CONTAINS any of
  attention.qkv.weight  attention.proj.weight  mlp.fc.weight  mlp.proj.weight  mlp.gate.weight
(so `attention.qkv.weights_scaling_factor` is emptied too, `attention.dense.weight` is kept). With \
--prune_all every tensor is emptied. An emptied tensor keeps its dtype and gets shape [0] and no \
bytes; every other tensor keeps its dtype, shape and bytes. config.json gets \"is_pruned\": true.

Tensor bytes are streamed from input to output by the kernel; only headers are held in memory. \
All outputs are written to temp files and renamed into place together, or not at all.";

const EXAMPLES: &str = "\
Examples:
  Prune specific weights (attention and MLP matrices; embeddings and norms stay):
    trtllm-prune --checkpoint_dir ./llama-7b-checkpoint --out_dir ./llama-7b-pruned

  Prune all weights, creating a minimal checkpoint skeleton:
    trtllm-prune --checkpoint_dir ./llama-7b-checkpoint --out_dir ./llama-7b-skeleton --prune_all

  Default output folder is the sibling <checkpoint_dir>.pruned:
    trtllm-prune --checkpoint_dir ./original";

#[derive(Debug, Parser)]
#[command(
    name = "trtllm-prune",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
)]
pub struct Cli {
    /// Input TensorRT-LLM checkpoint folder (config.json and rank*.safetensors).
    #[arg(
        long = "checkpoint_dir",
        visible_alias = "checkpoint-dir",
        value_name = "DIR"
    )]
    pub checkpoint_dir: PathBuf,

    /// Output folder [default: <checkpoint_dir>.pruned].
    #[arg(long = "out_dir", visible_alias = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Remove all weights, not only the prunable ones.
    #[arg(long = "prune_all", visible_alias = "prune-all")]
    pub prune_all: bool,

    /// Files copied at once [default: number of cores, at most the number of files].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Flush every output to disk before it is renamed into place.
    #[arg(long)]
    pub fsync: bool,

    /// No progress bars and no summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl Cli {
    pub fn options(&self) -> Options {
        let mut options = Options::new(&self.checkpoint_dir);
        options.out_dir = self.out_dir.clone();
        options.rule = PruneRule::original(self.prune_all);
        options.jobs = self.jobs.unwrap_or(0);
        options.fsync = self.fsync;
        options
    }
}
