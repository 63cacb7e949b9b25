//! The [`Source`] every create → poll → download platform shares: one export per window, run
//! through the [`export_job`](super::export_job) lifecycle (adoption after a crash, FAILED and
//! EXPIRED exports created again, a download that finds its export gone starting over), then
//! every dataset the export offers downloaded into the spool. A platform gives only its request
//! and response mapping: the [`ExportJobApi`] calls, the file each dataset is saved as, and how a
//! dataset is downloaded. Salted CX, Khoros and Loop are this source.

use std::future::Future;
use std::path::Path;

use futures::future::try_join_all;

use super::export_job::{self, ExportJobApi, ExportPolicy};
use super::{CreationCap, ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// One platform's export API as a window source needs it, beyond the lifecycle's calls.
pub trait ExportPlatform: ExportJobApi + Send + Sync {
    /// The platform's name in the registry (`khoros`, `loop`).
    const NAME: &'static str;
    /// The datasets one export holds.
    const DATASETS: &'static [&'static str];

    /// The name a dataset's download is saved as: its extension tells the decoder the format.
    fn file_name(&self, dataset: &str) -> String;

    /// The zone whose days are the windows (`None`: UTC days).
    fn timezone(&self) -> Option<chrono_tz::Tz> {
        None
    }

    /// The API's address, for lineage ([`Source::lineage_input`]).
    fn base_url(&self) -> &url::Url;

    /// The id the window record keeps for `job`.
    fn export_id(&self, job: &Self::Job) -> String;

    /// Downloads `dataset` of a completed export into `path`; returns its size. An error the
    /// lifecycle's `is_gone` recognises (the export went away meanwhile) creates a new export.
    fn download(
        &self,
        job: &Self::Job,
        ready: &Self::Ready,
        dataset: &str,
        path: &Path,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// One cheap authenticated call, for `cxlake check`: what it proved.
    fn probe(&self) -> impl Future<Output = Result<String, SourceError>> + Send;
}

/// A platform's export API as a [`Source`].
#[derive(Debug, Clone)]
pub struct ExportSource<A> {
    api: A,
    policy: ExportPolicy,
}

impl<A> ExportSource<A> {
    pub fn new(api: A, policy: ExportPolicy) -> ExportSource<A> {
        ExportSource { api, policy }
    }
}

impl<A: ExportPlatform> Source for ExportSource<A>
where
    A::Ready: Sync,
    SourceError: From<A::Error>,
{
    fn lineage_input(&self) -> Option<(String, String)> {
        Some((super::origin(self.api.base_url()), A::NAME.to_string()))
    }

    fn name(&self) -> &str {
        A::NAME
    }

    fn timezone(&self) -> Option<chrono_tz::Tz> {
        self.api.timezone()
    }

    fn creation_cap(&self) -> Option<CreationCap> {
        self.api.creation_cap()
    }

    async fn probe(&self) -> Result<String, SourceError> {
        self.api.probe().await
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        if let Some(other) = datasets.iter().find(|d| !A::DATASETS.contains(&d.as_str())) {
            let valid: Vec<String> = A::DATASETS.iter().map(|d| format!("{}.{d}", A::NAME)).collect();
            return Err(SourceError::Rejected(format!(
                "{} has no dataset `{other}`; valid: {}",
                A::NAME,
                valid.join(", ")
            )));
        }
        let files: Vec<(String, String, std::path::PathBuf)> = datasets
            .iter()
            .map(|dataset| {
                let file_name = self.api.file_name(dataset);
                let path = spool.join(format!("{window}-{file_name}"));
                (dataset.clone(), file_name, path)
            })
            .collect();
        let download = |job: A::Job, ready: A::Ready| {
            let files = &files;
            async move {
                let downloads = files.iter().map(|(dataset, _, path)| {
                    let (job, ready) = (&job, &ready);
                    async move { self.api.download(job, ready, dataset, path).await }
                });
                try_join_all(downloads).await
            }
        };
        let (job, sizes) =
            export_job::download_completed(&self.api, &self.policy, window, datasets, journal, download)
                .await
                .map_err(SourceError::from)?;
        let fetched = files
            .into_iter()
            .zip(sizes)
            .map(|((dataset, file_name, path), bytes)| {
                tracing::debug!(window = %window, dataset = %dataset, bytes, "Downloaded");
                FetchedFile::new(dataset, file_name, path, bytes)
            })
            .collect();
        Ok(FetchedWindow::new(Some(self.api.export_id(&job)), fetched))
    }
}
