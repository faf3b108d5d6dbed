//! [`Tuning`]: the settings every backend has, as one value.

use std::time::Duration;

use crate::time::Timestamp;

/// How a backend paces its workers and how long it keeps finished work.
///
/// Every backend has one, set on its builder with
/// `.tuning(|t| t.orphan_after(…))` starting from the backend's own
/// defaults, and read by the runtime through
/// [`Backend::tuning`](super::Backend::tuning). Being one value, it is
/// forwarded whole by wrappers: a setting cannot be dropped on the way.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::Tuning;
///
/// let tuning = Tuning::new().orphan_after(Duration::from_secs(60)).retention(Duration::from_secs(3600));
/// assert_eq!(tuning.orphan_after, Duration::from_secs(60));
/// assert_eq!(tuning.poll_interval, Duration::from_secs(1)); // untouched: the default
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuning {
    /// How long a worker may go without a heartbeat before its running
    /// tasks are put back (30 s). Keep it several heartbeat intervals long:
    /// a worker refuses to start with a heartbeat that is not shorter.
    pub orphan_after: Duration,
    /// The longest an idle worker waits before claiming again: how soon it
    /// sees tasks that no wake-up announced (1 s; each backend sets its own
    /// default).
    pub poll_interval: Duration,
    /// How long `done` tasks (with their results) and finished workflow
    /// runs are kept (24 h; `Duration::MAX` keeps them).
    pub retention: Duration,
    /// How many claims one worker keeps in flight (1). A backend whose claim
    /// is a network round trip sets more, so the server stays busy while
    /// earlier claims' tasks run; the worker caps it by its concurrency (one
    /// claim per 4 slots).
    pub parallel_claims: usize,
    /// How many claimed tasks a worker may hold beyond its running ones,
    /// waiting for a free slot ([`Buffer::None`]); the worker only uses it
    /// while runs are quick (see `WorkerBuilder::buffer`).
    pub buffer: Buffer,
    /// The largest encoded arguments (or workflow input) an enqueue
    /// accepts, in bytes (16 MiB): a larger one is an error and nothing is
    /// written. A run whose encoded output is larger goes `dead` saying so.
    pub max_payload: usize,
    /// The clock this process reads for the times it stores (`run_at`,
    /// `created_at`, …): the system's, or one set off by a fixed amount to
    /// test clock skew. Liveness (heartbeats and orphan rescue) is judged by
    /// the store's own clock where it has one.
    pub clock: Clock,
}

/// The clock a backend reads: the system clock, possibly set off by a fixed
/// amount (for tests of hosts whose clocks disagree).
///
/// # Examples
///
/// ```
/// use errand_runtime::backend::Clock;
///
/// let ahead = Clock::system().skewed(60_000);
/// assert!(ahead.now().as_millis() - Clock::system().now().as_millis() >= 59_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Self {
        Self { offset_ms: 0 }
    }

    /// This clock set off by `offset_ms` milliseconds (ahead when positive).
    #[must_use]
    pub const fn skewed(self, offset_ms: i64) -> Self {
        Self { offset_ms: self.offset_ms.saturating_add(offset_ms) }
    }

    /// The current time by this clock.
    pub fn now(&self) -> Timestamp {
        Timestamp(Timestamp::now().as_millis().saturating_add(self.offset_ms))
    }
}

/// How many claimed tasks a worker may hold waiting for a slot, by its
/// concurrency; see [`Tuning::buffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Buffer {
    /// None: a claim takes only as many tasks as there are free slots
    /// (backends whose claim costs no round trip).
    None,
    /// As many as the worker's concurrency.
    Concurrency,
    /// Room for this many tasks in all, running and waiting: `room -
    /// concurrency`, and at least the concurrency.
    Room(usize),
}

impl Buffer {
    /// The buffer of a worker of `concurrency`.
    pub const fn size(self, concurrency: usize) -> usize {
        match self {
            Buffer::None => 0,
            Buffer::Concurrency => concurrency,
            Buffer::Room(room) => {
                let rest = room.saturating_sub(concurrency);
                if rest > concurrency { rest } else { concurrency }
            }
        }
    }
}

impl Tuning {
    /// The defaults: rescue after 30 s, poll every second, keep finished
    /// work 24 h, one claim at a time, no buffer.
    pub const fn new() -> Self {
        Self {
            orphan_after: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(24 * 60 * 60),
            parallel_claims: 1,
            buffer: Buffer::None,
            max_payload: 16 * 1024 * 1024,
            clock: Clock::system(),
        }
    }

    /// Sets [`orphan_after`](Self::orphan_after).
    #[must_use]
    pub const fn orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after;
        self
    }

    /// Sets [`poll_interval`](Self::poll_interval).
    #[must_use]
    pub const fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`retention`](Self::retention).
    #[must_use]
    pub const fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets [`parallel_claims`](Self::parallel_claims) (at least 1).
    #[must_use]
    pub const fn parallel_claims(mut self, claims: usize) -> Self {
        self.parallel_claims = if claims == 0 { 1 } else { claims };
        self
    }

    /// Sets [`buffer`](Self::buffer).
    #[must_use]
    pub const fn buffer(mut self, buffer: Buffer) -> Self {
        self.buffer = buffer;
        self
    }

    /// Sets [`max_payload`](Self::max_payload).
    #[must_use]
    pub const fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Sets [`clock`](Self::clock).
    #[must_use]
    pub const fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Self::new()
    }
}

/// A rate limit shared by a backend's clones: [`due`](Every::due) is true at
/// most once per period, across every thread (for work such as retention
/// that several workers would otherwise all start at once).
#[derive(Debug)]
pub struct Every {
    period_ms: i64,
    last: std::sync::atomic::AtomicI64,
}

impl Every {
    /// At most once per `period`.
    pub const fn new(period: Duration) -> Self {
        let ms = period.as_millis();
        let period_ms = if ms > i64::MAX as u128 { i64::MAX } else { ms as i64 };
        Self { period_ms, last: std::sync::atomic::AtomicI64::new(i64::MIN) }
    }

    /// Whether the period has passed since the last time this returned true
    /// (and, if so, starts a new one).
    pub fn due(&self, now: Timestamp) -> bool {
        use std::sync::atomic::Ordering;
        let now = now.as_millis();
        let last = self.last.load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.period_ms
            && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_due_once_per_period() {
        let every = Every::new(Duration::from_secs(10));
        assert!(every.due(Timestamp(1_000)));
        assert!(!every.due(Timestamp(5_000)));
        assert!(every.due(Timestamp(11_000)));
        assert!(!every.due(Timestamp(11_001)));
    }

    #[test]
    fn buffers_follow_concurrency() {
        assert_eq!(Buffer::None.size(64), 0);
        assert_eq!(Buffer::Concurrency.size(64), 64);
        assert_eq!(Buffer::Room(1024).size(64), 960);
        assert_eq!(Buffer::Room(1024).size(600), 600, "at least the concurrency");
    }
}
