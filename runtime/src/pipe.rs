//! Feeding a durable backend from a stream: [`PipeExt::pipe_to`] and its
//! handle, [`Pipe`].

use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, NewTask};
use crate::error::Error;
use crate::job::Job;
use crate::sink::{Enqueue, within_limit};
use crate::time::Timestamp;

pub use futures_util::Stream;

/// A channel's receiving half as a [`Stream`], to pipe what is sent into a
/// backend: `from_receiver(rx).pipe_to(&backend)`. The stream ends when
/// every sender is dropped.
pub fn from_receiver<T: Send + 'static>(mut receiver: tokio::sync::mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Tasks written per backend call at most.
pub(crate) const PIPE_BATCH: usize = 512;
/// How long a stopping pipe keeps trying to write what it holds.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const MIN_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Pipes a stream of jobs into a backend: `stream.pipe_to(&backend)`.
///
/// Implemented for every `Stream<Item = Result<J, E>>` where `J` is a
/// [`Job`]: a channel's receiver, a CDC feed, a Kafka consumer you already
/// have. The pipe runs in its own Tokio task:
///
/// - it enqueues in batches: everything the stream has ready (up to 512) in
///   one write under load, each job at once when they trickle in;
/// - it reads the next items only once a write is done, so a slow backend
///   slows the stream down (back-pressure) instead of piling jobs up in
///   memory;
/// - a write that fails is retried with backoff, the same batch, until it
///   lands: nothing read from the stream is dropped; a job the backend
///   refuses (a payload over its `max_payload`) is counted and logged;
/// - an `Err` of the stream is counted, logged and kept as the last error,
///   and the pipe goes on with the next item.
///
/// # Examples
///
/// ```
/// use errand_runtime::pipe::PipeExt;
/// # use errand_runtime::{Job, JobError, TaskCx, memory::MemoryBackend};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Resize { image: u64 }
/// # impl Job for Resize { const NAME: &'static str = "resize"; type Output = ();
/// #   async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let backend = MemoryBackend::new();
/// let (tx, rx) = tokio::sync::mpsc::channel::<Result<Resize, std::io::Error>>(64);
/// let pipe = errand_runtime::pipe::from_receiver(rx).pipe_to(&backend);
/// for image in 0..10 {
///     tx.send(Ok(Resize { image })).await.unwrap();
/// }
/// drop(tx); // the stream ends
/// let stats = pipe.join().await;
/// assert_eq!(stats.enqueued, 10);
/// # }
/// ```
pub trait PipeExt<J, E>: Stream<Item = Result<J, E>> + Sized {
    /// Enqueues every job of this stream into `backend` until the stream
    /// ends or the returned [`Pipe`] is stopped.
    fn pipe_to<B: Backend>(self, backend: &B) -> Pipe;
}

impl<S, J, E> PipeExt<J, E> for S
where
    S: Stream<Item = Result<J, E>> + Send + 'static,
    J: Job,
    E: fmt::Display + Send + 'static,
{
    fn pipe_to<B: Backend>(self, backend: &B) -> Pipe {
        let pipe = Pipe::new();
        let writer = Writer { backend: backend.clone(), state: Arc::clone(&pipe.state), stop: pipe.stop.clone() };
        let task = tokio::spawn(async move {
            writer.drain(self, |job: J, now| Enqueue::new().to_task::<J, B::Codec>(&job, now)).await;
        });
        pipe.with_task(task)
    }
}

/// A running pipe: its counts, and a graceful stop. Dropping it leaves the
/// pipe running until its stream ends.
#[must_use = "a pipe runs in the background; keep its handle to stop it or read its counts"]
pub struct Pipe {
    state: Arc<PipeState>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// What a [`Pipe`] did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipeStats {
    /// Jobs written to the backend.
    pub enqueued: u64,
    /// `Err` items of the stream (and ticks a schedule could not read or
    /// record): counted, logged, and skipped.
    pub errors: u64,
    /// Jobs the backend refused or that could not be encoded (each logged).
    pub refused: u64,
    /// Jobs read from the stream but not written when the pipe was stopped
    /// (the backend stayed unreachable past the stop deadline).
    pub unsent: u64,
    /// The last error of any kind, with context.
    pub last_error: Option<String>,
    /// Whether the pipe has ended (its stream ended, or it was stopped).
    pub finished: bool,
}

#[derive(Debug, Default)]
pub(crate) struct PipeState {
    enqueued: AtomicU64,
    errors: AtomicU64,
    refused: AtomicU64,
    unsent: AtomicU64,
    finished: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl PipeState {
    pub(crate) fn error(&self, message: String) {
        tracing::warn!(%message, "pipe: skipped an item");
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    fn refused(&self, message: String) {
        tracing::error!(%message, "pipe: a job was refused");
        self.refused.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    fn stats(&self) -> PipeStats {
        PipeStats {
            enqueued: self.enqueued.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            unsent: self.unsent.load(Ordering::Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            finished: self.finished.load(Ordering::Acquire),
        }
    }
}

impl Pipe {
    pub(crate) fn new() -> Self {
        Self { state: Arc::default(), stop: CancellationToken::new(), task: None }
    }

    pub(crate) fn with_task(mut self, task: JoinHandle<()>) -> Self {
        self.task = Some(task);
        self
    }

    pub(crate) fn parts(&self) -> (Arc<PipeState>, CancellationToken) {
        (Arc::clone(&self.state), self.stop.clone())
    }

    /// The counts so far.
    pub fn stats(&self) -> PipeStats {
        self.state.stats()
    }

    /// Stops reading the stream, writes the jobs already read (trying for up
    /// to 10 s if the backend is failing; what is still not written then is
    /// counted as [`unsent`](PipeStats::unsent)), and returns the counts.
    pub async fn stop(mut self) -> PipeStats {
        self.stop.cancel();
        self.finish().await
    }

    /// Waits until the stream ends and everything read was written, and
    /// returns the counts.
    pub async fn join(mut self) -> PipeStats {
        self.finish().await
    }

    async fn finish(&mut self) -> PipeStats {
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            self.state.error(format!("the pipe's task ended abnormally: {error}"));
            self.state.finished.store(true, Ordering::Release);
        }
        self.state.stats()
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe").field("stats", &self.state.stats()).finish_non_exhaustive()
    }
}

/// Writes items into a backend in batches, retrying failed writes: the
/// engine of [`PipeExt::pipe_to`] and of schedules.
pub(crate) struct Writer<B> {
    pub(crate) backend: B,
    pub(crate) state: Arc<PipeState>,
    pub(crate) stop: CancellationToken,
}

impl<B: Backend> Writer<B> {
    /// Reads `stream` until it ends or the pipe stops, turning each item
    /// into a task with `to_task`, and writes them in batches.
    async fn drain<T, E, S, F>(&self, stream: S, to_task: F)
    where
        S: Stream<Item = Result<T, E>>,
        E: fmt::Display,
        F: Fn(T, Timestamp) -> Result<NewTask, Error>,
    {
        let mut stream = pin!(stream);
        let mut ended = false;
        while !ended {
            let first = tokio::select! {
                () = self.stop.cancelled() => break,
                item = stream.next() => item,
            };
            let Some(first) = first else { break };
            let now = self.backend.tuning().clock.now();
            let mut batch = Vec::new();
            self.add(&mut batch, first, &to_task, now);
            // Everything the stream has ready, without waiting for more.
            while batch.len() < PIPE_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(item)) => self.add(&mut batch, item, &to_task, now),
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            self.write(batch).await;
        }
        self.state.finished.store(true, Ordering::Release);
    }

    fn add<T, E: fmt::Display>(
        &self,
        batch: &mut Vec<NewTask>,
        item: Result<T, E>,
        to_task: impl Fn(T, Timestamp) -> Result<NewTask, Error>,
        now: Timestamp,
    ) {
        match item {
            Ok(value) => match to_task(value, now).and_then(|task| within_limit(&self.backend, task)) {
                Ok(task) => batch.push(task),
                Err(error) => self.state.refused(format!("could not enqueue a job of the stream: {error}")),
            },
            Err(error) => self.state.error(format!("the stream gave an error: {error}")),
        }
    }

    /// Writes `batch`, retrying with backoff until it lands (or, once the
    /// pipe is stopping, until the stop deadline). Returns the ids written.
    pub(crate) async fn write(&self, batch: Vec<NewTask>) -> Option<Vec<crate::task::TaskId>> {
        if batch.is_empty() {
            return Some(Vec::new());
        }
        let mut pause = MIN_PAUSE;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            match self.backend.push(batch.clone()).await {
                Ok(ids) => {
                    self.state.enqueued.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return Some(ids);
                }
                Err(Error::Backend(error)) => {
                    tracing::warn!(%error, tasks = batch.len(), "pipe: writing a batch failed; retrying");
                }
                // Not the store failing: the batch holds a task it refuses.
                Err(_) => return self.write_singly(batch).await,
            }
            if self.stop.is_cancelled() {
                let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + STOP_DEADLINE);
                if tokio::time::Instant::now() >= until {
                    self.state.unsent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.state.error(format!(
                        "the pipe stopped with {} job(s) not written: the {} backend kept failing",
                        batch.len(),
                        B::NAME
                    ));
                    return None;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Writes each task alone, so that one refused task costs only itself.
    async fn write_singly(&self, batch: Vec<NewTask>) -> Option<Vec<crate::task::TaskId>> {
        let mut ids = Vec::new();
        for task in batch {
            let job = task.job;
            match self.backend.push(vec![task.clone()]).await {
                Ok(written) => {
                    self.state.enqueued.fetch_add(1, Ordering::Relaxed);
                    ids.extend(written);
                }
                Err(Error::Backend(_)) => {
                    // The store failed meanwhile: back to retrying it.
                    if let Some(written) = Box::pin(self.write(vec![task])).await {
                        ids.extend(written);
                    }
                }
                Err(error) => self.state.refused(format!("the {} backend refused a `{job}` task: {error}", B::NAME)),
            }
        }
        Some(ids)
    }
}
