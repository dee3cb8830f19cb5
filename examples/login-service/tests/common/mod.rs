//! Starts the real service in-process on 127.0.0.1:0, on a fresh SQLite file
//! or a fresh PostgreSQL schema, and talks to it over HTTP.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use login_service::{App, Config};
use reqwest::{Client, Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$scenario(Backend)` as `sqlite::$scenario` and, ignored unless
/// asked for, as `postgres::$scenario`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::common::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs DATABASE_URL"]
                async fn $scenario() {
                    if super::common::postgres_url().is_none() {
                        eprintln!("skipped: DATABASE_URL is not a postgres:// URL");
                        return;
                    }
                    super::$scenario(super::common::Backend::Postgres).await;
                }
            )+
        }
    };
}

/// The password every test account is registered with.
pub const PASSWORD: &str = "correct horse battery staple";

/// The seconds of a 429's `Retry-After`.
pub fn retry_after_of(response: &Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The JSON in part `index` of a compact JWT: 0 the header, 1 the claims.
pub fn token_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub fn claims_of(token: &str) -> Value {
    token_part(token, 1)
}

pub fn header_of(token: &str) -> Value {
    token_part(token, 0)
}

pub fn postgres_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
}

fn unique(prefix: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("{prefix}_{secs}_{}", uuid::Uuid::new_v4().simple())
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    /// The key-encryption key file: PostgreSQL needs one; SQLite uses the
    /// one created beside its file (`None`).
    pub kek: Option<PathBuf>,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Schema { admin_url: String, schema: String },
}

impl TestDb {
    /// A connection of the test's own to the service's database, to move
    /// stored timestamps into the past instead of waiting for them.
    pub async fn connect(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.url).await.expect("connect")
    }

    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let path =
                    std::env::temp_dir().join(format!("{}.db", unique("login_service_test")));
                Self {
                    url: format!("sqlite://{}", path.display()),
                    kek: None,
                    cleanup: Cleanup::File(path),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_url().expect("DATABASE_URL");
                let schema = unique("ls_test");
                sqlx::any::install_default_drivers();
                let pool = sqlx::AnyPool::connect(&admin_url)
                    .await
                    .expect("connect to PostgreSQL");
                // The name is ours (prefix, time, UUID hex): nothing to inject.
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                // Every connection of the service then lives in the schema:
                // tests running in parallel on one database never meet.
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                let kek = std::env::temp_dir().join(format!("{schema}.kek"));
                login_service::kek::Kek::generate_file(&kek).expect("create KEK file");
                Self {
                    url: format!("{admin_url}{sep}options[search_path]={schema}"),
                    kek: Some(kek),
                    cleanup: Cleanup::Schema { admin_url, schema },
                }
            }
        }
    }

    pub async fn remove(self) {
        if let Some(kek) = &self.kek {
            let _ = std::fs::remove_file(kek);
        }
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm", ".kek"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Schema { admin_url, schema } => {
                if let Ok(pool) = sqlx::AnyPool::connect(&admin_url).await {
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                            .execute(&pool)
                            .await;
                    pool.close().await;
                }
            }
        }
    }
}

/// Schemas of runs that panicked before cleaning up, once an hour old.
async fn drop_abandoned_schemas(pool: &sqlx::AnyPool) {
    use sqlx::Row;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rows = sqlx::query(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'ls_test_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for row in rows {
        let name: String = row.get("schema_name");
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        let well_formed = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if well_formed && created.is_some_and(|t| t + 3600 < now) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                .execute(pool)
                .await;
        }
    }
}

/// A running service.
pub struct Service {
    pub base: String,
    pub client: Client,
    pub app: Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

impl Service {
    pub async fn start(db: &TestDb) -> Self {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = Config::new(db.url.clone(), base.clone());
        config.max_connections = 4;
        config.key_encryption_key_file = db.kek.clone();
        tweak(&mut config);
        let app = Arc::new(App::build(config).await.expect("build app"));
        let serving = app.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
        });
        Self {
            base,
            client: client(),
            app,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A GET without credentials.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A GET without credentials, answered with JSON (status unchecked).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> T {
        self.get(path).await.json().await.unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.call_bearer(Method::GET, path, token, None).await
    }

    /// `method path` with a bearer token and, if given, a JSON body.
    pub async fn call_bearer(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    pub async fn get_bearer_abs(&self, url: &str, token: &str) -> Response {
        self.client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Value {
        let response = self
            .post_json(
                "/auth/register",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// Logs in and returns the token response.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .post_json("/auth/login", json!({"email": email, "password": password}))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        response.json().await.unwrap()
    }

    /// Logs in and returns just the access token.
    pub async fn access_token(&self, email: &str, password: &str) -> String {
        let tokens = self.login(email, password).await;
        tokens["access_token"].as_str().unwrap().to_owned()
    }
}

/// Status, then the JSON error body, asserting it has the documented shape.
pub async fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    (status, body)
}

/// Creates an account through the `users add` command line, reading the
/// password from stdin as an operator would.
pub fn cli_add_user(database_url: &str, email: &str, password: &str, role: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_login-service"))
        .args(["users", "add", "--email", email, "--role", role])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run login-service users add");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "users add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A program (the service's binary) running as a child process, its
/// stdout read line by line as it prints; killed when dropped.
pub struct Binary {
    pub child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The lines read so far.
    pub seen: Vec<String>,
}

impl Binary {
    /// Spawns `command` with its stdout piped here.
    pub fn spawn(command: &mut std::process::Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the program");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line containing `message`, waiting for it to be printed;
    /// fails if the program exits first.
    pub async fn logged(&mut self, message: &str) -> String {
        loop {
            if let Some(line) = self.seen.iter().find(|line| line.contains(message)) {
                return line.clone();
            }
            let line = self.lines.recv().await.unwrap_or_else(|| {
                panic!(
                    "exited before printing {message:?}: {:?}; printed {:#?}",
                    self.child.try_wait(),
                    self.seen
                )
            });
            self.seen.push(line);
        }
    }

    /// The `address=` of the first line containing `message`.
    pub async fn address_logged(&mut self, message: &str) -> std::net::SocketAddr {
        let line = self.logged(message).await;
        let address = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        address.parse().unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
