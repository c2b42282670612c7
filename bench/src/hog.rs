//! A CPU hog beside a run: busy-looping threads in a child process, standing in for what
//! shares this machine with natter (another engineer's `cargo build`).
//!
//! Why a child process (this binary's hidden `hog` subcommand) and not threads of our own:
//! its CPU must not count as the load generator's (`client_cores` reads `/proc/self`), and
//! the scheduler must treat it as one more process at the same priority, as it treats a
//! build. Why one thread per core by default: a build runs one job per core, so every core
//! is contended and no server thread can escape to an idle one; a single thread would leave
//! a core's worth of slack on two cores and mostly measure where the scheduler put it.
//!
//! It cannot outlive natter-bench: [`Hog`] kills it when stopped or dropped; the hog exits
//! at its own deadline (`--seconds`) whatever happens; and it exits when its stdin, a pipe
//! whose only writer is natter-bench, reaches EOF, which happens whenever natter-bench
//! exits, even by SIGKILL, when no drop runs.

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, ChildStdin, Command};

/// A running hog, killed when dropped.
pub struct Hog {
    child: Child,
    pid: u32,
    /// Busy threads it runs.
    pub threads: usize,
    // Held only so the hog's stdin stays open: dropping it is the hog's signal to stop.
    _stdin: ChildStdin,
}

impl Hog {
    /// Starts `natter-bench hog` with `threads` busy threads, ending by itself after `max`.
    pub fn start(threads: usize, max: Duration) -> anyhow::Result<Hog> {
        let exe = std::env::current_exe().context("finding natter-bench's own path")?;
        let mut child = Command::new(exe)
            .arg("hog")
            .arg("--threads")
            .arg(threads.to_string())
            .arg("--seconds")
            .arg(format!("{:.1}", max.as_secs_f64()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the CPU hog")?;
        let pid = child.id().context("the CPU hog exited at once")?;
        let stdin = child.stdin.take().context("the CPU hog's stdin")?;
        Ok(Hog {
            child,
            pid,
            threads,
            _stdin: stdin,
        })
    }

    /// CPU seconds the hog has used so far (0 once it is gone).
    pub fn cpu_seconds(&self) -> f64 {
        crate::target::cpu_seconds_of(self.pid).unwrap_or(0.0)
    }

    /// Kills the hog and waits (bounded) for it to be gone.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// One busy thread per core of this machine.
pub fn threads_per_core() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The `hog` subcommand: spins `threads` threads until `seconds` have passed or stdin ends.
pub fn spin(threads: usize, seconds: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Blocks in read; EOF (or an error) means the parent is gone or wants us to stop.
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            stop.store(true, Ordering::Relaxed);
        });
    }
    let spinners: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || busy(&stop, deadline))
        })
        .collect();
    for s in spinners {
        let _ = s.join();
    }
}

/// Pure computation, checking the flag and the clock every million iterations (about a
/// millisecond), so stopping is prompt and the loop never sleeps.
fn busy(stop: &AtomicBool, deadline: Instant) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.rotate_left(5) ^ 0x2545_f491_4f6c_dd1d);
        }
    }
    std::hint::black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The busy loop ends at its deadline, and at once when told to stop.
    #[test]
    fn busy_loop_is_bounded() {
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        busy(&stop, t + Duration::from_millis(50));
        assert!(t.elapsed() < Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        busy(&stop, t + Duration::from_secs(3600));
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
