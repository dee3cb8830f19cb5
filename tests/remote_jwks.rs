//! Keys from the network (feature `remote-jwks`): a JWKS / OpenID discovery
//! provider on 127.0.0.1 whose behaviour each test sets and whose hits it
//! counts, and the layer in a real hyper server (or tonic) in front of a
//! handler, driven by reqwest. Fetches are forced with
//! `RemoteKeys::refresh` and awaited, never slept for; scheduled refreshes
//! and backoff are set far away unless a test is about them.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, service_fn};
use tower_jwt_auth::Algorithm;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::issue::{SigningKey, jwk_set};
use tower_jwt_auth::keys::remote::{
    DefaultClient, FetchError, FetchFuture, HttpClient, RemoteKeys, RemoteOptions,
};

use common::{AUDIENCE, EC_PRIVATE, ED_PRIVATE, ISSUER, RSA_PRIVATE, User, b64, claims};

// ---------------------------------------------------------------- provider

/// How the provider answers `/jwks`.
#[derive(Clone, Debug)]
enum Mode {
    /// The current key set (304 to a matching `If-None-Match`).
    Keys,
    /// This status, empty body.
    Status(u16),
    /// `application/json` that is not JSON.
    Garbage,
    /// A JSON body that never ends, chunked (no `Content-Length`).
    Endless,
    /// Never answers.
    Hang,
    /// The connection is dropped before any answer.
    Reset,
    /// A redirect to the same provider under another host name.
    CrossOrigin,
    /// A redirect to `/jwks-moved` on the same origin.
    SameOrigin,
    /// The key set, served as `text/html`.
    WrongType,
}

struct State {
    mode: Mode,
    jwks: Value,
    etag: Option<String>,
    cache_control: Option<String>,
    /// The `issuer` the discovery document names.
    issuer: String,
}

#[derive(Clone)]
struct Provider {
    base: String,
    state: Arc<Mutex<State>>,
    jwks_hits: Arc<AtomicUsize>,
    discovery_hits: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
}

type Body = BoxBody<Bytes, Infallible>;

impl Provider {
    async fn start(keys: &[&SigningKey]) -> Provider {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), keys)
    }

    fn start_on(listener: TcpListener, keys: &[&SigningKey]) -> Provider {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let provider = Provider {
            state: Arc::new(Mutex::new(State {
                mode: Mode::Keys,
                jwks: jwk_set(keys.iter().copied()),
                etag: None,
                cache_control: None,
                issuer: base.clone(),
            })),
            base,
            jwks_hits: Arc::default(),
            discovery_hits: Arc::default(),
            not_modified: Arc::default(),
        };
        let server = provider.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                let service = hyper::service::service_fn(move |r| server.clone().answer(r));
                tokio::spawn(
                    Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
            }
        });
        provider
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    fn serve(&self, keys: &[&SigningKey]) {
        self.set(|s| {
            s.mode = Mode::Keys;
            s.jwks = jwk_set(keys.iter().copied());
        });
    }

    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    async fn answer(self, request: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        let path = request.uri().path().to_owned();
        if path == "/.well-known/openid-configuration" {
            self.discovery_hits.fetch_add(1, Ordering::SeqCst);
            let issuer = self.state.lock().unwrap().issuer.clone();
            let doc = json!({ "issuer": issuer, "jwks_uri": self.jwks_url() });
            return Ok(json_response(doc.to_string()));
        }
        if path == "/jwks-moved" {
            return Ok(self.keys(&request));
        }
        if path != "/jwks" {
            return Ok(status(404));
        }
        self.jwks_hits.fetch_add(1, Ordering::SeqCst);
        let mode = self.state.lock().unwrap().mode.clone();
        Ok(match mode {
            Mode::Keys => self.keys(&request),
            Mode::Status(code) => status(code),
            Mode::Garbage => json_response("{\"keys\": [".into()),
            Mode::Endless => {
                let chunks = std::iter::once(Bytes::from_static(b"{\"keys\":[],\"pad\":\""))
                    .chain(std::iter::repeat(Bytes::from_static(&[b'x'; 8192])))
                    .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
                let mut response =
                    Response::new(StreamBody::new(tokio_stream::iter(chunks)).boxed());
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, "application/json".parse().unwrap());
                response
            }
            Mode::Hang => std::future::pending().await,
            Mode::Reset => return Err(std::io::Error::other("provider drops the connection")),
            Mode::CrossOrigin => redirect(&self.jwks_url().replace("127.0.0.1", "localhost")),
            Mode::SameOrigin => redirect("/jwks-moved"),
            Mode::WrongType => {
                let mut response = self.keys(&request);
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, "text/html".parse().unwrap());
                response
            }
        })
    }

    fn keys(&self, request: &Request<Incoming>) -> Response<Body> {
        let state = self.state.lock().unwrap();
        if let Some(etag) = &state.etag
            && request
                .headers()
                .get(IF_NONE_MATCH)
                .is_some_and(|v| v == etag.as_str())
        {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            return status(304);
        }
        let mut response = json_response(state.jwks.to_string());
        if let Some(etag) = &state.etag {
            response.headers_mut().insert(ETAG, etag.parse().unwrap());
        }
        if let Some(cc) = &state.cache_control {
            response
                .headers_mut()
                .insert(CACHE_CONTROL, cc.parse().unwrap());
        }
        response
    }
}

fn json_response(body: String) -> Response<Body> {
    let mut response = Response::new(Full::from(body).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

fn status(code: u16) -> Response<Body> {
    let mut response = Response::new(Full::default().boxed());
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = status(302);
    response
        .headers_mut()
        .insert(LOCATION, location.parse().unwrap());
    response
}

// -------------------------------------------------------------- keys, tokens

fn key_a() -> SigningKey {
    SigningKey::from_pem(Algorithm::ES256, "a", EC_PRIVATE.as_bytes()).unwrap()
}

fn key_b() -> SigningKey {
    SigningKey::from_pem(Algorithm::EdDSA, "b", ED_PRIVATE.as_bytes()).unwrap()
}

fn key_c() -> SigningKey {
    SigningKey::from_pem(Algorithm::RS256, "c", RSA_PRIVATE.as_bytes()).unwrap()
}

fn token(key: &SigningKey) -> String {
    key.sign(&claims()).unwrap()
}

/// Tokens that must never pass while only `key` (kid `a`) is published.
fn forgeries(key: &SigningKey) -> Vec<String> {
    let valid = token(key);
    let parts: Vec<&str> = valid.split('.').collect();
    let mut tampered = claims();
    tampered["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(tampered.to_string().as_bytes()),
        parts[2]
    );
    let header = b64(br#"{"alg":"ES256","kid":"a"}"#);
    let random_sig = format!("{header}.{}.{}", parts[1], b64(&[7u8; 64]));
    let hs = common::mac_raw(
        r#"{"alg":"HS256","kid":"a"}"#,
        &claims().to_string(),
        b"x".repeat(32).as_slice(),
    );
    let other_key = SigningKey::from_pem(Algorithm::EdDSA, "a", ED_PRIVATE.as_bytes()).unwrap();
    vec![tampered, random_sig, hs, token(&other_key)]
}

/// Options with every timer far away: tests force fetches themselves.
fn options() -> RemoteOptions {
    let mut o = RemoteOptions::default();
    o.refresh_interval = Duration::from_secs(3600);
    o.min_refresh_interval = Duration::from_secs(3600);
    o.initial_backoff = Duration::from_secs(3600);
    o.max_backoff = Duration::from_secs(3600);
    o.refetch_cooldown = Duration::from_secs(3600);
    o.refetch_wait = Duration::from_secs(30);
    o.timeout = Duration::from_secs(30);
    o
}

fn layer(remote: &RemoteKeys) -> JwtAuthLayer<User> {
    JwtAuthLayer::builder()
        .remote_keys(remote.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap()
}

/// A source on `provider`'s JWKS, its first fetch done.
async fn ready_source(provider: &Provider, options: RemoteOptions) -> RemoteKeys {
    let remote = RemoteKeys::jwks_url(&provider.jwks_url(), options).unwrap();
    bounded(remote.ready()).await;
    remote
}

/// Awaits what must happen, failing the test instead of hanging it.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("should have completed")
}

// ------------------------------------------------------------------ the API

async fn whoami(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let sub = request
        .extensions()
        .get::<User>()
        .map(|u| u.sub.clone())
        .unwrap_or_default();
    Ok(Response::new(Full::from(sub)))
}

/// Serves `whoami` behind `auth` on a random port; returns its base URL.
async fn serve(auth: JwtAuthLayer<User>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .layer(auth)
        .service(service_fn(whoami));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    format!("http://{addr}/whoami")
}

async fn get(api: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(api)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn status_of(api: &str, token: &str) -> StatusCode {
    get(api, token).await.status()
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn rotation_is_accepted_after_exactly_one_refetch() {
    let (a, b) = (key_a(), key_b());
    let provider = Provider::start(&[&a]).await;
    let remote = ready_source(&provider, options()).await;
    let api = serve(layer(&remote)).await;
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    assert_eq!(provider.hits(), 1);

    // The provider adds key b: its first token triggers one refetch.
    provider.serve(&[&a, &b]);
    let response = get(&api, &token(&b)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "user-1");
    assert_eq!(provider.hits(), 2);
    // Key a is still published: still valid, no fetch.
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    assert_eq!(status_of(&api, &token(&b)).await, StatusCode::OK);
    assert_eq!(provider.hits(), 2);

    // Key a is withdrawn: it stops verifying after the next fetch, and its
    // tokens cause no further fetch within the cooldown.
    provider.serve(&[&b]);
    bounded(remote.refresh()).await.unwrap();
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&api, &token(&b)).await, StatusCode::OK);
    assert_eq!(provider.hits(), 3);
}

#[tokio::test]
async fn a_new_algorithm_is_picked_up_by_the_same_refetch() {
    let (a, c) = (key_a(), key_c());
    let provider = Provider::start(&[&a]).await;
    let remote = ready_source(&provider, options()).await;
    let api = serve(layer(&remote)).await;
    provider.serve(&[&a, &c]);
    assert_eq!(status_of(&api, &token(&c)).await, StatusCode::OK);
    assert_eq!(provider.hits(), 2);
}

#[tokio::test]
async fn unknown_kid_flood_causes_at_most_one_fetch_per_cooldown() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let remote = ready_source(&provider, options()).await;
    let api = serve(layer(&remote)).await;
    let client = reqwest::Client::new();
    let mut requests = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..1000u64 {
        let kid = format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let header = format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#);
        let forged = format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(claims().to_string().as_bytes()),
            b64(&[1u8; 64])
        );
        let (client, api, limit) = (client.clone(), api.clone(), Arc::clone(&limit));
        requests.spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            client
                .get(&api)
                .bearer_auth(forged)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED);
    }
    // The first fetch, and one refetch for the whole flood.
    assert_eq!(provider.hits(), 2);
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
}

/// What a failing fetch must report.
type Expected = fn(&FetchError) -> bool;

#[tokio::test]
async fn provider_failures_keep_cached_keys_and_forge_nothing() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let mut o = options();
    o.timeout = Duration::from_millis(300);
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
        (Mode::WrongType, |e| matches!(e, FetchError::ContentType(_))),
    ];
    for (mode, expected) in failures {
        provider.set(|s| s.mode = mode.clone());
        let err = bounded(remote.refresh())
            .await
            .expect_err("the fetch should fail");
        assert!(expected(&err), "{mode:?}: {err:?}");
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
    assert_eq!(remote.status().failures, 8);

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
async fn oidc_discovery_finds_the_keys_and_sets_the_issuer() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let issuer = provider.base.clone();
    let auth = JwtAuthLayer::<User>::builder()
        .oidc_issuer(issuer.clone())
        .remote_options(options())
        .audience(AUDIENCE)
        .build()
        .unwrap();
    bounded(auth.ready()).await;
    let api = serve(auth).await;
    let mut from_issuer = claims();
    from_issuer["iss"] = json!(issuer);
    assert_eq!(
        status_of(&api, &a.sign(&from_issuer).unwrap()).await,
        StatusCode::OK
    );
    // The issuer is required: a token of another issuer is refused.
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.discovery_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn discovery_with_a_mismatched_issuer_is_refused_then_retried() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let issuer = provider.base.clone();
    provider.set(|s| s.issuer = format!("{issuer}/"));
    let remote = RemoteKeys::oidc_issuer(&issuer, options()).unwrap();
    assert_eq!(remote.issuer(), Some(issuer.as_str()));
    let err = bounded(remote.refresh()).await.unwrap_err();
    assert!(matches!(err, FetchError::Discovery(_)), "{err:?}");
    assert_eq!(
        provider.hits(),
        0,
        "no JWKS fetched from an unverified document"
    );
    let api = serve(layer(&remote)).await;
    let mut from_issuer = claims();
    from_issuer["iss"] = json!(issuer);
    let token = a.sign(&from_issuer).unwrap();
    assert_eq!(
        status_of(&api, &token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Fixed at the provider: the next attempt discovers again, no restart.
    provider.set(|s| s.issuer = issuer.clone());
    bounded(remote.refresh()).await.unwrap();
    let auth = JwtAuthLayer::<User>::builder()
        .remote_keys(remote.clone())
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let api = serve(auth).await;
    assert_eq!(status_of(&api, &token).await, StatusCode::OK);
}

#[tokio::test]
async fn insecure_urls_are_refused_at_build() {
    for url in [
        "http://auth.example.com/jwks",
        "ftp://127.0.0.1/jwks",
        "jwks.json",
    ] {
        let built = JwtAuthLayer::<User>::builder().jwks_url(url).build();
        assert!(built.is_err(), "{url}");
        let built = JwtAuthLayer::<User>::builder().oidc_issuer(url).build();
        assert!(built.is_err(), "{url}");
    }
    let both = JwtAuthLayer::<User>::builder()
        .jwks_url("https://auth.example.com/jwks")
        .hs256(common::SECRET)
        .build();
    assert!(both.is_err());
}

#[tokio::test]
async fn etag_304_keeps_the_keys() {
    let (a, b) = (key_a(), key_b());
    let provider = Provider::start(&[&a]).await;
    provider.set(|s| s.etag = Some("\"v1\"".into()));
    let remote = ready_source(&provider, options()).await;
    let api = serve(layer(&remote)).await;
    bounded(remote.refresh()).await.unwrap();
    assert_eq!(provider.not_modified.load(Ordering::SeqCst), 1);
    assert_eq!(remote.status().keys, 1);
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);

    // A new document under a new tag replaces the keys.
    provider.serve(&[&b]);
    provider.set(|s| s.etag = Some("\"v2\"".into()));
    bounded(remote.refresh()).await.unwrap();
    assert_eq!(provider.not_modified.load(Ordering::SeqCst), 1);
    assert_eq!(status_of(&api, &token(&b)).await, StatusCode::OK);
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cache_control_max_age_is_clamped() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let mut o = options();
    o.refresh_interval = Duration::from_secs(300);
    o.min_refresh_interval = Duration::from_secs(60);
    o.max_refresh_interval = Duration::from_secs(3600);
    let remote = ready_source(&provider, o).await;
    let interval = || {
        let status = remote.status();
        status.next_fetch.unwrap() - status.last_success.unwrap()
    };
    assert_eq!(interval(), Duration::from_secs(300), "no Cache-Control");
    for (header, expected) in [
        ("public, max-age=600", 600),
        ("max-age=5", 60),
        ("no-cache", 60),
        ("max-age=31536000", 3600),
    ] {
        provider.set(|s| s.cache_control = Some(header.into()));
        bounded(remote.refresh()).await.unwrap();
        assert_eq!(interval(), Duration::from_secs(expected), "{header}");
    }
}

/// A client of one's own: the default one, counting its fetches and
/// signalling when it is dropped.
struct Tracked {
    inner: DefaultClient,
    fetches: Arc<AtomicUsize>,
    _dropped: tokio::sync::oneshot::Sender<()>,
}

impl HttpClient for Tracked {
    fn fetch(&self, request: Request<()>) -> FetchFuture {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(request)
    }
}

#[tokio::test]
async fn a_custom_client_does_every_fetch_and_the_task_ends_with_the_layer() {
    let a = key_a();
    let provider = Provider::start(&[&a]).await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let client = Tracked {
        inner: DefaultClient::new(Duration::from_secs(2)).unwrap(),
        fetches: Arc::clone(&fetches),
        _dropped: dropped_tx,
    };
    let auth = JwtAuthLayer::<User>::builder()
        .oidc_issuer(provider.base.clone())
        .remote_options(options())
        .http_client(client)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    bounded(auth.ready()).await;
    // Discovery and JWKS alike went through it.
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        provider.discovery_hits.load(Ordering::SeqCst) + provider.hits(),
        2
    );

    // Dropping the last layer ends the task, which drops the client.
    let service = tower::Layer::layer(&auth, service_fn(whoami));
    drop(auth);
    drop(service);
    assert!(bounded(dropped).await.is_err(), "the client was dropped");
}

#[tokio::test]
async fn a_request_waits_for_a_hung_refetch_only_up_to_the_wait() {
    let (a, b) = (key_a(), key_b());
    let provider = Provider::start(&[&a]).await;
    let mut o = options();
    o.refetch_wait = Duration::from_millis(200);
    let remote = ready_source(&provider, o).await;
    let api = serve(layer(&remote)).await;
    provider.set(|s| s.mode = Mode::Hang);
    // Key b's token asks for a refetch that never ends: answered 401 once
    // the wait is over, not held for the fetch's own timeout.
    assert_eq!(status_of(&api, &token(&b)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.hits(), 2);
    // Meanwhile known keys verify: the fetch blocks no request.
    assert_eq!(status_of(&api, &token(&a)).await, StatusCode::OK);
    // Others with unknown keys join the fetch under way: no new one.
    assert_eq!(status_of(&api, &token(&b)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.hits(), 2);
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
async fn verify_outside_a_request_refetches_in_the_background() {
    let (a, b) = (key_a(), key_b());
    let provider = Provider::start(&[&a]).await;
    let remote = ready_source(&provider, options()).await;
    let auth = layer(&remote);
    provider.serve(&[&a, &b]);
    // `verify` cannot wait: refused now, its refetch runs meanwhile…
    assert!(auth.verify(&token(&b)).is_err());
    // …and `refresh` waits for it before fetching once more.
    bounded(remote.refresh()).await.unwrap();
    assert_eq!(provider.hits(), 3);
    assert_eq!(auth.verify(&token(&b)).unwrap().sub, "user-1");
}
