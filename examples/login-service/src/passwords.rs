//! Password policy and argon2id hashing, off the async runtime and with
//! bounded concurrency so a login flood cannot exhaust memory
//! (each hash holds 19 MiB), at a lower priority than the runtime so a login
//! flood cannot starve the other routes of CPU.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroize;

use crate::preemption::PreemptionPoints;

/// Shorter passwords are refused at registration.
pub const MIN_CHARS: usize = 8;
/// Longer passwords are refused, never truncated; this also caps hashing cost.
pub const MAX_CHARS: usize = 128;

/// OWASP's first argon2id option: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Returns why a new password is unacceptable, if it is.
pub fn check_policy(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "password must have at least {MIN_CHARS} characters"
        ));
    }
    if chars > MAX_CHARS {
        return Err(format!("password must have at most {MAX_CHARS} characters"));
    }
    Ok(())
}

/// Hashes and verifies on `size` long-lived, niced threads of its own, at
/// most `size` at a time (one per core, at least two).
///
/// A permit is owned by the hashing thread, not by the request: a client
/// that hangs up drops its handler but not the hash it started, so the
/// permit must live exactly as long as the hash.
///
/// Registrations (`hash`) may hold at most `size - 1` of the permits, so at
/// least one is always left for logins (`verify`): a registration flood
/// slows registrations down, not logins, and the total (memory: 19 MiB per
/// hash) never exceeds `size`. One budget with a reserved share instead of
/// two separate pools keeps that total bound.
#[derive(Clone)]
pub struct Hasher {
    threads: Arc<Threads>,
    permits: Arc<Semaphore>,
    /// The share of `permits` registrations may hold.
    registrations: Arc<Semaphore>,
    size: usize,
    /// Verified against when the email is unknown, so that case costs the
    /// same as a wrong password.
    dummy_hash: Arc<str>,
    gauge: Arc<Gauge>,
    /// Runs on the blocking thread before each hash (tests hold hashes
    /// there to saturate the pools).
    #[cfg(test)]
    hook: Option<Arc<dyn Fn(Work) + Send + Sync>>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("size", &self.size)
            .field("gauge", &self.gauge)
            .finish_non_exhaustive()
    }
}

/// What a hash is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `verify`: logins.
    Login,
    /// `hash`: registrations and `users add`.
    Registration,
}

/// Hashes waiting for a permit and running right now, how many ever
/// started, and the most seen at once.
#[derive(Debug)]
struct Gauge {
    counts: tokio::sync::watch::Sender<Counts>,
    max_running: AtomicUsize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    waiting: usize,
    running: usize,
    started: usize,
}

impl Default for Gauge {
    fn default() -> Self {
        Self {
            counts: tokio::sync::watch::Sender::new(Counts::default()),
            max_running: AtomicUsize::new(0),
        }
    }
}

/// A snapshot of [`Hasher::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLoad {
    /// Hashes waiting for a permit now: the hashing queue's depth.
    pub waiting: usize,
    /// Hashes running now.
    pub running: usize,
    /// Hashes started so far.
    pub started: usize,
    /// The most hashes that have run at once.
    pub max_running: usize,
    /// The most that may run at once.
    pub permits: usize,
}

/// Counts one running hash for as long as it lives.
struct Running(Arc<Gauge>);

impl Running {
    fn start(gauge: &Arc<Gauge>) -> Self {
        gauge.counts.send_modify(|c| {
            c.running += 1;
            c.started += 1;
            gauge.max_running.fetch_max(c.running, Ordering::SeqCst);
        });
        Self(gauge.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.counts.send_modify(|c| c.running -= 1);
    }
}

/// Counts one hash waiting for its permit for as long as it waits; a
/// request dropped while waiting (the client hung up) leaves the queue.
struct Waiting(Arc<Gauge>);

impl Waiting {
    fn start(gauge: &Arc<Gauge>) -> Self {
        gauge.counts.send_modify(|c| c.waiting += 1);
        Self(gauge.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.counts.send_modify(|c| c.waiting -= 1);
    }
}

impl Hasher {
    /// Without preemption ticks (see [`Hasher::with_tick`]).
    pub async fn new() -> Self {
        Self::with_tick(None).await
    }

    /// With a ticker pinned to each CPU waking every `tick` while hashes
    /// fill every CPU (`None`: none): a woken request thread waits at most
    /// about `tick` behind a hash instead of up to a scheduler tick, for a
    /// few percent of hashing throughput (the `preemption` module).
    pub async fn with_tick(tick: Option<Duration>) -> Self {
        let permits = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let threads = Arc::new(Threads::start(permits, KEEP_MEMORY, tick));
        tracing::debug!(
            threads = permits,
            tickers = threads.points.tickers(),
            "password hashing started"
        );
        let dummy_hash = threads
            .run(|memory| {
                hash_in(
                    b"not a password anyone has: dummy for timing parity",
                    memory,
                )
            })
            .await;
        Self {
            threads,
            permits: Arc::new(Semaphore::new(permits)),
            registrations: Arc::new(Semaphore::new(permits - 1)),
            size: permits,
            dummy_hash: dummy_hash.into(),
            gauge: Arc::default(),
            #[cfg(test)]
            hook: None,
        }
    }

    /// How many hashes wait and run now, the most that ever ran at once,
    /// and the budget.
    pub fn load(&self) -> HashLoad {
        let counts = *self.gauge.counts.borrow();
        HashLoad {
            waiting: counts.waiting,
            running: counts.running,
            started: counts.started,
            max_running: self.gauge.max_running.load(Ordering::SeqCst),
            permits: self.size,
        }
    }

    /// Waits until no hash is running, e.g. for hashes whose requests were
    /// abandoned.
    pub async fn idle(&self) {
        let mut counts = self.gauge.counts.subscribe();
        let _ = counts.wait_for(|c| c.running == 0).await;
    }

    /// Waits until at least `n` hashes have started since this hasher was
    /// created.
    pub async fn started(&self, n: usize) {
        let mut counts = self.gauge.counts.subscribe();
        let _ = counts.wait_for(|c| c.started >= n).await;
    }

    fn start(&self, work: Work) -> Running {
        let running = Running::start(&self.gauge);
        #[cfg(test)]
        if let Some(hook) = &self.hook {
            hook(work);
        }
        let _ = work;
        running
    }

    /// Hashes a new password (registration, `users add`) within the
    /// registrations' share of the budget.
    pub async fn hash(&self, password: String) -> String {
        // Share first, then a permit: a registration waiting for a permit
        // already counts against the share, so registrations never hold or
        // queue for more than `size - 1` permits.
        let waiting = Waiting::start(&self.gauge);
        let share = self
            .registrations
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        drop(waiting);
        let this = self.clone();
        self.threads
            .run(move |memory| {
                let _held = (share, permit);
                let _running = this.start(Work::Registration);
                hash_in(password.as_bytes(), memory)
            })
            .await
    }

    /// `stored` is `None` for an unknown account: the dummy hash is checked
    /// instead and the answer is `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let waiting = Waiting::start(&self.gauge);
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        drop(waiting);
        let this = self.clone();
        let matches = self
            .threads
            .run(move |memory| {
                let _permit = permit;
                let _running = this.start(Work::Login);
                verify(password.as_bytes(), &hash, memory)
            })
            .await;
        known && matches
    }
}

/// How much nicer (lower in priority) than the thread that starts it a
/// hashing thread runs, on Linux.
///
/// The permits let hashes fill every core during a login storm; at the
/// same priority as the runtime's workers, a worker woken by a request
/// then waits for the scheduler to preempt a hash (milliseconds), which
/// both slows every other route and delays handing the next permit on.
/// Niced, hashing takes whatever CPU the runtime leaves and yields it
/// when a worker wakes. 10 rather than 19: against other processes'
/// work (without per-service cgroups) hashing keeps about a tenth of a
/// core's share instead of next to nothing.
const HASHING_NICENESS: i32 = 10;

/// How long a hashing thread keeps its argon2 memory (19 MiB) without
/// work before giving it back: a login storm reuses it hash after hash,
/// and an idle service does not hold `size` × 19 MiB.
const KEEP_MEMORY: Duration = Duration::from_secs(2);

/// A job for a hashing thread; it gets that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The hashing threads: as many as there are permits, started once, niced
/// once ([`HASHING_NICENESS`]), each keeping its argon2 memory between
/// hashes.
///
/// Long-lived threads rather than one per hash or tokio's blocking pool:
/// the priority stays with hashing instead of with a pooled thread that
/// may later run unrelated blocking work; a hash reuses memory that is
/// already mapped instead of allocating, zeroing and faulting in 19 MiB;
/// and no thread starts at full priority in the middle of a storm.
/// Concurrency is bounded by the permits, not here: with one thread per
/// permit a job never waits for a thread.
struct Threads {
    jobs: mpsc::Sender<Job>,
    /// Also held by each hashing thread, which marks its hashes there.
    points: Arc<PreemptionPoints>,
}

impl Threads {
    /// `size` threads, each keeping its memory for `keep` without work.
    fn start(size: usize, keep: Duration, tick: Option<Duration>) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let points = Arc::new(PreemptionPoints::start(size, tick));
        for _ in 0..size {
            let queue = queue.clone();
            let points = points.clone();
            std::thread::Builder::new()
                .name("argon2id".into())
                .spawn(move || {
                    lower_priority();
                    work_through(&queue, keep, &points);
                })
                .expect("cannot start a hashing thread");
        }
        Self { jobs, points }
    }

    /// Runs `work` on a hashing thread and waits for it without blocking
    /// the runtime.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            // The receiver is gone only if the request was dropped.
            let _ = tx.send(work(memory));
        });
        self.jobs
            .send(job)
            .expect("hashing threads live as long as their sender");
        rx.await.expect("the hash panicked")
    }
}

/// A hashing thread's loop: one job at a time until every [`Threads`] is
/// dropped. A job that panics loses its answer (the request gets an
/// error), not the thread.
fn work_through(queue: &Mutex<mpsc::Receiver<Job>>, keep: Duration, points: &PreemptionPoints) {
    let mut memory = Memory::default();
    loop {
        // The lock is held only while waiting, so an idle thread times out
        // and frees its memory in turn with the others.
        let next = match queue.lock() {
            Ok(queue) => queue.recv_timeout(keep),
            Err(_) => return,
        };
        match next {
            Ok(job) => {
                let _hashing = points.hashing();
                if catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
                    memory = Memory::default();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => memory = Memory::default(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// A hashing thread's argon2 working memory, grown to the largest
/// parameters it has hashed with.
///
/// Its blocks are derived from the last password hashed in it: the next
/// hash overwrites them all, and they are wiped before the memory goes back
/// to the allocator (when its thread idles, a hash panics or the thread
/// ends), so no password-derived block outlives its thread's use of it in
/// freed memory that a later allocation, a core dump or swap could show.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Drop for Memory {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Memory {
    /// Zeroes every block (volatile writes: not optimized away).
    fn wipe(&mut self) {
        self.0.iter_mut().for_each(Zeroize::zeroize);
    }

    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
    }
}

/// Lowers the calling thread's priority by [`HASHING_NICENESS`]; on Linux
/// a thread id names just that thread (elsewhere it would name the whole
/// process, so nothing is changed there). Lowering needs no privilege;
/// failing to is harmless, so it is only logged.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let thread = Some(rustix::thread::gettid());
        let result = getpriority_process(thread)
            .and_then(|nice| setpriority_process(thread, (nice + HASHING_NICENESS).min(19)));
        if let Err(error) = result {
            tracing::debug!(%error, "cannot lower the hashing thread's priority");
        }
    }
}

/// A new PHC string for `password`: argon2id with [`argon2`]'s parameters
/// and a fresh salt, computed in `memory`.
///
/// What argon2's `PasswordHasher` builds, except that the 19 MiB of blocks
/// are the hashing thread's, reused and wiped like a login's, instead of
/// allocated for this hash and freed unwiped.
fn hash_in(password: &[u8], memory: &mut Memory) -> String {
    let argon2 = argon2();
    let params = argon2.params().clone();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt
        .decode_b64(&mut salt_bytes)
        .expect("a generated salt decodes");
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = output_in(&argon2, password, raw_salt, output_len, memory)
        .expect("argon2 hashing with valid params cannot fail");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("static argon2 parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string()
}

/// Whether `password` matches the PHC string `hash`, computed in `memory`.
///
/// What argon2's `PasswordVerifier` does (algorithm, version, parameters
/// and salt from the hash; a constant-time comparison of the outputs),
/// except that the 19 MiB of blocks are the caller's to reuse instead of
/// allocated and zeroed for every hash. A hash that does not parse or names
/// parameters argon2 refuses verifies nothing.
pub fn verify(password: &[u8], hash: &str, memory: &mut Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    output_in(&argon2, password, salt, expected.len(), memory)
        // `Output`'s equality is constant-time.
        .is_ok_and(|computed| computed == expected)
}

/// argon2's output of `len` bytes for `password` and the raw `salt`,
/// computed in `memory` (grown to `argon2`'s parameters if need be).
fn output_in(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    len: usize,
    memory: &mut Memory,
) -> argon2::password_hash::Result<Output> {
    let blocks = memory.blocks(argon2.params());
    Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut *blocks)
            .map_err(Into::into)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counts_characters_not_bytes() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("éééééééé").is_ok());
        assert!(check_policy(&"x".repeat(MAX_CHARS)).is_ok());
        assert!(check_policy(&"x".repeat(MAX_CHARS + 1)).is_err());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hasher = Hasher::new().await;
        let hash = hasher.hash("correct horse".into()).await;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
        );
        assert!(!hasher.verify("correct horsE".into(), Some(hash)).await);
    }

    #[tokio::test]
    async fn no_truncation_long_passwords_differ_at_the_end() {
        let hasher = Hasher::new().await;
        let a = format!("{}a", "p".repeat(100));
        let b = format!("{}b", "p".repeat(100));
        let hash = hasher.hash(a.clone()).await;
        assert!(hasher.verify(a, Some(hash.clone())).await);
        assert!(!hasher.verify(b, Some(hash)).await);
    }

    /// Issue 7.4: a registration flood holds at most its own share of the
    /// hashing budget; a login still gets a slot.
    #[tokio::test]
    async fn logins_get_a_hash_slot_while_registrations_saturate_theirs() {
        use std::sync::Mutex;
        use std::sync::mpsc;
        let (entered_tx, entered_rx) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut hasher = Hasher::new().await;
        hasher.hook = Some(Arc::new(move |work| {
            if work == Work::Registration {
                let _ = entered_tx.send(());
                // Held until the test ends (the sender is dropped).
                let _ = release_rx.lock().unwrap().recv();
            }
        }));
        let permits = hasher.load().permits;
        let flood: Vec<_> = (0..permits + 2)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("registration".into()).await })
            })
            .collect();
        // Once one is held, every registration has asked for its permit.
        let mut entered_rx = entered_rx;
        entered_rx.recv().await.unwrap();
        let login = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            hasher.verify("a login".into(), None),
        )
        .await;
        assert!(login.is_ok(), "the login waited behind the registrations");
        assert!(hasher.load().running < permits);
        drop(release_tx);
        for registration in flood {
            registration.await.unwrap();
        }
        assert!(hasher.load().max_running <= permits, "{:?}", hasher.load());
    }

    /// The queue depth: hashes waiting for a permit, until they get one or
    /// their request is dropped.
    #[tokio::test]
    async fn load_counts_hashes_waiting_for_a_permit() {
        use std::sync::Mutex;
        use std::sync::mpsc;
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut hasher = Hasher::new().await;
        // Every hash is held until the test releases it.
        hasher.hook = Some(Arc::new(move |_| {
            let _ = release_rx.lock().unwrap().recv();
        }));
        let permits = hasher.load().permits;
        let logins: Vec<_> = (0..permits + 2)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.verify("a login".into(), None).await })
            })
            .collect();
        let mut counts = hasher.gauge.counts.subscribe();
        let held = |c: &Counts| c.running == permits && c.waiting == 2;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), counts.wait_for(held))
            .await
            .expect("every permit taken and two logins queued");
        let load = hasher.load();
        assert_eq!((load.running, load.waiting), (permits, 2), "{load:?}");
        // A queued login whose client hangs up leaves the queue. Aborting a
        // running one would not stop its hash; only queued ones are aborted
        // here, and which tasks those are is unknown: abort them all and
        // count what is left queued.
        for login in &logins {
            login.abort();
        }
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            counts.wait_for(|c| c.waiting == 0),
        )
        .await
        .expect("aborted logins leave the queue");
        assert_eq!(hasher.load().running, permits);
        for _ in 0..permits {
            release_tx.send(()).unwrap();
        }
        hasher.idle().await;
        let load = hasher.load();
        assert_eq!((load.running, load.waiting), (0, 0), "{load:?}");
        assert_eq!(load.started, permits);
    }

    /// Hashes run below the priority of the thread that asked for them,
    /// so request handling preempts them.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_niced() {
        use rustix::process::getpriority_process;
        let ours = getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let threads = Threads::start(2, KEEP_MEMORY, None);
        let theirs = threads
            .run(|_| getpriority_process(Some(rustix::thread::gettid())).unwrap())
            .await;
        assert_eq!(theirs, (ours + HASHING_NICENESS).min(19));
        assert!(theirs > ours || ours == 19, "{ours} -> {theirs}");
    }

    #[tokio::test]
    async fn unknown_account_never_verifies_even_with_the_dummy_password() {
        let hasher = Hasher::new().await;
        let dummy = "not a password anyone has: dummy for timing parity".to_owned();
        assert!(!hasher.verify(dummy, None).await);
    }

    /// `verify` with reused memory answers exactly what argon2's own
    /// `PasswordVerifier` answers: every algorithm and version, other
    /// parameters and output lengths, right and wrong passwords, one
    /// memory reused from larger to smaller parameters and back, and
    /// strings that are not hashes at all.
    #[test]
    fn verify_agrees_with_argon2s_own_verifier() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut hashes = Vec::new();
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d] {
            for version in [Version::V0x13, Version::V0x10] {
                for (m, t, p, len) in [(256, 2, 1, 32), (64, 1, 2, 16), (512, 3, 1, 64)] {
                    let params = Params::new(m, t, p, Some(len)).unwrap();
                    let salt = SaltString::generate(&mut OsRng);
                    let hash = Argon2::new(algorithm, version, params)
                        .hash_password(b"correct horse", &salt)
                        .unwrap()
                        .to_string();
                    hashes.push(hash);
                }
            }
        }
        hashes.push(hash_in(b"correct horse", &mut Memory::default()));
        let mut memory = Memory::default();
        for hash in &hashes {
            let parsed = PasswordHash::new(hash).unwrap();
            for password in [
                &b"correct horse"[..],
                b"correct horsE",
                b"",
                b"correct horse ",
            ] {
                let argon2_says = Argon2::default().verify_password(password, &parsed).is_ok();
                assert_eq!(verify(password, hash, &mut memory), argon2_says, "{hash}");
                assert_eq!(argon2_says, password == b"correct horse");
            }
        }
        let service = hashes.last().unwrap();
        let mut tampered = service.clone();
        let last = tampered.pop();
        tampered.push(if last == Some('A') { 'Q' } else { 'A' });
        for broken in [
            "",
            "plain text",
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1,x=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            &tampered,
        ] {
            assert!(!verify(b"correct horse", broken, &mut memory), "{broken}");
        }
        assert!(verify(b"correct horse", service, &mut memory));
    }

    /// A memory's blocks hold password-derived data after a hash and none
    /// after `wipe`, which its `drop` runs before the blocks are freed; a
    /// wiped memory still hashes correctly (every block is rewritten).
    #[test]
    fn memory_is_wiped_before_it_is_freed() {
        let nonzero = |memory: &Memory| {
            memory
                .0
                .iter()
                .filter(|block| block.as_ref().iter().any(|&word| word != 0))
                .count()
        };
        let mut memory = Memory::default();
        let phc = hash_in(b"correct horse", &mut memory);
        assert_eq!(memory.0.len(), 19 * 1024);
        assert!(nonzero(&memory) > 19 * 1024 - 8, "{}", nonzero(&memory));
        memory.wipe();
        assert_eq!(memory.0.len(), 19 * 1024);
        assert_eq!(nonzero(&memory), 0);
        assert!(verify(b"correct horse", &phc, &mut memory));
        assert!(!verify(b"correct horsE", &phc, &mut memory));
    }

    /// A hash counts as running for the preemption points' tickers while
    /// its job runs, and only then.
    #[tokio::test]
    async fn hashes_wake_the_preemption_points_while_they_run() {
        let threads = Threads::start(2, KEEP_MEMORY, None);
        let points = threads.points.clone();
        assert_eq!(threads.run(move |_| points.running()).await, 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while threads.points.running() != 0 {
            assert!(std::time::Instant::now() < deadline, "the hash never ended");
            tokio::task::yield_now().await;
        }
    }

    /// `--hashing-tick-us` reaches the tickers: none without it, one per
    /// CPU the process may use with it, when the permits can fill them.
    #[tokio::test]
    #[cfg(target_os = "linux")]
    async fn a_hasher_with_a_tick_has_a_ticker_per_cpu() {
        let cpus = crate::preemption::allowed_cpus().len();
        assert_eq!(Hasher::new().await.threads.points.tickers(), 0);
        let ticking = Hasher::with_tick(Some(Duration::from_micros(500))).await;
        if ticking.size >= cpus {
            assert_eq!(ticking.threads.points.tickers(), cpus);
        }
    }

    /// A job that panics fails its own request only: the thread lives on
    /// and takes the next job.
    #[tokio::test]
    async fn a_panicking_hash_does_not_cost_a_thread() {
        let threads = Arc::new(Threads::start(1, KEEP_MEMORY, None));
        let panicking = threads.clone();
        let failed = tokio::spawn(async move {
            panicking
                .run(|_| -> usize { panic!("a hash that panics") })
                .await
        })
        .await;
        assert!(failed.unwrap_err().is_panic());
        assert_eq!(threads.run(|_| 7).await, 7);
    }

    /// A thread without work gives its argon2 memory back; under load it
    /// keeps it from one hash to the next.
    #[tokio::test]
    async fn idle_hashing_threads_give_their_memory_back() {
        let busy = Threads::start(1, Duration::from_secs(3600), None);
        let hash = hash_in(b"correct horse", &mut Memory::default());
        let len = |memory: &mut Memory| memory.0.len();
        assert!(busy.run(move |m| verify(b"correct horse", &hash, m)).await);
        assert_eq!(busy.run(len).await, 19 * 1024);

        let idle = Threads::start(1, Duration::from_millis(1), None);
        let hash = hash_in(b"correct horse", &mut Memory::default());
        assert!(idle.run(move |m| verify(b"correct horse", &hash, m)).await);
        let freed = async {
            while idle.run(len).await != 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), freed)
            .await
            .expect("an idle thread frees its memory");
    }
}
