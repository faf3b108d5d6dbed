//! Redis-specific workflow behaviour: the payloads the ack script assembles
//! are the codec's own, for every built-in codec; runs are kept for the
//! retention once finished; runs are listed from the queues' run indexes.
//!
//! Needs `ERRAND_REDIS_URL`: without it the tests are reported as ignored
//! (and `ERRAND_REQUIRE_SERVICES=1` fails the build instead).

mod common;

use std::time::Duration;

use errand_redis::RedisBackend;
use errand_runtime::testing::workflows::Diamond;
use errand_runtime::testing::{Probe, Running};
use errand_runtime::workflow::{NewRun, RunFilter, RunId, RunState, StepSpec, StepTask, WorkflowExt, WorkflowStore};
use errand_runtime::{
    Backend, BackendExt, BincodeCodec, Codec, Expose, JsonCodec, Monitor, MsgPackCodec, WorkerBuilder, Workflow,
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

/// The run index follows the runs: a finished run's expiry is noted, the
/// purge takes the expired run out of the index, and a step's task cannot
/// be deleted on its own (it goes with its run).
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn expired_runs_leave_the_run_index() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.retention(Duration::from_millis(400)));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let probe = Probe::default();
    let run = backend.start(Diamond(1)).await.unwrap_or_else(|e| panic!("start: {e}"));
    let worker = WorkerBuilder::<StepTask<Diamond, JsonCodec>, _>::new(backend.clone()).data(probe).concurrency(4);
    let running = Running::start(Monitor::new().register(worker));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    running.stop().await.unwrap_or_else(|e| panic!("stop: {e}"));
    assert!(matches!(output, Ok(Ok(_))), "the run finishes: {output:?}");
    let status = backend.workflow(run).status().await.unwrap_or_else(|e| panic!("status: {e}"));
    let step = status.steps[0].task.unwrap_or_else(|| panic!("the entry step has a task: {status:?}"));
    assert!(!backend.delete_task(step).await.unwrap_or_else(|e| panic!("delete: {e}")), "a step is not deleted");
    assert!(backend.task(step).await.unwrap_or_else(|e| panic!("task: {e}")).is_some());

    let conn = common::raw(&url).await;
    let key = |name: &str| common::key(backend.namespace(), Diamond::QUEUE, name);
    let card = |name: &'static str| {
        let (cmd, mut conn) = (redis::cmd("ZCARD").arg(key(name)).clone(), conn.clone());
        async move { cmd.query_async::<i64>(&mut conn).await.unwrap_or(-1) }
    };
    assert_eq!((card("wl").await, card("wx").await), (1, 1), "indexed, with its expiry noted");
    tokio::time::sleep(Duration::from_millis(600)).await;
    backend.purge_expired().await.unwrap_or_else(|e| panic!("purge: {e}"));
    assert_eq!((card("wl").await, card("wx").await), (0, 0), "the purge takes the expired run out");
    assert!(backend.run_ids(&RunFilter::default()).await.unwrap_or_else(|e| panic!("run_ids: {e}")).is_empty());
}

/// Listing runs: newest first across queues (by queue number, then run
/// number), paged with `before` across a queue boundary, filtered by
/// workflow and state; index entries whose run is gone are skipped and
/// dropped, also more of them than one script call looks at.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn runs_are_listed_across_queues_past_gone_entries() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let mut diamonds = Vec::new();
    for n in 0..3 {
        diamonds.push(backend.start(Diamond(n)).await.unwrap_or_else(|e| panic!("start: {e}")).id());
    }
    let single = || NewRun {
        workflow: "single_step",
        queue: "other_runs".to_owned(),
        steps: vec![StepSpec { name: "only".into(), after: Vec::new(), max_attempts: 1, priority: 0 }],
        input: b"1".to_vec(),
        trace: None,
    };
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(backend.start_run(single()).await.unwrap_or_else(|e| panic!("start_run: {e}")));
    }
    // Index entries without runs, newer than the real ones: more than one
    // call of the listing script looks at.
    let mut conn = common::raw(&url).await;
    let index = common::key(backend.namespace(), Diamond::QUEUE, "wl");
    let mut gone = redis::cmd("ZADD");
    gone.arg(&index);
    for n in 100..2_600 {
        gone.arg(n).arg(n);
    }
    let _: i64 = gone.query_async(&mut conn).await.unwrap_or_else(|e| panic!("ZADD: {e}"));

    let ids = |filter: RunFilter| {
        let backend = backend.clone();
        async move {
            let ids = backend.run_ids(&filter).await.unwrap_or_else(|e| panic!("run_ids: {e}"));
            ids.into_iter().map(|r| r.0).collect::<Vec<_>>()
        }
    };
    let mut expected: Vec<u64> = diamonds.iter().chain(&others).map(|r| r.0).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(expected[..2], [others[1].0, others[0].0], "the later queue's runs have the higher ids");
    assert_eq!(ids(RunFilter::default()).await, expected, "newest first, gone entries skipped");
    let left: i64 = redis::cmd("ZCARD").arg(&index).query_async(&mut conn).await.unwrap_or(-1);
    assert_eq!(left, 3, "the gone entries were dropped");

    let page = ids(RunFilter { limit: 3, ..RunFilter::default() }).await;
    assert_eq!(page, expected[..3]);
    let before = Some(RunId(page[2]));
    assert_eq!(ids(RunFilter { before, ..RunFilter::default() }).await, expected[3..], "the next page");
    let workflow = |name: &str| RunFilter { workflow: Some(name.to_owned()), ..RunFilter::default() };
    assert_eq!(ids(workflow("single_step")).await, expected[..2]);
    assert_eq!(ids(workflow(Diamond::NAME)).await, expected[2..]);
    assert!(ids(workflow("no_such_workflow")).await.is_empty());
    let state = |state| RunFilter { state: Some(state), ..RunFilter::default() };
    assert_eq!(ids(state(RunState::Running)).await, expected);
    assert!(ids(state(RunState::Failed)).await.is_empty());

    let runs = backend.runs(&workflow("single_step")).await.unwrap_or_else(|e| panic!("runs: {e}"));
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [others[1], others[0]]);
    assert_eq!(runs[0].steps.iter().map(|s| (s.name.as_str(), s.after.len())).collect::<Vec<_>>(), [("only", 0)]);
}

/// A run's trace context is stored in its hash (`tr`) and in its entry
/// step's task record (flags 6: a step with a trace context). A run written
/// before trace contexts existed — no `tr`, step records without one —
/// advances as before, every step without a trace context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn runs_keep_their_trace_and_runs_from_before_traces_advance_without() {
    use errand_runtime::workflow::Run;

    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=errand;n=1";
    let input = JsonCodec::encode(&3_u64, "the input").unwrap_or_else(|e| panic!("encode: {e}"));
    let new_run = NewRun {
        workflow: Diamond::NAME,
        queue: Diamond::QUEUE.to_owned(),
        steps: Diamond::steps(),
        input,
        trace: Some(trace.to_owned()),
    };
    let run = backend.start_run(new_run).await.unwrap_or_else(|e| panic!("start_run: {e}"));
    let mut conn = common::raw(&url).await;
    let hash = common::key(backend.namespace(), Diamond::QUEUE, &format!("wr:{}", run.0 & ((1 << 40) - 1)));
    let stored: Option<String> =
        redis::cmd("HGET").arg(&hash).arg("tr").query_async(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.as_deref(), Some(trace), "the run keeps its trace context");
    let status = backend.run_info(run).await.unwrap_or_else(|e| panic!("run_info: {e}"));
    let entry = status.and_then(|s| s.steps[0].task).unwrap_or_else(|| panic!("the entry step has a task"));
    let records = common::key(backend.namespace(), Diamond::QUEUE, "t");
    let mut record = common::hget(&mut conn, &records, common::seq(entry)).await;
    assert_eq!(record[0], 6, "a workflow step with a trace context");
    // Its trace context follows the job, the run (8 bytes) and the step (2).
    let at = 25 + Diamond::NAME.len() + 10;
    assert_eq!(&record[at..at + 2], &u16::try_from(trace.len()).unwrap_or(0).to_be_bytes());
    assert_eq!(&record[at + 2..at + 2 + trace.len()], trace.as_bytes());

    // As the previous version stored the run: no `tr`, no trace in the record.
    record.drain(at..at + 2 + trace.len());
    record[0] = 2;
    common::hset(&mut conn, &records, common::seq(entry), &record).await;
    let _: i64 = redis::cmd("HDEL").arg(&hash).arg("tr").query_async(&mut conn).await.unwrap_or(0);

    let probe = Probe::default();
    let worker = WorkerBuilder::<StepTask<Diamond, JsonCodec>, _>::new(backend.clone()).data(probe.clone());
    let running = Running::start(Monitor::new().register(worker));
    let output =
        tokio::time::timeout(Duration::from_secs(30), backend.workflow(Run::<Diamond>::from_id(run)).wait()).await;
    running.stop().await.unwrap_or_else(|e| panic!("stop: {e}"));
    assert!(matches!(output, Ok(Ok(_))), "the run finishes: {output:?}");
    for step in 0..4 {
        assert_eq!(probe.traces(step), vec![None], "step {step} of a run stored without a trace context");
    }
}
