//! Outages: failed fetches of every kind keep the last good keys and
//! let nothing forged through; with no keys the answer is 503 +
//! `Retry-After` (gRPC 14); recovery needs no restart.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use http::header::RETRY_AFTER;
use serde_json::json;
use tokio::net::TcpListener;
use tower_jwt_auth::issue::{SigningKey, jwk_set};
use tower_jwt_auth::keys::remote::{FetchError, RemoteKeys};
use tower_jwt_auth::{Algorithm, JwtAuthLayer};

use crate::common::{AUDIENCE, ISSUER, User, b64};
use crate::provider::*;
use crate::support::*;

/// What a failing fetch must report.
type Expected = fn(&FetchError) -> bool;

#[tokio::test]
async fn provider_failures_keep_cached_keys_and_forge_nothing() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let mut o = options();
    // Long enough for a loaded machine to answer, short enough to wait out.
    o.timeout = Duration::from_secs(2);
    o.max_body_len = 64 * 1024;
    let remote = ready_source(&provider, o).await;
    let api = serve(layer(&remote)).await;

    let failures: Vec<(Mode, Expected)> = vec![
        (Mode::Reset, |e| matches!(e, FetchError::Transport(_))),
        (Mode::Hang, |e| matches!(e, FetchError::Timeout)),
        (Mode::Status(500), |e| *e == FetchError::Status(500)),
        (Mode::Status(404), |e| *e == FetchError::Status(404)),
        (Mode::Garbage, |e| matches!(e, FetchError::Json(_))),
        (Mode::Endless, |e| *e == FetchError::TooLarge(64 * 1024)),
        (Mode::CrossOrigin, |e| matches!(e, FetchError::Redirect(_))),
        (Mode::Loop, |e| matches!(e, FetchError::Redirect(_))),
        (Mode::WrongType, |e| matches!(e, FetchError::ContentType(_))),
    ];
    for (mode, expected) in failures {
        provider.set(|s| s.mode = mode.clone());
        let before = provider.hits();
        let err = bounded(remote.refresh())
            .await
            .expect_err("the fetch should fail");
        assert!(expected(&err), "{mode:?}: {err:?}");
        if let Mode::Loop = mode {
            // The request and the 3 redirects followed, no more.
            assert_eq!(provider.hits() - before, 4);
        }
        assert_eq!(remote.status().keys, 1, "{mode:?}");
        assert_eq!(
            status_of(&api, &token(&a)).await,
            StatusCode::OK,
            "{mode:?}"
        );
        for forged in forgeries(&a) {
            assert_eq!(
                status_of(&api, &forged).await,
                StatusCode::UNAUTHORIZED,
                "{mode:?}"
            );
        }
    }
    assert_eq!(remote.status().failures, 9);

    // A document without any usable key is a failure too: keys kept.
    provider.set(|s| {
        s.mode = Mode::Keys;
        s.jwks = json!({"keys": [{"kty": "oct", "k": b64(&[1; 32]), "alg": "HS256"}]});
    });
    assert_eq!(
        bounded(remote.refresh()).await,
        Err(FetchError::NoUsableKey)
    );
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);

    // Same-origin redirects are followed.
    provider.serve(&[&a]);
    provider.set(|s| s.mode = Mode::SameOrigin);
    bounded(remote.refresh()).await.unwrap();
    assert_eq!(remote.status().failures, 0);
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
}

#[tokio::test]
async fn bad_keys_are_skipped_and_good_ones_of_the_document_kept() {
    let (a, b) = (key_a(), key_b());
    let provider = Provider::start(&[]).await;
    let mut document = jwk_set([&a, &b]);
    let bad = [
        json!({"kty": "oct", "kid": "secret", "alg": "HS256", "k": b64(&[1; 32])}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "XYZ", "kid": "odd"}),
        json!({"kty": "EC", "kid": "short", "crv": "P-256", "x": "AA", "y": "AA"}),
        json!("not an object"),
    ];
    document["keys"].as_array_mut().unwrap().extend(bad);
    provider.set(|s| s.jwks = document);
    let remote = ready_source(&provider, options()).await;
    assert_eq!(remote.status().keys, 2);
    let api = serve(layer(&remote)).await;
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    assert_eq!(status_of(&api, &token(&b)).await, StatusCode::OK);
    let secret = SigningKey::hmac(Algorithm::HS256, "secret", &[1; 32]).unwrap();
    assert_eq!(
        status_of(&api, &token(&secret)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn no_keys_answers_503_with_retry_after() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    provider.set(|s| s.mode = Mode::Status(500));
    let remote = RemoteKeys::jwks_url(&provider.jwks_url(), options()).unwrap();
    assert_eq!(
        bounded(remote.refresh()).await,
        Err(FetchError::Status(500))
    );
    let api = serve(layer(&remote)).await;
    for token in [token(&a), forgeries(&a).remove(0)] {
        let response = get(&api, &token).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(RETRY_AFTER));
    }
}

#[tokio::test]
async fn no_keys_answers_grpc_unavailable() {
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::Code;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    provider.set(|s| s.mode = Mode::Reset);
    let remote = RemoteKeys::jwks_url(&provider.jwks_url(), options()).unwrap();
    assert!(bounded(remote.refresh()).await.is_err());

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = tonic::transport::Server::builder()
        .layer(layer(&remote))
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(&a)).parse().unwrap(),
    );
    let status = HealthClient::new(channel.clone())
        .check(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    // Once the provider is back, the same call passes.
    provider.set(|s| s.mode = Mode::Keys);
    bounded(remote.refresh()).await.unwrap();
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(&a)).parse().unwrap(),
    );
    assert!(HealthClient::new(channel).check(request).await.is_ok());
}

#[tokio::test]
async fn startup_with_the_provider_down_recovers_without_a_restart() {
    let a = key_a();
    // A port nobody listens on yet: connections are refused.
    let reserved = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = reserved.local_addr().unwrap();
    drop(reserved);
    let mut o = options();
    o.initial_backoff = Duration::from_millis(20);
    o.max_backoff = Duration::from_millis(100);
    let auth = JwtAuthLayer::<User>::builder()
        .jwks_url(format!("http://{addr}/jwks"))
        .remote_options(o)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let api = serve(auth.clone()).await;
    let response = get(&api, &token(&a)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(RETRY_AFTER));

    // The provider comes up on that port; the task's retries find it.
    let provider = Provider::start_on(TcpListener::bind(addr).await.unwrap(), &[&a]);
    bounded(auth.ready()).await;
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    assert!(provider.hits() >= 1);
}

#[test]
fn built_outside_a_runtime_starts_on_first_use() {
    let a = key_a();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let provider = runtime.block_on(Provider::start(&[&a]));
    // No runtime here: nothing may be spawned, nothing fetched yet.
    let auth = JwtAuthLayer::<User>::builder()
        .jwks_url(provider.jwks_url())
        .remote_options(options())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(provider.hits(), 0);
        let api = serve(auth.clone()).await;
        // The first request finds no keys (503) and starts the task.
        assert_eq!(
            status_of(&api, &token(&a)).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        bounded(auth.ready()).await;
        assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    });
}

#[tokio::test]
async fn keys_past_the_maximum_staleness_are_dropped_until_a_fetch_succeeds() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let mut o = options();
    o.max_staleness = Duration::from_nanos(1);
    let remote = ready_source(&provider, o).await;
    let api = serve(layer(&remote)).await;
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    provider.set(|s| s.mode = Mode::Status(503));
    assert_eq!(
        bounded(remote.refresh()).await,
        Err(FetchError::Status(503))
    );
    assert_eq!(remote.status().keys, 0);
    let response = get(&api, &token(&a)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(RETRY_AFTER));
    provider.serve(&[&a]);
    bounded(remote.refresh()).await.unwrap();
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
}

#[tokio::test]
async fn a_request_without_keys_asks_for_a_fetch_instead_of_waiting_out_the_backoff() {
    let a = key_a();
    let reserved = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let mut o = options(); // backoff: an hour
    o.refetch_cooldown = Duration::ZERO;
    let remote = RemoteKeys::jwks_url(&format!("http://{addr}/jwks"), o).unwrap();
    assert!(matches!(
        bounded(remote.refresh()).await,
        Err(FetchError::Transport(_))
    ));
    let api = serve(layer(&remote)).await;
    let provider = Provider::start_on(TcpListener::bind(addr).await.unwrap(), &[&a]);
    // Still no keys: 503, but the request asked for a fetch…
    assert_eq!(
        status_of(&api, &token(&a)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // …which brings the keys well before the hour of backoff is over.
    bounded(remote.ready()).await;
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    assert_eq!(provider.hits(), 1);
}
