//! Loop on the command line: its arguments and environment variables, and how the registry
//! builds its source, emulator and synthetic data.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use url::Url;

use super::client::{LoopClient, LoopConfig, LoopFormat, ReportRequest};
use super::emulator::{self, LoopEmulator, LoopEmulatorConfig};
use super::synth::{self, LoopSynthConfig, LoopTenant};
use super::Loop;
use crate::sources::export_job::{ExportJobArgs, ExportPolicy};
use crate::sources::http::{load_secret, HttpArgs, Secret};
use crate::sources::loopback;
use crate::sources::{Platform, RunningEmulator, SetupError};

/// `cxlake sync loop` options.
#[derive(Debug, clap::Args)]
pub struct LoopArgs {
    /// API base URL
    #[arg(long, env = "LOOP_API_URL", default_value = "https://api.intheloop.io", value_name = "URL")]
    pub api_url: String,

    /// Read the API token from this file (default: the LOOP_API_TOKEN environment variable)
    #[arg(long, value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,

    /// Export as this user (X-Impersonate-User)
    #[arg(long, value_name = "EMAIL")]
    pub impersonate: Option<String>,

    /// Format the report is asked in; the same rows land either way
    #[arg(long, value_enum, default_value_t = LoopFormat::Json)]
    pub loop_format: LoopFormat,

    /// The zone the reports are calculated in (IANA name): each window is that zone's day and
    /// the export's times are its local times; default UTC
    #[arg(long, env = "LOOP_TIMEZONE", value_name = "ZONE", value_parser = crate::window::parse_zone)]
    pub timezone: Option<chrono_tz::Tz>,

    /// Only conversations with this tag id (repeatable): a filtered export
    #[arg(long, value_name = "ID")]
    pub tag: Vec<String>,

    /// Only these shared inboxes (repeatable): a filtered export
    #[arg(long, value_name = "ID")]
    pub team: Vec<String>,

    /// Only these teammates, by e-mail address (repeatable): a filtered export
    #[arg(long, value_name = "EMAIL")]
    pub teammate: Vec<String>,

    /// Only these customers, by e-mail address (repeatable): a filtered export
    #[arg(long, value_name = "EMAIL")]
    pub customer: Vec<String>,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub job: ExportJobArgs,
}

/// `cxlake emulator loop` options.
#[derive(Debug, clap::Args)]
pub struct LoopEmulatorArgs {
    /// The API token the emulator accepts
    #[arg(long, default_value = emulator::DEFAULT_API_TOKEN)]
    pub api_token: String,
    /// Conversations created per day in the synthetic tenant
    #[arg(long, default_value_t = LoopSynthConfig::default().conversations_per_day)]
    pub conversations_per_day: usize,
    /// Status polls answered InProgress before an export completes
    #[arg(long, default_value_t = 2)]
    pub running_polls: u32,
    /// How long a signed download URL is valid
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub url_ttl: String,
    /// Answer 451 (account not verified) to every export
    #[arg(long)]
    pub unverified: bool,
    /// Inject faults from a TOML scenario: [[faults]] with endpoint, kind and times (see README)
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// A tenant whose report differs from the declaration (to try `cxlake drift` on)
    #[arg(long, value_enum, default_value_t = LoopTenant::Documented)]
    pub tenant: LoopTenant,
}

impl LoopArgs {
    fn request(&self) -> ReportRequest {
        ReportRequest {
            format: self.loop_format,
            timezone: self.timezone,
            tag_ids: self.tag.clone(),
            team_ids: self.team.clone(),
            teammate_ids: self.teammate.clone(),
            customer_ids: self.customer.clone(),
        }
    }
}

impl RunningEmulator for LoopEmulator {
    fn base_url(&self) -> Url {
        LoopEmulator::base_url(self)
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LOOP_API_URL".into(), self.base_url().to_string()),
            ("LOOP_API_TOKEN".into(), self.config().api_token.clone()),
        ]
    }

    async fn wait(self) {
        LoopEmulator::wait(self).await
    }

    async fn shutdown(self) {
        LoopEmulator::shutdown(self).await
    }
}

pub struct LoopPlatform;

impl Platform for LoopPlatform {
    const NAME: &'static str = "loop";
    const TITLE: &'static str = "Loop";
    const DESCRIPTION: &'static str = "Loop: the asynchronous conversation report export, JSON or XLSX";
    const EMULATOR_PORT: u16 = 8092;
    const SECRETS: &'static [(&'static str, &'static str)] = &[("api_token", "LOOP_API_TOKEN")];
    type Args = LoopArgs;
    type EmulatorArgs = LoopEmulatorArgs;
    type Source = Loop;
    type Emulator = LoopEmulator;

    fn source(args: &LoopArgs) -> Result<Loop, SetupError> {
        let token = load_secret(
            args.api_token_file.as_deref(),
            "LOOP_API_TOKEN",
            "--api-token-file",
            "Loop API token",
        )?;
        let base_url = Url::parse(&args.api_url)
            .map_err(|e| SetupError(format!("--api-url `{}` is not a URL: {e}", args.api_url)))?;
        let mut config = LoopConfig::new(base_url, token);
        args.http.apply(&mut config.http)?;
        config.poll = args.job.poll()?;
        config.request = args.request();
        config.impersonate = args.impersonate.clone();
        let client = LoopClient::new(config).map_err(|e| SetupError(e.to_string()))?;
        Ok(Loop::new(client, args.job.policy()?))
    }

    const DEMO_QUERY: &'static str =
        "-- Loop: conversations per shared inbox and status, with the mean first response\n\
         SELECT shared_inbox, status, count(*) AS conversations,\n\
                round(avg(first_response_time_seconds) / 60, 1) AS avg_first_response_minutes\n\
         FROM read_parquet('{lake}/loop/report/date=*/*.parquet', hive_partitioning = true)\n\
         GROUP BY ALL ORDER BY conversations DESC;";

    const FILTER_FLAGS: &'static str = "--tag, --team, --teammate, --customer or --impersonate";

    /// Tag, inbox, teammate and customer selections (and impersonation, which sees one user's
    /// view) make a partial export: never a replacement for a full one.
    fn filter(args: &LoopArgs) -> Option<String> {
        let lists: [(&str, &[String]); 4] = [
            ("tag", &args.tag),
            ("team", &args.team),
            ("teammate", &args.teammate),
            ("customer", &args.customer),
        ];
        let user = args.impersonate.as_ref().map(|user| format!("impersonate={user}"));
        crate::sources::selection_fingerprint("loop", &lists, user.into_iter().collect())
    }

    async fn start_emulator(args: &LoopEmulatorArgs, port: u16) -> Result<LoopEmulator, SetupError> {
        let faults = loopback::scenario_faults(args.faults.as_deref())?;
        let config = LoopEmulatorConfig {
            api_token: args.api_token.clone(),
            synth: LoopSynthConfig {
                conversations_per_day: args.conversations_per_day,
                tenant: args.tenant,
                ..LoopSynthConfig::default()
            },
            running_polls: args.running_polls,
            url_ttl: crate::units::parse_duration(&args.url_ttl)
                .map_err(|e| SetupError(format!("--url-ttl: {e}")))?,
            unverified: args.unverified,
            faults,
            ..LoopEmulatorConfig::default()
        };
        LoopEmulator::start(config, port)
            .await
            .map_err(|e| SetupError(format!("binding 127.0.0.1:{port}: {e}")))
    }

    async fn demo() -> Result<(LoopEmulator, Loop), SetupError> {
        let emulator = LoopEmulator::start(LoopEmulatorConfig::default(), 0)
            .await
            .map_err(|e| SetupError(format!("starting the Loop emulator: {e}")))?;
        let mut config = LoopConfig::new(emulator.base_url(), Secret::new(emulator::DEFAULT_API_TOKEN));
        config.poll.initial_interval = Duration::from_millis(100);
        let client = LoopClient::new(config).map_err(|e| SetupError(e.to_string()))?;
        Ok((emulator, Loop::new(client, ExportPolicy::default())))
    }

    fn synth(
        dataset: &str,
        date: NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, SetupError> {
        if dataset != "report" {
            return Err(SetupError(format!("unknown dataset `loop.{dataset}`; valid: loop.report")));
        }
        let config = LoopSynthConfig {
            conversations_per_day: per_day.unwrap_or(LoopSynthConfig::default().conversations_per_day),
            ..LoopSynthConfig::default()
        };
        let rows = synth::day_rows(config, date);
        out.write_all(&synth::render_json(&rows, chrono_tz::Tz::UTC))
            .map_err(|e| SetupError(format!("writing the synthetic data: {e}")))?;
        Ok(rows.len() as u64)
    }
}
