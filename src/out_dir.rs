//! Where the output goes, and what it may never overwrite: the checkpoint
//! folder and output folder resolved the way the kernel will see them, the
//! original's default `<checkpoint_dir>.pruned`, and the refusal of any
//! output that would replace an input.

use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::FileStamp;
use crate::prune::Prepared;
use crate::run::file_name;

/// The checkpoint folder, absolute and with symlinks resolved.
pub(crate) fn canonical_checkpoint_dir(dir: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(dir, "checkpoint folder not found"),
        _ => Error::io(dir, "cannot open", e),
    })?;
    if !meta.is_dir() {
        return Err(Error::invalid(
            dir,
            "checkpoint path is a file, not a folder: give the folder that holds it, or look at the file with `trtllm-prune inspect`",
        ));
    }
    fs::canonicalize(dir).map_err(|e| Error::io(dir, "cannot resolve", e))
}

/// The original's default output, `Path(dir).with_name(name + ".pruned")`:
/// beside the folder as the user named it (`given`), so a checkpoint reached
/// through a symlink gets its output next to the link. A path without a
/// last name of its own (`.`, `..`) uses its real path (`canonical`).
pub fn default_out_dir(given: &Path, canonical: &Path) -> Result<PathBuf> {
    let sibling = |dir: &Path| {
        let mut name = dir.file_name()?.to_os_string();
        name.push(".pruned");
        Some(dir.with_file_name(name))
    };
    match sibling(given) {
        Some(dir) => resolve_out_dir(&dir),
        None => sibling(canonical).ok_or_else(|| {
            Error::refused(
                canonical,
                "cannot derive a default output folder; give --out_dir",
            )
        }),
    }
}

/// Resolves an output folder that may not exist yet, the way the kernel
/// will once it is created: the existing part with symlinks resolved, the
/// rest lexically (folders we create are never symlinks). So `new/../ckpt`
/// resolves to `ckpt` and is compared with the input as such.
pub fn resolve_out_dir(dir: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(dir).map_err(|e| Error::io(dir, "cannot resolve", e))?;
    let components: Vec<Component> = absolute.components().collect();
    // The longest prefix that exists.
    let mut split = components.len();
    let mut base = loop {
        let prefix: PathBuf = components[..split].iter().collect();
        match fs::canonicalize(&prefix) {
            Ok(p) => break p,
            Err(_) if split > 1 => split -= 1,
            Err(e) => return Err(Error::io(dir, "cannot resolve", e)),
        }
    };
    for c in &components[split..] {
        match c {
            Component::ParentDir => {
                base.pop();
            }
            Component::CurDir => {}
            other => base.push(other.as_os_str()),
        }
    }
    // The lexical part may lead back into an existing folder.
    match fs::canonicalize(&base) {
        Ok(p) => Ok(p),
        Err(_) => Ok(base),
    }
}

/// Refuses a run in which any output file would replace an input file
/// (through a hard link, a symlink, or the same folder under another name)
/// or a folder.
pub(crate) fn refuse_overwriting_inputs(prepared: &Prepared) -> Result<()> {
    let mut inputs: Vec<(PathBuf, FileStamp)> = prepared
        .files
        .iter()
        .map(|f| (f.input.path.clone(), f.input.stamp))
        .chain(
            prepared
                .extra_files
                .iter()
                .map(|f| (f.path.clone(), f.stamp)),
        )
        .collect();
    for g in &prepared.generated {
        let source = prepared.checkpoint_dir.join(&g.name);
        if let Ok(meta) = fs::metadata(&source) {
            inputs.push((source, FileStamp::of(&meta)));
        }
    }
    let names = prepared
        .files
        .iter()
        .map(|f| OsString::from(&f.name))
        .chain(prepared.generated.iter().map(|g| OsString::from(&g.name)))
        .chain(prepared.extra_files.iter().map(|f| file_name(&f.path)));
    for name in names {
        let target = prepared.out_dir.join(&name);
        // The commit would move a folder aside under a hidden temp name and
        // leave it there: refuse instead.
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(Error::refused(
                &target,
                "a folder has the name of an output file; move it away",
            ));
        }
        let Ok(meta) = fs::metadata(&target) else {
            continue;
        };
        let out = FileStamp::of(&meta);
        if let Some((input, _)) = inputs.iter().find(|(_, s)| s.same_file(&out)) {
            return Err(Error::refused(
                &target,
                format!("would overwrite the input file {}", input.display()),
            ));
        }
    }
    Ok(())
}
