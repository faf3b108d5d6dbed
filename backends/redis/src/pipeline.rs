//! Running many calls of one script: pipelined, several pipelines in flight.

use errand_runtime::Error;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{Cmd, RedisResult, Value};

use crate::reply::failed;
use crate::scripts::{Lua, is_noscript_value};

/// Script calls sent per pipeline round trip.
const PIPELINE_CALLS: usize = 16;
/// Pipelines of one operation in flight at once.
const PIPELINES_IN_FLIGHT: usize = 4;

/// Runs calls of `lua` in pipelines of [`PIPELINE_CALLS`], up to
/// [`PIPELINES_IN_FLIGHT`] of them at once on the multiplexed connection (so
/// that building and parsing overlap with Redis running the scripts); a call
/// that met `NOSCRIPT` is repeated after loading the script (the others are
/// not). Returns each call's reply, in order; a call's error reply becomes
/// the error of the whole, described as `what`.
pub(crate) async fn run_many(
    conn: &ConnectionManager,
    lua: &Lua,
    calls: Vec<Cmd>,
    what: &str,
) -> Result<Vec<Value>, Error> {
    let mut conn = conn.clone();
    if let [single] = calls.as_slice() {
        return Ok(vec![lua.run(&mut conn, single).await.map_err(|e| failed(what, e))?]);
    }
    let mut replies = Vec::with_capacity(calls.len());
    let mut pipes = Vec::with_capacity(calls.len().div_ceil(PIPELINE_CALLS));
    let mut calls = calls.into_iter().peekable();
    while calls.peek().is_some() {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for call in calls.by_ref().take(PIPELINE_CALLS) {
            pipe.add_command(call);
        }
        pipes.push(pipe);
    }
    let shared = conn.clone();
    let mut results = futures_util::stream::iter(pipes)
        .map(|pipe| {
            let mut conn = shared.clone();
            async move {
                let values: RedisResult<Vec<Value>> = pipe.query_async(&mut conn).await;
                (pipe, values)
            }
        })
        .buffered(PIPELINES_IN_FLIGHT);
    while let Some((pipe, values)) = results.next().await {
        let values = values.map_err(|e| failed(what, e))?;
        for (call, value) in pipe.cmd_iter().zip(values) {
            let value = if is_noscript_value(&value) {
                lua.run(&mut conn, call).await.map_err(|e| failed(what, e))?
            } else {
                value
            };
            if let Value::ServerError(error) = value {
                return Err(failed(what, error.into()));
            }
            replies.push(value);
        }
    }
    Ok(replies)
}
