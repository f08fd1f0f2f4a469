//! Remote checkpoints (`trtllm_prune::remote`) against real servers on
//! loopback: S3 is `moto` (PyPI `moto[server]`, started once for the whole
//! test binary, one bucket per test), plain HTTP is `tests/remote_server.py`
//! (Python's standard library only, started per test, with byte counts per
//! path and injectable 503s and cut connections). Both servers exit when
//! their stdin closes, so a killed test run leaves none behind.
//!
//! Without `moto` the S3 tests are ignored; under CI (`.ci/run` installs
//! it) they run.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use trtllm_prune::fixture::{
    clone_block_size, header_len_from_prefix, CheckpointSpec, Family, FetchOptions, RemoteFolder,
    N_LEN, SHARE_ALIGNMENT,
};
use trtllm_prune::{parse_header, plan_prune, CopyRange, Error, PruneRule, RemoteProblem};

use crate::stores::{start_moto, Server};
use crate::util::{assert_success, run, tempdir, write_checkpoint};

/// The secret key every S3 test signs with: it must never be printed.
const SECRET: &str = "s3cr3t-K3y-that-must-never-be-printed";
/// The speculative first read of a safetensors file.
const PREFIX_READ: u64 = 64 << 10;

// ---------------------------------------------------------------- servers

/// `tests/remote_server.py` serving a fresh temp folder (also used by
/// `limits.rs`).
pub(crate) struct HttpServer {
    server: Server,
    root: tempfile::TempDir,
}

impl HttpServer {
    pub(crate) fn start() -> HttpServer {
        HttpServer::start_with(&[])
    }

    pub(crate) fn start_with(args: &[&str]) -> HttpServer {
        let root = tempdir();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/remote_server.py");
        let mut command = Command::new("python3");
        command.arg(script).arg(root.path()).args(args);
        HttpServer {
            server: Server::start(command, "tests/remote_server.py"),
            root,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.root.path()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.server.port)
    }

    pub(crate) fn folder(&self, path: &str) -> RemoteFolder {
        RemoteFolder::parse(&self.url(path))
            .expect("a URL")
            .expect("a valid URL")
    }

    /// One raw request to the control endpoints; returns the body.
    pub(crate) fn control(&self, method: &str, path: &str) -> String {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.server.port)).expect("connect to test server");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer read");
        answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }

    /// (requests, body bytes sent) per path, since the last reset.
    pub(crate) fn stats(&self) -> BTreeMap<String, (u64, u64)> {
        parse_stats(&self.control("GET", "/__stats"))
    }

    pub(crate) fn bytes_served(&self) -> u64 {
        self.stats().values().map(|&(_, bytes)| bytes).sum()
    }

    pub(crate) fn reset(&self) {
        self.control("POST", "/__reset");
    }

    pub(crate) fn inject(&self, path: &str, fault: &str, times: u32) {
        self.control(
            "POST",
            &format!("/__fault?path={path}&{fault}&times={times}"),
        );
    }
}

/// The port of the shared moto server (tests that call it need
/// `has_moto`, so it is there).
pub(crate) fn moto() -> u16 {
    crate::stores::moto().expect("moto: tests that use it carry has_moto")
}

fn s3_config(port: u16) -> Vec<(String, String)> {
    vec![
        ("aws_endpoint".into(), format!("http://127.0.0.1:{port}")),
        ("aws_allow_http".into(), "true".into()),
        ("aws_access_key_id".into(), "AKIDTESTING".into()),
        ("aws_secret_access_key".into(), SECRET.into()),
        ("aws_region".into(), "us-east-1".into()),
    ]
}

fn s3_folder(port: u16, url: &str) -> RemoteFolder {
    let config = s3_config(port);
    let pairs: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    RemoteFolder::parse_with(url, &pairs)
        .expect("a URL")
        .expect("a valid URL")
}

/// Creates `bucket` (moto takes an unsigned PUT) and uploads `files`
/// (key, bytes) with object_store itself.
pub(crate) fn s3_upload(port: u16, bucket: &str, files: &[(String, Vec<u8>)]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("create bucket");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("moto answers");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "bucket not created: {answer}"
    );
    let store = s3_store(port, bucket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (key, bytes) in files {
        runtime
            .block_on(store.put(
                &ObjectPath::parse(key).expect("a key"),
                PutPayload::from(bytes.clone()),
            ))
            .expect("upload");
    }
}

/// Uploads from a thread of its own: callable from inside a copy's
/// progress callback, which runs within the crate's runtime.
fn s3_upload_from_thread(port: u16, bucket: &str, key: &str, bytes: Vec<u8>) {
    let (bucket, key) = (bucket.to_string(), key.to_string());
    std::thread::spawn(move || {
        let store = s3_store(port, &bucket);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(store.put(
                &ObjectPath::parse(key).expect("a key"),
                PutPayload::from(bytes),
            ))
            .expect("upload");
    })
    .join()
    .expect("upload thread");
}

fn s3_store(port: u16, bucket: &str) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_access_key_id("AKIDTESTING")
        .with_secret_access_key(SECRET)
        .with_region("us-east-1")
        .build()
        .expect("S3 store")
}

/// A bucket name no other test uses.
pub(crate) fn bucket(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{test}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------- helpers

/// `len` bytes that differ at every offset worth checking.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

fn output_file(dir: &Path, name: &str, len: u64) -> (PathBuf, File) {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("output file");
    file.set_len(len).expect("output sized");
    (path, file)
}

fn no_progress(_: u64) {}

fn never_cancel() -> trtllm_prune::Result<()> {
    Ok(())
}

fn remote_kind(e: &Error) -> RemoteProblem {
    match e {
        Error::Remote { kind, .. } => *kind,
        other => panic!("expected a remote error, got {other}"),
    }
}

/// An error message is one line, names `url`, and holds no secret.
#[track_caller]
fn assert_one_line(e: &Error, url: &str) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "more than one line: {text}");
    assert!(text.contains(url), "does not name {url}: {text}");
    assert!(!text.contains(SECRET), "shows the secret: {text}");
    assert!(text.len() < 600, "too long: {text}");
}

/// What a remote prune of one file does, the way the checkpoint reader
/// and the copy jobs will: the first 64 KiB, the header's rest if longer,
/// plan, header bytes, then only the kept ranges.
fn prune_remote_file(folder: &RemoteFolder, name: &str, out_dir: &Path, align: u64) -> u64 {
    let (prefix, info) = folder.read_prefix(name, PREFIX_READ).expect("prefix read");
    let n = header_len_from_prefix(&prefix, info.size).expect("length prefix");
    let header_end = N_LEN + n;
    let mut json = prefix[N_LEN as usize..].to_vec();
    if header_end > prefix.len() as u64 {
        let rest = folder
            .read_range(name, &info, prefix.len() as u64..header_end)
            .expect("header rest");
        json.extend_from_slice(&rest);
    }
    json.truncate(n as usize);
    let header = parse_header(&json, info.size).expect("valid header");
    let plan = plan_prune(&header, &PruneRule::original(false), align).expect("plan");
    let (_, out) = output_file(out_dir, name, plan.output_len);
    use std::os::unix::fs::FileExt;
    out.write_all_at(&plan.header_bytes, 0)
        .expect("header written");
    folder
        .copy_ranges(
            name,
            &info,
            &plan.copies,
            &out,
            &FetchOptions {
                jobs: 4,
                part_size: 256 << 10,
                ..FetchOptions::default()
            },
            &no_progress,
            &never_cancel,
        )
        .expect("kept ranges copied")
}

/// A checkpoint whose rank headers are longer than the first read, so the
/// header's rest is a second request.
fn long_header_spec() -> CheckpointSpec {
    CheckpointSpec {
        layers: 160,
        ..CheckpointSpec::tiny(Family::Llama, 2, 1)
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn urls_are_told_from_paths_and_shown_without_credentials() {
    for path in ["ckpt", "./s3/x", "/data/gs:/x", "C:\\x", "s3:/x"] {
        assert!(RemoteFolder::parse(path).is_none(), "{path} is a path");
    }
    let folder = RemoteFolder::parse("http://example.com:8080/models/llama/")
        .expect("a URL")
        .expect("valid");
    assert_eq!(folder.url(), "http://example.com:8080/models/llama");
    assert_eq!(
        folder.object_url("rank0.safetensors"),
        "http://example.com:8080/models/llama/rank0.safetensors"
    );
    let refused = [
        (
            "http://user:hunter2hunter2@example.com/ckpt",
            "hunter2hunter2",
        ),
        (
            "s3://bucket/ckpt?X-Amz-Signature=deadbeefdeadbeef",
            "deadbeefdeadbeef",
        ),
        ("ftp://example.com/ckpt", "ftp"),
        ("file:///tmp/ckpt", "file"),
    ];
    for (url, secret_or_scheme) in refused {
        let e = RemoteFolder::parse(url)
            .expect("a URL")
            .expect_err("refused");
        let text = e.to_string();
        assert_eq!(remote_kind(&e), RemoteProblem::Invalid, "{text}");
        assert!(!text.contains('\n'), "{text}");
        if secret_or_scheme.len() > 6 {
            assert!(!text.contains(secret_or_scheme), "secret shown: {text}");
        } else {
            assert!(text.contains("unsupported URL scheme"), "{text}");
        }
    }
    // The store's configuration never shows through Debug.
    let folder = RemoteFolder::parse_with(
        "s3://bucket/ckpt",
        &[
            ("aws_secret_access_key", SECRET),
            ("aws_access_key_id", "AKIDTESTING"),
            ("aws_region", "us-east-1"),
        ],
    )
    .expect("a URL")
    .expect("valid");
    let debug = format!("{folder:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("s3://bucket/ckpt"), "{debug}");
    // The other stores' URL forms are recognized (building needs no network).
    match RemoteFolder::parse("gs://bucket/a/b").expect("a URL") {
        Ok(gs) => assert_eq!(gs.url(), "gs://bucket/a/b"),
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
    let az = RemoteFolder::parse_with(
        "az://container/ckpt",
        &[
            ("azure_storage_account_name", "account"),
            ("azure_storage_account_key", "a2V5a2V5a2V5a2V5"),
        ],
    )
    .expect("a URL")
    .expect("valid Azure URL");
    assert_eq!(az.url(), "az://container/ckpt");
    assert!(!format!("{az:?}").contains("a2V5a2V5a2V5a2V5"));
}

#[test]
fn http_reads_config_and_headers_and_cannot_list() {
    let server = HttpServer::start();
    let spec = long_header_spec();
    let local = write_checkpoint(server.root(), "ckpt", &spec);
    let folder = server.folder("ckpt");
    assert_eq!(folder.list().expect("no error"), None);
    let config = folder.get_small("config.json").expect("read");
    assert_eq!(
        config,
        Some(fs::read(local.join("config.json")).expect("local"))
    );
    assert_eq!(folder.get_small("quant_cfg.json").expect("no error"), None);

    let local_bytes = fs::read(local.join("rank0.safetensors")).expect("local rank");
    let (prefix, info) = folder
        .read_prefix("rank0.safetensors", PREFIX_READ)
        .expect("prefix");
    assert_eq!(info.size, local_bytes.len() as u64);
    assert!(info.e_tag.is_some(), "the test server sends ETags");
    assert_eq!(prefix[..], local_bytes[..PREFIX_READ as usize]);
    let rest = folder
        .read_range("rank0.safetensors", &info, PREFIX_READ..PREFIX_READ + 1000)
        .expect("range");
    assert_eq!(
        rest[..],
        local_bytes[PREFIX_READ as usize..PREFIX_READ as usize + 1000]
    );
    // An object shorter than the first read comes whole.
    let (whole, small) = folder
        .read_prefix("config.json", PREFIX_READ)
        .expect("small");
    assert_eq!(whole.len() as u64, small.size);
    // A range past the end is refused before any request.
    let before = server.bytes_served();
    let e = folder
        .read_range("rank0.safetensors", &info, info.size - 1..info.size + 1)
        .expect_err("past the end");
    assert_eq!(remote_kind(&e), RemoteProblem::Invalid);
    assert_eq!(server.bytes_served(), before);
}

#[test]
fn copy_merges_touching_ranges_and_splits_long_ones() {
    let server = HttpServer::start();
    let object = pattern(1 << 20, 7);
    fs::create_dir(server.root().join("f")).expect("dir");
    fs::write(server.root().join("f/blob.bin"), &object).expect("object");
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("blob.bin", 8).expect("identity");
    server.reset();

    // Touching in the object, scattered in the output: one request; a
    // long range: several parts; an empty range: nothing.
    let ranges = [
        CopyRange {
            src: 1000,
            dst: 500_000,
            len: 3000,
        },
        CopyRange {
            src: 4000,
            dst: 0,
            len: 5000,
        },
        CopyRange {
            src: 9000,
            dst: 200_000,
            len: 100,
        },
        CopyRange {
            src: 100_000,
            dst: 5000,
            len: 150_000,
        },
        CopyRange {
            src: 700_000,
            dst: 900_000,
            len: 0,
        },
        CopyRange {
            src: (1 << 20) - 10,
            dst: 600_000,
            len: 10,
        },
    ];
    let out_dir = tempdir();
    let (path, out) = output_file(out_dir.path(), "out.bin", 1 << 20);
    let progress = AtomicU64::new(0);
    let fetched = folder
        .copy_ranges(
            "blob.bin",
            &info,
            &ranges,
            &out,
            &FetchOptions {
                jobs: 3,
                part_size: 64 << 10,
                ..FetchOptions::default()
            },
            &|n| {
                progress.fetch_add(n, Ordering::Relaxed);
            },
            &never_cancel,
        )
        .expect("copied");
    let asked: u64 = ranges.iter().map(|r| r.len).sum();
    assert_eq!(fetched, asked);
    assert_eq!(progress.load(Ordering::Relaxed), asked);

    let mut expected = vec![0u8; 1 << 20];
    for r in ranges {
        let (s, d, l) = (r.src as usize, r.dst as usize, r.len as usize);
        expected[d..d + l].copy_from_slice(&object[s..s + l]);
    }
    assert!(
        fs::read(&path).expect("output") == expected,
        "output differs"
    );
    // 8100 touching bytes: 1 request; 150,000 bytes in 64 KiB parts: 3;
    // the last 10 bytes: 1.
    let stats = server.stats();
    assert_eq!(stats["/f/blob.bin"], (5, asked), "{stats:?}");
}

#[test]
fn a_remote_prune_fetches_only_headers_config_and_kept_bytes() {
    let server = HttpServer::start();
    let spec = long_header_spec();
    let local = write_checkpoint(server.root(), "ckpt", &spec);
    let out = tempdir();
    // The local prune is the reference for the bytes.
    let local_out = out.path().join("local");
    assert_success(run(&[
        &"--checkpoint_dir",
        &local,
        &"--out_dir",
        &local_out,
    ]));
    let align = clone_block_size(out.path()).unwrap_or(SHARE_ALIGNMENT);

    server.reset();
    let folder = server.folder("ckpt");
    let remote_out = out.path().join("remote");
    fs::create_dir(&remote_out).expect("dir");
    let config = folder
        .get_small("config.json")
        .expect("config")
        .expect("exists");
    let mut kept = 0;
    for rank in 0..spec.world_size() {
        let name = format!("rank{rank}.safetensors");
        kept += prune_remote_file(&folder, &name, &remote_out, align);
        let expected = fs::read(local_out.join(&name)).expect("local output");
        let got = fs::read(remote_out.join(&name)).expect("remote output");
        assert!(
            got == expected,
            "{name}: remote prune differs from the local one"
        );
    }

    // Served: config.json, and per rank the first 64 KiB, the header's
    // rest, and the kept bytes; nothing else.
    let mut budget = config.len() as u64 + kept;
    for rank in 0..spec.world_size() {
        let bytes = fs::read(local.join(format!("rank{rank}.safetensors"))).expect("rank");
        let n = header_len_from_prefix(&bytes, bytes.len() as u64).expect("prefix");
        assert!(
            N_LEN + n > PREFIX_READ,
            "the fixture's header must need a second read"
        );
        budget += N_LEN + n;
    }
    let served = server.bytes_served();
    assert_eq!(served, budget, "{:?}", server.stats());
    let whole: u64 = fs::read_dir(&local)
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    assert!(served * 3 < whole, "served {served} of {whole} bytes");
}

#[test]
fn http_503s_and_a_cut_connection_are_recovered() {
    let server = HttpServer::start();
    let object = pattern(600_000, 3);
    fs::create_dir(server.root().join("f")).expect("dir");
    fs::write(server.root().join("f/blob.bin"), &object).expect("object");
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("blob.bin", 8).expect("identity");
    server.reset();
    server.inject("/f/blob.bin", "status=503", 2);
    server.inject("/f/blob.bin", "cut=100000", 1);
    let out_dir = tempdir();
    let (path, out) = output_file(out_dir.path(), "out.bin", 600_000);
    let ranges = [CopyRange {
        src: 0,
        dst: 0,
        len: 600_000,
    }];
    let started = Instant::now();
    let fetched = folder
        .copy_ranges(
            "blob.bin",
            &info,
            &ranges,
            &out,
            &FetchOptions {
                jobs: 1,
                part_size: 1 << 20,
                ..FetchOptions::default()
            },
            &no_progress,
            &never_cancel,
        )
        .expect("recovered");
    assert_eq!(fetched, 600_000);
    assert!(fs::read(&path).expect("output") == object, "output differs");
    // Two 503s, the cut request, and the resumed rest: no byte twice.
    let (requests, bytes) = server.stats()["/f/blob.bin"];
    assert_eq!((requests, bytes), (4, 600_000));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_cut_body_without_etags_is_resumed_too() {
    let server = HttpServer::start_with(&["--no-etag"]);
    let object = pattern(300_000, 9);
    fs::create_dir(server.root().join("f")).expect("dir");
    fs::write(server.root().join("f/blob.bin"), &object).expect("object");
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("blob.bin", 8).expect("identity");
    assert_eq!(info.e_tag, None);
    server.reset();
    server.inject("/f/blob.bin", "cut=70000", 2);
    let out_dir = tempdir();
    let (path, out) = output_file(out_dir.path(), "out.bin", 300_000);
    let ranges = [CopyRange {
        src: 0,
        dst: 0,
        len: 300_000,
    }];
    folder
        .copy_ranges(
            "blob.bin",
            &info,
            &ranges,
            &out,
            &FetchOptions::default(),
            &no_progress,
            &never_cancel,
        )
        .expect("resumed");
    assert!(fs::read(&path).expect("output") == object, "output differs");
    assert_eq!(server.stats()["/f/blob.bin"], (3, 300_000));
}

#[test]
fn persistent_server_errors_fail_in_bounded_time_with_one_line() {
    let server = HttpServer::start();
    fs::create_dir(server.root().join("f")).expect("dir");
    fs::write(server.root().join("f/blob.bin"), pattern(1000, 1)).expect("object");
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("blob.bin", 8).expect("identity");
    server.reset();
    server.inject("/f/blob.bin", "status=503", 100);
    let out_dir = tempdir();
    let (_, out) = output_file(out_dir.path(), "out.bin", 1000);
    let e = folder
        .copy_ranges(
            "blob.bin",
            &info,
            &[CopyRange {
                src: 0,
                dst: 0,
                len: 1000,
            }],
            &out,
            &FetchOptions::default(),
            &no_progress,
            &never_cancel,
        )
        .expect_err("fails");
    assert_eq!(remote_kind(&e), RemoteProblem::Transfer, "{e}");
    assert_one_line(&e, &folder.object_url("blob.bin"));
    assert!(e.to_string().contains("bytes 0..1000"), "{e}");
    // One try and four retries, not a storm.
    assert_eq!(server.stats()["/f/blob.bin"].0, 5);
}

#[test]
fn an_object_replaced_mid_copy_is_an_error_and_nothing_more_is_written() {
    let server = HttpServer::start();
    let object = pattern(512 << 10, 5);
    let path = server.root().join("f/blob.bin");
    fs::create_dir(server.root().join("f")).expect("dir");
    fs::write(&path, &object).expect("object");
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("blob.bin", 8).expect("identity");
    let out_dir = tempdir();
    let (out_path, out) = output_file(out_dir.path(), "out.bin", 512 << 10);
    let replaced = AtomicBool::new(false);
    let replace = |_: u64| {
        if !replaced.swap(true, Ordering::SeqCst) {
            // A new file under the same name: a new inode, a new ETag.
            let fresh = path.with_extension("new");
            fs::write(&fresh, pattern(512 << 10, 6)).expect("new version");
            fs::rename(&fresh, &path).expect("replaced");
        }
    };
    let e = folder
        .copy_ranges(
            "blob.bin",
            &info,
            &[CopyRange {
                src: 0,
                dst: 0,
                len: 512 << 10,
            }],
            &out,
            &FetchOptions {
                jobs: 1,
                part_size: 64 << 10,
                ..FetchOptions::default()
            },
            &replace,
            &never_cancel,
        )
        .expect_err("the change is seen");
    assert_eq!(remote_kind(&e), RemoteProblem::Changed, "{e}");
    assert_one_line(&e, &folder.object_url("blob.bin"));
    assert!(e.to_string().contains("bytes 65536..131072"), "{e}");
    let written = fs::read(&out_path).expect("output");
    assert!(written[..64 << 10] == object[..64 << 10], "first part");
    assert!(
        written[64 << 10..].iter().all(|&b| b == 0),
        "written after the change"
    );
}

#[test]
fn cancel_stops_the_copy_with_its_error() {
    let server = HttpServer::start();
    fs::create_dir(server.root().join("f")).expect("dir");
    fs::write(server.root().join("f/blob.bin"), pattern(256 << 10, 2)).expect("object");
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("blob.bin", 8).expect("identity");
    let out_dir = tempdir();
    let (_, out) = output_file(out_dir.path(), "out.bin", 256 << 10);
    let landed = AtomicU64::new(0);
    let e = folder
        .copy_ranges(
            "blob.bin",
            &info,
            &[CopyRange {
                src: 0,
                dst: 0,
                len: 256 << 10,
            }],
            &out,
            &FetchOptions {
                jobs: 1,
                part_size: 32 << 10,
                ..FetchOptions::default()
            },
            &|n| {
                landed.fetch_add(n, Ordering::SeqCst);
            },
            &|| {
                if landed.load(Ordering::SeqCst) > 0 {
                    Err(Error::Interrupted { signal: 2 })
                } else {
                    Ok(())
                }
            },
        )
        .expect_err("cancelled");
    assert!(matches!(e, Error::Interrupted { .. }), "{e}");
    assert!(landed.load(Ordering::SeqCst) <= 32 << 10);
}

#[test]
fn http_missing_object_is_one_quick_line() {
    let server = HttpServer::start();
    let folder = server.folder("nowhere");
    let started = Instant::now();
    let e = folder
        .read_prefix("rank0.safetensors", PREFIX_READ)
        .expect_err("missing");
    assert_eq!(remote_kind(&e), RemoteProblem::NotFound, "{e}");
    assert_one_line(&e, &folder.object_url("rank0.safetensors"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.stats()["/nowhere/rank0.safetensors"].0, 1);
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_lists_and_reads_under_a_prefix() {
    let port = moto();
    let bucket = bucket("list");
    let spec = CheckpointSpec::tiny(Family::Llama, 2, 1);
    let local = tempdir();
    let dir = write_checkpoint(local.path(), "ckpt", &spec);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (
                format!("models/tiny/{name}"),
                fs::read(e.path()).expect("file"),
            )
        })
        .collect();
    // Neighbours that are not in the folder.
    files.push(("models/tiny/sub/rank9.safetensors".into(), vec![1; 10]));
    files.push(("models/tiny2/config.json".into(), b"{}".to_vec()));
    files.push(("models/tiny.json".into(), b"{}".to_vec()));
    s3_upload(port, &bucket, &files);

    let folder = s3_folder(port, &format!("s3://{bucket}/models/tiny/"));
    assert_eq!(folder.url(), format!("s3://{bucket}/models/tiny"));
    let listed = folder.list().expect("listed").expect("S3 lists");
    let names: Vec<(&str, u64)> = listed.iter().map(|e| (e.name.as_str(), e.size)).collect();
    let mut expected: Vec<(String, u64)> = fs::read_dir(&dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().expect("meta").len())
        })
        .collect();
    expected.sort();
    let expected: Vec<(&str, u64)> = expected.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    assert_eq!(names, expected);

    let config = folder
        .get_small("config.json")
        .expect("read")
        .expect("exists");
    assert_eq!(config, fs::read(dir.join("config.json")).expect("local"));
    assert_eq!(folder.get_small("missing.json").expect("no error"), None);
    let rank = fs::read(dir.join("rank1.safetensors")).expect("local");
    let (prefix, info) = folder
        .read_prefix("rank1.safetensors", PREFIX_READ)
        .expect("prefix");
    assert!(info.e_tag.is_some(), "S3 sends ETags");
    assert_eq!(prefix, rank[..rank.len().min(PREFIX_READ as usize)]);

    // A prefix with nothing under it lists empty.
    let empty = s3_folder(port, &format!("s3://{bucket}/models/none"));
    assert_eq!(empty.list().expect("listed"), Some(vec![]));
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_copy_ranges_match_the_local_file() {
    let port = moto();
    let bucket = bucket("copy");
    let object = pattern(700_000, 11);
    s3_upload(port, &bucket, &[("ckpt/blob.bin".into(), object.clone())]);
    let folder = s3_folder(port, &format!("s3://{bucket}/ckpt"));
    let (_, info) = folder
        .read_prefix("blob.bin", PREFIX_READ)
        .expect("identity");
    assert_eq!(info.size, 700_000);
    let ranges = [
        CopyRange {
            src: 10,
            dst: 300_000,
            len: 90,
        },
        CopyRange {
            src: 100,
            dst: 0,
            len: 250_000,
        },
        CopyRange {
            src: 400_000,
            dst: 250_000,
            len: 50_000,
        },
    ];
    let out_dir = tempdir();
    let (path, out) = output_file(out_dir.path(), "out.bin", 300_090);
    let fetched = folder
        .copy_ranges(
            "blob.bin",
            &info,
            &ranges,
            &out,
            &FetchOptions {
                jobs: 4,
                part_size: 32 << 10,
                ..FetchOptions::default()
            },
            &no_progress,
            &never_cancel,
        )
        .expect("copied");
    assert_eq!(fetched, 300_090);
    let mut expected = vec![0u8; 300_090];
    for r in ranges {
        let (s, d, l) = (r.src as usize, r.dst as usize, r.len as usize);
        expected[d..d + l].copy_from_slice(&object[s..s + l]);
    }
    assert!(
        fs::read(&path).expect("output") == expected,
        "output differs"
    );
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_object_replaced_mid_copy_is_an_error() {
    let port = moto();
    let bucket = bucket("replaced");
    let object = pattern(256 << 10, 4);
    s3_upload(port, &bucket, &[("ckpt/blob.bin".into(), object.clone())]);
    let folder = s3_folder(port, &format!("s3://{bucket}/ckpt"));
    let (_, info) = folder.read_prefix("blob.bin", 8).expect("identity");
    let out_dir = tempdir();
    let (out_path, out) = output_file(out_dir.path(), "out.bin", 256 << 10);
    let replaced = Mutex::new(false);
    let replace = |_: u64| {
        let mut done = replaced.lock().expect("lock");
        if !*done {
            *done = true;
            s3_upload_from_thread(port, &bucket, "ckpt/blob.bin", pattern(256 << 10, 8));
        }
    };
    let e = folder
        .copy_ranges(
            "blob.bin",
            &info,
            &[CopyRange {
                src: 0,
                dst: 0,
                len: 256 << 10,
            }],
            &out,
            &FetchOptions {
                jobs: 1,
                part_size: 64 << 10,
                ..FetchOptions::default()
            },
            &replace,
            &never_cancel,
        )
        .expect_err("the change is seen");
    assert_eq!(remote_kind(&e), RemoteProblem::Changed, "{e}");
    assert_one_line(&e, &folder.object_url("blob.bin"));
    let written = fs::read(&out_path).expect("output");
    assert!(written[..64 << 10] == object[..64 << 10], "first part");
    assert!(
        written[64 << 10..].iter().all(|&b| b == 0),
        "written after the change"
    );
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_missing_bucket_and_object_are_one_quick_line() {
    let port = moto();
    let started = Instant::now();
    let missing = s3_folder(port, "s3://no-such-bucket-here/ckpt");
    let e = missing.list().expect_err("no bucket");
    assert_eq!(remote_kind(&e), RemoteProblem::NotFound, "{e}");
    assert_one_line(&e, "s3://no-such-bucket-here/ckpt");
    let e = missing
        .read_prefix("rank0.safetensors", PREFIX_READ)
        .expect_err("no bucket");
    assert_eq!(remote_kind(&e), RemoteProblem::NotFound, "{e}");

    let bucket = bucket("missing");
    s3_upload(
        port,
        &bucket,
        &[("ckpt/config.json".into(), b"{}".to_vec())],
    );
    let folder = s3_folder(port, &format!("s3://{bucket}/ckpt"));
    let e = folder
        .read_prefix("rank0.safetensors", PREFIX_READ)
        .expect_err("no object");
    assert_eq!(remote_kind(&e), RemoteProblem::NotFound, "{e}");
    assert_one_line(&e, &folder.object_url("rank0.safetensors"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_wrong_credentials_are_one_quick_line_without_the_secret() {
    // A server that checks signatures and knows no key at all.
    let strict = start_moto(true);
    let folder = s3_folder(strict.port, "s3://some-bucket/ckpt");
    let started = Instant::now();
    for e in [
        folder.list().expect_err("refused"),
        folder
            .read_prefix("rank0.safetensors", PREFIX_READ)
            .expect_err("refused"),
    ] {
        assert_eq!(remote_kind(&e), RemoteProblem::Denied, "{e}");
        assert_one_line(&e, "s3://some-bucket/ckpt");
        assert!(!format!("{e:?}").contains(SECRET), "Debug shows the secret");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{folder:?}").contains(SECRET));
}

// ------------------------------------------------------------ the CLI

/// The binary with the environment an S3 user sets for the moto at `port`.
pub(crate) fn s3_command(port: u16) -> Command {
    let mut cmd = Command::new(crate::util::bin());
    cmd.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTING")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1");
    cmd
}

/// Every file of a local folder, (name, bytes), sorted.
pub(crate) fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A tiny TP2 checkpoint with a side file, and its local prune.
fn local_reference(root: &Path) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let ckpt = write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    fs::write(ckpt.join("quant_cfg.json"), "{\"quant_algo\": \"FP8\"}\n").unwrap();
    let out = root.join("local.out");
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));
    (ckpt, files_of(&out))
}

#[test]
fn the_cli_prunes_an_http_checkpoint_as_it_prunes_a_local_one() {
    let server = HttpServer::start();
    let (ckpt, mut expected) = local_reference(server.root());
    let input_bytes: u64 = files_of(&ckpt).iter().map(|(_, b)| b.len() as u64).sum();
    let kept: u64 = ["rank0.safetensors", "rank1.safetensors"]
        .iter()
        .map(|name| {
            let bytes = fs::read(ckpt.join(name)).unwrap();
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            let header = parse_header(&bytes[8..8 + n as usize], bytes.len() as u64).unwrap();
            plan_prune(&header, &PruneRule::default(), SHARE_ALIGNMENT)
                .unwrap()
                .kept_bytes()
        })
        .sum();
    let work = tempdir();
    let out = work.path().join("out");
    server.reset();

    let result = Command::new(crate::util::bin())
        .arg("--checkpoint_dir")
        .arg(server.url("ckpt"))
        .arg("--out_dir")
        .arg(&out)
        .output()
        .unwrap();

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains("other files (tokenizer, quantization config, ...) are not copied"),
        "{err}"
    );
    // Over plain HTTP the side file cannot be found: everything else is
    // byte for byte what a local run makes.
    expected.retain(|(name, _)| name != "quant_cfg.json");
    assert_eq!(files_of(&out), expected);
    // Only headers (one first read of up to 64 KiB each: these ranks are
    // smaller, so it takes them whole), config.json and the kept bytes
    // crossed the network.
    let served = server.bytes_served();
    let config = fs::metadata(ckpt.join("config.json")).unwrap().len();
    let first_reads: u64 = ["rank0.safetensors", "rank1.safetensors"]
        .iter()
        .map(|n| fs::metadata(ckpt.join(n)).unwrap().len().min(PREFIX_READ))
        .sum();
    assert_eq!(served, config + first_reads + kept, "bytes served");
    assert!(kept < input_bytes);
}

#[test]
fn dry_runs_and_inspect_of_an_http_checkpoint_read_headers_only() {
    let server = HttpServer::start();
    let (ckpt, _) = local_reference(server.root());
    let config = fs::metadata(ckpt.join("config.json")).unwrap().len();
    for args in [
        vec![
            "--checkpoint_dir".to_string(),
            server.url("ckpt"),
            "--out_dir".into(),
            "/tmp/never-written".into(),
            "--dry-run".into(),
            "--prune_all".into(),
        ],
        vec!["inspect".to_string(), server.url("ckpt")],
    ] {
        server.reset();
        let result = Command::new(crate::util::bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let served = server.bytes_served();
        assert!(
            served <= config + 2 * PREFIX_READ,
            "{args:?}: {served} bytes served"
        );
    }
    assert!(!Path::new("/tmp/never-written").exists());
}

#[test]
fn the_cli_prunes_a_sharded_hugging_face_folder_over_http_through_its_index() {
    let server = HttpServer::start();
    let hf = server.root().join("hf");
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
    let work = tempdir();
    let (local, remote) = (work.path().join("local"), work.path().join("remote"));
    assert_success(run(&[
        &"--checkpoint_dir",
        &hf,
        &"--out_dir",
        &local,
        &"--prune",
        &"*_proj.weight",
        &"-q",
    ]));

    let result = Command::new(crate::util::bin())
        .arg("--checkpoint_dir")
        .arg(server.url("hf"))
        .arg("--out_dir")
        .arg(&remote)
        .args(["--prune", "*_proj.weight", "-q", "--verify"])
        .output()
        .unwrap();

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(files_of(&remote), files_of(&local));
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn the_cli_prunes_an_s3_checkpoint_with_its_side_files_and_verifies_it() {
    let port = moto();
    let root = tempdir();
    let (ckpt, expected) = local_reference(root.path());
    let bucket = bucket("cli");
    let uploads: Vec<(String, Vec<u8>)> = files_of(&ckpt)
        .into_iter()
        .map(|(name, bytes)| (format!("models/tiny/{name}"), bytes))
        .collect();
    s3_upload(port, &bucket, &uploads);
    let url = format!("s3://{bucket}/models/tiny");
    let out = root.path().join("s3.out");

    let result = s3_command(port)
        .arg("--checkpoint_dir")
        .arg(&url)
        .arg("--out_dir")
        .arg(&out)
        .args(["--verify", "--json"])
        .output()
        .unwrap();

    let err = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{err}");
    assert_eq!(files_of(&out), expected);
    let report = String::from_utf8_lossy(&result.stdout);
    assert!(!report.contains(SECRET) && !err.contains(SECRET));
    let doc: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(doc["checkpoint_dir"], serde_json::Value::from(url.clone()));
    // And `verify` reads the same remote checkpoint.
    let verify = s3_command(port)
        .args(["verify", "--checkpoint_dir", &url, "--out_dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn a_remote_checkpoint_needs_an_output_folder() {
    let server = HttpServer::start();
    local_reference(server.root());
    let result = Command::new(crate::util::bin())
        .arg("--checkpoint_dir")
        .arg(server.url("ckpt"))
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&result.stderr).contains("give --out_dir"));
}

#[test]
fn a_world_size_bomb_in_a_remote_config_is_refused_before_any_rank_is_asked_for() {
    let server = HttpServer::start();
    let (ckpt, _) = local_reference(server.root());
    fs::write(
        ckpt.join("config.json"),
        "{\"architecture\": \"LlamaForCausalLM\", \"mapping\": {\"world_size\": 4611686018427387904}}",
    )
    .unwrap();
    server.reset();
    let result = Command::new(crate::util::bin())
        .arg("--checkpoint_dir")
        .arg(server.url("ckpt"))
        .args(["--out_dir", "/tmp/never-written", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains("more rank files than a folder that cannot be listed is read for"),
        "{err}"
    );
    let asked: u64 = server.stats().values().map(|&(requests, _)| requests).sum();
    assert_eq!(asked, 1, "only config.json was asked for");
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_side_files_with_unusual_names_are_copied() {
    let port = moto();
    let root = tempdir();
    let (ckpt, _) = local_reference(root.path());
    for name in ["notes~old.txt", "README[1].md", "a b.txt"] {
        fs::write(ckpt.join(name), name).unwrap();
    }
    let local = root.path().join("local");
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &local,
        &"-q",
    ]));
    let bucket = bucket("names");
    let uploads: Vec<(String, Vec<u8>)> = files_of(&ckpt)
        .into_iter()
        .map(|(name, bytes)| (format!("m/{name}"), bytes))
        .collect();
    s3_upload(port, &bucket, &uploads);
    let out = root.path().join("s3");
    let result = s3_command(port)
        .arg("--checkpoint_dir")
        .arg(format!("s3://{bucket}/m"))
        .arg("--out_dir")
        .arg(&out)
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(files_of(&out), files_of(&local));
}

#[test]
fn a_missing_remote_file_has_the_kind_of_a_missing_local_one() {
    let server = HttpServer::start();
    let missing = server.url("nowhere/rank0.safetensors");
    assert_eq!(
        crate::util::error_kind(&[&"inspect", &missing]),
        "not_found"
    );
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn a_bucket_url_names_its_folder_as_written_escapes_included() {
    // `s3://b/pct%41` is the prefix `pct%41` (as the clouds' own tools
    // read it), not `pctA`, which here holds another checkpoint.
    let port = moto();
    let root = tempdir();
    let literal = write_checkpoint(root.path(), "a", &CheckpointSpec::tiny(Family::Llama, 1, 1));
    let other = write_checkpoint(root.path(), "b", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let bucket = bucket("literal");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    files.extend(
        files_of(&literal)
            .into_iter()
            .map(|(n, d)| (format!("pct%41/{n}"), d)),
    );
    files.extend(
        files_of(&other)
            .into_iter()
            .map(|(n, d)| (format!("pctA/{n}"), d)),
    );
    s3_upload(port, &bucket, &files);

    let local = root.path().join("local");
    assert_success(run(&[&"--checkpoint_dir", &literal, &"--out_dir", &local]));
    let out = root.path().join("out");
    let result = s3_command(port)
        .args([
            "--checkpoint_dir",
            &format!("s3://{bucket}/pct%41"),
            "--out_dir",
        ])
        .arg(&out)
        .output()
        .expect("run");
    assert_success(result);
    assert_eq!(files_of(&out), files_of(&local));
}

/// A test server's `/__stats` document: (requests, body bytes sent) per path.
pub(crate) fn parse_stats(body: &str) -> BTreeMap<String, (u64, u64)> {
    let value: serde_json::Value = serde_json::from_str(body).expect("stats JSON");
    value
        .as_object()
        .expect("stats object")
        .iter()
        .map(|(path, e)| {
            let get = |k: &str| e[k].as_u64().expect("a count");
            (path.clone(), (get("requests"), get("bytes")))
        })
        .collect()
}
