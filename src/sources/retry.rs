//! When to retry an HTTP request, and how long to wait — decided apart from the transport
//! (Vector's `RetryLogic`, object_store's `RetryConfig`/`BackoffConfig`).
//!
//! - Any error status that carries `Retry-After` (429, 503, or another): wait exactly as the server
//!   says (in seconds or as an HTTP-date), unless that is longer than `max_retry_wait`: then the
//!   request fails as "rate-limited, retry later". The header wins over our own backoff.
//! - 429 without `Retry-After`: exponential backoff from `rate_limit_floor` (or the platform's
//!   pacing interval, if longer), so a platform that does not say how long is not hammered.
//! - 500/502/503/504, connection failures, resets and timeouts: jittered exponential backoff.
//! - Everything else (400, 401, 403, 404, …) is an answer, never retried.
//!
//! Attempts are bounded, so a dead API fails a window in minutes, not hours.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;

use crate::units::parse_retry_after;

#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// Tries per request, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a longer one fails the request as rate-limited.
    pub max_retry_wait: Duration,
    /// Shortest wait after a 429 that names no wait.
    pub rate_limit_floor: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(300),
            rate_limit_floor: Duration::from_secs(1),
        }
    }
}

/// What to do about one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not retriable: the answer stands.
    GiveUp,
    /// Transient: back off and try again.
    Backoff,
    /// The server named the wait (`Retry-After`).
    WaitFor(Duration),
    /// Rate-limited without a named wait: back off from the rate-limit floor.
    RateBackoff,
    /// The server asked for a longer wait than we accept.
    RateLimited(Duration),
}

impl RetryConfig {
    /// Classifies an HTTP status; `retry_after` is the raw header value, if any.
    pub fn for_status(&self, status: StatusCode, retry_after: Option<&str>, now: DateTime<Utc>) -> Decision {
        let named = retry_after.and_then(|v| parse_retry_after(v, now));
        match (status, named) {
            (status, Some(wait)) if status.is_client_error() || status.is_server_error() => {
                if wait > self.max_retry_wait {
                    Decision::RateLimited(wait)
                } else {
                    Decision::WaitFor(wait)
                }
            }
            (StatusCode::TOO_MANY_REQUESTS, _) => Decision::RateBackoff,
            (
                StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT,
                _,
            ) => Decision::Backoff,
            _ => Decision::GiveUp,
        }
    }

    /// The backoff before attempt `attempt + 1` (1-based `attempt`): exponential, capped, with
    /// "full jitter" in its upper half so that many clients do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.initial_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exponential.min(self.max_backoff);
        let jitter = jitter_fraction();
        capped.mul_f64(0.5 + 0.5 * jitter)
    }
}

/// A value in [0, 1) that differs between calls; good enough for jitter, no RNG crate needed.
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_retry_after_wins_on_every_status_that_carries_it() {
        let config = RetryConfig::default();
        let decide =
            |s: u16, after: Option<&str>| config.for_status(StatusCode::from_u16(s).unwrap(), after, now());
        for s in [429, 503, 500, 502, 504, 408, 403] {
            assert_eq!(decide(s, Some("1")), Decision::WaitFor(Duration::from_secs(1)), "{s}");
            assert_eq!(
                decide(s, Some("Wed, 21 Oct 2015 07:27:07 GMT")),
                Decision::WaitFor(Duration::from_secs(7)),
                "{s}"
            );
        }
        assert_eq!(decide(503, Some("3600")), Decision::RateLimited(Duration::from_secs(3600)));
        assert_eq!(decide(429, None), Decision::RateBackoff);
        assert_eq!(decide(429, Some("soon")), Decision::RateBackoff, "an unreadable header names no wait");
        assert_eq!(decide(200, Some("5")), Decision::GiveUp, "a success is an answer");
    }

    #[test]
    fn only_rate_limits_and_server_errors_are_retried() {
        let config = RetryConfig::default();
        let decide =
            |s: u16, after: Option<&str>| config.for_status(StatusCode::from_u16(s).unwrap(), after, now());
        assert_eq!(decide(429, Some("3")), Decision::WaitFor(Duration::from_secs(3)));
        assert_eq!(decide(429, Some("3600")), Decision::RateLimited(Duration::from_secs(3600)));
        for s in [500, 502, 503, 504] {
            assert_eq!(decide(s, None), Decision::Backoff, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 501] {
            assert_eq!(decide(s, None), Decision::GiveUp, "{s}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let config = RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryConfig::default()
        };
        for attempt in 1..=10 {
            let wait = config.backoff(attempt);
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_millis(1000));
            assert!(wait <= ceiling && wait >= ceiling / 2, "attempt {attempt}: {wait:?}");
        }
    }
}
