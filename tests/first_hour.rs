//! A new user's first hour (issue 17, items 5 and 6): installing like the
//! tools people already use, and the command-line conventions they expect.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trtllm_prune::fixture::{CheckpointSpec, Family};

use crate::util;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tiny(root: &Path) -> PathBuf {
    util::write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the binary with `args` and the environment variables `env`.
fn run_env(env: &[(&str, &str)], args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(util::bin());
    cmd.env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("binary runs")
}

// ---- Item 5: packaging ----

#[test]
fn readme_installs_with_the_locked_dependencies() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("cargo install --locked --path ."), "README");
    assert!(
        !readme.contains("cargo install --path"),
        "README still installs without --locked"
    );
}

#[test]
fn release_profile_has_no_debug_info() {
    let manifest = fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .map(|s| s.split("\n[").next().unwrap_or(""))
        .unwrap_or("");
    assert!(
        !release.lines().any(|l| l.trim_start().starts_with("debug")
            && !l.contains("false")
            && !l.contains("0")),
        "[profile.release] keeps debug info:\n{release}"
    );
    assert!(
        manifest.contains("[profile.profiling]\ninherits = \"release\""),
        "no profiling profile for the benchmarks"
    );
}

/// Each file the wheel installs under share/ (maturin's data directory)
/// and the subcommand whose output it must be.
const SHIPPED: [(&str, &[&str]); 4] = [
    ("share/man/man1/trtllm-prune.1", &["man"]),
    (
        "share/bash-completion/completions/trtllm-prune",
        &["completions", "bash"],
    ),
    (
        "share/zsh/site-functions/_trtllm-prune",
        &["completions", "zsh"],
    ),
    (
        "share/fish/vendor_completions.d/trtllm-prune.fish",
        &["completions", "fish"],
    ),
];

#[test]
fn wheel_installs_the_man_page_and_completions_as_generated() {
    let pyproject = fs::read_to_string(repo().join("pyproject.toml")).unwrap();
    let data = pyproject
        .lines()
        .find_map(|l| l.strip_prefix("data = "))
        .expect("[tool.maturin] data = ... in pyproject.toml")
        .trim_matches('"');
    for (file, args) in SHIPPED {
        let path = repo().join(data).join("data").join(file);
        let shipped = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        let out = util::run(&args);
        assert!(out.status.success());
        assert!(
            out.stdout == shipped,
            "{} is stale: run `trtllm-prune {}` into it (or .ci/wheel-data)",
            path.display(),
            args.len()
        );
    }
}

#[test]
fn help_names_no_repository_file() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["inspect", "--help"],
        &["verify", "--help"],
        &["completions", "--help"],
        &["man", "--help"],
    ] {
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        let help = stdout(&util::run(&args));
        assert!(!help.contains("docs/"), "{help}");
        assert!(!help.contains(".md"), "{help}");
    }
}

#[test]
fn version_names_the_commit_and_the_target() {
    let out = util::run(&[&"--version"]);
    assert_eq!(out.status.code(), Some(0));
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!("trtllm-prune {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(line.contains("-linux-"), "no target triple: {line}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=9", "HEAD"])
        .current_dir(repo())
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(line.contains(&commit), "commit {commit} not in {line}");
    }
    // The man page stays the same from commit to commit.
    let man = stdout(&util::run(&[&"man"]));
    assert!(!man.contains("-linux-"), "the man page names the build");
}

// ---- Item 6: command-line conventions ----

#[test]
fn a_bare_folder_argument_gets_a_one_line_hint() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out = util::run(&[&ckpt]);
    assert_eq!(out.status.code(), Some(2));
    let err = util::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--checkpoint_dir"), "{err}");
    assert!(err.contains(&ckpt.display().to_string()), "{err}");
    assert_eq!(util::file_names(tmp.path()), ["ckpt"]);
    // A name with a space is quoted, so the hint can be pasted back.
    let spaced = tmp.path().join("my ckpt");
    fs::create_dir(&spaced).unwrap();
    let err = util::stderr(&util::run(&[&spaced]));
    assert!(
        err.trim_end()
            .ends_with(&format!("--checkpoint_dir '{}'", spaced.display())),
        "{err}"
    );
}

#[test]
fn every_usage_conflict_exits_with_status_2() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let other = tmp.path().join("other");
    let cases: [&[&dyn AsRef<std::ffi::OsStr>]; 6] = [
        &[
            &"--checkpoint_dir",
            &ckpt,
            &"--in-place",
            &"--out_dir",
            &other,
        ],
        &[&"--checkpoint_dir", &ckpt, &"-q", &"-v"],
        &[&"--checkpoint_dir", &ckpt, &"--in-place", &"--ranks", &"0"],
        &[&"--checkpoint_dir", &ckpt, &"--fsync", &"--no-fsync"],
        &[&"--checkpoint_dir", &"s3://bucket/ckpt", &"--in-place"],
        &[&"--checkpoint_dir", &ckpt, &"--dry-run", &"--verify"],
    ];
    for args in cases {
        let out = util::run(args);
        assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    }
    assert_eq!(
        util::file_names(tmp.path()),
        ["ckpt"],
        "a usage error writes nothing"
    );
    // The same folder given twice is no conflict.
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--in-place",
        &"--out_dir",
        &ckpt,
        &"-q",
    ]));
}

/// What bash's completion offers in `cwd` for the command line `words`
/// (the last word is the one being completed).
fn bash_completes(cwd: &Path, words: &[&str]) -> Vec<String> {
    let script = util::run(&[&"completions", &"bash"]);
    assert!(script.status.success());
    let dir = util::tempdir();
    let path = dir.path().join("trtllm-prune.bash");
    fs::write(&path, &script.stdout).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let driver = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_trtllm__prune trtllm-prune '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(driver)
        .current_dir(cwd)
        .output()
        .expect("bash runs");
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    got.sort();
    got
}

#[test]
#[cfg_attr(not(has_bash), ignore = "needs bash")]
fn completions_list_each_option_once() {
    let tmp = util::tempdir();
    let top = bash_completes(tmp.path(), &["trtllm-prune", "--"]);
    for (shown, hidden) in [
        ("--checkpoint_dir", "--checkpoint-dir"),
        ("--out_dir", "--out-dir"),
        ("--prune_all", "--prune-all"),
        ("--in-place", "--in_place"),
        ("--dry-run", "--dry_run"),
    ] {
        assert!(top.contains(&shown.to_string()), "{top:?}");
        assert!(!top.contains(&hidden.to_string()), "{top:?}");
    }
    let mut unique = top.clone();
    unique.dedup();
    assert_eq!(unique, top);
    for shell in ["zsh", "fish"] {
        let script = stdout(&util::run(&[&"completions", &shell]));
        assert!(!script.contains("checkpoint-dir"), "{shell}");
        assert!(script.contains("checkpoint_dir"), "{shell}");
    }
    // Both spellings still work.
    let ckpt = tiny(tmp.path());
    util::assert_success(util::run(&[
        &"--checkpoint-dir",
        &ckpt,
        &"--out-dir",
        &tmp.path().join("o"),
        &"-q",
    ]));
}

#[test]
#[cfg_attr(not(has_bash), ignore = "needs bash")]
fn bash_completes_paths_after_inspect_and_verify() {
    let tmp = util::tempdir();
    fs::write(tmp.path().join("rank0.safetensors"), b"").unwrap();
    fs::create_dir(tmp.path().join("ranked")).unwrap();
    assert_eq!(
        bash_completes(tmp.path(), &["trtllm-prune", "inspect", "rank"]),
        ["rank0.safetensors", "ranked"]
    );
    // After verify's --checkpoint_dir, folders (bash's `compopt -o
    // plusdirs`, which only a real completion applies).
    let script = stdout(&util::run(&[&"completions", &"bash"]));
    let verify = script
        .split("        trtllm__prune__subcmd__verify)\n")
        .nth(1)
        .expect("a verify case");
    let checkpoint_dir = verify
        .split("                --checkpoint_dir)\n")
        .nth(1)
        .and_then(|s| s.split(";;").next())
        .expect("a --checkpoint_dir case");
    assert!(checkpoint_dir.contains("plusdirs"), "{checkpoint_dir}");
    // Options still complete after the subcommand.
    let flags = bash_completes(tmp.path(), &["trtllm-prune", "inspect", "--js"]);
    assert_eq!(flags, ["--json"]);
}

#[test]
fn json_is_accepted_only_where_it_means_something() {
    for args in [
        &["completions", "bash", "--json"][..],
        &["--json", "completions", "bash"],
        &["man", "--json"],
    ] {
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        let out = util::run(&args);
        assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    }
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let inspect = util::run(&[&"inspect", &ckpt, &"--json"]);
    assert!(inspect.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(doc["command"], "inspect");
}

#[test]
fn a_failing_json_run_prints_an_error_document_on_stdout() {
    let tmp = util::tempdir();
    let missing = tmp.path().join("missing");
    for args in [
        &[
            &"--checkpoint_dir" as &dyn AsRef<std::ffi::OsStr>,
            &missing,
            &"--json",
        ][..],
        &[&"inspect", &missing, &"--json"],
        &[&"verify", &"--checkpoint_dir", &missing, &"--json"],
    ] {
        let out = util::run(args);
        assert_eq!(out.status.code(), Some(1));
        let err = util::stderr(&out);
        assert!(err.starts_with("trtllm-prune: error: "), "{err}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(&out)));
        let error = &doc["error"];
        assert_eq!(error["exit_code"], 1, "{doc}");
        assert!(error["kind"].is_string(), "{doc}");
        assert!(
            error["file"].as_str().unwrap().ends_with("missing"),
            "{doc}"
        );
        assert!(
            err.contains(error["message"].as_str().unwrap()),
            "{doc} vs {err}"
        );
    }
    // verify's verdicts are its document, failing or not: never two.
    let ckpt = tiny(tmp.path());
    let out_dir = tmp.path().join("out");
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
        &"-q",
    ]));
    let rank = out_dir.join("rank0.safetensors");
    let mut bytes = fs::read(&rank).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&rank, bytes).unwrap();
    let out = util::run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
        &"--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(&out)));
    assert_eq!(doc["ok"], false, "{doc}");
    // A usage error under --json is a document too.
    let out = util::run(&[&"--checkpoint_dir", &missing, &"--json", &"--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "usage");
    assert_eq!(doc["error"]["exit_code"], 2);
}

#[test]
fn verbose_is_repeatable_and_shows_the_plan_on_a_run() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let once = util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &tmp.path().join("a"),
        &"-v",
    ]);
    assert!(once.status.success(), "{}", util::stderr(&once));
    let err = util::stderr(&once);
    assert!(
        err.contains("rank0.safetensors"),
        "-v shows no plan:\n{err}"
    );
    assert!(!err.contains("attention.qkv.weight"), "{err}");
    let twice = util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &tmp.path().join("b"),
        &"-vv",
    ]);
    assert!(twice.status.success(), "{}", util::stderr(&twice));
    let err = util::stderr(&twice);
    let line = err
        .lines()
        .find(|l| l.contains("transformer.layers.0.attention.qkv.weight"))
        .unwrap_or_else(|| panic!("-vv shows no tensor:\n{err}"));
    assert!(line.contains("prune"), "{line}");
    assert!(stdout(&twice).is_empty());
}

#[test]
fn bracket_globs_match_character_classes() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out = util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--dry-run",
        &"--json",
        &"--keep",
        &"*mlp.[fg]*",
    ]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    assert!(
        !util::stderr(&out).contains("matches no tensor"),
        "{}",
        util::stderr(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = 0;
    for t in doc["files"][0]["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        if name.contains("mlp.fc.") || name.contains("mlp.gate.") {
            assert_eq!(t["pruned"], false, "{name}");
            seen += 1;
        } else if name.contains("mlp.proj.weight") {
            assert_eq!(t["pruned"], true, "{name}");
        }
    }
    assert!(seen >= 2, "{doc}");
}

/// Runs `args` under a pseudo-terminal (`script`), so stderr is a terminal.
fn run_on_terminal(env: &str, args: &str) -> String {
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("env -u NO_COLOR {env} '{}' {args}", util::bin().display()),
            "/dev/null",
        ])
        .output()
        .expect("script runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(not(has_script), ignore = "needs script (apt install bsdutils)")]
fn errors_and_warnings_are_colored_on_a_terminal_unless_told_not_to() {
    let tmp = util::tempdir();
    let missing = tmp.path().join("missing");
    let colored = run_env(&[], &[&"--checkpoint_dir", &missing, &"--color", &"always"]);
    let err = util::stderr(&colored);
    assert!(err.contains("\x1b["), "{err:?}");
    assert!(err.contains("error:"), "{err:?}");
    let plain = run_env(&[], &[&"--checkpoint_dir", &missing, &"--color", &"never"]);
    assert!(!util::stderr(&plain).contains('\x1b'));
    // Not a terminal: plain.
    let auto = run_env(&[], &[&"--checkpoint_dir", &missing]);
    assert!(!util::stderr(&auto).contains('\x1b'));
    assert_eq!(
        util::run(&[&"--checkpoint_dir", &missing, &"--color", &"sometimes"])
            .status
            .code(),
        Some(2)
    );
    let m = missing.display().to_string();
    let tty = run_on_terminal("", &format!("--checkpoint_dir '{m}'"));
    assert!(tty.contains("\x1b["), "{tty:?}");
    let no_color = run_on_terminal("NO_COLOR=1", &format!("--checkpoint_dir '{m}'"));
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    assert!(no_color.contains("error:"), "{no_color:?}");
    let never = run_on_terminal("", &format!("--checkpoint_dir '{m}' --color never"));
    assert!(!never.contains('\x1b'), "{never:?}");
}

#[test]
fn man_page_has_environment_see_also_and_every_subcommands_flags() {
    let page = stdout(&util::run(&[&"man"]));
    assert!(page.contains(".SH ENVIRONMENT"), "no ENVIRONMENT");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_ENDPOINT_URL",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "HTTPS_PROXY",
        "NO_COLOR",
    ] {
        assert!(page.contains(var), "{var} not in the page");
    }
    assert!(page.contains(".SH \"SEE ALSO\""), "no SEE ALSO");
    for sub in ["inspect", "verify"] {
        let section = page
            .split(&format!(".SS trtllm\\-prune {sub}\n"))
            .nth(1)
            .and_then(|s| s.split(".SS ").next())
            .unwrap_or_else(|| panic!("no {sub} section"));
        assert!(section.contains("\\-\\-json"), "{sub}: {section}");
        assert!(section.contains("\\-\\-prune_all"), "{sub}: {section}");
    }
    for flag in ["color", "verbose", "quiet", "in\\-place", "fetch\\-jobs"] {
        assert!(page.contains(&format!("\\-\\-{flag}")), "--{flag}");
    }
}

// ------------------------------------------- a rule that prunes nothing

/// A Hugging Face style folder: one shard, llama names, a config without
/// TensorRT-LLM's `mapping`.
fn hugging_face_folder(dir: &Path) {
    use trtllm_prune::fixture::{write_safetensors, TensorSpec};
    use trtllm_prune::Dtype;
    fs::create_dir_all(dir).unwrap();
    let mut specs = vec![TensorSpec::new(
        "model.embed_tokens.weight",
        Dtype::BF16,
        &[64, 32],
    )];
    for l in 0..3 {
        let p = format!("model.layers.{l}.");
        specs.push(TensorSpec::new(
            format!("{p}self_attn.q_proj.weight"),
            Dtype::BF16,
            &[32, 32],
        ));
        specs.push(TensorSpec::new(
            format!("{p}mlp.down_proj.weight"),
            Dtype::BF16,
            &[32, 64],
        ));
        specs.push(TensorSpec::new(
            format!("{p}input_layernorm.weight"),
            Dtype::BF16,
            &[32],
        ));
    }
    write_safetensors(&dir.join("model.safetensors"), &specs, None).unwrap();
    fs::write(
        dir.join("config.json"),
        r#"{"architectures": ["LlamaForCausalLM"]}"#,
    )
    .unwrap();
}

/// Names of the tensors emptied in a safetensors file (official reader).
fn emptied(path: &Path) -> Vec<String> {
    let bytes = fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st
        .tensors()
        .into_iter()
        .filter(|(_, t)| t.shape() == [0])
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names
}

#[test]
fn a_hugging_face_folder_whose_rule_prunes_nothing_is_refused_with_patterns_that_work() {
    let tmp = util::tempdir();
    let ckpt = tmp.path().join("hf");
    hugging_face_folder(&ckpt);
    let out = tmp.path().join("out");

    let line = util::assert_error(&util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
    ]));
    assert!(!out.exists(), "something was written: {line}");
    assert!(
        line.contains("prunes none of the 10 tensors") && line.contains("--full-copy"),
        "{line}"
    );
    // The largest families first, each as a flag to paste.
    let flags: Vec<&str> = line
        .match_indices("--prune '")
        .map(|(i, _)| {
            let rest = &line[i..];
            let end = rest[9..].find('\'').unwrap() + 10;
            &rest[..end]
        })
        .collect();
    assert_eq!(
        flags,
        [
            "--prune '*.mlp.down_proj.weight'",
            "--prune '*.self_attn.q_proj.weight'",
            "--prune 'model.embed_tokens.weight'"
        ],
        "{line}"
    );
    // Typed into a shell as the message gives them, they prune exactly
    // those tensors.
    let typed = format!(
        "exec '{}' --checkpoint_dir '{}' --out_dir '{}' -q {}",
        util::bin().display(),
        ckpt.display(),
        out.display(),
        flags[..2].join(" ")
    );
    let done = Command::new("sh").arg("-c").arg(&typed).output().unwrap();
    assert!(done.status.success(), "{}", util::stderr(&done));
    let mut expected: Vec<String> = (0..3)
        .flat_map(|l| {
            [
                format!("model.layers.{l}.mlp.down_proj.weight"),
                format!("model.layers.{l}.self_attn.q_proj.weight"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(emptied(&out.join("model.safetensors")), expected);
}

#[test]
fn a_full_copy_is_made_when_asked_for_and_a_trtllm_folder_keeps_the_originals_behaviour() {
    let tmp = util::tempdir();
    let ckpt = tmp.path().join("hf");
    hugging_face_folder(&ckpt);
    let out = tmp.path().join("copy");
    let r = util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--full-copy",
    ]);
    assert!(r.status.success(), "{}", util::stderr(&r));
    assert!(emptied(&out.join("model.safetensors")).is_empty());

    // TensorRT-LLM: written, is_pruned set, with a warning (the original
    // wrote such a folder too).
    let trt = tiny(tmp.path());
    let out = tmp.path().join("trt-out");
    let r = util::run(&[
        &"--checkpoint_dir",
        &trt,
        &"--out_dir",
        &out,
        &"--keep",
        &"*",
    ]);
    assert!(r.status.success(), "{}", util::stderr(&r));
    assert!(
        util::stderr(&r)
            .contains("warning: the rule prunes no tensor; the output will be a full copy"),
        "{}",
        util::stderr(&r)
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["is_pruned"], true);
}

// ---- Item 3: prune never leaves a folder its own verify rejects ----

#[test]
fn stale_rank_files_beyond_world_size_in_the_output_folder_are_refused_by_name() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    for stale in ["rank7.safetensors", "rank2.safetensors"] {
        fs::write(out_dir.join(stale), b"left from a tp=8 run").unwrap();
    }
    let before = util::snapshot(&out_dir);
    let out = util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
        &"--json",
    ]);
    let error = util::assert_error_kind(&out, "refused");
    assert!(
        error.contains("rank2.safetensors, rank7.safetensors") && error.contains("remove them"),
        "{error}"
    );
    assert_eq!(util::snapshot(&out_dir), before, "nothing written");

    // Removed as the hint says, the run succeeds and verify agrees.
    for stale in ["rank7.safetensors", "rank2.safetensors"] {
        fs::remove_file(out_dir.join(stale)).unwrap();
    }
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
    ]));
    assert_verifies(&ckpt, &out_dir);
}

#[test]
fn a_ranks_run_never_counts_a_rank_below_world_size_as_stale() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out_dir = tmp.path().join("out");
    for rank in ["0", "1"] {
        util::assert_success(util::run(&[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out_dir,
            &"--ranks",
            &rank,
        ]));
    }
    assert_verifies(&ckpt, &out_dir);
}

/// Asserts that `verify` accepts `out_dir` as the pruned `ckpt`.
#[track_caller]
fn assert_verifies(ckpt: &Path, out_dir: &Path) {
    let out = util::run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        util::stderr(&out)
    );
}

// ---- Item 7: the small things ----

/// Each file's inode and modification time: a rewrite changes them.
fn identities(dir: &Path) -> Vec<(String, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    util::file_names(dir)
        .into_iter()
        .map(|n| {
            let m = fs::metadata(dir.join(&n)).unwrap();
            (n, m.ino(), m.mtime(), m.mtime_nsec())
        })
        .collect()
}

#[test]
fn in_place_on_an_already_pruned_checkpoint_rewrites_nothing_and_says_so() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    util::assert_success(util::run(&[&"--checkpoint_dir", &ckpt, &"--in-place"]));
    let before = identities(&ckpt);
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--in-place"]);
    let out = util::assert_success(out);
    let err = util::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("already pruned") && err.contains("nothing was rewritten"),
        "{err}"
    );
    assert_eq!(identities(&ckpt), before, "no file was replaced");
    let out = util::run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert_eq!(doc["already_pruned"], true, "{doc}");
    assert_eq!(doc["dry_run"], false, "{doc}");
    assert_eq!(identities(&ckpt), before, "no file was replaced");

    // A rule that prunes more still rewrites.
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--in-place",
        &"--prune_all",
        &"-q",
    ]));
    assert_ne!(identities(&ckpt), before);
}

#[test]
fn inspect_shows_what_is_there_in_a_folder_with_a_missing_rank_or_a_bad_config() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    fs::remove_file(ckpt.join("rank1.safetensors")).unwrap();
    let out = util::run(&[&"inspect", &ckpt]);
    let err = util::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout(&out).contains("rank0.safetensors"),
        "{}",
        stdout(&out)
    );
    assert!(
        err.starts_with("trtllm-prune: warning: ") && err.contains("rank file missing"),
        "{err}"
    );

    fs::write(ckpt.join("config.json"), b"{\"mapping\": ").unwrap();
    let out = util::run(&[&"inspect", &ckpt, &"--json"]);
    let err = util::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout(&out).contains("rank0.safetensors"),
        "{}",
        stdout(&out)
    );
    assert!(
        err.contains("warning: ") && err.contains("config.json"),
        "{err}"
    );

    // A folder with nothing readable in it is still an error.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    util::assert_error(&util::run(&[&"inspect", &empty]));
}

#[test]
fn a_ranks_run_says_which_ranks_the_output_folder_still_lacks() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 4, 1),
    );
    let out_dir = tmp.path().join("out");
    let run = |ranks: &str| {
        let out = util::run(&[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out_dir,
            &"--ranks",
            &ranks,
        ]);
        util::stderr(&util::assert_success(out))
    };
    let err = run("1");
    let lacking: Vec<&str> = err.lines().filter(|l| l.contains("still lacks")).collect();
    assert_eq!(lacking.len(), 1, "{err}");
    assert!(
        lacking[0].contains("ranks 0, 2, 3 of world_size 4"),
        "{err}"
    );
    let err = run("0,2-3");
    assert!(!err.contains("still lacks"), "{err}");
}

// ---- Item 4: verify that helps ----

/// The problem lines `verify` printed under `file`'s line.
fn problem_lines(table: &str, file: &str) -> Vec<String> {
    table
        .lines()
        .skip_while(|l| !l.contains(file))
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .map(str::to_string)
        .collect()
}

#[test]
fn verify_shows_a_few_problems_per_file_and_hints_at_the_rule_the_output_was_made_with() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out_dir = tmp.path().join("out");
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
        &"--prune_all",
        &"-q",
    ]));
    let out = util::run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    let lines = problem_lines(&table, "rank0.safetensors");
    assert_eq!(lines.len(), 6, "the hint, 4 problems and a count:\n{table}");
    assert!(
        lines[0].contains("looks pruned with --prune_all"),
        "{table}"
    );
    assert!(lines[5].contains("and 5 more problems"), "{table}");
    assert!(!table.contains("(0 B)"), "{table}");
    assert!(table.contains("none of the 9 kept tensors"), "{table}");

    let hollow = tmp.path().join("hollow");
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &hollow,
        &"--hollow",
        &"-q",
    ]));
    let out = util::run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &hollow]);
    let table = stdout(&out);
    let lines = problem_lines(&table, "rank0.safetensors");
    assert!(lines[0].contains("looks pruned with --hollow"), "{table}");
    assert!(lines.len() <= 6, "{table}");
}

#[test]
fn verify_names_the_first_byte_that_differs() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out_dir = tmp.path().join("out");
    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
        &"-q",
    ]));
    let rank0 = out_dir.join("rank0.safetensors");
    let mut bytes = fs::read(&rank0).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let (name, begin, end) = header
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(name, t)| {
            let offsets = t.get("data_offsets")?.as_array()?;
            let (b, e) = (offsets[0].as_u64()?, offsets[1].as_u64()?);
            (e - b >= 16).then(|| (name.clone(), b as usize, e as usize))
        })
        .next()
        .expect("a kept tensor");
    let at = 8 + header_len + begin + (end - begin) / 2 + 3;
    bytes[at] ^= 0xff;
    fs::write(&rank0, &bytes).unwrap();
    let out = util::run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out_dir,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    let line = table.lines().find(|l| l.contains(&name)).expect(&table);
    assert!(
        line.contains(&format!("first at output byte {at}")),
        "{line}"
    );
}

// ---- Item 2: progress people can trust ----

#[test]
fn the_summary_line_ends_with_the_elapsed_time_and_the_throughput() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out = util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &tmp.path().join("o"),
    ]);
    let err = util::stderr(&util::assert_success(out));
    let line = err.lines().last().unwrap_or_default();
    let (_, tail) = line.rsplit_once("; done in ").expect(line);
    let (took, rate) = tail.split_once(" (").expect(line);
    let rate = rate.strip_suffix(')').expect(line);
    let (number, unit) = took.split_once(' ').expect(line);
    assert!(number.parse::<f64>().is_ok() && unit == "s", "{line}");
    assert!(rate.ends_with("/s") && rate.contains(' '), "{line}");
}

/// What a run printed on a terminal `columns` wide (a pty made by
/// `script`), its copies slowed down with strace so that the bars draw.
fn run_on_a_narrow_terminal(columns: u16, args: &str) -> String {
    run_on_a_slow_terminal(columns, "copy_file_range:delay_exit=300000", args)
}

/// What a run printed on a terminal `columns` wide, with strace's
/// `-e inject=` `delays` (the bars draw only on slow runs).
fn run_on_a_slow_terminal(columns: u16, delays: &str, args: &str) -> String {
    let log = util::tempdir();
    let log = log.path().join("typescript");
    let command = format!(
        "stty cols {columns} rows 24; strace -f -o /dev/null -e inject={delays} {} {args}",
        util::bin().display()
    );
    let status = Command::new("script")
        .args(["-qfec", &command])
        .arg(&log)
        .env_remove("NO_COLOR")
        .output()
        .expect("script runs");
    assert!(status.status.success(), "{}", util::stderr(&status));
    String::from_utf8_lossy(&fs::read(&log).unwrap()).into_owned()
}

#[test]
#[cfg_attr(
    not(all(has_script, has_strace)),
    ignore = "needs script (apt install bsdutils), strace (apt install strace)"
)]
fn progress_lines_fit_a_40_column_terminal_without_wrapping() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    for columns in [40u16, 50] {
        let out_dir = tmp.path().join(format!("out{columns}"));
        let shown = run_on_a_narrow_terminal(
            columns,
            &format!(
                "--checkpoint_dir {} --out_dir {}",
                ckpt.display(),
                out_dir.display()
            ),
        );
        // What each redraw writes on one line: between line ends, carriage
        // returns and cursor movements.
        let mut pieces = vec![String::new()];
        let mut chars = shown.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' | '\n' => pieces.push(String::new()),
                '\u{1b}' => {
                    // CSI: ESC [ parameters final-letter.
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                    pieces.push(String::new());
                }
                c => pieces.last_mut().unwrap().push(c),
            }
        }
        let bars: Vec<&String> = pieces
            .iter()
            .filter(|p| p.contains("total") || p.contains(".safetensors "))
            .filter(|p| !p.starts_with("pruned ") && !p.starts_with("Script "))
            .collect();
        assert!(
            !bars.is_empty(),
            "no bar drawn at {columns} columns:\n{shown:?}"
        );
        // indicatif fills the last line to the edge on purpose (the cursor
        // waits there); one column more would wrap.
        for bar in bars {
            let width = bar.chars().count();
            assert!(
                width <= columns as usize,
                "{width} columns of {columns}: {bar:?}"
            );
        }
    }
}

#[test]
#[cfg_attr(
    not(all(has_script, has_strace)),
    ignore = "needs script (apt install bsdutils), strace (apt install strace)"
)]
fn progress_counts_files_done_in_flight_and_queued() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let out_dir = tmp.path().join("out");
    let shown = run_on_a_narrow_terminal(
        80,
        &format!(
            "--checkpoint_dir {} --out_dir {} --jobs 1",
            ckpt.display(),
            out_dir.display()
        ),
    );
    assert!(
        shown.contains("0 of 2 files done, 1 in flight, 1 queued"),
        "{shown:?}"
    );
    assert!(
        shown.contains("1 of 2 files done, 1 in flight"),
        "{shown:?}"
    );
}

/// The totals (`28.62 KiB` of `total [...] 0 B/28.62 KiB`) the bars drew.
fn totals_drawn(shown: &str) -> Vec<String> {
    let mut totals: Vec<String> = shown
        .split(['\r', '\n', '\u{1b}'])
        .filter_map(|piece| {
            let rest = piece.split_once("total")?.1;
            let after = rest.split_once('/')?.1.trim_start();
            let mut words = after.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect();
    totals.dedup();
    totals
}

#[test]
#[cfg_attr(
    not(all(has_script, has_strace)),
    ignore = "needs script (apt install bsdutils), strace (apt install strace)"
)]
fn verify_and_dash_dash_verify_show_progress() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    let (plain, checked) = (tmp.path().join("plain"), tmp.path().join("checked"));
    let args = |out: &Path, extra: &str| {
        format!(
            "--checkpoint_dir {} --out_dir {} --jobs 1{extra}",
            ckpt.display(),
            out.display()
        )
    };
    let copy_only = totals_drawn(&run_on_a_narrow_terminal(80, &args(&plain, "")));
    let with_check = totals_drawn(&run_on_a_slow_terminal(
        80,
        "pread64:delay_exit=200000:when=1+6",
        &args(&checked, " --verify"),
    ));
    assert_eq!(copy_only.len(), 1, "{copy_only:?}");
    assert_eq!(with_check.len(), 1, "{with_check:?}");
    assert_ne!(copy_only, with_check, "the total counts the check's reads");

    let verify = run_on_a_slow_terminal(
        80,
        "pread64:delay_exit=200000:when=1+6",
        &format!("verify {}", args(&checked, "").replace(" --jobs 1", "")),
    );
    assert!(!totals_drawn(&verify).is_empty(), "{verify:?}");
}

#[test]
#[cfg_attr(
    not(all(has_script, has_strace)),
    ignore = "needs script (apt install bsdutils), strace (apt install strace)"
)]
fn the_total_shows_every_byte_the_files_moved() {
    let tmp = util::tempdir();
    let ckpt = tiny(tmp.path());
    // A small file last: its bytes are the ones a lagging total missed.
    fs::write(
        ckpt.join("quant_cfg.json"),
        "{\"quant_algo\": null}\n".repeat(4),
    )
    .unwrap();
    let shown = run_on_a_narrow_terminal(
        80,
        &format!(
            "--checkpoint_dir {} --out_dir {} --jobs 1",
            ckpt.display(),
            tmp.path().join("out").display()
        ),
    );
    // The last total drawn, once every file is done: `total [...] A/B`.
    let last = shown
        .split(['\r', '\n', '\u{1b}'])
        .filter_map(|piece| {
            let counts = piece.split_once("total")?.1.split_once(']')?.1;
            let (done, of) = counts.split_once('/')?;
            let of: String = of.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            Some((done.trim().to_string(), of))
        })
        .next_back()
        .expect("a total drawn");
    assert_eq!(last.0, last.1, "{shown:?}");
}
