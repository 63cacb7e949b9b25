//! HTTP client for the Khoros Care Analytics user export, and its [`ExportJobApi`].
//!
//! Every call carries HTTP Basic auth and the company key as the `companyKey` query parameter;
//! all three are secrets, so the key is added to each URL at the moment of the call, never kept
//! in a URL that could reach a message, and every server text is scrubbed of them. The status and
//! download URLs the API returns are used exactly as given (their run ids contain `+ / =`,
//! percent-encoded: rebuilding them breaks them) — but only when they point at the configured
//! API's origin and path, so the credentials never go to another host. `result` is accepted as an
//! object or as a one-element array, as the live API sends both.

use std::path::Path;

use serde::Deserialize;
use url::Url;

use crate::schema::FileFormat;
use crate::sources::export_job::{self, ExportJobApi, JobState};
use crate::sources::http::{self, Answer, DownloadError, HttpClient, HttpConfig, HttpError, Secret};
use crate::sources::poll::PollConfig;
use crate::sources::SourceError;
use crate::window::Window;

/// The export's two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KhorosFormat {
    /// JSON, with the five `*_MILLIS` columns
    #[default]
    Json,
    Csv,
}

impl KhorosFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            KhorosFormat::Json => "json",
            KhorosFormat::Csv => "csv",
        }
    }
}

/// The export's locales (`locale`): the language of its labels and how times are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KhorosLocale {
    #[default]
    En,
    Es,
    Fr,
    De,
    Tr,
}

impl KhorosLocale {
    pub fn as_str(self) -> &'static str {
        match self {
            KhorosLocale::En => "en",
            KhorosLocale::Es => "es",
            KhorosLocale::Fr => "fr",
            KhorosLocale::De => "de",
            KhorosLocale::Tr => "tr",
        }
    }
}

/// `zone`'s offset from UTC at `at`, in milliseconds (east positive): the `timezoneOffset` sent
/// with `timezone`. The document names the pair without defining the unit; Khoros' other times
/// are epoch milliseconds, so milliseconds is our reading (README, assumptions).
pub fn zone_offset_millis(zone: chrono_tz::Tz, at: chrono::DateTime<chrono::Utc>) -> i64 {
    use chrono::Offset;
    i64::from(at.with_timezone(&zone).offset().fix().local_minus_utc()) * 1000
}

/// What a user export asks for, besides the window.
#[derive(Debug, Clone, Default)]
pub struct UserExportRequest {
    pub format: KhorosFormat,
    pub locale: KhorosLocale,
    /// The zone the company counts its days in: each window is that zone's day, sent as
    /// `timezone` and `timezoneOffset`. `None`: UTC days, no time zone sent (the company
    /// setting formats the times).
    pub timezone: Option<chrono_tz::Tz>,
    pub include_disabled: bool,
    pub agent_ids: Vec<String>,
    pub team_ids: Vec<String>,
    pub report_metrics: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct KhorosConfig {
    /// API base, e.g. `https://analytics-api.app.lithium.com/api/public/`.
    pub base_url: Url,
    pub username: String,
    pub password: Secret,
    pub company_key: Secret,
    pub http: HttpConfig,
    pub poll: PollConfig,
    pub request: UserExportRequest,
}

impl KhorosConfig {
    pub fn new(base_url: Url, username: String, password: Secret, company_key: Secret) -> KhorosConfig {
        KhorosConfig {
            base_url,
            username,
            password,
            company_key,
            http: HttpConfig::default(),
            poll: PollConfig::default(),
            request: UserExportRequest { include_disabled: true, ..UserExportRequest::default() },
        }
    }
}

/// A created export: its ids and its status URL as the API gave it (without the company key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KhorosJob {
    pub workflow_id: String,
    pub status_url: Url,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    result: Option<OneOrMany>,
}

/// `result` is an object, or (sometimes, in the live API) a one-element array of it.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(JobResult),
    Many(Vec<JobResult>),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JobResult {
    workflow_id: String,
    status_url: String,
    download_url: String,
    runner_state: String,
    detail: String,
}

#[derive(Debug, Clone)]
pub struct KhorosClient {
    config: KhorosConfig,
    http: HttpClient,
}

impl KhorosClient {
    pub fn new(mut config: KhorosConfig) -> Result<KhorosClient, HttpError> {
        http::check_url(&config.base_url, "API URL", config.http.allow_http)?;
        if !config.base_url.path().ends_with('/') {
            let path = format!("{}/", config.base_url.path());
            config.base_url.set_path(&path);
        }
        let http = HttpClient::new(config.http.clone(), None)?
            .with_basic_auth(&config.username, config.password.clone())
            .with_secret(config.company_key.clone());
        Ok(KhorosClient { config, http })
    }

    pub fn config(&self) -> &KhorosConfig {
        &self.config
    }

    /// `url` with the company key as its `companyKey` parameter (replacing any given).
    fn keyed(&self, url: &Url) -> Url {
        let mut keyed = url.clone();
        let kept: Vec<(String, String)> =
            url.query_pairs().filter(|(k, _)| k != "companyKey").map(|(k, v)| (k.into(), v.into())).collect();
        keyed.set_query(None);
        {
            let mut query = keyed.query_pairs_mut();
            for (k, v) in &kept {
                query.append_pair(k, v);
            }
            query.append_pair("companyKey", self.config.company_key.expose());
        }
        keyed
    }

    /// A URL the API returned, accepted only under the configured API (origin and path) and
    /// stripped of any company key it carried.
    pub fn api_url(&self, text: &str) -> Result<Url, SourceError> {
        let url = self.config.base_url.join(text).map_err(|_| {
            SourceError::Transfer("Khoros returned a status or download URL that is not a URL".into())
        })?;
        let inside = url.origin() == self.config.base_url.origin()
            && url.path().starts_with(self.config.base_url.path())
            && url.fragment().is_none();
        if !inside {
            return Err(SourceError::Transfer(
                "Khoros returned a status or download URL outside the configured --api-url; refusing to send the credentials there".into(),
            ));
        }
        let mut clean = url.clone();
        let kept: Vec<(String, String)> =
            url.query_pairs().filter(|(k, _)| k != "companyKey").map(|(k, v)| (k.into(), v.into())).collect();
        clean.set_query(None);
        if !kept.is_empty() {
            clean.query_pairs_mut().extend_pairs(kept);
        }
        Ok(clean)
    }

    /// `POST reports/report/user` for `window` (epoch milliseconds, `[start, end)`: the day in
    /// the configured zone).
    pub async fn create(&self, window: Window) -> Result<KhorosJob, SourceError> {
        let url =
            self.keyed(&self.config.base_url.join("reports/report/user").expect("a relative path joins"));
        let request = &self.config.request;
        let zone = request.timezone.unwrap_or(chrono_tz::Tz::UTC);
        let start = window.start_in(zone);
        let mut form: Vec<(&str, String)> = vec![
            ("startTime", start.timestamp_millis().to_string()),
            ("endTime", window.end_in(zone).timestamp_millis().to_string()),
            ("reportFormat", request.format.as_str().to_string()),
            ("locale", request.locale.as_str().to_string()),
            ("includeDisabled", request.include_disabled.to_string()),
        ];
        if let Some(zone) = request.timezone {
            form.push(("timezone", zone.name().to_string()));
            form.push(("timezoneOffset", zone_offset_millis(zone, start).to_string()));
        }
        form.extend(request.agent_ids.iter().map(|v| ("agentId", v.clone())));
        form.extend(request.team_ids.iter().map(|v| ("teamId", v.clone())));
        form.extend(request.report_metrics.iter().map(|v| ("reportMetrics", v.clone())));
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
        let context = format!("creating the Khoros user export of {window}");
        let answer = self
            .http
            .call(&context, || {
                self.http
                    .inner()
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
            })
            .await?;
        let result = self.result(answer, &context)?;
        if result.workflow_id.is_empty() || result.status_url.is_empty() {
            return Err(SourceError::Transfer(format!(
                "{context}: the answer has no workflowId or statusUrl"
            )));
        }
        Ok(KhorosJob { workflow_id: result.workflow_id, status_url: self.api_url(&result.status_url)? })
    }

    /// `GET` the job's status URL.
    pub async fn status(&self, job: &KhorosJob) -> Result<JobState<Url>, SourceError> {
        let context = format!("reading the status of Khoros export {}", job.workflow_id);
        let url = self.keyed(&job.status_url);
        let answer = self.http.call(&context, || self.http.inner().get(url.clone())).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Err(SourceError::Gone(format!("{context}: the export does not exist (404)")));
        }
        let result = self.result(answer, &context)?;
        Ok(match (result.runner_state.as_str(), result.detail.as_str()) {
            ("CLOSED", "COMPLETED") if !result.download_url.is_empty() => {
                JobState::Ready(self.api_url(&result.download_url)?)
            }
            // COMPLETED without a download URL yet: "an empty downloadUrl means not ready".
            ("CLOSED", "COMPLETED") => JobState::Running,
            ("CLOSED", detail) => {
                JobState::Failed(format!("the export closed as {}", self.http.scrub(detail)))
            }
            _ => JobState::Running,
        })
    }

    /// Downloads a ready export into `path`; checks a JSON report is one complete array.
    pub async fn download(&self, job: &KhorosJob, url: &Url, path: &Path) -> Result<u64, SourceError> {
        let context = format!("downloading Khoros export {}", job.workflow_id);
        let format = match self.config.request.format {
            KhorosFormat::Json => FileFormat::Json,
            KhorosFormat::Csv => FileFormat::Csv,
        };
        match self.http.download(&context, &self.keyed(url), path, format).await {
            Ok(bytes) => Ok(bytes),
            Err(DownloadError::Expired | DownloadError::Forbidden) => Err(SourceError::Gone(format!(
                "{context}: the download was refused (403); the export is created again"
            ))),
            Err(DownloadError::Failed(HttpError::Http { status: 404, .. })) => {
                Err(SourceError::Gone(format!("{context}: the report is gone (404)")))
            }
            Err(DownloadError::Failed(HttpError::Http { status: 401, .. })) => Err(unauthorized()),
            Err(DownloadError::Failed(e)) => Err(e.into()),
        }
    }

    /// The `result` of a success, or the error an answer stands for.
    fn result(&self, answer: Answer, context: &str) -> Result<JobResult, SourceError> {
        let Answer { status, body, .. } = answer;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(unauthorized());
        }
        let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
        if status == reqwest::StatusCode::BAD_REQUEST {
            let message = envelope.and_then(|e| e.message).unwrap_or_default();
            return Err(SourceError::Rejected(format!(
                "{context}: Khoros refused the request (400): {}; check the filters (--agent-id, --team-id, --report-metric)",
                self.http.scrub(&message)
            )));
        }
        if !status.is_success() {
            return Err(SourceError::from(self.http.status_error(context, status, &body)));
        }
        let Some(envelope) = envelope else {
            return Err(SourceError::Transfer(format!("{context}: the answer is not the documented JSON")));
        };
        if envelope.status != "PASS" {
            let message = self.http.scrub(envelope.message.as_deref().unwrap_or("no message"));
            return Err(SourceError::Export(format!(
                "{context}: Khoros answered {}: {message}",
                envelope.status
            )));
        }
        match envelope.result {
            Some(OneOrMany::One(result)) => Ok(result),
            Some(OneOrMany::Many(results)) if results.len() == 1 => {
                Ok(results.into_iter().next().expect("one element"))
            }
            _ => Err(SourceError::Transfer(format!("{context}: the answer's `result` is not one job"))),
        }
    }
}

fn unauthorized() -> SourceError {
    SourceError::Unauthorized(
        "Khoros refused the credentials (401); check KHOROS_USERNAME, KHOROS_PASSWORD and KHOROS_COMPANY_KEY (or their --*-file options)".into(),
    )
}

impl ExportJobApi for KhorosClient {
    type Job = KhorosJob;
    type Ready = Url;
    type Error = SourceError;

    async fn create(&self, window: Window, _datasets: &[String]) -> Result<KhorosJob, SourceError> {
        KhorosClient::create(self, window).await
    }

    /// The status URL as the API gave it (what a later run needs to poll it again), and the
    /// format the export was asked in, so a run in the other format never adopts it.
    fn job_id(&self, job: &KhorosJob) -> String {
        export_job::id_with_format(job.status_url.as_str(), self.config.request.format.as_str())
    }

    fn adopt(&self, recorded_id: &str) -> Option<KhorosJob> {
        let url = export_job::id_in_format(recorded_id, self.config.request.format.as_str())?;
        let status_url = self.api_url(url).ok()?;
        if !status_url.path().ends_with("/status") {
            return None;
        }
        let workflow_id = status_url.path_segments()?.rev().nth(2)?.to_string();
        Some(KhorosJob { workflow_id, status_url })
    }

    async fn status(&self, job: &KhorosJob) -> Result<JobState<Url>, SourceError> {
        KhorosClient::status(self, job).await
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

    fn client() -> KhorosClient {
        let config = KhorosConfig::new(
            Url::parse("https://analytics-api.example.com/api/public").unwrap(),
            "user".into(),
            Secret::new("pw"),
            Secret::new("K3Y"),
        );
        KhorosClient::new(config).unwrap()
    }

    #[test]
    fn returned_urls_are_used_as_given_but_only_under_the_api() {
        let c = client();
        let given = "https://analytics-api.example.com/api/public/reports/report/wf/AAA%2Br%2F1%3D%3D/status";
        let url = c.api_url(given).unwrap();
        assert_eq!(url.as_str(), given, "the run id's escapes are kept");
        let keyed = c.keyed(&url);
        assert!(keyed.as_str().starts_with(given) && keyed.as_str().ends_with("companyKey=K3Y"));
        let stripped = c.api_url(&format!("{given}?companyKey=OTHER")).unwrap();
        assert_eq!(stripped.as_str(), given, "a key in a returned URL is never kept");
        for hostile in [
            "https://elsewhere.example.com/api/public/reports/report/wf/r/status",
            "http://analytics-api.example.com/api/public/reports/report/wf/r/status",
            "https://analytics-api.example.com/admin/x",
        ] {
            assert!(c.api_url(hostile).is_err(), "{hostile}");
        }
        let job = c.adopt(&format!("{given}#json")).unwrap();
        assert_eq!((job.workflow_id.as_str(), job.status_url.as_str()), ("wf", given));
        assert_eq!(c.job_id(&job), format!("{given}#json"));
        assert!(c.adopt(&format!("{given}#csv")).is_none(), "another format's export is not adopted");
        assert!(c.adopt("").is_none() && c.adopt("#json").is_none());
    }
}
