//! The command line, as clap derive types, turned into plain [`Options`].

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum, ValueHint};

use trtllm_prune::{is_url, Options, Pattern, PruneRule, RankSet};

/// `--version`: the release, the commit it was built from and the target
/// (build.rs; `unknown` commit when built from a source archive without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TRTLLM_PRUNE_COMMIT"),
    " ",
    env!("TRTLLM_PRUNE_TARGET"),
    ")"
);

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
All outputs are written to temp files and renamed into place together, or not at all.

Every option with two words also takes the other spelling: --checkpoint-dir, --out-dir, \
--prune-all, --dry_run, --in_place, --no_fsync.

--json prints one document on stdout (the same data as the tables; `\"schema\": \"trtllm-prune/v1\"`); \
a failure prints {\"error\": {\"kind\", \"message\", \"exit_code\", \"file\"}} there, besides the \
message on stderr.";

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
    version = VERSION,
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
    /// http(s)://host/path, hf://ORG/NAME[@REVISION] (a Hugging Face Hub
    /// repository) (credentials from the usual environment).
    #[arg(
        long = "checkpoint_dir",
        alias = "checkpoint-dir",
        value_name = "DIR",
        value_hint = ValueHint::DirPath,
        required = true
    )]
    pub checkpoint_dir: Option<PathBuf>,

    /// Output folder [default: <checkpoint_dir>.pruned].
    #[arg(long = "out_dir", alias = "out-dir", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub out_dir: Option<PathBuf>,

    #[command(flatten)]
    pub rule: RuleArgs,

    /// Read, validate and print the plan; write nothing.
    #[arg(long = "dry-run", alias = "dry_run", conflicts_with = "verify")]
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
    #[arg(long = "in-place", alias = "in_place", conflicts_with_all = ["ranks", "no_fsync"])]
    pub in_place: bool,

    /// Copy a folder that is not a TensorRT-LLM checkpoint (Hugging Face
    /// style) even when the rule prunes none of its tensors; without it,
    /// such a run is refused with suggested --prune patterns.
    #[arg(long = "full-copy", alias = "full_copy")]
    pub full_copy: bool,
    /// Keep every tensor's shape and offsets: emptied tensors read as zeros
    /// and are stored as holes (the file has the input's size but takes
    /// about its kept bytes on disk), so loaders that check shapes accept
    /// it. Holes are lost on filesystems without sparse files and through
    /// copies that fill them.
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
    #[arg(long = "no-fsync", alias = "no_fsync")]
    pub no_fsync: bool,

    /// Ranged requests in flight at once for a remote checkpoint, across
    /// all its files.
    #[arg(long = "fetch-jobs", value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub fetch_jobs: u32,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub color: ColorArg,
}

/// Which tensors to prune.
#[derive(Debug, Args, Clone)]
pub struct RuleArgs {
    /// Remove all weights, not only the prunable ones.
    #[arg(long = "prune_all", alias = "prune-all")]
    pub prune_all: bool,

    /// Also prune tensors matching PATTERN: a name fragment, or a glob over
    /// the whole name when it has `*`, `?` or `[...]` (e.g. `*mlp.[fg]*`;
    /// `*` crosses dots). Repeatable.
    #[arg(long, value_name = "PATTERN", value_parser = non_empty_pattern, value_hint = ValueHint::Other)]
    pub prune: Vec<String>,

    /// Never prune tensors matching PATTERN (as --prune), even with
    /// --prune_all. Repeatable.
    #[arg(long, value_name = "PATTERN", value_parser = non_empty_pattern, value_hint = ValueHint::Other)]
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
        PruneRule::new(
            self.prune_all,
            self.prune.iter().map(|p| Pattern::new(p)).collect(),
            self.keep.iter().map(|p| Pattern::new(p)).collect(),
        )
    }
}

/// How results are printed.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    #[command(flatten)]
    pub json: JsonArg,

    /// Show the plan on stderr before the run: -v per file, -vv per
    /// tensor (with --dry-run, -v lists the tensors on stdout).
    #[arg(long, short = 'v', action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// No progress bars, no summary and no warnings.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `--json`, on the commands that print results.
#[derive(Debug, Args, Clone)]
pub struct JsonArg {
    /// Print one JSON document on stdout instead of the table; a failure
    /// prints {"error": {...}} there (and its message on stderr).
    #[arg(long)]
    pub json: bool,
}

/// `--color`, for every command.
#[derive(Debug, Args, Clone)]
pub struct ColorArg {
    /// Color `warning:` and `error:` on stderr: auto (on a terminal, unless
    /// NO_COLOR is set), always or never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tensors of a checkpoint folder or a .safetensors file (name,
    /// dtype, shape, bytes, offset), its metadata, and what the rule would
    /// prune. Reads headers only.
    Inspect {
        /// A checkpoint folder or a single .safetensors file, each a local
        /// path or a URL as for --checkpoint_dir.
        #[arg(value_hint = ValueHint::AnyPath)]
        path: PathBuf,
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Check an existing pruned output against its checkpoint and the rule
    /// it was pruned with: tensors the rule prunes empty, the others
    /// byte-identical (CRC32), every dtype and name kept.
    Verify {
        /// The checkpoint the output was pruned from.
        #[arg(
            long = "checkpoint_dir",
            alias = "checkpoint-dir",
            value_name = "DIR",
            value_hint = ValueHint::DirPath
        )]
        checkpoint_dir: PathBuf,
        /// The pruned output [default: <checkpoint_dir>.pruned].
        #[arg(long = "out_dir", alias = "out-dir", value_name = "DIR", value_hint = ValueHint::DirPath)]
        out_dir: Option<PathBuf>,
        /// The rule the output was pruned with (the same flags as the run).
        #[command(flatten)]
        rule: RuleArgs,
        /// The output was pruned with --hollow: emptied tensors keep shape
        /// and offsets and must read as zeros.
        #[arg(long)]
        hollow: bool,
        #[command(flatten)]
        json: JsonArg,
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
    /// A place the tool cannot read or write, as one line of a usage
    /// error (exit 2): a URL as --out_dir (outputs are local), or a URL in
    /// a build without remote support.
    pub fn unusable_place(&self) -> Option<String> {
        let (input, out_dir) = match &self.command {
            None => (self.checkpoint_dir.as_deref(), self.out_dir.as_deref()),
            Some(Command::Inspect { path, .. }) => (Some(path.as_path()), None),
            Some(Command::Verify {
                checkpoint_dir,
                out_dir,
                ..
            }) => (Some(checkpoint_dir.as_path()), out_dir.as_deref()),
            Some(_) => (None, None),
        };
        if let Some(dir) = out_dir.filter(|d| is_url(d)) {
            return Some(format!(
                "the argument '--out_dir {}' is a URL: outputs are written to a local folder only",
                dir.display()
            ));
        }
        if let Some(url) = input.filter(|d| is_url(d) && !cfg!(feature = "remote")) {
            return Some(format!(
                "'{}': {}",
                url.display(),
                trtllm_prune::NO_REMOTE_SUPPORT
            ));
        }
        None
    }

    /// A usage conflict clap cannot see from the flags alone, as the
    /// message of a usage error (exit 2): --in-place with an --out_dir that
    /// is another folder, or with a remote checkpoint.
    pub fn conflict(&self) -> Option<String> {
        if !self.in_place {
            return None;
        }
        let checkpoint_dir = self.checkpoint_dir.as_ref()?;
        if is_url(checkpoint_dir) {
            return Some(
                "the argument '--in-place' cannot be used with a remote --checkpoint_dir: \
                 it is pruned into a local --out_dir"
                    .into(),
            );
        }
        let out_dir = self.out_dir.as_ref()?;
        let same = match (
            std::fs::canonicalize(checkpoint_dir),
            std::fs::canonicalize(out_dir),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => checkpoint_dir == out_dir,
        };
        (!same).then(|| {
            "the argument '--in-place' cannot be used with '--out_dir' naming another folder: \
             --in-place writes into the checkpoint folder"
                .into()
        })
    }

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
        options.full_copy = self.full_copy;
        options.hollow = self.hollow;
        options
    }
}
