//! The hashing threads: a few long-lived threads that run argon2, behind a bounded queue,
//! so a flood of hashes gets `busy` instead of tying up tokio's blocking pool.

use std::sync::{Arc, Mutex, OnceLock};

use crate::error::ServerError;

/// Threads that run argon2: half the cores (at least one, at most four), so a flood of
/// hashes leaves the other half to reads and deliveries. Measured on 2 cores, 1,000
/// registrations 500 at once (three runs each): with two hashing threads another user's
/// read p99 went from 0.8–1.3 ms to 5.3–8.2 ms and it got 1,000–2,700 reads done in 1.5 s;
/// with one, 0.7–4.2 ms and 4,300–9,100 reads, while as many registrations got through (80–
/// 103 in 2 s either way: the two threads were competing for the same cores).
fn hasher_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4))
}

/// Hashes waiting or running beyond which new ones are refused with `busy`: at ~40 ms a
/// hash on one thread, the last in line waits about 2.6 s.
const HASH_QUEUE: usize = 64;

type HashJob = Box<dyn FnOnce() + Send>;

/// Runs `f` on one of the [`hasher_threads`] long-lived threads and waits for it without
/// holding a thread. Why not on tokio's blocking pool: argon2 needs 19 MiB of working
/// memory, which each hashing thread keeps (see `password::BLOCKS`); on whichever of the
/// pool's many threads that would be ~19 MiB per thread (an idle server once reached 650 MB
/// after 40 registrations), and a flood of hashes would occupy the pool that database reads
/// need.
pub(super) async fn on_hasher<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServerError> {
    static ADMITTED: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASH_QUEUE);
    static POOL: OnceLock<Option<std::sync::mpsc::Sender<HashJob>>> = OnceLock::new();
    // The slot goes with the job, not with this future: a caller that hangs up must not
    // free its place while its hash still waits for a thread.
    let slot = ADMITTED.try_acquire().map_err(|_| ServerError::Busy)?;
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..hasher_threads() {
            let rx = Arc::clone(&rx);
            let started = std::thread::Builder::new()
                .name(format!("natter-hasher-{i}"))
                .spawn(move || {
                    loop {
                        // Held only while waiting for the next job, not while running it.
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = job else { return };
                        // A panicking job must not take the thread (and every later
                        // hash) with it; its caller sees the reply channel close.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if started.is_err() {
                return None;
            }
        }
        Some(tx)
    });
    let failed = || ServerError::Internal("hashing thread failed".into());
    let Some(pool) = pool else {
        // No threads could be started: hash on the blocking pool rather than a worker.
        return tokio::task::spawn_blocking(move || {
            let _slot = slot;
            f()
        })
        .await
        .map_err(|_| failed());
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _slot = slot;
        let _ = done_tx.send(f());
    });
    pool.send(job).map_err(|_| failed())?;
    done_rx.await.map_err(|_| failed())
}
