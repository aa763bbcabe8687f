//! When to ask again: renewal at about 70% of the remaining lifetime, and
//! capped exponential backoff after failures. Pure: no I/O.

use std::time::{Duration, SystemTime};

/// The fraction of the remaining lifetime after which a certificate is
/// renewed, before jitter.
pub const RENEW_AT: f64 = 0.7;
/// Jitter around [`RENEW_AT`] (±), so proxies started together spread out.
pub const JITTER: f64 = 0.05;
/// First delay after a failure.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between failed attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long to wait before renewing a certificate valid until `not_after`,
/// received at `now`; `jitter` in [-1, 1] moves it by up to ±[`JITTER`].
pub fn renew_in(not_after: SystemTime, now: SystemTime, jitter: f64) -> Duration {
    let remaining = not_after.duration_since(now).unwrap_or_default();
    let fraction = RENEW_AT + JITTER * jitter.clamp(-1.0, 1.0);
    remaining.mul_f64(fraction)
}

/// The delay after `failures` consecutive failures (1 or more), capped at
/// [`MAX_BACKOFF`] and, while a certificate is held, at its remaining
/// lifetime so retries speed up as expiry nears.
pub fn backoff(failures: u32, remaining: Option<Duration>) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let delay = MIN_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    match remaining {
        Some(remaining) => delay.min((remaining / 4).max(MIN_BACKOFF)),
        None => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_seventy_percent_with_bounded_jitter() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(24 * 3600);
        let at = |j| renew_in(now + day, now, j);
        assert_eq!(at(0.0), day.mul_f64(0.7));
        assert_eq!(at(1.0), day.mul_f64(0.75));
        assert_eq!(at(-1.0), day.mul_f64(0.65));
        assert_eq!(at(7.0), at(1.0), "jitter is clamped");
        assert_eq!(
            renew_in(now, now + day, 0.0),
            Duration::ZERO,
            "expired: at once"
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_speeds_up_near_expiry() {
        assert_eq!(backoff(1, None), MIN_BACKOFF);
        assert_eq!(backoff(2, None), MIN_BACKOFF * 2);
        assert_eq!(backoff(3, None), MIN_BACKOFF * 4);
        assert_eq!(backoff(50, None), MAX_BACKOFF);
        assert_eq!(
            backoff(50, Some(Duration::from_secs(20))),
            Duration::from_secs(5)
        );
        assert_eq!(backoff(50, Some(Duration::ZERO)), MIN_BACKOFF);
    }
}
