//! The command line, as clap derive types, turned into plain [`Options`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use trtllm_prune::prune::Options;
use trtllm_prune::ranks::RankSet;
use trtllm_prune::rule::{Pattern, PruneRule};

const ABOUT: &str = "Empty the large weight matrices of a TensorRT-LLM checkpoint, keeping every \
tensor name, dtype and the config.";

const LONG_ABOUT: &str = "\
Empty the large weight matrices of a TensorRT-LLM checkpoint (config.json + rank{N}.safetensors), \
keeping every tensor name, dtype and the config, so the checkpoint can be shipped, tested or built \
into a weight-stripped engine without its weights.

Prune rule (the original trtllm-prune's, exactly): a tensor is emptied when its name CONTAINS any of
  attention.qkv.weight  attention.proj.weight  mlp.fc.weight  mlp.proj.weight  mlp.gate.weight
(so `attention.qkv.weights_scaling_factor` is emptied too, `attention.dense.weight` is kept). With \
--prune_all every tensor is emptied. --prune PATTERN adds tensors, --keep PATTERN protects them \
(keep wins, even over --prune_all). An emptied tensor keeps its dtype and gets shape [0] and no \
bytes; every other tensor keeps its dtype, shape and bytes. With --hollow, an emptied tensor keeps \
its shape and offsets instead and reads as zeros, stored as a hole. config.json gets \"is_pruned\": true.

A folder without rank{N}.safetensors is pruned as a generic safetensors checkpoint (model.safetensors \
or shards with model.safetensors.index.json); Hugging Face names do not match the default rule, so \
use --prune patterns or --prune_all there.

Tensor bytes are streamed from input to output by the kernel; only headers are held in memory. \
All outputs are written to temp files and renamed into place together, or not at all.";

const EXAMPLES: &str = "\
Examples:
  Prune specific weights (attention and MLP matrices; embeddings and norms stay):
    trtllm-prune --checkpoint_dir ./llama-7b-checkpoint --out_dir ./llama-7b-pruned

  Prune all weights, creating a minimal checkpoint skeleton:
    trtllm-prune --checkpoint_dir ./llama-7b-checkpoint --out_dir ./llama-7b-skeleton --prune_all

  Create a lightweight checkpoint to test model loading logic:
    trtllm-prune --checkpoint_dir ./original --out_dir ./test-ckpt

  Default output folder is the sibling <checkpoint_dir>.pruned:
    trtllm-prune --checkpoint_dir ./original

  Look before you cut, then also empty the output projection the original misses:
    trtllm-prune --checkpoint_dir ./original --prune attention.dense.weight --dry-run -v
    trtllm-prune inspect ./original/rank0.safetensors";

/// The man page's DESCRIPTION, in roff: the rule list kept as a list.
pub const MAN_DESCRIPTION: &str = r#".SH DESCRIPTION
Empty the large weight matrices of a TensorRT\-LLM checkpoint (config.json + rank{N}.safetensors),
keeping every tensor name, dtype and the config, so the checkpoint can be shipped, tested or built
into a weight\-stripped engine without its weights.
.PP
Prune rule (the original trtllm\-prune's, exactly): a tensor is emptied when its name CONTAINS any of
.RS
.nf
attention.qkv.weight
attention.proj.weight
mlp.fc.weight
mlp.proj.weight
mlp.gate.weight
.fi
.RE
.PP
(so attention.qkv.weights_scaling_factor is emptied too, attention.dense.weight is kept).
With \-\-prune_all every tensor is emptied. \-\-prune PATTERN adds tensors, \-\-keep PATTERN
protects them (keep wins, even over \-\-prune_all). An emptied tensor keeps its dtype and gets
shape [0] and no bytes; every other tensor keeps its dtype, shape and bytes. With \-\-hollow, an
emptied tensor keeps its shape and offsets instead and reads as zeros, stored as a hole.
config.json gets "is_pruned": true.
.PP
A folder without rank{N}.safetensors is pruned as a generic safetensors checkpoint
(model.safetensors, or shards with model.safetensors.index.json).
.PP
Tensor bytes are streamed from input to output by the kernel; only headers are held in memory.
Outputs are written to temp files and committed together through a journal: at no instant is a
file missing or torn, and config.json is renamed last. A run killed during its commit is finished
by the next run into the folder.
"#;

/// The man page's EXIT STATUS section.
pub const MAN_EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
0
Success.
.TP
1
Bad input, a refused set\-up, an I/O failure or a verification mismatch: nothing changed.
.TP
2
Usage error.
.TP
3
The output is in place, but a step after the commit failed (the message says what is not
guaranteed, e.g. that the folder could not be flushed to disk).
.TP
4
The commit could be neither finished nor undone: some files are new, config.json is still old.
The next run into the folder finishes it.
.TP
129, 130, 143
Interrupted by SIGHUP, SIGINT or SIGTERM before the commit: nothing of the run is kept.
"#;

/// The man page's EXAMPLES section, kept as written.
pub const MAN_EXAMPLES: &str = r#".SH EXAMPLES
.nf
Prune specific weights (attention and MLP matrices; embeddings and norms stay):
  trtllm\-prune \-\-checkpoint_dir ./llama\-7b\-checkpoint \-\-out_dir ./llama\-7b\-pruned

Prune all weights, creating a minimal checkpoint skeleton:
  trtllm\-prune \-\-checkpoint_dir ./llama\-7b\-checkpoint \-\-out_dir ./llama\-7b\-skeleton \-\-prune_all

Default output folder is the sibling <checkpoint_dir>.pruned:
  trtllm\-prune \-\-checkpoint_dir ./original

Look before you cut, then also empty the output projection the original misses:
  trtllm\-prune \-\-checkpoint_dir ./original \-\-prune attention.dense.weight \-\-dry\-run \-v
  trtllm\-prune inspect ./original/rank0.safetensors
.fi
"#;

/// Plain text as a roff paragraph: backslashes and dashes escaped, no line
/// starting with a control character.
pub fn roff_text(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Parser)]
#[command(
    name = "trtllm-prune",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Input checkpoint folder (config.json and rank*.safetensors), local or
    /// a URL: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
    /// http(s)://host/path (credentials from the usual environment).
    #[arg(
        long = "checkpoint_dir",
        visible_alias = "checkpoint-dir",
        value_name = "DIR",
        required = true
    )]
    pub checkpoint_dir: Option<PathBuf>,

    /// Output folder [default: <checkpoint_dir>.pruned].
    #[arg(long = "out_dir", visible_alias = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    #[command(flatten)]
    pub rule: RuleArgs,

    /// Read, validate and print the plan; write nothing.
    #[arg(long = "dry-run", visible_alias = "dry_run")]
    pub dry_run: bool,

    /// Re-read every output and compare it with the input (CRC32) before
    /// committing; any mismatch keeps nothing and exits 1.
    #[arg(long)]
    pub verify: bool,

    /// Prune the checkpoint folder itself (for disks that cannot hold two
    /// copies); the originals are replaced only once every output is complete,
    /// keeping their owner, permissions, extended attributes and ACL, and
    /// only if each is still the file the run read. Not with --ranks:
    /// config.json would claim `is_pruned` over ranks left as they were.
    #[arg(long = "in-place", visible_alias = "in_place", conflicts_with_all = ["ranks", "no_fsync"])]
    pub in_place: bool,

    /// Keep every tensor's shape and offsets: emptied tensors read as zeros
    /// and are stored as holes (the file has the input's size but takes
    /// about its kept bytes on disk), so loaders that check shapes accept
    /// it. Holes are lost on filesystems without sparse files and through
    /// copies that fill them (docs/GUIDE.md).
    #[arg(long)]
    pub hollow: bool,

    /// Only these ranks, e.g. `0-3,6` (to spread one checkpoint over machines).
    #[arg(long, value_name = "LIST", value_parser = RankSet::parse)]
    pub ranks: Option<RankSet>,

    /// Files copied at once [default: number of cores, at most the number of files].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,

    /// Do not flush outputs to disk before the commit: faster, and still
    /// safe against a kill, but a power cut during or soon after the run can
    /// leave an output folder that the next run has to repair or redo.
    #[arg(long = "no-fsync", visible_alias = "no_fsync")]
    pub no_fsync: bool,

    /// Ranged requests in flight per file of a remote checkpoint.
    #[arg(long = "fetch-jobs", value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub fetch_jobs: u32,

    /// Flush outputs to disk before the commit (the default; kept for
    /// scripts that pass it).
    #[arg(long, hide = true, conflicts_with = "no_fsync")]
    pub fsync: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Which tensors to prune.
#[derive(Debug, Args, Clone)]
pub struct RuleArgs {
    /// Remove all weights, not only the prunable ones.
    #[arg(long = "prune_all", visible_alias = "prune-all")]
    pub prune_all: bool,

    /// Also prune tensors matching PATTERN (substring; a glob over the whole
    /// name when it has `*` or `?`). Repeatable.
    #[arg(long, value_name = "PATTERN", value_parser = non_empty_pattern)]
    pub prune: Vec<String>,

    /// Never prune tensors matching PATTERN, even with --prune_all. Repeatable.
    #[arg(long, value_name = "PATTERN", value_parser = non_empty_pattern)]
    pub keep: Vec<String>,
}

/// An empty pattern is a substring of every name: `--prune ""` would empty
/// every tensor, `--keep ""` keep them all. Only a mistake looks like that.
fn non_empty_pattern(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("an empty pattern matches every tensor name; give a name fragment or a glob such as '*'".into())
    } else {
        Ok(text.to_string())
    }
}

impl RuleArgs {
    pub fn rule(&self) -> PruneRule {
        PruneRule {
            prune_all: self.prune_all,
            prune: self.prune.iter().map(|p| Pattern::new(p)).collect(),
            keep: self.keep.iter().map(|p| Pattern::new(p)).collect(),
        }
    }
}

/// How results are printed.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Print one JSON document on stdout (schema: docs/GUIDE.md).
    #[arg(long, global = true)]
    pub json: bool,

    /// With --dry-run: one line per tensor.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// No progress bars, no summary and no warnings.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tensors of a checkpoint folder or a .safetensors file (name,
    /// dtype, shape, bytes, offset), its metadata, and what the rule would
    /// prune. Reads headers only.
    Inspect {
        /// A checkpoint folder (local, or a URL as for --checkpoint_dir) or a
        /// single local .safetensors file.
        path: PathBuf,
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Check an existing pruned output against its checkpoint and the rule
    /// it was pruned with: tensors the rule prunes empty, the others
    /// byte-identical (CRC32), every dtype and name kept.
    Verify {
        /// The checkpoint the output was pruned from.
        #[arg(
            long = "checkpoint_dir",
            visible_alias = "checkpoint-dir",
            value_name = "DIR"
        )]
        checkpoint_dir: PathBuf,
        /// The pruned output [default: <checkpoint_dir>.pruned].
        #[arg(long = "out_dir", visible_alias = "out-dir", value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// The rule the output was pruned with (the same flags as the run).
        #[command(flatten)]
        rule: RuleArgs,
        /// The output was pruned with --hollow: emptied tensors keep shape
        /// and offsets and must read as zeros.
        #[arg(long)]
        hollow: bool,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Cli {
    /// The options of a prune run (the top-level form).
    pub fn options(&self, checkpoint_dir: PathBuf) -> Options {
        let mut options = Options::new(checkpoint_dir);
        options.out_dir = self.out_dir.clone();
        options.rule = self.rule.rule();
        options.jobs = self.jobs.unwrap_or(0) as usize;
        options.fsync = !self.no_fsync;
        options.fetch_jobs = self.fetch_jobs as usize;
        options.in_place = self.in_place;
        options.ranks = self.ranks.clone();
        options.verify = self.verify;
        options.hollow = self.hollow;
        options
    }
}
