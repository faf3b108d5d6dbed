//! The builder's terminal: checking the namespace and the URL, connecting,
//! and loading the scripts.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_runtime::backend::{Every, Notifier, redact_url};
use errand_runtime::{Codec, Error};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::keys::Keys;
use crate::purge::purge_period;
use crate::queues::Queues;
use crate::reply::failed;
use crate::scripts::Scripts;
use crate::{Inner, RedisBackend, RedisBuilder};

/// How long establishing one connection may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection attempts of one call before it fails.
const RECONNECT_RETRIES: usize = 4;
/// The longest pause between reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// Checks a namespace: the hash tags of the per-queue keys need it free of
/// `{` and `}`.
fn check_namespace(namespace: &str) -> Result<(), Error> {
    if namespace.contains(['{', '}']) {
        return Err(Error::Config(format!(
            "the Redis key prefix `{namespace}` must not contain `{{` or `}}` (they would break the per-queue hash tags)"
        )));
    }
    Ok(())
}

impl<C: Codec> RedisBuilder<C> {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with a TLS feature of the `redis` crate) and loads the
    /// scripts.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL or namespace; [`Error::Backend`]
    /// when the server cannot be reached.
    pub async fn connect(self, url: &str) -> Result<RedisBackend<C>, Error> {
        let shown = redact_url(url);
        check_namespace(&self.namespace)?;
        let client =
            redis::Client::open(url).map_err(|e| Error::Config(format!("invalid Redis URL `{shown}`: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| failed(format!("connect to {shown}"), e))?;
        let scripts = Scripts::new();
        for lua in scripts.all() {
            lua.load(&mut conn).await.map_err(|e| failed(format!("load the Lua scripts into {shown}"), e))?;
        }
        let keys = Keys::new(&self.namespace);
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                conn,
                client,
                url: shown,
                channel: keys.channel(),
                queues: Queues::new(keys.clone()),
                keys,
                namespace: self.namespace,
                tuning: self.tuning,
                scripts,
                notifier: Notifier::new(),
                listening: AtomicBool::new(false),
                stop_listener: CancellationToken::new(),
                claims: Mutex::new(HashMap::new()),
                claim_tokens: AtomicU64::new(0),
                purge_every: Every::new(purge_period(self.tuning.retention)),
                purge_more: AtomicBool::new(false),
            }),
            _codec: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_without_braces() {
        assert!(check_namespace("errand:").is_ok());
        assert!(check_namespace("").is_ok());
        assert!(matches!(check_namespace("a{b}:"), Err(Error::Config(m)) if m.contains("must not contain")));
    }
}
