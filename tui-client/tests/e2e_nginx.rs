//! The deployment in `docs/deploy.md`, end to end: real nginx running `deploy/nginx.conf`
//! itself (only its marked lines changed: ports, name, certificate paths) terminates TLS in
//! front of a plain `natter-server --trusted-proxy 127.0.0.1`, and the chat screen's
//! network task and `natter send` work through it over https:// and wss://.
//!
//! Without nginx installed the test says so and passes, unless `NATTER_REQUIRE_NGINX` is
//! set (`.ci/run` installs nginx and sets it, so CI cannot skip it).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic is the failure report

mod common {
    pub mod cli;
    pub mod client;
    pub mod nginx;
    pub mod server;
}

use std::time::{Duration, Instant};

use common::cli::{natter, run};
use common::client::{Client, count};
use common::nginx::{Nginx, free_port, nginx_binary, site_config};
use common::server::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_nginx_with_deploy_conf() {
    let Some(nginx) = nginx_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("chat.db"),
        &["--trusted-proxy", "127.0.0.1"],
    );
    let certs = natter_testkit::certs::generate(&dir.path().join("pki"), "nginx");
    let port = free_port();
    let site = site_config(&[server.addr.as_str()], port, &certs.cert, &certs.key);
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
