//! `errand tasks ls|show|retry|cancel|delete`.

use std::fmt::Write as _;

use errand_runtime::capability::CancelRunning;
use errand_runtime::{Error, Expose, TaskFilter, TaskId, TaskInfo, TaskState, Timestamp};
use serde_json::{Value, json};

use crate::args::{RetryArgs, TaskListArgs};
use crate::error::Failure;
use crate::output::{
    Align, Output, Table, clip, human_time, indent_rest, payload_human, payload_json, relative, rfc3339,
};

/// Tasks per page when `tasks retry --dead` walks the dead tasks.
const RETRY_PAGE: u32 = 500;

/// A task as JSON; with `payloads`, its arguments and result too.
fn task_json(t: &TaskInfo, payloads: bool) -> Value {
    let mut v = json!({
        "id": t.id.0,
        "job": t.job,
        "queue": t.queue,
        "state": t.state.as_str(),
        "attempt": t.attempt,
        "max_attempts": t.max_attempts,
        "priority": t.priority,
        "run_at": rfc3339(t.run_at),
        "created_at": rfc3339(t.created_at),
        "finished_at": t.finished_at.map(rfc3339),
        "unique_key": t.unique_key,
        "worker": t.worker,
        "last_error": t.last_error,
        "progress": t.progress.as_ref().map(|p| json!({ "percent": p.percent, "message": p.message })),
    });
    if payloads && let Value::Object(map) = &mut v {
        map.insert("arguments".into(), payload_json(&t.payload));
        map.insert("result".into(), t.result.as_deref().map_or(Value::Null, payload_json));
    }
    v
}

/// What a listing shows in its last column: the error, the progress, or
/// the worker.
fn note(t: &TaskInfo) -> String {
    if let Some(error) = &t.last_error {
        return clip(error, 60);
    }
    if let Some(p) = &t.progress {
        return clip(&format!("{}% {}", p.percent, p.message), 60);
    }
    t.worker.as_deref().map(|w| format!("on {w}")).unwrap_or_default()
}

/// `errand tasks ls`.
pub(super) async fn list<B: Expose>(backend: &B, args: &TaskListArgs) -> Result<Output, Error> {
    let filter = TaskFilter {
        queue: args.queue.clone(),
        job: args.job.clone(),
        state: args.state,
        limit: args.limit,
        after: args.after.map(TaskId),
    };
    let tasks = backend.tasks(&filter).await?;
    let mut table = Table::new(&[
        ("id", Align::Right),
        ("state", Align::Left),
        ("queue", Align::Left),
        ("job", Align::Left),
        ("attempt", Align::Right),
        ("pri", Align::Right),
        ("run at", Align::Left),
        ("note", Align::Left),
    ]);
    for t in &tasks {
        table.row(vec![
            t.id.to_string(),
            t.state.to_string(),
            t.queue.clone(),
            t.job.clone(),
            format!("{}/{}", t.attempt, t.max_attempts),
            t.priority.to_string(),
            human_time(t.run_at),
            note(t),
        ]);
    }
    let mut human = if table.is_empty() { "no tasks match\n".to_owned() } else { table.render() };
    if let Some(last) = tasks.last().filter(|_| tasks.len() == args.limit as usize) {
        let _ = writeln!(human, "… more after task {}: add --after {}", last.id, last.id);
    }
    let json: Vec<Value> = tasks.iter().map(|t| task_json(t, false)).collect();
    Ok(Output::new(human, json.into()))
}

/// No task `id`.
fn no_task(id: u64) -> Failure {
    Failure::not_found(format!("no task {id}: check the id (`errand tasks ls` lists them)"))
}

/// `errand tasks show ID`.
pub(super) async fn show<B: Expose>(backend: &B, id: u64) -> Result<Result<Output, Failure>, Error> {
    let Some(t) = backend.task(TaskId(id)).await? else { return Ok(Err(no_task(id))) };
    let now = Timestamp::now();
    let when = |ts: Timestamp| format!("{} UTC ({})", human_time(ts), relative(ts, now));
    let mut rows: Vec<(&str, String)> = vec![
        ("job", t.job.clone()),
        ("queue", t.queue.clone()),
        ("state", t.state.to_string()),
        ("attempt", format!("{} of {}", t.attempt, t.max_attempts)),
        ("priority", t.priority.to_string()),
        ("created", when(t.created_at)),
        ("run at", when(t.run_at)),
    ];
    if let Some(finished) = t.finished_at {
        rows.push(("finished", when(finished)));
    }
    if let Some(key) = &t.unique_key {
        rows.push(("unique key", key.clone()));
    }
    if let Some(worker) = &t.worker {
        rows.push(("worker", worker.clone()));
    }
    if let Some(p) = &t.progress {
        let filled = usize::from(p.percent) / 5;
        let bar = format!("[{}{}]", "#".repeat(filled), ".".repeat(20 - filled.min(20)));
        rows.push(("progress", format!("{bar} {}% {}", p.percent, p.message).trim_end().to_owned()));
    }
    if let Some(error) = &t.last_error {
        rows.push(("last error", error.clone()));
    }
    let mut human = format!("task {}\n", t.id);
    for (name, value) in &rows {
        let _ = writeln!(human, "  {name:<11} {}", indent_rest(value, 14));
    }
    let _ = writeln!(human, "arguments:\n  {}", indent_rest(&payload_human(&t.payload), 2));
    if let Some(result) = &t.result {
        let _ = writeln!(human, "result:\n  {}", indent_rest(&payload_human(result), 2));
    }
    if matches!(t.state, TaskState::Dead | TaskState::Cancelled) {
        let _ = writeln!(human, "hint: `errand tasks retry {id}` runs it again");
    }
    Ok(Ok(Output::new(human, task_json(&t, true))))
}

/// `errand tasks retry ID | --dead [--queue Q] [--job J]`.
pub(super) async fn retry<B: Expose>(backend: &B, args: &RetryArgs) -> Result<Result<Output, Failure>, Error> {
    if let Some(id) = args.id {
        if backend.retry_task(TaskId(id)).await? {
            let human = format!("task {id} is pending again, with fresh attempts\n");
            return Ok(Ok(Output::new(human, json!({ "id": id, "retried": true }))));
        }
        let Some(t) = backend.task(TaskId(id)).await? else { return Ok(Err(no_task(id))) };
        let human = format!("task {id} is {}: only dead or cancelled tasks are retried; nothing changed\n", t.state);
        return Ok(Ok(Output::new(human, json!({ "id": id, "retried": false, "state": t.state.as_str() }))));
    }
    let mut filter = TaskFilter {
        queue: args.queue.clone(),
        job: args.job.clone(),
        state: Some(TaskState::Dead),
        limit: RETRY_PAGE,
        after: None,
    };
    let mut retried = Vec::new();
    loop {
        let page = backend.tasks(&filter).await?;
        for t in &page {
            if backend.retry_task(t.id).await? {
                retried.push(t.id.0);
            }
        }
        match page.last() {
            Some(last) if page.len() == RETRY_PAGE as usize => filter.after = Some(last.id),
            _ => break,
        }
    }
    let mut scope = String::new();
    if let Some(queue) = &args.queue {
        let _ = write!(scope, " of queue `{queue}`");
    }
    if let Some(job) = &args.job {
        let _ = write!(scope, " of job `{job}`");
    }
    let human = match retried.len() {
        0 => format!("no dead tasks{scope}: nothing to retry\n"),
        n => format!("retried {} dead task{}{scope}: pending again\n", n, if n == 1 { "" } else { "s" }),
    };
    Ok(Ok(Output::new(human, json!({ "retried": retried.len(), "ids": retried }))))
}

/// `errand tasks cancel ID`.
pub(super) async fn cancel<B: Expose + CancelRunning>(backend: &B, id: u64) -> Result<Result<Output, Failure>, Error> {
    if backend.cancel_task(TaskId(id)).await? {
        let human = format!("task {id} is cancelled (if it was running, its cancellation token fired)\n");
        return Ok(Ok(Output::new(human, json!({ "id": id, "cancelled": true }))));
    }
    let Some(t) = backend.task(TaskId(id)).await? else { return Ok(Err(no_task(id))) };
    let human =
        format!("task {id} is {}: only pending, retrying or running tasks are cancelled; nothing changed\n", t.state);
    Ok(Ok(Output::new(human, json!({ "id": id, "cancelled": false, "state": t.state.as_str() }))))
}

/// `errand tasks delete ID`: finished tasks only (done, dead, cancelled).
pub(super) async fn delete<B: Expose>(backend: &B, id: u64) -> Result<Result<Output, Failure>, Error> {
    if backend.delete_task(TaskId(id)).await? {
        return Ok(Ok(Output::new(format!("deleted task {id}\n"), json!({ "id": id, "deleted": true }))));
    }
    let Some(t) = backend.task(TaskId(id)).await? else { return Ok(Err(no_task(id))) };
    let human = if t.state.is_live() {
        format!(
            "task {id} is {}: only finished tasks (done, dead, cancelled) are deleted; nothing changed\n\
             hint: `errand tasks cancel {id}` first\n",
            t.state
        )
    } else {
        format!("task {id} was not deleted: a workflow step's task goes with its run; nothing changed\n")
    };
    Ok(Ok(Output::new(human, json!({ "id": id, "deleted": false, "state": t.state.as_str() }))))
}
