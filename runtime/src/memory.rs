//! An in-memory backend: the whole contract inside one process.
//!
//! For tests, examples, and work that may be lost with the process. Tasks
//! are held in a vector indexed by id, with a priority heap of due tasks and a
//! time heap of delayed ones per queue and job; every operation takes one
//! short lock and never awaits while holding it.
//!
//! Finished tasks are kept (for results and [`Expose`]) until
//! [`MemoryBackend::purge_finished`] removes their payloads.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::backend::{Backend, Expose, Notifier, WakeSignal};
use crate::codec::{Codec, JsonCodec};
use crate::error::Error;
use crate::task::{
    Ack, Claimed, NewTask, Outcome, QueueCounts, Task, TaskFilter, TaskId, TaskInfo, TaskState, Unserved, WorkerInfo,
    WorkerRegistration,
};
use crate::time::Timestamp;
use crate::workflow::{self, NewRun, RunId, RunInfo, RunState, StepInfo, StepSpec, WorkflowStore};

/// The in-memory backend; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use errand_runtime::memory::MemoryBackend;
/// use errand_runtime::MsgPackCodec;
/// # #[cfg(feature = "msgpack")] {
/// let backend = MemoryBackend::new().with_codec::<MsgPackCodec>();
/// # let _ = backend; }
/// ```
pub struct MemoryBackend<C = JsonCodec> {
    shared: Arc<Shared>,
    orphan_after: Duration,
    poll_interval: Duration,
    parallel_claims: usize,
    _codec: PhantomData<fn() -> C>,
}

impl<C> Clone for MemoryBackend<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            parallel_claims: self.parallel_claims,
            _codec: PhantomData,
        }
    }
}

impl<C> fmt::Debug for MemoryBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("orphan_after", &self.orphan_after)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    notifier: Notifier,
}

#[derive(Default)]
struct State {
    /// Task `id` lives at index `id - 1`.
    tasks: Vec<Record>,
    lanes: HashMap<String, HashMap<&'static str, Lane>>,
    running: BTreeSet<u64>,
    /// `(job, unique key)` → the latest task with them: keys are scoped to the job.
    unique: HashMap<(&'static str, String), u64>,
    workers: HashMap<Arc<str>, WorkerRow>,
    /// Running tasks cancelled meanwhile, by the worker that runs them.
    cancelled_running: HashMap<Arc<str>, Vec<TaskId>>,
    /// Run `id` lives at index `id - 1`.
    runs: Vec<RunRecord>,
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
    /// For a workflow step's task: its run (index into `runs`) and step.
    step: Option<(usize, u16)>,
}

struct RunRecord {
    workflow: &'static str,
    queue: String,
    steps: Vec<StepSpec>,
    outputs: Vec<Option<Vec<u8>>>,
    tasks: Vec<Option<u64>>,
    state: RunState,
    error: Option<String>,
    created_at: i64,
}

struct WorkerRow {
    registration: WorkerRegistration,
    last_seen: i64,
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
        usize::try_from(id).ok().and_then(|i| i.checked_sub(1)).and_then(|i| self.tasks.get(i))
    }

    fn record_mut(&mut self, id: u64) -> Option<&mut Record> {
        usize::try_from(id).ok().and_then(|i| i.checked_sub(1)).and_then(|i| self.tasks.get_mut(i))
    }

    fn lane(&mut self, queue: &str, job: &'static str) -> &mut Lane {
        if !self.lanes.contains_key(queue) {
            self.lanes.insert(queue.to_owned(), HashMap::new());
        }
        // Just inserted if it was missing.
        self.lanes.entry(queue.to_owned()).or_default().entry(job).or_default()
    }

    fn reschedule(&mut self, id: u64, now: i64) {
        let Some(record) = self.record(id) else { return };
        let (queue, job, run_at, priority) = (Arc::clone(&record.queue), record.job, record.run_at, record.priority);
        self.lane(&queue, job).schedule(id, run_at, priority, now);
    }

    fn insert(&mut self, task: NewTask, step: Option<(usize, u16)>, now: i64) -> u64 {
        let id = self.tasks.len() as u64 + 1;
        self.lane(&task.queue, task.job).schedule(id, task.run_at.as_millis(), task.priority, now);
        if let Some(key) = &task.unique_key {
            self.unique.insert((task.job, key.clone()), id);
        }
        self.tasks.push(Record {
            job: task.job,
            queue: Arc::from(task.queue),
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
            step,
        });
        id
    }

    /// Cancels a live task; a running one is reported to its worker.
    fn cancel(&mut self, id: u64, now: i64) -> bool {
        let Some(r) = self.record_mut(id) else { return false };
        if !r.state.is_live() {
            return false;
        }
        r.state = TaskState::Cancelled;
        r.finished_at = Some(now);
        if let Some(worker) = r.worker.take() {
            self.cancelled_running.entry(worker).or_default().push(TaskId(id));
        }
        self.running.remove(&id);
        true
    }

    /// Step `step` of run `run` finished with `output`: store it, enqueue the
    /// dependents that are ready, finish the run when every sink is done.
    /// Returns the queue to wake, if tasks were enqueued.
    fn step_done<C: Codec>(&mut self, run: usize, step: u16, output: Vec<u8>, now: i64) -> Option<String> {
        let record = self.runs.get_mut(run)?;
        if record.state != RunState::Running {
            return None;
        }
        *record.outputs.get_mut(usize::from(step))? = Some(output);
        let ready = workflow::advance(&record.steps, step, |i| record.outputs.get(usize::from(i))?.as_deref());
        let (workflow, queue) = (record.workflow, record.queue.clone());
        let mut tasks = Vec::with_capacity(ready.len());
        for (next, inputs) in ready {
            let spec = &record.steps[usize::from(next)];
            match workflow::step_task::<C>(workflow, &queue, RunId(run as u64 + 1), next, spec, inputs) {
                Ok(task) => tasks.push((next, task)),
                Err(error) => {
                    let name = spec.name.clone();
                    self.fail_run(run, &name, &error.to_string(), now);
                    return None;
                }
            }
        }
        let record = &mut self.runs[run];
        if workflow::sink_steps(&record.steps).iter().all(|i| record.outputs[usize::from(*i)].is_some()) {
            record.state = RunState::Done;
        }
        let woke = !tasks.is_empty();
        for (next, task) in tasks {
            let id = self.insert(task, Some((run, next)), now);
            self.runs[run].tasks[usize::from(next)] = Some(id);
        }
        woke.then_some(queue)
    }

    /// Step `name` of run `run` went dead: the run fails and its other live
    /// steps are cancelled.
    fn fail_run(&mut self, run: usize, name: &str, error: &str, now: i64) {
        let Some(record) = self.runs.get_mut(run) else { return };
        if record.state != RunState::Running {
            return;
        }
        record.state = RunState::Failed;
        record.error = Some(workflow::step_failed(name, error));
        let tasks: Vec<u64> = record.tasks.iter().flatten().copied().collect();
        for id in tasks {
            self.cancel(id, now);
        }
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
        })
    }

    fn live_workers(&self, cutoff: i64) -> impl Iterator<Item = &WorkerRow> {
        self.workers.values().filter(move |w| w.last_seen >= cutoff)
    }
}

impl MemoryBackend<JsonCodec> {
    /// An empty backend storing JSON.
    pub fn new() -> Self {
        Self {
            shared: Arc::default(),
            orphan_after: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            parallel_claims: 1,
            _codec: PhantomData,
        }
    }
}

impl Default for MemoryBackend<JsonCodec> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Codec> MemoryBackend<C> {
    /// The same kind of backend storing with codec `C2`. Call it before
    /// enqueueing: the new backend starts empty.
    pub fn with_codec<C2: Codec>(self) -> MemoryBackend<C2> {
        MemoryBackend {
            shared: Arc::default(),
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            parallel_claims: self.parallel_claims,
            _codec: PhantomData,
        }
    }

    /// How many claims a worker keeps in flight at once (1 by default: a
    /// claim here takes microseconds). Mostly for testing the worker.
    pub fn parallel_claims(mut self, n: usize) -> Self {
        self.parallel_claims = n.max(1);
        self
    }

    /// How long a worker may miss heartbeats before its tasks are rescued.
    pub fn orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after;
        self
    }

    /// The longest an idle worker sleeps between claims. Every enqueue wakes
    /// idle workers at once, so this only bounds clock-driven work.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Drops the payloads and results of finished tasks (their counts stay).
    pub fn purge_finished(&self) {
        let mut state = self.lock();
        for record in &mut state.tasks {
            if !record.state.is_live() && record.state != TaskState::Dead {
                record.payload = Vec::new();
                record.result = None;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated
        // in a way that matters more than losing the backend: keep going.
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Codec> Backend for MemoryBackend<C> {
    type Codec = C;
    type Waiter = WakeSignal;

    fn name(&self) -> &'static str {
        "memory"
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        let now = Timestamp::now();
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
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(lane) = state.lanes.get_mut(&*worker.queue).and_then(|jobs| jobs.get_mut(worker.job)) else {
            return Ok(Claimed::default());
        };
        while let Some(Reverse((at, id))) = lane.delayed.peek().copied() {
            if at > now {
                break;
            }
            lane.delayed.pop();
            let index = usize::try_from(id - 1).unwrap_or(usize::MAX);
            if let Some(r) = state.tasks.get(index)
                && matches!(r.state, TaskState::Pending | TaskState::Retry)
                && r.run_at == at
            {
                lane.ready.push(Ready { priority: r.priority, run_at: at, id });
            }
        }
        let mut tasks = Vec::with_capacity(max.min(lane.ready.len()));
        while tasks.len() < max {
            let Some(entry) = lane.ready.pop() else { break };
            let index = usize::try_from(entry.id - 1).unwrap_or(usize::MAX);
            let Some(r) = state.tasks.get_mut(index) else { continue };
            if !matches!(r.state, TaskState::Pending | TaskState::Retry) || r.run_at != entry.run_at {
                continue; // stale heap entry: cancelled or rescheduled meanwhile
            }
            r.state = TaskState::Running;
            r.attempt += 1;
            r.worker = Some(Arc::clone(&worker.id));
            state.running.insert(entry.id);
            tasks.push(Task {
                id: TaskId(entry.id),
                attempt: r.attempt,
                max_attempts: r.max_attempts,
                run_at: Timestamp(r.run_at),
                priority: r.priority,
                payload: r.payload.clone(),
            });
        }
        let next_due = if tasks.is_empty() { lane.delayed.peek().map(|Reverse((at, _))| Timestamp(*at)) } else { None };
        Ok(Claimed { tasks, next_due })
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        let now = Timestamp::now().as_millis();
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
                match &ack.outcome {
                    Outcome::Done { result } => {
                        if let Some(queue) = state.step_done::<C>(run, step, result.clone(), now) {
                            woken.push(queue);
                        }
                    }
                    Outcome::Dead { error } => {
                        let name = state.runs.get(run).map(|r| r.steps[usize::from(step)].name.clone());
                        state.fail_run(run, name.as_deref().unwrap_or("?"), error, now);
                    }
                    Outcome::Retry { .. } | Outcome::Snooze { .. } => {}
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
        Ok(())
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        let now = Timestamp::now();
        let cutoff = now.sub(self.orphan_after).as_millis();
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
                r.state = TaskState::Dead;
                r.finished_at = Some(now.as_millis());
                r.last_error = Some(format!(
                    "worker `{worker}` stopped heartbeating during the last attempt ({} of {})",
                    r.attempt, r.max_attempts
                ));
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

    async fn unserved(&self, queue: &str, served: &[&'static str]) -> Result<Vec<Unserved>, Error> {
        let state = self.lock();
        let mut found: Vec<Unserved> = Vec::new();
        for r in &state.tasks {
            let waiting = matches!(r.state, TaskState::Pending | TaskState::Retry);
            if !waiting || *r.queue != *queue || served.contains(&r.job) {
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

    async fn bury_unserved(&self, queue: &str, job: &str, due_before: Timestamp, reason: &str) -> Result<u64, Error> {
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        let mut buried = 0;
        for r in &mut state.tasks {
            let waiting = matches!(r.state, TaskState::Pending | TaskState::Retry);
            if waiting && *r.queue == *queue && r.job == job && r.run_at <= due_before.as_millis() {
                r.state = TaskState::Dead;
                r.finished_at = Some(now);
                r.last_error = Some(reason.to_owned());
                buried += 1;
            }
        }
        Ok(buried)
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        Ok(self.lock().cancelled_running.get(&worker.id).cloned().unwrap_or_default())
    }

    fn waiter(&self, queue: &str) -> WakeSignal {
        self.shared.notifier.subscribe(queue)
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn parallel_claims(&self) -> usize {
        self.parallel_claims
    }

    fn orphan_after(&self) -> Duration {
        self.orphan_after
    }
}

impl<C: Codec> Expose for MemoryBackend<C> {
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let state = self.lock();
        let mut counts: HashMap<&str, QueueCounts> = HashMap::new();
        for r in &state.tasks {
            let entry = counts
                .entry(&r.queue)
                .or_insert_with(|| QueueCounts { queue: r.queue.to_string(), ..QueueCounts::default() });
            *entry.get_mut(r.state) += 1;
        }
        let mut counts: Vec<QueueCounts> = counts.into_values().collect();
        counts.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(counts)
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        let state = self.lock();
        let limit = if filter.limit == 0 { 100 } else { filter.limit as usize };
        let start = filter.after.map_or(0, |a| usize::try_from(a.0).unwrap_or(usize::MAX));
        Ok(state
            .tasks
            .iter()
            .enumerate()
            .skip(start)
            .filter(|(_, r)| {
                filter.queue.as_deref().is_none_or(|q| *r.queue == *q)
                    && filter.job.as_deref().is_none_or(|j| r.job == j)
                    && filter.state.is_none_or(|s| r.state == s)
            })
            .take(limit)
            .filter_map(|(i, _)| state.info(i as u64 + 1))
            .collect())
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        Ok(self.lock().info(id.0))
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let cutoff = Timestamp::now().sub(self.orphan_after).as_millis();
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

    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error> {
        let now = Timestamp::now().as_millis();
        Ok(self.lock().cancel(id.0, now))
    }
}

impl<C: Codec> WorkflowStore for MemoryBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        let now = Timestamp::now().as_millis();
        let mut state = self.lock();
        let index = state.runs.len();
        let id = RunId(index as u64 + 1);
        let mut tasks = Vec::new();
        for entry in workflow::entry_steps(&run.steps) {
            let spec = &run.steps[usize::from(entry)];
            tasks.push((
                entry,
                workflow::step_task::<C>(run.workflow, &run.queue, id, entry, spec, vec![run.input.clone()])?,
            ));
        }
        let steps = run.steps.len();
        state.runs.push(RunRecord {
            workflow: run.workflow,
            queue: run.queue.clone(),
            steps: run.steps,
            outputs: vec![None; steps],
            tasks: vec![None; steps],
            state: RunState::Running,
            error: None,
            created_at: now,
        });
        for (entry, task) in tasks {
            let task_id = state.insert(task, Some((index, entry)), now);
            state.runs[index].tasks[usize::from(entry)] = Some(task_id);
        }
        drop(state);
        self.shared.notifier.notify(&run.queue);
        Ok(id)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let state = self.lock();
        let Some(record) = usize::try_from(run.0).ok().and_then(|i| i.checked_sub(1)).and_then(|i| state.runs.get(i))
        else {
            return Ok(None);
        };
        let steps = record
            .steps
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let task = record.tasks[i].and_then(|id| state.record(id).map(|r| (id, r)));
                StepInfo {
                    name: spec.name.clone(),
                    task: task.map(|(id, _)| TaskId(id)),
                    state: task.map(|(_, r)| r.state),
                    attempt: task.map_or(0, |(_, r)| r.attempt),
                    error: task.and_then(|(_, r)| r.last_error.clone()),
                    output: record.outputs[i].clone(),
                }
            })
            .collect();
        Ok(Some(RunInfo {
            id: run,
            workflow: record.workflow.to_owned(),
            state: record.state,
            steps,
            error: record.error.clone(),
            created_at: Timestamp(record.created_at),
        }))
    }
}
