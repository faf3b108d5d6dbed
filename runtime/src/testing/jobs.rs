//! The jobs the suite runs, implemented by hand (no macros).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::context::{Requirements, TaskCx};
use crate::job::{Job, JobOptions};
use crate::job_error::JobError;

/// What the suite's jobs observed, shared with them as `Data<Probe>`.
/// Clones share one record.
#[derive(Debug, Default, Clone)]
pub struct Probe {
    state: std::sync::Arc<Mutex<ProbeState>>,
}

#[derive(Debug, Default)]
struct ProbeState {
    runs: HashMap<u64, Vec<Run>>,
    traces: HashMap<u64, Vec<Option<String>>>,
    order: Vec<u64>,
    current: usize,
    max: usize,
}

/// One observed run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// `TaskCx::attempt`.
    pub attempt: u32,
    /// When it started.
    pub started: SystemTime,
    /// `TaskCx::run_at`.
    pub run_at: SystemTime,
}

impl Probe {
    fn lock(&self) -> std::sync::MutexGuard<'_, ProbeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn start(&self, key: u64, cx: &TaskCx) {
        let mut s = self.lock();
        s.runs.entry(key).or_default().push(Run {
            attempt: cx.attempt(),
            started: SystemTime::now(),
            run_at: cx.run_at(),
        });
        s.traces.entry(key).or_default().push(cx.trace().map(str::to_owned));
        s.order.push(key);
        s.current += 1;
        s.max = s.max.max(s.current);
    }

    pub(crate) fn end(&self) {
        let mut s = self.lock();
        s.current = s.current.saturating_sub(1);
    }

    /// The runs of `key`, in order.
    pub fn runs(&self, key: u64) -> Vec<Run> {
        self.lock().runs.get(&key).cloned().unwrap_or_default()
    }

    /// `TaskCx::trace` of each run of `key`, in order.
    pub fn traces(&self, key: u64) -> Vec<Option<String>> {
        self.lock().traces.get(&key).cloned().unwrap_or_default()
    }

    /// How many runs started in all.
    pub fn total_runs(&self) -> usize {
        self.lock().order.len()
    }

    /// Keys in the order their runs started.
    pub fn order(&self) -> Vec<u64> {
        self.lock().order.clone()
    }

    /// The most runs that were in flight at once.
    pub fn max_concurrent(&self) -> usize {
        self.lock().max
    }
}

fn probe(cx: &TaskCx) -> Result<crate::Data<Probe>, JobError> {
    cx.data::<Probe>().ok_or_else(|| JobError::abort("the suite forgot Data<Probe>"))
}

macro_rules! needs_probe {
    () => {
        fn requirements(r: &mut Requirements) {
            r.data::<Probe>();
        }
    };
}

/// Returns its arguments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Echo {
    /// Identifies the task in the probe.
    pub key: u64,
    /// Carried through.
    pub text: String,
}

impl Job for Echo {
    const NAME: &'static str = "conformance_echo";
    const QUEUE: &'static str = "conformance";
    type Output = (u64, String);
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<(u64, String), JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        probe.end();
        Ok((self.key, self.text))
    }
}

/// Fails (retryably) until attempt `succeed_on`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flaky {
    /// Identifies the task in the probe.
    pub key: u64,
    /// The attempt that succeeds.
    pub succeed_on: u32,
}

/// The fixed backoff of [`Flaky`].
pub const FLAKY_BACKOFF: Duration = Duration::from_millis(200);

impl Job for Flaky {
    const NAME: &'static str = "conformance_flaky";
    const QUEUE: &'static str = "conformance";
    type Output = u32;
    needs_probe!();

    fn options() -> JobOptions {
        JobOptions { retries: 5, backoff: Backoff::fixed(FLAKY_BACKOFF), ..JobOptions::DEFAULT }
    }

    async fn run(self, cx: TaskCx) -> Result<u32, JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        probe.end();
        if cx.attempt() < self.succeed_on {
            return Err(JobError::retry(format!("flaky failure on attempt {}", cx.attempt())));
        }
        Ok(cx.attempt())
    }
}

/// Snoozes on its first run, then succeeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snoozer {
    /// Identifies the task in the probe.
    pub key: u64,
}

impl Job for Snoozer {
    const NAME: &'static str = "conformance_snoozer";
    const QUEUE: &'static str = "conformance";
    type Output = u32;
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<u32, JobError> {
        let probe = probe(&cx)?;
        let first = probe.runs(self.key).is_empty();
        probe.start(self.key, &cx);
        probe.end();
        if first {
            return Err(JobError::snooze(Duration::from_millis(100)));
        }
        Ok(cx.attempt())
    }
}

/// Aborts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aborter {
    /// Identifies the task in the probe.
    pub key: u64,
}

impl Job for Aborter {
    const NAME: &'static str = "conformance_aborter";
    const QUEUE: &'static str = "conformance";
    type Output = ();
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        probe.end();
        Err(JobError::abort("bad input: cannot be processed"))
    }
}

/// Panics on its first attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Panicker {
    /// Identifies the task in the probe.
    pub key: u64,
}

impl Job for Panicker {
    const NAME: &'static str = "conformance_panicker";
    const QUEUE: &'static str = "conformance";
    type Output = u32;
    needs_probe!();

    fn options() -> JobOptions {
        JobOptions { retries: 3, backoff: Backoff::fixed(Duration::from_millis(10)), ..JobOptions::DEFAULT }
    }

    async fn run(self, cx: TaskCx) -> Result<u32, JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        probe.end();
        if cx.attempt() == 1 {
            panic!("conformance panic on attempt 1");
        }
        Ok(cx.attempt())
    }
}

/// Sleeps for `millis`, or forever on attempts listed in `hang_on`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sleeper {
    /// Identifies the task in the probe.
    pub key: u64,
    /// How long a run takes.
    pub millis: u64,
    /// Attempts that never finish (until the worker dies).
    pub hang_on: Vec<u32>,
}

impl Job for Sleeper {
    const NAME: &'static str = "conformance_sleeper";
    const QUEUE: &'static str = "conformance";
    type Output = u32;
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<u32, JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        if self.hang_on.contains(&cx.attempt()) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(self.millis)).await;
        probe.end();
        Ok(cx.attempt())
    }
}

/// Stored under the same name as [`RightShape`] but with other fields: its
/// payload does not decode as `RightShape`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrongShape {
    /// Not a number.
    pub value: String,
    /// Not in `RightShape` at all.
    pub extra: Vec<String>,
}

impl Job for WrongShape {
    const NAME: &'static str = "conformance_shape";
    const QUEUE: &'static str = "conformance";
    type Output = ();

    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Ok(())
    }
}

/// See [`WrongShape`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RightShape {
    /// Identifies the task in the probe.
    pub key: u64,
    /// A number.
    pub value: u64,
}

impl Job for RightShape {
    const NAME: &'static str = "conformance_shape";
    const QUEUE: &'static str = "conformance";
    type Output = u64;
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<u64, JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        probe.end();
        Ok(self.value)
    }
}

/// Waits for its cancellation token; records `key + 1000` when it fires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cancellable {
    /// Identifies the task in the probe.
    pub key: u64,
}

impl Job for Cancellable {
    const NAME: &'static str = "conformance_cancellable";
    const QUEUE: &'static str = "conformance";
    type Output = ();
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        let fired = tokio::time::timeout(Duration::from_secs(60), cx.cancellation().cancelled()).await.is_ok();
        probe.end();
        if fired {
            probe.start(self.key + 1000, &cx);
            probe.end();
        }
        Ok(())
    }
}

/// Fails for good with an error no store takes as it is: NUL bytes
/// (PostgreSQL text refuses them) and a megabyte of text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Poison {
    /// Identifies the task in the probe.
    pub key: u64,
}

impl Job for Poison {
    const NAME: &'static str = "conformance_poison";
    const QUEUE: &'static str = "conformance";
    type Output = ();
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        probe.end();
        Err(JobError::abort(format!("poison\0value {}", "x".repeat(1 << 20))))
    }
}

/// Its arguments' `Deserialize` panics when `boom` is set; its output's
/// `Serialize` panics when `boom_out` is set.
#[derive(Debug, Clone, Serialize)]
pub struct PanicsInCodec {
    /// Identifies the task in the probe.
    pub key: u64,
    /// Decoding these arguments panics.
    pub boom: bool,
    /// Encoding the output panics.
    pub boom_out: bool,
}

impl<'de> Deserialize<'de> for PanicsInCodec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Plain {
            key: u64,
            boom: bool,
            boom_out: bool,
        }
        let plain = Plain::deserialize(deserializer)?;
        assert!(!plain.boom, "a Deserialize impl that panics (conformance)");
        Ok(Self { key: plain.key, boom: plain.boom, boom_out: plain.boom_out })
    }
}

/// An output whose `Serialize` panics when `boom` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchyOutput {
    /// Encoding this value panics.
    pub boom: bool,
}

impl<'de> Deserialize<'de> for TouchyOutput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bool::deserialize(deserializer).map(|boom| Self { boom })
    }
}

impl Serialize for TouchyOutput {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        assert!(!self.boom, "a Serialize impl that panics (conformance)");
        serializer.serialize_bool(self.boom)
    }
}

impl Job for PanicsInCodec {
    const NAME: &'static str = "conformance_panics_in_codec";
    const QUEUE: &'static str = "conformance";
    type Output = TouchyOutput;
    needs_probe!();

    async fn run(self, cx: TaskCx) -> Result<TouchyOutput, JobError> {
        let probe = probe(&cx)?;
        probe.start(self.key, &cx);
        probe.end();
        Ok(TouchyOutput { boom: self.boom_out })
    }
}
