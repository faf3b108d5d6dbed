//! Backend-specific tests: migrations (concurrent, pending, connecting
//! without migrating), connection errors, transactional enqueue, NOTIFY
//! wake-ups and listener reconnects, retention, deleting tasks, stale acks,
//! workflow steps finishing concurrently or acknowledged by another backend
//! value, unreadable rows.
//! Ignored without `ERRAND_POSTGRES_URL` (the build fails instead under
//! `ERRAND_REQUIRE_SERVICES=1`).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use errand_postgres::PostgresBackend;
use errand_postgres::sqlx;
use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::testing::{Running, wait_for};
use errand_runtime::workflow::{Bytes, RunState, StepSpec, StepTask, Workflow, WorkflowExt};
use errand_runtime::{
    Backend, BackendExt, Codec, Enqueue, Expose, Job, JobError, JobOptions, JsonCodec, Monitor, TaskCx, TaskSink,
    TaskState, Timestamp, WorkerBuilder,
};
use serde::{Deserialize, Serialize};

/// Counts its runs in `Data<Runs>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    n: u64,
}

#[derive(Debug, Clone, Default)]
struct Runs(Arc<AtomicU64>);

impl Job for Note {
    const NAME: &'static str = "note";
    const QUEUE: &'static str = "notes";
    type Output = u64;

    fn requirements(r: &mut errand_runtime::Requirements) {
        r.data::<Runs>();
    }

    async fn run(self, cx: TaskCx) -> Result<u64, JobError> {
        if let Some(runs) = cx.data::<Runs>() {
            runs.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(self.n * 2)
    }
}

fn worker(backend: &PostgresBackend, runs: &Runs) -> WorkerBuilder<Note, PostgresBackend> {
    WorkerBuilder::<Note, _>::new(backend.clone()).data(runs.clone()).heartbeat(Duration::from_millis(200))
}

async fn state(backend: &PostgresBackend, id: errand_runtime::TaskId) -> Option<TaskState> {
    backend.task(id).await.ok().flatten().map(|t| t.state)
}

fn registration(id: &str) -> WorkerRegistration {
    WorkerRegistration {
        id: Arc::from(id),
        queue: Arc::from(Note::QUEUE),
        job: Note::NAME,
        concurrency: 1,
        started_at: Timestamp::now(),
        workflow_steps: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn concurrent_migrations_are_safe() {
    let url = common::url();
    let schema = common::fresh_schema();
    let connects = (0..4).map(|_| {
        let (url, schema) = (url.clone(), schema.clone());
        async move { PostgresBackend::builder().namespace(schema).connect(&url).await }
    });
    let results = futures_join_all(connects).await;
    for result in &results {
        if let Err(e) = result {
            panic!("a concurrent connect failed: {e}");
        }
    }
    let backend = results.into_iter().next().and_then(Result::ok).unwrap_or_else(|| unreachable!());
    let versions: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".migrations"))
        .fetch_one(backend.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(versions, 8, "each migration is recorded once");
    backend.migrate().await.unwrap_or_else(|e| panic!("migrate again: {e}"));
    common::drop_schema(&backend).await;
}

/// `.migrate(false)` connects without creating anything, and
/// `pending_migrations` names what `migrate` would apply: every migration on
/// a fresh schema, none once migrated, the missing ones of a schema that is
/// behind; a schema migrated by a newer errand is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn pending_migrations_are_listed_without_migrating() {
    let url = common::url();
    let schema = common::fresh_schema();
    let _drop = common::DropSchema { url: url.clone(), schema: schema.clone() };
    let backend = PostgresBackend::builder()
        .namespace(&schema)
        .migrate(false)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect without migrating: {e}"));
    let pending = backend.pending_migrations().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pending.len(), 8, "every migration is pending on a fresh schema: {pending:?}");
    assert_eq!(pending.first().map(String::as_str), Some("0001_create_tasks"));
    assert_eq!(pending.get(5).map(String::as_str), Some("0006_progress_pauses_schedules"));
    assert_eq!(pending.get(6).map(String::as_str), Some("0007_run_listing"));
    assert_eq!(pending.last().map(String::as_str), Some("0008_trace_context"));
    let exists = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";
    let created: bool =
        sqlx::query_scalar(exists).bind(&schema).fetch_one(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!created, "connecting with migrate(false), or listing pending migrations, created the schema");
    assert!(backend.counts().await.is_err(), "an unmigrated schema has no tables");

    backend.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
    assert_eq!(backend.pending_migrations().await.unwrap_or_else(|e| panic!("{e}")), Vec::<String>::new());
    assert!(backend.counts().await.is_ok());
    // Another value with migrate(false) on the current schema works as usual.
    let again = PostgresBackend::builder()
        .namespace(&schema)
        .migrate(false)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.pending_migrations().await.unwrap_or_else(|e| panic!("{e}")).is_empty());

    // A schema one migration behind (as its record says).
    let forget = format!("DELETE FROM \"{schema}\".migrations WHERE version = 8");
    sqlx::query(&forget).execute(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.pending_migrations().await.unwrap_or_else(|e| panic!("{e}")), ["0008_trace_context"]);
    // A schema migrated by a newer errand.
    let newer = format!(
        "INSERT INTO \"{schema}\".migrations (version, description, checksum, applied_at) VALUES (99, 'future', 'x', 0)"
    );
    sqlx::query(&newer).execute(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    match backend.pending_migrations().await {
        Err(errand_runtime::Error::Schema(message)) => assert!(message.contains("99"), "{message}"),
        other => panic!("a newer schema was not refused: {other:?}"),
    }
}

/// `delete_task` takes the row, so a unique key it held is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn deleting_a_task_frees_its_unique_key() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let _drop = common::DropSchema::of(&url, &backend);
    let unique = || Enqueue::new().unique_key("once").unique_for(Duration::from_secs(3600));
    let first = backend.enqueue_with(Note { n: 1 }, unique()).await.unwrap_or_else(|e| panic!("{e}"));
    let reg = registration("delete-worker");
    backend.heartbeat(&reg).await.unwrap_or_else(|e| panic!("{e}"));
    let claimed = backend.claim(&reg, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), [first]);
    assert!(!backend.delete_task(first).await.unwrap_or_else(|e| panic!("{e}")), "a running task was deleted");
    let dead = [Ack { id: first, outcome: Outcome::Dead { error: "gone".into() } }];
    backend.ack(&reg, &dead).await.unwrap_or_else(|e| panic!("{e}"));
    let same = backend.enqueue_with(Note { n: 2 }, unique()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(same, first, "the key is taken within its window");
    assert!(backend.delete_task(first).await.unwrap_or_else(|e| panic!("{e}")));
    let second = backend.enqueue_with(Note { n: 3 }, unique()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(second, first, "the deleted task still held its key");
    assert!(!backend.delete_task(errand_runtime::TaskId(u64::MAX)).await.unwrap_or_else(|e| panic!("{e}")));
}

/// Every way of enqueueing stores the task's trace context, and every claim
/// hands it back: one task (`push_one.sql`), a small batch (`UNNEST`),
/// unique keys, a batch large enough for `COPY`, and `push_in` inside the
/// caller's transaction; a task without one has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn every_enqueue_path_stores_the_trace_context() {
    use errand_runtime::backend::NewTask;
    use errand_runtime::capability::Transactional;

    let url = common::url();
    let backend = common::backend(&url).await;
    let _drop = common::DropSchema::of(&url, &backend);
    let task = |n: u64, trace: Option<String>, key: Option<&str>| -> NewTask {
        let mut task = Enqueue::new()
            .to_task::<Note, errand_runtime::JsonCodec>(&Note { n }, Timestamp::now())
            .unwrap_or_else(|e| panic!("{e}"));
        task.unique_key = key.map(str::to_owned);
        task.trace = trace;
        task
    };
    let context = |n: u64| Some(format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{n:016x}-01\nvendor=errand;n={n}"));
    let mut expected: Vec<(errand_runtime::TaskId, Option<String>)> = Vec::new();
    let mut push = async |tasks: Vec<NewTask>| {
        let traces: Vec<Option<String>> = tasks.iter().map(|t| t.trace.clone()).collect();
        let ids = backend.push(tasks).await.unwrap_or_else(|e| panic!("{e}"));
        expected.extend(ids.into_iter().zip(traces));
    };
    // One task, traced and not.
    push(vec![task(1, context(1), None)]).await;
    push(vec![task(2, None, None)]).await;
    // A batch below COPY's size.
    push(vec![task(3, context(3), None), task(4, None, None), task(5, context(5), None)]).await;
    // Unique keys.
    push(vec![task(6, context(6), Some("u6")), task(7, None, Some("u7"))]).await;
    // COPY: a traced task every other one.
    push((10..310).map(|n| task(n, (n % 2 == 0).then(|| context(n)).flatten(), None)).collect()).await;
    // Inside the caller's transaction, one and several.
    let mut tx = backend.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    for tasks in [vec![task(400, context(400), None)], vec![task(401, context(401), None), task(402, None, None)]] {
        let traces: Vec<Option<String>> = tasks.iter().map(|t| t.trace.clone()).collect();
        let ids = backend.push_in(&mut tx, tasks).await.unwrap_or_else(|e| panic!("{e}"));
        expected.extend(ids.into_iter().zip(traces));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let reg = registration("trace-worker");
    backend.heartbeat(&reg).await.unwrap_or_else(|e| panic!("{e}"));
    let mut claimed = std::collections::HashMap::new();
    loop {
        let batch = backend.claim(&reg, 100).await.unwrap_or_else(|e| panic!("{e}"));
        if batch.tasks.is_empty() {
            break;
        }
        claimed.extend(batch.tasks.into_iter().map(|t| (t.id, t.trace)));
    }
    assert_eq!(claimed.len(), expected.len(), "every task was claimed once");
    for (id, trace) in &expected {
        assert_eq!(claimed.get(id), Some(trace), "the trace context of task {id}");
    }
    assert_eq!(expected.iter().filter(|(_, t)| t.is_some()).count(), 156, "traced tasks");
}

/// Runs futures concurrently (no futures crate needed).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn bad_urls_give_clear_errors() {
    let url = common::url();
    let bad_user = url.replacen("postgres://", "postgres://errand_nobody:s3cr3t-pw@", 1);
    let bad_user = match bad_user.split_once('@') {
        // `postgres://errand_nobody:pw@postgres@host/db` → drop the original user.
        Some((head, tail)) if tail.contains('@') => format!("{head}@{}", tail.split_once('@').map_or(tail, |t| t.1)),
        _ => bad_user,
    };
    let err = PostgresBackend::connect(&bad_user).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("connect to `postgres://errand_nobody:***@"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "the password leaked: {err}");

    let (base, _db) = url.rsplit_once('/').unwrap_or((&url, ""));
    let missing = format!("{base}/errand_no_such_database");
    let err = PostgresBackend::connect(&missing).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("errand_no_such_database") && err.contains("does not exist"), "{err}");

    let err = PostgresBackend::connect("mysql://localhost/db").await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("not a PostgreSQL URL"), "{err}");
    let err = PostgresBackend::builder().namespace("Robert'); DROP TABLE").connect(&url).await.err();
    assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("invalid schema name"));
    let pool = common::pool(&url).await;
    let err = PostgresBackend::builder().namespace("Robert'); DROP TABLE").from_pool(pool).err();
    assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("invalid schema name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn transactional_enqueue_commits_or_rolls_back() {
    let url = common::url();
    let backend = common::backend(&url).await;

    let mut tx = backend.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let rolled = backend.enqueue_in(&mut tx, Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    tx.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(backend.task(rolled).await.unwrap_or_else(|e| panic!("{e}")).is_none(), "rolled back, yet it exists");

    let mut tx = backend.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let opts = Enqueue::new().unique_key("tx-key");
    let kept = backend.enqueue_with_in(&mut tx, Note { n: 2 }, opts.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let again = backend.enqueue_with_in(&mut tx, Note { n: 3 }, opts).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept, again, "a unique key dedupes inside the transaction too");
    // Not visible outside before the commit.
    assert!(backend.task(kept).await.unwrap_or_else(|e| panic!("{e}")).is_none());
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state(&backend, kept).await, Some(TaskState::Pending));
    common::drop_schema(&backend).await;
}

/// A worker in another backend value (its own pool and listener, as another
/// process would have) is woken by NOTIFY well before its 60 s poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn notify_wakes_a_worker_and_survives_a_listener_restart() {
    let url = common::url();
    let producer = common::backend(&url).await;
    let consumer = common::attach(&url, &producer, |b| b.tuning(|t| t.poll_interval(Duration::from_secs(60)))).await;
    let runs = Runs::default();
    let running = Running::start(Monitor::new().register(worker(&consumer, &runs)));
    // Let the worker go idle (its first claim finds nothing) and the listener start.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let id = producer.enqueue(Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    wait_for("the notified worker to run the task", || async { state(&producer, id).await == Some(TaskState::Done) })
        .await;
    assert!(started.elapsed() < Duration::from_secs(20), "woken by the poll, not by NOTIFY");

    // Kill the listener's server connection; the listener reconnects.
    let listen = format!("LISTEN \"{}\"", consumer.channel());
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&listen)
    .fetch_all(producer.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(killed, vec![true], "exactly one listener connection for the consumer's pool and its worker");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let id = producer.enqueue(Note { n: 2 }).await.unwrap_or_else(|e| panic!("{e}"));
    wait_for("the worker to run a task enqueued after the reconnect", || async {
        state(&producer, id).await == Some(TaskState::Done)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(20), "not woken after the listener reconnected");
    running.stop().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.0.load(Ordering::SeqCst), 2);
    common::drop_schema(&producer).await;
}

/// A lone enqueue NOTIFYs inside its own statement; one that starts while
/// another is in flight leaves it to the announcing task after its commit.
/// Other processes hear both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn lone_and_concurrent_enqueues_both_notify() {
    let url = common::url();
    let producer = common::backend(&url).await;
    let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    listener.listen(producer.channel()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut heard = async |n: usize| {
        let mut payloads = Vec::new();
        while payloads.len() < n {
            match tokio::time::timeout(Duration::from_secs(5), listener.recv()).await {
                Ok(Ok(notification)) => payloads.push(notification.payload().to_owned()),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => break,
            }
        }
        payloads
    };

    producer.enqueue(Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(heard(1).await, vec![Note::QUEUE.to_owned()], "a lone enqueue");
    // The second starts while the first waits for the server.
    let (a, b) = tokio::join!(producer.enqueue(Note { n: 2 }), producer.enqueue(Note { n: 3 }));
    a.and(b).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(heard(2).await, vec![Note::QUEUE.to_owned(); 2], "two concurrent enqueues");
    common::drop_schema(&producer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn retention_deletes_old_done_tasks_only() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b.tuning(|t| t.retention(Duration::from_millis(1)))).await;
    let _drop = common::DropSchema::of(&url, &backend);
    let ids = backend.enqueue_bulk((0..30).map(|n| Note { n })).await.unwrap_or_else(|e| panic!("{e}"));
    let reg = registration("retention-worker");
    backend.heartbeat(&reg).await.unwrap_or_else(|e| panic!("{e}"));
    let claimed = backend.claim(&reg, 30).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.tasks.len(), 30);
    let acks: Vec<Ack> = claimed
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| Ack {
            id: t.id,
            outcome: if i < 20 {
                Outcome::Done { result: b"0".to_vec() }
            } else {
                Outcome::Dead { error: "kept".into() }
            },
        })
        .collect();
    backend.ack(&reg, &acks).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Orphan rescue does no retention work (it must stay quick)…
    backend.rescue_orphans().await.unwrap_or_else(|e| panic!("{e}"));
    let counts = backend.queue_counts(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((counts.done, counts.dead), (20, 10), "rescue deleted finished tasks: {counts:?}");
    // …`purge_expired` does, on a fresh backend value at once.
    let other = PostgresBackend::builder()
        .namespace(backend.namespace())
        .tuning(|t| t.retention(Duration::from_millis(1)))
        .from_pool(backend.pool().clone())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.purge_expired().await.unwrap_or_else(|e| panic!("{e}")), 20);
    let counts = backend.queue_counts(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((counts.done, counts.dead), (0, 10), "{counts:?}");
    assert!(backend.task(ids[0]).await.unwrap_or_else(|e| panic!("{e}")).is_none() || counts.done == 0);

    // With the default retention nothing young is deleted.
    let keep = common::backend(&url).await;
    let _drop_keep = common::DropSchema::of(&url, &keep);
    let id = keep.enqueue(Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    let claimed = keep.claim(&reg, 1).await.unwrap_or_else(|e| panic!("{e}"));
    keep.heartbeat(&reg).await.unwrap_or_else(|e| panic!("{e}"));
    let done = [Ack { id: claimed.tasks[0].id, outcome: Outcome::Done { result: b"2".to_vec() } }];
    keep.ack(&reg, &done).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keep.cleanup().await.unwrap_or_else(|e| panic!("{e}")), 0);
    assert_eq!(keep.purge_expired().await.unwrap_or_else(|e| panic!("{e}")), 0);
    assert_eq!(state(&keep, id).await, Some(TaskState::Done));
    common::drop_schema(&backend).await;
    common::drop_schema(&keep).await;
}

/// A large bulk enqueue goes through `COPY` in chunks of 10,000, inside one
/// transaction: every id names its own task, ids ascend in input order, and
/// the tasks run like any others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn bulk_enqueue_by_copy_keeps_ids_in_order() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let ids = backend.enqueue_bulk((0..25_000).map(|n| Note { n })).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids.len(), 25_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids must ascend in input order");
    for i in [0_usize, 1, 9_999, 10_000, 17_321, 24_999] {
        let task =
            backend.task(ids[i]).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("no task {i}"));
        let note: Note = JsonCodec::decode(&task.payload, "payload").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(note.n, i as u64, "id {} holds another task's arguments", ids[i]);
        assert_eq!((task.state, task.queue.as_str(), task.job.as_str()), (TaskState::Pending, "notes", "note"));
    }
    let counts = backend.queue_counts(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.pending, 25_000, "{counts:?}");
    // A later single enqueue takes an id after them.
    let next = backend.enqueue(Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(next > ids[24_999]);
    common::drop_schema(&backend).await;
}

/// The backend vacuums its tasks table after every `vacuum_every` finished
/// tasks, so claims never walk a growing heap of dead index entries, and
/// leaves it alone with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn acks_vacuum_the_tasks_table() {
    let url = common::url();
    let vacuums = |backend: PostgresBackend| async move {
        let sql = "SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'tasks'";
        sqlx::query_scalar::<_, i64>(sql)
            .bind(backend.namespace())
            .fetch_one(backend.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for (every, expect_vacuum) in [(40, true), (0, false)] {
        let backend = common::backend_with(&url, |b| b.vacuum_every(every)).await;
        backend.enqueue_bulk((0..200).map(|n| Note { n })).await.unwrap_or_else(|e| panic!("{e}"));
        let runs = Runs::default();
        let running = Running::start(Monitor::new().register(worker(&backend, &runs).concurrency(8)));
        wait_for("200 runs", || async { runs.0.load(Ordering::SeqCst) == 200 }).await;
        running.stop().await.unwrap_or_else(|e| panic!("{e}"));
        if expect_vacuum {
            wait_for("a VACUUM of the tasks table", || {
                let backend = backend.clone();
                async move { vacuums(backend).await > 0 }
            })
            .await;
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(vacuums(backend.clone()).await, 0, "vacuum_every(0) vacuumed");
        }
        common::drop_schema(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn stale_acks_are_ignored() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b.tuning(|t| t.orphan_after(Duration::from_millis(200)))).await;
    let id = backend.enqueue(Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    let slow = registration("slow-worker");
    backend.heartbeat(&slow).await.unwrap_or_else(|e| panic!("{e}"));
    let claimed = backend.claim(&slow, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.tasks.len(), 1);
    assert_eq!(claimed.tasks[0].attempt, 1);

    // The slow worker misses its heartbeats; another rescues and runs the task.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fast = registration("fast-worker");
    backend.heartbeat(&fast).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.rescue_orphans().await.unwrap_or_else(|e| panic!("{e}")), 1);
    let again = backend.claim(&fast, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.tasks.len(), 1);
    assert_eq!(again.tasks[0].attempt, 2);

    // The slow worker's late ack changes nothing…
    let late = [Ack { id, outcome: Outcome::Dead { error: "late".into() } }];
    backend.ack(&slow, &late).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state(&backend, id).await, Some(TaskState::Running));
    // …the owner's ack counts.
    let ack = [Ack { id, outcome: Outcome::Done { result: serde_json::to_vec(&2u64).unwrap_or_default() } }];
    backend.ack(&fast, &ack).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.result::<Note>(id).await.unwrap_or_else(|e| panic!("{e}")), Some(2));

    // Nothing claimable: the claim reports the next due time of a delayed task.
    let later = backend
        .enqueue_with(Note { n: 3 }, Enqueue::new().delay(Duration::from_secs(60)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let empty = backend.claim(&fast, 4).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(empty.tasks.is_empty());
    let info = backend.task(later).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("missing"));
    assert_eq!(empty.next_due, Some(info.run_at));
    common::drop_schema(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn unique_keys_race_free_across_backends() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let others: Vec<PostgresBackend> = (0..4)
        .map(|_| {
            PostgresBackend::builder()
                .namespace(backend.namespace())
                .from_pool(backend.pool().clone())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let enqueues = others.into_iter().enumerate().map(|(n, b)| async move {
        b.enqueue_with(Note { n: n as u64 }, Enqueue::new().unique_key("race").unique_for(Duration::from_secs(60)))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let ids = futures_join_all(enqueues).await;
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "racing enqueues created several tasks: {ids:?}");
    // Within one bulk, too.
    let bulk = backend
        .push(vec![
            Enqueue::new()
                .unique_key("b")
                .to_task::<Note, errand_runtime::JsonCodec>(&Note { n: 1 }, Timestamp::now())
                .unwrap_or_else(|e| panic!("{e}")),
            Enqueue::new()
                .to_task::<Note, errand_runtime::JsonCodec>(&Note { n: 2 }, Timestamp::now())
                .unwrap_or_else(|e| panic!("{e}")),
            Enqueue::new()
                .unique_key("b")
                .to_task::<Note, errand_runtime::JsonCodec>(&Note { n: 3 }, Timestamp::now())
                .unwrap_or_else(|e| panic!("{e}")),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bulk[0], bulk[2]);
    assert!(bulk[1] > bulk[0]);
    common::drop_schema(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn listing_by_state_across_queues() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let mut ids = Vec::new();
    for (n, queue) in ["a", "b", "c", "a", "b"].into_iter().enumerate() {
        ids.push(
            backend
                .enqueue_with(Note { n: n as u64 }, Enqueue::new().queue(queue))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    assert!(backend.cancel_task(ids[1]).await.unwrap_or_else(|e| panic!("{e}")));
    assert!(backend.cancel_task(ids[3]).await.unwrap_or_else(|e| panic!("{e}")));
    let filter =
        |after| errand_runtime::TaskFilter { state: Some(TaskState::Pending), limit: 2, after, ..Default::default() };
    let page = backend.tasks(&filter(None)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0], ids[2]]);
    let page = backend.tasks(&filter(Some(ids[2]))).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[4]]);
    let all = backend.tasks(&errand_runtime::TaskFilter::default()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 5);
    let counts = backend.counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.iter().map(|c| c.queue.as_str()).collect::<Vec<_>>(), vec!["a", "b", "c"]);
    common::drop_schema(&backend).await;
}

/// Per-run counters of the `Racing` workflow, keyed by its input.
#[derive(Debug, Clone, Default)]
struct Race {
    /// Branch steps (left, right) that reached the finish line, per run.
    arrived: Arc<std::sync::Mutex<std::collections::HashMap<u64, u32>>>,
    /// Runs of the join step, per run.
    joins: Arc<std::sync::Mutex<std::collections::HashMap<u64, u32>>>,
    /// The workers the two branches of each run ran on.
    branch_workers: Arc<std::sync::Mutex<std::collections::HashMap<u64, Vec<String>>>>,
}

/// split(n) → [left(n), right(n)] → join: the two branches wait for each
/// other (up to 300 ms) so they finish, and are acknowledged, at once.
/// Each worker runs one task at a time, so two branches running together are
/// on two workers, whose acks are two transactions.
#[derive(Debug)]
struct Racing(u64);

fn race_step(name: &str, after: &[u16]) -> StepSpec {
    StepSpec { name: name.into(), after: after.to_vec(), max_attempts: 1, priority: 0 }
}

fn race_input<C: Codec>(inputs: &[Bytes], i: usize) -> Result<u64, JobError> {
    let bytes = inputs.get(i).ok_or_else(|| JobError::abort(format!("missing input {i}")))?;
    C::decode(&bytes.0, "a step input").map_err(JobError::abort)
}

impl Workflow for Racing {
    const NAME: &'static str = "pg_racing";
    const QUEUE: &'static str = "pg_wf";
    type Input = u64;
    type Output = u64;

    fn steps() -> Vec<StepSpec> {
        vec![race_step("split", &[]), race_step("left", &[0]), race_step("right", &[0]), race_step("join", &[1, 2])]
    }

    fn into_input(self) -> u64 {
        self.0
    }

    fn step_options(_step: u16) -> JobOptions {
        JobOptions { retries: 0, ..JobOptions::DEFAULT }
    }

    fn requirements(r: &mut errand_runtime::Requirements) {
        r.data::<Race>();
    }

    async fn run_step<C: Codec>(step: u16, inputs: Vec<Bytes>, cx: TaskCx) -> Result<Vec<u8>, JobError> {
        let race = cx.data::<Race>().ok_or_else(|| JobError::abort("no Data<Race>"))?;
        let n = race_input::<C>(&inputs, 0)?;
        let out = match step {
            0 => n,
            1 | 2 => {
                race.branch_workers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(n)
                    .or_default()
                    .push(cx.worker().id().to_owned());
                *race.arrived.lock().unwrap_or_else(PoisonError::into_inner).entry(n).or_default() += 1;
                let deadline = Instant::now() + Duration::from_millis(300);
                while race.arrived.lock().unwrap_or_else(PoisonError::into_inner).get(&n).copied() < Some(2)
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                n * 10 + u64::from(step)
            }
            3 => {
                *race.joins.lock().unwrap_or_else(PoisonError::into_inner).entry(n / 10).or_default() += 1;
                n + race_input::<C>(&inputs, 1)?
            }
            _ => return Err(JobError::abort("no such step")),
        };
        C::encode(&out, "a step output").map_err(JobError::abort)
    }

    fn decode_output<C: Codec>(sinks: Vec<Vec<u8>>) -> Result<u64, errand_runtime::CodecError> {
        C::decode(sinks.first().map_or(&[][..], |b| b), "the output of pg_racing")
    }
}

/// Sibling steps finishing at once are acknowledged by parallel transactions
/// (eight single-slot workers on two backend values, as two processes): every
/// join still runs exactly once, and each run has exactly its four tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn sibling_steps_finishing_at_once_enqueue_their_join_once() {
    let url = common::url();
    let poll = |b: errand_postgres::PostgresBuilder| b.tuning(|t| t.poll_interval(Duration::from_millis(200)));
    let a = common::backend_with(&url, poll).await;
    let b = common::attach(&url, &a, poll).await;
    let race = Race::default();
    let workers = |backend: &PostgresBackend| {
        WorkerBuilder::<StepTask<Racing, JsonCodec>, _>::new(backend.clone())
            .data(race.clone())
            .concurrency(1)
            .heartbeat(Duration::from_millis(200))
    };
    let mut monitor = Monitor::new();
    for _ in 0..4 {
        monitor = monitor.register(workers(&a)).register(workers(&b));
    }
    let running = Running::start(monitor);
    const RUNS: u64 = 30;
    let mut runs = Vec::new();
    for n in 1..=RUNS {
        runs.push((n, a.start(Racing(n)).await.unwrap_or_else(|e| panic!("start: {e}"))));
    }
    for (n, run) in &runs {
        let output = tokio::time::timeout(Duration::from_secs(60), a.workflow(*run).wait())
            .await
            .unwrap_or_else(|_| panic!("run {n} timed out: {:?}", race.joins.lock().map(|j| j.len())))
            .unwrap_or_else(|e| panic!("run {n}: {e}"));
        assert_eq!(output, (n * 10 + 1) + (n * 10 + 2), "run {n}");
    }
    running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    let joins = race.joins.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let apart = race
        .branch_workers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .filter(|w| w.len() == 2 && w[0] != w[1])
        .count();
    assert!(apart >= 20, "only {apart} of {RUNS} runs had their branches on two workers");
    for n in 1..=RUNS {
        assert_eq!(joins.get(&n), Some(&1), "the join of run {n} must run exactly once: {joins:?}");
    }
    let sql =
        format!("SELECT run_id, count(*) FROM \"{}\".tasks WHERE run_id IS NOT NULL GROUP BY run_id", a.namespace());
    let counts: Vec<(i64, i64)> = sqlx::query_as(&sql).fetch_all(a.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.len(), runs.len());
    assert!(counts.iter().all(|(_, c)| *c == 4), "each run has exactly four step tasks: {counts:?}");
    for (_, run) in &runs {
        let status = a.workflow(*run).status().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.state, RunState::Done);
        assert!(status.steps.iter().all(|s| s.state == Some(TaskState::Done) && s.attempt == 1), "{status:?}");
    }
    common::drop_schema(&a).await;
}

/// A worker of `pg_racing`'s steps, as the runtime registers it.
fn step_worker(id: &str) -> WorkerRegistration {
    WorkerRegistration {
        id: Arc::from(id),
        queue: Arc::from(Racing::QUEUE),
        job: Racing::NAME,
        concurrency: 4,
        started_at: Timestamp::now(),
        workflow_steps: true,
    }
}

fn done(id: errand_runtime::TaskId, output: u64) -> Ack {
    Ack { id, outcome: Outcome::Done { result: serde_json::to_vec(&output).unwrap_or_default() } }
}

/// Claims up to `max` due step tasks of `pg_racing` for `worker`, by step.
async fn claim_steps(
    backend: &PostgresBackend,
    worker: &WorkerRegistration,
    max: usize,
) -> Vec<(u16, errand_runtime::TaskId)> {
    let claimed = backend.claim(worker, max).await.unwrap_or_else(|e| panic!("{e}"));
    claimed
        .tasks
        .iter()
        .map(|t| {
            let payload: errand_runtime::workflow::StepPayload =
                JsonCodec::decode(&t.payload, "a step payload").unwrap_or_else(|e| panic!("{e}"));
            (payload.step, t.id)
        })
        .collect()
}

/// Step acks advance their runs whichever backend value (another process)
/// sends them: nothing is remembered from the claim. An ack sent again
/// changes nothing; a dead step fails its run and cancels its running
/// sibling, whose worker is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn step_acks_advance_runs_from_any_backend_value() {
    let url = common::url();
    let a = common::backend(&url).await;
    let _drop = common::DropSchema::of(&url, &a);
    let b = common::attach(&url, &a, |b| b).await;
    let w1 = step_worker("step-worker-1");
    let w2 = step_worker("step-worker-2");

    // A run that succeeds: split claimed through `a`, acked through `b`.
    let run = a.start(Racing(5)).await.unwrap_or_else(|e| panic!("{e}"));
    let split = claim_steps(&a, &w1, 10).await;
    assert_eq!(split.iter().map(|s| s.0).collect::<Vec<_>>(), [0]);
    let split_done = [done(split[0].1, 5)];
    b.ack(&w1, &split_done).await.unwrap_or_else(|e| panic!("{e}"));
    // Sent again (a lost reply): nothing changes, nothing is enqueued twice.
    b.ack(&w1, &split_done).await.unwrap_or_else(|e| panic!("{e}"));
    let branches = claim_steps(&b, &w2, 10).await;
    let mut steps: Vec<u16> = branches.iter().map(|s| s.0).collect();
    steps.sort_unstable();
    assert_eq!(steps, [1, 2], "both branches, once each");
    // Both branches in one batch: the join is enqueued once.
    let acks: Vec<Ack> = branches.iter().map(|(step, id)| done(*id, 50 + u64::from(*step))).collect();
    a.ack(&w2, &acks).await.unwrap_or_else(|e| panic!("{e}"));
    let join = claim_steps(&a, &w1, 10).await;
    assert_eq!(join.iter().map(|s| s.0).collect::<Vec<_>>(), [3]);
    b.ack(&w1, &[done(join[0].1, 42)]).await.unwrap_or_else(|e| panic!("{e}"));
    let output = a.workflow(run).wait_timeout(Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output, 42);
    let status = a.workflow(run).status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.state, RunState::Done);
    assert_eq!(status.steps[1].output.as_deref(), Some(&b"51"[..]));

    // A run that fails: `right` dies while `left` runs for another worker.
    let run = a.start(Racing(6)).await.unwrap_or_else(|e| panic!("{e}"));
    let split = claim_steps(&a, &w1, 10).await;
    a.ack(&w1, &[done(split[0].1, 6)]).await.unwrap_or_else(|e| panic!("{e}"));
    let first = claim_steps(&b, &w1, 1).await;
    let [(step, id)] = first[..] else { panic!("expected one branch claimed, got {first:?}") };
    let rest = claim_steps(&b, &w2, 10).await;
    assert_eq!(rest.iter().map(|s| s.0).collect::<Vec<_>>(), [3 - step], "the other branch");
    let dead = [Ack { id, outcome: Outcome::Dead { error: "card declined".into() } }];
    b.ack(&w1, &dead).await.unwrap_or_else(|e| panic!("{e}"));
    let status = a.workflow(run).status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.state, RunState::Failed);
    let name = if step == 1 { "left" } else { "right" };
    assert_eq!(status.error.as_deref(), Some(format!("step `{name}` failed: card declined").as_str()));
    let sibling = &status.steps[if step == 1 { 2 } else { 1 }];
    assert_eq!(sibling.state, Some(TaskState::Cancelled), "{status:?}");
    let told = a.cancelled_tasks(&w2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Some(told), sibling.task.map(|t| vec![t]), "the sibling's worker is told");
    assert_eq!(status.steps[3].state, None, "the join is never enqueued");
    common::drop_schema(&a).await;
}

/// Claimed tasks whose rows cannot be read (written by hand with SQL: a
/// negative `max_attempts`, a negative `attempt`) go dead with the read
/// error; a row with a state this version does not know is never claimed;
/// the claim still delivers the others, and the next claims go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn unreadable_claimed_rows_go_dead() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let _drop = common::DropSchema::of(&url, &backend);
    let schema = backend.namespace().to_owned();
    let bad = backend.enqueue(Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    let good = backend.enqueue(Note { n: 2 }).await.unwrap_or_else(|e| panic!("{e}"));
    let negative = backend.enqueue(Note { n: 3 }).await.unwrap_or_else(|e| panic!("{e}"));
    let zombie = backend.enqueue(Note { n: 4 }).await.unwrap_or_else(|e| panic!("{e}"));
    let later = backend.enqueue(Note { n: 5 }).await.unwrap_or_else(|e| panic!("{e}"));
    let raw = |id: errand_runtime::TaskId| i64::try_from(id.0).unwrap_or(i64::MAX);
    for (sql, id) in [
        (format!("UPDATE \"{schema}\".tasks SET max_attempts = -1 WHERE id = $1"), bad),
        (format!("UPDATE \"{schema}\".tasks SET attempt = -5 WHERE id = $1"), negative),
        (format!("UPDATE \"{schema}\".tasks SET state = 'zombie' WHERE id = $1"), zombie),
    ] {
        sqlx::query(&sql).bind(raw(id)).execute(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let worker = registration("reader");
    let claimed = backend.claim(&worker, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![good]);
    let claimed = backend.claim(&worker, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![later], "claims go on");
    // The rows stay unreadable (for `Expose` too): look at them with SQL.
    let sql = format!("SELECT state, last_error FROM \"{schema}\".tasks WHERE id = $1");
    for (id, column) in [(bad, "max_attempts"), (negative, "attempt")] {
        let (state, error): (String, Option<String>) =
            sqlx::query_as(&sql).bind(raw(id)).fetch_one(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state, "dead", "task {id}");
        let error = error.unwrap_or_default();
        assert!(error.contains(&format!("task {id}")) && error.contains(column), "{error}");
    }
    let (state, error): (String, Option<String>) =
        sqlx::query_as(&sql).bind(raw(zombie)).fetch_one(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((state.as_str(), error), ("zombie", None), "a row of an unknown state is left alone");
    let read = backend.task(zombie).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(read.contains(&format!("task {zombie}")) && read.contains("zombie"), "{read}");
}

/// A workflow step whose row cannot be read is buried at its claim, and its
/// run fails with the read error in the same transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn an_unreadable_step_fails_its_run() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let _drop = common::DropSchema::of(&url, &backend);
    let run = backend.start(Racing(3)).await.unwrap_or_else(|e| panic!("{e}"));
    let status = backend.workflow(run).status().await.unwrap_or_else(|e| panic!("{e}"));
    let entry = status.steps[0].task.unwrap_or_else(|| panic!("no entry task: {status:?}"));
    let sql = format!("UPDATE \"{}\".tasks SET attempt = -5 WHERE id = $1", backend.namespace());
    sqlx::query(&sql)
        .bind(i64::try_from(entry.0).unwrap_or(i64::MAX))
        .execute(backend.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = claim_steps(&backend, &step_worker("step-reader"), 10).await;
    assert!(claimed.is_empty(), "an unreadable step was delivered: {claimed:?}");
    let status = backend.workflow(run).status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.state, RunState::Failed);
    let error = status.error.unwrap_or_default();
    assert!(error.contains("split") && error.contains("attempt"), "{error}");
}

/// `served_jobs` records when each job was last served on each queue, by the
/// server's clock, past the workers' own rows: handles whose clocks are a
/// minute ahead or behind agree with a correct one on which jobs are served,
/// a burial through any of them leaves a served job alone, and a job stays
/// served after its worker's release until `since` passes its last beat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn served_jobs_are_judged_by_the_server_clock() {
    use errand_runtime::backend::Clock;
    let url = common::url();
    let right = common::backend(&url).await;
    let _drop = common::DropSchema::of(&url, &right);
    let ahead = common::attach(&url, &right, |b| b.tuning(|t| t.clock(Clock::system().skewed(60_000)))).await;
    let behind = common::attach(&url, &right, |b| b.tuning(|t| t.clock(Clock::system().skewed(-60_000)))).await;
    let handles = [("right", &right), ("ahead", &ahead), ("behind", &behind)];
    let waiting = right.enqueue_bulk((0..3).map(|n| Note { n })).await.unwrap_or_else(|e| panic!("{e}"));
    let stray =
        right.enqueue_with(Note { n: 9 }, Enqueue::new().queue("elsewhere")).await.unwrap_or_else(|e| panic!("{e}"));
    let worker = registration("served-worker");
    right.heartbeat(&worker).await.unwrap_or_else(|e| panic!("{e}"));

    for (name, handle) in handles {
        let now = handle.tuning().clock.now();
        let since = now.sub(Duration::from_secs(5));
        let unserved = handle.unserved(Note::QUEUE, since).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(unserved.is_empty(), "{name}: a job that beat just now is unserved: {unserved:?}");
        // The same job on a queue where no worker of it ever beat is unserved.
        let other = handle.unserved("elsewhere", since).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.iter().map(|u| (u.job.as_str(), u.count)).collect::<Vec<_>>(), [(Note::NAME, 1)], "{name}");
        let due = now.add(Duration::from_secs(120));
        let buried = handle.bury_unserved(Note::QUEUE, Note::NAME, due, since, "gone").await;
        assert_eq!(buried.unwrap_or_else(|e| panic!("{e}")), 0, "{name}: a served job was buried");
    }
    for id in &waiting {
        assert_eq!(state(&right, *id).await, Some(TaskState::Pending));
    }

    // Released, the worker is gone, but its job was served until now.
    right.release(&worker).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(right.workers().await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    let since = right.tuning().clock.now().sub(Duration::from_secs(5));
    assert!(right.unserved(Note::QUEUE, since).await.unwrap_or_else(|e| panic!("{e}")).is_empty());

    // Once `since` is after its last beat, the job is unserved for every handle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, handle) in handles {
        let since = handle.tuning().clock.now().sub(Duration::from_millis(100));
        let unserved = handle.unserved(Note::QUEUE, since).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unserved.iter().map(|u| (u.job.as_str(), u.count)).collect::<Vec<_>>(),
            [(Note::NAME, 3)],
            "{name}: the job has not beaten for 300 ms"
        );
    }
    // A burial through the handle whose clock is behind buries them.
    let now = behind.tuning().clock.now();
    let buried = behind
        .bury_unserved(
            Note::QUEUE,
            Note::NAME,
            now.add(Duration::from_secs(120)),
            now.sub(Duration::from_millis(100)),
            "gone",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(buried, 3);
    for id in &waiting {
        let task = right.task(*id).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{id} is gone"));
        assert_eq!((task.state, task.last_error.as_deref()), (TaskState::Dead, Some("gone")));
    }
    assert_eq!(state(&right, stray).await, Some(TaskState::Pending), "another queue's task was buried");
}

/// A burial waits for a heartbeat of the job in flight (the heartbeat holds
/// the job's `served_jobs` row), then sees it and buries nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn a_burial_sees_a_heartbeat_that_commits_meanwhile() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let _drop = common::DropSchema::of(&url, &backend);
    let id = backend.enqueue(Note { n: 1 }).await.unwrap_or_else(|e| panic!("{e}"));
    let worker = registration("late-worker");
    backend.heartbeat(&worker).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A beat of the job, in a transaction that has not committed yet.
    let mut beat = backend.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let sql = format!(
        "UPDATE \"{}\".served_jobs SET last_seen = (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
         WHERE queue = $1 AND job = $2",
        backend.namespace()
    );
    sqlx::query(&sql).bind(Note::QUEUE).bind(Note::NAME).execute(&mut *beat).await.unwrap_or_else(|e| panic!("{e}"));
    let now = backend.tuning().clock.now();
    let since = now.sub(Duration::from_millis(100));
    let burial = {
        let backend = backend.clone();
        tokio::spawn(async move {
            backend.bury_unserved(Note::QUEUE, Note::NAME, now.add(Duration::from_secs(60)), since, "gone").await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!burial.is_finished(), "the burial did not wait for the heartbeat's row lock");
    beat.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let buried = burial.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(buried, 0, "a job that beat while the burial waited was buried");
    assert_eq!(state(&backend, id).await, Some(TaskState::Pending));
}

/// Retention of runs: finished runs (done or failed) past the retention go
/// with their `run_steps` rows, `done` step tasks with the tasks' own
/// retention; a dead step task is kept (and `delete_task` refuses it while
/// its run exists, takes it once the run is gone), and a running run is
/// never deleted.
/// Each step's output is stored once, in `run_steps`: not again as its task's
/// result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn finished_runs_go_with_their_steps_and_outputs_are_stored_once() {
    let url = common::url();
    let a = common::backend_with(&url, |b| b.tuning(|t| t.retention(Duration::from_millis(200)))).await;
    let _drop = common::DropSchema::of(&url, &a);
    let schema = a.namespace().to_owned();
    let w = step_worker("retention-step-worker");

    // A run that succeeds.
    let done_run = a.start(Racing(7)).await.unwrap_or_else(|e| panic!("{e}"));
    let split = claim_steps(&a, &w, 10).await;
    a.ack(&w, &[done(split[0].1, 7)]).await.unwrap_or_else(|e| panic!("{e}"));
    let branches = claim_steps(&a, &w, 10).await;
    let acks: Vec<Ack> = branches.iter().map(|(step, id)| done(*id, 70 + u64::from(*step))).collect();
    a.ack(&w, &acks).await.unwrap_or_else(|e| panic!("{e}"));
    let join = claim_steps(&a, &w, 10).await;
    a.ack(&w, &[done(join[0].1, 143)]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.workflow(done_run).wait_timeout(Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}")), 143);
    let status = a.workflow(done_run).status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.steps[0].output.as_deref(), Some(&b"7"[..]), "outputs are read from run_steps");
    assert_eq!(status.steps[3].output.as_deref(), Some(&b"143"[..]));
    let sql = format!("SELECT count(*) FROM \"{schema}\".tasks WHERE run_id IS NOT NULL AND result IS NOT NULL");
    let stored_twice: i64 = sqlx::query_scalar(&sql).fetch_one(a.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored_twice, 0, "step outputs were stored again as their tasks' results");

    // A run that fails: its entry step dies.
    let failed_run = a.start(Racing(8)).await.unwrap_or_else(|e| panic!("{e}"));
    let split = claim_steps(&a, &w, 10).await;
    let dead_step = split[0].1;
    a.ack(&w, &[Ack { id: dead_step, outcome: Outcome::Dead { error: "no".into() } }])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!a.delete_task(dead_step).await.unwrap_or_else(|e| panic!("{e}")), "a step task went without its run");
    // A run still running.
    let live_run = a.start(Racing(9)).await.unwrap_or_else(|e| panic!("{e}"));

    tokio::time::sleep(Duration::from_millis(400)).await;
    let purged = a.cleanup().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(purged, 4, "the done run's four step tasks");
    for run in [done_run, failed_run] {
        match a.workflow(run).status().await {
            Err(errand_runtime::Error::RunNotFound { .. }) => {}
            other => panic!("a finished run outlived its retention: {other:?}"),
        }
    }
    let sql = format!("SELECT count(*) FROM \"{schema}\".run_steps WHERE run_id <> $1");
    let live = i64::try_from(live_run.id().0).unwrap_or(i64::MAX);
    let left: i64 = sqlx::query_scalar(&sql).bind(live).fetch_one(a.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left, 0, "the run_steps rows of deleted runs are left");
    assert_eq!(state(&a, dead_step).await, Some(TaskState::Dead), "a dead step task is kept");
    // Once its run is gone, it is a finished task like any other.
    assert!(a.delete_task(dead_step).await.unwrap_or_else(|e| panic!("{e}")), "an orphaned step task was kept");
    assert_eq!(state(&a, dead_step).await, None);
    let status = a.workflow(live_run).status().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.state, RunState::Running, "a running run is kept");
}
