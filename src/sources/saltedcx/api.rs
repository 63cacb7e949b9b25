//! The Salted CX export API's wire format, shared by the client and the emulator so the two
//! cannot drift apart. Field names follow the document (`exportId`, `statusUrl`, `downloadUrls`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every dataset the API exports, in the document's order.
pub const DATASETS: [&str; 5] = ["engagement", "customer", "turn", "review", "agent"];

/// The file name the platform gives each dataset's CSV.
pub fn file_name(dataset: &str) -> Option<&'static str> {
    Some(match dataset {
        "engagement" => "engagements.csv",
        "customer" => "customers.csv",
        "turn" => "turns.csv",
        "review" => "reviews.csv",
        "agent" => "agents.csv",
        _ => return None,
    })
}

/// Response of `POST /api/v1/export`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedExport {
    pub export_id: String,
    /// Relative to the API base, without a leading slash: `api/v1/export/<id>/status`.
    pub status_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportState {
    Processing,
    Completed,
    Failed,
}

/// Response of `GET /api/v1/export/{id}/status`, and each element of the history.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportStatus {
    pub export_id: String,
    pub status: ExportState,
    #[serde(default)]
    pub download_urls: BTreeMap<String, String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Presigned URLs are credentials: Debug prints the datasets, never the URLs.
impl std::fmt::Debug for ExportStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportStatus")
            .field("export_id", &self.export_id)
            .field("status", &self.status)
            .field("download_urls", &self.download_urls.keys().collect::<Vec<_>>())
            .field("error", &self.error)
            .finish()
    }
}

/// Body of a 400 answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The documented 400 codes, with what the user should change.
pub fn hint_for_code(code: &str) -> &'static str {
    match code {
        "INVALID_DATE_RANGE" => "`from` must be before `to` and at most 24 h apart; cxlake asks for whole UTC days, so check the system clock",
        "INVALID_INCLUDE" => "--datasets names a dataset the API does not know; valid: engagement, customer, turn, review, agent",
        "EMPTY_INCLUDE" => "--datasets is empty; leave it out to export every dataset",
        "CONTACT_NOT_FOUND" => "--contact matched no contact; check the email address or phone number",
        "NO_CUSTOMERS_FOR_CONTACT" => "--contact exists but has no customer records, so there is nothing to export for it",
        _ => "an error code this version of cxlake does not know; see the message",
    }
}
