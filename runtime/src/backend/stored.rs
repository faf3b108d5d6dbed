//! Reading stored data back and migrating schemas, the same way in every
//! backend: a schema from a newer errand, a changed migration or a row this
//! version cannot read is an error naming the backend and the row, never a
//! panic and never a task run with a made-up payload.
//!
//! A SQL backend implements [`StoredRow`] for its driver's row (a few lines:
//! read an integer of any width, a string, bytes) and [`MigrationStore`] for
//! its dialect; the readers ([`read_task`], [`read_task_info`],
//! [`read_worker_info`], [`read_counts`], [`read_unserved`]) and the
//! migration runner ([`migrate`]) are shared.

use std::future::Future;

use super::contract::{Task, Unserved};
use super::fingerprint::fnv1a;
use crate::error::{BackendError, Error};
use crate::task::{Progress, QueueCounts, TaskId, TaskInfo, TaskState, WorkerInfo};
use crate::time::Timestamp;

/// One versioned schema migration of a backend.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version; migrations apply in ascending order.
    pub version: i64,
    /// What it does, for messages.
    pub description: &'static str,
    /// Its SQL. Never changed once released: the checksum is verified.
    pub sql: &'static str,
}

/// A migration as recorded in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// Its description when it was applied.
    pub description: String,
    /// The checksum of the SQL it was applied from.
    pub checksum: String,
}

/// The migrations of `known` that `applied` does not record yet, in order.
///
/// `backend` is the crate for messages (`"errand-sqlite"`), `place` the
/// database (`"database `jobs.db`"`), `checksum` how the backend fingerprints
/// a migration's SQL.
///
/// # Errors
///
/// [`Error::Schema`] when the database records a migration this version
/// does not know (it was migrated by a newer errand) or one applied from
/// different SQL.
pub fn pending_migrations<'a>(
    backend: &str,
    place: &str,
    known: &'a [Migration],
    applied: &[AppliedMigration],
    checksum: &impl Fn(&str) -> String,
) -> Result<Vec<&'a Migration>, Error> {
    let latest = known.last().map_or(0, |m| m.version);
    for record in applied {
        let Some(migration) = known.iter().find(|m| m.version == record.version) else {
            return Err(Error::Schema(format!(
                "{place} has errand schema migration {} ({}), but this version of {backend} only knows \
                 migrations up to {latest}: upgrade errand",
                record.version, record.description
            )));
        };
        if checksum(migration.sql) != record.checksum {
            return Err(Error::Schema(format!(
                "errand schema migration {} ({}) in {place} was applied from different SQL than this version \
                 of {backend} ships",
                migration.version, migration.description
            )));
        }
    }
    Ok(known.iter().filter(|m| !applied.iter().any(|a| a.version == m.version)).collect())
}

/// An error about stored data: `what` names the row (`"task 42"`).
pub fn bad_data(backend: &'static str, what: &str, problem: impl Into<String>) -> Error {
    Error::Backend(BackendError::new(backend, format!("read {what}"), problem.into()))
}

/// A stored count or attempt as a `u32`.
///
/// # Errors
///
/// When it is negative or too large.
pub fn to_u32(backend: &'static str, n: i64, column: &str, what: &str) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| bad_data(backend, what, format!("`{column}` is {n}, expected 0..={}", u32::MAX)))
}

/// A stored priority as an `i16`.
///
/// # Errors
///
/// When it is out of range.
pub fn to_i16(backend: &'static str, n: i64, column: &str, what: &str) -> Result<i16, Error> {
    i16::try_from(n)
        .map_err(|_| bad_data(backend, what, format!("`{column}` is {n}, expected {}..={}", i16::MIN, i16::MAX)))
}

/// A stored state name.
///
/// # Errors
///
/// When it is not one of [`TaskState::ALL`] (e.g. written by a newer errand).
pub fn to_state(backend: &'static str, state: &str, what: &str) -> Result<TaskState, Error> {
    state.parse().map_err(|e: crate::task::UnknownState| bad_data(backend, what, e.to_string()))
}

/// Folds `(queue, state, count)` rows into one [`QueueCounts`] per queue.
#[derive(Debug)]
pub struct CountsBuilder {
    backend: &'static str,
    out: Vec<QueueCounts>,
}

impl CountsBuilder {
    /// An empty fold for `backend`'s messages.
    pub fn new(backend: &'static str) -> Self {
        Self { backend, out: Vec::new() }
    }

    /// Adds `n` tasks of `state` (as stored) on `queue`.
    ///
    /// # Errors
    ///
    /// When the state is unknown or the count negative.
    pub fn add(&mut self, queue: String, state: &str, n: i64) -> Result<(), Error> {
        let what = format!("task counts of queue `{queue}`");
        let state = to_state(self.backend, state, &what)?;
        let n = u64::try_from(n).map_err(|_| bad_data(self.backend, &what, format!("negative count {n}")))?;
        let index = match self.out.iter().position(|c| c.queue == queue) {
            Some(i) => i,
            None => {
                self.out.push(QueueCounts { queue, ..QueueCounts::default() });
                self.out.len() - 1
            }
        };
        *self.out[index].get_mut(state) += n;
        Ok(())
    }

    /// The counts, by queue name.
    pub fn finish(mut self) -> Vec<QueueCounts> {
        self.out.sort_by(|a, b| a.queue.cmp(&b.queue));
        self.out
    }
}

/// The checksum of a migration's SQL: FNV-1a, as 16 hex digits.
pub fn checksum(sql: &str) -> String {
    format!("{:016x}", fnv1a(sql.as_bytes()))
}

/// A schema's record of applied migrations, in the backend's dialect, for
/// [`migrate`]. The backend opens the transaction (and takes whatever lock
/// keeps two processes from migrating at once) before, and commits after.
pub trait MigrationStore: Send {
    /// The migrations applied so far (creating the record if missing).
    fn applied(&mut self) -> impl Future<Output = Result<Vec<AppliedMigration>, Error>> + Send;

    /// Runs `migration` and records it with `checksum`.
    fn apply(&mut self, migration: &Migration, checksum: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Applies the migrations of `known` that `store` does not record yet, in
/// order; see [`pending_migrations`] for the checks and the arguments.
/// Returns how many it applied.
///
/// # Errors
///
/// As [`pending_migrations`], and when a migration fails.
pub async fn migrate(
    store: &mut impl MigrationStore,
    backend: &str,
    place: &str,
    known: &[Migration],
    checksum: impl Fn(&str) -> String,
) -> Result<usize, Error> {
    let applied = store.applied().await?;
    let pending = pending_migrations(backend, place, known, &applied, &checksum)?;
    for migration in &pending {
        store.apply(migration, &checksum(migration.sql)).await?;
    }
    Ok(pending.len())
}

/// One row read back from a store, by column name: what the shared readers
/// need of a driver's row type.
///
/// Implementations read integers of any width the schema uses (so a
/// `smallint` priority and a `bigint` time both come back as `i64`) and
/// report a missing column or a value of another type as `Err` with the
/// driver's message.
pub trait StoredRow {
    /// An integer column; `None` for NULL.
    fn int(&self, column: &str) -> Result<Option<i64>, String>;
    /// A text column; `None` for NULL.
    fn text(&self, column: &str) -> Result<Option<String>, String>;
    /// A binary column; `None` for NULL.
    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, String>;
}

/// Reads columns of one row for the error messages of one backend.
struct Reader<'a, R: ?Sized> {
    backend: &'static str,
    row: &'a R,
    what: &'a str,
}

impl<R: StoredRow + ?Sized> Reader<'_, R> {
    fn fail(&self, column: &str, problem: impl std::fmt::Display) -> Error {
        bad_data(self.backend, self.what, format!("column `{column}`: {problem}"))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, Error> {
        self.row.int(column).map_err(|e| self.fail(column, e))
    }

    fn int(&self, column: &str) -> Result<i64, Error> {
        self.opt_int(column)?.ok_or_else(|| self.fail(column, "is NULL"))
    }

    fn u32(&self, column: &str) -> Result<u32, Error> {
        to_u32(self.backend, self.int(column)?, column, self.what)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, Error> {
        self.row.text(column).map_err(|e| self.fail(column, e))
    }

    fn text(&self, column: &str) -> Result<String, Error> {
        self.opt_text(column)?.ok_or_else(|| self.fail(column, "is NULL"))
    }

    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, Error> {
        self.row.bytes(column).map_err(|e| self.fail(column, e))
    }
}

/// One row of a schema's migration record, from columns `version`,
/// `description` and `checksum`; `place` names the database for messages.
///
/// # Errors
///
/// When a value is missing or of another type.
pub fn read_applied_migration(
    backend: &'static str,
    place: &str,
    row: &(impl StoredRow + ?Sized),
) -> Result<AppliedMigration, Error> {
    let what = format!("the migration record of {place}");
    let r = Reader { backend, row, what: &what };
    Ok(AppliedMigration {
        version: r.int("version")?,
        description: r.text("description")?,
        checksum: r.text("checksum")?,
    })
}

/// The task id in column `id`.
///
/// # Errors
///
/// When it is NULL, negative or unreadable.
pub fn read_id(backend: &'static str, row: &(impl StoredRow + ?Sized)) -> Result<TaskId, Error> {
    let id = Reader { backend, row, what: "a task row" }.int("id")?;
    task_id(backend, id)
}

/// A task id read back from storage.
///
/// # Errors
///
/// When it is negative.
pub fn task_id(backend: &'static str, id: i64) -> Result<TaskId, Error> {
    u64::try_from(id).map(TaskId).map_err(|_| bad_data(backend, "a task row", format!("negative task id {id}")))
}

/// A claimed task from columns `id`, `attempt`, `max_attempts`, `run_at`,
/// `priority`, `payload` and `trace` (NULL when it has none). A row whose id reads but whose other values do
/// not comes back as `Err((Some(id), why))`: the backend sends that task
/// `dead` with the reason rather than run it, and keeps going.
///
/// # Errors
///
/// As described, with `None` when not even the id reads.
pub fn read_task(backend: &'static str, row: &(impl StoredRow + ?Sized)) -> Result<Task, (Option<TaskId>, Error)> {
    let id = read_id(backend, row).map_err(|e| (None, e))?;
    let what = format!("task {id}");
    let r = Reader { backend, row, what: &what };
    let read = || -> Result<Task, Error> {
        Ok(Task {
            id,
            attempt: r.u32("attempt")?,
            max_attempts: r.u32("max_attempts")?,
            run_at: Timestamp(r.int("run_at")?),
            priority: to_i16(backend, r.int("priority")?, "priority", &what)?,
            payload: r.opt_bytes("payload")?.ok_or_else(|| r.fail("payload", "is NULL"))?,
            trace: r.opt_text("trace")?,
        })
    };
    read().map_err(|e| (Some(id), e))
}

/// Everything known of a task, from the columns named as [`TaskInfo`]'s
/// fields (`finished_at`, `unique_key`, `last_error`, `worker` and `result`
/// may be NULL), and `progress_percent` and `progress_message` (NULL when
/// the current attempt reported none).
///
/// # Errors
///
/// When a value is missing, out of range, or an unknown state.
pub fn read_task_info(backend: &'static str, row: &(impl StoredRow + ?Sized)) -> Result<TaskInfo, Error> {
    let id = read_id(backend, row)?;
    let what = format!("task {id}");
    let r = Reader { backend, row, what: &what };
    Ok(TaskInfo {
        id,
        job: r.text("job")?,
        queue: r.text("queue")?,
        state: to_state(backend, &r.text("state")?, &what)?,
        attempt: r.u32("attempt")?,
        max_attempts: r.u32("max_attempts")?,
        priority: to_i16(backend, r.int("priority")?, "priority", &what)?,
        run_at: Timestamp(r.int("run_at")?),
        created_at: Timestamp(r.int("created_at")?),
        finished_at: r.opt_int("finished_at")?.map(Timestamp),
        unique_key: r.opt_text("unique_key")?,
        last_error: r.opt_text("last_error")?,
        worker: r.opt_text("worker")?,
        payload: r.opt_bytes("payload")?.unwrap_or_default(),
        result: r.opt_bytes("result")?,
        progress: match r.opt_int("progress_percent")? {
            None => None,
            Some(percent) => Some(Progress {
                percent: u8::try_from(percent)
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| r.fail("progress_percent", format!("{percent} is not a percentage")))?,
                message: r.opt_text("progress_message")?.unwrap_or_default(),
            }),
        },
    })
}

/// A live worker from columns `id`, `queue`, `job`, `concurrency`,
/// `started_at` and `last_seen`.
///
/// # Errors
///
/// When a value is missing or out of range.
pub fn read_worker_info(backend: &'static str, row: &(impl StoredRow + ?Sized)) -> Result<WorkerInfo, Error> {
    let id = Reader { backend, row, what: "a worker row" }.text("id")?;
    let what = format!("worker `{id}`");
    let r = Reader { backend, row, what: &what };
    Ok(WorkerInfo {
        queue: r.text("queue")?,
        job: r.text("job")?,
        concurrency: r.u32("concurrency")?,
        started_at: Timestamp(r.int("started_at")?),
        last_seen: Timestamp(r.int("last_seen")?),
        id,
    })
}

/// Task counts from rows of columns `queue`, `state` and `n`, one
/// [`QueueCounts`] per queue, by queue name.
///
/// # Errors
///
/// When a state is unknown or a count negative.
pub fn read_counts<R: StoredRow>(backend: &'static str, rows: &[R]) -> Result<Vec<QueueCounts>, Error> {
    let mut counts = CountsBuilder::new(backend);
    for row in rows {
        let queue = Reader { backend, row, what: "task counts" }.text("queue")?;
        let what = format!("task counts of queue `{queue}`");
        let r = Reader { backend, row, what: &what };
        let state = r.text("state")?;
        counts.add(queue, &state, r.int("n")?)?;
    }
    Ok(counts.finish())
}

/// Waiting tasks by job from rows of columns `job`, `n` and `oldest`,
/// leaving out the jobs of `served`.
///
/// # Errors
///
/// When a value is missing or a count negative.
pub fn read_unserved<R: StoredRow>(
    backend: &'static str,
    rows: &[R],
    served: &[&str],
    queue: &str,
) -> Result<Vec<Unserved>, Error> {
    let what = format!("the waiting tasks of queue `{queue}`");
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let r = Reader { backend, row, what: &what };
        let job = r.text("job")?;
        if served.contains(&job.as_str()) {
            continue;
        }
        let n = r.int("n")?;
        let count = u64::try_from(n).map_err(|_| r.fail("n", format!("negative count {n}")))?;
        found.push(Unserved { job, count, oldest: Timestamp(r.int("oldest")?) });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration { version: 1, description: "one", sql: "CREATE TABLE a (x INT)" },
        Migration { version: 2, description: "two", sql: "CREATE TABLE b (x INT)" },
    ];

    fn applied(version: i64, sql: &str) -> AppliedMigration {
        AppliedMigration { version, description: "d".into(), checksum: sql.len().to_string() }
    }

    #[test]
    fn only_unapplied_migrations_are_pending() {
        let sum = |sql: &str| sql.len().to_string();
        let pending = pending_migrations("b", "db", KNOWN, &[applied(1, KNOWN[0].sql)], &sum).unwrap_or_default();
        assert_eq!(pending.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_newer_or_changed_schema_is_refused() {
        let sum = |sql: &str| sql.len().to_string();
        let newer = pending_migrations("errand-x", "db", KNOWN, &[applied(9, "")], &sum).map(|_| ());
        assert!(newer.is_err_and(|e| e.to_string().contains("upgrade errand")));
        let changed = pending_migrations("errand-x", "db", KNOWN, &[applied(1, "other sql")], &sum).map(|_| ());
        assert!(changed.is_err_and(|e| e.to_string().contains("different SQL")));
    }

    #[test]
    fn counts_fold_by_queue_and_reject_bad_rows() {
        let mut counts = CountsBuilder::new("x");
        assert!(counts.add("b".into(), "done", 3).is_ok());
        assert!(counts.add("a".into(), "pending", 2).is_ok());
        assert!(counts.add("b".into(), "dead", 1).is_ok());
        assert!(counts.add("a".into(), "exploded", 1).is_err());
        assert!(counts.add("a".into(), "done", -1).is_err());
        let counts = counts.finish();
        assert_eq!(
            counts.iter().map(|c| (c.queue.as_str(), c.pending, c.done, c.dead)).collect::<Vec<_>>(),
            [("a", 2, 0, 0), ("b", 0, 3, 1)]
        );
    }
}
