//! What a running job can see: its task ([`TaskCx`]), its worker
//! ([`WorkerCx`]) and shared data ([`Data`]).

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio_util::sync::CancellationToken;

use crate::job_error::JobError;
use crate::task::{Progress, TaskId};
use crate::time::Timestamp;

/// The shared data a job needs, collected by [`Job::requirements`](crate::Job::requirements).
#[derive(Debug, Default, Clone)]
pub struct Requirements {
    data: Vec<(TypeId, &'static str)>,
}

impl Requirements {
    /// Records that runs need `Data<T>`.
    pub fn data<T: Send + Sync + 'static>(&mut self) {
        let id = TypeId::of::<T>();
        if !self.data.iter().any(|(t, _)| *t == id) {
            self.data.push((id, std::any::type_name::<T>()));
        }
    }

    /// The recorded types.
    pub fn iter(&self) -> impl Iterator<Item = (TypeId, &'static str)> + '_ {
        self.data.iter().copied()
    }
}

/// Shared data given to a worker with `.data(value)` and injected into every
/// run that takes a `Data<T>` parameter.
///
/// # Examples
///
/// ```
/// use errand_runtime::Data;
///
/// struct Mailer { from: String }
/// let data = Data::new(Mailer { from: "me@example.com".into() });
/// assert_eq!(data.from, "me@example.com");
/// ```
pub struct Data<T: ?Sized>(Arc<T>);

impl<T> Data<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }
}

impl<T: ?Sized> Data<T> {
    /// The shared `Arc`.
    pub fn into_inner(self) -> Arc<T> {
        self.0
    }
}

impl<T: ?Sized> Clone for Data<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> Deref for Data<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Data<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Data").field(&&*self.0).finish()
    }
}

/// A type map of the values given to a worker with `.data(...)`.
///
/// A list, not a hash map: a worker has a handful of values, and every run
/// that takes `Data<T>` looks one up, which a scan of a few `TypeId`s does
/// faster than hashing one.
#[derive(Clone, Default)]
pub struct DataMap {
    values: Vec<(TypeId, &'static str, Arc<dyn Any + Send + Sync>)>,
}

impl DataMap {
    /// Adds (or replaces) a value.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_arc(Arc::new(value));
    }

    /// Adds (or replaces) a value that is already shared: every `Data<T>`
    /// handed out points to this same `Arc`.
    pub fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        let id = TypeId::of::<T>();
        match self.values.iter_mut().find(|(t, _, _)| *t == id) {
            Some(slot) => slot.2 = value,
            None => self.values.push((id, std::any::type_name::<T>(), value)),
        }
    }

    /// The value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Data<T>> {
        let id = TypeId::of::<T>();
        let (_, _, any) = self.values.iter().find(|(t, _, _)| *t == id)?;
        Arc::clone(any).downcast::<T>().ok().map(Data)
    }

    /// Whether a value of this type is present.
    pub fn contains(&self, id: TypeId) -> bool {
        self.values.iter().any(|(t, _, _)| *t == id)
    }
}

impl fmt::Debug for DataMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values.iter().map(|(_, name, _)| name)).finish()
    }
}

/// The worker a task runs on: its name and its shutdown signal.
#[derive(Clone)]
pub struct WorkerCx {
    inner: Arc<WorkerCxInner>,
}

struct WorkerCxInner {
    id: Arc<str>,
    queue: Arc<str>,
    job: &'static str,
    shutdown: CancellationToken,
    data: DataMap,
    /// `process <queue>`, the name of its runs' spans, made once.
    span_name: Box<str>,
}

impl WorkerCx {
    pub(crate) fn new(
        id: Arc<str>,
        queue: Arc<str>,
        job: &'static str,
        shutdown: CancellationToken,
        data: DataMap,
    ) -> Self {
        let span_name = format!("process {queue}").into_boxed_str();
        Self { inner: Arc::new(WorkerCxInner { id, queue, job, shutdown, data, span_name }) }
    }

    /// This worker's unique id (`<job>@<host>:<pid>:<n>`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The queue it serves.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// The job it runs.
    pub fn job(&self) -> &'static str {
        self.inner.job
    }

    /// The name of its runs' spans, `process <queue>` (see [`crate::trace`]).
    pub(crate) fn span_name(&self) -> &str {
        &self.inner.span_name
    }

    /// Whether the worker has been asked to stop. Long jobs may check this and
    /// return early (e.g. with [`JobError::snooze`]).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Resolves when the worker is asked to stop.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancelled().await;
    }

    pub(crate) fn data(&self) -> &DataMap {
        &self.inner.data
    }
}

impl fmt::Debug for WorkerCx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerCx").field("id", &self.inner.id).field("queue", &self.inner.queue).finish()
    }
}

/// The task being run: id, attempt, queue, schedule, priority and a
/// cancellation token, plus access to the worker's shared data.
#[derive(Clone)]
pub struct TaskCx {
    inner: Arc<TaskCxInner>,
}

struct TaskCxInner {
    id: TaskId,
    attempt: u32,
    max_attempts: u32,
    run_at: Timestamp,
    priority: i16,
    /// The trace context the task was enqueued with.
    trace: Option<String>,
    worker: WorkerCx,
    /// The worker's "stop running now" token; the task's own token is its child.
    abort: CancellationToken,
    /// Created on first use only: most handlers never ask for it.
    cancel: OnceLock<CancellationToken>,
    registry: Option<Arc<CancelRegistry>>,
    /// Where progress reports go; `None` for a detached context.
    progress: Option<Arc<ProgressBoard>>,
}

impl Drop for TaskCxInner {
    fn drop(&mut self) {
        if let (Some(registry), Some(_)) = (&self.registry, self.cancel.get()) {
            registry.remove(self.id);
        }
    }
}

/// The per-task cancellation tokens of one worker, so that a cancellation
/// reported by the backend reaches the running handler.
#[derive(Debug, Default)]
pub(crate) struct CancelRegistry {
    state: Mutex<RegistryState>,
}

#[derive(Debug, Default)]
struct RegistryState {
    tokens: HashMap<TaskId, CancellationToken>,
    /// The latest report of cancelled tasks, for tokens created after it.
    cancelled: HashSet<TaskId>,
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, id: TaskId, token: &CancellationToken) {
        let mut state = self.lock();
        if state.cancelled.contains(&id) {
            token.cancel();
        }
        state.tokens.insert(id, token.clone());
    }

    fn remove(&self, id: TaskId) {
        self.lock().tokens.remove(&id);
    }

    /// Fires the tokens of `ids` (and of tasks that ask for one later).
    pub(crate) fn cancel(&self, ids: Vec<TaskId>) {
        let mut state = self.lock();
        for id in &ids {
            if let Some(token) = state.tokens.get(id) {
                token.cancel();
            }
        }
        state.cancelled = ids.into_iter().collect();
    }
}

/// The latest progress reports of one worker's runs, not yet written: a
/// report replaces the previous one of the same task, and the worker writes
/// what is here at most every so often, so a tight loop of reports costs a
/// map insert each.
#[derive(Debug, Default)]
pub(crate) struct ProgressBoard {
    latest: Mutex<HashMap<TaskId, Progress>>,
    /// How many reports wait, so a run that reported none checks nothing.
    waiting: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl ProgressBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, Progress>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self, id: TaskId, progress: Progress) {
        let mut latest = self.lock();
        latest.insert(id, progress);
        self.waiting.store(latest.len(), AtomicOrdering::Release);
        drop(latest);
        self.changed.notify_one();
    }

    /// Resolves when a report arrived since the last [`take_all`](Self::take_all).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Every waiting report.
    pub(crate) fn take_all(&self) -> Vec<(TaskId, Progress)> {
        let mut latest = self.lock();
        self.waiting.store(0, AtomicOrdering::Release);
        latest.drain().collect()
    }

    /// The waiting report of one task, if any (a run that ended takes its
    /// own, to write it before its ack).
    pub(crate) fn take(&self, id: TaskId) -> Option<Progress> {
        if self.waiting.load(AtomicOrdering::Acquire) == 0 {
            return None;
        }
        let mut latest = self.lock();
        let taken = latest.remove(&id);
        self.waiting.store(latest.len(), AtomicOrdering::Release);
        taken
    }
}

impl TaskCx {
    pub(crate) fn new(
        task: &crate::backend::Task,
        worker: WorkerCx,
        abort: CancellationToken,
        registry: Option<Arc<CancelRegistry>>,
        progress: Option<Arc<ProgressBoard>>,
    ) -> Self {
        Self {
            inner: Arc::new(TaskCxInner {
                id: task.id,
                attempt: task.attempt,
                max_attempts: task.max_attempts,
                run_at: task.run_at,
                priority: task.priority,
                trace: task.trace.clone(),
                worker,
                abort,
                cancel: OnceLock::new(),
                registry,
                progress,
            }),
        }
    }

    /// A context for calling a job's `run` directly, e.g. in a unit test.
    pub fn detached(id: TaskId, attempt: u32) -> Self {
        let worker = WorkerCx::new(
            Arc::from("detached"),
            Arc::from("default"),
            "detached",
            CancellationToken::new(),
            DataMap::default(),
        );
        let task = crate::backend::Task {
            id,
            attempt,
            max_attempts: attempt,
            run_at: Timestamp::now(),
            priority: 0,
            payload: Vec::new(),
            trace: None,
        };
        Self::new(&task, worker, CancellationToken::new(), None, None)
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.inner.id
    }

    /// This run's attempt: 1 on the first run.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// Runs allowed in all (`retries + 1`).
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// Whether this is the last attempt the task gets.
    pub fn is_last_attempt(&self) -> bool {
        self.inner.attempt >= self.inner.max_attempts
    }

    /// The queue.
    pub fn queue(&self) -> &str {
        self.inner.worker.queue()
    }

    /// The job's name.
    pub fn job(&self) -> &'static str {
        self.inner.worker.job()
    }

    /// The name of this run's span (see [`crate::trace`]).
    pub(crate) fn span_name(&self) -> &str {
        self.inner.worker.span_name()
    }

    /// When the task was due.
    pub fn run_at(&self) -> std::time::SystemTime {
        self.inner.run_at.to_system_time()
    }

    /// Its priority.
    pub fn priority(&self) -> i16 {
        self.inner.priority
    }

    /// The W3C trace context the task was enqueued with (`traceparent`, then
    /// a newline and `tracestate` when there is one), for a workflow step
    /// its run's; `None` when it was enqueued outside a traced span or
    /// without the `otel` feature (see [`crate::trace`]).
    pub fn trace(&self) -> Option<&str> {
        self.inner.trace.as_deref()
    }

    /// The worker running it.
    pub fn worker(&self) -> &WorkerCx {
        &self.inner.worker
    }

    /// Fires when the run should stop: the task was cancelled (e.g. with
    /// `Expose::cancel_task`, on backends that report it), or the worker's
    /// shutdown deadline passed. A cancelled task's result is discarded
    /// anyway; checking the token lets a long job stop early.
    ///
    /// # Examples
    ///
    /// ```
    /// # use errand_runtime::{JobError, TaskCx};
    /// async fn crunch(cx: TaskCx) -> Result<(), JobError> {
    ///     for _chunk in 0..1_000 {
    ///         if cx.cancellation().is_cancelled() {
    ///             return Err(JobError::abort("cancelled"));
    ///         }
    ///         // … work on a chunk …
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn cancellation(&self) -> &CancellationToken {
        self.inner.cancel.get_or_init(|| {
            let token = self.inner.abort.child_token();
            if let Some(registry) = &self.inner.registry {
                registry.register(self.inner.id, &token);
            }
            token
        })
    }

    /// Whether the task's own cancellation fired while the worker was not
    /// stopping: the task was cancelled.
    #[cfg(feature = "metrics")]
    pub(crate) fn was_cancelled(&self) -> bool {
        self.inner.cancel.get().is_some_and(CancellationToken::is_cancelled) && !self.inner.abort.is_cancelled()
    }

    /// Reports how far the run got: `percent` (0 to 100; more counts as 100)
    /// and what it is doing. The backend stores the latest report, readable
    /// with `Expose::task` ([`TaskInfo::progress`](crate::TaskInfo::progress))
    /// or `BackendExt::task_progress`, and shown by the board.
    ///
    /// Cheap to call in a tight loop: the worker writes the latest report of
    /// each run at most every 250 ms, and the last one before the run's
    /// result. A retry starts again from no progress. On a
    /// [detached](Self::detached) context it does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # use errand_runtime::{JobError, TaskCx};
    /// async fn import(cx: TaskCx, rows: Vec<String>) -> Result<(), JobError> {
    ///     for (i, _row) in rows.iter().enumerate() {
    ///         // … import the row …
    ///         let percent = (i + 1) * 100 / rows.len();
    ///         cx.progress(percent as u8, format!("row {} of {}", i + 1, rows.len()));
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn progress(&self, percent: u8, message: impl Into<String>) {
        if let Some(board) = &self.inner.progress {
            board.report(self.inner.id, Progress::new(percent, message));
        }
    }

    /// Shared data of type `T`, if the worker was given it.
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<Data<T>> {
        self.inner.worker.data().get::<T>()
    }
}

impl fmt::Debug for TaskCx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskCx")
            .field("id", &self.inner.id)
            .field("attempt", &self.inner.attempt)
            .field("queue", &self.queue())
            .finish()
    }
}

/// A value a job function can take as a parameter without it being stored in
/// the task: built from the [`TaskCx`] at run time.
///
/// `Data<T>`, `TaskCx` and `WorkerCx` implement it; mark a parameter of your own
/// type with `#[inject]` to use yours.
///
/// # Examples
///
/// ```
/// use errand_runtime::{FromTaskCx, JobError, TaskCx};
///
/// struct Attempt(u32);
///
/// impl FromTaskCx for Attempt {
///     fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError> {
///         Ok(Attempt(cx.attempt()))
///     }
/// }
/// ```
pub trait FromTaskCx: Sized {
    /// Builds the value.
    ///
    /// # Errors
    ///
    /// A [`JobError`] fails the run as any handler error would.
    fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError>;

    /// Declares the shared data this needs (checked when the worker starts).
    fn requirements(requirements: &mut Requirements) {
        let _ = requirements;
    }
}

impl<T: Send + Sync + 'static> FromTaskCx for Data<T> {
    fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError> {
        cx.data::<T>().ok_or_else(|| {
            JobError::abort(format!(
                "worker for job `{}` has no `Data<{}>`: add `.data(value)` to the worker",
                cx.job(),
                std::any::type_name::<T>()
            ))
        })
    }

    fn requirements(requirements: &mut Requirements) {
        requirements.data::<T>();
    }
}

impl FromTaskCx for TaskCx {
    fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError> {
        Ok(cx.clone())
    }
}

impl FromTaskCx for WorkerCx {
    fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError> {
        Ok(cx.worker().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_given_as_an_arc_is_that_arc() {
        let shared = Arc::new(std::sync::atomic::AtomicU64::new(7));
        let mut map = DataMap::default();
        map.insert_arc(Arc::clone(&shared));
        let data = map.get::<std::sync::atomic::AtomicU64>().map(Data::into_inner);
        assert!(data.is_some_and(|d| Arc::ptr_eq(&d, &shared)), "Data<T> must point to the caller's Arc");
        assert!(map.contains(TypeId::of::<std::sync::atomic::AtomicU64>()));
        assert!(map.get::<String>().is_none());
    }

    #[test]
    fn a_second_value_of_a_type_replaces_the_first() {
        let mut map = DataMap::default();
        map.insert(1_u32);
        map.insert(String::from("name"));
        map.insert(2_u32);
        assert_eq!(map.get::<u32>().map(|d| *d.into_inner()), Some(2));
        assert_eq!(map.get::<String>().map(|d| d.into_inner().to_string()), Some("name".to_owned()));
        assert_eq!(format!("{map:?}"), r#"["u32", "alloc::string::String"]"#);
    }
}
