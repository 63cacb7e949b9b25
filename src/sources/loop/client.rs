//! HTTP client for Loop's report export, and its [`ExportJobApi`].
//!
//! `POST /api/v1/report/export` (JSON body; `start`/`end` in epoch **seconds**, `timezone`
//! always `UTC` so a window is a UTC day and sheet date-times are UTC) → `{id, status, url}`;
//! `GET /api/v1/report/exports/{id}` until `Completed`; the `url` is signed and expiring, so it is
//! downloaded by a second client that sends **no** `Authorization` (the signature is the
//! credential, and the host may be a storage service). An expired URL is replaced by polling the
//! export again; an `Expired` export is created again. 451 means the account is not verified: no
//! window can succeed, so the run stops with that message.

use std::path::Path;

use serde::Deserialize;
use url::Url;

use crate::schema::FileFormat;
use crate::sources::export_job::{self, ExportJobApi, JobState};
use crate::sources::http::{self, Answer, DownloadError, HttpClient, HttpConfig, HttpError, Secret};
use crate::sources::poll::PollConfig;
use crate::sources::SourceError;
use crate::window::Window;

/// The report's two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LoopFormat {
    #[default]
    Json,
    Xlsx,
}

impl LoopFormat {
    /// The API's spelling (`resultFormat`).
    pub fn api_name(self) -> &'static str {
        match self {
            LoopFormat::Json => "Json",
            LoopFormat::Xlsx => "Xlsx",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            LoopFormat::Json => "report.json",
            LoopFormat::Xlsx => "report.xlsx",
        }
    }
}

/// What a report export asks for, besides the window.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    pub format: LoopFormat,
    /// The zone the report is calculated in (`timezone`): each window is that zone's day and
    /// the export's times are its wall-clock times. `None`: UTC.
    pub timezone: Option<chrono_tz::Tz>,
    pub tag_ids: Vec<String>,
    pub team_ids: Vec<String>,
    /// E-mail addresses of teammates.
    pub teammate_ids: Vec<String>,
    /// E-mail addresses of customers.
    pub customer_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// API base, e.g. `https://api.intheloop.io/`.
    pub base_url: Url,
    pub token: Secret,
    /// `X-Impersonate-User`: act as this user (an admin token exporting a user's view).
    pub impersonate: Option<String>,
    pub http: HttpConfig,
    pub poll: PollConfig,
    pub request: ReportRequest,
    /// How often an expired download URL is replaced before the export is created again.
    pub max_url_refreshes: u32,
}

impl LoopConfig {
    pub fn new(base_url: Url, token: Secret) -> LoopConfig {
        LoopConfig {
            base_url,
            token,
            impersonate: None,
            http: HttpConfig::default(),
            poll: PollConfig::default(),
            request: ReportRequest::default(),
            max_url_refreshes: 3,
        }
    }
}

/// A created export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopJob {
    pub id: String,
}

#[derive(Deserialize)]
struct ExportResult {
    #[serde(default)]
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoopClient {
    config: LoopConfig,
    /// Sends the bearer token, only to the API.
    api: HttpClient,
    /// Sends nothing: signed URLs carry their own signature.
    downloads: HttpClient,
}

impl LoopClient {
    pub fn new(mut config: LoopConfig) -> Result<LoopClient, HttpError> {
        http::check_url(&config.base_url, "API URL", config.http.allow_http)?;
        if !config.base_url.path().ends_with('/') {
            let path = format!("{}/", config.base_url.path());
            config.base_url.set_path(&path);
        }
        Ok(LoopClient {
            api: HttpClient::new(config.http.clone(), Some(config.token.clone()))?,
            downloads: HttpClient::new(config.http.clone(), None)?.with_secret(config.token.clone()),
            config,
        })
    }

    pub fn config(&self) -> &LoopConfig {
        &self.config
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.impersonate {
            Some(user) => builder.header("X-Impersonate-User", user),
            None => builder,
        }
    }

    /// The status URL of an export id, the id kept one path segment whatever it contains.
    pub fn status_url(&self, id: &str) -> Url {
        let mut url = self.config.base_url.join("api/v1/report/exports/").expect("a relative path joins");
        url.path_segments_mut().expect("an http URL has a path").pop_if_empty().push(id);
        url
    }

    /// `POST /api/v1/report/export` for `window`.
    pub async fn create(&self, window: Window) -> Result<LoopJob, SourceError> {
        let url = self.config.base_url.join("api/v1/report/export").expect("a relative path joins");
        let r = &self.config.request;
        let zone = r.timezone.unwrap_or(chrono_tz::Tz::UTC);
        let body = serde_json::json!({
            "timezone": zone.name(),
            "start": window.start_in(zone).timestamp(),
            "end": window.end_in(zone).timestamp(),
            "resultFormat": r.format.api_name(),
            "tagIds": r.tag_ids,
            "teamIds": r.team_ids,
            "teammateIds": r.teammate_ids,
            "customerIds": r.customer_ids,
        });
        let context = format!("creating the Loop report export of {window}");
        let answer =
            self.api.call(&context, || self.request(self.api.inner().post(url.clone()).json(&body))).await?;
        let created: ExportResult = self.json(answer, &context)?;
        if created.id.is_empty() {
            return Err(SourceError::Transfer(format!("{context}: the answer has no export id")));
        }
        Ok(LoopJob { id: created.id })
    }

    /// `GET /api/v1/report/exports/{id}`.
    pub async fn status(&self, job: &LoopJob) -> Result<JobState<Url>, SourceError> {
        let context = format!("reading the status of Loop export {}", job.id);
        let url = self.status_url(&job.id);
        let answer = self.api.call(&context, || self.request(self.api.inner().get(url.clone()))).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Err(SourceError::Gone(format!("{context}: the export does not exist (404)")));
        }
        let result: ExportResult = self.json(answer, &context)?;
        Ok(match result.status.as_deref().unwrap_or_default() {
            "Completed" => match result.url.as_deref().filter(|u| !u.is_empty()) {
                Some(text) => JobState::Ready(Url::parse(text).map_err(|_| {
                    SourceError::Transfer(format!("{context}: the download URL is not a URL"))
                })?),
                None => JobState::Running,
            },
            "Failed" => JobState::Failed("Loop reported the export Failed".into()),
            "Expired" => JobState::Expired,
            _ => JobState::Running,
        })
    }

    /// Downloads a completed export into `path`, polling the export for a fresh signed URL when
    /// the one in hand has expired. `Gone` when the export itself expired meanwhile.
    pub async fn download(&self, job: &LoopJob, mut url: Url, path: &Path) -> Result<u64, SourceError> {
        let context = format!("downloading Loop export {}", job.id);
        let format = match self.config.request.format {
            LoopFormat::Json => FileFormat::Json,
            LoopFormat::Xlsx => FileFormat::Xlsx,
        };
        let mut refreshes = 0;
        loop {
            match self.downloads.download(&context, &url, path, format).await {
                Ok(bytes) => return Ok(bytes),
                Err(DownloadError::Expired | DownloadError::Forbidden)
                    if refreshes < self.config.max_url_refreshes =>
                {
                    refreshes += 1;
                    tracing::warn!(export_id = %job.id, refreshes, "The signed download URL expired; asking for a fresh one");
                    match self.status(job).await? {
                        JobState::Ready(fresh) => url = fresh,
                        JobState::Expired | JobState::Failed(_) | JobState::Running => {
                            return Err(SourceError::Gone(format!(
                                "{context}: the export expired before its download"
                            )))
                        }
                    }
                }
                Err(DownloadError::Expired | DownloadError::Forbidden) => {
                    return Err(SourceError::Gone(format!(
                        "{context}: the signed URL was still refused after {refreshes} fresh ones"
                    )))
                }
                Err(DownloadError::Failed(e)) => return Err(e.into()),
            }
        }
    }

    /// The decoded body of a success, or the error an answer stands for.
    fn json<T: for<'de> Deserialize<'de>>(&self, answer: Answer, context: &str) -> Result<T, SourceError> {
        let Answer { status, body, .. } = answer;
        let message = || {
            let text =
                serde_json::from_slice::<ErrorBody>(&body).ok().and_then(|e| e.message).unwrap_or_default();
            self.api.scrub(&text)
        };
        match status.as_u16() {
            200..=299 => serde_json::from_slice(&body)
                .map_err(|e| SourceError::Transfer(format!("{context}: unexpected answer: {e}"))),
            401 => Err(SourceError::Unauthorized(
                "Loop refused the API token (401); check LOOP_API_TOKEN or --api-token-file".into(),
            )),
            403 => Err(SourceError::Unauthorized(format!(
                "Loop refused the request (403): {}; check the token's permissions and --impersonate",
                message()
            ))),
            451 => Err(SourceError::Rejected(
                "Loop answered 451: the account is not verified, so it may not export; verify it in Loop's settings"
                    .into(),
            )),
            400 => Err(SourceError::Rejected(format!(
                "{context}: Loop refused the request (400): {}; check --tag, --team, --teammate and --customer",
                message()
            ))),
            _ => Err(SourceError::from(self.api.status_error(context, status, &body))),
        }
    }
}

impl ExportJobApi for LoopClient {
    type Job = LoopJob;
    type Ready = Url;
    type Error = SourceError;

    async fn create(&self, window: Window, _datasets: &[String]) -> Result<LoopJob, SourceError> {
        LoopClient::create(self, window).await
    }

    /// The export id and the format it was asked in, so a run in the other format never adopts it.
    fn job_id(&self, job: &LoopJob) -> String {
        export_job::id_with_format(&job.id, self.config.request.format.api_name())
    }

    fn adopt(&self, recorded_id: &str) -> Option<LoopJob> {
        let id = export_job::id_in_format(recorded_id, self.config.request.format.api_name())?;
        Some(LoopJob { id: id.to_string() })
    }

    async fn status(&self, job: &LoopJob) -> Result<JobState<Url>, SourceError> {
        LoopClient::status(self, job).await
    }

    fn is_gone(&self, error: &SourceError) -> bool {
        matches!(error, SourceError::Gone(_))
    }

    fn poll_config(&self) -> PollConfig {
        self.config.poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_id_stays_one_path_segment() {
        let config = LoopConfig::new(Url::parse("https://api.example.com/base").unwrap(), Secret::new("t"));
        let client = LoopClient::new(config).unwrap();
        assert_eq!(
            client.status_url("abc").as_str(),
            "https://api.example.com/base/api/v1/report/exports/abc"
        );
        assert_eq!(
            client.status_url("../x?y").as_str(),
            "https://api.example.com/base/api/v1/report/exports/..%2Fx%3Fy"
        );
        let job = client.adopt("abc#Json").unwrap();
        assert_eq!(client.job_id(&job), "abc#Json");
        assert!(client.adopt("abc#Xlsx").is_none() && client.adopt("#Json").is_none());
    }
}
