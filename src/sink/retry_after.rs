//! The S3 client's HTTP connection, made to honour `Retry-After`. object_store retries a 503
//! SlowDown, a 500 or a 429 with its own exponential backoff (from 100 ms) and never reads the
//! header; a store or a gateway in front of it that says how long to wait is then asked again
//! too soon, and the retries run out while it is still shedding load. This layer holds an answer
//! that carries `Retry-After` for as long as it says (capped) before object_store sees it, so its
//! next attempt comes no sooner than the store asked — the etiquette the platforms' clients keep
//! (`sources::retry`).

use std::time::Duration;

use async_trait::async_trait;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::ClientOptions;

/// The longest wait honoured: a longer `Retry-After` is waited this long, and object_store's
/// retry budget (attempts, and its three-minute timeout) decides the rest.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Builds object_store's own reqwest client, behind [`RetryAfter`].
#[derive(Debug, Default)]
pub struct RetryAfterConnector {
    inner: ReqwestConnector,
}

impl HttpConnector for RetryAfterConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(RetryAfter { inner: self.inner.connect(options)? }))
    }
}

/// Waits out an error answer's `Retry-After` before handing it on.
#[derive(Debug)]
struct RetryAfter {
    inner: HttpClient,
}

#[async_trait]
impl HttpService for RetryAfter {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let response = self.inner.execute(request).await?;
        if let Some(wait) = asked_wait(&response) {
            tracing::debug!(%method, %path, status = response.status().as_u16(), wait_ms = wait.as_millis() as u64,
                "The store asked to wait (Retry-After) before the next attempt");
            tokio::time::sleep(wait).await;
        }
        Ok(response)
    }
}

/// The wait an error answer asks for, at most [`MAX_WAIT`]; none for a success.
fn asked_wait(response: &HttpResponse) -> Option<Duration> {
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return None;
    }
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    crate::units::parse_retry_after(value, chrono::Utc::now()).map(|wait| wait.min(MAX_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<&str>) -> HttpResponse {
        let mut builder = axum::http::Response::builder().status(status);
        if let Some(value) = retry_after {
            builder = builder.header("Retry-After", value);
        }
        builder.body(object_store::client::HttpResponseBody::from(String::new())).unwrap()
    }

    #[test]
    fn an_error_answer_is_held_for_what_it_asks_and_no_longer_than_the_cap() {
        assert_eq!(asked_wait(&answer(503, Some("2"))), Some(Duration::from_secs(2)));
        assert_eq!(asked_wait(&answer(429, Some("1"))), Some(Duration::from_secs(1)));
        assert_eq!(asked_wait(&answer(500, Some("3600"))), Some(MAX_WAIT));
        assert_eq!(asked_wait(&answer(503, None)), None);
        assert_eq!(asked_wait(&answer(503, Some("soon"))), None);
        assert_eq!(asked_wait(&answer(200, Some("5"))), None);
    }
}
