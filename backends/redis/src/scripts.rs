//! The Lua scripts, kept as files under `scripts/` and run by SHA.
//!
//! Every state change is one script, so it is atomic, and no script raises
//! an error after its first write (see `scripts/common.lua`): Redis does not
//! undo the writes of a script that fails part-way. Scripts are invoked
//! with `EVALSHA`; after a `NOSCRIPT` reply (a restarted server, a
//! `SCRIPT FLUSH`) the script is loaded again and the call repeated.

use redis::aio::ConnectionManager;
use redis::{Cmd, ErrorKind, RedisResult, Script, ServerErrorKind, Value};

/// One Lua script.
pub(crate) struct Lua {
    script: Script,
}

impl Lua {
    fn new(code: &str) -> Self {
        Self { script: Script::new(code) }
    }

    /// An `EVALSHA` of this script with `keys`; add the arguments with
    /// [`Cmd::arg`].
    pub(crate) fn call(&self, keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(keys.len()).arg(keys);
        cmd
    }

    /// Runs `cmd` (built by [`call`](Self::call)), loading the script first
    /// if the server does not know it. The server may forget it again
    /// between the load and the call (another client's `SCRIPT FLUSH`): the
    /// load and the call are tried [`LOADS`] times.
    pub(crate) async fn run(&self, conn: &mut ConnectionManager, cmd: &Cmd) -> RedisResult<Value> {
        let mut loads = 0;
        loop {
            match cmd.query_async::<Value>(conn).await {
                Err(error) if is_noscript(&error) && loads < LOADS => {
                    self.load(conn).await?;
                    loads += 1;
                }
                result => return result,
            }
        }
    }

    /// Loads the script into the server's script cache.
    pub(crate) async fn load(&self, conn: &mut ConnectionManager) -> RedisResult<()> {
        self.script.load_async(conn).await.map(drop)
    }
}

/// How many times [`Lua::run`] loads a script the server does not know
/// before it gives up.
const LOADS: u32 = 3;

/// Whether `error` is Redis saying it does not know a script's SHA.
fn is_noscript(error: &redis::RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// Whether a pipelined reply is a `NOSCRIPT` error.
pub(crate) fn is_noscript_value(value: &Value) -> bool {
    matches!(value, Value::ServerError(error) if error.code() == "NOSCRIPT")
}

macro_rules! with_common {
    ($file:literal) => {
        concat!(include_str!("../scripts/common.lua"), "\n", include_str!(concat!("../scripts/", $file)))
    };
}

/// All of the backend's scripts.
pub(crate) struct Scripts {
    pub(crate) register: Lua,
    pub(crate) enqueue: Lua,
    pub(crate) claim: Lua,
    pub(crate) ack: Lua,
    pub(crate) heartbeat: Lua,
    pub(crate) rescue: Lua,
    pub(crate) release: Lua,
    pub(crate) cancel: Lua,
    pub(crate) retry: Lua,
    pub(crate) list: Lua,
    pub(crate) unserved: Lua,
    pub(crate) bury: Lua,
    pub(crate) unreadable: Lua,
    pub(crate) purge: Lua,
    pub(crate) start: Lua,
    pub(crate) run: Lua,
    pub(crate) progress: Lua,
    pub(crate) resume: Lua,
    pub(crate) tick: Lua,
    pub(crate) delete: Lua,
    pub(crate) runs: Lua,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            register: Lua::new(include_str!("../scripts/register.lua")),
            enqueue: Lua::new(with_common!("enqueue.lua")),
            claim: Lua::new(with_common!("claim.lua")),
            ack: Lua::new(with_common!("ack.lua")),
            heartbeat: Lua::new(include_str!("../scripts/heartbeat.lua")),
            rescue: Lua::new(with_common!("rescue.lua")),
            release: Lua::new(with_common!("release.lua")),
            cancel: Lua::new(with_common!("cancel.lua")),
            retry: Lua::new(with_common!("retry.lua")),
            list: Lua::new(with_common!("list.lua")),
            unserved: Lua::new(with_common!("unserved.lua")),
            bury: Lua::new(with_common!("bury.lua")),
            unreadable: Lua::new(with_common!("unreadable.lua")),
            purge: Lua::new(with_common!("purge.lua")),
            start: Lua::new(with_common!("start.lua")),
            run: Lua::new(with_common!("run.lua")),
            progress: Lua::new(with_common!("progress.lua")),
            resume: Lua::new(include_str!("../scripts/resume.lua")),
            tick: Lua::new(include_str!("../scripts/tick.lua")),
            delete: Lua::new(with_common!("delete.lua")),
            runs: Lua::new(include_str!("../scripts/runs.lua")),
        }
    }

    /// Every script, for loading them up front.
    pub(crate) fn all(&self) -> [&Lua; 21] {
        [
            &self.register,
            &self.enqueue,
            &self.claim,
            &self.ack,
            &self.heartbeat,
            &self.rescue,
            &self.release,
            &self.cancel,
            &self.retry,
            &self.list,
            &self.unserved,
            &self.bury,
            &self.unreadable,
            &self.purge,
            &self.start,
            &self.run,
            &self.progress,
            &self.resume,
            &self.tick,
            &self.delete,
            &self.runs,
        ]
    }
}
