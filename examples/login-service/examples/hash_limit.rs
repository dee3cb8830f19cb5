//! The argon2id limit of this machine for the login service: how many
//! password verifications per second it can do, measured alone, with the
//! service's exact parameters on as many threads as the service allows
//! hashes at once. `scripts/login-storm.sh` compares login throughput
//! against it.
//!
//! ```sh
//! cargo run --release -p login-service --example hash_limit -- --seconds 10
//! ```
//!
//! Prints one line, `permits=P threads=T seconds=S hashes=N per_sec=R`.
//! `--via-hasher` instead runs twice as many tasks as threads through the
//! service's own [`Hasher::verify`] (its threads, priority and permits, no
//! HTTP or database) and prints `via_hasher hashes=N per_sec=R`: the gap
//! between the two is the hasher's own overhead. `--tick-us N` gives that
//! `Hasher` the service's `--hashing-tick-us N`, to measure what the ticks
//! cost hashing alone.
//! The parameters are taken from a hash the service's own [`Hasher`] made
//! (argon2 verifies with the parameters stored in the hash), the thread
//! count from its permits, and each verification is the service's own
//! [`verify`] with memory reused from hash to hash as on its hashing
//! threads, so a change to any of them follows here by itself.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHash;
use login_service::Hasher;
use login_service::passwords::{Memory, verify};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hash_limit: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut seconds = 10.0_f64;
    let mut threads = None;
    let mut via_hasher = false;
    let mut tick = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or(format!("{name} needs a value"))?
                .parse::<f64>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--seconds" => seconds = value("--seconds")?,
            "--threads" => threads = Some(value("--threads")? as usize),
            "--via-hasher" => via_hasher = true,
            "--tick-us" => tick = Some(Duration::from_secs_f64(value("--tick-us")? / 1e6)),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (--seconds S, --threads T, --via-hasher, --tick-us N)"
                ));
            }
        }
    }
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err("--seconds must be positive".into());
    }

    if tick.is_some() && !via_hasher {
        return Err("--tick-us applies to --via-hasher only".into());
    }
    let hasher = Hasher::with_tick(tick).await;
    let permits = hasher.load().permits;
    let threads = threads.unwrap_or(permits).max(1);
    let hash = hasher.hash(PASSWORD.to_owned()).await;
    PasswordHash::new(&hash).map_err(|e| format!("the service's hash does not parse: {e}"))?;

    if via_hasher {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let done = std::sync::Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..threads * 2)
            .map(|_| {
                let (hasher, hash, stop, done) =
                    (hasher.clone(), hash.clone(), stop.clone(), done.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let ok = hasher.verify(PASSWORD.to_owned(), Some(hash.clone())).await;
                        assert!(ok, "the password verifies against its own hash");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await
                .map_err(|e| format!("a hashing task failed: {e}"))?;
        }
        let elapsed = start.elapsed();
        let hashes = done.load(Ordering::Relaxed);
        println!(
            "via_hasher hashes={hashes} per_sec={:.2}",
            hashes as f64 / elapsed.as_secs_f64()
        );
        return Ok(());
    }
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let elapsed = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                // Each thread reuses its memory from hash to hash, as the
                // service's hashing threads do.
                let mut memory = Memory::default();
                while !stop.load(Ordering::Relaxed) {
                    let ok = verify(PASSWORD.as_bytes(), &hash, &mut memory);
                    assert!(ok, "the password verifies against its own hash");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        // The scope joins the threads: hashes finishing after the stop
        // count, and so does the time they took.
        start
    })
    .elapsed();
    let hashes = done.load(Ordering::Relaxed);
    println!(
        "permits={permits} threads={threads} seconds={:.2} hashes={hashes} per_sec={:.2}",
        elapsed.as_secs_f64(),
        hashes as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
