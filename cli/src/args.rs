//! The command line, as clap parses it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use errand_runtime::TaskState;
use errand_runtime::workflow::RunState;

/// What `errand --help` ends with: the exit codes and the environment.
const AFTER_HELP: &str = "\
Exit codes:
  0  ok
  1  the backend or server failed (unreachable, refused, a query failed)
  2  usage or configuration error (bad URL, missing --url, bad arguments)
  3  the schema is behind: tables missing or migrations pending (`errand migrate --check`); run `errand migrate`
  4  not found: no task or workflow run with that id

URLs: sqlite://path/to/jobs.db, postgres://user:pass@host:5432/db, redis://host:6379, mysql://user:pass@host:3306/db
Add --json to any command for one JSON document on stdout.";

/// See and steer errand's queues, tasks, workers and workflow runs.
#[derive(Debug, Parser)]
#[command(name = "errand", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// The store: sqlite://FILE, postgres://…, postgresql://…, redis://…,
    /// rediss://…, mysql://… or mariadb://…
    #[arg(long, env = "ERRAND_URL", global = true, value_name = "URL", hide_env_values = true)]
    pub url: Option<String>,

    /// The store's namespace when not the default: the PostgreSQL schema
    /// (default `errand`), the MySQL table prefix (`errand_`), the Redis key
    /// prefix (`errand:`). SQLite has none: the file is the namespace.
    #[arg(long, env = "ERRAND_NAMESPACE", global = true, value_name = "NAMESPACE", hide_env_values = true)]
    pub namespace: Option<String>,

    /// Print one JSON document instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the errand tables (SQL stores; Redis needs none).
    Migrate {
        /// Only check: exit 3 and list what is pending if the schema is behind.
        #[arg(long)]
        check: bool,
    },
    /// Task counts per queue and state, and whether each queue is paused.
    Queues,
    /// List, show, retry, cancel and delete tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Pause or resume a queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The live workers: their queue, job, concurrency and last heartbeat.
    Workers,
    /// List and show workflow runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Serve the web board for this store.
    Board(BoardArgs),
    /// Measure a backend: enqueue N tasks, then drain N at concurrency 16 and 64.
    Bench(BenchArgs),
}

/// `errand tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks by ascending id.
    #[command(visible_alias = "list")]
    Ls(TaskListArgs),
    /// Everything about one task: arguments, progress, result, last error.
    Show {
        /// The task's id.
        id: u64,
    },
    /// Put a dead or cancelled task back to pending with fresh attempts, or every dead task with --dead.
    Retry(RetryArgs),
    /// Cancel a pending, retrying or running task (a running task's cancellation token fires).
    Cancel {
        /// The task's id.
        id: u64,
    },
    /// Delete a finished task (done, dead or cancelled) with its result and error.
    Delete {
        /// The task's id.
        id: u64,
    },
}

/// `errand tasks ls` filters.
#[derive(Debug, Args)]
pub struct TaskListArgs {
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Only this state: pending, running, retry, done, dead or cancelled.
    #[arg(long, value_parser = parse_task_state)]
    pub state: Option<TaskState>,
    /// At most this many tasks.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Only tasks with an id greater than this (the next page).
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
}

/// `errand tasks retry` arguments.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The task's id.
    #[arg(required_unless_present = "dead", conflicts_with = "dead")]
    pub id: Option<u64>,
    /// Retry every dead task (of --queue and --job if given).
    #[arg(long)]
    pub dead: bool,
    /// With --dead: only this queue.
    #[arg(long, conflicts_with = "id")]
    pub queue: Option<String>,
    /// With --dead: only this job.
    #[arg(long, conflicts_with = "id")]
    pub job: Option<String>,
}

/// `errand queue …`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Stop every worker of the queue, in every process, from claiming (running tasks finish).
    Pause {
        /// The queue.
        queue: String,
    },
    /// Let the queue's workers claim again.
    Resume {
        /// The queue.
        queue: String,
    },
}

/// `errand runs …`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List workflow runs, newest first.
    #[command(visible_alias = "list")]
    Ls(RunListArgs),
    /// A run and its steps as a tree (each step under the steps it runs after).
    Show {
        /// The run's id.
        id: u64,
    },
}

/// `errand runs ls` filters.
#[derive(Debug, Args)]
pub struct RunListArgs {
    /// Only runs of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs in this state: running, done or failed.
    #[arg(long, value_parser = parse_run_state)]
    pub state: Option<RunState>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub limit: u32,
    /// Only runs with an id smaller than this (the next page).
    #[arg(long, value_name = "ID")]
    pub before: Option<u64>,
}

/// `errand board` options.
#[derive(Debug, Args)]
pub struct BoardArgs {
    /// The address to listen on; anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:9300", value_name = "ADDR")]
    pub bind: String,
    /// The token every request must carry.
    #[arg(long, env = "ERRAND_BOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `errand bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The backend to measure. The server backends use --url (a fresh
    /// namespace per scenario, removed at the end); memory and sqlite need
    /// none (sqlite uses a temporary directory).
    #[arg(long, value_enum)]
    pub backend: BenchBackend,
    /// Tasks per scenario.
    #[arg(long, short = 'n', default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub n: u64,
}

/// The backends `errand bench` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchBackend {
    /// The in-process memory backend.
    Memory,
    /// SQLite, in a temporary directory.
    Sqlite,
    /// PostgreSQL at --url.
    Postgres,
    /// MySQL or MariaDB at --url.
    Mysql,
    /// Redis at --url.
    Redis,
}

impl BenchBackend {
    /// Its name, as the harness reports it.
    pub fn name(self) -> &'static str {
        match self {
            BenchBackend::Memory => "memory",
            BenchBackend::Sqlite => "sqlite",
            BenchBackend::Postgres => "postgres",
            BenchBackend::Mysql => "mysql",
            BenchBackend::Redis => "redis",
        }
    }
}

fn parse_task_state(s: &str) -> Result<TaskState, String> {
    s.parse::<TaskState>().map_err(|e| e.to_string())
}

fn parse_run_state(s: &str) -> Result<RunState, String> {
    RunState::parse(s).ok_or_else(|| format!("unknown run state `{s}` (expected running, done or failed)"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn retry_needs_an_id_or_dead() {
        assert!(Cli::try_parse_from(["errand", "tasks", "retry"]).is_err());
        assert!(Cli::try_parse_from(["errand", "tasks", "retry", "3", "--dead"]).is_err());
        assert!(Cli::try_parse_from(["errand", "tasks", "retry", "3", "--queue", "q"]).is_err());
        assert!(Cli::try_parse_from(["errand", "tasks", "retry", "--queue", "q"]).is_err());
        assert!(Cli::try_parse_from(["errand", "tasks", "retry", "--dead", "--queue", "q"]).is_ok());
        assert!(Cli::try_parse_from(["errand", "tasks", "retry", "3"]).is_ok());
    }

    #[test]
    fn states_parse() {
        let cli = Cli::try_parse_from(["errand", "tasks", "ls", "--state", "dead", "--json"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Tasks(TasksCommand::Ls(TaskListArgs { state: Some(TaskState::Dead), .. })))
        ));
        assert!(Cli::try_parse_from(["errand", "tasks", "ls", "--state", "gone"]).is_err());
        assert!(Cli::try_parse_from(["errand", "runs", "ls", "--state", "failed"]).is_ok());
    }
}
