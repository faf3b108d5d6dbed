//! The [`Monitor`] runs workers and stops them gracefully.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use crate::backend::Backend;
use crate::error::Error;
use crate::job::Job;
use crate::job_error::JobError;
use crate::request::Request;
use crate::worker::{JobService, Worker, WorkerBuilder};

type RunFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// A worker of any job and backend, as the monitor holds it.
pub(crate) trait IntoWorker {
    /// The worker's id, for messages.
    fn worker_id(&self) -> String;
    /// Checks the worker can start (its data is all there).
    ///
    /// # Errors
    ///
    /// [`Error::MissingData`] naming the job and the type.
    fn check(&self) -> Result<(), Error>;
    /// The queue it serves.
    fn queue(&self) -> String;
    /// The job it runs.
    fn job(&self) -> &'static str;
    /// Makes this worker check its queue for tasks of jobs outside `served`.
    fn watch_unserved(&mut self, served: Vec<&'static str>, bury_after: Option<Duration>);
    /// Runs it until `shutdown`, then stops within `grace`.
    fn into_run(self: Box<Self>, shutdown: CancellationToken, grace: Duration) -> RunFuture;
}

impl<J, B, S> IntoWorker for Worker<J, B, S>
where
    J: Job,
    B: Backend,
    S: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn worker_id(&self) -> String {
        self.id().to_owned()
    }

    fn check(&self) -> Result<(), Error> {
        Worker::check(self)
    }

    fn queue(&self) -> String {
        Worker::queue(self).to_owned()
    }

    fn job(&self) -> &'static str {
        J::NAME
    }

    fn watch_unserved(&mut self, served: Vec<&'static str>, bury_after: Option<Duration>) {
        self.unserved = Some(crate::worker::UnservedCheck { served, bury_after });
    }

    fn into_run(self: Box<Self>, shutdown: CancellationToken, grace: Duration) -> RunFuture {
        Box::pin((*self).run(shutdown, grace))
    }
}

/// Runs registered workers, and stops them gracefully on a signal.
///
/// On shutdown every worker stops claiming, lets its in-flight runs finish
/// until the shutdown deadline (30 s by default), releases the rest back to
/// the queue, and deregisters.
///
/// # Examples
///
/// ```no_run
/// # use errand_runtime::{Job, JobError, TaskCx, Monitor, WorkerBuilder, memory::MemoryBackend};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping;
/// # impl Job for Ping { const NAME: &'static str = "ping"; type Output = ();
/// #   async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) } }
/// # async fn example() -> Result<(), errand_runtime::Error> {
/// let backend = MemoryBackend::new();
/// Monitor::new()
///     .register(WorkerBuilder::<Ping, _>::new(backend.clone()).concurrency(8))
///     .shutdown_timeout(std::time::Duration::from_secs(10))
///     .run() // until Ctrl-C
///     .await
/// # }
/// ```
#[must_use]
pub struct Monitor {
    workers: Vec<Monitored>,
    shutdown_timeout: Duration,
    bury_unserved_after: Option<Duration>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    /// A monitor with no workers.
    pub fn new() -> Self {
        Self { workers: Vec::new(), shutdown_timeout: Duration::from_secs(30), bury_unserved_after: None }
    }

    /// Adds a worker (a [`WorkerBuilder`] or a built [`Worker`]).
    pub fn register<W: IntoMonitored>(mut self, worker: W) -> Self {
        self.workers.push(worker.into_monitored());
        self
    }

    /// How long in-flight runs get to finish on shutdown.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// What happens to waiting tasks of a job that no worker of any
    /// process serves on their queue — a job type a deploy removed, a name
    /// typed wrong, or a service that is down. They are always reported (a
    /// warning and [`Event::Unserved`](crate::Event::Unserved)). With
    /// `Some(grace)`, those that waited longer than `grace` while no worker
    /// anywhere served their job go `dead` with a reason naming the job and
    /// the queue (kept, and retryable); `None`, the default, never buries.
    ///
    /// "Served" means by any process: a worker of the job in another service
    /// sharing the queue, seen within the grace period, keeps its backlog
    /// alive, however long it is.
    pub fn bury_unserved_after(mut self, grace: Option<Duration>) -> Self {
        self.bury_unserved_after = grace;
        self
    }

    /// Runs until the process is asked to stop — Ctrl-C (SIGINT), or SIGTERM
    /// on Unix, which is what containers and systemd send — then shuts down
    /// gracefully. See [`shutdown_signal`].
    ///
    /// # Errors
    ///
    /// As [`run_until`](Monitor::run_until).
    pub async fn run(self) -> Result<(), Error> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `signal` completes (its output is ignored, so
    /// `tokio::signal::ctrl_c()` works as it is), then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// Before anything runs: [`Error::NoWorkers`], or [`Error::MissingData`]
    /// when a worker lacks data its job needs. Later:
    /// [`Error::ShutdownTimeout`] when workers did not stop in time, or a
    /// worker's own error (the other workers are then shut down too).
    pub async fn run_until<F: Future + Send>(self, signal: F) -> Result<(), Error> {
        if self.workers.is_empty() {
            return Err(Error::NoWorkers);
        }
        for Monitored(worker) in &self.workers {
            worker.check()?;
        }
        // One worker per queue watches for jobs none of ours serve.
        let mut served: std::collections::HashMap<String, Vec<&'static str>> = std::collections::HashMap::new();
        for Monitored(worker) in &self.workers {
            served.entry(worker.queue()).or_default().push(worker.job());
        }
        let mut workers: Vec<Box<dyn IntoWorker + Send>> = self.workers.into_iter().map(|m| m.0).collect();
        for worker in &mut workers {
            if let Some(jobs) = served.remove(&worker.queue()) {
                worker.watch_unserved(jobs, self.bury_unserved_after);
            }
        }
        let shutdown = CancellationToken::new();
        let grace = self.shutdown_timeout;
        let mut running = JoinSet::new();
        // The worker of each task, to name the one that crashed.
        let mut ids = std::collections::HashMap::new();
        for worker in workers {
            let id = worker.worker_id();
            let run = worker.into_run(shutdown.clone(), grace);
            ids.insert(running.spawn(run).id(), id);
        }
        let ended_abnormally = |ended: Result<Result<(), Error>, tokio::task::JoinError>| match ended {
            Ok(result) => result,
            Err(join) => Err(Error::WorkerCrashed {
                worker: ids.get(&join.id()).cloned().unwrap_or_else(|| "a worker".to_owned()),
                message: if join.is_panic() { "it panicked".to_owned() } else { join.to_string() },
            }),
        };

        let mut first_error = None;
        tokio::select! {
            _ = signal => {}
            Some(ended) = running.join_next() => {
                first_error = Some(ended_abnormally(ended));
            }
        }
        shutdown.cancel();

        // Workers wait `grace` for runs, then flush and release: allow a margin.
        let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, running.join_next()).await {
                Ok(Some(ended)) => {
                    let error = ended_abnormally(ended);
                    if first_error.is_none() {
                        first_error = Some(error);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    let workers = running.len();
                    running.abort_all();
                    return Err(Error::ShutdownTimeout { workers, deadline: grace });
                }
            }
        }
        match first_error {
            Some(Err(error)) => Err(error),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.workers.iter().map(|w| w.0.worker_id()).collect();
        f.debug_struct("Monitor").field("workers", &ids).field("shutdown_timeout", &self.shutdown_timeout).finish()
    }
}

/// Resolves when the process is asked to stop: on Ctrl-C (SIGINT) and, on
/// Unix, on SIGTERM (what `docker stop`, Kubernetes and systemd send). For
/// [`Monitor::run_until`] when the monitor runs beside other work:
///
/// ```no_run
/// # async fn f(monitor: errand_runtime::Monitor) -> Result<(), errand_runtime::Error> {
/// monitor.run_until(errand_runtime::shutdown_signal()).await
/// # }
/// ```
///
/// A signal that cannot be listened for is logged, and the other one still
/// works; with neither, this never resolves.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupted (Ctrl-C): shutting down gracefully"),
        () = terminate => tracing::info!("terminated (SIGTERM): shutting down gracefully"),
    }
}

/// A worker boxed for the monitor, whatever its job and backend.
pub struct Monitored(Box<dyn IntoWorker + Send>);

impl fmt::Debug for Monitored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Monitored").field(&self.0.worker_id()).finish()
    }
}

/// What [`Monitor::register`] accepts: a built [`Worker`] or a
/// [`WorkerBuilder`] (built on registration).
pub trait IntoMonitored {
    /// Boxes the worker for the monitor.
    fn into_monitored(self) -> Monitored;
}

impl<J, B, S> IntoMonitored for Worker<J, B, S>
where
    J: Job,
    B: Backend,
    S: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn into_monitored(self) -> Monitored {
        Monitored(Box::new(self))
    }
}

impl<J, B, L> IntoMonitored for WorkerBuilder<J, B, L>
where
    J: Job,
    B: Backend,
    L: Layer<JobService<J>>,
    L::Service: Service<Request<J>, Response = J::Output, Error = JobError> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request<J>>>::Future: Send + 'static,
{
    fn into_monitored(self) -> Monitored {
        Monitored(Box::new(self.build()))
    }
}
