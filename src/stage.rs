//! All-or-nothing output: every output file is written to a temp file in
//! the output folder and renamed into place only when all of them are
//! complete.
//!
//! Until [`Staging::commit`] succeeds, dropping the [`Staging`] removes every
//! temp file (and the output folder and its parents that this run created,
//! if they are empty). During the commit, a file that already exists at a final path is
//! first moved aside; if any rename fails, the new files are removed and the
//! old ones put back, so files that were already there stay untouched.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const TEMP_MARK: &str = ".trtllm-prune-";

/// Whether `name` is one of our temp or backup file names.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK) && name.ends_with(".tmp")
}

fn side_path(dir: &Path, name: &str, kind: &str) -> PathBuf {
    dir.join(format!(
        ".{name}{TEMP_MARK}{kind}-{}.tmp",
        std::process::id()
    ))
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
    pub fn add(&mut self, name: &str) -> StagedFile {
        let staged = StagedFile {
            temp: side_path(&self.dir, name, "new"),
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
        for file in &self.files {
            if fs::symlink_metadata(&file.target).is_ok() {
                let name = file
                    .target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let backup = side_path(&self.dir, &name, "old");
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
