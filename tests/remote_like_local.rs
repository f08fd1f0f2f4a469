//! A remote checkpoint read as a local one is (issue 16 items 3-6): the
//! files a Hugging Face folder over plain HTTP needs, a single remote
//! `.safetensors` file, a URL refused as `--out_dir`, and subfolders of a
//! bucket named in a warning. The servers are those of `remote.rs`.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use trtllm_prune::fixture::{write_safetensors, CheckpointSpec, Family, TensorSpec};
use trtllm_prune::Dtype;

use crate::remote::{bucket, files_of, moto, s3_command, s3_upload, HttpServer};
use crate::util::{assert_success, run, run_in, stderr, tempdir, write_checkpoint};

/// The side files of a Hugging Face model, with their contents.
const HF_SIDE_FILES: [(&str, &str); 7] = [
    (
        "config.json",
        "{\"architectures\": [\"LlamaForCausalLM\"]}\n",
    ),
    ("generation_config.json", "{\"max_length\": 64}\n"),
    ("tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}\n"),
    ("tokenizer_config.json", "{\"bos_token\": \"<s>\"}\n"),
    ("special_tokens_map.json", "{\"eos_token\": \"</s>\"}\n"),
    (
        "chat_template.jinja",
        "{% for m in messages %}{{ m }}{% endfor %}\n",
    ),
    ("merges.txt", "#version: 0.2\nh e\n"),
];

/// A Hugging Face folder: one `model.safetensors` and `HF_SIDE_FILES`.
fn hf_folder(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let tensors = vec![
        TensorSpec::new(
            "model.layers.0.self_attn.q_proj.weight",
            Dtype::BF16,
            &[32, 32],
        ),
        TensorSpec::new("model.layers.0.input_layernorm.weight", Dtype::BF16, &[32]),
    ];
    write_safetensors(&dir.join("model.safetensors"), &tensors, None).unwrap();
    for (name, text) in HF_SIDE_FILES {
        fs::write(dir.join(name), text).unwrap();
    }
}

fn bin() -> Command {
    Command::new(crate::util::bin())
}

#[test]
fn a_hugging_face_folder_over_http_brings_its_config_and_tokenizer_files() {
    let server = HttpServer::start();
    let hf = server.root().join("hf");
    hf_folder(&hf);
    let work = tempdir();
    let (local, remote) = (work.path().join("local"), work.path().join("remote"));
    let prune = ["--prune", "*_proj.weight", "-q"];
    assert_success(run(&[
        &"--checkpoint_dir",
        &hf,
        &"--out_dir",
        &local,
        &prune[0],
        &prune[1],
        &prune[2],
    ]));
    // A file no known name points at stays behind over HTTP.
    fs::write(hf.join("notes.txt"), "not discoverable\n").unwrap();

    let result = bin()
        .arg("--checkpoint_dir")
        .arg(server.url("hf"))
        .arg("--out_dir")
        .arg(&remote)
        .args(&prune[..2])
        .arg("--verify")
        .output()
        .unwrap();

    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(files_of(&remote), files_of(&local));
    let names: Vec<String> = files_of(&remote).into_iter().map(|(n, _)| n).collect();
    for (name, _) in HF_SIDE_FILES {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    assert!(
        stderr(&result).contains("other files could not be discovered over plain HTTP"),
        "{}",
        stderr(&result)
    );
}

/// `inspect`'s output for `arg`, with `prefix` (where the file is) cut.
fn inspected(arg: &str, prefix: &str) -> String {
    let out = bin().args(["inspect", arg]).output().unwrap();
    assert!(out.status.success(), "inspect {arg}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).replace(prefix, "<dir>")
}

/// The one error line of a run with `args`, asserting exit status 1.
fn failure_line(args: &[&str]) -> String {
    let out: Output = bin().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    stderr(&out).trim_end().to_string()
}

#[test]
fn inspect_verify_and_dry_run_of_one_http_file_work_as_locally() {
    let server = HttpServer::start();
    let ckpt = write_checkpoint(
        server.root(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let local_dir = fs::canonicalize(&ckpt).unwrap();
    let local = local_dir.join("rank0.safetensors");
    let url = server.url("ckpt/rank0.safetensors");

    let shown_locally = inspected(local.to_str().unwrap(), local_dir.to_str().unwrap());
    let shown_remotely = inspected(&url, &server.url("ckpt"));
    assert_eq!(shown_remotely, shown_locally);

    let out = tempdir();
    let out_dir = out.path().to_str().unwrap();
    for (given, local) in [(url.as_str(), local.to_str().unwrap())] {
        for form in [
            vec!["--checkpoint_dir", given, "--out_dir", out_dir, "--dry-run"],
            vec!["verify", "--checkpoint_dir", given, "--out_dir", out_dir],
        ] {
            let remote_line = failure_line(&form);
            let local_form: Vec<&str> = form
                .iter()
                .map(|a| if *a == given { local } else { a })
                .collect();
            let local_line = failure_line(&local_form);
            assert!(
                remote_line.contains("is a file, not a folder"),
                "{remote_line}"
            );
            assert_eq!(remote_line.replace(given, local), local_line);
        }
    }
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn inspect_of_one_s3_file_shows_its_tensors() {
    let port = moto();
    let root = tempdir();
    hf_folder(&root.path().join("hf"));
    let bucket = bucket("one-file");
    let bytes = fs::read(root.path().join("hf/model.safetensors")).unwrap();
    s3_upload(port, &bucket, &[("p/model.safetensors".into(), bytes)]);

    let result = s3_command(port)
        .args(["inspect", &format!("s3://{bucket}/p/model.safetensors")])
        .output()
        .unwrap();

    assert!(result.status.success(), "{}", stderr(&result));
    let shown = String::from_utf8_lossy(&result.stdout);
    assert!(
        shown.contains("model.layers.0.self_attn.q_proj.weight"),
        "{shown}"
    );
}

#[test]
fn a_url_as_out_dir_is_refused_with_exit_2_and_nothing_written() {
    let work = tempdir();
    let ckpt = write_checkpoint(
        work.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    for url in [
        "s3://bucket/out",
        "https://example.invalid/out",
        "foo+bar://x/out",
        // One slash short of a URL: still not a local folder named `s3:`.
        "s3:/bucket/out",
        "HF:/org/name",
    ] {
        for args in [
            vec!["--checkpoint_dir", ckpt.to_str().unwrap(), "--out_dir", url],
            vec!["verify", "--checkpoint_dir", "ckpt", "--out_dir", url],
        ] {
            let words: Vec<&dyn AsRef<OsStr>> =
                args.iter().map(|a| a as &dyn AsRef<OsStr>).collect();
            let out = run_in(work.path(), &words);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("outputs are written to a local folder only"),
                "{}",
                stderr(&out)
            );
            assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        }
    }
    let mut left = crate::util::file_names(work.path());
    left.sort();
    assert_eq!(left, ["ckpt"], "a folder named after the URL was made");
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_subfolders_are_named_in_a_warning_like_local_ones() {
    let port = moto();
    let root = tempdir();
    let ckpt = write_checkpoint(
        root.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    let mut uploads: Vec<(String, Vec<u8>)> = files_of(&ckpt)
        .into_iter()
        .map(|(name, bytes)| (format!("m/{name}"), bytes))
        .collect();
    uploads.push(("m/original/consolidated.pth".into(), vec![7; 16]));
    let bucket = bucket("subfolders");
    s3_upload(port, &bucket, &uploads);

    let result = s3_command(port)
        .arg("--checkpoint_dir")
        .arg(format!("s3://{bucket}/m"))
        .arg("--out_dir")
        .arg(root.path().join("out"))
        .output()
        .unwrap();

    assert!(result.status.success(), "{}", stderr(&result));
    let expected = format!("s3://{bucket}/m/original: skipped: subfolders are not copied");
    assert!(stderr(&result).contains(&expected), "{}", stderr(&result));
}

#[test]
fn an_optional_file_a_server_refuses_with_403_is_named_not_fatal() {
    // CDNs answer 403 for a file they do not have: a known side file the
    // folder lacks is then refused, and the prune goes on without it.
    let server = HttpServer::start();
    let hf = server.root().join("hf");
    hf_folder(&hf);
    server.inject("/hf/tokenizer.model", "refuse=403", 10);
    let out = tempdir();
    let result = bin()
        .arg("--checkpoint_dir")
        .arg(server.url("hf"))
        .arg("--out_dir")
        .arg(out.path().join("o"))
        .args(["--prune", "*_proj.weight"])
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("the server refused (403) tokenizer.model"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn inspect_of_a_missing_remote_file_says_not_found_for_that_file() {
    // As locally: the URL of a `.safetensors` file that is not there is
    // not found, not taken for a folder holding `model.safetensors`.
    let server = HttpServer::start();
    hf_folder(&server.root().join("hf"));
    let url = server.url("hf/nope.safetensors");
    let out = bin().args(["inspect", &url, "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{url}: not found")),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("model.safetensors"),
        "{}",
        stderr(&out)
    );
}
