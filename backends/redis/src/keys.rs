//! Key names and task ids.
//!
//! See the crate docs for the layout. Every key of a queue carries the
//! queue's name as its hash tag, so that one queue lives in one Redis Cluster
//! slot and every script touches one slot only.

use errand_runtime::TaskId;

/// Bits of a task id that hold the task's sequence number within its queue;
/// the bits above hold the queue's number.
pub(crate) const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// The id of task `seq` of queue number `queue`.
pub(crate) fn task_id(queue: u32, seq: u64) -> TaskId {
    TaskId((u64::from(queue) << SEQ_BITS) | (seq & SEQ_MASK))
}

/// The queue number and sequence number of a task id.
pub(crate) fn split_id(id: TaskId) -> (u32, u64) {
    (u32::try_from(id.0 >> SEQ_BITS).unwrap_or(u32::MAX), id.0 & SEQ_MASK)
}

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// `<prefix>{<queue>}:`, the start of every key of `queue`.
    pub(crate) fn base(&self, queue: &str) -> String {
        format!("{}{{{queue}}}:", self.prefix)
    }

    /// Queue name → queue number.
    pub(crate) fn queues(&self) -> String {
        format!("{}{{~}}:queues", self.prefix)
    }

    /// Queue number → queue name.
    pub(crate) fn queue_ids(&self) -> String {
        format!("{}{{~}}:queue-ids", self.prefix)
    }

    /// The counter that numbers queues.
    pub(crate) fn queue_seq(&self) -> String {
        format!("{}{{~}}:queue-seq", self.prefix)
    }

    /// Schedule name → the last tick recorded for it (ms).
    pub(crate) fn schedules(&self) -> String {
        format!("{}{{~}}:schedules", self.prefix)
    }

    /// The pub/sub channel that carries wake-ups (the message is the queue's name).
    pub(crate) fn channel(&self) -> String {
        format!("{}wake", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = task_id(3, 12_345);
        assert_eq!(split_id(id), (3, 12_345));
        assert!(task_id(1, 1) > task_id(0, SEQ_MASK));
    }

    #[test]
    fn keys_are_hash_tagged_by_queue() {
        let keys = Keys::new("errand:");
        assert_eq!(keys.base("emails"), "errand:{emails}:");
        assert_eq!(keys.queues(), "errand:{~}:queues");
        assert_eq!(keys.schedules(), "errand:{~}:schedules");
    }
}
