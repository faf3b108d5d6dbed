//! Telling other processes about new tasks.
//!
//! A NOTIFY inside an enqueue's transaction holds PostgreSQL's global notify
//! lock through that transaction's commit, WAL flush included, so concurrent
//! enqueues would take turns flushing instead of sharing a flush. The
//! backend's own enqueues therefore commit without NOTIFY and hand their
//! queue names to one background task per backend, which sends them in a
//! transaction of its own that commits asynchronously (a notification has
//! nothing to make durable). Names that arrive while a NOTIFY is in flight
//! go out together in the next one, once each.
//!
//! An enqueue while no other is in flight has nobody to hold up: it NOTIFYs
//! inside its own statement, which saves the extra statement ([`Pushing`]).
//!
//! Workers of this process are woken directly (the `Notifier`); if a NOTIFY
//! fails, workers of other processes find the tasks at their next poll.
//! `enqueue_in` (`Transactional::push_in`) still NOTIFYs inside the caller's
//! transaction: only its commit makes the task exist.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use sqlx::PgPool;
use tokio::sync::mpsc;

/// Queue names sent in one NOTIFY statement at most.
const BATCH: usize = 256;

/// The sending half of the announcing task, started on first use (inside the
/// caller's Tokio runtime) and again if that runtime went away.
#[derive(Debug, Default)]
pub(crate) struct Announcer {
    tx: Mutex<Option<mpsc::UnboundedSender<String>>>,
}

impl Announcer {
    /// Queues `queues` for the next NOTIFY on `channel`.
    pub(crate) fn announce(&self, pool: &PgPool, sql: &str, channel: &str, queues: &[&str]) {
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 0..2 {
            let sender = match &*tx {
                Some(sender) if !sender.is_closed() => sender,
                _ => {
                    let (sender, rx) = mpsc::unbounded_channel();
                    tokio::spawn(run(pool.clone(), sql.to_owned(), channel.to_owned(), rx));
                    tx.insert(sender)
                }
            };
            if queues.iter().all(|q| sender.send((*q).to_owned()).is_ok()) {
                return;
            }
            // The task's runtime is gone: start another one.
            *tx = None;
            if attempt == 1 {
                tracing::warn!(?queues, "postgres: could not hand new tasks' queues to the announcing task");
            }
        }
    }
}

async fn run(pool: PgPool, sql: String, channel: String, mut rx: mpsc::UnboundedReceiver<String>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        batch.sort_unstable();
        batch.dedup();
        let sent = sqlx::query(&sql).bind(&channel).bind(&batch).execute(&pool).await;
        if let Err(error) = sent {
            tracing::warn!(%error, queues = ?batch, "postgres: could not NOTIFY other processes of new tasks");
        }
        batch.clear();
    }
}

/// An enqueue in flight, counted in the backend's `pushing` while it lives.
#[derive(Debug)]
pub(crate) struct Pushing<'a> {
    count: &'a AtomicUsize,
    alone: bool,
}

impl<'a> Pushing<'a> {
    pub(crate) fn enter(count: &'a AtomicUsize) -> Self {
        let before = count.fetch_add(1, Ordering::AcqRel);
        Self { count, alone: before == 0 }
    }

    /// No other enqueue of this backend value was in flight when this one
    /// started.
    pub(crate) fn alone(&self) -> bool {
        self.alone
    }
}

impl Drop for Pushing<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_enqueue_started_with_none_in_flight_is_alone() {
        let count = AtomicUsize::new(0);
        let first = Pushing::enter(&count);
        let second = Pushing::enter(&count);
        assert!(first.alone());
        assert!(!second.alone());
        drop(first);
        drop(second);
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert!(Pushing::enter(&count).alone());
    }
}
