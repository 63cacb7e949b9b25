//! Sparkcentral on the command line: its arguments, and how the registry builds its source, its
//! emulator (a drop tree written to a directory) and synthetic data.

use std::path::PathBuf;

use chrono::{Days, NaiveDate, Utc};
use url::Url;

use super::synth::{self, SparkcentralSynthConfig};
use super::Sparkcentral;
use crate::sources::{Platform, RunningEmulator, SetupError};
use crate::units::parse_duration;

/// The zone the emulator's tenant configured its exports with.
pub const EMULATOR_TIMEZONE: &str = "Europe/Brussels";

/// `cxlake sync sparkcentral` options.
#[derive(Debug, clap::Args)]
pub struct SparkcentralArgs {
    /// The export tree: a local directory mirroring the SFTP server's /export (one folder per
    /// export type), synced there by other means
    #[arg(long = "source", env = "SPARKCENTRAL_SOURCE", value_name = "DIR")]
    pub source_dir: String,

    /// The zone the scheduled exports were configured with (IANA name): every time in them is local to it
    #[arg(long, env = "SPARKCENTRAL_TIMEZONE", value_name = "ZONE")]
    pub timezone: String,

    /// A file changed more recently than this is still being written: its day waits for the next run
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub settle: String,
}

/// `cxlake emulator sparkcentral` options.
#[derive(Debug, clap::Args)]
pub struct SparkcentralEmulatorArgs {
    /// Write the drop tree here
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// First local day of the tree (default: three days before today)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<NaiveDate>,
    /// Local days to write
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Rows per export file
    #[arg(long, default_value_t = SparkcentralSynthConfig::default().rows_per_file)]
    pub rows_per_file: usize,
}

/// The emulator: a drop tree on disk (Sparkcentral has no API; its exports appear as files).
pub struct DropTree {
    root: PathBuf,
    /// Owns the tree when it is a temporary one (the demo).
    _temp: Option<tempfile::TempDir>,
}

impl RunningEmulator for DropTree {
    fn base_url(&self) -> Url {
        Url::from_directory_path(&self.root).unwrap_or_else(|_| Url::parse("file:///").expect("a URL"))
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SPARKCENTRAL_SOURCE".into(), self.root.display().to_string()),
            ("SPARKCENTRAL_TIMEZONE".into(), EMULATOR_TIMEZONE.into()),
        ]
    }

    async fn wait(self) {}

    async fn shutdown(self) {}
}

fn zone() -> chrono_tz::Tz {
    EMULATOR_TIMEZONE.parse().expect("a valid zone")
}

pub struct SparkcentralPlatform;

impl Platform for SparkcentralPlatform {
    const NAME: &'static str = "sparkcentral";
    const TITLE: &'static str = "Sparkcentral";
    type Args = SparkcentralArgs;
    type EmulatorArgs = SparkcentralEmulatorArgs;
    type Source = Sparkcentral;
    type Emulator = DropTree;

    fn source(args: &SparkcentralArgs) -> Result<Sparkcentral, SetupError> {
        if args.source_dir.starts_with("sftp://") {
            return Err(SetupError(
                "--source sftp://… is not supported by this version; mirror the server's /export into a directory (e.g. with `sftp -r` or rclone) and pass that directory".into(),
            ));
        }
        let root = PathBuf::from(&args.source_dir);
        if !root.is_dir() {
            return Err(SetupError(format!("--source {} is not a directory", root.display())));
        }
        let zone = args.timezone.trim().parse::<chrono_tz::Tz>().map_err(|_| {
            SetupError(format!(
                "--timezone `{}` is not an IANA time zone name (such as Europe/Brussels)",
                args.timezone
            ))
        })?;
        let settle = parse_duration(&args.settle).map_err(|e| SetupError(format!("--settle: {e}")))?;
        Ok(Sparkcentral::new(root, zone, settle))
    }

    async fn start_emulator(args: &SparkcentralEmulatorArgs, _port: u16) -> Result<DropTree, SetupError> {
        let first = args.from.unwrap_or_else(|| Utc::now().date_naive() - Days::new(3));
        let config = SparkcentralSynthConfig {
            rows_per_file: args.rows_per_file,
            ..SparkcentralSynthConfig::default()
        };
        synth::write_drop_tree(config, &args.out, first, args.days, zone())
            .map_err(|e| SetupError(format!("writing the drop tree into {}: {e}", args.out.display())))?;
        Ok(DropTree { root: args.out.clone(), _temp: None })
    }

    async fn demo() -> Result<(DropTree, Sparkcentral), SetupError> {
        let temp =
            tempfile::tempdir().map_err(|e| SetupError(format!("creating the demo drop tree: {e}")))?;
        let first = Utc::now().date_naive() - Days::new(3);
        synth::write_drop_tree(SparkcentralSynthConfig::default(), temp.path(), first, 3, zone())
            .map_err(|e| SetupError(format!("writing the demo drop tree: {e}")))?;
        let source = Sparkcentral::new(temp.path().to_path_buf(), zone(), std::time::Duration::from_secs(60));
        Ok((DropTree { root: temp.path().to_path_buf(), _temp: Some(temp) }, source))
    }

    fn synth(
        dataset: &str,
        date: NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, SetupError> {
        if synth::export_type(dataset).is_none() {
            let known: Vec<String> =
                synth::TYPES.iter().map(|t| format!("sparkcentral.{}", t.dataset)).collect();
            return Err(SetupError(format!(
                "unknown dataset `sparkcentral.{dataset}`; valid: {}",
                known.join(", ")
            )));
        }
        let config = SparkcentralSynthConfig {
            rows_per_file: per_day.unwrap_or(SparkcentralSynthConfig::default().rows_per_file),
            ..SparkcentralSynthConfig::default()
        };
        let rows = synth::day_rows(config, dataset, date, zone(), 0);
        out.write_all(&synth::render(dataset, &rows, zone()))
            .map_err(|e| SetupError(format!("writing the synthetic data: {e}")))?;
        Ok(rows.len() as u64)
    }
}
