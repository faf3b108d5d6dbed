//! Metrics of enqueues, runs and outcomes, through the [`metrics`] facade
//! (feature `metrics`).
//!
//! The runtime records into whatever recorder the process installed
//! (`errand-metrics` installs a Prometheus one and serves it); without the
//! feature every call here compiles to nothing. Install the recorder before
//! building workers: each worker takes its handles when it starts.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `errand_tasks_enqueued_total` | counter | queue, job | tasks handed to a backend (a unique key's duplicate included) |
//! | `errand_tasks_started_total` | counter | queue, job | runs started |
//! | `errand_tasks_done_total` | counter | queue, job | runs that succeeded |
//! | `errand_tasks_retried_total` | counter | queue, job | runs that failed and will run again |
//! | `errand_tasks_dead_total` | counter | queue, job | runs that failed for good (and tasks that could not be decoded) |
//! | `errand_tasks_snoozed_total` | counter | queue, job | runs that asked to run later |
//! | `errand_tasks_cancelled_total` | counter | queue, job | runs stopped by a cancel |
//! | `errand_task_run_seconds` | histogram | queue, job | how long runs took |
//! | `errand_task_wait_seconds` | histogram | queue, job | from when a task was due to when its run started |
//! | `errand_worker_in_flight` | gauge | queue, job, worker | runs in progress |
//! | `errand_claim_batch_size` | histogram | queue, job | tasks per claim that found some |
//! | `errand_ack_batch_size` | histogram | queue, job | acks per write |
//! | `errand_queue_tasks` | gauge | queue, state | tasks by state, sampled from `Expose` on each scrape by `errand-metrics` |
//!
//! Cancels of waiting tasks show in `errand_queue_tasks{state="cancelled"}`.

use crate::backend::Outcome;
use crate::time::Timestamp;

/// The names of errand's metrics, as listed in the [module docs](self).
pub mod names {
    /// Counter: tasks handed to a backend.
    pub const ENQUEUED: &str = "errand_tasks_enqueued_total";
    /// Counter: runs started.
    pub const STARTED: &str = "errand_tasks_started_total";
    /// Counter: runs that succeeded.
    pub const DONE: &str = "errand_tasks_done_total";
    /// Counter: runs that failed and will run again.
    pub const RETRIED: &str = "errand_tasks_retried_total";
    /// Counter: runs that failed for good.
    pub const DEAD: &str = "errand_tasks_dead_total";
    /// Counter: runs that asked to run later.
    pub const SNOOZED: &str = "errand_tasks_snoozed_total";
    /// Counter: runs stopped by a cancel.
    pub const CANCELLED: &str = "errand_tasks_cancelled_total";
    /// Histogram (seconds): how long runs took.
    pub const RUN_SECONDS: &str = "errand_task_run_seconds";
    /// Histogram (seconds): from due to started.
    pub const WAIT_SECONDS: &str = "errand_task_wait_seconds";
    /// Gauge: runs in progress, per worker.
    pub const IN_FLIGHT: &str = "errand_worker_in_flight";
    /// Histogram: tasks per claim that found some.
    pub const CLAIM_BATCH: &str = "errand_claim_batch_size";
    /// Histogram: acks per write.
    pub const ACK_BATCH: &str = "errand_ack_batch_size";
    /// Gauge: tasks by queue and state, sampled on each scrape.
    pub const QUEUE_TASKS: &str = "errand_queue_tasks";
}

/// How a run ended, for [`Meters::finished`].
#[cfg(feature = "metrics")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Done,
    Retried,
    Dead,
    Snoozed,
    Cancelled,
}

/// An enqueue about to be counted: the queue label is kept only with the
/// feature, so without it an enqueue copies nothing.
#[derive(Debug)]
pub(crate) struct Enqueued {
    #[cfg(feature = "metrics")]
    queue: String,
    #[cfg(feature = "metrics")]
    job: &'static str,
}

impl Enqueued {
    /// An enqueue of job `job` on `queue`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[inline]
    pub(crate) fn new(queue: &str, job: &'static str) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            queue: queue.to_owned(),
            #[cfg(feature = "metrics")]
            job,
        }
    }

    /// `n` tasks were handed to the backend.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::needless_pass_by_value))]
    #[inline]
    pub(crate) fn record(self, n: usize) {
        #[cfg(feature = "metrics")]
        metrics::counter!(names::ENQUEUED, "queue" => self.queue, "job" => self.job).increment(n as u64);
    }
}

/// A run in progress, for [`Meters::finished`]: when it started and its
/// context (to tell a cancelled run). Nothing without the feature.
#[derive(Debug)]
pub(crate) struct RunTimer {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
    #[cfg(feature = "metrics")]
    cx: crate::context::TaskCx,
}

/// One worker's metric handles, taken when it starts (labels built once).
#[derive(Debug, Clone)]
pub(crate) struct Meters {
    #[cfg(feature = "metrics")]
    inner: std::sync::Arc<Handles>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    started: metrics::Counter,
    done: metrics::Counter,
    retried: metrics::Counter,
    dead: metrics::Counter,
    snoozed: metrics::Counter,
    cancelled: metrics::Counter,
    run_seconds: metrics::Histogram,
    wait_seconds: metrics::Histogram,
    in_flight: metrics::Gauge,
    claim_batch: metrics::Histogram,
    ack_batch: metrics::Histogram,
}

impl Meters {
    /// The handles of the worker `worker` of `job` on `queue`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(queue: &str, job: &'static str, worker: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            use metrics::{counter, gauge, histogram};
            let labels = [("queue", queue.to_owned()), ("job", job.to_owned())];
            let with_worker = [("queue", queue.to_owned()), ("job", job.to_owned()), ("worker", worker.to_owned())];
            Self {
                inner: std::sync::Arc::new(Handles {
                    started: counter!(names::STARTED, &labels),
                    done: counter!(names::DONE, &labels),
                    retried: counter!(names::RETRIED, &labels),
                    dead: counter!(names::DEAD, &labels),
                    snoozed: counter!(names::SNOOZED, &labels),
                    cancelled: counter!(names::CANCELLED, &labels),
                    run_seconds: histogram!(names::RUN_SECONDS, &labels),
                    wait_seconds: histogram!(names::WAIT_SECONDS, &labels),
                    in_flight: gauge!(names::IN_FLIGHT, &with_worker),
                    claim_batch: histogram!(names::CLAIM_BATCH, &labels),
                    ack_batch: histogram!(names::ACK_BATCH, &labels),
                }),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self {}
    }

    /// The run `cx` of a task due at `run_at` starts now.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[inline]
    pub(crate) fn started(&self, run_at: Timestamp, cx: &crate::context::TaskCx) -> RunTimer {
        #[cfg(feature = "metrics")]
        {
            let late = Timestamp::now().as_millis().saturating_sub(run_at.as_millis()).max(0);
            self.inner.started.increment(1);
            self.inner.wait_seconds.record(late as f64 / 1000.0);
            self.inner.in_flight.increment(1.0);
            RunTimer { started: std::time::Instant::now(), cx: cx.clone() }
        }
        #[cfg(not(feature = "metrics"))]
        RunTimer {}
    }

    /// The run `timer` was started for ended with `outcome` (counted as
    /// cancelled when its task was cancelled meanwhile).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::needless_pass_by_value))]
    #[inline]
    pub(crate) fn finished(&self, timer: RunTimer, outcome: &Outcome) {
        #[cfg(feature = "metrics")]
        {
            let RunTimer { started, cx } = timer;
            self.inner.in_flight.decrement(1.0);
            self.inner.run_seconds.record(started.elapsed().as_secs_f64());
            let ended = match outcome {
                _ if cx.was_cancelled() => Ended::Cancelled,
                Outcome::Done { .. } => Ended::Done,
                Outcome::Retry { .. } => Ended::Retried,
                Outcome::Dead { .. } => Ended::Dead,
                Outcome::Snooze { .. } => Ended::Snoozed,
            };
            self.ended(ended);
        }
    }

    /// A task went dead without a run (its arguments did not decode).
    #[inline]
    pub(crate) fn undecodable(&self) {
        #[cfg(feature = "metrics")]
        self.ended(Ended::Dead);
    }

    #[cfg(feature = "metrics")]
    fn ended(&self, ended: Ended) {
        match ended {
            Ended::Done => self.inner.done.increment(1),
            Ended::Retried => self.inner.retried.increment(1),
            Ended::Dead => self.inner.dead.increment(1),
            Ended::Snoozed => self.inner.snoozed.increment(1),
            Ended::Cancelled => self.inner.cancelled.increment(1),
        }
    }

    /// A claim returned `n` tasks.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[inline]
    pub(crate) fn claimed(&self, n: usize) {
        #[cfg(feature = "metrics")]
        self.inner.claim_batch.record(n as f64);
    }

    /// `n` acks were written in one call.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[inline]
    pub(crate) fn acked(&self, n: usize) {
        #[cfg(feature = "metrics")]
        self.inner.ack_batch.record(n as f64);
    }
}
