//! Millisecond timestamps, the unit every backend stores `run_at` in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
///
/// Backends store times with millisecond precision so that a delayed task
/// starts neither a second early nor a second late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`]; times before 1970 clamp to the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Self(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }

    /// This time plus `d`, saturating. (Also available as `+`.)
    #[allow(clippy::should_implement_trait)] // it is implemented too; this spelling needs no import
    pub fn add(self, d: Duration) -> Self {
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// This time minus `d`, saturating. (Also available as `-`.)
    #[allow(clippy::should_implement_trait)] // it is implemented too; this spelling needs no import
    pub fn sub(self, d: Duration) -> Self {
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// How long until this time, or zero if it has passed.
    pub fn until(self, now: Self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(now.0)).unwrap_or(0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Self::from_system_time(t)
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp::add(self, d)
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp::sub(self, d)
    }
}
