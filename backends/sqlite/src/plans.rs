//! The statements' plans on a table of many tasks: what keeps claims, acks,
//! counts and retention fast however many tasks wait or are finished.
//!
//! Each statement the backend runs on the tasks (every shape of listing
//! included), retention's on runs and every shape of run listing is planned by `EXPLAIN QUERY PLAN` on a
//! database of 60,000 tasks in every state, before and after `ANALYZE` (an
//! application may run it on the file, and the planner then decides from
//! statistics). No statement may scan `errand_tasks` (or `errand_runs`)
//! without an index, nor read a whole index other than one that holds just
//! what it asks for (the counts read each group of states' index, rescue the
//! running tasks' one); and those that need only indexes (counts, the next
//! due time, unserved jobs, cancelled runs) must read them alone (`USING
//! COVERING INDEX`). A lost index or a plan that walks every task shows up
//! here, naming the statement and its plan, not as a slow queue in
//! production.

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Row, SqlitePool};

use errand_runtime::workflow::{RunFilter, RunState};
use errand_runtime::{TaskFilter, TaskState};

use crate::expose::list_sql;
use crate::workflow::run_list_sql;
use crate::{SqliteBackend, sql};

/// Tasks in the table.
const ROWS: i64 = 60_000;

/// Fills the table: 4 queues, 8 jobs; a third pending (1 in 50 due in the
/// far future), a third done, and the rest retry, running, dead and
/// cancelled; one task in ten a workflow step, one in five with a unique
/// key; 400 finished workflow runs and 100 running ones.
const FILL: &str = "
WITH RECURSIVE g (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?1),
s (n, state) AS (
    SELECT n, CASE
        WHEN n % 3 = 0 THEN 'pending'
        WHEN n % 3 = 1 THEN 'done'
        WHEN n % 12 = 2 THEN 'retry'
        WHEN n % 12 = 5 THEN 'running'
        WHEN n % 12 = 8 THEN 'dead'
        ELSE 'cancelled' END
    FROM g
)
INSERT INTO errand_tasks (queue, job, state, payload, attempt, max_attempts, priority, run_at, created_at,
                          started_at, finished_at, unique_key, worker, run_id, step)
SELECT 'q' || (n % 4), 'job' || (n % 8), state, x'00', 1, 3, (n % 3) - 1,
       CASE WHEN n % 50 = 0 THEN 9000000000000 ELSE 1000 + n END, 1000 + n,
       CASE WHEN state NOT IN ('pending', 'retry') THEN 1500 + n END,
       CASE WHEN state IN ('done', 'dead', 'cancelled') THEN 2000 + n END,
       CASE WHEN n % 5 = 0 THEN 'k' || n END,
       CASE WHEN state = 'running' THEN 'w' || (n % 7) END,
       CASE WHEN n % 10 = 0 THEN n / 10 END, CASE WHEN n % 10 = 0 THEN 0 END
FROM s;
WITH RECURSIVE g (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 500)
INSERT INTO errand_runs (workflow, queue, state, steps, created_at, finished_at)
SELECT 'wf', 'q0', CASE WHEN n % 5 = 0 THEN 'running' ELSE 'done' END, '[]', n,
       CASE WHEN n % 5 = 0 THEN NULL ELSE 1000 + n END
FROM g;
INSERT INTO errand_run_steps (run_id, step, task_id) SELECT id, 0, id FROM errand_runs;
INSERT INTO errand_workers (id, queue, job, concurrency, started_at, last_seen)
VALUES ('w1', 'q1', 'job1', 8, 0, 0);
INSERT INTO errand_served_jobs (queue, job, last_seen) VALUES ('q1', 'job1', 0);
";

/// A bound value of a statement's parameter.
#[derive(Clone, Copy)]
enum P {
    Int(i64),
    Text(&'static str),
}

use P::{Int, Text};

/// How a statement may read `errand_tasks`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Through indexes (or by id), never a scan of the table.
    Indexed,
    /// From indexes alone, never the table: each scan or search of it is
    /// `USING COVERING INDEX`.
    IndexOnly,
}

/// A statement: its name, text, values for its parameters, how it may read
/// the tasks, and the indexes it may read whole (each holds one bounded
/// group of tasks: the counts read every group, rescue every running task).
struct Statement {
    name: String,
    sql: String,
    params: Vec<P>,
    reads: Reads,
    scans: &'static [&'static str],
}

fn statement(name: impl Into<String>, sql: impl Into<String>, params: Vec<P>, reads: Reads) -> Statement {
    Statement { name: name.into(), sql: sql.into(), params, reads, scans: &[] }
}

/// Each statement of script `sql` (statements joined by `;` and a line
/// break), with the script's parameters: `EXPLAIN QUERY PLAN` plans only a
/// string's first statement.
fn script(name: &str, sql: &str, params: &[P], reads: Reads) -> Vec<Statement> {
    let parts: Vec<&str> = sql.split(";\n").collect();
    assert!(parts.len() > 1, "{name} is one statement, not a script");
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| statement(format!("{name}[{i}]"), part, params.to_vec(), reads))
        .collect()
}

/// The scripts: several statements sent at once, each planned alone.
fn scripts() -> Vec<Statement> {
    let tasks = Text("[[10], [20, \"e\"]]");
    let ready = Text("[[\"q0\", \"wf\", \"00\", 3, 0, 1, 1, \"00-ab-cd-01\"]]");
    let mut all = script(
        "step_ack",
        sql::STEP_ACK,
        &[Text("[[10]]"), Text("[[20, \"e\"]]"), Int(9000), Text("w1")],
        Reads::Indexed,
    );
    all.extend(script("runs_of_tasks", sql::RUNS_OF_TASKS, &[tasks, Text("[]")], Reads::Indexed));
    all.extend(script(
        "run_advance",
        sql::RUN_ADVANCE,
        &[Text("[[1, 1, 10, \"00\"]]"), ready, Int(9000), Text("[1, 2]")],
        Reads::Indexed,
    ));
    all
}

/// Every shape of listing (`Expose::tasks`): each filter given or not.
fn listings() -> Vec<Statement> {
    let mut shapes = Vec::new();
    for bits in 0..8 {
        let filter = TaskFilter {
            queue: (bits & 1 != 0).then(|| "q1".to_owned()),
            job: (bits & 2 != 0).then(|| "job1".to_owned()),
            state: (bits & 4 != 0).then_some(TaskState::Dead),
            ..TaskFilter::default()
        };
        let mut params = vec![Int(0)];
        params.extend(filter.queue.is_some().then_some(Text("q1")));
        params.extend(filter.job.is_some().then_some(Text("job1")));
        params.extend(filter.state.is_some().then_some(Text("dead")));
        params.push(Int(100));
        shapes.push(statement(format!("list {filter:?}"), list_sql(&filter), params, Reads::Indexed));
    }
    shapes
}

/// Every shape of run listing (`WorkflowStore::run_ids`): each filter given
/// or not. They walk the runs newest first by the primary key.
fn run_listings() -> Vec<Statement> {
    let mut shapes = Vec::new();
    for bits in 0..4 {
        let filter = RunFilter {
            workflow: (bits & 1 != 0).then(|| "wf".to_owned()),
            state: (bits & 2 != 0).then_some(RunState::Done),
            ..RunFilter::default()
        };
        let mut params = vec![Int(i64::MAX)];
        params.extend(filter.workflow.is_some().then_some(Text("wf")));
        params.extend(filter.state.is_some().then_some(Text("done")));
        params.push(Int(50));
        shapes.push(statement(format!("run_ids {filter:?}"), run_list_sql(&filter), params, Reads::Indexed));
    }
    shapes
}

/// Every statement the backend runs against the tasks and runs.
fn statements() -> Vec<Statement> {
    use Reads::{IndexOnly, Indexed};
    let ack = Text("[[1, \"00\"], [2, \"00\"]]");
    let ids = Text("[1, 2, 3]");
    let bury = || vec![Text("q1"), Text("job2"), Int(5000), Text("why"), Int(9000), Int(0)];
    let groups = &["errand_tasks_claim", "errand_tasks_running", "errand_tasks_finished", "errand_tasks_unknown_state"];
    vec![
        statement("claim", sql::CLAIM, vec![Text("w1"), Int(5000), Text("q1"), Text("job1"), Int(10)], Indexed),
        statement("next_due", sql::NEXT_DUE, vec![Text("q1"), Text("job1")], IndexOnly),
        Statement { scans: groups, ..statement("counts", sql::COUNTS, vec![], IndexOnly) },
        statement("unserved", sql::UNSERVED, vec![Text("q1"), Int(0)], IndexOnly),
        statement("bury_unserved", sql::BURY_UNSERVED, bury(), Indexed),
        statement("bury_unserved_steps", sql::BURY_UNSERVED_STEPS, bury(), Indexed),
        statement("purge_tasks", sql::PURGE_TASKS, vec![Int(30_000), Int(5000)], Indexed),
        statement("purge_runs", sql::PURGE_RUNS, vec![Int(1200), Int(5000)], Indexed),
        statement("purge_run_steps", sql::PURGE_RUN_STEPS, vec![ids], Indexed),
        statement("ack_done", sql::ACK_DONE, vec![ack, Int(9000), Text("w1")], Indexed),
        statement("ack_retry", sql::ACK_RETRY, vec![Text("[[1, 9000, \"e\"]]"), Text("w1")], Indexed),
        statement("ack_dead", sql::ACK_DEAD, vec![Text("[[1, \"e\"]]"), Int(9000), Text("w1")], Indexed),
        statement("ack_snooze", sql::ACK_SNOOZE, vec![Text("[[1, 9000]]"), Text("w1")], Indexed),
        statement("mark_dead", sql::MARK_DEAD, vec![Int(1), Text("e"), Int(9000), Text("w1")], Indexed),
        statement("unclaim", sql::UNCLAIM, vec![ids, Text("w1")], Indexed),
        statement(
            "record_progress",
            sql::RECORD_PROGRESS,
            vec![Text("[[5, 40, \"m\"], [17, 90, \"\"]]"), Text("w5")],
            Indexed,
        ),
        Statement {
            scans: &["errand_tasks_running"],
            ..statement("rescue", sql::RESCUE, vec![Int(9000), Int(0)], Indexed)
        },
        statement("release", sql::RELEASE, vec![Text("w1")], Indexed),
        statement("cancelled_tasks", sql::CANCELLED_TASKS, vec![Text("w1")], IndexOnly),
        statement("forget_cancelled", sql::FORGET_CANCELLED, vec![Text("w1")], Indexed),
        statement("forget_lost_cancelled", sql::FORGET_LOST_CANCELLED, vec![Int(0)], Indexed),
        statement("find_unique", sql::FIND_UNIQUE, vec![Text("k5"), Int(0), Text("job5")], Indexed),
        statement("task_by_id", sql::TASK_BY_ID, vec![Int(1)], Indexed),
        statement("retry_task", sql::RETRY_TASK, vec![Int(1), Int(9000)], Indexed),
        statement("delete_task", sql::DELETE_TASK, vec![Int(1)], Indexed),
        statement("cancel_task", sql::CANCEL_TASK, vec![Int(1), Int(9000)], Indexed),
        statement("run_cancel_steps", sql::RUN_CANCEL_STEPS, vec![Int(1), Int(9000)], Indexed),
        statement("run_steps", sql::RUN_STEPS, vec![Int(1)], Indexed),
    ]
}

/// The plan of `statement` with `params` bound, one line per step.
async fn plan(pool: &SqlitePool, statement: &str, params: &[P]) -> Vec<String> {
    let mut args = SqliteArguments::default();
    for p in params {
        let added = match *p {
            Int(n) => args.add(n),
            Text(s) => args.add(s),
        };
        added.unwrap_or_else(|e| panic!("cannot bind {e}"));
    }
    let explain = format!("EXPLAIN QUERY PLAN {statement}");
    let rows = sqlx::query_with(&explain, args)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("cannot plan {statement}: {e}"));
    rows.iter().map(|row| row.get::<String, _>("detail")).collect()
}

/// What is wrong with `plan` for `statement`: a scan of a table without an
/// index, a scan of a whole index it may not read whole, or a read of the
/// tasks' table itself where only indexes may be read.
fn problems(plan: &[String], reads: Reads, scans: &[&str]) -> Vec<String> {
    let tables = ["errand_tasks", "errand_runs", "t"];
    let mut found = Vec::new();
    for step in plan {
        let words: Vec<&str> = step.split_whitespace().collect();
        let (Some(verb), Some(target)) = (words.first(), words.get(1)) else { continue };
        if !matches!(*verb, "SCAN" | "SEARCH") || !tables.contains(target) {
            continue;
        }
        let index = words.iter().position(|w| *w == "INDEX").and_then(|i| words.get(i + 1));
        let by_id = step.contains("INTEGER PRIMARY KEY");
        if *verb == "SCAN" {
            match index {
                None => found.push(format!("scans the table: {step}")),
                Some(index) if !scans.contains(index) => found.push(format!("reads a whole index: {step}")),
                Some(_) => {}
            }
        } else if index.is_none() && !by_id {
            found.push(format!("searches without an index: {step}"));
        }
        if reads == Reads::IndexOnly && *target != "errand_runs" && !step.contains("COVERING INDEX") {
            found.push(format!("reads the table, not only an index: {step}"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_statement_scans_the_tasks() {
    let backend = SqliteBackend::connect("sqlite::memory:").await.unwrap_or_else(|e| panic!("connect: {e}"));
    let pool = backend.pool();
    sqlx::raw_sql(&FILL.replace("?1", &ROWS.to_string()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("cannot fill the table: {e}"));
    let mut failures = Vec::new();
    for analyzed in [false, true] {
        if analyzed {
            sqlx::query("ANALYZE").execute(pool).await.unwrap_or_else(|e| panic!("ANALYZE: {e}"));
        }
        for s in statements().into_iter().chain(scripts()).chain(listings()).chain(run_listings()) {
            let plan = plan(pool, &s.sql, &s.params).await;
            for problem in problems(&plan, s.reads, s.scans) {
                failures.push(format!("{} (analyzed: {analyzed}) {problem}\n  plan: {plan:#?}", s.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn problems_are_found() {
    let plan = |steps: &[&str]| steps.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let running = "SCAN errand_tasks USING INDEX errand_tasks_running";
    assert_eq!(problems(&plan(&["SCAN errand_tasks"]), Reads::Indexed, &[]).len(), 1);
    assert_eq!(problems(&plan(&["SCAN t"]), Reads::Indexed, &["errand_tasks_claim"]).len(), 1);
    assert_eq!(problems(&plan(&[running]), Reads::Indexed, &[]).len(), 1, "a whole index");
    assert!(problems(&plan(&[running]), Reads::Indexed, &["errand_tasks_running"]).is_empty());
    assert_eq!(problems(&plan(&[running]), Reads::IndexOnly, &["errand_tasks_running"]).len(), 1);
    let search = "SEARCH t USING COVERING INDEX errand_tasks_claim (queue=?)";
    assert!(problems(&plan(&[search]), Reads::IndexOnly, &[]).is_empty());
    assert!(
        problems(&plan(&["SEARCH errand_tasks USING INTEGER PRIMARY KEY (rowid=?)"]), Reads::Indexed, &[]).is_empty()
    );
    assert!(problems(&plan(&["SCAN a VIRTUAL TABLE INDEX 0:", "SCAN q"]), Reads::IndexOnly, &[]).is_empty());
}
