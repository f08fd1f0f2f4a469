//! One file's plan: a safetensors file validated and planned
//! ([`FilePlan`], from [`plan_file`] or [`plan_hollow_file`]), and a small
//! file generated from text ([`GeneratedFile`]).

use std::path::Path;

use crate::base::error::{Error, Result};
use crate::base::file::{FileStamp, Ownership};
use crate::plan::rule::PruneRule;
use crate::plan::{plan_hollow, plan_prune, PrunePlan};
use crate::read::header::{parse_header, Header, TensorEntry, N_LEN};
use crate::read::input::InputFile;

/// One safetensors file, validated and planned.
#[derive(Debug)]
#[non_exhaustive]
pub struct FilePlan {
    /// File name in the checkpoint and in the output folder.
    pub name: String,
    pub(crate) input: InputFile,
    /// Its header, validated.
    pub header: Header,
    /// What the output holds and which bytes are copied.
    pub plan: PrunePlan,
}

/// A small output file produced from text (config.json, a shard index).
#[derive(Debug, Clone)]
pub(crate) struct GeneratedFile {
    pub name: String,
    pub text: String,
    /// The input file it is made from (owner, group, mode), if any.
    pub source: Option<Ownership>,
    /// That input as it was read: in place, it is replaced only if it is
    /// still exactly that file.
    pub read: Option<FileStamp>,
}

/// Whether a tensor is as a pruned output holds it: shape `[0]`, no bytes.
pub fn is_emptied(entry: TensorEntry) -> bool {
    entry.shape() == [0] && entry.byte_len() == 0
}

/// [`plan_prune`], its error naming the file.
pub(crate) fn plan_file(
    header: &Header,
    rule: &PruneRule,
    align: u64,
    path: &Path,
) -> Result<PrunePlan> {
    plan_prune(header, rule, align).map_err(|source| Error::Plan {
        file: path.to_path_buf(),
        source,
    })
}

/// [`plan_hollow`] for the file `input` with `header`: its header bytes are
/// read again (for a remote input, one ranged read) and must parse to
/// `header`, or the file changed since it was validated.
pub(crate) fn plan_hollow_file(
    header: &Header,
    input: &InputFile,
    rule: &PruneRule,
) -> Result<PrunePlan> {
    let mut bytes = vec![0u8; header.data_start() as usize];
    let mut done = 0;
    while done < bytes.len() {
        match input.read_at(&mut bytes[done..], done as u64)? {
            0 => {
                return Err(Error::InputChanged {
                    file: input.path.clone(),
                    offset: done as u64,
                })
            }
            n => done += n,
        }
    }
    let json = &bytes[N_LEN as usize..];
    let same = parse_header(json, input.len()).is_ok_and(|h| h == *header);
    if !same {
        return Err(Error::header_changed(&input.path));
    }
    plan_hollow(header, bytes, rule).map_err(|source| Error::Plan {
        file: input.path.clone(),
        source,
    })
}
