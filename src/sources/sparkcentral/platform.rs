//! Sparkcentral on the command line: its arguments, and how the registry builds its source, its
//! emulator (a drop tree written to a directory) and synthetic data.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use url::Url;

use super::drop::{DropStore, TreeConfig};
use super::sftp::{Credential, SftpConfig, SftpDrop, SftpTarget};
use super::source::Settling;
use super::synth::{self, SparkcentralSynthConfig};
use super::Sparkcentral;
use crate::sources::http::{load_secret, Secret};
use crate::sources::{Platform, RunningEmulator, SetupError};
use crate::units::parse_duration;

/// The zone the emulator's tenant configured its exports with.
pub const EMULATOR_TIMEZONE: &str = "Europe/Brussels";

/// `cxlake sync sparkcentral` options.
#[derive(Debug, clap::Args)]
pub struct SparkcentralArgs {
    /// The export tree: `sftp://USER@HOST[:PORT]/export` on Sparkcentral's SFTP server, or a
    /// local directory mirroring it (one folder per export type), synced there by other means
    #[arg(long = "source", env = "SPARKCENTRAL_SOURCE", value_name = "URL|DIR")]
    pub source: String,

    /// Log in with this private key (OpenSSH format; an encrypted one's passphrase from
    /// SPARKCENTRAL_SFTP_KEY_PASSPHRASE) instead of a password
    #[arg(long, env = "SPARKCENTRAL_SFTP_IDENTITY", value_name = "PATH")]
    pub identity_file: Option<PathBuf>,

    /// Read the SFTP password from this file (default: the SPARKCENTRAL_SFTP_PASSWORD environment variable)
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// The server's host key must be in this OpenSSH known_hosts file (an unknown or changed key is refused)
    #[arg(
        long,
        env = "SPARKCENTRAL_SFTP_KNOWN_HOSTS",
        value_name = "PATH",
        default_value = "~/.ssh/known_hosts"
    )]
    pub known_hosts: String,

    /// The zone the scheduled exports were configured with (IANA name): every time in them is
    /// local to it (the default for exports not given one with --export-timezone)
    #[arg(long, env = "SPARKCENTRAL_TIMEZONE", value_name = "ZONE")]
    pub timezone: String,

    /// An export configured in another zone (repeatable): KEY is its folder under the root or the
    /// uuid in its file names, e.g. us-daily=America/New_York
    #[arg(long, value_name = "KEY=ZONE")]
    pub export_timezone: Vec<String>,

    /// A folder holding one type whose file names do not name it (repeatable), e.g.
    /// virtual_agent=bots; the document's folders (and virtual-agent, contact-attribute) need none
    #[arg(long, value_name = "DATASET=FOLDER")]
    pub type_folder: Vec<String>,

    /// A file changed more recently than this is still being written: its day waits for the next run
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub settle: String,

    /// List the tree again after this: a file whose size or time changed in between is still
    /// being written, whatever the server's clock says (0s: list once)
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub recheck_after: String,
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

/// The SFTP server, credential and known_hosts file of `--source sftp://…`.
fn sftp_config(args: &SparkcentralArgs) -> Result<SftpConfig, SetupError> {
    let target = SftpTarget::parse(&args.source).map_err(|e| SetupError(format!("--source: {e}")))?;
    let credential = match &args.identity_file {
        Some(path) => {
            let passphrase = crate::secrets::var("SPARKCENTRAL_SFTP_KEY_PASSPHRASE").map(Secret::new);
            Credential::key_file(path, passphrase.as_ref()).map_err(SetupError)?
        }
        None => Credential::Password(
            load_secret(
                args.password_file.as_deref(),
                "SPARKCENTRAL_SFTP_PASSWORD",
                "--password-file",
                "SFTP password",
            )
            .map_err(|e| SetupError(format!("{e} (or log in with a key: --identity-file PATH)")))?,
        ),
    };
    let known_hosts = match args.known_hosts.strip_prefix("~/") {
        Some(rest) => std::env::home_dir()
            .ok_or_else(|| {
                SetupError(
                    "--known-hosts: no home directory to find ~/.ssh/known_hosts in; pass --known-hosts PATH"
                        .into(),
                )
            })?
            .join(rest),
        None => PathBuf::from(&args.known_hosts),
    };
    if !known_hosts.is_file() {
        return Err(SetupError(format!(
            "--known-hosts {} does not exist: cxlake only talks to an SFTP server whose host key is known. Get the key's fingerprint from Sparkcentral, then add the server with `ssh-keyscan -p PORT HOST >> {}` (and compare the fingerprint: ssh-keygen -lf {})",
            known_hosts.display(),
            known_hosts.display(),
            known_hosts.display()
        )));
    }
    Ok(SftpConfig { target, credential, known_hosts })
}

/// The zones and folder types `--export-timezone` and `--type-folder` give.
fn tree_config(args: &SparkcentralArgs, zone: chrono_tz::Tz) -> Result<TreeConfig, SetupError> {
    let mut tree = TreeConfig::new(zone);
    for pair in &args.export_timezone {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            SetupError(format!("--export-timezone `{pair}`: write FOLDER=ZONE or UUID=ZONE"))
        })?;
        let zone =
            crate::window::parse_zone(value).map_err(|e| SetupError(format!("--export-timezone: {e}")))?;
        tree.zones.insert(key.trim().trim_matches('/').to_string(), zone);
    }
    for pair in &args.type_folder {
        let (dataset, folder) = pair.split_once('=').ok_or_else(|| {
            SetupError(format!("--type-folder `{pair}`: write DATASET=FOLDER, e.g. virtual_agent=bots"))
        })?;
        let dataset =
            super::files::EXPORT_TYPES.iter().map(|(_, d)| *d).find(|d| *d == dataset.trim()).ok_or_else(
                || {
                    let known: Vec<&str> = super::files::EXPORT_TYPES.iter().map(|(_, d)| *d).collect();
                    SetupError(format!(
                        "--type-folder `{pair}`: `{dataset}` is not a Sparkcentral dataset; valid: {}",
                        known.join(", ")
                    ))
                },
            )?;
        tree.type_folders.insert(folder.trim().trim_matches('/').to_string(), dataset);
    }
    Ok(tree)
}

fn zone() -> chrono_tz::Tz {
    EMULATOR_TIMEZONE.parse().expect("a valid zone")
}

pub struct SparkcentralPlatform;

impl Platform for SparkcentralPlatform {
    const DEMO_QUERY: &'static str =
        "-- Sparkcentral: messages per day, channel and direction (times were local, landed as UTC)\n\
         SELECT date, channel, direction, count(*) AS messages\n\
         FROM read_parquet('{lake}/sparkcentral/message/date=*/*.parquet', hive_partitioning = true)\n\
         GROUP BY ALL ORDER BY date, channel, direction;";

    const NAME: &'static str = "sparkcentral";
    const TITLE: &'static str = "Sparkcentral";
    const DESCRIPTION: &'static str = "Sparkcentral: the scheduled CSV exports on its SFTP server (one table per export type, local-time stamps)";
    const SECRETS: &'static [(&'static str, &'static str)] =
        &[("password", "SPARKCENTRAL_SFTP_PASSWORD"), ("key_passphrase", "SPARKCENTRAL_SFTP_KEY_PASSPHRASE")];
    type Args = SparkcentralArgs;
    type EmulatorArgs = SparkcentralEmulatorArgs;
    type Source = Sparkcentral;
    type Emulator = DropTree;

    fn source(args: &SparkcentralArgs) -> Result<Sparkcentral, SetupError> {
        let store = if args.source.contains("://") {
            DropStore::Sftp(SftpDrop::new(sftp_config(args)?))
        } else {
            let root = PathBuf::from(&args.source);
            if !root.is_dir() {
                return Err(SetupError(format!(
                    "--source {} is not a directory (for the SFTP server, write sftp://USER@HOST/export)",
                    root.display()
                )));
            }
            DropStore::Local(root)
        };
        let zone = args.timezone.trim().parse::<chrono_tz::Tz>().map_err(|_| {
            SetupError(format!(
                "--timezone `{}` is not an IANA time zone name (such as Europe/Brussels)",
                args.timezone
            ))
        })?;
        let settle = parse_duration(&args.settle).map_err(|e| SetupError(format!("--settle: {e}")))?;
        let recheck_after =
            parse_duration(&args.recheck_after).map_err(|e| SetupError(format!("--recheck-after: {e}")))?;
        Ok(Sparkcentral::new(store, tree_config(args, zone)?, Settling { settle, recheck_after }))
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
        let settling = Settling { settle: Duration::from_secs(60), recheck_after: Duration::ZERO };
        let source =
            Sparkcentral::new(DropStore::Local(temp.path().to_path_buf()), TreeConfig::new(zone()), settling);
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
