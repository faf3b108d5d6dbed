//! A TCP proxy on loopback for outage tests: it forwards to a server until
//! [`cut`](Proxy::cut) closes every connection and refuses new ones, and
//! [`restore`](Proxy::restore) accepts them again on the same port.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The proxy. Dropping it cuts everything.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    upstream: String,
    /// Cancelled by a cut: stops accepting and closes the open connections.
    up: Mutex<Option<CancellationToken>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`host:port`).
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (a test set-up failure).
    pub async fn start(upstream: impl Into<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("proxy address: {e}"));
        let proxy = Self { addr, upstream: upstream.into(), up: Mutex::new(None) };
        proxy.serve(listener);
        proxy
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&self, listener: TcpListener) {
        let token = CancellationToken::new();
        *self.up.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        let upstream = self.upstream.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return, // drops the listener: connections are refused
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else { continue };
                let (token, upstream) = (token.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        () = token.cancelled() => {} // dropping both sockets closes them
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
    }

    /// Closes every open connection (mid-request or not) and refuses new ones.
    pub fn cut(&self) {
        if let Some(token) = self.up.lock().unwrap_or_else(PoisonError::into_inner).take() {
            token.cancel();
        }
    }

    /// Accepts connections again, on the same port.
    ///
    /// # Panics
    ///
    /// When the port was taken meanwhile (a test set-up failure).
    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap_or_else(|e| panic!("rebind {}: {e}", self.addr));
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
