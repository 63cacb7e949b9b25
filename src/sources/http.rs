//! The HTTP layer every platform client uses: retries, pacing, checked downloads, and keeping
//! credentials where they belong.
//!
//! - Every request goes through [`RetryConfig`]: a `Retry-After` is honoured on whatever status
//!   carries it (within `--max-retry-wait`), a 429 without one backs off from a floor (so a
//!   platform that does not say how long is not hammered), server errors and broken connections
//!   get jittered exponential backoff, and anything else is an answer. Attempts are bounded.
//! - A [`Pacer`] spaces requests to a platform's known rate limit before they are sent.
//! - Neither client follows redirects: a redirect would carry the request (and its credential)
//!   to a host nobody configured. Plain `http://` is refused except to loopback or when allowed.
//! - Downloads are spooled to disk, resumed with `Range` after a broken connection, checked
//!   against `Content-Length`, an MD5 `ETag` and the caller's own check (a JSON array must be
//!   closed), and fetched again when a check fails — a truncated or corrupted body never reaches
//!   a decoder.
//! - Credentials are [`Secret`]s (redacted `Debug`), transport errors are stripped of their URL
//!   (a presigned URL is a credential), and server texts are scrubbed of every secret.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, CONTENT_RANGE, ETAG, RANGE, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use url::Url;

use super::retry::{Decision, RetryConfig};

/// A credential (API key, token, password). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into().trim().to_string())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value, for a header and for scrubbing it out of texts.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Transport settings shared by every client.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Permit plain `http://` to non-loopback hosts.
    pub allow_http: bool,
    pub retry: RetryConfig,
    pub connect_timeout: Duration,
    /// Longest silence while waiting for or reading any response.
    pub read_timeout: Duration,
    /// Requests per minute to stay under (a platform's documented or known limit), if any.
    pub requests_per_minute: Option<u32>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allow_http: false,
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            requests_per_minute: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("{context}: rate-limited, retry later (the server asked to wait {wait_secs} s, more than --max-retry-wait)")]
    RateLimited { context: String, wait_secs: u64 },
    #[error("{context}: gave up after {attempts} attempts; last: {last}")]
    RetriesExhausted { context: String, attempts: u32, last: String },
    #[error("{context}: HTTP {status}{detail}")]
    Http { context: String, status: u16, detail: String },
    #[error("{context}: {message}")]
    Transport { context: String, message: String },
    #[error("refusing plain http:// for the {what} at {host}: use https, or pass --allow-http on a trusted network")]
    InsecureUrl { what: &'static str, host: String },
    #[error("unexpected answer from {context}: {message}")]
    Protocol { context: String, message: String },
    #[error("cannot write the download to {path}: {source}")]
    Spool { path: String, source: std::io::Error },
}

/// Whether a URL may be used: https always; http only to loopback or with `allow_http`.
pub fn check_url(url: &Url, what: &'static str, allow_http: bool) -> Result<(), HttpError> {
    let host = url.host_str().unwrap_or_default().to_string();
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        _ => Err(HttpError::InsecureUrl { what, host }),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Spaces requests at least `60 s / requests_per_minute` apart, across every task sharing it.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pacer {
    pub fn per_minute(requests: u32) -> Pacer {
        Pacer { interval: Duration::from_secs(60) / requests.max(1), next: tokio::sync::Mutex::new(None) }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this request's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// One HTTP answer, read whole (API answers are small JSON documents).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why one attempt failed, for the retry decision and the WARN line.
enum Attempt {
    /// Connection refused, reset, timed out, the body broke off, or a check failed.
    Transport(String),
    Status(StatusCode, Option<String>),
}

/// How a download failed.
#[derive(Debug)]
pub enum DownloadError {
    /// 403 "Request has expired": the presigned URL needs replacing.
    Expired,
    /// 403 for another reason.
    Forbidden,
    /// Any other non-retriable answer or exhausted retries.
    Failed(HttpError),
}

impl From<HttpError> for DownloadError {
    fn from(e: HttpError) -> Self {
        DownloadError::Failed(e)
    }
}

/// What became of a request sent with [`HttpClient::call_unrepeatable`].
#[derive(Debug)]
pub enum Sent {
    Answered(Answer),
    /// The platform may have acted on it, but its answer never arrived (why, as text).
    AnswerLost(String),
}

/// A reqwest client with our retry policy, an optional bearer credential and optional pacing.
#[derive(Debug, Clone)]
pub struct HttpClient {
    config: HttpConfig,
    client: reqwest::Client,
    bearer: Option<Secret>,
    /// `Authorization: Basic` user and password, for platforms that use it (Khoros).
    basic: Option<(String, Secret)>,
    /// Every secret of the source, scrubbed out of server texts before they are shown.
    secrets: Vec<Secret>,
    pacer: Option<Arc<Pacer>>,
}

impl HttpClient {
    /// A client that sends `bearer` (if any) as `Authorization: Bearer` on every request.
    pub fn new(config: HttpConfig, bearer: Option<Secret>) -> Result<HttpClient, HttpError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("cxlake/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HttpError::Transport {
                context: "building the HTTP client".into(),
                message: e.to_string(),
            })?;
        let pacer = config.requests_per_minute.map(|n| Arc::new(Pacer::per_minute(n)));
        let secrets = bearer.iter().cloned().collect();
        Ok(HttpClient { config, client, bearer, basic: None, secrets, pacer })
    }

    /// Sends `Authorization: Basic` with `user` and `password` on every request instead.
    pub fn with_basic_auth(mut self, user: &str, password: Secret) -> HttpClient {
        self.bearer = None;
        self.secrets.push(password.clone());
        self.basic = Some((user.to_string(), password));
        self
    }

    /// Also scrub `secret` out of server texts (credentials sent some other way).
    pub fn with_secret(mut self, secret: Secret) -> HttpClient {
        if !secret.is_empty() {
            self.secrets.push(secret);
        }
        self
    }

    /// The underlying client, to build requests for [`HttpClient::call`].
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    fn authorised(&self, request: RequestBuilder) -> RequestBuilder {
        match (&self.bearer, &self.basic) {
            (Some(secret), _) => request.bearer_auth(secret.expose()),
            (None, Some((user, password))) => request.basic_auth(user, Some(password.expose())),
            (None, None) => request,
        }
    }

    async fn paced(&self) {
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
    }

    /// Sends the request built by `request`, retrying per [`RetryConfig`]; returns the first
    /// answer that is not retriable (a success or an error status that is an answer).
    pub async fn call(
        &self,
        context: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, HttpError> {
        let retry = self.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.paced().await;
            let outcome = match self.authorised(request()).send().await {
                Err(e) => Err(Attempt::Transport(describe_transport(e))),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = header_text(response.headers(), RETRY_AFTER);
                    match response.bytes().await {
                        Err(e) => Err(Attempt::Transport(describe_transport(e))),
                        Ok(body)
                            if retry.for_status(status, retry_after.as_deref(), Utc::now())
                                == Decision::GiveUp =>
                        {
                            Ok(Answer { status, body })
                        }
                        Ok(_) => Err(Attempt::Status(status, retry_after)),
                    }
                }
            };
            match outcome {
                Ok(answer) => return Ok(answer),
                Err(failure) => self.wait_before_retry(context, attempt, failure).await?,
            }
        }
    }

    /// Sends a request that must not be repeated blindly, because it creates something (an
    /// export). It is sent again only when the platform certainly did not act on it: the
    /// connection was never made, or the answer was a refusal (429, 503; their `Retry-After`
    /// honoured). When it may have been acted on and the answer never arrived — a timeout or a
    /// broken connection after sending, a 500, 502 or 504 (a gateway that gave up while the
    /// platform worked) — the caller gets [`Sent::AnswerLost`] and must find out what happened
    /// before sending it again.
    pub async fn call_unrepeatable(
        &self,
        context: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Sent, HttpError> {
        let retry = self.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.paced().await;
            let failure = match self.authorised(request()).send().await {
                Err(e) if e.is_connect() => Attempt::Transport(describe_transport(e)),
                Err(e) => return Ok(Sent::AnswerLost(describe_transport(e))),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = header_text(response.headers(), RETRY_AFTER);
                    let body = match response.bytes().await {
                        Err(e) => return Ok(Sent::AnswerLost(describe_transport(e))),
                        Ok(body) => body,
                    };
                    match status.as_u16() {
                        500 | 502 | 504 => return Ok(Sent::AnswerLost(format!("HTTP {}", status.as_u16()))),
                        429 | 503
                            if retry.for_status(status, retry_after.as_deref(), Utc::now())
                                != Decision::GiveUp =>
                        {
                            Attempt::Status(status, retry_after)
                        }
                        _ => return Ok(Sent::Answered(Answer { status, body })),
                    }
                }
            };
            self.wait_before_retry(context, attempt, failure).await?;
        }
    }

    /// Decides about a failed attempt: returns after the wait if another attempt is due.
    async fn wait_before_retry(
        &self,
        context: &str,
        attempt: u32,
        failure: Attempt,
    ) -> Result<(), HttpError> {
        let retry = self.config.retry;
        let (decision, why) = match &failure {
            Attempt::Transport(message) => (Decision::Backoff, message.clone()),
            Attempt::Status(status, retry_after) => (
                retry.for_status(*status, retry_after.as_deref(), Utc::now()),
                format!("HTTP {}", status.as_u16()),
            ),
        };
        let wait = match decision {
            Decision::GiveUp => {
                return Err(match failure {
                    Attempt::Transport(message) => HttpError::Transport { context: context.into(), message },
                    Attempt::Status(status, _) => HttpError::Http {
                        context: context.into(),
                        status: status.as_u16(),
                        detail: String::new(),
                    },
                })
            }
            Decision::RateLimited(wait) => {
                return Err(HttpError::RateLimited { context: context.into(), wait_secs: wait.as_secs() })
            }
            Decision::WaitFor(wait) => wait,
            Decision::Backoff => retry.backoff(attempt),
            Decision::RateBackoff => self.rate_backoff(attempt),
        };
        if attempt >= retry.max_attempts {
            return Err(HttpError::RetriesExhausted {
                context: context.into(),
                attempts: attempt,
                last: why,
            });
        }
        tracing::warn!(what = context, why = %why, attempt, wait_ms = wait.as_millis() as u64, "Retrying after a transient failure");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The wait after a 429 that names none: exponential backoff, but never shorter than the
    /// rate-limit floor or this client's pacing interval, so the platform is not hammered.
    fn rate_backoff(&self, attempt: u32) -> Duration {
        let retry = self.config.retry;
        let floor =
            self.pacer.as_ref().map_or(retry.rate_limit_floor, |p| p.interval().max(retry.rate_limit_floor));
        retry.backoff(attempt).max(floor)
    }

    /// Downloads `url` into `path`: resumes with `Range` after a broken connection, retries
    /// server errors, and verifies length, an MD5 `ETag` and that the file is a whole one of
    /// `format` ([`crate::decode::check_complete`]) before reporting success; a file that is not
    /// is fetched again. Like the MD5 check, that check runs on a blocking thread.
    pub async fn download(
        &self,
        context: &str,
        url: &Url,
        path: &Path,
        format: crate::schema::FileFormat,
    ) -> Result<u64, DownloadError> {
        check_url(url, "download URL", self.config.allow_http)?;
        let spool_error = |source| HttpError::Spool { path: path.display().to_string(), source };
        let mut file = tokio::fs::File::create(path).await.map_err(spool_error)?;
        let mut have = 0u64;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.paced().await;
            let mut request = self.authorised(self.client.get(url.clone()));
            if have > 0 {
                request = request.header(RANGE, format!("bytes={have}-"));
            }
            let failure = match request.send().await {
                Err(e) => Attempt::Transport(describe_transport(e)),
                Ok(response) => {
                    let status = response.status();
                    match status {
                        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                            let resumed = status == StatusCode::PARTIAL_CONTENT
                                && content_range_start(response.headers()) == Some(have);
                            if !resumed && have > 0 {
                                // The server sent the whole body again: start over.
                                restart(&mut file).await.map_err(spool_error)?;
                                have = 0;
                            }
                            let total = if resumed {
                                content_range_total(response.headers())
                            } else {
                                response.content_length()
                            };
                            let etag = header_text(response.headers(), ETAG);
                            let mut body = response.bytes_stream();
                            let mut broken = None;
                            while let Some(chunk) = body.next().await {
                                match chunk {
                                    Ok(chunk) => {
                                        file.write_all(&chunk).await.map_err(spool_error)?;
                                        have += chunk.len() as u64;
                                    }
                                    Err(e) => {
                                        broken = Some(describe_transport(e));
                                        break;
                                    }
                                }
                            }
                            file.flush().await.map_err(spool_error)?;
                            match (broken, total) {
                                (Some(why), _) => Attempt::Transport(format!("{why} after {have} bytes")),
                                (None, Some(total)) if have != total => {
                                    Attempt::Transport(format!("body ended after {have} of {total} bytes"))
                                }
                                (None, _) => {
                                    let verdict = match verify_md5_etag(path, etag.as_deref()).await {
                                        Ok(()) => {
                                            let owned = path.to_path_buf();
                                            tokio::task::spawn_blocking(move || {
                                                crate::decode::check_complete(format, &owned)
                                            })
                                            .await
                                            .map_err(|e| e.to_string())
                                            .and_then(|verdict| verdict)
                                        }
                                        Err(why) => Err(why),
                                    };
                                    match verdict {
                                        Ok(()) => {
                                            file.sync_all().await.map_err(spool_error)?;
                                            return Ok(have);
                                        }
                                        Err(why) => {
                                            restart(&mut file).await.map_err(spool_error)?;
                                            have = 0;
                                            Attempt::Transport(why)
                                        }
                                    }
                                }
                            }
                        }
                        StatusCode::FORBIDDEN => {
                            // S3 says "Request has expired" for a presigned URL past its lifetime.
                            // The body is not quoted anywhere: S3 error bodies can echo the signature.
                            let body = response.text().await.unwrap_or_default();
                            return Err(if body.to_ascii_lowercase().contains("expired") {
                                DownloadError::Expired
                            } else {
                                DownloadError::Forbidden
                            });
                        }
                        _ => {
                            let retry_after = header_text(response.headers(), RETRY_AFTER);
                            let decision =
                                self.config.retry.for_status(status, retry_after.as_deref(), Utc::now());
                            if decision == Decision::GiveUp && self.bearer.is_some() {
                                // An API's answer explains itself; a presigned URL's host may
                                // echo the signature, so its body is never quoted.
                                let body = response.bytes().await.unwrap_or_default();
                                return Err(DownloadError::Failed(self.status_error(context, status, &body)));
                            }
                            Attempt::Status(status, retry_after)
                        }
                    }
                }
            };
            self.wait_before_retry(context, attempt, failure).await?;
        }
    }

    /// An error status as an [`HttpError`], with the start of the body, scrubbed of secrets.
    pub fn status_error(&self, context: &str, status: StatusCode, body: &[u8]) -> HttpError {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
        let text = self.scrub(text.trim());
        HttpError::Http {
            context: context.to_string(),
            status: status.as_u16(),
            detail: if text.is_empty() { String::new() } else { format!(": {text}") },
        }
    }

    /// Removes every secret of this client from a text that came back from the server.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if !secret.is_empty() {
                text = text.replace(secret.expose(), "***");
            }
        }
        text
    }
}

/// Empties a spool file to fetch its body again from the first byte.
async fn restart(file: &mut tokio::fs::File) -> std::io::Result<()> {
    file.set_len(0).await?;
    file.seek(std::io::SeekFrom::Start(0)).await?;
    Ok(())
}

pub fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `Content-Range: bytes 100-199/200` → 100.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let value = header_text(headers, CONTENT_RANGE)?;
    value.strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

/// `Content-Range: bytes 100-199/200` → 200.
fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    header_text(headers, CONTENT_RANGE)?.rsplit('/').next()?.parse().ok()
}

/// S3 gives a single-part object's MD5 as its ETag (multipart ETags contain a `-` and are not
/// checksums). When the ETag is an MD5, the downloaded bytes must match it.
async fn verify_md5_etag(path: &Path, etag: Option<&str>) -> Result<(), String> {
    let Some(expected) =
        etag.map(|e| e.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
    else {
        return Ok(());
    };
    if expected.len() != 32 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    let path = path.to_path_buf();
    let actual = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Md5::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if actual == expected {
        Ok(())
    } else {
        Err("the downloaded bytes do not match the ETag (MD5); the file was corrupted in transit".into())
    }
}

/// A transport error as text, without the URL: a presigned URL is a credential.
pub fn describe_transport(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the body"
    } else {
        "transport error"
    };
    let error = error.without_url();
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let ok = |u: &str, allow| check_url(&Url::parse(u).unwrap(), "API URL", allow).is_ok();
        assert!(ok("https://api.eu.salted.cx", false));
        assert!(ok("http://127.0.0.1:8080", false));
        assert!(ok("http://127.8.0.1:8080", false));
        assert!(ok("http://localhost:8080", false));
        assert!(ok("http://[::1]:8080", false));
        assert!(!ok("http://api.eu.salted.cx", false));
        assert!(!ok("http://10.0.0.5", false));
        assert!(ok("http://10.0.0.5", true));
        assert!(!ok("ftp://127.0.0.1", true));
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("secret-value")), "Secret(***)");
    }

    #[test]
    fn every_secret_is_scrubbed_from_server_texts() {
        let client = HttpClient::new(HttpConfig::default(), Some(Secret::new("tok-1")))
            .unwrap()
            .with_secret(Secret::new("company-2"));
        assert_eq!(client.scrub("bad tok-1 for company-2"), "bad *** for ***");
    }

    #[test]
    fn a_429_without_retry_after_waits_at_least_the_floor_or_the_pacing_interval() {
        let mut config = HttpConfig::default();
        config.retry.initial_backoff = Duration::from_millis(10);
        config.retry.rate_limit_floor = Duration::from_secs(1);
        let unpaced = HttpClient::new(config.clone(), None).unwrap();
        assert!(unpaced.rate_backoff(1) >= Duration::from_secs(1), "{:?}", unpaced.rate_backoff(1));
        config.requests_per_minute = Some(10);
        let paced = HttpClient::new(config, None).unwrap();
        assert!(paced.rate_backoff(1) >= Duration::from_secs(6), "Dixa's pace: {:?}", paced.rate_backoff(1));
    }

    #[tokio::test]
    async fn the_pacer_spaces_requests() {
        let pacer = Pacer::per_minute(600);
        assert_eq!(pacer.interval(), Duration::from_millis(100));
        let started = tokio::time::Instant::now();
        for _ in 0..4 {
            pacer.wait().await;
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
}

/// Connection options every HTTP platform takes (flattened into its arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Allow plain http:// API and download URLs to hosts other than loopback
    #[arg(long)]
    pub allow_http: bool,

    /// Longest Retry-After to honour (on a 429, 503 or any status); a longer one fails the
    /// window as rate-limited
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub max_retry_wait: String,
}

impl HttpArgs {
    /// Applies these options to a transport configuration.
    pub fn apply(&self, config: &mut HttpConfig) -> Result<(), super::SetupError> {
        config.allow_http = self.allow_http;
        config.retry.max_retry_wait = crate::units::parse_duration(&self.max_retry_wait)
            .map_err(|e| super::SetupError(format!("--max-retry-wait: {e}")))?;
        Ok(())
    }
}

/// Reads a secret from `file` (warning when other users can read it) or else from `env_var`;
/// `what` and `flag` name it in the error when neither has it.
pub fn load_secret(
    file: Option<&Path>,
    env_var: &str,
    flag: &str,
    what: &str,
) -> Result<Secret, super::SetupError> {
    let secret = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| super::SetupError(format!("cannot read {flag} {}: {e}", path.display())))?;
            warn_if_world_readable(path);
            Secret::new(text)
        }
        None => Secret::new(crate::secrets::var(env_var).unwrap_or_default()),
    };
    if secret.is_empty() {
        return Err(super::SetupError(format!("no {what}: set {env_var} or pass {flag} PATH")));
    }
    Ok(secret)
}

#[cfg(unix)]
fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(path = %path.display(), "The secret file is readable by every user; run chmod 600 on it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_path: &Path) {}
