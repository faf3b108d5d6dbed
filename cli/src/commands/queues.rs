//! `errand queues`, `errand queue pause|resume`, `errand workers`.

use errand_runtime::{Error, Expose, TaskState, Timestamp};
use serde_json::json;

use crate::output::{Align, Output, Table, human_time, relative, rfc3339};

/// Counts per queue and state, and whether each queue is paused.
pub(super) async fn queues<B: Expose>(backend: &B) -> Result<Output, Error> {
    let mut counts = backend.counts().await?;
    counts.sort_by(|a, b| a.queue.cmp(&b.queue));
    let mut columns = vec![("queue", Align::Left)];
    columns.extend(TaskState::ALL.iter().map(|s| (s.as_str(), Align::Right)));
    columns.push(("paused", Align::Left));
    let mut table = Table::new(&columns);
    let mut json = Vec::with_capacity(counts.len());
    for c in &counts {
        let mut row = vec![c.queue.clone()];
        row.extend(TaskState::ALL.iter().map(|s| c.get(*s).to_string()));
        row.push(if c.paused { "paused".to_owned() } else { String::new() });
        table.row(row);
        let mut entry = serde_json::Map::new();
        entry.insert("queue".into(), json!(c.queue));
        for state in TaskState::ALL {
            entry.insert(state.as_str().into(), json!(c.get(state)));
        }
        entry.insert("paused".into(), json!(c.paused));
        json.push(serde_json::Value::Object(entry));
    }
    let human = if table.is_empty() { "no queues yet: nothing was enqueued\n".to_owned() } else { table.render() };
    Ok(Output::new(human, json.into()))
}

/// Pauses (`pause`) or resumes `queue`.
pub(super) async fn pause<B: Expose>(backend: &B, queue: &str, pause: bool) -> Result<Output, Error> {
    if pause {
        backend.pause_queue(queue).await?;
    } else {
        backend.resume_queue(queue).await?;
    }
    let human = if pause {
        format!("paused queue `{queue}`: its workers claim nothing until `errand queue resume {queue}`\n")
    } else {
        format!("resumed queue `{queue}`\n")
    };
    Ok(Output::new(human, json!({ "queue": queue, "paused": pause })))
}

/// The live workers.
pub(super) async fn workers<B: Expose>(backend: &B) -> Result<Output, Error> {
    let mut workers = backend.workers().await?;
    workers.sort_by(|a, b| (&a.queue, &a.job, &a.id).cmp(&(&b.queue, &b.job, &b.id)));
    let now = Timestamp::now();
    let mut table = Table::new(&[
        ("id", Align::Left),
        ("queue", Align::Left),
        ("job", Align::Left),
        ("concurrency", Align::Right),
        ("started", Align::Left),
        ("last seen", Align::Left),
    ]);
    let mut json = Vec::with_capacity(workers.len());
    for w in &workers {
        table.row(vec![
            w.id.clone(),
            w.queue.clone(),
            w.job.clone(),
            w.concurrency.to_string(),
            human_time(w.started_at),
            relative(w.last_seen, now),
        ]);
        json.push(json!({
            "id": w.id,
            "queue": w.queue,
            "job": w.job,
            "concurrency": w.concurrency,
            "started_at": rfc3339(w.started_at),
            "last_seen": rfc3339(w.last_seen),
        }));
    }
    let human = if table.is_empty() { "no live workers\n".to_owned() } else { table.render() };
    Ok(Output::new(human, json.into()))
}
