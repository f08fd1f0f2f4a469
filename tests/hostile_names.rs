//! Hostile names and values: file and folder names, header metadata and
//! config values that hold terminal controls (C0, C1, bidi overrides) or
//! bytes that are not UTF-8 reach the terminal escaped, in every command
//! and on every line, progress bars included; JSON output holds the exact
//! names. And a `config.json` whose `is_pruned` is spelled twice ends true
//! for every JSON reader.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trtllm_prune::fixture::{write_safetensors, CheckpointSpec, Family, TensorSpec};
use trtllm_prune::Dtype;

use crate::util;

/// What an attacker would put in a name: clear the screen, retitle the
/// window (OSC ... BEL), reverse the text (RLO), a C1 next line, a byte
/// that is not UTF-8.
const HOSTILE: [&[u8]; 5] = [
    b"clear\x1b[2J",
    b"title\x1b]0;pwned\x07",
    "rlo\u{202e}cod.exe".as_bytes(),
    "nel\u{85}x".as_bytes(),
    b"bad\xffbyte",
];

/// How each of [`HOSTILE`] must be shown.
const SHOWN: [&str; 5] = [
    r"clear\x1b[2J",
    r"title\x1b]0;pwned\x07",
    r"rlo\u{202e}cod.exe",
    r"nel\u{85}x",
    r"bad\xffbyte",
];

fn hostile(prefix: &str, name: &[u8]) -> OsString {
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(name);
    OsString::from_vec(bytes)
}

/// A character that must never reach a terminal raw: C0 controls but the
/// newline, DEL, C1 controls, bidi controls.
fn is_control(c: char) -> bool {
    matches!(c,
        '\0'..='\x09' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}'
        | '\u{061c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Asserts that `bytes` is UTF-8 without a raw control character.
#[track_caller]
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => panic!(
            "{what}: a byte that is not UTF-8 at {}:\n{}",
            e.valid_up_to(),
            String::from_utf8_lossy(bytes).escape_debug()
        ),
    };
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| is_control(c)) {
        panic!("{what}: raw {c:?} at byte {at}:\n{}", text.escape_debug());
    }
}

#[track_caller]
fn assert_output_safe(what: &str, out: &Output) {
    assert_terminal_safe(&format!("{what} (stdout)"), &out.stdout);
    assert_terminal_safe(&format!("{what} (stderr)"), &out.stderr);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A one-rank checkpoint in a folder whose own name is hostile, with a
/// side file and a subfolder of every hostile name; returns the folder.
fn hostile_checkpoint(root: &Path) -> PathBuf {
    let dir = root.join(hostile("ckpt-", HOSTILE[1]));
    CheckpointSpec::tiny(Family::Llama, 1, 1)
        .write(&dir)
        .expect("checkpoint written");
    for name in HOSTILE {
        fs::write(dir.join(hostile("side-", name)), b"side file").unwrap();
        fs::create_dir(dir.join(hostile("dir-", name))).unwrap();
    }
    dir
}

#[track_caller]
fn assert_shows_every_name(what: &str, output: &str) {
    for shown in SHOWN {
        assert!(output.contains(shown), "{what}: no `{shown}` in:\n{output}");
    }
}

#[test]
fn dry_run_escapes_side_files_subfolders_and_the_folder() {
    let tmp = util::tempdir();
    let ckpt = hostile_checkpoint(tmp.path());
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--dry-run", &"-v"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_output_safe("dry run", &out);
    // "would copy" lines and the subfolder warnings.
    assert_shows_every_name("dry run stdout", &text(&out.stdout));
    assert_shows_every_name("dry run stderr", &text(&out.stderr));
}

#[test]
fn a_run_escapes_its_warnings_and_summary() {
    let tmp = util::tempdir();
    let ckpt = hostile_checkpoint(tmp.path());
    let pruned = tmp.path().join(hostile("out-", HOSTILE[0]));
    let out = util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &pruned,
        &"--verify",
    ]));
    assert_output_safe("run", &out);
    let err = text(&out.stderr);
    assert!(err.contains(r"out-clear\x1b[2J"), "{err}");
    for name in HOSTILE {
        assert!(pruned.join(hostile("side-", name)).is_file());
    }
}

#[test]
fn json_output_holds_the_exact_names_and_no_raw_controls() {
    let tmp = util::tempdir();
    let ckpt = hostile_checkpoint(tmp.path());
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--dry-run", &"--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_output_safe("dry run --json", &out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let copied: Vec<&str> = doc["copied_files"]
        .as_array()
        .expect("copied_files")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for name in &HOSTILE[..4] {
        let exact = format!("side-{}", std::str::from_utf8(name).unwrap());
        assert!(
            copied.contains(&exact.as_str()),
            "{exact:?} not in {copied:?}"
        );
    }
}

#[test]
fn json_output_of_a_folder_whose_name_is_not_utf8_is_whole() {
    let tmp = util::tempdir();
    let ckpt = tmp.path().join(hostile("ckpt-", HOSTILE[4]));
    CheckpointSpec::tiny(Family::Llama, 1, 1)
        .write(&ckpt)
        .expect("checkpoint written");
    let pruned = tmp.path().join("out");
    for args in [
        vec![
            &"--checkpoint_dir" as &dyn AsRef<OsStr>,
            &ckpt,
            &"--dry-run",
            &"--json",
        ],
        vec![&"--checkpoint_dir", &ckpt, &"--out_dir", &pruned, &"--json"],
        vec![&"inspect", &ckpt, &"--json"],
        vec![
            &"verify",
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &pruned,
            &"--json",
        ],
    ] {
        let out = util::run(&args);
        assert!(
            out.status.success(),
            "{:?}: {}",
            args.len(),
            text(&out.stderr)
        );
        assert_output_safe("--json", &out);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        let dir = doc
            .get("checkpoint_dir")
            .or_else(|| doc.get("path"))
            .and_then(|v| v.as_str())
            .expect("the folder is named");
        assert!(dir.ends_with("ckpt-bad\u{fffd}byte"), "{dir}");
    }
}

#[test]
#[cfg_attr(
    not(all(has_script, has_strace)),
    ignore = "needs script (apt install bsdutils), strace (apt install strace)"
)]
fn progress_bars_escape_the_names_they_show() {
    // The bars draw only on a terminal: `script` gives the run one, and an
    // strace delay on fsync keeps each file's bar up for a redraw.
    let tmp = util::tempdir();
    let ckpt = tmp.path().join("ckpt");
    CheckpointSpec::tiny(Family::Llama, 1, 1)
        .write(&ckpt)
        .expect("checkpoint written");
    for name in HOSTILE {
        fs::write(ckpt.join(hostile("", name)), b"side file").unwrap();
    }
    // Names reach the shell through the environment: any bytes, no quoting.
    let out = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(
            "exec strace -f -qq -o /dev/null -e trace=fsync \
             -e inject=fsync:delay_enter=500000 \
             \"$BIN\" --checkpoint_dir \"$CKPT\" --out_dir \"$OUT\" -j 1",
        )
        .arg("/dev/null")
        .env("BIN", util::bin())
        .env("CKPT", &ckpt)
        .env("OUT", tmp.path().join("out"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs");
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains(r"clear\x1b[2J ["),
        "no bar drawn:\n{screen:?}"
    );
    let raw: [&[u8]; 5] = [
        b"\x1b[2J",
        b"\x1b]0;pwned\x07",
        "\u{202e}".as_bytes(),
        "\u{85}".as_bytes(),
        b"\xff",
    ];
    for raw in raw {
        assert!(
            !out.stdout.windows(raw.len()).any(|w| w == raw),
            "raw {:?} on the terminal:\n{screen:?}",
            OsStr::from_bytes(raw)
        );
    }
}

#[test]
fn inspect_escapes_file_names_and_metadata() {
    let tmp = util::tempdir();
    let dir = tmp.path().join(hostile("model-", HOSTILE[2]));
    fs::create_dir(&dir).unwrap();
    let tensors = [TensorSpec::new("lm_head.weight", Dtype::BF16, &[4, 4])];
    let values: Vec<String> = HOSTILE[..4]
        .iter()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
        .collect();
    let metadata: Vec<(&str, &str)> = values.iter().map(|v| ("k", v.as_str())).collect();
    let shard = dir.join(format!("{}.safetensors", values[0]));
    write_safetensors(&shard, &tensors, Some(&metadata[..1])).unwrap();
    let meta = [
        ("format", "pt"),
        ("note", values[2].as_str()),
        ("c1", values[3].as_str()),
    ];
    write_safetensors(
        &dir.join(format!("{}.safetensors", values[1])),
        &tensors,
        Some(&meta),
    )
    .unwrap();
    for target in [dir.as_path(), shard.as_path()] {
        let out = util::run(&[&"inspect", &target]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_output_safe("inspect", &out);
        let json = util::run(&[&"inspect", &target, &"--json"]);
        assert!(json.status.success(), "{}", text(&json.stderr));
        assert_output_safe("inspect --json", &json);
        let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
        assert_eq!(doc["files"][0]["metadata"]["k"], values[0].as_str());
    }
    let listing = text(&util::run(&[&"inspect", &dir]).stdout);
    assert!(listing.contains(r"model-rlo\u{202e}cod.exe"), "{listing}");
    // Metadata is JSON text, shown with JSON's own escapes.
    assert!(listing.contains(r#""c1":"nel\u0085x""#), "{listing}");
}

#[test]
fn verify_escapes_its_table_and_its_error() {
    let tmp = util::tempdir();
    let ckpt = hostile_checkpoint(tmp.path());
    let pruned = tmp.path().join("out");
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &pruned,
        &"-q",
    ]));
    let args: [&dyn AsRef<OsStr>; 5] =
        [&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &pruned];
    let good = util::run(&args);
    assert!(good.status.success(), "{}", text(&good.stderr));
    assert_output_safe("verify", &good);
    // Verdicts name files as JSON can: a byte that is not UTF-8 is U+FFFD.
    let table = text(&good.stdout);
    for shown in &SHOWN[..4] {
        assert!(table.contains(shown), "no `{shown}` in:\n{table}");
    }
    fs::write(pruned.join(hostile("side-", HOSTILE[2])), b"changed!!").unwrap();
    let bad = util::run(&args);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    assert_output_safe("failed verify", &bad);
    assert!(
        text(&bad.stderr).contains(SHOWN[2]),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn errors_escape_the_folder_name() {
    let tmp = util::tempdir();
    for name in HOSTILE {
        let ckpt = tmp.path().join(OsStr::from_bytes(name));
        CheckpointSpec::tiny(Family::Llama, 2, 1)
            .write(&ckpt)
            .expect("checkpoint written");
        fs::remove_file(ckpt.join("rank1.safetensors")).unwrap();
        let out = util::run(&[&"--checkpoint_dir", &ckpt]);
        let line = util::assert_error(&out);
        assert_output_safe("missing rank", &out);
        assert!(line.contains("rank1.safetensors"), "{line}");
        assert_eq!(util::error_kind(&[&"--checkpoint_dir", &ckpt]), "invalid");
    }
    let missing = tmp.path().join(hostile("nope-", HOSTILE[4]));
    let line = util::assert_error(&util::run(&[&"--checkpoint_dir", &missing]));
    assert!(line.contains(r"nope-bad\xffbyte"), "{line}");
}

#[test]
fn errors_escape_config_values() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    for value in [
        "\"\\u001b[2J\u{202e}\u{85}\"",
        "{\"world_size\": \"\u{2066}x\u{9b}31m\"}",
    ] {
        let config = format!("{{\"mapping\": {{\"world_size\": {value}}}}}");
        fs::write(ckpt.join("config.json"), &config).unwrap();
        let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--dry-run"]);
        util::assert_error(&out);
        assert_output_safe("bad world_size", &out);
        fs::write(
            ckpt.join("config.json"),
            format!("{{\"mapping\": {value}}}"),
        )
        .unwrap();
        // inspect shows the ranks anyway, the config's problem a warning.
        let out = util::run(&[&"inspect", &ckpt]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("warning:"));
        assert_output_safe("bad mapping", &out);
    }
}

#[test]
fn usage_errors_escape_the_values_they_quote() {
    for args in [
        [
            "--checkpoint_dir",
            "ckpt",
            "--jobs",
            "4\u{202e}\u{85}\x1b[2J",
        ],
        ["--checkpoint_dir", "ckpt", "--bad\u{2066}\x1b]0;t\x07", "x"],
    ] {
        let out = util::run(&[&args[0], &args[1], &args[2], &args[3]]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert_output_safe("usage error", &out);
        assert!(
            text(&out.stderr).starts_with("error: "),
            "{}",
            text(&out.stderr)
        );
    }
}

// One meaning for duplicate keys.

/// The tiny config with `members` added at its top level, first.
fn config_with(members: &str) -> String {
    let config = CheckpointSpec::tiny(Family::Llama, 1, 1).config_json();
    let body = config.strip_prefix('{').expect("an object");
    format!("{{{members},{body}")
}

/// What Python's `json` reads for `is_pruned` in `path`: the last member
/// (json.load) and the first one (a first-wins hook), and the nested
/// `sub.is_pruned`.
fn python_reads(path: &Path) -> String {
    let script = r#"
import json, sys
path = sys.argv[1]
last = json.load(open(path))
first = json.load(open(path), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
print(last["is_pruned"], first["is_pruned"], last.get("sub", {}).get("is_pruned"))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "python3: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
#[cfg_attr(not(has_python3), ignore = "needs python3")]
fn every_spelling_of_a_duplicated_is_pruned_ends_true() {
    for (members, expected) in [
        // The issue's case: the second spelled with an escape.
        (
            r#""is_pruned": false, "sub": {"is_pruned": false}, "is_prun\u0065d": false"#,
            r#""is_pruned": true, "sub": {"is_pruned": false}, "is_prun\u0065d": true"#,
        ),
        (
            r#""is_pruned": 0, "sub": {"is_pruned": false}, "is_pruned":null"#,
            r#""is_pruned": true, "sub": {"is_pruned": false}, "is_pruned":true"#,
        ),
        (
            r#""\u0069s_pruned": "no", "sub": {"is_pruned": false}, "is_pruned": [false]"#,
            r#""\u0069s_pruned": true, "sub": {"is_pruned": false}, "is_pruned": true"#,
        ),
    ] {
        let tmp = util::tempdir();
        let ckpt = util::write_checkpoint(
            tmp.path(),
            "ckpt",
            &CheckpointSpec::tiny(Family::Llama, 1, 1),
        );
        fs::write(ckpt.join("config.json"), config_with(members)).unwrap();
        let out_dir = tmp.path().join("out");
        util::assert_success(util::run(&[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out_dir,
            &"-q",
        ]));
        let written = fs::read_to_string(out_dir.join("config.json")).unwrap();
        // Every other byte as it was.
        assert_eq!(written, config_with(expected));
        let value: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(value["is_pruned"], true);
        assert_eq!(value["sub"]["is_pruned"], false);
        let read = python_reads(&out_dir.join("config.json"));
        assert_eq!(read, "True True False", "{written}");
        let verified = util::run(&[
            &"verify",
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out_dir,
        ]);
        assert!(verified.status.success(), "{}", text(&verified.stdout));
    }
}

#[test]
fn verify_fails_a_config_with_a_false_is_pruned_spelled_first() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    let out_dir = tmp.path().join("out");
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
        &"-q",
    ]));
    // A last-wins reader sees true, a first-wins reader false.
    let written = fs::read_to_string(out_dir.join("config.json")).unwrap();
    let doubled = format!("{{\"is_pruned\": false,{}", &written[1..]);
    fs::write(out_dir.join("config.json"), doubled).unwrap();
    let out = util::run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("is_pruned"),
        "{}",
        text(&out.stderr)
    );
}
