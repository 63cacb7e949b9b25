//! The conformance suite over the built-in sources: each one's [`SourceUnderTest`] (its
//! emulator, its faults, its generator's answer) and one test per property of [`properties`]
//! (object_store's conformance tests, for sources). A source joins by implementing
//! [`SourceUnderTest`] and adding one line to `conformance!` below.

use std::path::Path;

use chrono::NaiveDate;
use cxlake::schema::DatasetSchema;

use crate::common::*;

#[macro_use]
pub mod properties;

pub use properties::{SourceUnderTest, FIRST_DAY};

/// Salted CX: an async export job, CSV downloads from presigned URLs.
pub struct SaltedCxUnderTest;

impl SourceUnderTest for SaltedCxUnderTest {
    const NAME: &'static str = "saltedcx";
    type Emulator = cxlake::sources::saltedcx::emulator::Emulator;

    async fn start(faults: bool, secret: &str) -> Self::Emulator {
        use cxlake::sources::saltedcx::emulator::{Endpoint, Fault, FaultKind};
        let f = |endpoint, kind| Fault { endpoint, kind, times: 1 };
        let faults = if faults {
            vec![
                f(Endpoint::Create, FaultKind::RateLimit { seconds: 1, http_date: false }),
                f(Endpoint::Status, FaultKind::Status { code: 503 }),
                f(Endpoint::Download, FaultKind::Reset),
                f(Endpoint::Download, FaultKind::Truncate { bytes: 1500 }),
            ]
        } else {
            Vec::new()
        };
        emulator(cxlake::sources::saltedcx::emulator::EmulatorConfig {
            api_key: secret.to_string(),
            faults,
            ..emulator_config()
        })
        .await
    }

    fn env(emulator: &Self::Emulator, secret: &str) -> Vec<(String, String)> {
        vec![
            ("SALTEDCX_API_URL".into(), emulator.base_url().to_string()),
            ("SALTEDCX_API_KEY".into(), secret.to_string()),
        ]
    }

    fn fast_args() -> Vec<&'static str> {
        // Nights pass in seconds here: the lake's export creation cap (60 an hour by default)
        // would otherwise make the 60th night wait out the hour, as the first 60-night soak did.
        vec!["--poll-interval", "10ms", "--max-export-rate", "100000/1h"]
    }

    fn expected(emulator: &Self::Emulator, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        expected_rows(&emulator.config().synth, schema, day)
    }

    fn faults_injected(emulator: &Self::Emulator) -> u64 {
        emulator.stats().faults_injected
    }
}

/// Dixa: synchronous JSON exports with nested fields.
pub struct DixaUnderTest;

impl SourceUnderTest for DixaUnderTest {
    const NAME: &'static str = "dixa";
    type Emulator = cxlake::sources::dixa::emulator::DixaEmulator;

    async fn start(faults: bool, secret: &str) -> Self::Emulator {
        use cxlake::sources::dixa::emulator::{DixaEndpoint as E, DixaFault, DixaFaultKind as K};
        let f = |endpoint, kind| DixaFault { endpoint, kind, times: 1 };
        let faults = if faults {
            vec![
                f(E::Conversations, K::RateLimit { seconds: Some(1) }),
                f(E::Messages, K::Status { code: 503, retry_after: None }),
                f(E::Conversations, K::Reset { bytes: 2000 }),
                f(E::Messages, K::Truncate { bytes: 3000 }),
            ]
        } else {
            Vec::new()
        };
        crate::dixa::dixa_emulator(cxlake::sources::dixa::emulator::DixaEmulatorConfig {
            api_token: secret.to_string(),
            faults,
            ..crate::dixa::dixa_emulator_config()
        })
        .await
    }

    fn env(emulator: &Self::Emulator, secret: &str) -> Vec<(String, String)> {
        vec![
            ("DIXA_API_URL".into(), emulator.base_url().to_string()),
            ("DIXA_API_TOKEN".into(), secret.to_string()),
        ]
    }

    fn fast_args() -> Vec<&'static str> {
        vec!["--requests-per-minute", "60000"]
    }

    fn expected(emulator: &Self::Emulator, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        crate::dixa::expected_for_day(emulator.config().synth, schema, day)
    }

    fn landed(lake: &Path, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        crate::dixa::landed_rows(lake, schema, day)
    }

    fn faults_injected(emulator: &Self::Emulator) -> u64 {
        emulator.stats().faults_injected
    }
}

/// Khoros Care: an async user export, Basic auth plus a company key, JSON downloads.
pub struct KhorosUnderTest;

impl SourceUnderTest for KhorosUnderTest {
    const NAME: &'static str = "khoros";
    type Emulator = cxlake::sources::khoros::emulator::KhorosEmulator;

    async fn start(faults: bool, secret: &str) -> Self::Emulator {
        use cxlake::sources::khoros::emulator::{KhorosEndpoint as E, KhorosFault, KhorosFaultKind as K};
        let f = |endpoint, kind| KhorosFault { endpoint, kind, times: 1 };
        let faults = if faults {
            vec![
                f(E::Create, K::RateLimit { seconds: 1 }),
                f(E::Status, K::Status { code: 503, retry_after: None }),
                f(E::Download, K::Reset { bytes: 1500 }),
                f(E::Download, K::Truncate { bytes: 700 }),
                f(E::Status, K::FailExport),
            ]
        } else {
            Vec::new()
        };
        crate::khoros::khoros_emulator(cxlake::sources::khoros::emulator::KhorosEmulatorConfig {
            password: secret.to_string(),
            company_key: format!("{secret}-company-key"),
            faults,
            ..crate::khoros::khoros_emulator_config()
        })
        .await
    }

    fn env(emulator: &Self::Emulator, secret: &str) -> Vec<(String, String)> {
        vec![
            ("KHOROS_API_URL".into(), emulator.base_url().to_string()),
            ("KHOROS_USERNAME".into(), emulator.config().username.clone()),
            ("KHOROS_PASSWORD".into(), secret.to_string()),
            ("KHOROS_COMPANY_KEY".into(), format!("{secret}-company-key")),
        ]
    }

    fn fast_args() -> Vec<&'static str> {
        vec!["--poll-interval", "10ms", "--failed-export-cooldown", "10ms"]
    }

    fn expected(emulator: &Self::Emulator, _schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        crate::khoros::expected_for_day(emulator.config().synth, day, true)
    }

    fn faults_injected(emulator: &Self::Emulator) -> u64 {
        emulator.stats().faults_injected
    }
}

/// Loop: an async report export, downloads from signed expiring URLs, XLSX here (JSON elsewhere).
pub struct LoopUnderTest;

impl SourceUnderTest for LoopUnderTest {
    const NAME: &'static str = "loop";
    type Emulator = cxlake::sources::r#loop::emulator::LoopEmulator;

    async fn start(faults: bool, secret: &str) -> Self::Emulator {
        use cxlake::sources::r#loop::emulator::{LoopEndpoint as E, LoopFault, LoopFaultKind as K};
        let f = |endpoint, kind| LoopFault { endpoint, kind, times: 1 };
        let faults = if faults {
            vec![
                f(E::Create, K::RateLimit { seconds: 1 }),
                f(E::Status, K::Status { code: 503, retry_after: Some(1) }),
                f(E::Download, K::Reset { bytes: 3000 }),
                f(E::Download, K::Truncate { bytes: 900 }),
                f(E::Download, K::ExpireUrl),
            ]
        } else {
            Vec::new()
        };
        crate::loop_report::loop_emulator(cxlake::sources::r#loop::emulator::LoopEmulatorConfig {
            api_token: secret.to_string(),
            faults,
            ..crate::loop_report::loop_emulator_config()
        })
        .await
    }

    fn env(emulator: &Self::Emulator, secret: &str) -> Vec<(String, String)> {
        vec![
            ("LOOP_API_URL".into(), emulator.base_url().to_string()),
            ("LOOP_API_TOKEN".into(), secret.to_string()),
        ]
    }

    fn fast_args() -> Vec<&'static str> {
        vec!["--poll-interval", "10ms", "--failed-export-cooldown", "10ms", "--loop-format", "xlsx"]
    }

    fn expected(emulator: &Self::Emulator, _schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        crate::loop_report::expected_for_day(emulator.config().synth, day, true)
    }

    fn faults_injected(emulator: &Self::Emulator) -> u64 {
        emulator.stats().faults_injected
    }
}

/// Sparkcentral: a drop tree of CSV files on a real SFTP server (OpenSSH's sshd), local times.
/// Its faults are what a drop folder holds besides finished exports — a name that is not an
/// export, a file in the wrong folder, a half-uploaded `.part`, a file replaced by a newer one —
/// and an interrupted transfer: the SSH connection breaks off in the middle (a proxy in front
/// of sshd cuts the first one).
/// Its credential is the SFTP user's password, which the server fixes for the whole test run.
pub struct SparkcentralUnderTest;

pub struct DropTreeUnderTest {
    /// The tree, removed when the test ends.
    _dir: tempfile::TempDir,
    url: String,
    /// Files in the tree that are not exports to load: each must be left where it is.
    junk: Vec<std::path::PathBuf>,
    /// With faults: the proxy that breaks the first connection off, and the known_hosts file
    /// naming sshd's key at the proxy's address.
    proxy: Option<(CuttingProxy, tempfile::TempDir)>,
}

impl SourceUnderTest for SparkcentralUnderTest {
    const NAME: &'static str = "sparkcentral";
    type Emulator = DropTreeUnderTest;

    async fn start(faults: bool, _secret: &str) -> Self::Emulator {
        use cxlake::sources::sparkcentral::synth::{self, SparkcentralSynthConfig};
        let (dir, url) = SftpServer::from_env().tree();
        let zone = "Europe/Brussels".parse().unwrap();
        synth::write_drop_tree(SparkcentralSynthConfig::default(), dir.path(), date(FIRST_DAY), 3, zone)
            .unwrap();
        // Always there: the half-uploaded `.part` and the replaced (older) team file.
        let files = files_under(dir.path());
        let mut junk: Vec<std::path::PathBuf> = files
            .iter()
            .filter(|f| f.ends_with(".csv.part") || f.ends_with("-old.csv"))
            .map(|f| dir.path().join(f))
            .collect();
        assert_eq!(junk.len(), 2, "{files:?}");
        if faults {
            let not_an_export = dir.path().join("message/notes.csv");
            std::fs::write(&not_an_export, "not an export").unwrap();
            // A name that names no export type, in a folder configured for none.
            std::fs::create_dir_all(dir.path().join("misc")).unwrap();
            let untyped = dir.path().join("misc/5512_01032024000000_02032024000000_x.csv");
            std::fs::write(&untyped, "Team ID\r\n").unwrap();
            junk.extend([not_an_export, untyped]);
        }
        let server = SftpServer::from_env();
        let (url, proxy) = if faults {
            // Past the handshake and the first listings: inside a transfer.
            let proxy = cutting_proxy(server.port.parse().unwrap(), 24 << 10).await;
            let known = tempfile::tempdir().unwrap();
            let line = std::fs::read_to_string(&server.known_hosts).unwrap();
            let key = line.split_once(' ').unwrap().1;
            std::fs::write(known.path().join("known_hosts"), format!("[127.0.0.1]:{} {key}", proxy.port))
                .unwrap();
            let url =
                url.replace(&format!("127.0.0.1:{}/", server.port), &format!("127.0.0.1:{}/", proxy.port));
            (url, Some((proxy, known)))
        } else {
            (url, None)
        };
        DropTreeUnderTest { _dir: dir, url, junk, proxy }
    }

    fn env(emulator: &Self::Emulator, secret: &str) -> Vec<(String, String)> {
        let mut env = SftpServer::from_env().env(&emulator.url);
        env.retain(|(name, _)| name != "SPARKCENTRAL_SFTP_PASSWORD");
        env.push(("SPARKCENTRAL_SFTP_PASSWORD".into(), secret.to_string()));
        if let Some((_, known)) = &emulator.proxy {
            env.retain(|(name, _)| name != "SPARKCENTRAL_SFTP_KNOWN_HOSTS");
            let path = known.path().join("known_hosts").to_str().unwrap().to_string();
            env.push(("SPARKCENTRAL_SFTP_KNOWN_HOSTS".into(), path));
        }
        env
    }

    fn secret() -> String {
        SftpServer::from_env().password
    }

    fn canary() -> String {
        SftpServer::from_env().password
    }

    fn fast_args() -> Vec<&'static str> {
        vec!["--settle", "0s", "--recheck-after", "0s"]
    }

    fn convert_timezone() -> Option<&'static str> {
        Some("Europe/Brussels")
    }

    fn expected(_emulator: &Self::Emulator, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        let zone = "Europe/Brussels".parse().unwrap();
        crate::sparkcentral::expected_named(&schema.dataset, day, date(FIRST_DAY), zone)
            .into_iter()
            .map(|row| {
                let cell = |name: &str| row.iter().find(|(c, _)| c == name).map(|(_, cell)| cell.clone());
                schema.columns.iter().map(|c| cell(&c.name).unwrap_or(Cell::Null)).collect()
            })
            .collect()
    }

    /// The junk still in the tree after the syncs (a source that moved or deleted a file it was
    /// given would lose it), and the connection the proxy broke off.
    fn faults_injected(emulator: &Self::Emulator) -> u64 {
        let cuts = emulator
            .proxy
            .as_ref()
            .map_or(0, |(proxy, _)| proxy.cuts.load(std::sync::atomic::Ordering::SeqCst));
        assert!(emulator.proxy.is_none() || cuts == 1, "the transfer was interrupted once ({cuts})");
        emulator.junk.iter().filter(|path| path.is_file()).count() as u64 + cuts
    }
}

/// One test per property for `$source`.
macro_rules! property_tests {
    ($source:ty ; $($property:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $property() {
            super::properties::$property::<$source>().await
        }
    )*};
}

/// One module of checks per registered source: adding a source is one line here.
macro_rules! conformance {
    ($($module:ident => $source:ty),* $(,)?) => {$(
        mod $module {
            use super::*;
            with_properties!(property_tests! { $source });
        }
    )*};
}

conformance! {
    saltedcx => SaltedCxUnderTest,
    dixa => DixaUnderTest,
    khoros => KhorosUnderTest,
    r#loop => LoopUnderTest,
    sparkcentral => SparkcentralUnderTest,
}

#[test]
fn every_registered_source_is_in_the_suite() {
    assert_eq!(
        cxlake::cli::source_names(),
        [
            SaltedCxUnderTest::NAME,
            DixaUnderTest::NAME,
            KhorosUnderTest::NAME,
            LoopUnderTest::NAME,
            SparkcentralUnderTest::NAME
        ]
    );
}
