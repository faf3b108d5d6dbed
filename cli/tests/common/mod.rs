//! Shared by the CLI tests: running the `errand` binary, the jobs the tests
//! enqueue, and the flow every backend goes through.

#![allow(dead_code, unreachable_pub)]

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use errand_runtime::workflow::{WorkflowExt, WorkflowStore};
use errand_runtime::{
    Backend, Enqueue, Expose, Job, JobError, Monitor, TaskCx, TaskId, TaskSink, TaskState, WorkerBuilder,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e}):\n{}\nstderr: {}", self.stdout, self.stderr)
        })
    }

    /// Panics unless the exit code is `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `errand` with `args`, no `ERRAND_URL`/`ERRAND_NAMESPACE` from the
/// environment, and `env` set.
pub fn errand_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_errand"));
    command.args(args).env_remove("ERRAND_URL").env_remove("ERRAND_NAMESPACE").env_remove("ERRAND_BOARD_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap_or_else(|e| panic!("cannot run errand: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `errand` with `args`.
pub fn errand(args: &[&str]) -> Run {
    errand_env(args, &[])
}

/// A store as the CLI reaches it: `--url` and, when not the default,
/// `--namespace`.
#[derive(Debug, Clone)]
pub struct Cli {
    pub url: String,
    pub namespace: Option<String>,
    /// Whether the store has migrations (not Redis).
    pub migrations: bool,
}

impl Cli {
    /// Runs `errand --url … [--namespace …] args…`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--url", self.url.as_str()];
        if let Some(ns) = &self.namespace {
            all.extend(["--namespace", ns.as_str()]);
        }
        all.extend(args);
        errand(&all)
    }
}

/// A unique suffix: unix seconds (so leftovers can be aged) and a random part.
pub fn unique() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut h = RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    format!("{}_{:08x}", now.as_secs(), h.finish() & 0xffff_ffff)
}

/// A job the tests enqueue and never run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub to: String,
    pub tags: Vec<String>,
}

impl Job for Note {
    const NAME: &'static str = "cli_note";
    const QUEUE: &'static str = "cli_notes";
    type Output = ();

    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Ok(())
    }
}

/// A job that fails for good at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Doomed {
    pub n: u64,
}

impl Job for Doomed {
    const NAME: &'static str = "cli_doomed";
    const QUEUE: &'static str = "cli_doomed";
    type Output = ();

    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Err(JobError::abort("the mailer said no"))
    }
}

/// Polls `check` every 20 ms for up to 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn state<B: Expose>(backend: &B, id: TaskId) -> Option<TaskState> {
    backend.task(id).await.unwrap_or_else(|e| panic!("{e}")).map(|t| t.state)
}

/// The task ids of a JSON listing.
fn ids(listing: &Value) -> Vec<u64> {
    listing
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {listing}"))
        .iter()
        .filter_map(|t| t["id"].as_u64())
        .collect()
}

/// Before the tables exist: `migrate --check` exits 3 listing what is
/// pending, other commands say to run `errand migrate`; then `migrate`
/// creates them and `--check` passes. (Redis: nothing to migrate.)
pub fn migrate_flow(cli: &Cli) {
    if !cli.migrations {
        let run = cli.run(&["migrate", "--check"]).expect(0);
        assert!(run.stdout.contains("Redis needs no migrations"), "{}", run.stdout);
        cli.run(&["migrate"]).expect(0);
        return;
    }
    let check = cli.run(&["migrate", "--check"]).expect(3);
    assert!(check.stdout.contains("run `errand migrate`"), "{}", check.stdout);
    let check = cli.run(&["--json", "migrate", "--check"]).expect(3).json();
    assert_eq!(check["up_to_date"], false);
    assert!(!check["pending"].as_array().map(Vec::is_empty).unwrap_or(true), "{check}");

    let fresh = cli.run(&["queues"]).expect(3);
    assert!(fresh.stderr.contains("run `errand migrate`"), "{}", fresh.stderr);

    let applied = cli.run(&["migrate"]).expect(0);
    assert!(applied.stdout.contains("applied"), "{}", applied.stdout);
    let check = cli.run(&["migrate", "--check"]).expect(0);
    assert!(check.stdout.contains("up to date"), "{}", check.stdout);
    let again = cli.run(&["--json", "migrate"]).expect(0).json();
    assert_eq!(again["applied"], serde_json::json!([]));
}

/// The commands every backend must answer alike, on a migrated store that
/// `backend` (the same store) writes to.
pub async fn core_flow<B>(cli: &Cli, backend: &B)
where
    B: Backend + Expose + WorkflowStore + errand_runtime::capability::UniqueKeys + errand_runtime::capability::Delays,
{
    // Three notes (one delayed, one with a unique key) and a doomed task.
    let note = |to: &str| Note { to: to.to_owned(), tags: vec!["<b>".to_owned(), "x\"y".to_owned()] };
    let first = backend.enqueue(note("ada@example.com")).await.unwrap_or_else(|e| panic!("{e}"));
    let second = backend
        .enqueue_with(note("bob@example.com"), Enqueue::new().unique_key("welcome:bob"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let third = backend
        .enqueue_with(note("cy@example.com"), Enqueue::new().delay(Duration::from_secs(3600)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let doomed = backend.enqueue(Doomed { n: 7 }).await.unwrap_or_else(|e| panic!("{e}"));
    let watch = backend.clone();
    Monitor::new()
        .register(WorkerBuilder::<Doomed, B>::new(backend.clone()))
        .run_until(async move {
            eventually("the doomed task to die", || async { state(&watch, doomed).await == Some(TaskState::Dead) })
                .await;
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // queues: human and JSON.
    let queues = cli.run(&["queues"]).expect(0);
    assert!(queues.stdout.starts_with("QUEUE"), "{}", queues.stdout);
    assert!(queues.stdout.contains("cli_notes") && queues.stdout.contains("cli_doomed"), "{}", queues.stdout);
    let queues = cli.run(&["queues", "--json"]).expect(0).json();
    let notes = queues.as_array().and_then(|q| q.iter().find(|q| q["queue"] == "cli_notes")).cloned();
    let notes = notes.unwrap_or_else(|| panic!("no cli_notes in {queues}"));
    assert_eq!(notes["pending"], 3, "{queues}");
    assert_eq!(notes["paused"], false, "{queues}");
    let dead = queues.as_array().and_then(|q| q.iter().find(|q| q["queue"] == "cli_doomed")).cloned();
    assert_eq!(dead.map(|d| d["dead"].clone()), Some(1.into()), "{queues}");

    // tasks ls: human, JSON, filters, paging.
    let ls = cli.run(&["tasks", "ls"]).expect(0);
    assert!(ls.stdout.trim_start().starts_with("ID"), "{}", ls.stdout);
    assert!(ls.stdout.contains("cli_note") && ls.stdout.contains("the mailer said no"), "{}", ls.stdout);
    let all = cli.run(&["--json", "tasks", "ls", "--queue", "cli_notes"]).expect(0).json();
    assert_eq!(ids(&all), vec![first.0, second.0, third.0]);
    let dead_ls = cli.run(&["--json", "tasks", "ls", "--state", "dead"]).expect(0).json();
    assert_eq!(ids(&dead_ls), vec![doomed.0]);
    assert_eq!(dead_ls[0]["last_error"].as_str().map(|e| e.contains("the mailer said no")), Some(true), "{dead_ls}");
    let job = cli.run(&["--json", "tasks", "ls", "--job", "cli_note", "--limit", "1"]).expect(0).json();
    assert_eq!(ids(&job), vec![first.0]);
    let after = first.0.to_string();
    let page = cli.run(&["--json", "tasks", "ls", "--job", "cli_note", "--after", &after]).expect(0).json();
    assert_eq!(ids(&page), vec![second.0, third.0]);
    let more = cli.run(&["tasks", "ls", "--job", "cli_note", "--limit", "1"]).expect(0);
    assert!(more.stdout.contains(&format!("--after {}", first.0)), "{}", more.stdout);

    // tasks show: every field, the arguments as pretty JSON.
    let id = second.0.to_string();
    let show = cli.run(&["tasks", "show", &id]).expect(0);
    for part in ["cli_note", "cli_notes", "pending", "welcome:bob", "\"to\": \"bob@example.com\"", "\"x\\\"y\""] {
        assert!(show.stdout.contains(part), "no {part} in\n{}", show.stdout);
    }
    let show = cli.run(&["--json", "tasks", "show", &id]).expect(0).json();
    assert_eq!(show["id"], second.0);
    assert_eq!(show["unique_key"], "welcome:bob");
    assert_eq!(show["arguments"], serde_json::json!({ "to": "bob@example.com", "tags": ["<b>", "x\"y"] }));
    assert_eq!(show["state"], "pending");
    let doomed_id = doomed.0.to_string();
    let show = cli.run(&["tasks", "show", &doomed_id]).expect(0);
    assert!(show.stdout.contains("last error") && show.stdout.contains("errand tasks retry"), "{}", show.stdout);

    // retry: a dead task goes back to pending; a pending one is left alone.
    let retried = cli.run(&["--json", "tasks", "retry", &doomed_id]).expect(0).json();
    assert_eq!(retried["retried"], true);
    assert_eq!(state(backend, doomed).await, Some(TaskState::Pending));
    let again = cli.run(&["--json", "tasks", "retry", &doomed_id]).expect(0).json();
    assert_eq!(again["retried"], false);
    let none = cli.run(&["--json", "tasks", "retry", "--dead", "--queue", "cli_doomed"]).expect(0).json();
    assert_eq!(none["retried"], 0);

    // cancel and delete.
    let cancel = third.0.to_string();
    let cancelled = cli.run(&["tasks", "cancel", &cancel]).expect(0);
    assert!(cancelled.stdout.contains("cancelled"), "{}", cancelled.stdout);
    assert_eq!(state(backend, third).await, Some(TaskState::Cancelled));
    let twice = cli.run(&["--json", "tasks", "cancel", &cancel]).expect(0).json();
    assert_eq!(twice["cancelled"], false);
    let retried = cli.run(&["--json", "tasks", "retry", "--dead"]).expect(0).json();
    assert_eq!(retried["retried"], 0, "cancelled is not dead: {retried}");

    let live = first.0.to_string();
    let refused = cli.run(&["--json", "tasks", "delete", &live]).expect(0).json();
    assert_eq!(refused["deleted"], false, "a pending task is not deleted: {refused}");
    assert_eq!(state(backend, first).await, Some(TaskState::Pending));
    let refused = cli.run(&["tasks", "delete", &live]).expect(0);
    assert!(refused.stdout.contains(&format!("errand tasks cancel {live}")), "{}", refused.stdout);
    let delete = third.0.to_string();
    let deleted = cli.run(&["tasks", "delete", &delete]).expect(0);
    assert!(deleted.stdout.contains(&format!("deleted task {delete}")), "{}", deleted.stdout);
    assert_eq!(state(backend, third).await, None);
    let gone = cli.run(&["tasks", "show", &delete]).expect(4);
    assert!(gone.stderr.contains(&format!("no task {delete}")), "{}", gone.stderr);
    cli.run(&["tasks", "delete", &delete]).expect(4);
    cli.run(&["tasks", "cancel", "987654321"]).expect(4);
    cli.run(&["tasks", "retry", "987654321"]).expect(4);

    // pause and resume.
    let paused = cli.run(&["--json", "queue", "pause", "cli_notes"]).expect(0).json();
    assert_eq!(paused["paused"], true);
    let queues = cli.run(&["--json", "queues"]).expect(0).json();
    let notes = queues.as_array().and_then(|q| q.iter().find(|q| q["queue"] == "cli_notes")).cloned();
    assert_eq!(notes.map(|n| n["paused"].clone()), Some(true.into()), "{queues}");
    assert!(cli.run(&["queues"]).expect(0).stdout.contains("paused"));
    cli.run(&["queue", "resume", "cli_notes"]).expect(0);
    let queues = cli.run(&["--json", "queues"]).expect(0).json();
    let notes = queues.as_array().and_then(|q| q.iter().find(|q| q["queue"] == "cli_notes")).cloned();
    assert_eq!(notes.map(|n| n["paused"].clone()), Some(false.into()), "{queues}");

    // workers: a JSON array (the worker above has stopped).
    assert!(cli.run(&["--json", "workers"]).expect(0).json().is_array());
    cli.run(&["workers"]).expect(0);

    // workflow runs: one diamond whose entry step waits to run.
    let run = backend.start(errand_benches::diamond::Diamond::new(5)).await.unwrap_or_else(|e| panic!("{e}"));
    let run_id = run.id().0.to_string();
    let runs = cli.run(&["--json", "runs", "ls"]).expect(0).json();
    assert_eq!(runs[0]["id"].as_u64(), Some(run.id().0), "{runs}");
    assert_eq!(runs[0]["state"], "running");
    let listed = cli.run(&["runs", "ls"]).expect(0);
    assert!(listed.stdout.trim_start().starts_with("ID") && listed.stdout.contains("running"), "{}", listed.stdout);
    let shown = cli.run(&["runs", "show", &run_id]).expect(0);
    assert!(shown.stdout.contains("├── b") && shown.stdout.contains("└── c"), "{}", shown.stdout);
    assert!(shown.stdout.contains("after b, c"), "{}", shown.stdout);
    let shown = cli.run(&["--json", "runs", "show", &run_id]).expect(0).json();
    let steps = shown["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps.len(), 4, "{shown}");
    assert_eq!(steps[3]["after"], serde_json::json!(["b", "c"]), "{shown}");
    assert_eq!(steps[0]["state"], "pending", "{shown}");
    cli.run(&["runs", "show", "987654321"]).expect(4);
}
