//! Dixa on the command line: its arguments and environment variables, and how the registry
//! builds its source, emulator and synthetic data.

use std::path::PathBuf;

use chrono::NaiveDate;
use url::Url;

use super::client::{DixaClient, DixaConfig, REQUESTS_PER_MINUTE};
use super::emulator::{DixaEmulator, DixaEmulatorConfig, DEFAULT_API_TOKEN};
use super::synth::{self, ConversationFilter, DixaSynthConfig};
use super::{Dixa, DixaRequest, WindowBy};
use crate::sources::http::{load_secret, HttpArgs, Secret};
use crate::sources::loopback;
use crate::sources::{Platform, RunningEmulator, SetupError};

/// `cxlake sync dixa` options.
#[derive(Debug, clap::Args)]
pub struct DixaArgs {
    /// Exports API base URL
    #[arg(long, env = "DIXA_API_URL", default_value = "https://exports.dixa.io", value_name = "URL")]
    pub api_url: String,

    /// Read the API token from this file (default: the DIXA_API_TOKEN environment variable)
    #[arg(long, value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Requests per minute to stay under (Dixa allows about 10 per token)
    #[arg(long, default_value_t = REQUESTS_PER_MINUTE, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub requests_per_minute: u32,

    /// Which of a conversation's times puts it in a day's window (the lake records it: windows
    /// by different fields never replace each other)
    #[arg(long, value_enum, default_value_t = WindowBy::Updated)]
    pub window_by: WindowBy,

    /// Export only these conversations (Dixa's csids), e.g. to fetch corrected ones again: a
    /// filtered window that never replaces a full one (needs --from and --datasets conversation)
    #[arg(long, value_delimiter = ',', value_name = "ID,ID")]
    pub csids: Option<Vec<i64>>,
}

impl DixaArgs {
    fn request(&self) -> DixaRequest {
        let csids = self.csids.clone().map(|mut ids| {
            ids.sort_unstable();
            ids.dedup();
            ids
        });
        DixaRequest { window_by: self.window_by, csids }
    }
}

/// `cxlake emulator dixa` options.
#[derive(Debug, clap::Args)]
pub struct DixaEmulatorArgs {
    /// The API token the emulator accepts
    #[arg(long, default_value = DEFAULT_API_TOKEN)]
    pub api_token: String,
    /// Mean conversations created per day in the synthetic tenant
    #[arg(long, default_value_t = DixaSynthConfig::default().conversations_per_day)]
    pub conversations_per_day: usize,
    /// Requests per minute per token before 429 (0: no limit)
    #[arg(long, default_value_t = 10)]
    pub rate_limit: u32,
    /// Inject faults from a TOML scenario: [[faults]] with endpoint, kind and times (see README)
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
}

impl RunningEmulator for DixaEmulator {
    fn base_url(&self) -> Url {
        DixaEmulator::base_url(self)
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DIXA_API_URL".into(), self.base_url().to_string()),
            ("DIXA_API_TOKEN".into(), self.config().api_token.clone()),
        ]
    }

    async fn wait(self) {
        DixaEmulator::wait(self).await
    }

    async fn shutdown(self) {
        DixaEmulator::shutdown(self).await
    }
}

pub struct DixaPlatform;

impl Platform for DixaPlatform {
    const NAME: &'static str = "dixa";
    const TITLE: &'static str = "Dixa";
    const DESCRIPTION: &'static str =
        "Dixa: the Exports API's conversations and messages, JSON with nested fields";
    const EMULATOR_PORT: u16 = 8090;
    const SECRETS: &'static [(&'static str, &'static str)] = &[("api_token", "DIXA_API_TOKEN")];
    type Args = DixaArgs;
    type EmulatorArgs = DixaEmulatorArgs;
    type Source = Dixa;
    type Emulator = DixaEmulator;

    fn source(args: &DixaArgs) -> Result<Dixa, SetupError> {
        let token = load_secret(
            args.api_token_file.as_deref(),
            "DIXA_API_TOKEN",
            "--api-token-file",
            "Dixa API token",
        )?;
        let base_url = Url::parse(&args.api_url)
            .map_err(|e| SetupError(format!("--api-url `{}` is not a URL: {e}", args.api_url)))?;
        let mut config = DixaConfig::new(base_url, token);
        args.http.apply(&mut config.http)?;
        config.http.requests_per_minute = Some(args.requests_per_minute);
        let client = DixaClient::new(config).map_err(|e| SetupError(e.to_string()))?;
        Ok(Dixa::new(client).with_request(args.request()))
    }

    const DEMO_QUERY: &'static str = "-- Dixa ratings are nested: one row per rating with unnest\n\
         SELECT id, r.rating_type, r.rating_score\n\
         FROM read_parquet('{lake}/dixa/conversation/date=*/*.parquet', hive_partitioning = true),\n\
              unnest(ratings) AS t(r)\n\
         ORDER BY id LIMIT 10;";

    const FILTER_FLAGS: &'static str = "--csids or --window-by";

    /// Windows by another field than `updated`, or of named conversations only, are another
    /// kind of window: recorded with this fingerprint, they never replace full ones.
    fn filter(args: &DixaArgs) -> Option<String> {
        let request = args.request();
        let mut parts = Vec::new();
        if request.window_by != WindowBy::Updated {
            parts.push(format!("window_by={}", request.window_by.filter()));
        }
        if let Some(ids) = &request.csids {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            parts.push(format!("csids={}", ids.join(",")));
        }
        (!parts.is_empty()).then(|| crate::sources::fingerprint("dixa", &parts.join(";")))
    }

    async fn start_emulator(args: &DixaEmulatorArgs, port: u16) -> Result<DixaEmulator, SetupError> {
        let faults = loopback::scenario_faults(args.faults.as_deref())?;
        let config = DixaEmulatorConfig {
            api_token: args.api_token.clone(),
            synth: DixaSynthConfig {
                conversations_per_day: args.conversations_per_day,
                ..DixaSynthConfig::default()
            },
            rate_limit_per_minute: (args.rate_limit > 0).then_some(args.rate_limit),
            faults,
            ..DixaEmulatorConfig::default()
        };
        DixaEmulator::start(config, port)
            .await
            .map_err(|e| SetupError(format!("binding 127.0.0.1:{port}: {e}")))
    }

    async fn demo() -> Result<(DixaEmulator, Dixa), SetupError> {
        // The demo's emulator has no rate limit, so the demo does not wait 6 s per request.
        let config = DixaEmulatorConfig { rate_limit_per_minute: None, ..DixaEmulatorConfig::default() };
        let emulator = DixaEmulator::start(config, 0)
            .await
            .map_err(|e| SetupError(format!("starting the Dixa emulator: {e}")))?;
        let mut config = DixaConfig::new(emulator.base_url(), Secret::new(DEFAULT_API_TOKEN));
        config.http.requests_per_minute = None;
        let client = DixaClient::new(config).map_err(|e| SetupError(e.to_string()))?;
        Ok((emulator, Dixa::new(client)))
    }

    fn synth(
        dataset: &str,
        date: NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, SetupError> {
        let config = DixaSynthConfig {
            conversations_per_day: per_day.unwrap_or(DixaSynthConfig::default().conversations_per_day),
            ..DixaSynthConfig::default()
        };
        let range = synth::day_range(date);
        let records: Box<dyn Iterator<Item = serde_json::Value>> = match dataset {
            "conversation" => Box::new(synth::conversations(
                config,
                ConversationFilter { updated: Some(range), ..Default::default() },
            )),
            "message" => Box::new(synth::messages(config, range)),
            other => {
                return Err(SetupError(format!(
                    "unknown dataset `dixa.{other}`; valid: dixa.conversation, dixa.message"
                )))
            }
        };
        let io = |e: std::io::Error| SetupError(format!("writing the synthetic data: {e}"));
        out.write_all(b"[").map_err(io)?;
        let mut count = 0u64;
        for record in records {
            if count > 0 {
                out.write_all(b",").map_err(io)?;
            }
            out.write_all(b"\n").map_err(io)?;
            serde_json::to_writer(&mut *out, &record).map_err(|e| io(e.into()))?;
            count += 1;
        }
        out.write_all(b"\n]\n").map_err(io)?;
        Ok(count)
    }
}
