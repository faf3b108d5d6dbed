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
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::beat::{beat_loop, housekeeping_loop, register};
use super::flush::flush_loop;
use super::shared::{ACK_BATCH, Buffered, Liveness, MAX_ERROR_BACKOFF, MIN_ERROR_BACKOFF, Shared};
use super::{Event, Request, Worker};
use crate::Backoff;
use crate::backend::{Ack, Backend, Claimed, Outcome, Task, Waiter, WorkerRegistration};
use crate::codec::Codec;
use crate::context::{TaskCx, WorkerCx};
use crate::error::{CodecError, Error};
use crate::job::Job;
use crate::job_error::{Decision, JobError};
use crate::meter::Meters;
use crate::retry::decide;
use crate::task::TaskId;
use crate::time::Timestamp;
use crate::workflow::StepOutput;

/// How long a worker on a busy queue waits to gather free slots for a claim.
const GATHER: Duration = Duration::from_millis(2);
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
        // This worker's own stop, also fired when one of its loops dies.
        let shutdown = shutdown.child_token();
        let Worker {
            service,
            backend,
            data,
            concurrency,
            buffer,
            heartbeat,
            id,
            queue,
            events,
            unserved,
            schedule,
            ..
        } = self;
        let buffer = buffer
            .unwrap_or_else(|| backend.tuning().buffer.size(concurrency))
            .min(Semaphore::MAX_PERMITS - concurrency);
        let registration = WorkerRegistration {
            id: Arc::clone(&id),
            queue: Arc::clone(&queue),
            job: J::NAME,
            concurrency,
            started_at: Timestamp::now(),
            workflow_steps: is_workflow_step::<J>(),
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
            progress: Arc::default(),
            unserved,
            liveness: Liveness::default(),
            buffered: (buffer > 0).then(|| Buffered {
                size: buffer,
                runs: Arc::new(Semaphore::new(concurrency)),
                waiting: std::sync::Mutex::default(),
                run_micros: AtomicU64::new(u64::MAX),
            }),
            shutdown: shutdown.clone(),
            requeues: std::sync::Mutex::default(),
            meters: Meters::new(&queue, J::NAME, &id),
        });

        // Register before the first claim, so our tasks never look orphaned.
        if !register(&shared, &shutdown).await {
            return Ok(());
        }
        shared.emit(|| Event::Started { worker: Arc::clone(&id) });

        // The loops beside the claim loop; if one of them ends (it can only
        // panic), the worker stops claiming, releases its tasks and reports it.
        let mut beat = tokio::spawn(beat_loop(Arc::clone(&shared), heartbeat, kill.clone()));
        let mut housekeeping = tokio::spawn(housekeeping_loop(Arc::clone(&shared), heartbeat, kill.clone()));
        let (ack_tx, ack_rx) = mpsc::channel::<Ack>(ACK_BATCH.max(concurrency.saturating_mul(2)));
        let stop_flusher = CancellationToken::new();
        let mut flusher = tokio::spawn(flush_loop(Arc::clone(&shared), ack_rx, stop_flusher.clone(), kill.clone()));
        let progress = tokio::spawn(progress_loop(Arc::clone(&shared), kill.clone()));
        // The job's schedule enqueues while the worker runs.
        let schedule = schedule.map(|start| start());
        // One permit per claimed task until its run ends (or, buffered, until
        // shutdown drops it unstarted).
        let slots = Arc::new(Semaphore::new(concurrency + buffer));

        let mut crashed: Option<String> = None;
        let mut flusher_ended = false;
        tokio::select! {
            () = claim_loop::<J, B, S>(&shared, &service, &slots, &ack_tx, &shutdown) => {}
            ended = &mut beat => crashed = Some(loop_ended("heartbeat", ended)),
            ended = &mut housekeeping => crashed = Some(loop_ended("housekeeping", ended)),
            ended = &mut flusher => {
                flusher_ended = true;
                crashed = Some(loop_ended("ack flusher", ended));
            }
        }
        if let Some(message) = &crashed {
            tracing::error!(worker = %id, %message, "a worker loop ended; the worker stops and releases its tasks");
            // Buffered tasks never start; running ones get the grace below.
            shutdown.cancel();
        }

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
        if !flusher_ended && let Err(error) = flusher.await {
            tracing::error!(worker = %id, %error, "the ack flusher ended abnormally");
        }
        beat.abort();
        housekeeping.abort();
        progress.abort();
        if let Some(schedule) = schedule {
            let stats = schedule.stop().await;
            tracing::debug!(worker = %id, ?stats, "the job's schedule stopped");
        }
        let released = match shared.backend.release(&shared.registration).await {
            Ok(n) => n,
            Err(error) => {
                // The tasks stay `running` and are rescued after `orphan_after`.
                tracing::error!(worker = %id, %error, "could not release unfinished tasks");
                0
            }
        };
        shared.emit(|| Event::Stopped { worker: Arc::clone(&id), released });
        match crashed {
            Some(message) => Err(Error::WorkerCrashed { worker: id.to_string(), message }),
            None => Ok(()),
        }
    }
}

/// Why a worker loop that should run until the worker stops ended early.
fn loop_ended(name: &str, ended: Result<(), tokio::task::JoinError>) -> String {
    match ended {
        Ok(()) => format!("its {name} loop ended"),
        Err(join) if join.is_panic() => {
            let panic = join.into_panic();
            format!("its {name} loop panicked: {}", crate::panic::Panicked::from_payload(panic.as_ref()))
        }
        Err(join) => format!("its {name} loop was cancelled: {join}"),
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
    let parallel = shared.backend.tuning().parallel_claims.clamp(1, 8).min((capacity / 4).max(1));
    let mut claims: JoinSet<ClaimDone> = JoinSet::new();
    let mut waiter = shared.backend.waiter(&shared.registration.queue);
    let mut state = ClaimState { error_pause: MIN_ERROR_BACKOFF, starving: false, saturated: false, next_due: None };
    loop {
        if state.starving && claims.is_empty() {
            let mut idle = shared.backend.tuning().poll_interval;
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
    // A claim that found work ends a starving spell that a parallel claim's
    // empty answer began: there is work waiting, so don't idle.
    state.starving = claimed.tasks.is_empty();
    if claimed.tasks.is_empty() {
        state.next_due = match (state.next_due, claimed.next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        return ControlFlow::Continue(());
    }
    let mut tasks = claimed.tasks;
    shared.meters.claimed(tasks.len());
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
        // The run's future (the whole layer stack's) lives on the heap, so
        // the spawned future Tokio moves around is a few words.
        let run = Box::pin(run_one::<J, B, S>(&shared, service, task));
        tokio::select! {
            biased;
            ack = run => {
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
    // A codec's `Deserialize`/`Serialize` is user code too: a panic in it
    // makes the task dead with the message, never a task left `running`.
    let decoded = catch(|| <B::Codec as Codec>::decode::<J>(&task.payload, J::NAME));
    let args = match decoded {
        Ok(Ok(args)) => args,
        Ok(Err(error)) => {
            let outcome =
                Outcome::dead(format!("could not decode the arguments of task {id} (job `{}`): {error}", J::NAME));
            return dead_on_arrival(shared, id, attempt, outcome);
        }
        Err(panic) => {
            let outcome =
                Outcome::dead(format!("decoding the arguments of task {id} (job `{}`) panicked: {panic}", J::NAME));
            return dead_on_arrival(shared, id, attempt, outcome);
        }
    };
    let cx = TaskCx::new(
        &task,
        shared.worker_cx.clone(),
        shared.abort.clone(),
        Some(Arc::clone(&shared.cancels)),
        Some(Arc::clone(&shared.progress)),
    );
    let timer = shared.meters.started(task.run_at, &cx);
    let result = match std::future::poll_fn(|c| service.poll_ready(c)).await {
        Ok(()) => service.call(Request { args, cx }).await,
        Err(error) => Err(error),
    };
    let ack = finish_run::<J, B>(shared, &task, result).await;
    shared.meters.finished(timer, &ack.outcome);
    ack
}

/// The ack of a run that returned `result`.
async fn finish_run<J: Job, B: Backend>(shared: &Shared<B>, task: &Task, result: Result<J::Output, JobError>) -> Ack {
    let (id, attempt) = (task.id, task.attempt);
    // The run's last progress report lands before its result.
    if let Some(progress) = shared.progress.take(id)
        && let Err(error) = shared.backend.record_progress(&shared.registration, &[(id, progress)]).await
    {
        tracing::debug!(%id, %error, "could not write the run's last progress");
    }
    let outcome = match result {
        Ok(output) => match catch(|| encode_output::<J, B::Codec>(&output)) {
            Ok(Ok(result)) if result.len() > shared.backend.tuning().max_payload => Outcome::dead(format!(
                "task {id} (job `{}`) succeeded but its output is {} bytes encoded, more than the backend's \
                 max_payload of {} bytes",
                J::NAME,
                result.len(),
                shared.backend.tuning().max_payload
            )),
            Ok(Ok(result)) => {
                shared.emit(|| Event::Completed { id, attempt });
                return Ack { id, outcome: Outcome::Done { result } };
            }
            Ok(Err(error)) => Outcome::dead(format!(
                "task {id} (job `{}`) succeeded but its output could not be encoded: {error}",
                J::NAME
            )),
            Err(panic) => Outcome::dead(format!(
                "task {id} (job `{}`) succeeded but encoding its output panicked: {panic}",
                J::NAME
            )),
        },
        Err(error) => outcome_of(error, task, &shared.fallback_backoff),
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

/// How often a worker writes its runs' progress at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Writes the runs' latest progress reports, at most every [`PROGRESS_EVERY`].
async fn progress_loop<B: Backend>(shared: Arc<Shared<B>>, kill: CancellationToken) {
    loop {
        tokio::select! {
            () = kill.cancelled() => return,
            () = shared.progress.changed() => {}
        }
        let updates = shared.progress.take_all();
        if !updates.is_empty()
            && let Err(error) = shared.backend.record_progress(&shared.registration, &updates).await
        {
            // Progress is advisory: a lost report is replaced by the next.
            tracing::debug!(worker = %shared.registration.id, %error, "could not write progress");
        }
        tokio::select! {
            () = kill.cancelled() => return,
            () = tokio::time::sleep(PROGRESS_EVERY) => {}
        }
    }
}

/// Runs `f`, turning a panic into its message.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, crate::panic::Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|panic| crate::panic::Panicked::from_payload(panic.as_ref()))
}

/// The ack of a task that could not even start.
fn dead_on_arrival<B>(shared: &Shared<B>, id: TaskId, attempt: u32, outcome: Outcome) -> Ack {
    shared.meters.undecodable();
    if let Outcome::Dead { error } = &outcome {
        tracing::warn!(%id, attempt, %error, "task is dead");
        shared.emit(|| Event::Dead { id, attempt, error: error.clone() });
    }
    Ack { id, outcome }
}

/// Whether `J` is the job of a workflow's steps (its output arrives encoded).
fn is_workflow_step<J: Job>() -> bool {
    std::any::TypeId::of::<J::Output>() == std::any::TypeId::of::<StepOutput>()
}

/// A run's output as stored: encoded with the backend's codec, except a
/// workflow step's, which is already encoded and stored as it is.
fn encode_output<J: Job, C: Codec>(output: &J::Output) -> Result<Vec<u8>, CodecError> {
    match (output as &dyn std::any::Any).downcast_ref::<StepOutput>() {
        Some(step) => Ok(step.0.0.clone()),
        None => C::encode(output, J::NAME),
    }
}

/// What a failed run leads to. The retry layer's decision wins; without one
/// (a stack without `RetryLayer`) the job's backoff and the task's attempts
/// decide, so a retryable error is never lost.
fn outcome_of(error: JobError, task: &Task, fallback: &Backoff) -> Outcome {
    let now = Timestamp::now();
    if let Some(delay) = error.snooze_delay() {
        return Outcome::Snooze { at: now.add(delay) };
    }
    let message = error.to_string();
    if error.is_abort() {
        return Outcome::dead(format!("aborted: {message}"));
    }
    let error = decide(error, task.attempt, task.max_attempts, fallback);
    match error.decision() {
        Some(Decision::RetryAfter(delay)) => Outcome::retry(now.add(*delay), message),
        _ => Outcome::dead(format!("{message} (gave up after attempt {} of {})", task.attempt, task.max_attempts)),
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
            trace: None,
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
