//! `errand`, the command line of [errand](https://docs.rs/errand): see and
//! steer the queues, tasks, workers and workflow runs of any errand store
//! from a terminal or a script.
//!
//! Install it with `cargo install --path cli` (from the repository), then:
//!
//! ```text
//! $ export ERRAND_URL=sqlite://jobs.db        # or --url on each command
//! $ errand migrate                            # create or upgrade the tables
//! $ errand queues
//! QUEUE   PENDING  RUNNING  RETRY  DONE  DEAD  CANCELLED  PAUSED
//! emails       12        4      1   310     2          0
//! $ errand tasks ls --queue emails --state dead
//! $ errand tasks show 42                      # arguments as JSON, progress, result, last error
//! $ errand tasks retry 42                     # or: errand tasks retry --dead --queue emails
//! $ errand queue pause emails                 # workers stop claiming, in every process
//! $ errand runs show 7                        # a workflow run's steps as a tree
//! $ errand --json tasks ls --state dead | jq '.[].id'
//! ```
//!
//! # Stores
//!
//! The URL's scheme picks the backend: `sqlite://path/to/jobs.db` (or
//! `sqlite:jobs.db`), `postgres://…` / `postgresql://…`, `redis://…` /
//! `rediss://…`, `mysql://…` / `mariadb://…`. `--namespace` (or
//! `ERRAND_NAMESPACE`) names a store's namespace when it is not the
//! default: the PostgreSQL schema, the MySQL table prefix, the Redis key
//! prefix. Every command but `migrate` connects *without* migrating, so a
//! fresh database reports its missing tables instead of having them
//! created behind your back.
//!
//! # Commands
//!
//! | command | what it does |
//! |---|---|
//! | `errand migrate [--check]` | creates or upgrades the tables; `--check` only says what is pending (exit 3 if anything is) |
//! | `errand queues` | task counts per queue and state, and which queues are paused |
//! | `errand tasks ls [--queue Q] [--job J] [--state S] [--limit N] [--after ID]` | tasks by ascending id, a page at a time |
//! | `errand tasks show ID` | every field, the arguments as pretty JSON, progress, result, last error |
//! | `errand tasks retry ID` / `--dead [--queue Q] [--job J]` | a dead or cancelled task (or every dead one) back to pending |
//! | `errand tasks cancel ID` | cancels a pending, retrying or running task |
//! | `errand tasks delete ID` | deletes a finished task (done, dead or cancelled) |
//! | `errand queue pause\|resume Q` | stops or restarts the claiming of a queue's workers, in every process |
//! | `errand workers` | the live workers and their last heartbeat |
//! | `errand runs ls [--workflow W] [--state S] [--limit N]` | workflow runs, newest first |
//! | `errand runs show ID` | a run's steps as a tree (each under the step it runs after) with state, attempt and error |
//! | `errand board [--bind ADDR] [--token T]` | the web board for this store |
//! | `errand bench --backend B [--n N]` | the bench harness's enqueue and drain scenarios for a backend, with a table |
//!
//! `retry`, `cancel` and `delete` of a task in a state they do not apply to
//! (retrying a pending task, deleting a running one) change nothing, say
//! why, and exit 0 (`"retried": false`, … in JSON).
//!
//! Output is a table for people; `--json` prints one JSON document instead
//! (an array for listings, an object otherwise; times in RFC 3339, UTC).
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | ok |
//! | 1 | the backend or server failed (unreachable: "could not connect to … — is the server running? check --url") |
//! | 2 | usage or configuration error: a bad URL, no `--url`, bad arguments |
//! | 3 | the schema is behind: tables missing ("run `errand migrate`") or migrations pending (`migrate --check`) |
//! | 4 | not found: no task or workflow run with that id |
//!
//! The binary's `main` is [`main`]; the rest of this crate is how it works.

mod args;
mod bench;
mod board;
mod commands;
mod connect;
mod error;
mod migrate;
mod output;

use std::process::ExitCode;

use clap::Parser;

pub use crate::args::{
    BenchArgs, BenchBackend, BoardArgs, Cli, Command, QueueCommand, RetryArgs, RunListArgs, RunsCommand, TaskListArgs,
    TasksCommand,
};
use crate::connect::{Store, Target};
pub use crate::error::{Failure, Kind};
pub use crate::output::Output;

/// The `errand` binary: parses the command line, runs the command, prints
/// its output (or the failure on stderr) and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version print and exit 0; a usage error exits 2.
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(execute(&cli)) {
        Ok(output) => {
            output.print(cli.json);
            output.status.map_or(ExitCode::SUCCESS, |kind| Failure::new(kind, "").exit_code())
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

/// Runs a parsed command line and returns what to print.
///
/// # Errors
///
/// A [`Failure`] whose [`Kind`] decides the exit code.
pub async fn execute(cli: &Cli) -> Result<Output, Failure> {
    if let Command::Bench(args) = &cli.command {
        return bench::bench(args, cli.url.as_deref()).await;
    }
    let target = Target::new(cli.url.as_deref(), cli.namespace.as_deref())?;
    if let Command::Migrate { check } = &cli.command {
        return migrate::migrate(&target, *check).await;
    }
    let command = &cli.command;
    match target.store {
        Store::Sqlite => {
            let backend = connect::sqlite(&target, false).await?;
            connect::ensure_current(&target, &backend, backend.pending_migrations().await).await?;
            commands::run(backend, &target, command).await
        }
        Store::Postgres => {
            let backend = connect::postgres(&target).await?;
            connect::ensure_current(&target, &backend, backend.pending_migrations().await).await?;
            commands::run(backend, &target, command).await
        }
        Store::Mysql => {
            let backend = connect::mysql(&target).await?;
            connect::ensure_current(&target, &backend, backend.pending_migrations().await).await?;
            commands::run(backend, &target, command).await
        }
        Store::Redis => commands::run(connect::redis(&target).await?, &target, command).await,
    }
}
