//! `errand board`: the web board (crate errand-board) for the store at
//! `--url`, until Ctrl-C or SIGTERM. Built in with the `board` feature (on
//! by default).

use errand_runtime::Expose;
use errand_runtime::capability::CancelRunning;
use errand_runtime::workflow::WorkflowStore;

use crate::args::BoardArgs;
use crate::connect::Target;
use crate::error::Failure;
use crate::output::Output;

/// Serves the board for `backend` until Ctrl-C or SIGTERM.
#[cfg(feature = "board")]
pub(crate) async fn serve<B>(backend: B, target: &Target, args: &BoardArgs) -> Result<Output, Failure>
where
    B: Expose + WorkflowStore + CancelRunning,
{
    use errand_board::{Board, ServeError, Server};

    use crate::error::Kind;

    let addr: std::net::SocketAddr = args
        .bind
        .parse()
        .map_err(|e| Failure::usage(format!("--bind `{}` is not an address like 127.0.0.1:9300: {e}", args.bind)))?;
    let board = Board::new().backend(B::NAME, backend);
    let listening = Server::new(board).addr(addr).token(args.token.clone()).bind().await.map_err(|e| match e {
        ServeError::TokenRequired { .. } => Failure::usage(e.to_string()),
        other => Failure::new(Kind::Backend, other.to_string()),
    })?;
    let at = listening.local_addr();
    let hint = if args.token.as_deref().is_some_and(|t| !t.is_empty()) { "?token=…" } else { "" };
    eprintln!(
        "the board of `{}` is on http://{at}/{hint}, Prometheus metrics on http://{at}/metrics (Ctrl-C to stop)",
        target.shown
    );
    listening
        .run_until(errand_runtime::shutdown_signal())
        .await
        .map_err(|e| Failure::new(Kind::Backend, e.to_string()))?;
    Ok(Output::new("", serde_json::json!({ "stopped": true, "addr": at.to_string() })))
}

/// Without the `board` feature: says so (exit 2).
#[cfg(not(feature = "board"))]
pub(crate) async fn serve<B>(backend: B, target: &Target, args: &BoardArgs) -> Result<Output, Failure>
where
    B: Expose + WorkflowStore + CancelRunning,
{
    let _ = (backend, target, args);
    Err(Failure::usage(
        "the board is not built into this binary: reinstall with the `board` feature \
         (`cargo install --path cli`, on by default), or mount `errand_board::router` in your own app",
    ))
}
