//! Redis-specific behaviour: script reloading, large claims, unique keys,
//! retention, configuration errors.
//!
//! Needs `ERRAND_REDIS_URL`: without it the server tests are reported as
//! ignored (and `ERRAND_REQUIRE_SERVICES=1` fails the build instead).

mod common;

use std::time::Duration;

use errand_redis::RedisBackend;
use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::capability::Schedules;
use errand_runtime::{
    Backend, Enqueue, Error, Expose, Job, JobError, JsonCodec, Progress, TaskCx, TaskSink, TaskState, Timestamp,
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
        workflow_steps: false,
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
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn scripts_are_reloaded_after_a_flush() {
    let url = common::url();
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
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn claims_with_over_ten_thousand_due_delayed_tasks() {
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("big-claim");
    let total = 12_000_u64;
    // Far enough ahead that writing 12,000 tasks on a loaded machine ends
    // well before they fall due.
    let at = std::time::SystemTime::now() + Duration::from_secs(5);
    let tasks: Vec<_> = (0..total)
        .map(|n| Enqueue::new().run_at(at).to_task::<Noop, JsonCodec>(&Noop { n }, Timestamp::now()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("encoding: {e}"));
    ok(backend.push(tasks).await, "push").await;
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let early = ok(backend.claim(&worker, 100).await, "early claim").await;
    assert!(early.tasks.is_empty(), "claimed delayed tasks before they were due");
    assert!(early.next_due.is_some(), "an empty claim reports the next due time");
    tokio::time::sleep(
        at.duration_since(std::time::SystemTime::now()).unwrap_or_default() + Duration::from_millis(100),
    )
    .await;

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
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn unique_keys() {
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
/// done tasks disappear from reads at once, and `purge_expired` (never an
/// ack or a rescue round) removes them from the queue's hashes, the done
/// index and count.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn retention_prunes_done_tasks() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.retention(Duration::from_millis(300)));
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
    let hash = |name: &str| format!("{}{{{}}}:{name}", backend.namespace(), Noop::QUEUE);
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

    // Acks leave retention alone; the purge prunes.
    let fresh = ok(backend.enqueue(Noop { n: 9 }).await, "enqueue").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![fresh]);
    ok(backend.ack(&worker, &[Ack { id: fresh, outcome: Outcome::Done { result: Vec::new() } }]).await, "ack").await;
    assert!(stored(&mut conn, ids[0]).await, "an ack does not prune");
    assert_eq!(ok(backend.purge_expired().await, "purge").await, 2, "the two expired done tasks");
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

    // Rescue rounds do not prune either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ok(backend.rescue_orphans().await, "rescue").await;
    assert!(stored(&mut conn, fresh).await, "a rescue round does not prune");
    assert_eq!(ok(backend.purge_expired().await, "purge").await, 1);
    assert!(!stored(&mut conn, fresh).await, "pruned by the purge");
    let blocks: i64 = redis::cmd("ZCARD").arg(hash("db")).query_async(&mut conn).await.unwrap_or(-1);
    assert_eq!((bits(&mut conn).await, blocks), (0, 0), "an emptied bitmap block is deleted");
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].dead), (0, 1), "{counts:?}");
}

/// Deleting finished tasks: every trace of them goes (fields, done bit,
/// dead and cancelled indexes, counts), a unique key they still hold is
/// free again, and the later purge of a deleted done task's expiry entry
/// counts nothing twice.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn deleted_tasks_leave_nothing_behind() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.retention(Duration::from_millis(300)));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let worker = registration("deleter");
    let windowed = Enqueue::new().unique_key("d").unique_for(Duration::from_secs(3600));
    let unique = ok(backend.enqueue_with(Noop { n: 0 }, windowed.clone()).await, "enqueue").await;
    let ids = ok(backend.enqueue_bulk((1..5).map(|n| Noop { n })).await, "enqueue").await;
    let (kept, plain, dead, cancelled) = (ids[0], ids[1], ids[2], ids[3]);
    assert!(ok(backend.cancel_task(cancelled).await, "cancel").await);
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 4);
    let acks = vec![
        Ack { id: unique, outcome: Outcome::Done { result: b"0".to_vec() } },
        Ack { id: kept, outcome: Outcome::Done { result: b"1".to_vec() } },
        Ack { id: plain, outcome: Outcome::Done { result: b"2".to_vec() } },
        Ack { id: dead, outcome: Outcome::Dead { error: "boom".into() } },
    ];
    ok(backend.ack(&worker, &acks).await, "ack").await;
    assert_eq!(ok(backend.enqueue_with(Noop { n: 5 }, windowed.clone()).await, "enqueue").await, unique);

    for id in [unique, plain, dead, cancelled] {
        assert!(ok(backend.delete_task(id).await, "delete").await, "task {id} is deleted");
        assert!(ok(backend.task(id).await, "task").await.is_none(), "task {id} is gone");
        assert!(!ok(backend.delete_task(id).await, "delete").await, "task {id} is deleted once");
    }
    let mut conn = raw(&url).await;
    let key = |name: &str| common::key(backend.namespace(), Noop::QUEUE, name);
    for id in [unique, plain, dead, cancelled] {
        for name in ["t", "s", "e", "g"] {
            let left: i64 =
                redis::cmd("HEXISTS").arg(key(name)).arg(common::seq(id)).query_async(&mut conn).await.unwrap_or(-1);
            assert_eq!(left, 0, "task {id} left its field in `{name}`");
        }
    }
    let card = |name: &'static str| {
        let (cmd, mut conn) = (redis::cmd("ZCARD").arg(key(name)).clone(), conn.clone());
        async move { cmd.query_async::<i64>(&mut conn).await.unwrap_or(-1) }
    };
    assert_eq!((card("dead").await, card("cancelled").await), (0, 0), "the indexes forget them");
    let bit = |id| {
        let cmd = redis::cmd("GETBIT").arg(key("done:0")).arg(common::seq(id)).clone();
        let mut conn = conn.clone();
        async move { cmd.query_async::<i64>(&mut conn).await.unwrap_or(-1) }
    };
    assert_eq!(
        (bit(unique).await, bit(plain).await, bit(kept).await),
        (0, 0, 1),
        "only the kept task is in the done index"
    );
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].dead, counts[0].cancelled), (1, 0, 0), "{counts:?}");
    let again = ok(backend.enqueue_with(Noop { n: 6 }, windowed).await, "enqueue").await;
    assert_ne!(again, unique, "a deleted task's unique key is free again");
    let listed = ok(backend.tasks(&errand_runtime::TaskFilter::default()).await, "tasks").await;
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![kept, again]);

    // The purge counts the kept task only (the deleted `plain` shares its
    // expiry entry); the unique one's entry (at the end of its window)
    // stays, to find nothing then.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ok(backend.purge_expired().await, "purge").await, 1);
    assert_eq!(card("x").await, 1);
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].pending), (0, 1), "{counts:?}");
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
    match RedisBackend::builder().namespace("a{b}:").connect("redis://127.0.0.1:1").await {
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
/// never a panic; a claimed task whose record or state value is malformed
/// never reaches the worker: it goes `dead` with the read error, and claims
/// go on.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn bad_stored_data_names_the_task() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let ids = ok(backend.enqueue_bulk((0..2).map(|n| Noop { n })).await, "enqueue").await;
    let mut conn = raw(&url).await;
    let hash = |name: &str| format!("{}{{{}}}:{name}", backend.namespace(), Noop::QUEUE);
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
    let fresh = ok(backend.enqueue(Noop { n: 3 }).await, "enqueue").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(
        claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![fresh],
        "only readable tasks are handed out"
    );
    let state: String =
        redis::cmd("HGET").arg(hash("s")).arg(seq(ids[0])).query_async(&mut conn).await.unwrap_or_default();
    assert!(state.starts_with('x'), "the unreadable task is dead: state `{state}`");
    let error: String =
        redis::cmd("HGET").arg(hash("e")).arg(seq(ids[0])).query_async(&mut conn).await.unwrap_or_default();
    assert!(
        error.contains(&format!("task {}", ids[0])) && error.contains("shorter than its 25-byte header"),
        "the read error is its last error: {error}"
    );
    let inflight: bool = redis::cmd("SISMEMBER")
        .arg(hash(&format!("if:{}", worker.id)))
        .arg(seq(ids[0]))
        .query_async(&mut conn)
        .await
        .unwrap_or(true);
    assert!(!inflight, "the unreadable task is not running for the worker any more");
    // The task whose state value is malformed went dead too, saying so.
    let state: String =
        redis::cmd("HGET").arg(hash("s")).arg(seq(ids[1])).query_async(&mut conn).await.unwrap_or_default();
    assert!(state.starts_with("x0||"), "the task with a malformed state is dead: state `{state}`");
    let error: String =
        redis::cmd("HGET").arg(hash("e")).arg(seq(ids[1])).query_async(&mut conn).await.unwrap_or_default();
    assert!(error.contains(&format!("task {}", ids[1])) && error.contains("`z9|`"), "{error}");
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].pending, counts[0].running, counts[0].dead), (0, 1, 2), "{counts:?}");
    let dead = errand_runtime::TaskFilter { state: Some(TaskState::Dead), ..Default::default() };
    match backend.tasks(&dead).await {
        Err(error) => assert!(error.to_string().contains(&format!("task {}", ids[0])), "{error}"),
        Ok(listed) => panic!("listed an unreadable task: {listed:?}"),
    }
    ok(backend.ack(&worker, &[Ack { id: fresh, outcome: Outcome::Done { result: b"3".to_vec() } }]).await, "ack").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim after burying").await;
    assert!(claimed.tasks.is_empty(), "{:?}", claimed.tasks);
    assert_eq!(ok(backend.task(fresh).await, "task").await.map(|t| t.state), Some(TaskState::Done));
}

/// Counts are read back checked: a stored count that is negative or not a
/// number is an error naming the queue, never clamped to zero.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn bad_counts_are_errors_naming_the_queue() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    ok(backend.enqueue(Noop { n: 1 }).await, "enqueue").await;
    let mut conn = raw(&url).await;
    let counts = format!("{}{{{}}}:n", backend.namespace(), Noop::QUEUE);
    for (value, shown) in [("-3", "negative count -3"), ("lots", "`pending` is lots")] {
        let _: i64 =
            redis::cmd("HSET").arg(&counts).arg("pending").arg(value).query_async(&mut conn).await.unwrap_or(0);
        match backend.counts().await {
            Err(error) => {
                let message = error.to_string();
                assert!(message.contains(&format!("queue `{}`", Noop::QUEUE)) && message.contains(shown), "{message}");
            }
            Ok(counts) => panic!("a count of {value} was read as {counts:?}"),
        }
    }
    let _: i64 = redis::cmd("HSET").arg(&counts).arg("pending").arg(1).query_async(&mut conn).await.unwrap_or(0);
    assert_eq!(ok(backend.counts().await, "counts").await[0].pending, 1);
}

/// The done index is bitmaps of 100,000 seqs each: listing done tasks walks
/// them in seq order across blocks, from a cursor, and filters by job.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn done_tasks_are_listed_across_bitmap_blocks() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let mut conn = raw(&url).await;
    let key = format!("{}{{{}}}:seq", backend.namespace(), Noop::QUEUE);
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
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn states_read_back_through_claims_releases_and_cancels() {
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
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn the_ack_of_a_task_cancelled_behind_its_workers_back_is_ignored() {
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
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn an_unbounded_unique_window_is_capped() {
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

/// A job without arguments, stored with bincode: its payload is empty, so
/// an empty payload would decode and "succeed".
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Tick;

/// How many times [`Tick`] ran.
#[derive(Debug, Clone, Default)]
struct Ticks(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Ticks {
    fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Job for Tick {
    const NAME: &'static str = "tick";
    const QUEUE: &'static str = "redis-unreadable";
    type Output = ();
    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        if let Some(ticks) = cx.data::<Ticks>() {
            ticks.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A claimed task whose record cannot be read — ready or falling due from
/// the delayed set — goes `dead` with the read error and never runs (not
/// even a job whose arguments decode from nothing); the worker goes on
/// with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn an_unreadable_record_goes_dead_without_running() {
    use errand_runtime::testing::{Running, wait_for};
    use errand_runtime::{BackendExt, BincodeCodec, Monitor, WorkerBuilder};

    let url = common::url();
    let (backend, _cleanup) = common::backend::<BincodeCodec>(common::builder()).await;
    let ready = ok(backend.enqueue(Tick).await, "enqueue").await;
    let delayed =
        ok(backend.enqueue_with(Tick, Enqueue::new().delay(Duration::from_millis(300))).await, "enqueue").await;
    let good = ok(backend.enqueue(Tick).await, "enqueue").await;
    let mut conn = raw(&url).await;
    let hash = |name: &str| format!("{}{{{}}}:{name}", backend.namespace(), Tick::QUEUE);
    let seq = |id: errand_runtime::TaskId| id.0 & ((1 << 40) - 1);
    for (id, garbage) in [(ready, &b"garbage"[..]), (delayed, &[0x80; 40][..])] {
        let _: i64 =
            redis::cmd("HSET").arg(hash("t")).arg(seq(id)).arg(garbage).query_async(&mut conn).await.unwrap_or(0);
    }

    let ticks = Ticks::default();
    let worker = WorkerBuilder::<Tick, _>::new(backend.clone()).data(ticks.clone()).concurrency(4);
    let running = Running::start(Monitor::new().register(worker));
    wait_for("the readable task to run and the others to go dead", || async {
        backend.queue_counts(Tick::QUEUE).await.is_ok_and(|c| c.done == 1 && c.dead == 2)
    })
    .await;
    // The worker goes on.
    let after = ok(backend.enqueue(Tick).await, "enqueue").await;
    wait_for("a task enqueued after the unreadable ones", || async {
        backend.task(after).await.is_ok_and(|t| t.is_some_and(|t| t.state == TaskState::Done))
    })
    .await;
    running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));

    assert_eq!(ticks.get(), 2, "only the readable tasks ran");
    assert_eq!(ok(backend.task(good).await, "task").await.map(|t| t.state), Some(TaskState::Done));
    for (id, problem) in [(ready, "shorter than its 25-byte header"), (delayed, "unknown flags 0x80")] {
        let state: String =
            redis::cmd("HGET").arg(hash("s")).arg(seq(id)).query_async(&mut conn).await.unwrap_or_default();
        assert!(state.starts_with("x1|"), "task {id} went dead on its first claim: state `{state}`");
        let error: String =
            redis::cmd("HGET").arg(hash("e")).arg(seq(id)).query_async(&mut conn).await.unwrap_or_default();
        assert!(error.contains(&format!("read task {id}")) && error.contains(problem), "task {id}: {error}");
    }
    let counts = ok(backend.queue_counts(Tick::QUEUE).await, "counts").await;
    assert_eq!((counts.pending, counts.running, counts.done, counts.dead), (0, 0, 2, 2), "{counts:?}");
}

/// A running task whose record became unreadable cannot be put back (its
/// job is unknown): a release or a rescue sends it to `dead` saying why,
/// puts the others back, and does not fail.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn running_tasks_with_unreadable_records_are_not_stranded() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.orphan_after(Duration::from_millis(200)));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let mut conn = raw(&url).await;
    let hash = |name: &str| format!("{}{{{}}}:{name}", backend.namespace(), Noop::QUEUE);
    let seq = |id: errand_runtime::TaskId| id.0 & ((1 << 40) - 1);
    let ids = ok(backend.enqueue_bulk((0..4).map(|n| Noop { n })).await, "enqueue").await;

    // Released by a graceful stop.
    let worker = registration("releasing");
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    assert_eq!(ok(backend.claim(&worker, 2).await, "claim").await.tasks.len(), 2);
    let _: i64 =
        redis::cmd("HSET").arg(hash("t")).arg(seq(ids[0])).arg("garbage").query_async(&mut conn).await.unwrap_or(0);
    assert_eq!(ok(backend.release(&worker).await, "release").await, 1, "the readable task is put back");
    // Rescued from a worker that stopped beating.
    let lost = registration("lost");
    ok(backend.heartbeat(&lost).await, "heartbeat").await;
    let claimed = ok(backend.claim(&lost, 2).await, "claim").await;
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[1], ids[2]]);
    let _: i64 =
        redis::cmd("HSET").arg(hash("t")).arg(seq(ids[2])).arg("garbage").query_async(&mut conn).await.unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ok(backend.rescue_orphans().await, "rescue").await, 2);

    for (id, why) in [(ids[0], "released by worker `releasing`"), (ids[2], "worker `lost` stopped heartbeating")] {
        let state: String =
            redis::cmd("HGET").arg(hash("s")).arg(seq(id)).query_async(&mut conn).await.unwrap_or_default();
        assert!(state.starts_with('x'), "task {id} is dead: state `{state}`");
        let error: String =
            redis::cmd("HGET").arg(hash("e")).arg(seq(id)).query_async(&mut conn).await.unwrap_or_default();
        assert!(error.contains(why) && error.contains("record cannot be read"), "task {id}: {error}");
    }
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].pending, counts[0].running, counts[0].dead), (2, 0, 2), "{counts:?}");
}

/// Liveness is judged by the server's clock: a worker on a host whose clock
/// is a minute behind is listed as live by a handle on a correct clock (its
/// last beat is the server's time), and the job it serves counts as served
/// for both.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn workers_are_judged_by_the_servers_clock() {
    use errand_runtime::backend::Clock;

    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let behind = RedisBackend::builder()
        .namespace(backend.namespace())
        .tuning(|t| t.clock(Clock::system().skewed(-60_000)))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    ok(behind.heartbeat(&registration("behind")).await, "heartbeat").await;
    let workers = ok(backend.workers().await, "workers").await;
    assert_eq!(workers.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), vec!["behind"]);
    let off = (workers[0].last_seen.as_millis() - Timestamp::now().as_millis()).abs();
    assert!(off < 5_000, "the last beat is the server's time, {off} ms from this host's");
    assert_eq!(ok(behind.workers().await, "workers").await.len(), 1, "and the skewed handle sees it too");

    ok(backend.enqueue(Noop { n: 1 }).await, "enqueue").await;
    let since = Timestamp::now().sub(Duration::from_secs(5));
    assert!(
        ok(backend.unserved(Noop::QUEUE, since).await, "unserved").await.is_empty(),
        "served, by the server's clock"
    );
    let since = behind.tuning().clock.now().sub(Duration::from_secs(5));
    assert!(ok(behind.unserved(Noop::QUEUE, since).await, "unserved").await.is_empty(), "as the skewed host sees it");
    // Served longer ago than asked: unserved, for both.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let since = Timestamp::now().sub(Duration::from_millis(200));
    let unserved = ok(backend.unserved(Noop::QUEUE, since).await, "unserved").await;
    assert_eq!(unserved.iter().map(|u| (u.job.as_str(), u.count)).collect::<Vec<_>>(), vec![(Noop::NAME, 1)]);
    let since = behind.tuning().clock.now().sub(Duration::from_millis(200));
    assert_eq!(ok(behind.unserved(Noop::QUEUE, since).await, "unserved").await.len(), 1);
    // Burial checks it again, in the same script.
    let recent = Timestamp::now().sub(Duration::from_secs(5));
    let buried =
        ok(backend.bury_unserved(Noop::QUEUE, Noop::NAME, Timestamp::now(), recent, "gone").await, "bury").await;
    assert_eq!(buried, 0, "served since `since`: nothing is buried");
    ok(behind.heartbeat(&registration("behind")).await, "heartbeat").await;
    let buried =
        ok(backend.bury_unserved(Noop::QUEUE, Noop::NAME, Timestamp::now(), since, "gone").await, "bury").await;
    assert_eq!(buried, 0, "a beat from the skewed host counts");
}

/// Retention runs in bounded batches apart from acks: one purge deletes
/// about 5,000 done tasks of a queue, the next call goes on at once (not
/// after the pause between purges), and the last leaves nothing behind.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn purges_run_in_bounded_batches() {
    let url = common::url();
    let builder = common::builder().tuning(|t| t.retention(Duration::from_millis(100)));
    let (backend, _cleanup) = common::backend::<JsonCodec>(builder).await;
    let worker = registration("purged");
    let total = 12_000_u64;
    ok(backend.enqueue_bulk((0..total).map(|n| Noop { n })).await, "enqueue").await;
    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    loop {
        let claimed = ok(backend.claim(&worker, 5_000).await, "claim").await;
        if claimed.tasks.is_empty() {
            break;
        }
        let acks: Vec<Ack> =
            claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Done { result: Vec::new() } }).collect();
        ok(backend.ack(&worker, &acks).await, "ack").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = ok(backend.purge_expired().await, "purge").await;
    assert!((5_000..6_000).contains(&first), "one bounded batch: {first}");
    let mut purged = first;
    for _ in 0..10 {
        let n = ok(backend.purge_expired().await, "purge").await;
        purged += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(purged, total);
    let counts = ok(backend.counts().await, "counts").await;
    assert_eq!((counts[0].done, counts[0].running), (0, 0), "{counts:?}");
    let mut conn = raw(&url).await;
    let hash = |name: &str| format!("{}{{{}}}:{name}", backend.namespace(), Noop::QUEUE);
    for (name, command) in [("t", "HLEN"), ("s", "HLEN"), ("db", "ZCARD"), ("x", "ZCARD")] {
        let n: i64 = redis::cmd(command).arg(hash(name)).query_async(&mut conn).await.unwrap_or(-1);
        assert_eq!(n, 0, "`{name}` is empty");
    }
}

/// Progress is stored only for a task running for the reporting worker
/// (not another worker's, not once acked), kept after the task finished,
/// read back checked (a malformed value is an error naming the task), and
/// deleted by the claim that starts a new attempt.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn progress_is_guarded_read_back_checked_and_cleared_by_a_claim() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let ids = ok(backend.enqueue_bulk((0..2).map(|n| Noop { n })).await, "enqueue").await;
    let (mine, other) = (registration("reporter"), registration("bystander"));
    ok(backend.heartbeat(&mine).await, "heartbeat").await;
    ok(backend.heartbeat(&other).await, "heartbeat").await;
    let claimed = ok(backend.claim(&mine, 2).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 2);
    let progress = |id| {
        let backend = &backend;
        async move { ok(backend.task(id).await, "task").await.and_then(|t| t.progress) }
    };

    let half = Progress::new(50, "half | way");
    ok(backend.record_progress(&mine, &[(ids[0], half.clone())]).await, "progress").await;
    ok(backend.record_progress(&other, &[(ids[1], Progress::new(10, "not mine"))]).await, "progress").await;
    assert_eq!(progress(ids[0]).await, Some(half.clone()));
    assert_eq!(progress(ids[1]).await, None, "another worker's report is ignored");

    ok(backend.ack(&mine, &[Ack { id: ids[0], outcome: Outcome::Done { result: b"0".to_vec() } }]).await, "ack").await;
    ok(backend.record_progress(&mine, &[(ids[0], Progress::new(99, "late"))]).await, "progress").await;
    assert_eq!(progress(ids[0]).await, Some(half), "a report after the ack is ignored; the last one is kept");

    let mut conn = raw(&url).await;
    let hash = format!("{}{{{}}}:g", backend.namespace(), Noop::QUEUE);
    let seq = ids[1].0 & ((1 << 40) - 1);
    for (bad, says) in [("250|x", "`250` is not 0 to 100"), ("no bar", "`no bar` is malformed")] {
        let _: i64 = redis::cmd("HSET").arg(&hash).arg(seq).arg(bad).query_async(&mut conn).await.unwrap_or(0);
        match backend.task(ids[1]).await {
            Err(error) => {
                let message = error.to_string();
                assert!(message.contains(&format!("task {}", ids[1])) && message.contains(says), "{message}");
            }
            Ok(info) => panic!("expected an error, got {info:?}"),
        }
    }
    // A new attempt starts from none: its claim deletes the old progress.
    assert_eq!(ok(backend.release(&mine).await, "release").await, 1);
    let again = ok(backend.claim(&other, 2).await, "claim again").await;
    assert_eq!(again.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert_eq!(progress(ids[1]).await, None);
}

/// A schedule's stored last tick that is not a time in ms is an error
/// naming the schedule, for reading and recording alike (recording writes
/// nothing then); ticks beyond a double's exact range compare exactly.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn schedule_ticks_are_read_back_checked() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let huge = (1_i64 << 53) + 1;
    ok(backend.record_tick("huge", Timestamp(huge - 2)).await, "record").await;
    ok(backend.record_tick("huge", Timestamp(huge)).await, "record").await;
    ok(backend.record_tick("huge", Timestamp(huge - 1)).await, "record").await;
    assert_eq!(ok(backend.last_tick("huge").await, "last tick").await, Some(Timestamp(huge)));
    ok(backend.record_tick("negative", Timestamp(-20)).await, "record").await;
    ok(backend.record_tick("negative", Timestamp(-30)).await, "record").await;
    assert_eq!(ok(backend.last_tick("negative").await, "last tick").await, Some(Timestamp(-20)));

    let mut conn = raw(&url).await;
    let hash = format!("{}{{~}}:schedules", backend.namespace());
    let _: i64 = redis::cmd("HSET").arg(&hash).arg("broken").arg("soon").query_async(&mut conn).await.unwrap_or(0);
    match backend.last_tick("broken").await {
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("schedule `broken`") && message.contains("`soon`"), "{message}");
        }
        Ok(tick) => panic!("expected an error, got {tick:?}"),
    }
    match backend.record_tick("broken", Timestamp(1000)).await {
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("schedule `broken`") && message.contains("`soon`"), "{message}");
        }
        Ok(()) => panic!("recorded a tick over an unreadable one"),
    }
    let stored: String = redis::cmd("HGET").arg(&hash).arg("broken").query_async(&mut conn).await.unwrap_or_default();
    assert_eq!(stored, "soon", "nothing was written");
}

/// A task's trace context is part of its record and comes back with every
/// claim — after a retry, and after a dead task is retried, with or without
/// a unique key — without changing its payload or making the ack read the
/// record of a plain task. A task without one is stored as before trace
/// contexts existed (flags 0, nothing between the job and the payload).
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn trace_contexts_travel_in_the_record() {
    let url = common::url();
    let (backend, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let worker = registration("traced");
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=errand;n=1";
    let now = Timestamp::now();
    let traced = |task: Result<errand_runtime::backend::NewTask, Error>, trace: Option<&str>| {
        let mut task = task.unwrap_or_else(|e| panic!("encode: {e}"));
        task.trace = trace.map(str::to_owned);
        task
    };
    let too_long = "x".repeat(errand_runtime::backend::MAX_TRACE_LEN + 1);
    let tasks = vec![
        traced(Enqueue::new().to_task::<Noop, JsonCodec>(&Noop { n: 1 }, now), Some(trace)),
        traced(Enqueue::new().to_task::<Noop, JsonCodec>(&Noop { n: 2 }, now), None),
        traced(Enqueue::new().unique_key("traced").to_task::<Noop, JsonCodec>(&Noop { n: 3 }, now), Some(trace)),
        traced(Enqueue::new().to_task::<Noop, JsonCodec>(&Noop { n: 4 }, now), Some(&too_long)),
    ];
    let ids = ok(backend.push(tasks).await, "push").await;
    let expected = |id| match ids.iter().position(|i| *i == id) {
        Some(0 | 2) => Some(trace.to_owned()),
        Some(_) => None,
        None => panic!("task {id} was not pushed"),
    };

    let mut conn = raw(&url).await;
    let t = common::key(backend.namespace(), Noop::QUEUE, "t");
    let plain = common::hget(&mut conn, &t, common::seq(ids[1])).await;
    assert_eq!(plain[0], 0, "no flags without a trace context");
    assert_eq!(plain.len(), 25 + Noop::NAME.len() + br#"{"n":2}"#.len(), "nothing between the job and the payload");
    let traced = common::hget(&mut conn, &t, common::seq(ids[0])).await;
    assert_eq!(traced[0], 4, "the trace context flag");

    ok(backend.heartbeat(&worker).await, "heartbeat").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 4);
    for task in &claimed.tasks {
        assert_eq!(task.trace, expected(task.id), "task {}", task.id);
        let n = ids.iter().position(|i| *i == task.id).map_or(0, |p| p + 1);
        assert_eq!(task.payload, format!(r#"{{"n":{n}}}"#).into_bytes(), "the payload of task {}", task.id);
    }
    let special = common::key(backend.namespace(), Noop::QUEUE, "sp:traced");
    let mut special: Vec<u64> = redis::cmd("SMEMBERS").arg(&special).query_async(&mut conn).await.unwrap_or_default();
    special.sort_unstable();
    assert_eq!(special, vec![common::seq(ids[2])], "only the task with a unique key has its record read by the ack");

    let info = ok(backend.task(ids[0]).await, "task").await.unwrap_or_else(|| panic!("task {} is gone", ids[0]));
    assert_eq!(info.payload, br#"{"n":1}"#.to_vec(), "a listing reads the payload after the trace context");

    let acks: Vec<Ack> = claimed
        .tasks
        .iter()
        .map(|t| Ack { id: t.id, outcome: Outcome::Retry { at: Timestamp::now(), error: "again".into() } })
        .collect();
    ok(backend.ack(&worker, &acks).await, "ack").await;
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 4);
    for task in &claimed.tasks {
        assert_eq!((task.attempt, task.trace.clone()), (2, expected(task.id)), "the retry of task {}", task.id);
    }

    let acks: Vec<Ack> =
        claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Dead { error: "dead".into() } }).collect();
    ok(backend.ack(&worker, &acks).await, "ack").await;
    for id in &ids {
        assert!(ok(backend.retry_task(*id).await, "retry").await, "task {id} is retried");
    }
    let claimed = ok(backend.claim(&worker, 10).await, "claim").await;
    assert_eq!(claimed.tasks.len(), 4);
    for task in &claimed.tasks {
        assert_eq!(task.trace, expected(task.id), "task {} retried after it went dead", task.id);
    }
}
