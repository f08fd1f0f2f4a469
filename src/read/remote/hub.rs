//! The Hugging Face Hub as a remote folder:
//! `hf://[datasets/|spaces/]ORG/NAME[@REVISION][/PATH]`, the URL form of
//! `huggingface_hub`'s `HfFileSystem` (a revision with a `/` in it is
//! written percent-encoded, or as `refs/pr/N` / `refs/convert/NAME`).
//!
//! The Hub is asked as `huggingface_hub` asks it (`hf_api.py`,
//! `file_download.py`):
//! - the revision is resolved once, on first use, to a commit
//!   (`GET {endpoint}/api/{type}s/{repo}[/revision/{rev}]` → `sha`), and
//!   every later request names that commit, so a push during the run never
//!   mixes two commits;
//! - the folder's files come from the repository tree at that commit
//!   (`GET {endpoint}/api/{type}s/{repo}/tree/{sha}[/{path}]`, one level,
//!   pages followed through `Link: <…>; rel="next"`): side files are
//!   copied, subfolders named in a warning as local ones are;
//! - access is checked with one `HEAD` of a file's resolve URL before any
//!   body is read, so a gated or private repository is one clear line;
//! - the bytes are read through the crate's HTTP store rooted at
//!   `{endpoint}/{prefix}{repo}/resolve`, objects `{sha}/{path}/{name}`:
//!   ranged GETs that follow the Hub's redirects (relative ones, and to the
//!   CDN's host), with the same identity checks, retries and resumes as
//!   every store.
//!
//! The endpoint is `HF_ENDPOINT` (default <https://huggingface.co>); the
//! token `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`), else the file
//! `HF_TOKEN_PATH` (default `$HF_HOME/token`, `HF_HOME` default
//! `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`), sent as
//! `Authorization: Bearer` to the endpoint's host only: the HTTP client
//! drops it on a redirect to another host (reqwest's rule), so the CDN
//! never sees it. The token is never shown.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::http::HttpBuilder;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ClientConfigKey, ClientOptions, ObjectStore};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use url::Url;

use super::location::{Location, StoreKind, UrlProblem};
use super::RemoteEntry;
use crate::base::error::{Error, RemoteProblem, Result};

/// The public Hub, when `HF_ENDPOINT` is not set.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Largest answer of the Hub's API read (a repository's info or one page
/// of its tree).
const MAX_API_ANSWER: usize = 64 << 20;
/// Most pages of a tree followed: far more than any repository has; a
/// server whose `next` links never end is refused.
const MAX_TREE_PAGES: usize = 10_000;
/// Attempts of one API request that fails with 429, 5xx or no answer.
const API_ATTEMPTS: u32 = 4;
const API_BACKOFF: Duration = Duration::from_millis(200);
const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const API_READ_TIMEOUT: Duration = Duration::from_secs(30);
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether `text` is an `hf://` URL.
pub(super) fn is_hub_url(text: &str) -> bool {
    after_scheme(text).is_some()
}

/// What follows `hf://` (the scheme in any case, as `s3://` is read).
fn after_scheme(text: &str) -> Option<&str> {
    text.get(..5)
        .filter(|s| s.eq_ignore_ascii_case("hf://"))
        .and_then(|_| text.get(5..))
}

/// The kind of repository, as the Hub's URLs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepoType {
    Model,
    Dataset,
    Space,
}

impl RepoType {
    /// The API's collection (`/api/models/...`).
    fn api(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }

    /// The prefix of its web and resolve URLs (none for models).
    fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }
}

/// An `hf://` URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HubUrl {
    repo_type: RepoType,
    /// `ORG/NAME`.
    repo: String,
    revision: Option<String>,
    /// The folder inside the repository, without leading or trailing `/`.
    path: String,
}

impl HubUrl {
    fn parse(text: &str) -> std::result::Result<HubUrl, String> {
        let rest = after_scheme(text)
            .ok_or("not an hf:// URL")?
            .trim_end_matches('/');
        if rest.contains(['?', '#']) {
            return Err(super::location::NO_QUERY.into());
        }
        let mut parts: Vec<&str> = rest.split('/').collect();
        let repo_type = match parts.first() {
            Some(&"datasets") => RepoType::Dataset,
            Some(&"spaces") => RepoType::Space,
            _ => RepoType::Model,
        };
        if repo_type != RepoType::Model {
            parts.remove(0);
        }
        let usage = "name the repository as hf://ORG/NAME[@REVISION][/PATH]";
        if parts.len() < 2 {
            return Err(usage.into());
        }
        let org = parts[0];
        let (name, mut revision) = match parts[1].split_once('@') {
            Some((name, revision)) => (name, Some(revision.to_string())),
            None => (parts[1], None),
        };
        let mut path_parts = &parts[2..];
        // `refs/pr/N` and `refs/convert/NAME` are the revisions with a `/`
        // that HfFileSystem takes unencoded.
        if revision.as_deref() == Some("refs")
            && path_parts.len() >= 2
            && matches!(path_parts[0], "pr" | "convert")
        {
            revision = Some(format!("refs/{}/{}", path_parts[0], path_parts[1]));
            path_parts = &path_parts[2..];
        }
        let valid_id = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid_id(org) || !valid_id(name) {
            return Err(usage.into());
        }
        let revision = match revision {
            None => None,
            Some(r) => {
                let r = percent_decode(&r).ok_or("the revision is not UTF-8")?;
                if r.is_empty() || r.chars().any(char::is_control) {
                    return Err("an empty or unprintable revision after `@`".into());
                }
                Some(r)
            }
        };
        let mut path = Vec::new();
        // Folder names are taken as written, as HfFileSystem takes them
        // (only the revision is percent-decoded).
        for &part in path_parts {
            let part = part.to_string();
            if part.is_empty() || part == "." || part == ".." || part.contains('/') {
                return Err(format!("`{}` is not a folder name", part.escape_debug()));
            }
            path.push(part);
        }
        Ok(HubUrl {
            repo_type,
            repo: format!("{org}/{name}"),
            revision,
            path: path.join("/"),
        })
    }

    /// As messages show it: what the user wrote, tidied.
    fn display(&self) -> String {
        let mut shown = format!("hf://{}{}", self.repo_type.url_prefix(), self.repo);
        if let Some(revision) = &self.revision {
            shown.push('@');
            shown.push_str(revision);
        }
        if !self.path.is_empty() {
            shown.push('/');
            shown.push_str(&self.path);
        }
        shown
    }
}

/// Where the token came from, for messages (never its value).
#[derive(Debug, Clone)]
enum TokenSource {
    Env(&'static str),
    File(PathBuf),
}

#[derive(Clone)]
struct Token {
    value: String,
    source: TokenSource,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`), else the token file, as
    /// `huggingface_hub.get_token` finds it; `None` without one.
    fn from_env() -> Option<Token> {
        for name in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
            if let Ok(value) = std::env::var(name) {
                let value = value.trim();
                if !value.is_empty() {
                    return Some(Token {
                        value: value.to_string(),
                        source: TokenSource::Env(name),
                    });
                }
            }
        }
        let path = token_path()?;
        let text = std::fs::read_to_string(&path).ok()?;
        let value = text.trim();
        (!value.is_empty()).then(|| Token {
            value: value.to_string(),
            source: TokenSource::File(path),
        })
    }

    /// Where the token came from, for a message.
    fn origin(&self) -> String {
        match &self.source {
            TokenSource::Env(name) => name.to_string(),
            TokenSource::File(path) => {
                format!("the token file {}", crate::base::shown::shown_path(path))
            }
        }
    }
}

/// `HF_TOKEN_PATH`, else `$HF_HOME/token`.
fn token_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HF_TOKEN_PATH").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = match std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        Some(home) => PathBuf::from(home),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
            Some(cache) => PathBuf::from(cache).join("huggingface"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/huggingface"),
        },
    };
    Some(home.join("token"))
}

/// What the revision resolved to: the commit and the folder's entries in
/// its tree.
#[derive(Debug)]
struct Resolved {
    /// The store path of the folder: `{sha}[/{path}]`.
    prefix: ObjectPath,
    files: Vec<RemoteEntry>,
    folders: Vec<String>,
}

/// The Hub side of a [`super::RemoteFolder`]: how to ask, and what was
/// resolved (once, on first use).
pub(super) struct HubFolder {
    url: HubUrl,
    endpoint: Url,
    token: Option<Token>,
    client: reqwest::Client,
    display: String,
    resolved: Mutex<Option<Arc<Resolved>>>,
}

/// A hub folder and the location (store, URL, secrets) of its files.
pub(super) fn parse(
    text: &str,
    config: &[(&str, &str)],
) -> std::result::Result<(Location, HubFolder), UrlProblem> {
    // What did not parse is shown without a query (a token someone put
    // there).
    let shown = without_user_part(text.split(['?', '#']).next().unwrap_or_default());
    let url = HubUrl::parse(text).map_err(|problem| UrlProblem {
        url: shown.to_string(),
        problem,
    })?;
    let display = url.display();
    let refuse = |problem: String| UrlProblem {
        url: display.clone(),
        problem,
    };
    let endpoint = endpoint()
        .ok_or_else(|| refuse("HF_ENDPOINT is not an http(s) URL without credentials".into()))?;
    let token = Token::from_env();
    let secrets: Vec<String> = token.iter().map(|t| t.value.clone()).collect();
    let allow_http = endpoint.scheme() == "http";
    let setup = |problem: String| {
        refuse(format!(
            "cannot set up access: {}",
            super::problem::redact(&problem, &secrets)
        ))
    };
    let headers = auth_headers(token.as_ref()).map_err(setup)?;
    let store = resolve_store(&endpoint, &url, &headers, allow_http, config).map_err(setup)?;
    let client = api_client(headers, allow_http).map_err(setup)?;
    let location = Location {
        kind: StoreKind::Hub,
        store,
        prefix: ObjectPath::default(),
        url: display.clone(),
        secrets: secrets.clone(),
    };
    let folder = HubFolder {
        url,
        endpoint,
        token,
        client,
        display,
        resolved: Mutex::new(None),
    };
    Ok((location, folder))
}

/// `HF_ENDPOINT`, else the public Hub; `None` when it is not an http(s)
/// URL without credentials.
fn endpoint() -> Option<Url> {
    let endpoint_text = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    Url::parse(endpoint_text.trim_end_matches('/'))
        .ok()
        .filter(|e| matches!(e.scheme(), "http" | "https") && e.password().is_none())
}

/// The headers of every request: `Authorization: Bearer` with the token,
/// marked sensitive so the client never shows it; none without a token.
fn auth_headers(token: Option<&Token>) -> std::result::Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.value))
            .map_err(|_| format!("the token in {} is not a valid header", token.origin()))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// The HTTP store rooted at the repository's `resolve` URL, with the
/// crate's client defaults, then the user's settings, and the crate's
/// retries: the bytes are read through it as from every store.
fn resolve_store(
    endpoint: &Url,
    url: &HubUrl,
    headers: &HeaderMap,
    allow_http: bool,
    config: &[(&str, &str)],
) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    let mut options = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_default_headers(headers.clone());
    for (key, value) in super::location::CLIENT_DEFAULTS {
        options = options.with_config(key, value);
    }
    options = super::location::apply(options, config, |o, k: ClientConfigKey, v| {
        o.with_config(k, v)
    })?;
    let resolve_base = format!(
        "{}/{}{}/resolve",
        endpoint.as_str().trim_end_matches('/'),
        url.repo_type.url_prefix(),
        url.repo
    );
    let store = HttpBuilder::new()
        .with_url(resolve_base)
        .with_client_options(options)
        .with_retry(super::location::retry_config())
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// The client of the Hub's API: the same headers, bounded waits, and
/// https only unless the endpoint itself is http.
fn api_client(
    headers: HeaderMap,
    allow_http: bool,
) -> std::result::Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("trtllm-prune/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .connect_timeout(API_CONNECT_TIMEOUT)
        .read_timeout(API_READ_TIMEOUT.min(super::stall_timeout()))
        .timeout(API_TIMEOUT)
        .https_only(!allow_http)
        .build()
        .map_err(|e| e.to_string())
}

impl HubFolder {
    /// The store path of `name` in the folder, at the resolved commit.
    pub(super) fn location(&self, name: PathPart<'_>) -> Result<ObjectPath> {
        Ok(self.resolved()?.prefix.clone().join(name))
    }

    /// The folder's files at the resolved commit, sorted by name.
    pub(super) fn list(&self) -> Result<Vec<RemoteEntry>> {
        Ok(self.resolved()?.files.clone())
    }

    /// The folder's subfolders at the resolved commit, sorted by name.
    pub(super) fn subfolders(&self) -> Result<Vec<String>> {
        Ok(self.resolved()?.folders.clone())
    }

    /// The resolution, made on the first call: every later call (from any
    /// thread) gets the same commit.
    fn resolved(&self) -> Result<Arc<Resolved>> {
        let mut slot = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(resolved) = slot.as_ref() {
            return Ok(Arc::clone(resolved));
        }
        let resolved = Arc::new(super::block_on(&self.display, self.resolve())??);
        *slot = Some(Arc::clone(&resolved));
        Ok(resolved)
    }

    /// The revision resolved to a commit, the folder's entries in that
    /// commit's tree, and access to its files checked.
    async fn resolve(&self) -> Result<Resolved> {
        let sha = self.resolve_commit().await?;
        let entries = self.tree_entries(&sha).await?;
        let (files, folders) = self.folder_entries(&entries)?;
        // Segments as they are named: the HTTP client encodes each once
        // (`ObjectPath::join` of text would encode `% # [ ]` a first time).
        let mut prefix = ObjectPath::from(sha.as_str());
        for part in self.url.path.split('/').filter(|p| !p.is_empty()) {
            let part = PathPart::parse(part).map_err(|e| {
                self.error(
                    RemoteProblem::Invalid,
                    format!(
                        "`{}` cannot be a folder name here: {e}",
                        part.escape_debug()
                    ),
                )
            })?;
            prefix = prefix.join(part);
        }
        self.check_access(&sha, &files).await?;
        Ok(Resolved {
            prefix,
            files,
            folders,
        })
    }

    /// The repository's path in the API: `api/{type}s/{repo}`.
    fn api_path(&self) -> String {
        format!("api/{}/{}", self.url.repo_type.api(), self.url.repo)
    }

    /// The folder inside the repository as URL segments, each one
    /// percent-encoded and led by a `/` (empty at the repository's root).
    fn encoded_folder(&self) -> String {
        let mut encoded = String::new();
        for part in self.url.path.split('/').filter(|p| !p.is_empty()) {
            encoded.push('/');
            encoded.push_str(&encode_segment(part));
        }
        encoded
    }

    /// The commit the revision (or the default branch) names now: the
    /// `sha` of the repository's info, 40 hex digits.
    async fn resolve_commit(&self) -> Result<String> {
        let api = self.api_path();
        let info_path = match &self.url.revision {
            Some(revision) => format!("{api}/revision/{}", encode_segment(revision)),
            None => api,
        };
        let info = self.get_json(&self.api_url(&info_path)?).await?.0;
        let sha = info
            .get("sha")
            .and_then(|s| s.as_str())
            .filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                self.error(
                    RemoteProblem::Transfer,
                    "the Hub's answer names no commit (`sha`)".into(),
                )
            })?;
        Ok(sha.to_string())
    }

    /// Every entry of the folder's tree at `sha` (one level), page after
    /// page, at most [`MAX_TREE_PAGES`] of them.
    async fn tree_entries(&self, sha: &str) -> Result<Vec<serde_json::Value>> {
        let tree_path = format!("{}/tree/{sha}{}", self.api_path(), self.encoded_folder());
        let mut next = Some(self.api_url(&tree_path)?);
        let mut entries = Vec::new();
        let mut pages = 0;
        while let Some(page_url) = next.take() {
            pages += 1;
            if pages > MAX_TREE_PAGES {
                return Err(self.error(
                    RemoteProblem::Transfer,
                    format!("the Hub's tree has more than {MAX_TREE_PAGES} pages"),
                ));
            }
            let (page, link) = self.get_json(&page_url).await?;
            let serde_json::Value::Array(page) = page else {
                return Err(self.error(
                    RemoteProblem::Transfer,
                    "the Hub's tree answer is not a list".into(),
                ));
            };
            entries.extend(page);
            next = self.next_page(&page_url, link.as_deref())?;
        }
        Ok(entries)
    }

    /// The page after `page_url`, from its `Link` header; `None` after the
    /// last one.
    fn next_page(&self, page_url: &Url, link: Option<&str>) -> Result<Option<Url>> {
        let Some(link) = link.and_then(next_link) else {
            return Ok(None);
        };
        // The token goes with every API request: never to a page on
        // another host.
        match page_url.join(&link) {
            Ok(u) if u.origin() == self.endpoint.origin() => Ok(Some(u)),
            _ => Err(self.error(
                RemoteProblem::Transfer,
                "the Hub's next tree page is on another host".into(),
            )),
        }
    }

    /// One HEAD of a file (the config if there is one) before any body: a
    /// gated repository lists freely but refuses its files, and the
    /// commit served must be `sha`.
    async fn check_access(&self, sha: &str, files: &[RemoteEntry]) -> Result<()> {
        let Some(first) = files
            .iter()
            .find(|f| f.name == crate::base::file::CONFIG_FILE)
            .or(files.first())
        else {
            return Ok(());
        };
        let file_url = format!(
            "{}{}/resolve/{sha}{}/{}",
            self.url.repo_type.url_prefix(),
            self.url.repo,
            self.encoded_folder(),
            encode_segment(&first.name)
        );
        let head = self.send(Method::HEAD, &self.api_url(&file_url)?).await?;
        let served = head
            .headers()
            .get("X-Repo-Commit")
            .and_then(|c| c.to_str().ok());
        if let Some(served) = served.filter(|c| *c != sha) {
            return Err(self.error(
                RemoteProblem::Transfer,
                format!(
                    "the Hub served commit {} for commit {sha}",
                    served.escape_debug()
                ),
            ));
        }
        Ok(())
    }

    /// The folder's direct files and subfolders among the tree's entries.
    fn folder_entries(
        &self,
        entries: &[serde_json::Value],
    ) -> Result<(Vec<RemoteEntry>, Vec<String>)> {
        let under = match self.url.path.is_empty() {
            true => String::new(),
            false => format!("{}/", self.url.path),
        };
        let mut files = Vec::new();
        let mut folders = Vec::new();
        for entry in entries {
            let path = entry.get("path").and_then(|p| p.as_str());
            let kind = entry.get("type").and_then(|t| t.as_str());
            let (Some(path), Some(kind)) = (path, kind) else {
                return Err(self.error(
                    RemoteProblem::Transfer,
                    "a tree entry of the Hub's answer has no `path` or `type`".into(),
                ));
            };
            let Some(name) = path.strip_prefix(&under).filter(|n| !n.contains('/')) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            match kind {
                "directory" => folders.push(name.to_string()),
                "file" => {
                    let size = entry
                        .get("lfs")
                        .and_then(|l| l.get("size"))
                        .or_else(|| entry.get("size"))
                        .and_then(|s| s.as_u64())
                        .ok_or_else(|| {
                            self.error(
                                RemoteProblem::Transfer,
                                format!(
                                    "the Hub's tree gives no size for `{}`",
                                    path.escape_debug()
                                ),
                            )
                        })?;
                    files.push(RemoteEntry {
                        name: name.to_string(),
                        size,
                    });
                }
                _ => {}
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        files.dedup_by(|a, b| a.name == b.name);
        folders.sort();
        folders.dedup();
        Ok((files, folders))
    }

    fn api_url(&self, path: &str) -> Result<Url> {
        let base = format!("{}/", self.endpoint.as_str().trim_end_matches('/'));
        Url::parse(&base)
            .and_then(|b| b.join(path))
            .map_err(|e| self.error(RemoteProblem::Invalid, format!("bad Hub URL: {e}")))
    }

    /// A GET of the API, parsed; and its `Link` header.
    async fn get_json(&self, url: &Url) -> Result<(serde_json::Value, Option<String>)> {
        let mut response = self.send(Method::GET, url).await?;
        let link = response
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                self.error(
                    RemoteProblem::Transfer,
                    format!("the Hub's answer was cut: {}", self.quiet(&e)),
                )
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_API_ANSWER {
                return Err(self.error(
                    RemoteProblem::Transfer,
                    format!("the Hub's answer is larger than {MAX_API_ANSWER} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let value = serde_json::from_slice(&body).map_err(|e| {
            self.error(
                RemoteProblem::Transfer,
                format!("the Hub's answer is not JSON: {e}"),
            )
        })?;
        Ok((value, link))
    }

    /// One request, retried on 429, 5xx and no answer; a refusal is one
    /// line saying what to do. All its attempts together are bounded by the
    /// stall timeout (`TRTLLM_PRUNE_STALL_TIMEOUT`), as every other read is.
    async fn send(&self, method: Method, url: &Url) -> Result<reqwest::Response> {
        let stall = super::stall_timeout();
        match tokio::time::timeout(stall, self.send_attempts(method, url)).await {
            Ok(answer) => answer,
            Err(_) => Err(self.error(RemoteProblem::Transfer, super::stalled_problem(stall))),
        }
    }

    async fn send_attempts(&self, method: Method, url: &Url) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .client
                .request(method.clone(), url.clone())
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retry || attempt >= API_ATTEMPTS {
                        return Err(self.refusal(&response));
                    }
                }
                Err(e) if attempt >= API_ATTEMPTS => {
                    return Err(self.error(
                        RemoteProblem::Transfer,
                        format!("the Hub did not answer: {}", self.quiet(&e)),
                    ));
                }
                Err(_) => {}
            }
            tokio::time::sleep(API_BACKOFF * 2u32.pow(attempt - 1)).await;
        }
    }

    /// A refused request as the one line the user needs, by the Hub's
    /// `X-Error-Code` (as `huggingface_hub.hf_raise_for_status` reads it).
    fn refusal(&self, response: &reqwest::Response) -> Error {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let code = header("X-Error-Code").unwrap_or_default();
        let message = header("X-Error-Message").unwrap_or_default();
        let web = format!(
            "{}/{}{}",
            self.endpoint.as_str().trim_end_matches('/'),
            self.url.repo_type.url_prefix(),
            self.url.repo
        );
        let (kind, problem) = match (code.as_str(), status.as_u16(), &self.token) {
            ("GatedRepo", _, None) => (
                RemoteProblem::Denied,
                format!("a gated repository: accept its conditions at {web} and set HF_TOKEN to a token of that account"),
            ),
            ("GatedRepo", _, Some(token)) => (
                RemoteProblem::Denied,
                format!("a gated repository, and the account of {} has no access to it yet: request it at {web}", token.origin()),
            ),
            ("RevisionNotFound", _, _) => (
                RemoteProblem::NotFound,
                format!(
                    "revision `{}` not found",
                    self.url.revision.as_deref().unwrap_or("(default branch)")
                ),
            ),
            ("EntryNotFound", _, _) => (
                RemoteProblem::NotFound,
                format!("`{}` not found in the repository", self.url.path),
            ),
            ("RepoNotFound", _, None) | ("", 401, None) => (
                RemoteProblem::NotFound,
                "repository not found: it does not exist, or it is private and HF_TOKEN is not set"
                    .into(),
            ),
            ("RepoNotFound", _, Some(token)) | ("", 404, Some(token)) => (
                RemoteProblem::NotFound,
                format!("repository not found: it does not exist, or the account of {} cannot see it", token.origin()),
            ),
            ("", 401, Some(token)) => (
                RemoteProblem::Denied,
                format!("the Hub refused the token from {} ({})", token.origin(), if message.is_empty() { "invalid credentials".into() } else { message.clone() }),
            ),
            ("", 403, _) => (
                RemoteProblem::Denied,
                format!("access denied ({status}) {message}").trim_end().to_string(),
            ),
            (_, 404, _) => (RemoteProblem::NotFound, format!("not found ({status})")),
            _ => (
                RemoteProblem::Transfer,
                format!("the Hub answered {status} {code} {message}")
                    .trim_end()
                    .to_string(),
            ),
        };
        self.error(kind, problem)
    }

    fn error(&self, kind: RemoteProblem, problem: String) -> Error {
        let secrets: Vec<String> = self.token.iter().map(|t| t.value.clone()).collect();
        Error::Remote {
            url: self.display.clone(),
            range: None,
            kind,
            problem: super::problem::redact(&problem, &secrets),
        }
    }

    /// A client error without the URL's query (a signed CDN URL).
    fn quiet(&self, e: &reqwest::Error) -> String {
        // The error's own text names the URL, which may be a signed one.
        let mut text = match (e.is_timeout(), e.is_connect()) {
            (true, _) => "timed out",
            (_, true) => "cannot connect",
            _ => "the request failed",
        }
        .to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// The URL of `rel="next"` in a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

/// `text` without a user part before the repository (`hf://user:pw@org/...`
/// is no form the Hub knows, and its password must not be shown).
fn without_user_part(text: &str) -> String {
    let Some(rest) = text.strip_prefix("hf://") else {
        return text.to_string();
    };
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match first.rsplit_once('@') {
        Some((_, org)) if tail.is_empty() => format!("hf://{org}"),
        Some((_, org)) => format!("hf://{org}/{tail}"),
        None => text.to_string(),
    }
}

/// What Python's `quote(text, safe="")` escapes: all but letters, digits
/// and `-_.~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One path segment, percent-encoded as Python's `quote(text, safe="")`.
fn encode_segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// `text` with its `%XX` escapes decoded; `None` if that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> HubUrl {
        HubUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn hub_urls_name_a_repository_a_revision_and_a_folder() {
        let url = parsed("hf://meta-llama/Llama-3.1-8B");
        assert_eq!(url.repo_type, RepoType::Model);
        assert_eq!(url.repo, "meta-llama/Llama-3.1-8B");
        assert_eq!(url.revision, None);
        assert_eq!(url.path, "");
        let url = parsed("hf://datasets/org/name@v1.0/sub/dir/");
        assert_eq!(url.repo_type, RepoType::Dataset);
        assert_eq!(url.revision.as_deref(), Some("v1.0"));
        assert_eq!(url.path, "sub/dir");
        assert_eq!(url.display(), "hf://datasets/org/name@v1.0/sub/dir");
        assert_eq!(
            parsed("hf://org/name@refs/pr/3/ckpt").revision.as_deref(),
            Some("refs/pr/3")
        );
        assert_eq!(
            parsed("hf://org/name@refs%2Fpr%2F3").revision.as_deref(),
            Some("refs/pr/3")
        );
        assert_eq!(parsed("hf://spaces/org/name").repo_type, RepoType::Space);
        for bad in [
            "hf://gpt2",
            "hf://org/",
            "hf://org/na me",
            "hf://org/name@",
            "hf://org/name/../x",
            "hf://org/name?x=1",
            "hf://datasets/org",
        ] {
            assert!(HubUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_next_page_is_the_link_with_rel_next() {
        assert_eq!(
            next_link(r#"<https://h/a?cursor=2>; rel="next", <https://h/a>; rel="first""#)
                .as_deref(),
            Some("https://h/a?cursor=2")
        );
        assert_eq!(next_link(r#"<https://h/a>; rel="prev""#), None);
    }

    #[test]
    fn segments_are_encoded_as_python_quote_with_nothing_safe() {
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_segment("modèle [1].md"), "mod%C3%A8le%20%5B1%5D.md");
    }

    #[test]
    fn a_user_part_is_never_shown() {
        assert_eq!(without_user_part("hf://u:pw@org/name"), "hf://org/name");
        assert_eq!(without_user_part("hf://u:pw@org"), "hf://org");
        assert_eq!(
            without_user_part("hf://org/name@main/x"),
            "hf://org/name@main/x"
        );
        let e = match parse("hf://user:PWSECRET@org/name", &[]) {
            Err(e) => e,
            Ok(_) => panic!("accepted a user part"),
        };
        assert!(!format!("{}: {}", e.url, e.problem).contains("PWSECRET"));
    }

    #[test]
    fn the_scheme_is_read_in_any_case_as_s3_is() {
        assert!(is_hub_url("HF://org/name"));
        assert_eq!(
            HubUrl::parse("Hf://org/name").expect("parsed").repo,
            "org/name"
        );
    }
}
