//! Redis-specific workflow behaviour: the payloads the ack script assembles
//! are the codec's own, for every built-in codec; runs are kept for the
//! retention once finished.
//!
//! Needs `ERRAND_REDIS_URL`: without it the tests are reported as ignored
//! (and `ERRAND_REQUIRE_SERVICES=1` fails the build instead).

mod common;

use std::time::Duration;

use errand_redis::RedisBackend;
use errand_runtime::testing::workflows::Diamond;
use errand_runtime::testing::{Probe, Running};
use errand_runtime::workflow::{RunState, StepTask, WorkflowExt, WorkflowStore};
use errand_runtime::{
    Backend, BackendExt, BincodeCodec, Codec, JsonCodec, Monitor, MsgPackCodec, WorkerBuilder, Workflow,
};

async fn diamond<C: Codec>() {
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
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn steps_built_by_the_ack_script_decode_with_json() {
    diamond::<JsonCodec>().await;
}

#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn steps_built_by_the_ack_script_decode_with_msgpack() {
    diamond::<MsgPackCodec>().await;
}

#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn steps_built_by_the_ack_script_decode_with_bincode() {
    diamond::<BincodeCodec>().await;
}

/// A finished run is kept for the retention, then expires; an unknown run
/// is `None`.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn finished_runs_expire_after_the_retention() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.retention(Duration::from_millis(400)));
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
    let key = format!("{}{{{}}}:wr:{}", backend.namespace(), "conformance_wf", run.id().0 & ((1 << 40) - 1));
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap_or(-3);
    assert!(ttl > 0 && ttl <= 400, "a finished run expires after the retention (PTTL {ttl} of {key})");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(backend.run_info(run.id()).await.unwrap_or_else(|e| panic!("run_info: {e}")).is_none());
}

/// A step task whose record cannot be read goes `dead` when claimed, without
/// running, and fails its run like any dead step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn an_unreadable_step_fails_its_run() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let probe = Probe::default();
    let run = backend.start(Diamond(3)).await.unwrap_or_else(|e| panic!("start: {e}"));
    let status = backend.workflow(run).status().await.unwrap_or_else(|e| panic!("status: {e}"));
    let entry = status.steps[0].task.unwrap_or_else(|| panic!("the entry step has a task: {status:?}"));
    // An unknown flag: this version cannot read the record (the run and
    // step it names stay readable for the script).
    let mut conn = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("{e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let records = format!("{}{{{}}}:t", backend.namespace(), Diamond::QUEUE);
    let seq = entry.0 & ((1 << 40) - 1);
    let mut stored: Vec<u8> =
        redis::cmd("HGET").arg(&records).arg(seq).query_async(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    stored[0] |= 0x80;
    let _: i64 = redis::cmd("HSET").arg(&records).arg(seq).arg(stored).query_async(&mut conn).await.unwrap_or(0);

    let worker = WorkerBuilder::<StepTask<Diamond, JsonCodec>, _>::new(backend.clone()).data(probe.clone());
    let running = Running::start(Monitor::new().register(worker));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    running.stop().await.unwrap_or_else(|e| panic!("stop: {e}"));
    match output {
        Ok(Err(errand_runtime::Error::RunFailed { error, .. })) => {
            assert!(error.starts_with("step `fetch` failed: "), "{error}");
            assert!(error.contains(&format!("read task {entry}")) && error.contains("unknown flags 0x82"), "{error}");
        }
        other => panic!("expected the run to fail, got {other:?}"),
    }
    assert_eq!(probe.total_runs(), 0, "the unreadable step never ran");
    let status = backend.workflow(run).status().await.unwrap_or_else(|e| panic!("status: {e}"));
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(status.steps[0].state, Some(errand_runtime::TaskState::Dead));
    assert!(status.steps[1..].iter().all(|s| s.task.is_none()), "no later step was enqueued: {status:?}");
}

/// A retention of `Duration::MAX` keeps finished work: the finished run has
/// no expiry, its done steps no expiry entry, and a purge deletes nothing.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn an_unbounded_retention_keeps_finished_work() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.retention(Duration::MAX));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let probe = Probe::default();
    let run = backend.start(Diamond(1)).await.unwrap_or_else(|e| panic!("start: {e}"));
    let worker = WorkerBuilder::<StepTask<Diamond, JsonCodec>, _>::new(backend.clone()).data(probe).concurrency(4);
    let running = Running::start(Monitor::new().register(worker));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    running.stop().await.unwrap_or_else(|e| panic!("stop: {e}"));
    assert!(matches!(output, Ok(Ok(_))), "the run finishes: {output:?}");
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{e}"));
    let key = |name: &str| format!("{}{{{}}}:{name}", backend.namespace(), Diamond::QUEUE);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(key(&format!("wr:{}", run.id().0 & ((1 << 40) - 1))))
        .query_async(&mut conn)
        .await
        .unwrap_or(-3);
    assert_eq!(ttl, -1, "the finished run has no expiry");
    let entries: i64 = redis::cmd("ZCARD").arg(key("x")).query_async(&mut conn).await.unwrap_or(-1);
    assert_eq!(entries, 0, "no done task expires");
    assert_eq!(backend.purge_expired().await.unwrap_or_else(|e| panic!("purge: {e}")), 0);
    let counts = backend.queue_counts(Diamond::QUEUE).await.unwrap_or_else(|e| panic!("counts: {e}"));
    assert_eq!((counts.done, counts.running), (4, 0), "{counts:?}");
}
