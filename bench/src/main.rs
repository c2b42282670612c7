//! `natter-bench`: flags, the runtime, and a deadline on everything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use natter_bench::load::Pace;
use natter_bench::scenario::{Load, Prepared, Routing};
use natter_bench::suite::{self, SuiteOptions};
use natter_bench::target::{self, Kind, ServerOptions};
use natter_bench::{ceiling, client, hog, table};

/// Load generator for natter-server, measured against a minimal broadcast server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoutingArg {
    /// Group messages to every connection.
    Group,
    /// 50 pairs exchanging direct messages (one user per connection).
    Pairs,
    /// Every connection sends direct messages to the last one.
    Sink,
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The natter-server binary.
    #[arg(long, default_value_os_t = target::default_server_binary())]
    server_bin: PathBuf,
    /// Frames queued per connection before a slow reader is closed (both servers; natter's
    /// `--queue-capacity`).
    #[arg(long, default_value_t = 1024)]
    queue_capacity: usize,
}

impl ServerArgs {
    fn natter(&self) -> ServerOptions {
        ServerOptions {
            binary: self.server_bin.clone(),
            max_connections: 10_000,
            queue_capacity: self.queue_capacity,
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// One run; prints one JSON line.
    Run {
        /// Which server to start and measure.
        #[arg(long, value_enum, default_value = "natter")]
        target: Kind,
        #[command(flatten)]
        server: ServerArgs,
        /// WebSocket connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Of those, how many send.
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Messages per second per sender (exclusive with --window).
        #[arg(long, conflicts_with = "window")]
        rate: Option<f64>,
        /// Unacknowledged messages per sender, sending as fast as echoes come back.
        #[arg(long)]
        window: Option<usize>,
        /// Seconds of sending.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Longest wait, in seconds, for the last deliveries after sending stops.
        #[arg(long, default_value_t = 2.0)]
        drain: f64,
        /// Who receives what.
        #[arg(long, value_enum, default_value = "group")]
        routing: RoutingArg,
        /// Accounts the connections share, for group routing.
        #[arg(long, default_value_t = 10)]
        users: usize,
        /// Message text length, padding included.
        #[arg(long, default_value_t = 64)]
        text_bytes: usize,
        /// Only open the connections and hold them this many seconds (no sending).
        #[arg(long)]
        idle: Option<f64>,
        /// Exit non-zero unless something was delivered.
        #[arg(long)]
        require_deliveries: bool,
        /// Run a CPU hog of this many busy threads beside the run (0: one per core).
        #[arg(long)]
        hog: Option<usize>,
    },
    /// The standard scenarios against natter and the ceiling; JSON lines, then a table.
    Suite {
        #[command(flatten)]
        server: ServerArgs,
        /// The natter client binary, for the `tail` row.
        #[arg(long, default_value_os_t = target::sibling_binary("natter"))]
        client_bin: PathBuf,
        /// Seconds per fan-out step.
        #[arg(long, default_value_t = 3.0)]
        step_seconds: f64,
        /// Seconds of the other runs.
        #[arg(long, default_value_t = 5.0)]
        run_seconds: f64,
        /// Connections in the idle scenario.
        #[arg(long, default_value_t = 10_000)]
        idle_connections: usize,
        /// Skip the client row.
        #[arg(long)]
        no_client: bool,
        /// Only the listed targets.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "natter,ceiling"
        )]
        targets: Vec<Kind>,
        /// Busy threads of the CPU hog beside the fan-out's last run (default: one per core).
        #[arg(long)]
        hog_threads: Option<usize>,
        /// Skip the cluster (natter on PostgreSQL + Redis, 1–3 instances; needs psql, a
        /// PostgreSQL at NATTER_BENCH_POSTGRES_URL and redis-server).
        #[arg(long)]
        no_cluster: bool,
    },
    /// The ceiling: a minimal broadcast server (prints its address on stdout).
    CeilingServer {
        /// Where to listen; must be a loopback address.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: std::net::SocketAddr,
        /// Frames queued per connection before a slow reader is closed.
        #[arg(long, default_value_t = 1024)]
        queue_capacity: usize,
    },
    /// The CPU hog natter-bench runs beside a run: busy threads until --seconds pass or
    /// stdin ends (natter-bench holds the other end of the pipe).
    #[command(hide = true)]
    Hog {
        /// Busy threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Longest it runs.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
}

/// Nothing the bench does may outlive this.
const SUITE_DEADLINE: Duration = Duration::from_secs(1800);

fn main() -> ExitCode {
    let args = Args::parse();
    // reqwest, as the workspace builds it (the client's TLS features), needs a process-wide
    // crypto provider even for plain http://; without one it panics building a client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The hog needs no runtime: its runtime's worker threads would only sit idle beside it.
    if let Cmd::Hog { threads, seconds } = args.command {
        hog::spin(threads, seconds);
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("natter-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(args));
    // Reader tasks of the last session may still be parked; don't wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("natter-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::CeilingServer {
            bind,
            queue_capacity,
        } => {
            if !bind.ip().is_loopback() {
                anyhow::bail!("the ceiling only listens on loopback addresses, not {bind}");
            }
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            let addr = listener.local_addr()?;
            println!("ceiling listening on {addr}");
            ceiling::serve(listener, queue_capacity).await?;
            Ok(ExitCode::SUCCESS)
        }
        // Handled in `main`, before a runtime exists.
        Cmd::Hog { .. } => Ok(ExitCode::SUCCESS),
        Cmd::Run {
            target,
            server,
            connections,
            senders,
            rate,
            window,
            duration,
            drain,
            routing,
            users,
            text_bytes,
            idle,
            require_deliveries,
            hog,
        } => {
            let pace = match (rate, window) {
                (Some(r), _) if r > 0.0 => Pace::Rate(r),
                (_, Some(w)) if w > 0 => Pace::Window(w),
                (None, None) if idle.is_some() => Pace::Window(1),
                _ => anyhow::bail!("give --rate (> 0) or --window (> 0)"),
            };
            let routing = match routing {
                RoutingArg::Group => Routing::Group { users },
                RoutingArg::Pairs => Routing::Pairs,
                RoutingArg::Sink => Routing::Sink,
            };
            let deadline = Duration::from_secs_f64(duration + drain + idle.unwrap_or(0.0) + 300.0);
            let report = tokio::time::timeout(deadline, async {
                let mut p = Prepared::start(target, &server.natter(), routing, connections).await?;
                let r = match idle {
                    Some(hold) => p.idle("idle", Duration::from_secs_f64(hold)).await,
                    None => {
                        let load = Load {
                            senders,
                            pace,
                            duration: Duration::from_secs_f64(duration),
                            drain: Duration::from_secs_f64(drain),
                            text_bytes,
                            limit: None,
                        };
                        match hog {
                            Some(0) => p.run_with_hog("run", load, hog::threads_per_core()).await?,
                            Some(t) => p.run_with_hog("run", load, t).await?,
                            None => p.run("run", load).await,
                        }
                    }
                };
                p.stop().await;
                anyhow::Ok(r)
            })
            .await
            .context("the run overran its deadline")??;
            println!("{}", report.to_json());
            if require_deliveries && report.delivered == 0 {
                eprintln!("natter-bench: nothing was delivered");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Suite {
            server,
            client_bin,
            step_seconds,
            run_seconds,
            idle_connections,
            no_client,
            targets,
            hog_threads,
            no_cluster,
        } => {
            let o = SuiteOptions {
                natter: server.natter(),
                client: client_bin,
                step_seconds,
                run_seconds,
                idle_connections,
                client_burst: 100_000,
                hog_threads: hog_threads.unwrap_or_else(hog::threads_per_core),
            };
            let table = tokio::time::timeout(SUITE_DEADLINE, async {
                let mut natter = suite::Results::default();
                let mut ceiling = suite::Results::default();
                for t in &targets {
                    let r = suite::run_target(*t, &o).await;
                    match t {
                        Kind::Natter => natter = r,
                        Kind::Ceiling => ceiling = r,
                    }
                }
                let checked = if no_client {
                    Err("--no-client".to_owned())
                } else {
                    client::check_tail(&o.client).await
                };
                let client_row = match checked {
                    Ok(()) => {
                        let r = client::measure_tail(&o.client, &o.natter, o.client_burst).await;
                        if let client::ClientResult::Measured {
                            messages,
                            messages_per_s,
                        } = &r
                        {
                            println!(
                                "{{\"target\":\"natter\",\"scenario\":\"client-tail\",\"messages\":{messages},\"messages_per_s\":{messages_per_s}}}"
                            );
                        }
                        r
                    }
                    Err(why) => client::ClientResult::Skipped(why),
                };
                let cluster = if no_cluster {
                    suite::ClusterResults {
                        skipped: Some("--no-cluster".into()),
                        ..Default::default()
                    }
                } else {
                    suite::run_cluster(&o).await
                };
                let mut out = table::markdown(&natter, &ceiling, &client_row);
                out.push('\n');
                out.push_str(&natter_bench::cluster_table::markdown(&natter, &cluster));
                out
            })
            .await
            .context("the suite overran its deadline")?;
            println!();
            print!("{table}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
