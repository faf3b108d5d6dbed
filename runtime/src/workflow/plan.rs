//! The workflow planner: what happens to a run when one of its steps ends.
//!
//! Pure and shared by every backend, so that every backend advances runs
//! the same way. A backend loads the runs a batch of acks touches into
//! [`RunProgress`]es, tells each which of its steps ended
//! ([`RunProgress::end`]), and persists the resulting [`RunPlan`] in the
//! same atomic operation as the acks (a transaction, one script):
//!
//! - the outputs to store ([`RunPlan::outputs`]);
//! - the steps whose inputs are now all there, with their payloads
//!   ([`RunPlan::ready`]): each is enqueued exactly once per run;
//! - whether the run ends ([`RunPlan::end`]): `Done` once every sink step is
//!   done, `Failed` when a step failed for good — then the run's other live
//!   steps are cancelled and no step is enqueued any more.
//!
//! A step *fails* whenever its task ends other than `done`: acked `dead`
//! (retries exhausted, aborted, undecodable), rescued on its last attempt,
//! buried as unserved, cancelled, or removed. Every backend path that ends a
//! step task feeds the planner, so no run is left without an end.
//!
//! # Examples
//!
//! ```
//! use errand_runtime::JsonCodec;
//! use errand_runtime::workflow::plan::{Graph, RunEnd, RunProgress, StepEnd};
//! use errand_runtime::workflow::{RunId, StepSpec};
//!
//! let spec = |name: &str, after: &[u16]| StepSpec { name: name.into(), after: after.to_vec(), max_attempts: 1, priority: 0 };
//! let graph = Graph::new(vec![spec("fetch", &[]), spec("mail", &[0]), spec("bill", &[0]), spec("report", &[1, 2])]).unwrap();
//! let (mut run, started) = RunProgress::start::<JsonCodec>(RunId(1), graph, b"42").unwrap();
//! assert_eq!(started.ready.iter().map(|r| r.step).collect::<Vec<_>>(), [0]);
//!
//! run.end(0, StepEnd::Done(b"\"ada\"".to_vec()));
//! let plan = run.take_plan::<JsonCodec>().unwrap();
//! assert_eq!(plan.ready.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 2]); // fan-out
//!
//! run.end(1, StepEnd::Done(b"1".to_vec()));
//! assert!(run.take_plan::<JsonCodec>().unwrap().ready.is_empty()); // `report` waits for `bill`
//! run.end(2, StepEnd::Failed("card declined".into()));
//! let plan = run.take_plan::<JsonCodec>().unwrap();
//! assert_eq!(plan.end, Some(RunEnd::Failed("step `bill` failed: card declined".into())));
//! ```

use super::{RunId, RunState, StepPayload, StepSpec};
use crate::codec::Codec;
use crate::error::CodecError;
use crate::workflow::Bytes;

/// A workflow's graph, checked: every `after` names another step, and there
/// is no cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    steps: Vec<StepSpec>,
    dependents: Vec<Vec<u16>>,
    entries: Vec<u16>,
    sinks: Vec<u16>,
}

impl Graph {
    /// Checks `steps` (in declaration order, not necessarily topological).
    ///
    /// # Errors
    ///
    /// When there are no steps or more than 65,535, an `after` names no
    /// other step, or the steps form a cycle: a graph read back from storage
    /// that this version cannot run.
    pub fn new(steps: Vec<StepSpec>) -> Result<Self, String> {
        let n = steps.len();
        if n == 0 || n > usize::from(u16::MAX) {
            return Err(format!("a workflow has 1 to {} steps, not {n}", u16::MAX));
        }
        let mut dependents: Vec<Vec<u16>> = vec![Vec::new(); n];
        for (i, step) in steps.iter().enumerate() {
            for &a in &step.after {
                if usize::from(a) >= n || usize::from(a) == i {
                    return Err(format!("step `{}` runs after step {a}, which is not another step", step.name));
                }
                let i = u16::try_from(i).map_err(|_| format!("step {i} is out of range"))?;
                if !dependents[usize::from(a)].contains(&i) {
                    dependents[usize::from(a)].push(i);
                }
            }
        }
        // Kahn: every step is reachable in dependency order, or there is a cycle.
        let mut waiting: Vec<usize> = steps
            .iter()
            .map(|s| {
                let mut after = s.after.clone();
                after.sort_unstable();
                after.dedup();
                after.len()
            })
            .collect();
        let mut ready: Vec<usize> = (0..n).filter(|i| waiting[*i] == 0).collect();
        let mut seen = 0;
        while let Some(i) = ready.pop() {
            seen += 1;
            for &d in &dependents[i] {
                waiting[usize::from(d)] -= 1;
                if waiting[usize::from(d)] == 0 {
                    ready.push(usize::from(d));
                }
            }
        }
        if seen < n {
            return Err("the steps form a cycle".to_owned());
        }
        let index = |i: usize| u16::try_from(i).ok();
        let entries = (0..n).filter(|i| steps[*i].after.is_empty()).filter_map(index).collect();
        let sinks = (0..n).filter(|i| dependents[*i].is_empty()).filter_map(index).collect();
        Ok(Self { steps, dependents, entries, sinks })
    }

    /// The steps, in declaration order.
    pub fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    /// How many steps there are.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no steps (never, for a checked graph).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps without dependencies, which take the workflow's input.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }

    /// The steps nothing depends on, in declaration order: the run is done
    /// when they all are, and its output is theirs.
    pub fn sinks(&self) -> &[u16] {
        &self.sinks
    }

    /// The steps that take `step`'s output.
    pub fn dependents(&self, step: u16) -> &[u16] {
        self.dependents.get(usize::from(step)).map_or(&[], Vec::as_slice)
    }

    /// The steps whose outputs `step` takes, in argument order.
    pub fn after(&self, step: u16) -> &[u16] {
        self.steps.get(usize::from(step)).map_or(&[], |s| s.after.as_slice())
    }

    /// The name of `step`, or `?` for a step outside the graph.
    pub fn name(&self, step: u16) -> &str {
        self.steps.get(usize::from(step)).map_or("?", |s| s.name.as_str())
    }
}

/// How one step's task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnd {
    /// It succeeded with this encoded output.
    Done(Vec<u8>),
    /// It failed for good (dead, cancelled, buried, lost on its last
    /// attempt), for this reason.
    Failed(String),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every sink step is done.
    Done,
    /// A step failed for good: the run's error. The run's other live steps
    /// are cancelled.
    Failed(String),
}

/// A step to enqueue: its task's payload and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyStep {
    /// The step.
    pub step: u16,
    /// Its task's payload ([`StepPayload`], encoded with the backend's codec).
    pub payload: Vec<u8>,
    /// Its task's priority.
    pub priority: i16,
    /// Its task's runs in all.
    pub max_attempts: u32,
}

/// What to persist for one run, atomically with the acks that caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunPlan {
    /// The run.
    pub run: RunId,
    /// Step outputs to store.
    pub outputs: Vec<(u16, Vec<u8>)>,
    /// Steps to enqueue (none once the run has failed).
    pub ready: Vec<ReadyStep>,
    /// Whether the run ends.
    pub end: Option<RunEnd>,
}

impl RunPlan {
    /// Whether there is nothing to persist.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty() && self.ready.is_empty() && self.end.is_none()
    }
}

/// A run as its store knows it, advanced by the ends of its steps.
#[derive(Debug, Clone)]
pub struct RunProgress {
    id: RunId,
    graph: Graph,
    state: RunState,
    outputs: Vec<Option<Vec<u8>>>,
    /// Steps that have (or had) a task: never enqueued twice.
    started: Vec<bool>,
    /// What [`take_plan`](Self::take_plan) returns next.
    stored: Vec<u16>,
    ready: Vec<u16>,
    end: Option<RunEnd>,
}

impl RunProgress {
    /// A stored run: its state, each step's output if it is done, and
    /// whether each step has (or had) a task.
    ///
    /// # Errors
    ///
    /// When `outputs` or `started` do not have one entry per step.
    pub fn new(
        id: RunId,
        graph: Graph,
        state: RunState,
        outputs: Vec<Option<Vec<u8>>>,
        started: Vec<bool>,
    ) -> Result<Self, String> {
        if outputs.len() != graph.len() || started.len() != graph.len() {
            return Err(format!(
                "run {id} has {} steps but {} outputs and {} step tasks were read",
                graph.len(),
                outputs.len(),
                started.len()
            ));
        }
        Ok(Self { id, graph, state, outputs, started, stored: Vec::new(), ready: Vec::new(), end: None })
    }

    /// A new run: its entry steps are ready, with `input` (the encoded
    /// workflow input) as their one input.
    ///
    /// # Errors
    ///
    /// When a payload cannot be encoded.
    pub fn start<C: Codec>(id: RunId, graph: Graph, input: &[u8]) -> Result<(Self, RunPlan), CodecError> {
        let n = graph.len();
        let mut run = Self {
            id,
            graph,
            state: RunState::Running,
            outputs: vec![None; n],
            started: vec![false; n],
            stored: Vec::new(),
            ready: Vec::new(),
            end: None,
        };
        let mut plan = RunPlan { run: id, ..RunPlan::default() };
        for &entry in run.graph.entries() {
            run.started[usize::from(entry)] = true;
            plan.ready.push(run.ready_step::<C>(entry, vec![Bytes(input.to_vec())])?);
        }
        Ok((run, plan))
    }

    /// The run.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// Its graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Where it is.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// Each step's output, once done.
    pub fn outputs(&self) -> &[Option<Vec<u8>>] {
        &self.outputs
    }

    /// Step `step` ended. Ends of a run that is no longer running, of a step
    /// outside the graph, and repeated `done`s are ignored.
    pub fn end(&mut self, step: u16, end: StepEnd) {
        let index = usize::from(step);
        if self.state != RunState::Running || index >= self.graph.len() {
            return;
        }
        match end {
            StepEnd::Done(output) => {
                if self.outputs[index].is_some() {
                    return;
                }
                self.outputs[index] = Some(output);
                self.stored.push(step);
                for &next in self.graph.dependents(step) {
                    let inputs_there = self.graph.after(next).iter().all(|a| self.outputs[usize::from(*a)].is_some());
                    if inputs_there && !self.started[usize::from(next)] {
                        self.started[usize::from(next)] = true;
                        self.ready.push(next);
                    }
                }
                if self.graph.sinks().iter().all(|s| self.outputs[usize::from(*s)].is_some()) {
                    self.state = RunState::Done;
                    self.end = Some(RunEnd::Done);
                }
            }
            StepEnd::Failed(error) => {
                self.state = RunState::Failed;
                self.ready.clear();
                self.end = Some(RunEnd::Failed(step_failed(self.graph.name(step), &error)));
            }
        }
    }

    /// What the ends since the last call lead to: outputs to store, steps to
    /// enqueue (with their payloads encoded with `C`), the run's end.
    ///
    /// # Errors
    ///
    /// When a payload cannot be encoded.
    pub fn take_plan<C: Codec>(&mut self) -> Result<RunPlan, CodecError> {
        let mut plan = RunPlan { run: self.id, end: self.end.take(), ..RunPlan::default() };
        for step in std::mem::take(&mut self.stored) {
            if let Some(Some(output)) = self.outputs.get(usize::from(step)) {
                plan.outputs.push((step, output.clone()));
            }
        }
        for step in std::mem::take(&mut self.ready) {
            let inputs = self
                .graph
                .after(step)
                .iter()
                .map(|a| Bytes(self.outputs[usize::from(*a)].clone().unwrap_or_default()))
                .collect();
            plan.ready.push(self.ready_step::<C>(step, inputs)?);
        }
        Ok(plan)
    }

    fn ready_step<C: Codec>(&self, step: u16, inputs: Vec<Bytes>) -> Result<ReadyStep, CodecError> {
        let spec = &self.graph.steps()[usize::from(step)];
        let payload = StepPayload { run: self.id, step, inputs };
        let what = format!("the payload of step `{}` of workflow run {}", spec.name, self.id);
        Ok(ReadyStep {
            step,
            payload: C::encode(&payload, &what)?,
            priority: spec.priority,
            max_attempts: spec.max_attempts,
        })
    }
}

/// The error of a run that failed because step `name` failed with `error`.
pub fn step_failed(name: &str, error: &str) -> String {
    format!("step `{name}` failed: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::JsonCodec;

    fn spec(name: &str, after: &[u16]) -> StepSpec {
        StepSpec { name: name.into(), after: after.to_vec(), max_attempts: 2, priority: 3 }
    }

    fn diamond() -> Graph {
        match Graph::new(vec![spec("fetch", &[]), spec("mail", &[0]), spec("bill", &[0]), spec("report", &[1, 2])]) {
            Ok(graph) => graph,
            Err(e) => panic!("{e}"),
        }
    }

    fn steps(plan: &RunPlan) -> Vec<u16> {
        plan.ready.iter().map(|r| r.step).collect()
    }

    fn payload(plan: &RunPlan, step: u16) -> StepPayload {
        let ready = plan.ready.iter().find(|r| r.step == step).unwrap_or_else(|| panic!("step {step} not ready"));
        JsonCodec::decode(&ready.payload, "a payload").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn graphs_are_checked() {
        assert!(Graph::new(vec![]).is_err());
        assert!(Graph::new(vec![spec("a", &[1])]).is_err(), "after names no step");
        assert!(Graph::new(vec![spec("a", &[0])]).is_err(), "a step after itself");
        assert!(Graph::new(vec![spec("a", &[1]), spec("b", &[0])]).is_err(), "a cycle");
        let graph = diamond();
        assert_eq!((graph.entries(), graph.sinks()), (&[0][..], &[3][..]));
        assert_eq!(graph.dependents(0), [1, 2]);
    }

    #[test]
    fn steps_declared_before_their_dependencies_are_planned() {
        // `report` is declared first and runs last.
        let graph = match Graph::new(vec![spec("report", &[2]), spec("fetch", &[]), spec("mail", &[1])]) {
            Ok(graph) => graph,
            Err(e) => panic!("{e}"),
        };
        let (mut run, start) = RunProgress::start::<JsonCodec>(RunId(9), graph, b"1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(steps(&start), [1]);
        run.end(1, StepEnd::Done(b"2".to_vec()));
        assert_eq!(steps(&run.take_plan::<JsonCodec>().unwrap_or_default()), [2]);
        run.end(2, StepEnd::Done(b"3".to_vec()));
        let plan = run.take_plan::<JsonCodec>().unwrap_or_default();
        assert_eq!(steps(&plan), [0]);
        run.end(0, StepEnd::Done(b"4".to_vec()));
        assert_eq!(run.take_plan::<JsonCodec>().unwrap_or_default().end, Some(RunEnd::Done));
    }

    #[test]
    fn a_fan_in_waits_for_every_input_and_takes_them_in_order() {
        let (mut run, _) = RunProgress::start::<JsonCodec>(RunId(1), diamond(), b"0").unwrap_or_else(|e| panic!("{e}"));
        run.end(0, StepEnd::Done(b"u".to_vec()));
        run.end(2, StepEnd::Done(b"b".to_vec()));
        let plan = run.take_plan::<JsonCodec>().unwrap_or_default();
        assert_eq!(steps(&plan), [1, 2]);
        assert_eq!(plan.outputs.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 2]);
        run.end(1, StepEnd::Done(b"m".to_vec()));
        let plan = run.take_plan::<JsonCodec>().unwrap_or_default();
        assert_eq!(steps(&plan), [3]);
        let report = payload(&plan, 3);
        assert_eq!(report.inputs, [Bytes(b"m".to_vec()), Bytes(b"b".to_vec())], "inputs in `after` order");
        assert_eq!((plan.ready[0].priority, plan.ready[0].max_attempts), (3, 2));
        assert_eq!(plan.end, None, "the sink has not run yet");
    }

    #[test]
    fn a_step_is_enqueued_once_and_a_repeated_end_changes_nothing() {
        let (mut run, _) = RunProgress::start::<JsonCodec>(RunId(1), diamond(), b"0").unwrap_or_else(|e| panic!("{e}"));
        run.end(0, StepEnd::Done(b"u".to_vec()));
        run.end(0, StepEnd::Done(b"again".to_vec()));
        let plan = run.take_plan::<JsonCodec>().unwrap_or_default();
        assert_eq!(steps(&plan), [1, 2]);
        assert_eq!(plan.outputs, [(0, b"u".to_vec())]);
        run.end(0, StepEnd::Done(b"u".to_vec()));
        assert!(run.take_plan::<JsonCodec>().unwrap_or_default().is_empty());
    }

    #[test]
    fn a_failure_ends_the_run_and_drops_what_it_made_ready() {
        let (mut run, _) = RunProgress::start::<JsonCodec>(RunId(4), diamond(), b"0").unwrap_or_else(|e| panic!("{e}"));
        run.end(0, StepEnd::Done(b"u".to_vec()));
        run.end(1, StepEnd::Failed("boom".into()));
        let plan = run.take_plan::<JsonCodec>().unwrap_or_default();
        assert!(plan.ready.is_empty(), "a failed run enqueues nothing");
        assert_eq!(plan.end, Some(RunEnd::Failed("step `mail` failed: boom".into())));
        assert_eq!(run.state(), RunState::Failed);
        run.end(2, StepEnd::Done(b"late".to_vec()));
        assert!(run.take_plan::<JsonCodec>().unwrap_or_default().is_empty(), "ends after the run ended are ignored");
    }

    #[test]
    fn stored_runs_resume_where_they_were() {
        let outputs = vec![Some(b"u".to_vec()), Some(b"m".to_vec()), None, None];
        let started = vec![true, true, true, false];
        let mut run = RunProgress::new(RunId(2), diamond(), RunState::Running, outputs, started)
            .unwrap_or_else(|e| panic!("{e}"));
        run.end(2, StepEnd::Done(b"b".to_vec()));
        let plan = run.take_plan::<JsonCodec>().unwrap_or_default();
        assert_eq!(steps(&plan), [3]);
        assert!(RunProgress::new(RunId(2), diamond(), RunState::Running, vec![None], vec![false]).is_err());
    }
}
