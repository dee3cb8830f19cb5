//! Revocations shared through Redis, end to end: the login service (in this
//! process) publishes logouts, revoked refresh-token families and "log out
//! everywhere"; two resource servers, each a separate process running the
//! library's layer with `RedisRevocations`, refuse them within the
//! documented bound. `#[ignore]`d without `REDIS_URL`; `.ci/run` runs them.
//!
//! The resource servers are this test binary itself, run again with
//! [`CHILD`] set: [`resource_server_process`] is their entry point, not a
//! test of its own.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{Backend, PASSWORD, Service, TestDb};
use login_service::config::DEFAULT_REVOCATION_MAX_STALENESS_SECS;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::revoke::redis::RedisRevocations;

/// Set (to the login service's URL) in a resource-server child's
/// environment, beside `REDIS_URL` and [`PREFIX`].
const CHILD: &str = "LOGIN_SERVICE_TEST_RESOURCE_SERVER_ISSUER";
const PREFIX: &str = "LOGIN_SERVICE_TEST_REDIS_KEY_PREFIX";
/// The mirrors' staleness bound: the longest a revocation may be
/// accepted after it was published.
const BOUND: Duration = Duration::from_secs(DEFAULT_REVOCATION_MAX_STALENESS_SECS);
const PATIENCE: Duration = Duration::from_secs(20);

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL: these tests need a Redis server (see .ci/run)")
}

fn unique_prefix() -> String {
    format!("login-service-test:{}", uuid::Uuid::new_v4().simple())
}

/// The entry point of a resource-server child process (see the module
/// docs); returns at once in the test run itself.
#[test]
#[ignore = "the resource-server child of the Redis tests, not a test"]
fn resource_server_process() {
    let Ok(issuer) = std::env::var(CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let jwks = reqwest::get(format!("{issuer}/.well-known/jwks.json"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let revocations = RedisRevocations::builder(redis_url())
            .key_prefix(std::env::var(PREFIX).unwrap())
            .start()
            .unwrap();
        assert!(revocations.wait_current(PATIENCE).await);
        let auth = JwtAuthLayer::<serde_json::Value>::builder()
            .jwks_str(&jwks)
            .issuer(issuer.as_str())
            .audience("login-service")
            .revocation(revocations)
            .build()
            .unwrap();
        let app = Router::new()
            .route("/me", get(|| async { "hello" }))
            .route_layer(auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening http://{}/me", listener.local_addr().unwrap());
        // The parent holds our stdin: when it goes, so do we.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            std::process::exit(0);
        });
        axum::serve(listener, app).await.unwrap();
    });
}

/// A resource server in a process of its own.
struct ResourceServer {
    child: Child,
    url: String,
}

impl ResourceServer {
    fn spawn(issuer: &str, prefix: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["resource_server_process", "--exact", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, issuer)
            .env(PREFIX, prefix)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let url = stdout
            .lines()
            .map(Result::unwrap)
            // libtest may have written "test … " on the same line first.
            .find_map(|line| Some(line.split_once("listening ")?.1.to_owned()))
            .expect("the resource server did not start");
        ResourceServer { child, url }
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn status(url: &str, token: &str) -> StatusCode {
    common::client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// No request sent later than `BOUND` after `published` is accepted, and
/// within [`PATIENCE`] the token is refused as revoked.
async fn refused_within_the_bound(url: &str, token: &str, published: Instant, case: &str) {
    loop {
        let sent = Instant::now();
        match status(url, token).await {
            StatusCode::UNAUTHORIZED => return,
            StatusCode::OK => assert!(
                sent < published + BOUND,
                "{case}: {url} accepted {:?} after publication",
                sent - published
            ),
            _ => {}
        }
        assert!(
            published.elapsed() < PATIENCE,
            "{case}: {url} never refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tokens(pair: &serde_json::Value) -> (String, String) {
    (
        pair["access_token"].as_str().unwrap().to_owned(),
        pair["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: REDIS_URL (run by .ci/run)"]
async fn a_logout_reaches_two_resource_servers_in_other_processes() {
    let url = redis_url();
    let prefix = unique_prefix();
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start_with(&db, |c| {
        c.redis_url = Some(url.clone());
        c.redis_key_prefix = prefix.clone();
    })
    .await;
    let mut servers = Vec::new();
    for _ in 0..2 {
        // Blocking reads of the child's output: off the runtime's workers,
        // which serve the login service the child asks for its keys.
        let (issuer, prefix) = (svc.base.clone(), prefix.clone());
        let spawned = tokio::task::spawn_blocking(move || ResourceServer::spawn(&issuer, &prefix));
        servers.push(spawned.await.unwrap());
    }
    let me = svc.url("/auth/me");
    let everywhere: Vec<&str> = servers
        .iter()
        .map(|s| s.url.as_str())
        .chain([me.as_str()])
        .collect();

    svc.register("ada@example.com", PASSWORD).await;
    svc.register("bob@example.com", PASSWORD).await;
    let (ada1, _) = tokens(&svc.login("ada@example.com", PASSWORD).await);
    let (ada2, ada2_refresh) = tokens(&svc.login("ada@example.com", PASSWORD).await);
    let (bob1, _) = tokens(&svc.login("bob@example.com", PASSWORD).await);
    let (bob2, _) = tokens(&svc.login("bob@example.com", PASSWORD).await);
    for url in &everywhere {
        for token in [&ada1, &ada2, &bob1, &bob2] {
            assert_eq!(status(url, token).await, StatusCode::OK, "{url}");
        }
    }

    // Logout: the token is refused everywhere; the other session lives.
    let published = Instant::now();
    let logout = svc
        .call_bearer(Method::POST, "/auth/logout", &ada1, None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(&me, &ada1).await, StatusCode::UNAUTHORIZED);
    for url in &everywhere {
        refused_within_the_bound(url, &ada1, published, "logout").await;
        assert_eq!(status(url, &ada2).await, StatusCode::OK);
    }

    // A reused refresh token revokes its family: its access token too.
    let refreshed = svc
        .post_json("/auth/refresh", json!({"refresh_token": ada2_refresh}))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let (ada3, _) = tokens(&refreshed.json().await.unwrap());
    let published = Instant::now();
    let reused = svc
        .post_json("/auth/refresh", json!({"refresh_token": ada2_refresh}))
        .await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    for url in &everywhere {
        refused_within_the_bound(url, &ada2, published, "family").await;
        refused_within_the_bound(url, &ada3, published, "family").await;
        assert_eq!(status(url, &bob1).await, StatusCode::OK);
    }

    // Log out everywhere: every token of bob's, from any session.
    let published = Instant::now();
    let all = svc
        .call_bearer(Method::POST, "/auth/logout-all", &bob1, None)
        .await;
    assert_eq!(all.status(), StatusCode::NO_CONTENT);
    let marked_at = login_service::store::now();
    for url in &everywhere {
        refused_within_the_bound(url, &bob1, published, "everywhere").await;
        refused_within_the_bound(url, &bob2, published, "everywhere").await;
    }
    // Tokens issued from the next second on are bob's new sessions.
    while login_service::store::now() <= marked_at {
        assert!(published.elapsed() < PATIENCE);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (bob3, _) = tokens(&svc.login("bob@example.com", PASSWORD).await);
    for url in &everywhere {
        assert_eq!(status(url, &bob3).await, StatusCode::OK, "{url}");
    }

    drop(servers);
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:events"))
        .arg(format!("{prefix}:state"))
        .query(&mut conn)
        .unwrap();
    svc.stop().await;
    db.remove().await;
}

/// A redis-server of the test's own, without persistence.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = OwnRedis { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: REDIS_URL (run by .ci/run)"]
async fn a_redis_restart_fails_closed_then_sql_republishes_what_redis_lost() {
    let _ = redis_url();
    let mut redis = OwnRedis::start();
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start_with(&db, |c| c.redis_url = Some(redis.url())).await;
    svc.register("ada@example.com", PASSWORD).await;
    let (gone, _) = tokens(&svc.login("ada@example.com", PASSWORD).await);
    let (live, _) = tokens(&svc.login("ada@example.com", PASSWORD).await);
    let logout = svc
        .call_bearer(Method::POST, "/auth/logout", &gone, None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let me = svc.url("/auth/me");
    assert_eq!(status(&me, &live).await, StatusCode::OK);

    // Down: the service's own protected routes fail closed, with
    // Retry-After, once its mirror is stale; the revoked token stays 401.
    let down = Instant::now();
    redis.stop();
    loop {
        let sent = Instant::now();
        let response = common::client()
            .get(&me)
            .bearer_auth(&live)
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                break;
            }
            StatusCode::OK => assert!(sent < down + BOUND, "accepted while stale"),
            other => panic!("{other}"),
        }
        assert!(down.elapsed() < PATIENCE, "never unavailable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&me, &gone).await, StatusCode::UNAUTHORIZED);

    // Back, empty: current again without a restart, and the logout that
    // Redis forgot is republished from SQL for mirrors that never saw it.
    redis.restart();
    let back = Instant::now();
    loop {
        if status(&me, &live).await == StatusCode::OK {
            break;
        }
        assert!(back.elapsed() < PATIENCE, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let newcomer = RedisRevocations::builder(redis.url()).start().unwrap();
    loop {
        let mut claims = tower_jwt_auth::RegisteredClaims::default();
        let payload = common::claims_of(&gone);
        claims.iss = Some(payload["iss"].as_str().unwrap().to_owned());
        claims.jti = Some(payload["jti"].as_str().unwrap().to_owned());
        if newcomer.mirror().contains(&claims) {
            break;
        }
        assert!(back.elapsed() < PATIENCE, "never republished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    svc.stop().await;
    db.remove().await;
}
