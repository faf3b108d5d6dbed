//! An in-memory backend: the whole contract inside one process.
//!
//! For tests, examples, and work that may be lost with the process. Tasks
//! are held in a vector indexed by id, with a priority heap of due tasks and a
//! time heap of delayed ones per queue and job; every operation takes one
//! short lock and never awaits while holding it.
//!
//! Finished tasks are kept (for results and [`Expose`]) for the
//! [`Tuning::retention`] (24 h), then removed with their runs; dead and
//! cancelled tasks are kept. Times a handle stores come from its
//! [`Tuning::clock`]; liveness (heartbeats, rescue) uses the system clock,
//! the store's own. Counts and listings walk every task kept: this backend
//! is for tests, examples and work that may be lost with the process.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::backend::{
    Ack, Backend, Claimed, NewTask, Notifier, Outcome, Task, Tuning, Unserved, WakeSignal, WorkerRegistration,
};
use crate::capability::{CancelRunning, Delays, Priorities, Results, Schedules, UniqueKeys};
use crate::codec::{Codec, JsonCodec};
use crate::error::Error;
use crate::expose::Expose;
use crate::task::{Progress, QueueCounts, TaskFilter, TaskId, TaskInfo, TaskState, WorkerInfo};
use crate::time::Timestamp;
use crate::workflow::plan::{Graph, RunEnd, RunPlan, RunProgress, StepEnd};
use crate::workflow::{NewRun, RunFilter, RunId, RunInfo, StepInfo, WorkflowStore};

/// The in-memory backend; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::memory::MemoryBackend;
///
/// let backend = MemoryBackend::new(); // JSON, the default tuning
/// # #[cfg(feature = "msgpack")] {
/// let backend = MemoryBackend::builder()
///     .codec::<errand_runtime::MsgPackCodec>()
///     .tuning(|t| t.orphan_after(Duration::from_secs(10)))
///     .build();
/// # let _ = backend; }
/// ```
pub struct MemoryBackend<C = JsonCodec> {
    shared: Arc<Shared>,
    tuning: Tuning,
    _codec: PhantomData<fn() -> C>,
}

impl<C> Clone for MemoryBackend<C> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared), tuning: self.tuning, _codec: PhantomData }
    }
}

impl<C> fmt::Debug for MemoryBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend").field("tuning", &self.tuning).finish_non_exhaustive()
    }
}

/// Options for a [`MemoryBackend`]: its codec and [`Tuning`].
#[must_use]
pub struct MemoryBuilder<C = JsonCodec> {
    tuning: Tuning,
    _codec: PhantomData<fn() -> C>,
}

impl<C> fmt::Debug for MemoryBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBuilder").field("tuning", &self.tuning).finish_non_exhaustive()
    }
}

impl<C: Codec> MemoryBuilder<C> {
    /// Stores arguments and results with codec `C2` instead.
    pub fn codec<C2: Codec>(self) -> MemoryBuilder<C2> {
        MemoryBuilder { tuning: self.tuning, _codec: PhantomData }
    }

    /// Changes the [`Tuning`], starting from this backend's defaults (a
    /// claim here takes microseconds: one claim at a time, no buffer).
    pub fn tuning(mut self, tune: impl FnOnce(Tuning) -> Tuning) -> Self {
        self.tuning = tune(self.tuning);
        self
    }

    /// An empty backend.
    pub fn build(self) -> MemoryBackend<C> {
        MemoryBackend { shared: Arc::default(), tuning: self.tuning, _codec: PhantomData }
    }

    /// Another handle on `other`'s store, with this builder's tuning: what a
    /// second process opening the same server store would be (for tests of
    /// several processes, e.g. with clocks that disagree).
    pub fn share(self, other: &MemoryBackend<C>) -> MemoryBackend<C> {
        MemoryBackend { shared: Arc::clone(&other.shared), tuning: self.tuning, _codec: PhantomData }
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    notifier: Notifier,
}

/// Records by id (1, 2, …): ids are never reused; a removed record leaves a
/// gap, and gaps at the front are given back, so memory follows what is kept.
struct Slots<T> {
    items: VecDeque<Option<T>>,
    /// The id of the first item, minus one.
    base: u64,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self { items: VecDeque::new(), base: 0 }
    }
}

impl<T> Slots<T> {
    fn next_id(&self) -> u64 {
        self.base + self.items.len() as u64 + 1
    }

    fn push(&mut self, item: T) -> u64 {
        let id = self.next_id();
        self.items.push_back(Some(item));
        id
    }

    fn index(&self, id: u64) -> Option<usize> {
        id.checked_sub(self.base + 1).and_then(|i| usize::try_from(i).ok())
    }

    fn get(&self, id: u64) -> Option<&T> {
        self.items.get(self.index(id)?)?.as_ref()
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let index = self.index(id)?;
        self.items.get_mut(index)?.as_mut()
    }

    fn remove(&mut self, id: u64) -> Option<T> {
        let index = self.index(id)?;
        let item = self.items.get_mut(index)?.take();
        while matches!(self.items.front(), Some(None)) {
            self.items.pop_front();
            self.base += 1;
        }
        item
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.items.iter().zip(1..).filter_map(move |(item, i)| item.as_ref().map(|item| (base + i, item)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut T)> {
        let base = self.base;
        self.items.iter_mut().zip(1..).filter_map(move |(item, i)| item.as_mut().map(|item| (base + i, item)))
    }
}

#[derive(Default)]
struct State {
    tasks: Slots<Record>,
    /// Each queue's name (shared by its tasks' records) and lanes by job.
    lanes: HashMap<Arc<str>, QueueLanes>,
    running: BTreeSet<u64>,
    /// `(job, unique key)` → the latest task with them: keys are scoped to the job.
    unique: HashMap<(&'static str, String), u64>,
    workers: HashMap<Arc<str>, WorkerRow>,
    /// Running tasks cancelled meanwhile, by the worker that runs them.
    cancelled_running: HashMap<Arc<str>, Vec<TaskId>>,
    runs: Slots<RunRecord>,
    /// When a worker of each `(queue, job)` last beat: what "served" means.
    served: HashMap<(Arc<str>, &'static str), i64>,
    /// Paused queues: their workers claim nothing.
    paused: BTreeSet<String>,
    /// The last tick recorded for each schedule.
    ticks: HashMap<String, i64>,
}

struct Record {
    job: &'static str,
    queue: Arc<str>,
    payload: Vec<u8>,
    state: TaskState,
    attempt: u32,
    max_attempts: u32,
    run_at: i64,
    priority: i16,
    created_at: i64,
    finished_at: Option<i64>,
    unique_key: Option<String>,
    last_error: Option<String>,
    worker: Option<Arc<str>>,
    result: Option<Vec<u8>>,
    progress: Option<Progress>,
    /// For a workflow step's task: its run and step.
    step: Option<(u64, u16)>,
    trace: Option<String>,
}

struct RunRecord {
    workflow: &'static str,
    queue: String,
    trace: Option<String>,
    progress: RunProgress,
    tasks: Vec<Option<u64>>,
    error: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
}

struct WorkerRow {
    registration: WorkerRegistration,
    last_seen: i64,
}

/// A queue's lanes, one per job served on it.
struct QueueLanes {
    name: Arc<str>,
    jobs: HashMap<&'static str, Lane>,
}

#[derive(Default)]
struct Lane {
    ready: BinaryHeap<Ready>,
    delayed: BinaryHeap<Reverse<(i64, u64)>>,
}

/// A due task in a lane's heap: highest priority first, then earliest
/// `run_at`, then lowest id.
#[derive(PartialEq, Eq)]
struct Ready {
    priority: i16,
    run_at: i64,
    id: u64,
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.run_at.cmp(&self.run_at))
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Lane {
    fn schedule(&mut self, id: u64, run_at: i64, priority: i16, now: i64) {
        if run_at <= now {
            self.ready.push(Ready { priority, run_at, id });
        } else {
            self.delayed.push(Reverse((run_at, id)));
        }
    }
}

impl State {
    fn record(&self, id: u64) -> Option<&Record> {
        self.tasks.get(id)
    }

    fn record_mut(&mut self, id: u64) -> Option<&mut Record> {
        self.tasks.get_mut(id)
    }

    /// Puts task `id` in the lane of `queue` and `job`; returns the queue's
    /// shared name. Looks the lane up without allocating once it exists.
    fn schedule(&mut self, queue: &str, job: &'static str, id: u64, when: (i64, i16), now: i64) -> Arc<str> {
        let lanes = match self.lanes.get_mut(queue) {
            Some(lanes) => lanes,
            None => {
                let name: Arc<str> = Arc::from(queue);
                self.lanes.entry(Arc::clone(&name)).or_insert_with(|| QueueLanes { name, jobs: HashMap::new() })
            }
        };
        let (run_at, priority) = when;
        lanes.jobs.entry(job).or_default().schedule(id, run_at, priority, now);
        Arc::clone(&lanes.name)
    }

    fn reschedule(&mut self, id: u64, now: i64) {
        let Some(record) = self.record(id) else { return };
        let (queue, job, run_at, priority) = (Arc::clone(&record.queue), record.job, record.run_at, record.priority);
        self.schedule(&queue, job, id, (run_at, priority), now);
    }

    fn insert(&mut self, task: NewTask, step: Option<(u64, u16)>, now: i64) -> u64 {
        let id = self.tasks.next_id();
        let queue = self.schedule(&task.queue, task.job, id, (task.run_at.as_millis(), task.priority), now);
        if let Some(key) = &task.unique_key {
            self.unique.insert((task.job, key.clone()), id);
        }
        self.tasks.push(Record {
            job: task.job,
            queue,
            payload: task.payload,
            state: TaskState::Pending,
            attempt: 0,
            max_attempts: task.max_attempts,
            run_at: task.run_at.as_millis(),
            priority: task.priority,
            created_at: now,
            finished_at: None,
            unique_key: task.unique_key,
            last_error: None,
            worker: None,
            result: None,
            progress: None,
            step,
            trace: task.trace,
        });
        id
    }

    /// Cancels a live task; a running one is reported to its worker.
    /// Returns whether it did, and the workflow step the task was, if any
    /// (the caller ends the step, which fails its run).
    fn cancel(&mut self, id: u64, now: i64) -> (bool, Option<(u64, u16)>) {
        let Some(r) = self.record_mut(id) else { return (false, None) };
        if !r.state.is_live() {
            return (false, None);
        }
        r.state = TaskState::Cancelled;
        r.finished_at = Some(now);
        let step = r.step;
        if let Some(worker) = r.worker.take() {
            self.cancelled_running.entry(worker).or_default().push(TaskId(id));
        }
        self.running.remove(&id);
        (true, step)
    }

    /// Task `id` ended other than `done` (dead, cancelled): if it was a
    /// workflow step, its run fails. Returns the queue to wake, if any.
    fn step_failed<C: Codec>(&mut self, step: Option<(u64, u16)>, why: &str, now: i64) -> Option<String> {
        let (run, step) = step?;
        self.step_ended::<C>(run, step, StepEnd::Failed(why.to_owned()), now)
    }

    /// Step `step` of run `run` ended: the planner decides, and its plan is
    /// applied here, under the same lock as the ack. Returns the queue to
    /// wake when step tasks were enqueued.
    fn step_ended<C: Codec>(&mut self, run: u64, step: u16, end: StepEnd, now: i64) -> Option<String> {
        let record = self.runs.get_mut(run)?;
        record.progress.end(step, end);
        let plan = match record.progress.take_plan::<C>() {
            Ok(plan) => plan,
            Err(error) => {
                // A payload that cannot be encoded fails the run rather than hang it.
                record.progress.end(step, StepEnd::Failed(error.to_string()));
                record.progress.take_plan::<C>().unwrap_or_default()
            }
        };
        self.apply_plan(run, plan, now)
    }

    /// Persists a run's plan: new step tasks, the run's end, and on failure
    /// the cancellation of its other live steps.
    fn apply_plan(&mut self, run: u64, plan: RunPlan, now: i64) -> Option<String> {
        let record = self.runs.get_mut(run)?;
        let (workflow, queue, trace) = (record.workflow, record.queue.clone(), record.trace.clone());
        let woke = !plan.ready.is_empty();
        for ready in plan.ready {
            let task = NewTask {
                job: workflow,
                queue: queue.clone(),
                payload: ready.payload,
                run_at: Timestamp(now),
                priority: ready.priority,
                max_attempts: ready.max_attempts,
                unique_key: None,
                unique_for: None,
                trace: trace.clone(),
            };
            let id = self.insert(task, Some((run, ready.step)), now);
            if let Some(slot) = self.runs.get_mut(run).and_then(|r| r.tasks.get_mut(usize::from(ready.step))) {
                *slot = Some(id);
            }
        }
        match plan.end {
            Some(RunEnd::Failed(error)) => {
                let tasks: Vec<u64> = match self.runs.get_mut(run) {
                    Some(record) => {
                        record.error = Some(error);
                        record.finished_at = Some(now);
                        record.tasks.iter().flatten().copied().collect()
                    }
                    None => Vec::new(),
                };
                for id in tasks {
                    // The run has failed already: ending these steps changes nothing more.
                    let _ = self.cancel(id, now);
                }
            }
            Some(RunEnd::Done) => {
                if let Some(record) = self.runs.get_mut(run) {
                    record.finished_at = Some(now);
                }
            }
            None => {}
        }
        woke.then_some(queue)
    }

    fn duplicate_of(&self, job: &'static str, key: &str, window: Option<Duration>, now: Timestamp) -> Option<u64> {
        let id = *self.unique.get(&(job, key.to_owned()))?;
        let record = self.record(id)?;
        let recent = window.is_some_and(|w| record.created_at >= now.sub(w).as_millis());
        (record.state.is_live() || recent).then_some(id)
    }

    fn info(&self, id: u64) -> Option<TaskInfo> {
        let r = self.record(id)?;
        Some(TaskInfo {
            id: TaskId(id),
            job: r.job.to_owned(),
            queue: r.queue.to_string(),
            state: r.state,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            priority: r.priority,
            run_at: Timestamp(r.run_at),
            created_at: Timestamp(r.created_at),
            finished_at: r.finished_at.map(Timestamp),
            unique_key: r.unique_key.clone(),
            last_error: r.last_error.clone(),
            worker: r.worker.as_deref().map(str::to_owned),
            payload: r.payload.clone(),
            result: r.result.clone(),
            progress: r.progress.clone(),
        })
    }

    /// Whether a worker of `job` on `queue` beat at or after `since`.
    fn served_since(&self, queue: &Arc<str>, job: &'static str, since: Timestamp) -> bool {
        self.served.get(&(Arc::clone(queue), job)).is_some_and(|seen| *seen >= since.as_millis())
    }

    fn live_workers(&self, cutoff: i64) -> impl Iterator<Item = &WorkerRow> {
        self.workers.values().filter(move |w| w.last_seen >= cutoff)
    }
}

impl MemoryBackend<JsonCodec> {
    /// An empty backend storing JSON, with the default tuning.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Options: codec and [`Tuning`].
    pub fn builder() -> MemoryBuilder<JsonCodec> {
        MemoryBuilder { tuning: Tuning::new(), _codec: PhantomData }
    }
}

impl Default for MemoryBackend<JsonCodec> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Codec> MemoryBackend<C> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated
        // in a way that matters more than losing the backend: keep going.
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Codec> Backend for MemoryBackend<C> {
    const NAME: &'static str = "memory";
    type Codec = C;
    type Waiter = WakeSignal;

    fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        let now = self.tuning.clock.now();
        let mut ids = Vec::with_capacity(tasks.len());
        let mut queues: Vec<String> = Vec::new();
        {
            let mut state = self.lock();
            for task in tasks {
                if let Some(key) = &task.unique_key
                    && let Some(existing) = state.duplicate_of(task.job, key, task.unique_for, now)
                {
                    ids.push(TaskId(existing));
                    continue;
                }
                if !queues.contains(&task.queue) {
                    queues.push(task.queue.clone());
                }
                ids.push(TaskId(state.insert(task, None, now.as_millis())));
            }
        }
        for queue in &queues {
            self.shared.notifier.notify(queue);
        }
        Ok(ids)
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        let now = self.tuning.clock.now().as_millis();
        let mut state = self.lock();
        let state = &mut *state;
        if state.paused.contains(&*worker.queue) {
            return Ok(Claimed::default());
        }
        let Some(lane) = state.lanes.get_mut(&*worker.queue).and_then(|lanes| lanes.jobs.get_mut(worker.job)) else {
            return Ok(Claimed::default());
        };
        while let Some(Reverse((at, id))) = lane.delayed.peek().copied() {
            if at > now {
                break;
            }
            lane.delayed.pop();
            if let Some(r) = state.tasks.get(id)
                && matches!(r.state, TaskState::Pending | TaskState::Retry)
                && r.run_at == at
            {
                lane.ready.push(Ready { priority: r.priority, run_at: at, id });
            }
        }
        let mut tasks = Vec::with_capacity(max.min(lane.ready.len()));
        while tasks.len() < max {
            let Some(entry) = lane.ready.pop() else { break };
            let Some(r) = state.tasks.get_mut(entry.id) else { continue };
            if !matches!(r.state, TaskState::Pending | TaskState::Retry) || r.run_at != entry.run_at {
                continue; // stale heap entry: cancelled or rescheduled meanwhile
            }
            r.state = TaskState::Running;
            r.attempt += 1;
            r.worker = Some(Arc::clone(&worker.id));
            r.progress = None;
            state.running.insert(entry.id);
            tasks.push(Task {
                id: TaskId(entry.id),
                attempt: r.attempt,
                max_attempts: r.max_attempts,
                run_at: Timestamp(r.run_at),
                priority: r.priority,
                payload: r.payload.clone(),
                trace: r.trace.clone(),
            });
        }
        let next_due = if tasks.is_empty() { lane.delayed.peek().map(|Reverse((at, _))| Timestamp(*at)) } else { None };
        Ok(Claimed { tasks, next_due })
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        let now = self.tuning.clock.now().as_millis();
        let mut requeued = false;
        let mut woken: Vec<String> = Vec::new();
        let mut state = self.lock();
        for ack in acks {
            let id = ack.id.0;
            let Some(r) = state.record_mut(id) else { continue };
            let ours = r.state == TaskState::Running && r.worker.as_deref() == Some(&*worker.id);
            if !ours {
                continue;
            }
            r.worker = None;
            match &ack.outcome {
                Outcome::Done { result } => {
                    r.state = TaskState::Done;
                    r.result = Some(result.clone());
                    r.finished_at = Some(now);
                }
                Outcome::Retry { at, error } => {
                    r.state = TaskState::Retry;
                    r.run_at = at.as_millis();
                    r.last_error = Some(error.clone());
                }
                Outcome::Dead { error } => {
                    r.state = TaskState::Dead;
                    r.last_error = Some(error.clone());
                    r.finished_at = Some(now);
                }
                Outcome::Snooze { at } => {
                    r.state = TaskState::Pending;
                    r.run_at = at.as_millis();
                    r.attempt = r.attempt.saturating_sub(1);
                }
            }
            let again = r.state.is_live();
            let step = r.step;
            state.running.remove(&id);
            if again {
                state.reschedule(id, now);
                requeued = true;
            }
            if let Some((run, step)) = step {
                let end = match &ack.outcome {
                    Outcome::Done { result } => Some(StepEnd::Done(result.clone())),
                    Outcome::Dead { error } => Some(StepEnd::Failed(error.clone())),
                    Outcome::Retry { .. } | Outcome::Snooze { .. } => None,
                };
                if let Some(queue) = end.and_then(|end| state.step_ended::<C>(run, step, end, now)) {
                    woken.push(queue);
                }
            }
        }
        drop(state);
        if requeued {
            self.shared.notifier.notify(&worker.queue);
        }
        for queue in woken {
            self.shared.notifier.notify(&queue);
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        state
            .workers
            .entry(Arc::clone(&worker.id))
            .and_modify(|w| w.last_seen = now)
            .or_insert_with(|| WorkerRow { registration: worker.clone(), last_seen: now });
        state.served.insert((Arc::clone(&worker.queue), worker.job), now);
        Ok(())
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        let now = Timestamp::now();
        let cutoff = now.sub(self.tuning.orphan_after).as_millis();
        let mut state = self.lock();
        state.workers.retain(|_, w| w.last_seen >= cutoff);
        let State { workers, cancelled_running, .. } = &mut *state;
        cancelled_running.retain(|w, _| workers.contains_key(w));
        let orphans: Vec<u64> = state
            .running
            .iter()
            .copied()
            .filter(|id| {
                state.record(*id).and_then(|r| r.worker.as_ref()).is_none_or(|w| !state.workers.contains_key(w))
            })
            .collect();
        let mut queues = Vec::new();
        for id in &orphans {
            state.running.remove(id);
            let Some(r) = state.record_mut(*id) else { continue };
            let worker = r.worker.take().map(|w| w.to_string()).unwrap_or_default();
            if r.attempt >= r.max_attempts {
                let error = format!(
                    "worker `{worker}` stopped heartbeating during the last attempt ({} of {})",
                    r.attempt, r.max_attempts
                );
                r.state = TaskState::Dead;
                r.finished_at = Some(now.as_millis());
                r.last_error = Some(error.clone());
                let step = r.step;
                state.step_failed::<C>(step, &error, now.as_millis());
            } else {
                r.state = TaskState::Pending;
                r.run_at = now.as_millis();
                queues.push(Arc::clone(&r.queue));
                state.reschedule(*id, now.as_millis());
            }
        }
        drop(state);
        for queue in queues {
            self.shared.notifier.notify(&queue);
        }
        Ok(orphans.len() as u64)
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        state.workers.remove(&worker.id);
        state.cancelled_running.remove(&worker.id);
        let mine: Vec<u64> = state
            .running
            .iter()
            .copied()
            .filter(|id| state.record(*id).and_then(|r| r.worker.as_deref()) == Some(&*worker.id))
            .collect();
        for id in &mine {
            state.running.remove(id);
            if let Some(r) = state.record_mut(*id) {
                r.state = TaskState::Pending;
                r.worker = None;
                r.attempt = r.attempt.saturating_sub(1);
            }
            state.reschedule(*id, now);
        }
        drop(state);
        if !mine.is_empty() {
            self.shared.notifier.notify(&worker.queue);
        }
        Ok(mine.len() as u64)
    }

    async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        let state = self.lock();
        // A waiting task is in the lane of its queue and job, and lanes are
        // never removed: when every job with a lane here is served, there is
        // nothing to walk.
        let queue_lanes = state.lanes.get(queue);
        let unserved_jobs: Vec<&'static str> = queue_lanes
            .map(|lanes| {
                lanes.jobs.keys().copied().filter(|job| !state.served_since(&lanes.name, job, since)).collect()
            })
            .unwrap_or_default();
        let mut found: Vec<Unserved> = Vec::new();
        if unserved_jobs.is_empty() {
            return Ok(found);
        }
        for (_, r) in state.tasks.iter() {
            let waiting = matches!(r.state, TaskState::Pending | TaskState::Retry);
            if !waiting || *r.queue != *queue || !unserved_jobs.contains(&r.job) {
                continue;
            }
            match found.iter_mut().find(|u| u.job == r.job) {
                Some(u) => {
                    u.count += 1;
                    u.oldest = u.oldest.min(Timestamp(r.run_at));
                }
                None => found.push(Unserved { job: r.job.to_owned(), count: 1, oldest: Timestamp(r.run_at) }),
            }
        }
        Ok(found)
    }

    async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        let queue: Arc<str> = Arc::from(queue);
        if state.served.iter().any(|((q, j), seen)| *q == queue && *j == job && *seen >= since.as_millis()) {
            return Ok(0);
        }
        let mut steps = Vec::new();
        for (_, r) in state.tasks.iter_mut() {
            let waiting = matches!(r.state, TaskState::Pending | TaskState::Retry);
            if waiting && r.queue == queue && r.job == job && r.run_at <= due_before.as_millis() {
                r.state = TaskState::Dead;
                r.finished_at = Some(now);
                r.last_error = Some(reason.to_owned());
                steps.push(r.step);
            }
        }
        for step in &steps {
            state.step_failed::<C>(*step, reason, now);
        }
        Ok(steps.len() as u64)
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        let cutoff = Timestamp::now().sub(self.tuning.retention).as_millis();
        let mut state = self.lock();
        let expired: Vec<u64> = state
            .tasks
            .iter()
            .filter(|(_, r)| r.state == TaskState::Done && r.finished_at.is_some_and(|f| f < cutoff))
            .map(|(id, _)| id)
            .collect();
        for id in &expired {
            if let Some(r) = state.tasks.remove(*id)
                && let Some(key) = &r.unique_key
                && state.unique.get(&(r.job, key.clone())) == Some(id)
            {
                state.unique.remove(&(r.job, key.clone()));
            }
        }
        let runs: Vec<u64> =
            state.runs.iter().filter(|(_, r)| r.finished_at.is_some_and(|f| f < cutoff)).map(|(id, _)| id).collect();
        for run in runs {
            state.runs.remove(run);
        }
        Ok(expired.len() as u64)
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        Ok(self.lock().cancelled_running.get(&worker.id).cloned().unwrap_or_default())
    }

    async fn record_progress(&self, worker: &WorkerRegistration, updates: &[(TaskId, Progress)]) -> Result<(), Error> {
        let mut state = self.lock();
        for (id, progress) in updates {
            if let Some(r) = state.record_mut(id.0)
                && r.state == TaskState::Running
                && r.worker.as_deref() == Some(&*worker.id)
            {
                r.progress = Some(progress.clone());
            }
        }
        Ok(())
    }

    fn waiter(&self, queue: &str) -> WakeSignal {
        self.shared.notifier.subscribe(queue)
    }
}

impl<C: Codec> Priorities for MemoryBackend<C> {}
impl<C: Codec> UniqueKeys for MemoryBackend<C> {}
impl<C: Codec> Delays for MemoryBackend<C> {}
impl<C: Codec> Results for MemoryBackend<C> {}
impl<C: Codec> CancelRunning for MemoryBackend<C> {}

impl<C: Codec> Schedules for MemoryBackend<C> {
    async fn last_tick(&self, schedule: &str) -> Result<Option<Timestamp>, Error> {
        Ok(self.lock().ticks.get(schedule).copied().map(Timestamp))
    }

    async fn record_tick(&self, schedule: &str, tick: Timestamp) -> Result<(), Error> {
        let mut state = self.lock();
        let last = state.ticks.entry(schedule.to_owned()).or_insert(tick.as_millis());
        *last = (*last).max(tick.as_millis());
        Ok(())
    }
}

impl<C: Codec> Expose for MemoryBackend<C> {
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let state = self.lock();
        let mut counts: HashMap<&str, QueueCounts> = HashMap::new();
        for (_, r) in state.tasks.iter() {
            let entry = counts
                .entry(&r.queue)
                .or_insert_with(|| QueueCounts { queue: r.queue.to_string(), ..QueueCounts::default() });
            *entry.get_mut(r.state) += 1;
        }
        for queue in &state.paused {
            counts
                .entry(queue.as_str())
                .or_insert_with(|| QueueCounts { queue: queue.clone(), ..QueueCounts::default() })
                .paused = true;
        }
        let mut counts: Vec<QueueCounts> = counts.into_values().collect();
        counts.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(counts)
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        let state = self.lock();
        let limit = if filter.limit == 0 { 100 } else { filter.limit as usize };
        let after = filter.after.map_or(0, |a| a.0);
        Ok(state
            .tasks
            .iter()
            .filter(|(id, r)| {
                *id > after
                    && filter.queue.as_deref().is_none_or(|q| *r.queue == *q)
                    && filter.job.as_deref().is_none_or(|j| r.job == j)
                    && filter.state.is_none_or(|s| r.state == s)
            })
            .take(limit)
            .filter_map(|(id, _)| state.info(id))
            .collect())
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        Ok(self.lock().info(id.0))
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let cutoff = Timestamp::now().sub(self.tuning.orphan_after).as_millis();
        let state = self.lock();
        let mut workers: Vec<WorkerInfo> = state
            .live_workers(cutoff)
            .map(|w| WorkerInfo {
                id: w.registration.id.to_string(),
                queue: w.registration.queue.to_string(),
                job: w.registration.job.to_owned(),
                concurrency: u32::try_from(w.registration.concurrency).unwrap_or(u32::MAX),
                started_at: w.registration.started_at,
                last_seen: Timestamp(w.last_seen),
            })
            .collect();
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(workers)
    }

    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        let Some(r) = state.record_mut(id.0) else { return Ok(false) };
        if !matches!(r.state, TaskState::Dead | TaskState::Cancelled) {
            return Ok(false);
        }
        r.state = TaskState::Pending;
        r.attempt = 0;
        r.run_at = now;
        r.finished_at = None;
        let queue = Arc::clone(&r.queue);
        state.reschedule(id.0, now);
        drop(state);
        self.shared.notifier.notify(&queue);
        Ok(true)
    }

    async fn delete_task(&self, id: TaskId) -> Result<bool, Error> {
        let mut state = self.lock();
        let Some(r) = state.record(id.0) else { return Ok(false) };
        if r.state.is_live() || r.step.is_some() {
            return Ok(false);
        }
        if let Some(r) = state.tasks.remove(id.0)
            && let Some(key) = &r.unique_key
            && state.unique.get(&(r.job, key.clone())) == Some(&id.0)
        {
            state.unique.remove(&(r.job, key.clone()));
        }
        Ok(true)
    }

    async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        self.lock().paused.insert(queue.to_owned());
        Ok(())
    }

    async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        let resumed = self.lock().paused.remove(queue);
        if resumed {
            self.shared.notifier.notify(queue);
        }
        Ok(())
    }

    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error>
    where
        Self: CancelRunning,
    {
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        let (cancelled, step) = state.cancel(id.0, now);
        state.step_failed::<C>(step, "the task was cancelled", now);
        Ok(cancelled)
    }
}

impl<C: Codec> WorkflowStore for MemoryBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        let now = Timestamp::now().as_millis();
        let graph = Graph::new(run.steps)
            .map_err(|problem| Error::Config(format!("workflow `{}` cannot run: {problem}", run.workflow)))?;
        let mut state = self.lock();
        let id = RunId(state.runs.next_id());
        let (progress, plan) = RunProgress::start::<C>(id, graph, &run.input)?;
        let steps = progress.graph().len();
        state.runs.push(RunRecord {
            workflow: run.workflow,
            queue: run.queue.clone(),
            trace: run.trace.clone(),
            progress,
            tasks: vec![None; steps],
            error: None,
            created_at: now,
            finished_at: None,
        });
        state.apply_plan(id.0, plan, now);
        drop(state);
        self.shared.notifier.notify(&run.queue);
        Ok(id)
    }

    async fn run_ids(&self, filter: &RunFilter) -> Result<Vec<RunId>, Error> {
        let state = self.lock();
        let before = filter.before.map_or(u64::MAX, |r| r.0);
        let mut ids: Vec<RunId> = state
            .runs
            .iter()
            .filter(|(id, r)| {
                *id < before
                    && filter.workflow.as_deref().is_none_or(|w| r.workflow == w)
                    && filter.state.is_none_or(|s| r.progress.state() == s)
            })
            .map(|(id, _)| RunId(id))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(filter.max() as usize);
        Ok(ids)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let state = self.lock();
        let Some(record) = state.runs.get(run.0) else {
            return Ok(None);
        };
        let outputs = record.progress.outputs();
        let steps = record
            .progress
            .graph()
            .steps()
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let task = record.tasks[i].and_then(|id| state.record(id).map(|r| (id, r)));
                StepInfo {
                    name: spec.name.clone(),
                    after: crate::workflow::rows::step_names(record.progress.graph().steps(), &spec.after),
                    task: task.map(|(id, _)| TaskId(id)),
                    state: task.map(|(_, r)| r.state),
                    attempt: task.map_or(0, |(_, r)| r.attempt),
                    error: task.and_then(|(_, r)| r.last_error.clone()),
                    output: outputs[i].clone(),
                }
            })
            .collect();
        Ok(Some(RunInfo {
            id: run,
            workflow: record.workflow.to_owned(),
            state: record.progress.state(),
            steps,
            error: record.error.clone(),
            created_at: Timestamp(record.created_at),
        }))
    }
}
