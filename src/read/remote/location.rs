//! From the text of a URL to an object store and the folder's prefix in it.
//!
//! Which store a URL names is `object_store`'s own rule
//! ([`ObjectStoreScheme::parse`]): `s3://`/`s3a://`, `gs://`,
//! `az://`/`abfs[s]://`/`adl://`/`azure://`, `https://` hosts of S3, R2 and
//! Azure, and any other `http(s)://` as a plain web server. Credentials and
//! endpoints come from the standard environment (the builders' `from_env`),
//! then from the `config` pairs a caller gives (tests point at a local
//! server that way). Never from the URL: a password in a URL is refused, so
//! that it cannot end up in a message or a shell history we print.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig,
};
use url::Url;

/// Which kind of service a [`super::RemoteFolder`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    S3,
    Gcs,
    Azure,
    /// A plain web server: ranged GETs, no listing.
    Http,
    /// A Hugging Face Hub repository (`hf://`): listed through the Hub's
    /// API, read through its resolve URLs at one commit.
    Hub,
}

/// A parsed URL, ready to use.
pub(super) struct Location {
    pub kind: StoreKind,
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// The URL for messages: no password, query or fragment, no trailing `/`.
    pub url: String,
    /// Values that must never be shown (keys, tokens), for redaction.
    pub secrets: Vec<String>,
}

/// Why a URL was refused, already worded for the user.
pub(super) struct UrlProblem {
    pub url: String,
    pub problem: String,
}

/// Requests object_store retries itself (5xx, 429, timeouts, connection
/// errors), with exponential backoff; 4xx answers are never retried.
const MAX_RETRIES: usize = 4;
const RETRY_TIMEOUT: Duration = Duration::from_secs(60);
/// How much longer than the stall timeout the client's retries may go on.
const RETRY_MARGIN: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: &str = "10 seconds";
/// No byte for this long on a connection: the request fails and is retried
/// (or resumed, mid-body).
const READ_TIMEOUT: &str = "30 seconds";
/// A whole request, body included: generous, since a part of 16 MiB on a
/// slow link takes a while; stalls are caught by the read timeout.
const REQUEST_TIMEOUT: &str = "10 minutes";

pub(super) fn parse(text: &str, config: &[(&str, &str)]) -> Result<Location, UrlProblem> {
    let url = Url::parse(text).map_err(|e| UrlProblem {
        url: scrub_unparsed(text),
        problem: format!("not a valid URL: {e}"),
    })?;
    let display = display_url(&url);
    let refuse = |problem: String| UrlProblem {
        url: display.clone(),
        problem,
    };
    if url.password().is_some() {
        return Err(refuse(
            "credentials in the URL are not supported: give them in the environment \
             (see docs/REMOTE.md)"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse(NO_QUERY.into()));
    }
    const SCHEMES: [&str; 9] = [
        "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http",
    ];
    if !SCHEMES.contains(&url.scheme()) && url.scheme() != "https" {
        return Err(refuse(unsupported_scheme(url.scheme())));
    }
    // object_store's rule keeps the bucket out of the path for s3/gs/az
    // URLs and the https forms of S3 and Azure; a plain web server's
    // folder is the whole URL path.
    let (scheme, prefix) = ObjectStoreScheme::parse(&url)
        .map_err(|e| refuse(format!("bad folder path in the URL: {e}")))?;
    // `az://container@account...` names a container with its user part;
    // elsewhere a user part is a credential.
    if !url.username().is_empty() && scheme != ObjectStoreScheme::MicrosoftAzure {
        return Err(refuse(
            "a user name in the URL is not supported: give credentials in the environment \
             (see docs/REMOTE.md)"
                .into(),
        ));
    }
    let mut secrets = secret_values(config);
    let built = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            build_cloud::<AmazonS3Builder>(text, config).map(|s| (StoreKind::S3, s))
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            build_cloud::<GoogleCloudStorageBuilder>(text, config).map(|s| (StoreKind::Gcs, s))
        }
        ObjectStoreScheme::MicrosoftAzure => {
            build_cloud::<MicrosoftAzureBuilder>(text, config).map(|s| (StoreKind::Azure, s))
        }
        ObjectStoreScheme::Http => build_http(&url, config).map(|s| (StoreKind::Http, s)),
        _ => Err(unsupported_scheme(url.scheme())),
    };
    let (kind, store) = built.map_err(|problem| {
        let problem = super::problem::redact(&problem, &secrets);
        refuse(format!("cannot set up access: {problem}"))
    })?;
    secrets.sort();
    secrets.dedup();
    let prefix = match literal_prefix(text) {
        Some(literal) => ObjectPath::parse(literal)
            .map_err(|e| refuse(format!("bad folder path in the URL: {e}")))?,
        None => prefix,
    };
    Ok(Location {
        kind,
        store,
        prefix,
        url: display,
        secrets,
    })
}

/// The folder part of a bucket URL (`s3://`, `gs://`, `az://` and the
/// other non-HTTP forms) as written: keys are named literally there, as
/// the clouds' own tools take them (`s3://b/pct%41` is the prefix
/// `pct%41`, not `pctA`). `None` for `http(s)://` URLs, whose path is
/// percent-decoded as URLs are.
fn literal_prefix(text: &str) -> Option<&str> {
    if crate::base::file::is_http_url(text) {
        return None;
    }
    let (_, rest) = text.split_once("://")?;
    Some(rest.split_once('/').map_or("", |(_, path)| path))
}

/// `url` as messages show it: scheme, user part (an Azure container),
/// host, port and path; never a password, query or fragment.
fn display_url(url: &Url) -> String {
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() {
        shown.push_str(url.username());
        shown.push('@');
    }
    if let Some(host) = url.host_str() {
        shown.push_str(host);
    }
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path().trim_end_matches('/'));
    shown
}

/// A text that did not parse as a URL, for a message: everything between
/// `://` and an `@` (a possible password) and after `?` or `#` is dropped.
fn scrub_unparsed(text: &str) -> String {
    let text = text.split(['?', '#']).next().unwrap_or_default();
    match (text.split_once("://"), text.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &text[at + 1..]),
        _ => text.to_string(),
    }
}

/// The values of the configuration (environment first, then `config`)
/// that are secrets, so that no message can repeat them.
fn secret_values(config: &[(&str, &str)]) -> Vec<String> {
    let is_secret = |key: &str| {
        let key = key.to_ascii_lowercase();
        !key.ends_with("key_id")
            && ["secret", "token", "password", "sas", "_key", "credential"]
                .iter()
                .any(|w| key.contains(w))
    };
    let from_env = std::env::vars().filter(|(key, _)| {
        (key.starts_with("AWS_") || key.starts_with("GOOGLE_") || key.starts_with("AZURE_"))
            && is_secret(key)
    });
    from_env
        .map(|(_, value)| value)
        .chain(
            config
                .iter()
                .filter(|(key, _)| is_secret(key))
                .map(|(_, value)| value.to_string()),
        )
        // A one- or two-character value would redact half of every message.
        .filter(|value| value.len() >= 4)
        .collect()
}

pub(super) fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        // A stall timeout set longer than the retries' own bound is waited
        // for: the stall check, not the client, ends the wait.
        retry_timeout: RETRY_TIMEOUT.max(super::stall_timeout() + RETRY_MARGIN),
    }
}

/// Timeouts every store gets unless the environment or `config` sets them.
pub(super) const CLIENT_DEFAULTS: [(ClientConfigKey, &str); 3] = [
    (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
    (ClientConfigKey::ReadTimeout, READ_TIMEOUT),
    (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
];

/// Applies `config` pairs to a builder through its own key type, so a
/// misspelt key is an error rather than silently ignored.
pub(super) fn apply<B, K: FromStr>(
    mut builder: B,
    config: &[(&str, &str)],
    with: impl Fn(B, K, &str) -> B,
) -> Result<B, String> {
    for (key, value) in config {
        let parsed = K::from_str(key).map_err(|_| format!("unknown setting `{key}`"))?;
        builder = with(builder, parsed, value);
    }
    Ok(builder)
}

/// What `object_store`'s three cloud builders (S3, GCS, Azure) share, so
/// that one function ([`build_cloud`]) sets each up.
trait CloudBuilder: Sized {
    type Key: FromStr;
    type Store: ObjectStore;
    fn from_env() -> Self;
    fn with_url(self, url: &str) -> Self;
    fn with_config(self, key: Self::Key, value: &str) -> Self;
    fn is_set(&self, key: &Self::Key) -> bool;
    fn client_key(key: ClientConfigKey) -> Self::Key;
    fn with_retry(self, retry: RetryConfig) -> Self;
    fn build(self) -> object_store::Result<Self::Store>;
}

macro_rules! cloud_builder {
    ($builder:ty, $key:ty, $store:ty) => {
        impl CloudBuilder for $builder {
            type Key = $key;
            type Store = $store;
            fn from_env() -> Self {
                <$builder>::from_env()
            }
            fn with_url(self, url: &str) -> Self {
                <$builder>::with_url(self, url)
            }
            fn with_config(self, key: $key, value: &str) -> Self {
                <$builder>::with_config(self, key, value)
            }
            fn is_set(&self, key: &$key) -> bool {
                self.get_config_value(key).is_some()
            }
            fn client_key(key: ClientConfigKey) -> $key {
                <$key>::Client(key)
            }
            fn with_retry(self, retry: RetryConfig) -> Self {
                <$builder>::with_retry(self, retry)
            }
            fn build(self) -> object_store::Result<$store> {
                <$builder>::build(self)
            }
        }
    };
}

cloud_builder!(AmazonS3Builder, AmazonS3ConfigKey, AmazonS3);
cloud_builder!(
    GoogleCloudStorageBuilder,
    GoogleConfigKey,
    GoogleCloudStorage
);
cloud_builder!(MicrosoftAzureBuilder, AzureConfigKey, MicrosoftAzure);

/// A cloud store for the URL `text`: the environment, then `config`, then
/// the client defaults where neither set a timeout.
fn build_cloud<B: CloudBuilder>(
    text: &str,
    config: &[(&str, &str)],
) -> Result<Arc<dyn ObjectStore>, String>
where
    B::Store: 'static,
{
    let mut builder = apply(B::from_env().with_url(text), config, B::with_config)?;
    for (key, value) in CLIENT_DEFAULTS {
        let key = B::client_key(key);
        if !builder.is_set(&key) {
            builder = builder.with_config(key, value);
        }
    }
    let store = builder
        .with_retry(retry_config())
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// A plain web server: the store's base is the URL's origin, and the
/// folder's path is the prefix, like a bucket's.
fn build_http(url: &Url, config: &[(&str, &str)]) -> Result<Arc<dyn ObjectStore>, String> {
    let origin = url.origin().ascii_serialization();
    let mut options = ClientOptions::new().with_allow_http(url.scheme() == "http");
    for (key, value) in CLIENT_DEFAULTS {
        options = options.with_config(key, value);
    }
    options = apply(options, config, |o, k: ClientConfigKey, v| {
        o.with_config(k, v)
    })?;
    let store = HttpBuilder::new()
        .with_url(origin)
        .with_client_options(options)
        .with_retry(retry_config())
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// The refusal of a URL with a query string or a fragment.
pub(super) const NO_QUERY: &str = "a query string or fragment in the URL is not supported";

/// The refusal of a URL scheme no store reads.
fn unsupported_scheme(scheme: &str) -> String {
    format!(
        "unsupported URL scheme `{scheme}`: use s3://, gs://, az://, hf://, http:// or https://"
    )
}
