//! Salted CX: the export API client, its emulator, and the synthetic tenant behind the emulator.

pub mod api;
pub mod client;
pub mod emulator;
pub mod platform;
pub mod synth;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use futures::future::try_join_all;

use self::api::{CreatedExport, ExportStatus};
use self::client::{ClientError, SaltedCxClient};
use super::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// What to do when an export fails or a previous run left one behind.
#[derive(Debug, Clone, Copy)]
pub struct ExportPolicy {
    /// New exports to try after one ends FAILED, before the window fails.
    pub failed_retries: u32,
    /// Wait before creating the new export: the platform's trouble may be short-lived.
    pub failed_cooldown: Duration,
    /// Adopt an export recorded by an earlier (crashed) run if it is younger than this.
    pub adopt_within: Duration,
}

impl Default for ExportPolicy {
    fn default() -> Self {
        ExportPolicy {
            failed_retries: 2,
            failed_cooldown: Duration::from_secs(60),
            adopt_within: Duration::from_secs(3600),
        }
    }
}

/// Salted CX as a [`Source`]: one async export per window, every dataset downloaded in parallel.
#[derive(Debug, Clone)]
pub struct SaltedCx {
    client: SaltedCxClient,
    /// `--contact`: export one customer profile only.
    contact: Option<String>,
    policy: ExportPolicy,
}

impl SaltedCx {
    pub fn new(client: SaltedCxClient, contact: Option<String>) -> SaltedCx {
        SaltedCx { client, contact, policy: ExportPolicy::default() }
    }

    pub fn with_policy(mut self, policy: ExportPolicy) -> SaltedCx {
        self.policy = policy;
        self
    }

    /// A COMPLETED export for the window: adopted from a previous run when still usable,
    /// otherwise created, with fresh exports after FAILED ones (bounded, after a cool-down).
    async fn completed_export<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        journal: &J,
    ) -> Result<(CreatedExport, ExportStatus), ClientError> {
        if let Some(previous) = journal.previous(window).await {
            let age = (Utc::now() - previous.created_at).to_std().unwrap_or_default();
            if age < self.policy.adopt_within {
                let created = CreatedExport {
                    status_url: SaltedCxClient::status_url_for(&previous.export_id),
                    export_id: previous.export_id,
                };
                match self.client.wait_completed(&created).await {
                    Ok(status) => {
                        tracing::info!(window = %window, export_id = %created.export_id, created_by = %previous.run_id, "Adopted the export an interrupted run created");
                        return Ok((created, status));
                    }
                    Err(e @ (ClientError::ExportFailed { .. } | ClientError::NotFound { .. })) => {
                        tracing::warn!(window = %window, error = %e, "The export an earlier run created is not usable; creating a new one");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let mut failures = 0;
        loop {
            let created = self
                .client
                .create_export(window.start(), window.end(), datasets, self.contact.as_deref())
                .await?;
            journal.record(window, &created.export_id).await;
            tracing::info!(window = %window, export_id = %created.export_id, "Export created; waiting for it to complete");
            match self.client.wait_completed(&created).await {
                Ok(status) => return Ok((created, status)),
                Err(e @ ClientError::ExportFailed { .. }) if failures < self.policy.failed_retries => {
                    failures += 1;
                    tracing::warn!(window = %window, error = %e, attempt = failures, cooldown_ms = self.policy.failed_cooldown.as_millis() as u64, "Export failed; creating a new one after a cool-down");
                    tokio::time::sleep(self.policy.failed_cooldown).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl From<ClientError> for SourceError {
    fn from(error: ClientError) -> SourceError {
        let message = error.to_string();
        match error {
            ClientError::Unauthorized => SourceError::Unauthorized(message),
            e if e.affects_whole_run() => SourceError::Rejected(message),
            ClientError::RateLimited { .. } => SourceError::RateLimited(message),
            ClientError::BadRequest { .. }
            | ClientError::NotFound { .. }
            | ClientError::ExportFailed { .. }
            | ClientError::Timeout { .. } => SourceError::Export(message),
            _ => SourceError::Transfer(message),
        }
    }
}

impl Source for SaltedCx {
    fn name(&self) -> &str {
        "saltedcx"
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let (created, status) = self.completed_export(window, datasets, journal).await?;
        let downloads = datasets.iter().map(|dataset| {
            let file_name = api::file_name(dataset).unwrap_or("unknown.csv").to_string();
            let path = spool.join(format!("{window}-{file_name}"));
            let (created, status) = (&created, status.clone());
            async move {
                let bytes = self.client.download_dataset(created, status, dataset, &path).await?;
                tracing::debug!(window = %window, dataset, bytes, "Downloaded");
                Ok::<_, ClientError>(FetchedFile { dataset: dataset.clone(), file_name, path, bytes })
            }
        });
        let files = try_join_all(downloads).await?;
        Ok(FetchedWindow { export_id: Some(created.export_id), files })
    }
}
