//! Khoros Care on the command line: its arguments and environment variables, and how the
//! registry builds its source, emulator and synthetic data.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use url::Url;

use super::client::{KhorosClient, KhorosConfig, KhorosFormat, KhorosLocale, UserExportRequest};
use super::emulator::{self, KhorosEmulator, KhorosEmulatorConfig};
use super::synth::{self, KhorosSynthConfig};
use super::Khoros;
use crate::sources::export_job::{ExportJobArgs, ExportPolicy};
use crate::sources::http::{load_secret, HttpArgs, Secret};
use crate::sources::loopback;
use crate::sources::{Platform, RunningEmulator, SetupError};

/// `cxlake sync khoros` options.
#[derive(Debug, clap::Args)]
pub struct KhorosArgs {
    /// Care Analytics API base URL (it depends on your region)
    #[arg(
        long,
        env = "KHOROS_API_URL",
        default_value = "https://analytics-api.app.lithium.com/api/public",
        value_name = "URL"
    )]
    pub api_url: String,

    /// The Analytics API user (HTTP Basic auth)
    #[arg(long, env = "KHOROS_USERNAME", value_name = "USER")]
    pub username: Option<String>,

    /// Read the password from this file (default: the KHOROS_PASSWORD environment variable)
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Read the company key from this file (default: the KHOROS_COMPANY_KEY environment variable)
    #[arg(long, value_name = "PATH")]
    pub company_key_file: Option<PathBuf>,

    /// Format the export is asked in (JSON adds the five *_MILLIS columns)
    #[arg(long, value_enum, default_value_t = KhorosFormat::Json)]
    pub khoros_format: KhorosFormat,

    /// The zone the company counts its days in (IANA name): each window is that zone's day,
    /// asked for with `timezone`/`timezoneOffset`; default UTC days
    #[arg(long, env = "KHOROS_TIMEZONE", value_name = "ZONE", value_parser = crate::window::parse_zone)]
    pub timezone: Option<chrono_tz::Tz>,

    /// The export's locale (language and time formatting); the declaration is drawn for `en`
    #[arg(long, value_enum, default_value_t = KhorosLocale::En)]
    pub locale: KhorosLocale,

    /// Leave disabled agents out (by default they are in, so no agent silently disappears)
    #[arg(long)]
    pub exclude_disabled: bool,

    /// Only these agents (repeatable): a filtered export, which never replaces a full one
    #[arg(long, value_name = "ID")]
    pub agent_id: Vec<String>,

    /// Only these teams (repeatable): a filtered export
    #[arg(long, value_name = "ID")]
    pub team_id: Vec<String>,

    /// Only these metrics (columns; repeatable), or metrics disabled for the company
    #[arg(long, value_name = "METRIC")]
    pub report_metric: Vec<String>,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub job: ExportJobArgs,
}

/// `cxlake emulator khoros` options.
#[derive(Debug, clap::Args)]
pub struct KhorosEmulatorArgs {
    /// The user the emulator accepts
    #[arg(long, default_value = emulator::DEFAULT_USERNAME)]
    pub username: String,
    /// The password the emulator accepts
    #[arg(long, default_value = emulator::DEFAULT_PASSWORD)]
    pub password: String,
    /// The company key the emulator accepts
    #[arg(long, default_value = emulator::DEFAULT_COMPANY_KEY)]
    pub company_key: String,
    /// Agents in the synthetic tenant (every fifth one disabled)
    #[arg(long, default_value_t = KhorosSynthConfig::default().agents)]
    pub agents: usize,
    /// The zone the synthetic company works in: its days are this zone's days
    #[arg(long, value_name = "ZONE", default_value = "UTC", value_parser = crate::window::parse_zone)]
    pub company_timezone: chrono_tz::Tz,
    /// Status polls answered RUNNING before an export closes
    #[arg(long, default_value_t = 2)]
    pub running_polls: u32,
    /// Inject faults from a TOML scenario: [[faults]] with endpoint, kind and times (see README)
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
}

impl KhorosArgs {
    fn request(&self) -> UserExportRequest {
        UserExportRequest {
            format: self.khoros_format,
            locale: self.locale,
            timezone: self.timezone,
            include_disabled: !self.exclude_disabled,
            agent_ids: self.agent_id.clone(),
            team_ids: self.team_id.clone(),
            report_metrics: self.report_metric.clone(),
        }
    }
}

impl RunningEmulator for KhorosEmulator {
    fn base_url(&self) -> Url {
        KhorosEmulator::base_url(self)
    }

    fn env(&self) -> Vec<(String, String)> {
        let config = self.config();
        vec![
            ("KHOROS_API_URL".into(), self.base_url().to_string()),
            ("KHOROS_USERNAME".into(), config.username.clone()),
            ("KHOROS_PASSWORD".into(), config.password.clone()),
            ("KHOROS_COMPANY_KEY".into(), config.company_key.clone()),
        ]
    }

    async fn wait(self) {
        KhorosEmulator::wait(self).await
    }

    async fn shutdown(self) {
        KhorosEmulator::shutdown(self).await
    }
}

pub struct KhorosPlatform;

impl Platform for KhorosPlatform {
    const NAME: &'static str = "khoros";
    const TITLE: &'static str = "Khoros Care";
    const DESCRIPTION: &'static str =
        "Khoros Care: the asynchronous Analytics user export (agent metrics per day), JSON or CSV";
    const EMULATOR_PORT: u16 = 8091;
    const SECRETS: &'static [(&'static str, &'static str)] =
        &[("password", "KHOROS_PASSWORD"), ("company_key", "KHOROS_COMPANY_KEY")];
    type Args = KhorosArgs;
    type EmulatorArgs = KhorosEmulatorArgs;
    type Source = Khoros;
    type Emulator = KhorosEmulator;

    fn source(args: &KhorosArgs) -> Result<Khoros, SetupError> {
        let username = args
            .username
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| SetupError("no Khoros user: set KHOROS_USERNAME or pass --username".into()))?;
        let password = load_secret(
            args.password_file.as_deref(),
            "KHOROS_PASSWORD",
            "--password-file",
            "Khoros password",
        )?;
        let company_key = load_secret(
            args.company_key_file.as_deref(),
            "KHOROS_COMPANY_KEY",
            "--company-key-file",
            "Khoros company key",
        )?;
        let base_url = Url::parse(&args.api_url)
            .map_err(|e| SetupError(format!("--api-url `{}` is not a URL: {e}", args.api_url)))?;
        let mut config = KhorosConfig::new(base_url, username, password, company_key);
        args.http.apply(&mut config.http)?;
        config.poll = args.job.poll()?;
        config.request = args.request();
        let client = KhorosClient::new(config).map_err(|e| SetupError(e.to_string()))?;
        Ok(Khoros::new(client, args.job.policy()?))
    }

    const DEMO_QUERY: &'static str = "-- Khoros Care: the agents who handled the most, per day\n\
         SELECT report_date, agent_name, total_handled, round(avg_handle_time_ms / 1000, 1) AS avg_handle_seconds\n\
         FROM read_parquet('{lake}/khoros/user/date=*/*.parquet', hive_partitioning = true)\n\
         ORDER BY report_date, total_handled DESC LIMIT 10;";

    const FILTER_FLAGS: &'static str = "--agent-id, --team-id or --report-metric";

    /// Agent, team and metric selections make a partial export: never a replacement for a full one.
    fn filter(args: &KhorosArgs) -> Option<String> {
        let request = args.request();
        let lists: [(&str, &[String]); 3] = [
            ("agentId", &request.agent_ids),
            ("teamId", &request.team_ids),
            ("reportMetrics", &request.report_metrics),
        ];
        let disabled = (!request.include_disabled).then(|| "includeDisabled=false".to_string());
        crate::sources::selection_fingerprint("khoros", &lists, disabled.into_iter().collect())
    }

    async fn start_emulator(args: &KhorosEmulatorArgs, port: u16) -> Result<KhorosEmulator, SetupError> {
        let faults = loopback::scenario_faults(args.faults.as_deref())?;
        let config = KhorosEmulatorConfig {
            username: args.username.clone(),
            password: args.password.clone(),
            company_key: args.company_key.clone(),
            synth: KhorosSynthConfig {
                agents: args.agents,
                zone: args.company_timezone,
                ..KhorosSynthConfig::default()
            },
            running_polls: args.running_polls,
            faults,
            ..KhorosEmulatorConfig::default()
        };
        KhorosEmulator::start(config, port)
            .await
            .map_err(|e| SetupError(format!("binding 127.0.0.1:{port}: {e}")))
    }

    async fn demo() -> Result<(KhorosEmulator, Khoros), SetupError> {
        let emulator = KhorosEmulator::start(KhorosEmulatorConfig::default(), 0)
            .await
            .map_err(|e| SetupError(format!("starting the Khoros emulator: {e}")))?;
        let mut config = KhorosConfig::new(
            emulator.base_url(),
            emulator::DEFAULT_USERNAME.into(),
            Secret::new(emulator::DEFAULT_PASSWORD),
            Secret::new(emulator::DEFAULT_COMPANY_KEY),
        );
        config.poll.initial_interval = Duration::from_millis(100);
        let client = KhorosClient::new(config).map_err(|e| SetupError(e.to_string()))?;
        Ok((emulator, Khoros::new(client, ExportPolicy::default())))
    }

    fn synth(
        dataset: &str,
        date: NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, SetupError> {
        if dataset != "user" {
            return Err(SetupError(format!("unknown dataset `khoros.{dataset}`; valid: khoros.user")));
        }
        let config = KhorosSynthConfig {
            agents: per_day.unwrap_or(KhorosSynthConfig::default().agents),
            ..KhorosSynthConfig::default()
        };
        let rows = synth::day_rows(config, date, true);
        out.write_all(&synth::render(&rows, true))
            .map_err(|e| SetupError(format!("writing the synthetic data: {e}")))?;
        Ok(rows.len() as u64)
    }
}
