//! The HTTP client: building it, endpoint URLs, health checks, model
//! discovery, and turning transport failures into [`QueryError`]s.

use std::time::Duration;

use loadgen::{ErrorKind, QueryError};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::SutError;
use crate::config::{ApiKey, ClientOptions, ExtraHeader, HttpVersion};

/// A `QueryError` in one call.
pub(crate) fn query_error(kind: ErrorKind, message: impl Into<String>) -> QueryError {
    QueryError {
        kind,
        http_status: None,
        message: message.into(),
    }
}

/// The `User-Agent` of every request.
pub(crate) const USER_AGENT: &str = concat!("harness-sut/", env!("CARGO_PKG_VERSION"));

/// Builds the shared client, sending `headers` with every request. Installs
/// rustls' ring provider first (reqwest is built without a default provider).
pub(crate) fn build_client(
    options: &ClientOptions,
    headers: &[ExtraHeader],
) -> Result<reqwest::Client, SutError> {
    // Err means a provider is already installed, which is what we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(options.connect_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_endpoint)
        .pool_idle_timeout(options.pool_idle_timeout)
        // A benchmark counts every failure: reqwest's own retries are off,
        // and the one resend we make is counted (`closed_before_answer`).
        .retry(reqwest::retry::never())
        .no_proxy()
        .user_agent(USER_AGENT)
        .default_headers(header_map(headers)?);
    builder = match options.http {
        HttpVersion::Auto => builder,
        HttpVersion::Http1 => builder.http1_only(),
        HttpVersion::Http2 => builder.http2_prior_knowledge(),
    };
    builder
        .build()
        .map_err(|e| SutError::Client(root_cause(&e)))
}

/// The extra headers, marked sensitive so they are never printed.
fn header_map(headers: &[ExtraHeader]) -> Result<HeaderMap, SutError> {
    let mut map = HeaderMap::new();
    for header in headers {
        let bad = |reason: &str| SutError::Header {
            spec: header.name().to_string(),
            reason: reason.to_string(),
        };
        let name = HeaderName::from_bytes(header.name().as_bytes())
            .map_err(|_| bad("not a valid header name"))?;
        let mut value = HeaderValue::from_str(header.expose())
            .map_err(|_| bad("the value has characters an HTTP header cannot carry"))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

/// `Authorization: Bearer <key>`, marked sensitive so it is never printed.
pub(crate) fn auth_header(key: &ApiKey) -> Result<HeaderValue, SutError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
        SutError::ApiKey {
            origin: key.origin().to_string(),
            reason: "the key has characters an HTTP header cannot carry".into(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The server root of a base URL: trailing `/` and `/v1` dropped.
pub(crate) fn server_root(url: &str) -> Result<String, SutError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| SutError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SutError::InvalidUrl {
            url: url.to_string(),
            reason: format!("scheme {:?} is not http or https", parsed.scheme()),
        });
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(SutError::InvalidUrl {
            url: url.to_string(),
            reason: "a base url takes no query or fragment".into(),
        });
    }
    let mut root = parsed.as_str().trim_end_matches('/').to_string();
    if let Some(stripped) = root.strip_suffix("/v1") {
        root = stripped.to_string();
    }
    Ok(root)
}

/// The innermost error message of a chain (for example "Connection
/// refused (os error 111)"), without reqwest's outer text.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = current.source() {
        current = next;
    }
    one_line(&current.to_string(), 300)
}

/// Collapses whitespace runs (newlines included) and truncates.
pub(crate) fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 3));
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > max_chars {
            let cut: String = out.chars().take(max_chars).collect();
            return cut + "...";
        }
    }
    out
}

/// Whether a send failed because the server closed the connection after the
/// request went out and before any byte of an answer: the race of a
/// kept-alive connection the server had already decided to close (llama.cpp
/// closes after every streamed answer without saying `Connection: close`).
/// The server never read such a request, so it is sent once more; browsers
/// and Go's `net/http` do the same. A failure after an answer began is never
/// retried: every such failure is counted.
pub(crate) fn closed_before_answer(e: &reqwest::Error) -> bool {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |err| {
        err.source()
    })
    .find_map(|err| err.downcast_ref::<hyper::Error>())
    .is_some_and(hyper::Error::is_incomplete_message)
}

/// Maps a failed send or body read to a query error.
pub(crate) fn classify(e: &reqwest::Error, url: &str, options: &ClientOptions) -> QueryError {
    let cause = root_cause(e);
    if e.is_connect() {
        if e.is_timeout() {
            return query_error(
                ErrorKind::Connect,
                format!(
                    "no connection to {url} within the connect timeout ({:?})",
                    options.connect_timeout
                ),
            );
        }
        return query_error(
            ErrorKind::Connect,
            format!("cannot connect to {url}: {cause}"),
        );
    }
    if e.is_timeout() {
        return query_error(ErrorKind::Timeout, format!("{url} timed out: {cause}"));
    }
    if e.is_body() || e.is_decode() || e.is_request() {
        return query_error(
            ErrorKind::Disconnected,
            format!("the connection to {url} broke: {cause}"),
        );
    }
    query_error(
        ErrorKind::Other,
        format!("request to {url} failed: {cause}"),
    )
}

/// Maps a failure of the plain transport to a query error, in the words
/// [`classify`] uses for reqwest's.
pub(crate) fn classify_plain(
    failure: &crate::h1::Failure,
    url: &str,
    options: &ClientOptions,
) -> QueryError {
    use crate::h1::Failure;
    match failure {
        Failure::ConnectTimeout => query_error(
            ErrorKind::Connect,
            format!(
                "no connection to {url} within the connect timeout ({:?})",
                options.connect_timeout
            ),
        ),
        Failure::Connect(cause) => query_error(
            ErrorKind::Connect,
            format!("cannot connect to {url}: {}", one_line(cause, 300)),
        ),
        Failure::ClosedBeforeAnswer => query_error(
            ErrorKind::Disconnected,
            format!(
                "the connection to {url} broke: the server closed it after the request, \
                 before answering"
            ),
        ),
        Failure::Broken(cause) => query_error(
            ErrorKind::Disconnected,
            format!("the connection to {url} broke: {}", one_line(cause, 300)),
        ),
        Failure::Malformed(cause) => query_error(
            ErrorKind::MalformedResponse,
            format!(
                "{url} sent a malformed HTTP answer: {}",
                one_line(cause, 300)
            ),
        ),
    }
}

/// The message of an error response body: the JSON error's message, or the
/// body's text.
pub(crate) fn error_body_message(body: &[u8]) -> String {
    let mut parsed = crate::chunk::ParsedChunk::default();
    if parsed.parse(body).is_ok()
        && let Some(message) = parsed.error.take()
    {
        return one_line(&message, 300);
    }
    let text = String::from_utf8_lossy(body);
    let line = one_line(&text, 300);
    if line.is_empty() {
        "empty body".to_string()
    } else {
        line
    }
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
    #[serde(default)]
    owned_by: Option<String>,
}

/// A model a server lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServedModel {
    pub id: String,
    pub owned_by: Option<String>,
}

/// GET with a timeout; the response must be a success.
async fn get_ok(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    timeout: Duration,
    options: &ClientOptions,
) -> Result<reqwest::Response, SutError> {
    let mut request = client.get(url).timeout(timeout);
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    let response = request.send().await.map_err(|e| SutError::Unhealthy {
        url: url.to_string(),
        reason: classify(&e, url, options).message,
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Err(SutError::Unhealthy {
            url: url.to_string(),
            reason: format!(
                "answered HTTP {}: {}",
                status.as_u16(),
                error_body_message(&body)
            ),
        });
    }
    Ok(response)
}

/// GET `/health`: the server must answer with a success status.
pub(crate) async fn check_health(
    client: &reqwest::Client,
    root: &str,
    auth: Option<&HeaderValue>,
    options: &ClientOptions,
) -> Result<(), SutError> {
    let url = format!("{root}/health");
    get_ok(client, &url, auth, options.health_timeout, options).await?;
    Ok(())
}

/// GET `/v1/models`: the models the server lists.
pub(crate) async fn list_models(
    client: &reqwest::Client,
    root: &str,
    auth: Option<&HeaderValue>,
    options: &ClientOptions,
) -> Result<Vec<ServedModel>, SutError> {
    let url = format!("{root}/v1/models");
    let response = get_ok(client, &url, auth, options.health_timeout, options).await?;
    let body = response.bytes().await.map_err(|e| SutError::Unhealthy {
        url: url.clone(),
        reason: classify(&e, &url, options).message,
    })?;
    let list: ModelList = serde_json::from_slice(&body).map_err(|e| SutError::Unhealthy {
        url: url.clone(),
        reason: format!("the model list is not OpenAI's shape: {e}"),
    })?;
    Ok(list
        .data
        .into_iter()
        .map(|m| ServedModel {
            id: m.id,
            owned_by: m.owned_by,
        })
        .collect())
}

/// What a server says about itself: `GET /version` (vLLM, SGLang and the
/// simulator answer `{"version": "..."}`) and who owns its first listed
/// model (`owned_by` of `/v1/models`: `vllm`, `llamacpp`, ...). Each is
/// `None` when the server does not answer it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The server's base URL, without credentials.
    pub url: String,
    /// `version` of `GET /version`.
    pub version: Option<String>,
    /// `owned_by` of the first model `GET /v1/models` lists.
    pub owned_by: Option<String>,
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
}

/// `GET /version`'s `version`, when the server answers one.
pub(crate) async fn server_version(
    client: &reqwest::Client,
    root: &str,
    auth: Option<&HeaderValue>,
    options: &ClientOptions,
) -> Option<String> {
    let url = format!("{root}/version");
    let response = get_ok(client, &url, auth, options.health_timeout, options)
        .await
        .ok()?;
    let body = response.bytes().await.ok()?;
    serde_json::from_slice::<VersionBody>(&body)
        .ok()
        .map(|v| v.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_root_normalizes() {
        assert_eq!(server_root("http://h:8000").unwrap(), "http://h:8000");
        assert_eq!(server_root("http://h:8000/v1/").unwrap(), "http://h:8000");
        assert_eq!(
            server_root("https://h/prefix/v1").unwrap(),
            "https://h/prefix"
        );
        let e = server_root("ftp://h").unwrap_err().to_string();
        assert!(e.contains("ftp://h") && e.contains("scheme"), "{e}");
        assert!(server_root("not a url").is_err());
        assert!(server_root("http://h/?q=1").is_err());
    }

    #[test]
    fn one_line_collapses_and_truncates() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdef ghij", 4), "abcd...");
    }

    #[test]
    fn error_body_messages() {
        assert_eq!(
            error_body_message(br#"{"error":{"message":"too many\nrequests","code":429}}"#),
            "too many requests"
        );
        assert_eq!(
            error_body_message(br#"{"object":"error","message":"bad model","type":"x"}"#),
            "bad model"
        );
        assert_eq!(
            error_body_message(b"Internal Server Error"),
            "Internal Server Error"
        );
        assert_eq!(error_body_message(b""), "empty body");
    }
}
