//! Reading a checkpoint folder from object storage or a web server:
//! `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (and
//! the other Azure forms `object_store` knows: `abfs[s]://`, `adl://`,
//! `azure://`, `https://<account>.blob.core.windows.net/...`), the https
//! forms of S3 and R2, any other `http://` or `https://` URL, and Hugging
//! Face Hub repositories, `hf://ORG/NAME[@REVISION][/PATH]` (`hub.rs`:
//! listed through the Hub's API, read through its resolve URLs at one
//! commit).
//!
//! Only what pruning needs is fetched: `config.json` or the shard index
//! ([`RemoteFolder::get_small`]), each file's length prefix and header (one
//! speculative read of the first bytes, [`RemoteFolder::read_prefix`], then
//! the header's rest if longer, [`RemoteFolder::read_range`]), and the kept
//! byte ranges, written straight into the local output file
//! ([`RemoteFolder::copy_ranges`]). The output is always a local folder.
//!
//! The interface is synchronous, like the rest of the crate: a small tokio
//! runtime (two worker threads, created on first use, shared by every
//! folder; none, the callers' threads taking turns, when the system refuses
//! threads) runs `object_store` underneath. Callers must not call these
//! methods from inside a tokio runtime of their own. Several threads may
//! use one [`RemoteFolder`] at once; each call's requests run concurrently
//! on the shared runtime.
//!
//! Invariants:
//! - every request for a file's bytes after the first carries the identity
//!   the first returned ([`ObjectInfo`]: `If-Match` on a strong ETag, the
//!   version on stores that have one), and the answer's size and ETag are
//!   checked too: bytes of a replaced object are never mixed with the old
//!   ones ([`RemoteProblem::Changed`], also for a "not found" to such a
//!   request), and nothing more is written once it is seen;
//! - an object's key is its name as listed or as the index names it: never
//!   percent-encoded or decoded here (each client encodes it once);
//! - bytes fetched = bytes asked: the ranges are merged where they touch,
//!   never across a gap; a body cut mid-way is resumed where it stopped;
//! - memory is bounded by what is in flight: each part's body is written
//!   to the output chunk by chunk as it arrives (`pwrite` at its offset);
//! - a 401/403/404/412 is one request and one line; 5xx answers, timeouts
//!   and connection errors are retried by `object_store` with exponential
//!   backoff (4 times, within 60 s), and a body cut mid-way is resumed at
//!   most [`FetchOptions::max_resumes`] times per part; a read that gets no
//!   byte for the stall timeout fails, whatever retry is under way
//!   ([`FetchOptions::stall_timeout`], [`STALL_TIMEOUT_ENV`]);
//! - at most [`FetchOptions::jobs`] copy requests are in flight per folder,
//!   across all its files;
//! - no message and no `Debug` output holds a credential: URLs are shown
//!   without password or query, and every secret value of the configuration
//!   is redacted from the servers' answers we quote.
//!
//! See docs/REMOTE.md for the design and the environment each kind of URL
//! reads.

mod fetch;
mod hub;
mod location;
mod parts;
mod problem;

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::base::copy_range::CopyRange;
use crate::base::error::{Error, RemoteProblem, Result};

pub use location::StoreKind;

/// Largest object [`RemoteFolder::get_small`] reads (a config or an index).
pub use crate::base::file::MAX_SMALL_OBJECT;

/// A checkpoint folder at a URL: a store and the prefix of the folder in it.
pub struct RemoteFolder {
    kind: StoreKind,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
    /// The URL as a path, for [`Folder::shown`].
    shown: PathBuf,
    /// Values redacted from every message; never shown.
    secrets: Arc<Vec<String>>,
    /// Requests of copies in flight, for every file of the folder: sized
    /// by the first copy's [`FetchOptions::jobs`].
    fetch_permits: OnceLock<Arc<Semaphore>>,
    /// For an `hf://` folder: its repository, revision and listing.
    hub: Option<hub::HubFolder>,
}

impl fmt::Debug for RemoteFolder {
    /// The URL and kind only: the store's own `Debug` would show its
    /// configuration, credentials included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteFolder")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// An object directly under the folder's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The name inside the folder (no `/`).
    pub name: String,
    pub size: u64,
}

/// The identity of an object when it was first read; later reads of it
/// must find the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The size in bytes.
    pub size: u64,
    /// The ETag, as the server spells it (quotes included).
    pub e_tag: Option<String>,
    /// The version, on stores with versioning (S3, GCS generations, Azure).
    pub version: Option<String>,
}

impl ObjectInfo {
    fn of(meta: &ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            size: meta.size,
            e_tag: meta.e_tag.clone(),
            version: meta.version.clone(),
        }
    }

    /// Whether an answer's metadata is of the same object. Servers that
    /// honour `If-Match` refuse with 412 before this; this catches those
    /// that ignore it and answer with a new ETag or size.
    fn matches(&self, meta: &ObjectMeta) -> bool {
        let same_tag = match (&self.e_tag, &meta.e_tag) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let same_version = match (&self.version, &meta.version) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.size == meta.size && same_tag && same_version
    }
}

/// How [`RemoteFolder::copy_ranges`] fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Requests in flight at once (at least 1), across every copy from the
    /// same folder: the first copy's value caps the folder's requests.
    pub jobs: usize,
    /// Largest request; longer runs of bytes are split into parts of this.
    pub part_size: u64,
    /// Times one part's body may be resumed after a cut or a stall.
    pub max_resumes: u32,
    /// Longest wait for a byte of a part, the client's own retries and our
    /// resumes included: then the copy fails.
    pub stall_timeout: Duration,
}

impl Default for FetchOptions {
    /// 8 jobs, parts of 16 MiB, 5 resumes, and the stall timeout of
    /// [`STALL_TIMEOUT_ENV`] (60 s when unset or not a number of seconds;
    /// [`RemoteFolder::parse`] refuses a value that is not).
    fn default() -> Self {
        FetchOptions {
            jobs: 8,
            part_size: 16 << 20,
            max_resumes: 5,
            stall_timeout: stall_timeout(),
        }
    }
}

/// The run's stall timeout: [`STALL_TIMEOUT_ENV`], or
/// [`DEFAULT_STALL_TIMEOUT`] when it is unset or not a number of seconds.
fn stall_timeout() -> Duration {
    stall_timeout_from_env().unwrap_or(DEFAULT_STALL_TIMEOUT)
}

/// Why a transfer that got no byte for `stall` failed.
fn stalled_problem(stall: Duration) -> String {
    format!(
        "no byte arrived for {} s, retries included (set {STALL_TIMEOUT_ENV} to wait longer)",
        stall.as_secs_f64()
    )
}

/// The environment variable that sets [`FetchOptions::stall_timeout`], in
/// seconds.
pub const STALL_TIMEOUT_ENV: &str = "TRTLLM_PRUNE_STALL_TIMEOUT";

/// How long a transfer may go without a byte by default.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// [`STALL_TIMEOUT_ENV`]'s value: `None` when unset, an error message when
/// it is not a positive number of seconds.
fn stall_timeout_from_env() -> std::result::Result<Duration, Option<String>> {
    let Some(value) = std::env::var_os(STALL_TIMEOUT_ENV) else {
        return Err(None);
    };
    value
        .to_str()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Some(format!(
                "{STALL_TIMEOUT_ENV}={}: not a number of seconds between 0 and 86400",
                value.to_string_lossy()
            ))
        })
}

impl RemoteFolder {
    /// `None` when `text` is not a URL (a local path); `Some(Err)` for a
    /// malformed or unsupported URL. Credentials and endpoints come from
    /// the environment (see docs/REMOTE.md).
    pub fn parse(text: &str) -> Option<Result<RemoteFolder>> {
        RemoteFolder::parse_with(text, &[])
    }

    /// [`RemoteFolder::parse`] with settings on top of the environment:
    /// `object_store` configuration keys of the URL's store (for S3
    /// `aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, ...; for
    /// plain HTTP the client keys such as `timeout`).
    pub fn parse_with(text: &str, config: &[(&str, &str)]) -> Option<Result<RemoteFolder>> {
        if !crate::base::file::looks_like_url(text) {
            return None;
        }
        let parsed = match hub::is_hub_url(text) {
            true => hub::parse(text, config).map(|(l, hub)| (l, Some(hub))),
            false => location::parse(text, config).map(|l| (l, None)),
        };
        Some(
            parsed
                .map(|(l, hub)| RemoteFolder {
                    kind: l.kind,
                    store: l.store,
                    prefix: l.prefix,
                    shown: PathBuf::from(&l.url),
                    url: l.url,
                    secrets: Arc::new(l.secrets),
                    fetch_permits: OnceLock::new(),
                    hub,
                })
                .map_err(|p| Error::Remote {
                    url: p.url,
                    range: None,
                    kind: RemoteProblem::Invalid,
                    problem: p.problem,
                })
                .and_then(|folder| match stall_timeout_from_env() {
                    Err(Some(problem)) => Err(Error::Remote {
                        url: folder.url,
                        range: None,
                        kind: RemoteProblem::Invalid,
                        problem,
                    }),
                    _ => Ok(folder),
                }),
        )
    }

    /// The folder's URL as a path, for messages and output names.
    pub fn shown_path(&self) -> &std::path::Path {
        &self.shown
    }

    /// The folder's URL, for messages: no credentials, no trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the object `name` in the folder, for messages (the name
    /// as it is: callers take the output's name from it).
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/{}", self.url, name)
    }

    /// Every object directly under the prefix, sorted by name; `None` where
    /// nothing can be listed (a plain web server: the caller learns the
    /// files from `config.json` or the shard index). A prefix with nothing
    /// under it is an empty list; a missing bucket is an error.
    #[cfg(any(test, feature = "fixture"))]
    pub fn list(&self) -> Result<Option<Vec<RemoteEntry>>> {
        Ok(self.list_with_subfolders()?.map(|(objects, _)| objects))
    }

    /// [`RemoteFolder::list`], and the names of the subfolders (common
    /// prefixes) directly under the prefix, sorted.
    pub fn list_with_subfolders(&self) -> Result<Option<(Vec<RemoteEntry>, Vec<String>)>> {
        if let Some(hub) = &self.hub {
            return Ok(Some((hub.list()?, hub.subfolders()?)));
        }
        if self.kind == StoreKind::Http {
            return Ok(None);
        }
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed = block_on(self.url(), self.store.list_with_delimiter(prefix))?
            .map_err(|e| self.error(&self.url, None, &e))?;
        let mut entries: Vec<RemoteEntry> = listed
            .objects
            .into_iter()
            // A zero-byte `folder/` object (a console's "create folder")
            // lists as the folder itself: it is no file of it.
            .filter(|meta| meta.location != self.prefix)
            .filter_map(|meta| {
                // The key as the store holds it (`README [1].md`,
                // `pct%41.md`): requested as listed, never decoded.
                Some(RemoteEntry {
                    name: meta.location.filename()?.to_string(),
                    size: meta.size,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut subfolders: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| Some(p.filename()?.to_string()))
            .collect();
        subfolders.sort();
        Ok(Some((entries, subfolders)))
    }

    /// Whether the object `name` exists (one HEAD request).
    pub fn exists(&self, name: &str) -> Result<bool> {
        match self.read_prefix(name, 0) {
            Ok(_) => Ok(true),
            Err(Error::Remote {
                kind: RemoteProblem::NotFound,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A whole small object (`config.json`, a shard index); `Ok(None)` when
    /// it does not exist. Larger than [`MAX_SMALL_OBJECT`] is an error.
    pub fn get_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let location = self.location(name)?;
        let url = self.object_url(name);
        block_on(&url, async {
            let answer = self.unstalled(
                &url,
                None,
                self.store.get_opts(&location, GetOptions::default()),
            );
            let result = match answer.await? {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.error(&url, None, &e)),
            };
            if result.meta.size > MAX_SMALL_OBJECT {
                return Err(Error::Remote {
                    url: url.clone(),
                    range: None,
                    kind: RemoteProblem::Invalid,
                    problem: format!(
                        "{} bytes: too large for a config or index file (limit {MAX_SMALL_OBJECT})",
                        result.meta.size
                    ),
                });
            }
            let size = result.meta.size;
            let bytes = self.collect(&url, 0..size, result).await?;
            Ok(Some(bytes))
        })?
    }

    /// The object's first `len` bytes (all of it, if shorter) and its
    /// identity, in one request.
    pub fn read_prefix(&self, name: &str, len: u64) -> Result<(Vec<u8>, ObjectInfo)> {
        let location = self.location(name)?;
        let url = self.object_url(name);
        block_on(&url, async {
            if len == 0 {
                let meta = self
                    .unstalled(&url, None, self.store.head(&location))
                    .await?
                    .map_err(|e| self.error(&url, None, &e))?;
                return Ok((Vec::new(), self.identity(&meta)));
            }
            let options = GetOptions {
                range: Some(GetRange::Bounded(0..len)),
                ..GetOptions::default()
            };
            let answer =
                self.unstalled(&url, Some(0..len), self.store.get_opts(&location, options));
            let result = match answer.await? {
                Ok(result) => result,
                Err(e) => {
                    // An empty object has no byte 0 to serve (416): its
                    // prefix is empty, and the caller says it is too short.
                    if problem::kind_of(&e) == RemoteProblem::Transfer {
                        let head = self.unstalled(&url, None, self.store.head(&location));
                        if let Ok(Ok(meta)) = head.await {
                            if meta.size == 0 {
                                return Ok((Vec::new(), self.identity(&meta)));
                            }
                        }
                    }
                    return Err(self.error(&url, Some(0..len), &e));
                }
            };
            let info = self.identity(&result.meta);
            let want = len.min(info.size);
            let bytes = self.collect(&url, 0..want, result).await?;
            Ok((bytes, info))
        })?
    }

    /// One more read of the same object (the rest of a long header),
    /// refused if the object is no longer `info`.
    pub fn read_range(&self, name: &str, info: &ObjectInfo, range: Range<u64>) -> Result<Vec<u8>> {
        let location = self.location(name)?;
        let url = self.object_url(name);
        self.check_range(&url, info, &range)?;
        if range.is_empty() {
            return Ok(Vec::new());
        }
        block_on(&url, async {
            let options = self.identity_options(info, range.clone());
            let result = self
                .unstalled(
                    &url,
                    Some(range.clone()),
                    self.store.get_opts(&location, options),
                )
                .await?
                .map_err(|e| self.identity_error(&url, range.clone(), &e))?;
            if !info.matches(&result.meta) {
                return Err(self.changed(&url, range.clone()));
            }
            self.collect(&url, range.clone(), result).await
        })?
    }

    /// Copies `ranges` of the object `name` (`src`: offset in the object,
    /// `dst`: offset in `out`) into the local file `out`, which must be
    /// open for writing and is written with `pwrite` only. Ranges that
    /// touch in the object go in one request, long ones in parts of
    /// `options.part_size`, at most `options.jobs` at once.
    /// `on_progress(bytes)` is called as bytes land; `cancel()` is called
    /// before each part and each chunk, and its error ends the copy. Every
    /// request carries `info`; a changed object is an error, and nothing
    /// more is written. Returns the bytes fetched.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_ranges(
        &self,
        name: &str,
        info: &ObjectInfo,
        ranges: &[CopyRange],
        out: &File,
        options: &FetchOptions,
        on_progress: &(dyn Fn(u64) + Sync),
        cancel: &(dyn Fn() -> Result<()> + Sync),
    ) -> Result<u64> {
        let location = self.location(name)?;
        let url = self.object_url(name);
        for range in ranges {
            let end = range.src.checked_add(range.len);
            let dst_end = range.dst.checked_add(range.len);
            match (end, dst_end) {
                (Some(end), Some(_)) => self.check_range(&url, info, &(range.src..end))?,
                _ => {
                    return Err(Error::Remote {
                        url,
                        range: None,
                        kind: RemoteProblem::Invalid,
                        problem: format!(
                            "copy range at byte {} of length {} overflows",
                            range.src, range.len
                        ),
                    })
                }
            }
        }
        let parts = parts::plan_parts(ranges, options.part_size);
        let permits = self.fetch_permits.get_or_init(|| {
            Arc::new(Semaphore::new(
                options.jobs.clamp(1, Semaphore::MAX_PERMITS),
            ))
        });
        let job = fetch::CopyJob {
            folder: self,
            location: &location,
            url: &url,
            info,
            out,
            max_resumes: options.max_resumes,
            stall_timeout: options.stall_timeout,
            permits,
            on_progress,
            cancel,
        };
        block_on(&url, job.run(&parts, options.jobs.max(1)))?
    }

    /// Exactly the bytes of `range` from an answer's body, read as a stream:
    /// a body longer than asked (a server that never stops) is refused at
    /// the first byte too many, not collected whole.
    async fn collect(
        &self,
        url: &str,
        range: Range<u64>,
        result: object_store::GetResult,
    ) -> Result<Vec<u8>> {
        use futures::StreamExt;
        let want = range.end - range.start;
        let mut bytes = Vec::with_capacity(want.min(MAX_SMALL_OBJECT) as usize);
        let mut stream = result.into_stream();
        while let Some(chunk) = self
            .unstalled(url, Some(range.clone()), stream.next())
            .await?
        {
            let chunk = chunk.map_err(|e| self.error(url, Some(range.clone()), &e))?;
            if (bytes.len() + chunk.len()) as u64 > want {
                return Err(Error::Remote {
                    url: url.to_string(),
                    range: Some(range.clone()),
                    kind: RemoteProblem::Transfer,
                    problem: format!("the server sent more than the {want} bytes asked"),
                });
            }
            bytes.extend_from_slice(&chunk);
            // Every byte asked is in: the body's end is not awaited (a
            // server that announced more and then closed would make the
            // client resume with an empty range).
            if bytes.len() as u64 == want {
                break;
            }
        }
        if bytes.len() as u64 != want {
            return Err(self.short_answer(url, range, bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// The object `name` directly in the folder, its key holding the name
    /// as it is (each store's client encodes the key once, in its request
    /// URL). `ObjectPath::join` would percent-encode `[ ] ~ # ^ %` first,
    /// and the server would look for `README%5B1%5D.md`.
    fn location(&self, name: &str) -> Result<ObjectPath> {
        let part = (!name.is_empty())
            .then(|| PathPart::parse(name).ok())
            .flatten();
        let Some(part) = part else {
            return Err(Error::Remote {
                url: self.url.clone(),
                range: None,
                kind: RemoteProblem::Invalid,
                problem: format!("`{}` is not a file name", name.escape_debug()),
            });
        };
        match &self.hub {
            Some(hub) => hub.location(part),
            None => Ok(self.prefix.clone().join(part)),
        }
    }

    /// `future`'s output, or an error once it has not finished for the
    /// stall timeout (the client's own retries included): the bound on a
    /// small read, a request or a body chunk at a time.
    async fn unstalled<T>(
        &self,
        url: &str,
        range: Option<Range<u64>>,
        future: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        let stall = stall_timeout();
        tokio::time::timeout(stall, future)
            .await
            .map_err(|_| Error::Remote {
                url: url.to_string(),
                range,
                kind: RemoteProblem::Transfer,
                problem: stalled_problem(stall),
            })
    }

    fn check_range(&self, url: &str, info: &ObjectInfo, range: &Range<u64>) -> Result<()> {
        if range.start > range.end || range.end > info.size {
            return Err(Error::Remote {
                url: url.to_string(),
                range: Some(range.clone()),
                kind: RemoteProblem::Invalid,
                problem: format!("range outside the object ({} bytes)", info.size),
            });
        }
        Ok(())
    }

    /// The identity later reads of an object must find. On the Hub every
    /// URL names the commit, so the bytes cannot change: only the size is
    /// kept, and no ETag is sent (the CDN a file redirects to may answer
    /// each signed URL with an ETag of its own).
    fn identity(&self, meta: &ObjectMeta) -> ObjectInfo {
        let mut info = ObjectInfo::of(meta);
        if self.hub.is_some() {
            info.e_tag = None;
            info.version = None;
        }
        info
    }

    /// A request for `range` that succeeds only on the object `info`. A
    /// weak ETag (`W/"..."`) never matches `If-Match` (RFC 9110 compares
    /// strongly), so it is not sent: the answer's ETag and size are
    /// compared instead ([`ObjectInfo::matches`]).
    fn identity_options(&self, info: &ObjectInfo, range: Range<u64>) -> GetOptions {
        GetOptions {
            if_match: info.e_tag.clone().filter(|tag| !tag.starts_with("W/")),
            version: info.version.clone(),
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        }
    }

    fn error(&self, url: &str, range: Option<Range<u64>>, e: &object_store::Error) -> Error {
        problem::remote_error(url, range, e, &self.secrets)
    }

    /// The error of a request that carried an object's identity: "not
    /// found" there means the object read before is gone or replaced (GCS
    /// answers 404 for a generation that is no longer live).
    fn identity_error(&self, url: &str, range: Range<u64>, e: &object_store::Error) -> Error {
        if problem::kind_of(e) == RemoteProblem::NotFound {
            return self.changed(url, range);
        }
        self.error(url, Some(range), e)
    }

    fn changed(&self, url: &str, range: Range<u64>) -> Error {
        Error::Remote {
            url: url.to_string(),
            range: Some(range),
            kind: RemoteProblem::Changed,
            problem: "the object changed while it was being read (its ETag, version or size \
                      differs, or it is gone)"
                .into(),
        }
    }

    fn short_answer(&self, url: &str, range: Range<u64>, got: u64) -> Error {
        Error::Remote {
            url: url.to_string(),
            range: Some(range),
            kind: RemoteProblem::Transfer,
            problem: format!("the server answered {got} bytes"),
        }
    }
}

/// The shared runtime: two workers drive the sockets (none when the system
/// refuses threads); the caller's thread polls the call's own future (so it
/// may borrow the caller's data).
fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    crate::base::sys::share_malloc_arena_under_memory_limit();
    // tokio panics when it cannot start a worker (`ulimit -u`, `ulimit -v`):
    // only ask for workers the system just gave us. Without them, the
    // callers' threads drive the sockets in turn.
    let mut builder = if crate::base::sys::can_start_threads(RUNTIME_WORKERS) {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(RUNTIME_WORKERS);
        builder
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let built = builder
        .thread_name("trtllm-prune-remote")
        .enable_all()
        .build()
        .map_err(|e| Error::Remote {
            url: String::new(),
            range: None,
            kind: RemoteProblem::Transfer,
            problem: format!("cannot start the network runtime: {e}"),
        })?;
    // A second thread may have won the race: its runtime is kept, ours
    // dropped.
    let _ = RUNTIME.set(built);
    RUNTIME.get().ok_or_else(|| Error::Remote {
        url: String::new(),
        range: None,
        kind: RemoteProblem::Transfer,
        problem: "cannot start the network runtime".into(),
    })
}

/// Worker threads of the shared runtime.
const RUNTIME_WORKERS: usize = 2;

/// Runs `future` on the module's runtime, giving up when a handled signal
/// (SIGINT, SIGTERM, SIGHUP) arrives: a request waiting on a slow server
/// must not hold off a Ctrl-C.
///
/// The network client panics where the system refuses it a thread (the
/// host-name lookup runs on tokio's blocking pool, which panics when no
/// thread can start: `ulimit -u`); such a panic ends this call as an
/// error, not the process.
fn block_on<F: std::future::Future>(url: &str, future: F) -> Result<F::Output> {
    let cancel = crate::base::interrupt::Cancel::on_signals();
    let runtime = runtime()?;
    quiet_panics_while_caught();
    CATCHING.with(|c| c.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let mut future = std::pin::pin!(future);
            loop {
                let tick = tokio::time::sleep(std::time::Duration::from_millis(100));
                match futures::future::select(future.as_mut(), std::pin::pin!(tick)).await {
                    futures::future::Either::Left((output, _)) => return Ok(output),
                    futures::future::Either::Right(((), _)) => cancel.check()?,
                }
            }
        })
    }));
    CATCHING.with(|c| c.set(false));
    result.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        Err(Error::Remote {
            url: url.to_string(),
            range: None,
            kind: RemoteProblem::Transfer,
            problem: format!("the network client stopped: {what}"),
        })
    })
}

thread_local! {
    /// Set while [`block_on`] catches panics on this thread.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the panic hook quiet for panics [`block_on`] catches (they become
/// errors with their own message); every other panic is reported as before.
fn quiet_panics_while_caught() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
}
