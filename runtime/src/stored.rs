//! Helpers for storage backends: versioned schema migrations and checked
//! reading of stored values, so every SQL backend reports a schema from a
//! newer errand, a changed migration or a row it cannot read the same way —
//! with an error naming the backend and the row, never a panic.

use crate::error::{BackendError, Error};
use crate::task::{QueueCounts, TaskState};

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
/// [`Error::Config`] when the database records a migration this version
/// does not know (it was migrated by a newer errand) or one applied from
/// different SQL.
pub fn pending_migrations<'a>(
    backend: &str,
    place: &str,
    known: &'a [Migration],
    applied: &[AppliedMigration],
    checksum: impl Fn(&str) -> String,
) -> Result<Vec<&'a Migration>, Error> {
    let latest = known.last().map_or(0, |m| m.version);
    for record in applied {
        let Some(migration) = known.iter().find(|m| m.version == record.version) else {
            return Err(Error::Config(format!(
                "{place} has errand schema migration {} ({}), but this version of {backend} only knows \
                 migrations up to {latest}: upgrade errand",
                record.version, record.description
            )));
        };
        if checksum(migration.sql) != record.checksum {
            return Err(Error::Config(format!(
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
        let pending = pending_migrations("b", "db", KNOWN, &[applied(1, KNOWN[0].sql)], sum).unwrap_or_default();
        assert_eq!(pending.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_newer_or_changed_schema_is_refused() {
        let sum = |sql: &str| sql.len().to_string();
        let newer = pending_migrations("errand-x", "db", KNOWN, &[applied(9, "")], sum).map(|_| ());
        assert!(newer.is_err_and(|e| e.to_string().contains("upgrade errand")));
        let changed = pending_migrations("errand-x", "db", KNOWN, &[applied(1, "other sql")], sum).map(|_| ());
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
