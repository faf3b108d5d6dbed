//! The SQL this backend runs, kept as files in `sql/` and `migrations/`, and
//! the parameters its ack statements share.
//!
//! # Templating
//!
//! Every file names the schema `__SCHEMA__`. [`Queries::new`] renders a file
//! for one schema by replacing every `__SCHEMA__` with the schema's name in
//! double quotes (`"errand"`); the builder has checked that the name is a
//! plain lowercase identifier, so quoting cannot be broken out of. Nothing
//! else is templated: a program that runs a file itself (the bench harness
//! runs `sql/claim.sql` and `sql/ack.sql` in bare loops) renders it the same
//! way, `sql.replace("__SCHEMA__", &format!("\"{schema}\""))`, and binds the
//! parameters documented at the top of the file:
//!
//! - `claim.sql`: `$1` worker id (text), `$2` now (bigint, ms since the Unix
//!   epoch), `$3` queue (text), `$4` job (text), `$5` how many at most
//!   (bigint), `$6` the claim's token (bigint); columns `id`, `attempt`,
//!   `max_attempts`, `run_at`, `priority`, `payload`, `trace` (one extra row with `id`
//!   NULL carries the next due `run_at` when nothing was claimed; a paused
//!   queue gives no row at all);
//! - `ack.sql`: `$1` worker id, `$2` now, then one array per column of each
//!   outcome: done `$3` ids, `$4` results; retry `$5` ids, `$6` run_at, `$7`
//!   errors; dead `$8` ids, `$9` errors; snooze `$10` ids, `$11` run_at;
//!   returns how many tasks changed ([`Outcomes`] binds them).

use errand_runtime::Timestamp;
use errand_runtime::backend::stored::Migration;
use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;

/// The placeholder for the schema in every SQL file.
const SCHEMA: &str = "__SCHEMA__";

/// Declares [`MIGRATIONS`] and [`MIGRATION_NAMES`] from one list, so the two
/// stay in step: each entry is a version, the file's name in `migrations/`
/// without `.sql`, and a description.
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

        /// The name of each of [`MIGRATIONS`], its file's without `.sql`
        /// (`0006_progress_pauses_schedules`), at the same index.
        pub(crate) const MIGRATION_NAMES: &[&str] = &[$($name,)*];
    };
}

migrations! {
    1 "0001_create_tasks" "create tasks and workers",
    2 "0002_workflows" "workflows",
    3 "0003_finished_index" "index finished tasks only",
    4 "0004_claim_token" "claim tokens",
    5 "0005_served_jobs" "served jobs, finished runs index",
    6 "0006_progress_pauses_schedules" "progress, paused queues, schedules",
    7 "0007_run_listing" "indexes for listing runs",
    8 "0008_trace_context" "trace context of tasks and runs",
}

/// The name of `migration`, one of [`MIGRATIONS`]: its file's without `.sql`.
pub(crate) fn migration_name(migration: &Migration) -> String {
    MIGRATIONS
        .iter()
        .position(|m| m.version == migration.version)
        .and_then(|i| MIGRATION_NAMES.get(i))
        .map_or_else(|| format!("{:04}", migration.version), |name| (*name).to_owned())
}

/// Every statement, rendered for one schema.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) migrations_table: String,
    /// The migration record's name if it exists, NULL if it (or the schema)
    /// does not: reads without creating anything.
    pub(crate) migrations_exist: String,
    pub(crate) migrations_applied: String,
    pub(crate) migrations_record: String,
    pub(crate) push: String,
    pub(crate) push_one: String,
    pub(crate) push_unique: String,
    pub(crate) announce: String,
    pub(crate) vacuum: String,
    pub(crate) reserve_ids: String,
    pub(crate) copy_tasks: String,
    pub(crate) lock_keys: String,
    pub(crate) claim: String,
    pub(crate) ack: String,
    pub(crate) mark_dead: String,
    pub(crate) heartbeat: String,
    pub(crate) rescue: String,
    pub(crate) release: String,
    pub(crate) release_claims: String,
    pub(crate) cancelled_tasks: String,
    pub(crate) unserved: String,
    pub(crate) served_check: String,
    pub(crate) bury_unserved: String,
    pub(crate) cleanup: String,
    pub(crate) purge_runs: String,
    pub(crate) counts: String,
    /// `SELECT <every column> FROM tasks`, completed with a `WHERE` clause.
    pub(crate) select_task: String,
    pub(crate) task_by_id: String,
    pub(crate) workers: String,
    pub(crate) retry_task: String,
    pub(crate) delete_task: String,
    pub(crate) cancel_task: String,
    pub(crate) run_insert: String,
    pub(crate) run_lock: String,
    pub(crate) run_lock_waiting: String,
    pub(crate) run_lock_orphans: String,
    pub(crate) rescue_steps: String,
    pub(crate) run_progress: String,
    pub(crate) run_apply: String,
    pub(crate) run_select: String,
    pub(crate) run_steps: String,
    pub(crate) step_ack: String,
    pub(crate) record_progress: String,
    pub(crate) pause_queue: String,
    pub(crate) resume_queue: String,
    pub(crate) last_tick: String,
    pub(crate) record_tick: String,
    /// The schema, quoted, for the few statements built at run time.
    pub(crate) schema: String,
}

impl Queries {
    /// Every statement for `schema`, which must already be a validated
    /// identifier (see the [module docs](self)).
    pub(crate) fn new(schema: &str) -> Self {
        let quoted = format!("\"{schema}\"");
        let render = |sql: &str| sql.replace(SCHEMA, &quoted);
        let select_task = render(include_str!("../sql/select_task.sql"));
        Self {
            migrations_table: render(include_str!("../sql/migrations_table.sql")),
            migrations_exist: format!("SELECT to_regclass('{quoted}.migrations')::text"),
            migrations_applied: format!(
                "SELECT version, description, checksum FROM {quoted}.migrations ORDER BY version"
            ),
            migrations_record: format!(
                "INSERT INTO {quoted}.migrations (version, description, checksum, applied_at) VALUES ($1, $2, $3, $4)"
            ),
            push: render(include_str!("../sql/push.sql")),
            push_one: render(include_str!("../sql/push_one.sql")),
            push_unique: render(include_str!("../sql/push_unique.sql")),
            announce: render(include_str!("../sql/announce.sql")),
            vacuum: render(include_str!("../sql/vacuum.sql")),
            reserve_ids: render(include_str!("../sql/reserve_ids.sql")),
            copy_tasks: render(include_str!("../sql/copy_tasks.sql")),
            lock_keys: render(include_str!("../sql/lock_keys.sql")),
            claim: render(include_str!("../sql/claim.sql")),
            ack: render(include_str!("../sql/ack.sql")),
            mark_dead: render(include_str!("../sql/mark_dead.sql")),
            heartbeat: render(include_str!("../sql/heartbeat.sql")),
            rescue: render(include_str!("../sql/rescue.sql")),
            release: render(include_str!("../sql/release.sql")),
            release_claims: render(include_str!("../sql/release_claims.sql")),
            cancelled_tasks: render(include_str!("../sql/cancelled_tasks.sql")),
            unserved: render(include_str!("../sql/unserved.sql")),
            served_check: render(include_str!("../sql/served_check.sql")),
            bury_unserved: render(include_str!("../sql/bury_unserved.sql")),
            cleanup: render(include_str!("../sql/cleanup.sql")),
            purge_runs: render(include_str!("../sql/purge_runs.sql")),
            counts: render(include_str!("../sql/counts.sql")),
            task_by_id: format!("{select_task}WHERE id = $1"),
            select_task,
            workers: render(include_str!("../sql/workers.sql")),
            retry_task: render(include_str!("../sql/retry_task.sql")),
            delete_task: render(include_str!("../sql/delete_task.sql")),
            cancel_task: render(include_str!("../sql/cancel_task.sql")),
            run_insert: render(include_str!("../sql/run_insert.sql")),
            run_lock: render(include_str!("../sql/run_lock.sql")),
            run_lock_waiting: render(include_str!("../sql/run_lock_waiting.sql")),
            run_lock_orphans: render(include_str!("../sql/run_lock_orphans.sql")),
            rescue_steps: render(include_str!("../sql/rescue_steps.sql")),
            run_progress: render(include_str!("../sql/run_progress.sql")),
            run_apply: render(include_str!("../sql/run_apply.sql")),
            run_select: render(include_str!("../sql/run_select.sql")),
            run_steps: render(include_str!("../sql/run_steps.sql")),
            step_ack: render(include_str!("../sql/step_ack.sql")),
            record_progress: render(include_str!("../sql/record_progress.sql")),
            pause_queue: render(include_str!("../sql/pause_queue.sql")),
            resume_queue: render(include_str!("../sql/resume_queue.sql")),
            last_tick: render(include_str!("../sql/last_tick.sql")),
            record_tick: render(include_str!("../sql/record_tick.sql")),
            schema: quoted,
        }
    }

    /// A migration's SQL for this schema.
    pub(crate) fn migration(&self, migration: &Migration) -> String {
        migration.sql.replace(SCHEMA, &self.schema)
    }
}

/// A batch of acks as the parameters of `ack.sql` and `step_ack.sql`: one
/// array per column of each outcome kind.
#[derive(Debug, Default)]
pub(crate) struct Outcomes<'a> {
    done: (Vec<i64>, Vec<&'a [u8]>),
    retry: (Vec<i64>, Vec<i64>, Vec<&'a str>),
    dead: (Vec<i64>, Vec<&'a str>),
    snooze: (Vec<i64>, Vec<i64>),
}

impl<'a> Outcomes<'a> {
    pub(crate) fn new(acks: &'a [Ack]) -> Self {
        let mut o = Outcomes::default();
        for ack in acks {
            let id = i64::try_from(ack.id.0).unwrap_or(i64::MAX);
            match &ack.outcome {
                Outcome::Done { result } => {
                    o.done.0.push(id);
                    o.done.1.push(result.as_slice());
                }
                Outcome::Retry { at, error } => {
                    o.retry.0.push(id);
                    o.retry.1.push(at.as_millis());
                    o.retry.2.push(error.as_str());
                }
                Outcome::Dead { error } => {
                    o.dead.0.push(id);
                    o.dead.1.push(error.as_str());
                }
                Outcome::Snooze { at } => {
                    o.snooze.0.push(id);
                    o.snooze.1.push(at.as_millis());
                }
            }
        }
        o
    }

    /// Whether a task of the batch runs again later (a retry or a snooze).
    pub(crate) fn requeues(&self) -> bool {
        !self.retry.0.is_empty() || !self.snooze.0.is_empty()
    }

    /// The ids of the `done` and `dead` outcomes: the ends of runs.
    pub(crate) fn ended(&self) -> Vec<i64> {
        self.done.0.iter().chain(&self.dead.0).copied().collect()
    }

    /// Binds `$1`..`$11` of `ack.sql` or `step_ack.sql` to `query`.
    pub(crate) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
        worker: &'q WorkerRegistration,
        now: Timestamp,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        query
            .bind(&*worker.id)
            .bind(now.as_millis())
            .bind(&self.done.0)
            .bind(&self.done.1)
            .bind(&self.retry.0)
            .bind(&self.retry.1)
            .bind(&self.retry.2)
            .bind(&self.dead.0)
            .bind(&self.dead.1)
            .bind(&self.snooze.0)
            .bind(&self.snooze.1)
    }
}
