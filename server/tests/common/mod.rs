//! Test harness: the real `natter-server` binary on 127.0.0.1 port 0 with a temporary
//! database, on the backend `NATTER_TEST_BACKEND` names ([`backend`]), and thin HTTP /
//! WebSocket clients that speak to it over real sockets.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a different subset

pub mod backend;
pub mod pg;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backend::Storage;
use pg::TestDb;

use futures_util::{SinkExt, StreamExt};
use natter_shared::{Message, ServerFrame};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Adjusts instance `i`'s command before it is spawned (its environment, its stderr).
pub type Configure = Arc<dyn Fn(usize, &mut Command) + Send + Sync>;

/// One server process and the address it listens on.
pub struct Instance {
    pub child: Child,
    pub addr: String,
}

/// A running test server on the current backend ([`backend`]): one process on SQLite or
/// PostgreSQL, or three on one PostgreSQL database and one Redis bus in cluster mode; its
/// directory; and the database and bus it owns.
///
/// In cluster mode WebSockets ([`TestServer::connect`], [`TestServer::connect_raw`],
/// [`TestServer::ws_addr`]) go to the instances in turn, while REST ([`TestServer::url`]
/// and the helpers built on it) stays on instance 0: the send rate, the login and
/// registration throttles and the HTTP caps are per instance (docs/protocol.md, "Cluster
/// mode"), and the tests of those limits make their requests through `url`.
pub struct TestServer {
    /// Instance 0's process (the only one except in cluster mode).
    pub child: Child,
    /// Instance 0's address.
    pub addr: String,
    /// Instances 1 and 2 in cluster mode; empty otherwise.
    pub others: Vec<Instance>,
    pub dir: tempfile::TempDir,
    pub extra_args: Vec<String>,
    /// The instance the next WebSocket goes to, modulo their number.
    next_ws: AtomicUsize,
    configure: Option<Configure>,
    /// Last: dropped after the processes (which `Drop` kills first anyway).
    pub storage: Storage,
}

impl TestServer {
    /// Starts a server on a fresh database.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra flags (the send rate and registration limits are off unless
    /// the flags set them); in cluster mode every instance gets them.
    pub fn start_with(args: &[&str]) -> TestServer {
        Self::launch(tempfile::tempdir().unwrap(), Storage::current(), args, None)
    }

    /// [`TestServer::start_with`], with `configure` applied to each instance's command just
    /// before it is spawned (with the instance's index).
    pub fn start_configured(
        args: &[&str],
        configure: impl Fn(usize, &mut Command) + Send + Sync + 'static,
    ) -> TestServer {
        Self::launch(
            tempfile::tempdir().unwrap(),
            Storage::current(),
            args,
            Some(Arc::new(configure)),
        )
    }

    /// Starts one server on `dir`'s `natter.db`, a SQLite file the test prepared (whatever
    /// the backend).
    pub fn start_on(dir: tempfile::TempDir, args: &[&str]) -> TestServer {
        Self::launch(dir, Storage::sqlite(), args, None)
    }

    /// One server on a SQLite file of its own whatever the backend, for the tests that pick
    /// their backend themselves: a `--db` in `args` comes later, and the later one wins.
    pub fn start_plain(args: &[&str]) -> TestServer {
        Self::launch(tempfile::tempdir().unwrap(), Storage::sqlite(), args, None)
    }

    /// A test server around a process the test spawned itself (on `storage`, in `dir`).
    pub fn adopt(child: Child, addr: String, dir: tempfile::TempDir, storage: Storage) -> Self {
        TestServer {
            child,
            addr,
            others: Vec::new(),
            dir,
            extra_args: Vec::new(),
            next_ws: AtomicUsize::new(1),
            configure: None,
            storage,
        }
    }

    fn launch(
        dir: tempfile::TempDir,
        storage: Storage,
        args: &[&str],
        configure: Option<Configure>,
    ) -> TestServer {
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut nodes = spawn_all(dir.path(), &storage, &extra_args, configure.as_ref());
        let first = nodes.remove(0);
        let server = TestServer {
            child: first.child,
            addr: first.addr,
            others: nodes,
            dir,
            extra_args,
            // Instance 1 first: a test with one socket and REST sends (on instance 0) then
            // has its delivery cross instances.
            next_ws: AtomicUsize::new(1),
            configure,
            storage,
        };
        server.wait_for_bus();
        server
    }

    /// How many processes this server is.
    pub fn instances(&self) -> usize {
        1 + self.others.len()
    }

    /// Every instance's address, instance 0's first.
    pub fn addrs(&self) -> Vec<&str> {
        std::iter::once(self.addr.as_str())
            .chain(self.others.iter().map(|o| o.addr.as_str()))
            .collect()
    }

    /// The address the next WebSocket goes to: in cluster mode each instance in turn.
    pub fn ws_addr(&self) -> String {
        let i = self.next_ws.fetch_add(1, Ordering::Relaxed) % self.instances();
        self.addrs()[i].to_owned()
    }

    /// The PostgreSQL database this server runs on, if it does.
    pub fn db(&self) -> Option<&TestDb> {
        self.storage.db.as_ref()
    }

    /// The SQLite file; only for a server on one (`only_on!(Sqlite; …)`).
    pub fn db_path(&self) -> PathBuf {
        assert!(
            self.storage.db.is_none(),
            "db_path: this server runs on {}, not a SQLite file (only_on!(Sqlite; …))",
            self.storage.backend
        );
        self.dir.path().join("natter.db")
    }

    /// Instance 0's address for REST: see the type's documentation for why REST does not
    /// spread over the instances.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn children(&mut self) -> impl Iterator<Item = &mut Child> {
        std::iter::once(&mut self.child).chain(self.others.iter_mut().map(|o| &mut o.child))
    }

    /// SIGKILL, every instance: no shutdown code runs.
    pub fn kill9(&mut self) {
        for child in self.children() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts new server processes on the same database, with the same flags (after `kill9`
    /// or `terminate`; a server still running is SIGKILLed first, so none is left behind).
    pub fn restart(&mut self) {
        for child in self.children() {
            if matches!(child.try_wait(), Ok(None)) {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
        let mut nodes = spawn_all(
            self.dir.path(),
            &self.storage,
            &self.extra_args,
            self.configure.as_ref(),
        );
        let first = nodes.remove(0);
        self.child = first.child;
        self.addr = first.addr;
        self.others = nodes;
        self.wait_for_bus();
    }

    /// SIGTERM to every instance, then the exit status (bounded wait): instance 0's, or the
    /// first that is not a success.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        for child in self.children() {
            let pid = child.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut statuses = Vec::new();
        for child in self.children() {
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "server did not exit within 10 s of SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            statuses.push(status);
        }
        statuses
            .iter()
            .find(|s| !s.success())
            .copied()
            .unwrap_or(statuses[0])
    }

    /// In cluster mode, waits (bounded) until every instance's `/readyz` says `"bus":"redis"`,
    /// so no test races an instance still connecting to Redis.
    fn wait_for_bus(&self) {
        if self.storage.bus.is_none() {
            return;
        }
        for addr in self.addrs() {
            let deadline = Instant::now() + WAIT;
            loop {
                let bus = readyz_bus(addr);
                if bus.as_deref() == Some("redis") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "instance at {addr} never said bus redis (last: {bus:?})"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Registers `name` (password [`PASSWORD`]) and returns its token.
    pub async fn register(&self, name: &str) -> String {
        let r = http()
            .post(self.url("/api/auth/register"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "registering {name}");
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers each name; their tokens in the same order.
    pub async fn register_all<const N: usize>(&self, names: [&str; N]) -> [String; N] {
        let mut tokens: [String; N] = std::array::from_fn(|_| String::new());
        for (token, name) in tokens.iter_mut().zip(names) {
            *token = self.register(name).await;
        }
        tokens
    }

    /// GETs `path` (with `token` unless it is empty); returns status and JSON body.
    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let mut req = http().get(self.url(path));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// POSTs a message body with `token`; returns status and JSON body.
    pub async fn post(&self, token: &str, body: Value) -> (u16, Value) {
        let r = http()
            .post(self.url("/api/chat/messages/"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Every message `token`'s user may see (up to 1000).
    pub async fn history(&self, token: &str) -> Vec<Message> {
        let r = http()
            .get(self.url("/api/chat/messages/?after=0&limit=1000"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Opens a WebSocket as `token`'s user (on the next instance, in cluster mode),
    /// optionally resuming after an id, and reads up to and including the `ready` frame;
    /// returns the client and the frames before `ready`.
    pub async fn connect(&self, token: &str, after: Option<i64>) -> (Ws, Vec<Message>) {
        let mut ws = self.connect_raw(token, after).await.unwrap();
        let mut replayed = Vec::new();
        loop {
            match ws.next_frame().await {
                ServerFrame::ChatMessage { message } => replayed.push(message),
                ServerFrame::Ready { .. } => return (ws, replayed),
                ServerFrame::Presence { .. } => {}
                other => panic!("unexpected frame before ready: {other:?}"),
            }
        }
    }

    /// Opens a WebSocket (on the next instance, in cluster mode) without reading anything;
    /// the handshake error if refused.
    pub async fn connect_raw(
        &self,
        token: &str,
        after: Option<i64>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let addr = self.ws_addr();
        let url = match after {
            Some(id) => format!("ws://{addr}/ws/chat/?after={id}"),
            None => format!("ws://{addr}/ws/chat/"),
        };
        let mut req = url.into_client_request().unwrap();
        if !token.is_empty() {
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
        }
        let (inner, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("websocket connect timed out")?;
        Ok(Ws { inner })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for child in self.children() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spawns one server process per instance of `storage`, with the harness's flags and
/// `extra`.
fn spawn_all(
    dir: &Path,
    storage: &Storage,
    extra: &[String],
    configure: Option<&Configure>,
) -> Vec<Instance> {
    (0..storage.instances())
        .map(|i| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter-server"));
            cmd.args(["--bind", "127.0.0.1:0"])
                .args(storage.args(dir, i))
                .args(["--rate-limit", "0", "--register-burst", "0"])
                .args(extra)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::inherit());
            if let Some(configure) = configure {
                configure(i, &mut cmd);
            }
            let (child, addr) = spawn_listening(cmd);
            Instance { child, addr }
        })
        .collect()
}

/// What `addr`'s `/readyz` says the bus is (blocking, bounded); `None` if it did not answer.
fn readyz_bus(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut tcp = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).ok()?;
    let body: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1)?).ok()?;
    body["bus"].as_str().map(str::to_owned)
}

/// Spawns a server command (stdout is taken over) and reads the address from its first
/// line, `natter-server listening on ADDR, database PATH` (see `natter_testkit::process`).
pub fn spawn_listening(cmd: Command) -> (Child, String) {
    let started = natter_testkit::process::spawn_listening(cmd).unwrap_or_else(|e| panic!("{e}"));
    (started.child, started.addr.to_string())
}

/// The password [`TestServer::register`] gives every account.
pub const PASSWORD: &str = "password1";

pub fn http() -> reqwest::Client {
    http_builder().timeout(WAIT).build().unwrap()
}

/// reqwest's builder, usable for plain http://: a workspace build gives reqwest the
/// client's `rustls-no-provider` feature, and then building any client panics unless a
/// process-wide crypto provider is installed.
pub fn http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A test WebSocket client, over TCP unless `S` says otherwise (`tls.rs` uses a rustls
/// stream).
pub struct Ws<S = MaybeTlsStream<TcpStream>> {
    pub inner: WebSocketStream<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ws<S> {
    /// Sends a JSON text frame.
    pub async fn send_json(&mut self, v: Value) {
        self.inner
            .send(WsMessage::text(v.to_string()))
            .await
            .unwrap();
    }

    /// Sends a raw frame.
    pub async fn send_raw(&mut self, m: WsMessage) {
        self.inner.send(m).await.unwrap();
    }

    /// The next raw WebSocket message (pings are answered by tungstenite).
    pub async fn next_raw(&mut self) -> Option<WsMessage> {
        loop {
            match tokio::time::timeout(WAIT, self.inner.next()).await {
                Err(_) => panic!("no frame within {WAIT:?}"),
                Ok(None) => return None,
                Ok(Some(Err(e))) => panic!("websocket error: {e}"),
                Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                Ok(Some(Ok(m))) => return Some(m),
            }
        }
    }

    /// The next server frame, decoded.
    pub async fn next_frame(&mut self) -> ServerFrame {
        match self.next_raw().await {
            Some(WsMessage::Text(t)) => {
                ServerFrame::decode(&t).unwrap_or_else(|e| panic!("undecodable frame {t}: {e}"))
            }
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next chat message, skipping presence frames.
    pub async fn next_message(&mut self) -> Message {
        loop {
            match self.next_frame().await {
                ServerFrame::ChatMessage { message } => return message,
                ServerFrame::Presence { .. } => continue,
                other => panic!("expected a chat message, got {other:?}"),
            }
        }
    }

    /// Reads until the server's close frame, skipping text frames; its close code.
    pub async fn next_close(&mut self) -> CloseCode {
        loop {
            match self.next_raw().await {
                Some(WsMessage::Close(Some(frame))) => return frame.code,
                Some(WsMessage::Text(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// The next error frame's code and client_id, skipping presence frames.
    pub async fn next_error(&mut self) -> (String, Option<String>) {
        loop {
            match self.next_frame().await {
                ServerFrame::Error { error, client_id } => {
                    return (error.code.as_str().to_owned(), client_id);
                }
                ServerFrame::Presence { .. } => continue,
                other => panic!("expected an error frame, got {other:?}"),
            }
        }
    }
}

/// How a server that was expected to refuse to start ended.
#[derive(Debug)]
pub struct Refusal {
    pub status: std::process::ExitStatus,
    pub stderr: String,
}

/// Starts `natter-server` on `db` (run through `wrapper`, e.g. `setpriv ...`, when it is not
/// empty) and expects it to exit without listening; panics if it listens or keeps running.
pub fn expect_refusal(wrapper: &[&str], db: &std::path::Path) -> Refusal {
    let bin = env!("CARGO_BIN_EXE_natter-server");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(["--bind", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "server on {} did not exit within {WAIT:?}: it is serving",
                db.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !stdout.contains("listening"),
        "server started on {}: {stdout}",
        db.display()
    );
    Refusal { status, stderr }
}

/// Asserts the server said why it refused in exactly one line containing `needle`.
pub fn assert_one_line(refusal: &Refusal, needle: &str) {
    assert!(
        !refusal.status.success(),
        "exit status {:?}",
        refusal.status
    );
    let lines: Vec<&str> = refusal.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", refusal.stderr);
    assert!(
        lines[0].starts_with("natter-server: ") && lines[0].contains(needle),
        "stderr line {:?} should mention {needle:?}",
        lines[0]
    );
}
