//! Claims whose outcome is unknown.
//!
//! A claim's update commits on its own (autocommit); when its connection
//! breaks after the statement was sent, or before its rows were read back,
//! it may have committed. Its tasks would then be `running`
//! for a worker that never got them and goes on beating, so no orphan rescue
//! would ever put them back: lost while the process lives. Each claim
//! therefore writes a token of its own into the rows it takes (`claim`
//! column), and a claim that failed that way is remembered here. The
//! backend's next claims and heartbeats of that worker put back whatever the
//! token took (`sql/release_claims.sql`), again until [`SETTLE`] has passed
//! since the failure, so a statement that the server finished late is caught
//! too.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long after a failed claim its token is still released again.
const SETTLE: Duration = Duration::from_secs(2);
/// The least time between two release attempts for one worker.
const RETRY: Duration = Duration::from_millis(200);

/// The claim tokens of one backend value (and its clones).
#[derive(Debug, Default)]
pub(crate) struct Doubts {
    next: AtomicI64,
    open: Mutex<Vec<Doubt>>,
}

#[derive(Debug)]
struct Doubt {
    worker: String,
    token: i64,
    failed: Instant,
    tried: Option<Instant>,
}

impl Doubts {
    /// A token for a new claim: unique among this process's claims, which is
    /// enough since a release is scoped to one worker.
    pub(crate) fn token(&self) -> i64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers that claim `token` of `worker` may have taken tasks.
    pub(crate) fn record(&self, worker: &str, token: i64) {
        let doubt = Doubt { worker: worker.to_owned(), token, failed: Instant::now(), tried: None };
        self.lock().push(doubt);
    }

    /// The tokens of `worker` due for a release attempt (none most of the
    /// time, at the cost of one uncontended lock).
    pub(crate) fn due(&self, worker: &str) -> Vec<i64> {
        let open = self.lock();
        if open.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        open.iter()
            .filter(|d| d.worker == worker && d.tried.is_none_or(|t| now.duration_since(t) >= RETRY))
            .map(|d| d.token)
            .collect()
    }

    /// `tokens` of `worker` were released: those that failed long enough ago
    /// are settled, the others are tried again later.
    pub(crate) fn released(&self, worker: &str, tokens: &[i64]) {
        let now = Instant::now();
        let mut open = self.lock();
        open.retain_mut(|d| {
            if d.worker != worker || !tokens.contains(&d.token) {
                return true;
            }
            d.tried = Some(now);
            now.duration_since(d.failed) < SETTLE
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Doubt>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a failed statement may still have committed. A database error
/// means the server rejected it (and rolled it back); a pool error means it
/// was never sent. Anything else (I/O, protocol) broke off mid-way.
pub(crate) fn may_have_committed(error: &sqlx::Error) -> bool {
    !matches!(error, sqlx::Error::Database(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubts_are_released_until_they_settle() {
        let doubts = Doubts::default();
        let (a, b) = (doubts.token(), doubts.token());
        assert_ne!(a, b);
        doubts.record("w1", a);
        doubts.record("w2", b);
        assert_eq!(doubts.due("w1"), vec![a]);
        assert_eq!(doubts.due("w3"), Vec::<i64>::new());
        // Released once right away: kept, but not due again at once.
        doubts.released("w1", &[a]);
        assert_eq!(doubts.due("w1"), Vec::<i64>::new());
        assert_eq!(doubts.due("w2"), vec![b]);
        // Failed long ago: one release settles it.
        for d in doubts.lock().iter_mut() {
            d.failed = d.failed.checked_sub(SETTLE).unwrap_or(d.failed);
        }
        doubts.released("w2", &[b]);
        assert!(doubts.lock().iter().all(|d| d.worker == "w1"));
    }

    #[test]
    fn only_broken_off_statements_are_in_doubt() {
        assert!(may_have_committed(&sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset))));
        assert!(may_have_committed(&sqlx::Error::Protocol("unexpected message".into())));
        assert!(!may_have_committed(&sqlx::Error::PoolTimedOut));
    }
}
