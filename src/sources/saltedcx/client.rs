//! HTTP client for the Salted CX export API, exactly as documented: `POST /api/v1/export`,
//! `GET /api/v1/export/{id}/status` (polled), presigned CSV downloads, `GET …/export/history`.
//!
//! Two `reqwest` clients on purpose: the API client sends `Authorization: Bearer <key>`, the
//! download client sends nothing — presigned URLs carry their own signature and point at another
//! host (S3), which must never see the API key. Neither client follows redirects: a redirect
//! would carry the request (and, for the API, its key) to a host nobody configured. Both URLs and
//! the key are credentials, so neither appears in any error or log line: transport errors are
//! stripped of their URL and download problems name the dataset, not the URL.
//!
//! Every request goes through [`RetryConfig`]: rate limits are waited out as the server asks
//! (within `--max-retry-wait`), server errors and broken connections are retried with jittered
//! backoff, anything else is an answer. Downloads resume with `Range` after a broken connection,
//! and are checked against `Content-Length` and, when it is an MD5, the `ETag`, so a truncated or
//! corrupted file is never handed to the decoder.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, CONTENT_RANGE, ETAG, RANGE, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use url::Url;

use super::api::{self, ApiError, CreatedExport, ExportState, ExportStatus};
use crate::sources::poll::PollConfig;
use crate::sources::retry::{Decision, RetryConfig};

/// The API key. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(value: impl Into<String>) -> ApiKey {
        ApiKey(value.into().trim().to_string())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value, for the Authorization header and for scrubbing it out of texts.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base, e.g. `https://api.eu.salted.cx/`.
    pub base_url: Url,
    pub api_key: ApiKey,
    /// Permit plain `http://` to non-loopback hosts.
    pub allow_http: bool,
    pub poll: PollConfig,
    pub retry: RetryConfig,
    pub connect_timeout: Duration,
    /// Longest silence while waiting for or reading any response.
    pub read_timeout: Duration,
    /// How often an expired download URL is replaced by a fresh one before the window fails.
    pub max_url_refreshes: u32,
}

impl ClientConfig {
    pub fn new(base_url: Url, api_key: ApiKey) -> ClientConfig {
        ClientConfig {
            base_url,
            api_key,
            allow_http: false,
            poll: PollConfig::default(),
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_url_refreshes: 3,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("Salted CX rejected the export request with {code}: {message} (hint: {hint})")]
    BadRequest { code: String, message: String, hint: &'static str },
    #[error(
        "the Salted CX API key was rejected (401 Unauthorized); check SALTEDCX_API_KEY or --api-key-file"
    )]
    Unauthorized,
    #[error("export {export_id} was not found (404): it does not exist or belongs to another account")]
    NotFound { export_id: String },
    #[error("export {export_id} FAILED on the Salted CX side: {error}; rerun the window later")]
    ExportFailed { export_id: String, error: String },
    #[error("export {export_id} was still PROCESSING after {waited_secs} s; raise --export-timeout or rerun later")]
    Timeout { export_id: String, waited_secs: u64 },
    #[error("the download URL of {dataset} was still expired after {refreshes} refreshes; rerun the window")]
    UrlExpired { dataset: String, refreshes: u32 },
    #[error("the download of {dataset} was refused (403) for a reason other than expiry")]
    DownloadForbidden { dataset: String },
    #[error("{context}: rate-limited, retry later (the API asked to wait {wait_secs} s, more than --max-retry-wait)")]
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

impl ClientError {
    /// Errors where retrying another window would fail the same way.
    pub fn affects_whole_run(&self) -> bool {
        match self {
            ClientError::Unauthorized | ClientError::InsecureUrl { .. } => true,
            ClientError::BadRequest { code, .. } => code != "INVALID_DATE_RANGE",
            _ => false,
        }
    }
}

/// Whether a URL may be used: https always; http only to loopback or with `allow_http`.
pub fn check_url(url: &Url, what: &'static str, allow_http: bool) -> Result<(), ClientError> {
    let host = url.host_str().unwrap_or_default().to_string();
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        _ => Err(ClientError::InsecureUrl { what, host }),
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

/// One HTTP answer, read whole (API answers are small JSON documents).
struct Answer {
    status: StatusCode,
    body: Bytes,
}

/// Why one attempt failed, for the retry decision and the WARN line.
enum Attempt {
    /// Connection refused, reset, timed out, or the body broke off.
    Transport(String),
    Status(StatusCode, Option<String>),
}

/// Talks to one Salted CX tenant.
#[derive(Debug, Clone)]
pub struct SaltedCxClient {
    config: ClientConfig,
    api: reqwest::Client,
    downloads: reqwest::Client,
}

impl SaltedCxClient {
    pub fn new(mut config: ClientConfig) -> Result<SaltedCxClient, ClientError> {
        check_url(&config.base_url, "API URL", config.allow_http)?;
        // `statusUrl` is relative ("api/v1/…"); joining it onto a base without a trailing slash
        // would drop the base's last path segment.
        if !config.base_url.path().ends_with('/') {
            let path = format!("{}/", config.base_url.path());
            config.base_url.set_path(&path);
        }
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("cxlake/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(config.connect_timeout)
                .read_timeout(config.read_timeout)
                .redirect(reqwest::redirect::Policy::none())
        };
        let transport = |e: reqwest::Error| ClientError::Transport {
            context: "building the HTTP client".into(),
            message: e.to_string(),
        };
        Ok(SaltedCxClient {
            api: builder().build().map_err(transport)?,
            downloads: builder().build().map_err(transport)?,
            config,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn endpoint(&self, relative: &str) -> Result<Url, ClientError> {
        let url = self.config.base_url.join(relative).map_err(|e| ClientError::Protocol {
            context: "the API".into(),
            message: format!("cannot resolve `{relative}` against the API URL: {e}"),
        })?;
        // Never send the key to a host the user did not configure.
        if url.origin() != self.config.base_url.origin() {
            return Err(ClientError::Protocol {
                context: "the API".into(),
                message: "a status URL points at another host; refusing to send the API key there".into(),
            });
        }
        Ok(url)
    }

    /// Sends an API request built by `request`, retrying per [`RetryConfig`]; returns the
    /// first answer that is not retriable.
    async fn call(&self, context: &str, request: impl Fn() -> RequestBuilder) -> Result<Answer, ClientError> {
        let retry = self.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match request().bearer_auth(self.config.api_key.expose()).send().await {
                Err(e) => Err(Attempt::Transport(describe_transport(e))),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = header_text(response.headers(), RETRY_AFTER);
                    match response.bytes().await {
                        Err(e) => Err(Attempt::Transport(describe_transport(e))),
                        // Answers that are not retriable (2xx, 4xx other than 429) are returned.
                        Ok(body) if retry.for_status(status, None, Utc::now()) == Decision::GiveUp => {
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

    /// Decides about a failed attempt: returns after the wait if another attempt is due.
    async fn wait_before_retry(
        &self,
        context: &str,
        attempt: u32,
        failure: Attempt,
    ) -> Result<(), ClientError> {
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
                    Attempt::Transport(message) => {
                        ClientError::Transport { context: context.into(), message }
                    }
                    Attempt::Status(status, _) => ClientError::Http {
                        context: context.into(),
                        status: status.as_u16(),
                        detail: String::new(),
                    },
                })
            }
            Decision::RateLimited(wait) => {
                return Err(ClientError::RateLimited { context: context.into(), wait_secs: wait.as_secs() })
            }
            Decision::WaitFor(wait) => wait,
            Decision::Backoff => retry.backoff(attempt),
        };
        if attempt >= retry.max_attempts {
            return Err(ClientError::RetriesExhausted {
                context: context.into(),
                attempts: attempt,
                last: why,
            });
        }
        tracing::warn!(what = context, why = %why, attempt, wait_ms = wait.as_millis() as u64, "Retrying after a transient failure");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// `POST /api/v1/export` for `[from, to)` (the API allows at most 24 h).
    pub async fn create_export(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        datasets: &[String],
        contact: Option<&str>,
    ) -> Result<CreatedExport, ClientError> {
        let mut url = self.endpoint("api/v1/export")?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("from", &from.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            query.append_pair("to", &to.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            query.append_pair("include", &datasets.join(","));
            if let Some(contact) = contact {
                query.append_pair("contact", contact);
            }
        }
        let context = format!(
            "creating the export of {} to {}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let answer = self.call(&context, || self.api.post(url.clone())).await?;
        let created: CreatedExport = self.json(answer, &context, None)?;
        if created.export_id.is_empty() || created.status_url.is_empty() {
            return Err(ClientError::Protocol { context, message: "empty exportId or statusUrl".into() });
        }
        Ok(created)
    }

    /// Resolves a status URL and checks it is exactly `<base>api/v1/export/<one segment>/status`:
    /// whatever the export id or the server's `statusUrl` contain, the key only goes there.
    pub fn status_endpoint(&self, status_url: &str) -> Result<Url, ClientError> {
        let url = self.endpoint(status_url)?;
        let prefix = format!("{}api/v1/export/", self.config.base_url.path());
        let well_formed = url.query().is_none()
            && url.fragment().is_none()
            && url
                .path()
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix("/status"))
                .is_some_and(|id| !id.is_empty() && !id.contains('/'));
        if well_formed {
            Ok(url)
        } else {
            Err(ClientError::Protocol {
                context: "the API".into(),
                message: format!(
                    "status URL `{status_url}` does not address one export; refusing to call it"
                ),
            })
        }
    }

    /// `GET` the status at `status_url` (relative, as the API returns it).
    pub async fn status(&self, export_id: &str, status_url: &str) -> Result<ExportStatus, ClientError> {
        let context = format!("reading the status of export {export_id}");
        let url = self.status_endpoint(status_url)?;
        let answer = self.call(&context, || self.api.get(url.clone())).await?;
        self.json(answer, &context, Some(export_id))
    }

    /// The status URL of an export id (for exports found in the history or a state record).
    pub fn status_url_for(export_id: &str) -> String {
        // Percent-encode everything but letters, digits, `-` and `_`: an opaque id must stay one
        // path segment (no `/`), and `.`/`..` must not be resolved away by URL normalisation.
        let mut encoded = String::with_capacity(export_id.len());
        for byte in export_id.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("api/v1/export/{encoded}/status")
    }

    /// Polls until the export is COMPLETED, with a growing interval and an overall deadline.
    pub async fn wait_completed(&self, created: &CreatedExport) -> Result<ExportStatus, ClientError> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.config.poll.deadline;
        let mut intervals = self.config.poll.intervals();
        loop {
            let status = self.status(&created.export_id, &created.status_url).await?;
            match status.status {
                ExportState::Completed => return Ok(status),
                ExportState::Failed => {
                    return Err(ClientError::ExportFailed {
                        export_id: created.export_id.clone(),
                        error: self.scrub(status.error.as_deref().unwrap_or("no error given")),
                    })
                }
                ExportState::Processing => {}
            }
            let wait = intervals.next().expect("intervals never end");
            if tokio::time::Instant::now() + wait > deadline {
                return Err(ClientError::Timeout {
                    export_id: created.export_id.clone(),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tracing::debug!(export_id = %created.export_id, wait_ms = wait.as_millis() as u64, "Export still processing");
            tokio::time::sleep(wait).await;
        }
    }

    /// `GET /api/v1/export/history`: the most recent exports (up to 100).
    pub async fn history(&self) -> Result<Vec<ExportStatus>, ClientError> {
        let context = "reading the export history";
        let url = self.endpoint("api/v1/export/history")?;
        let answer = self.call(context, || self.api.get(url.clone())).await?;
        self.json(answer, context, None)
    }

    /// Downloads `dataset` of a COMPLETED export into `path`, asking the status endpoint for a
    /// fresh presigned URL when the one in hand has expired.
    pub async fn download_dataset(
        &self,
        created: &CreatedExport,
        mut status: ExportStatus,
        dataset: &str,
        path: &Path,
    ) -> Result<u64, ClientError> {
        let mut refreshes = 0;
        loop {
            let url = status.download_urls.get(dataset).ok_or_else(|| ClientError::Protocol {
                context: format!("export {}", created.export_id),
                message: format!("COMPLETED without a download URL for {dataset}"),
            })?;
            match self.download(url, dataset, path).await {
                Err(DownloadFailure::Expired) if refreshes < self.config.max_url_refreshes => {
                    refreshes += 1;
                    tracing::warn!(dataset, export_id = %created.export_id, refreshes, "Download URL expired; asking the status endpoint for a fresh one");
                    status = self.status(&created.export_id, &created.status_url).await?;
                    if status.status != ExportState::Completed {
                        return Err(ClientError::Protocol {
                            context: format!("export {}", created.export_id),
                            message: format!(
                                "status went from COMPLETED to {:?} while downloading",
                                status.status
                            ),
                        });
                    }
                }
                Err(DownloadFailure::Expired) => {
                    return Err(ClientError::UrlExpired { dataset: dataset.to_string(), refreshes })
                }
                Err(DownloadFailure::Other(e)) => return Err(e),
                Ok(bytes) => return Ok(bytes),
            }
        }
    }

    /// One presigned URL into `path`: resumes with `Range` after a broken connection, retries
    /// server errors, and verifies length and MD5 ETag before reporting success.
    async fn download(&self, url: &str, dataset: &str, path: &Path) -> Result<u64, DownloadFailure> {
        let context = format!("downloading {dataset}");
        let url = Url::parse(url).map_err(|_| ClientError::Protocol {
            context: context.clone(),
            message: "the download URL is not a URL".into(),
        })?;
        check_url(&url, "download URL", self.config.allow_http)?;
        let spool_error = |source| ClientError::Spool { path: path.display().to_string(), source };
        let mut file = tokio::fs::File::create(path).await.map_err(spool_error)?;
        let mut have = 0u64;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.downloads.get(url.clone());
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
                                // The server sent the whole file again: start over.
                                file.set_len(0).await.map_err(spool_error)?;
                                file.seek(std::io::SeekFrom::Start(0)).await.map_err(spool_error)?;
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
                                (None, _) => match verify_md5_etag(path, etag.as_deref()).await {
                                    Ok(()) => {
                                        file.sync_all().await.map_err(spool_error)?;
                                        return Ok(have);
                                    }
                                    Err(why) => {
                                        file.set_len(0).await.map_err(spool_error)?;
                                        file.seek(std::io::SeekFrom::Start(0)).await.map_err(spool_error)?;
                                        have = 0;
                                        Attempt::Transport(why)
                                    }
                                },
                            }
                        }
                        StatusCode::FORBIDDEN => {
                            // S3 says "Request has expired" for a presigned URL past its lifetime.
                            // The body is not quoted anywhere: S3 error bodies can echo the signature.
                            let body = response.text().await.unwrap_or_default();
                            return Err(if body.to_ascii_lowercase().contains("expired") {
                                DownloadFailure::Expired
                            } else {
                                ClientError::DownloadForbidden { dataset: dataset.to_string() }.into()
                            });
                        }
                        _ => Attempt::Status(status, header_text(response.headers(), RETRY_AFTER)),
                    }
                }
            };
            self.wait_before_retry(&context, attempt, failure).await?;
        }
    }

    /// Decodes a JSON answer, or turns an error status into the matching [`ClientError`].
    fn json<T: for<'de> serde::Deserialize<'de>>(
        &self,
        answer: Answer,
        context: &str,
        export_id: Option<&str>,
    ) -> Result<T, ClientError> {
        let Answer { status, body } = answer;
        match status {
            s if s.is_success() => serde_json::from_slice(&body)
                .map_err(|e| ClientError::Protocol { context: context.to_string(), message: e.to_string() }),
            StatusCode::BAD_REQUEST => match serde_json::from_slice::<ApiError>(&body) {
                Ok(error) => Err(ClientError::BadRequest {
                    hint: api::hint_for_code(&error.code),
                    message: self.scrub(&error.message),
                    code: error.code,
                }),
                Err(_) => Err(self.http_error(context, status, &body)),
            },
            StatusCode::UNAUTHORIZED => Err(ClientError::Unauthorized),
            StatusCode::NOT_FOUND if export_id.is_some() => {
                Err(ClientError::NotFound { export_id: export_id.unwrap_or_default().to_string() })
            }
            _ => Err(self.http_error(context, status, &body)),
        }
    }

    fn http_error(&self, context: &str, status: StatusCode, body: &[u8]) -> ClientError {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
        let text = self.scrub(text.trim());
        ClientError::Http {
            context: context.to_string(),
            status: status.as_u16(),
            detail: if text.is_empty() { String::new() } else { format!(": {text}") },
        }
    }

    /// Removes the API key from a text that came back from the server.
    fn scrub(&self, text: &str) -> String {
        let key = self.config.api_key.expose();
        if key.is_empty() {
            text.to_string()
        } else {
            text.replace(key, "***")
        }
    }
}

enum DownloadFailure {
    Expired,
    Other(ClientError),
}

impl From<ClientError> for DownloadFailure {
    fn from(e: ClientError) -> Self {
        DownloadFailure::Other(e)
    }
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
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
fn describe_transport(error: reqwest::Error) -> String {
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
    fn api_key_debug_is_redacted() {
        assert_eq!(format!("{:?}", ApiKey::new("secret-value")), "ApiKey(***)");
    }

    #[test]
    fn status_url_of_an_opaque_id_is_encoded() {
        assert_eq!(SaltedCxClient::status_url_for("abc-123"), "api/v1/export/abc-123/status");
        assert_eq!(SaltedCxClient::status_url_for("a/b c"), "api/v1/export/a%2Fb%20c/status");
    }

    #[test]
    fn the_key_only_goes_to_well_formed_status_urls() {
        let config =
            ClientConfig::new(Url::parse("https://api.example.com/tenant").unwrap(), ApiKey::new("k"));
        let client = SaltedCxClient::new(config).unwrap();
        for id in ["abc-123", "../../admin", "%2e%2e", "a?b#c", "a/b"] {
            let url = client.status_endpoint(&SaltedCxClient::status_url_for(id)).unwrap();
            assert!(
                url.path().starts_with("/tenant/api/v1/export/") && url.path().ends_with("/status"),
                "{id}: {url}"
            );
            assert_eq!(url.path().matches('/').count(), 6, "{id}: one segment: {url}");
        }
        for hostile in [
            SaltedCxClient::status_url_for(".."),
            SaltedCxClient::status_url_for("."),
            "api/v1/export/../../admin/status".into(),
            "api/v1/export/x/status?y=1".into(),
            "https://elsewhere.example.com/api/v1/export/x/status".into(),
            "api/v1/export/history".into(),
        ] {
            assert!(client.status_endpoint(&hostile).is_err(), "{hostile}");
        }
    }
}
