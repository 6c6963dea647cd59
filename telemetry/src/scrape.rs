//! Fetching a backend's `/metrics`.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

use crate::TelemetryError;

/// The most a scrape may return; vLLM sends about 40 kB per engine.
pub const MAX_SCRAPE_BYTES: usize = 16 << 20;

/// One backend to scrape.
///
/// Credentials in the URL (`http://user:pass@host/`) are moved into a
/// basic-auth header and never appear in [`ScrapeTarget::instance`], in
/// errors or in `Debug` output.
#[derive(Clone)]
pub struct ScrapeTarget {
    instance: String,
    url: Url,
    basic: Option<(String, String)>,
    bearer: Option<String>,
}

impl fmt::Debug for ScrapeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeTarget")
            .field("instance", &self.instance)
            .field("url", &self.url.as_str())
            .field("basic_auth", &self.basic.as_ref().map(|_| "<redacted>"))
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ScrapeTarget {
    /// The `/metrics` of a backend given by its base URL (`http://host:8000`
    /// or `http://host:8000/v1`: vLLM and llama.cpp serve `/metrics` at the
    /// root). A URL whose path already ends in `/metrics` is used as is.
    /// The instance name is the base URL without credentials, query or
    /// trailing slash.
    pub fn for_backend(base_url: &str) -> Result<ScrapeTarget, TelemetryError> {
        let mut url = Url::parse(base_url).map_err(|e| TelemetryError::BadUrl {
            url: redact_url(base_url),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TelemetryError::BadUrl {
                url: redact_url(base_url),
                reason: format!("scheme {:?} is not http or https", url.scheme()),
            });
        }
        let basic = if url.username().is_empty() {
            None
        } else {
            let user = url.username().to_owned();
            let pass = url.password().unwrap_or("").to_owned();
            Some((user, pass))
        };
        // Infallible for http(s) URLs, which have a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        let instance = url.as_str().trim_end_matches('/').to_owned();
        if !url.path().trim_end_matches('/').ends_with("/metrics") {
            url.set_path("/metrics");
        }
        Ok(ScrapeTarget {
            instance,
            url,
            basic,
            bearer: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with each scrape.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> ScrapeTarget {
        self.bearer = Some(token.into());
        self
    }

    /// Replaces the instance name used in samples and summaries.
    pub fn with_instance(mut self, instance: impl Into<String>) -> ScrapeTarget {
        self.instance = instance.into();
        self
    }

    /// The name samples carry.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The URL scraped (never holds credentials).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// llama.cpp's `/slots`, beside the `/metrics` scraped.
    pub fn slots_url(&self) -> String {
        let mut url = self.url.clone();
        let path = url.path().trim_end_matches('/');
        let base = path.strip_suffix("metrics").unwrap_or("/");
        let slots = format!("{base}slots");
        url.set_path(&slots);
        url.to_string()
    }
}

/// `scheme://host...` with any `user:pass@` removed, for messages about a
/// URL that could not be parsed.
fn redact_url(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>@{}", &text[..scheme_end + 3], &text[at + 1..])
        }
        _ => text.to_owned(),
    }
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// The server answered with a non-success status.
    #[error("http status {0}")]
    Status(u16),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Transport(String),
    /// The body exceeded [`MAX_SCRAPE_BYTES`].
    #[error("response larger than {MAX_SCRAPE_BYTES} bytes")]
    TooLarge,
    /// The body was not UTF-8.
    #[error("response is not UTF-8 text")]
    NotText,
}

/// An HTTP client for scrapes.
#[derive(Debug, Clone)]
pub(crate) struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
}

impl Scraper {
    pub(crate) fn new(timeout: Duration) -> Result<Scraper, TelemetryError> {
        // reqwest is built without a bundled TLS provider; installing ring is
        // idempotent (an error means some provider is already installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| TelemetryError::Client(error_chain(&e.without_url())))?;
        Ok(Scraper { client, timeout })
    }

    /// Fetches the target's exposition text.
    pub(crate) async fn fetch(&self, target: &ScrapeTarget) -> Result<String, ScrapeError> {
        // Ask for the classic text format: prometheus_client switches to
        // OpenMetrics (with rewritten names) only when asked for it.
        self.get(
            target,
            target.url.clone(),
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        )
        .await
    }

    /// Fetches llama.cpp's `/slots` JSON for the target.
    pub(crate) async fn fetch_slots(&self, target: &ScrapeTarget) -> Result<String, ScrapeError> {
        let url =
            Url::parse(&target.slots_url()).map_err(|e| ScrapeError::Transport(e.to_string()))?;
        self.get(target, url, "application/json").await
    }

    async fn get(
        &self,
        target: &ScrapeTarget,
        url: Url,
        accept: &'static str,
    ) -> Result<String, ScrapeError> {
        let mut req = self.client.get(url).header(reqwest::header::ACCEPT, accept);
        if let Some((user, pass)) = &target.basic {
            req = req.basic_auth(user, Some(pass));
        }
        if let Some(token) = &target.bearer {
            req = req.bearer_auth(token);
        }
        let mut resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ScrapeError::Status(status.as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_SCRAPE_BYTES as u64)
        {
            return Err(ScrapeError::TooLarge);
        }
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(64 << 10) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > MAX_SCRAPE_BYTES {
                return Err(ScrapeError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| ScrapeError::NotText)
    }

    fn transport(&self, e: &reqwest::Error) -> ScrapeError {
        if e.is_timeout() {
            ScrapeError::Timeout(self.timeout)
        } else {
            ScrapeError::Transport(error_chain(e))
        }
    }
}

/// An error and its sources on one line, without the URL (which the
/// warning names through the instance).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls_map_to_metrics_urls_without_credentials() {
        let t = ScrapeTarget::for_backend("http://127.0.0.1:8000").unwrap();
        assert_eq!(t.url(), "http://127.0.0.1:8000/metrics");
        assert_eq!(t.instance(), "http://127.0.0.1:8000");
        let t = ScrapeTarget::for_backend("https://host:9/v1/?key=secret").unwrap();
        assert_eq!(t.url(), "https://host:9/metrics");
        assert_eq!(t.instance(), "https://host:9/v1");
        assert_eq!(t.slots_url(), "https://host:9/slots");
        let t = ScrapeTarget::for_backend("http://h:1/custom/metrics").unwrap();
        assert_eq!(t.url(), "http://h:1/custom/metrics");
        assert_eq!(t.slots_url(), "http://h:1/custom/slots");

        let t = ScrapeTarget::for_backend("http://alice:s3cret@h:1/")
            .unwrap()
            .with_bearer_token("tok3n");
        assert_eq!(t.instance(), "http://h:1");
        let debug = format!("{t:?}");
        assert!(!debug.contains("s3cret") && !debug.contains("alice") && !debug.contains("tok3n"));
        assert!(!t.url().contains("s3cret"));

        let err = ScrapeTarget::for_backend("ftp://bob:pw@h/")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ftp") && !err.contains("pw"), "{err}");
        let err = ScrapeTarget::for_backend("http://bob:pw@[bad/")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
    }
}
