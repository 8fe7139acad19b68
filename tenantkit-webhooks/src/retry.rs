//! When to try a failed delivery again: after 1 s, 5 s, 30 s, 5 min and
//! 1 h (each ±10 %), then never: the delivery is dead-lettered, visible and
//! replayable. A receiver's `Retry-After` (on 429/503, capped at one hour)
//! pushes the next attempt later, never earlier.
//!
//! ```
//! use std::time::Duration;
//! use tenantkit_webhooks::retry::{Next, after_failure};
//!
//! assert_eq!(after_failure(1, None, 0.0), Next::RetryIn(Duration::from_secs(1)));
//! assert_eq!(after_failure(5, None, 0.0), Next::RetryIn(Duration::from_secs(3600)));
//! assert_eq!(after_failure(6, None, 0.0), Next::DeadLetter);
//! ```

use std::time::Duration;

use rand::Rng;

use crate::transport::MAX_RETRY_AFTER;

/// The waits after the first, second, ... fifth failed attempt.
pub const SCHEDULE: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(5 * 60),
    Duration::from_secs(60 * 60),
];

/// The most a wait is moved either way, as a fraction of it.
pub const JITTER: f64 = 0.10;

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    RetryIn(Duration),
    /// Every retry failed: dead-letter it.
    DeadLetter,
}

/// What follows the `attempts`-th failed attempt (1 for the first), with
/// `jitter` in `[-JITTER, JITTER]` (see [`random_jitter`]) and the
/// receiver's `Retry-After`, if it sent one.
pub fn after_failure(attempts: u32, retry_after: Option<Duration>, jitter: f64) -> Next {
    let Some(wait) = attempts
        .checked_sub(1)
        .and_then(|i| SCHEDULE.get(i as usize))
    else {
        return Next::DeadLetter;
    };
    let jitter = jitter.clamp(-JITTER, JITTER);
    let wait = wait.mul_f64(1.0 + jitter);
    let asked = retry_after.map_or(Duration::ZERO, |r| r.min(MAX_RETRY_AFTER));
    Next::RetryIn(wait.max(asked))
}

/// A jitter for [`after_failure`], uniform in `[-JITTER, JITTER]`, so that
/// deliveries failing together do not all come back together.
pub fn random_jitter() -> f64 {
    rand::rng().random_range(-JITTER..=JITTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_then_the_dead_letter() {
        let waits: Vec<Next> = (1..=6).map(|n| after_failure(n, None, 0.0)).collect();
        assert_eq!(
            waits,
            [
                Next::RetryIn(Duration::from_secs(1)),
                Next::RetryIn(Duration::from_secs(5)),
                Next::RetryIn(Duration::from_secs(30)),
                Next::RetryIn(Duration::from_secs(300)),
                Next::RetryIn(Duration::from_secs(3600)),
                Next::DeadLetter,
            ]
        );
        assert_eq!(
            after_failure(0, None, 0.0),
            Next::DeadLetter,
            "no attempt, nothing to schedule"
        );
        assert_eq!(after_failure(u32::MAX, None, 0.0), Next::DeadLetter);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(
            after_failure(3, None, 0.1),
            Next::RetryIn(Duration::from_secs(33))
        );
        assert_eq!(
            after_failure(3, None, -0.1),
            Next::RetryIn(Duration::from_secs(27))
        );
        assert_eq!(
            after_failure(3, None, 5.0),
            Next::RetryIn(Duration::from_secs(33)),
            "clamped"
        );
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((-JITTER..=JITTER).contains(&j));
        }
    }

    #[test]
    fn retry_after_only_ever_delays_and_is_capped() {
        let asked = |secs| Some(Duration::from_secs(secs));
        assert_eq!(
            after_failure(1, asked(120), 0.0),
            Next::RetryIn(Duration::from_secs(120))
        );
        assert_eq!(
            after_failure(4, asked(2), 0.0),
            Next::RetryIn(Duration::from_secs(300))
        );
        assert_eq!(
            after_failure(1, asked(86_400), 0.0),
            Next::RetryIn(MAX_RETRY_AFTER)
        );
        assert_eq!(after_failure(6, asked(1), 0.0), Next::DeadLetter);
    }
}
