//! The SQL this backend runs, kept as files in `sql/` and `migrations/`.

use errand_runtime::backend::stored::Migration;

/// Declares [`MIGRATIONS`] and [`MIGRATION_NAMES`] from one list, so a
/// migration's name is always its file's (`migrations/<name>.sql`).
macro_rules! migrations {
    ($($version:literal $name:literal $description:literal,)*) => {
        /// Every migration, in version order. Append only: an applied
        /// migration must never change (its checksum is verified on every
        /// `migrate`).
        pub(crate) const MIGRATIONS: &[Migration] = &[$(Migration {
            version: $version,
            description: $description,
            sql: include_str!(concat!("../migrations/", $name, ".sql")),
        },)*];

        /// The name of each of [`MIGRATIONS`] (its file's, without `.sql`),
        /// in the same order.
        pub(crate) const MIGRATION_NAMES: &[&str] = &[$($name,)*];
    };
}

migrations! {
    1 "0001_create_tasks" "create tasks and workers",
    2 "0002_workflows" "workflows",
    3 "0003_served_retention_counts" "served jobs, retention and counts from partial indexes",
    4 "0004_progress_pause_schedules" "progress, paused queues and schedules",
    5 "0005_trace" "trace context of tasks and runs",
    6 "0006_claim_token" "claim tokens of hand-offs",
}

/// The name of the migration of `version` (`0004_progress_pause_schedules`).
pub(crate) fn migration_name(version: i64) -> String {
    MIGRATIONS
        .iter()
        .zip(MIGRATION_NAMES)
        .find(|(m, _)| m.version == version)
        .map_or_else(|| format!("{version:04}"), |(_, name)| (*name).to_owned())
}

pub(crate) const MIGRATIONS_TABLE: &str = include_str!("../sql/migrations_table.sql");
pub(crate) const MIGRATIONS_APPLIED: &str = include_str!("../sql/migrations_applied.sql");
pub(crate) const MIGRATION_RECORD: &str = include_str!("../sql/migration_record.sql");
pub(crate) const MIGRATIONS_EXIST: &str = include_str!("../sql/migrations_exist.sql");

pub(crate) const PUSH: &str = include_str!("../sql/push.sql");
pub(crate) const PUSH_UNIFORM: &str = include_str!("../sql/push_uniform.sql");
pub(crate) const PUSH_ONE: &str = include_str!("../sql/push_one.sql");
pub(crate) const PUSH_HANDED: &str = include_str!("../sql/push_handed.sql");
pub(crate) const FIND_UNIQUE: &str = include_str!("../sql/find_unique.sql");

pub(crate) const CLAIM: &str = include_str!("../sql/claim.sql");
pub(crate) const NEXT_DUE: &str = include_str!("../sql/next_due.sql");
pub(crate) const MARK_DEAD: &str = include_str!("../sql/mark_dead.sql");
pub(crate) const UNCLAIM: &str = include_str!("../sql/unclaim.sql");
pub(crate) const UNCLAIM_HANDED: &str = include_str!("../sql/unclaim_handed.sql");

pub(crate) const ACK_DONE: &str = include_str!("../sql/ack_done.sql");
pub(crate) const ACK_RETRY: &str = include_str!("../sql/ack_retry.sql");
pub(crate) const ACK_DEAD: &str = include_str!("../sql/ack_dead.sql");
pub(crate) const ACK_SNOOZE: &str = include_str!("../sql/ack_snooze.sql");
/// A workflow step worker's `done` and `dead` acks and the reads that
/// advance their runs, as one script that first begins the write
/// transaction (`BEGIN IMMEDIATE`): one round trip to the connection's
/// thread instead of five. ?1: done `[id]`s; ?2: dead `[id, error]`s; ?3:
/// now (ms); ?4: the acking worker. Every row it returns names its statement
/// in column `part`: `done` and `dead` (the steps really ended), `run` and
/// `step` (see [`RUNS_OF_TASKS`]). [`RUN_ADVANCE_COMMIT`] ends the
/// transaction.
///
/// SQLite prepares one statement at a time; sqlx's SQLite driver runs a
/// string of several in order on its thread, binding each `?NNN` to the
/// NNN-th argument of the whole script (the scripts number every parameter
/// for that reason). A transaction a script begins is not sqlx's: the caller
/// must close the connection if it cannot end it (`crate::ack`'s `Begun`).
pub(crate) const STEP_ACK: &str = concat!(
    "BEGIN IMMEDIATE;\n",
    include_str!("../sql/step_ack_done_batch.sql"),
    ";\n",
    include_str!("../sql/step_ack_dead_batch.sql"),
    ";\n",
    include_str!("../sql/runs_of_tasks.sql"),
    ";\n",
    include_str!("../sql/run_steps_of_tasks.sql"),
);
pub(crate) const FORGET_CANCELLED: &str = include_str!("../sql/forget_cancelled.sql");

pub(crate) const HEARTBEAT: &str = include_str!("../sql/heartbeat.sql");
pub(crate) const SERVE: &str = include_str!("../sql/serve.sql");
pub(crate) const RESCUE: &str = include_str!("../sql/rescue.sql");
pub(crate) const FORGET_LOST_CANCELLED: &str = include_str!("../sql/forget_lost_cancelled.sql");
pub(crate) const DELETE_STALE_WORKERS: &str = include_str!("../sql/delete_stale_workers.sql");
pub(crate) const RELEASE: &str = include_str!("../sql/release.sql");
pub(crate) const DELETE_WORKER: &str = include_str!("../sql/delete_worker.sql");
pub(crate) const RECORD_PROGRESS: &str = include_str!("../sql/record_progress.sql");
pub(crate) const CANCELLED_TASKS: &str = include_str!("../sql/cancelled_tasks.sql");
pub(crate) const UNSERVED: &str = include_str!("../sql/unserved.sql");
pub(crate) const BURY_UNSERVED: &str = include_str!("../sql/bury_unserved.sql");
pub(crate) const BURY_UNSERVED_STEPS: &str = include_str!("../sql/bury_unserved_steps.sql");

pub(crate) const PURGE_TASKS: &str = include_str!("../sql/purge_tasks.sql");
pub(crate) const PURGE_RUNS: &str = include_str!("../sql/purge_runs.sql");
pub(crate) const PURGE_RUN_STEPS: &str = include_str!("../sql/purge_run_steps.sql");

pub(crate) const COUNTS: &str = include_str!("../sql/counts.sql");
/// `SELECT <every column> FROM errand_tasks`, completed with a `WHERE` clause.
pub(crate) const SELECT_TASK: &str = include_str!("../sql/select_task.sql");
pub(crate) const TASK_BY_ID: &str = concat!(include_str!("../sql/select_task.sql"), "WHERE id = ?1");
pub(crate) const WORKERS: &str = include_str!("../sql/workers.sql");
pub(crate) const RETRY_TASK: &str = include_str!("../sql/retry_task.sql");
pub(crate) const DELETE_TASK: &str = include_str!("../sql/delete_task.sql");
pub(crate) const CANCEL_TASK: &str = include_str!("../sql/cancel_task.sql");
pub(crate) const PAUSE_QUEUE: &str = include_str!("../sql/pause_queue.sql");
pub(crate) const RESUME_QUEUE: &str = include_str!("../sql/resume_queue.sql");

pub(crate) const LAST_TICK: &str = include_str!("../sql/last_tick.sql");
pub(crate) const RECORD_TICK: &str = include_str!("../sql/record_tick.sql");

pub(crate) const RUN_INSERT: &str = include_str!("../sql/run_insert.sql");
pub(crate) const RUN_SELECT: &str = include_str!("../sql/run_select.sql");
pub(crate) const RUN_STEPS: &str = include_str!("../sql/run_steps.sql");
/// The running runs of the step tasks in ?1 and ?2 (JSON arrays of `[id,
/// ...]`) with their steps, as one script (see [`STEP_ACK`]): rows of
/// `part` `run` (columns `id`, `workflow`, `queue`, `steps`, `trace`) and
/// `step` (columns `run_id`, `step`, `output`).
pub(crate) const RUNS_OF_TASKS: &str =
    concat!(include_str!("../sql/runs_of_tasks.sql"), ";\n", include_str!("../sql/run_steps_of_tasks.sql"));
/// What the plans of a batch of runs write, as one script (see
/// [`STEP_ACK`]): the steps' outputs, the ready steps' tasks and their links
/// to their runs, the runs that are done. ?1: `[run_id, step, task_id,
/// output_hex]`s; ?2: ready steps, `[queue, job, payload_hex, max_attempts,
/// priority, run_id, step, trace]`; ?3: now (ms); ?4: ids of runs done. An
/// empty array (`[]`) writes nothing.
pub(crate) const RUN_ADVANCE: &str = concat!(
    include_str!("../sql/run_outputs_insert_batch.sql"),
    ";\n",
    include_str!("../sql/step_tasks_insert_batch.sql"),
    ";\n",
    include_str!("../sql/step_tasks_link_batch.sql"),
    ";\n",
    include_str!("../sql/runs_done_batch.sql"),
);
/// [`RUN_ADVANCE`], then `COMMIT`: ends the transaction [`STEP_ACK`] began.
pub(crate) const RUN_ADVANCE_COMMIT: &str = concat!(
    include_str!("../sql/run_outputs_insert_batch.sql"),
    ";\n",
    include_str!("../sql/step_tasks_insert_batch.sql"),
    ";\n",
    include_str!("../sql/step_tasks_link_batch.sql"),
    ";\n",
    include_str!("../sql/runs_done_batch.sql"),
    ";\nCOMMIT",
);
pub(crate) const RUN_FAIL: &str = include_str!("../sql/run_fail.sql");
pub(crate) const RUN_CANCEL_STEPS: &str = include_str!("../sql/run_cancel_steps.sql");
