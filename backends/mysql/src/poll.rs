//! Wake-ups across processes: MySQL has no `LISTEN/NOTIFY`, so one poller
//! per backend value (shared by its clones) probes for due tasks while, and
//! only while, some worker of the process is idle.
//!
//! Enqueues of this process wake its idle workers at once (the runtime's
//! [`Notifier`](errand_runtime::backend::Notifier)). For the others, the
//! poller runs one indexed query per job and queue that an idle worker
//! serves (`earliest.sql`: the earliest `run_at` among its waiting tasks,
//! one probe of `tasks_claim` per distinct priority, whatever the backlog)
//! and wakes that queue's idle workers when a task is due that it had not
//! seen due before. It polls every `fastest` interval after something
//! arrived (or a worker went idle), and doubles the interval up to
//! `slowest` while nothing does: the worst-case delay before an idle worker
//! sees another process's task is `slowest` plus one claim. Tasks that only
//! become due later are not the poller's business: an idle worker sleeps
//! until the next due time its last claim reported.
//!
//! A probe that finds the same earliest due task as the last one does not
//! wake anybody again (it is being claimed by another process, or cannot be
//! claimed right now), so a stuck row cannot make workers claim in a loop;
//! the workers' own [`Tuning::poll_interval`](errand_runtime::Tuning::poll_interval)
//! remains the fallback for whatever the probe cannot tell.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use errand_runtime::backend::{Waiter, WakeSignal};
use tokio::sync::Notify;

use crate::Inner;
use crate::rows::query_error;

/// What one backend value's poller knows, shared with its waiters.
#[derive(Debug)]
pub(crate) struct Poll {
    fastest: Duration,
    slowest: Duration,
    watches: Mutex<HashMap<Arc<str>, Watch>>,
    /// Poll now: a worker went idle, or a transaction enqueued.
    kick: Arc<Notify>,
    /// Whether the polling task runs (`false` outside a Tokio runtime).
    started: OnceLock<bool>,
}

/// One queue: how many of its workers are idle, and the jobs claimed on it
/// with the earliest waiting `run_at` the last probe saw.
#[derive(Debug, Default)]
struct Watch {
    idle: usize,
    jobs: Vec<(&'static str, Option<i64>)>,
}

impl Poll {
    /// A poller that probes every `fastest` after activity, backing off to
    /// `slowest`.
    pub(crate) fn new(fastest: Duration, slowest: Duration) -> Self {
        Self {
            fastest,
            slowest: slowest.max(fastest),
            watches: Mutex::default(),
            kick: Arc::default(),
            started: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Watch>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Job `job` is claimed on `queue`: probe for it while that queue has
    /// idle workers.
    pub(crate) fn serve(&self, queue: &str, job: &'static str) {
        let mut watches = self.lock();
        if let Some(watch) = watches.get_mut(queue) {
            if !watch.jobs.iter().any(|(j, _)| *j == job) {
                watch.jobs.push((job, None));
            }
            return;
        }
        watches.insert(Arc::from(queue), Watch { idle: 0, jobs: vec![(job, None)] });
    }

    /// Probe soon: a task was written in a transaction this process does
    /// not see committing.
    pub(crate) fn kick(&self) {
        self.kick.notify_one();
    }

    fn enter(&self, queue: &Arc<str>) {
        let first = {
            let mut watches = self.lock();
            let watch = watches.entry(Arc::clone(queue)).or_default();
            watch.idle += 1;
            watch.idle == 1
        };
        if first {
            self.kick.notify_one();
        }
    }

    fn leave(&self, queue: &str) {
        if let Some(watch) = self.lock().get_mut(queue) {
            watch.idle = watch.idle.saturating_sub(1);
        }
    }

    /// The `(queue, job, last seen earliest)` to probe: those of queues
    /// with idle workers.
    fn probes(&self) -> Vec<(Arc<str>, &'static str, Option<i64>)> {
        let watches = self.lock();
        watches
            .iter()
            .filter(|(_, w)| w.idle > 0)
            .flat_map(|(queue, w)| w.jobs.iter().map(move |(job, last)| (Arc::clone(queue), *job, *last)))
            .collect()
    }

    fn record(&self, queue: &str, job: &str, earliest: Option<i64>) {
        if let Some(watch) = self.lock().get_mut(queue)
            && let Some(entry) = watch.jobs.iter_mut().find(|(j, _)| *j == job)
        {
            entry.1 = earliest;
        }
    }
}

/// Starts the poller of `inner`'s backend value once (it needs a Tokio
/// runtime; without one, idle workers rely on their poll interval).
pub(crate) fn start(inner: &Arc<Inner>) {
    inner.poll.started.get_or_init(|| match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(run(Arc::downgrade(inner)));
            true
        }
        Err(_) => false,
    });
}

/// The polling loop; ends when the backend value and its clones are gone.
async fn run(weak: Weak<Inner>) {
    let Some((fastest, slowest, kick)) =
        weak.upgrade().map(|i| (i.poll.fastest, i.poll.slowest, Arc::clone(&i.poll.kick)))
    else {
        return;
    };
    let mut interval = fastest;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let probes = inner.poll.probes();
        if probes.is_empty() {
            drop(inner);
            // Nobody idle: wait for a worker to go idle (and look now and
            // then whether the backend value is gone).
            let _ = tokio::time::timeout(slowest, kick.notified()).await;
            interval = fastest;
            continue;
        }
        let mut found = false;
        for (queue, job, last) in probes {
            match earliest(&inner, &queue, job, i64::MIN).await {
                Ok(earliest) => {
                    // Read after the probe: a task written while it ran is due by now.
                    let now = inner.tuning.clock.now().as_millis();
                    let (wake, seen) = look(last, earliest, now);
                    inner.poll.record(&queue, job, seen);
                    if wake {
                        inner.notifier.notify(&queue);
                        found = true;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, queue = %queue, job, "mysql: the idle poll failed; trying again");
                }
            }
        }
        drop(inner);
        // Sleep the current interval, then double it while nothing arrives.
        let pause = if found { fastest } else { interval };
        interval = if found { fastest } else { (interval * 2).min(slowest) };
        if tokio::time::timeout(pause, kick.notified()).await.is_ok() {
            interval = fastest;
        }
    }
}

/// What a probe that found `earliest` at `now` does, given the earliest due
/// task it last woke workers for (`last`): whether to wake them, and what
/// to remember. Only a task that was due and woken for is remembered, so
/// one found just before it was due is woken for at the next probe rather
/// than taken for one already seen (and left to the workers' own poll).
fn look(last: Option<i64>, earliest: Option<i64>, now: i64) -> (bool, Option<i64>) {
    match earliest {
        Some(due) if due <= now => (last != Some(due), Some(due)),
        Some(_) => (false, last),
        None => (false, None),
    }
}

/// The earliest `run_at` after `after` (ms) among the waiting tasks of `job`
/// on `queue` (`earliest.sql`); `None` while the queue is paused.
pub(crate) async fn earliest(
    inner: &Inner,
    queue: &str,
    job: &str,
    after: i64,
) -> Result<Option<i64>, errand_runtime::Error> {
    sqlx::query_scalar::<_, Option<i64>>(&inner.queries.earliest)
        .bind(queue)
        .bind(job)
        .bind(queue)
        .bind(job)
        .bind(queue)
        .bind(job)
        .bind(after)
        .bind(queue)
        .fetch_one(&inner.pool)
        .await
        .map_err(query_error(format!("look for due tasks of job `{job}` on queue `{queue}`")))
}

/// How an idle worker of a [`MysqlBackend`](crate::MysqlBackend) waits:
/// woken at once by enqueues of its own process, and by the backend's
/// poller for tasks of other processes (see the crate docs, *Wake-ups*).
#[derive(Debug)]
pub struct MysqlWaiter {
    signal: WakeSignal,
    inner: Arc<Inner>,
    queue: Arc<str>,
}

impl MysqlWaiter {
    pub(crate) fn new(inner: &Arc<Inner>, queue: &str) -> Self {
        start(inner);
        Self { signal: inner.notifier.subscribe(queue), inner: Arc::clone(inner), queue: Arc::from(queue) }
    }
}

/// Counts a worker as idle while it waits.
struct Idle<'a> {
    poll: &'a Poll,
    queue: &'a str,
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.poll.leave(self.queue);
    }
}

impl Waiter for MysqlWaiter {
    fn arm(&mut self) {
        self.signal.arm();
    }

    async fn wait(&mut self) {
        self.inner.poll.enter(&self.queue);
        let _idle = Idle { poll: &self.inner.poll, queue: &self.queue };
        self.signal.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_seen_before_it_was_due_is_woken_for_once_due() {
        // The probe ran just before the task's run_at: not due yet.
        let (wake, seen) = look(None, Some(1_000), 999);
        assert!(!wake);
        assert_eq!(seen, None, "a task that was not due is not remembered");
        // The next probe finds it due: wake, once.
        let (wake, seen) = look(seen, Some(1_000), 1_010);
        assert!(wake);
        let (wake, _) = look(seen, Some(1_000), 1_020);
        assert!(!wake, "a due task already woken for (being claimed, or stuck) wakes nobody again");
        // A later task is new; an empty queue forgets.
        assert!(look(seen, Some(1_005), 1_030).0);
        assert_eq!(look(seen, None, 1_030), (false, None));
        // A future task keeps the last one woken for.
        assert_eq!(look(Some(1_000), Some(5_000), 1_030), (false, Some(1_000)));
    }

    #[test]
    fn only_queues_with_idle_workers_are_probed() {
        let poll = Poll::new(Duration::from_millis(10), Duration::from_millis(250));
        poll.serve("a", "j1");
        poll.serve("a", "j2");
        poll.serve("b", "j1");
        assert!(poll.probes().is_empty(), "nobody idle");
        let a: Arc<str> = Arc::from("a");
        poll.enter(&a);
        let mut probes: Vec<_> = poll.probes().into_iter().map(|(q, j, _)| (q.to_string(), j)).collect();
        probes.sort_unstable();
        assert_eq!(probes, [("a".to_owned(), "j1"), ("a".to_owned(), "j2")]);
        poll.record("a", "j1", Some(5));
        assert!(poll.probes().iter().any(|(_, j, last)| *j == "j1" && *last == Some(5)));
        poll.leave("a");
        assert!(poll.probes().is_empty());
    }
}
