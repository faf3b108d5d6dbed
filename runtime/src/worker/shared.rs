//! What a worker's loops share: [`Shared`] (the backend, the registration,
//! the requeues not yet confirmed, the claim buffer, the metrics), what the
//! heartbeat knows of the connection ([`Liveness`]), and the pauses after
//! backend errors. The claim loop (`run.rs`), the heartbeat (`beat.rs`) and
//! the ack flusher (`flush.rs`) all build on it and on nothing of each other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Event, EventHandler, UnservedCheck};
use crate::Backoff;
use crate::backend::{Ack, Outcome, Task, WorkerRegistration};
use crate::context::{CancelRegistry, ProgressBoard, WorkerCx};
use crate::meter::Meters;
use crate::task::TaskId;
use crate::time::Timestamp;

/// What the heartbeat task knows of the connection, for the other tasks.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    /// Since when heartbeats have gone through without a failure (ms since
    /// `epoch`, plus one; 0 while the last heartbeat failed).
    connected_since: AtomicU64,
    /// Backend calls of this worker that succeeded (heartbeats and acks):
    /// proof that the backend answers, for the ack flusher.
    successes: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Liveness {
    fn epoch(&self) -> Instant {
        *self.epoch.get_or_init(Instant::now)
    }

    pub(super) fn beat_ok(&self) {
        let since = u64::try_from(self.epoch().elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let _ = self.connected_since.compare_exchange(0, since, Ordering::AcqRel, Ordering::Acquire);
        self.succeeded();
    }

    pub(super) fn beat_failed(&self) {
        self.connected_since.store(0, Ordering::Release);
    }

    /// Records a successful backend call.
    pub(super) fn succeeded(&self) {
        self.successes.fetch_add(1, Ordering::AcqRel);
    }

    /// How many backend calls succeeded so far.
    pub(super) fn successes(&self) -> u64 {
        self.successes.load(Ordering::Acquire)
    }

    /// Whether heartbeats have gone through without a break for `span`.
    pub(super) fn connected_for(&self, span: Duration) -> bool {
        match self.connected_since.load(Ordering::Acquire) {
            0 => false,
            since => {
                let since = Duration::from_millis(since - 1);
                self.epoch().elapsed().saturating_sub(since) >= span
            }
        }
    }
}

/// How far ahead a worker with a buffer claims: as many waiting tasks as
/// its slots finish in this long, at the recent pace.
pub(super) const BUFFER_HORIZON: Duration = Duration::from_millis(5);
/// Acks flushed per backend call at most.
pub(super) const ACK_BATCH: usize = 1024;
/// Longest pause after repeated backend errors.
pub(super) const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);
pub(super) const MIN_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What the worker's tasks share.
pub(super) struct Shared<B> {
    pub(super) backend: B,
    pub(super) registration: WorkerRegistration,
    pub(super) worker_cx: WorkerCx,
    /// Fires when in-flight runs must stop (the shutdown deadline passed).
    pub(super) abort: CancellationToken,
    pub(super) events: Option<EventHandler>,
    pub(super) fallback_backoff: Backoff,
    pub(super) cancels: Arc<CancelRegistry>,
    /// Progress reports of runs, not yet written.
    pub(super) progress: Arc<ProgressBoard>,
    pub(super) unserved: Option<UnservedCheck>,
    /// What the heartbeats tell of the connection.
    pub(super) liveness: Liveness,
    /// With a buffer: the run slots (`concurrency`) that claimed tasks wait
    /// for, and how long runs took lately.
    pub(super) buffered: Option<Buffered>,
    /// Fires when the worker stops claiming; buffered tasks then never start.
    pub(super) shutdown: CancellationToken,
    /// Requeue acks not known to have landed (see [`Requeues`]).
    pub(super) requeues: std::sync::Mutex<Requeues>,
    /// Metric handles (nothing without the `metrics` feature).
    pub(super) meters: Meters,
}

/// Requeue acks (retry, snooze) of this worker, by task. Such an ack whose
/// reply was lost is sent again, and may then land after this same worker
/// claimed the task again: it would requeue that claim while it runs, and
/// the task would run twice. A claim can also land before a requeue ack that
/// is confirmed before the claim's reply arrives. So a task claimed by a
/// claim sent before its requeue ack was confirmed is not run: it is
/// requeued once more (a snooze, which also gives back the attempt of the
/// claim that did not run), due [`REQUEUE_PAUSE`] later at the earliest so
/// that claims already in flight do not take it again.
#[derive(Debug, Default)]
pub(super) struct Requeues(std::collections::HashMap<TaskId, Requeue>);

#[derive(Debug)]
pub(super) struct Requeue {
    at: Timestamp,
    /// When the flush carrying it succeeded; `None` while in flight.
    confirmed: Option<Instant>,
}

/// How long a task taken by a claim sent too soon waits before it is due again.
const REQUEUE_PAUSE: Duration = Duration::from_millis(50);
/// Confirmed requeues are forgotten after this long: no claim takes as long.
const REQUEUE_MEMORY: Duration = Duration::from_secs(60);

fn requeue_at(outcome: &Outcome) -> Option<Timestamp> {
    match outcome {
        Outcome::Retry { at, .. } | Outcome::Snooze { at } => Some(*at),
        Outcome::Done { .. } | Outcome::Dead { .. } => None,
    }
}

impl<B> Shared<B> {
    fn requeues(&self) -> std::sync::MutexGuard<'_, Requeues> {
        self.requeues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before a flush: the batch's requeue acks are unconfirmed until it succeeds.
    pub(super) fn flushing(&self, batch: &[Ack]) {
        if !batch.iter().any(|a| requeue_at(&a.outcome).is_some()) {
            return;
        }
        let mut requeues = self.requeues();
        for ack in batch {
            if let Some(at) = requeue_at(&ack.outcome) {
                requeues.0.insert(ack.id, Requeue { at, confirmed: None });
            }
        }
    }

    /// After a successful flush: its requeue acks have landed.
    pub(super) fn flushed(&self, batch: &[Ack]) {
        if !batch.iter().any(|a| requeue_at(&a.outcome).is_some()) {
            return;
        }
        let now = Instant::now();
        let mut requeues = self.requeues();
        for ack in batch {
            if let Some(requeue) = requeues.0.get_mut(&ack.id) {
                requeue.confirmed = Some(now);
            }
        }
        requeues.0.retain(|_, r| r.confirmed.is_none_or(|t| now.duration_since(t) < REQUEUE_MEMORY));
    }

    /// Takes out of `tasks`, claimed by a claim sent at `started`, those whose
    /// requeue ack was not confirmed by then, and returns the snoozes that
    /// requeue them again.
    pub(super) fn claimed_too_soon(&self, tasks: &mut Vec<Task>, started: Instant) -> Vec<Ack> {
        let requeues = self.requeues();
        if requeues.0.is_empty() {
            return Vec::new();
        }
        let mut again = Vec::new();
        let not_before = Timestamp::now().add(REQUEUE_PAUSE);
        tasks.retain(|task| {
            let Some(requeue) = requeues.0.get(&task.id) else { return true };
            if requeue.confirmed.is_some_and(|t| t <= started) {
                return true;
            }
            tracing::debug!(id = %task.id, "claimed again before its requeue was confirmed; requeued once more");
            again.push(Ack { id: task.id, outcome: Outcome::Snooze { at: requeue.at.max(not_before) } });
            false
        });
        again
    }
}

/// The part of a worker that holds claimed tasks until a run slot is free.
pub(super) struct Buffered {
    /// The buffer's size at most.
    pub(super) size: usize,
    pub(super) runs: Arc<Semaphore>,
    /// Claimed tasks in claim order: whichever waiter gets a slot runs the
    /// first (Tokio may poll the waiters in any order).
    pub(super) waiting: std::sync::Mutex<std::collections::VecDeque<Task>>,
    /// Moving average of a run's duration in µs (`u64::MAX` until one ends).
    pub(super) run_micros: AtomicU64,
}

impl Buffered {
    /// Records a run's duration.
    pub(super) fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.run_micros.load(Ordering::Relaxed);
        let new = if old == u64::MAX { took } else { old - old / 8 + took / 8 };
        self.run_micros.store(new, Ordering::Relaxed);
    }

    /// The waiting tasks to give back because runs slowed down: when more
    /// wait than twice the [`allowance`](Self::allowance), those beyond it,
    /// the last claimed first. (Claimed at a quick pace, they would wait
    /// behind slow runs while other workers may be idle.)
    pub(super) fn shed(&self, concurrency: usize) -> Vec<Task> {
        let allowance = self.allowance(concurrency);
        // No more than the buffer and the slots hold ever wait: at a quick
        // pace there is nothing to check (and no lock to take).
        if allowance.saturating_mul(2) >= self.size + concurrency {
            return Vec::new();
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.len() <= allowance.saturating_mul(2) {
            return Vec::new();
        }
        waiting.split_off(allowance).into()
    }

    /// How many tasks may wait for a slot now: what `concurrency` slots finish
    /// within [`BUFFER_HORIZON`] at the recent pace, at most `size`.
    pub(super) fn allowance(&self, concurrency: usize) -> usize {
        let micros = self.run_micros.load(Ordering::Relaxed);
        if micros == u64::MAX {
            return 0;
        }
        let horizon = u64::try_from(BUFFER_HORIZON.as_micros()).unwrap_or(u64::MAX);
        let ahead = (concurrency as u64).saturating_mul(horizon) / micros.max(1);
        usize::try_from(ahead).unwrap_or(usize::MAX).min(self.size)
    }
}

impl<B> Shared<B> {
    /// Calls the `on_event` handler. A handler that panics is logged and
    /// ignored: it must not take the worker's loops down with it.
    pub(super) fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(handler) = &self.events {
            let event = event();
            if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&event))) {
                let message = crate::panic::Panicked::from_payload(panic.as_ref());
                tracing::error!(worker = %self.registration.id, ?event, %message, "the `on_event` handler panicked; ignored");
            }
        }
    }
}
