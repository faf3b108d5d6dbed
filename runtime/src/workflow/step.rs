//! The task of one workflow step.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{RunId, Workflow};
use crate::codec::Codec;
use crate::context::{Requirements, TaskCx};
use crate::job::{Job, JobOptions};
use crate::job_error::JobError;
use crate::retry::decide;

/// Encoded bytes inside a payload: stored as a byte string by codecs that
/// have one (MessagePack, bincode), as an array by JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

/// What a step task stores: its run, its step, and its inputs (the encoded
/// outputs of the steps it depends on, or the workflow's input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPayload {
    /// The run.
    pub run: RunId,
    /// The step's index in the graph.
    pub step: u16,
    /// The encoded inputs, in argument order.
    pub inputs: Vec<Bytes>,
}

/// The [`Job`] every step of workflow `W` runs as, on a backend with codec `C`.
///
/// `MyWorkflow::worker(&backend)` is a worker for this job.
pub struct StepTask<W, C> {
    payload: StepPayload,
    _types: PhantomData<fn() -> (W, C)>,
}

impl<W, C> StepTask<W, C> {
    /// The stored payload.
    pub fn payload(&self) -> &StepPayload {
        &self.payload
    }
}

impl<W, C> fmt::Debug for StepTask<W, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepTask").field("run", &self.payload.run).field("step", &self.payload.step).finish()
    }
}

impl<W, C> Serialize for StepTask<W, C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.payload.serialize(serializer)
    }
}

impl<'de, W, C> Deserialize<'de> for StepTask<W, C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self { payload: StepPayload::deserialize(deserializer)?, _types: PhantomData })
    }
}

/// A step's encoded output: the worker stores these bytes as they are,
/// without encoding them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutput(pub Bytes);

impl<W: Workflow, C: Codec> Job for StepTask<W, C> {
    const NAME: &'static str = W::NAME;
    const QUEUE: &'static str = W::QUEUE;
    type Output = StepOutput;

    fn options() -> JobOptions {
        // Per-step retries, backoff and timeouts are applied in `run`.
        JobOptions { timeout: None, ..JobOptions::DEFAULT }
    }

    fn requirements(requirements: &mut Requirements) {
        W::requirements(requirements);
    }

    async fn run(self, cx: TaskCx) -> Result<StepOutput, JobError> {
        // Each step has its own retries, backoff and timeout: the same
        // timeout future and retry decision as the worker's layers, per step.
        let step = self.payload.step;
        let options = W::step_options(step);
        let run = W::run_step::<C>(step, self.payload.inputs, cx.clone());
        match crate::timeout::ResponseFuture::new(run, options.timeout).await {
            Ok(bytes) => Ok(StepOutput(Bytes(bytes))),
            Err(error) => Err(decide(error, cx.attempt(), cx.max_attempts(), &options.backoff)),
        }
    }
}
