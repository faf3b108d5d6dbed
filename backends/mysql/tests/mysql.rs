//! MySQL-specific behaviour beside the shared suite: enqueueing inside the
//! application's transaction, URL and namespace checks, migrations (and the
//! upgrade of version 1 tables), bulk enqueues cut to the packet size,
//! unreadable rows, unique keys across processes, wake-ups across processes
//! (also on resuming a paused queue), progress reports guarded by the
//! running worker, connecting without migrating and the pending migrations,
//! deleting finished tasks (their unique keys freed, workflow steps
//! spared), and trace contexts on every enqueue path (and the upgrade that
//! adds their columns). Each test uses tables of its
//! own (a fresh prefix), dropped when it ends. Without `ERRAND_MYSQL_URL`
//! the server tests are reported as ignored.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use errand_mysql::MysqlBackend;
use errand_mysql::sqlx::{self, Acquire};
use errand_runtime::backend::{Ack, NewTask, Outcome, WorkerRegistration};
use errand_runtime::capability::{Schedules, Transactional};
use errand_runtime::testing::{Running, wait_for};
use errand_runtime::{
    Backend, BackendExt, Enqueue, Error, Expose, Job, JobError, Monitor, Progress, TaskCx, TaskFilter, TaskId,
    TaskSink, TaskState, Timestamp, WorkerBuilder,
};
use serde::{Deserialize, Serialize};

/// Returns its text, and counts its runs in `Data<Counter>` when given.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    text: String,
}

#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl Job for Note {
    const NAME: &'static str = "note";
    const QUEUE: &'static str = "notes";
    type Output = String;

    async fn run(self, cx: TaskCx) -> Result<String, JobError> {
        if let Some(counter) = cx.data::<Counter>() {
            counter.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(self.text)
    }
}

fn note(text: &str) -> Note {
    Note { text: text.to_owned() }
}

async fn state(backend: &MysqlBackend, id: TaskId) -> Option<TaskState> {
    backend.task(id).await.unwrap_or_else(|e| panic!("{e}")).map(|t| t.state)
}

/// A task enqueued with `enqueue_in` exists if and only if the caller's
/// transaction commits; until then no worker (nor any other connection)
/// sees it, and once committed it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn enqueue_in_follows_the_callers_transaction() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);

    let mut tx = backend.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let rolled_back = backend.enqueue_in(&mut tx, note("never")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state(&backend, rolled_back).await, None, "visible before the commit");
    tx.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state(&backend, rolled_back).await, None, "a rolled-back enqueue left a task");

    let mut tx = backend.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    let committed = backend.enqueue_in(&mut tx, note("kept")).await.unwrap_or_else(|e| panic!("{e}"));
    let keyed = backend
        .enqueue_with_in(&mut tx, note("keyed"), Enqueue::new().unique_key("k").unique_for(Duration::from_secs(60)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = backend
        .enqueue_with_in(&mut tx, note("keyed again"), Enqueue::new().unique_key("k"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keyed, again, "a unique key dedupes inside the transaction too");
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state(&backend, committed).await, Some(TaskState::Pending));

    // A worker of another backend value (another process) runs it.
    let other = common::backend_in(&url, backend.namespace(), |b| b).await;
    let running = Running::start(Monitor::new().register(WorkerBuilder::<Note, _>::new(other)));
    wait_for("the committed tasks to run", || async {
        state(&backend, committed).await == Some(TaskState::Done)
            && state(&backend, keyed).await == Some(TaskState::Done)
    })
    .await;
    running.stop().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.result::<Note>(committed).await.unwrap_or_else(|e| panic!("{e}")), Some("kept".to_owned()));
}

/// URLs and namespaces are checked before anything is sent, and no message
/// shows a password.
#[tokio::test]
async fn urls_and_namespaces_are_checked_and_passwords_never_shown() {
    let config = |r: Result<MysqlBackend, Error>| match r {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let message = config(MysqlBackend::connect("postgres://u:secret@127.0.0.1/db").await);
    assert!(message.contains("not a MySQL URL") && !message.contains("secret"), "{message}");
    let message = config(MysqlBackend::connect("mysql://u:secret@127.0.0.1:3306").await);
    assert!(message.contains("no database") && !message.contains("secret"), "{message}");
    let message = config(MysqlBackend::builder().namespace("Bad-Name").connect("mysql://u:secret@127.0.0.1/db").await);
    assert!(message.contains("`Bad-Name`") && message.contains("prefix"), "{message}");

    // Nothing listens on port 1.
    match MysqlBackend::connect("mysql://u:secret@127.0.0.1:1/db").await {
        Err(Error::Backend(error)) => {
            let message = error.to_string();
            assert!(message.contains("mysql") && message.contains("u:***@127.0.0.1:1/db"), "{message}");
            assert!(!format!("{message} {error:?}").contains("secret"), "{message}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// A database that does not exist is named in the error.
#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn a_missing_database_is_named() {
    let url = common::url();
    let (base, _) = url.rsplit_once('/').unwrap_or((&url, ""));
    let missing = format!("{base}/errand_no_such_database");
    match MysqlBackend::connect(&missing).await {
        Err(Error::Backend(error)) => {
            let message = format!("{error} {:?}", error.source);
            assert!(message.contains("errand_no_such_database"), "{message}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// Migrations run once however many processes start at once, are recorded
/// in errand's own table, and tables migrated by a newer errand are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn migrations_run_once_and_newer_tables_are_refused() {
    let url = common::url();
    let prefix = common::fresh_prefix();
    let _drop = common::DropTables { url: url.clone(), prefix: prefix.clone() };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, prefix) = (url.clone(), prefix.clone());
            tokio::spawn(async move { MysqlBackend::builder().namespace(prefix).connect(&url).await })
        })
        .collect();
    let mut backends = Vec::new();
    for start in starts {
        backends.push(start.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}")));
    }
    let backend = &backends[0];
    let applied: Vec<(i64, String)> =
        sqlx::query_as(&format!("SELECT version, CAST(description AS CHAR) FROM `{prefix}migrations`"))
            .fetch_all(backend.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied.len(), 4, "each migration is recorded once: {applied:?}");

    sqlx::query(&format!(
        "INSERT INTO `{prefix}migrations` (version, description, checksum, applied_at) VALUES (99, 'from the future', 'x', 0)"
    ))
    .execute(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    match backend.migrate().await {
        Err(Error::Schema(message)) => {
            assert!(message.contains("99") && message.contains("upgrade errand"), "{message}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

/// A bulk enqueue larger than one packet is cut into several inserts: every
/// task is written, with its ids in the order of the input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn bulk_enqueues_are_cut_to_the_packet_size() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let packet: i64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS SIGNED)")
        .fetch_one(backend.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Twice the packet in all, in tasks of 1/8 of it.
    let big = "x".repeat(usize::try_from(packet / 8).unwrap_or(1 << 20));
    let mut jobs: Vec<Note> = (0..16).map(|i| Note { text: format!("{i}{big}") }).collect();
    jobs.extend((0..5000).map(|i| note(&format!("small {i}"))));
    let ids = backend.enqueue_bulk(jobs.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids.len(), jobs.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids follow the input");
    for (i, id) in [(0, ids[0]), (15, ids[15]), (16, ids[16]), (5015, ids[5015])] {
        let task = backend.task(id).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{id} is gone"));
        let stored: Note = serde_json::from_slice(&task.payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.text, jobs[i].text, "task {i} is stored under its id");
    }
    let counts = backend.queue_counts(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.pending, jobs.len() as u64);
}

/// Rows written by hand in shapes this version cannot read: a claimed task
/// whose attempt is negative goes dead with the read error while the others
/// run; a task with an unknown state is never claimed, and reading it or the
/// counts is an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn unreadable_rows_are_buried_and_the_rest_run() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let prefix = backend.namespace().to_owned();
    let ids = backend.enqueue_bulk((0..20).map(|i| note(&i.to_string()))).await.unwrap_or_else(|e| panic!("{e}"));
    let (negative, sideways) = (ids[3], ids[7]);
    sqlx::query(&format!("UPDATE `{prefix}tasks` SET attempt = -5 WHERE id = ?"))
        .bind(i64::try_from(negative.0).unwrap_or(i64::MAX))
        .execute(backend.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(&format!("UPDATE `{prefix}tasks` SET state = 'sideways' WHERE id = ?"))
        .bind(i64::try_from(sideways.0).unwrap_or(i64::MAX))
        .execute(backend.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let running = Running::start(Monitor::new().register(WorkerBuilder::<Note, _>::new(backend.clone())));
    wait_for("the readable tasks to run", || async {
        let mut done = 0;
        for id in &ids {
            if backend.task(*id).await.ok().flatten().is_some_and(|t| t.state == TaskState::Done) {
                done += 1;
            }
        }
        done == 18
    })
    .await;
    // Its row still holds the negative attempt: read it by hand.
    let dead_row = format!("SELECT CAST(state AS CHAR), CAST(last_error AS CHAR) FROM `{prefix}tasks` WHERE id = ?");
    let raw = i64::try_from(negative.0).unwrap_or(i64::MAX);
    let read_dead = || async {
        sqlx::query_as::<_, (String, Option<String>)>(&dead_row)
            .bind(raw)
            .fetch_one(backend.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    wait_for("the unreadable task to go dead", || async { read_dead().await.0 == "dead" }).await;
    running.stop().await.unwrap_or_else(|e| panic!("{e}"));
    let error = read_dead().await.1.unwrap_or_default();
    assert!(error.contains(&format!("task {negative}")) && error.contains("attempt"), "{error}");

    let read = backend.task(sideways).await.map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        read.contains("mysql") && read.contains("sideways") && read.contains(&format!("task {sideways}")),
        "{read}"
    );
    let counts = backend.counts().await.map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(counts.contains("sideways") && counts.contains("notes"), "{counts}");
}

/// Two processes enqueueing the same unique key at once create one task,
/// and both get its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn a_unique_key_raced_from_two_processes_makes_one_task() {
    let url = common::url();
    let one = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &one);
    let two = common::backend_in(&url, one.namespace(), |b| b).await;
    for round in 0..20 {
        let key = format!("key-{round}");
        let window = Enqueue::new().unique_key(key.clone()).unique_for(Duration::from_secs(60));
        let (a, b) = tokio::join!(
            one.enqueue_with(note("a"), Enqueue::new().unique_key(key.clone())),
            two.enqueue_with(note("b"), window)
        );
        let (a, b) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(a, b, "round {round}: two tasks for one key");
    }
    let tasks = one.tasks(&TaskFilter { queue: Some(Note::QUEUE.into()), ..TaskFilter::default() }).await;
    assert_eq!(tasks.unwrap_or_else(|e| panic!("{e}")).len(), 20);
}

/// A task enqueued by another process reaches an idle worker through the
/// idle poller, well before the worker's own poll interval; a task of this
/// process, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn idle_workers_hear_of_other_processes_tasks() {
    let url = common::url();
    // A poll interval of a minute: only the idle poller can wake the worker.
    let backend = common::backend_with(&url, |b| b.tuning(|t| t.poll_interval(Duration::from_secs(60)))).await;
    let _drop = common::DropTables::of(&url, &backend);
    let other = common::backend_in(&url, backend.namespace(), |b| b).await;
    let counter = Counter::default();
    let worker = WorkerBuilder::<Note, _>::new(backend.clone()).data(counter.clone());
    let running = Running::start(Monitor::new().register(worker));
    // Let it claim nothing and go idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (n, producer) in [&other, &backend, &other].into_iter().enumerate() {
        let sent = Instant::now();
        producer.enqueue(note("ping")).await.unwrap_or_else(|e| panic!("{e}"));
        wait_for("the task to start", || async { counter.0.load(Ordering::SeqCst) == n as u64 + 1 }).await;
        assert!(sent.elapsed() < Duration::from_secs(5), "a wake-up took {:?}", sent.elapsed());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // In a transaction of another process: it runs once committed.
    let mut conn = other.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let mut tx = conn.begin().await.unwrap_or_else(|e| panic!("{e}"));
    other.enqueue_in(&mut tx, note("after the commit")).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counter.0.load(Ordering::SeqCst), 3, "a task ran before its transaction committed");
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let sent = Instant::now();
    wait_for("the committed task to start", || async { counter.0.load(Ordering::SeqCst) == 4 }).await;
    assert!(sent.elapsed() < Duration::from_secs(5), "a wake-up took {:?}", sent.elapsed());
    running.stop().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Runs `sql` on the backend's pool, panicking on failure.
async fn exec(backend: &MysqlBackend, sql: &str) {
    sqlx::query(sql).execute(backend.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Migration 2 upgrades tables made by migration 1 (the progress columns,
/// `paused_queues`, `schedules`), and running it again over tables it
/// already changed, as after a failure before its record, does nothing
/// wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn migration_2_upgrades_version_1_tables_and_runs_again_harmlessly() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let prefix = backend.namespace().to_owned();
    let id = backend.enqueue(note("from version 1")).await.unwrap_or_else(|e| panic!("{e}"));
    // Back to what migration 1 made.
    exec(&backend, &format!("ALTER TABLE `{prefix}tasks` DROP COLUMN progress_percent, DROP COLUMN progress_message"))
        .await;
    exec(&backend, &format!("DROP TABLE `{prefix}paused_queues`, `{prefix}schedules`")).await;
    exec(&backend, &format!("DELETE FROM `{prefix}migrations` WHERE version = 2")).await;

    backend.migrate().await.unwrap_or_else(|e| panic!("upgrading version 1 tables: {e}"));
    exec(&backend, &format!("DELETE FROM `{prefix}migrations` WHERE version = 2")).await;
    backend.migrate().await.unwrap_or_else(|e| panic!("running migration 2 again: {e}"));
    let versions: Vec<i64> = sqlx::query_scalar(&format!("SELECT version FROM `{prefix}migrations` ORDER BY version"))
        .fetch_all(backend.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(versions, [1, 2, 3, 4]);

    // Everything migration 2 added works, and the old task reads back.
    let task = backend.task(id).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{id} is gone"));
    assert_eq!((task.state, task.progress), (TaskState::Pending, None));
    backend.pause_queue(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    let counts = backend.queue_counts(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(counts.paused && counts.pending == 1, "{counts:?}");
    backend.resume_queue(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    backend.record_tick("note/nightly", Timestamp(7)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.last_tick("note/nightly").await.unwrap_or_else(|e| panic!("{e}")), Some(Timestamp(7)));
}

/// A registration of a worker `id` of `Note`, for calling the backend
/// directly.
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

/// Progress reports through the backend itself: a report for a task that is
/// not running, or running for another worker, is ignored; the latest of a
/// batch wins; a non-ASCII message round-trips; the next claim clears it.
/// Schedule names have no length limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn progress_is_written_only_by_the_running_worker() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let id = backend.enqueue(note("reports")).await.unwrap_or_else(|e| panic!("{e}"));
    let (one, two) = (registration("worker-one"), registration("worker-two"));
    let progress = || async { backend.task_progress(id).await.unwrap_or_else(|e| panic!("{e}")) };

    backend.record_progress(&one, &[(id, Progress::new(5, "early"))]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(progress().await, None, "a pending task took a report");
    let claimed = backend.claim(&one, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.tasks.len(), 1);
    backend.record_progress(&two, &[(id, Progress::new(50, "not mine"))]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(progress().await, None, "another worker's report was stored");
    let text = "héllo ✓ — 日本語 🚀";
    let batch = [(id, Progress::new(10, "first")), (id, Progress::new(42, text))];
    backend.record_progress(&one, &batch).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(progress().await, Some(Progress::new(42, text)));

    // Snoozed, it keeps its progress until it is claimed again.
    let snooze = Ack { id, outcome: Outcome::Snooze { at: Timestamp(0) } };
    backend.ack(&one, &[snooze]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(progress().await, Some(Progress::new(42, text)));
    let claimed = backend.claim(&two, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.tasks.len(), 1);
    assert_eq!(progress().await, None, "a new attempt shows the last one's progress");

    let long = format!("note/{}", "x".repeat(2000));
    backend.record_tick(&long, Timestamp(3)).await.unwrap_or_else(|e| panic!("{e}"));
    backend.record_tick(&long, Timestamp(2)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.last_tick(&long).await.unwrap_or_else(|e| panic!("{e}")), Some(Timestamp(3)));
}

/// A queue paused and resumed by another process: while it is paused, an
/// idle worker here neither claims nor is woken; once it is resumed, the
/// idle poller wakes it, well before its own poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn resuming_in_another_process_wakes_idle_workers() {
    let url = common::url();
    // A poll interval of a minute: only the idle poller can wake the worker.
    let backend = common::backend_with(&url, |b| b.tuning(|t| t.poll_interval(Duration::from_secs(60)))).await;
    let _drop = common::DropTables::of(&url, &backend);
    let other = common::backend_in(&url, backend.namespace(), |b| b).await;
    let counter = Counter::default();
    let worker = WorkerBuilder::<Note, _>::new(backend.clone()).data(counter.clone());
    let running = Running::start(Monitor::new().register(worker));
    tokio::time::sleep(Duration::from_millis(500)).await;

    other.pause_queue(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    other.enqueue(note("held")).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "a worker claimed from a paused queue");

    let resumed = Instant::now();
    other.resume_queue(Note::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    wait_for("the task to start after resuming", || async { counter.0.load(Ordering::SeqCst) == 1 }).await;
    assert!(resumed.elapsed() < Duration::from_secs(5), "resuming took {:?} to wake the worker", resumed.elapsed());
    running.stop().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Every migration this version ships, by name, in order.
const MIGRATIONS: [&str; 4] =
    ["0001_create_tables", "0002_progress_paused_schedules", "0003_runs_listing", "0004_trace"];

/// How many tables of `prefix` exist.
async fn tables_of(backend: &MysqlBackend, prefix: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() \
         AND LEFT(table_name, CHAR_LENGTH(?)) = ?",
    )
    .bind(prefix)
    .bind(prefix)
    .fetch_one(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `.migrate(false)` connects without creating anything, and
/// `pending_migrations` names every migration on a fresh database, none once
/// migrated, the one whose record is missing (migration 3, run again over
/// tables it half changed, completes them), and refuses tables of a newer
/// errand as `migrate` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn connecting_without_migrating_and_pending_migrations() {
    let url = common::url();
    let prefix = common::fresh_prefix();
    let _drop = common::DropTables { url: url.clone(), prefix: prefix.clone() };
    let backend = MysqlBackend::builder()
        .namespace(prefix.clone())
        .migrate(false)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pending = || async { backend.pending_migrations().await.unwrap_or_else(|e| panic!("{e}")) };
    assert_eq!(pending().await, MIGRATIONS, "a fresh database lacks every migration");
    assert_eq!(tables_of(&backend, &prefix).await, 0, "connecting or checking created tables");

    backend.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(pending().await.is_empty(), "migrated tables are current");
    assert_eq!(tables_of(&backend, &prefix).await, 9);
    // A backend that does not migrate works on current tables.
    let again = MysqlBackend::builder()
        .namespace(prefix.clone())
        .migrate(false)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = again.enqueue(note("no migration needed")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state(&again, id).await, Some(TaskState::Pending));

    // Back to what migration 2 made, half-way through migration 3.
    exec(&backend, &format!("ALTER TABLE `{prefix}runs` DROP INDEX runs_workflow")).await;
    exec(&backend, &format!("DELETE FROM `{prefix}migrations` WHERE version = 3")).await;
    assert_eq!(pending().await, ["0003_runs_listing"]);
    backend.migrate().await.unwrap_or_else(|e| panic!("completing migration 3: {e}"));
    assert!(pending().await.is_empty());
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT CAST(index_name AS CHAR) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ? ORDER BY 1",
    )
    .bind(format!("{prefix}runs"))
    .fetch_all(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(indexes, ["PRIMARY", "runs_finished", "runs_state", "runs_workflow"]);

    exec(
        &backend,
        &format!(
            "INSERT INTO `{prefix}migrations` (version, description, checksum, applied_at) \
             VALUES (99, 'from the future', 'x', 0)"
        ),
    )
    .await;
    match backend.pending_migrations().await {
        Err(Error::Schema(message)) => {
            assert!(message.contains("99") && message.contains("upgrade errand"), "{message}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

/// Deleting a finished task frees its unique key at once (a key whose newest
/// task is another is left alone); dead and cancelled tasks are deleted
/// too, but not live tasks nor workflow steps' tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn deleting_a_task_frees_its_unique_key_and_spares_steps() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let prefix = backend.namespace().to_owned();
    let raw = |id: TaskId| i64::try_from(id.0).unwrap_or(i64::MAX);
    let set = |id: TaskId, assignments: &str| {
        let sql = format!("UPDATE `{prefix}tasks` SET {assignments}, finished_at = 1 WHERE id = {}", raw(id));
        let backend = &backend;
        async move { exec(backend, &sql).await }
    };
    let delete = |id: TaskId| {
        let backend = &backend;
        async move { backend.delete_task(id).await.unwrap_or_else(|e| panic!("{e}")) }
    };
    let window = || Enqueue::new().unique_key("once").unique_for(Duration::from_secs(3600));
    macro_rules! enqueue {
        ($job:expr, $options:expr) => {
            backend.enqueue_with($job, $options).await.unwrap_or_else(|e| panic!("{e}"))
        };
    }

    // Within its window, a done task's key dedupes until the task is deleted.
    let first = enqueue!(note("first"), window());
    let running = Running::start(Monitor::new().register(WorkerBuilder::<Note, _>::new(backend.clone())));
    wait_for("the task to finish", || async { state(&backend, first).await == Some(TaskState::Done) }).await;
    running.stop().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(enqueue!(note("again"), window()), first, "the window dedupes");
    assert!(delete(first).await);
    assert_eq!(state(&backend, first).await, None);
    let second = enqueue!(note("after"), window());
    assert_ne!(second, first, "the deleted task's key was not freed");
    assert!(!delete(second).await, "a pending task was deleted");
    assert_eq!(enqueue!(note("still"), window()), second);

    // A finished task that is no longer its key's newest: the key stays.
    let old = enqueue!(note("old"), Enqueue::new().unique_key("k"));
    set(old, "state = 'done'").await;
    let newer = enqueue!(note("newer"), Enqueue::new().unique_key("k"));
    assert_ne!(old, newer);
    assert!(delete(old).await);
    assert_eq!(enqueue!(note("newest"), Enqueue::new().unique_key("k")), newer, "the live task's key was freed");

    // Dead and cancelled tasks are deleted; a running one is not.
    let dead = backend.enqueue(note("dead")).await.unwrap_or_else(|e| panic!("{e}"));
    set(dead, "state = 'dead', last_error = 'boom'").await;
    assert!(delete(dead).await);
    let cancelled = backend.enqueue(note("cancelled")).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(backend.cancel_task(cancelled).await.unwrap_or_else(|e| panic!("{e}")));
    assert!(delete(cancelled).await);
    let claimed = backend.enqueue(note("running")).await.unwrap_or_else(|e| panic!("{e}"));
    let worker = registration("worker-one");
    let tasks = backend.claim(&worker, 10).await.unwrap_or_else(|e| panic!("{e}")).tasks;
    assert!(tasks.iter().any(|t| t.id == claimed), "the task was not claimed");
    assert!(!delete(claimed).await, "a running task was deleted");

    // A workflow step's task goes with its run.
    let step = backend.enqueue(note("step")).await.unwrap_or_else(|e| panic!("{e}"));
    set(step, "state = 'done', run_id = 1, step = 0").await;
    assert!(!delete(step).await, "a step's task was deleted");
    assert_eq!(state(&backend, step).await, Some(TaskState::Done));
    assert!(!delete(TaskId(u64::MAX)).await, "an id past BIGINT");
}

/// A trace context with a `tracestate`, as an enqueue in a traced span stores it.
const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=\"x\";k=v";

/// A task of `Note` with `text`, carrying `trace`.
fn note_task(text: &str, trace: Option<&str>) -> NewTask {
    NewTask {
        job: Note::NAME,
        queue: Note::QUEUE.to_owned(),
        payload: serde_json::to_vec(&note(text)).unwrap_or_else(|e| panic!("{e}")),
        run_at: Timestamp::now(),
        priority: 0,
        max_attempts: 3,
        unique_key: None,
        unique_for: None,
        trace: trace.map(str::to_owned),
    }
}

/// Claims every due task of `Note` and returns each one's text and trace, by text.
async fn claimed_traces(backend: &MysqlBackend) -> Vec<(String, Option<String>)> {
    let claimed = backend.claim(&registration("tracer"), 100).await.unwrap_or_else(|e| panic!("{e}"));
    let mut found: Vec<(String, Option<String>)> = claimed
        .tasks
        .into_iter()
        .map(|t| {
            let note: Note = serde_json::from_slice(&t.payload).unwrap_or_else(|e| panic!("{e}"));
            (note.text, t.trace)
        })
        .collect();
    found.sort();
    found
}

/// Every way a task is written stores its trace context, and every claim
/// hands it back: one task alone, multi-row inserts (cut into power-of-two
/// statements), a unique key (a duplicate keeps the first task's), and
/// inside the caller's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn every_enqueue_path_stores_the_trace_context() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let push = |tasks: Vec<NewTask>| async { backend.push(tasks).await.unwrap_or_else(|e| panic!("{e}")) };

    push(vec![note_task("alone", Some(TRACE))]).await;
    push(vec![note_task("none", None)]).await;
    // Three rows: statements of 2 and 1.
    push(vec![note_task("m1", Some(TRACE)), note_task("m2", None), note_task("m3", Some(other))]).await;
    let keyed = |text: &str, trace: &str| NewTask { unique_key: Some("k".to_owned()), ..note_task(text, Some(trace)) };
    let first = push(vec![keyed("k1", other)]).await;
    assert_eq!(push(vec![keyed("k2", TRACE), note_task("after key", Some(TRACE))]).await[0], first[0]);
    let mut tx = backend.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    backend.push_in(&mut tx, vec![note_task("in tx", Some(other))]).await.unwrap_or_else(|e| panic!("{e}"));
    let pair = vec![note_task("in tx, 1", Some(TRACE)), note_task("in tx, 2", None)];
    backend.push_in(&mut tx, pair).await.unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        claimed_traces(&backend).await,
        [
            ("after key".to_owned(), some(TRACE)),
            ("alone".to_owned(), some(TRACE)),
            ("in tx".to_owned(), some(other)),
            ("in tx, 1".to_owned(), some(TRACE)),
            ("in tx, 2".to_owned(), None),
            ("k1".to_owned(), some(other)),
            ("m1".to_owned(), some(TRACE)),
            ("m2".to_owned(), None),
            ("m3".to_owned(), some(other)),
            ("none".to_owned(), None),
        ]
    );
}

/// Migration 4 adds the `trace` columns to tables made by migration 3: the
/// tasks enqueued before carry no context, the new ones theirs; running it
/// again over tables it already changed, as after a failure before its
/// record, does nothing wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn migration_4_adds_the_trace_columns_and_runs_again_harmlessly() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let prefix = backend.namespace().to_owned();
    // Back to what migration 3 made, with a task enqueued then.
    exec(&backend, &format!("ALTER TABLE `{prefix}tasks` DROP COLUMN trace")).await;
    exec(&backend, &format!("ALTER TABLE `{prefix}runs` DROP COLUMN trace")).await;
    exec(&backend, &format!("DELETE FROM `{prefix}migrations` WHERE version = 4")).await;
    exec(
        &backend,
        &format!(
            "INSERT INTO `{prefix}tasks` (queue, job, payload, max_attempts, priority, run_at, created_at) \
             VALUES ('{}', '{}', '{{\"text\":\"old\"}}', 3, 0, 0, 0)",
            Note::QUEUE,
            Note::NAME
        ),
    )
    .await;
    assert_eq!(backend.pending_migrations().await.unwrap_or_else(|e| panic!("{e}")), ["0004_trace"]);

    backend.migrate().await.unwrap_or_else(|e| panic!("upgrading version 3 tables: {e}"));
    exec(&backend, &format!("DELETE FROM `{prefix}migrations` WHERE version = 4")).await;
    backend.migrate().await.unwrap_or_else(|e| panic!("running migration 4 again: {e}"));
    assert!(backend.pending_migrations().await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(is_nullable AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name IN (?, ?) AND column_name = 'trace' ORDER BY 1",
    )
    .bind(format!("{prefix}runs"))
    .bind(format!("{prefix}tasks"))
    .fetch_all(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(columns, [(format!("{prefix}runs"), "YES".to_owned()), (format!("{prefix}tasks"), "YES".to_owned())]);

    backend.push(vec![note_task("new", Some(TRACE))]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed_traces(&backend).await, [("new".to_owned(), Some(TRACE.to_owned())), ("old".to_owned(), None)]);
}

/// A single due enqueue while a worker of this process waits for its job
/// (its last claim found nothing) is written claimed by that worker and
/// comes back from its next claim, with nothing queried and nothing for
/// anyone else to claim; a paused queue, a delayed task and a bulk enqueue
/// take the usual path; a released worker's handed task goes back to
/// waiting. MySQL, without `INSERT … RETURNING`, never hands over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn a_task_enqueued_for_a_waiting_worker_is_handed_to_it() {
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &backend);
    let version: String =
        sqlx::query_scalar("SELECT VERSION()").fetch_one(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    let mariadb = version.contains("MariaDB");
    let (one, two) = (registration("waiter-one"), registration("waiter-two"));
    fn ok<T>(r: Result<T, Error>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }
    let info = |id: TaskId| {
        let backend = backend.clone();
        async move { backend.task(id).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("task {id}")) }
    };
    let push = |tasks: Vec<NewTask>| {
        let backend = backend.clone();
        async move { backend.push(tasks).await.unwrap_or_else(|e| panic!("{e}")) }
    };

    assert!(ok(backend.claim(&one, 4).await).tasks.is_empty(), "an empty queue");
    let [handed] = push(vec![note_task("handed", Some(TRACE))]).await[..] else { panic!("one id") };
    let written = info(handed).await;
    if !mariadb {
        assert_eq!(written.state, TaskState::Pending, "MySQL enqueues with the plain INSERT");
        return;
    }
    assert_eq!(
        (written.state, written.worker.as_deref(), written.attempt),
        (TaskState::Running, Some("waiter-one"), 1),
        "written claimed by the waiting worker"
    );
    assert!(ok(backend.claim(&two, 4).await).tasks.is_empty(), "another worker claimed a handed task");
    assert_eq!(ok(backend.release(&two).await), 0);
    let claimed = ok(backend.claim(&one, 4).await).tasks;
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id, claimed[0].attempt, claimed[0].trace.as_deref()), (handed, 1, Some(TRACE)));
    let note: Note = serde_json::from_slice(&claimed[0].payload).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(note.text, "handed");
    ok(backend.ack(&one, &[Ack { id: handed, outcome: Outcome::Done { result: b"\"handed\"".to_vec() } }]).await);
    assert_eq!(info(handed).await.state, TaskState::Done, "a handed task's ack is an ack");

    // Paused: written waiting, and the worker still waits for the next one.
    assert!(ok(backend.claim(&one, 4).await).tasks.is_empty());
    ok(backend.pause_queue(Note::QUEUE).await);
    let [paused] = push(vec![note_task("paused", None)]).await[..] else { panic!("one id") };
    assert_eq!(info(paused).await.state, TaskState::Pending, "a paused queue's task was handed over");
    ok(backend.resume_queue(Note::QUEUE).await);
    let claimed = ok(backend.claim(&one, 4).await).tasks;
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), [paused], "claimed as usual once resumed");
    ok(backend.ack(&one, &[Ack { id: paused, outcome: Outcome::Done { result: b"\"paused\"".to_vec() } }]).await);

    // Delayed and bulk enqueues are not handed over; the next single one is.
    assert!(ok(backend.claim(&one, 4).await).tasks.is_empty());
    let mut later = note_task("later", None);
    later.run_at = Timestamp::now().add(Duration::from_secs(3600));
    let [later] = push(vec![later]).await[..] else { panic!("one id") };
    let bulk = push(vec![note_task("bulk 1", None), note_task("bulk 2", None)]).await;
    for id in bulk.iter().copied().chain([later]) {
        assert_eq!(info(id).await.state, TaskState::Pending, "task {id} was handed over");
    }
    let [last] = push(vec![note_task("last", None)]).await[..] else { panic!("one id") };
    assert_eq!(info(last).await.worker.as_deref(), Some("waiter-one"));

    // Released before its next claim: the handed task waits again, its
    // attempt given back, and another worker takes it.
    ok(backend.release(&one).await);
    let back = info(last).await;
    assert_eq!((back.state, back.worker, back.attempt), (TaskState::Pending, None, 0));
    let mut taken: Vec<TaskId> = ok(backend.claim(&two, 10).await).tasks.into_iter().map(|t| t.id).collect();
    taken.sort_unstable();
    let mut expected = [bulk[0], bulk[1], last];
    expected.sort_unstable();
    assert_eq!(taken, expected);
}
