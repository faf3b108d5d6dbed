//! Helpers for storage backends: versioned schema migrations and checked
//! reading of stored values, so every SQL backend reports a schema from a
//! newer errand, a changed migration or a row it cannot read the same way —
//! with an error naming the backend and the row, never a panic.

use crate::error::{BackendError, Error};
use crate::task::{QueueCounts, TaskId, TaskState};
use crate::time::Timestamp;
use crate::workflow::{RunId, RunInfo, RunState, StepInfo, StepSpec};

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

/// A `&'static str` for a job or workflow name read back from storage
/// ([`NewTask::job`](crate::NewTask::job) is `'static`). Each distinct name is
/// allocated once and kept for the life of the process: there are as many as
/// the program has workflows.
pub fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A workflow's graph as stored (JSON of [`StepSpec`]s).
///
/// # Errors
///
/// When it does not parse.
pub fn parse_steps(backend: &'static str, json: &str, what: &str) -> Result<Vec<StepSpec>, Error> {
    serde_json::from_str(json).map_err(|e| bad_data(backend, what, format!("its graph does not parse: {e}")))
}

/// Builds a [`RunInfo`] from a stored run and the rows of its steps.
#[derive(Debug)]
pub struct RunInfoBuilder {
    backend: &'static str,
    what: String,
    info: RunInfo,
}

impl RunInfoBuilder {
    /// Starts from the run's row: its state name and graph as stored.
    ///
    /// # Errors
    ///
    /// When the state is unknown or the graph does not parse.
    pub fn new(
        backend: &'static str,
        run: RunId,
        workflow: String,
        state: &str,
        steps: &str,
        error: Option<String>,
        created_at: i64,
    ) -> Result<Self, Error> {
        let what = format!("workflow run {run}");
        let state =
            RunState::parse(state).ok_or_else(|| bad_data(backend, &what, format!("unknown run state `{state}`")))?;
        let steps = parse_steps(backend, steps, &what)?
            .into_iter()
            .map(|s| StepInfo { name: s.name, task: None, state: None, attempt: 0, error: None, output: None })
            .collect();
        let info = RunInfo { id: run, workflow, state, steps, error, created_at: Timestamp(created_at) };
        Ok(Self { backend, what, info })
    }

    /// Adds what is known of step `step`: its task, output, and its task's
    /// state, attempt and last error.
    ///
    /// # Errors
    ///
    /// When the step is not in the graph or the task's state is unknown.
    pub fn step(
        &mut self,
        step: i64,
        task: Option<i64>,
        output: Option<Vec<u8>>,
        state: Option<&str>,
        attempt: Option<i64>,
        error: Option<String>,
    ) -> Result<(), Error> {
        let (backend, what) = (self.backend, self.what.as_str());
        let Some(info) = usize::try_from(step).ok().and_then(|i| self.info.steps.get_mut(i)) else {
            return Err(bad_data(backend, what, format!("step {step} is not in the workflow's graph")));
        };
        info.task = task.and_then(|t| u64::try_from(t).ok()).map(TaskId);
        info.output = output;
        info.state = state.map(|s| to_state(backend, s, what)).transpose()?;
        info.attempt = attempt.and_then(|a| u32::try_from(a).ok()).unwrap_or(0);
        info.error = error;
        Ok(())
    }

    /// The run.
    pub fn finish(self) -> RunInfo {
        self.info
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
    fn run_info_is_assembled_and_bad_rows_are_refused() {
        let graph = r#"[{"name":"a","after":[],"max_attempts":1,"priority":0},{"name":"b","after":[0],"max_attempts":1,"priority":0}]"#;
        let mut run = match RunInfoBuilder::new("x", RunId(7), "wf".into(), "running", graph, None, 5) {
            Ok(run) => run,
            Err(e) => panic!("{e}"),
        };
        assert!(run.step(0, Some(3), Some(b"1".to_vec()), Some("done"), Some(1), None).is_ok());
        assert!(run.step(5, None, None, None, None, None).is_err(), "a step outside the graph");
        assert!(run.step(1, Some(4), None, Some("sideways"), Some(1), None).is_err(), "an unknown task state");
        let info = run.finish();
        assert_eq!(info.steps[0].task, Some(TaskId(3)));
        assert_eq!(info.steps[0].state, Some(TaskState::Done));
        assert_eq!(info.steps[1].name, "b");
        assert!(RunInfoBuilder::new("x", RunId(7), "wf".into(), "paused", graph, None, 5).is_err());
        assert!(RunInfoBuilder::new("x", RunId(7), "wf".into(), "running", "{", None, 5).is_err());
    }

    #[test]
    fn interned_names_are_shared() {
        let a = intern(&String::from("onboarding"));
        let b = intern(&String::from("onboarding"));
        assert!(std::ptr::eq(a, b), "one allocation per distinct name");
        assert_eq!(intern("other"), "other");
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
