//! Real nginx for end-to-end tests, running `deploy/nginx.conf` itself with only its marked
//! lines changed (ports, name, certificate paths, upstreams), in the foreground, every file
//! under a test directory.
#![allow(clippy::unwrap_used, dead_code)] // test helpers: a panic is the failure report

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx on PATH, or where Debian puts it (root's PATH has it; others' may not); `None`
/// after one line saying the test is skipped, or a panic under `NATTER_REQUIRE_NGINX`.
pub fn nginx_binary() -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            std::env::var_os("NATTER_REQUIRE_NGINX").is_none() && !ci,
            "NATTER_REQUIRE_NGINX or CI=true is set but nginx is not installed"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
    }
    found
}

fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
}

/// `deploy/nginx.conf` with its marked lines set for this test (the upstream line once per
/// instance in `upstreams`); panics if a marked line is not there as docs/deploy.md
/// describes it, so the file and the tests cannot drift.
pub fn site_config(upstreams: &[&str], port: u16, cert: &Path, key: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf");
    let mut conf = std::fs::read_to_string(&path).unwrap();
    let upstream = "server 127.0.0.1:8000 max_fails=1 fail_timeout=5s;";
    let servers: Vec<String> = upstreams
        .iter()
        .map(|u| upstream.replace("127.0.0.1:8000", u))
        .collect();
    let edits = [
        (upstream, servers.join("\n    ")),
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
pub struct Nginx(Child);

impl Nginx {
    pub fn start(binary: &Path, dir: &Path, site: &str, port: u16) -> Nginx {
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
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
