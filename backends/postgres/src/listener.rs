//! The one `LISTEN` connection of a backend value (and all its clones).
//!
//! Every write that makes tasks claimable runs `pg_notify(<channel>, <queue>)`
//! in its own transaction or just after its commit (see the `announce`
//! module), so the notification is delivered once the tasks are visible. The
//! listener turns each notification into a wake-up of this process's idle
//! workers of that queue through the runtime's [`Notifier`].
//!
//! When the connection drops, the listener connects again (backing off while
//! the server is unreachable) and then wakes every queue: notifications sent
//! while it was away are lost, so every idle worker claims once more and
//! misses nothing. It also wakes every queue right after it first starts
//! listening, for the tasks enqueued before that.

use std::time::Duration;

use errand_runtime::backend::Notifier;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

const MIN_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// The listener task; stopped when the last clone of the backend is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Starts listening on `channel`, or `None` outside a Tokio runtime (the
    /// workers then poll).
    pub(crate) fn start(pool: PgPool, channel: String, notifier: Notifier, location: String) -> Option<Self> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let task = handle.spawn(listen(pool, channel, notifier, location));
        Some(Self { task })
    }
}

async fn listen(pool: PgPool, channel: String, notifier: Notifier, location: String) {
    let mut pause = MIN_PAUSE;
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%location, %error, ?pause, "postgres: could not open the LISTEN connection; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                continue;
            }
        };
        if let Err(error) = listener.listen(&channel).await {
            tracing::warn!(%location, %error, ?pause, "postgres: LISTEN failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
            continue;
        }
        tracing::debug!(%location, %channel, "postgres: listening for new tasks");
        pause = MIN_PAUSE;
        // Whatever was enqueued while we were not listening.
        notifier.notify_all();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => notifier.notify(notification.payload()),
                Ok(None) => {
                    // sqlx reconnected and listens again; notifications sent
                    // in between are lost, so wake everyone.
                    tracing::info!(%location, "postgres: the LISTEN connection was re-established");
                    notifier.notify_all();
                }
                Err(error) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(%location, %error, "postgres: the LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}
