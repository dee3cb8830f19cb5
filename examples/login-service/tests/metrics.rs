//! The opt-in metrics listener, on the real binary: `--metrics-listen`
//! serves Prometheus text on a second port with the service's counters and
//! the library's; without it, the process listens on one port only.
//!
//! The binary runs as a child process: the metrics recorder is per
//! process, so each test gets counts of its own.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{Backend, Binary, PASSWORD, TestDb, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The binary, serving; killed when dropped.
struct Running(Binary);

impl Running {
    fn start(db: &TestDb, args: &[&str]) -> Self {
        Self(Binary::spawn(
            Command::new(env!("CARGO_BIN_EXE_login-service"))
                .args(["--listen", "127.0.0.1:0", "--issuer", "http://login.test"])
                .args(args)
                .env("DATABASE_URL", &db.url)
                .env("RUST_LOG", "login_service=info")
                .env_remove("METRICS_LISTEN")
                .env_remove("LISTEN")
                .env_remove("KEY_ENCRYPTION_KEY_FILE")
                .stdin(Stdio::null())
                .stderr(Stdio::inherit()),
        ))
    }

    /// The `address=` of the first log line containing `message`, waiting
    /// for it to be printed.
    async fn address_logged(&mut self, message: &str) -> SocketAddr {
        self.0.address_logged(message).await
    }

    /// TCP sockets this process is listening on (Linux: from /proc).
    #[cfg(target_os = "linux")]
    fn listening_sockets(&self) -> usize {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.0.child.id())).unwrap();
        let inodes: Vec<String> = fds
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_str()?;
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_owned(),
                )
            })
            .collect();
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .map(|row| {
                        row.split_whitespace()
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
            // Columns: sl local rem st … inode (10th); st 0A is LISTEN.
            .filter(|row| row.len() > 9 && row[3] == "0A" && inodes.contains(&row[9]))
            .count()
    }
}

/// Prometheus text: `name{labels}` (labels sorted) to value, and the
/// `# TYPE` of each metric.
fn parse(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let mut values = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let series = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        values.insert(series, value.parse().unwrap());
    }
    (values, types)
}

async fn post(url: String, body: Value) -> reqwest::Response {
    client().post(url).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listener_counts_logins_throttles_registrations_and_the_layer() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut service = Running::start(
        &db,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--login-failures-per-account",
            "1",
            "--registrations-per-address",
            "1",
        ],
    );
    let metrics = service.address_logged("metrics listening").await;
    let base = service.address_logged("login-service listening").await;
    let url = |path: &str| format!("http://{base}{path}");
    let ada = json!({"email": "ada@example.com", "password": PASSWORD});
    let wrong = json!({"email": "ada@example.com", "password": "not the password"});

    let registered = post(url("/auth/register"), ada.clone()).await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let bob = json!({"email": "bob@example.com", "password": PASSWORD});
    let refused = post(url("/auth/register"), bob).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);

    let login = post(url("/auth/login"), ada).await;
    assert_eq!(login.status(), StatusCode::OK);
    let tokens: Value = login.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    // One failure is allowed and starts the lockout; the next is throttled.
    let failed = post(url("/auth/login"), wrong.clone()).await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let throttled = post(url("/auth/login"), wrong).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);

    // The same token three times: verified once, then answered by the
    // protected routes' verified-token cache.
    for _ in 0..3 {
        let me = client().get(url("/auth/me")).bearer_auth(token);
        assert_eq!(me.send().await.unwrap().status(), StatusCode::OK);
    }
    let anonymous = client().get(url("/auth/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let scrape = client()
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        scrape.headers()
    );
    let text = scrape.text().await.unwrap();
    let (values, types) = parse(&text);
    let value = |series: &str| {
        *values
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };
    assert_eq!(value("login_service_login_successes_total"), 1.0);
    assert_eq!(
        value(r#"login_service_login_failures_total{reason="bad_credentials"}"#),
        1.0
    );
    assert_eq!(
        value(r#"login_service_login_failures_total{reason="throttled"}"#),
        1.0
    );
    assert_eq!(
        value(r#"login_service_throttled_total{action="login"}"#),
        1.0
    );
    assert_eq!(
        value(r#"login_service_throttled_total{action="registration"}"#),
        1.0
    );
    assert_eq!(value("login_service_registrations_total"), 1.0);
    // Registration, the successful login and the failed one; the throttled
    // attempt was refused before hashing.
    assert_eq!(value("login_service_password_hashes_total"), 3.0);
    assert_eq!(value("login_service_password_hashes_waiting"), 0.0);
    assert_eq!(value("login_service_password_hashes_running"), 0.0);
    assert!(value("login_service_password_hash_permits") >= 2.0);
    assert_eq!(
        value(r#"tower_jwt_auth_requests_allowed_total{token="verified"}"#),
        3.0
    );
    assert_eq!(value("tower_jwt_auth_token_cache_misses_total"), 1.0);
    assert_eq!(value("tower_jwt_auth_token_cache_hits_total"), 2.0);
    assert_eq!(
        value(
            r#"tower_jwt_auth_requests_refused_total{kind="missing_token",reason="missing_token"}"#
        ),
        1.0
    );
    for (name, kind) in [
        ("login_service_login_successes_total", "counter"),
        ("login_service_login_failures_total", "counter"),
        ("login_service_password_hashes_waiting", "gauge"),
        ("tower_jwt_auth_requests_allowed_total", "counter"),
        ("tower_jwt_auth_requests_refused_total", "counter"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}"
        );
    }

    // The metrics listener serves /metrics only, and the API does not.
    let other = client().get(format!("http://{metrics}/auth/me")).send();
    assert_eq!(other.await.unwrap().status(), StatusCode::NOT_FOUND);
    let on_api = client().get(url("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    #[cfg(target_os = "linux")]
    assert_eq!(service.listening_sockets(), 2);

    drop(service);
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_no_metrics_listener_is_opened() {
    let help = Command::new(env!("CARGO_BIN_EXE_login-service"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("--metrics-listen <ADDR>") && help.contains("METRICS_LISTEN"),
        "{help}"
    );

    let db = TestDb::new(Backend::Sqlite).await;
    let mut service = Running::start(&db, &[]);
    let base = service.address_logged("login-service listening").await;
    let health = client()
        .get(format!("http://{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        !service
            .0
            .seen
            .iter()
            .any(|line| line.contains("metrics listening")),
        "{:?}",
        service.0.seen
    );
    #[cfg(target_os = "linux")]
    assert_eq!(service.listening_sockets(), 1);

    drop(service);
    db.remove().await;
}
