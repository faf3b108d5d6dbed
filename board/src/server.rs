//! The board as a standalone server: 127.0.0.1 by default, and never on a
//! reachable address without a token.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use tokio::net::TcpListener;

use crate::Board;

/// Where [`Server`] listens unless told otherwise: `127.0.0.1:9300`.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9300);

/// Why the board's server did not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address was asked for without a token.
    #[error(
        "refusing to serve the board on {addr} without a token: that address may be reachable from other machines, \
         and the board can retry, cancel and delete tasks. Set a token (`--token` / ERRAND_BOARD_TOKEN, \
         `Server::token`) or bind a loopback address such as 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr} for the board: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server failed while running.
    #[error("the board's server on {addr} failed: {source}")]
    Serve {
        /// The address it listened on.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// The board on its own address: [`Server::new`], then [`addr`](Self::addr)
/// and [`token`](Self::token), then [`bind`](Self::bind) and
/// [`run`](Listening::run).
///
/// # Examples
///
/// ```
/// use errand_board::{Board, ServeError, Server};
/// use errand_runtime::memory::MemoryBackend;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Any address but a loopback one needs a token:
/// let board = Board::new().backend("main", MemoryBackend::new());
/// let refused = Server::new(board).addr("0.0.0.0:9300".parse().unwrap()).bind().await;
/// assert!(matches!(refused, Err(ServeError::TokenRequired { .. })));
///
/// // An OS-chosen port on 127.0.0.1:
/// let board = Board::new().backend("main", MemoryBackend::new());
/// let listening = Server::new(board).addr("127.0.0.1:0".parse().unwrap()).bind().await.unwrap();
/// assert!(listening.local_addr().ip().is_loopback());
/// # }
/// ```
pub struct Server {
    board: Board,
    addr: SocketAddr,
    token: Option<String>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("board", &self.board)
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Server {
    /// A server for `board` on [`DEFAULT_ADDR`].
    pub const fn new(board: Board) -> Self {
        Self { board, addr: DEFAULT_ADDR, token: None }
    }

    /// Listens on `addr`. Anything but a loopback address needs a token.
    pub const fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Requires `token` on every request (see [`Board::token`]); `None` or an
    /// empty token keeps the board's own.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Checks the address against the token and binds it.
    ///
    /// # Errors
    ///
    /// [`ServeError::TokenRequired`] for a non-loopback address without a
    /// token (nothing is bound), [`ServeError::Bind`] when the address
    /// cannot be bound.
    pub async fn bind(self) -> Result<Listening, ServeError> {
        let mut board = self.board;
        if let Some(token) = self.token {
            board = board.token(token);
        }
        if !self.addr.ip().is_loopback() && !board.has_token() {
            return Err(ServeError::TokenRequired { addr: self.addr });
        }
        let listener =
            TcpListener::bind(self.addr).await.map_err(|source| ServeError::Bind { addr: self.addr, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: self.addr, source })?;
        Ok(Listening { listener, addr, router: board.router() })
    }
}

/// A bound [`Server`], ready to [`run`](Self::run).
pub struct Listening {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
}

impl fmt::Debug for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listening").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Listening {
    /// The address it listens on (with the port the OS chose for port 0).
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    ///
    /// # Errors
    ///
    /// [`ServeError::Serve`] when the server fails.
    pub async fn run(self) -> Result<(), ServeError> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `signal` completes, then finishes the requests in flight.
    ///
    /// # Errors
    ///
    /// [`ServeError::Serve`] when the server fails.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let addr = self.addr;
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(signal)
            .await
            .map_err(|source| ServeError::Serve { addr, source })
    }
}

/// Serves `board` on `addr` until Ctrl-C or SIGTERM, requiring `token` if
/// given: [`Server`] in one call.
///
/// # Errors
///
/// As [`Server::bind`] and [`Listening::run`]: a non-loopback `addr` without
/// a token is refused before anything is bound.
pub async fn serve(board: Board, addr: SocketAddr, token: Option<String>) -> Result<(), ServeError> {
    Server::new(board).addr(addr).token(token).bind().await?.run_until(errand_runtime::shutdown_signal()).await
}
