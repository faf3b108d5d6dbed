//! Typed enqueueing: [`TaskSink`] and its options, [`Enqueue`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use crate::backend::{Backend, NewTask};
use crate::capability::{AcceptedBy, SetDelay, SetPriority, SetUniqueKey, Transactional, Unset};
use crate::codec::Codec;
use crate::error::{BackendError, Error};
use crate::job::Job;
use crate::meter::Enqueued;
use crate::task::TaskId;
use crate::time::Timestamp;

/// Options for one enqueue: delay, priority, deduplication, retries, queue.
///
/// Each option a backend may lack is recorded in the type (`P`, `U`, `D`),
/// so that `enqueue_with` on a backend without that
/// [capability](crate::capability) does not compile.
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
#[must_use]
pub struct Enqueue<P = Unset, U = Unset, D = Unset> {
    options: Options,
    _set: PhantomData<Set<P, U, D>>,
}

/// Which options an [`Enqueue`] has set, as types only.
type Set<P, U, D> = fn() -> (P, U, D);

#[derive(Debug, Clone, Default)]
struct Options {
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
        Self { options: Options::default(), _set: PhantomData }
    }
}

impl Default for Enqueue {
    fn default() -> Self {
        Self::new()
    }
}

impl<P, U, D> Clone for Enqueue<P, U, D> {
    fn clone(&self) -> Self {
        Self { options: self.options.clone(), _set: PhantomData }
    }
}

impl<P, U, D> fmt::Debug for Enqueue<P, U, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.options, f)
    }
}

impl<P, U, D> Enqueue<P, U, D> {
    fn set<P2, U2, D2>(self) -> Enqueue<P2, U2, D2> {
        Enqueue { options: self.options, _set: PhantomData }
    }

    /// Starts no earlier than `delay` from now. Needs
    /// [`Delays`](crate::capability::Delays).
    pub fn delay(mut self, delay: Duration) -> Enqueue<P, U, SetDelay> {
        self.options.delay = Some(delay);
        self.options.run_at = None;
        self.set()
    }

    /// Starts no earlier than `time`. Needs [`Delays`](crate::capability::Delays).
    pub fn run_at(mut self, time: SystemTime) -> Enqueue<P, U, SetDelay> {
        self.options.run_at = Some(Timestamp::from(time));
        self.options.delay = None;
        self.set()
    }

    /// Higher runs first; overrides the job's priority. Needs
    /// [`Priorities`](crate::capability::Priorities).
    pub fn priority(mut self, priority: i16) -> Enqueue<SetPriority, U, D> {
        self.options.priority = Some(priority);
        self.set()
    }

    /// Not enqueued while a live task of the same job has the same key (keys
    /// are scoped to the job); the existing task's id is returned instead.
    /// Needs [`UniqueKeys`](crate::capability::UniqueKeys).
    pub fn unique_key(mut self, key: impl Into<String>) -> Enqueue<P, SetUniqueKey, D> {
        self.options.unique_key = Some(key.into());
        self.set()
    }

    /// With a unique key: also dedupe against tasks created within `window`,
    /// finished or not. Needs [`UniqueKeys`](crate::capability::UniqueKeys).
    pub fn unique_for(mut self, window: Duration) -> Enqueue<P, SetUniqueKey, D> {
        self.options.unique_for = Some(window);
        self.set()
    }

    /// Overrides the job's retry count.
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = Some(retries);
        self
    }

    /// Enqueues on another queue than the job's own. A worker for the job
    /// only serves its job's queue unless built with `.queue(...)`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.options.queue = Some(queue.into());
        self
    }

    /// Builds the stored task for `job`, encoded with codec `C` (for backend
    /// authors and the runtime; users call [`TaskSink::enqueue_with`]).
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded.
    pub fn to_task<J: Job, C: Codec>(&self, job: &J, now: Timestamp) -> Result<NewTask, Error> {
        self.to_task_in::<J, C>(job, now, crate::trace::current_context())
    }

    /// [`to_task`](Self::to_task) with the trace context already taken
    /// (once for a whole batch).
    fn to_task_in<J: Job, C: Codec>(&self, job: &J, now: Timestamp, trace: Option<String>) -> Result<NewTask, Error> {
        let o = &self.options;
        let options = J::options();
        let payload = C::encode(job, J::NAME)?;
        let run_at = match (o.run_at, o.delay) {
            (Some(at), _) => at,
            (None, Some(delay)) => now.add(delay),
            (None, None) => now,
        };
        let unique_key = o.unique_key.clone().or_else(|| job.unique_key());
        Ok(NewTask {
            job: J::NAME,
            queue: o.queue.clone().unwrap_or_else(|| J::QUEUE.to_owned()),
            payload,
            run_at,
            priority: o.priority.unwrap_or(options.priority),
            max_attempts: o.retries.unwrap_or(options.retries).saturating_add(1),
            unique_for: if unique_key.is_some() { o.unique_for.or(options.unique_for) } else { None },
            unique_key,
            trace,
        })
    }
}

/// `task` if its payload fits the backend's limit.
pub(crate) fn within_limit<B: Backend>(backend: &B, task: NewTask) -> Result<NewTask, Error> {
    let limit = backend.tuning().max_payload;
    if task.payload.len() > limit {
        return Err(Error::PayloadTooLarge {
            what: format!("the arguments of job `{}`", task.job),
            size: task.payload.len(),
            limit,
        });
    }
    Ok(task)
}

/// The one id an enqueue of one task returns.
fn only_id(backend: &'static str, ids: Vec<TaskId>) -> Result<TaskId, Error> {
    let n = ids.len();
    match <[TaskId; 1]>::try_from(ids) {
        Ok([id]) => Ok(id),
        Err(_) => {
            Err(BackendError::new(backend, "enqueue a task", format!("the backend returned {n} ids for one task"))
                .into())
        }
    }
}

/// Typed enqueueing, for every [`Backend`].
///
/// Only a [`Job`] can be enqueued, so its argument names and types are
/// checked by the compiler; options and transactional enqueue are checked
/// against the backend's [capabilities](crate::capability).
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
    fn enqueue_with<J: Job, P, U, D>(
        &self,
        job: J,
        options: Enqueue<P, U, D>,
    ) -> impl Future<Output = Result<TaskId, Error>> + Send
    where
        P: AcceptedBy<Self>,
        U: AcceptedBy<Self>,
        D: AcceptedBy<Self>,
    {
        let task = options.to_task::<J, Self::Codec>(&job, self.tuning().clock.now());
        let task = task.and_then(|task| within_limit(self, task));
        async move {
            let task = task?;
            let counted = Enqueued::new(&task.queue, J::NAME);
            let id = only_id(Self::NAME, self.push(vec![task]).await?)?;
            counted.record(1);
            Ok(id)
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
        let now = self.tuning().clock.now();
        let options = Enqueue::new();
        let trace = crate::trace::current_context();
        let tasks: Result<Vec<NewTask>, Error> = jobs
            .into_iter()
            .map(|job| {
                let task = options.to_task_in::<J, Self::Codec>(&job, now, trace.clone());
                task.and_then(|task| within_limit(self, task))
            })
            .collect();
        async move {
            let tasks = tasks?;
            let Some(counted) = tasks.first().map(|task| Enqueued::new(&task.queue, J::NAME)) else {
                return Ok(Vec::new());
            };
            let ids = self.push(tasks).await?;
            counted.record(ids.len());
            Ok(ids)
        }
    }

    /// Enqueues `job` inside the caller's transaction: the task exists if and
    /// only if that transaction commits. Needs
    /// [`Transactional`](crate::capability::Transactional): pass `&mut tx`
    /// for a `sqlx::Transaction` of the backend's own database.
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the insert fails.
    fn enqueue_in<J: Job>(
        &self,
        tx: &mut <Self as Transactional>::Connection,
        job: J,
    ) -> impl Future<Output = Result<TaskId, Error>> + Send
    where
        Self: Transactional,
    {
        self.enqueue_with_in(tx, job, Enqueue::new())
    }

    /// [`enqueue_in`](TaskSink::enqueue_in) with options.
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the insert fails.
    fn enqueue_with_in<J: Job, P, U, D>(
        &self,
        tx: &mut <Self as Transactional>::Connection,
        job: J,
        options: Enqueue<P, U, D>,
    ) -> impl Future<Output = Result<TaskId, Error>> + Send
    where
        Self: Transactional,
        P: AcceptedBy<Self>,
        U: AcceptedBy<Self>,
        D: AcceptedBy<Self>,
    {
        let task = options.to_task::<J, Self::Codec>(&job, self.tuning().clock.now());
        let task = task.and_then(|task| within_limit(self, task));
        async move {
            let task = task?;
            let counted = Enqueued::new(&task.queue, J::NAME);
            let id = only_id(Self::NAME, self.push_in(tx, vec![task]).await?)?;
            counted.record(1);
            Ok(id)
        }
    }
}

impl<B: Backend> TaskSink for B {}
