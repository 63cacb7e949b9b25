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
//! Retries, resumable checked downloads, URL checks and scrubbing are the shared HTTP layer's
//! ([`crate::sources::http`]); this module is what is Salted-CX-specific: endpoints, the status
//! URL check, presigned URL refreshes, and the mapping of answers onto [`ClientError`].
//!
//! Creating an export is not repeatable: a POST whose answer was lost may have created one. The
//! client reads the history before each creation and, after a lost answer, adopts the export
//! that appeared in it instead of creating a second.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use url::Url;

use super::api::{self, ApiError, CreatedExport, ExportState, ExportStatus};
use crate::sources::export_job::{self, ExportJobApi, JobEnd, JobState};
use crate::sources::http::{self, Answer, DownloadError, HttpClient, HttpConfig, HttpError, Sent};
use crate::sources::poll::PollConfig;
use crate::window::Window;

/// The API key (a [`http::Secret`]: its `Debug` never shows the value).
pub type ApiKey = http::Secret;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base, e.g. `https://api.eu.salted.cx/`.
    pub base_url: Url,
    pub api_key: ApiKey,
    /// Transport: `http://` policy, retries, timeouts (the shared HTTP layer's settings).
    pub http: HttpConfig,
    pub poll: PollConfig,
    /// How often an expired download URL is replaced by a fresh one before the window fails.
    pub max_url_refreshes: u32,
}

impl ClientConfig {
    pub fn new(base_url: Url, api_key: ApiKey) -> ClientConfig {
        ClientConfig {
            base_url,
            api_key,
            http: HttpConfig::default(),
            poll: PollConfig::default(),
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

impl From<HttpError> for ClientError {
    fn from(error: HttpError) -> ClientError {
        match error {
            HttpError::RateLimited { context, wait_secs } => ClientError::RateLimited { context, wait_secs },
            HttpError::RetriesExhausted { context, attempts, last } => {
                ClientError::RetriesExhausted { context, attempts, last }
            }
            HttpError::Http { context, status, detail } => ClientError::Http { context, status, detail },
            HttpError::Transport { context, message } => ClientError::Transport { context, message },
            HttpError::InsecureUrl { what, host } => ClientError::InsecureUrl { what, host },
            HttpError::Protocol { context, message } => ClientError::Protocol { context, message },
            HttpError::Spool { path, source } => ClientError::Spool { path, source },
        }
    }
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

/// Talks to one Salted CX tenant.
#[derive(Debug, Clone)]
pub struct SaltedCxClient {
    config: ClientConfig,
    /// Sends the API key.
    api: HttpClient,
    /// Sends nothing: presigned URLs carry their own signature and point at another host.
    downloads: HttpClient,
}

impl SaltedCxClient {
    pub fn new(mut config: ClientConfig) -> Result<SaltedCxClient, ClientError> {
        http::check_url(&config.base_url, "API URL", config.http.allow_http)?;
        // `statusUrl` is relative ("api/v1/…"); joining it onto a base without a trailing slash
        // would drop the base's last path segment.
        if !config.base_url.path().ends_with('/') {
            let path = format!("{}/", config.base_url.path());
            config.base_url.set_path(&path);
        }
        Ok(SaltedCxClient {
            api: HttpClient::new(config.http.clone(), Some(config.api_key.clone()))?,
            downloads: HttpClient::new(config.http.clone(), None)?.with_secret(config.api_key.clone()),
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

    /// Sends an API request built by `request` with the shared retry policy.
    async fn call(
        &self,
        context: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, ClientError> {
        Ok(self.api.call(context, request).await?)
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
        // What the history holds before: after a lost answer, an export that appears in it
        // since is the one this POST created (the lake's creation turn keeps other workers from
        // creating meanwhile).
        let before: BTreeSet<String> = self.history().await?.into_iter().map(|e| e.export_id).collect();
        let retry = self.config.http.retry;
        let mut lost = 0;
        loop {
            let answer = match self
                .api
                .call_unrepeatable(&context, || self.api.inner().post(url.clone()))
                .await?
            {
                Sent::Answered(answer) => answer,
                Sent::AnswerLost(why) => {
                    lost += 1;
                    if let Some(found) = self.created_meanwhile(&before, &context, &why).await? {
                        return Ok(found);
                    }
                    if lost >= retry.max_attempts {
                        return Err(ClientError::RetriesExhausted { context, attempts: lost, last: why });
                    }
                    tracing::warn!(what = %context, why = %why, attempt = lost, "The export's creation got no answer and the history shows no new export; creating it again");
                    tokio::time::sleep(retry.backoff(lost)).await;
                    continue;
                }
            };
            let created: CreatedExport = self.json(answer, &context, None)?;
            if created.export_id.is_empty() || created.status_url.is_empty() {
                return Err(ClientError::Protocol { context, message: "empty exportId or statusUrl".into() });
            }
            return Ok(created);
        }
    }

    /// After a creation whose answer was lost: the export that appeared in the history since
    /// `before` (looked for twice, a moment apart, as a listing may lag), or `None` when none
    /// did — the POST never reached the platform. Several new ones mean another client of the
    /// account created exports meanwhile: which is ours cannot be told, and guessing could
    /// land another window's data, so the window fails with what happened.
    async fn created_meanwhile(
        &self,
        before: &BTreeSet<String>,
        context: &str,
        why: &str,
    ) -> Result<Option<CreatedExport>, ClientError> {
        for look in 0..3u32 {
            if look > 0 {
                let wait = self.config.poll.initial_interval * look;
                tokio::time::sleep(wait.min(std::time::Duration::from_secs(5))).await;
            }
            let new: Vec<String> = self
                .history()
                .await?
                .into_iter()
                .map(|e| e.export_id)
                .filter(|id| !id.is_empty() && !before.contains(id))
                .collect();
            match new.as_slice() {
                [] => {}
                [id] => {
                    tracing::warn!(what = %context, why = %why, export_id = %id, "The export's creation got no answer; adopted the export it created, found in the history");
                    return Ok(Some(CreatedExport {
                        status_url: SaltedCxClient::status_url_for(id),
                        export_id: id.clone(),
                    }));
                }
                several => {
                    return Err(ClientError::Protocol {
                        context: context.to_string(),
                        message: format!(
                            "the answer was lost ({why}) and {} exports appeared in the history meanwhile (another client of this account?); which one is this window's cannot be told — rerun the window",
                            several.len()
                        ),
                    })
                }
            }
        }
        Ok(None)
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
        let answer = self.call(&context, || self.api.inner().get(url.clone())).await?;
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
        export_job::wait(&SaltedCxJobs::new(self.clone(), None), created).await
    }

    /// `GET /api/v1/export/history`: the most recent exports (up to 100).
    pub async fn history(&self) -> Result<Vec<ExportStatus>, ClientError> {
        let context = "reading the export history";
        let url = self.endpoint("api/v1/export/history")?;
        let answer = self.call(context, || self.api.inner().get(url.clone())).await?;
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
            let context = format!("downloading {dataset}");
            let url = Url::parse(url).map_err(|_| ClientError::Protocol {
                context: context.clone(),
                message: "the download URL is not a URL".into(),
            })?;
            match self.downloads.download(&context, &url, path, crate::schema::FileFormat::Csv).await {
                Err(DownloadError::Expired) if refreshes < self.config.max_url_refreshes => {
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
                Err(DownloadError::Expired) => {
                    return Err(ClientError::UrlExpired { dataset: dataset.to_string(), refreshes })
                }
                Err(DownloadError::Forbidden) => {
                    return Err(ClientError::DownloadForbidden { dataset: dataset.to_string() })
                }
                Err(DownloadError::Failed(e)) => return Err(e.into()),
                Ok(bytes) => return Ok(bytes),
            }
        }
    }

    /// Decodes a JSON answer, or turns an error status into the matching [`ClientError`].
    fn json<T: for<'de> serde::Deserialize<'de>>(
        &self,
        answer: Answer,
        context: &str,
        export_id: Option<&str>,
    ) -> Result<T, ClientError> {
        let Answer { status, body, .. } = answer;
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
        self.api.status_error(context, status, body).into()
    }

    /// Removes the API key from a text that came back from the server.
    fn scrub(&self, text: &str) -> String {
        self.api.scrub(text)
    }
}

/// The export lifecycle's view of Salted CX: `POST /api/v1/export` (with `--contact` when
/// given), its `statusUrl`, `COMPLETED`/`FAILED`.
#[derive(Debug, Clone)]
pub struct SaltedCxJobs {
    pub client: SaltedCxClient,
    /// `--contact`: export one customer profile only.
    pub contact: Option<String>,
    /// The cap on creating exports, kept across the lake's workers.
    pub cap: Option<crate::sources::CreationCap>,
}

impl SaltedCxJobs {
    pub fn new(client: SaltedCxClient, contact: Option<String>) -> SaltedCxJobs {
        SaltedCxJobs { client, contact, cap: None }
    }

    /// Creates exports under `cap` (shared through the lake by every worker syncing it).
    pub fn with_cap(mut self, cap: Option<crate::sources::CreationCap>) -> SaltedCxJobs {
        self.cap = cap;
        self
    }
}

impl From<JobEnd> for ClientError {
    fn from(end: JobEnd) -> ClientError {
        match end {
            JobEnd::Failed { export_id, error } => ClientError::ExportFailed { export_id, error },
            // Salted CX exports do not expire before their download; its URLs do (refreshed).
            JobEnd::Expired { export_id } => {
                ClientError::ExportFailed { export_id, error: "the export expired".into() }
            }
            JobEnd::Timeout { export_id, waited_secs } => ClientError::Timeout { export_id, waited_secs },
        }
    }
}

impl ExportJobApi for SaltedCxJobs {
    type Job = CreatedExport;
    type Ready = ExportStatus;
    type Error = ClientError;

    fn creation_cap(&self) -> Option<crate::sources::CreationCap> {
        self.cap
    }

    async fn create(&self, window: Window, datasets: &[String]) -> Result<CreatedExport, ClientError> {
        self.client.create_export(window.start(), window.end(), datasets, self.contact.as_deref()).await
    }

    fn job_id(&self, job: &CreatedExport) -> String {
        job.export_id.clone()
    }

    fn adopt(&self, recorded_id: &str) -> Option<CreatedExport> {
        Some(CreatedExport {
            status_url: SaltedCxClient::status_url_for(recorded_id),
            export_id: recorded_id.to_string(),
        })
    }

    async fn status(&self, job: &CreatedExport) -> Result<JobState<ExportStatus>, ClientError> {
        let status = self.client.status(&job.export_id, &job.status_url).await?;
        Ok(match status.status {
            ExportState::Completed => JobState::Ready(status),
            ExportState::Failed => {
                JobState::Failed(self.client.scrub(status.error.as_deref().unwrap_or("no error given")))
            }
            ExportState::Processing => JobState::Running,
        })
    }

    fn is_gone(&self, error: &ClientError) -> bool {
        matches!(error, ClientError::NotFound { .. })
    }

    fn poll_config(&self) -> PollConfig {
        self.client.config.poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
