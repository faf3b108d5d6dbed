//! [`Request`]: what flows through a worker's Tower stack.

use crate::context::TaskCx;

/// What flows through a worker's Tower stack: the decoded arguments and the
/// task's context. Layers (retry, timeout, tracing, your own) see this.
#[derive(Debug)]
pub struct Request<J> {
    /// The decoded arguments.
    pub args: J,
    /// The task's context.
    pub cx: TaskCx,
}
