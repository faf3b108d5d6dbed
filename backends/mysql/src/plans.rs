//! The statements' plans on a big table with many finished rows: what keeps
//! claims, acks, rescue and the dashboard fast however many tasks wait or
//! are done.
//!
//! Every statement the backend runs per claim, ack, heartbeat, rescue,
//! release, burial, retention step, workflow advance or dashboard view is
//! run with its parameters against 300,000 tasks (40 % of them done) under
//! MariaDB's `ANALYZE FORMAT=JSON` (on MySQL, `EXPLAIN FORMAT=JSON`: the
//! plan without the counts), in a transaction that is rolled back. No
//! statement may scan `tasks`, `unique_keys`, `runs` or `run_steps`
//! (`access_type` `ALL`),
//! nor walk a whole index of them (`index`) unless it reads every task by
//! definition (counts), and the rows it reads must stay far below the
//! table's size: a lost index or a plan that walks the finished rows shows
//! up here as a failure naming the statement and its plan, not as a slow
//! queue in production.

use serde_json::Value;
use sqlx::{Connection, MySqlConnection};

use crate::sql::{Queries, render};

/// Tasks in the table.
const ROWS: i64 = 300_000;

/// How many rows of the big tables a statement may read.
#[derive(Clone, Copy, Debug)]
enum Bound {
    /// None: a claim of a paused queue reads no task.
    Nothing,
    /// A few: claims take 64, acks and cancels name a few ids, retention
    /// steps look at 2,000 rows.
    Few,
    /// The running tasks (150 here), of one worker or all of them.
    Running,
    /// What the statement reads by definition: the waiting tasks of a job
    /// (unserved jobs, burial), every task (counts). Still no table scan,
    /// and only counts may walk a whole index.
    Unbounded,
}

impl Bound {
    fn rows(self) -> f64 {
        match self {
            Bound::Nothing => 0.0,
            Bound::Few => 5_000.0,
            Bound::Running => 2_000.0,
            Bound::Unbounded => f64::MAX,
        }
    }
}

/// The digits 0–9, cross-joined into the numbers 1..=ROWS (portable: no
/// sequence engine, no recursion limit).
const NUMBERS: &str = "(SELECT a.d + 10 * b.d + 100 * c.d + 1000 * d.d + 10000 * e.d + 100000 * f.d + 1 AS g \
     FROM (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 \
           UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) a, \
          (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 \
           UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) b, \
          (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 \
           UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) c, \
          (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 \
           UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) d, \
          (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 \
           UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) e, \
          (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2) f) AS n";

/// Fills the tables with `ROWS` tasks over 4 queues and 8 jobs: 40 %
/// pending (1 in 50 of them due in the far future), 40 % done, the rest
/// retry, dead or cancelled, with 150 running for worker `w7` (claim tokens
/// 0–6). One task in ten is a workflow step (step 0 of its own run, with its
/// `runs` and `run_steps` rows) and one in five has a unique key (with its
/// `unique_keys` row). Queue `q2` is paused.
fn fill(prefix: &str) -> [String; 5] {
    let state = "CASE WHEN g % 2000 = 7 THEN 'running' WHEN g % 20 < 8 THEN 'pending' WHEN g % 20 < 16 THEN 'done' \
                 WHEN g % 20 = 16 THEN 'retry' WHEN g % 20 < 19 THEN 'dead' ELSE 'cancelled' END";
    [
        format!(
            "INSERT INTO `{prefix}tasks` (id, queue, job, state, attempt, max_attempts, priority, run_at, created_at, \
             started_at, finished_at, unique_key, worker, claim, payload, run_id, step) \
             SELECT g, CONCAT('q', g % 4), CONCAT('job', g % 8), s, 1, 3, (g % 3) - 1, \
                    IF(g % 50 = 0, 9000000000000, 1000 + g), 1000 + g, \
                    IF(s IN ('pending', 'retry'), NULL, 1500 + g), IF(s IN ('done', 'dead', 'cancelled'), 2000 + g, NULL), \
                    IF(g % 5 = 0, CONCAT('k', g), NULL), IF(s = 'running', 'w7', NULL), IF(s = 'running', g % 7, NULL), \
                    'x', IF(g % 10 = 0, g DIV 10, NULL), IF(g % 10 = 0, 0, NULL) \
             FROM (SELECT g, {state} AS s FROM {NUMBERS} WHERE g <= {ROWS}) AS t"
        ),
        format!(
            "INSERT INTO `{prefix}runs` (id, workflow, queue, state, steps, created_at, finished_at) \
             SELECT g DIV 10, 'wf', 'q0', IF(g % 20 = 0, 'done', 'running'), \
                    '[{{\"name\":\"a\",\"after\":[],\"max_attempts\":1,\"priority\":0}}]', g, IF(g % 20 = 0, g, NULL) \
             FROM {NUMBERS} WHERE g <= {ROWS} AND g % 10 = 0"
        ),
        format!(
            "INSERT INTO `{prefix}run_steps` (run_id, step, task_id, output) \
             SELECT g DIV 10, 0, g, IF(g % 20 = 0, 'x', NULL) FROM {NUMBERS} WHERE g <= {ROWS} AND g % 10 = 0"
        ),
        format!(
            "INSERT INTO `{prefix}unique_keys` (key_hash, task_id, created_at) \
             SELECT UNHEX(SHA2(CONCAT('job', g % 8, CHAR(0), 'k', g), 256)), g, 1000 + g \
             FROM {NUMBERS} WHERE g <= {ROWS} AND g % 5 = 0"
        ),
        format!("INSERT INTO `{prefix}paused_queues` (queue, paused_at) VALUES ('q2', 1000)"),
    ]
}

/// `sql` with each `?` replaced by the next of `args` (SQL literals). The
/// statements have no `?` but their parameters.
fn inline(sql: &str, args: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut args = args.iter();
    for c in sql.chars() {
        if c == '?' {
            out.push_str(args.next().copied().unwrap_or("NULL"));
        } else {
            out.push(c);
        }
    }
    out
}

/// What a plan reads of the big tables: the rows read (`r_rows` times
/// `r_loops`, or the estimate without them) and the accesses that scan.
fn walk(plan: &Value, big: &[String], rows: &mut f64, scans: &mut Vec<String>) {
    match plan {
        Value::Object(map) => {
            if let Some(Value::String(table)) = map.get("table_name")
                && big.iter().any(|b| b == table)
            {
                let access = map.get("access_type").and_then(Value::as_str).unwrap_or("");
                let loops = map.get("r_loops").and_then(Value::as_f64).unwrap_or(1.0);
                let read = map.get("r_rows").or_else(|| map.get("rows")).and_then(Value::as_f64).unwrap_or(0.0);
                *rows += loops * read;
                if access == "ALL" || access == "index" {
                    scans.push(format!("{access} on {table} ({read} rows per loop, {loops} loops)"));
                }
            }
            for value in map.values() {
                walk(value, big, rows, scans);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, big, rows, scans);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn no_statement_scans_the_finished_rows() {
    let url = errand_runtime::testing::service_url("ERRAND_MYSQL_URL");
    let prefix = format!("et_plans_{}_", std::process::id());
    let backend =
        crate::MysqlBackend::builder().namespace(&prefix).connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    let mut conn = MySqlConnection::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    let outcome = check_plans(&mut conn, &prefix).await;
    let tables = [
        "tasks",
        "unique_keys",
        "workers",
        "served_jobs",
        "runs",
        "run_steps",
        "paused_queues",
        "schedules",
        "migrations",
    ]
    .map(|t| format!("`{prefix}{t}`"))
    .join(", ");
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {tables}")).execute(&mut conn).await;
    drop(backend);
    if let Err(failures) = outcome {
        panic!("{} statement(s) read too much:\n{}", failures.len(), failures.join("\n\n"));
    }
}

async fn check_plans(conn: &mut MySqlConnection, prefix: &str) -> Result<(), Vec<String>> {
    let must = |e: sqlx::Error| vec![e.to_string()];
    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").execute(&mut *conn).await.map_err(must)?;
    for sql in fill(prefix) {
        sqlx::query(&sql).execute(&mut *conn).await.map_err(must)?;
    }
    sqlx::query(&format!("ANALYZE TABLE `{prefix}tasks`, `{prefix}unique_keys`, `{prefix}runs`, `{prefix}run_steps`"))
        .fetch_all(&mut *conn)
        .await
        .map_err(must)?;
    let version: String =
        sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)").fetch_one(&mut *conn).await.map_err(must)?;
    let analyze = if version.to_ascii_lowercase().contains("mariadb") { "ANALYZE" } else { "EXPLAIN" };
    let q = Queries::new(prefix);
    let big: Vec<String> =
        ["tasks", "unique_keys", "runs", "run_steps"].iter().map(|t| format!("{prefix}{t}")).collect();
    let render_one = |file: &str| render(file, prefix).into_iter().next().unwrap_or_default();
    let now = "5000000";
    let acks = r#"'[[107,"d","bnVsbA==",null,null],[2107,"r",null,9,"boom"],[4107,"x",null,null,"x"],[6107,"s",null,9,null]]'"#;
    let ids = "'[1,2,3,10,20,107,2107]'";
    let held = r#"'[[107,"w7"],[2107,"w7"]]'"#;
    let list = |filter: errand_runtime::TaskFilter, queues: Option<&[String]>| {
        let (sql, args) = crate::expose::list_for_tests(&q.select_task, &filter, queues);
        inline(&sql, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    use errand_runtime::{TaskFilter, TaskState};
    let by = |queue: Option<&str>, state: Option<TaskState>, job: Option<&str>| TaskFilter {
        queue: queue.map(str::to_owned),
        state,
        job: job.map(str::to_owned),
        limit: 50,
        after: None,
    };
    let runs = |workflow: bool, state: bool| crate::workflow::run_listing(&q.run_ids, workflow, state).to_owned();
    let queues = ["q0".to_owned(), "q1".to_owned(), "q2".to_owned(), "q3".to_owned()];
    let cases: Vec<(&str, String, Bound)> = vec![
        ("claim (update)", inline(&q.claim[0], &["'q1'", "'job1'", now, "'q1'", "64", "'w9'", "99", now]), Bound::Few),
        // A paused queue: the lookup in paused_queues comes first, and no
        // task is read.
        (
            "claim of a paused queue",
            inline(&q.claim[0], &["'q2'", "'job2'", now, "'q2'", "64", "'w9'", "99", now]),
            Bound::Nothing,
        ),
        ("claim (read back)", inline(&q.claim[1], &["'w7'", "3"]), Bound::Few),
        (
            "next due / idle probe",
            inline(&q.earliest, &["'q1'", "'job1'", "'q1'", "'job1'", "'q1'", "'job1'", now, "'q1'"]),
            Bound::Few,
        ),
        (
            "next due of a paused queue",
            inline(&q.earliest, &["'q2'", "'job2'", "'q2'", "'job2'", "'q2'", "'job2'", now, "'q2'"]),
            Bound::Few,
        ),
        ("ack", inline(&q.ack, &[acks, now, "'w7'"]), Bound::Few),
        ("progress", inline(&q.progress, &[r#"'[[107,50,"half"],[2107,10,""],[4107,1,"x"]]'"#, "'w7'"]), Bound::Few),
        ("mark dead", inline(&q.mark_dead, &[r#"'[[107,"w7","e"]]'"#, now]), Bound::Few),
        ("release claims", inline(&q.release_claims, &["'[1,2]'", "'w7'"]), Bound::Few),
        ("orphans", inline(&q.orphans, &["30000"]), Bound::Running),
        ("rescue", inline(&q.rescue, &[held, now, now, "30000"]), Bound::Few),
        ("rescue steps", inline(&q.rescue_steps, &[held, "30000"]), Bound::Few),
        ("forget", inline(&q.forget, &[held, "30000"]), Bound::Few),
        ("release", inline(&q.release[0], &["'w7'"]), Bound::Running),
        ("release cancelled", inline(&q.release[1], &["'w7'"]), Bound::Running),
        ("cancelled tasks", inline(&q.cancelled_tasks, &["'w7'"]), Bound::Running),
        ("unserved", inline(&q.unserved, &["'q1'", "'q1'", "'q1'", "'q1'", "1000"]), Bound::Unbounded),
        ("served lock", inline(&q.served_lock[1], &["1000", "'q1'", "'job1'"]), Bound::Few),
        ("waiting runs", inline(&q.waiting_runs, &["'q1'", "'job1'", "1500"]), Bound::Few),
        ("bury steps", inline(&q.bury_steps, &["'q1'", "'job1'", "1500"]), Bound::Few),
        // Burial walks the job's waiting rows (tasks_claim orders them by
        // priority first, so `run_at <= ?` does not narrow the range).
        ("bury unserved", inline(&q.bury_unserved, &["'r'", now, "'q1'", "'job1'", "1500"]), Bound::Unbounded),
        ("purge queues", render_one(include_str!("../sql/purge_queues.sql")), Bound::Few),
        ("purge tasks", inline(&q.purge_tasks, &["'q1'", "2000", now]), Bound::Few),
        ("purge delete", inline(&q.purge_delete, &[ids]), Bound::Few),
        ("purge runs", inline(&q.purge_runs, &[now, "2000"]), Bound::Few),
        ("purge run steps", inline(&q.purge_run_rows[0], &[ids]), Bound::Few),
        ("purge run rows", inline(&q.purge_run_rows[1], &[ids]), Bound::Few),
        ("unique key", inline(&q.push_unique[1], &["'job0'", "'k40'"]), Bound::Few),
        ("unique key retention", inline(&q.purge_keys, &[now, "2000"]), Bound::Few),
        ("counts", q.counts.clone(), Bound::Unbounded),
        ("list queues of a state", inline(&q.list_queues, &["'done'", "'done'"]), Bound::Few),
        ("list by queue and state", list(by(Some("q1"), Some(TaskState::Done), None), None), Bound::Few),
        ("list by queue", list(by(Some("q1"), None, None), None), Bound::Few),
        ("list by queue, running", list(by(Some("q1"), Some(TaskState::Running), None), None), Bound::Running),
        ("list by state", list(by(None, Some(TaskState::Dead), None), Some(&queues)), Bound::Few),
        ("list by state, cancelled", list(by(None, Some(TaskState::Cancelled), None), Some(&queues)), Bound::Few),
        ("list all", list(by(None, None, None), None), Bound::Few),
        ("one task", format!("{} WHERE id = 107", q.select_task), Bound::Few),
        ("workers", inline(&q.workers, &["30000"]), Bound::Few),
        ("retry task", inline(&q.retry_task[1], &[now, "19"]), Bound::Few),
        ("cancel task (lock)", inline(&q.cancel_task[0], &["20"]), Bound::Few),
        ("cancel task", inline(&q.cancel_task[1], &[now, "20"]), Bound::Few),
        ("task runs", inline(&q.task_runs, &[ids]), Bound::Few),
        ("run lock", inline(&q.run_lock, &["'[1,2,3]'"]), Bound::Few),
        ("step runs", inline(&q.step_runs, &[ids, "'w7'"]), Bound::Few),
        ("step tasks", inline(&q.step_tasks, &[ids, "'w7'"]), Bound::Few),
        ("run progress", inline(&q.run_progress, &["'[1,2,3]'"]), Bound::Few),
        ("runs done", inline(&q.runs_done, &["'[1,2,3]'", now]), Bound::Few),
        ("run fails", inline(&q.run_fail[0], &["'e'", now, "3"]), Bound::Few),
        ("run cancels its running steps", inline(&q.run_fail[1], &[now, "3"]), Bound::Few),
        ("run cancels its waiting steps", inline(&q.run_fail[2], &[now, "3"]), Bound::Few),
        // Task 15 is done, not a step, and has a unique key.
        ("delete task", inline(&q.delete_task, &["15"]), Bound::Few),
        ("run", inline(&q.run_select, &["3"]), Bound::Few),
        // Listings of runs, newest first: filtered by a state or workflow
        // that no run has, they must still not walk the 30,000 runs.
        ("list runs", inline(&runs(false, false), &["9223372036854775807", "50"]), Bound::Few),
        ("list runs, a page", inline(&runs(false, false), &["20000", "50"]), Bound::Few),
        ("list runs by state", inline(&runs(false, true), &["9223372036854775807", "'failed'", "50"]), Bound::Few),
        ("list runs by workflow", inline(&runs(true, false), &["9223372036854775807", "'other'", "50"]), Bound::Few),
        // Deep pages of a common state: not every newer run of the state.
        ("list runs by state, a page", inline(&runs(false, true), &["10000", "'done'", "50"]), Bound::Few),
        ("list runs by workflow, a page", inline(&runs(true, false), &["20000", "'wf'", "50"]), Bound::Few),
        (
            "list runs by workflow and state",
            inline(&runs(true, true), &["20000", "'wf'", "'failed'", "50"]),
            Bound::Few,
        ),
        ("run steps", inline(&q.run_steps, &["3"]), Bound::Few),
        ("paused queues", q.paused_queues.clone(), Bound::Few),
        ("last tick", inline(&q.last_tick, &["'job1/every 1000ms'"]), Bound::Few),
    ];
    let mut failures = Vec::new();
    for (name, sql, bound) in cases {
        let mut tx = conn.begin().await.map_err(must)?;
        let plan = sqlx::query_scalar::<_, String>(&format!("{analyze} FORMAT=JSON {sql}")).fetch_one(&mut *tx).await;
        let _ = tx.rollback().await;
        let plan = match plan {
            Ok(plan) => plan,
            Err(error) => {
                failures.push(format!("{name}: {error}\n{sql}"));
                continue;
            }
        };
        let json: Value = serde_json::from_str(&plan).unwrap_or(Value::Null);
        let (mut rows, mut scans) = (0.0, Vec::new());
        walk(&json, &big, &mut rows, &mut scans);
        // MySQL's plans carry estimates only: "nothing" is checked on MariaDB.
        let bound = if matches!(bound, Bound::Nothing) && analyze == "EXPLAIN" { Bound::Few } else { bound };
        let scans_allowed = matches!(bound, Bound::Unbounded) && scans.iter().all(|s| s.starts_with("index"));
        if (!scans.is_empty() && !scans_allowed) || rows > bound.rows() {
            failures.push(format!("{name}: {rows} rows read (bound {bound:?}), scans {scans:?}\n{sql}\n{plan}"));
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures) }
}
