//! The traits a storage backend implements, and the ones built on them.
//!
//! - [`Backend`]: what a worker needs (claim, ack, heartbeat, rescue,
//!   release, wake-ups) and the raw [`push`](Backend::push) of new tasks;
//! - [`TaskSink`]: typed enqueueing, implemented for every backend;
//! - [`Expose`]: counts, task listings, workers and admin actions for the
//!   board and the CLI;
//! - [`BackendExt`]: typed reads on top of `Expose`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::codec::Codec;
use crate::error::Error;
use crate::job::Job;
use crate::task::{
    Ack, Claimed, NewTask, QueueCounts, TaskFilter, TaskId, TaskInfo, Unserved, WorkerInfo, WorkerRegistration,
};
use crate::time::Timestamp;

/// A storage backend, as a worker uses it.
///
/// One backend value is a handle to one connection pool: clone it freely and
/// give it to every worker and enqueuer in the process.
///
/// The contract every implementation meets is checked by the conformance
/// suite (`errand_runtime::conformance_tests!`, feature
/// `test-suite`).
pub trait Backend: Clone + Send + Sync + 'static {
    /// How arguments and results are stored.
    type Codec: Codec;
    /// How an idle worker waits for new tasks.
    type Waiter: Waiter;

    /// The backend's name for messages (`"sqlite"`, `"memory"`, …).
    fn name(&self) -> &'static str;

    /// Writes new tasks and returns their ids, in order. A task whose unique
    /// key matches a live task of the same job (or, with `unique_for`, one
    /// created within that window) is not written: the existing task's id is
    /// returned. Keys are scoped to the job.
    fn push(&self, tasks: Vec<NewTask>) -> impl Future<Output = Result<Vec<TaskId>, Error>> + Send;

    /// Claims up to `max` due tasks of `worker.job` on `worker.queue`, highest
    /// priority first, then earliest `run_at`; marks them `running` for this
    /// worker and increments their attempt.
    fn claim(&self, worker: &WorkerRegistration, max: usize) -> impl Future<Output = Result<Claimed, Error>> + Send;

    /// Records the outcomes of finished runs. An ack for a task that is no
    /// longer `running` for this worker (it was rescued or cancelled
    /// meanwhile) is ignored.
    fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records that the worker is alive (registering it on the first beat).
    /// A worker beats before its first claim.
    fn heartbeat(&self, worker: &WorkerRegistration) -> impl Future<Output = Result<(), Error>> + Send;

    /// Puts back the `running` tasks of workers not seen for
    /// [`orphan_after`](Backend::orphan_after): `pending` again, or `dead` if
    /// that was their last attempt. Returns how many were rescued.
    fn rescue_orphans(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Graceful stop: the worker's unfinished tasks go back to `pending`
    /// without using an attempt, and the worker is deregistered.
    fn release(&self, worker: &WorkerRegistration) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Tasks `running` for this worker that were cancelled meanwhile; asked
    /// with every heartbeat so that their `TaskCx::cancellation` token fires.
    /// The default reports none: a backend that cannot tell says so in its
    /// docs (cancelled runs then finish, and their result is discarded).
    fn cancelled_tasks(&self, worker: &WorkerRegistration) -> impl Future<Output = Result<Vec<TaskId>, Error>> + Send {
        let _ = worker;
        async { Ok(Vec::new()) }
    }

    /// Waiting (`pending` or `retry`) tasks of `queue` whose job is not in
    /// `served`, counted by job. The default reports none: a backend that
    /// cannot tell says so in its docs.
    fn unserved(
        &self,
        queue: &str,
        served: &[&'static str],
    ) -> impl Future<Output = Result<Vec<Unserved>, Error>> + Send {
        let _ = (queue, served);
        async { Ok(Vec::new()) }
    }

    /// Sends the waiting tasks of `job` on `queue` that were due at or before
    /// `due_before` to `dead` with `reason` (they are kept, and can be
    /// retried once a worker for the job runs). Returns how many.
    fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        reason: &str,
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        let _ = (queue, job, due_before, reason);
        async { Ok(0) }
    }

    /// A waiter that an idle worker of this queue awaits between claims.
    fn waiter(&self, queue: &str) -> Self::Waiter;

    /// How many claims one worker may have in flight at once (1 by default).
    /// A backend whose claim is a network round trip returns more, so that
    /// the server stays busy while earlier claims' tasks run; the worker
    /// caps it by its concurrency (one claim per 4 slots).
    fn parallel_claims(&self) -> usize {
        1
    }

    /// How many claimed tasks a worker of `concurrency` may hold beyond its
    /// running ones, waiting for a free slot (0 by default). A backend whose
    /// claim is a network round trip returns more, so that each claim fetches
    /// a full batch on a busy queue. The worker only uses it while runs are
    /// quick (see [`WorkerBuilder::buffer`](crate::WorkerBuilder::buffer)).
    fn buffer(&self, concurrency: usize) -> usize {
        let _ = concurrency;
        0
    }

    /// How long an idle worker waits at most before claiming again: covers
    /// tasks enqueued by other processes when the backend cannot notify.
    fn poll_interval(&self) -> Duration;

    /// How long a worker may go without a heartbeat before its tasks are
    /// rescued (30 s by default).
    fn orphan_after(&self) -> Duration;
}

/// How an idle worker waits for new work.
///
/// The worker calls [`arm`](Waiter::arm) before each claim and
/// [`wait`](Waiter::wait) when the claim came back empty; `wait` must return at
/// once if work arrived since `arm`, so no wake-up is lost in between.
pub trait Waiter: Send + 'static {
    /// Marks everything seen so far as seen.
    fn arm(&mut self);
    /// Resolves when work may have arrived since the last `arm`.
    fn wait(&mut self) -> impl Future<Output = ()> + Send;
}

/// Wake-ups by queue name inside one process: backends call
/// [`notify`](Notifier::notify) after writing tasks, and hand out
/// [`WakeSignal`]s as their [`Backend::Waiter`].
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    queues: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Notifier {
    /// Creates an empty notifier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the workers waiting on `queue`.
    pub fn notify(&self, queue: &str) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = queues.get(queue) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes the workers of every queue.
    pub fn notify_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        for tx in queues.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A waiter for `queue`.
    pub fn subscribe(&self, queue: &str) -> WakeSignal {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = match queues.get(queue) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                queues.insert(queue.to_owned(), tx);
                rx
            }
        };
        WakeSignal { rx }
    }
}

/// The [`Waiter`] handed out by a [`Notifier`].
#[derive(Debug)]
pub struct WakeSignal {
    rx: watch::Receiver<u64>,
}

impl Waiter for WakeSignal {
    fn arm(&mut self) {
        self.rx.mark_unchanged();
    }

    async fn wait(&mut self) {
        // The sender lives in the notifier, which outlives every worker; if it
        // is gone anyway, fall back to the worker's poll interval.
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Options for one enqueue: delay, priority, deduplication, retries.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::Enqueue;
///
/// let opts = Enqueue::new().delay(Duration::from_secs(60)).priority(5).unique_key("welcome:x");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Enqueue {
    run_at: Option<Timestamp>,
    delay: Option<Duration>,
    priority: Option<i16>,
    unique_key: Option<String>,
    unique_for: Option<Duration>,
    retries: Option<u32>,
    queue: Option<String>,
}

impl Enqueue {
    /// The job's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self.run_at = None;
        self
    }

    /// Starts no earlier than `time`.
    pub fn run_at(mut self, time: SystemTime) -> Self {
        self.run_at = Some(Timestamp::from(time));
        self.delay = None;
        self
    }

    /// Higher runs first; overrides the job's priority.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Not enqueued while a live task of the same job has the same key (keys
    /// are scoped to the job); the existing task's id is returned instead.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// With a unique key: also dedupe against tasks created within `window`,
    /// finished or not.
    pub fn unique_for(mut self, window: Duration) -> Self {
        self.unique_for = Some(window);
        self
    }

    /// Overrides the job's retry count.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Enqueues on another queue than the job's own. A worker for the job
    /// only serves its job's queue unless built with `.queue(...)`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Builds the stored task for `job`, encoded with codec `C`.
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded.
    pub fn to_task<J: Job, C: Codec>(&self, job: &J, now: Timestamp) -> Result<NewTask, Error> {
        let options = J::options();
        let payload = C::encode(job, J::NAME)?;
        let run_at = match (self.run_at, self.delay) {
            (Some(at), _) => at,
            (None, Some(delay)) => now.add(delay),
            (None, None) => now,
        };
        let unique_key = self.unique_key.clone().or_else(|| job.unique_key());
        Ok(NewTask {
            job: J::NAME,
            queue: self.queue.clone().unwrap_or_else(|| J::QUEUE.to_owned()),
            payload,
            run_at,
            priority: self.priority.unwrap_or(options.priority),
            max_attempts: self.retries.unwrap_or(options.retries).saturating_add(1),
            unique_for: if unique_key.is_some() { self.unique_for.or(options.unique_for) } else { None },
            unique_key,
        })
    }
}

/// Typed enqueueing, for every [`Backend`].
///
/// Only a [`Job`] can be enqueued, so its argument names and types are
/// checked by the compiler.
pub trait TaskSink: Backend {
    /// Enqueues one task with the job's defaults.
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the backend fails.
    fn enqueue<J: Job>(&self, job: J) -> impl Future<Output = Result<TaskId, Error>> + Send {
        self.enqueue_with(job, Enqueue::new())
    }

    /// Enqueues one task with options.
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the backend fails.
    fn enqueue_with<J: Job>(&self, job: J, options: Enqueue) -> impl Future<Output = Result<TaskId, Error>> + Send {
        let task = options.to_task::<J, Self::Codec>(&job, Timestamp::now());
        async move {
            let ids = self.push(vec![task?]).await?;
            ids.into_iter()
                .next()
                .ok_or_else(|| Error::Config(format!("{} backend returned no id for an enqueued task", self.name())))
        }
    }

    /// Enqueues many tasks in one batch (one statement or pipeline where the
    /// backend allows).
    ///
    /// # Errors
    ///
    /// When an argument cannot be encoded (nothing is written) or the backend fails.
    fn enqueue_bulk<J: Job, I>(&self, jobs: I) -> impl Future<Output = Result<Vec<TaskId>, Error>> + Send
    where
        I: IntoIterator<Item = J>,
    {
        let now = Timestamp::now();
        let options = Enqueue::new();
        let tasks: Result<Vec<NewTask>, Error> =
            jobs.into_iter().map(|job| options.to_task::<J, Self::Codec>(&job, now)).collect();
        async move { self.push(tasks?).await }
    }
}

impl<B: Backend> TaskSink for B {}

/// What dashboards and tools read and do: counts, task listings, workers,
/// retrying dead tasks and cancelling.
pub trait Expose: Backend {
    /// Task counts per queue and state.
    fn counts(&self) -> impl Future<Output = Result<Vec<QueueCounts>, Error>> + Send;

    /// Tasks matching `filter`, by ascending id.
    fn tasks(&self, filter: &TaskFilter) -> impl Future<Output = Result<Vec<TaskInfo>, Error>> + Send;

    /// One task.
    fn task(&self, id: TaskId) -> impl Future<Output = Result<Option<TaskInfo>, Error>> + Send;

    /// Workers that have beaten within `orphan_after`.
    fn workers(&self) -> impl Future<Output = Result<Vec<WorkerInfo>, Error>> + Send;

    /// Puts a `dead` or `cancelled` task back to `pending` with a fresh set of
    /// attempts. Returns whether it did.
    fn retry_task(&self, id: TaskId) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Cancels a `pending` or `retry` task (it never starts) or a `running`
    /// one (its result is discarded). Returns whether it did.
    fn cancel_task(&self, id: TaskId) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// Typed reads for every backend that implements [`Expose`].
pub trait BackendExt: Expose {
    /// The decoded output of a `done` task of job `J`, or `None` if the task
    /// does not exist or has not finished successfully.
    ///
    /// # Errors
    ///
    /// When the backend fails or the stored output does not decode as `J::Output`.
    fn result<J: Job>(&self, id: TaskId) -> impl Future<Output = Result<Option<J::Output>, Error>> + Send {
        async move {
            let Some(info) = self.task(id).await? else { return Ok(None) };
            match info.result {
                Some(bytes) if info.state == crate::TaskState::Done => {
                    let what = format!("the result of task {id} (job `{}`)", J::NAME);
                    Ok(Some(<Self::Codec as Codec>::decode(&bytes, &what)?))
                }
                _ => Ok(None),
            }
        }
    }

    /// Task counts of one queue.
    fn queue_counts(&self, queue: &str) -> impl Future<Output = Result<QueueCounts, Error>> + Send {
        async move {
            Ok(self
                .counts()
                .await?
                .into_iter()
                .find(|c| c.queue == queue)
                .unwrap_or_else(|| QueueCounts { queue: queue.to_owned(), ..QueueCounts::default() }))
        }
    }
}

impl<B: Expose> BackendExt for B {}
