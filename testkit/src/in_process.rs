//! The real server, started through its library (`natter_server::Server::open` and
//! `serve`) inside the calling test's runtime, on 127.0.0.1 port 0 (or a given address, to
//! come back on the same port).
//!
//! In-process, not a child: no binary to build or find, and the test owns the clock (with
//! `tokio::time::pause` the server's timers are paused too). What only a process can show
//! (SIGKILL, SIGSTOP, the command line) stays with [`crate::process`].

use std::net::SocketAddr;

use natter_server::{Config, Server};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server serving in this process until [`InProcess::stop`] (or until dropped, when it is
/// aborted).
#[derive(Debug)]
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Why a server could not start.
#[derive(Debug)]
pub enum StartError {
    /// Binding the address.
    Bind(std::io::Error),
    /// Opening the database (or reading the TLS files).
    Open(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind(e) => write!(f, "cannot bind: {e}"),
            StartError::Open(e) => write!(f, "cannot open the server: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl InProcess {
    /// Starts `config` on a free port of 127.0.0.1.
    pub async fn start(config: Config) -> Result<InProcess, StartError> {
        InProcess::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts `config` on `addr` (a port a stopped server used, say).
    pub async fn start_on(config: Config, addr: SocketAddr) -> Result<InProcess, StartError> {
        let listener = TcpListener::bind(addr).await.map_err(StartError::Bind)?;
        let addr = listener.local_addr().map_err(StartError::Bind)?;
        let server = Server::open(config).map_err(|e| StartError::Open(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(InProcess {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down gracefully (as on SIGTERM) and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}
