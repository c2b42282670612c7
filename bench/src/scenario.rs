//! Who connects where, and one measured run against a started server.
//!
//! A [`Routing`] says who receives what, and becomes the same traffic on either target: on
//! natter a user per connection (or a few users sharing connections for group messages)
//! and `receiver_username` for direct messages; on the ceiling the rooms in the path.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cluster::Backing;
use crate::hog::Hog;
use crate::load::{Accept, ConnSpec, Pace, Phase, Session, to_everyone};
use crate::stats::{Report, round3};
use crate::target::{Kind, Server, ServerOptions};

/// Time a CPU hog may run beyond its run's sending and drain (connecting, closing).
const HOG_MARGIN: Duration = Duration::from_secs(30);

/// Who receives what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Group messages to every connection; natter connections share `users` accounts.
    Group {
        /// Accounts the connections are spread over.
        users: usize,
    },
    /// Connection `2k` and `2k+1` are the two parties of direct messages, one user each.
    Pairs,
    /// The last connection is a sink every other connection sends direct messages to.
    Sink,
}

impl Routing {
    /// Accounts natter needs for `n` connections.
    pub fn users(self, n: usize) -> usize {
        match self {
            Routing::Group { users } => users.clamp(1, n.max(1)),
            Routing::Pairs | Routing::Sink => n,
        }
    }

    /// Deliveries one message makes on `n` connections.
    pub fn deliveries_per_message(self, n: usize) -> u64 {
        match self {
            Routing::Group { .. } => n as u64,
            Routing::Pairs | Routing::Sink => 2,
        }
    }

    /// Connections that may send: all of them, except the sink.
    pub fn possible_senders(self, n: usize) -> usize {
        match self {
            Routing::Sink => n.saturating_sub(1),
            _ => n,
        }
    }
}

/// Which instance each connection opens on, when there are several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Connection `i` on instance `i mod N`.
    Spread,
    /// The first `senders` connections on the first instance, every other one on the
    /// second: each delivery but the senders' own echoes crosses instances.
    SendersApart {
        /// Connections on the first instance.
        senders: usize,
    },
}

impl Placement {
    fn instance(self, i: usize, instances: usize) -> usize {
        match self {
            Placement::Spread => i % instances.max(1),
            Placement::SendersApart { senders } => usize::from(i >= senders).min(instances - 1),
        }
    }
}

/// The connections for `n` connections on the servers at `addrs` (`kind` says which
/// protocol), given natter's tokens (ignored by the ceiling).
pub fn specs(
    kind: Kind,
    addrs: &[SocketAddr],
    placement: Placement,
    routing: Routing,
    n: usize,
    tokens: &[String],
) -> Vec<ConnSpec> {
    let natter = kind == Kind::Natter;
    let url = |i: usize, room: String| {
        let addr = addrs[placement.instance(i, addrs.len())];
        if natter {
            format!("ws://{addr}/ws/chat/")
        } else {
            format!("ws://{addr}/rooms/{room}")
        }
    };
    let token = |user: usize| tokens.get(user).cloned();
    let idx = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    let users = routing.users(n).max(1);
    (0..n)
        .map(|i| match routing {
            Routing::Group { .. } => ConnSpec {
                index: idx(i),
                url: url(i, "all".into()),
                token: token(i % users),
                accept: Accept::Any,
                to: to_everyone(),
            },
            Routing::Pairs => {
                let partner = i ^ 1;
                ConnSpec {
                    index: idx(i),
                    url: url(i, format!("p{}", i / 2)),
                    token: token(i),
                    accept: Accept::Partner(idx(partner)),
                    to: (idx(partner), format!("\"bu{partner}\"")),
                }
            }
            Routing::Sink => {
                let sink = n - 1;
                if i == sink {
                    let all: Vec<String> = (0..sink).map(|s| format!("s{s}")).collect();
                    ConnSpec {
                        index: idx(i),
                        url: url(i, all.join(",")),
                        token: token(i),
                        accept: Accept::Any,
                        to: to_everyone(),
                    }
                } else {
                    ConnSpec {
                        index: idx(i),
                        url: url(i, format!("s{i}")),
                        token: token(i),
                        accept: Accept::OwnOnly,
                        to: (idx(sink), format!("\"bu{sink}\"")),
                    }
                }
            }
        })
        .collect()
}

/// A started server (or cluster) with its accounts, ready for any number of runs.
pub struct Prepared {
    /// The server (the first instance of a cluster).
    pub server: Server,
    /// A cluster's other instances.
    pub others: Vec<Server>,
    /// Where connections open.
    pub placement: Placement,
    /// A cluster's (or one PostgreSQL instance's) database and Redis.
    backing: Option<Backing>,
    /// Routing the accounts were made for.
    pub routing: Routing,
    /// Connections per run.
    pub connections: usize,
    /// natter's tokens, one per account (`bu0`, `bu1`, …); empty for the ceiling.
    pub tokens: Vec<String>,
    baseline_rss_kib: u64,
}

/// What a run sends.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Sending connections (capped at the routing's possible senders).
    pub senders: usize,
    /// Pacing.
    pub pace: Pace,
    /// How long.
    pub duration: Duration,
    /// Longest wait for the last deliveries.
    pub drain: Duration,
    /// Text length per message.
    pub text_bytes: usize,
    /// Most messages per sender (window pacing only).
    pub limit: Option<u64>,
}

impl Prepared {
    /// Starts `kind` and registers the accounts `routing` needs for `connections`.
    pub async fn start(
        kind: Kind,
        natter: &ServerOptions,
        routing: Routing,
        connections: usize,
    ) -> anyhow::Result<Prepared> {
        let server = match kind {
            Kind::Natter => {
                let mut opts = natter.clone();
                opts.max_connections = opts.max_connections.max(connections + 16);
                Server::start_natter(&opts).await?
            }
            Kind::Ceiling => Server::start_ceiling(natter).await?,
        };
        let tokens = match kind {
            Kind::Natter => server.register_users(routing.users(connections)).await?,
            Kind::Ceiling => Vec::new(),
        };
        let baseline_rss_kib = server.rss_kib().unwrap_or(0);
        Ok(Prepared {
            server,
            others: Vec::new(),
            placement: Placement::Spread,
            backing: None,
            routing,
            connections,
            tokens,
            baseline_rss_kib,
        })
    }

    /// Starts `instances` natter-servers on a fresh PostgreSQL database, joined by a Redis
    /// bus when `bus`, with the accounts `routing` needs for `connections` placed by
    /// `placement`.
    pub async fn start_cluster(
        natter: &ServerOptions,
        instances: usize,
        bus: bool,
        routing: Routing,
        connections: usize,
        placement: Placement,
    ) -> anyhow::Result<Prepared> {
        let backing = Backing::start().await?;
        let mut servers = Vec::new();
        for i in 0..instances.max(1) {
            let mut opts = natter.clone();
            opts.max_connections = opts.max_connections.max(connections + 16);
            opts.extra_args.extend(backing.args(i, bus));
            match Server::start_natter(&opts).await {
                Ok(s) => servers.push(s),
                Err(e) => {
                    for s in servers {
                        s.stop().await;
                    }
                    backing.stop().await;
                    return Err(e);
                }
            }
        }
        let server = servers.remove(0);
        let tokens = server.register_users(routing.users(connections)).await?;
        // The bus connects in the background; give it a moment so the first run is not
        // measured polling.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let baseline_rss_kib = server.rss_kib().unwrap_or(0);
        Ok(Prepared {
            server,
            others: servers,
            placement,
            backing: Some(backing),
            routing,
            connections,
            tokens,
            baseline_rss_kib,
        })
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.server.addr)
            .chain(self.others.iter().map(|s| s.addr))
            .collect()
    }

    fn servers(&self) -> impl Iterator<Item = &Server> {
        std::iter::once(&self.server).chain(&self.others)
    }

    fn conn_specs(&self) -> Vec<ConnSpec> {
        specs(
            self.server.kind,
            &self.addrs(),
            self.placement,
            self.routing,
            self.connections,
            &self.tokens,
        )
    }

    /// Opens the connections, runs `load`, closes them; one report.
    pub async fn run(&mut self, scenario: &str, load: Load) -> Report {
        self.run_beside(scenario, load, None).await
    }

    /// [`Prepared::run`] with a CPU hog of `threads` busy threads beside it, started before
    /// the connections open and killed when the run ends; `hog_cores` says what it took.
    pub async fn run_with_hog(
        &mut self,
        scenario: &str,
        load: Load,
        threads: usize,
    ) -> anyhow::Result<Report> {
        // Its own deadline: the run's length plus room for connecting and closing, so even a
        // hung run does not leave it spinning for long.
        let max = load.duration + load.drain + HOG_MARGIN;
        let hog = Hog::start(threads, max)?;
        let r = self.run_beside(scenario, load, Some(&hog)).await;
        hog.stop().await;
        Ok(r)
    }

    async fn run_beside(&mut self, scenario: &str, load: Load, hog: Option<&Hog>) -> Report {
        let n = self.connections;
        let mut session = Session::connect(self.conn_specs()).await;
        let senders = load.senders.min(self.routing.possible_senders(n));
        let phase = Phase {
            senders: (0..senders).collect(),
            pace: load.pace,
            duration: load.duration,
            drain: load.drain,
            deliveries_per_message: self.routing.deliveries_per_message(n),
            text_bytes: load.text_bytes,
            limit: load.limit,
        };
        let cpu = |s: &Server| s.cpu_seconds().unwrap_or(0.0);
        let instances_before: Vec<f64> = self.servers().map(cpu).collect();
        let redis_before = self
            .backing
            .as_ref()
            .map_or(0.0, Backing::redis_cpu_seconds);
        let pg_before = self
            .backing
            .as_ref()
            .map_or(0.0, |_| Backing::postgres_cpu_seconds());
        let threads_before = self.server.thread_cpu_seconds();
        let own_before = crate::target::own_cpu_seconds();
        let hog_before = hog.map_or(0.0, Hog::cpu_seconds);
        let started = std::time::Instant::now();
        let mut report = session.run(&phase).await;
        let per_instance: Vec<f64> = self
            .servers()
            .zip(&instances_before)
            .map(|(s, before)| round3(cpu(s) - before))
            .collect();
        let cpu: f64 = per_instance.iter().sum();
        if let Some(b) = &self.backing {
            report.redis_cpu_s = round3(b.redis_cpu_seconds() - redis_before);
            report.postgres_cpu_s = round3(Backing::postgres_cpu_seconds() - pg_before);
            report.instance_cpu_s = per_instance;
        }
        let wall = started.elapsed().as_secs_f64().max(1e-3);
        report.client_cores = round3((crate::target::own_cpu_seconds() - own_before) / wall);
        if let Some(h) = hog {
            report.hog_threads = h.threads;
            report.hog_cores = round3((h.cpu_seconds() - hog_before) / wall);
        }
        for (name, after) in self.server.thread_cpu_seconds() {
            let used = after - threads_before.get(&name).copied().unwrap_or(0.0);
            if used > 0.0 {
                report.server_thread_cores.insert(name, round3(used / wall));
            }
        }
        report.server_cpu_s = round3(cpu);
        if report.delivered > 0 {
            report.server_cpu_us_per_delivery = round3(cpu * 1e6 / report.delivered as f64);
        }
        self.finish(&mut report, scenario);
        session.close().await;
        report
    }

    /// Opens the connections, holds them for `hold`, closes them: connect time and memory.
    pub async fn idle(&mut self, scenario: &str, hold: Duration) -> Report {
        let session = Session::connect(self.conn_specs()).await;
        tokio::time::sleep(hold).await;
        let mut report = session.idle_report(self.connections);
        self.finish(&mut report, scenario);
        session.close().await;
        report
    }

    fn finish(&mut self, report: &mut Report, scenario: &str) {
        report.target = match (&self.backing, self.others.len()) {
            (None, _) => self.server.kind.name().to_owned(),
            (Some(_), others) => format!("natter-pg-x{}", others + 1),
        };
        report.instances = 1 + self.others.len();
        report.scenario = scenario.to_owned();
        report.server_rss_kib = self.server.rss_kib().unwrap_or(0);
        if report.connections > 0 {
            let grown = report.server_rss_kib.saturating_sub(self.baseline_rss_kib);
            report.rss_per_connection_kib = round3(grown as f64 / report.connections as f64);
        }
        for server in std::iter::once(&mut self.server).chain(&mut self.others) {
            if !server.is_running() {
                report.errors += 1;
                eprintln!(
                    "natter-bench: the {} server died; its log:\n{}",
                    server.kind.name(),
                    server.log()
                );
            }
        }
    }

    /// Stops the server(s), and drops a cluster's database and Redis.
    pub async fn stop(self) {
        self.server.stop().await;
        for s in self.others {
            s.stop().await;
        }
        if let Some(b) = self.backing {
            b.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct messages make two deliveries; group messages one per connection.
    #[test]
    fn deliveries_per_routing() {
        assert_eq!(
            Routing::Group { users: 10 }.deliveries_per_message(100),
            100
        );
        assert_eq!(Routing::Pairs.deliveries_per_message(100), 2);
        assert_eq!(Routing::Sink.deliveries_per_message(101), 2);
        assert_eq!(Routing::Sink.possible_senders(101), 100);
        assert_eq!(Routing::Group { users: 10 }.users(4), 4);
    }
}
