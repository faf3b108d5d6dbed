//! Backoff policies: how long a failed task waits before its next attempt.

use std::time::Duration;

/// How the delay before a retry grows with the attempt number.
///
/// The delay is persisted as the task's `run_at`, so a retry waits in the
/// backend, not in a sleeping worker.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(100)).max(Duration::from_secs(1));
/// assert_eq!(b.delay(1), Duration::from_millis(100));
/// assert_eq!(b.delay(2), Duration::from_millis(200));
/// assert_eq!(b.delay(10), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    kind: Kind,
    base: Duration,
    factor: f64,
    max: Option<Duration>,
    jitter: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fixed,
    Linear,
    Exponential,
}

impl Backoff {
    /// The default: exponential from 1 s, doubling, at most 1 h, with jitter.
    pub const DEFAULT: Backoff = Backoff {
        kind: Kind::Exponential,
        base: Duration::from_secs(1),
        factor: 2.0,
        max: Some(Duration::from_secs(3600)),
        jitter: true,
    };

    /// The same delay before every retry.
    pub const fn fixed(delay: Duration) -> Self {
        Self { kind: Kind::Fixed, base: delay, factor: 1.0, max: None, jitter: false }
    }

    /// `step`, `2 × step`, `3 × step`, …
    pub const fn linear(step: Duration) -> Self {
        Self { kind: Kind::Linear, base: step, factor: 1.0, max: None, jitter: false }
    }

    /// `base`, `base × factor`, `base × factor²`, … (factor 2 unless set).
    pub const fn exponential(base: Duration) -> Self {
        Self { kind: Kind::Exponential, base, factor: 2.0, max: None, jitter: false }
    }

    /// The growth factor of an exponential backoff.
    pub const fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Caps the delay.
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = Some(max);
        self
    }

    /// Spreads each delay randomly over ±25 % so that tasks that failed
    /// together do not all retry together.
    pub const fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before the retry that follows failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        let raw = match self.kind {
            Kind::Fixed => self.base.as_secs_f64(),
            Kind::Linear => self.base.as_secs_f64() * f64::from(n),
            Kind::Exponential => {
                let exp = i32::try_from(n - 1).unwrap_or(i32::MAX);
                self.base.as_secs_f64() * self.factor.max(1.0).powi(exp)
            }
        };
        let cap = self.max.map_or(f64::MAX, |m| m.as_secs_f64());
        let mut secs = raw.min(cap);
        if self.jitter {
            secs *= 0.75 + 0.5 * random_unit();
            secs = secs.min(cap);
        }
        // `Duration::from_secs_f64` panics on huge or non-finite input; clamp first.
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(u64::from(u32::MAX)))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A cheap pseudo-random number in `[0, 1)`, good enough for jitter.
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_fixed_grow_as_named() {
        let l = Backoff::linear(Duration::from_secs(1)).max(Duration::from_secs(3));
        assert_eq!(l.delay(2), Duration::from_secs(2));
        assert_eq!(l.delay(5), Duration::from_secs(3));
        assert_eq!(Backoff::fixed(Duration::from_millis(7)).delay(9), Duration::from_millis(7));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let b = Backoff::fixed(Duration::from_secs(4)).jitter(true);
        for _ in 0..100 {
            let d = b.delay(1);
            assert!(d >= Duration::from_secs(3) && d <= Duration::from_secs(5), "{d:?}");
        }
    }

    #[test]
    fn huge_attempts_do_not_overflow() {
        let b = Backoff::exponential(Duration::from_secs(1)).factor(10.0);
        assert!(b.delay(u32::MAX) > Duration::from_secs(1));
    }
}
