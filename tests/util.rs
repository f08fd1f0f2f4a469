//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trtllm_prune::fixture::CheckpointSpec;

/// Path of the built `trtllm-prune` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trtllm-prune"))
}

/// Runs the binary with `args`, stdin closed, stderr not a terminal.
pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("binary runs")
}

/// A fresh temp dir that is removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Every file name in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs the binary with `args` in `cwd`.
pub fn run_in(cwd: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.current_dir(cwd);
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("binary runs")
}

/// Runs the binary through `sh` with the file-creation mask set to `umask`
/// (an octal string such as "022"), so permission checks do not depend on
/// the mask the test runner inherited.
pub fn run_with_umask(umask: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("sh runs")
}

/// The process's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that a run succeeded with nothing on stdout, and returns it.
#[track_caller]
pub fn assert_success(out: Output) -> Output {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstderr:\n{}",
        out.status,
        stderr(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "stdout is not empty: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Asserts exit status 1 with exactly one stderr line that starts with
/// `trtllm-prune: error: `, and returns that line.
#[track_caller]
pub fn assert_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit status 1, got {:?}\nstderr:\n{err}",
        out.status
    );
    assert!(out.stdout.is_empty(), "stdout is not empty");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{err}");
    assert!(
        lines[0].starts_with("trtllm-prune: error: "),
        "error line lacks the prefix: {err}"
    );
    lines[0].to_string()
}

/// Runs the binary with `args` and `--json` (which every command that
/// reads a checkpoint takes, after its other arguments), asserts that it
/// failed as [`error_kind_of`] says, and returns the error's `kind`.
#[track_caller]
pub fn error_kind(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut with_json = args.to_vec();
    with_json.push(&"--json");
    error_kind_of(&run(&with_json))
}

/// The `kind` of the `{"error": {"kind": ...}}` document that `out`, a run
/// given `--json`, printed on stdout (`"invalid"`, `"refused"`,
/// `"input_changed"`, ...: see `ErrorKind::name`), after asserting that it
/// failed with that document's exit status and one `trtllm-prune: error: `
/// line on stderr.
#[track_caller]
pub fn error_kind_of(out: &Output) -> String {
    let err = stderr(out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr:\n{err}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let error = &doc["error"];
    assert!(
        error.is_object(),
        "no error document: {doc}\nstderr:\n{err}"
    );
    assert_eq!(
        out.status.code().map(i64::from),
        error["exit_code"].as_i64(),
        "exit status\nstderr:\n{err}"
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("trtllm-prune: warning: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
    assert_eq!(
        lines[0].strip_prefix("trtllm-prune: error: "),
        error["message"].as_str(),
        "the document's message is the line"
    );
    error["kind"]
        .as_str()
        .expect("kind is a string")
        .to_string()
}

/// Asserts that `out`, a run given `--json`, failed with an error of kind
/// `kind` (see [`error_kind_of`]), and returns its stderr line, as
/// [`assert_error`] does.
#[track_caller]
pub fn assert_error_kind(out: &Output, kind: &str) -> String {
    let line = stderr(out)
        .lines()
        .find(|l| l.starts_with("trtllm-prune: error: "))
        .unwrap_or_default()
        .to_string();
    assert_eq!(error_kind_of(out), kind, "{line}");
    line
}

/// Writes the checkpoint `spec` describes into `root/name` and returns its
/// path.
pub fn write_checkpoint(root: &Path, name: &str, spec: &CheckpointSpec) -> PathBuf {
    let dir = root.join(name);
    spec.write(&dir).expect("fixture checkpoint written");
    dir
}

/// Every regular file directly in `dir` with its bytes, by name: a
/// snapshot to show that a failed or refused run changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("dir lists").flatten() {
        let path = entry.path();
        if path.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(name, std::fs::read(&path).expect("file reads"));
        }
    }
    files
}

/// A safetensors file from a literal header JSON and data buffer: the
/// length prefix is N = `json.len()` exactly (no padding added).
pub fn safetensors_bytes(json: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// One entry of a folder tree, as [`tree`] records it.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeEntry {
    /// A regular file up to [`TREE_READ_LIMIT`] bytes, with its bytes.
    File(Vec<u8>),
    /// A larger (usually sparse) file, by identity, size and mtime: reading
    /// gigabytes of holes to compare them would cost seconds.
    LargeFile {
        ino: u64,
        len: u64,
        mtime_ns: i128,
    },
    Dir(BTreeMap<String, TreeEntry>),
    Symlink(PathBuf),
    /// A FIFO, socket or device.
    Special,
}

/// Files larger than this are compared by identity in [`tree`].
pub const TREE_READ_LIMIT: u64 = 16 << 20;

/// Every entry under `dir` (hidden temp files, folders, symlinks and
/// special files too), recursively: what a failed run must leave exactly
/// as it found it. A missing `dir` gives an empty map.
pub fn tree(dir: &Path) -> BTreeMap<String, TreeEntry> {
    use std::os::unix::fs::MetadataExt;
    let mut entries = BTreeMap::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return entries;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).expect("entry has metadata");
        let kind = meta.file_type();
        let state = if kind.is_symlink() {
            TreeEntry::Symlink(std::fs::read_link(&path).expect("link reads"))
        } else if kind.is_dir() {
            TreeEntry::Dir(tree(&path))
        } else if kind.is_file() && meta.len() > TREE_READ_LIMIT {
            TreeEntry::LargeFile {
                ino: meta.ino(),
                len: meta.len(),
                mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            }
        } else if kind.is_file() {
            TreeEntry::File(std::fs::read(&path).expect("file reads"))
        } else {
            TreeEntry::Special
        };
        entries.insert(entry.file_name().to_string_lossy().into_owned(), state);
    }
    entries
}

/// A one-rank TensorRT-LLM checkpoint at `dir`: `kept_mib` MiB of real
/// (non-hole) data in a tensor the rule keeps, and 1 MiB the rule prunes.
pub fn big_checkpoint(dir: &Path, kept_mib: u64) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let k = kept_mib << 20;
    let p = 1u64 << 20;
    let mut json = format!(
        "{{\"transformer.vocab_embedding.weight\":{{\"dtype\":\"U8\",\"shape\":[{k}],\"data_offsets\":[0,{k}]}},\
         \"transformer.layers.0.mlp.fc.weight\":{{\"dtype\":\"U8\",\"shape\":[{p}],\"data_offsets\":[{k},{}]}}}}",
        k + p
    );
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut f = std::fs::File::create(dir.join("rank0.safetensors")).unwrap();
    f.write_all(&(json.len() as u64).to_le_bytes()).unwrap();
    f.write_all(json.as_bytes()).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..(k + p) >> 20 {
        f.write_all(&chunk).unwrap();
    }
    std::fs::write(
        dir.join("config.json"),
        "{\"architecture\":\"LlamaForCausalLM\",\"mapping\":{\"world_size\":1}}",
    )
    .unwrap();
}

/// A sharded Hugging Face folder's weights in `dir`: each `(file name,
/// layer)` a shard holding that layer's `q_proj` and `input_layernorm`
/// (BF16), and the `model.safetensors.index.json` naming them.
pub fn write_hf_shards(dir: &Path, shards: &[(String, u64)]) {
    use trtllm_prune::fixture::TensorSpec;
    let mut weight_map = serde_json::Map::new();
    for (name, layer) in shards {
        let tensors = vec![
            TensorSpec::new(
                format!("model.layers.{layer}.self_attn.q_proj.weight"),
                trtllm_prune::Dtype::BF16,
                &[32, 32],
            ),
            TensorSpec::new(
                format!("model.layers.{layer}.input_layernorm.weight"),
                trtllm_prune::Dtype::BF16,
                &[32],
            ),
        ];
        trtllm_prune::fixture::write_safetensors(&dir.join(name), &tensors, None).expect("shard");
        for t in &tensors {
            weight_map.insert(t.name.clone(), serde_json::Value::from(name.clone()));
        }
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map}).to_string(),
    )
    .expect("index");
}
