//! Files already on disk (manual exports, archives) as a [`Source`], for `cxlake convert`: the
//! same decode, staging, commit and bookkeeping as `sync`, with no API involved.

use std::path::PathBuf;

use super::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// Every file given is one export file of `dataset` for whichever window is being run.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    pub source: String,
    pub dataset: String,
    pub files: Vec<PathBuf>,
}

impl Source for LocalFiles {
    fn name(&self) -> &str {
        &self.source
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        _window: Window,
        datasets: &[String],
        _spool: &std::path::Path,
        _journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        if datasets != [self.dataset.clone()] {
            return Err(SourceError::Local(format!("local files hold {} only", self.dataset)));
        }
        let mut fetched = Vec::with_capacity(self.files.len());
        for path in &self.files {
            // The files are the user's: read in place, never moved, changed or deleted.
            let bytes = std::fs::metadata(path)
                .map_err(|e| SourceError::Local(format!("cannot read {}: {e}", path.display())))?
                .len();
            fetched.push(FetchedFile::new(
                self.dataset.clone(),
                path.display().to_string(),
                path.clone(),
                bytes,
            ));
        }
        Ok(FetchedWindow::new(None, fetched))
    }
}
