//! Jobs, a workflow and workers shared by the board's tests.

#![allow(dead_code)] // each test binary uses its own part

use std::time::Duration;

use errand_runtime::memory::MemoryBackend;
use errand_runtime::workflow::{Bytes, StepSpec, StepTask, Workflow};
use errand_runtime::{
    Backoff, Codec, CodecError, Expose, Job, JobError, JobOptions, JsonCodec, Monitor, TaskCx, TaskId, TaskState,
    WorkerBuilder,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Returns its text; reports progress on the way.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Echo {
    pub(crate) text: String,
}

impl Job for Echo {
    const NAME: &'static str = "echo";
    type Output = String;

    async fn run(self, cx: TaskCx) -> Result<String, JobError> {
        cx.progress(50, "echoing");
        Ok(self.text)
    }
}

/// Takes a while (600 ms): a queue that backs up under a burst.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Thumbnail {
    pub(crate) image: String,
}

impl Job for Thumbnail {
    const NAME: &'static str = "make_thumbnail";
    const QUEUE: &'static str = "media";
    type Output = String;

    async fn run(self, _cx: TaskCx) -> Result<String, JobError> {
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok(format!("{}-256.webp", self.image))
    }
}

/// Exports `rows` rows slowly, reporting progress, until done, cancelled
/// or the worker stops: a task that shows as running.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Export {
    pub(crate) report: String,
    pub(crate) rows: u32,
}

impl Job for Export {
    const NAME: &'static str = "export_report";
    const QUEUE: &'static str = "reports";
    type Output = u32;

    async fn run(self, cx: TaskCx) -> Result<u32, JobError> {
        for done in 0..self.rows {
            let percent = u8::try_from(u64::from(done) * 100 / u64::from(self.rows.max(1))).unwrap_or(100);
            cx.progress(percent, format!("{}: row {done} of {}", self.report, self.rows));
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = cx.cancellation().cancelled() => return Err(JobError::abort("cancelled")),
                () = cx.worker().shutdown() => return Err(JobError::snooze(Duration::from_secs(1))),
            }
        }
        Ok(self.rows)
    }
}

/// Always fails, retryably, with a long backoff: a task waiting to retry.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SyncCrm {
    pub(crate) account: u32,
}

impl Job for SyncCrm {
    const NAME: &'static str = "sync_crm";
    const QUEUE: &'static str = "integrations";
    type Output = ();

    fn options() -> JobOptions {
        JobOptions { retries: 5, backoff: Backoff::fixed(Duration::from_secs(600)), ..JobOptions::DEFAULT }
    }

    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Err(JobError::retry(format!(
            "crm.example.internal: connection refused (os error 111) for account {}",
            self.account
        )))
    }
}

/// Fails for good on its first run, with `why` as the error.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Fail {
    pub(crate) why: String,
}

impl Job for Fail {
    const NAME: &'static str = "charge_card";
    const QUEUE: &'static str = "billing";
    type Output = ();

    fn options() -> JobOptions {
        JobOptions { retries: 0, ..JobOptions::DEFAULT }
    }

    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Err(JobError::abort(self.why))
    }
}

/// Fails for good on its first attempt, succeeds when retried from the
/// board: a dead task that a retry makes done.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Flaky {
    pub(crate) order: u32,
}

impl Job for Flaky {
    const NAME: &'static str = "send_invoice";
    const QUEUE: &'static str = "billing";
    type Output = String;

    fn options() -> JobOptions {
        JobOptions { retries: 0, ..JobOptions::DEFAULT }
    }

    async fn run(self, cx: TaskCx) -> Result<String, JobError> {
        // The first run of a task fails; after the board's retry (a fresh
        // set of attempts) the flag is set and it succeeds.
        let seen = cx.data::<Seen>().ok_or_else(|| JobError::abort("no Seen data"))?;
        let first = seen.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(cx.id());
        if first {
            return Err(JobError::abort(format!("SMTP server refused invoice {}: 554 try later", self.order)));
        }
        Ok(format!("invoice {} sent", self.order))
    }

    fn requirements(r: &mut errand_runtime::Requirements) {
        r.data::<Seen>();
    }
}

/// The tasks `Flaky` has run once.
#[derive(Debug, Default)]
pub(crate) struct Seen(pub(crate) std::sync::Mutex<std::collections::HashSet<TaskId>>);

fn step(name: &str, after: &[u16]) -> StepSpec {
    StepSpec { name: name.into(), after: after.to_vec(), max_attempts: 3, priority: 0 }
}

fn input<C: Codec, T: serde::de::DeserializeOwned>(inputs: &[Bytes], i: usize) -> Result<T, JobError> {
    let bytes = inputs.get(i).ok_or_else(|| JobError::abort(format!("missing input {i}")))?;
    C::decode(&bytes.0, "a step input").map_err(JobError::abort)
}

fn output<C: Codec, T: serde::Serialize>(value: &T) -> Result<Vec<u8>, JobError> {
    C::encode(value, "a step output").map_err(JobError::abort)
}

/// fetch → [resize, thumbnail] → publish → notify: five steps, four layers.
/// Photo 13 fails at `publish`.
#[derive(Debug)]
pub(crate) struct Publish(pub(crate) u64);

impl Workflow for Publish {
    const NAME: &'static str = "publish_photo";
    const QUEUE: &'static str = "pipelines";
    type Input = u64;
    type Output = String;

    fn steps() -> Vec<StepSpec> {
        vec![
            step("fetch", &[]),
            step("resize", &[0]),
            step("thumbnail", &[0]),
            step("publish", &[1, 2]),
            step("notify", &[3]),
        ]
    }

    fn into_input(self) -> u64 {
        self.0
    }

    fn step_options(_step: u16) -> JobOptions {
        JobOptions { retries: 2, backoff: Backoff::fixed(Duration::from_millis(50)), ..JobOptions::DEFAULT }
    }

    async fn run_step<C: Codec>(step: u16, inputs: Vec<Bytes>, _cx: TaskCx) -> Result<Vec<u8>, JobError> {
        match step {
            0 => {
                let n = input::<C, u64>(&inputs, 0)?;
                if n == 13 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                output::<C, _>(&format!("photo-{n}"))
            }
            1 => output::<C, _>(&format!("{}@2048", input::<C, String>(&inputs, 0)?)),
            2 => output::<C, _>(&format!("{}@256", input::<C, String>(&inputs, 0)?)),
            3 if input::<C, String>(&inputs, 0)?.starts_with("photo-13@") => {
                Err(JobError::abort("publish refused: photo 13 is blurry (sharpness 0.12 < 0.30)"))
            }
            3 => output::<C, _>(&format!("{} + {}", input::<C, String>(&inputs, 0)?, input::<C, String>(&inputs, 1)?)),
            4 => output::<C, _>(&format!("notified: {}", input::<C, String>(&inputs, 0)?)),
            _ => Err(JobError::abort("no such step")),
        }
    }

    fn decode_output<C: Codec>(sinks: Vec<Vec<u8>>) -> Result<String, CodecError> {
        C::decode(sinks.first().map_or(&[][..], |b| b), "the output of publish_photo")
    }
}

/// Workers for every job and the workflow, until the handle is stopped.
pub(crate) struct Workers {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Workers {
    pub(crate) fn start(backend: &MemoryBackend) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let monitor = Monitor::new()
            .shutdown_timeout(Duration::from_secs(2))
            .register(WorkerBuilder::<Echo, _>::new(backend.clone()).concurrency(4))
            .register(WorkerBuilder::<Fail, _>::new(backend.clone()))
            .register(WorkerBuilder::<Flaky, _>::new(backend.clone()).data(Seen::default()))
            .register(WorkerBuilder::<Export, _>::new(backend.clone()).concurrency(3))
            .register(WorkerBuilder::<SyncCrm, _>::new(backend.clone()))
            .register(WorkerBuilder::<Thumbnail, _>::new(backend.clone()).concurrency(2))
            .register(WorkerBuilder::<StepTask<Publish, JsonCodec>, _>::new(backend.clone()).concurrency(2));
        let task = tokio::spawn(async move {
            if let Err(error) = monitor.run_until(stopped).await {
                panic!("the workers failed: {error}");
            }
        });
        Self { stop: Some(stop), task: Some(task) }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Waits (up to 10 s) until task `id` is in `state`.
pub(crate) async fn wait_for_state(backend: &MemoryBackend, id: TaskId, state: TaskState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = backend.task(id).await.unwrap_or_else(|e| panic!("reading task {id}: {e}")).map(|t| t.state);
        if now == Some(state) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "task {id} is {now:?}, not {state} after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
