//! A run validated and planned, before anything is written: what
//! [`crate::prepare`] returns and [`crate::execute`] carries out.

use std::path::{Path, PathBuf};

use crate::plan::file::{is_emptied, FilePlan, GeneratedFile};
use crate::plan::rule::PruneRule;
use crate::read::config::ConfigFile;
use crate::read::input::InputFile;

/// What kind of checkpoint a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutKind {
    /// `config.json` and `rank{N}.safetensors`.
    TrtLlm,
    /// Any other folder of `.safetensors` files (Hugging Face style).
    Safetensors,
}

impl LayoutKind {
    /// The name in JSON documents (`"layout"`).
    pub fn name(self) -> &'static str {
        match self {
            LayoutKind::TrtLlm => "trtllm",
            LayoutKind::Safetensors => "safetensors",
        }
    }
}

/// A run that has been validated and planned, before anything is written.
#[derive(Debug)]
#[non_exhaustive]
pub struct Prepared {
    /// The checkpoint folder, absolute (for a remote checkpoint: its URL).
    pub checkpoint_dir: PathBuf,
    /// The rule the plans were made with.
    pub rule: PruneRule,
    /// The output folder, absolute.
    pub out_dir: PathBuf,
    /// The output folder is the checkpoint folder (`Options::in_place`).
    pub in_place: bool,
    /// The outputs are hollow (`Options::hollow`).
    pub hollow: bool,
    /// What kind of checkpoint the input is.
    pub layout: LayoutKind,
    /// The safetensors files, each planned.
    pub files: Vec<FilePlan>,
    /// The small files made from text (`config.json`, a shard index).
    pub(crate) generated: Vec<GeneratedFile>,
    /// Other files, copied as they are (none in place: they stay).
    pub(crate) extra_files: Vec<InputFile>,
    /// The input config of a TensorRT-LLM checkpoint, for verification.
    pub(crate) config: Option<ConfigFile>,
    /// What the user should hear before the run, one line each.
    pub warnings: Vec<String>,
    /// The block size the plans align to and the copies clone at.
    pub(crate) block: u64,
    /// The folders read from (the checkpoint folder first), which the
    /// output folder, once opened, must not be (in place: must be the first).
    pub(crate) input_folders: Vec<InputFolder>,
}

impl Prepared {
    /// Bytes the run will move: kept tensor data plus the other files.
    pub fn bytes_to_move(&self) -> u64 {
        let files: u64 = self.files.iter().map(|f| f.plan.kept_bytes()).sum();
        let extra: u64 = self.extra_files.iter().map(|f| f.len()).sum();
        files + extra
    }

    /// Tensors the run prunes, in every file.
    pub fn tensors_pruned(&self) -> usize {
        self.files.iter().map(|f| f.plan.pruned_count()).sum()
    }

    /// Tensors the run keeps, in every file.
    pub fn tensors_kept(&self) -> usize {
        self.files.iter().map(|f| f.plan.kept_count()).sum()
    }

    /// Total size of the input safetensors files.
    pub fn bytes_in(&self) -> u64 {
        self.files.iter().map(|f| f.plan.input_len).sum()
    }

    /// Total size of the output safetensors files.
    pub fn bytes_out(&self) -> u64 {
        self.files.iter().map(|f| f.plan.output_len).sum()
    }

    /// Whether an in-place run has nothing to do: `config.json` says
    /// `is_pruned` and every tensor the rule prunes is already empty in
    /// every rank (a second `--in-place` run with the same rule).
    pub fn already_pruned(&self) -> bool {
        self.in_place
            && !self.hollow
            && self.config.as_ref().is_some_and(|c| c.is_pruned())
            && self.files.iter().all(|f| {
                f.plan
                    .tensors_of(&f.header)
                    .all(|(entry, t)| !t.pruned || is_emptied(entry))
            })
    }

    /// The names of the small files the run writes from text
    /// (`config.json`, a shard index), in the order they are committed.
    pub fn generated_names(&self) -> impl Iterator<Item = &str> {
        self.generated.iter().map(|g| g.name.as_str())
    }

    /// The other files the run copies as they are: each one's path and,
    /// for a symlink, where it leads (its target's bytes are copied).
    pub fn copied_files(&self) -> impl Iterator<Item = (&Path, Option<&Path>)> {
        self.extra_files
            .iter()
            .map(|f| (f.path.as_path(), f.link_target()))
    }

    /// The `world_size` of a TensorRT-LLM checkpoint's `config.json`.
    pub fn world_size(&self) -> Option<u64> {
        self.config.as_ref().map(|c| c.world_size)
    }

    /// Bytes the output safetensors files store (headers and kept data):
    /// for hollow outputs, about what they take on disk.
    pub fn bytes_stored(&self) -> u64 {
        self.files.iter().map(|f| f.plan.stored_bytes()).sum()
    }
}

/// A folder an input file is in.
#[derive(Debug, Clone)]
pub(crate) struct InputFolder {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}
