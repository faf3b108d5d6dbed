//! The backend type, its builder, and the worker-facing operations.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use errand_runtime::workflow::Bytes;
use errand_runtime::{
    Ack, Backend, BackendError, Claimed, Codec, Error, JsonCodec, NewTask, Notifier, Outcome, Task, TaskId, Timestamp,
    Unserved, WakeSignal, WorkerRegistration,
};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio_util::sync::CancellationToken;

use crate::keys::{Keys, SEQ_BITS, split_id, task_id};
use crate::reply::{self, int, unexpected};
use crate::scripts::{Lua, Scripts, is_noscript_value};

/// Tasks written per enqueue script call.
const ENQUEUE_CHUNK: usize = 500;
/// Script calls sent per pipeline round trip.
const PIPELINE_CALLS: usize = 16;
/// Pipelines of one operation in flight at once.
const PIPELINES_IN_FLIGHT: usize = 4;
/// Acks recorded per ack script call.
const ACK_CHUNK: usize = 512;
/// Due delayed tasks moved to the ready set per claim, at most.
const MOVE_BATCH: usize = 1000;
/// Expiry entries (each the done tasks of one ack call) pruned per ack call.
const PRUNE_PER_ACK: usize = 2;
/// Expiry entries pruned per queue and rescue round.
const PRUNE_PER_RESCUE: usize = 20;
/// Lost claim tokens remembered per worker, at most.
const MAX_LOST_CLAIMS: usize = 256;

/// The Redis backend; see the [crate docs](crate).
///
/// A cheap handle: clone it for every worker and enqueuer of the process. All
/// clones share one multiplexed connection (a [`ConnectionManager`] that
/// reconnects by itself) and, once a worker waits, one pub/sub connection.
pub struct RedisBackend<C: Codec = JsonCodec> {
    pub(crate) inner: Arc<Inner>,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Clone for RedisBackend<C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), _codec: PhantomData }
    }
}

impl<C: Codec> fmt::Debug for RedisBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .field("codec", &C::NAME)
            .field("retention", &self.inner.retention)
            .field("orphan_after", &self.inner.orphan_after)
            .field("poll_interval", &self.inner.poll_interval)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) conn: ConnectionManager,
    client: redis::Client,
    /// The URL without its password, for messages.
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) keys: Keys,
    pub(crate) channel: String,
    pub(crate) retention: Duration,
    pub(crate) orphan_after: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) scripts: Scripts,
    queues: Mutex<QueueMap>,
    pub(crate) notifier: Notifier,
    listening: AtomicBool,
    stop_listener: CancellationToken,
    /// Per worker: tokens of claims whose reply was lost (the script may
    /// have run), so the next claim redelivers their tasks.
    lost_claims: Mutex<HashMap<Arc<str>, Vec<u64>>>,
    claim_tokens: AtomicU64,
    /// Job names whose tasks are workflow steps (learned from claims and
    /// from `start_run`): their `done` acks carry the output encoded as a
    /// payload element, for the ack script to build the next steps' tasks.
    pub(crate) workflow_jobs: Mutex<HashSet<&'static str>>,
    /// Whether `workflow_jobs` is not empty (plain acks skip the lock).
    pub(crate) any_workflow: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_listener.cancel();
    }
}

#[derive(Default)]
struct QueueMap {
    by_name: HashMap<String, u32>,
    by_number: HashMap<u32, String>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a plain map update: a panic inside one
    // cannot leave the map in a state worth refusing to continue.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A failed Redis call while doing `operation`.
pub(crate) fn failed(operation: impl Into<String>, error: RedisError) -> Error {
    BackendError::new("redis", operation, error).into()
}

/// `url` with its password (if any) replaced by `…`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { format!("{user}:…") } else { user.to_owned() };
            format!("{}{hidden}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Options for [`RedisBackend`]; see [`RedisBackend::builder`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use errand_redis::RedisBackend;
///
/// # async fn demo() -> Result<(), errand_runtime::Error> {
/// let backend = RedisBackend::builder()
///     .prefix("myapp:jobs:")
///     .retention(Duration::from_secs(3600))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// # let _ = backend; Ok(()) }
/// ```
#[must_use]
pub struct RedisBuilder<C: Codec = JsonCodec> {
    prefix: String,
    retention: Duration,
    orphan_after: Duration,
    poll_interval: Duration,
    response_timeout: Duration,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> fmt::Debug for RedisBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBuilder")
            .field("prefix", &self.prefix)
            .field("codec", &C::NAME)
            .field("retention", &self.retention)
            .field("orphan_after", &self.orphan_after)
            .field("poll_interval", &self.poll_interval)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl Default for RedisBuilder<JsonCodec> {
    fn default() -> Self {
        Self {
            prefix: "errand:".to_owned(),
            retention: Duration::from_secs(24 * 3600),
            orphan_after: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            _codec: PhantomData,
        }
    }
}

impl<C: Codec> RedisBuilder<C> {
    /// The prefix of every key and of the wake-up channel (`errand:` by
    /// default). Backends with different prefixes share nothing. It must not
    /// contain `{` or `}`, which would break the per-queue hash tags.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long `done` tasks are kept, with their results (24 h by default).
    /// `dead` and `cancelled` tasks are kept until retried.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long a worker may miss heartbeats before its tasks are rescued
    /// (30 s by default).
    pub fn orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after;
        self
    }

    /// The longest an idle worker waits between claims (5 s by default).
    /// Enqueues wake idle workers at once through pub/sub, in every process,
    /// so this only matters if a wake-up is lost (e.g. while reconnecting).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long one Redis call may take before it fails (10 s by default).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Stores arguments and results with codec `C2` instead.
    pub fn codec<C2: Codec>(self) -> RedisBuilder<C2> {
        RedisBuilder {
            prefix: self.prefix,
            retention: self.retention,
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            response_timeout: self.response_timeout,
            _codec: PhantomData,
        }
    }

    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with a TLS feature of the `redis` crate) and loads the
    /// scripts.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL or prefix; [`Error::Backend`]
    /// when the server cannot be reached.
    pub async fn connect(self, url: &str) -> Result<RedisBackend<C>, Error> {
        let shown = redact(url);
        if self.prefix.contains(['{', '}']) {
            return Err(Error::Config(format!(
                "the Redis key prefix `{}` must not contain `{{` or `}}` (they would break the per-queue hash tags)",
                self.prefix
            )));
        }
        let client =
            redis::Client::open(url).map_err(|e| Error::Config(format!("invalid Redis URL `{shown}`: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(4)
            .set_max_delay(Duration::from_secs(2));
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| failed(format!("connect to {shown}"), e))?;
        let scripts = Scripts::new();
        for lua in scripts.all() {
            lua.load(&mut conn).await.map_err(|e| failed(format!("load the Lua scripts into {shown}"), e))?;
        }
        let keys = Keys::new(&self.prefix);
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                conn,
                client,
                url: shown,
                channel: keys.channel(),
                keys,
                prefix: self.prefix,
                retention: self.retention,
                orphan_after: self.orphan_after,
                poll_interval: self.poll_interval,
                scripts,
                queues: Mutex::default(),
                notifier: Notifier::new(),
                listening: AtomicBool::new(false),
                stop_listener: CancellationToken::new(),
                lost_claims: Mutex::default(),
                claim_tokens: AtomicU64::new(0),
                workflow_jobs: Mutex::default(),
                any_workflow: AtomicBool::new(false),
            }),
            _codec: PhantomData,
        })
    }
}

impl RedisBackend<JsonCodec> {
    /// Options: key prefix, retention, codec, timings.
    pub fn builder() -> RedisBuilder<JsonCodec> {
        RedisBuilder::default()
    }

    /// Connects to `url` with the defaults (prefix `errand:`, JSON, 24 h
    /// retention, rescue after 30 s without a heartbeat).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL; [`Error::Backend`] when the
    /// server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }
}

impl<C: Codec> RedisBackend<C> {
    /// The same backend (same connection and keys) storing with codec `C2`.
    pub fn with_codec<C2: Codec>(self) -> RedisBackend<C2> {
        RedisBackend { inner: self.inner, _codec: PhantomData }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Deletes every key under this backend's prefix — every task, queue and
    /// worker record — and returns how many keys it deleted. For tests and
    /// examples; workers still running re-register on their next heartbeat.
    ///
    /// # Errors
    ///
    /// When Redis fails; keys deleted before the failure stay deleted.
    pub async fn clear(&self) -> Result<u64, Error> {
        let mut pattern = String::with_capacity(self.inner.prefix.len() + 1);
        for c in self.inner.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| failed(format!("list the keys under `{}`", self.inner.prefix), e))?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| failed(format!("delete the keys under `{}`", self.inner.prefix), e))?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        lock(&self.inner.queues).by_name.clear();
        lock(&self.inner.queues).by_number.clear();
        Ok(deleted)
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// The number of `queue`, registering it on first use.
    pub(crate) async fn queue_number(&self, queue: &str) -> Result<u32, Error> {
        if let Some(n) = lock(&self.inner.queues).by_name.get(queue) {
            return Ok(*n);
        }
        let keys = &self.inner.keys;
        let mut cmd = self.inner.scripts.register.call(&[&keys.queues(), &keys.queue_ids(), &keys.queue_seq()]);
        cmd.arg(queue);
        let what = || format!("register queue `{queue}`");
        let value = self.inner.scripts.register.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what(), e))?;
        let n = int(&value).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| unexpected(what(), &value))?;
        self.remember_queue(queue, n);
        Ok(n)
    }

    fn remember_queue(&self, queue: &str, n: u32) {
        let mut map = lock(&self.inner.queues);
        map.by_name.insert(queue.to_owned(), n);
        map.by_number.insert(n, queue.to_owned());
    }

    /// The name of queue number `n`, if it exists.
    pub(crate) async fn queue_name(&self, n: u32) -> Result<Option<String>, Error> {
        if let Some(name) = lock(&self.inner.queues).by_number.get(&n) {
            return Ok(Some(name.clone()));
        }
        let name: Option<String> = redis::cmd("HGET")
            .arg(self.inner.keys.queue_ids())
            .arg(n)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| failed("read the queue registry", e))?;
        if let Some(name) = &name {
            self.remember_queue(name, n);
        }
        Ok(name)
    }

    /// Every registered queue, by name, with its number.
    pub(crate) async fn all_queues(&self) -> Result<Vec<(String, u32)>, Error> {
        let map: HashMap<String, u32> = redis::cmd("HGETALL")
            .arg(self.inner.keys.queues())
            .query_async(&mut self.conn())
            .await
            .map_err(|e| failed("read the queue registry", e))?;
        let mut queues: Vec<(String, u32)> = map.into_iter().collect();
        queues.sort();
        for (name, n) in &queues {
            self.remember_queue(name, *n);
        }
        Ok(queues)
    }

    /// Runs script calls in pipelines of [`PIPELINE_CALLS`], up to
    /// [`PIPELINES_IN_FLIGHT`] of them at once on the multiplexed connection
    /// (so that building and parsing overlap with Redis running the scripts);
    /// a call that met `NOSCRIPT` is repeated after loading the script (the
    /// others are not). Returns each call's reply, in order; a call's error
    /// reply becomes the error of the whole.
    pub(crate) async fn run_many(&self, lua: &Lua, calls: Vec<Cmd>, what: &str) -> Result<Vec<Value>, Error> {
        let mut conn = self.conn();
        if let [single] = calls.as_slice() {
            return Ok(vec![lua.run(&mut conn, single).await.map_err(|e| failed(what, e))?]);
        }
        let mut replies = Vec::with_capacity(calls.len());
        let mut pipes = Vec::with_capacity(calls.len().div_ceil(PIPELINE_CALLS));
        let mut calls = calls.into_iter().peekable();
        while calls.peek().is_some() {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for call in calls.by_ref().take(PIPELINE_CALLS) {
                pipe.add_command(call);
            }
            pipes.push(pipe);
        }
        let shared = conn.clone();
        let mut results = futures_util::stream::iter(pipes)
            .map(|pipe| {
                let mut conn = shared.clone();
                async move {
                    let values: RedisResult<Vec<Value>> = pipe.query_async(&mut conn).await;
                    (pipe, values)
                }
            })
            .buffered(PIPELINES_IN_FLIGHT);
        while let Some((pipe, values)) = results.next().await {
            let values = values.map_err(|e| failed(what, e))?;
            for (call, value) in pipe.cmd_iter().zip(values) {
                let value = if is_noscript_value(&value) {
                    lua.run(&mut conn, call).await.map_err(|e| failed(what, e))?
                } else {
                    value
                };
                if let Value::ServerError(error) = value {
                    return Err(failed(what, error.into()));
                }
                replies.push(value);
            }
        }
        Ok(replies)
    }

    fn start_listener(&self) {
        if self.inner.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(crate::wake::listen(
                    self.inner.client.clone(),
                    self.inner.channel.clone(),
                    self.inner.notifier.clone(),
                    self.inner.stop_listener.clone(),
                ));
            }
            Err(_) => {
                // Outside a runtime: try again on the next waiter; workers
                // still poll every `poll_interval`.
                self.inner.listening.store(false, Ordering::Release);
            }
        }
    }

    /// Records that the tasks of `job` are workflow steps.
    pub(crate) fn remember_workflow(&self, job: &'static str) {
        if lock(&self.inner.workflow_jobs).insert(job) {
            self.inner.any_workflow.store(true, Ordering::Release);
        }
    }

    fn lost_claims(&self, worker: &Arc<str>) -> Vec<u64> {
        lock(&self.inner.lost_claims).get(worker).cloned().unwrap_or_default()
    }

    fn claim_lost(&self, worker: &Arc<str>, token: u64) {
        let mut lost = lock(&self.inner.lost_claims);
        let tokens = lost.entry(Arc::clone(worker)).or_default();
        if tokens.len() >= MAX_LOST_CLAIMS {
            tokens.remove(0);
        }
        tokens.push(token);
    }

    fn enqueue_call(&self, queue: &str, base: &str, now: i64, tasks: &[&NewTask]) -> Result<Cmd, Error> {
        let lua = &self.inner.scripts.enqueue;
        let mut cmd = lua.call(&[&format!("{base}seq"), &format!("{base}n"), &format!("{base}jobs")]);
        cmd.arg(base).arg(now).arg(&self.inner.channel).arg(queue).arg(tasks.len());
        // Groups of consecutive tasks with the same settings: the script reads
        // those once per group, and two values per task.
        let same = |a: &NewTask, b: &NewTask| {
            a.job == b.job
                && a.priority == b.priority
                && (a.run_at.as_millis() <= now) == (b.run_at.as_millis() <= now)
                && a.unique_key.is_none()
                && b.unique_key.is_none()
        };
        let mut run_at = String::with_capacity(16);
        let mut record = Vec::new();
        for group in tasks.chunk_by(|a, b| same(a, b)) {
            let first = group[0];
            cmd.arg(group.len())
                .arg(first.job)
                .arg(first.priority)
                .arg(if first.run_at.as_millis() <= now { "1" } else { "0" })
                .arg(first.unique_key.as_deref().unwrap_or(""))
                .arg(first.unique_for.map_or(0, millis));
            for task in group {
                crate::record::write(&mut record, task, now)
                    .map_err(|e| Error::Config(format!("cannot enqueue a task of job `{}`: {e}", task.job)))?;
                run_at.clear();
                // 13 digits: the start of the ready-set member (see the crate docs).
                let _ = write!(run_at, "{:013}", task.run_at.as_millis());
                cmd.arg(&record).arg(run_at.as_str());
            }
        }
        Ok(cmd)
    }
}

/// Values per task in a claim reply.
const CLAIM_STRIDE: usize = 4;

/// The claimed tasks, and whether any of them is a workflow step.
fn parse_claim(queue: u32, queue_name: &str, value: Value) -> Result<(Claimed, bool), Error> {
    let what = || format!("claim tasks from queue `{queue_name}`");
    let items = reply::into_array(value, &what())?;
    let malformed =
        || -> Error { BackendError::new("redis", what(), "the claim script returned a malformed reply").into() };
    if items.is_empty() || (items.len() - 1) % CLAIM_STRIDE != 0 {
        return Err(malformed());
    }
    let mut steps = false;
    let mut items = items.into_iter();
    let next_due = items.next().as_ref().and_then(int).filter(|n| *n >= 0).map(Timestamp);
    let mut tasks = Vec::with_capacity(items.len() / CLAIM_STRIDE);
    while let (Some(seq), Some(attempt), Some(run_at), Some(record)) =
        (items.next(), items.next(), items.next(), items.next())
    {
        let Some(seq) = int(&seq).and_then(|s| u64::try_from(s).ok()) else { return Err(malformed()) };
        let id = task_id(queue, seq);
        let attempt = int(&attempt).and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        let Value::BulkString(mut record) = record else { return Err(malformed()) };
        let task = match crate::record::read(&record) {
            Ok(stored) => {
                steps |= stored.step;
                let head = record.len() - stored.payload.len();
                let task = Task {
                    id,
                    attempt,
                    max_attempts: stored.max_attempts,
                    run_at: Timestamp(int(&run_at).unwrap_or(stored.run_at)),
                    priority: stored.priority,
                    payload: Vec::new(),
                };
                // The payload is the record's tail: keep the reply's buffer.
                record.drain(..head);
                Task { payload: record, ..task }
            }
            Err(problem) => {
                // Run it anyway: its empty payload does not decode, so the
                // worker sends it to `dead` with the decode error.
                tracing::error!(task = %id, queue = queue_name, %problem, "claimed a task whose stored record is malformed");
                Task { id, attempt, max_attempts: 1, run_at: Timestamp(0), priority: 0, payload: Vec::new() }
            }
        };
        tasks.push(task);
    }
    Ok((Claimed { next_due: if tasks.is_empty() { next_due } else { None }, tasks }, steps))
}

impl<C: Codec> Backend for RedisBackend<C> {
    type Codec = C;
    type Waiter = WakeSignal;

    fn name(&self) -> &'static str {
        "redis"
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        let now = Timestamp::now().as_millis();
        let mut ids = vec![TaskId(0); tasks.len()];
        // Group by queue, keeping each task's position.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, task) in tasks.iter().enumerate() {
            match groups.iter_mut().find(|(q, _)| *q == task.queue) {
                Some((_, positions)) => positions.push(i),
                None => groups.push((task.queue.clone(), vec![i])),
            }
        }
        for (queue, positions) in &groups {
            let number = self.queue_number(queue).await?;
            let base = self.inner.keys.base(queue);
            let mut calls = Vec::with_capacity(positions.len().div_ceil(ENQUEUE_CHUNK));
            for chunk in positions.chunks(ENQUEUE_CHUNK) {
                let chunk: Vec<&NewTask> = chunk.iter().map(|&i| &tasks[i]).collect();
                calls.push(self.enqueue_call(queue, &base, now, &chunk)?);
            }
            let what = format!("enqueue {} task(s) on queue `{queue}`", positions.len());
            let replies = self.run_many(&self.inner.scripts.enqueue, calls, &what).await?;
            let mut seqs = Vec::with_capacity(positions.len());
            for value in replies {
                for item in reply::into_array(value, &what)? {
                    let seq = int(&item)
                        .and_then(|s| u64::try_from(s).ok())
                        .ok_or_else(|| unexpected(what.as_str(), &item))?;
                    if seq >> SEQ_BITS != 0 {
                        return Err(Error::Config(format!("queue `{queue}` ran out of task ids (2^40 per queue)")));
                    }
                    seqs.push(seq);
                }
            }
            if seqs.len() != positions.len() {
                return Err(
                    BackendError::new("redis", what, "the enqueue script returned the wrong number of ids").into()
                );
            }
            for (&i, seq) in positions.iter().zip(seqs) {
                ids[i] = task_id(number, seq);
            }
            self.inner.notifier.notify(queue);
        }
        Ok(ids)
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        let queue = &*worker.queue;
        let number = self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let token = self.inner.claim_tokens.fetch_add(1, Ordering::Relaxed) + 1;
        let lost = self.lost_claims(&worker.id);
        let lua = &self.inner.scripts.claim;
        let mut cmd = lua.call(&[
            &format!("{base}r:{}", worker.job),
            &format!("{base}d:{}", worker.job),
            &format!("{base}if:{}", worker.id),
            &format!("{base}n"),
            &format!("{base}lc:{}", worker.id),
        ]);
        cmd.arg(&base)
            .arg(Timestamp::now().as_millis())
            .arg(max)
            .arg(&*worker.id)
            .arg(MOVE_BATCH)
            .arg(token)
            .arg(&lost);
        match lua.run(&mut self.conn(), &cmd).await {
            Ok(value) => {
                if !lost.is_empty() {
                    lock(&self.inner.lost_claims).remove(&worker.id);
                }
                let (claimed, steps) = parse_claim(number, queue, value)?;
                if steps {
                    self.remember_workflow(worker.job);
                }
                Ok(claimed)
            }
            Err(error) => {
                // The script may have run and only the reply been lost: its
                // tasks are redelivered by this worker's next claim.
                self.claim_lost(&worker.id, token);
                Err(failed(format!("claim tasks of job `{}` from queue `{queue}`", worker.job), error))
            }
        }
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        if acks.is_empty() {
            return Ok(());
        }
        let queue = &*worker.queue;
        let number = self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.ack;
        let keys = [format!("{base}if:{}", worker.id), format!("{base}n"), format!("{base}db"), format!("{base}dead")];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let now = Timestamp::now().as_millis();
        let steps =
            self.inner.any_workflow.load(Ordering::Acquire) && lock(&self.inner.workflow_jobs).contains(worker.job);
        let mut requeued = false;
        let mut calls = Vec::new();
        for chunk in acks.chunks(ACK_CHUNK) {
            let mut cmd = lua.call(&keys);
            cmd.arg(&base)
                .arg(now)
                .arg(&*worker.id)
                .arg(millis(self.inner.retention))
                .arg(&self.inner.channel)
                .arg(queue)
                .arg(PRUNE_PER_ACK)
                .arg(worker.job);
            for ack in chunk {
                let (q, seq) = split_id(ack.id);
                if q != number {
                    continue; // not a task of this queue: nothing of ours to record
                }
                cmd.arg(seq);
                match &ack.outcome {
                    Outcome::Done { result } if steps => {
                        // What the ack script splices into the payloads of the next steps.
                        let element = C::encode(&Bytes(result.clone()), "a workflow step's output")?;
                        cmd.arg("W").arg(0).arg(result).arg(element)
                    }
                    Outcome::Done { result } => cmd.arg("D").arg(0).arg(result),
                    Outcome::Retry { at, error } => {
                        requeued = true;
                        cmd.arg("R").arg(at.as_millis()).arg(error)
                    }
                    Outcome::Dead { error } => cmd.arg("X").arg(0).arg(error),
                    Outcome::Snooze { at } => {
                        requeued = true;
                        cmd.arg("S").arg(at.as_millis()).arg("")
                    }
                };
            }
            calls.push(cmd);
        }
        let what = format!("record {} outcome(s) on queue `{queue}`", acks.len());
        for value in self.run_many(lua, calls, &what).await? {
            // {finished, tasks enqueued by workflow steps}
            if let Value::Array(items) = value {
                requeued |= items.get(1).and_then(int).is_some_and(|n| n > 0);
            }
        }
        if requeued {
            self.inner.notifier.notify(queue);
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        let queue = &*worker.queue;
        self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.heartbeat;
        let mut cmd = lua.call(&[&format!("{base}hb:{}", worker.id), &format!("{base}w"), &format!("{base}wi")]);
        let details = format!("{}\t{}\t{}", worker.job, worker.concurrency, worker.started_at.as_millis());
        cmd.arg(&base)
            .arg(Timestamp::now().as_millis())
            .arg(&*worker.id)
            .arg(millis(self.inner.orphan_after).max(1))
            .arg(details);
        lua.run(&mut self.conn(), &cmd)
            .await
            .map_err(|e| failed(format!("heartbeat of worker `{}` on queue `{queue}`", worker.id), e))?;
        Ok(())
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        let queues = self.all_queues().await?;
        let lua = &self.inner.scripts.rescue;
        let now = Timestamp::now().as_millis();
        let calls: Vec<Cmd> = queues
            .iter()
            .map(|(queue, _)| {
                let base = self.inner.keys.base(queue);
                let mut cmd =
                    lua.call(&[&format!("{base}w"), &format!("{base}wi"), &format!("{base}n"), &format!("{base}dead")]);
                cmd.arg(&base)
                    .arg(now)
                    .arg(millis(self.inner.orphan_after))
                    .arg(&self.inner.channel)
                    .arg(queue)
                    .arg(PRUNE_PER_RESCUE)
                    .arg(millis(self.inner.retention));
                cmd
            })
            .collect();
        let replies = self.run_many(lua, calls, "rescue the tasks of dead workers").await?;
        let mut rescued = 0;
        for ((queue, _), value) in queues.iter().zip(replies) {
            let n = int(&value).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            if n > 0 {
                self.inner.notifier.notify(queue);
            }
            rescued += n;
        }
        Ok(rescued)
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        let queue = &*worker.queue;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.release;
        let id = &*worker.id;
        let mut cmd = lua.call(&[
            &format!("{base}if:{id}"),
            &format!("{base}w"),
            &format!("{base}wi"),
            &format!("{base}n"),
            &format!("{base}hb:{id}"),
            &format!("{base}lc:{id}"),
        ]);
        cmd.arg(&base).arg(Timestamp::now().as_millis()).arg(id).arg(&self.inner.channel).arg(queue);
        let what = || format!("release the tasks of worker `{id}` on queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what(), e))?;
        lock(&self.inner.lost_claims).remove(&worker.id);
        let released = int(&value).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| unexpected(what(), &value))?;
        if released > 0 {
            self.inner.notifier.notify(queue);
        }
        Ok(released)
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        let queue = &*worker.queue;
        let number = self.queue_number(queue).await?;
        let key = format!("{}cx:{}", self.inner.keys.base(queue), worker.id);
        let seqs: Vec<u64> =
            redis::cmd("SMEMBERS").arg(key).query_async(&mut self.conn()).await.map_err(|e| {
                failed(format!("read the cancelled tasks of worker `{}` on queue `{queue}`", worker.id), e)
            })?;
        Ok(seqs.into_iter().map(|seq| task_id(number, seq)).collect())
    }

    async fn unserved(&self, queue: &str, served: &[&'static str]) -> Result<Vec<Unserved>, Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.unserved;
        let mut cmd = lua.call(&[&format!("{base}jobs")]);
        cmd.arg(&base).arg(served);
        let what = format!("look for unserved jobs on queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        let mut items = reply::into_array(value, &what)?.into_iter();
        let mut found = Vec::new();
        while let (Some(job), Some(count), Some(oldest)) = (items.next(), items.next(), items.next()) {
            let (Some(job), Some(count)) = (reply::string(job), int(&count).and_then(|n| u64::try_from(n).ok())) else {
                return Err(BackendError::new("redis", what, "the unserved script returned a malformed reply").into());
            };
            found.push(Unserved { job, count, oldest: Timestamp(int(&oldest).unwrap_or(i64::MAX)) });
        }
        Ok(found)
    }

    async fn bury_unserved(&self, queue: &str, job: &str, due_before: Timestamp, reason: &str) -> Result<u64, Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.bury;
        let what = format!("bury the unserved tasks of job `{job}` on queue `{queue}`");
        let mut buried = 0;
        let mut offset: i64 = 0;
        loop {
            let mut cmd = lua.call(&[&format!("{base}n"), &format!("{base}dead")]);
            cmd.arg(&base)
                .arg(Timestamp::now().as_millis())
                .arg(job)
                .arg(due_before.as_millis())
                .arg(reason)
                .arg(offset)
                .arg(MOVE_BATCH)
                .arg(millis(self.inner.retention));
            let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
            let items = reply::into_array(value, &what)?;
            let [n, more, next] = items.as_slice() else {
                return Err(BackendError::new("redis", what, "the bury script returned a malformed reply").into());
            };
            buried += int(n).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            if int(more) != Some(1) {
                return Ok(buried);
            }
            offset = int(next).unwrap_or(0);
        }
    }

    fn waiter(&self, queue: &str) -> WakeSignal {
        self.start_listener();
        self.inner.notifier.subscribe(queue)
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval
    }

    /// A claim is a round trip and a script run whatever its size: on a busy
    /// queue, fetch full batches ahead of the free slots.
    fn buffer(&self, concurrency: usize) -> usize {
        concurrency
    }

    fn orphan_after(&self) -> Duration {
        self.inner.orphan_after
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("redis://:secret@host:6379/0"), "redis://:…@host:6379/0");
        assert_eq!(redact("redis://user:secret@host"), "redis://user:…@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
