//! TLS on the server's one port, run as the real binary with certificates made at test time
//! (natter-testkit's `certs`: two CAs, each with a server certificate): REST over https and WebSockets over wss work, plain HTTP on that port is not
//! served, a handshake that never finishes holds nobody else up, SIGHUP swaps the
//! certificate without dropping open sockets (and a bad reload keeps the old one), and bad
//! files or flags are one-line start-up errors. Each server is one process, on SQLite or
//! PostgreSQL as `NATTER_TEST_BACKEND` says (not on a cluster: TLS is per process).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::backend::Storage;
use common::{PASSWORD, WAIT, Ws, assert_one_line, expect_refusal, spawn_listening};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::rt::TokioIo;
use natter_shared::ServerFrame;
use natter_testkit::certs::{self, CertFiles};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Why the servers here are not clusters.
const ONE_PROCESS: &str = "TLS is one process's own listener, the same on each cluster instance";

/// A client's TLS connection.
type TlsTcp = tokio_rustls::client::TlsStream<TcpStream>;

/// A test CA and a server certificate it issued for `localhost` and `127.0.0.1`.
struct Pki {
    /// The CA certificate clients trust.
    ca: CertificateDer<'static>,
    /// The certificates and the key, PEM.
    pem: certs::Pki,
}

impl Pki {
    /// A new CA (named `name`) and a server certificate signed by it.
    fn new(name: &str) -> Pki {
        let pem = certs::Pki::new(name).expect("test certificates");
        Pki {
            ca: CertificateDer::from(pem.ca_der.clone()),
            pem,
        }
    }

    /// Writes the server's certificate and key to `files`.
    fn install(&self, files: &CertFiles) {
        self.pem
            .install(files)
            .expect("writing the certificate and key");
    }
}

/// A rustls client configuration (ring provider) that trusts only `ca`.
fn client_config(ca: &CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("adding the test CA");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A new TLS connection to `addr` (`127.0.0.1:PORT`) trusting only `ca` and offering `alpn`.
/// A fresh client configuration each time, so no session is resumed: every connection is a
/// full handshake and sees the certificate being served now.
async fn tls_connect(
    addr: &str,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> std::io::Result<TlsTcp> {
    let mut config = client_config(ca);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let ip = addr
        .parse::<std::net::SocketAddr>()
        .expect("server address")
        .ip();
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(WAIT, connector.connect(ServerName::from(ip), tcp))
        .await
        .expect("TLS handshake timed out")
}

/// One https request on a new connection trusting only `ca` (with `token` unless empty,
/// and a JSON body if given); the status and JSON body (`Null` when empty), or why the
/// request failed (a handshake refused included).
async fn https(
    addr: &str,
    ca: &CertificateDer<'static>,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let tls = tls_connect(addr, ca, &[]).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    // Drives the connection; ends when the server closes it or `sender` is dropped.
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr);
    if !token.is_empty() {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let response =
        tokio::time::timeout(WAIT, sender.send_request(req.body(Full::new(body))?)).await??;
    let status = response.status().as_u16();
    let bytes = tokio::time::timeout(WAIT, response.into_body().collect())
        .await??
        .to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok((status, json))
}

/// A `natter-server --tls-cert --tls-key` process on 127.0.0.1 port 0; its stderr (logs at
/// `info`) is read line by line so tests can wait for what it says.
struct TlsServer {
    child: Child,
    addr: String,
    files: CertFiles,
    log: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
    /// After the process (`Drop` kills it first): its PostgreSQL database, if any.
    _storage: Storage,
}

impl TlsServer {
    /// Starts a server serving `pki`'s certificate, with `extra` flags.
    fn start(pki: &Pki, extra: &[&str]) -> TlsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles::in_dir(dir.path());
        pki.install(&files);
        let storage = Storage::current();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter-server"));
        cmd.args(["--bind", "127.0.0.1:0"])
            .args(storage.args(dir.path(), 0))
            .args(["--rate-limit", "0", "--register-burst", "0", "--tls-cert"])
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped());
        let (mut child, addr) = spawn_listening(cmd);
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log) = mpsc::channel();
        // Drained all the time, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        TlsServer {
            child,
            addr,
            files,
            log,
            _dir: dir,
            _storage: storage,
        }
    }

    /// Sends the process a real SIGHUP.
    fn hangup(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -HUP {pid}");
    }

    /// The next log line containing `needle` (bounded wait).
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no log line with {needle:?} within {WAIT:?}"),
            }
        }
    }

    /// `GET path` over https, trusting only `ca`; the status and JSON body.
    async fn get(&self, ca: &CertificateDer<'static>, path: &str) -> anyhow::Result<(u16, Value)> {
        https(&self.addr, ca, Method::GET, path, "", None).await
    }

    /// Registers `name` over https (trusting `ca`); its token.
    async fn register(&self, ca: &CertificateDer<'static>, name: &str) -> String {
        let body = json!({"username": name, "password": PASSWORD});
        let (status, reply) = https(
            &self.addr,
            ca,
            Method::POST,
            "/api/auth/register",
            "",
            Some(body),
        )
        .await
        .expect("registering over https");
        assert_eq!(status, 201, "registering {name}: {reply}");
        reply["token"].as_str().expect("token").to_owned()
    }

    /// Opens a wss socket as `token`'s user, trusting only `ca`; why not if it fails.
    async fn connect_wss(
        &self,
        ca: &CertificateDer<'static>,
        token: &str,
    ) -> anyhow::Result<Ws<TlsTcp>> {
        let tls = tls_connect(&self.addr, ca, &[]).await?;
        let mut req = format!("wss://{}/ws/chat/", self.addr).into_client_request()?;
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        let (inner, _) =
            tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tls)).await??;
        Ok(Ws { inner })
    }

    /// [`Self::connect_wss`], which must succeed, read up to its `ready` frame.
    async fn connect_ready(&self, ca: &CertificateDer<'static>, token: &str) -> Ws<TlsTcp> {
        let mut ws = self.connect_wss(ca, token).await.expect("wss connect");
        loop {
            match ws.next_frame().await {
                ServerFrame::Ready { .. } => return ws,
                ServerFrame::Presence { .. } | ServerFrame::ChatMessage { .. } => {}
                other => panic!("unexpected frame before ready: {other:?}"),
            }
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `text` on `ws` and expects it back as a stored chat message.
async fn assert_echo(ws: &mut Ws<TlsTcp>, text: &str) {
    ws.send_json(json!({"message": text, "client_id": format!("c-{text}")}))
        .await;
    assert_eq!(ws.next_message().await.text, text);
}

/// Register, post and read history all work over https.
#[tokio::test]
async fn rest_works_over_https() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let pki = Pki::new("one");
    let server = TlsServer::start(&pki, &[]);
    let token = server.register(&pki.ca, "alice").await;
    let message = json!({"text": "over tls"});
    let path = "/api/chat/messages/";
    let (status, reply) = https(
        &server.addr,
        &pki.ca,
        Method::POST,
        path,
        &token,
        Some(message),
    )
    .await
    .expect("posting over https");
    assert_eq!(status, 201, "{reply}");
    let path = "/api/chat/messages/?after=0&limit=10";
    let (status, history) = https(&server.addr, &pki.ca, Method::GET, path, &token, None)
        .await
        .expect("reading history over https");
    assert_eq!(status, 200, "{history}");
    let history: Vec<natter_shared::Message> =
        serde_json::from_value(history).expect("history JSON");
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["over tls"]);
}

/// A plain-HTTP request to the TLS port is not served: an HTTP client gets an error, and
/// the raw bytes back (if any) are no HTTP response.
#[tokio::test]
async fn plain_http_to_the_tls_port_is_not_served() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let pki = Pki::new("one");
    let server = TlsServer::start(&pki, &[]);
    let plain = common::http()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    let mut tcp = TcpStream::connect(&server.addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    assert!(
        !reply.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}

/// A WebSocket over wss connects, and a message sent on it comes back as stored.
#[tokio::test]
async fn websocket_works_over_wss() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let pki = Pki::new("one");
    let server = TlsServer::start(&pki, &[]);
    let token = server.register(&pki.ca, "alice").await;
    let mut ws = server.connect_ready(&pki.ca, &token).await;
    assert_echo(&mut ws, "hello over wss").await;
}

/// The server offers ALPN `http/1.1` and nothing else: a client offering h2 too gets
/// http/1.1, one offering only h2 is refused in the handshake.
#[tokio::test]
async fn alpn_is_http1_only() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let pki = Pki::new("one");
    let server = TlsServer::start(&pki, &[]);
    let tls = tls_connect(&server.addr, &pki.ca, &[b"h2", b"http/1.1"])
        .await
        .expect("handshake offering h2 and http/1.1");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(tls_connect(&server.addr, &pki.ca, &[b"h2"]).await.is_err());
}

/// A client that connects and never starts its handshake does not hold up anyone else: the
/// handshake is not in the accept loop (there, this request would wait out the default
/// 30 s request timeout, longer than any wait here).
#[tokio::test]
async fn a_stalled_handshake_holds_nobody_up() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let pki = Pki::new("one");
    let server = TlsServer::start(&pki, &[]);
    let _silent = TcpStream::connect(&server.addr).await.expect("connect");
    // Let the server accept it before the next one arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = server
        .get(&pki.ca, "/healthz")
        .await
        .expect("a second client is served while the first is silent");
    assert_eq!(status, 200);
}

/// A client that never finishes its handshake is dropped once the request timeout passes.
#[tokio::test]
async fn an_unfinished_handshake_is_dropped() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let pki = Pki::new("one");
    let server = TlsServer::start(&pki, &["--request-timeout", "1"]);
    let mut silent = TcpStream::connect(&server.addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the silent client was not dropped: {read:?}"
    );
}

/// Past `--max-http-connections` a TLS client still gets the over-cap answer (503, and 200
/// for a health check) through a handshake of its own.
#[tokio::test]
async fn over_cap_connections_are_answered_over_tls() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let pki = Pki::new("one");
    let server = TlsServer::start(&pki, &["--max-http-connections", "1"]);
    // Holds the one HTTP slot: it never handshakes (the request timeout is 30 s).
    let _idle = TcpStream::connect(&server.addr).await.expect("connect");
    // On a busy machine the server may not have accepted the idle one yet: ask until it
    // has (bounded).
    let deadline = Instant::now() + WAIT;
    let (status, body) = loop {
        let reply = server
            .get(&pki.ca, "/api/users/")
            .await
            .expect("an over-cap answer over https");
        if reply.0 == 503 || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_connections");
    let (status, _) = server.get(&pki.ca, "/healthz").await.expect("health");
    assert_eq!(status, 200);
}

/// SIGHUP rereads the certificate and key: a socket opened before it keeps working, new
/// handshakes get the new certificate (trusting the new CA succeeds, the old CA fails).
#[tokio::test]
async fn sighup_swaps_the_certificate_and_keeps_open_sockets() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let (a, b) = (Pki::new("A"), Pki::new("B"));
    let server = TlsServer::start(&a, &[]);
    let token = server.register(&a.ca, "alice").await;
    let mut open = server.connect_ready(&a.ca, &token).await;
    assert_echo(&mut open, "before").await;

    b.install(&server.files);
    server.hangup();
    let line = server.wait_for_log("TLS certificate reloaded");
    assert!(line.contains("INFO"), "{line}");

    assert_echo(&mut open, "after").await;
    let mut fresh = server.connect_ready(&b.ca, &token).await;
    assert_echo(&mut fresh, "new cert").await;
    assert!(
        server.connect_wss(&a.ca, &token).await.is_err(),
        "a client trusting only the old CA still got in"
    );
    assert!(server.get(&a.ca, "/healthz").await.is_err());
}

/// A reload whose key file is broken logs a warning and keeps serving the old certificate;
/// once the files are fixed, the next SIGHUP loads them.
#[tokio::test]
async fn a_failed_reload_keeps_the_old_certificate() {
    only_on!(Sqlite, Postgres; ONE_PROCESS);
    let (a, b) = (Pki::new("A"), Pki::new("B"));
    let server = TlsServer::start(&a, &[]);
    std::fs::write(&server.files.cert, &b.pem.cert_pem).expect("writing B's certificate");
    std::fs::write(&server.files.key, "-----BEGIN PRIVATE KEY-----\ntorn").expect("key");
    server.hangup();
    let line = server.wait_for_log("TLS certificate not reloaded");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("key.pem"), "names the file: {line}");

    let (status, _) = server
        .get(&a.ca, "/healthz")
        .await
        .expect("still serving the old certificate");
    assert_eq!(status, 200);
    assert!(server.get(&b.ca, "/healthz").await.is_err());

    b.install(&server.files);
    server.hangup();
    server.wait_for_log("TLS certificate reloaded");
    let (status, _) = server
        .get(&b.ca, "/healthz")
        .await
        .expect("serving the fixed certificate");
    assert_eq!(status, 200);
}

/// A missing certificate file or a key that is not the certificate's stops the server
/// before it listens, with one line on stderr, and creates no database.
#[test]
fn bad_tls_files_are_one_line_startup_errors() {
    only_on!(Sqlite; "start-up refusals before any database is opened: the same on every backend");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = CertFiles::in_dir(dir.path());
    let (a, b) = (Pki::new("A"), Pki::new("B"));
    let db = dir.path().join("natter.db");
    let run = |needle: &str| {
        let cert = format!("NATTER_TLS_CERT={}", files.cert.display());
        let key = format!("NATTER_TLS_KEY={}", files.key.display());
        let refusal = expect_refusal(&["env", &cert, &key], &db);
        assert_eq!(refusal.status.code(), Some(1), "{refusal:?}");
        assert_one_line(&refusal, needle);
        assert!(!db.exists(), "a database was created");
    };
    std::fs::write(&files.key, &a.pem.key_pem).expect("writing the key");
    run("cannot read TLS certificate file");
    std::fs::write(&files.cert, &a.pem.cert_pem).expect("writing the certificate");
    std::fs::write(&files.key, &b.pem.key_pem).expect("writing the other key");
    run("does not match the certificate");
    std::fs::write(&files.cert, &a.pem.key_pem).expect("writing a key as the certificate");
    run("no certificate in");
}

/// `--tls-cert` without `--tls-key` (or the key alone, from the environment) is a one-line
/// usage error with exit code 2.
#[test]
fn one_tls_flag_alone_is_a_usage_error() {
    only_on!(Sqlite; "start-up refusals before any database is opened: the same on every backend");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter-server"));
        cmd.args(["--bind", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("natter.db"))
            .env_remove("NATTER_TLS_CERT")
            .env_remove("NATTER_TLS_KEY");
        cmd
    };
    let mut cert_alone = server();
    cert_alone.args(["--tls-cert", "cert.pem"]);
    let mut key_alone = server();
    key_alone.env("NATTER_TLS_KEY", "key.pem");
    for (cmd, needle) in [(cert_alone, "--tls-key"), (key_alone, "--tls-cert")] {
        let out = run_to_exit(cmd);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err:?}");
        assert!(
            lines[0].starts_with("natter-server: ") && lines[0].contains(needle),
            "{:?}",
            lines[0]
        );
    }
}

/// Runs `cmd` to its exit (bounded: a server that starts instead is killed and fails the
/// test).
fn run_to_exit(mut cmd: Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning natter-server");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("natter-server did not exit within {WAIT:?}: it is serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("reading its output")
}
