//! A run validated and planned, before anything is written: what
//! [`crate::prune::prepare`] returns and [`crate::prune::execute`] carries out.

use std::path::PathBuf;

use crate::plan::file::{is_emptied, FilePlan, GeneratedFile};
use crate::plan::rule::PruneRule;
use crate::read::config::ConfigFile;
use crate::read::input::InputFile;

/// What kind of checkpoint a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
pub struct Prepared {
    pub checkpoint_dir: PathBuf,
    /// The rule the plans were made with.
    pub rule: PruneRule,
    pub out_dir: PathBuf,
    pub in_place: bool,
    /// The outputs are hollow (`Options::hollow`).
    pub hollow: bool,
    /// What kind of checkpoint the input is.
    pub layout: LayoutKind,
    pub files: Vec<FilePlan>,
    pub generated: Vec<GeneratedFile>,
    /// Other files, copied as they are (none in place: they stay).
    pub extra_files: Vec<InputFile>,
    /// The input config of a TensorRT-LLM checkpoint, for verification.
    pub config: Option<ConfigFile>,
    pub warnings: Vec<String>,
    /// The block size the plans align to and the copies clone at.
    pub block: u64,
    /// The folders read from (the checkpoint folder first), which the
    /// output folder, once opened, must not be (in place: must be the first).
    pub(crate) input_folders: Vec<InputFolder>,
}

impl Prepared {
    /// Bytes the run will move: kept tensor data plus the other files.
    pub fn bytes_to_move(&self) -> u64 {
        let files: u64 = self.files.iter().map(|f| f.plan.kept_bytes()).sum();
        let extra: u64 = self.extra_files.iter().map(|f| f.stamp.len).sum();
        files + extra
    }

    pub fn tensors_pruned(&self) -> usize {
        self.files.iter().map(|f| f.plan.pruned_count()).sum()
    }

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
