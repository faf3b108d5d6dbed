//! `errand migrate [--check]`: create or upgrade the tables of a SQL store,
//! or say what is pending. Redis has no schema.

use std::fmt::Write as _;
use std::future::Future;

use errand_runtime::Error;
use serde_json::json;

use crate::connect::{self, Store, Target, plural, sqlite_file};
use crate::error::{Failure, Kind};
use crate::output::Output;

/// `errand migrate [--check]` on `target`.
pub(crate) async fn migrate(target: &Target, check: bool) -> Result<Output, Failure> {
    match target.store {
        Store::Redis => Ok(Output::new(
            "Redis needs no migrations: errand keeps no schema there\n",
            json!({ "store": "redis", "pending": [], "applied": [], "needs_migrations": false }),
        )),
        Store::Sqlite => {
            if check && let Some(file) = sqlite_file(&target.url).filter(|f| !f.exists()) {
                // Nothing to open: every migration is pending. Their names
                // come from an empty in-memory database, so the check
                // creates no file.
                let memory = Target { url: "sqlite::memory:".to_owned(), ..target.clone() };
                let backend = connect::sqlite(&memory, true).await?;
                let pending = backend.pending_migrations().await.map_err(|e| target.failure(&e))?;
                let note = format!("the SQLite database `{}` does not exist yet", file.display());
                return Ok(report(target, &pending, Some(&note)));
            }
            let backend = connect::sqlite(target, true).await?;
            step(target, check, backend.pending_migrations(), || backend.migrate()).await
        }
        Store::Postgres => {
            let backend = connect::postgres(target).await?;
            step(target, check, backend.pending_migrations(), || backend.migrate()).await
        }
        Store::Mysql => {
            let backend = connect::mysql(target).await?;
            step(target, check, backend.pending_migrations(), || backend.migrate()).await
        }
    }
}

/// Reads what is pending; with `check`, reports it; otherwise applies it.
async fn step<P, M, F>(target: &Target, check: bool, pending: P, migrate: M) -> Result<Output, Failure>
where
    P: Future<Output = Result<Vec<String>, Error>>,
    M: FnOnce() -> F,
    F: Future<Output = Result<(), Error>>,
{
    let pending = pending.await.map_err(|e| target.failure(&e))?;
    if check {
        return Ok(report(target, &pending, None));
    }
    if pending.is_empty() {
        return Ok(Output::new(
            format!("the errand schema at `{}` is up to date\n", target.shown),
            json!({ "applied": [], "pending": [] }),
        ));
    }
    migrate().await.map_err(|e| target.failure(&e))?;
    let mut human = format!("applied {} to `{}`:\n", plural(pending.len(), "migration"), target.shown);
    for name in &pending {
        let _ = writeln!(human, "  {name}");
    }
    Ok(Output::new(human, json!({ "applied": pending, "pending": [] })))
}

/// The `--check` report: up to date (exit 0) or behind (exit 3).
fn report(target: &Target, pending: &[String], note: Option<&str>) -> Output {
    if pending.is_empty() {
        return Output::new(
            format!("the errand schema at `{}` is up to date\n", target.shown),
            json!({ "up_to_date": true, "pending": [] }),
        );
    }
    let mut human = String::new();
    if let Some(note) = note {
        let _ = writeln!(human, "{note}");
    }
    let _ = writeln!(
        human,
        "the errand schema at `{}` is behind: {} pending:",
        target.shown,
        plural(pending.len(), "migration")
    );
    for name in pending {
        let _ = writeln!(human, "  {name}");
    }
    human.push_str("run `errand migrate` to apply them\n");
    Output::new(human, json!({ "up_to_date": false, "pending": pending })).exit(Kind::Behind)
}
