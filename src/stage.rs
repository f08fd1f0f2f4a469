//! All-or-nothing output: every output file is written to a temp file in
//! the output folder and renamed into place only when all of them are
//! complete.
//!
//! Until [`Staging::commit`] succeeds, dropping the [`Staging`] removes every
//! temp file (and the output folder and its parents that this run created,
//! if they are empty). During the commit, a file that already exists at a final path is
//! first moved aside; if any rename fails, the new files are removed and the
//! old ones put back, so files that were already there stay untouched.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const TEMP_MARK: &str = ".trtllm-prune-";

/// Whether `name` is one of our temp or backup file names.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK) && name.ends_with(".tmp")
}

/// Longest output name used whole in a temp name: the temp name adds up
/// to 30 bytes and a file name may have 255 (`NAME_MAX`).
const MAX_NAME_IN_TEMP: usize = 200;

/// The temp (`kind` "new") or backup ("old") path of staged file number
/// `index`, named `name`. A longer name is cut and made unique by the index,
/// or the temp file could not be created although the output can; so is a
/// name that is not UTF-8, as two such names can share a lossy spelling.
fn side_path(dir: &Path, name: &OsStr, index: usize, kind: &str) -> PathBuf {
    let pid = std::process::id();
    if let Some(name) = name.to_str().filter(|n| n.len() <= MAX_NAME_IN_TEMP) {
        return dir.join(format!(".{name}{TEMP_MARK}{kind}-{pid}.tmp"));
    }
    let name = name.to_string_lossy();
    let mut cut = name.len().min(MAX_NAME_IN_TEMP - 10);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let short = &name[..cut];
    dir.join(format!(".{short}~{index}{TEMP_MARK}{kind}-{pid}.tmp"))
}

/// One output file: where it is written, and where it ends up.
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub temp: PathBuf,
    pub target: PathBuf,
}

#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    files: Vec<StagedFile>,
    /// Folders this run created, innermost first (`create_dir_all` may
    /// create several levels).
    created_dirs: Vec<PathBuf>,
    committed: bool,
}

impl Staging {
    /// Creates the output folder if needed and prepares to stage files in it.
    pub fn new(dir: &Path) -> Result<Staging> {
        let created_dirs: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        if let Err(e) = fs::create_dir_all(dir) {
            remove_empty_dirs(&created_dirs);
            return Err(Error::io(dir, "cannot create folder", e));
        }
        Ok(Staging {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            created_dirs,
            committed: false,
        })
    }

    /// Reserves a temp path for the output file `name`. The path is
    /// registered before anything is created, so it is cleaned up whatever
    /// happens next.
    pub fn add(&mut self, name: impl AsRef<OsStr>) -> StagedFile {
        let name = name.as_ref();
        let staged = StagedFile {
            temp: side_path(&self.dir, name, self.files.len(), "new"),
            target: self.dir.join(name),
        };
        self.files.push(staged.clone());
        staged
    }

    /// Renames every temp file into place, or none of them.
    pub fn commit(mut self) -> Result<()> {
        let mut backups: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut placed: Vec<PathBuf> = Vec::new();
        let result = self.rename_all(&mut backups, &mut placed);
        if result.is_err() {
            for target in &placed {
                let _ = fs::remove_file(target);
            }
            for (backup, target) in &backups {
                let _ = fs::rename(backup, target);
            }
            return result;
        }
        for (backup, _) in &backups {
            let _ = fs::remove_file(backup);
        }
        self.committed = true;
        Ok(())
    }

    fn rename_all(
        &self,
        backups: &mut Vec<(PathBuf, PathBuf)>,
        placed: &mut Vec<PathBuf>,
    ) -> Result<()> {
        for (index, file) in self.files.iter().enumerate() {
            if fs::symlink_metadata(&file.target).is_ok() {
                let name = file.target.file_name().unwrap_or_default();
                let backup = side_path(&self.dir, name, index, "old");
                fs::rename(&file.target, &backup).map_err(|e| {
                    Error::io(&file.target, "cannot move the existing file aside", e)
                })?;
                backups.push((backup, file.target.clone()));
            }
            fs::rename(&file.temp, &file.target).map_err(|e| {
                Error::io(
                    &file.target,
                    "cannot rename the finished file into place",
                    e,
                )
            })?;
            placed.push(file.target.clone());
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for file in &self.files {
            let _ = fs::remove_file(&file.temp);
        }
        remove_empty_dirs(&self.created_dirs);
    }
}

/// Removes `dirs`, innermost first, stopping at the first that is not
/// empty: never removes user files.
fn remove_empty_dirs(dirs: &[PathBuf]) {
    for dir in dirs {
        if fs::remove_dir(dir).is_err() {
            break;
        }
    }
}
