//! Redis-specific behaviour: script reloading, large claims, unique keys,
//! retention, configuration errors.
//!
//! Needs `ERRAND_REDIS_URL`; skipped without it unless
//! `ERRAND_REQUIRE_SERVICES=1`.

mod common;

use std::time::Duration;

use errand_redis::RedisBackend;
use errand_runtime::{
    Ack, Backend, Enqueue, Error, Expose, Job, JobError, JsonCodec, Outcome, TaskCx, TaskSink, TaskState, Timestamp,
    WorkerRegistration,
};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Noop {
    n: u64,
}

impl Job for Noop {
    const NAME: &'static str = "noop";
    const QUEUE: &'static str = "redis-tests";
    type Output = u64;
    async fn run(self, _cx: TaskCx) -> Result<u64, JobError> {
        Ok(self.n)
    }
}

fn registration(id: &str) -> WorkerRegistration {
    WorkerRegistration {
        id: id.into(),
        queue: Noop::QUEUE.into(),
        job: Noop::NAME,
        concurrency: 16,
        started_at: Timestamp::now(),
    }
}

async fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what} failed: {error}"),
    }
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    match redis::Client::open(url) {
        Ok(client) => match client.get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(error) => panic!("connecting to {url}: {error}"),
        },
        Err(error) => panic!("opening {url}: {error}"),
    }
}

/// After `SCRIPT FLUSH` every operation still works: scripts are loaded again
/// on `NOSCRIPT`, for single calls and pipelined ones.
#[tokio::test]
async fn scripts_are_reloaded_after_a_flush() {
    let Some(url) = common::url() else { return };
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("flush-worker");
    let mut conn = raw(&url).await;
    let flush = redis::cmd("SCRIPT").arg("FLUSH").clone();

    let _: () = ok(flush.query_async(&mut conn).await.map_err(|e| Error::Config(e.to_string())), "SCRIPT FLUSH").await;
    let id = ok(backend.enqueue(Noop { n: 1 }).await, "enqueue after a flush").await;
    let _: () = ok(flush.query_async(&mut conn).await.map_err(|e| Error::Config(e.to_string())), "SCRIPT FLUSH").await;
    let bulk = ok(backend.enqueue_bulk((0..1_500).map(|n| Noop { n })).await, "bulk enqueue after a flush").await;
    assert_eq!(bulk.len(), 1_500);
    let _: () = ok(flush.query_async(&mut conn).await.map_err(|e| Error::Config(e.to_string())), "SCRIPT FLUSH").await;
    ok(backend.heartbeat(&worker).await, "heartbeat after a flush").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim after a flush").await;
    assert_eq!(claimed.tasks.first().map(|t| t.id), Some(id));
    let _: () = ok(flush.query_async(&mut conn).await.map_err(|e| Error::Config(e.to_string())), "SCRIPT FLUSH").await;
    let acks: Vec<Ack> =
        claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Done { result: b"1".to_vec() } }).collect();
    ok(backend.ack(&worker, &acks).await, "ack after a flush").await;
    let _: () = ok(flush.query_async(&mut conn).await.map_err(|e| Error::Config(e.to_string())), "SCRIPT FLUSH").await;
    assert_eq!(ok(backend.rescue_orphans().await, "rescue after a flush").await, 0);
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].pending), (10, 1_491), "{counts:?}");
    assert_eq!(ok(backend.release(&worker).await, "release").await, 0);
}

/// More than 10,000 delayed tasks falling due at once are claimed in bounded
/// batches (no Lua `unpack` of the whole set), and all of them run.
#[tokio::test]
async fn claims_with_over_ten_thousand_due_delayed_tasks() {
    if common::url().is_none() {
        return;
    }
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("big-claim");
    let total = 12_000_u64;
    let at = std::time::SystemTime::now() + Duration::from_millis(300);
    let tasks: Vec<_> = (0..total)
        .map(|n| Enqueue::new().run_at(at).to_task::<Noop, JsonCodec>(&Noop { n }, Timestamp::now()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("encoding: {e}"));
    ok(backend.push(tasks).await, "push").await;
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let early = ok(backend.claim(&worker, 100).await, "early claim").await;
    assert!(early.tasks.is_empty(), "claimed delayed tasks before they were due");
    assert!(early.next_due.is_some(), "an empty claim reports the next due time");
    tokio::time::sleep(Duration::from_millis(400)).await;

    let mut seen = std::collections::HashSet::new();
    let mut rounds = 0;
    while (seen.len() as u64) < total {
        rounds += 1;
        assert!(rounds < 1_000, "claimed only {} of {total} tasks", seen.len());
        let claimed = ok(backend.claim(&worker, 5_000).await, "claim").await;
        let acks: Vec<Ack> =
            claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Done { result: Vec::new() } }).collect();
        for task in &claimed.tasks {
            assert!(seen.insert(task.id), "task {} claimed twice", task.id);
        }
        ok(backend.ack(&worker, &acks).await, "ack").await;
    }
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].pending, counts[0].running), (total, 0, 0), "{counts:?}");
}

/// Unique keys: a duplicate returns the live task's id, also inside one bulk
/// enqueue; a finished task frees its key; a window keeps it.
#[tokio::test]
async fn unique_keys() {
    if common::url().is_none() {
        return;
    }
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("unique");
    let first = ok(backend.enqueue_with(Noop { n: 1 }, Enqueue::new().unique_key("k")).await, "enqueue").await;
    let again = ok(backend.enqueue_with(Noop { n: 2 }, Enqueue::new().unique_key("k")).await, "enqueue").await;
    assert_eq!(first, again);
    let now = Timestamp::now();
    let batch: Vec<_> = ["a", "b", "a"]
        .iter()
        .map(|k| Enqueue::new().unique_key(*k).to_task::<Noop, JsonCodec>(&Noop { n: 0 }, now))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("encoding: {e}"));
    let ids = ok(backend.push(batch).await, "push").await;
    assert_eq!(ids[0], ids[2], "a duplicate within one batch gets the first task's id");
    assert_ne!(ids[0], ids[1]);

    // Finish everything; "k" is free again, a windowed key is not.
    let windowed = Enqueue::new().unique_key("w").unique_for(Duration::from_secs(3600));
    let w = ok(backend.enqueue_with(Noop { n: 3 }, windowed.clone()).await, "enqueue").await;
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 100).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 4);
    let acks: Vec<Ack> =
        claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Done { result: Vec::new() } }).collect();
    ok(backend.ack(&worker, &acks).await, "ack").await;
    let fresh = ok(backend.enqueue_with(Noop { n: 4 }, Enqueue::new().unique_key("k")).await, "enqueue").await;
    assert_ne!(fresh, first, "a finished task frees its key");
    let same = ok(backend.enqueue_with(Noop { n: 5 }, windowed).await, "enqueue").await;
    assert_eq!(same, w, "a finished task inside its window still holds its key");
}

/// Done tasks are kept for the retention, dead ones until retried: expired
/// done tasks disappear from reads at once, and the next ack (or rescue
/// round) removes them from the queue's hashes, the done index and count.
#[tokio::test]
async fn retention_prunes_done_tasks() {
    let Some(url) = common::url() else { return };
    let builder = common::builder().retention(Duration::from_millis(300));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let worker = registration("retention");
    let ids = ok(backend.enqueue_bulk((0..3).map(|n| Noop { n })).await, "enqueue").await;
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 3);
    let acks = vec![
        Ack { id: ids[0], outcome: Outcome::Done { result: b"0".to_vec() } },
        Ack { id: ids[1], outcome: Outcome::Done { result: b"1".to_vec() } },
        Ack { id: ids[2], outcome: Outcome::Dead { error: "boom".into() } },
    ];
    ok(backend.ack(&worker, &acks).await, "ack").await;
    let done = ok(backend.task(ids[0]).await, "task").await;
    assert_eq!(done.map(|t| (t.state, t.result)), Some((TaskState::Done, Some(b"0".to_vec()))));

    let mut conn = raw(&url).await;
    let hash = |name: &str| format!("{}{{{}}}:{name}", backend.prefix(), Noop::QUEUE);
    let seq = |id: errand_runtime::TaskId| id.0 & ((1 << 40) - 1);
    let stored = |conn: &mut redis::aio::MultiplexedConnection, id| {
        let cmd = redis::cmd("HEXISTS").arg(hash("t")).arg(seq(id)).clone();
        let mut conn = conn.clone();
        async move { cmd.query_async::<i64>(&mut conn).await.unwrap_or(-1) == 1 }
    };
    assert!(stored(&mut conn, ids[0]).await, "a done task is kept until its retention passes");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(ok(backend.task(ids[0]).await, "task").await.is_none(), "an expired done task is gone");
    assert_eq!(ok(backend.task(ids[2]).await, "task").await.map(|t| t.state), Some(TaskState::Dead));
    assert!(stored(&mut conn, ids[0]).await, "not pruned yet: nothing has run since");

    // The next ack prunes.
    let fresh = ok(backend.enqueue(Noop { n: 9 }).await, "enqueue").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![fresh]);
    ok(backend.ack(&worker, &[Ack { id: fresh, outcome: Outcome::Done { result: Vec::new() } }]).await, "ack").await;
    for id in &ids[..2] {
        assert!(!stored(&mut conn, *id).await, "pruned: task {id}");
        for name in ["s", "e"] {
            let left: i64 =
                redis::cmd("HEXISTS").arg(hash(name)).arg(seq(*id)).query_async(&mut conn).await.unwrap_or(-1);
            assert_eq!(left, 0, "task {id} left its field in `{name}`");
        }
    }
    assert!(stored(&mut conn, ids[2]).await, "dead tasks are kept");
    // Done bits: block `seq / 100000`, bit `seq % 100000`.
    let bits = |conn: &mut redis::aio::MultiplexedConnection| {
        let (cmd, mut conn) = (redis::cmd("BITCOUNT").arg(hash("done:0")).clone(), conn.clone());
        async move { cmd.query_async::<i64>(&mut conn).await.unwrap_or(-1) }
    };
    let bit: i64 = redis::cmd("GETBIT").arg(hash("done:0")).arg(seq(fresh)).query_async(&mut conn).await.unwrap_or(-1);
    assert_eq!((bits(&mut conn).await, bit), (1, 1), "only the fresh task is in the done index");
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].dead), (1, 1), "{counts:?}");
    let listed = ok(backend.tasks(&errand_runtime::TaskFilter::default()).await, "tasks").await;
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[2], fresh]);

    // Rescue rounds prune too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ok(backend.rescue_orphans().await, "rescue (prunes)").await;
    assert!(!stored(&mut conn, fresh).await, "pruned by a rescue round");
    let blocks: i64 = redis::cmd("ZCARD").arg(hash("db")).query_async(&mut conn).await.unwrap_or(-1);
    assert_eq!((bits(&mut conn).await, blocks), (0, 0), "an emptied bitmap block is deleted");
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].dead), (0, 1), "{counts:?}");
}

/// A malformed URL is a configuration error naming the URL (without its
/// password); a bad prefix too; an unreachable server is a backend error.
#[tokio::test]
async fn bad_configuration_is_a_clear_error() {
    match RedisBackend::connect("http://:hunter2@127.0.0.1:6379").await {
        Err(Error::Config(message)) => {
            assert!(message.contains("invalid Redis URL") && message.contains("127.0.0.1"), "{message}");
            assert!(!message.contains("hunter2"), "the password leaked: {message}");
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
    match RedisBackend::builder().prefix("a{b}:").connect("redis://127.0.0.1:1").await {
        Err(Error::Config(message)) => assert!(message.contains("must not contain"), "{message}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
    // Port 1 on loopback: nothing listens there.
    match RedisBackend::builder().connect("redis://127.0.0.1:1").await {
        Err(Error::Backend(error)) => {
            assert!(error.to_string().contains("connect to redis://127.0.0.1:1"), "{error}");
        }
        other => panic!("expected Error::Backend, got {other:?}"),
    }
}

/// Malformed stored data is an error naming the task and what is wrong,
/// never a panic; a claimed task whose record is malformed still reaches
/// the worker (which sends it to `dead` as undecodable).
#[tokio::test]
async fn bad_stored_data_names_the_task() {
    let Some(url) = common::url() else { return };
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let ids = ok(backend.enqueue_bulk((0..2).map(|n| Noop { n })).await, "enqueue").await;
    let mut conn = raw(&url).await;
    let hash = |name: &str| format!("{}{{{}}}:{name}", backend.prefix(), Noop::QUEUE);
    let seq = |id: errand_runtime::TaskId| id.0 & ((1 << 40) - 1);
    let _: i64 =
        redis::cmd("HSET").arg(hash("t")).arg(seq(ids[0])).arg("garbage").query_async(&mut conn).await.unwrap_or(0);
    match backend.task(ids[0]).await {
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains(&format!("task {}", ids[0])) && message.contains("record"), "{message}");
        }
        Ok(info) => panic!("expected an error, got {info:?}"),
    }
    let _: i64 =
        redis::cmd("HSET").arg(hash("s")).arg(seq(ids[1])).arg("z9|").query_async(&mut conn).await.unwrap_or(0);
    match backend.task(ids[1]).await {
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains(&format!("task {}", ids[1])) && message.contains("`z9|`"), "{message}");
        }
        Ok(info) => panic!("expected an error, got {info:?}"),
    }

    let worker = registration("bad-data");
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    let bad = claimed.tasks.iter().find(|t| t.id == ids[0]);
    assert!(bad.is_some_and(|t| t.payload.is_empty()), "{:?}", claimed.tasks);
}

/// The done index is bitmaps of 100,000 seqs each: listing done tasks walks
/// them in seq order across blocks, from a cursor, and filters by job.
#[tokio::test]
async fn done_tasks_are_listed_across_bitmap_blocks() {
    let Some(url) = common::url() else { return };
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let mut conn = raw(&url).await;
    let key = format!("{}{{{}}}:seq", backend.prefix(), Noop::QUEUE);
    let _: () = redis::cmd("SET").arg(&key).arg(99_997).query_async(&mut conn).await.unwrap_or(());
    let ids = ok(backend.enqueue_bulk((0..5).map(|n| Noop { n })).await, "enqueue").await;
    let seqs: Vec<u64> = ids.iter().map(|id| id.0 & ((1 << 40) - 1)).collect();
    assert_eq!(seqs, vec![99_998, 99_999, 100_000, 100_001, 100_002]);
    let worker = registration("blocks");
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 5);
    // The first stays running: not done.
    let acks: Vec<Ack> =
        ids[1..].iter().map(|id| Ack { id: *id, outcome: Outcome::Done { result: b"7".to_vec() } }).collect();
    ok(backend.ack(&worker, &acks).await, "ack").await;

    let done = |after: Option<errand_runtime::TaskId>, job: Option<&str>| {
        let filter = errand_runtime::TaskFilter {
            state: Some(TaskState::Done),
            after,
            job: job.map(str::to_owned),
            limit: 2,
            ..Default::default()
        };
        let backend = backend.clone();
        async move { ok(backend.tasks(&filter).await, "tasks").await.into_iter().map(|t| t.id).collect::<Vec<_>>() }
    };
    assert_eq!(done(None, None).await, ids[1..3]);
    assert_eq!(done(Some(ids[2]), None).await, ids[3..5]);
    assert_eq!(done(Some(ids[4]), None).await, Vec::new());
    assert_eq!(done(None, Some("other")).await, Vec::new());
    assert_eq!(done(Some(ids[1]), Some(Noop::NAME)).await, ids[2..4]);
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].running), (4, 1), "{counts:?}");
}

/// What `task` and `tasks` read back through claims, a retry, a release and
/// cancels: attempts, workers, errors, and tasks that went back to waiting
/// are claimed and cancelled like fresh ones.
#[tokio::test]
async fn states_read_back_through_claims_releases_and_cancels() {
    if common::url().is_none() {
        return;
    }
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("states");
    let state = |id| {
        let backend = backend.clone();
        async move {
            let info = ok(backend.task(id).await, "task").await.unwrap_or_else(|| panic!("task {id} is gone"));
            (info.state, info.attempt, info.worker, info.last_error)
        }
    };
    let a = ok(backend.enqueue(Noop { n: 1 }).await, "enqueue").await;
    assert_eq!(state(a).await, (TaskState::Pending, 0, None, None));
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 1).await, "claim").await;
    assert_eq!(claimed.tasks.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(), vec![(a, 1)]);
    let running = (TaskState::Running, 1, Some("states".to_owned()), None);
    assert_eq!(state(a).await, running);
    let listed = ok(
        backend.tasks(&errand_runtime::TaskFilter { state: Some(TaskState::Running), ..Default::default() }).await,
        "tasks",
    )
    .await;
    assert_eq!(listed.iter().map(|t| (t.id, t.worker.as_deref())).collect::<Vec<_>>(), vec![(a, Some("states"))]);

    let retry = Outcome::Retry { at: Timestamp::now(), error: "e1".into() };
    ok(backend.ack(&worker, &[Ack { id: a, outcome: retry }]).await, "ack").await;
    assert_eq!(state(a).await, (TaskState::Retry, 1, None, Some("e1".to_owned())));
    let b = ok(backend.enqueue(Noop { n: 2 }).await, "enqueue").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    let mut got: Vec<_> = claimed.tasks.iter().map(|t| (t.id, t.attempt)).collect();
    got.sort();
    assert_eq!(got, vec![(a, 2), (b, 1)]);

    assert_eq!(ok(backend.release(&worker).await, "release").await, 2);
    assert_eq!(state(a).await, (TaskState::Pending, 1, None, Some("e1".to_owned())));
    assert_eq!(state(b).await, (TaskState::Pending, 0, None, None));
    assert!(ok(backend.cancel_task(b).await, "cancel").await, "a released task can be cancelled");
    assert_eq!(state(b).await.0, TaskState::Cancelled);

    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(
        claimed.tasks.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(),
        vec![(a, 2)],
        "b left the ready set"
    );
    assert!(ok(backend.cancel_task(a).await, "cancel").await, "a running task can be cancelled");
    assert_eq!(ok(backend.cancelled_tasks(&worker).await, "cancelled").await, vec![a]);
    ok(backend.ack(&worker, &[Ack { id: a, outcome: Outcome::Done { result: Vec::new() } }]).await, "ack").await;
    assert_eq!(state(a).await.0, TaskState::Cancelled, "the ack of a cancelled task is ignored");
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].pending, counts[0].running, counts[0].done, counts[0].cancelled), (0, 0, 0, 2), "{counts:?}");

    // A first claim cancelled while running.
    let c = ok(backend.enqueue(Noop { n: 3 }).await, "enqueue").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![c]);
    assert!(ok(backend.cancel_task(c).await, "cancel").await);
    assert_eq!(state(c).await.0, TaskState::Cancelled);
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].running, counts[0].cancelled), (0, 3), "{counts:?}");
}

/// A running task cancelled while its worker is not registered (it claimed
/// before its first heartbeat, or was rescued meanwhile) cannot be reported
/// to it; its ack is then ignored rather than counted twice.
#[tokio::test]
async fn the_ack_of_a_task_cancelled_behind_its_workers_back_is_ignored() {
    if common::url().is_none() {
        return;
    }
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("unregistered");
    let id = ok(backend.enqueue(Noop { n: 1 }).await, "enqueue").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 1);
    assert!(ok(backend.cancel_task(id).await, "cancel").await);
    ok(backend.ack(&worker, &[Ack { id, outcome: Outcome::Done { result: Vec::new() } }]).await, "ack").await;
    assert_eq!(ok(backend.task(id).await, "task").await.map(|t| t.state), Some(TaskState::Cancelled));
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].running, counts[0].done, counts[0].cancelled), (0, 0, 1), "{counts:?}");
    assert_eq!(ok(backend.release(&worker).await, "release").await, 0);
}

/// A unique window of `Duration::MAX` is stored capped (the scripts compute
/// with doubles): the task is acked and keeps its key.
#[tokio::test]
async fn an_unbounded_unique_window_is_capped() {
    if common::url().is_none() {
        return;
    }
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("forever");
    let forever = Enqueue::new().unique_key("f").unique_for(Duration::MAX);
    let id = ok(backend.enqueue_with(Noop { n: 1 }, forever.clone()).await, "enqueue").await;
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 1);
    ok(backend.ack(&worker, &[Ack { id, outcome: Outcome::Done { result: Vec::new() } }]).await, "ack").await;
    assert_eq!(ok(backend.task(id).await, "task").await.map(|t| t.state), Some(TaskState::Done));
    assert_eq!(ok(backend.enqueue_with(Noop { n: 2 }, forever).await, "enqueue").await, id);
}
