//! The Redis mirror (`revoke::redis`) behind a real axum server on
//! 127.0.0.1, against real Redis servers: the machine's (`REDIS_URL`, under
//! a key prefix of the test's own) and redis-servers each test starts on a
//! free loopback port, so it can cut, pause, stop and restart them without
//! disturbing anyone. `#[ignore]`d without a Redis; `.ci/run` runs them
//! with `REDIS_URL` set.
//!
//! Waiting for an event polls with a deadline; the only time asserted is
//! the documented staleness bound, and only as "no request sent after the
//! bound was accepted", which holds however slow the machine is.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::revoke::redis::{RedisPublisher, RedisRevocations};
use tower_jwt_auth::revoke::{Revocation, StalePolicy};

use common::{AUDIENCE, ISSUER, SECRET, claims, hs256, now};

const HEARTBEAT: Duration = Duration::from_millis(100);
const MAX_STALENESS: Duration = Duration::from_millis(1500);
/// How long to wait for anything that should happen in milliseconds.
const PATIENCE: Duration = Duration::from_secs(15);

fn shared_redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL: these tests need a Redis server (see .ci/run)")
}

/// A key prefix no other test run uses.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tower-jwt-auth-test:{}:{nanos}", std::process::id())
}

/// A redis-server of the test's own, without persistence: a restart loses
/// everything, as a crashed cache would.
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
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while self.command::<String>(&mut redis::cmd("PING")).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Runs one command on a connection of its own.
    fn command<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        cmd.query(&mut conn)
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

fn mirror(url: &str, prefix: &str, policy: StalePolicy) -> RedisRevocations {
    RedisRevocations::builder(url)
        .key_prefix(prefix)
        .heartbeat(HEARTBEAT)
        .max_staleness(MAX_STALENESS)
        .stale_policy(policy)
        .start()
        .unwrap()
}

/// A resource server whose `/me` needs a live token, on a random port.
async fn serve(revocations: RedisRevocations) -> String {
    let auth = JwtAuthLayer::<serde_json::Value>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .revocation(revocations)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(|| async { "hello" }))
        .route_layer(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/me")
}

fn token(jti: &str, sub: &str, sid: &str) -> String {
    let mut claims = claims();
    claims["jti"] = json!(jti);
    claims["sub"] = json!(sub);
    claims["sid"] = json!(sid);
    hs256(&claims)
}

async fn status(url: &str, token: &str) -> StatusCode {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            response.headers().contains_key("retry-after"),
            "503 without Retry-After"
        );
    }
    response.status()
}

/// Polls until `url` answers `want` for `token`; panics after [`PATIENCE`].
async fn eventually(url: &str, token: &str, want: StatusCode, case: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = status(url, token).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: still {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The documented bound: after `published + MAX_STALENESS` no request is
/// accepted; and within [`PATIENCE`] the answer is 401.
async fn refused_within_the_bound(url: &str, token: &str, published: Instant, case: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sent = Instant::now();
        match status(url, token).await {
            StatusCode::UNAUTHORIZED => return,
            StatusCode::OK => assert!(
                sent < published + MAX_STALENESS,
                "{case}: accepted {:?} after publication",
                sent - published
            ),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{case}: never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
#[ignore = "needs Redis: REDIS_URL (run by .ci/run)"]
async fn a_revocation_published_once_reaches_every_mirror_within_the_bound() {
    let url = shared_redis_url();
    let prefix = unique_prefix();
    let publisher = RedisPublisher::with_key_prefix(&url, &prefix).unwrap();
    // Published before the mirrors start: they load it from the snapshot.
    publisher
        .publish(&Revocation::token(ISSUER, "early", now() + 600))
        .await
        .unwrap();
    let mirrors = [
        mirror(&url, &prefix, StalePolicy::FailClosed),
        mirror(&url, &prefix, StalePolicy::FailClosed),
    ];
    let mut servers = Vec::new();
    for mirror in &mirrors {
        assert!(mirror.wait_current(PATIENCE).await, "{mirror:?}");
        servers.push(serve(mirror.clone()).await);
    }
    let early = token("early", "ada", "s-0");
    let by_jti = token("t-1", "ada", "s-1");
    let by_sid = token("t-2", "ada", "s-2");
    let by_sub = token("t-3", "bob", "s-3");
    for server in &servers {
        assert_eq!(status(server, &early).await, StatusCode::UNAUTHORIZED);
        for live in [&by_jti, &by_sid, &by_sub] {
            assert_eq!(status(server, live).await, StatusCode::OK);
        }
    }

    // Whatever else lands in the keys (another writer's bug) is skipped,
    // not fatal: what follows still arrives.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let not_utf8: &[u8] = &[0xff, 0xfe, b'{'];
    for (field, value) in [
        ("r", &b"not json"[..]),
        ("r", br#"{"kind":"all"}"#),
        ("x", b"y"),
        ("r", not_utf8),
    ] {
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}:events"))
            .arg("*")
            .arg(field)
            .arg(value)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    for member in [&b"{broken"[..], not_utf8] {
        let _: i64 = redis::cmd("ZADD")
            .arg(format!("{prefix}:state"))
            .arg(now() + 600)
            .arg(member)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let late = mirror(&url, &prefix, StalePolicy::FailClosed);
    assert!(late.wait_current(PATIENCE).await, "{late:?}");

    for (revocation, token, case) in [
        (
            Revocation::token(ISSUER, "t-1", now() + 600),
            &by_jti,
            "jti",
        ),
        (
            Revocation::session(ISSUER, "s-2", now() + 600),
            &by_sid,
            "sid",
        ),
        // Every token of bob's issued up to now: logged out everywhere.
        (
            Revocation::subject(ISSUER, "bob", now() + 1, now() + 600),
            &by_sub,
            "sub",
        ),
    ] {
        let published = Instant::now();
        publisher.publish(&revocation).await.unwrap();
        for server in &servers {
            refused_within_the_bound(server, token, published, case).await;
        }
    }
    // Other tokens are untouched; a mirror that loaded the malformed
    // snapshot holds the same.
    for (jti, sub, sid) in [("t-1", "x", "x"), ("x", "x", "s-2"), ("x", "bob", "x")] {
        let mut claims = tower_jwt_auth::RegisteredClaims::default();
        claims.iss = Some(ISSUER.into());
        claims.jti = Some(jti.into());
        claims.sub = Some(sub.into());
        claims.sid = Some(sid.into());
        claims.iat = Some(now() - 10);
        let deadline = Instant::now() + PATIENCE;
        while !late.mirror().contains(&claims) {
            assert!(Instant::now() < deadline, "{jti} {sub} {sid}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for server in &servers {
        assert_eq!(
            status(server, &token("t-4", "ada", "s-4")).await,
            StatusCode::OK
        );
    }
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:events"))
        .arg(format!("{prefix}:state"))
        .query_async(&mut raw)
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs Redis: REDIS_URL (run by .ci/run)"]
async fn a_cut_a_pause_and_a_restart_fail_closed_and_recover_without_a_restart() {
    let _ = shared_redis_url();
    let mut redis = OwnRedis::start();
    let prefix = "tower-jwt-auth:revocations";
    let publisher = RedisPublisher::new(&redis.url()).unwrap();
    let closed = mirror(&redis.url(), prefix, StalePolicy::FailClosed);
    let open = mirror(&redis.url(), prefix, StalePolicy::FailOpen);
    assert!(closed.wait_current(PATIENCE).await);
    assert!(open.wait_current(PATIENCE).await);
    let server = serve(closed.clone()).await;
    let lenient = serve(open.clone()).await;
    let live = token("live", "ada", "s-1");
    assert_eq!(status(&server, &live).await, StatusCode::OK);

    // A cut connection: the mirror reconnects, resynchronises, and what was
    // published meanwhile arrives.
    let resyncs = closed.resyncs();
    let killed: i64 = redis
        .command(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
        .unwrap();
    assert!(killed >= 2, "killed {killed} connections");
    let cut = token("cut", "ada", "s-1");
    let published = Instant::now();
    publisher
        .publish(&Revocation::token(ISSUER, "cut", now() + 600))
        .await
        .unwrap();
    refused_within_the_bound(&server, &cut, published, "published across a cut").await;
    let deadline = Instant::now() + PATIENCE;
    while closed.resyncs() == resyncs {
        assert!(
            Instant::now() < deadline,
            "no resynchronisation after the cut"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status(&server, &live).await, StatusCode::OK);

    // Redis stops answering (connections stay open): stale after the
    // bound, so 503; the fail-open mirror keeps accepting; both keep
    // refusing what they hold. Answers again: current again.
    let _: () = redis
        .command(redis::cmd("CLIENT").arg("PAUSE").arg(4_000).arg("ALL"))
        .unwrap();
    eventually(&server, &live, StatusCode::SERVICE_UNAVAILABLE, "paused").await;
    assert!(!closed.mirror().is_current());
    assert_eq!(status(&lenient, &live).await, StatusCode::OK);
    assert_eq!(status(&server, &cut).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&lenient, &cut).await, StatusCode::UNAUTHORIZED);
    eventually(&server, &live, StatusCode::OK, "pause over").await;

    // Redis restarts empty: 503 while down, current again once it is back;
    // what the mirror held stays revoked though Redis forgot it.
    let down = Instant::now();
    redis.stop();
    let resyncs = closed.resyncs();
    loop {
        let sent = Instant::now();
        match status(&server, &live).await {
            StatusCode::SERVICE_UNAVAILABLE => break,
            StatusCode::OK => assert!(sent < down + MAX_STALENESS, "accepted while down"),
            other => panic!("while down: {other}"),
        }
        assert!(Instant::now() < down + PATIENCE, "never unavailable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&server, &cut).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&lenient, &live).await, StatusCode::OK);
    redis.restart();
    eventually(&server, &live, StatusCode::OK, "restarted").await;
    assert!(closed.resyncs() > resyncs);
    assert_eq!(status(&server, &cut).await, StatusCode::UNAUTHORIZED);
    assert!(!publisher.has_state().await.unwrap(), "restart kept data?");

    // And it follows what is published on the new server.
    let published = Instant::now();
    publisher
        .publish(&Revocation::token(ISSUER, "live", now() + 600))
        .await
        .unwrap();
    refused_within_the_bound(&server, &live, published, "after the restart").await;
    refused_within_the_bound(&lenient, &live, published, "after the restart").await;
}

/// Redis's own count of the commands it ran, by name.
fn command_stats(redis: &OwnRedis) -> Vec<(String, u64)> {
    let info: String = redis
        .command(redis::cmd("INFO").arg("commandstats"))
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs Redis: REDIS_URL (run by .ci/run)"]
async fn requests_cost_no_redis_command() {
    let _ = shared_redis_url();
    let redis = OwnRedis::start();
    let revocations = RedisRevocations::builder(redis.url()).start().unwrap();
    assert!(revocations.wait_current(PATIENCE).await);
    let server = serve(revocations.clone()).await;
    let live = token("live", "ada", "s-1");

    let _: () = redis
        .command(redis::cmd("CONFIG").arg("RESETSTAT"))
        .unwrap();
    let started = Instant::now();
    const REQUESTS: u64 = 2_000;
    let client = reqwest::Client::new();
    let mut accepted = 0;
    for _ in 0..REQUESTS {
        let response = client.get(&server).bearer_auth(&live).send().await.unwrap();
        accepted += u64::from(response.status() == StatusCode::OK);
    }
    let elapsed = started.elapsed();
    let stats = command_stats(&redis);
    assert_eq!(accepted, REQUESTS);
    // Our own INFO is counted once it has run; CONFIG RESETSTAT is not.
    let mirror_commands: u64 = stats
        .iter()
        .filter(|(name, _)| name != "info" && name != "config|resetstat")
        .map(|(_, calls)| calls)
        .sum();
    eprintln!(
        "{REQUESTS} requests in {elapsed:?}: Redis ran {mirror_commands} commands for the mirror ({stats:?})"
    );
    assert!(
        stats
            .iter()
            .all(|(name, _)| ["xread", "info", "config|resetstat"].contains(&name.as_str())),
        "{stats:?}"
    );
    // One XREAD per heartbeat (1 s), whatever the traffic.
    let heartbeats = elapsed.as_secs() + 2;
    assert!(
        mirror_commands <= heartbeats,
        "{mirror_commands} commands for {REQUESTS} requests in {elapsed:?}"
    );
}
