//! The deployment in `docs/deploy.md`, end to end: real nginx running `deploy/nginx.conf`
//! itself (only its marked lines changed: ports, name, certificate paths) terminates TLS in
//! front of a plain `natter-server --trusted-proxy 127.0.0.1`, and the chat screen's
//! network task and `natter send` work through it over https:// and wss://.
//!
//! Without nginx installed the test says so and passes, unless `NATTER_REQUIRE_NGINX` is
//! set (`.ci/run` installs nginx and sets it, so CI cannot skip it).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic is the failure report

mod common {
    pub mod certs;
    pub mod cli;
    pub mod client;
    pub mod server;
}

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{natter, run};
use common::client::{Client, count};
use common::server::Server;

/// nginx on PATH, or where Debian puts it (root's PATH has it; others' may not).
fn nginx_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
}

/// `deploy/nginx.conf` with its marked lines set for this test; panics if a marked line
/// is not there as docs/deploy.md describes it, so the file and the test cannot drift.
fn site_config(upstream: &str, port: u16, cert: &Path, key: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf");
    let mut conf = std::fs::read_to_string(&path).unwrap();
    let edits = [
        ("server 127.0.0.1:8000;", format!("server {upstream};")),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
        (
            "server_name chat.example.com;",
            "server_name localhost;".into(),
        ),
        ("/etc/natter/tls/fullchain.pem", cert.display().to_string()),
        ("/etc/natter/tls/privkey.pem", key.display().to_string()),
    ];
    for (from, to) in edits {
        assert_eq!(
            conf.matches(from).count(),
            1,
            "{from:?} in deploy/nginx.conf"
        );
        conf = conf.replace(from, &to);
    }
    conf
}

/// nginx in the foreground, one process, every file under `dir`; killed when dropped.
struct Nginx(Child);

impl Nginx {
    fn start(binary: &Path, dir: &Path, site: &str, port: u16) -> Nginx {
        std::fs::write(dir.join("natter.conf"), site).unwrap();
        let d = dir.display();
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/natter.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free a moment ago (nginx cannot be told to pick one and say which).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_nginx_with_deploy_conf() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("NATTER_REQUIRE_NGINX").is_none(),
            "NATTER_REQUIRE_NGINX is set but nginx is not installed"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("chat.db"),
        &["--trusted-proxy", "127.0.0.1"],
    );
    let certs = common::certs::generate(&dir.path().join("pki"), "nginx");
    let port = free_port();
    let site = site_config(&server.addr, port, &certs.cert, &certs.key);
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let _nginx = Nginx::start(&nginx, &nginx_dir, &site, port);
    let url = format!("https://127.0.0.1:{port}");

    let ca = Some(certs.ca.as_path());
    let mut alice = Client::start_with_ca(&url, &dir.path().join("a"), "alice", ca).await;
    let mut bob = Client::start_with_ca(&url, &dir.path().join("b"), "bob", ca).await;
    alice.wait_live().await;
    bob.wait_live().await;
    alice.say("through nginx").await;
    bob.wait_text("through nginx").await;
    alice.wait_text("through nginx").await;

    // A script through the same proxy, and the screens see it once.
    let c = dir.path().join("c");
    let ca_arg = certs.ca.to_str().unwrap();
    let o = run(natter(&c, &url).args(["--ca-file", ca_arg, "register", "carol"]));
    assert!(o.status.success(), "{o:?}");
    let o = run(natter(&c, &url).args(["--ca-file", ca_arg, "send", "by", "script"]));
    assert!(o.status.success(), "{o:?}");
    alice.wait_text("by script").await;
    bob.wait_text("by script").await;
    assert_eq!(count(&bob.app, "through nginx"), 1);
    assert_eq!(count(&bob.app, "by script"), 1);

    // The sockets really went through nginx as WebSockets (101), not around it. nginx
    // logs a request when it ends, so the screens leave first.
    alice.quit().await;
    bob.quit().await;
    let upgraded = |log: &str| {
        log.lines()
            .filter(|l| l.contains("GET /ws/chat/") && l.contains(" 101 "))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(nginx_dir.join("access.log")).unwrap();
        if upgraded(&log) >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no upgraded sockets logged: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
