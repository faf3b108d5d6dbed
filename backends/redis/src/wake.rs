//! Wake-ups across processes: one pub/sub connection per backend feeds the
//! in-process [`Notifier`].
//!
//! Scripts that make work available `PUBLISH` the queue's name on
//! `<prefix>wake`; the listener turns each message into
//! [`Notifier::notify`]. After every (re)subscription it wakes every queue,
//! since messages sent while it was disconnected are lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use errand_runtime::Codec;
use errand_runtime::backend::{Notifier, WakeSignal};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::RedisBackend;

const MIN_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

impl<C: Codec> RedisBackend<C> {
    /// A waiter for `queue`, fed by the listener (started by the first
    /// waiter).
    pub(crate) fn subscribe(&self, queue: &str) -> WakeSignal {
        self.start_listener();
        self.inner.notifier.subscribe(queue)
    }

    fn start_listener(&self) {
        if self.inner.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(listen(
                    self.inner.client.clone(),
                    self.inner.channel.clone(),
                    self.inner.notifier.clone(),
                    self.inner.stop_listener.clone(),
                ));
            }
            Err(_) => {
                // Outside a runtime: try again on the next waiter; workers
                // still poll every `poll_interval`.
                self.inner.listening.store(false, Ordering::Release);
            }
        }
    }
}

/// Listens until `stop` fires (when the last backend clone is dropped).
async fn listen(client: redis::Client, channel: String, notifier: Notifier, stop: CancellationToken) {
    let mut pause = MIN_PAUSE;
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            notifier.notify_all();
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let queue = String::from_utf8_lossy(message.get_payload_bytes());
                notifier.notify(&queue);
            }
            Ok::<(), redis::RedisError>(())
        };
        let started = tokio::time::Instant::now();
        tokio::select! {
            () = stop.cancelled() => return,
            result = session => match result {
                Ok(()) => tracing::debug!(%channel, "the wake-up subscription ended; resubscribing"),
                Err(error) => tracing::debug!(%channel, %error, "the wake-up subscription failed; retrying"),
            },
        }
        // Wake everyone: a wake-up may have been lost with the connection.
        notifier.notify_all();
        if started.elapsed() > Duration::from_secs(10) {
            pause = MIN_PAUSE;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
