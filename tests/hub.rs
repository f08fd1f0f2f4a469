//! Checkpoints straight from the Hugging Face Hub (`hf://`), against
//! `tests/hub_server.py`: the Hub's model-info, tree and resolve endpoints
//! over repositories with commits, a second "CDN" port the resolve URLs of
//! weights redirect to (which refuses any Authorization header), public,
//! gated and private repositories, and body bytes counted per path.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trtllm_prune::fixture::{CheckpointSpec, Family, SHARE_ALIGNMENT};
use trtllm_prune::{parse_header, plan_prune, PruneRule};

use crate::remote::files_of;
use crate::stores::Server;
use crate::util::{assert_success, run, tempdir, write_checkpoint};

/// The token the server grants everything to; never printed.
const TOKEN: &str = "hf_GoodTokenThatMustNeverBePrinted";
/// A token the server knows but that has no access to gated repositories.
const UNGRANTED: &str = "hf_UngrantedTokenThatMustNeverBePrinted";
/// The speculative first read of a safetensors file.
const PREFIX_READ: u64 = 64 << 10;

/// `tests/hub_server.py` on a fresh temp folder.
struct HubServer {
    server: Server,
    /// The server's blobs; removed with the server.
    _root: tempfile::TempDir,
}

impl HubServer {
    fn start(args: &[&str]) -> HubServer {
        let root = tempdir();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hub_server.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(root.path())
            .args(["--token", TOKEN, "--ungranted-token", UNGRANTED])
            .args(args);
        HubServer {
            server: Server::start(command, "tests/hub_server.py"),
            _root: root,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// One raw request to the server; returns the body.
    fn request(&self, method: &str, path_and_query: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.server.port)).expect("connect");
        write!(
            stream,
            "{method} {path_and_query} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(
            head.starts_with("HTTP/1.1 2"),
            "{method} {path_and_query}: {head}"
        );
        body.to_string()
    }

    fn post(&self, path_and_query: &str) -> String {
        self.request("POST", path_and_query)
    }

    /// Pushes the files under `src` as a new commit of `repo`
    /// (`models/ORG/NAME`); returns its sha.
    fn push(&self, repo: &str, src: &Path, extra: &str) -> String {
        self.post(&format!(
            "/__push?repo={repo}&src={}{extra}",
            src.to_str().expect("UTF-8 temp path")
        ))
    }

    /// Body bytes sent per request path since the last reset.
    fn stats(&self) -> BTreeMap<String, (u64, u64)> {
        crate::remote::parse_stats(&self.request("GET", "/__stats"))
    }

    /// Body bytes of files (everything but the API's JSON).
    fn file_bytes_served(&self) -> u64 {
        self.stats()
            .iter()
            .filter(|(path, _)| !path.starts_with("/api/"))
            .map(|(_, &(_, bytes))| bytes)
            .sum()
    }

    /// The command with the Hub's environment: this server, no token
    /// unless the test gives one, and no token file of the machine's.
    fn command(&self, hf_home: &Path) -> Command {
        let mut cmd = Command::new(crate::util::bin());
        cmd.env("HF_ENDPOINT", self.endpoint())
            .env("HF_HOME", hf_home)
            .env_remove("HF_TOKEN")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .env_remove("HF_TOKEN_PATH");
        cmd
    }
}

fn output(mut cmd: Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Prunes `src` locally (into `out`) with `args`.
fn local_prune(src: &Path, out: &Path, args: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--checkpoint_dir", &src, &"--out_dir", &out, &"-q"];
    for a in args {
        all.push(a);
    }
    assert_success(run(&all));
    files_of(out)
}

/// The bytes a plan keeps of a safetensors file.
fn kept_bytes(path: &Path, rule: &PruneRule) -> u64 {
    let bytes = fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let header = parse_header(&bytes[8..8 + n as usize], bytes.len() as u64).unwrap();
    plan_prune(&header, rule, SHARE_ALIGNMENT)
        .unwrap()
        .kept_bytes()
}

/// A TP2 checkpoint with a side file and a subfolder.
fn trtllm_checkpoint(root: &Path, name: &str) -> PathBuf {
    let ckpt = write_checkpoint(root, name, &CheckpointSpec::tiny(Family::Llama, 2, 1));
    fs::write(ckpt.join("quant_cfg.json"), "{\"quant_algo\": \"FP8\"}\n").unwrap();
    fs::create_dir(ckpt.join("original")).unwrap();
    fs::write(ckpt.join("original/consolidated.pth"), vec![7u8; 4096]).unwrap();
    ckpt
}

/// A copy of `src` whose rank files have every data byte inverted (same
/// names, sizes and headers: a commit a mixed read could not tell apart
/// by shape).
fn inverted_copy(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for (name, mut bytes) in files_of(src) {
        if name.ends_with(".safetensors") {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            for b in &mut bytes[8 + n..] {
                *b = !*b;
            }
        }
        fs::write(dst.join(name), bytes).unwrap();
    }
}

#[test]
fn a_trtllm_checkpoint_from_the_hub_equals_a_local_prune_and_only_kept_bytes_cross() {
    let hub = HubServer::start(&[]);
    let work = tempdir();
    let ckpt = trtllm_checkpoint(work.path(), "ckpt");
    let expected = local_prune(&ckpt, &work.path().join("local"), &[]);
    hub.push("models/nvidia/tiny-llama", &ckpt, "");
    let out = work.path().join("out");
    hub.post("/__reset");

    // A token is sent (the repository is public): the CDN refuses any
    // request that carries it, so it must stay on the Hub's host.
    let mut cmd = hub.command(work.path());
    cmd.env("HF_TOKEN", TOKEN)
        .args(["--checkpoint_dir", "hf://nvidia/tiny-llama", "--out_dir"])
        .arg(&out);
    let result = output(cmd);

    let err = stderr(&result);
    assert!(result.status.success(), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert!(
        err.contains("hf://nvidia/tiny-llama/original: skipped: subfolders are not copied"),
        "{err}"
    );
    assert_eq!(files_of(&out), expected);
    let stats = hub.stats();
    assert!(!stats.contains_key("__authorization_leaked"), "{stats:?}");
    // Only config.json, the side file, each rank's first read and the kept
    // bytes crossed as file bodies; the subfolder was never read.
    let ranks = ["rank0.safetensors", "rank1.safetensors"];
    let whole = |name: &str| fs::metadata(ckpt.join(name)).unwrap().len();
    let first_reads: u64 = ranks.iter().map(|n| whole(n).min(PREFIX_READ)).sum();
    let kept: u64 = ranks
        .iter()
        .map(|n| kept_bytes(&ckpt.join(n), &PruneRule::default()))
        .sum();
    assert_eq!(
        hub.file_bytes_served(),
        whole("config.json") + whole("quant_cfg.json") + first_reads + kept,
        "{stats:?}"
    );
    assert!(!stats.keys().any(|p| p.contains("original")), "{stats:?}");

    // inspect and verify read the same repository.
    let mut cmd = hub.command(work.path());
    cmd.args(["inspect", "hf://nvidia/tiny-llama"]);
    let inspect = output(cmd);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let mut cmd = hub.command(work.path());
    cmd.args([
        "verify",
        "--checkpoint_dir",
        "hf://nvidia/tiny-llama",
        "--out_dir",
    ])
    .arg(&out);
    let verify = output(cmd);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn a_sharded_hugging_face_folder_from_the_hub_keeps_its_side_files() {
    // Two tree entries a page: the listing follows the `Link` header.
    let hub = HubServer::start(&["--page", "2"]);
    let work = tempdir();
    let hf = work.path().join("hf");
    fs::create_dir_all(&hf).unwrap();
    let shards: Vec<(String, u64)> = (0..2u64)
        .map(|layer| {
            (
                format!("model-0000{}-of-00002.safetensors", layer + 1),
                layer,
            )
        })
        .collect();
    crate::util::write_hf_shards(&hf, &shards);
    for (name, text) in [
        (
            "config.json",
            r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}"#,
        ),
        ("generation_config.json", r#"{"do_sample": true}"#),
        ("tokenizer.json", r#"{"version": "1.0"}"#),
        (
            "tokenizer_config.json",
            r#"{"chat_template": "{{ messages }}"}"#,
        ),
        ("special_tokens_map.json", r#"{"bos_token": "<s>"}"#),
        ("README.md", "# a model\n"),
    ] {
        fs::write(hf.join(name), text).unwrap();
    }
    let expected = local_prune(
        &hf,
        &work.path().join("local"),
        &["--prune", "*_proj.weight"],
    );
    // Published under an old name: the Hub answers it with relative
    // redirects to the new one.
    hub.push("models/org/llama-shards", &hf, "");
    hub.post("/__rename?from=models/org/old-name&to=models/org/llama-shards");
    let out = work.path().join("out");

    let mut cmd = hub.command(work.path());
    cmd.args(["--checkpoint_dir", "hf://org/old-name@main", "--out_dir"])
        .arg(&out)
        .args(["--prune", "*_proj.weight", "-q", "--verify"]);
    let result = output(cmd);

    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(files_of(&out), expected);
    assert!(files_of(&out).iter().any(|(n, _)| n == "tokenizer.json"));

    // The same files in a dataset repository, in a folder of it.
    let bundle = work.path().join("bundle");
    fs::create_dir_all(&bundle).unwrap();
    fs::rename(&hf, bundle.join("llama")).unwrap();
    hub.push("datasets/org/bundle", &bundle, "");
    let out = work.path().join("out-dataset");
    let mut cmd = hub.command(work.path());
    cmd.args([
        "--checkpoint_dir",
        "hf://datasets/org/bundle/llama",
        "--out_dir",
    ])
    .arg(&out)
    .args(["--prune", "*_proj.weight", "-q"]);
    let result = output(cmd);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(files_of(&out), expected);
}

#[test]
fn a_revision_is_resolved_once_and_a_push_mid_run_never_mixes_commits() {
    let hub = HubServer::start(&[]);
    let work = tempdir();
    let first = write_checkpoint(
        work.path(),
        "first",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let second = work.path().join("second");
    inverted_copy(&first, &second);
    // The first's bytes again, as a new commit.
    let first_again = work.path().join("first-again");
    inverted_copy(&second, &first_again);
    let first_pruned = local_prune(&first, &work.path().join("first.out"), &[]);
    let second_pruned = local_prune(&second, &work.path().join("second.out"), &[]);
    assert_ne!(first_pruned, second_pruned);
    let first_sha = hub.push("models/org/moving", &first, "");
    hub.push("models/org/moving", &second, "");
    hub.push("models/org/moving", &first, "&branch=v1");

    // A commit, a branch, and the default branch.
    for (url, expected) in [
        (format!("hf://org/moving@{first_sha}"), &first_pruned),
        ("hf://org/moving@v1".to_string(), &first_pruned),
        ("hf://org/moving".to_string(), &second_pruned),
    ] {
        let out = work.path().join(format!("out-{}", url.len()));
        let mut cmd = hub.command(work.path());
        cmd.args(["--checkpoint_dir", &url, "--out_dir"])
            .arg(&out)
            .arg("-q");
        let result = output(cmd);
        assert!(result.status.success(), "{url}: {}", stderr(&result));
        assert_eq!(&files_of(&out), expected, "{url}");
        fs::remove_dir_all(&out).unwrap();
    }

    // main moves to the first checkpoint's bytes after the run's second
    // file request (config.json, then rank0's first read): every read
    // still names the commit main was at when the run began.
    hub.push("models/org/moving", &first_again, "&defer=2");
    let out = work.path().join("out-mid-run");
    let mut cmd = hub.command(work.path());
    cmd.args(["--checkpoint_dir", "hf://org/moving", "--out_dir"])
        .arg(&out)
        .args(["-q", "--verify"]);
    let result = output(cmd);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(files_of(&out), second_pruned);
    // The push did happen: a new run sees it.
    let out = work.path().join("out-after");
    let mut cmd = hub.command(work.path());
    cmd.args(["--checkpoint_dir", "hf://org/moving", "--out_dir"])
        .arg(&out)
        .arg("-q");
    assert!(output(cmd).status.success());
    assert_eq!(files_of(&out), first_pruned);
}

#[test]
fn refusals_of_the_hub_are_one_line_each_naming_what_to_do() {
    let hub = HubServer::start(&[]);
    let work = tempdir();
    let ckpt = write_checkpoint(
        work.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    hub.push("models/org/gated", &ckpt, "&access=gated");
    hub.push("models/org/private", &ckpt, "&access=private");
    hub.push("models/org/public", &ckpt, "");
    let cases: [(&str, Option<&str>, &str); 7] = [
        (
            "hf://org/gated",
            None,
            "a gated repository: accept its conditions at",
        ),
        (
            "hf://org/gated",
            Some(UNGRANTED),
            "a gated repository, and the account of HF_TOKEN has no access to it yet",
        ),
        (
            "hf://org/private",
            None,
            "it is private and HF_TOKEN is not set",
        ),
        (
            "hf://org/private",
            Some("hf_NotATokenTheHubKnowsAtAll"),
            "the Hub refused the token from HF_TOKEN",
        ),
        (
            "hf://org/missing",
            Some(TOKEN),
            "repository not found: it does not exist, or the account of HF_TOKEN cannot see it",
        ),
        (
            "hf://org/public@no-such-branch",
            None,
            "revision `no-such-branch` not found",
        ),
        (
            "hf://org/public/no/such/folder",
            None,
            "`no/such/folder` not found in the repository",
        ),
    ];
    for (url, token, expected) in cases {
        let out = work.path().join("out");
        let mut cmd = hub.command(work.path());
        if let Some(token) = token {
            cmd.env("HF_TOKEN", token);
        }
        cmd.args(["--checkpoint_dir", url, "--out_dir"]).arg(&out);
        let result = output(cmd);
        let err = stderr(&result);
        assert_eq!(result.status.code(), Some(1), "{url}: {err}");
        assert!(err.contains(expected), "{url}: {err}");
        assert!(err.contains(url), "{url}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{url}: {err}");
        if let Some(token) = token {
            assert!(!err.contains(token), "{url}: {err}");
        }
        assert!(!out.exists(), "{url}");
    }
}

#[test]
fn the_token_comes_from_hf_token_or_the_token_file() {
    let hub = HubServer::start(&[]);
    let work = tempdir();
    let ckpt = write_checkpoint(
        work.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    let expected = local_prune(&ckpt, &work.path().join("local"), &[]);
    hub.push("models/org/private", &ckpt, "&access=private");
    hub.push("models/org/gated", &ckpt, "&access=gated");
    let home = work.path().join("hf-home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("token"), format!("{TOKEN}\n")).unwrap();
    let elsewhere = work.path().join("elsewhere-token");
    fs::write(&elsewhere, TOKEN).unwrap();
    let empty_home = work.path().join("empty-home");
    for (n, (url, home, env)) in [
        ("hf://org/private", &empty_home, Some(("HF_TOKEN", TOKEN))),
        ("hf://org/gated", &home, None),
        (
            "hf://org/private",
            &empty_home,
            Some(("HF_TOKEN_PATH", elsewhere.to_str().unwrap())),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let out = work.path().join(format!("out{n}"));
        let mut cmd = hub.command(home);
        if let Some((key, value)) = env {
            cmd.env(key, value);
        }
        cmd.args(["--checkpoint_dir", url, "--out_dir"])
            .arg(&out)
            .arg("-q");
        let result = output(cmd);
        assert!(
            result.status.success(),
            "{url} {:?}: {}",
            env.map(|(key, _)| key),
            stderr(&result)
        );
        assert_eq!(files_of(&out), expected, "{url}");
    }
    // A refused token from the file says where it came from.
    fs::write(home.join("token"), "hf_StaleTokenFromLastYear\n").unwrap();
    let mut cmd = hub.command(&home);
    cmd.args(["inspect", "hf://org/private"]);
    let result = output(cmd);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refused the token from the token file"),
        "{err}"
    );
    assert!(!err.contains("hf_StaleTokenFromLastYear"), "{err}");
}
