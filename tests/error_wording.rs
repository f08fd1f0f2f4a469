//! The exact wording of the main error messages, one per kind: the only
//! test that pins a message whole (the others assert the kind, and the
//! file, tensor or byte a message must name), so a wording change is one
//! deliberate edit here.

use std::fs;
use std::path::Path;

use trtllm_prune::fixture::{CheckpointSpec, Family};
use trtllm_prune::{CommitFailure, Error, ErrorKind, RemoteProblem};

use crate::util;

/// Runs the binary with `args` (and `--json`), and asserts its error's
/// kind and its line, with `root` written as `ROOT`.
#[track_caller]
fn assert_wording(root: &Path, args: &[&dyn AsRef<std::ffi::OsStr>], kind: &str, line: &str) {
    let mut with_json = args.to_vec();
    with_json.push(&"--json");
    let out = util::run(&with_json);
    assert_eq!(util::error_kind_of(&out), kind, "{}", util::stderr(&out));
    let shown = util::stderr(&out).replace(&root.display().to_string(), "ROOT");
    assert_eq!(shown.trim_end(), format!("trtllm-prune: error: {line}"));
}

#[test]
fn the_main_messages_of_a_run_read_as_pinned() {
    let tmp = util::tempdir();
    let root = tmp.path();
    let ckpt = util::write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));

    assert_wording(
        root,
        &[&"--checkpoint_dir", &root.join("nope")],
        "not_found",
        "ROOT/nope: checkpoint folder not found",
    );
    assert_wording(
        root,
        &[&"inspect", &root.join("nope")],
        "not_found",
        "ROOT/nope: not found",
    );
    assert_wording(
        root,
        &[&"--checkpoint_dir", &ckpt, &"--out_dir", &ckpt],
        "refused",
        "ROOT/ckpt: the output folder is the checkpoint folder; refusing to overwrite the input (use --in-place to prune it in place)",
    );

    let no_config = util::write_checkpoint(
        root,
        "no-config",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    fs::remove_file(no_config.join("config.json")).unwrap();
    assert_wording(
        root,
        &[&"--checkpoint_dir", &no_config],
        "invalid",
        "ROOT/no-config/config.json: no config.json: not a TensorRT-LLM checkpoint folder",
    );

    let short = util::write_checkpoint(root, "short", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    fs::remove_file(short.join("rank1.safetensors")).unwrap();
    assert_wording(
        root,
        &[&"--checkpoint_dir", &short],
        "invalid",
        "ROOT/short/rank1.safetensors: rank file missing: config.json has world_size 2, the folder has 1 rank file",
    );

    let bad = util::write_checkpoint(root, "bad", &CheckpointSpec::tiny(Family::Llama, 1, 1));
    fs::write(
        bad.join("rank0.safetensors"),
        util::safetensors_bytes(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
            &[0; 6],
        ),
    )
    .unwrap();
    assert_wording(
        root,
        &[&"--checkpoint_dir", &bad],
        "header",
        "ROOT/bad/rank0.safetensors: tensor overlaps the previous one: it begins at 2 but the previous ends at 4 (tensor `b`, byte 115)",
    );

    let blocked = root.join("a-file");
    fs::write(&blocked, "").unwrap();
    assert_wording(
        root,
        &[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &blocked.join("out"),
        ],
        "io",
        "ROOT/a-file/out: cannot create folder: Not a directory (os error 20)",
    );
}

#[test]
fn a_verification_that_fails_reads_as_pinned() {
    let tmp = util::tempdir();
    let root = tmp.path();
    let ckpt = util::write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));
    // Not a changed byte: which tensor holds the last one depends on the
    // layout, and this test pins words, not the planner.
    fs::remove_file(out.join("rank1.safetensors")).unwrap();
    let bad = util::run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    // The table goes to stdout, the error line to stderr.
    assert_eq!(bad.status.code(), Some(1));
    let line = util::stderr(&bad).replace(&root.display().to_string(), "ROOT");
    assert_eq!(
        line,
        "trtllm-prune: error: ROOT/out/rank1.safetensors: verification failed: missing from the output\n"
    );
}

#[test]
fn the_messages_no_simple_run_reaches_read_as_pinned() {
    let file = Path::new("ckpt/rank0.safetensors");
    let cases: Vec<(Error, ErrorKind, &str)> = vec![
        (
            Error::not_found(file),
            ErrorKind::NotFound,
            "ckpt/rank0.safetensors: file not found",
        ),
        (
            Error::missing_rank(file, 2),
            ErrorKind::Invalid,
            "ckpt/rank0.safetensors: rank file missing: config.json has world_size 2",
        ),
        (
            Error::InputChanged {
                file: file.into(),
                offset: 4096,
            },
            ErrorKind::Changed,
            "ckpt/rank0.safetensors: input file changed while it was being copied: it ends before byte 4096",
        ),
        (
            Error::changed_since_read(Path::new("out/rank0.safetensors")),
            ErrorKind::Changed,
            "out/rank0.safetensors: changed since it was read; nothing was replaced, run again",
        ),
        (
            Error::no_space(Path::new("out"), "133.23 MiB", "12.00 MiB"),
            ErrorKind::NoSpace,
            "out: not enough free space: the output needs 133.23 MiB, 12.00 MiB free; nothing was written",
        ),
        (
            Error::commit(
                Path::new("out/rank0.safetensors"),
                "cannot put the finished file in place (every file was put back as it was)",
                CommitFailure::ChangedSinceRead,
            ),
            ErrorKind::Changed,
            "out/rank0.safetensors: cannot put the finished file in place (every file was put back as it was): changed since it was compared",
        ),
        (
            Error::Interrupted {
                signal: libc::SIGINT,
            },
            ErrorKind::Interrupted,
            "interrupted by SIGINT; nothing of this run was kept",
        ),
        (
            Error::Aborted,
            ErrorKind::Aborted,
            "stopped because another file failed",
        ),
        (
            Error::AfterCommit {
                dir: "out".into(),
                problem: "cannot flush the folder to disk".into(),
            },
            ErrorKind::AfterCommit,
            "out: the output is in place, but cannot flush the folder to disk",
        ),
        (
            Error::CommitIncomplete {
                dir: "out".into(),
                problem: "cannot put rank0.safetensors in place".into(),
            },
            ErrorKind::CommitIncomplete,
            "out: commit incomplete: cannot put rank0.safetensors in place",
        ),
        (
            Error::Remote {
                url: "s3://bucket/ckpt/rank0.safetensors".into(),
                range: Some(8..1024),
                kind: RemoteProblem::Denied,
                problem: "access denied: check the credentials in the environment".into(),
            },
            ErrorKind::Remote(RemoteProblem::Denied),
            "s3://bucket/ckpt/rank0.safetensors: access denied: check the credentials in the environment (bytes 8..1024)",
        ),
    ];
    for (error, kind, line) in cases {
        assert_eq!(error.kind(), kind, "{line}");
        assert_eq!(error.chain().to_string(), line);
    }
}
