//! Workers: claim tasks of one job from a backend and run them through a
//! Tower stack, at most `concurrency` at once.

mod beat;
mod flush;
mod run;
mod shared;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tower::layer::util::Stack;
use tower::{Layer, Service};

use crate::Backoff;
use crate::backend::Backend;
use crate::capability::Schedules;
use crate::context::DataMap;
use crate::context::Requirements;
use crate::job::Job;
use crate::job_error::JobError;
use crate::panic::{CatchPanic, CatchPanicLayer};
use crate::request::Request;
use crate::retry::{Retry, RetryLayer};
use crate::schedule::{Schedule, ScheduleTask, Tick, schedule_task};
use crate::task::TaskId;
use crate::timeout::{Timeout, TimeoutLayer};
use crate::trace::{Parent, Trace, TraceLayer};

/// The innermost service: calls [`Job::run`].
pub struct JobService<J> {
    _job: PhantomData<fn(J)>,
}

impl<J> JobService<J> {
    /// The service.
    pub const fn new() -> Self {
        Self { _job: PhantomData }
    }
}

impl<J> Default for JobService<J> {
    fn default() -> Self {
        Self::new()
    }
}

impl<J> Clone for JobService<J> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<J> fmt::Debug for JobService<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobService")
    }
}

impl<J: Job> Service<Request<J>> for JobService<J> {
    type Response = J::Output;
    type Error = JobError;
    type Future = Pin<Box<dyn Future<Output = Result<J::Output, JobError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), JobError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<J>) -> Self::Future {
        Box::pin(request.args.run(request.cx))
    }
}

/// The stack every worker starts with, configured from [`Job::options`]:
/// tracing → retry (the job's backoff) → timeout → catch-panic → handler.
///
/// Retry sits outside timeout so that a timed-out run is retried with the
/// job's backoff like any other failure.
#[derive(Debug, Clone)]
pub struct DefaultLayers {
    backoff: Backoff,
    timeout: Option<Duration>,
    parent: Parent,
}

impl DefaultLayers {
    /// The stack for these options.
    pub const fn new(backoff: Backoff, timeout: Option<Duration>) -> Self {
        Self { backoff, timeout, parent: Parent::Child }
    }

    /// The same stack, with runs continuing their stored trace as `parent`
    /// says (see [`crate::trace`]).
    pub const fn trace_parent(self, parent: Parent) -> Self {
        Self { parent, ..self }
    }
}

impl<S> Layer<S> for DefaultLayers {
    type Service = Trace<Retry<Timeout<CatchPanic<S>>, Backoff>>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = CatchPanicLayer::new().layer(inner);
        let inner = TimeoutLayer::new(self.timeout).layer(inner);
        let inner = RetryLayer::new(self.backoff).layer(inner);
        TraceLayer::with_parent(self.parent).layer(inner)
    }
}

/// Something that happened in a worker, for [`WorkerBuilder::on_event`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The worker registered and started claiming.
    Started {
        /// The worker's id.
        worker: Arc<str>,
    },
    /// A run succeeded.
    Completed {
        /// The task.
        id: TaskId,
        /// Its attempt.
        attempt: u32,
    },
    /// A run failed and the task will run again.
    Retrying {
        /// The task.
        id: TaskId,
        /// The attempt that failed.
        attempt: u32,
        /// When it runs again.
        at: SystemTime,
        /// Why it failed.
        error: String,
    },
    /// A run failed for good; the task is dead.
    Dead {
        /// The task.
        id: TaskId,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
    },
    /// A run asked to be run again later.
    Snoozed {
        /// The task.
        id: TaskId,
        /// When it runs again.
        until: SystemTime,
    },
    /// Tasks of dead workers were put back.
    Rescued {
        /// How many.
        count: u64,
    },
    /// The backend failed; the worker backs off and tries again.
    BackendError {
        /// What failed.
        error: String,
    },
    /// The queue holds waiting tasks of a job that no worker of this
    /// process serves (a job type removed by a deploy, a typo in a name).
    Unserved {
        /// The queue.
        queue: Arc<str>,
        /// The unserved job.
        job: String,
        /// How many of its tasks wait.
        count: u64,
    },
    /// Unserved tasks waited longer than the monitor's grace and went dead.
    Buried {
        /// The queue.
        queue: Arc<str>,
        /// The unserved job.
        job: String,
        /// How many went dead.
        count: u64,
    },
    /// The worker stopped; `released` unfinished tasks went back to the queue.
    Stopped {
        /// The worker's id.
        worker: Arc<str>,
        /// How many tasks were released.
        released: u64,
    },
}

type EventHandler = Arc<dyn Fn(&Event) + Send + Sync>;

/// Configures a worker for job `J` on backend `B`.
///
/// `#[errand::job]` generates `MyJob::worker(&backend)`, which returns this
/// with the job's retry, timeout, tracing and panic layers already stacked.
///
/// # Examples
///
/// ```
/// use errand_runtime::{Job, JobError, TaskCx, WorkerBuilder, memory::MemoryBackend};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Ping;
/// impl Job for Ping {
///     const NAME: &'static str = "ping";
///     type Output = ();
///     async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) }
/// }
///
/// let worker = WorkerBuilder::<Ping, _>::new(MemoryBackend::new())
///     .concurrency(8)
///     .data(String::from("shared"))
///     .build();
/// # let _ = worker;
/// ```
#[must_use]
pub struct WorkerBuilder<J, B, L = DefaultLayers> {
    backend: B,
    layer: L,
    data: DataMap,
    concurrency: usize,
    buffer: Option<usize>,
    heartbeat: Duration,
    queue: Option<String>,
    events: Option<EventHandler>,
    schedule: Option<ScheduleTask>,
    _job: PhantomData<fn(J)>,
}

impl<J: Job, B: Backend> WorkerBuilder<J, B> {
    /// A worker for `J` on `backend`, with the job's default layers.
    pub fn new(backend: B) -> Self {
        let options = J::options();
        Self {
            backend,
            layer: DefaultLayers::new(options.backoff, options.timeout),
            data: DataMap::default(),
            concurrency: 16,
            buffer: None,
            heartbeat: Duration::from_secs(5),
            queue: None,
            events: None,
            schedule: None,
            _job: PhantomData,
        }
    }

    /// How each run's span continues the trace its task was enqueued in
    /// (feature `otel`): as the enqueuing span's child (the default) or in a
    /// trace of its own linked to it. See [`crate::trace`]. Call it before
    /// [`layer`](Self::layer), which wraps the default stack.
    pub fn trace_parent(mut self, parent: Parent) -> Self {
        self.layer = self.layer.trace_parent(parent);
        self
    }
}

impl<J: Job, B: Backend, L> WorkerBuilder<J, B, L> {
    /// Runs on another backend.
    pub fn backend<B2: Backend>(self, backend: B2) -> WorkerBuilder<J, B2, L> {
        WorkerBuilder {
            backend,
            layer: self.layer,
            data: self.data,
            concurrency: self.concurrency,
            buffer: self.buffer,
            heartbeat: self.heartbeat,
            queue: self.queue,
            events: self.events,
            schedule: self.schedule,
            _job: PhantomData,
        }
    }

    /// Adds a Tower layer. Layers added here run inside the default ones (so
    /// the job's timeout and panic handling cover them), in the order added:
    /// the first added is the outermost of them.
    pub fn layer<L2>(self, layer: L2) -> WorkerBuilder<J, B, Stack<L2, L>> {
        WorkerBuilder {
            backend: self.backend,
            layer: Stack::new(layer, self.layer),
            data: self.data,
            concurrency: self.concurrency,
            buffer: self.buffer,
            heartbeat: self.heartbeat,
            queue: self.queue,
            events: self.events,
            schedule: self.schedule,
            _job: PhantomData,
        }
    }

    /// Shares a value with every run: a parameter `Data<T>` receives it.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// Shares a value you already hold in an `Arc` — with other workers, or
    /// with the rest of your program: a parameter `Data<T>` receives this
    /// very `Arc`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::AtomicU64;
    /// # use errand_runtime::{Job, JobError, TaskCx, WorkerBuilder, memory::MemoryBackend};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping;
    /// # impl Job for Ping { const NAME: &'static str = "ping"; type Output = ();
    /// #   async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) } }
    ///
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let worker = WorkerBuilder::<Ping, _>::new(MemoryBackend::new()).data_arc(Arc::clone(&seen));
    /// # let _ = worker;
    /// ```
    pub fn data_arc<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.data.insert_arc(value);
        self
    }

    /// Runs at most `n` tasks at once (16 by default; at least 1, at most
    /// [`MAX_CONCURRENCY`]: a larger value makes the worker fail to start
    /// with a configuration error).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Lets the worker hold up to `n` claimed tasks beyond `concurrency`,
    /// waiting for a free slot, so that on a busy queue every claim fetches a
    /// full batch (the backend's default: 0 for SQLite and memory, which
    /// claim without a round trip; `concurrency` for Redis; room for four
    /// claims of 256 for PostgreSQL, `1024 - concurrency`, at least
    /// `concurrency`). Buffered tasks hold their arguments in memory: lower
    /// it for jobs with large payloads.
    ///
    /// The buffer follows the runs' pace: the worker claims only as many
    /// waiting tasks as its slots finish in about 5 ms, and when its runs
    /// slow down so that more than twice that many wait, it gives the excess
    /// back to the queue (in their place, the attempt not counted), so slow
    /// jobs are never held back from other workers. `0` turns it off.
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = Some(n.min(MAX_CONCURRENCY * 64));
        self
    }

    /// How often the worker tells the backend it is alive (5 s by default).
    /// Keep it well under the backend's `orphan_after` (a third or less): a
    /// worker whose heartbeat is not shorter than `orphan_after` fails to
    /// start with a configuration error.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval.max(Duration::from_millis(10));
        self
    }

    /// Serves another queue than the job's own.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Calls `handler` for every [`Event`]: runs finished, retries, backend
    /// errors. Keep it quick; it runs on the worker's tasks.
    pub fn on_event(mut self, handler: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.events = Some(Arc::new(handler));
        self
    }

    /// Runs `schedule` while the worker runs: at every tick, `make(tick)` is
    /// enqueued into this worker's backend, once per tick however many
    /// processes run the same schedule (see [`crate::schedule`]).
    /// `#[errand::job(cron = "…")]` sets this on the job's `worker()`. A
    /// schedule keeps the backend it was set with, even after
    /// [`backend`](Self::backend). Needs [`Schedules`](crate::capability::Schedules).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use errand_runtime::schedule::{Interval, Tick};
    /// # use errand_runtime::{Job, JobError, TaskCx, WorkerBuilder, memory::MemoryBackend};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Sweep { at: Tick }
    /// # impl Job for Sweep { const NAME: &'static str = "sweep"; type Output = ();
    /// #   async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) } }
    /// let worker = WorkerBuilder::<Sweep, _>::new(MemoryBackend::new())
    ///     .schedule(Interval::new(Duration::from_secs(60)), |at| Sweep { at });
    /// # let _ = worker;
    /// ```
    pub fn schedule<S: Schedule>(mut self, schedule: S, make: impl Fn(Tick) -> J + Send + Sync + 'static) -> Self
    where
        B: Schedules,
    {
        self.schedule = Some(schedule_task(self.backend.clone(), schedule, make));
        self
    }

    /// Builds the worker.
    pub fn build(self) -> Worker<J, B, L::Service>
    where
        L: Layer<JobService<J>>,
        L::Service: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<J>>>::Future: Send + 'static,
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into());
        let nonce = (crate::backoff::random_unit() * 1e9) as u64;
        let id: Arc<str> = Arc::from(format!("{}@{}:{}:{}-{:x}", J::NAME, host, std::process::id(), n, nonce));
        let queue: Arc<str> = Arc::from(self.queue.as_deref().unwrap_or(J::QUEUE));
        Worker {
            service: self.layer.layer(JobService::new()),
            backend: self.backend,
            data: self.data,
            concurrency: self.concurrency,
            buffer: self.buffer,
            heartbeat: self.heartbeat,
            id,
            queue,
            events: self.events,
            unserved: None,
            schedule: self.schedule,
            _job: PhantomData,
        }
    }
}

impl<J, B: fmt::Debug, L: fmt::Debug> fmt::Debug for WorkerBuilder<J, B, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("job", &std::any::type_name::<J>())
            .field("backend", &self.backend)
            .field("layer", &self.layer)
            .field("data", &self.data)
            .field("concurrency", &self.concurrency)
            .field("heartbeat", &self.heartbeat)
            .field("queue", &self.queue)
            .field("schedule", &self.schedule.is_some())
            .finish_non_exhaustive()
    }
}

/// The most tasks one worker runs at once.
pub const MAX_CONCURRENCY: usize = 100_000;

/// A built worker; run it with a [`Monitor`](crate::Monitor).
pub struct Worker<J, B, S> {
    service: S,
    backend: B,
    data: DataMap,
    concurrency: usize,
    buffer: Option<usize>,
    heartbeat: Duration,
    id: Arc<str>,
    queue: Arc<str>,
    events: Option<EventHandler>,
    pub(crate) unserved: Option<UnservedCheck>,
    schedule: Option<ScheduleTask>,
    _job: PhantomData<fn(J)>,
}

/// What one worker per queue checks for the monitor: waiting tasks of jobs
/// that no worker of any process serves.
#[derive(Debug, Clone)]
pub(crate) struct UnservedCheck {
    /// The jobs this monitor serves on the queue (for messages).
    pub(crate) served: Vec<&'static str>,
    /// Bury the waiting tasks of a job unserved for this long.
    pub(crate) bury_after: Option<Duration>,
}

impl<J: Job, B, S> Worker<J, B, S> {
    /// This worker's unique id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queue it serves.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Checks that the worker can start: every `Data<T>` the job declares
    /// was provided, its concurrency is at most [`MAX_CONCURRENCY`], and its
    /// heartbeat is shorter than the backend's `orphan_after`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingData`](crate::Error::MissingData) naming the job and
    /// the type; [`Error::Config`](crate::Error::Config) for the settings.
    pub fn check(&self) -> Result<(), crate::Error>
    where
        B: Backend,
    {
        if self.concurrency > MAX_CONCURRENCY {
            return Err(crate::Error::Config(format!(
                "worker for job `{}`: concurrency {} is more than errand supports ({MAX_CONCURRENCY})",
                J::NAME,
                self.concurrency
            )));
        }
        let orphan_after = self.backend.tuning().orphan_after;
        if self.heartbeat >= orphan_after {
            return Err(crate::Error::Config(format!(
                "worker for job `{}`: its heartbeat ({:?}) must be shorter than the {} backend's orphan_after                  ({orphan_after:?}), or live workers' tasks would be rescued; a third of it or less is safest",
                J::NAME,
                self.heartbeat,
                B::NAME
            )));
        }
        let mut requirements = Requirements::default();
        J::requirements(&mut requirements);
        for (id, type_name) in requirements.iter() {
            if !self.data.contains(id) {
                return Err(crate::Error::MissingData { job: J::NAME, type_name });
            }
        }
        Ok(())
    }
}

impl<J, B: fmt::Debug, S> fmt::Debug for Worker<J, B, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("backend", &self.backend)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}
