//! The command line: help, version, flag spellings, exit statuses, the
//! one-line error format, refused set-ups and what is (not) printed.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use trtllm_prune::fixture::{CheckpointSpec, Family};

use crate::util;

fn tiny(root: &Path, family: Family, tp: u64) -> PathBuf {
    util::write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(family, tp, 1))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Collapses runs of whitespace, so wrapped help text can be searched.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn help_states_the_rule_and_shows_the_seed_examples() {
    let out = util::run(&[&"--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = words(&stdout(&out));
    for fragment in [
        "attention.qkv.weight",
        "attention.proj.weight",
        "mlp.fc.weight",
        "mlp.proj.weight",
        "mlp.gate.weight",
        "CONTAINS",
        "--prune_all",
        "--checkpoint_dir",
        "--out_dir",
        "trtllm-prune --checkpoint_dir ./llama-7b-checkpoint --out_dir ./llama-7b-pruned",
        "trtllm-prune --checkpoint_dir ./llama-7b-checkpoint --out_dir ./llama-7b-skeleton --prune_all",
    ] {
        assert!(help.contains(fragment), "--help lacks `{fragment}`:\n{help}");
    }
}

#[test]
fn version_prints_name_and_version() {
    let out = util::run(&[&"--version"]);
    assert_eq!(out.status.code(), Some(0));
    // The commit and target follow (tests/first_hour.rs).
    assert!(
        stdout(&out).starts_with(&format!("trtllm-prune {} (", env!("CARGO_PKG_VERSION"))),
        "{}",
        stdout(&out)
    );
}

#[test]
fn accepts_kebab_case_aliases() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 1);
    let out_dir = tmp.path().join("skeleton");
    util::assert_success(util::run(&[
        &"--checkpoint-dir",
        &ckpt,
        &"--out-dir",
        &out_dir,
        &"--prune-all",
        &"--quiet",
    ]));
    let bytes = fs::read(out_dir.join("rank0.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(!st.is_empty());
    assert!(
        st.tensors().iter().all(|(_, t)| t.shape() == [0]),
        "--prune-all did not prune everything"
    );
}

#[test]
fn usage_errors_exit_with_status_2() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 1);
    let cases: [&[&dyn AsRef<std::ffi::OsStr>]; 4] = [
        &[&"--out_dir", &tmp.path().join("out")],
        &[&"--checkpoint_dir", &ckpt, &"--bogus"],
        &[&"--checkpoint_dir", &ckpt, &"--jobs", &"many"],
        &[],
    ];
    for args in cases {
        let out = util::run(args);
        assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
        assert!(!util::stderr(&out).is_empty());
    }
    assert_eq!(
        util::file_names(tmp.path()),
        ["ckpt"],
        "a usage error writes nothing"
    );
}

/// `--fsync` was a hidden flag of a design never released: flushing is the
/// default, `--no-fsync` the only switch.
#[test]
fn the_unreleased_fsync_flag_is_a_usage_error() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 1);
    let out = util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &tmp.path().join("out"),
        &"--fsync",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert_eq!(util::file_names(tmp.path()), ["ckpt"]);
}

/// Corrupts a rank file's header so that tensor `b` overlaps tensor `a`.
fn overlapping_rank() -> Vec<u8> {
    util::safetensors_bytes(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        &[0; 6],
    )
}

#[test]
fn bad_input_is_one_error_line_naming_the_file() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 1);
    let rank0 = ckpt.join("rank0.safetensors");
    let good = fs::read(&rank0).unwrap();
    let config = ckpt.join("config.json");
    let good_config = fs::read(&config).unwrap();

    type Setup = fn(&Path);
    // What, how, the error's kind, what its line names.
    let cases: [(&str, Setup, &str, &[&str]); 7] = [
        (
            "overlap",
            |c| fs::write(c.join("rank0.safetensors"), overlapping_rank()).unwrap(),
            "header",
            &["rank0.safetensors", "tensor `b`", "byte "],
        ),
        (
            "truncated",
            |c| {
                let p = c.join("rank0.safetensors");
                let bytes = fs::read(&p).unwrap();
                fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
            },
            "header",
            &["rank0.safetensors"],
        ),
        (
            "tiny file",
            |c| fs::write(c.join("rank0.safetensors"), b"\x01\x00").unwrap(),
            "header",
            &["rank0.safetensors"],
        ),
        (
            "bad dtype",
            |c| {
                let bytes = util::safetensors_bytes(
                    r#"{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#,
                    &[0; 4],
                );
                fs::write(c.join("rank0.safetensors"), bytes).unwrap();
            },
            "header",
            &["rank0.safetensors", "byte "],
        ),
        (
            "config not JSON",
            |c| fs::write(c.join("config.json"), "{\"mapping\": ").unwrap(),
            "invalid",
            &["config.json"],
        ),
        (
            "config not an object",
            |c| fs::write(c.join("config.json"), "[1]").unwrap(),
            "invalid",
            &["config.json"],
        ),
        (
            "no config",
            |c| fs::remove_file(c.join("config.json")).unwrap(),
            "invalid",
            &["config.json"],
        ),
    ];
    let out_dir = tmp.path().join("out");
    for (what, setup, kind, expected) in cases {
        fs::write(&rank0, &good).unwrap();
        fs::write(&config, &good_config).unwrap();
        setup(&ckpt);
        let before = util::snapshot(&ckpt);
        let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir]);
        let line = util::assert_error(&out);
        let args: [&dyn AsRef<std::ffi::OsStr>; 4] =
            [&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir];
        assert_eq!(util::error_kind(&args), kind, "{what}: {line}");
        for e in expected {
            assert!(line.contains(e), "{what}: `{e}` missing from: {line}");
        }
        assert!(!out_dir.exists(), "{what}: out_dir was created");
        assert_eq!(util::snapshot(&ckpt), before, "{what}: input changed");
    }
}

#[test]
fn missing_checkpoint_folder_is_an_error() {
    let tmp = util::tempdir();
    let missing = tmp.path().join("nope");
    let out = util::run(&[&"--checkpoint_dir", &missing]);
    let line = util::assert_error(&out);
    assert!(line.contains("nope"), "{line}");
    assert_eq!(util::file_names(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_tensor_name_with_a_newline_stays_on_one_error_line() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 1);
    let bytes = util::safetensors_bytes(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"evil\nname\u001b[2J":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        &[0; 6],
    );
    fs::write(ckpt.join("rank0.safetensors"), bytes).unwrap();
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"-q"]);
    let line = util::assert_error(&out);
    assert!(line.contains("evil\\nname"), "{line}");
    assert!(!line.contains('\u{1b}'), "escape character printed raw");
}

#[test]
fn a_path_with_a_newline_stays_on_one_error_line() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "new\nline",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    fs::remove_file(ckpt.join("rank1.safetensors")).unwrap();
    let out = util::run(&[&"--checkpoint_dir", &ckpt]);
    let line = util::assert_error(&out);
    assert!(line.contains("rank1.safetensors"), "{line}");
}

/// Runs with `out_dir` and asserts a refusal (kind `refused`) that wrote
/// nothing; returns the error line.
#[track_caller]
fn assert_refused(ckpt: &Path, out_dir: &dyn AsRef<std::ffi::OsStr>, cwd: &Path) -> String {
    let before = util::snapshot(ckpt);
    let names = util::file_names(ckpt);
    let out = util::run_in(
        cwd,
        &[&"--checkpoint_dir", &ckpt, &"--out_dir", out_dir, &"--json"],
    );
    assert_eq!(
        util::error_kind_of(&out),
        "refused",
        "{}",
        util::stderr(&out)
    );
    let line = util::stderr(&out).trim_end().to_string();
    assert_eq!(util::snapshot(ckpt), before, "input changed");
    assert_eq!(util::file_names(ckpt), names, "entry added to the input");
    line
}

#[test]
fn refuses_the_checkpoint_folder_as_out_dir_however_spelled() {
    let tmp = util::tempdir();
    let root = tmp.path();
    let ckpt = tiny(root, Family::Llama, 2);
    fs::create_dir(root.join("other")).unwrap();
    symlink(&ckpt, root.join("link")).unwrap();
    for spelling in [
        ckpt.clone(),
        PathBuf::from(format!("{}/", ckpt.display())),
        root.join("other/../ckpt"),
        root.join("ckpt/./"),
        root.join("ckpt/not-yet/.."),
        root.join("link"),
        PathBuf::from("ckpt"),
        PathBuf::from("./link/"),
    ] {
        assert_refused(&ckpt, &spelling, root);
        assert_eq!(util::file_names(root), ["ckpt", "link", "other"]);
        assert_eq!(util::file_names(&root.join("other")), Vec::<String>::new());
    }
    // The checkpoint given through the symlink, the output spelled directly.
    let before = util::snapshot(&ckpt);
    let out = util::run(&[&"--checkpoint_dir", &root.join("link"), &"--out_dir", &ckpt]);
    util::assert_error(&out);
    assert_eq!(util::snapshot(&ckpt), before);
}

#[test]
fn refuses_an_out_dir_that_is_a_regular_file() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 1);
    let file = tmp.path().join("out");
    fs::write(&file, "keep me").unwrap();
    let line = assert_refused(&ckpt, &file, tmp.path());
    assert!(line.contains("out"), "{line}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn refuses_an_output_that_is_a_hard_link_to_an_input() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 2);
    fs::write(ckpt.join("quant_cfg.json"), "{}").unwrap();
    for name in ["rank1.safetensors", "config.json", "quant_cfg.json"] {
        let out_dir = tmp.path().join(format!("out-{name}"));
        fs::create_dir(&out_dir).unwrap();
        fs::hard_link(ckpt.join(name), out_dir.join(name)).unwrap();
        let line = assert_refused(&ckpt, &out_dir, tmp.path());
        assert!(line.contains(name), "{line}");
        assert_eq!(util::file_names(&out_dir), [name], "something was written");
    }
}

#[test]
fn missing_rank_file_is_named_and_nothing_is_written() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 2);
    fs::remove_file(ckpt.join("rank1.safetensors")).unwrap();
    let out_dir = tmp.path().join("out");
    let before = util::snapshot(&ckpt);
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir]);
    let line = util::assert_error(&out);
    assert!(line.contains("rank1.safetensors"), "{line}");
    assert!(!out_dir.exists(), "out_dir left behind");
    assert_eq!(util::snapshot(&ckpt), before);
    // Nested, not-yet-existing output folders are not left behind either.
    let nested = tmp.path().join("a/b/c");
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &nested]);
    util::assert_error(&out);
    assert!(!tmp.path().join("a").exists(), "parent of out_dir created");
}

#[test]
fn corrupt_later_rank_writes_nothing_at_all() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 2);
    let rank1 = ckpt.join("rank1.safetensors");
    let mut bytes = fs::read(&rank1).unwrap();
    bytes.push(0); // one trailing byte
    fs::write(&rank1, bytes).unwrap();
    // Into a new folder: it is not created.
    let out_dir = tmp.path().join("out");
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir]);
    let line = util::assert_error(&out);
    assert!(line.contains("rank1.safetensors"), "{line}");
    let kind = util::error_kind(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir]);
    assert_eq!(kind, "header", "{line}");
    assert!(!out_dir.exists());
    // Into an existing folder holding an older output: it stays as it was.
    fs::create_dir(&out_dir).unwrap();
    fs::write(out_dir.join("rank0.safetensors"), "old rank0").unwrap();
    fs::write(out_dir.join("config.json"), "old config").unwrap();
    let before = util::snapshot(&out_dir);
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir]);
    util::assert_error(&out);
    assert_eq!(util::snapshot(&out_dir), before);
    assert_eq!(
        util::file_names(&out_dir),
        ["config.json", "rank0.safetensors"]
    );
}

#[test]
fn quiet_prints_nothing_on_success() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 2);
    // A rank file outside world_size is skipped: not worth a word under -q.
    fs::copy(
        ckpt.join("rank0.safetensors"),
        ckpt.join("rank9.safetensors"),
    )
    .unwrap();
    for flag in ["--quiet", "-q"] {
        let out_dir = tmp.path().join(format!("out{flag}"));
        let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out_dir, &flag]);
        let out = util::assert_success(out);
        assert_eq!(util::stderr(&out), "", "{flag}");
        assert!(out_dir.join("rank1.safetensors").exists());
    }
}

#[test]
fn prints_a_one_line_summary_on_stderr_and_nothing_on_stdout() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 2);
    let out_dir = tmp.path().join("out");
    let out = util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
    ]));
    let err = util::stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("2 ranks"), "{err}");
    assert!(lines[0].contains(out_dir.to_str().unwrap()), "{err}");
}

#[test]
fn progress_bars_never_appear_when_stderr_is_not_a_terminal() {
    let tmp = util::tempdir();
    // A few MiB: a visible bar draws on its first update, and would have
    // time for more.
    let mut spec = CheckpointSpec::tiny(Family::Llama, 2, 1);
    spec.hidden = 256;
    spec.intermediate = 1024;
    spec.vocab = 2048;
    let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &spec);
    // Once into a pipe (util::run), once into a regular file.
    let out = util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &tmp.path().join("a"),
        &"--jobs",
        &"1",
    ]));
    let log = tmp.path().join("stderr.log");
    let status = std::process::Command::new(util::bin())
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .arg("--out_dir")
        .arg(tmp.path().join("b"))
        .stderr(fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    for err in [util::stderr(&out), fs::read_to_string(&log).unwrap()] {
        assert!(!err.contains('\r'), "carriage return in {err:?}");
        assert!(!err.contains('\u{1b}'), "terminal escape in {err:?}");
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(err.starts_with("pruned 2 ranks"), "{err:?}");
    }
}

#[test]
fn more_bad_set_ups_are_one_error_line_and_write_nothing() {
    let tmp = util::tempdir();
    let root = tmp.path();
    let ckpt = tiny(root, Family::Llama, 2);
    let file = root.join("plain");
    fs::write(&file, "x").unwrap();
    let cases: [(
        &str,
        &dyn AsRef<std::ffi::OsStr>,
        &dyn AsRef<std::ffi::OsStr>,
    ); 3] = [
        ("checkpoint is a file", &file, &root.join("out")),
        ("out_dir under a file", &ckpt, &file.join("sub")),
        (
            "checkpoint missing",
            &root.join("missing"),
            &root.join("out"),
        ),
    ];
    for (what, checkpoint, out_dir) in cases {
        let before = util::snapshot(&ckpt);
        let out = util::run(&[&"--checkpoint_dir", checkpoint, &"--out_dir", out_dir]);
        util::assert_error(&out);
        assert_eq!(util::file_names(root), ["ckpt", "plain"], "{what}");
        assert_eq!(util::snapshot(&ckpt), before, "{what}");
    }
}

#[test]
fn bad_world_size_or_rank_path_names_the_file() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 2);
    let out_dir = tmp.path().join("out");
    let config = ckpt.join("config.json");
    let good = fs::read_to_string(&config).unwrap();
    for world_size in ["0", "-1", "1.5", "\"2\""] {
        fs::write(
            &config,
            format!(r#"{{"mapping": {{"world_size": {world_size}}}}}"#),
        )
        .unwrap();
        let line = util::assert_error(&util::run(&[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out_dir,
        ]));
        assert!(line.contains("config.json"), "{line}");
        assert!(line.contains("world_size"), "{line}");
    }
    fs::write(&config, good).unwrap();
    // A rank "file" that is a folder.
    fs::remove_file(ckpt.join("rank1.safetensors")).unwrap();
    fs::create_dir(ckpt.join("rank1.safetensors")).unwrap();
    let line = util::assert_error(&util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
    ]));
    assert!(line.contains("rank1.safetensors"), "{line}");
    assert!(!out_dir.exists());
}

#[test]
fn warns_about_a_skipped_rank_file_unless_quiet() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path(), Family::Llama, 2);
    fs::copy(
        ckpt.join("rank0.safetensors"),
        ckpt.join("rank2.safetensors"),
    )
    .unwrap();
    let out = util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &tmp.path().join("out"),
    ]));
    let err = util::stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("trtllm-prune: warning: ") && lines[0].contains("rank2.safetensors"),
        "{err}"
    );
    assert!(lines[1].starts_with("pruned 2 ranks"), "{err}");
}

#[test]
fn a_new_users_wrong_paths_get_errors_that_say_what_the_file_is() {
    let dir = util::tempdir();
    let ckpt = tiny(dir.path(), Family::Llama, 2);
    let config = ckpt.join("config.json");
    let line = util::assert_error(&util::run(&[&"inspect", &config]));
    assert!(
        line.ends_with(
            "config.json: not a safetensors file: it starts with the text `{\\n  \\\"arc`"
        ),
        "{line}"
    );
    let rank = ckpt.join("rank0.safetensors");
    let line = util::assert_error(&util::run(&[&"--checkpoint_dir", &rank]));
    assert!(
        line.contains("is a file, not a folder: give the folder that holds it"),
        "{line}"
    );
    let hf = dir.path().join("hf-config-only");
    fs::create_dir_all(&hf).unwrap();
    fs::write(
        hf.join("config.json"),
        "{\"architectures\": [\"LlamaForCausalLM\"]}",
    )
    .unwrap();
    let line = util::assert_error(&util::run(&[&"--checkpoint_dir", &hf]));
    assert!(
        line.contains("no checkpoint here: no rank{N}.safetensors"),
        "{line}"
    );
}
