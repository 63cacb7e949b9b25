//! Salted CX on the command line: its arguments and environment variables, and how the
//! registry builds its source, emulator and synthetic data.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use url::Url;

use super::client::{ClientConfig, SaltedCxClient, SaltedCxJobs};
use super::emulator::{self, Emulator, EmulatorConfig};
use super::synth::{self, SynthConfig};
use super::{api, ExportPolicy, SaltedCx};
use crate::sources::export_job::ExportJobArgs;
use crate::sources::http::{load_secret, HttpArgs};
use crate::sources::loopback;
use crate::sources::{CreationCap, Platform, RunningEmulator, SetupError, SourceError};
use crate::window::Window;

/// `cxlake sync saltedcx` / `cxlake history saltedcx` options.
#[derive(Debug, clap::Args)]
pub struct SaltedCxArgs {
    /// API base URL
    #[arg(long, env = "SALTEDCX_API_URL", default_value = "https://api.eu.salted.cx", value_name = "URL")]
    pub api_url: String,

    /// Read the API key from this file (default: the SALTEDCX_API_KEY environment variable)
    #[arg(long, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub http: HttpArgs,

    /// Export only one customer profile, by email or phone (needs --from and its own --dest)
    #[arg(long, value_name = "EMAIL|PHONE")]
    pub contact: Option<String>,

    #[command(flatten)]
    pub job: ExportJobArgs,

    /// At most N exports created per DURATION by all workers syncing the lake (Salted CX asks
    /// for low-frequency batch use)
    #[arg(long, default_value = "60/1h", value_name = "N/DURATION")]
    pub max_export_rate: String,

    /// At most this many exports created and not yet landed, across the lake's workers
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_exports_in_flight: u32,
}

/// `cxlake emulator saltedcx` options.
#[derive(Debug, clap::Args)]
pub struct SaltedCxEmulatorArgs {
    /// The API key the emulator accepts
    #[arg(long, default_value = emulator::DEFAULT_API_KEY)]
    pub api_key: String,
    /// Mean engagements per day in the synthetic tenant
    #[arg(long, default_value_t = SynthConfig::default().engagements_per_day)]
    pub engagements_per_day: usize,
    /// Status polls answered PROCESSING before an export completes
    #[arg(long, default_value_t = 2)]
    pub processing_polls: u32,
    /// Days (YYYY-MM-DD) whose exports end FAILED, comma separated
    #[arg(long, value_delimiter = ',', value_name = "DATES")]
    pub fail_dates: Vec<NaiveDate>,
    /// Inject faults from a TOML scenario: [[faults]] with endpoint, kind and times (see README)
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
}

impl SaltedCxArgs {
    fn client(&self) -> Result<SaltedCxClient, SetupError> {
        let key = load_secret(
            self.api_key_file.as_deref(),
            "SALTEDCX_API_KEY",
            "--api-key-file",
            "Salted CX API key",
        )?;
        let base_url = Url::parse(&self.api_url)
            .map_err(|e| SetupError(format!("--api-url `{}` is not a URL: {e}", self.api_url)))?;
        let mut config = ClientConfig::new(base_url, key);
        self.http.apply(&mut config.http)?;
        config.poll = self.job.poll()?;
        SaltedCxClient::new(config).map_err(|e| SetupError(e.to_string()))
    }
}

impl RunningEmulator for Emulator {
    fn base_url(&self) -> Url {
        Emulator::base_url(self)
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SALTEDCX_API_URL".into(), self.base_url().to_string()),
            ("SALTEDCX_API_KEY".into(), self.config().api_key.clone()),
        ]
    }

    async fn wait(self) {
        Emulator::wait(self).await
    }

    async fn shutdown(self) {
        Emulator::shutdown(self).await
    }
}

pub struct SaltedCxPlatform;

impl Platform for SaltedCxPlatform {
    const NAME: &'static str = "saltedcx";
    const TITLE: &'static str = "Salted CX";
    const DESCRIPTION: &'static str = "Salted CX: an asynchronous export of five CSV datasets (engagements, customers, turns, reviews, agents)";
    const EMULATOR_PORT: u16 = 8089;
    const SECRETS: &'static [(&'static str, &'static str)] = &[("api_key", "SALTEDCX_API_KEY")];
    type Args = SaltedCxArgs;
    type EmulatorArgs = SaltedCxEmulatorArgs;
    type Source = SaltedCx;
    type Emulator = Emulator;

    fn source(args: &SaltedCxArgs) -> Result<SaltedCx, SetupError> {
        let (per_period, period) = CreationCap::parse_rate(&args.max_export_rate)
            .map_err(|e| SetupError(format!("--max-export-rate {e}")))?;
        if args.max_exports_in_flight == 0 {
            return Err(SetupError("--max-exports-in-flight must be at least 1".into()));
        }
        let cap = CreationCap { per_period, period, in_flight: args.max_exports_in_flight };
        let jobs = SaltedCxJobs::new(args.client()?, args.contact.clone()).with_cap(Some(cap));
        Ok(SaltedCx::new(jobs, args.job.policy()?))
    }

    const DEMO_QUERY: &'static str = "-- Salted CX: engagements per channel and day\n\
         SELECT date, channel_type, count(*) AS engagements, round(avg(total_time) / 1000, 1) AS avg_seconds\n\
         FROM read_parquet('{lake}/saltedcx/engagement/date=*/*.parquet', hive_partitioning = true)\n\
         GROUP BY ALL ORDER BY date, channel_type;";

    const FILTER_FLAGS: &'static str = "--contact";

    fn filter(args: &SaltedCxArgs) -> Option<String> {
        args.contact.as_deref().map(contact_fingerprint)
    }

    async fn history(args: &SaltedCxArgs) -> Result<Option<String>, SourceError> {
        let client = args.client().map_err(|e| SourceError::Rejected(e.0))?;
        let exports = client.history().await?;
        let mut text = format!("{:<38} {:<11} {:<40} error\n", "export id", "status", "datasets ready");
        for e in &exports {
            let datasets: Vec<&str> = e.download_urls.keys().map(String::as_str).collect();
            let status = format!("{:?}", e.status).to_uppercase();
            text.push_str(&format!(
                "{:<38} {:<11} {:<40} {}\n",
                e.export_id,
                status,
                datasets.join(","),
                e.error.as_deref().unwrap_or("")
            ));
        }
        text.push_str(&format!("{} export(s)\n", exports.len()));
        Ok(Some(text))
    }

    async fn start_emulator(args: &SaltedCxEmulatorArgs, port: u16) -> Result<Emulator, SetupError> {
        let faults = loopback::scenario_faults(args.faults.as_deref())?;
        let config = EmulatorConfig {
            faults,
            api_key: args.api_key.clone(),
            synth: SynthConfig { engagements_per_day: args.engagements_per_day, ..SynthConfig::default() },
            processing_polls: args.processing_polls,
            fail_dates: args.fail_dates.iter().copied().collect(),
            ..EmulatorConfig::default()
        };
        Emulator::start(config, port).await.map_err(|e| SetupError(format!("binding 127.0.0.1:{port}: {e}")))
    }

    async fn demo() -> Result<(Emulator, SaltedCx), SetupError> {
        let emulator = Emulator::start(EmulatorConfig::default(), 0)
            .await
            .map_err(|e| SetupError(format!("starting the Salted CX emulator: {e}")))?;
        let mut config = ClientConfig::new(
            emulator.base_url(),
            crate::sources::http::Secret::new(emulator::DEFAULT_API_KEY),
        );
        config.poll.initial_interval = Duration::from_millis(100);
        let client = SaltedCxClient::new(config).map_err(|e| SetupError(e.to_string()))?;
        Ok((emulator, SaltedCx::new(SaltedCxJobs::new(client, None), ExportPolicy::default())))
    }

    fn synth(
        dataset: &str,
        date: NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, SetupError> {
        if !api::DATASETS.contains(&dataset) {
            return Err(SetupError(format!(
                "unknown dataset `saltedcx.{dataset}`; valid: {}",
                api::DATASETS.map(|d| format!("saltedcx.{d}")).join(", ")
            )));
        }
        let engagements_per_day = per_day.unwrap_or(SynthConfig::default().engagements_per_day);
        let config = SynthConfig {
            engagements_per_day,
            customers: SynthConfig::default().customers.max(engagements_per_day),
            ..SynthConfig::default()
        };
        let window = Window::new(date);
        synth::write_dataset(&config, dataset, window.start(), window.end(), None, out)
            .map_err(|e| SetupError(format!("writing the synthetic data: {e}")))
    }
}

/// A fingerprint of `--contact` for bookkeeping: the contact itself is personal data.
pub fn contact_fingerprint(contact: &str) -> String {
    crate::sources::fingerprint("contact", &contact.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_fingerprint_hides_the_contact() {
        let f = contact_fingerprint("Jane@Example.com");
        assert!(f.starts_with("contact:") && !f.contains("jane"));
        assert_eq!(f, contact_fingerprint("jane@example.com "));
    }
}
