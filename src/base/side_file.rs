//! Names of the files a run keeps beside its outputs while it works: temp
//! files (`.tmp`), links to the files a commit replaces (`.old`) and the
//! run's journal (`.journal`). Every name carries the run's id, 128 random
//! bits, so no one can create one ahead of a run; the id also ties a dead
//! run's leftovers together for [`crate::commit::recover`].
//!
//! ```text
//! .rank0.safetensors.trtllm-prune-<id>.tmp
//! .rank0.safetensors.trtllm-prune-<id>.old
//! .rank0.safetensors.trtllm-prune-<id>.undo
//! .trtllm-prune-<id>.journal
//! ```

use std::ffi::{OsStr, OsString};

const MARK: &str = ".trtllm-prune-";

/// Longest output name used whole in a side name: the side name adds up to
/// 52 bytes and a file name may have 255 (`NAME_MAX`).
const MAX_NAME_IN_SIDE: usize = 200;

/// What a side file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Temp,
    Backup,
    Journal,
    /// A second link to a backup, made while a failed commit is undone so
    /// the backup itself survives the undo.
    Undo,
}

/// The side name of kind `kind` (temp or backup) for output file number
/// `index`, named `name`, of run `id`. A longer name is cut and made unique
/// by the index, as is a name that is not UTF-8 (two such names can share a
/// lossy spelling).
pub(crate) fn side_name(name: &OsStr, index: usize, id: &str, kind: Kind) -> OsString {
    let suffix = match kind {
        Kind::Backup => "old",
        Kind::Undo => "undo",
        _ => "tmp",
    };
    if let Some(name) = name.to_str().filter(|n| n.len() <= MAX_NAME_IN_SIDE) {
        return format!(".{name}{MARK}{id}.{suffix}").into();
    }
    let name = name.to_string_lossy();
    let mut cut = name.len().min(MAX_NAME_IN_SIDE - 10);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}~{index}{MARK}{id}.{suffix}", &name[..cut]).into()
}

/// The journal's name for run `id`.
pub(crate) fn journal_name(id: &str) -> OsString {
    format!("{MARK}{id}.journal").into()
}

/// The run id and kind of a side file name, or `None` for any other name.
pub(crate) fn parse(name: &OsStr) -> Option<(String, Kind)> {
    // Side names are UTF-8 even for outputs whose names are not (see
    // `side_name`).
    let name = name.to_str()?;
    if !name.starts_with('.') {
        return None;
    }
    let at = name.rfind(MARK)?;
    let tail = &name[at + MARK.len()..];
    if let Some(id) = tail.strip_suffix(".journal") {
        return (at == 0 && is_id(id)).then(|| (id.to_string(), Kind::Journal));
    }
    if let Some(id) = tail.strip_suffix(".tmp") {
        return is_id(id).then(|| (id.to_string(), Kind::Temp));
    }
    if let Some(id) = tail.strip_suffix(".undo") {
        return is_id(id).then(|| (id.to_string(), Kind::Undo));
    }
    let id = tail.strip_suffix(".old")?;
    is_id(id).then(|| (id.to_string(), Kind::Backup))
}

/// The undo name that goes with backup name `backup`.
pub(crate) fn undo_name(backup: &OsStr) -> Option<OsString> {
    let stem = backup.to_str()?.strip_suffix(".old")?;
    Some(format!("{stem}.undo").into())
}

/// The output name a side file stands for, read from its own name
/// (`.NAME.trtllm-prune-…`); a name cut short in it names nothing that
/// exists.
pub(crate) fn target_in_name(name: &OsStr) -> Option<OsString> {
    let name = name.to_str()?;
    let at = name.rfind(MARK)?;
    let target = name.get(1..at)?;
    (!target.is_empty()).then(|| target.into())
}

/// Whether `name` is any side file of any run (listings skip them), or the
/// lock file used where a folder cannot be locked itself.
pub(crate) fn is_side_file(name: &OsStr) -> bool {
    name == crate::base::sys::LOCK_FILE || parse(name).is_some()
}

fn is_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn names_parse_back_to_their_run_and_kind() {
        for kind in [Kind::Temp, Kind::Backup, Kind::Undo] {
            let n = side_name(OsStr::new("rank0.safetensors"), 0, ID, kind);
            assert_eq!(parse(&n), Some((ID.to_string(), kind)), "{n:?}");
        }
        let b = side_name(OsStr::new("rank0.safetensors"), 0, ID, Kind::Backup);
        assert_eq!(
            undo_name(&b),
            Some(side_name(
                OsStr::new("rank0.safetensors"),
                0,
                ID,
                Kind::Undo
            ))
        );
        assert_eq!(
            parse(&journal_name(ID)),
            Some((ID.to_string(), Kind::Journal))
        );
        let long = "x".repeat(250);
        let n = side_name(OsStr::new(&long), 7, ID, Kind::Temp);
        assert!(n.len() <= 255);
        assert_eq!(parse(&n), Some((ID.to_string(), Kind::Temp)));
        let odd = OsString::from_vec(b"w\xffeird".to_vec());
        let n = side_name(&odd, 3, ID, Kind::Backup);
        assert_eq!(parse(&n), Some((ID.to_string(), Kind::Backup)));
    }

    #[test]
    fn other_names_are_not_side_files() {
        for n in [
            "rank0.safetensors",
            ".rank0.safetensors.trtllm-prune-xyz.tmp",
            ".trtllm-prune-0123.journal",
            "a.trtllm-prune-0123456789abcdef0123456789abcdef.tmp",
            ".x.trtllm-prune-0123456789abcdef0123456789abcdef.journal",
            // Names of a design before the journal, never released.
            ".rank1.safetensors.trtllm-prune-old-4242.tmp",
            ".config.json.trtllm-prune-new-17.tmp",
        ] {
            assert_eq!(parse(OsStr::new(n)), None, "{n}");
        }
    }
}
