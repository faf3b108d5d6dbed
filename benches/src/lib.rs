//! The throughput and latency harness behind `cargo bench -p errand-benches`
//! (and, later, `errand bench`).
//!
//! For one backend it measures, with a noop job:
//! - single enqueue, one caller and 16 concurrent callers, and bulk enqueue
//!   (jobs/s);
//! - drain: tasks queued first, then one worker runs them all at
//!   concurrency 1, 16 and 64 (jobs/s), with 2,000 and with 200,000 queued
//!   so that a slowdown with table size shows (a drain of 20,000 tasks or
//!   fewer runs five times and reports the median);
//! - enqueue→start latency on an idle worker (p50/p99), one task at a time.
//!
//! ```no_run
//! # async fn run() -> Result<(), errand::Error> {
//! use errand::memory::MemoryBackend;
//! let results = errand_benches::run_backend("memory", &errand_benches::Plan::quick(), || async {
//!     Ok(MemoryBackend::new())
//! })
//! .await?;
//! errand_benches::print_table(&results);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use errand::mysql::MysqlBackend;
use errand::postgres::PostgresBackend;
use errand::postgres::sqlx::{self, Row};
use errand::sqlite::SqliteBackend;
use errand::sqlite::sqlx as sqlite_sqlx;
use errand::workflow::{RunState, WorkflowExt, WorkflowStore};
use errand::{Backend, BackendExt, Event, Expose, Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

/// Concurrent callers in the "enqueue single ×N callers" scenario.
const SINGLE_CALLERS: u64 = 16;

/// Counts finished runs and wakes the bench when the target is reached.
/// Clones share the count.
#[derive(Debug, Default, Clone)]
pub struct Counter(Arc<CounterInner>);

#[derive(Debug, Default)]
struct CounterInner {
    done: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Counter {
    fn hit(&self) {
        let n = self.0.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.0.target.load(Ordering::Relaxed) {
            self.0.reached.notify_one();
        }
    }
}

/// A job that does nothing but count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noop {
    /// A small payload, as a real job would carry.
    pub n: u64,
}

impl Job for Noop {
    const NAME: &'static str = "bench_noop";
    const QUEUE: &'static str = "bench";
    type Output = ();

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        if let Some(counter) = cx.data::<Counter>() {
            counter.hit();
        }
        Ok(())
    }
}

/// A job that reports when it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping {
    /// The sample number.
    pub n: u64,
}

/// Where [`Ping`] reports its start.
#[derive(Debug, Clone)]
pub struct Started(mpsc::UnboundedSender<(u64, Instant)>);

impl Job for Ping {
    const NAME: &'static str = "bench_ping";
    const QUEUE: &'static str = "bench_latency";
    type Output = ();

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        let now = Instant::now();
        if let Some(started) = cx.data::<Started>() {
            let _ = started.0.send((self.n, now));
        }
        Ok(())
    }
}

/// A 3-level diamond of noop steps: `a` → (`b`, `c`) → `d`.
#[errand::workflow(queue = "bench_wf")]
pub mod diamond {
    use errand::JobError;

    /// Entry step.
    #[dag_step]
    async fn a(n: u64) -> Result<u64, JobError> {
        Ok(n)
    }

    /// Left branch.
    #[dag_step(after = a)]
    async fn b(n: u64) -> Result<u64, JobError> {
        Ok(n + 1)
    }

    /// Right branch.
    #[dag_step(after = a)]
    async fn c(n: u64) -> Result<u64, JobError> {
        Ok(n + 2)
    }

    /// Join.
    #[dag_step(after = [b, c])]
    async fn d(left: u64, right: u64) -> Result<u64, JobError> {
        Ok(left + right)
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Tasks for the single-enqueue measurement.
    pub single: u64,
    /// Tasks for the bulk-enqueue measurement.
    pub bulk: u64,
    /// Tasks per bulk call.
    pub bulk_chunk: u64,
    /// (queued tasks, concurrency) drain runs.
    pub drains: Vec<(u64, usize)>,
    /// Latency samples.
    pub latency_samples: u64,
    /// Diamond runs drained at concurrency 64 (4 steps each), for the
    /// per-step cost next to a plain job's; 0 skips workflows.
    pub workflow_runs: u64,
    /// Diamond runs timed one at a time on an idle worker.
    pub workflow_samples: u64,
}

/// A group of scenarios of a [`Plan`], for running only some ([`Plan::only`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Single enqueue, from one caller and from several.
    Single,
    /// Bulk enqueue.
    Bulk,
    /// The drains.
    Drains,
    /// Enqueue→start latency.
    Latency,
    /// The workflow scenarios.
    Workflows,
}

impl Plan {
    /// This plan with only the scenarios of `parts`; the others are off.
    #[must_use]
    pub fn only(mut self, parts: &[Part]) -> Self {
        let keeps = |part| parts.contains(&part);
        if !keeps(Part::Single) {
            self.single = 0;
        }
        if !keeps(Part::Bulk) {
            self.bulk = 0;
        }
        if !keeps(Part::Drains) {
            self.drains.clear();
        }
        if !keeps(Part::Latency) {
            self.latency_samples = 0;
        }
        if !keeps(Part::Workflows) {
            self.workflow_runs = 0;
            self.workflow_samples = 0;
        }
        self
    }

    /// The full plan: every scenario at its full size.
    pub fn full() -> Self {
        Self {
            single: 2_000,
            bulk: 200_000,
            bulk_chunk: 10_000,
            drains: vec![(2_000, 1), (2_000, 16), (2_000, 64), (200_000, 64)],
            latency_samples: 500,
            workflow_runs: 2_000,
            workflow_samples: 200,
        }
    }

    /// A shorter run for a quick look.
    pub fn quick() -> Self {
        Self {
            single: 500,
            bulk: 20_000,
            bulk_chunk: 10_000,
            drains: vec![(2_000, 1), (2_000, 64), (20_000, 64)],
            latency_samples: 100,
            workflow_runs: 500,
            workflow_samples: 50,
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The backend.
    pub backend: String,
    /// What was measured, e.g. `drain 2000 @64`.
    pub scenario: String,
    /// The figure.
    pub value: f64,
    /// Its unit: `jobs/s` or `µs`.
    pub unit: &'static str,
}

fn measurement(backend: &str, scenario: String, value: f64, unit: &'static str) -> Measurement {
    eprintln!("  {backend:<10} {scenario:<28} {value:>14.1} {unit}");
    Measurement { backend: backend.to_owned(), scenario, value, unit }
}

/// Runs `plan` against fresh backends from `make` (one per scenario).
///
/// # Errors
///
/// When the backend fails.
pub async fn run_backend<B, F, Fut>(name: &str, plan: &Plan, make: F) -> Result<Vec<Measurement>, errand::Error>
where
    B: Backend + Expose,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<B, errand::Error>>,
{
    let mut out = Vec::new();

    if plan.single > 0 {
        let backend = make().await?;
        let start = Instant::now();
        for n in 0..plan.single {
            backend.enqueue(Noop { n }).await?;
        }
        out.push(measurement(name, "enqueue single".into(), rate(plan.single, start.elapsed()), "jobs/s"));
    }

    if plan.single > 0 {
        // As a web server enqueues: many callers at once, one task each.
        let backend = make().await?;
        let start = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for caller in 0..SINGLE_CALLERS {
            let backend = backend.clone();
            let n = plan.single;
            callers.spawn(async move {
                for k in (caller..n).step_by(SINGLE_CALLERS as usize) {
                    backend.enqueue(Noop { n: k }).await?;
                }
                Ok::<(), errand::Error>(())
            });
        }
        while let Some(done) = callers.join_next().await {
            done.map_err(|e| bench_error("an enqueueing task", e))??;
        }
        let scenario = format!("enqueue single ×{SINGLE_CALLERS} callers");
        out.push(measurement(name, scenario, rate(plan.single, start.elapsed()), "jobs/s"));
    }

    if plan.bulk > 0 {
        let backend = make().await?;
        let start = Instant::now();
        bulk(&backend, plan.bulk, plan.bulk_chunk).await?;
        let scenario = format!("enqueue bulk ({} per call)", plan.bulk_chunk);
        out.push(measurement(name, scenario, rate(plan.bulk, start.elapsed()), "jobs/s"));
    }

    for &(queued, concurrency) in &plan.drains {
        let backend = make().await?;
        warm_up(&backend, concurrency).await?;
        // A short drain lasts a few tens of milliseconds, where one hiccup
        // of the machine shows as ±30 %: report the median of several.
        let repeats = if queued <= SHORT_DRAIN { 5 } else { 1 };
        let mut rates = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            bulk(&backend, queued, plan.bulk_chunk).await?;
            rates.push(rate(queued, drain(&backend, queued, concurrency).await?));
        }
        rates.sort_by(f64::total_cmp);
        out.push(measurement(name, format!("drain {queued} @{concurrency}"), rates[rates.len() / 2], "jobs/s"));
    }

    if plan.latency_samples > 0 {
        let backend = make().await?;
        let (p50, p99) = latency(&backend, &backend, plan.latency_samples, Producer::MainThread).await?;
        out.push(measurement(name, "enqueue→start p50".into(), p50, "µs"));
        out.push(measurement(name, "enqueue→start p99".into(), p99, "µs"));
        let (p50, p99) = latency(&backend, &backend, plan.latency_samples, Producer::Task).await?;
        out.push(measurement(name, "enqueue→start p50, from a task".into(), p50, "µs"));
        out.push(measurement(name, "enqueue→start p99, from a task".into(), p99, "µs"));
    }
    Ok(out)
}

/// The workflow scenarios of issue 4 for a backend with a [`WorkflowStore`]:
/// steps/s when draining diamond runs at concurrency 64, next to a plain
/// drain of as many jobs (the per-step overhead), and the end-to-end time
/// of one diamond on an idle worker (p50/p99).
///
/// # Errors
///
/// When the backend fails.
pub async fn run_workflows<B, F, Fut>(name: &str, plan: &Plan, make: F) -> Result<Vec<Measurement>, errand::Error>
where
    B: Backend + Expose + WorkflowStore,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<B, errand::Error>>,
{
    let mut out = Vec::new();
    if plan.workflow_runs > 0 {
        let steps = plan.workflow_runs * 4;
        let backend = make().await?;
        bulk(&backend, steps, plan.bulk_chunk).await?;
        let plain = drain(&backend, steps, 64).await?;
        let backend = make().await?;
        let mut runs = Vec::with_capacity(plan.workflow_runs as usize);
        for n in 0..plan.workflow_runs {
            runs.push(backend.start(diamond::Diamond::new(n)).await?);
        }
        // Counted from the worker's events, as the plain drain counts its
        // runs: polling the store meanwhile would take CPU from the runs.
        let completed = Arc::new(AtomicU64::new(0));
        let reached = Arc::new(Notify::new());
        let worker = diamond::Diamond::worker(&backend).concurrency(64).on_event({
            let (completed, reached) = (Arc::clone(&completed), Arc::clone(&reached));
            move |event| {
                if matches!(event, Event::Completed { .. }) && completed.fetch_add(1, Ordering::Relaxed) + 1 == steps {
                    reached.notify_one();
                }
            }
        });
        let start = Instant::now();
        let watch = backend.clone();
        let last = runs.last().copied();
        Monitor::new()
            .register(worker)
            .run_until(async move {
                let Some(last) = last else { return };
                if completed.load(Ordering::Relaxed) < steps {
                    reached.notified().await;
                }
                // Every step ran; wait for the last acks to be written.
                loop {
                    let done = watch.workflow(last).status().await.is_ok_and(|s| s.state != RunState::Running);
                    if done && watch.queue_counts("bench_wf").await.is_ok_and(|c| c.pending + c.running + c.retry == 0)
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await?;
        let elapsed = start.elapsed();
        let per_step = elapsed.as_secs_f64() / steps as f64;
        let per_job = plain.as_secs_f64() / steps as f64;
        out.push(measurement(
            name,
            format!("workflow steps ({} diamonds @64)", plan.workflow_runs),
            rate(steps, elapsed),
            "steps/s",
        ));
        out.push(measurement(name, format!("plain jobs ({steps} @64)"), rate(steps, plain), "jobs/s"));
        out.push(measurement(name, "cost of a step / a job".into(), per_step / per_job, "×"));
    }
    if plan.workflow_samples > 0 {
        let backend = make().await?;
        let watch = backend.clone();
        let samples = plan.workflow_samples;
        let mut times = Vec::with_capacity(samples as usize);
        let mut failure = None;
        // Steps run so far, from the worker's events: the run is polled
        // closely only once its last step has run, until its ack is written.
        // A Tokio timer between polls would round every sample up to its
        // 1 ms tick.
        let completed = Arc::new(AtomicU64::new(0));
        let ran = Arc::new(Notify::new());
        let worker = diamond::Diamond::worker(&backend).concurrency(4).on_event({
            let (completed, ran) = (Arc::clone(&completed), Arc::clone(&ran));
            move |event| {
                if matches!(event, Event::Completed { .. }) {
                    completed.fetch_add(1, Ordering::Relaxed);
                    ran.notify_one();
                }
            }
        });
        Monitor::new()
            .register(worker)
            .run_until(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                for n in 0..samples {
                    let all_ran = (n + 1) * 4;
                    let start = Instant::now();
                    let run = match watch.start(diamond::Diamond::new(n)).await {
                        Ok(run) => run,
                        Err(e) => {
                            failure = Some(e);
                            return;
                        }
                    };
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while completed.load(Ordering::Relaxed) < all_ran && Instant::now() < deadline {
                        let _ = tokio::time::timeout(Duration::from_millis(10), ran.notified()).await;
                    }
                    while Instant::now() < deadline {
                        if watch.workflow(run).status().await.is_ok_and(|s| s.state == RunState::Done) {
                            times.push(start.elapsed().as_secs_f64() * 1e3);
                            break;
                        }
                        // This future runs on the bench's main thread, not on
                        // the runtime's workers: a short blocking sleep here
                        // leaves them the CPU (spinning would take it from
                        // them) and stays far below Tokio's timer tick.
                        std::thread::sleep(Duration::from_micros(20));
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
            .await?;
        if let Some(e) = failure {
            return Err(e);
        }
        times.sort_by(f64::total_cmp);
        let pick = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
        out.push(measurement(name, "diamond end to end p50".into(), pick(0.5), "ms"));
        out.push(measurement(name, "diamond end to end p99".into(), pick(0.99), "ms"));
    }
    Ok(out)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn bulk<B: Backend>(backend: &B, n: u64, chunk: u64) -> Result<(), errand::Error> {
    let mut next = 0;
    while next < n {
        let end = (next + chunk).min(n);
        backend.enqueue_bulk((next..end).map(|n| Noop { n })).await?;
        next = end;
    }
    Ok(())
}

/// Runs a few hundred tasks through a fresh backend before a timed drain:
/// a long-running worker has its connections open and its code paths warm,
/// and a 2,000-task drain (tens of milliseconds) would otherwise mostly time
/// the opening of connections.
async fn warm_up<B: Backend>(backend: &B, concurrency: usize) -> Result<(), errand::Error> {
    bulk(backend, WARM_UP, WARM_UP).await?;
    drain(backend, WARM_UP, concurrency).await?;
    Ok(())
}

/// Tasks run by [`warm_up`].
const WARM_UP: u64 = 256;

/// Drains of at most this many tasks are run five times; the median is
/// reported.
const SHORT_DRAIN: u64 = 20_000;

async fn drain<B: Backend>(backend: &B, n: u64, concurrency: usize) -> Result<Duration, errand::Error> {
    let counter = Counter::default();
    counter.0.target.store(n, Ordering::Relaxed);
    let worker = WorkerBuilder::<Noop, B>::new(backend.clone()).concurrency(concurrency).data(counter.clone());
    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    Monitor::new()
        .register(worker)
        .run_until(async {
            let reached = counter.0.reached.notified();
            if counter.0.done.load(Ordering::Relaxed) < n {
                reached.await;
            }
            elapsed = start.elapsed();
        })
        .await?;
    Ok(elapsed)
}

/// Enqueue→start latency when the enqueue comes from another backend value
/// (`producer`, with its own connections, as another process would be) than
/// the idle worker's (`consumer`): the wake-up crosses the server (NOTIFY on
/// PostgreSQL). Both must share their storage.
///
/// # Errors
///
/// When the backend fails.
pub async fn latency_across<B: Backend>(
    name: &str,
    consumer: &B,
    producer: &B,
    samples: u64,
) -> Result<Vec<Measurement>, errand::Error> {
    let (p50, p99) = latency(consumer, producer, samples, Producer::MainThread).await?;
    Ok(vec![
        measurement(name, "enqueue→start p50, other process".into(), p50, "µs"),
        measurement(name, "enqueue→start p99, other process".into(), p99, "µs"),
    ])
}

/// Where the enqueues of a latency measurement come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    /// The bench's main future, which `#[tokio::main]` runs on its own
    /// thread: every wake-up of the worker crosses threads.
    MainThread,
    /// A spawned task on the runtime's worker threads, where a web handler
    /// that enqueues runs.
    Task,
}

async fn latency<B: Backend>(
    backend: &B,
    producer: &B,
    samples: u64,
    from: Producer,
) -> Result<(f64, f64), errand::Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = WorkerBuilder::<Ping, B>::new(backend.clone()).data(Started(tx)).concurrency(4);
    let mut sampled = Ok(Vec::new());
    Monitor::new()
        .register(worker)
        .run_until(async {
            // Let the worker register and go idle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let sampler = sample_latencies(producer.clone(), rx, samples);
            sampled = match from {
                Producer::MainThread => sampler.await,
                Producer::Task => match tokio::spawn(sampler).await {
                    Ok(sampled) => sampled,
                    Err(e) => Err(bench_error("the latency sampler", e)),
                },
            };
        })
        .await?;
    Ok(p50_p99(sampled?))
}

/// The median and 99th percentile of `samples`.
fn p50_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    (pick(0.50), pick(0.99))
}

/// Enqueues `samples` pings one at a time, each once the last has started;
/// returns each one's enqueue→start time in µs.
async fn sample_latencies<B: Backend>(
    producer: B,
    started: mpsc::UnboundedReceiver<(u64, Instant)>,
    samples: u64,
) -> Result<Vec<f64>, errand::Error> {
    let producer = &producer;
    let enqueue = move |n| async move { producer.enqueue(Ping { n }).await.map(drop) };
    paced_samples("the latency sampler", enqueue, started, samples).await
}

/// Calls `send(n)` for `n` in `0..samples`, each once the last has arrived
/// on `arrived` and 3 ms after it; each one's time from send to arrival, in µs.
async fn paced_samples<F, Fut>(
    what: &str,
    mut send: F,
    mut arrived: mpsc::UnboundedReceiver<(u64, Instant)>,
    samples: u64,
) -> Result<Vec<f64>, errand::Error>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), errand::Error>>,
{
    let mut latencies = Vec::with_capacity(samples as usize);
    for n in 0..samples {
        let sent = Instant::now();
        send(n).await?;
        match tokio::time::timeout(Duration::from_secs(10), arrived.recv()).await {
            Ok(Some((_, at))) => latencies.push(at.duration_since(sent).as_secs_f64() * 1e6),
            _ => return Err(bench_error(what, format!("sample {n} did not arrive within 10 s"))),
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    Ok(latencies)
}

/// The floor under the memory backend's enqueue→start: one wake-up of an
/// idle task on the runtime, with no framework. A task waits on a channel;
/// the sampler sends it a message and the task notes when it woke, paced
/// and counted as the latency sampler does, from the bench's main thread
/// (every wake-up crosses to a parked worker thread) and from a spawned task.
///
/// # Errors
///
/// When the waiting task goes away.
pub async fn tokio_raw(name: &str, plan: &Plan) -> Result<Vec<Measurement>, errand::Error> {
    let mut out = Vec::new();
    if plan.latency_samples == 0 {
        return Ok(out);
    }
    for (from, label) in [(Producer::MainThread, ""), (Producer::Task, ", from a task")] {
        let (wake, mut woken) = mpsc::unbounded_channel::<()>();
        let (started, at) = mpsc::unbounded_channel::<(u64, Instant)>();
        let waiter = tokio::spawn(async move {
            while woken.recv().await.is_some() {
                if started.send((0, Instant::now())).is_err() {
                    break;
                }
            }
        });
        // Let the waiting task park, as an idle worker has.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sampler = sample_wakeups(wake, at, plan.latency_samples);
        let sampled = match from {
            Producer::MainThread => sampler.await,
            Producer::Task => tokio::spawn(sampler).await.map_err(|e| bench_error("the wake-up sampler", e))?,
        };
        waiter.abort();
        let (p50, p99) = p50_p99(sampled?);
        out.push(measurement(name, format!("bare wake-up p50{label}"), p50, "µs"));
        out.push(measurement(name, format!("bare wake-up p99{label}"), p99, "µs"));
    }
    Ok(out)
}

/// Wakes the waiting task `samples` times, each once the last has woken,
/// 3 ms apart; each wake-up's time in µs.
async fn sample_wakeups(
    wake: mpsc::UnboundedSender<()>,
    woken: mpsc::UnboundedReceiver<(u64, Instant)>,
    samples: u64,
) -> Result<Vec<f64>, errand::Error> {
    let wake = &wake;
    let send = move |_| async move { wake.send(()).map_err(|e| bench_error("the wake-up sampler", e)) };
    paced_samples("the wake-up sampler", send, woken, samples).await
}

/// Prints results as a table on stdout.
pub fn print_table(results: &[Measurement]) {
    let mut out = String::new();
    out.push_str(&format!("{:<10} {:<30} {:>14} {}\n", "backend", "scenario", "value", "unit"));
    for m in results {
        out.push_str(&format!("{:<10} {:<30} {:>14.1} {}\n", m.backend, m.scenario, m.value, m.unit));
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{out}");
    }
}

/// The raw-SQL baseline of the PostgreSQL backend: its own claim and ack
/// statements (the crate's `sql/claim.sql` and `sql/ack.sql`, rendered for
/// the schema as the backend renders them) in bare loops, no framework. Each loop claims 64 due tasks (the issue's bare loop), then
/// marks them done in one statement, until the queue is empty, with a VACUUM
/// after every 50,000 tasks as the backend runs. For every 64-wide drain of
/// `plan`, with one loop and with four (on separate connections), and with
/// four loops claiming 256 at a time (the size of the backend's claims on a
/// busy queue), so errand's drain can be read as a fraction of it.
///
/// # Errors
///
/// When the server fails.
pub async fn postgres_raw<F, Fut>(name: &str, plan: &Plan, make: F) -> Result<Vec<Measurement>, errand::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<PostgresBackend, errand::Error>>,
{
    let mut out = Vec::new();
    for &(queued, concurrency) in &plan.drains {
        if concurrency != 64 {
            continue;
        }
        for (loops, claim) in [(1, 64), (4, 64), (4, 256)] {
            let backend = make().await?;
            bulk(&backend, WARM_UP, WARM_UP).await?;
            raw_drain(&backend, WARM_UP, loops, claim).await?;
            bulk(&backend, queued, plan.bulk_chunk).await?;
            let elapsed = raw_drain(&backend, queued, loops, claim).await?;
            let scenario = format!("raw SQL drain {queued} ×{loops}, {claim}/claim");
            out.push(measurement(name, scenario, rate(queued, elapsed), "jobs/s"));
        }
    }
    Ok(out)
}

/// Finished tasks between two VACUUMs in [`raw_drain`], as the backend's default.
const RAW_VACUUM_EVERY: u64 = 50_000;

async fn raw_drain(
    backend: &PostgresBackend,
    queued: u64,
    loops: usize,
    per_claim: i64,
) -> Result<Duration, errand::Error> {
    let sql_error = |e: sqlx::Error| errand::Error::from(errand::BackendError::new("postgres", "raw SQL drain", e));
    // As the backend does (`vacuum_every`): a VACUUM in the background after
    // every 50,000 finished tasks, or claims walk ever more dead index entries.
    let schema = format!("\"{}\"", backend.namespace());
    let vacuum = format!("VACUUM (SKIP_LOCKED) {schema}.tasks");
    let claim = Arc::new(include_str!("../../backends/postgres/sql/claim.sql").replace("__SCHEMA__", &schema));
    let ack = Arc::new(include_str!("../../backends/postgres/sql/ack.sql").replace("__SCHEMA__", &schema));
    let finished = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(loops);
    for l in 0..loops {
        let backend = backend.clone();
        let (vacuum, finished) = (vacuum.clone(), Arc::clone(&finished));
        let (claim, ack) = (Arc::clone(&claim), Arc::clone(&ack));
        handles.push(tokio::spawn(async move {
            let worker = format!("raw-{l}");
            let mut acked = 0_u64;
            loop {
                let now = errand::Timestamp::now().as_millis();
                let rows = sqlx::query(claim.as_str())
                    .bind(&worker)
                    .bind(now)
                    .bind(Noop::QUEUE)
                    .bind(Noop::NAME)
                    .bind(per_claim)
                    .bind(0_i64)
                    .fetch_all(backend.pool())
                    .await
                    .map_err(sql_error)?;
                let ids: Vec<i64> = rows.iter().filter_map(|r| r.try_get::<Option<i64>, _>(0).ok().flatten()).collect();
                if ids.is_empty() {
                    return Ok::<u64, errand::Error>(acked);
                }
                let results = vec![b"null".to_vec(); ids.len()];
                let none_i64: Vec<i64> = Vec::new();
                let none_text: Vec<String> = Vec::new();
                let applied: i64 = sqlx::query_scalar(ack.as_str())
                    .bind(&worker)
                    .bind(errand::Timestamp::now().as_millis())
                    .bind(&ids)
                    .bind(&results)
                    .bind(&none_i64)
                    .bind(&none_i64)
                    .bind(&none_text)
                    .bind(&none_i64)
                    .bind(&none_text)
                    .bind(&none_i64)
                    .bind(&none_i64)
                    .fetch_one(backend.pool())
                    .await
                    .map_err(sql_error)?;
                let applied = u64::try_from(applied).unwrap_or(0);
                acked += applied;
                let before = finished.fetch_add(applied, Ordering::Relaxed);
                if (before + applied) / RAW_VACUUM_EVERY > before / RAW_VACUUM_EVERY {
                    let (pool, vacuum) = (backend.pool().clone(), vacuum.clone());
                    tokio::spawn(async move { sqlx::query(&vacuum).execute(&pool).await });
                }
            }
        }));
    }
    let mut acked = 0;
    for handle in handles {
        acked += handle.await.map_err(|e| bench_error("a raw loop", e))??;
    }
    if acked != queued {
        return Err(bench_error("raw SQL drain", format!("finished {acked} of {queued} tasks")));
    }
    Ok(start.elapsed())
}

/// The raw-SQL baseline of the SQLite backend: its own statements on its
/// own writer pool (the same file, pragmas and connection), no framework.
///
/// - **Bulk insert:** `plan.bulk` tasks through `sql/push_uniform.sql` (the
///   statement the backend's bulk enqueue uses), `plan.bulk_chunk` per
///   statement, the payloads encoded as the backend encodes them.
/// - **Single insert** (when `plan` measures latency): one task at a time
///   through `sql/push_one.sql`, paced as the latency sampler enqueues;
///   p50/p99 of each statement's round trip through the pool. It is the
///   floor under the backend's enqueue→start, which takes one such
///   statement when the task is handed to a waiting worker.
/// - **Drain:** for every 64-wide drain of `plan`, one loop (SQLite has one
///   writer) that claims 64 due tasks with `sql/claim.sql` and marks them
///   done with `sql/ack_done.sql`, until the queue is empty; and the same
///   claiming 256 at a time.
///
/// # Errors
///
/// When SQLite fails.
pub async fn sqlite_raw<F, Fut>(name: &str, plan: &Plan, make: F) -> Result<Vec<Measurement>, errand::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<SqliteBackend, errand::Error>>,
{
    let mut out = Vec::new();
    if plan.bulk > 0 {
        let backend = make().await?;
        sqlite_raw_bulk(&backend, WARM_UP, plan.bulk_chunk).await?;
        let start = Instant::now();
        sqlite_raw_bulk(&backend, plan.bulk, plan.bulk_chunk).await?;
        let scenario = format!("raw SQL bulk insert ({} per statement)", plan.bulk_chunk);
        out.push(measurement(name, scenario, rate(plan.bulk, start.elapsed()), "jobs/s"));
    }
    if plan.latency_samples > 0 {
        let backend = make().await?;
        let (p50, p99) = p50_p99(sqlite_raw_singles(&backend, plan.latency_samples).await?);
        out.push(measurement(name, "raw SQL single insert p50".into(), p50, "µs"));
        out.push(measurement(name, "raw SQL single insert p99".into(), p99, "µs"));
    }
    for &(queued, concurrency) in &plan.drains {
        if concurrency != 64 {
            continue;
        }
        for claim in [64, 256] {
            let backend = make().await?;
            bulk(&backend, WARM_UP, WARM_UP).await?;
            sqlite_raw_drain(&backend, WARM_UP, claim).await?;
            bulk(&backend, queued, plan.bulk_chunk).await?;
            let elapsed = sqlite_raw_drain(&backend, queued, claim).await?;
            let scenario = format!("raw SQL drain {queued} ×1, {claim}/claim");
            out.push(measurement(name, scenario, rate(queued, elapsed), "jobs/s"));
        }
    }
    Ok(out)
}

fn sqlite_error(what: &'static str) -> impl Fn(sqlite_sqlx::Error) -> errand::Error {
    move |e| errand::Error::from(errand::BackendError::new("sqlite", what, e))
}

/// Lowercase hex of `bytes`, as the SQLite statements' JSON carries blobs.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

async fn sqlite_raw_bulk(backend: &SqliteBackend, n: u64, chunk: u64) -> Result<(), errand::Error> {
    let push = include_str!("../../backends/sqlite/sql/push_uniform.sql");
    let mut next = 0;
    while next < n {
        let end = (next + chunk).min(n);
        let payloads: Result<Vec<String>, _> =
            (next..end).map(|n| serde_json::to_vec(&Noop { n }).map(|bytes| hex(&bytes))).collect();
        let payloads = serde_json::to_string(&payloads.map_err(|e| bench_error("encode", e))?)
            .map_err(|e| bench_error("encode", e))?;
        let now = errand::Timestamp::now().as_millis();
        sqlite_sqlx::query(push)
            .bind(payloads)
            .bind(Noop::QUEUE)
            .bind(Noop::NAME)
            .bind(1_i64)
            .bind(0_i64)
            .bind(now)
            .bind(now)
            .bind(Option::<String>::None)
            .fetch_all(backend.pool())
            .await
            .map_err(sqlite_error("raw SQL bulk insert"))?;
        next = end;
    }
    Ok(())
}

/// Inserts `n` tasks one at a time, as the latency sampler enqueues them;
/// each insert's time in µs.
async fn sqlite_raw_singles(backend: &SqliteBackend, n: u64) -> Result<Vec<f64>, errand::Error> {
    let push = include_str!("../../backends/sqlite/sql/push_one.sql");
    let mut times = Vec::with_capacity(n as usize);
    for n in 0..n {
        let payload = serde_json::to_vec(&Ping { n }).map_err(|e| bench_error("encode", e))?;
        let sent = Instant::now();
        let now = errand::Timestamp::now().as_millis();
        sqlite_sqlx::query(push)
            .bind(Ping::QUEUE)
            .bind(Ping::NAME)
            .bind(payload)
            .bind(1_i64)
            .bind(0_i64)
            .bind(now)
            .bind(now)
            .bind(Option::<String>::None)
            .bind(Option::<String>::None)
            .execute(backend.pool())
            .await
            .map_err(sqlite_error("raw SQL single insert"))?;
        times.push(sent.elapsed().as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    Ok(times)
}

async fn sqlite_raw_drain(backend: &SqliteBackend, queued: u64, per_claim: i64) -> Result<Duration, errand::Error> {
    let claim = include_str!("../../backends/sqlite/sql/claim.sql");
    let ack = include_str!("../../backends/sqlite/sql/ack_done.sql");
    let worker = "raw-0";
    let start = Instant::now();
    let mut acked = 0_u64;
    loop {
        let rows = sqlite_sqlx::query(claim)
            .bind(worker)
            .bind(errand::Timestamp::now().as_millis())
            .bind(Noop::QUEUE)
            .bind(Noop::NAME)
            .bind(per_claim)
            .fetch_all(backend.pool())
            .await
            .map_err(sqlite_error("raw SQL claim"))?;
        if rows.is_empty() {
            break;
        }
        let mut json = String::from("[");
        for (i, row) in rows.iter().enumerate() {
            let id: i64 = sqlite_sqlx::Row::try_get(row, 0).map_err(sqlite_error("raw SQL claim"))?;
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("[{id},\"6e756c6c\"]"));
        }
        json.push(']');
        let done = sqlite_sqlx::query(ack)
            .bind(json)
            .bind(errand::Timestamp::now().as_millis())
            .bind(worker)
            .execute(backend.pool())
            .await
            .map_err(sqlite_error("raw SQL ack"))?;
        acked += done.rows_affected();
    }
    if acked != queued {
        return Err(bench_error("raw SQL drain", format!("finished {acked} of {queued} tasks")));
    }
    Ok(start.elapsed())
}

/// The raw-SQL baseline of the MySQL backend: its own claim and ack
/// statements (the crate's `sql/claim.sql` and `sql/ack.sql`, rendered for
/// the table prefix as the backend renders them: see [`render_mysql`]) in
/// bare loops, no framework. Each loop claims 64 due tasks (the update, then
/// the read-back of its rows), then marks them done in one statement, until
/// the queue is empty. For every 64-wide drain of `plan`, with one loop and
/// with four (each on its own connection at a time), and with four loops
/// claiming 256 at a time (the size of the backend's claims on a busy
/// queue), so errand's drain can be read as a fraction of it. And, when
/// `plan` has a bulk enqueue, its bulk insert in a bare loop (`sql/push.sql`
/// in multi-row inserts of 1,024 rows, one transaction per chunk), the bulk
/// enqueue's baseline.
///
/// # Errors
///
/// When the server fails.
pub async fn mysql_raw<F, Fut>(name: &str, plan: &Plan, make: F) -> Result<Vec<Measurement>, errand::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<MysqlBackend, errand::Error>>,
{
    let mut out = Vec::new();
    if plan.bulk > 0 {
        let backend = make().await?;
        mysql_raw_bulk(&backend, WARM_UP, plan.bulk_chunk).await?;
        let start = Instant::now();
        mysql_raw_bulk(&backend, plan.bulk, plan.bulk_chunk).await?;
        let scenario = format!("raw SQL bulk insert ({} per transaction)", plan.bulk_chunk);
        out.push(measurement(name, scenario, rate(plan.bulk, start.elapsed()), "jobs/s"));
    }
    for &(queued, concurrency) in &plan.drains {
        if concurrency != 64 {
            continue;
        }
        for (loops, claim) in [(1, 64), (4, 64), (4, 256)] {
            let backend = make().await?;
            bulk(&backend, WARM_UP, WARM_UP).await?;
            mysql_raw_drain(&backend, WARM_UP, loops, claim).await?;
            bulk(&backend, queued, plan.bulk_chunk).await?;
            let elapsed = mysql_raw_drain(&backend, queued, loops, claim).await?;
            let scenario = format!("raw SQL drain {queued} ×{loops}, {claim}/claim");
            out.push(measurement(name, scenario, rate(queued, elapsed), "jobs/s"));
        }
    }
    Ok(out)
}

/// `n` tasks written as the MySQL backend's bulk enqueue writes them, in a
/// bare loop: one transaction per `chunk`, multi-row inserts of its own
/// statement head (`sql/push.sql`) of 1,024 rows (the backend's largest),
/// `RETURNING id` on MariaDB, the payloads encoded as the backend's JSON
/// codec encodes them.
async fn mysql_raw_bulk(backend: &MysqlBackend, n: u64, chunk: u64) -> Result<(), errand::Error> {
    use errand::mysql::sqlx;
    let sql_error = |e: sqlx::Error| errand::Error::from(errand::BackendError::new("mysql", "raw SQL bulk insert", e));
    let Some(head) = render_mysql(include_str!("../../backends/mysql/sql/push.sql"), backend.namespace()).pop() else {
        return Err(bench_error("raw SQL bulk insert", "push.sql has no statement"));
    };
    let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(backend.pool()).await.map_err(sql_error)?;
    let returning = if version.contains("MariaDB") { " RETURNING id" } else { "" };
    let statement =
        |rows: u64| format!("{head} {}{returning}", vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; rows as usize].join(", "));
    let full = statement(1024);
    let mut next = 0;
    while next < n {
        let end = (next + chunk).min(n);
        let mut tx = backend.pool().begin().await.map_err(sql_error)?;
        let mut at = next;
        while at < end {
            let rows = (end - at).min(1024);
            let rest;
            let sql = if rows == 1024 {
                &full
            } else {
                rest = statement(rows);
                &rest
            };
            let now = errand::Timestamp::now().as_millis();
            let mut query = sqlx::query(sql);
            for k in at..at + rows {
                let payload = serde_json::to_vec(&Noop { n: k }).map_err(|e| bench_error("encode", e))?;
                query = query
                    .bind(Noop::QUEUE)
                    .bind(Noop::NAME)
                    .bind(payload)
                    .bind(1_i64)
                    .bind(0_i64)
                    .bind(now)
                    .bind(now)
                    .bind(Option::<String>::None);
            }
            query.fetch_all(&mut *tx).await.map_err(sql_error)?;
            at += rows;
        }
        tx.commit().await.map_err(sql_error)?;
        next = end;
    }
    Ok(())
}

/// A SQL file of the MySQL backend rendered for table prefix `prefix`, the
/// way the backend renders it (its `sql.rs` documents it): `__PREFIX__`
/// replaced by the prefix, cut into statements after each `;` that ends a
/// line, `--` comment lines and each statement's final `;` dropped.
pub fn render_mysql(sql: &str, prefix: &str) -> Vec<String> {
    let text = sql.replace("__PREFIX__", prefix);
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        let end = line.trim_end().ends_with(';');
        let line = if end { line.trim_end().trim_end_matches(';') } else { line };
        if !line.trim().is_empty() {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
        if end && !current.trim().is_empty() {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

async fn mysql_raw_drain(
    backend: &MysqlBackend,
    queued: u64,
    loops: usize,
    per_claim: i64,
) -> Result<Duration, errand::Error> {
    use errand::mysql::sqlx;
    let sql_error = |e: sqlx::Error| errand::Error::from(errand::BackendError::new("mysql", "raw SQL drain", e));
    let prefix = backend.namespace();
    let claim = render_mysql(include_str!("../../backends/mysql/sql/claim.sql"), prefix);
    let ack = render_mysql(include_str!("../../backends/mysql/sql/ack.sql"), prefix);
    let (Some(mark), Some(read), Some(ack)) = (claim.first(), claim.get(1), ack.first()) else {
        return Err(bench_error("raw SQL drain", "claim.sql or ack.sql has fewer statements than expected"));
    };
    let (mark, read, ack) = (Arc::new(mark.clone()), Arc::new(read.clone()), Arc::new(ack.clone()));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(loops);
    for l in 0..loops {
        let pool = backend.pool().clone();
        let (mark, read, ack) = (Arc::clone(&mark), Arc::clone(&read), Arc::clone(&ack));
        handles.push(tokio::spawn(async move {
            let worker = format!("raw-{l}");
            let mut acked = 0_u64;
            for token in 0_i64.. {
                let now = errand::Timestamp::now().as_millis();
                // As the backend does: a claim InnoDB rolled back to break a
                // deadlock (error 1213) runs again.
                let marked = loop {
                    let marked = sqlx::query(mark.as_str())
                        .bind(Noop::QUEUE)
                        .bind(Noop::NAME)
                        .bind(now)
                        .bind(Noop::QUEUE)
                        .bind(per_claim)
                        .bind(&worker)
                        .bind(token)
                        .bind(now)
                        .execute(&pool)
                        .await;
                    match marked {
                        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40001") => {}
                        other => break other.map_err(sql_error)?,
                    }
                };
                if marked.rows_affected() == 0 {
                    break;
                }
                let rows =
                    sqlx::query(read.as_str()).bind(&worker).bind(token).fetch_all(&pool).await.map_err(sql_error)?;
                let mut acks = String::from("[");
                for (i, row) in rows.iter().enumerate() {
                    let id: i64 = sqlx::Row::try_get(row, 0).map_err(sql_error)?;
                    if i > 0 {
                        acks.push(',');
                    }
                    // [id, kind, result (base64 of `null`), run_at, error]
                    acks.push_str(&format!("[{id},\"d\",\"bnVsbA==\",null,null]"));
                }
                acks.push(']');
                let applied = loop {
                    let applied = sqlx::query(ack.as_str())
                        .bind(&acks)
                        .bind(errand::Timestamp::now().as_millis())
                        .bind(&worker)
                        .execute(&pool)
                        .await;
                    match applied {
                        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40001") => {}
                        other => break other.map_err(sql_error)?,
                    }
                };
                acked += applied.rows_affected();
            }
            Ok::<u64, errand::Error>(acked)
        }));
    }
    let mut acked = 0;
    for handle in handles {
        acked += handle.await.map_err(|e| bench_error("a raw loop", e))??;
    }
    if acked != queued {
        return Err(bench_error("raw SQL drain", format!("finished {acked} of {queued} tasks")));
    }
    Ok(start.elapsed())
}

/// A failure of the harness itself (a task panicked, a count is off).
fn bench_error(what: &str, problem: impl std::fmt::Display) -> errand::Error {
    errand::BackendError::new("bench", what, problem.to_string()).into()
}

/// Deletes every key under `prefix` (a scenario's namespace) with `SCAN` and
/// `UNLINK`: the harness cleans up after itself, touching nothing else.
///
/// # Errors
///
/// When Redis fails.
pub async fn delete_redis_keys(url: &str, prefix: &str) -> Result<u64, errand::Error> {
    let failed = |e: redis::RedisError| errand::Error::from(errand::BackendError::new("redis", "delete bench keys", e));
    let client = redis::Client::open(url).map_err(failed)?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(failed)?;
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    let (mut cursor, mut deleted) = (0_u64, 0_u64);
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await.map_err(failed)?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
