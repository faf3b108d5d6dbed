//! Recording outcomes: one ack script call per chunk of acks, pipelined.
//!
//! The `done` acks of a worker that runs a workflow's steps carry the output
//! encoded as a payload element instead of the raw result: the ack script
//! stores it once, in the run, and splices it into the payloads of the steps
//! it makes ready (see `workflow.rs` and "Workflows" in the crate docs).
//! Retention is not the ack's business: done tasks get an expiry entry that
//! `purge.rs` acts on.

use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::workflow::Bytes;
use errand_runtime::{Codec, Error};
use redis::Value;

use crate::RedisBackend;
use crate::keys::split_id;
use crate::pipeline::run_many;
use crate::record::retention_ms;
use crate::reply::{count, unexpected};

/// Acks recorded per ack script call.
const ACK_CHUNK: usize = 512;

impl<C: Codec> RedisBackend<C> {
    /// [`Backend::ack`](errand_runtime::Backend::ack).
    pub(crate) async fn ack_tasks(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        if acks.is_empty() {
            return Ok(());
        }
        let queue = &*worker.queue;
        let number = self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.ack;
        let keys = [format!("{base}if:{}", worker.id), format!("{base}n"), format!("{base}db"), format!("{base}dead")];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let now = self.now().as_millis();
        let mut requeued = false;
        let mut calls = Vec::new();
        for chunk in acks.chunks(ACK_CHUNK) {
            let mut cmd = lua.call(&keys);
            cmd.arg(&base)
                .arg(now)
                .arg(&*worker.id)
                .arg(retention_ms(self.inner.tuning.retention))
                .arg(&self.inner.channel)
                .arg(queue)
                .arg(worker.job);
            for ack in chunk {
                let (q, seq) = split_id(ack.id);
                if q != number {
                    continue; // not a task of this queue: nothing of ours to record
                }
                cmd.arg(seq);
                match &ack.outcome {
                    Outcome::Done { result } if worker.workflow_steps => {
                        // What the ack script stores in the run and splices
                        // into the payloads of the next steps; the raw
                        // result is not sent (it would be stored twice).
                        let element = C::encode(&Bytes(result.clone()), "a workflow step's output")?;
                        cmd.arg("W").arg(0).arg("").arg(element)
                    }
                    Outcome::Done { result } => cmd.arg("D").arg(0).arg(result),
                    Outcome::Retry { at, error } => {
                        requeued = true;
                        cmd.arg("R").arg(at.as_millis()).arg(error)
                    }
                    Outcome::Dead { error } => cmd.arg("X").arg(0).arg(error),
                    Outcome::Snooze { at } => {
                        requeued = true;
                        cmd.arg("S").arg(at.as_millis()).arg("")
                    }
                };
            }
            calls.push(cmd);
        }
        let what = format!("record {} outcome(s) on queue `{queue}`", acks.len());
        for value in run_many(&self.inner.conn, lua, calls, &what).await? {
            // {finished, tasks enqueued by workflow steps}
            let Value::Array(items) = &value else { return Err(unexpected(what, &value)) };
            let [_, added] = items.as_slice() else { return Err(unexpected(what, &value)) };
            requeued |= count(added, &what)? > 0;
        }
        if requeued {
            self.inner.notifier.notify(queue);
        }
        Ok(())
    }
}
