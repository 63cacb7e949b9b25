//! Polling an asynchronous export job: a growing interval and an overall deadline.
//!
//! Salted CX, Khoros and Loop all create an export and make the client poll it. Polling fast at
//! first keeps small exports snappy; backing off (×1.5, capped) keeps a long export from
//! hammering an API that documents itself as "low-frequency batch use".

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    pub initial_interval: Duration,
    pub max_interval: Duration,
    /// Give up on an export that is still processing after this long.
    pub deadline: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

impl PollConfig {
    /// The waits between polls: initial, ×1.5 each time, capped at `max_interval`.
    pub fn intervals(&self) -> impl Iterator<Item = Duration> {
        let (max, mut next) = (self.max_interval, self.initial_interval);
        std::iter::from_fn(move || {
            let current = next.min(max);
            next = next.mul_f64(1.5);
            Some(current)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_grow_and_cap() {
        let config = PollConfig {
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        };
        let waits: Vec<u64> = config.intervals().take(5).map(|d| d.as_millis() as u64).collect();
        assert_eq!(waits, [2000, 3000, 4500, 5000, 5000]);
    }
}
