//! `errand runs ls|show`.

use std::fmt::Write as _;

use errand_runtime::workflow::{RunFilter, RunInfo, RunState, StepInfo, WorkflowStore};
use errand_runtime::{Error, RunId, Timestamp};
use serde_json::{Value, json};

use crate::args::RunListArgs;
use crate::error::Failure;
use crate::output::{Align, Output, Table, clip, human_time, payload_json, relative, rfc3339};

/// A step's state for people: its task's, or `waiting` for its inputs.
fn step_state(step: &StepInfo) -> String {
    step.state.map_or_else(|| "waiting".to_owned(), |s| s.to_string())
}

/// A run as JSON; with `steps`, every step too.
fn run_json(run: &RunInfo, steps: bool) -> Value {
    let done = run.steps.iter().filter(|s| s.state == Some(errand_runtime::TaskState::Done)).count();
    let mut v = json!({
        "id": run.id.0,
        "workflow": run.workflow,
        "state": run.state.as_str(),
        "created_at": rfc3339(run.created_at),
        "error": run.error,
        "steps_done": done,
        "steps_total": run.steps.len(),
    });
    if steps && let Value::Object(map) = &mut v {
        let steps: Vec<Value> = run
            .steps
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "after": s.after,
                    "task": s.task.map(|t| t.0),
                    "state": s.state.map(|t| t.as_str()),
                    "attempt": s.attempt,
                    "error": s.error,
                    "output": s.output.as_deref().map(payload_json),
                })
            })
            .collect();
        map.insert("steps".into(), steps.into());
    }
    v
}

/// `errand runs ls`.
pub(super) async fn list<B: WorkflowStore>(backend: &B, args: &RunListArgs) -> Result<Output, Error> {
    let filter = RunFilter {
        workflow: args.workflow.clone(),
        state: args.state,
        limit: args.limit,
        before: args.before.map(RunId),
    };
    let runs = backend.runs(&filter).await?;
    let now = Timestamp::now();
    let mut table = Table::new(&[
        ("id", Align::Right),
        ("workflow", Align::Left),
        ("state", Align::Left),
        ("steps", Align::Right),
        ("started", Align::Left),
        ("error", Align::Left),
    ]);
    for run in &runs {
        let done = run.steps.iter().filter(|s| s.state == Some(errand_runtime::TaskState::Done)).count();
        table.row(vec![
            run.id.to_string(),
            run.workflow.clone(),
            run.state.as_str().to_owned(),
            format!("{done}/{}", run.steps.len()),
            relative(run.created_at, now),
            run.error.as_deref().map(|e| clip(e, 60)).unwrap_or_default(),
        ]);
    }
    let mut human = if table.is_empty() { "no workflow runs match\n".to_owned() } else { table.render() };
    if let Some(last) = runs.last().filter(|_| runs.len() == args.limit as usize) {
        let _ = writeln!(human, "… older runs: add --before {}", last.id);
    }
    let json: Vec<Value> = runs.iter().map(|r| run_json(r, false)).collect();
    Ok(Output::new(human, json.into()))
}

/// `errand runs show ID`.
pub(super) async fn show<B: WorkflowStore>(backend: &B, id: u64) -> Result<Result<Output, Failure>, Error> {
    let Some(run) = backend.run_info(RunId(id)).await? else {
        return Ok(Err(Failure::not_found(format!(
            "no workflow run {id}: check the id (`errand runs ls` lists them; finished runs are removed after the retention)"
        ))));
    };
    let now = Timestamp::now();
    let mut human = format!(
        "run {}  {}  {}  started {} UTC ({})\n",
        run.id,
        run.workflow,
        run.state.as_str(),
        human_time(run.created_at),
        relative(run.created_at, now)
    );
    if let Some(error) = &run.error {
        let _ = writeln!(human, "error: {error}");
    }
    human.push_str(&tree(&run.steps));
    if run.state == RunState::Failed {
        human.push_str("hint: `errand tasks show TASK` shows a step's task in full\n");
    }
    Ok(Ok(Output::new(human, run_json(&run, true))))
}

/// The steps as a tree: entry steps at the root, each step under the first
/// step it runs after (a step that runs after several says so). Columns
/// after the names line up.
fn tree(steps: &[StepInfo]) -> String {
    let index = |name: &str| steps.iter().position(|s| s.name == name);
    // The parent of each step: the first of its `after` that is a step here.
    let parent: Vec<Option<usize>> = steps.iter().map(|s| s.after.iter().find_map(|a| index(a))).collect();
    let children = |p: Option<usize>| -> Vec<usize> { (0..steps.len()).filter(|&i| parent[i] == p).collect() };

    // Depth-first, with the prefix each line gets.
    let mut lines: Vec<(String, usize)> = Vec::with_capacity(steps.len());
    let mut stack: Vec<(usize, String, String)> =
        children(None).into_iter().rev().map(|i| (i, String::new(), String::new())).collect();
    let mut seen = vec![false; steps.len()];
    while let Some((i, prefix, child_prefix)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        lines.push((format!("{prefix}{}", steps[i].name), i));
        let kids = children(Some(i));
        for (k, &child) in kids.iter().enumerate().rev() {
            let last = k + 1 == kids.len();
            let (branch, cont) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
            stack.push((child, format!("{child_prefix}{branch}"), format!("{child_prefix}{cont}")));
        }
    }
    // Steps in a cycle or under a missing parent: listed at the root.
    for (i, step) in steps.iter().enumerate() {
        if !seen[i] {
            lines.push((step.name.clone(), i));
        }
    }

    let mut table = Table::new(&[
        ("step", Align::Left),
        ("state", Align::Left),
        ("attempt", Align::Right),
        ("task", Align::Right),
        ("note", Align::Left),
    ]);
    for (label, i) in lines {
        let step = &steps[i];
        let mut note = Vec::new();
        if step.after.len() > 1 {
            note.push(format!("after {}", step.after.join(", ")));
        }
        if let Some(error) = &step.error {
            note.push(format!("error: {}", clip(error, 80)));
        }
        table.row(vec![
            label,
            step_state(step),
            if step.task.is_some() { step.attempt.to_string() } else { String::new() },
            step.task.map(|t| t.to_string()).unwrap_or_default(),
            note.join("; "),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use errand_runtime::{TaskId, TaskState};

    use super::*;

    fn step(name: &str, after: &[&str], state: Option<TaskState>) -> StepInfo {
        StepInfo {
            name: name.to_owned(),
            after: after.iter().map(|a| (*a).to_owned()).collect(),
            task: state.map(|_| TaskId(1)),
            state,
            attempt: 1,
            error: None,
            output: None,
        }
    }

    #[test]
    fn a_diamond_is_drawn_as_a_tree() {
        let steps = vec![
            step("fetch", &[], Some(TaskState::Done)),
            step("welcome", &["fetch"], Some(TaskState::Done)),
            step("provision", &["fetch"], Some(TaskState::Running)),
            step("report", &["welcome", "provision"], None),
        ];
        let text = tree(&steps);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("STEP"), "{text}");
        assert!(lines[1].starts_with("fetch "), "{text}");
        assert!(lines[2].starts_with("├── welcome "), "{text}");
        assert!(lines[3].starts_with("│   └── report ") && lines[3].contains("waiting"), "{text}");
        assert!(lines[3].contains("after welcome, provision"), "{text}");
        assert!(lines[4].starts_with("└── provision ") && lines[4].contains("running"), "{text}");
    }
}
