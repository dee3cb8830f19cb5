//! DPoP replays refused across processes sharing a Redis
//! (`dpop::RedisReplayStore`), and a Redis that cannot be reached.
//!
//! Two instances of one service behind a load balancer: this test's own
//! server and a second process (this test binary run again, as the
//! `replay_instance` test, with the instance's settings in its
//! environment), both configured with the same external base and the same
//! Redis key prefix, unique to the run. The same proof is sent to both.
//! `#[ignore]`d without `REDIS_URL`; the unreachable-Redis tests need no
//! Redis and always run.

mod common;

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Extension, Router};
use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::dpop::{Dpop, DpopProof, RedisReplayStore};

use common::dpop::{Proof, TestClock, proof_key, token};
use common::{AUDIENCE, ISSUER, SECRET, User};

/// What both instances are reached at, behind the (imaginary) balancer.
const PUBLIC: &str = "https://api.example.com";
/// The second process's settings.
const INSTANCE_REDIS_URL: &str = "DPOP_REPLAY_INSTANCE_REDIS_URL";
const INSTANCE_PREFIX: &str = "DPOP_REPLAY_INSTANCE_PREFIX";
/// What the second process prints once it listens.
const LISTENING: &str = "dpop replay instance listening on ";
const PATIENCE: Duration = Duration::from_secs(30);

fn shared_redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL: these tests need a Redis server (see .ci/run)")
}

/// A key prefix no other test run uses.
fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tower-jwt-auth-test:dpop:{}:{nanos}", std::process::id())
}

/// One instance: DPoP required, proofs for [`PUBLIC`], replays recorded
/// in `store`; `GET /movies/{id}` answers the proof's thumbprint.
fn instance(store: RedisReplayStore) -> Router {
    let auth = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .dpop(
            Dpop::required()
                .external_base(PUBLIC)
                .unwrap()
                .replay_store(store),
        )
        .build()
        .unwrap();
    Router::new()
        .route(
            "/movies/{id}",
            get(|Extension(proof): Extension<DpopProof>| async move { proof.jkt }),
        )
        .route_layer(auth)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The second process: serves one instance until it is killed. Does
/// nothing unless started by [`replays_are_refused_across_two_processes`].
#[tokio::test]
#[ignore = "the second process of replays_are_refused_across_two_processes"]
async fn replay_instance() {
    let (Ok(url), Ok(prefix)) = (
        std::env::var(INSTANCE_REDIS_URL),
        std::env::var(INSTANCE_PREFIX),
    ) else {
        return;
    };
    let store = RedisReplayStore::with_key_prefix(&url, &prefix).unwrap();
    let base = serve(instance(store)).await;
    println!("{LISTENING}{base}");
    std::future::pending::<()>().await;
}

/// Starts [`replay_instance`] in a process of its own; returns it and the
/// base URL it serves.
async fn second_process(url: &str, prefix: &str) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["replay_instance", "--exact", "--ignored", "--nocapture"])
        .env(INSTANCE_REDIS_URL, url)
        .env(INSTANCE_PREFIX, prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(base) = line.strip_prefix(LISTENING) {
                return base.to_owned();
            }
        }
        panic!("the second process ended without listening");
    })
    .await
    .expect("the second process did not start listening");
    (child, base)
}

async fn send(base: &str, token: &str, proof: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/movies/1"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap()
}

fn assert_replay_refused(response: &reqwest::Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_dpop_proof""#),
        "{challenge}"
    );
}

/// Deletes the keys the test created in the shared Redis.
async fn clean(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: usize = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    keys.len()
}

#[tokio::test]
#[ignore = "needs Redis: REDIS_URL (run by .ci/run)"]
async fn replays_are_refused_across_two_processes() {
    let url = shared_redis_url();
    let prefix = unique_prefix();
    let here = serve(instance(
        RedisReplayStore::with_key_prefix(&url, &prefix).unwrap(),
    ))
    .await;
    let (mut child, there) = second_process(&url, &prefix).await;
    assert_ne!(here, there);

    let clock = TestClock::new();
    let key = proof_key(tower_jwt_auth::Algorithm::ES256);
    let token = token(&clock, Some(&key.jkt));
    let proof = || {
        Proof::for_token(
            &key,
            "GET",
            &format!("{PUBLIC}/movies/1"),
            clock.now(),
            &token,
        )
        .signed_by(&key)
    };

    // Accepted by the other process, then refused here; and the other way
    // round.
    let first = proof();
    let response = send(&there, &token, &first).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), key.jkt);
    assert_replay_refused(&send(&here, &token, &first).await);
    let second = proof();
    assert_eq!(send(&here, &token, &second).await.status(), StatusCode::OK);
    assert_replay_refused(&send(&there, &token, &second).await);
    // Each process refuses its own replays too.
    assert_replay_refused(&send(&there, &token, &first).await);
    assert_replay_refused(&send(&here, &token, &second).await);

    // The entries carry a TTL no longer than the proof window (60 s old,
    // 10 s ahead), so Redis drops them by itself.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((1..=61_000).contains(&ttl), "{key}: {ttl} ms");
    }

    child.kill().await.unwrap();
    assert_eq!(clean(&url, &prefix).await, 2);
}

/// A Redis URL nothing listens on.
fn unreachable_redis() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn an_unreachable_redis_fails_closed_over_http() {
    let store = RedisReplayStore::with_key_prefix(&unreachable_redis(), "unused").unwrap();
    let base = serve(instance(store)).await;
    let clock = TestClock::new();
    let key = proof_key(tower_jwt_auth::Algorithm::ES256);
    let token = token(&clock, Some(&key.jkt));
    let proof = Proof::for_token(
        &key,
        "GET",
        &format!("{PUBLIC}/movies/1"),
        clock.now(),
        &token,
    );

    let response = send(&base, &token, &proof.signed_by(&key)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    // A proof that fails its own checks is refused before Redis is asked.
    let stale = proof.claim("iat", json!(clock.now() - 3600));
    let response = send(&base, &token, &stale.signed_by(&key)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_over_grpc() {
    let store = RedisReplayStore::with_key_prefix(&unreachable_redis(), "unused").unwrap();
    let auth = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .dpop(Dpop::required().replay_store(store))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .layer(auth)
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(async move { server.await.unwrap() });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let clock = TestClock::new();
    let key = proof_key(tower_jwt_auth::Algorithm::ES256);
    let token = token(&clock, Some(&key.jkt));
    let htu = format!("http://{addr}/grpc.health.v1.Health/Check");
    let proof = Proof::for_token(&key, "POST", &htu, clock.now(), &token).signed_by(&key);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("DPoP {token}").parse().unwrap());
    request
        .metadata_mut()
        .insert("dpop", proof.parse().unwrap());
    let status = HealthClient::new(channel).check(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}
