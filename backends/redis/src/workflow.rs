//! `impl WorkflowStore for RedisBackend`: runs in hashes, advanced by the ack
//! script itself (see "Workflows" in the crate docs).
//!
//! The runtime's planner ([`plan`]) decides how a run advances; the ack
//! script applies the same rules to tables the planner's [`Graph`] gives
//! (each step's inputs and dependents, the sinks, the failure messages), so
//! that a step's ack and its run's advance are one atomic script.
//!
//! The script cannot call the codec, so everything codec-specific is done
//! here, before the scripts run: `start_run` takes the entry steps' tasks
//! from [`RunProgress::start`], and stores, for every step that has inputs,
//! the bytes of its payload *around* its inputs — found by letting the
//! planner encode the payload with recognisable sentinel inputs and cutting
//! it where their encodings are; the ack passes each step's output already
//! encoded as a payload element ([`Bytes`]). The script then builds a ready
//! step's payload by concatenation: the same bytes the planner would
//! encode, which [`check_codec`] verifies once per codec.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use errand_runtime::workflow::plan::{self, Graph, RunProgress, StepEnd};
use errand_runtime::workflow::{Bytes, NewRun, RunFilter, RunId, RunInfo, RunState, StepInfo, StepSpec, WorkflowStore};
use errand_runtime::{Codec, CodecError, Error, TaskId, TaskState, Timestamp};
use redis::Value;

use crate::keys::{SEQ_BITS, split_id, task_id};
use crate::record::storable_trace;
use crate::reply::{self, failed, int, malformed, unexpected};
use crate::{RedisBackend, lock};

/// The length of a sentinel input.
const SENTINEL_LEN: usize = 24;

impl<C: Codec> WorkflowStore for RedisBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        check_codec::<C>()?;
        let queue = run.queue.as_str();
        let what = || format!("start a run of workflow `{}` on queue `{queue}`", run.workflow);
        let graph = Graph::new(run.steps)
            .map_err(|problem| Error::Config(format!("workflow `{}` cannot run: {problem}", run.workflow)))?;
        let number = self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let seq: u64 = redis::cmd("INCR")
            .arg(format!("{base}wseq"))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| failed(what(), e))?;
        if seq >> SEQ_BITS != 0 {
            return Err(malformed(what(), "the queue ran out of workflow run ids (2^40 per queue)"));
        }
        let id = RunId(task_id(number, seq).0);
        let fields = run_fields::<C>(id, &graph)?;
        let (_, started) = RunProgress::start::<C>(id, graph, &run.input)?;

        // The run's trace context, stored in the run and carried by every
        // step's task: `-` for none, else `+` and the context.
        let trace = match storable_trace(run.trace.as_deref()) {
            Some(trace) => format!("+{trace}"),
            None => "-".to_owned(),
        };

        let lua = &self.inner.scripts.start;
        let mut cmd = lua.call(&[&format!("{base}n"), &format!("{base}jobs"), &format!("{base}wl")]);
        cmd.arg(&base)
            .arg(self.now().as_millis())
            .arg(&self.inner.channel)
            .arg(queue)
            .arg(seq)
            .arg(run.workflow)
            .arg(trace)
            .arg(fields.len());
        for (field, value) in &fields {
            cmd.arg(field).arg(value);
        }
        for ready in &started.ready {
            cmd.arg(ready.step).arg(&ready.payload).arg(ready.priority).arg(ready.max_attempts);
        }
        lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what(), e))?;
        self.inner.notifier.notify(queue);
        Ok(id)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let (number, seq) = split_id(TaskId(run.0));
        let Some(queue) = self.queue_name(number).await? else { return Ok(None) };
        let base = self.inner.keys.base(&queue);
        let what = format!("read workflow run {run}");
        let lua = &self.inner.scripts.run;
        let mut cmd = lua.call(&[&format!("{base}wr:{seq}")]);
        cmd.arg(&base).arg(seq);
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        if value == Value::Nil {
            return Ok(None);
        }
        let bad = |detail: &str| malformed(what.as_str(), detail.to_owned());
        let mut items = reply::into_array(value, &what)?.into_iter();
        let mut next = || items.next().unwrap_or(Value::Nil);
        let workflow = reply::string(next()).ok_or_else(|| bad("the run has no workflow name"))?;
        let state = reply::string(next())
            .and_then(|s| RunState::parse(&s))
            .ok_or_else(|| bad("the run's state is missing or unknown"))?;
        let error = reply::string(next());
        let created_at = int(&next()).map(Timestamp).ok_or_else(|| bad("the run has no creation time"))?;
        let n = int(&next()).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| bad("the run has no step count"))?;
        let mut steps = Vec::with_capacity(n);
        // Per step, the indices of the steps it takes, named once all are read.
        let mut inputs = Vec::with_capacity(n);
        for _ in 0..n {
            let name = reply::string(next()).unwrap_or_default();
            inputs.push(
                step_list(reply::string(next()).as_deref().unwrap_or(""))
                    .ok_or_else(|| bad(&format!("the inputs of step `{name}` are not a list of step numbers")))?,
            );
            let task = int(&next()).and_then(|t| u64::try_from(t).ok()).map(|t| task_id(number, t));
            let state =
                reply::string(next()).map(|s| s.parse::<TaskState>()).transpose().map_err(|e| bad(&e.to_string()))?;
            let attempt = int(&next()).and_then(|a| u32::try_from(a).ok()).unwrap_or(0);
            let error = reply::string(next());
            let output = match reply::bytes(next()) {
                Some(element) => Some(C::decode::<Bytes>(&element, "a workflow step's stored output")?.0),
                None => None,
            };
            let state = state.filter(|_| task.is_some());
            steps.push(StepInfo { name, after: Vec::new(), task, state, attempt, error, output });
        }
        let names: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
        for (step, after) in steps.iter_mut().zip(inputs) {
            // As `rows::step_names` has it: an index outside the graph names nothing.
            step.after = after.iter().filter_map(|i| names.get(usize::from(*i)).cloned()).collect();
        }
        Ok(Some(RunInfo { id: run, workflow, state, steps, error, created_at }))
    }

    async fn run_ids(&self, filter: &RunFilter) -> Result<Vec<RunId>, Error> {
        let max = filter.max() as usize;
        let (before_queue, before_seq) = filter.before.map_or((u32::MAX, None), |b| {
            let (queue, seq) = split_id(TaskId(b.0));
            (queue, Some(seq))
        });
        let mut queues = self.all_queues().await?;
        // Ids order by queue number, then run number: newest first is the
        // queues from the highest number down, each from its newest run.
        queues.retain(|(_, n)| *n <= before_queue);
        queues.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let lua = &self.inner.scripts.runs;
        let mut found = Vec::new();
        for (queue, number) in queues {
            let base = self.inner.keys.base(&queue);
            let what = format!("list the workflow runs of queue `{queue}`");
            let mut before = if number == before_queue { before_seq } else { None };
            while found.len() < max {
                let mut cmd = lua.call(&[&format!("{base}wl"), &format!("{base}jobs")]);
                cmd.arg(&base)
                    .arg(before.map(|b| b.to_string()).unwrap_or_default())
                    .arg(filter.workflow.as_deref().unwrap_or(""))
                    .arg(filter.state.map_or("", RunState::as_str))
                    .arg(max - found.len())
                    .arg(RUNS_SCANNED);
                let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
                let mut items = reply::into_array(value, &what)?.into_iter();
                let cursor = items.next().unwrap_or(Value::Nil);
                for item in items {
                    let seq = int(&item).and_then(|s| u64::try_from(s).ok()).ok_or_else(|| unexpected(&what, &item))?;
                    found.push(RunId(task_id(number, seq).0));
                }
                if cursor == Value::Nil {
                    break;
                }
                before =
                    Some(int(&cursor).and_then(|s| u64::try_from(s).ok()).ok_or_else(|| unexpected(&what, &cursor))?);
            }
            if found.len() >= max {
                break;
            }
        }
        found.truncate(max);
        Ok(found)
    }
}

/// Run index entries one call of the run-listing script looks at, at most:
/// a filter that matches few runs of a big index is answered in several
/// calls rather than one that holds the server.
const RUNS_SCANNED: usize = 1_000;

/// A run hash's list of step numbers (`a<i>`: comma separated, empty for
/// none); `None` when it is not one.
fn step_list(list: &str) -> Option<Vec<u16>> {
    list.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

/// The run hash's fields that describe run `id`'s graph (see "Workflows" in
/// the crate docs): each step's tables, from the planner's [`Graph`], and
/// the parts of its payload around its inputs.
fn run_fields<C: Codec>(id: RunId, graph: &Graph) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let list =
        |items: &[u16]| -> Vec<u8> { items.iter().map(u16::to_string).collect::<Vec<_>>().join(",").into_bytes() };
    let parts = payload_parts::<C>(id, graph)?;
    let mut fields: Vec<(String, Vec<u8>)> =
        vec![("n".to_owned(), graph.len().to_string().into_bytes()), ("sk".to_owned(), list(graph.sinks()))];
    for (i, spec) in graph.steps().iter().enumerate() {
        let step = u16::try_from(i).map_err(|_| Error::Config(format!("step {i} is out of range")))?;
        fields.push((format!("nm{i}"), spec.name.clone().into_bytes()));
        fields.push((format!("a{i}"), list(graph.after(step))));
        fields.push((format!("x{i}"), list(graph.dependents(step))));
        fields.push((format!("m{i}"), spec.max_attempts.to_string().into_bytes()));
        fields.push((format!("p{i}"), spec.priority.to_string().into_bytes()));
        fields.push((format!("f{i}"), plan::step_failed(graph.name(step), "").into_bytes()));
        if let Some(parts) = &parts[i] {
            for (j, part) in parts.iter().enumerate() {
                fields.push((format!("k{i}.{j}"), part.clone()));
            }
        }
    }
    Ok(fields)
}

/// A step's output as an element of a step payload: what the ack script
/// splices between the parts.
fn element<C: Codec>(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    C::encode(&Bytes(bytes.to_vec()), "a workflow step's output")
}

/// A recognisable output of step `step`, for finding where the inputs go in
/// an encoded payload.
fn sentinel(step: u16) -> Vec<u8> {
    let step = usize::from(step);
    let mut bytes = vec![0xF5, 0x0E, b'r', b'r', b'a', b'n', b'd'];
    bytes.extend((0..SENTINEL_LEN).map(|j| ((j * 31 + step * 97 + 0x5A) % 251) as u8 ^ 0xC3));
    bytes
}

/// The payload the planner encodes for each step of run `id` when every
/// step `s` has output `output(s)`; `None` for the entry steps (their input
/// is the run's).
fn planned_payloads<C: Codec>(
    id: RunId,
    graph: &Graph,
    output: impl Fn(u16) -> Vec<u8>,
) -> Result<Vec<Option<Vec<u8>>>, Error> {
    let n = graph.len();
    let mut started = vec![false; n];
    for &entry in graph.entries() {
        started[usize::from(entry)] = true;
    }
    let mut run = RunProgress::new(id, graph.clone(), RunState::Running, vec![None; n], started)
        .map_err(|problem| Error::Config(format!("workflow run {id}: {problem}")))?;
    // Sinks last: the run ends once they are all done, and ends after that
    // would be ignored. Each other step is ready once its last input ends.
    let steps = (0..n).filter_map(|i| u16::try_from(i).ok());
    let (sinks, others): (Vec<u16>, Vec<u16>) = steps.partition(|s| graph.sinks().contains(s));
    for step in others.into_iter().chain(sinks) {
        run.end(step, StepEnd::Done(output(step)));
    }
    let mut payloads = vec![None; n];
    for ready in run.take_plan::<C>()?.ready {
        if let Some(slot) = payloads.get_mut(usize::from(ready.step)) {
            *slot = Some(ready.payload);
        }
    }
    Ok(payloads)
}

/// `payload` cut around `elements`, in order: `elements.len() + 1` parts.
fn cut(payload: &[u8], elements: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let mut parts = Vec::with_capacity(elements.len() + 1);
    let mut rest = payload;
    for element in elements {
        let at = rest.windows(element.len()).position(|w| w == element.as_slice())?;
        parts.push(rest[..at].to_vec());
        rest = &rest[at + element.len()..];
    }
    parts.push(rest.to_vec());
    Some(parts)
}

/// For each step of run `id` that has inputs, the parts of its payload
/// around them; `None` for the entry steps.
fn payload_parts<C: Codec>(id: RunId, graph: &Graph) -> Result<Vec<Option<Vec<Vec<u8>>>>, Error> {
    let payloads = planned_payloads::<C>(id, graph, sentinel)?;
    let mut all = Vec::with_capacity(payloads.len());
    for (i, payload) in payloads.into_iter().enumerate() {
        let Some(payload) = payload else {
            all.push(None);
            continue;
        };
        let after = graph.after(u16::try_from(i).unwrap_or(u16::MAX));
        let elements = after.iter().map(|a| element::<C>(&sentinel(*a))).collect::<Result<Vec<_>, _>>()?;
        all.push(Some(cut(&payload, &elements).ok_or_else(unsupported::<C>)?));
    }
    Ok(all)
}

fn unsupported<C: Codec>() -> Error {
    Error::Config(format!(
        "codec `{}` cannot be used for workflows on Redis: a step's payload is not the concatenation of its \
         parts and the encodings of its inputs, which the ack script relies on",
        C::NAME
    ))
}

/// Whether step payloads built by concatenation equal those the planner
/// encodes, and stored outputs decode back; checked once per codec.
fn check_codec<C: Codec>() -> Result<(), Error> {
    static CHECKED: OnceLock<Mutex<HashMap<TypeId, bool>>> = OnceLock::new();
    let checked = CHECKED.get_or_init(Mutex::default);
    if let Some(ok) = lock(checked).get(&TypeId::of::<C>()).copied() {
        return if ok { Ok(()) } else { Err(unsupported::<C>()) };
    }
    let ok = concatenates::<C>();
    lock(checked).insert(TypeId::of::<C>(), ok);
    if ok { Ok(()) } else { Err(unsupported::<C>()) }
}

fn concatenates<C: Codec>() -> bool {
    let spec = |name: String, after: Vec<u16>| StepSpec { name, after, max_attempts: 1, priority: 0 };
    // Input lengths of the checked step (index 7, declared last), around
    // the ends of the codecs' length encodings.
    let cases: [&[usize]; 4] = [&[0], &[3], &[300, 0], &[70_000, 5, 256]];
    cases.iter().enumerate().all(|(case, lengths)| {
        let inputs = u16::try_from(lengths.len()).unwrap_or(0);
        let mut steps: Vec<StepSpec> = (0..7).map(|i| spec(format!("in{i}"), Vec::new())).collect();
        steps.push(spec("check".to_owned(), (0..inputs).collect()));
        let Ok(graph) = Graph::new(steps) else { return false };
        let id = RunId(123_456_789_012 + case as u64);
        let Ok(parts) = payload_parts::<C>(id, &graph) else { return false };
        let Some(Some(parts)) = parts.get(7) else { return false };
        let input = |step: u16| -> Vec<u8> {
            let len = lengths.get(usize::from(step)).copied().unwrap_or(0);
            (0..len).map(|j| (j % 256) as u8).collect()
        };
        let Ok(direct) = planned_payloads::<C>(id, &graph, input) else { return false };
        let Some(Some(direct)) = direct.get(7) else { return false };
        let mut built = parts[0].clone();
        for (step, part) in (0..inputs).zip(&parts[1..]) {
            let Ok(element) = element::<C>(&input(step)) else { return false };
            if !C::decode::<Bytes>(&element, "a check").is_ok_and(|b| b.0 == input(step)) {
                return false;
            }
            built.extend_from_slice(&element);
            built.extend_from_slice(part);
        }
        built == *direct
    })
}

#[cfg(test)]
mod tests {
    use errand_runtime::{BincodeCodec, JsonCodec, MsgPackCodec};

    use super::*;

    #[test]
    fn step_lists_read_back() {
        assert_eq!(step_list(""), Some(vec![]));
        assert_eq!(step_list("2"), Some(vec![2]));
        assert_eq!(step_list("1,1,0"), Some(vec![1, 1, 0]));
        assert_eq!(step_list("1,x"), None);
        assert_eq!(step_list("70000"), None);
    }

    #[test]
    fn the_built_in_codecs_concatenate() {
        assert!(concatenates::<JsonCodec>());
        assert!(concatenates::<MsgPackCodec>());
        assert!(concatenates::<BincodeCodec>());
    }

    fn spec(name: &str, after: &[u16]) -> StepSpec {
        StepSpec { name: name.into(), after: after.to_vec(), max_attempts: 2, priority: 1 }
    }

    #[test]
    fn the_tables_come_from_the_planner() {
        // Declared out of order: `report` (0) runs after `mail` (2), which runs after `fetch` (1).
        let graph = Graph::new(vec![spec("report", &[2]), spec("fetch", &[]), spec("mail", &[1, 1])])
            .unwrap_or_else(|e| panic!("{e}"));
        let fields: HashMap<String, Vec<u8>> =
            run_fields::<JsonCodec>(RunId(5), &graph).unwrap_or_else(|e| panic!("{e}")).into_iter().collect();
        let field =
            |name: &str| String::from_utf8_lossy(fields.get(name).map_or(&b"-"[..], Vec::as_slice)).into_owned();
        assert_eq!((field("n"), field("sk")), ("3".to_owned(), "0".to_owned()));
        assert_eq!((field("a0"), field("x0")), ("2".to_owned(), String::new()));
        assert_eq!((field("a1"), field("x1")), (String::new(), "2".to_owned()));
        assert_eq!((field("a2"), field("x2")), ("1,1".to_owned(), "0".to_owned()));
        assert_eq!(field("f2"), "step `mail` failed: ");
        assert!(fields.contains_key("k2.2") && !fields.contains_key("k2.3"), "two inputs, three parts");
        assert!(!fields.contains_key("k1.0"), "an entry step takes the run's input");
    }

    #[test]
    fn spliced_payloads_are_the_planners() {
        let graph = Graph::new(vec![spec("report", &[2, 1]), spec("fetch", &[]), spec("mail", &[1])])
            .unwrap_or_else(|e| panic!("{e}"));
        let id = RunId(77);
        let parts = payload_parts::<JsonCodec>(id, &graph).unwrap_or_else(|e| panic!("{e}"));
        let output = |step: u16| format!("out{step}").into_bytes();
        let direct = planned_payloads::<JsonCodec>(id, &graph, output).unwrap_or_else(|e| panic!("{e}"));
        let Some(parts) = &parts[0] else { panic!("report has inputs") };
        let mut built = parts[0].clone();
        for (a, part) in graph.after(0).iter().zip(&parts[1..]) {
            built.extend(element::<JsonCodec>(&output(*a)).unwrap_or_else(|e| panic!("{e}")));
            built.extend_from_slice(part);
        }
        assert_eq!(Some(built), direct[0]);
    }
}
