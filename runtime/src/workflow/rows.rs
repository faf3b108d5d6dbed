//! Reading stored runs back, for SQL backends: the rows of a run and of its
//! steps become a [`RunInfo`], checked as task rows are.

use super::plan::Graph;
use super::{RunId, RunInfo, RunState, StepInfo, StepSpec};
use crate::backend::stored::{StoredRow, bad_data, to_state};
use crate::error::Error;
use crate::task::TaskId;
use crate::time::Timestamp;

/// A workflow's graph as stored: the JSON of its [`StepSpec`]s, checked.
///
/// # Errors
///
/// When it does not parse or is not a graph errand can run (see
/// [`Graph::new`]).
pub fn read_graph(backend: &'static str, json: &str, what: &str) -> Result<Graph, Error> {
    let steps: Vec<StepSpec> =
        serde_json::from_str(json).map_err(|e| bad_data(backend, what, format!("its graph does not parse: {e}")))?;
    Graph::new(steps).map_err(|problem| bad_data(backend, what, problem))
}

/// The graph as stored: JSON of its [`StepSpec`]s.
pub fn graph_json(steps: &[StepSpec]) -> String {
    // A Vec of plain structs with string keys always serializes.
    serde_json::to_string(steps).unwrap_or_else(|_| "[]".to_owned())
}

fn column<T>(backend: &'static str, what: &str, column: &str, value: Result<Option<T>, String>) -> Result<T, Error> {
    match value {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(bad_data(backend, what, format!("column `{column}` is NULL"))),
        Err(problem) => Err(bad_data(backend, what, format!("column `{column}`: {problem}"))),
    }
}

fn optional<T>(
    backend: &'static str,
    what: &str,
    column: &str,
    value: Result<Option<T>, String>,
) -> Result<Option<T>, Error> {
    value.map_err(|problem| bad_data(backend, what, format!("column `{column}`: {problem}")))
}

/// The names of the steps at `indices` of `steps`.
pub fn step_names(steps: &[StepSpec], indices: &[u16]) -> Vec<String> {
    indices.iter().filter_map(|i| steps.get(usize::from(*i))).map(|s| s.name.clone()).collect()
}

/// A run from its row (columns `workflow`, `state`, `steps` — the graph's
/// JSON —, `error`, `created_at`) and the rows of its steps that have a task
/// (columns `step`, `task_id`, `output`, `state`, `attempt`, `last_error`;
/// all but `step` may be NULL).
///
/// # Errors
///
/// When a value is missing, an unknown state, or a step outside the graph.
pub fn read_run_info<R: StoredRow>(backend: &'static str, run: RunId, row: &R, steps: &[R]) -> Result<RunInfo, Error> {
    let what = format!("workflow run {run}");
    let what = what.as_str();
    let state = column(backend, what, "state", row.text("state"))?;
    let state =
        RunState::parse(&state).ok_or_else(|| bad_data(backend, what, format!("unknown run state `{state}`")))?;
    let graph = read_graph(backend, &column(backend, what, "steps", row.text("steps"))?, what)?;
    let mut info = RunInfo {
        id: run,
        workflow: column(backend, what, "workflow", row.text("workflow"))?,
        state,
        steps: graph
            .steps()
            .iter()
            .map(|s| StepInfo {
                name: s.name.clone(),
                after: step_names(graph.steps(), &s.after),
                task: None,
                state: None,
                attempt: 0,
                error: None,
                output: None,
            })
            .collect(),
        error: optional(backend, what, "error", row.text("error"))?,
        created_at: Timestamp(column(backend, what, "created_at", row.int("created_at"))?),
    };
    for step_row in steps {
        let step = column(backend, what, "step", step_row.int("step"))?;
        let Some(step_info) = usize::try_from(step).ok().and_then(|i| info.steps.get_mut(i)) else {
            return Err(bad_data(backend, what, format!("step {step} is not in the workflow's graph")));
        };
        step_info.task = optional(backend, what, "task_id", step_row.int("task_id"))?
            .and_then(|t| u64::try_from(t).ok())
            .map(TaskId);
        step_info.output = optional(backend, what, "output", step_row.bytes("output"))?;
        step_info.state = optional(backend, what, "state", step_row.text("state"))?
            .map(|s| to_state(backend, &s, what))
            .transpose()?;
        step_info.attempt = optional(backend, what, "attempt", step_row.int("attempt"))?
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0);
        step_info.error = optional(backend, what, "last_error", step_row.text("last_error"))?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A row as a map of column → value.
    #[derive(Default)]
    struct Row(HashMap<&'static str, Value>);

    enum Value {
        Int(i64),
        Text(&'static str),
        Null,
    }

    impl Row {
        fn with(mut self, column: &'static str, value: Value) -> Self {
            self.0.insert(column, value);
            self
        }
    }

    impl StoredRow for Row {
        fn int(&self, column: &str) -> Result<Option<i64>, String> {
            match self.0.get(column) {
                Some(Value::Int(n)) => Ok(Some(*n)),
                Some(Value::Null) | None => Ok(None),
                Some(Value::Text(_)) => Err("not an integer".into()),
            }
        }
        fn text(&self, column: &str) -> Result<Option<String>, String> {
            match self.0.get(column) {
                Some(Value::Text(s)) => Ok(Some((*s).to_owned())),
                Some(Value::Null) | None => Ok(None),
                Some(Value::Int(_)) => Err("not text".into()),
            }
        }
        fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, String> {
            self.text(column).map(|t| t.map(String::into_bytes))
        }
    }

    const GRAPH: &str = r#"[{"name":"a","after":[],"max_attempts":1,"priority":0},{"name":"b","after":[0],"max_attempts":1,"priority":0}]"#;

    fn run_row(state: &'static str, steps: &'static str) -> Row {
        Row::default()
            .with("workflow", Value::Text("wf"))
            .with("state", Value::Text(state))
            .with("steps", Value::Text(steps))
            .with("error", Value::Null)
            .with("created_at", Value::Int(5))
    }

    fn step_row(step: i64, state: &'static str) -> Row {
        Row::default()
            .with("step", Value::Int(step))
            .with("task_id", Value::Int(3))
            .with("output", Value::Text("1"))
            .with("state", Value::Text(state))
            .with("attempt", Value::Int(1))
    }

    #[test]
    fn run_info_is_assembled_and_bad_rows_are_refused() {
        let info = read_run_info("x", RunId(7), &run_row("running", GRAPH), &[step_row(0, "done")]);
        let info = info.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.steps[0].task, Some(TaskId(3)));
        assert_eq!(info.steps[0].state, Some(crate::TaskState::Done));
        assert_eq!((info.steps[1].name.as_str(), info.steps[1].state), ("b", None));
        assert!(
            read_run_info("x", RunId(7), &run_row("running", GRAPH), &[step_row(5, "done")]).is_err(),
            "a step outside the graph"
        );
        assert!(
            read_run_info("x", RunId(7), &run_row("running", GRAPH), &[step_row(1, "sideways")]).is_err(),
            "an unknown task state"
        );
        assert!(read_run_info("x", RunId(7), &run_row("paused", GRAPH), &[]).is_err(), "an unknown run state");
        assert!(read_run_info("x", RunId(7), &run_row("running", "{"), &[]).is_err(), "a graph that does not parse");
    }
}
