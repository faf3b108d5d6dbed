//! Recurring schedules: a [`Schedule`] of ticks, each enqueued once into a
//! durable backend however many processes run it ([`ScheduleExt::pipe_to`]).
//!
//! Cron expressions come from `errand-cron` (`errand::cron::CronSchedule`,
//! feature `cron`), and `#[errand::job(cron = "…")]` runs one beside the
//! job's worker; [`Interval`] ticks at a fixed period. Any type that says
//! when its next tick is can be a schedule.
//!
//! How a tick fires once: every process running a schedule enqueues each
//! tick with the unique key `"<job>/<schedule key>@<tick in ms>"`, and the
//! backend's unique keys (the [`Schedules`] capability needs
//! [`UniqueKeys`](crate::capability::UniqueKeys)) keep all but the first.
//! After enqueueing a tick a process records it as the schedule's last tick
//! in the backend; a process that starts finds the ticks since then that
//! nobody enqueued (every process was down) and treats them by the
//! schedule's [`Missed`] policy, at most [`MAX_CATCH_UP`] of them.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::capability::Schedules;
use crate::error::Error;
use crate::job::Job;
use crate::pipe::{Pipe, Writer};
use crate::sink::{Enqueue, within_limit};
use crate::time::Timestamp;

/// Ticks enqueued at most when a schedule catches up on missed ones.
pub const MAX_CATCH_UP: usize = 1000;

/// How long a tick's unique key dedupes, whatever the state of its task.
const TICK_KEY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Ticks looked at at most when counting the missed ones.
const SCAN_LIMIT: usize = 20_000;
const MIN_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// One firing of a schedule: the time it was scheduled for.
///
/// A cron job's function may take it as its one argument
/// (`async fn report(tick: Tick)`); it is stored with the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Tick {
    /// The scheduled time, in milliseconds since the Unix epoch.
    at_ms: i64,
}

impl Tick {
    /// The tick at `at`.
    pub const fn new(at: Timestamp) -> Self {
        Self { at_ms: at.as_millis() }
    }

    /// The scheduled time.
    pub fn time(&self) -> SystemTime {
        self.timestamp().to_system_time()
    }

    /// The scheduled time as a [`Timestamp`].
    pub const fn timestamp(&self) -> Timestamp {
        Timestamp(self.at_ms)
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tick at {} ms", self.at_ms)
    }
}

/// What a schedule does with ticks that nobody enqueued because every
/// process running it was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Missed {
    /// Drops them: the schedule goes on from the next tick.
    Skip,
    /// Enqueues the latest of them once (the default).
    #[default]
    Once,
    /// Enqueues every one of them, at most [`MAX_CATCH_UP`] (the latest).
    All,
}

impl Missed {
    /// The policy's name: `"skip"`, `"once"` or `"all"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::Once => "once",
            Missed::All => "all",
        }
    }
}

impl fmt::Display for Missed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Missed {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "skip" => Ok(Missed::Skip),
            "once" => Ok(Missed::Once),
            "all" => Ok(Missed::All),
            other => Err(Error::Config(format!("unknown missed-tick policy `{other}`: expected skip, once or all"))),
        }
    }
}

/// When a recurring schedule ticks.
pub trait Schedule: Send + Sync + 'static {
    /// The first tick strictly after `after`, or `None` if it never ticks again.
    fn next_after(&self, after: Timestamp) -> Option<Timestamp>;

    /// Names the schedule in the backend (with the job's name: its stored
    /// last tick is `"<job>/<key>"`, and its ticks' unique keys start so):
    /// the same in every process that runs it, and different for different
    /// schedules of the same job.
    fn key(&self) -> &str;

    /// What to do with ticks missed while nobody ran the schedule.
    fn missed_policy(&self) -> Missed {
        Missed::Once
    }
}

/// A schedule that ticks every `period`, at multiples of it since the Unix
/// epoch (so every process agrees on the ticks).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::schedule::{Interval, Missed, Schedule};
/// use errand_runtime::Timestamp;
///
/// let every = Interval::new(Duration::from_secs(10)).missed(Missed::Skip);
/// assert_eq!(every.next_after(Timestamp(25_000)), Some(Timestamp(30_000)));
/// assert_eq!(every.key(), "every 10000ms");
/// ```
#[derive(Debug, Clone)]
pub struct Interval {
    period_ms: i64,
    key: String,
    missed: Missed,
}

impl Interval {
    /// Every `period` (at least 1 ms).
    pub fn new(period: Duration) -> Self {
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
        Self { period_ms, key: format!("every {period_ms}ms"), missed: Missed::Once }
    }

    /// Sets the [`Missed`] policy (`Once` by default).
    pub fn missed(mut self, missed: Missed) -> Self {
        self.missed = missed;
        self
    }

    /// Sets the schedule's [key](Schedule::key) (by default `"every <period>ms"`).
    pub fn named(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }
}

impl Schedule for Interval {
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let next = after.as_millis().div_euclid(self.period_ms).checked_add(1)?.checked_mul(self.period_ms)?;
        Some(Timestamp(next))
    }

    fn key(&self) -> &str {
        &self.key
    }

    fn missed_policy(&self) -> Missed {
        self.missed
    }
}

/// Runs a schedule into a backend.
pub trait ScheduleExt: Schedule + Sized {
    /// Enqueues `make(tick)` into `backend` at every tick of this schedule,
    /// once per tick across every process that runs it, catching up on
    /// missed ticks by the schedule's [`Missed`] policy, until the returned
    /// [`Pipe`] is stopped. Ticks the backend cannot take are retried with
    /// backoff; the pipe's counts show what was enqueued.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use errand_runtime::schedule::{Interval, ScheduleExt, Tick};
    /// # use errand_runtime::{Job, JobError, TaskCx, memory::MemoryBackend};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Sweep { at: Tick }
    /// # impl Job for Sweep { const NAME: &'static str = "sweep"; type Output = ();
    /// #   async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let backend = MemoryBackend::new();
    /// let pipe = Interval::new(Duration::from_millis(20)).pipe_to(&backend, |at| Sweep { at });
    /// tokio::time::sleep(Duration::from_millis(70)).await;
    /// assert!(pipe.stop().await.enqueued >= 2);
    /// # }
    /// ```
    fn pipe_to<B, J, F>(self, backend: &B, make: F) -> Pipe
    where
        B: Schedules,
        J: Job,
        F: Fn(Tick) -> J + Send + Sync + 'static,
    {
        let pipe = Pipe::new();
        let (state, stop) = pipe.parts();
        let runner = Runner { writer: Writer { backend: backend.clone(), state, stop }, schedule: self, make };
        pipe.with_task(tokio::spawn(runner.run()))
    }
}

impl<S: Schedule> ScheduleExt for S {}

/// A schedule boxed for a worker: `#[errand::job(cron = …)]` gives the
/// job's worker one, which runs while the worker runs.
pub(crate) type ScheduleTask = Box<dyn FnOnce() -> Pipe + Send>;

/// The schedule task of `schedule` for jobs made by `make` on `backend`.
pub(crate) fn schedule_task<B, J, S, F>(backend: B, schedule: S, make: F) -> ScheduleTask
where
    B: Schedules,
    J: Job,
    S: Schedule,
    F: Fn(Tick) -> J + Send + Sync + 'static,
{
    Box::new(move || schedule.pipe_to(&backend, make))
}

struct Runner<B, S, F> {
    writer: Writer<B>,
    schedule: S,
    make: F,
}

impl<B, S, F, J> Runner<B, S, F>
where
    B: Schedules,
    S: Schedule,
    J: Job,
    F: Fn(Tick) -> J + Send + Sync + 'static,
{
    fn now(&self) -> Timestamp {
        self.writer.backend.tuning().clock.now()
    }

    async fn run(self) {
        // Scoped to the job: two jobs on the same schedule keep their own ticks.
        let key = format!("{}/{}", J::NAME, self.schedule.key());
        let Some(last) = self.retrying("read the last tick", || self.writer.backend.last_tick(&key)).await else {
            return;
        };
        let start = self.now();
        // Before the first recorded tick, nothing was missed.
        let mut cursor = last.unwrap_or(start);
        let missed = self.ticks_between(cursor, start);
        if let Some(latest) = missed.last().copied() {
            let fire: Vec<Timestamp> = match self.schedule.missed_policy() {
                Missed::Skip => Vec::new(),
                Missed::Once => vec![latest],
                Missed::All => missed,
            };
            tracing::info!(schedule = %key, policy = %self.schedule.missed_policy(), firing = fire.len(), "caught up on missed ticks");
            if !self.fire(&key, &fire, latest).await {
                return;
            }
            cursor = latest;
        }
        loop {
            let Some(next) = self.schedule.next_after(cursor) else {
                tracing::info!(schedule = %key, "the schedule has no more ticks");
                return;
            };
            let wait = next.until(self.now());
            tokio::select! {
                () = self.writer.stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let now = self.now();
            if now < next {
                continue; // woken early (a clock step): sleep again
            }
            // Normally one tick; more if this process fell behind.
            let due = self.ticks_between(cursor, now);
            let Some(latest) = due.last().copied() else { continue };
            if !self.fire(&key, &due, latest).await {
                return;
            }
            cursor = latest;
        }
    }

    /// The ticks in `(after, until]`, the latest [`MAX_CATCH_UP`] of them.
    fn ticks_between(&self, after: Timestamp, until: Timestamp) -> Vec<Timestamp> {
        let mut from = after;
        loop {
            let mut ticks = std::collections::VecDeque::new();
            let mut at = from;
            let mut scanned = 0;
            while let Some(next) = self.schedule.next_after(at) {
                if next > until || next <= at {
                    break;
                }
                scanned += 1;
                if ticks.len() == MAX_CATCH_UP {
                    ticks.pop_front();
                }
                ticks.push_back(next);
                at = next;
                if scanned == SCAN_LIMIT {
                    break;
                }
            }
            if scanned < SCAN_LIMIT {
                return ticks.into();
            }
            // A very long gap: look at its latest part only.
            let gap = until.as_millis() - from.as_millis();
            from = Timestamp(until.as_millis() - gap / 8);
        }
    }

    /// Enqueues the ticks `fire` and records `latest` as the last tick.
    /// Returns `false` when the pipe stopped first.
    async fn fire(&self, key: &str, fire: &[Timestamp], latest: Timestamp) -> bool {
        let now = self.now();
        let mut batch = Vec::with_capacity(fire.len());
        for &at in fire {
            let job = (self.make)(Tick::new(at));
            let options = Enqueue::new().unique_key(format!("{key}@{}", at.as_millis())).unique_for(TICK_KEY_WINDOW);
            match options.to_task::<J, B::Codec>(&job, now).and_then(|t| within_limit(&self.writer.backend, t)) {
                Ok(task) => batch.push(task),
                Err(error) => {
                    let tick = Tick::new(at);
                    self.writer.state.error(format!("schedule `{key}`: could not enqueue {tick}: {error}"));
                }
            }
        }
        for chunk in batch.chunks(crate::pipe::PIPE_BATCH) {
            if self.writer.write(chunk.to_vec()).await.is_none() {
                return false;
            }
        }
        self.retrying("record the last tick", || self.writer.backend.record_tick(key, latest)).await.is_some()
    }

    /// Calls `op` until it succeeds or the pipe stops, pausing with backoff
    /// between failures.
    async fn retrying<T, Fut>(&self, what: &str, op: impl Fn() -> Fut) -> Option<T>
    where
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut pause = MIN_PAUSE;
        loop {
            match op().await {
                Ok(value) => return Some(value),
                Err(error) => {
                    self.writer.state.error(format!("schedule `{}`: could not {what}: {error}", self.schedule.key()));
                }
            }
            tokio::select! {
                () = self.writer.stop.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

impl<B, S, F> fmt::Debug for Runner<B, S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_tick_on_multiples_of_the_period() {
        let every = Interval::new(Duration::from_millis(100));
        assert_eq!(every.next_after(Timestamp(0)), Some(Timestamp(100)));
        assert_eq!(every.next_after(Timestamp(99)), Some(Timestamp(100)));
        assert_eq!(every.next_after(Timestamp(100)), Some(Timestamp(200)));
        assert_eq!(every.next_after(Timestamp(-1)), Some(Timestamp(0)));
    }

    #[test]
    fn missed_policies_parse_with_a_clear_error() {
        assert_eq!("all".parse::<Missed>().ok(), Some(Missed::All));
        let error = "twice".parse::<Missed>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("`twice`") && error.contains("skip, once or all"), "{error}");
    }
}
