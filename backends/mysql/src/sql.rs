//! The SQL this backend runs, kept as files in `sql/` and `migrations/`,
//! and the JSON parameters its batch statements take.
//!
//! # Templating
//!
//! Every file names its tables `` `__PREFIX__tasks` `` (backquoted).
//! [`Queries::new`] renders a file for one namespace in three steps, and
//! nothing else is templated:
//!
//! 1. every `__PREFIX__` becomes the namespace (the builder has checked it is
//!    lowercase ASCII letters, digits and `_`, so it cannot break out of the
//!    backquotes);
//! 2. the text is cut into statements after each `;` that ends a line (a
//!    file may hold several statements, run one after the other: `claim.sql`
//!    holds the claim's update and the read-back of its rows);
//! 3. lines that start with `--` are dropped, and so is each statement's
//!    final `;`.
//!
//! A program that runs a file itself (the bench harness runs `claim.sql` and
//! `ack.sql` in bare loops) renders it the same way and binds the `?`
//! parameters documented at the top of each statement, in order. The two
//! the bench uses:
//!
//! - `claim.sql`: (1) `? queue, ? job, ? now (ms), ? queue, ? limit,
//!   ? worker, ? token, ? now (ms)` — an `UPDATE` whose rows affected are
//!   how many tasks it claimed (none while the queue is paused); (2) `? worker, ? token` — the claimed rows (`id`,
//!   `attempt`, `max_attempts`, `run_at`, `priority`, `payload`, `trace`);
//! - `ack.sql`: `? JSON array of [id, kind, result, run_at, error] (see
//!   [`ack_json`]), ? now (ms), ? worker` — rows affected: the tasks changed.
//!
//! Batches travel as one JSON text parameter read with `JSON_TABLE` (MySQL
//! 8.0.4+, MariaDB 10.6+), so every statement has one fixed text whatever
//! the batch size, and binary values (results, outputs) travel in base64
//! (`FROM_BASE64`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use errand_runtime::backend::stored::Migration;
use errand_runtime::backend::{Ack, Outcome};
use errand_runtime::{Progress, TaskId};

/// The placeholder for the namespace in every SQL file.
const PREFIX: &str = "__PREFIX__";

/// Declares [`MIGRATIONS`] and [`MIGRATION_NAMES`] from one list, so that a
/// migration's name is always its file's.
macro_rules! migrations {
    ($(($version:literal, $name:literal, $description:literal)),* $(,)?) => {
        /// Every migration, in version order. Append only: an applied
        /// migration must never change (its checksum is verified on every
        /// `migrate`).
        pub(crate) const MIGRATIONS: &[Migration] = &[$(Migration {
            version: $version,
            description: $description,
            sql: include_str!(concat!("../migrations/", $name, ".sql")),
        }),*];
        /// The name of each of [`MIGRATIONS`] (its file's, without `.sql`),
        /// in the same order.
        pub(crate) const MIGRATION_NAMES: &[&str] = &[$($name),*];
    };
}

migrations![
    (1, "0001_create_tables", "create tasks, workers, served jobs and workflow runs"),
    (2, "0002_progress_paused_schedules", "add task progress, paused queues and schedules"),
    (3, "0003_runs_listing", "index workflow runs by state and by workflow"),
    (4, "0004_trace", "add the trace context of tasks and workflow runs"),
];

/// The name of `migration` (its file's, without `.sql`), one of
/// [`MIGRATION_NAMES`].
pub(crate) fn migration_name(migration: &Migration) -> String {
    MIGRATIONS
        .iter()
        .zip(MIGRATION_NAMES)
        .find(|(m, _)| m.version == migration.version)
        .map_or_else(|| format!("{:04}", migration.version), |(_, name)| (*name).to_owned())
}

/// Renders `sql` for namespace `prefix` into its statements (see the
/// [module docs](self)).
pub(crate) fn render(sql: &str, prefix: &str) -> Vec<String> {
    let text = sql.replace(PREFIX, prefix);
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        let end = line.trim_end().ends_with(';');
        let line = if end { line.trim_end().trim_end_matches(';') } else { line };
        if !line.trim().is_empty() {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
        if end && !current.trim().is_empty() {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

/// The `N` statements of a file; a file with fewer leaves the rest empty
/// (the server then refuses them), which a test rules out.
fn statements<const N: usize>(sql: &str, prefix: &str) -> [String; N] {
    let mut rendered = render(sql, prefix).into_iter();
    std::array::from_fn(|_| rendered.next().unwrap_or_default())
}

/// Every statement, rendered for one namespace.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) migrations_table: String,
    pub(crate) migrations_applied: String,
    pub(crate) migrations_record: String,
    pub(crate) migrations_exist: String,
    pub(crate) server: String,
    pub(crate) push_one: String,
    pub(crate) push_handed: String,
    pub(crate) push_unique: [String; 4],
    /// The head of a multi-row insert: `INSERT INTO … VALUES`.
    pub(crate) push_head: String,
    pub(crate) claim: [String; 2],
    pub(crate) earliest: String,
    pub(crate) ack: String,
    pub(crate) mark_dead: String,
    pub(crate) release_claims: String,
    pub(crate) heartbeat: [String; 2],
    pub(crate) orphans: String,
    pub(crate) rescue: String,
    pub(crate) rescue_steps: String,
    pub(crate) forget: String,
    pub(crate) gone: String,
    pub(crate) release: [String; 3],
    pub(crate) cancelled_tasks: String,
    pub(crate) unserved: String,
    pub(crate) served_lock: [String; 2],
    pub(crate) waiting_runs: String,
    pub(crate) bury_steps: String,
    pub(crate) bury_unserved: String,
    pub(crate) purge_queues: String,
    pub(crate) purge_tasks: String,
    pub(crate) purge_delete: String,
    pub(crate) purge_runs: String,
    pub(crate) purge_run_rows: [String; 2],
    pub(crate) purge_keys: String,
    pub(crate) counts: String,
    /// `SELECT <every column> FROM tasks`, completed with a `WHERE` clause.
    pub(crate) select_task: String,
    pub(crate) list_queues: String,
    pub(crate) workers: String,
    pub(crate) retry_task: [String; 2],
    pub(crate) task_runs: String,
    pub(crate) cancel_task: [String; 2],
    pub(crate) delete_task: String,
    pub(crate) run_insert: String,
    pub(crate) run_lock: String,
    pub(crate) step_runs: String,
    pub(crate) step_tasks: String,
    pub(crate) run_progress: String,
    pub(crate) step_outputs: String,
    pub(crate) step_push_head: String,
    pub(crate) step_slots: String,
    pub(crate) runs_done: String,
    pub(crate) run_fail: [String; 3],
    pub(crate) run_select: String,
    pub(crate) run_steps: String,
    /// The run listings: unfiltered, by workflow, by state, by both.
    pub(crate) run_ids: [String; 4],
    pub(crate) progress: String,
    pub(crate) pause_queue: String,
    pub(crate) resume_queue: String,
    pub(crate) paused_queues: String,
    pub(crate) last_tick: String,
    pub(crate) record_tick: String,
}

impl Queries {
    /// Every statement for namespace `prefix`, which must already be
    /// validated (see the [module docs](self)).
    pub(crate) fn new(prefix: &str) -> Self {
        let one = |sql: &str| {
            let [statement] = statements::<1>(sql, prefix);
            statement
        };
        Self {
            migrations_table: one(include_str!("../sql/migrations_table.sql")),
            migrations_applied: one(include_str!("../sql/migrations_applied.sql")),
            migrations_record: one(include_str!("../sql/migrations_record.sql")),
            migrations_exist: one(include_str!("../sql/migrations_exist.sql")),
            server: one(include_str!("../sql/server.sql")),
            push_one: one(include_str!("../sql/push_one.sql")),
            push_handed: one(include_str!("../sql/push_handed.sql")),
            push_unique: statements(include_str!("../sql/push_unique.sql"), prefix),
            push_head: one(include_str!("../sql/push.sql")),
            claim: statements(include_str!("../sql/claim.sql"), prefix),
            earliest: one(include_str!("../sql/earliest.sql")),
            ack: one(include_str!("../sql/ack.sql")),
            mark_dead: one(include_str!("../sql/mark_dead.sql")),
            release_claims: one(include_str!("../sql/release_claims.sql")),
            heartbeat: statements(include_str!("../sql/heartbeat.sql"), prefix),
            orphans: one(include_str!("../sql/orphans.sql")),
            rescue: one(include_str!("../sql/rescue.sql")),
            rescue_steps: one(include_str!("../sql/rescue_steps.sql")),
            forget: one(include_str!("../sql/forget.sql")),
            gone: one(include_str!("../sql/gone.sql")),
            release: statements(include_str!("../sql/release.sql"), prefix),
            cancelled_tasks: one(include_str!("../sql/cancelled_tasks.sql")),
            unserved: one(include_str!("../sql/unserved.sql")),
            served_lock: statements(include_str!("../sql/served_lock.sql"), prefix),
            waiting_runs: one(include_str!("../sql/waiting_runs.sql")),
            bury_steps: one(include_str!("../sql/bury_steps.sql")),
            bury_unserved: one(include_str!("../sql/bury_unserved.sql")),
            purge_queues: one(include_str!("../sql/purge_queues.sql")),
            purge_tasks: one(include_str!("../sql/purge_tasks.sql")),
            purge_delete: one(include_str!("../sql/purge_delete.sql")),
            purge_runs: one(include_str!("../sql/purge_runs.sql")),
            purge_run_rows: statements(include_str!("../sql/purge_run_rows.sql"), prefix),
            purge_keys: one(include_str!("../sql/purge_keys.sql")),
            counts: one(include_str!("../sql/counts.sql")),
            select_task: one(include_str!("../sql/select_task.sql")),
            list_queues: one(include_str!("../sql/list_queues.sql")),
            workers: one(include_str!("../sql/workers.sql")),
            retry_task: statements(include_str!("../sql/retry_task.sql"), prefix),
            task_runs: one(include_str!("../sql/task_runs.sql")),
            cancel_task: statements(include_str!("../sql/cancel_task.sql"), prefix),
            delete_task: one(include_str!("../sql/delete_task.sql")),
            run_insert: one(include_str!("../sql/run_insert.sql")),
            run_lock: one(include_str!("../sql/run_lock.sql")),
            step_runs: one(include_str!("../sql/step_runs.sql")),
            step_tasks: one(include_str!("../sql/step_tasks.sql")),
            run_progress: one(include_str!("../sql/run_progress.sql")),
            step_outputs: one(include_str!("../sql/step_outputs.sql")),
            step_push_head: one(include_str!("../sql/step_push.sql")),
            step_slots: one(include_str!("../sql/step_slots.sql")),
            runs_done: one(include_str!("../sql/runs_done.sql")),
            run_fail: statements(include_str!("../sql/run_fail.sql"), prefix),
            run_select: one(include_str!("../sql/run_select.sql")),
            run_steps: one(include_str!("../sql/run_steps.sql")),
            run_ids: statements(include_str!("../sql/run_ids.sql"), prefix),
            progress: one(include_str!("../sql/progress.sql")),
            pause_queue: one(include_str!("../sql/pause_queue.sql")),
            resume_queue: one(include_str!("../sql/resume_queue.sql")),
            paused_queues: one(include_str!("../sql/paused_queues.sql")),
            last_tick: one(include_str!("../sql/last_tick.sql")),
            record_tick: one(include_str!("../sql/record_tick.sql")),
        }
    }

    /// A migration's statements for this namespace.
    pub(crate) fn migration(migration: &Migration, prefix: &str) -> Vec<String> {
        render(migration.sql, prefix)
    }

    /// `rows` rows of the multi-row insert (`push.sql`), with `RETURNING id`
    /// when the server is MariaDB.
    pub(crate) fn push_rows(&self, rows: usize, returning: bool) -> String {
        multi_row(&self.push_head, "(?, ?, ?, ?, ?, ?, ?, ?)", rows, returning)
    }

    /// `rows` rows of the multi-row insert of step tasks (`step_push.sql`),
    /// with `RETURNING id` when the server is MariaDB.
    pub(crate) fn step_push_rows(&self, rows: usize, returning: bool) -> String {
        multi_row(&self.step_push_head, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows, returning)
    }
}

/// `head` followed by `rows` copies of `row`, comma-separated, and
/// ` RETURNING id` when `returning`.
fn multi_row(head: &str, row: &str, rows: usize, returning: bool) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2) + 16);
    sql.push_str(head);
    for i in 0..rows {
        sql.push_str(if i == 0 { " " } else { ", " });
        sql.push_str(row);
    }
    if returning {
        sql.push_str(" RETURNING id");
    }
    sql
}

/// A task id as the server stores it.
pub(crate) fn raw_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// A JSON array of integers (ids, tokens), for `JSON_TABLE`.
pub(crate) fn json_ints(values: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::from("[");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v}");
    }
    out.push(']');
    out
}

/// A JSON value, for `JSON_TABLE` rows.
pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Strings, integers and arrays of them always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

/// The `ack.sql` parameter for `acks`: `[id, kind, result, run_at, error]`
/// per ack, by ascending id (so that concurrent batches lock rows in one
/// order). With `keep_results` false (a worker of workflow steps: a step's
/// output is stored once, in `run_steps`), `done` acks store no result.
pub(crate) fn ack_json(acks: &[Ack], keep_results: bool) -> String {
    type Row<'a> = (i64, &'static str, Option<String>, Option<i64>, Option<&'a str>);
    let mut rows: Vec<Row<'_>> = acks
        .iter()
        .map(|ack| {
            let id = raw_id(ack.id.0);
            match &ack.outcome {
                Outcome::Done { result } => (id, "d", keep_results.then(|| base64(result)), None, None),
                Outcome::Retry { at, error } => (id, "r", None, Some(at.as_millis()), Some(error.as_str())),
                Outcome::Dead { error } => (id, "x", None, None, Some(error.as_str())),
                Outcome::Snooze { at } => (id, "s", None, Some(at.as_millis()), None),
            }
        })
        .collect();
    rows.sort_by_key(|row| row.0);
    json(&rows)
}

/// The `progress.sql` parameter for `updates`: `[id, percent, message]` per
/// task, by ascending id (so that concurrent statements lock rows in one
/// order), the latest update of a task only, each normalised as
/// [`Progress::new`] does (percent at most 100, message cut to
/// [`Progress::MAX_MESSAGE`] bytes, no NUL), so that what is stored reads
/// back.
pub(crate) fn progress_json(updates: &[(TaskId, Progress)]) -> String {
    let mut latest: BTreeMap<i64, Progress> = BTreeMap::new();
    for (id, progress) in updates {
        latest.insert(raw_id(id.0), Progress::new(progress.percent, progress.message.as_str()));
    }
    let rows: Vec<(i64, u8, &str)> = latest.iter().map(|(id, p)| (*id, p.percent, p.message.as_str())).collect();
    json(&rows)
}

/// Standard base64 with padding, as `FROM_BASE64` reads it.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_render_into_their_statements() {
        let sql = "-- a comment; with a semicolon;\nSELECT 1\nFROM `__PREFIX__tasks`;\n-- next\nSELECT 2;\n";
        assert_eq!(render(sql, "errand_"), ["SELECT 1\nFROM `errand_tasks`", "SELECT 2"]);
        // Every multi-statement file has exactly the statements the backend runs.
        for (file, n) in [
            (include_str!("../sql/claim.sql"), 2),
            (include_str!("../sql/push_unique.sql"), 4),
            (include_str!("../sql/heartbeat.sql"), 2),
            (include_str!("../sql/release.sql"), 3),
            (include_str!("../sql/served_lock.sql"), 2),
            (include_str!("../sql/purge_run_rows.sql"), 2),
            (include_str!("../sql/retry_task.sql"), 2),
            (include_str!("../sql/cancel_task.sql"), 2),
            (include_str!("../sql/run_fail.sql"), 3),
            (include_str!("../sql/ack.sql"), 1),
            (include_str!("../sql/earliest.sql"), 1),
            (include_str!("../migrations/0001_create_tables.sql"), 6),
            (include_str!("../migrations/0002_progress_paused_schedules.sql"), 6),
            (include_str!("../migrations/0003_runs_listing.sql"), 8),
            (include_str!("../migrations/0004_trace.sql"), 8),
            (include_str!("../sql/delete_task.sql"), 1),
            (include_str!("../sql/push_handed.sql"), 1),
            (include_str!("../sql/run_ids.sql"), 4),
            (include_str!("../sql/migrations_exist.sql"), 1),
            (include_str!("../sql/progress.sql"), 1),
            (include_str!("../sql/pause_queue.sql"), 1),
            (include_str!("../sql/record_tick.sql"), 1),
        ] {
            let rendered = render(file, "p_");
            assert_eq!(rendered.len(), n, "{file}");
            assert!(rendered.iter().all(|s| !s.contains("__PREFIX__") && !s.contains("--")), "{rendered:?}");
        }
    }

    #[test]
    fn migrations_are_named_after_their_files() {
        assert_eq!(MIGRATIONS.len(), MIGRATION_NAMES.len());
        for (i, (migration, name)) in MIGRATIONS.iter().zip(MIGRATION_NAMES).enumerate() {
            assert_eq!(migration.version, i as i64 + 1, "versions follow each other");
            assert!(name.starts_with(&format!("{:04}_", migration.version)), "{name}");
            assert_eq!(migration_name(migration), *name);
        }
    }

    #[test]
    fn base64_matches_the_standard() {
        for (bytes, encoded) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"null", "bnVsbA=="),
            (&[255, 0], "/wA="),
        ] {
            assert_eq!(base64(bytes), encoded);
        }
    }

    #[test]
    fn batches_are_json_rows() {
        use errand_runtime::Timestamp;
        let acks = [
            Ack { id: TaskId(9), outcome: Outcome::Done { result: b"1".to_vec() } },
            Ack { id: TaskId(3), outcome: Outcome::retry(Timestamp(5), "a \"quote\"") },
            Ack { id: TaskId(4), outcome: Outcome::Snooze { at: Timestamp(6) } },
        ];
        assert_eq!(
            ack_json(&acks, true),
            r#"[[3,"r",null,5,"a \"quote\""],[4,"s",null,6,null],[9,"d","MQ==",null,null]]"#
        );
        assert!(ack_json(&acks, false).contains(r#"[9,"d",null,null,null]"#));
        assert_eq!(json_ints([1, 2]), "[1,2]");
        let updates = [
            (TaskId(9), Progress::new(10, "a")),
            (TaskId(3), Progress { percent: 250, message: "nul\0".into() }),
            (TaskId(9), Progress::new(20, "b \"quoted\"")),
        ];
        assert_eq!(progress_json(&updates), "[[3,100,\"nul\u{FFFD}\"],[9,20,\"b \\\"quoted\\\"\"]]");
        assert_eq!(json_ints([]), "[]");
    }
}
