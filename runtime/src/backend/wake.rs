//! In-process wake-ups by queue name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::Waiter;

/// Wake-ups by queue name inside one process: backends call
/// [`notify`](Notifier::notify) after writing tasks, and hand out
/// [`WakeSignal`]s as their [`Backend::Waiter`](super::Backend::Waiter).
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    queues: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Notifier {
    /// Creates an empty notifier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the workers waiting on `queue`.
    pub fn notify(&self, queue: &str) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = queues.get(queue) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes the workers of every queue.
    pub fn notify_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        for tx in queues.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A waiter for `queue`.
    pub fn subscribe(&self, queue: &str) -> WakeSignal {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = match queues.get(queue) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                queues.insert(queue.to_owned(), tx);
                rx
            }
        };
        WakeSignal { rx }
    }
}

/// The [`Waiter`] handed out by a [`Notifier`].
#[derive(Debug)]
pub struct WakeSignal {
    rx: watch::Receiver<u64>,
}

impl Waiter for WakeSignal {
    fn arm(&mut self) {
        self.rx.mark_unchanged();
    }

    async fn wait(&mut self) {
        // The sender lives in the notifier, which outlives every worker; if it
        // is gone anyway, fall back to the worker's poll interval.
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
