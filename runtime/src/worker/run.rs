//! The worker loop.
//!
//! Three cooperating parts, none of which waits on another's round trip:
//! - the claim loop keeps claiming while tasks run, as many as there are free
//!   slots (bounded by `concurrency`, plus the buffer of claimed tasks waiting
//!   for a slot while runs are quick), and spawns one Tokio task per run;
//! - finished runs send their [`Ack`] to a flusher, which writes them to the
//!   backend in batches in the background;
//! - a heartbeat task beats and rescues the tasks of dead workers.
//!
//! An idle worker awaits the backend's wake-up, with the backend's poll
//! interval (or the next delayed task's due time, if sooner) as a fresh timer
//! on every idle round: no wake-up is lost between a claim and the wait.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::{Event, EventHandler, Request, UnservedCheck, Worker};
use crate::Backoff;
use crate::backend::{Backend, Waiter};
use crate::codec::Codec;
use crate::context::{CancelRegistry, TaskCx, WorkerCx};
use crate::error::Error;
use crate::job::{Decision, Job, JobError};
use crate::task::{Ack, Claimed, Outcome, Task, TaskId, WorkerRegistration};
use crate::time::Timestamp;

/// How long a worker on a busy queue waits to gather free slots for a claim.
const GATHER: Duration = Duration::from_millis(2);
/// How far ahead a worker with a buffer claims: as many waiting tasks as
/// its slots finish in this long, at the recent pace.
const BUFFER_HORIZON: Duration = Duration::from_millis(5);
/// Acks flushed per backend call at most.
const ACK_BATCH: usize = 1024;
/// Longest pause after repeated backend errors.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);
const MIN_ERROR_BACKOFF: Duration = Duration::from_millis(50);

struct Shared<B> {
    backend: B,
    registration: WorkerRegistration,
    worker_cx: WorkerCx,
    /// Fires when in-flight runs must stop (the shutdown deadline passed).
    abort: CancellationToken,
    events: Option<EventHandler>,
    fallback_backoff: Backoff,
    cancels: Arc<CancelRegistry>,
    unserved: Option<UnservedCheck>,
    /// With a buffer: the run slots (`concurrency`) that claimed tasks wait
    /// for, and how long runs took lately.
    buffered: Option<Buffered>,
    /// Fires when the worker stops claiming; buffered tasks then never start.
    shutdown: CancellationToken,
    /// Requeue acks not known to have landed (see [`Requeues`]).
    requeues: std::sync::Mutex<Requeues>,
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
struct Requeues(std::collections::HashMap<TaskId, Requeue>);

#[derive(Debug)]
struct Requeue {
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
    fn flushing(&self, batch: &[Ack]) {
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
    fn flushed(&self, batch: &[Ack]) {
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
    fn claimed_too_soon(&self, tasks: &mut Vec<Task>, started: Instant) -> Vec<Ack> {
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
struct Buffered {
    /// The buffer's size at most.
    size: usize,
    runs: Arc<Semaphore>,
    /// Claimed tasks in claim order: whichever waiter gets a slot runs the
    /// first (Tokio may poll the waiters in any order).
    waiting: std::sync::Mutex<std::collections::VecDeque<Task>>,
    /// Moving average of a run's duration in µs (`u64::MAX` until one ends).
    run_micros: AtomicU64,
}

impl Buffered {
    /// Records a run's duration.
    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.run_micros.load(Ordering::Relaxed);
        let new = if old == u64::MAX { took } else { old - old / 8 + took / 8 };
        self.run_micros.store(new, Ordering::Relaxed);
    }

    /// The waiting tasks to give back because runs slowed down: when more
    /// wait than twice the [`allowance`](Self::allowance), those beyond it,
    /// the last claimed first. (Claimed at a quick pace, they would wait
    /// behind slow runs while other workers may be idle.)
    fn shed(&self, concurrency: usize) -> Vec<Task> {
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
    fn allowance(&self, concurrency: usize) -> usize {
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
    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(handler) = &self.events {
            handler(&event());
        }
    }
}

impl<J, B, S> Worker<J, B, S>
where
    J: Job,
    B: Backend,
    S: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    /// Runs until `shutdown` fires, then stops gracefully: no new claims,
    /// in-flight runs get `grace` to finish, the rest are released back to
    /// the queue without using an attempt.
    ///
    /// Dropping the returned future instead stops everything at once, as a
    /// crash would: the worker's tasks stay `running` until another worker
    /// rescues them after the backend's `orphan_after`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingData`] if the job needs data the worker was not given.
    /// Backend failures are retried with backoff, never returned.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) -> Result<(), Error> {
        self.check()?;
        let Worker { service, backend, data, concurrency, buffer, heartbeat, id, queue, events, unserved, .. } = self;
        let buffer = buffer.unwrap_or_else(|| backend.buffer(concurrency)).min(Semaphore::MAX_PERMITS - concurrency);
        let registration = WorkerRegistration {
            id: Arc::clone(&id),
            queue: Arc::clone(&queue),
            job: J::NAME,
            concurrency,
            started_at: Timestamp::now(),
        };
        // Dropping this future (a crash, a killed monitor) cancels `kill`,
        // which stops every task this worker spawned.
        let kill = CancellationToken::new();
        let _kill_on_drop = kill.clone().drop_guard();
        let abort = kill.child_token();
        let worker_cx = WorkerCx::new(Arc::clone(&id), Arc::clone(&queue), J::NAME, shutdown.clone(), data);
        let shared = Arc::new(Shared {
            backend,
            registration,
            worker_cx,
            abort,
            events,
            fallback_backoff: J::options().backoff,
            cancels: Arc::default(),
            unserved,
            buffered: (buffer > 0).then(|| Buffered {
                size: buffer,
                runs: Arc::new(Semaphore::new(concurrency)),
                waiting: std::sync::Mutex::default(),
                run_micros: AtomicU64::new(u64::MAX),
            }),
            shutdown: shutdown.clone(),
            requeues: std::sync::Mutex::default(),
        });

        // Register before the first claim, so our tasks never look orphaned.
        if !register(&shared, &shutdown).await {
            return Ok(());
        }
        shared.emit(|| Event::Started { worker: Arc::clone(&id) });
        rescue(&shared).await;
        check_unserved(&shared).await;

        let beat = tokio::spawn(beat_loop(Arc::clone(&shared), heartbeat, kill.clone()));
        let (ack_tx, ack_rx) = mpsc::channel::<Ack>(ACK_BATCH.max(concurrency * 2));
        let stop_flusher = CancellationToken::new();
        let flusher = tokio::spawn(flush_loop(Arc::clone(&shared), ack_rx, stop_flusher.clone(), kill.clone()));
        // One permit per claimed task until its run ends (or, buffered, until
        // shutdown drops it unstarted).
        let slots = Arc::new(Semaphore::new(concurrency + buffer));

        claim_loop::<J, B, S>(&shared, &service, &slots, &ack_tx, &shutdown).await;

        // Graceful stop: let in-flight runs finish until the deadline.
        let all = u32::try_from(concurrency + buffer).unwrap_or(u32::MAX);
        let deadline = Instant::now() + grace;
        if tokio::time::timeout_at(deadline, slots.acquire_many(all)).await.is_err() {
            tracing::warn!(worker = %id, "shutdown deadline passed with runs in flight; releasing them");
            shared.abort.cancel();
            // Aborted runs return at their next poll.
            let _ = tokio::time::timeout(Duration::from_secs(1), slots.acquire_many(all)).await;
        }
        drop(ack_tx);
        stop_flusher.cancel();
        if flusher.await.is_err() {
            tracing::error!(worker = %id, "the ack flusher ended abnormally");
        }
        beat.abort();
        let released = match shared.backend.release(&shared.registration).await {
            Ok(n) => n,
            Err(error) => {
                // The tasks stay `running` and are rescued after `orphan_after`.
                tracing::error!(worker = %id, %error, "could not release unfinished tasks");
                0
            }
        };
        shared.emit(|| Event::Stopped { worker: Arc::clone(&id), released });
        Ok(())
    }
}

/// Beats until the backend accepts it; false if shutdown came first.
async fn register<B: Backend>(shared: &Shared<B>, shutdown: &CancellationToken) -> bool {
    let mut pause = MIN_ERROR_BACKOFF;
    loop {
        match shared.backend.heartbeat(&shared.registration).await {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(worker = %shared.registration.id, %error, "could not register the worker; retrying");
                shared.emit(|| Event::BackendError { error: error.to_string() });
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_ERROR_BACKOFF);
    }
}

async fn rescue<B: Backend>(shared: &Shared<B>) {
    match shared.backend.rescue_orphans().await {
        Ok(0) => {}
        Ok(count) => {
            tracing::info!(count, "rescued the tasks of workers that stopped heartbeating");
            shared.emit(|| Event::Rescued { count });
        }
        Err(error) => {
            tracing::warn!(%error, "could not rescue orphaned tasks");
            shared.emit(|| Event::BackendError { error: error.to_string() });
        }
    }
}

/// Warns about waiting tasks of jobs no worker of this monitor serves, and
/// buries those that waited longer than the grace period.
async fn check_unserved<B: Backend>(shared: &Shared<B>) {
    let Some(check) = &shared.unserved else { return };
    let queue = &shared.registration.queue;
    let unserved = match shared.backend.unserved(queue, &check.served).await {
        Ok(unserved) => unserved,
        Err(error) => {
            tracing::warn!(%error, queue = %queue, "could not look for unserved jobs");
            return;
        }
    };
    let now = Timestamp::now();
    for found in unserved {
        tracing::warn!(
            queue = %queue,
            job = %found.job,
            count = found.count,
            served = ?check.served,
            "queue `{queue}` holds {} waiting task(s) of job `{}`, which no worker of this process serves \
             (it serves {:?}); register a worker for it, or they go dead after the grace period",
            found.count,
            found.job,
            check.served,
        );
        shared.emit(|| Event::Unserved { queue: Arc::clone(queue), job: found.job.clone(), count: found.count });
        let Some(grace) = check.grace else { continue };
        let due_before = now.sub(grace);
        if found.oldest > due_before {
            continue;
        }
        let reason = format!(
            "no worker serves job `{}` on queue `{queue}` (workers there serve {:?}); the task waited more than {grace:?}. \
             Retry it once a worker for `{}` runs",
            found.job, check.served, found.job
        );
        match shared.backend.bury_unserved(queue, &found.job, due_before, &reason).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::warn!(queue = %queue, job = %found.job, count, "unserved tasks went dead");
                shared.emit(|| Event::Buried { queue: Arc::clone(queue), job: found.job.clone(), count });
            }
            Err(error) => tracing::warn!(%error, queue = %queue, "could not bury unserved tasks"),
        }
    }
}

/// How often the unserved-job check runs, in heartbeats at most this long.
const UNSERVED_EVERY: Duration = Duration::from_secs(60);

async fn beat_loop<B: Backend>(shared: Arc<Shared<B>>, interval: Duration, kill: CancellationToken) {
    let mut since_check = Duration::ZERO;
    loop {
        tokio::select! {
            () = kill.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(error) = shared.backend.heartbeat(&shared.registration).await {
            tracing::warn!(worker = %shared.registration.id, %error, "heartbeat failed");
            shared.emit(|| Event::BackendError { error: error.to_string() });
        }
        match shared.backend.cancelled_tasks(&shared.registration).await {
            Ok(ids) => shared.cancels.cancel(ids),
            Err(error) => tracing::warn!(%error, "could not read cancelled tasks"),
        }
        rescue(&shared).await;
        since_check += interval;
        if since_check >= UNSERVED_EVERY {
            since_check = Duration::ZERO;
            check_unserved(&shared).await;
        }
    }
}

async fn claim_loop<J, B, S>(
    shared: &Arc<Shared<B>>,
    service: &S,
    slots: &Arc<Semaphore>,
    acks: &mpsc::Sender<Ack>,
    shutdown: &CancellationToken,
) where
    J: Job,
    B: Backend,
    S: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    // Claims in flight at once: a backend whose claim is a network round
    // trip keeps the server busy while earlier claims' tasks run; each claim
    // holds the slots it asks for, so `concurrency` still bounds the runs.
    let concurrency = shared.registration.concurrency;
    let capacity = concurrency + shared.buffered.as_ref().map_or(0, |b| b.size);
    let parallel = shared.backend.parallel_claims().clamp(1, 8).min((capacity / 4).max(1));
    let mut claims: JoinSet<ClaimDone> = JoinSet::new();
    let mut waiter = shared.backend.waiter(&shared.registration.queue);
    let mut state = ClaimState { error_pause: MIN_ERROR_BACKOFF, starving: false, saturated: false, next_due: None };
    loop {
        if state.starving && claims.is_empty() {
            let mut idle = shared.backend.poll_interval();
            if let Some(due) = state.next_due.take() {
                idle = idle.min(due.until(Timestamp::now()));
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = waiter.wait() => {}
                () = tokio::time::sleep(idle) => {}
            }
            state.starving = false;
            continue;
        }
        let can_start = !state.starving && claims.len() < parallel;
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(finished) = claims.join_next(), if !claims.is_empty() => {
                let done = match finished {
                    Ok(done) => done,
                    Err(join) => {
                        tracing::error!(worker = %shared.registration.id, error = %join, "a claim ended abnormally");
                        continue;
                    }
                };
                if handle_claim::<J, B, S>(shared, service, acks, done, &mut state, shutdown).await.is_break() {
                    break;
                }
            }
            permit = Arc::clone(slots).acquire_owned(), if can_start => {
                let Ok(mut permits) = permit else { break };
                // On a busy queue (the last claim came back full), quick tasks
                // free their slots one by one: gather a quarter of them (for
                // at most GATHER) so each claim's round trip fetches a batch.
                let want = u32::try_from((capacity / 4).max(1)).unwrap_or(u32::MAX);
                if state.saturated && u32::try_from(slots.available_permits()).unwrap_or(u32::MAX) + 1 < want {
                    // Only waits for them to be free; they are taken just below.
                    let _ = tokio::time::timeout(GATHER, slots.acquire_many(want - 1)).await;
                }
                // Take every free slot for this claim.
                let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
                if free > 0
                    && let Ok(more) = Arc::clone(slots).try_acquire_many_owned(free)
                {
                    permits.merge(more);
                }
                if let Some(buffered) = &shared.buffered {
                    // Hold no more tasks (running, waiting, or being claimed)
                    // than the slots plus the buffer's current allowance.
                    let held = capacity - slots.available_permits() - permits.num_permits();
                    let allowed = (concurrency + buffered.allowance(concurrency)).saturating_sub(held);
                    if allowed == 0 {
                        drop(permits);
                        if let Some(finished) = claims.join_next().await {
                            // Claims in flight fill the allowance: take their tasks first.
                            let Ok(done) = finished else { continue };
                            if handle_claim::<J, B, S>(shared, service, acks, done, &mut state, shutdown)
                                .await
                                .is_break()
                            {
                                break;
                            }
                            continue;
                        }
                        // Every slot busy with slow runs: wait for one to end.
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            slot = buffered.runs.acquire() => drop(slot),
                        }
                        continue;
                    }
                    if permits.num_permits() > allowed {
                        drop(permits.split(permits.num_permits() - allowed));
                    }
                }
                // Armed before the claim: a wake-up after this point is not lost.
                waiter.arm();
                if parallel == 1 {
                    // One claim at a time: no task hop between wake-up and start.
                    let done = ClaimDone::of(shared, permits).await;
                    if handle_claim::<J, B, S>(shared, service, acks, done, &mut state, shutdown).await.is_break() {
                        break;
                    }
                } else {
                    let shared = Arc::clone(shared);
                    claims.spawn(async move { ClaimDone::of(&shared, permits).await });
                }
            }
        }
    }
    // Claims still in flight may have claimed tasks that will now never run
    // here: they stay `running` for this worker until `release` gives them back.
    while let Some(finished) = claims.join_next().await {
        if let Ok(ClaimDone { claimed: Ok(claimed), .. }) = finished
            && !claimed.tasks.is_empty()
        {
            tracing::debug!(tasks = claimed.tasks.len(), "claimed during shutdown; released with the rest");
        }
    }
}

/// A claim's result, the slots it was for, and when it was sent.
struct ClaimDone {
    claimed: Result<Claimed, Error>,
    permits: OwnedSemaphorePermit,
    started: Instant,
}

impl ClaimDone {
    async fn of<B: Backend>(shared: &Shared<B>, permits: OwnedSemaphorePermit) -> Self {
        let started = Instant::now();
        let claimed = shared.backend.claim(&shared.registration, permits.num_permits()).await;
        Self { claimed, permits, started }
    }
}

/// What the claim loop carries from one claim to the next.
struct ClaimState {
    error_pause: Duration,
    /// A claim came back empty: start no new one until the idle wait is over.
    starving: bool,
    /// The last claim came back full: the queue is busy.
    saturated: bool,
    next_due: Option<Timestamp>,
}

/// Spawns the runs of a finished claim, or records that it found nothing, or
/// backs off after an error. Breaks when shutdown came during the backoff.
async fn handle_claim<J, B, S>(
    shared: &Arc<Shared<B>>,
    service: &S,
    acks: &mpsc::Sender<Ack>,
    done: ClaimDone,
    state: &mut ClaimState,
    shutdown: &CancellationToken,
) -> ControlFlow<()>
where
    J: Job,
    B: Backend,
    S: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let ClaimDone { claimed, mut permits, started } = done;
    let claimed = match claimed {
        Ok(claimed) => {
            state.error_pause = MIN_ERROR_BACKOFF;
            claimed
        }
        Err(error) => {
            drop(permits);
            let pause = state.error_pause;
            tracing::warn!(worker = %shared.registration.id, %error, ?pause, "claim failed; backing off");
            shared.emit(|| Event::BackendError { error: error.to_string() });
            state.error_pause = (pause * 2).min(MAX_ERROR_BACKOFF);
            return tokio::select! {
                () = shutdown.cancelled() => ControlFlow::Break(()),
                () = tokio::time::sleep(pause) => ControlFlow::Continue(()),
            };
        }
    };
    state.saturated = claimed.tasks.len() >= permits.num_permits();
    if claimed.tasks.is_empty() {
        state.starving = true;
        state.next_due = match (state.next_due, claimed.next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        return ControlFlow::Continue(());
    }
    let mut tasks = claimed.tasks;
    for requeue in shared.claimed_too_soon(&mut tasks, started) {
        let _ = acks.send(requeue).await;
    }
    for task in tasks {
        // A backend returning more tasks than asked for gets them run anyway
        // rather than stranded as `running`.
        let permit = permits.split(1);
        spawn_run::<J, B, S>(shared, service, acks, task, permit);
    }
    ControlFlow::Continue(())
}

fn spawn_run<J, B, S>(
    shared: &Arc<Shared<B>>,
    service: &S,
    acks: &mpsc::Sender<Ack>,
    task: Task,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) where
    J: Job,
    B: Backend,
    S: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let shared = Arc::clone(shared);
    let service = service.clone();
    let acks = acks.clone();
    let mut task = Some(task);
    if let Some(buffered) = &shared.buffered {
        buffered.waiting.lock().unwrap_or_else(PoisonError::into_inner).extend(task.take());
    }
    tokio::spawn(async move {
        // A buffered task waits for a run slot; at shutdown it never starts
        // and is released with the worker's other unfinished tasks.
        let run_slot = match &shared.buffered {
            Some(buffered) => tokio::select! {
                biased;
                () = shared.shutdown.cancelled() => return,
                slot = Arc::clone(&buffered.runs).acquire_owned() => match slot {
                    Ok(slot) => {
                        task = buffered.waiting.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
                        Some((slot, Instant::now()))
                    }
                    Err(_) => return,
                },
            },
            None => None,
        };
        let Some(task) = task else { return };
        let abort = shared.abort.clone();
        tokio::select! {
            biased;
            ack = run_one::<J, B, S>(&shared, service, task) => {
                let mut shed = Vec::new();
                if let (Some(buffered), Some((_, started))) = (&shared.buffered, &run_slot) {
                    buffered.record(started.elapsed());
                    shed = buffered.shed(shared.registration.concurrency);
                }
                // The slot is held until the ack is queued, so a slow flush
                // slows claiming instead of piling up acks.
                let _ = acks.send(ack).await;
                // Back to the queue in their place (their own run_at), the
                // attempt not counted. Their waiters find nothing and end.
                for task in shed {
                    tracing::debug!(id = %task.id, "runs slowed down: a buffered task goes back to the queue");
                    let _ = acks.send(Ack { id: task.id, outcome: Outcome::Snooze { at: task.run_at } }).await;
                }
            }
            () = abort.cancelled() => {}
        }
        drop(run_slot);
        drop(permit);
    });
}

async fn run_one<J, B, S>(shared: &Shared<B>, mut service: S, task: Task) -> Ack
where
    J: Job,
    B: Backend,
    S: Service<Request<J>, Response = J::Output, Error = JobError>,
{
    let id = task.id;
    let attempt = task.attempt;
    let args = match <B::Codec as Codec>::decode::<J>(&task.payload, J::NAME) {
        Ok(args) => args,
        Err(error) => {
            let error = format!("could not decode the arguments of task {id} (job `{}`): {error}", J::NAME);
            shared.emit(|| Event::Dead { id, attempt, error: error.clone() });
            return Ack { id, outcome: Outcome::Dead { error } };
        }
    };
    let cx = TaskCx::new(&task, shared.worker_cx.clone(), shared.abort.clone(), Some(Arc::clone(&shared.cancels)));
    let result = match std::future::poll_fn(|c| service.poll_ready(c)).await {
        Ok(()) => service.call(Request { args, cx }).await,
        Err(error) => Err(error),
    };
    let outcome = match result {
        Ok(output) => match J::__encode_output::<B::Codec>(&output) {
            Ok(result) => {
                shared.emit(|| Event::Completed { id, attempt });
                return Ack { id, outcome: Outcome::Done { result } };
            }
            Err(error) => Outcome::Dead {
                error: format!("task {id} (job `{}`) succeeded but its output could not be encoded: {error}", J::NAME),
            },
        },
        Err(error) => outcome_of(&error, &task, &shared.fallback_backoff),
    };
    match &outcome {
        Outcome::Retry { at, error } => {
            tracing::debug!(%id, attempt, %error, "run failed; will retry");
            shared.emit(|| Event::Retrying { id, attempt, at: at.to_system_time(), error: error.clone() });
        }
        Outcome::Dead { error } => {
            tracing::warn!(%id, attempt, %error, "task is dead");
            shared.emit(|| Event::Dead { id, attempt, error: error.clone() });
        }
        Outcome::Snooze { at } => shared.emit(|| Event::Snoozed { id, until: at.to_system_time() }),
        Outcome::Done { .. } => {}
    }
    Ack { id, outcome }
}

/// What a failed run leads to. The retry layer's decision wins; without one
/// (a stack without `RetryLayer`) the job's backoff and the task's attempts
/// decide, so a retryable error is never lost.
fn outcome_of(error: &JobError, task: &Task, fallback: &Backoff) -> Outcome {
    let now = Timestamp::now();
    if let Some(delay) = error.snooze_delay() {
        return Outcome::Snooze { at: now.add(delay) };
    }
    let message = error.to_string();
    if error.is_abort() {
        return Outcome::Dead { error: format!("aborted: {message}") };
    }
    let retry_after = match error.decision() {
        Some(Decision::RetryAfter(delay)) => Some(*delay),
        Some(Decision::GiveUp) => None,
        None => (task.attempt < task.max_attempts).then(|| fallback.delay(task.attempt)),
    };
    match retry_after {
        Some(delay) => Outcome::Retry { at: now.add(delay), error: message },
        None => Outcome::Dead {
            error: format!("{message} (gave up after attempt {} of {})", task.attempt, task.max_attempts),
        },
    }
}

/// Writes acks in batches until told to stop, then drains what is queued.
/// A failed flush is retried (the batch is kept) until it succeeds or the
/// worker is killed; unacked tasks are then rescued as orphans.
async fn flush_loop<B: Backend>(
    shared: Arc<Shared<B>>,
    mut rx: mpsc::Receiver<Ack>,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    let mut batch = Vec::with_capacity(ACK_BATCH);
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut batch, ACK_BATCH) => n,
            () = stop.cancelled() => {
                rx.close();
                while rx.recv_many(&mut batch, ACK_BATCH).await > 0 {
                    flush(&shared, &mut batch, &kill).await;
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        flush(&shared, &mut batch, &kill).await;
    }
}

async fn flush<B: Backend>(shared: &Shared<B>, batch: &mut Vec<Ack>, kill: &CancellationToken) {
    let mut pause = MIN_ERROR_BACKOFF;
    loop {
        shared.flushing(batch);
        match shared.backend.ack(&shared.registration, batch).await {
            Ok(()) => {
                shared.flushed(batch);
                batch.clear();
                return;
            }
            Err(error) => {
                tracing::warn!(worker = %shared.registration.id, %error, acks = batch.len(), "ack failed; retrying");
                shared.emit(|| Event::BackendError { error: error.to_string() });
            }
        }
        tokio::select! {
            () = kill.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_ERROR_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffered(size: usize, waiting: u64, run: Duration) -> Buffered {
        let task = |n| Task {
            id: TaskId(n),
            attempt: 1,
            max_attempts: 3,
            run_at: Timestamp::now(),
            priority: 0,
            payload: Vec::new(),
        };
        let buffered = Buffered {
            size,
            runs: Arc::new(Semaphore::new(1)),
            waiting: std::sync::Mutex::new((0..waiting).map(task).collect()),
            run_micros: AtomicU64::new(u64::MAX),
        };
        buffered.record(run);
        buffered
    }

    #[test]
    fn quick_runs_keep_the_buffer() {
        // 4 slots at 100 µs a run finish 200 tasks in 5 ms: all 64 may wait.
        assert!(buffered(64, 64, Duration::from_micros(100)).shed(4).is_empty());
    }

    #[test]
    fn slightly_slower_runs_keep_it_too() {
        // 4 slots at 1 ms a run: an allowance of 20; 30 waiting is within twice that.
        assert!(buffered(64, 30, Duration::from_millis(1)).shed(4).is_empty());
    }

    #[test]
    fn slow_runs_give_back_the_last_claimed() {
        // 4 slots at 2 ms a run: an allowance of 10; the last 40 of 50 go back.
        let b = buffered(64, 50, Duration::from_millis(2));
        let shed: Vec<u64> = b.shed(4).iter().map(|t| t.id.0).collect();
        assert_eq!(shed, (10..50).collect::<Vec<_>>());
        assert_eq!(b.waiting.lock().unwrap_or_else(PoisonError::into_inner).len(), 10);
    }
}
