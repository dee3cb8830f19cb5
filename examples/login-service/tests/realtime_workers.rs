//! `--realtime-workers` on the real binary, read back from the kernel
//! (`/proc/PID/task/*/stat`): with it the runtime's workers are `SCHED_RR`
//! at priority 1 and no other thread is real-time; without it none is;
//! where real-time priorities are refused the service says so and serves.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Binary, client};

const SCHED_OTHER: u32 = 0;
const SCHED_RR: u32 = 2;

/// The binary on a SQLite file in its own directory, both gone on drop.
struct Service {
    process: Binary,
    _dir: TempDir,
}

/// A directory removed on drop, writable by anyone (the service may run
/// as `nobody`).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Service {
    /// The service on a fresh SQLite file, its command line prefixed by
    /// `wrapper` (a program that runs the rest), `REALTIME_WORKERS` set to
    /// `realtime`.
    fn start(name: &str, wrapper: &[&str], realtime: bool) -> Self {
        let dir = TempDir::new(name);
        let mut binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_login-service"));
        if !wrapper.is_empty() {
            // The wrapper may run it as another user, who may not reach the
            // build directory: a link (or copy) in the open temporary one.
            let reachable = dir.0.join("login-service");
            if std::fs::hard_link(&binary, &reachable).is_err() {
                std::fs::copy(&binary, &reachable).unwrap();
            }
            binary = reachable;
        }
        let binary = binary.to_str().unwrap();
        let (program, args) = match wrapper.split_first() {
            Some((program, rest)) => (*program, [rest, &[binary]].concat()),
            None => (binary, Vec::new()),
        };
        let process = Binary::spawn(
            Command::new(program)
                .args(args)
                .args(["--listen", "127.0.0.1:0", "--issuer", "http://login.test"])
                .arg("--database-url")
                .arg(format!("sqlite://{}", dir.0.join("login.db").display()))
                .env("REALTIME_WORKERS", realtime.to_string())
                .env("RUST_LOG", "login_service=info")
                .env_remove("DATABASE_URL")
                .env_remove("LISTEN")
                .env_remove("METRICS_LISTEN")
                .env_remove("KEY_ENCRYPTION_KEY_FILE")
                .stdin(Stdio::null())
                .stderr(Stdio::inherit()),
        );
        Self { process, _dir: dir }
    }

    /// Waits (30 s at most) for a log line containing `message`.
    async fn logged(&mut self, message: &str) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.process.logged(message))
            .await
            .unwrap_or_else(|_| panic!("no {message:?} in {:#?}", self.process.seen))
    }

    /// Whether `GET /.well-known/jwks.json` answers 200.
    async fn answers(&mut self) -> bool {
        let listening = self.process.address_logged("login-service listening");
        let address = tokio::time::timeout(Duration::from_secs(30), listening)
            .await
            .unwrap_or_else(|_| panic!("never listening: {:#?}", self.process.seen));
        client()
            .get(format!("http://{address}/.well-known/jwks.json"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    }

    /// The `--realtime-workers` warnings printed so far.
    fn warnings(&self) -> usize {
        let seen = &self.process.seen;
        seen.iter().filter(|line| line.contains(WARNING)).count()
    }

    /// Each thread of the service (the wrapper `exec`s it): its name, its
    /// scheduling policy and its real-time priority.
    fn threads(&self) -> Vec<(String, u32, u32)> {
        let tasks = Path::new("/proc")
            .join(self.process.child.id().to_string())
            .join("task");
        let mut threads = Vec::new();
        for task in std::fs::read_dir(tasks).unwrap() {
            let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
                continue; // a thread that just ended
            };
            let open = stat.find('(').unwrap();
            let close = stat.rfind(')').unwrap();
            let name = stat[open + 1..close].to_owned();
            // Fields from the third on; rt_priority is the 40th, policy the 41st.
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            threads.push((
                name,
                fields[41 - 3].parse().unwrap(),
                fields[40 - 3].parse().unwrap(),
            ));
        }
        threads
    }

    /// Waits (30 s at most) until `done` holds of the threads.
    async fn threads_until(&self, what: &str, done: impl Fn(&[(String, u32, u32)]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let threads = self.threads();
            if done(&threads) {
                return;
            }
            assert!(Instant::now() < deadline, "never {what}: {threads:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const WARNING: &str = "workers stay in the fair class";

/// Whether every thread is in the fair class.
fn all_fair(threads: &[(String, u32, u32)]) -> bool {
    threads.iter().all(|t| t.1 == SCHED_OTHER)
}

fn workers(threads: &[(String, u32, u32)]) -> impl Iterator<Item = &(String, u32, u32)> {
    threads
        .iter()
        .filter(|(name, ..)| name == "tokio-rt-worker")
}

#[tokio::test]
async fn with_the_flag_workers_are_realtime_and_nothing_else_is() {
    let mut service = Service::start("rt-workers-on", &[], true);
    assert!(service.answers().await);
    if !login_service::realtime::allowed() {
        service.logged(WARNING).await;
        assert!(all_fair(&service.threads()));
        return;
    }
    service
        .threads_until("every worker SCHED_RR 1", |threads| {
            workers(threads).count() > 0 && workers(threads).all(|t| (t.1, t.2) == (SCHED_RR, 1))
        })
        .await;
    let threads = service.threads();
    for (name, policy, _) in threads
        .iter()
        .filter(|(name, ..)| name != "tokio-rt-worker")
    {
        assert_eq!(*policy, SCHED_OTHER, "{name}: {threads:#?}");
    }
    assert!(
        threads.iter().any(|(name, ..)| name == "argon2id"),
        "{threads:#?}"
    );
    assert_eq!(service.warnings(), 0);
}

#[tokio::test]
async fn without_the_flag_no_thread_is_realtime() {
    let mut service = Service::start("rt-workers-off", &[], false);
    assert!(service.answers().await);
    let threads = service.threads();
    assert!(workers(&threads).count() > 0, "{threads:#?}");
    assert!(all_fair(&threads), "{threads:#?}");
    assert_eq!(service.warnings(), 0);
}

/// As an unprivileged user with `RLIMIT_RTPRIO` 0 (what a container
/// without the right gives): one warning, every thread in the fair class,
/// and the service serves. Needs root to become that user, and util-linux's
/// `setpriv` and `prlimit`; skipped, saying why, without them.
#[tokio::test]
async fn refused_it_warns_and_serves() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"));
    let tools = ["setpriv", "prlimit"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if !root || !tools {
        eprintln!("skipped: needs root (to become nobody) and setpriv + prlimit");
        return;
    }
    let unprivileged = [
        "prlimit",
        "--rtprio=0",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let mut service = Service::start("rt-workers-refused", &unprivileged, true);
    assert!(service.answers().await);
    let warning = service.logged(WARNING).await;
    assert!(warning.contains("Operation not permitted"), "{warning}");
    assert_eq!(service.warnings(), 1);
    let threads = service.threads();
    assert!(all_fair(&threads), "{threads:#?}");
}
