//! Redis-specific workflow behaviour: the payloads the ack script assembles
//! are the codec's own, for every built-in codec; runs are kept for the
//! retention once finished.
//!
//! Needs `ERRAND_REDIS_URL`; skipped without it unless
//! `ERRAND_REQUIRE_SERVICES=1`.

mod common;

use std::time::Duration;

use errand_redis::RedisBackend;
use errand_runtime::testing::workflows::Diamond;
use errand_runtime::testing::{Probe, Running};
use errand_runtime::workflow::{RunState, StepTask, WorkflowExt, WorkflowStore};
use errand_runtime::{BincodeCodec, Codec, JsonCodec, Monitor, MsgPackCodec, WorkerBuilder};

async fn diamond<C: Codec>() {
    if common::url().is_none() {
        return;
    }
    let (backend, _cleanup) = common::backend::<C>(common::builder()).await;
    let backend: RedisBackend<C> = backend;
    let probe = Probe::default();
    let run = backend.start(Diamond(20)).await.unwrap_or_else(|e| panic!("start ({}): {e}", C::NAME));
    let worker = WorkerBuilder::<StepTask<Diamond, C>, _>::new(backend.clone()).data(probe.clone()).concurrency(4);
    let running = Running::start(Monitor::new().register(worker));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    running.stop().await.unwrap_or_else(|e| panic!("stop: {e}"));
    let output = output.unwrap_or_else(|_| panic!("timed out ({})", C::NAME));
    assert_eq!(output.unwrap_or_else(|e| panic!("the run ({}): {e}", C::NAME)), (42, "n=21".to_owned()));
    let status = backend.workflow(run).status().await.unwrap_or_else(|e| panic!("status: {e}"));
    assert_eq!(status.state, RunState::Done);
    assert!(status.steps.iter().all(|s| s.task.is_some() && s.output.is_some()), "{status:?}");
}

#[tokio::test]
async fn steps_built_by_the_ack_script_decode_with_json() {
    diamond::<JsonCodec>().await;
}

#[tokio::test]
async fn steps_built_by_the_ack_script_decode_with_msgpack() {
    diamond::<MsgPackCodec>().await;
}

#[tokio::test]
async fn steps_built_by_the_ack_script_decode_with_bincode() {
    diamond::<BincodeCodec>().await;
}

/// A finished run is kept for the retention, then expires; an unknown run
/// is `None`.
#[tokio::test]
async fn finished_runs_expire_after_the_retention() {
    let Some(url) = common::url() else { return };
    let builder = common::builder().retention(Duration::from_millis(400));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let probe = Probe::default();
    let run = backend.start(Diamond(1)).await.unwrap_or_else(|e| panic!("start: {e}"));
    let worker = WorkerBuilder::<StepTask<Diamond, JsonCodec>, _>::new(backend.clone()).data(probe).concurrency(4);
    let running = Running::start(Monitor::new().register(worker));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    running.stop().await.unwrap_or_else(|e| panic!("stop: {e}"));
    assert!(matches!(output, Ok(Ok(_))), "the run finishes");
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{e}"));
    let key = format!("{}{{{}}}:wr:{}", backend.prefix(), "conformance_wf", run.id().0 & ((1 << 40) - 1));
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap_or(-3);
    assert!(ttl > 0 && ttl <= 400, "a finished run expires after the retention (PTTL {ttl} of {key})");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(backend.run_info(run.id()).await.unwrap_or_else(|e| panic!("run_info: {e}")).is_none());
}
