//! SQLite-specific behaviour beyond the shared conformance suite.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use errand_runtime::backend::{Ack, NewTask, Outcome, WorkerRegistration};
use errand_runtime::capability::{Schedules, Transactional};
use errand_runtime::workflow::{NewRun, RunId, RunInfo, RunState, StepSpec, WorkflowStore};
use errand_runtime::{
    Backend, Enqueue, Error, Expose, Job, JobError, Progress, TaskCx, TaskFilter, TaskId, TaskInfo, TaskSink,
    TaskState, Timestamp,
};
use errand_sqlite::SqliteBackend;
use errand_sqlite::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use errand_sqlite::sqlx::{self, Connection, Row};
use tempfile::TempDir;

struct Db {
    dir: TempDir,
    backend: SqliteBackend,
}

impl Db {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = SqliteBackend::connect(&Self::url_in(&dir)).await.expect("connect");
        Self { dir, backend }
    }

    fn url_in(dir: &TempDir) -> String {
        format!("sqlite://{}", dir.path().join("jobs.db").display())
    }

    fn url(&self) -> String {
        Self::url_in(&self.dir)
    }

    async fn exec(&self, statement: &str) {
        sqlx::query(statement).execute(self.backend.pool()).await.expect(statement);
    }
}

fn task(payload: &str) -> NewTask {
    NewTask {
        job: "job",
        queue: "q".to_owned(),
        payload: payload.as_bytes().to_vec(),
        run_at: Timestamp::now(),
        priority: 0,
        max_attempts: 3,
        unique_key: None,
        unique_for: None,
        trace: None,
    }
}

fn worker(id: &str) -> WorkerRegistration {
    WorkerRegistration {
        id: Arc::from(id),
        queue: Arc::from("q"),
        job: "job",
        concurrency: 4,
        started_at: Timestamp::now(),
        workflow_steps: false,
    }
}

async fn push_one(backend: &SqliteBackend, task: NewTask) -> TaskId {
    backend.push(vec![task]).await.expect("push")[0]
}

async fn state(backend: &SqliteBackend, id: TaskId) -> TaskState {
    backend.task(id).await.expect("read task").expect("task exists").state
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Signup {
    email: String,
}

impl Job for Signup {
    const NAME: &'static str = "signup";
    const QUEUE: &'static str = "mail";
    type Output = ();
    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Ok(())
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reconnects() {
    let db = Db::new().await;
    let id = push_one(&db.backend, task("kept")).await;
    db.backend.migrate().await.expect("migrate again");

    let again = SqliteBackend::connect(&db.url()).await.expect("connect a second time");
    let info = again.task(id).await.expect("read").expect("task survives");
    assert_eq!(info.payload, b"kept");
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM errand_migrations ORDER BY version")
        .fetch_all(again.pool())
        .await
        .expect("list migrations");
    assert_eq!(applied, vec![1, 2, 3, 4, 5, 6], "each migration is recorded once");
}

#[tokio::test]
async fn a_database_from_a_newer_errand_is_refused() {
    let db = Db::new().await;
    db.exec(
        "INSERT INTO errand_migrations (version, description, checksum, applied_at) VALUES (999, 'future', 'x', 0)",
    )
    .await;
    let err = SqliteBackend::connect(&db.url()).await.expect_err("newer schema");
    let message = err.to_string();
    assert!(matches!(err, Error::Schema(_)), "{message}");
    assert!(message.contains("999") && message.contains("upgrade errand"), "{message}");
}

/// The tables whose names start with `errand_`.
async fn errand_tables(backend: &SqliteBackend) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'errand%' ORDER BY name")
        .fetch_all(backend.pool())
        .await
        .expect("list tables")
}

#[tokio::test]
async fn without_migrating_nothing_is_created_and_every_migration_is_pending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = Db::url_in(&dir);
    let fresh = SqliteBackend::builder().migrate(false).connect(&url).await.expect("connect without migrating");
    let all = [
        "0001_create_tasks",
        "0002_workflows",
        "0003_served_retention_counts",
        "0004_progress_pause_schedules",
        "0005_trace",
        "0006_claim_token",
    ];
    assert_eq!(fresh.pending_migrations().await.expect("pending"), all, "a fresh database");
    assert!(errand_tables(&fresh).await.is_empty(), "neither connecting nor checking creates tables");
    let err = fresh.counts().await.expect_err("no tables yet");
    assert!(err.to_string().contains("no such table"), "{err}");

    fresh.migrate().await.expect("migrate");
    assert!(fresh.pending_migrations().await.expect("pending").is_empty(), "a current database");
    let reopened = SqliteBackend::builder().migrate(false).connect(&url).await.expect("connect again");
    assert!(reopened.pending_migrations().await.expect("pending").is_empty());
    assert!(reopened.counts().await.expect("counts").is_empty());

    // A database part of the way there (migrated by an older errand).
    sqlx::query("DELETE FROM errand_migrations WHERE version >= 3").execute(fresh.pool()).await.expect("forget");
    assert_eq!(reopened.pending_migrations().await.expect("pending"), &all[2..]);

    // One migrated by a newer errand is reported, as `connect` reports it.
    sqlx::query(
        "INSERT INTO errand_migrations (version, description, checksum, applied_at) VALUES (999, 'future', 'x', 0)",
    )
    .execute(fresh.pool())
    .await
    .expect("record a future migration");
    let err = reopened.pending_migrations().await.expect_err("newer schema");
    assert!(matches!(err, Error::Schema(_)) && err.to_string().contains("999"), "{err}");
}

#[tokio::test]
async fn malformed_urls_are_config_errors_naming_the_url() {
    for url in ["postgres://localhost/db", "jobs.db", "sqlite://", "sqlite:"] {
        let err = SqliteBackend::connect(url).await.expect_err(url);
        assert!(matches!(err, Error::Config(_)), "{url}: {err}");
        assert!(err.to_string().contains(&format!("`{url}`")), "{url}: {err}");
    }
    let err = SqliteBackend::connect("sqlite://jobs.db?mode=sideways").await.expect_err("bad mode");
    assert!(err.to_string().contains("sideways"), "{err}");
}

#[tokio::test]
async fn an_unopenable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no/such/dir/jobs.db");
    let err = SqliteBackend::connect(&format!("sqlite://{}", path.display())).await.expect_err("missing dir");
    let message = err.to_string();
    assert!(matches!(err, Error::Backend(_)), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are not the pages you are looking for\n".repeat(100)).expect("write file");
    let err = SqliteBackend::connect(&format!("sqlite:{}", path.display())).await.expect_err("not a database");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("not a SQLite database"), "{message}");
}

#[tokio::test]
async fn in_memory_databases_work_and_are_separate() {
    let a = SqliteBackend::connect("sqlite::memory:").await.expect("memory a");
    let b = SqliteBackend::connect("sqlite::memory:").await.expect("memory b");
    let id = push_one(&a, task("x")).await;
    assert!(a.task(id).await.expect("read").is_some());
    assert!(b.task(id).await.expect("read").is_none());
    let claimed = a.claim(&worker("w"), 10).await.expect("claim");
    assert_eq!(claimed.tasks.len(), 1);
}

#[tokio::test]
async fn bulk_push_returns_ids_in_input_order_across_statements() {
    let db = Db::new().await;
    // More than one insert statement's worth (10,000 rows each).
    let tasks: Vec<NewTask> = (0..25_000).map(|i| task(&format!("payload {i}"))).collect();
    let ids = db.backend.push(tasks).await.expect("bulk push");
    assert_eq!(ids.len(), 25_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend in input order");
    for i in [0_usize, 1, 9_999, 10_000, 19_999, 20_000, 24_999] {
        let info = db.backend.task(ids[i]).await.expect("read").expect("exists");
        assert_eq!(info.payload, format!("payload {i}").into_bytes(), "task #{i}");
        assert_eq!(info.state, TaskState::Pending);
    }
    let counts = db.backend.counts().await.expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].pending, 25_000);
}

/// A trace context with a `tracestate`, as an enqueue in a traced span stores it.
const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=\"x\";k=v";

fn traced(payload: &str, trace: &str) -> NewTask {
    NewTask { trace: Some(trace.to_owned()), ..task(payload) }
}

/// Claims every due task of `w` and returns each one's payload and trace.
async fn claimed_traces(backend: &SqliteBackend, w: &WorkerRegistration) -> Vec<(String, Option<String>)> {
    let claimed = backend.claim(w, 100).await.expect("claim");
    let mut found: Vec<(String, Option<String>)> =
        claimed.tasks.into_iter().map(|t| (String::from_utf8(t.payload).expect("utf-8"), t.trace)).collect();
    found.sort();
    found
}

#[tokio::test]
async fn every_push_path_stores_the_trace_context() {
    let db = Db::new().await;
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    // One span's bulk enqueue (`push_uniform.sql`: payloads only travel).
    db.backend.push(vec![traced("u1", TRACE), traced("u2", TRACE)]).await.expect("uniform push");
    // Tasks that differ (`push.sql`), a context each or none.
    db.backend.push(vec![traced("m1", TRACE), traced("m2", other), task("m3")]).await.expect("mixed push");
    // A unique key (`push_one.sql`), and a duplicate of it that keeps the first one's context.
    let keyed = |payload: &str, trace: &str| NewTask { unique_key: Some("k".to_owned()), ..traced(payload, trace) };
    let first = push_one(&db.backend, keyed("k1", TRACE)).await;
    assert_eq!(push_one(&db.backend, keyed("k2", other)).await, first, "deduplicated");
    // Inside the caller's transaction.
    let mut conn = db.backend.pool().acquire().await.expect("acquire");
    let mut tx = conn.begin().await.expect("begin");
    db.backend.push_in(&mut tx, vec![traced("t1", other)]).await.expect("push_in");
    db.backend.push_in(&mut tx, vec![traced("t2", TRACE), traced("t3", TRACE)]).await.expect("push_in");
    tx.commit().await.expect("commit");
    drop(conn);

    let w = worker("w");
    db.backend.heartbeat(&w).await.expect("beat");
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        claimed_traces(&db.backend, &w).await,
        [
            ("k1".to_owned(), some(TRACE)),
            ("m1".to_owned(), some(TRACE)),
            ("m2".to_owned(), some(other)),
            ("m3".to_owned(), None),
            ("t1".to_owned(), some(other)),
            ("t2".to_owned(), some(TRACE)),
            ("t3".to_owned(), some(TRACE)),
            ("u1".to_owned(), some(TRACE)),
            ("u2".to_owned(), some(TRACE)),
        ]
    );
}

#[tokio::test]
async fn a_database_migrated_before_trace_contexts_gets_the_columns_and_keeps_its_tasks() {
    let db = Db::new().await;
    // As errand left it before migration 5: no `trace` columns, no record of it.
    db.exec("ALTER TABLE errand_tasks DROP COLUMN trace").await;
    db.exec("ALTER TABLE errand_runs DROP COLUMN trace").await;
    db.exec("DELETE FROM errand_migrations WHERE version = 5").await;
    db.exec(
        "INSERT INTO errand_tasks (queue, job, state, payload, max_attempts, priority, run_at, created_at) \
         VALUES ('q', 'job', 'pending', x'6f6c64', 3, 0, 0, 0)",
    )
    .await;
    let old = SqliteBackend::builder().migrate(false).connect(&db.url()).await.expect("connect without migrating");
    assert_eq!(old.pending_migrations().await.expect("pending"), ["0005_trace"]);

    let upgraded = SqliteBackend::connect(&db.url()).await.expect("connect and migrate");
    assert!(upgraded.pending_migrations().await.expect("pending").is_empty());
    upgraded.push(vec![traced("new", TRACE)]).await.expect("push");
    let w = worker("w");
    upgraded.heartbeat(&w).await.expect("beat");
    assert_eq!(
        claimed_traces(&upgraded, &w).await,
        [("new".to_owned(), Some(TRACE.to_owned())), ("old".to_owned(), None)]
    );
}

#[tokio::test]
async fn binary_payloads_and_odd_names_round_trip() {
    let db = Db::new().await;
    let payload: Vec<u8> = (0..=255).collect();
    let odd = "q \"quoted\" \\ back\nslash ' drop table; é";
    let mut t = task("");
    t.payload = payload.clone();
    t.queue = odd.to_owned();
    let mut empty = task("");
    empty.queue = odd.to_owned();
    let ids = db.backend.push(vec![t, empty]).await.expect("push");
    let info = db.backend.task(ids[0]).await.expect("read").expect("exists");
    assert_eq!(info.payload, payload);
    assert_eq!(info.queue, odd);
    assert!(db.backend.task(ids[1]).await.expect("read").expect("exists").payload.is_empty());

    let mut w = worker("w");
    w.queue = Arc::from(odd);
    let claimed = db.backend.claim(&w, 10).await.expect("claim");
    assert_eq!(claimed.tasks.len(), 2);
    let acks = vec![
        Ack { id: ids[0], outcome: Outcome::Done { result: vec![0, 1, 2, 255] } },
        Ack { id: ids[1], outcome: Outcome::Dead { error: "quote \" and newline \n kept".to_owned() } },
    ];
    db.backend.ack(&w, &acks).await.expect("ack");
    let done = db.backend.task(ids[0]).await.expect("read").expect("exists");
    assert_eq!((done.state, done.result), (TaskState::Done, Some(vec![0, 1, 2, 255])));
    let dead = db.backend.task(ids[1]).await.expect("read").expect("exists");
    assert_eq!(dead.state, TaskState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("quote \" and newline \n kept"));
}

#[tokio::test]
async fn claims_go_by_priority_then_run_at_then_id() {
    let db = Db::new().await;
    let now = Timestamp::now();
    let at = |ms: i64, priority: i16, name: &str| NewTask {
        run_at: Timestamp(now.as_millis() - ms),
        priority,
        ..task(name)
    };
    db.backend
        .push(vec![
            at(3_000, 0, "low, older"),
            at(1_000, 5, "high, newer"),
            at(2_000, 5, "high, older"),
            at(4_000, 0, "low, oldest"),
            at(1_000, 5, "high, newer, second"),
            at(-60_000, 9, "highest, but not due"),
        ])
        .await
        .expect("push");
    let w = worker("w");
    let first = db.backend.claim(&w, 2).await.expect("claim");
    let second = db.backend.claim(&w, 10).await.expect("claim");
    let order: Vec<String> =
        first.tasks.iter().chain(&second.tasks).map(|t| String::from_utf8(t.payload.clone()).expect("utf-8")).collect();
    assert_eq!(order, ["high, older", "high, newer", "high, newer, second", "low, oldest", "low, older"]);
    assert!(first.tasks.iter().chain(&second.tasks).all(|t| t.attempt == 1));

    let empty = db.backend.claim(&w, 10).await.expect("claim");
    assert!(empty.tasks.is_empty());
    assert_eq!(empty.next_due, Some(Timestamp(now.as_millis() + 60_000)), "the not-yet-due task");
}

#[tokio::test]
async fn the_claim_uses_the_partial_index_of_waiting_tasks() {
    let db = Db::new().await;
    let plan = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", include_str!("../sql/claim.sql")))
        .bind("w")
        .bind(0_i64)
        .bind("q")
        .bind("job")
        .bind(10_i64)
        .fetch_all(db.backend.pool())
        .await
        .expect("explain");
    let plan: Vec<String> = plan.iter().map(|row| row.get::<String, _>(3)).collect();
    assert!(plan.iter().any(|step| step.contains("errand_tasks_claim")), "{plan:#?}");
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "claims must not sort: {plan:#?}");
}

#[tokio::test]
async fn unique_keys_dedupe_live_tasks_and_windows_cover_finished_ones() {
    let db = Db::new().await;
    let unique = |key: &str, window: Option<Duration>| NewTask {
        unique_key: Some(key.to_owned()),
        unique_for: window,
        ..task(key)
    };
    let first = push_one(&db.backend, unique("k", None)).await;
    // Within one batch as well as across calls.
    let batch = db.backend.push(vec![unique("k", None), unique("other", None), unique("other", None)]).await;
    let batch = batch.expect("push");
    assert_eq!(batch[0], first);
    assert_eq!(batch[1], batch[2]);
    assert_ne!(batch[1], first);

    let w = worker("w");
    db.backend.heartbeat(&w).await.expect("beat");
    let claimed = db.backend.claim(&w, 10).await.expect("claim");
    let acks: Vec<Ack> =
        claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Done { result: Vec::new() } }).collect();
    db.backend.ack(&w, &acks).await.expect("ack");
    assert_eq!(state(&db.backend, first).await, TaskState::Done);

    // Finished: a window still covers it; without one a new task is made.
    assert_eq!(push_one(&db.backend, unique("k", Some(Duration::from_secs(3600)))).await, first);
    let fresh = push_one(&db.backend, unique("k", None)).await;
    assert_ne!(fresh, first);
    assert_eq!(push_one(&db.backend, unique("k", None)).await, fresh);
}

#[tokio::test]
async fn transactional_enqueue_exists_only_if_the_transaction_commits() {
    let db = Db::new().await;
    db.exec("CREATE TABLE users (email TEXT NOT NULL)").await;

    // The application's own pool on the same file.
    let app = sqlx::SqlitePool::connect(&db.url()).await.expect("app pool");
    let mut tx = app.begin().await.expect("begin");
    sqlx::query("INSERT INTO users (email) VALUES ('a@b.c')").execute(&mut *tx).await.expect("insert user");
    let kept = db.backend.enqueue_in(&mut tx, Signup { email: "a@b.c".into() }).await.expect("enqueue_in");
    tx.commit().await.expect("commit");

    let mut tx = app.begin().await.expect("begin");
    let options = Enqueue::new().priority(3).delay(Duration::from_secs(60));
    let dropped = db.backend.enqueue_with_in(&mut tx, Signup { email: "x@y.z".into() }, options).await;
    let dropped = dropped.expect("enqueue_with_in");
    // Visible inside the transaction, with its options…
    let (priority, queue): (i64, String) = sqlx::query_as("SELECT priority, queue FROM errand_tasks WHERE id = ?")
        .bind(i64::try_from(dropped.0).expect("id"))
        .fetch_one(&mut *tx)
        .await
        .expect("read inside");
    assert_eq!((priority, queue.as_str()), (3, "mail"));
    tx.rollback().await.expect("rollback");
    drop(app);

    let info = db.backend.task(kept).await.expect("read").expect("committed task exists");
    assert_eq!((info.job.as_str(), info.queue.as_str(), info.state), ("signup", "mail", TaskState::Pending));
    assert!(db.backend.task(dropped).await.expect("read").is_none(), "rolled-back task does not exist");

    // Also on the backend's own writer connection.
    let mut conn = db.backend.pool().acquire().await.expect("acquire");
    let mut tx = conn.begin().await.expect("begin");
    let id = db.backend.enqueue_in(&mut tx, Signup { email: "c@d.e".into() }).await.expect("enqueue_in");
    tx.commit().await.expect("commit");
    drop(conn);
    assert!(db.backend.task(id).await.expect("read").is_some());
}

#[tokio::test]
async fn stale_acks_after_release_or_cancel_are_ignored() {
    let db = Db::new().await;
    let ids = db.backend.push(vec![task("a"), task("b")]).await.expect("push");
    let a = worker("a");
    db.backend.heartbeat(&a).await.expect("beat");
    assert_eq!(db.backend.claim(&a, 10).await.expect("claim").tasks.len(), 2);

    assert_eq!(db.backend.release(&a).await.expect("release"), 2);
    let info = db.backend.task(ids[0]).await.expect("read").expect("exists");
    assert_eq!((info.state, info.attempt, info.worker), (TaskState::Pending, 0, None));
    assert!(db.backend.workers().await.expect("workers").is_empty(), "release deregisters");

    // b claims them; a's late acks change nothing.
    let b = worker("b");
    db.backend.heartbeat(&b).await.expect("beat");
    assert_eq!(db.backend.claim(&b, 1).await.expect("claim").tasks[0].id, ids[0]);
    let late = [
        Ack { id: ids[0], outcome: Outcome::Done { result: b"late".to_vec() } },
        Ack { id: ids[1], outcome: Outcome::Dead { error: "late".into() } },
    ];
    db.backend.ack(&a, &late).await.expect("stale ack is not an error");
    let info = db.backend.task(ids[0]).await.expect("read").expect("exists");
    assert_eq!((info.state, info.worker.as_deref(), info.attempt), (TaskState::Running, Some("b"), 1));
    assert_eq!(state(&db.backend, ids[1]).await, TaskState::Pending);

    // Cancelled while running: the owner's ack is ignored too.
    assert!(db.backend.cancel_task(ids[0]).await.expect("cancel"));
    assert_eq!(db.backend.cancelled_tasks(&b).await.expect("cancelled runs"), [ids[0]], "b is told");
    assert!(db.backend.cancelled_tasks(&a).await.expect("cancelled runs").is_empty());
    let ack = [Ack { id: ids[0], outcome: Outcome::Retry { at: Timestamp::now(), error: "x".into() } }];
    db.backend.ack(&b, &ack).await.expect("ack");
    assert_eq!(state(&db.backend, ids[0]).await, TaskState::Cancelled);
    assert!(db.backend.cancelled_tasks(&b).await.expect("cancelled runs").is_empty(), "finished runs are forgotten");
}

#[tokio::test]
async fn mixed_acks_apply_each_outcome() {
    let db = Db::new().await;
    let ids = db.backend.push(vec![task("done"), task("retry"), task("dead"), task("snooze")]).await.expect("push");
    let w = worker("w");
    db.backend.heartbeat(&w).await.expect("beat");
    assert_eq!(db.backend.claim(&w, 10).await.expect("claim").tasks.len(), 4);
    let later = Timestamp(Timestamp::now().as_millis() + 60_000);
    let acks = [
        Ack { id: ids[0], outcome: Outcome::Done { result: b"ok".to_vec() } },
        Ack { id: ids[1], outcome: Outcome::Retry { at: later, error: "try again".into() } },
        Ack { id: ids[2], outcome: Outcome::Dead { error: "gave up".into() } },
        Ack { id: ids[3], outcome: Outcome::Snooze { at: later } },
    ];
    db.backend.ack(&w, &acks).await.expect("ack");
    let info = |i: usize| {
        let backend = db.backend.clone();
        let id = ids[i];
        async move { backend.task(id).await.expect("read").expect("exists") }
    };
    let done = info(0).await;
    assert_eq!((done.state, done.result.as_deref()), (TaskState::Done, Some(&b"ok"[..])));
    assert!(done.finished_at.is_some() && done.worker.is_none());
    let retry = info(1).await;
    assert_eq!((retry.state, retry.run_at, retry.attempt), (TaskState::Retry, later, 1));
    assert_eq!(retry.last_error.as_deref(), Some("try again"));
    let dead = info(2).await;
    assert_eq!((dead.state, dead.last_error.as_deref()), (TaskState::Dead, Some("gave up")));
    let snoozed = info(3).await;
    assert_eq!((snoozed.state, snoozed.run_at, snoozed.attempt), (TaskState::Pending, later, 0));
}

#[tokio::test]
async fn a_dead_workers_tasks_are_rescued_and_dead_on_their_last_attempt() {
    let db = Db::new().await;
    let backend = SqliteBackend::builder()
        .tuning(|t| t.orphan_after(Duration::from_millis(200)))
        .connect(&db.url())
        .await
        .expect("connect with a short orphan_after");
    let last = NewTask { max_attempts: 1, ..task("last attempt") };
    let ids = backend.push(vec![task("more attempts"), last]).await.expect("push");
    let lost = worker("lost-worker");
    backend.heartbeat(&lost).await.expect("beat");
    assert_eq!(backend.claim(&lost, 10).await.expect("claim").tasks.len(), 2);
    assert_eq!(backend.rescue_orphans().await.expect("rescue"), 0, "the worker is still live");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let live = worker("live-worker");
    backend.heartbeat(&live).await.expect("beat");
    assert_eq!(backend.rescue_orphans().await.expect("rescue"), 2);

    let again = backend.task(ids[0]).await.expect("read").expect("exists");
    assert_eq!((again.state, again.attempt, again.worker), (TaskState::Pending, 1, None));
    let dead = backend.task(ids[1]).await.expect("read").expect("exists");
    assert_eq!(dead.state, TaskState::Dead);
    let error = dead.last_error.unwrap_or_default();
    assert!(error.contains("lost-worker") && error.contains("stopped heartbeating during the last attempt"), "{error}");

    let workers = backend.workers().await.expect("workers");
    assert_eq!(workers.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["live-worker"]);
    let lost_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM errand_workers WHERE id = 'lost-worker'")
        .fetch_one(backend.pool())
        .await
        .expect("count");
    assert_eq!(lost_rows, 0, "stale worker rows are deleted");
    // The rescued task runs again (attempt 2) for a live worker.
    let claimed = backend.claim(&live, 10).await.expect("claim");
    assert_eq!(claimed.tasks.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(), [(ids[0], 2)]);
}

#[tokio::test]
async fn undecodable_rows_are_errors_naming_the_task() {
    let db = Db::new().await;
    let ids = db.backend.push(vec![task("a"), task("b"), task("c")]).await.expect("push");
    db.exec(&format!("UPDATE errand_tasks SET state = 'paused' WHERE id = {}", ids[0])).await;
    let err = db.backend.task(ids[0]).await.expect_err("unknown state");
    let message = err.to_string();
    assert!(message.contains(&format!("task {}", ids[0])) && message.contains("paused"), "{message}");
    assert!(db.backend.tasks(&TaskFilter::default()).await.is_err());
    let err = db.backend.counts().await.expect_err("unknown state in counts");
    assert!(err.to_string().contains("paused"), "{err}");
    db.exec(&format!("UPDATE errand_tasks SET state = 'cancelled' WHERE id = {}", ids[0])).await;

    db.exec(&format!("UPDATE errand_tasks SET max_attempts = -2 WHERE id = {}", ids[1])).await;
    let err = db.backend.task(ids[1]).await.expect_err("negative max_attempts");
    let message = err.to_string();
    assert!(message.contains(&format!("task {}", ids[1])) && message.contains("max_attempts"), "{message}");

    // A claimed row that cannot be read goes dead; the readable ones are returned.
    let w = worker("w");
    let claimed = db.backend.claim(&w, 10).await.expect("claim keeps going");
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[2]]);
    db.exec(&format!("UPDATE errand_tasks SET max_attempts = 3 WHERE id = {}", ids[1])).await;
    let info = db.backend.task(ids[1]).await.expect("read").expect("exists");
    assert_eq!(info.state, TaskState::Dead);
    assert!(info.last_error.unwrap_or_default().contains("max_attempts"));
}

#[tokio::test]
async fn progress_lands_only_on_its_workers_running_task_and_a_claim_clears_it() {
    let db = Db::new().await;
    let ids = db.backend.push(vec![task("a"), task("b")]).await.expect("push");
    let (a, b) = (worker("a"), worker("b"));
    assert_eq!(db.backend.claim(&a, 1).await.expect("claim").tasks[0].id, ids[0]);
    let updates = [
        (ids[0], Progress::new(10, "first")),
        (ids[1], Progress::new(50, "not claimed")),
        (ids[0], Progress::new(20, "latest")),
    ];
    db.backend.record_progress(&a, &updates).await.expect("record");
    db.backend.record_progress(&b, &[(ids[0], Progress::new(90, "not b's"))]).await.expect("record");
    let backend = &db.backend;
    let progress = |id| async move { backend.task(id).await.expect("read").expect("exists").progress };
    assert_eq!(progress(ids[0]).await, Some(Progress::new(20, "latest")), "the batch's last report wins");
    assert_eq!(progress(ids[1]).await, None, "a pending task takes no report");
    let listed = db.backend.tasks(&TaskFilter::default()).await.expect("list");
    assert_eq!(listed[0].progress, Some(Progress::new(20, "latest")), "listings carry progress");

    // Released and claimed again: the new attempt starts from none.
    db.backend.release(&a).await.expect("release");
    let claimed = db.backend.claim(&b, 2).await.expect("claim");
    assert_eq!(claimed.tasks.len(), 2);
    assert_eq!(progress(ids[0]).await, None);

    // A value no `Progress` holds is an error naming the task.
    db.exec(&format!("UPDATE errand_tasks SET progress_percent = 150 WHERE id = {}", ids[1])).await;
    let err = db.backend.task(ids[1]).await.expect_err("out of range");
    let message = err.to_string();
    assert!(message.contains(&format!("task {}", ids[1])) && message.contains("progress_percent"), "{message}");
}

#[tokio::test]
async fn a_paused_queue_claims_nothing_and_stays_paused_across_reconnects() {
    let db = Db::new().await;
    let mut later = task("later");
    later.run_at = Timestamp::now().add(Duration::from_secs(3600));
    db.backend.push(vec![task("now"), later]).await.expect("push");
    db.backend.pause_queue("q").await.expect("pause");
    let w = worker("w");
    let claimed = db.backend.claim(&w, 10).await.expect("claim");
    assert!(claimed.tasks.is_empty() && claimed.next_due.is_none(), "{claimed:?}");

    let again = SqliteBackend::connect(&db.url()).await.expect("reconnect");
    assert!(again.claim(&w, 10).await.expect("claim").tasks.is_empty(), "the pause is stored");
    let counts = again.counts().await.expect("counts");
    assert_eq!(counts.len(), 1);
    assert!(counts[0].paused && counts[0].pending == 2, "{counts:?}");

    again.resume_queue("q").await.expect("resume");
    again.resume_queue("q").await.expect("resuming twice");
    assert_eq!(db.backend.claim(&w, 10).await.expect("claim").tasks.len(), 1);
    assert!(db.backend.counts().await.expect("counts").iter().all(|c| !c.paused));
}

#[tokio::test]
async fn the_last_tick_only_moves_forward_and_bad_values_are_errors() {
    let db = Db::new().await;
    db.backend.record_tick("s", Timestamp(2000)).await.expect("record");
    db.backend.record_tick("s", Timestamp(1000)).await.expect("record");
    let other = SqliteBackend::connect(&db.url()).await.expect("reconnect");
    assert_eq!(other.last_tick("s").await.expect("read"), Some(Timestamp(2000)));
    other.record_tick("s", Timestamp(3000)).await.expect("record");
    assert_eq!(db.backend.last_tick("s").await.expect("read"), Some(Timestamp(3000)));

    db.exec("UPDATE errand_schedules SET last_tick = 'soon' WHERE name = 's'").await;
    let err = db.backend.last_tick("s").await.expect_err("not a tick");
    assert!(err.to_string().contains("schedule `s`"), "{err}");
}

#[tokio::test]
async fn expose_counts_listings_retry_and_cancel() {
    let db = Db::new().await;
    let mut other = task("elsewhere");
    other.queue = "other".to_owned();
    let ids = db.backend.push(vec![task("1"), task("2"), task("3"), task("4"), other]).await.expect("push");
    let w = worker("w");
    db.backend.heartbeat(&w).await.expect("beat");
    let claimed = db.backend.claim(&w, 3).await.expect("claim");
    assert_eq!(claimed.tasks.len(), 3);
    let acks = [
        Ack { id: ids[0], outcome: Outcome::Done { result: Vec::new() } },
        Ack { id: ids[1], outcome: Outcome::Dead { error: "boom".into() } },
    ];
    db.backend.ack(&w, &acks).await.expect("ack");
    assert!(db.backend.cancel_task(ids[3]).await.expect("cancel pending"));
    assert!(!db.backend.cancel_task(ids[0]).await.expect("cancel done"), "done tasks stay done");

    let counts = db.backend.counts().await.expect("counts");
    assert_eq!(counts.iter().map(|c| c.queue.as_str()).collect::<Vec<_>>(), ["other", "q"]);
    let q = &counts[1];
    assert_eq!((q.pending, q.running, q.retry, q.done, q.dead, q.cancelled), (0, 1, 0, 1, 1, 1));
    assert_eq!(counts[0].pending, 1);

    let dead = TaskFilter { state: Some(TaskState::Dead), ..TaskFilter::default() };
    let listed = db.backend.tasks(&dead).await.expect("list dead");
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[1]]);
    let page = TaskFilter { queue: Some("q".into()), after: Some(ids[0]), limit: 2, ..TaskFilter::default() };
    let listed = db.backend.tasks(&page).await.expect("list page");
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[1], ids[2]]);
    let by_job = TaskFilter { job: Some("nope".into()), ..TaskFilter::default() };
    assert!(db.backend.tasks(&by_job).await.expect("list").is_empty());
    assert!(db.backend.task(TaskId(u64::MAX)).await.expect("read").is_none());

    let workers = db.backend.workers().await.expect("workers");
    assert_eq!((workers.len(), workers[0].id.as_str(), workers[0].concurrency), (1, "w", 4));

    // Dead → pending with fresh attempts, the last error kept.
    assert!(db.backend.retry_task(ids[1]).await.expect("retry dead"));
    let info = db.backend.task(ids[1]).await.expect("read").expect("exists");
    assert_eq!((info.state, info.attempt, info.last_error.as_deref()), (TaskState::Pending, 0, Some("boom")));
    assert!(info.finished_at.is_none());
    assert!(db.backend.retry_task(ids[3]).await.expect("retry cancelled"));
    assert!(!db.backend.retry_task(ids[0]).await.expect("retry done"), "only dead or cancelled tasks");
    assert!(!db.backend.retry_task(TaskId(9_999)).await.expect("retry missing"));
}

#[tokio::test]
async fn deleting_a_finished_task_frees_its_unique_key() {
    let db = Db::new().await;
    let keyed = || NewTask { unique_key: Some("k".to_owned()), ..task("keyed") };
    let first = push_one(&db.backend, keyed()).await;
    assert_eq!(push_one(&db.backend, keyed()).await, first, "a live task holds its key");
    let w = worker("w");
    db.backend.claim(&w, 1).await.expect("claim");
    assert!(!db.backend.delete_task(first).await.expect("delete running"), "a running task is live");
    db.backend.ack(&w, &[Ack { id: first, outcome: Outcome::Dead { error: "boom".into() } }]).await.expect("ack");
    assert!(db.backend.delete_task(first).await.expect("delete dead"));
    assert!(db.backend.task(first).await.expect("read").is_none());
    let second = push_one(&db.backend, keyed()).await;
    assert_ne!(second, first, "the key is free again");
    assert!(db.backend.cancel_task(second).await.expect("cancel"));
    assert!(db.backend.delete_task(second).await.expect("delete cancelled"));
}

// Workflow steps, driven through the backend contract directly.

const WORKFLOW: &str = "sqlite_test_workflow";

fn spec(name: &str, after: &[u16], max_attempts: u32) -> StepSpec {
    StepSpec { name: name.to_owned(), after: after.to_vec(), max_attempts, priority: 0 }
}

/// `first`, then `second` with `first`'s output.
fn chain() -> Vec<StepSpec> {
    vec![spec("first", &[], 3), spec("second", &[0], 3)]
}

fn step_worker(id: &str) -> WorkerRegistration {
    WorkerRegistration { job: WORKFLOW, workflow_steps: true, ..worker(id) }
}

async fn start(backend: &SqliteBackend, steps: Vec<StepSpec>) -> RunId {
    let run = NewRun { workflow: WORKFLOW, queue: "q".to_owned(), steps, input: b"1".to_vec(), trace: None };
    backend.start_run(run).await.expect("start a run")
}

async fn run_info(backend: &SqliteBackend, run: RunId) -> RunInfo {
    backend.run_info(run).await.expect("read the run").expect("the run exists")
}

/// Claims exactly one step task for `w`.
async fn claim_step(backend: &SqliteBackend, w: &WorkerRegistration) -> TaskId {
    let claimed = backend.claim(w, 10).await.expect("claim");
    assert_eq!(claimed.tasks.len(), 1, "one step is ready");
    claimed.tasks[0].id
}

fn done(id: TaskId, output: &[u8]) -> [Ack; 1] {
    [Ack { id, outcome: Outcome::Done { result: output.to_vec() } }]
}

/// The first step's ack failed (in a way `fail` sets up and `heal` undoes)
/// and is sent again: its output is stored, the second step enqueued once,
/// and the run ends with the second step's ack.
async fn a_failed_step_ack_is_applied_in_full_when_retried<F, H>(backend: &SqliteBackend, fail: F, heal: H)
where
    F: AsyncFnOnce(),
    H: AsyncFnOnce(),
{
    let run = start(backend, chain()).await;
    let w = step_worker("w");
    backend.heartbeat(&w).await.expect("beat");
    let first = claim_step(backend, &w).await;

    fail().await;
    let err = backend.ack(&w, &done(first, b"\"out\"")).await.expect_err("the ack's transaction fails");
    assert!(err.to_string().contains("sqlite backend"), "{err}");
    // Nothing of it was applied.
    let info = backend.task(first).await.expect("read").expect("exists");
    assert_eq!((info.state, info.worker.as_deref()), (TaskState::Running, Some("w")));
    let status = run_info(backend, run).await;
    assert_eq!(
        (status.state, status.steps[0].output.as_deref(), status.steps[1].task),
        (RunState::Running, None, None)
    );

    // The worker sends the same ack again, and this time it lands.
    heal().await;
    backend.ack(&w, &done(first, b"\"out\"")).await.expect("the retried ack");
    let status = run_info(backend, run).await;
    assert_eq!(status.steps[0].state, Some(TaskState::Done));
    assert_eq!(status.steps[0].output.as_deref(), Some(&b"\"out\""[..]), "the output is stored");
    assert_eq!(status.steps[1].state, Some(TaskState::Pending), "the next step is enqueued");
    assert_eq!(status.state, RunState::Running);
    let steps: Vec<TaskInfo> =
        backend.tasks(&TaskFilter { job: Some(WORKFLOW.into()), ..TaskFilter::default() }).await.expect("list");
    assert_eq!(steps.len(), 2, "each step has one task");

    let second = claim_step(backend, &w).await;
    assert_eq!(Some(second), status.steps[1].task);
    backend.ack(&w, &done(second, b"2")).await.expect("ack the second step");
    let status = run_info(backend, run).await;
    assert_eq!(status.state, RunState::Done, "the run finishes");
    assert_eq!(status.steps[1].output.as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn a_step_ack_whose_transaction_fails_midway_is_applied_in_full_when_retried() {
    // The step's own row is updated, then inserting the next step fails: the
    // whole transaction rolls back.
    let db = Db::new().await;
    let fail = async || {
        db.exec(
            "CREATE TRIGGER refuse_steps BEFORE INSERT ON errand_tasks WHEN NEW.run_id IS NOT NULL \
             BEGIN SELECT RAISE(ABORT, 'simulated failure'); END",
        )
        .await;
    };
    let heal = async || db.exec("DROP TRIGGER refuse_steps").await;
    a_failed_step_ack_is_applied_in_full_when_retried(&db.backend, fail, heal).await;
}

#[tokio::test]
async fn a_step_ack_that_finds_the_database_locked_is_applied_in_full_when_retried() {
    // Another connection holds the write lock longer than the busy timeout.
    let db = Db::new().await;
    let options = db.url().parse::<SqliteConnectOptions>().expect("options");
    let impatient = options.clone().journal_mode(SqliteJournalMode::Wal).busy_timeout(Duration::from_millis(100));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(impatient).await.expect("pool");
    let backend = SqliteBackend::builder().from_pool(pool);
    backend.migrate().await.expect("migrate");
    let locker = tokio::sync::Mutex::new(sqlx::SqliteConnection::connect_with(&options).await.expect("connect"));
    let fail = async || {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *locker.lock().await).await.expect("take the write lock");
    };
    let heal = async || {
        sqlx::query("COMMIT").execute(&mut *locker.lock().await).await.expect("let go of the write lock");
    };
    a_failed_step_ack_is_applied_in_full_when_retried(&backend, fail, heal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_ack_dropped_inside_its_transaction_leaves_no_transaction_open() {
    // The step ack's first script begins the write transaction. Its future is
    // dropped while that script waits for another connection's write lock:
    // the writer connection must not go back to the pool inside the
    // transaction, or every later write on it would fail (or, worse, commit
    // with the next one).
    let db = Db::new().await;
    let backend = &db.backend;
    let run = start(backend, chain()).await;
    let w = step_worker("w");
    backend.heartbeat(&w).await.expect("beat");
    let first = claim_step(backend, &w).await;
    let options = db.url().parse::<SqliteConnectOptions>().expect("options");
    let mut locker = sqlx::SqliteConnection::connect_with(&options).await.expect("connect");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut locker).await.expect("take the write lock");

    let acking = tokio::spawn({
        let backend = backend.clone();
        let w = w.clone();
        async move { backend.ack(&w, &done(first, b"\"out\"")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!acking.is_finished(), "the ack waits for the write lock");
    acking.abort();
    let _ = acking.await;
    sqlx::query("COMMIT").execute(&mut locker).await.expect("let go of the write lock");

    // Nothing of the dropped ack was applied, and the writer takes new work.
    let info = backend.task(first).await.expect("read").expect("exists");
    assert_eq!(info.state, TaskState::Running);
    let other = push_one(backend, task("after")).await;
    assert_eq!(state(backend, other).await, TaskState::Pending);
    backend.ack(&w, &done(first, b"\"out\"")).await.expect("the ack sent again");
    let status = run_info(backend, run).await;
    assert_eq!(status.steps[0].output.as_deref(), Some(&b"\"out\""[..]), "the output is stored");
    assert_eq!(status.steps[1].state, Some(TaskState::Pending), "the next step is enqueued");
}

#[tokio::test]
async fn a_claimed_task_whose_row_cannot_be_read_goes_dead_with_the_reason() {
    let db = Db::new().await;
    let ids = db.backend.push(vec![task("unreadable"), task("fine")]).await.expect("push");
    db.exec(&format!("UPDATE errand_tasks SET priority = 99999 WHERE id = {}", ids[0])).await;
    let w = worker("w");
    db.backend.heartbeat(&w).await.expect("beat");

    // Burying fails: the claim is put back as it was, and the claim fails.
    db.exec(
        "CREATE TRIGGER refuse_burials BEFORE UPDATE OF state ON errand_tasks WHEN NEW.state = 'dead' \
         BEGIN SELECT RAISE(ABORT, 'simulated failure'); END",
    )
    .await;
    let err = db.backend.claim(&w, 10).await.expect_err("burying failed");
    assert!(err.to_string().contains(&format!("task {}", ids[0])), "{err}");
    for id in &ids {
        let row: (String, i64, Option<String>) =
            sqlx::query_as("SELECT state, attempt, worker FROM errand_tasks WHERE id = ?")
                .bind(i64::try_from(id.0).expect("id"))
                .fetch_one(db.backend.pool())
                .await
                .expect("read the raw row");
        assert_eq!(row, ("pending".to_owned(), 0, None), "task {id} is put back");
    }
    db.exec("DROP TRIGGER refuse_burials").await;

    // It goes dead with the read error; the worker gets the readable task.
    let claimed = db.backend.claim(&w, 10).await.expect("claim keeps going");
    assert_eq!(claimed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[1]]);
    let row: (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT state, last_error, worker FROM errand_tasks WHERE id = ?")
            .bind(i64::try_from(ids[0].0).expect("id"))
            .fetch_one(db.backend.pool())
            .await
            .expect("read the raw row");
    let (state, error, owner) = row;
    let error = error.unwrap_or_default();
    assert_eq!((state.as_str(), owner), ("dead", None));
    assert!(
        error.contains(&format!("task {}", ids[0])) && error.contains("priority") && error.contains("99999"),
        "{error}"
    );

    // A workflow step's unreadable row fails its run with the reason.
    let run = start(&db.backend, chain()).await;
    let step = run_info(&db.backend, run).await.steps[0].task.expect("the first step has a task");
    db.exec(&format!("UPDATE errand_tasks SET max_attempts = -1 WHERE id = {step}")).await;
    let sw = step_worker("s");
    let claimed = db.backend.claim(&sw, 10).await.expect("claim keeps going");
    assert!(claimed.tasks.is_empty());
    let status = run_info(&db.backend, run).await;
    assert_eq!(status.state, RunState::Failed);
    let error = status.error.unwrap_or_default();
    assert!(error.contains("step `first` failed") && error.contains("max_attempts"), "{error}");
}

#[tokio::test]
async fn a_step_task_that_ends_without_an_ack_fails_its_run() {
    let db = Db::new().await;
    let backend = SqliteBackend::builder()
        .tuning(|t| t.orphan_after(Duration::from_millis(200)))
        .connect(&db.url())
        .await
        .expect("connect with a short orphan_after");
    let parallel = || vec![spec("left", &[], 1), spec("right", &[], 1), spec("join", &[0, 1], 1)];

    // Cancelled: the run fails and its other live step is cancelled.
    let cancelled = start(&backend, parallel()).await;
    let status = run_info(&backend, cancelled).await;
    let (left, right) = (status.steps[0].task.expect("left"), status.steps[1].task.expect("right"));
    assert!(backend.cancel_task(left).await.expect("cancel"));
    let status = run_info(&backend, cancelled).await;
    assert_eq!(status.state, RunState::Failed);
    assert!(status.error.unwrap_or_default().contains("step `left` failed"));
    assert_eq!(backend.task(right).await.expect("read").map(|i| i.state), Some(TaskState::Cancelled));
    assert!(!backend.delete_task(left).await.expect("delete a step's task"), "a step's task goes with its run");
    assert!(backend.task(left).await.expect("read").is_some());

    // Rescued on its last attempt.
    let rescued = start(&backend, parallel()).await;
    let lost = step_worker("lost");
    backend.heartbeat(&lost).await.expect("beat");
    assert_eq!(backend.claim(&lost, 1).await.expect("claim").tasks.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(backend.rescue_orphans().await.expect("rescue"), 1);
    let status = run_info(&backend, rescued).await;
    assert_eq!(status.state, RunState::Failed);
    assert!(status.error.unwrap_or_default().contains("stopped heartbeating"));
    assert!(status.steps[..2].iter().all(|s| matches!(s.state, Some(TaskState::Dead | TaskState::Cancelled))));

    // Buried as unserved.
    let buried = start(&backend, parallel()).await;
    let reason = "no worker serves it";
    let now = Timestamp::now();
    assert_eq!(backend.bury_unserved("q", WORKFLOW, now, now, reason).await.expect("bury"), 2);
    let status = run_info(&backend, buried).await;
    assert_eq!(status.state, RunState::Failed);
    assert!(status.error.unwrap_or_default().contains(reason));
    assert_eq!(status.steps[2].task, None, "the join never starts");
}

// Fault-proofing: corrupt rows, claims that cannot be put back, served jobs,
// retention, step outputs.

/// A raw row's `(state, last_error, worker)`, by its stored id.
async fn raw_row(backend: &SqliteBackend, id: i64) -> (String, Option<String>, Option<String>) {
    sqlx::query_as("SELECT state, last_error, worker FROM errand_tasks WHERE id = ?")
        .bind(id)
        .fetch_one(backend.pool())
        .await
        .expect("read the raw row")
}

async fn raw_count(backend: &SqliteBackend, condition: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM errand_tasks WHERE {condition}"))
        .fetch_one(backend.pool())
        .await
        .expect(condition)
}

fn raw(id: TaskId) -> i64 {
    i64::try_from(id.0).expect("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_buried_by_the_claim_and_the_others_run() {
    let db = Db::new().await;
    let jobs = (0..20).map(|i| Signup { email: format!("{i}@example.com") });
    let ids = db.backend.enqueue_bulk(jobs).await.expect("enqueue");
    // Written directly with SQL, as another program (or a bug) could: a
    // negative attempt, a negative id (no task id can name it), a state
    // this version does not know.
    db.exec(&format!("UPDATE errand_tasks SET attempt = -5 WHERE id = {}", ids[0])).await;
    db.exec(&format!("UPDATE errand_tasks SET id = -7 WHERE id = {}", ids[1])).await;
    db.exec(&format!("UPDATE errand_tasks SET state = 'paused' WHERE id = {}", ids[2])).await;

    let watch = db.backend.clone();
    let finished = async move {
        for _ in 0..600 {
            if raw_count(&watch, "state IN ('pending', 'running', 'retry')").await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let worker = errand_runtime::WorkerBuilder::<Signup, _>::new(db.backend.clone()).concurrency(4);
    errand_runtime::Monitor::new().register(worker).run_until(finished).await.expect("the worker runs");

    assert_eq!(raw_count(&db.backend, "state = 'done'").await, 17, "every readable task ran");
    let (state, error, owner) = raw_row(&db.backend, raw(ids[0])).await;
    let error = error.unwrap_or_default();
    assert_eq!((state.as_str(), owner), ("dead", None));
    assert!(error.contains(&format!("task {}", ids[0])) && error.contains("attempt"), "{error}");
    let (state, error, owner) = raw_row(&db.backend, -7).await;
    let error = error.unwrap_or_default();
    assert_eq!((state.as_str(), owner), ("dead", None), "a row without a valid id is buried too");
    assert!(error.contains("-7"), "{error}");
    // Never claimed: its state is not one a claim looks for. Counts report it.
    assert_eq!(raw_row(&db.backend, raw(ids[2])).await.0, "paused");
    let err = db.backend.counts().await.expect_err("an unknown state is an error");
    assert!(err.to_string().contains("paused") && err.to_string().contains("`mail`"), "{err}");
}

#[tokio::test]
async fn a_claim_that_cannot_be_put_back_is_put_back_before_the_next_claim() {
    let db = Db::new().await;
    let ids = db.backend.push(vec![task("unreadable"), task("fine")]).await.expect("push");
    db.exec(&format!("UPDATE errand_tasks SET priority = 99999 WHERE id = {}", ids[0])).await;
    let w = worker("w");
    db.backend.heartbeat(&w).await.expect("beat");
    // Neither burying nor putting back can be written.
    db.exec(
        "CREATE TRIGGER refuse_repairs BEFORE UPDATE OF state ON errand_tasks \
         WHEN OLD.state = 'running' AND NEW.state IN ('dead', 'pending') \
         BEGIN SELECT RAISE(ABORT, 'simulated failure'); END",
    )
    .await;
    let err = db.backend.claim(&w, 10).await.expect_err("burying failed");
    assert!(err.to_string().contains(&format!("task {}", ids[0])), "{err}");
    for id in &ids {
        assert_eq!(raw_row(&db.backend, raw(*id)).await.0, "running", "the claim stands for now");
    }
    // While they cannot be put back, the worker claims nothing more.
    let err = db.backend.claim(&w, 10).await.expect_err("still failing");
    assert!(err.to_string().contains("put back"), "{err}");
    db.exec("DROP TRIGGER refuse_repairs").await;

    // The next claim puts them back first: the readable task is claimed
    // again as the same attempt, the unreadable one goes dead.
    let claimed = db.backend.claim(&w, 10).await.expect("claim");
    assert_eq!(claimed.tasks.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(), [(ids[1], 1)]);
    assert_eq!(raw_row(&db.backend, raw(ids[0])).await.0, "dead");

    // A release puts everything back, remembered put-backs included.
    let ids = db.backend.push(vec![task("unreadable again")]).await.expect("push");
    db.exec(&format!("UPDATE errand_tasks SET priority = 99999 WHERE id = {}", ids[0])).await;
    db.exec(
        "CREATE TRIGGER refuse_repairs BEFORE UPDATE OF state ON errand_tasks \
         WHEN OLD.state = 'running' AND NEW.state IN ('dead', 'pending') AND NEW.worker IS NULL \
         AND OLD.attempt = 1 AND OLD.priority = 99999 \
         BEGIN SELECT RAISE(ABORT, 'simulated failure'); END",
    )
    .await;
    let other = worker("other");
    assert!(db.backend.claim(&other, 10).await.is_err());
    db.exec("DROP TRIGGER refuse_repairs").await;
    assert_eq!(db.backend.release(&other).await.expect("release"), 1);
    let (state, _, owner) = raw_row(&db.backend, raw(ids[0])).await;
    assert_eq!((state.as_str(), owner), ("pending", None));
    assert!(db.backend.claim(&other, 10).await.expect("nothing left to put back").tasks.is_empty());
}

#[tokio::test]
async fn unserved_jobs_are_told_by_what_every_process_served() {
    let db = Db::new().await;
    // Another process's handle on the same file.
    let other = SqliteBackend::connect(&db.url()).await.expect("connect again");
    let now = Timestamp::now();
    let at = |ms: i64, job: &'static str| NewTask { job, run_at: Timestamp(now.as_millis() - ms), ..task(job) };
    db.backend.push(vec![at(3_000, "job"), at(1_000, "job"), at(2_000, "job"), at(500, "gone")]).await.expect("push");
    let before = Timestamp::now();
    let mut found = db.backend.unserved("q", before).await.expect("unserved");
    found.sort_by(|a, b| a.job.cmp(&b.job));
    let found: Vec<(String, u64, Timestamp)> = found.into_iter().map(|u| (u.job, u.count, u.oldest)).collect();
    assert_eq!(
        found,
        [
            ("gone".to_owned(), 1, Timestamp(now.as_millis() - 500)),
            ("job".to_owned(), 3, Timestamp(now.as_millis() - 3_000))
        ],
        "nothing served either job yet"
    );

    // A worker of `job` in the other process beats: `job` is served.
    let w = worker("elsewhere");
    other.heartbeat(&w).await.expect("beat");
    let names = |found: Vec<errand_runtime::backend::Unserved>| found.into_iter().map(|u| u.job).collect::<Vec<_>>();
    assert_eq!(names(db.backend.unserved("q", before).await.expect("unserved")), ["gone"]);
    // It stops: that it served the job is kept past its own row.
    assert_eq!(other.release(&w).await.expect("release"), 0);
    assert!(db.backend.workers().await.expect("workers").is_empty());
    assert_eq!(names(db.backend.unserved("q", before).await.expect("unserved")), ["gone"]);
    // Burial checks "not served since" itself.
    let due = Timestamp::now();
    assert_eq!(db.backend.bury_unserved("q", "job", due, before, "unserved").await.expect("bury"), 0);
    assert_eq!(raw_count(&db.backend, "state = 'dead'").await, 0, "a served job's backlog is kept");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let later = Timestamp::now();
    assert_eq!(names(db.backend.unserved("q", later).await.expect("unserved")), ["gone", "job"]);
    assert_eq!(db.backend.bury_unserved("q", "job", later, later, "unserved").await.expect("bury"), 3);
    assert_eq!(raw_count(&db.backend, "state = 'dead' AND job = 'job' AND last_error = 'unserved'").await, 3);
}

#[tokio::test]
async fn retention_deletes_done_tasks_and_finished_runs_in_bounded_batches() {
    const DONE: usize = 25_000;
    let db = Db::new().await;
    let w = worker("w");
    db.backend.heartbeat(&w).await.expect("beat");
    let ids = db.backend.push((0..DONE + 3).map(|i| task(&i.to_string())).collect()).await.expect("push");
    let claimed = db.backend.claim(&w, DONE + 2).await.expect("claim");
    assert_eq!(claimed.tasks.len(), DONE + 2);
    let mut acks: Vec<Ack> =
        ids[..DONE].iter().map(|id| Ack { id: *id, outcome: Outcome::Done { result: b"r".to_vec() } }).collect();
    acks.push(Ack { id: ids[DONE], outcome: Outcome::Dead { error: "kept".into() } });
    db.backend.ack(&w, &acks).await.expect("ack");
    assert!(db.backend.cancel_task(ids[DONE + 1]).await.expect("cancel"));
    let waiting = ids[DONE + 2];

    // Two runs that finish, one that does not.
    let sw = step_worker("s");
    let mut finished = Vec::new();
    for _ in 0..2 {
        let run = start(&db.backend, chain()).await;
        for _ in 0..2 {
            let step = claim_step(&db.backend, &sw).await;
            db.backend.ack(&sw, &done(step, b"1")).await.expect("ack a step");
        }
        assert_eq!(run_info(&db.backend, run).await.state, RunState::Done);
        finished.push(run);
    }
    let running = start(&db.backend, chain()).await;

    // A handle whose clock is an hour ahead, as if an hour had passed.
    let later = SqliteBackend::builder()
        .tuning(|t| {
            t.retention(Duration::from_secs(60)).clock(errand_runtime::backend::Clock::system().skewed(3_600_000))
        })
        .connect(&db.url())
        .await
        .expect("connect");
    // Two calls at once: one pass; the other returns at once.
    let (a, b) = tokio::join!(later.purge_expired(), later.purge_expired());
    let (a, b) = (a.expect("purge"), b.expect("purge"));
    assert_eq!(a.min(b), 0, "one pass at a time");
    assert_eq!(a.max(b), 20_000, "a pass deletes 4 batches of 5,000 tasks at most");
    for run in &finished {
        assert!(later.run_info(*run).await.expect("read").is_none(), "run {run} outlived its retention");
    }
    assert_eq!(later.run_info(running).await.expect("read").map(|r| r.state), Some(RunState::Running));
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM errand_run_steps")
        .fetch_one(db.backend.pool())
        .await
        .expect("count run steps");
    assert_eq!(steps, 1, "the finished runs' steps are gone with them");

    // The next pass, a second later, deletes the rest.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(later.purge_expired().await.expect("purge"), (DONE + 4 - 20_000) as u64);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(later.purge_expired().await.expect("purge"), 0);
    assert_eq!(raw_count(&db.backend, "state = 'done'").await, 0);
    assert_eq!(state(&db.backend, ids[DONE]).await, TaskState::Dead, "dead tasks are kept");
    assert_eq!(state(&db.backend, ids[DONE + 1]).await, TaskState::Cancelled, "cancelled tasks are kept");
    assert_eq!(state(&db.backend, waiting).await, TaskState::Pending);
    let counts = db.backend.counts().await.expect("counts");
    let q = counts.iter().find(|c| c.queue == "q").expect("queue q");
    assert_eq!((q.done, q.dead, q.cancelled, q.pending, q.running), (0, 1, 1, 2, 0));

    // With the default retention, nothing of this is old enough.
    let finished_now = push_one(&db.backend, task("fresh")).await;
    let claimed = db.backend.claim(&w, 10).await.expect("claim");
    let acks: Vec<Ack> =
        claimed.tasks.iter().map(|t| Ack { id: t.id, outcome: Outcome::Done { result: Vec::new() } }).collect();
    db.backend.ack(&w, &acks).await.expect("ack");
    assert_eq!(db.backend.purge_expired().await.expect("purge"), 0);
    assert_eq!(state(&db.backend, finished_now).await, TaskState::Done);
}

#[tokio::test]
async fn a_steps_output_is_stored_once_with_its_run() {
    let db = Db::new().await;
    let run = start(&db.backend, chain()).await;
    let w = step_worker("w");
    db.backend.heartbeat(&w).await.expect("beat");
    let first = claim_step(&db.backend, &w).await;
    db.backend.ack(&w, &done(first, b"\"out\"")).await.expect("ack");
    let info = db.backend.task(first).await.expect("read").expect("exists");
    assert_eq!((info.state, info.result), (TaskState::Done, None), "not again as the task's result");
    let status = run_info(&db.backend, run).await;
    assert_eq!(status.steps[0].output.as_deref(), Some(&b"\"out\""[..]), "with the run");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM errand_run_steps WHERE output IS NOT NULL")
        .fetch_one(db.backend.pool())
        .await
        .expect("count outputs");
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn a_task_enqueued_for_a_waiting_worker_is_handed_to_it() {
    let db = Db::new().await;
    let backend = &db.backend;
    let (one, two) = (worker("waiter-one"), worker("waiter-two"));
    let info = |id: TaskId| async move { backend.task(id).await.expect("read task").expect("task exists") };

    assert!(backend.claim(&one, 4).await.expect("claim").tasks.is_empty(), "an empty queue");
    let mut traced = task("handed");
    traced.trace = Some(TRACE.to_owned());
    let handed = push_one(backend, traced).await;
    let written = info(handed).await;
    assert_eq!(
        (written.state, written.worker.as_deref(), written.attempt),
        (TaskState::Running, Some("waiter-one"), 1),
        "written claimed by the waiting worker"
    );
    assert!(backend.claim(&two, 4).await.expect("claim").tasks.is_empty(), "another worker claimed a handed task");
    assert_eq!(backend.release(&two).await.expect("release"), 0);
    let claimed = backend.claim(&one, 4).await.expect("claim").tasks;
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id, claimed[0].attempt, claimed[0].trace.as_deref()), (handed, 1, Some(TRACE)));
    assert_eq!(claimed[0].payload, b"handed");
    let done = Ack { id: handed, outcome: Outcome::Done { result: b"1".to_vec() } };
    backend.ack(&one, &[done]).await.expect("ack");
    assert_eq!(state(backend, handed).await, TaskState::Done, "a handed task's ack is an ack");

    // Paused: written waiting, and the worker still waits for the next one.
    assert!(backend.claim(&one, 4).await.expect("claim").tasks.is_empty());
    backend.pause_queue("q").await.expect("pause");
    let paused = push_one(backend, task("paused")).await;
    assert_eq!(state(backend, paused).await, TaskState::Pending, "a paused queue's task was handed over");
    backend.resume_queue("q").await.expect("resume");
    let claimed = backend.claim(&one, 4).await.expect("claim").tasks;
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), [paused], "claimed as usual once resumed");
    backend.ack(&one, &[Ack { id: paused, outcome: Outcome::Done { result: b"2".to_vec() } }]).await.expect("ack");

    // Delayed, unique and bulk enqueues are not handed over; the next
    // single one is.
    assert!(backend.claim(&one, 4).await.expect("claim").tasks.is_empty());
    let mut later = task("later");
    later.run_at = Timestamp::now().add(Duration::from_secs(3600));
    let later = push_one(backend, later).await;
    let mut keyed = task("keyed");
    keyed.unique_key = Some("k".to_owned());
    let keyed = push_one(backend, keyed).await;
    let bulk = backend.push(vec![task("bulk 1"), task("bulk 2")]).await.expect("push");
    for id in bulk.iter().copied().chain([later, keyed]) {
        assert_eq!(state(backend, id).await, TaskState::Pending, "task {id} was handed over");
    }
    let last = push_one(backend, task("last")).await;
    assert_eq!(info(last).await.worker.as_deref(), Some("waiter-one"));

    // Released before its next claim: the handed task waits again, its
    // attempt given back, and another worker takes it.
    backend.release(&one).await.expect("release");
    let back = info(last).await;
    assert_eq!((back.state, back.worker, back.attempt), (TaskState::Pending, None, 0));
    let mut taken: Vec<TaskId> =
        backend.claim(&two, 10).await.expect("claim").tasks.into_iter().map(|t| t.id).collect();
    taken.sort_unstable();
    let mut expected = vec![bulk[0], bulk[1], keyed, last];
    expected.sort_unstable();
    assert_eq!(taken, expected);
}

#[tokio::test]
async fn an_enqueue_dropped_mid_way_leaves_no_task_running_for_nobody() {
    let db = Db::new().await;
    let backend = &db.backend;
    let w = worker("waiter");
    let (mut dropped, mut put_back) = (0, 0);
    for n in 0..40 {
        assert!(backend.claim(&w, 4).await.expect("claim").tasks.is_empty(), "round {n}: nothing waits");
        // Polled a few times, then dropped: the insert may already run on
        // the connection's thread, and its task be written claimed for `w`.
        let was_dropped = {
            let mut push = std::pin::pin!(backend.push(vec![task(&format!("t{n}"))]));
            let mut pending = true;
            for _ in 0..=n % 8 {
                pending = std::future::poll_fn(|cx| std::task::Poll::Ready(push.as_mut().poll(cx).is_pending())).await;
                if !pending {
                    break;
                }
                tokio::task::yield_now().await;
            }
            pending
        };
        dropped += usize::from(was_dropped);
        // Whatever was written is `w`'s to run now, through its next claims.
        for claimed in [backend.claim(&w, 4).await.expect("claim"), backend.claim(&w, 4).await.expect("claim")] {
            for t in claimed.tasks {
                assert_eq!(t.attempt, 1, "round {n}: a put-back used an attempt");
                put_back += usize::from(was_dropped);
                backend.ack(&w, &[Ack { id: t.id, outcome: Outcome::Done { result: Vec::new() } }]).await.expect("ack");
            }
        }
        let all = backend.tasks(&TaskFilter::default()).await.expect("list");
        let stuck: Vec<_> = all.iter().filter(|t| t.state != TaskState::Done).map(|t| (t.id, t.state)).collect();
        assert!(stuck.is_empty(), "round {n}: tasks neither run nor waiting for a claim: {stuck:?}");
    }
    eprintln!("{dropped} of 40 enqueues dropped mid-way; {put_back} of their tasks were written and put back");
    assert!(put_back > 0, "no dropped enqueue had written its task: the test tests nothing");
}

#[tokio::test]
async fn a_pool_of_several_writers_does_not_hand_off() {
    let db = Db::new().await;
    let options =
        SqliteConnectOptions::new().filename(db.dir.path().join("jobs.db")).journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.expect("pool");
    let backend: SqliteBackend = SqliteBackend::builder().from_pool(pool);
    let w = worker("waiter");
    assert!(backend.claim(&w, 4).await.expect("claim").tasks.is_empty());
    let id = push_one(&backend, task("plain")).await;
    assert_eq!(state(&backend, id).await, TaskState::Pending, "a put-back could overtake the insert");
}
