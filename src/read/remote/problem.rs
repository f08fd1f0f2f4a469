//! object_store's errors as the crate's one-line [`Error::Remote`]: a kind
//! a caller can act on, the URL and byte range, a short reason from the
//! server, and never a secret.

use std::error::Error as StdError;
use std::ops::Range;

use crate::base::error::{Error, RemoteProblem};

/// Longest server detail quoted in a message (an S3 error body is an XML
/// document; its first words name the code).
const MAX_DETAIL: usize = 240;

/// The kind of an object_store error. Statuses 401/403/404/412 of object
/// requests arrive as their own variants (object_store maps them); those of
/// a listing arrive as `Generic`, with the status only in the source chain
/// ([`status_in_chain`]). What is left after the retries is a transfer
/// failure.
pub(super) fn kind_of(e: &object_store::Error) -> RemoteProblem {
    if let object_store::Error::Generic { .. } = e {
        return match status_in_chain(e) {
            Some(404) => RemoteProblem::NotFound,
            Some(401 | 403) => RemoteProblem::Denied,
            Some(412) => RemoteProblem::Changed,
            _ => RemoteProblem::Transfer,
        };
    }
    match e {
        object_store::Error::NotFound { .. } => RemoteProblem::NotFound,
        object_store::Error::Precondition { .. } => RemoteProblem::Changed,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => RemoteProblem::Denied,
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            RemoteProblem::Unsupported
        }
        object_store::Error::InvalidPath { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => RemoteProblem::Invalid,
        _ => RemoteProblem::Transfer,
    }
}

/// The HTTP status of a failed request buried in `e`'s sources.
/// object_store 0.14 keeps the typed status in a private error type (its
/// own `classify_http_failure` is private too), so the status is read from
/// that error's message, `... non-2xx status code: 404 Not Found ...`;
/// the S3 tests pin it (a missing bucket, a refused key).
fn status_in_chain(e: &object_store::Error) -> Option<u16> {
    const MARKER: &str = "non-2xx status code: ";
    let mut cause: Option<&dyn StdError> = Some(e);
    while let Some(error) = cause {
        let text = error.to_string();
        if let Some(at) = text.find(MARKER) {
            let digits = text.get(at + MARKER.len()..at + MARKER.len() + 3)?;
            return digits.parse().ok();
        }
        cause = error.source();
    }
    None
}

/// The crate error for a failed request on `url`.
pub(super) fn remote_error(
    url: &str,
    range: Option<Range<u64>>,
    e: &object_store::Error,
    secrets: &[String],
) -> Error {
    let kind = kind_of(e);
    let what = match kind {
        RemoteProblem::NotFound => "not found (no such bucket, container or object)",
        RemoteProblem::Denied => "access denied: check the credentials in the environment",
        RemoteProblem::Changed => {
            "the object changed while it was being read (its ETag, version or size differs)"
        }
        RemoteProblem::Unsupported => "the server cannot serve byte ranges",
        RemoteProblem::Invalid => "invalid request",
        RemoteProblem::Transfer => "transfer failed after retries",
    };
    Error::Remote {
        url: url.to_string(),
        range,
        kind,
        problem: format!("{what}: {}", detail(e, secrets)),
    }
}

/// The innermost cause of `e` (a status line and the start of the server's
/// answer, or the socket error), on one line, shortened, redacted.
fn detail(e: &object_store::Error, secrets: &[String]) -> String {
    let mut cause: &dyn StdError = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let redacted = redact(&one_line, secrets);
    match redacted.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}...", &redacted[..cut]),
        None => redacted,
    }
}

/// `text` with every secret value, every query parameter's value of a URL
/// in it (`?a=...&b=...`: signed URLs carry credentials under many names,
/// `X-Amz-*`, `Signature`, `Policy`, `Key-Pair-Id`, `X-Goog-*`, Azure SAS's
/// `sig`, `se`, `sp`, `skoid`, ...), and the value of a signature parameter
/// quoted outside a URL, replaced by `***`.
pub(super) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if !secret.is_empty() {
            out = out.replace(secret.as_str(), "***");
        }
    }
    // Where a value ends: the next parameter, a space, a quote, markup.
    let value_end =
        |c: char| matches!(c, '&' | '"' | '\'' | '<' | '>' | '#' | ';' | ',') || c.is_whitespace();
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '%');
    let mut from = 0;
    while let Some(found) = out[from..].find(['?', '&']) {
        let name_start = from + found + 1;
        let name_len = out[name_start..]
            .find(|c: char| !is_name(c))
            .unwrap_or(out.len() - name_start);
        let eq = name_start + name_len;
        if name_len == 0 || !out[eq..].starts_with('=') {
            from = name_start;
            continue;
        }
        let start = eq + 1;
        let end = out[start..]
            .find(value_end)
            .map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    const PARAMS: [&str; 8] = [
        "sig=",
        "Signature=",
        "Policy=",
        "Key-Pair-Id=",
        "X-Amz-Credential=",
        "X-Amz-Security-Token=",
        "X-Goog-Credential=",
        "X-Goog-Signature=",
    ];
    for param in PARAMS {
        let mut from = 0;
        while let Some(found) = out[from..].find(param) {
            let start = from + found + param.len();
            let end = out[start..]
                .find(value_end)
                .map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_secrets_and_signatures() {
        let secrets = vec!["hunter2hunter2".to_string()];
        let text = "GET https://h/o?X-Amz-Signature=abcdef&x=1 with hunter2hunter2 sig=zz";
        assert_eq!(
            redact(text, &secrets),
            "GET https://h/o?X-Amz-Signature=***&x=*** with *** sig=***"
        );
    }

    #[test]
    fn redacts_every_query_value_of_a_quoted_url() {
        let text = "denied: see https://cdn/f?Signature=S1&Policy=P1&Key-Pair-Id=K1\
                    &X-Goog-Credential=C1&se=2030&sp=r&skoid=O1 (\"x?a=1\")";
        assert_eq!(
            redact(text, &[]),
            "denied: see https://cdn/f?Signature=***&Policy=***&Key-Pair-Id=***\
             &X-Goog-Credential=***&se=***&sp=***&skoid=*** (\"x?a=***\")"
        );
        // Not a query: nothing to hide.
        assert_eq!(
            redact("is it? yes & no = maybe", &[]),
            "is it? yes & no = maybe"
        );
    }
}
