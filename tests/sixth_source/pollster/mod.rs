//! Pollster, a made-up survey platform that lives only in the tests: one synchronous endpoint
//! per dataset, a bearer token. Built as the README's "Adding a source" says — its folder (this
//! one), its schemas (`../schemas/`, brought by [`Platform::SCHEMAS`]) and one registry line
//! (`Registry::builtin().with::<PollsterPlatform>()` in `../main.rs`) — and nothing else.

pub mod emulator;
pub mod synth;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use cxlake::schema::SchemaRegistry;
use cxlake::sources::http::{load_secret, DownloadError, HttpArgs, HttpClient, HttpConfig, HttpError};
use cxlake::sources::{
    ExportJournal, FetchedFile, FetchedWindow, Platform, RunningEmulator, SetupError, Source, SourceError,
};
use cxlake::window::Window;
use url::Url;

use emulator::PollsterEmulator;

pub const NAME: &str = "pollster";
const DEMO_TOKEN: &str = "pollster-demo-token";

/// `cxlake sync pollster` options.
#[derive(Debug, clap::Args)]
pub struct PollsterArgs {
    /// API base URL
    #[arg(
        long,
        env = "POLLSTER_API_URL",
        default_value = "https://api.pollster.example",
        value_name = "URL"
    )]
    pub api_url: String,

    /// Read the API token from this file (default: the POLLSTER_API_TOKEN environment variable)
    #[arg(long, value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,

    #[command(flatten)]
    pub http: HttpArgs,
}

/// `cxlake emulator pollster` options.
#[derive(Debug, clap::Args)]
pub struct PollsterEmulatorArgs {
    /// The API token the emulator accepts
    #[arg(long, default_value = DEMO_TOKEN)]
    pub api_token: String,
}

pub struct Pollster {
    base_url: Url,
    http: HttpClient,
}

impl Pollster {
    fn url(&self, path: &str) -> Url {
        self.base_url.join(path).expect("a relative path joins")
    }

    /// Downloads one file; the platform's refusals become the source's errors.
    async fn download(
        &self,
        context: &str,
        url: &Url,
        path: &Path,
        schema_format: cxlake::schema::FileFormat,
    ) -> Result<u64, SourceError> {
        match self.http.download(context, url, path, schema_format).await {
            Ok(bytes) => Ok(bytes),
            Err(DownloadError::Failed(HttpError::Http { status: 401, .. })) => {
                Err(SourceError::Unauthorized(
                    "the Pollster API token was rejected (401); check POLLSTER_API_TOKEN or --api-token-file"
                        .into(),
                ))
            }
            Err(DownloadError::Expired | DownloadError::Forbidden) => {
                Err(SourceError::Unauthorized(format!("{context}: Pollster refused the API token (403)")))
            }
            Err(DownloadError::Failed(e)) => Err(e.into()),
        }
    }
}

impl Source for Pollster {
    fn name(&self) -> &str {
        NAME
    }

    async fn probe(&self) -> Result<String, SourceError> {
        let answer = self.http.call("GET /v1/me", || self.http.inner().get(self.url("v1/me"))).await?;
        match answer.status.as_u16() {
            200 => Ok("the API token is accepted".into()),
            401 => Err(SourceError::Unauthorized("the Pollster API token was rejected (401)".into())),
            status => Err(SourceError::Transfer(format!("GET /v1/me: HTTP {status}"))),
        }
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        _journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let schemas = SchemaRegistry::embedded().map_err(|e| SourceError::Local(e.to_string()))?;
        let mut files = Vec::new();
        for dataset in datasets {
            let schema = schemas
                .dataset(NAME, dataset)
                .map_err(|_| SourceError::Rejected(format!("Pollster has no dataset `{dataset}`")))?;
            let mut url = self.url(&format!("v1/export/{dataset}"));
            url.query_pairs_mut().append_pair("date", &window.date.to_string());
            let path = spool.join(format!("{window}-{}", schema.file));
            let context = format!("GET /v1/export/{dataset} ({window})");
            let bytes = self.download(&context, &url, &path, schema.format).await?;
            files.push(FetchedFile::new(dataset.clone(), schema.file.clone(), path, bytes));
        }
        Ok(FetchedWindow::new(None, files))
    }
}

impl RunningEmulator for PollsterEmulator {
    fn base_url(&self) -> Url {
        PollsterEmulator::base_url(self)
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("POLLSTER_API_URL".into(), self.base_url().to_string()),
            ("POLLSTER_API_TOKEN".into(), self.token().to_string()),
        ]
    }

    async fn wait(self) {
        PollsterEmulator::wait(self).await
    }

    async fn shutdown(self) {
        PollsterEmulator::shutdown(self).await
    }
}

pub struct PollsterPlatform;

impl Platform for PollsterPlatform {
    const NAME: &'static str = NAME;
    const TITLE: &'static str = "Pollster";
    const DESCRIPTION: &'static str = "Pollster (test-only): survey respondents (CSV) and answers (JSON)";
    const SECRETS: &'static [(&'static str, &'static str)] = &[("api_token", "POLLSTER_API_TOKEN")];
    const SCHEMAS: &'static [(&'static str, &'static str)] = &[
        ("respondent.toml", include_str!("../schemas/respondent.toml")),
        ("response.toml", include_str!("../schemas/response.toml")),
    ];
    const DEMO_QUERY: &'static str = "SELECT channel, avg(score) FROM read_parquet('{lake}/pollster/response/date=*/*.parquet') GROUP BY 1;";
    type Args = PollsterArgs;
    type EmulatorArgs = PollsterEmulatorArgs;
    type Source = Pollster;
    type Emulator = PollsterEmulator;

    fn source(args: &PollsterArgs) -> Result<Pollster, SetupError> {
        let token = load_secret(
            args.api_token_file.as_deref(),
            "POLLSTER_API_TOKEN",
            "--api-token-file",
            "Pollster API token",
        )?;
        let base_url = Url::parse(&args.api_url)
            .map_err(|e| SetupError(format!("--api-url `{}` is not a URL: {e}", args.api_url)))?;
        let mut config = HttpConfig::default();
        args.http.apply(&mut config)?;
        cxlake::sources::http::check_url(&base_url, "API URL", config.allow_http)
            .map_err(|e| SetupError(e.to_string()))?;
        let http = HttpClient::new(config, Some(token)).map_err(|e| SetupError(e.to_string()))?;
        Ok(Pollster { base_url, http })
    }

    async fn start_emulator(args: &PollsterEmulatorArgs, port: u16) -> Result<PollsterEmulator, SetupError> {
        PollsterEmulator::start(&args.api_token, Vec::new(), port)
            .await
            .map_err(|e| SetupError(format!("cannot start the Pollster emulator: {e}")))
    }

    async fn demo() -> Result<(PollsterEmulator, Pollster), SetupError> {
        let emulator =
            Self::start_emulator(&PollsterEmulatorArgs { api_token: DEMO_TOKEN.into() }, 0).await?;
        let http =
            HttpClient::new(HttpConfig::default(), Some(cxlake::sources::http::Secret::new(DEMO_TOKEN)))
                .map_err(|e| SetupError(e.to_string()))?;
        let source = Pollster { base_url: emulator.base_url(), http };
        Ok((emulator, source))
    }

    fn synth(
        dataset: &str,
        date: NaiveDate,
        _per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, SetupError> {
        let (bytes, records) = synth::export(dataset, date)
            .ok_or_else(|| SetupError(format!("Pollster has no dataset `{dataset}`")))?;
        out.write_all(&bytes).map_err(|e| SetupError(format!("writing the file: {e}")))?;
        Ok(records)
    }
}
