//! Where the output goes, and what it may never overwrite: the checkpoint
//! folder and output folder resolved the way the kernel will see them, the
//! original's default `<checkpoint_dir>.pruned`, the output folder opened
//! once (component by component, never through another user's symlink in
//! a sticky folder), and the refusal, on that descriptor, of any output
//! folder the run reads from or output that would replace an input.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::base::error::{Error, Result};
use crate::base::file::looks_like_url;
use crate::base::file::{file_name, FileStamp};
use crate::base::sys::{self, Dir, Identity, PathHandle};
use crate::plan::prepared::{InputFolder, Prepared};

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
/// will once it is created: the existing part walked as [`open_folder`]
/// walks it (so a symlink it would refuse is refused here too), the rest
/// lexically (folders we create are never symlinks). So `new/../ckpt`
/// resolves to `ckpt` and is compared with the input as such.
pub fn resolve_out_dir(dir: &Path) -> Result<PathBuf> {
    let lexical = match walk(dir, false, &mut Vec::new())? {
        Walk::Found { real, .. } => return Ok(real),
        Walk::Missing { mut real, rest } => {
            for name in rest {
                match name.to_str() {
                    Some("..") => {
                        real.pop();
                    }
                    _ => real.push(name),
                }
            }
            real
        }
    };
    // The lexical part may lead back into an existing folder.
    match walk(&lexical, false, &mut Vec::new())? {
        Walk::Found { real, .. } => Ok(real),
        Walk::Missing { .. } => Ok(lexical),
    }
}

/// The output folder, opened once: every later step of the run is relative
/// to `dir`, whatever happens to its path meanwhile.
#[derive(Debug)]
pub(crate) struct OpenedFolder {
    pub dir: Dir,
    /// Folders the opening created, innermost first, each with the folder
    /// it is in (to remove them again if the run ends with nothing done).
    pub created: Vec<(PathHandle, OsString)>,
}

/// Most symlinks one path may pass through (the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Most times a step is looked at again because its name changed between
/// two calls (created, removed, replaced by someone else meanwhile).
const MAX_RETRIES: usize = 100;

/// Opens the folder at `path` one component at a time, each relative to
/// the folder before (`openat` with `O_NOFOLLOW`), resolving symlinks
/// itself: so the folder opened is the one every check was made on, and a
/// symlink another user planted in a sticky world-writable folder (/tmp)
/// is refused even where the kernel's `fs.protected_symlinks` is off.
/// Missing folders are created with `create` (`mkdirat`, which never
/// follows a symlink); without it a missing folder is `None`.
pub(crate) fn open_folder(path: &Path, create: bool) -> Result<Option<OpenedFolder>> {
    let mut created = Vec::new();
    let opened = match walk(path, create, &mut created) {
        Ok(Walk::Missing { .. }) => Ok(None),
        Ok(Walk::Found { at, real }) => at
            .open(real.clone())
            .map_err(|e| Error::io(&real, "cannot open", e))
            .map(Some),
        Err(e) => Err(e),
    };
    match opened {
        Ok(Some(dir)) => Ok(Some(OpenedFolder { dir, created })),
        Ok(None) => Ok(None),
        Err(e) => {
            // A failure (out of descriptors, say) leaves no folder behind.
            for (parent, name) in &created {
                if parent.remove_dir(name).is_err() {
                    break;
                }
            }
            Err(e)
        }
    }
}

/// Where a walk along a path ended.
enum Walk {
    /// At the folder the path names.
    Found {
        at: PathHandle,
        /// Its path with every symlink resolved.
        real: PathBuf,
    },
    /// At a name that does not exist in `real` (`rest` starts with it),
    /// or right after a file (`real`) that more names follow.
    Missing {
        real: PathBuf,
        rest: VecDeque<OsString>,
    },
}

/// The walk of [`open_folder`], up to the folder or the first missing
/// name; each folder it creates is added to `created` (as in
/// [`OpenedFolder::created`]), even when it then fails.
fn walk(path: &Path, create: bool, created: &mut Vec<(PathHandle, OsString)>) -> Result<Walk> {
    let absolute = std::path::absolute(path).map_err(|e| Error::io(path, "cannot resolve", e))?;
    let mut w = Walker {
        path,
        create,
        created,
        todo: components_of(&absolute)
            .into_iter()
            .map(|c| (c, None))
            .collect(),
        links: Vec::new(),
        at: root()?,
        real: PathBuf::from("/"),
        symlinks: 0,
        retries: 0,
        made: None,
    };
    while let Some((name, origin)) = w.todo.pop_front() {
        if name == ".." {
            w.at =
                w.at.parent()
                    .map_err(|e| Error::io(&w.real, "cannot open", e))?;
            w.real.pop();
            continue;
        }
        let here = w.real.join(&name);
        let error = match w.at.child(&name) {
            Ok(child) => {
                w.at = child;
                w.real = here;
                continue;
            }
            Err(e) => e,
        };
        w.retries += 1;
        if w.retries > MAX_RETRIES {
            return Err(Error::invalid(
                &here,
                "keeps changing while this run opens it",
            ));
        }
        let step = match error.raw_os_error() {
            Some(libc::ENOENT) => w.missing(&name, origin, &here)?,
            Some(libc::ENOTDIR | libc::ELOOP) => w.not_a_folder(&name, origin, &here)?,
            _ => return Err(Error::io(&here, "cannot open", error)),
        };
        match step {
            Step::Again => w.todo.push_front((name, origin)),
            Step::Next => {}
            Step::Done(walk) => return Ok(walk),
        }
    }
    Ok(Walk::Found {
        at: w.at,
        real: w.real,
    })
}

fn root() -> Result<PathHandle> {
    PathHandle::root().map_err(|e| Error::io(Path::new("/"), "cannot open", e))
}

/// Where [`walk`] is and what it has left to walk.
struct Walker<'a> {
    /// The path walked, as the caller gave it.
    path: &'a Path,
    create: bool,
    created: &'a mut Vec<(PathHandle, OsString)>,
    /// Each name to walk, with the outermost symlink it comes from (an
    /// index into `links`), if any.
    todo: VecDeque<(OsString, Option<usize>)>,
    /// Each outermost symlink followed: where it is, and the names from it
    /// on, for a path that ends missing behind it.
    links: Vec<(PathBuf, VecDeque<OsString>)>,
    /// The folder reached.
    at: PathHandle,
    /// The path of `at` as the kernel resolves it: for messages.
    real: PathBuf,
    symlinks: usize,
    retries: usize,
    /// The folder this walk just made, if any: something else found at its
    /// name is someone else's doing.
    made: Option<PathBuf>,
}

/// What [`walk`] does after a name it could not open as a folder.
enum Step {
    /// Tries the same name again.
    Again,
    /// Goes on with the names now first in line.
    Next,
    /// Ends here.
    Done(Walk),
}

impl Walker<'_> {
    /// The names left to walk, without their origins.
    fn rest(&self) -> impl Iterator<Item = OsString> + '_ {
        self.todo.iter().map(|(n, _)| n.clone())
    }

    /// After `name` (at `here`) was found missing: the end of the walk, or
    /// the folder created (when the walk creates).
    fn missing(&mut self, name: &OsStr, origin: Option<usize>, here: &Path) -> Result<Step> {
        // Behind a symlink to nowhere: the link itself is the missing name
        // (as `mkdir` sees it: it never creates through one).
        if let Some(origin) = origin {
            let (link_folder, rest) = &self.links[origin];
            if self.create {
                return Err(Error::refused(
                    self.path,
                    format!(
                        "cannot create folder through the symlink {}: it leads nowhere",
                        link_folder.join(rest.front().map_or(name, |n| n)).display()
                    ),
                ));
            }
            return Ok(Step::Done(Walk::Missing {
                real: link_folder.clone(),
                rest: rest.clone(),
            }));
        }
        if !self.create {
            let rest = std::iter::once(name.to_os_string())
                .chain(self.rest())
                .collect();
            return Ok(Step::Done(Walk::Missing {
                real: self.real.clone(),
                rest,
            }));
        }
        match self.at.create_dir(name) {
            Ok(()) => {
                let parent = self
                    .at
                    .try_clone()
                    .map_err(|e| Error::io(&self.real, "cannot open", e))?;
                self.created.insert(0, (parent, name.to_os_string()));
                self.made = Some(here.to_path_buf());
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(Error::io(here, "cannot create folder", e)),
        }
        Ok(Step::Again)
    }

    /// After `name` (at `here`) could not be opened as a folder: a symlink
    /// is followed, a file ends the walk.
    fn not_a_folder(&mut self, name: &OsStr, origin: Option<usize>, here: &Path) -> Result<Step> {
        let entry = self
            .at
            .entry(name)
            .map_err(|e| Error::io(here, "cannot read metadata", e))?;
        match entry {
            None => Ok(Step::Again),
            Some(entry) if entry.is_symlink() => {
                self.follow(name, origin, here, &entry)?;
                Ok(Step::Next)
            }
            Some(entry) if entry.is_dir() => Ok(Step::Again),
            // A file with more names after it: as the kernel would
            // (`ENOTDIR`), except that resolving reads it lexically, so
            // `file/..` is the folder the file is in.
            Some(_) if !self.todo.is_empty() => {
                if self.create {
                    return Err(Error::io(
                        self.path,
                        "cannot create folder",
                        std::io::Error::from_raw_os_error(libc::ENOTDIR),
                    ));
                }
                Ok(Step::Done(Walk::Missing {
                    real: here.to_path_buf(),
                    rest: self.rest().collect(),
                }))
            }
            Some(_) => Err(Error::refused(here, "exists and is not a folder")),
        }
    }

    /// Puts the names of the symlink `name` (at `here`) first in line,
    /// from the root for an absolute one.
    fn follow(
        &mut self,
        name: &OsStr,
        origin: Option<usize>,
        here: &Path,
        entry: &Identity,
    ) -> Result<()> {
        if self.made.as_deref() == Some(here) {
            return Err(Error::refused(
                here,
                "the folder this run created was replaced by a symlink; not followed",
            ));
        }
        refuse_foreign_symlink(&self.at, entry, here)?;
        self.symlinks += 1;
        if self.symlinks > MAX_SYMLINKS {
            return Err(Error::io(
                here,
                "cannot open",
                std::io::Error::from_raw_os_error(libc::ELOOP),
            ));
        }
        let target = self
            .at
            .read_link(name)
            .map_err(|e| Error::io(here, "cannot read the symlink", e))?;
        let origin = match origin {
            Some(origin) => origin,
            None => {
                let rest = std::iter::once(name.to_os_string())
                    .chain(self.rest())
                    .collect();
                self.links.push((self.real.clone(), rest));
                self.links.len() - 1
            }
        };
        let target = Path::new(&target);
        if target.is_absolute() {
            self.at = root()?;
            self.real = PathBuf::from("/");
        }
        for c in components_of(target).into_iter().rev() {
            self.todo.push_front((c, Some(origin)));
        }
        Ok(())
    }
}

/// The names to walk in `path`, `..` included (resolved by the walk, as
/// the kernel does, after any symlink before it).
fn components_of(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The kernel's `protected_symlinks` rule, a little stricter: in a sticky
/// world-writable folder, a symlink is followed only when it belongs to the
/// caller or to root (the kernel also follows the folder owner's).
/// Otherwise whoever may write /tmp could send the run's output anywhere
/// the caller may write.
fn refuse_foreign_symlink(folder: &PathHandle, link: &Identity, path: &Path) -> Result<()> {
    let me = sys::current_user();
    if link.uid == me || link.uid == 0 {
        return Ok(());
    }
    let parent = folder
        .identity()
        .map_err(|e| Error::io(path, "cannot read metadata", e))?;
    let shared = parent.mode & libc::S_ISVTX != 0 && parent.mode & libc::S_IWOTH != 0;
    if !shared {
        return Ok(());
    }
    Err(Error::refused(
        path,
        format!(
            "a symlink owned by another user (uid {}{}) in a sticky world-writable folder; not followed (the kernel's protected_symlinks rule): remove it or give another --out_dir",
            link.uid,
            crate::base::sys::user_name(link.uid)
                .map(|name| format!(", {name}"))
                .unwrap_or_default()
        ),
    ))
}

/// The folders a run reads from, by identity: the checkpoint folder first,
/// then every other folder an input file is in (reached through a symlink).
pub(crate) fn input_folders(checkpoint_dir: &Path, inputs: &[&Path]) -> Result<Vec<InputFolder>> {
    let of = |dir: &Path| -> Result<InputFolder> {
        let meta = fs::metadata(dir).map_err(|e| Error::io(dir, "cannot read metadata", e))?;
        Ok(InputFolder {
            path: dir.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    };
    let mut folders = vec![of(checkpoint_dir)?];
    for input in inputs {
        let real = fs::canonicalize(input).map_err(|e| Error::io(input, "cannot resolve", e))?;
        let Some(parent) = real.parent() else {
            continue;
        };
        let folder = of(parent)?;
        if !folders
            .iter()
            .any(|f| (f.dev, f.ino) == (folder.dev, folder.ino))
        {
            folders.push(folder);
        }
    }
    Ok(folders)
}

/// Refuses an output folder (as opened: by its descriptor, not its path)
/// that is a folder the run reads from, or in which an output would replace
/// an input file. In place, the output folder must be the checkpoint
/// folder that was read.
pub(crate) fn refuse_input_folders(out: &Dir, prepared: &Prepared) -> Result<()> {
    let id = out
        .identity()
        .map_err(|e| Error::io(out.path(), "cannot read metadata", e))?;
    let same = |f: &InputFolder| (f.dev, f.ino) == (id.dev, id.ino);
    let mut folders = prepared.input_folders.iter();
    if prepared.in_place {
        return match folders.next() {
            Some(checkpoint) if !same(checkpoint) => Err(Error::refused(
                out.path(),
                "is no longer the checkpoint folder this run read (it was moved or replaced meanwhile)",
            )),
            _ => Ok(()),
        };
    }
    // Named as the user gave it: the path may lead elsewhere by now.
    if let Some(checkpoint) = folders.next().filter(|f| same(f)) {
        return Err(Error::refused(
            &prepared.out_dir,
            format!(
                "the output folder is the checkpoint folder {}; refusing to overwrite the input (use --in-place to prune it in place)",
                checkpoint.path.display()
            ),
        ));
    }
    if let Some(folder) = folders.find(|f| same(f)) {
        return Err(Error::refused(
            &prepared.out_dir,
            format!(
                "the output folder is {}, which holds input files; give another --out_dir",
                folder.path.display()
            ),
        ));
    }
    refuse_overwriting_inputs(out, prepared)
}

/// Refuses an output folder that is a folder the run reads from seen
/// through another mount: an overlay and its upper folder, a bindfs or
/// other FUSE mirror, NFS from localhost each report their own `st_dev`,
/// so no identity check of [`refuse_input_folders`] matches. The run's
/// journal, just created in the output folder under a random name, is
/// looked up in each input folder (through its descriptor): found there,
/// the two are one folder. In place, the output folder is the checkpoint
/// folder by design, and nothing is looked up.
pub(crate) fn refuse_mirrored_input_folders(
    out: &Path,
    journal_name: &OsStr,
    prepared: &Prepared,
) -> Result<()> {
    if prepared.in_place {
        return Ok(());
    }
    for (i, folder) in prepared.input_folders.iter().enumerate() {
        let seen = match Dir::open(&folder.path) {
            Ok(dir) => dir.stat(journal_name).map(|st| st.is_some()),
            // A folder this user may search but not open: by path.
            Err(_) => match fs::symlink_metadata(folder.path.join(journal_name)) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| Error::io(&folder.path, "cannot read metadata", e))?;
        if seen {
            let what = if i == 0 {
                "the checkpoint folder"
            } else {
                "the folder of input files"
            };
            return Err(Error::refused(
                out,
                format!(
                    "is {what} {} seen through another mount (overlay, bind, FUSE): an output would replace an input; give another --out_dir",
                    folder.path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a run in which any output file would replace an input file
/// (through a hard link, a symlink, or the same folder under another name)
/// or a folder. Names are looked up in the opened output folder.
fn refuse_overwriting_inputs(out: &Dir, prepared: &Prepared) -> Result<()> {
    let mut inputs: Vec<(PathBuf, FileStamp)> = prepared
        .files
        .iter()
        .map(|f| &f.input)
        .chain(&prepared.extra_files)
        .filter_map(|f| Some((f.path.clone(), f.stamp()?)))
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
        let target = out.join(&name);
        let metadata_error = |e| Error::io(&target, "cannot read metadata", e);
        // The commit would move a folder aside under a hidden temp name and
        // leave it there: refuse instead.
        if out
            .stat(&name)
            .map_err(metadata_error)?
            .is_some_and(|st| st.is_dir())
        {
            return Err(Error::refused(
                &target,
                "a folder has the name of an output file; move it away",
            ));
        }
        let Ok(Some(out)) = out.target_identity(&name) else {
            continue;
        };
        if let Some((input, _)) = inputs
            .iter()
            .find(|(_, s)| (s.dev, s.ino) == (out.dev, out.ino))
        {
            return Err(Error::refused(
                &target,
                format!("would overwrite the input file {}", input.display()),
            ));
        }
    }
    Ok(())
}

/// Refuses to write a TensorRT-LLM checkpoint into a folder that holds rank
/// files beyond the config's `world_size` (left by a run with more ranks):
/// they would stay, and `verify` rejects a folder whose config says fewer
/// ranks than it holds. The folder is the user's, so they are named, not
/// removed. A rank below `world_size` is never stale: `--ranks` runs write
/// some ranks on purpose. In place there is no other folder to check.
pub(crate) fn refuse_stale_ranks(out: &Dir, prepared: &Prepared) -> Result<()> {
    let Some(config) = prepared.config.as_ref().filter(|_| !prepared.in_place) else {
        return Ok(());
    };
    let world_size = config.world_size;
    let names = out
        .names()
        .map_err(|e| Error::io(out.path(), "cannot list", e))?;
    let mut stale: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| {
            let name = n.to_str()?;
            let rank =
                crate::read::ranks::parse_rank_file_name(name).filter(|&r| r >= world_size)?;
            Some((rank, name.to_string()))
        })
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    stale.sort();
    let names: Vec<&str> = stale.iter().map(|(_, n)| n.as_str()).collect();
    Err(Error::refused(
        &prepared.out_dir,
        format!(
            "the output folder holds {} beyond world_size {world_size} of config.json, which verify would reject; nothing was written: remove {} or give another --out_dir",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" },
        ),
    ))
}

/// Why a URL is refused as `--out_dir`.
pub const OUT_DIR_IS_LOCAL: &str =
    "outputs are written to a local folder only: give a local path as --out_dir, not a URL";

/// Whether a path argument is written as a URL (`scheme://...`), or as a
/// store's URL with one slash lost (`s3:/bucket/x`, `hf:/org/name`): a
/// mistyped URL, never meant as a local folder named `s3:`.
pub fn is_url(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|text| looks_like_url(text) || is_mistyped_url(text))
}

/// `scheme:/rest` for a scheme the tool reads (one slash short of a URL).
fn is_mistyped_url(text: &str) -> bool {
    const SCHEMES: [&str; 11] = [
        "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "hf", "http", "https",
    ];
    text.split_once(":/")
        .is_some_and(|(scheme, _)| SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = fs::canonicalize(dir.path()).expect("temp dir resolves");
        (dir, root)
    }

    #[test]
    fn resolves_dot_dot_after_a_symlink_as_the_kernel_does() {
        let (_dir, root) = temp();
        fs::create_dir_all(root.join("deep/target")).unwrap();
        symlink(root.join("deep/target"), root.join("link")).unwrap();
        // `link/..` is the target's parent, not `root`.
        assert_eq!(
            resolve_out_dir(&root.join("link/..")).unwrap(),
            root.join("deep")
        );
        assert_eq!(
            resolve_out_dir(&root.join("link/new/../x")).unwrap(),
            root.join("deep/target/x")
        );
    }

    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let (_dir, root) = temp();
        symlink(root.join("b"), root.join("a")).unwrap();
        symlink(root.join("a"), root.join("b")).unwrap();
        assert!(open_folder(&root.join("a/sub"), true).is_err());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 2);
    }

    #[test]
    fn creates_missing_folders_and_names_them_for_removal() {
        let (_dir, root) = temp();
        let opened = open_folder(&root.join("one/two"), true)
            .unwrap()
            .expect("created");
        assert_eq!(opened.dir.path(), root.join("one/two"));
        let names: Vec<&OsString> = opened.created.iter().map(|(_, n)| n).collect();
        assert_eq!(names, [&OsString::from("two"), &OsString::from("one")]);
        assert!(open_folder(&root.join("three"), false).unwrap().is_none());
        assert!(!root.join("three").exists());
    }
}
