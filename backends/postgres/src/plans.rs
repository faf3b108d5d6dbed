//! The statements' plans on a big table: what keeps claims, acks and the
//! dashboard fast however many tasks wait or are done.
//!
//! Each statement the backend runs per claim, ack, enqueue, heartbeat,
//! rescue, burial, retention batch, progress report, pause, schedule tick,
//! dashboard view (tasks and workflow runs) or deletion is executed by `EXPLAIN (ANALYZE, BUFFERS)` against
//! 300,000 tasks, with PostgreSQL's generic plan (what a cached prepared statement
//! runs after its fifth execution) and with a custom one, then rolled back.
//! The buffers it touched must stay far below the table's size, and none may
//! scan the table: a lost index or a plan that walks every waiting row shows
//! up here as a failure naming the statement and its plan, not as a slow
//! queue in production.

use std::time::Duration;

use errand_runtime::workflow::{RunFilter, RunState};
use errand_runtime::{TaskFilter, TaskState};
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};

use crate::PostgresBackend;
use crate::expose::list_sql;
use crate::workflow::run_ids_sql;

/// Tasks in the table.
const ROWS: i64 = 300_000;

/// Tasks running for worker `w7`, the only running ones.
const RUNNING: i64 = 150;

/// How much of the table a statement may touch, in buffers (hits and reads,
/// counted per access). A scan of the table touches some 5,000 heap pages,
/// an index over its waiting rows some 1,500.
#[derive(Clone, Copy, Debug)]
enum Bound {
    /// A few rows: the claims, listings and deletes below take at most 10
    /// per queue, the acks and cancels name a few ids.
    Few,
    /// The running tasks, of one worker or all of them, and no more: an ack
    /// walks its worker's running tasks (at most its concurrency plus its
    /// buffer) for each kind of outcome, rescue and release read them all.
    Running,
    /// As many as the statement reads by definition: counts read every
    /// task; a listing by job but not queue walks the state's tasks of every
    /// queue in id order until it has found enough (see `Expose::tasks`).
    Unbounded,
}

impl Bound {
    fn buffers(self) -> i64 {
        match self {
            Bound::Few => 600,
            // Each kind of outcome of an ack reads each running task once,
            // then writes what it changes.
            Bound::Running => 20 * RUNNING,
            Bound::Unbounded => i64::MAX,
        }
    }
}

/// Fills a fresh schema with `ROWS` tasks over 4 queues and 8 jobs: 40 %
/// pending (1 in 50 of them due in the far future), 40 % done, and the rest
/// retry, dead or cancelled, with 150 running for worker `w7`.
/// One task in ten is a workflow step (step 0 of its own run, with its
/// `runs` and `run_steps` rows) and one in five has a unique key. The
/// columns no statement searches on (`trace`, progress) are left NULL.
const FILL: &str = "
INSERT INTO __SCHEMA__.tasks (queue, job, state, attempt, max_attempts, priority, run_at, created_at,
                             started_at, finished_at, unique_key, worker, payload, run_id, step, claim)
SELECT 'q' || (g % 4), 'job' || (g % 8), s.state, 1, 3, (g % 3) - 1,
       CASE WHEN g % 50 = 0 THEN 9000000000000 ELSE 1000 + g END, 1000 + g,
       CASE WHEN s.state NOT IN ('pending', 'retry') THEN 1500 + g END,
       CASE WHEN s.state IN ('done', 'dead', 'cancelled') THEN 2000 + g END,
       CASE WHEN g % 5 = 0 THEN 'k' || g END,
       CASE WHEN s.state = 'running' THEN 'w7' END,
       '\\x00', CASE WHEN g % 10 = 0 THEN g / 10 END, CASE WHEN g % 10 = 0 THEN 0 END,
       CASE WHEN s.state = 'running' THEN g % 7 END
FROM generate_series(1, $1) AS g
CROSS JOIN LATERAL (SELECT CASE
    WHEN g % 2000 = 7 THEN 'running' -- RUNNING of them
    WHEN g % 20 < 8 THEN 'pending'
    WHEN g % 20 < 16 THEN 'done'
    WHEN g % 20 = 16 THEN 'retry'
    WHEN g % 20 < 19 THEN 'dead'
    ELSE 'cancelled' END AS state) AS s";

/// The runs of the workflow steps of [`FILL`] (a third with a trace
/// context; new runs get the ids after theirs), and their `run_steps` rows.
const FILL_RUNS: &str = "
INSERT INTO __SCHEMA__.runs (id, workflow, queue, state, steps, created_at, finished_at, trace)
SELECT g / 10, 'wf', 'q0', CASE WHEN g % 20 = 0 THEN 'done' ELSE 'running' END,
       '[{\"name\":\"a\",\"after\":[],\"max_attempts\":1,\"priority\":0}]', g,
       CASE WHEN g % 20 = 0 THEN g END,
       CASE WHEN g % 30 = 0 THEN '00-4bf92f3577b34da6a3ce929d0e0e4736-' || lpad(to_hex(g), 16, '0') || '-01' END
FROM generate_series(10, $1, 10) AS g;
SELECT setval(pg_get_serial_sequence('__SCHEMA__.runs', 'id'), $1 / 10);
INSERT INTO __SCHEMA__.run_steps (run_id, step, task_id, output)
SELECT g / 10, 0, g, CASE WHEN g % 20 = 0 THEN '\\x00'::bytea END
FROM generate_series(10, $1, 10) AS g";

/// Walks a plan tree: the most buffers one node touched (a node's count
/// includes its children's; the statements in a data-modifying CTE are nodes
/// of their own), and the sequential scans of `tasks`, `runs`, `run_steps`,
/// `paused_queues` and `schedules`.
fn walk(plan: &Value, most: &mut i64, scans: &mut Vec<String>) {
    let buffers = plan["Shared Hit Blocks"].as_i64().unwrap_or(0) + plan["Shared Read Blocks"].as_i64().unwrap_or(0);
    *most = (*most).max(buffers);
    let big = ["tasks", "runs", "run_steps", "paused_queues", "schedules"];
    if plan["Node Type"] == "Seq Scan" && big.iter().any(|t| plan["Relation Name"] == *t) {
        scans.push(format!("Seq Scan on {} ({} rows)", plan["Relation Name"], plan["Actual Rows"]));
    }
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            walk(child, most, scans);
        }
    }
}

/// A statement and the values to run it with.
struct Case {
    name: String,
    sql: String,
    bound: Bound,
    /// Its parameters' types, as the backend binds them.
    types: &'static str,
    /// SQL literals, one per parameter.
    args: String,
}

impl Case {
    fn new(name: impl Into<String>, sql: &str, types: &'static str, args: impl Into<String>) -> Self {
        Case { name: name.into(), sql: sql.to_owned(), bound: Bound::Few, types, args: args.into() }
    }

    fn reads(mut self, bound: Bound) -> Self {
        self.bound = bound;
        self
    }

    /// Runs the statement by `EXPLAIN (ANALYZE, BUFFERS)` under `mode` (a
    /// `plan_cache_mode`), rolled back; returns the plan's root node.
    async fn explain(&self, conn: &mut PgConnection, mode: &str) -> Result<Value, sqlx::Error> {
        let (types, args) = match self.types {
            "" => (String::new(), String::new()),
            types => (format!("({types})"), format!("({})", self.args)),
        };
        let mut tx = conn.begin().await?;
        let set = format!("SET LOCAL plan_cache_mode = {mode}");
        sqlx::raw_sql(&set).execute(&mut *tx).await?;
        let prepare = format!("PREPARE errand_plan{types} AS {}", self.sql);
        sqlx::raw_sql(&prepare).execute(&mut *tx).await?;
        let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE errand_plan{args}");
        // The plan comes as `json`, whose binary form is its text.
        let explained: String = sqlx::query(&explain).fetch_one(&mut *tx).await?.try_get_unchecked(0)?;
        tx.rollback().await?;
        // PREPARE is not transactional.
        sqlx::raw_sql("DEALLOCATE errand_plan").execute(&mut *conn).await?;
        let explained: Value = serde_json::from_str(&explained).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(explained[0]["Plan"].clone())
    }
}

/// Drops the test's schema when the test ends, passed or panicked.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(10), move || async move {
            let mut conn = PgConnection::connect(&url).await?;
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            sqlx::raw_sql(&sql).execute(&mut conn).await
        });
    }
}

#[tokio::test]
#[cfg_attr(errand_skip, ignore = "set ERRAND_POSTGRES_URL to run against a server")]
async fn statements_touch_few_buffers_on_a_big_table() {
    let url = errand_runtime::testing::service_url("ERRAND_POSTGRES_URL");
    let schema =
        format!("errand_test_{}_plans{}", errand_runtime::Timestamp::now().as_millis() / 1000, std::process::id());
    let _drop = DropSchema { url: url.clone(), schema: schema.clone() };
    let backend = PostgresBackend::builder().namespace(&schema).connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    let q = &backend.inner.queries;
    let mut conn = backend.inner.pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let fill = FILL.replace("__SCHEMA__", &q.schema);
    sqlx::query(&fill).bind(ROWS).execute(&mut *conn).await.unwrap_or_else(|e| panic!("filling the table: {e}"));
    let fill_runs = FILL_RUNS.replace("__SCHEMA__", &q.schema);
    for statement in fill_runs.split(';') {
        sqlx::query(statement).bind(ROWS).execute(&mut *conn).await.unwrap_or_else(|e| panic!("filling runs: {e}"));
    }
    // Statistics, and a visibility map for index-only scans, as autovacuum
    // would leave them.
    for table in ["tasks", "runs", "run_steps"] {
        let vacuum = format!("VACUUM ANALYZE {}.{table}", q.schema);
        sqlx::raw_sql(&vacuum).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
    }

    // Worker `w7`, alive, runs every running task; `chan` is the NOTIFY
    // channel.
    let worker = format!(
        "INSERT INTO {}.workers (id, queue, job, concurrency, started_at, last_seen) \
         VALUES ('w7', 'q3', 'job7', 64, 1, 9000000000000)",
        q.schema
    );
    sqlx::raw_sql(&worker).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
    // Jobs 1 and 5 (all of queue q1's) are served on q1, and job 2 on q2;
    // job 6 of q2 is not.
    let served = format!(
        "INSERT INTO {}.served_jobs (queue, job, last_seen) \
         VALUES ('q1', 'job1', 9000000000000), ('q1', 'job5', 9000000000000), ('q2', 'job2', 9000000000000)",
        q.schema
    );
    sqlx::raw_sql(&served).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
    // Queue q0 is paused, and so are 2,000 queues without tasks; there are
    // 2,000 schedules. Every claim probes `paused_queues`: it must stay a
    // primary-key lookup however many queues are paused (on a table of one
    // page, PostgreSQL reads the page instead: one buffer either way).
    let paused = format!(
        "INSERT INTO {0}.paused_queues (queue, paused_at) SELECT 'p' || g, 1 FROM generate_series(1, 2000) AS g; \
         INSERT INTO {0}.paused_queues (queue, paused_at) VALUES ('q0', 1); \
         INSERT INTO {0}.schedules (name, last_tick) SELECT 's' || g, 1000 * g FROM generate_series(1, 2000) AS g",
        q.schema
    );
    sqlx::raw_sql(&paused).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
    for table in ["paused_queues", "schedules"] {
        let vacuum = format!("VACUUM ANALYZE {}.{table}", q.schema);
        sqlx::raw_sql(&vacuum).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let mut cases = vec![
        Case::new("claim", &q.claim, "text, bigint, text, text, bigint, bigint", "'w1', 5000, 'q1', 'job1', 10, 1"),
        Case::new(
            "claim with nothing due",
            &q.claim,
            "text, bigint, text, text, bigint, bigint",
            "'w1', 500, 'q1', 'job1', 10, 1",
        ),
        Case::new(
            "claim from a paused queue",
            &q.claim,
            "text, bigint, text, text, bigint, bigint",
            "'w1', 5000, 'q0', 'job0', 10, 1",
        ),
        Case::new(
            "record progress",
            &q.record_progress,
            "text, bigint[], smallint[], text[]",
            "'w7', '{2007,4007,150000}', '{10,20,30}', '{a,b,c}'",
        )
        .reads(Bound::Running),
        Case::new("pause a queue", &q.pause_queue, "text, bigint", "'q1', 1"),
        Case::new("resume a queue", &q.resume_queue, "text, text", "'q0', 'chan'"),
        Case::new("last tick", &q.last_tick, "text", "'s7'"),
        Case::new("record a tick", &q.record_tick, "text, bigint", "'s7', 99000"),
        Case::new(
            "enqueue one",
            &q.push_one,
            "bigint, text, text, text, bytea, bigint, smallint, integer, text",
            r"1, 'chan', 'q1', 'job1', '\x00', 1, 0, 3, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'",
        ),
        Case::new(
            "enqueue a batch",
            &q.push,
            "bigint, text, text[], text[], bytea[], bigint[], smallint[], integer[], text[]",
            r#"1, 'chan', '{q1,q2}', '{job1,job2}', '{"\\x00","\\x01"}', '{1,2}', '{0,1}', '{3,3}', '{t,NULL}'"#,
        ),
        Case::new(
            "enqueue with a unique key",
            &q.push_unique,
            "bigint, text, text[], text[], bytea[], bigint[], smallint[], integer[], text[], text[], bigint[]",
            r#"1, NULL, '{q1}', '{job1}', '{"\\x00"}', '{1}', '{0}', '{3}', '{t}', '{k5}', '{0}'"#,
        ),
        Case::new(
            "ack",
            &q.ack,
            "text, bigint, bigint[], bytea[], bigint[], bigint[], text[], bigint[], text[], bigint[], bigint[]",
            r#"'w7', 1, '{2007}', '{"\\x00"}', '{4007}', '{1}', '{e}', '{6007}', '{e}', '{8007}', '{1}'"#,
        )
        .reads(Bound::Running),
        Case::new(
            "workflow step ack",
            &q.step_ack,
            "text, bigint, bigint[], bytea[], bigint[], bigint[], text[], bigint[], text[], bigint[], bigint[]",
            r#"'w7', 1, '{2007}', '{"\\x00"}', '{4007}', '{1}', '{e}', '{6007}', '{e}', '{8007}', '{1}'"#,
        )
        .reads(Bound::Running),
        Case::new("lock the runs of steps", &q.run_lock, "bigint[], text, bigint[]", "'{2010,4010}', 'w7', '{}'"),
        Case::new("lock runs by id", &q.run_lock, "bigint[], text, bigint[]", "'{}', 'w7', '{201,401}'"),
        Case::new("lock the run of a task to cancel", &q.run_lock, "bigint[], text, bigint[]", "'{2010}', NULL, '{}'"),
        Case::new("lock the runs of unserved steps", &q.run_lock_waiting, "text, text, bigint", "'q2', 'job2', 1500"),
        Case::new("lock the runs of orphaned steps", &q.run_lock_orphans, "bigint", "1").reads(Bound::Running),
        Case::new("rescue orphaned steps", &q.rescue_steps, "bigint, bigint", "1, 1").reads(Bound::Running),
        Case::new(
            "bury unserved tasks",
            &q.bury_unserved,
            "text, text, bigint, text, bigint",
            "'q1', 'job1', 1500, 'gone', 1",
        ),
        Case::new("the steps of runs", &q.run_progress, "bigint[]", "'{201,401}'"),
        Case::new(
            "persist run plans",
            &q.run_apply,
            "bigint, text, bigint[], integer[], bigint[], bytea[], bigint[], integer[], text[], text[], bytea[], \
             integer[], smallint[], text[], bigint[], bigint[], text[]",
            r#"1, 'chan', '{201}', '{0}', '{2010}', '{"\\x01"}', '{203}', '{1}', '{q0}', '{wf}', '{"\\x00"}',
               '{1}', '{0}', '{t}', '{205}', '{207}', '{e}'"#,
        ),
        Case::new(
            "start a run",
            &q.run_insert,
            "text, text, text, bigint, text",
            r#"'wf', 'q0', '[{"name":"a","after":[],"max_attempts":1,"priority":0}]', 1, 't'"#,
        ),
        Case::new("a run", &q.run_select, "bigint", "1501"),
        Case::new("a run's steps", &q.run_steps, "bigint", "1501"),
        Case::new("mark dead", &q.mark_dead, "text, bigint[], text[], bigint", "'w7', '{2007}', '{e}', 1")
            .reads(Bound::Running),
        Case::new("rescue", &q.rescue, "bigint, bigint, text", "1, 1, 'chan'").reads(Bound::Running),
        Case::new("release", &q.release, "text, text", "'w7', 'chan'").reads(Bound::Running),
        Case::new("release failed claims", &q.release_claims, "text, bigint[], text", "'w7', '{1,2}', 'chan'")
            .reads(Bound::Running),
        Case::new("cancelled tasks", &q.cancelled_tasks, "text", "'w7'"),
        Case::new("heartbeat", &q.heartbeat, "text, text, text, integer, bigint", "'w7', 'q3', 'job7', 64, 1"),
        Case::new("unserved jobs, every job served", &q.unserved, "text, bigint", "'q1', 1000"),
        // Counts the ~17,000 waiting tasks of the unserved job, and no more:
        // an index-only scan of their part of tasks_claim.
        Case::new("unserved jobs, one unserved", &q.unserved, "text, bigint", "'q2', 1000"),
        Case::new("check that a job is served", &q.served_check, "text, text, bigint", "'q1', 'job1', 1000"),
        Case::new("retention", &q.cleanup, "bigint, bigint", "3000, 10"),
        Case::new("retention of runs", &q.purge_runs, "bigint, bigint", "3000, 10"),
        Case::new("counts", &q.counts, "", "").reads(Bound::Unbounded),
        Case::new("a task by id", &q.task_by_id, "bigint", "150000"),
        Case::new("retry a dead task", &q.retry_task, "bigint, bigint, text", "150018, 1, 'chan'"),
        Case::new("cancel a task", &q.cancel_task, "bigint, bigint", "150001, 1"),
        Case::new("delete a done task", &q.delete_task, "bigint", "150009"),
        Case::new("delete a step task (refused)", &q.delete_task, "bigint", "150010"),
    ];
    // Listing runs: every shape of filter, on the first page and further.
    for workflow in [None, Some("wf"), Some("nope")] {
        for state in [None, Some(RunState::Running), Some(RunState::Failed)] {
            for before in [None, Some(15_000)] {
                let filter = RunFilter { workflow: workflow.map(str::to_owned), state, limit: 50, before: None };
                let mut args = vec![before.unwrap_or(i64::MAX).to_string(), "50".to_owned()];
                if let Some(workflow) = workflow {
                    args.push(format!("'{workflow}'"));
                }
                if let Some(state) = state {
                    args.push(format!("'{}'", state.as_str()));
                }
                let types = match args.len() {
                    2 => "bigint, bigint",
                    3 => "bigint, bigint, text",
                    _ => "bigint, bigint, text, text",
                };
                let name = format!("run ids {filter:?} before {before:?}");
                cases.push(Case::new(name, &run_ids_sql(&q.schema, &filter), types, args.join(", ")));
            }
        }
    }
    for queue in [None, Some("q1")] {
        for job in [None, Some("job1")] {
            for state in [None, Some(TaskState::Pending), Some(TaskState::Running), Some(TaskState::Done)] {
                let filter = TaskFilter {
                    queue: queue.map(str::to_owned),
                    job: job.map(str::to_owned),
                    state,
                    limit: 10,
                    after: None,
                };
                let literal = |v: Option<&str>| v.map_or("NULL".to_owned(), |v| format!("'{v}'"));
                let args =
                    format!("0, 10, {}, {}, {}", literal(queue), literal(job), literal(state.map(|s| s.as_str())));
                let sql = list_sql(&q.select_task, &q.schema, &filter);
                let case = Case::new(format!("list {filter:?}"), &sql, "bigint, bigint, text, text, text", args);
                let by_job_alone = queue.is_none() && job.is_some() && state != Some(TaskState::Running);
                cases.push(if by_job_alone { case.reads(Bound::Unbounded) } else { case });
            }
        }
    }

    let mut failures = Vec::new();
    for case in &cases {
        for mode in ["force_generic_plan", "force_custom_plan"] {
            let plan = case
                .explain(&mut conn, mode)
                .await
                .unwrap_or_else(|e| panic!("EXPLAIN of `{}` ({mode}) failed: {e}\n{}", case.name, case.sql));
            let (mut buffers, mut scans) = (0, Vec::new());
            walk(&plan, &mut buffers, &mut scans);
            let scanned = !scans.is_empty() && !matches!(case.bound, Bound::Unbounded);
            if buffers > case.bound.buffers() || scanned {
                failures.push(format!(
                    "{} ({mode}, {:?}: at most {} buffers): {buffers} buffers {scans:?}\n{plan:#}",
                    case.name,
                    case.bound,
                    case.bound.buffers()
                ));
            }
        }
    }
    drop(conn);
    assert!(
        failures.is_empty(),
        "{} statement(s) touch too much of a big table:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
