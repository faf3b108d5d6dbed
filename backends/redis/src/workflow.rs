//! `impl WorkflowStore for RedisBackend`: runs in hashes, advanced by the ack
//! script itself (see "Workflows" in the crate docs).
//!
//! The ack script cannot call the codec, so everything codec-specific is
//! done here, before the scripts run: `start_run` stores, for every step that
//! has inputs, the bytes of its payload *around* its inputs (found by
//! encoding the payload with sentinel inputs and cutting it where their
//! encodings are), and `ack` passes each step's output already encoded as a
//! payload element. The script then builds a ready step's payload by
//! concatenation — the same bytes [`workflow::step_task`] would produce, which
//! [`check_codec`] verifies once per codec.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use errand_runtime::workflow::{self, Bytes, NewRun, RunId, RunInfo, RunState, StepInfo, StepSpec, WorkflowStore};
use errand_runtime::{BackendError, Codec, Error, TaskId, TaskState, Timestamp};
use redis::Value;

use crate::backend::{RedisBackend, failed, lock};
use crate::keys::{SEQ_BITS, split_id, task_id};
use crate::reply::{self, int};

impl<C: Codec> WorkflowStore for RedisBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        check_codec::<C>()?;
        let queue = run.queue.as_str();
        let what = || format!("start a run of workflow `{}` on queue `{queue}`", run.workflow);
        let n = run.steps.len();
        if n == 0 || u16::try_from(n).is_err() {
            return Err(Error::Config(format!("{}: a workflow has 1 to 65535 steps, not {n}", what())));
        }
        if let Some((i, _)) = run.steps.iter().enumerate().find(|(i, s)| s.after.iter().any(|a| usize::from(*a) >= *i))
        {
            return Err(Error::Config(format!("{}: step {i} is not in topological order", what())));
        }
        let number = self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let seq: u64 = redis::cmd("INCR")
            .arg(format!("{base}wseq"))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| failed(what(), e))?;
        if seq >> SEQ_BITS != 0 {
            return Err(Error::Config(format!("queue `{queue}` ran out of workflow run ids (2^40 per queue)")));
        }
        let id = RunId(task_id(number, seq).0);

        // The run's hash: its graph, and the payload parts of its later steps.
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, step) in run.steps.iter().enumerate() {
            for a in &step.after {
                dependents[usize::from(*a)].push(i);
            }
        }
        let mut fields: Vec<(String, Vec<u8>)> = vec![("n".to_owned(), n.to_string().into_bytes())];
        for (i, spec) in run.steps.iter().enumerate() {
            let list = |items: &mut dyn Iterator<Item = usize>| -> Vec<u8> {
                items.map(|x| x.to_string()).collect::<Vec<_>>().join(",").into_bytes()
            };
            fields.push((format!("nm{i}"), spec.name.clone().into_bytes()));
            fields.push((format!("a{i}"), list(&mut spec.after.iter().map(|a| usize::from(*a)))));
            fields.push((format!("x{i}"), list(&mut dependents[i].iter().copied())));
            fields.push((format!("m{i}"), spec.max_attempts.to_string().into_bytes()));
            fields.push((format!("p{i}"), spec.priority.to_string().into_bytes()));
            fields.push((format!("f{i}"), workflow::step_failed(&spec.name, "").into_bytes()));
            if !spec.after.is_empty() {
                let step = u16::try_from(i).unwrap_or(u16::MAX);
                for (j, part) in payload_parts::<C>(&run, id, step, spec)?.into_iter().enumerate() {
                    fields.push((format!("k{i}.{j}"), part));
                }
            }
        }

        let lua = &self.inner.scripts.start;
        let mut cmd = lua.call(&[&format!("{base}n"), &format!("{base}jobs")]);
        cmd.arg(&base)
            .arg(Timestamp::now().as_millis())
            .arg(&self.inner.channel)
            .arg(queue)
            .arg(seq)
            .arg(run.workflow)
            .arg(fields.len());
        for (field, value) in &fields {
            cmd.arg(field).arg(value);
        }
        for entry in workflow::entry_steps(&run.steps) {
            let spec = &run.steps[usize::from(entry)];
            let task = workflow::step_task::<C>(run.workflow, queue, id, entry, spec, vec![run.input.clone()])?;
            cmd.arg(entry).arg(task.payload).arg(task.priority).arg(task.max_attempts);
        }
        lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what(), e))?;
        self.remember_workflow(run.workflow);
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
        let bad = |detail: &str| -> Error { BackendError::new("redis", what.as_str(), detail.to_owned()).into() };
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
        for _ in 0..n {
            let name = reply::string(next()).unwrap_or_default();
            let task = int(&next()).and_then(|t| u64::try_from(t).ok()).map(|t| task_id(number, t));
            let state =
                reply::string(next()).map(|s| s.parse::<TaskState>()).transpose().map_err(|e| bad(&e.to_string()))?;
            let attempt = int(&next()).and_then(|a| u32::try_from(a).ok()).unwrap_or(0);
            let error = reply::string(next());
            let output = match reply::bytes(next()) {
                Some(element) => Some(C::decode::<Bytes>(&element, "a workflow step's stored output")?.0),
                None => None,
            };
            steps.push(StepInfo { name, task, state: state.filter(|_| task.is_some()), attempt, error, output });
        }
        Ok(Some(RunInfo { id: run, workflow, state, steps, error, created_at }))
    }
}

/// A step's output as an element of a step payload: what the ack script
/// splices between the parts.
fn element<C: Codec>(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(C::encode(&Bytes(bytes.to_vec()), "a workflow step's output")?)
}

/// Recognisable inputs, for finding where inputs go in an encoded payload.
fn sentinel(i: usize, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xF5, 0x0E, b'r', b'r', b'a', b'n', b'd'];
    bytes.extend((0..len).map(|j| ((j * 31 + i * 97 + 0x5A) % 251) as u8 ^ 0xC3));
    bytes
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

/// The parts of step `step`'s payload around its inputs.
fn payload_parts<C: Codec>(run: &NewRun, id: RunId, step: u16, spec: &StepSpec) -> Result<Vec<Vec<u8>>, Error> {
    let inputs: Vec<Vec<u8>> = (0..spec.after.len()).map(|i| sentinel(i, 24)).collect();
    let elements = inputs.iter().map(|i| element::<C>(i)).collect::<Result<Vec<_>, _>>()?;
    let task = workflow::step_task::<C>(run.workflow, &run.queue, id, step, spec, inputs)?;
    cut(&task.payload, &elements).ok_or_else(|| unsupported::<C>())
}

fn unsupported<C: Codec>() -> Error {
    Error::Config(format!(
        "codec `{}` cannot be used for workflows on Redis: a step's payload is not the concatenation of its \
         parts and the encodings of its inputs, which the ack script relies on",
        C::NAME
    ))
}

/// Whether step payloads built by concatenation equal those encoded by the
/// codec, and stored outputs decode back; checked once per codec.
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
    let run = NewRun { workflow: "errand-codec-check", queue: "q".to_owned(), steps: Vec::new(), input: Vec::new() };
    let cases: [&[usize]; 4] = [&[0], &[3], &[300, 0], &[70_000, 5, 256]];
    cases.iter().enumerate().all(|(case, lengths)| {
        let spec = StepSpec {
            name: "check".to_owned(),
            after: (0..lengths.len()).filter_map(|i| u16::try_from(i).ok()).collect(),
            max_attempts: 1,
            priority: 0,
        };
        let id = RunId(123_456_789_012 + case as u64);
        let Ok(parts) = payload_parts::<C>(&run, id, 7, &spec) else { return false };
        let inputs: Vec<Vec<u8>> = lengths.iter().map(|len| (0..*len).map(|j| (j % 256) as u8).collect()).collect();
        let Ok(elements) = inputs.iter().map(|i| element::<C>(i)).collect::<Result<Vec<_>, _>>() else {
            return false;
        };
        let round_trips = inputs
            .iter()
            .zip(&elements)
            .all(|(input, e)| C::decode::<Bytes>(e, "a check").is_ok_and(|b| b.0 == *input));
        let mut built = parts[0].clone();
        for (e, part) in elements.iter().zip(&parts[1..]) {
            built.extend_from_slice(e);
            built.extend_from_slice(part);
        }
        let Ok(direct) = workflow::step_task::<C>(run.workflow, &run.queue, id, 7, &spec, inputs) else {
            return false;
        };
        round_trips && built == direct.payload
    })
}

#[cfg(test)]
mod tests {
    use errand_runtime::{BincodeCodec, JsonCodec, MsgPackCodec};

    use super::*;

    #[test]
    fn the_built_in_codecs_concatenate() {
        assert!(concatenates::<JsonCodec>());
        assert!(concatenates::<MsgPackCodec>());
        assert!(concatenates::<BincodeCodec>());
    }
}
