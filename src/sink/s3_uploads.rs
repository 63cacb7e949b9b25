//! Incomplete S3 multipart uploads left by killed runs, found and aborted.
//!
//! Large Parquet files go to S3 as multipart uploads. A run that is killed mid-upload leaves the
//! upload open: invisible to readers, but its parts are stored (and billed) until aborted.
//! `object_store` can abort an upload but cannot list them, so this module sends the one
//! request it lacks — `GET /<bucket>?uploads&prefix=…` (ListMultipartUploads), signed with AWS
//! Signature V4 using the store's own credential provider — and the staging sweep
//! (`lease::sweep_dead_staging`) aborts the uploads under `_cxlake/staging/` of runs no longer
//! present, started before it began.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::aws::AmazonS3;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use sha2::{Digest, Sha256};

use crate::schema::pii::hmac_sha256;

/// An incomplete multipart upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub id: String,
    /// When it was started, as the store reports it.
    pub initiated: Option<DateTime<Utc>>,
}

/// What is needed to address the bucket directly.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    pub store: Arc<AmazonS3>,
    pub bucket: String,
    pub region: String,
    /// `AWS_ENDPOINT_URL` for S3-compatible stores; AWS itself otherwise.
    pub endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadsError {
    #[error("listing multipart uploads: {0}")]
    Request(String),
}

/// RFC 3986 encoding as SigV4 wants it (`~` kept, space as `%20`).
fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text of every `<tag>…</tag>` in `xml`, in order (S3 escapes `&<>` in text).
fn tag_values<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        values.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    values
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

impl S3Bucket {
    fn base(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        }
    }

    /// Every incomplete multipart upload whose key starts with `prefix`.
    pub async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<Upload>, UploadsError> {
        let error = |e: String| UploadsError::Request(e);
        let credential = object_store::CredentialProvider::get_credential(self.store.credentials().as_ref())
            .await
            .map_err(|e| error(e.to_string()))?;
        let base = url::Url::parse(&self.base()).map_err(|e| error(e.to_string()))?;
        let host = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_string(),
        };
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| error(e.to_string()))?;
        let mut uploads = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query: Vec<(String, String)> =
                vec![("prefix".into(), prefix.into()), ("uploads".into(), String::new())];
            if let Some((key, id)) = &markers {
                query.push(("key-marker".into(), key.clone()));
                query.push(("upload-id-marker".into(), id.clone()));
            }
            query.sort();
            let canonical_query: String = query
                .iter()
                .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            let now = Utc::now();
            let (amz_date, day) =
                (now.format("%Y%m%dT%H%M%SZ").to_string(), now.format("%Y%m%d").to_string());
            let payload_hash = hex::encode(Sha256::digest(b""));
            let path = format!("{}/{}", base.path().trim_end_matches('/'), uri_encode(&self.bucket));
            let mut headers = vec![
                ("host".to_string(), host.clone()),
                ("x-amz-content-sha256".to_string(), payload_hash.clone()),
                ("x-amz-date".to_string(), amz_date.clone()),
            ];
            if let Some(token) = &credential.token {
                headers.push(("x-amz-security-token".to_string(), token.clone()));
            }
            headers.sort();
            let signed_headers = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
            let canonical_headers: String =
                headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
            let canonical_request = format!(
                "GET\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
            );
            let scope = format!("{day}/{}/s3/aws4_request", self.region);
            let to_sign = format!(
                "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
                hex::encode(Sha256::digest(canonical_request.as_bytes()))
            );
            let mut key = hmac_sha256(format!("AWS4{}", credential.secret_key).as_bytes(), day.as_bytes());
            for part in [self.region.as_str(), "s3", "aws4_request"] {
                key = hmac_sha256(&key, part.as_bytes());
            }
            let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
            let authorization = format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                credential.key_id
            );
            let url = format!("{}://{host}{path}?{canonical_query}", base.scheme());
            let mut request = client.get(url).header("authorization", authorization);
            for (name, value) in headers.iter().filter(|(k, _)| k != "host") {
                request = request.header(name.as_str(), value.as_str());
            }
            let response = request.send().await.map_err(|e| error(e.without_url().to_string()))?;
            let status = response.status();
            let body = response.text().await.map_err(|e| error(e.without_url().to_string()))?;
            if !status.is_success() {
                let code = tag_values(&body, "Code").first().map(|c| c.to_string()).unwrap_or_default();
                return Err(error(format!("HTTP {} {code}", status.as_u16())));
            }
            for upload in tag_values(&body, "Upload") {
                if let (Some(key), Some(id)) =
                    (tag_values(upload, "Key").first(), tag_values(upload, "UploadId").first())
                {
                    let initiated = tag_values(upload, "Initiated")
                        .first()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc));
                    uploads.push(Upload { key: unescape(key), id: unescape(id), initiated });
                }
            }
            let truncated = tag_values(&body, "IsTruncated").first() == Some(&"true");
            let next_key = tag_values(&body, "NextKeyMarker");
            let next_id = tag_values(&body, "NextUploadIdMarker");
            match (truncated, next_key.first(), next_id.first()) {
                (true, Some(key), Some(id)) => markers = Some((unescape(key), unescape(id))),
                _ => break,
            }
        }
        Ok(uploads)
    }

    /// Aborts one incomplete upload.
    pub async fn abort(&self, upload: &Upload) -> Result<(), object_store::Error> {
        let path = Path::from(upload.key.as_str());
        let result = self.store.abort_multipart(&path, &upload.id.clone()).await;
        if let Err(e) = &result {
            tracing::warn!(key = %upload.key, error = %e, "Could not abort an abandoned multipart upload");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn sigv4_signing_key_matches_the_aws_example() {
        // From the AWS Signature V4 documentation ("Examples of how to derive a signing key").
        let mut key = hmac_sha256(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        for part in ["us-east-1", "iam", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    #[test]
    fn upload_listing_xml_is_read() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>a/b&amp;c.parquet</Key><UploadId>id-1</UploadId></Upload><Upload><Key>x</Key><UploadId>id-2</UploadId></Upload></ListMultipartUploadsResult>";
        let uploads: Vec<_> = tag_values(xml, "Upload")
            .iter()
            .map(|u| (unescape(tag_values(u, "Key")[0]), tag_values(u, "UploadId")[0].to_string()))
            .collect();
        assert_eq!(uploads, [("a/b&c.parquet".to_string(), "id-1".to_string()), ("x".into(), "id-2".into())]);
        assert_eq!(uri_encode("a b/~"), "a%20b%2F~");
    }
}
