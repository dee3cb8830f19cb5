//! The verified-token cache through the layer, in a hyper server on
//! 127.0.0.1 driven by reqwest: a cached token is refused as soon as it
//! expires (on the layer's controlled clock), is revoked, loses its key or
//! is altered, and scopes and authorization rules still answer 403 on a
//! hit.

mod common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tower::{ServiceBuilder, service_fn};
use tower_jwt_auth::cache::TokenCache;
use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
use tower_jwt_auth::{JwtAuthBuilder, JwtAuthLayer, KeySet, KeyStore, RegisteredClaims};

use common::{AUDIENCE, ISSUER, User, hs256, hs256_key};

/// The layer's clock, in seconds; starts here.
const T: u64 = 1_700_000_000;

async fn whoami(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let sub = request
        .extensions()
        .get::<User>()
        .map(|user| user.sub.clone());
    Ok(Response::new(Full::from(sub.unwrap_or_default())))
}

/// Serves `whoami` behind `auth` on a random port; returns its URL.
async fn serve(auth: JwtAuthLayer<User>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .layer(auth)
        .service(service_fn(whoami));
    tokio::spawn(async move {
        let server = Builder::new(TokioExecutor::new());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let connection = server
                .serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service.clone()),
                )
                .into_owned();
            tokio::spawn(connection);
        }
    });
    format!("http://{addr}/whoami")
}

async fn get(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A clock the test moves.
#[derive(Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn new() -> Self {
        Clock(Arc::new(AtomicU64::new(T)))
    }
    fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

/// The verifier of the tests, on `clock`, without leeway, with `cache`.
fn auth(clock: &Clock, cache: &TokenCache) -> JwtAuthBuilder<User> {
    let clock = clock.clone();
    JwtAuthLayer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway(Duration::ZERO)
        .clock(move || UNIX_EPOCH + Duration::from_secs(clock.0.load(Ordering::SeqCst)))
        .cache(cache.clone())
}

fn token(exp: u64, scope: &str) -> String {
    hs256(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "jti": "t-1",
        "iat": T, "exp": exp, "scope": scope,
    }))
}

async fn assert_invalid(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn a_cached_token_is_refused_from_its_exp_on() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let url = serve(auth(&clock, &cache).hs256(common::SECRET).build().unwrap()).await;
    let token = token(T + 30, "movies:read");

    assert_eq!(get(&url, &token).await.text().await.unwrap(), "user-1");
    clock.set(T + 29);
    assert_eq!(get(&url, &token).await.status(), StatusCode::OK);
    assert_eq!(cache.stats().hits, 1);
    clock.set(T + 30);
    assert_invalid(get(&url, &token).await).await;
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.expired), (1, 1));
    // Short TTL: the same token is verified again once it runs out.
    let short = TokenCache::new().ttl(Duration::from_secs(2));
    let url = serve(auth(&clock, &short).hs256(common::SECRET).build().unwrap()).await;
    let token = self::token(T + 600, "movies:read");
    clock.set(T);
    for now in [T, T + 1, T + 2, T + 3] {
        clock.set(now);
        assert_eq!(get(&url, &token).await.status(), StatusCode::OK);
    }
    let stats = short.stats();
    assert_eq!((stats.inserts, stats.hits, stats.expired), (2, 2, 1));
}

/// An in-memory denylist on `(iss, jti)`.
#[derive(Clone, Default)]
struct Denylist(Arc<Mutex<HashSet<(String, String)>>>);

impl RevocationCheck for Denylist {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        let key = claims.iss.clone().zip(claims.jti.clone());
        let revoked = key.is_some_and(|key| self.0.lock().unwrap().contains(&key));
        Box::pin(async move { Ok(revoked) })
    }
}

#[tokio::test]
async fn revocation_is_consulted_on_every_hit() {
    let (clock, cache, denylist) = (Clock::new(), TokenCache::new(), Denylist::default());
    let url = serve(
        auth(&clock, &cache)
            .hs256(common::SECRET)
            .revocation(denylist.clone())
            .build()
            .unwrap(),
    )
    .await;
    let token = token(T + 600, "movies:read");
    for _ in 0..2 {
        assert_eq!(get(&url, &token).await.status(), StatusCode::OK);
    }
    denylist
        .0
        .lock()
        .unwrap()
        .insert((ISSUER.to_owned(), "t-1".to_owned()));
    assert_invalid(get(&url, &token).await).await;
    assert_eq!(cache.stats().hits, 2, "the refusal came from a hit");
}

#[tokio::test]
async fn a_cached_token_whose_key_left_the_store_is_refused() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let store = KeyStore::new(KeySet::new([hs256_key().verifying_key().clone()]));
    let url = serve(
        auth(&clock, &cache)
            .key_store(store.clone())
            .build()
            .unwrap(),
    )
    .await;
    let token = token(T + 600, "movies:read");
    for _ in 0..2 {
        assert_eq!(get(&url, &token).await.status(), StatusCode::OK);
    }
    let other = tower_jwt_auth::issue::SigningKey::hmac(
        tower_jwt_auth::Algorithm::HS256,
        "other",
        b"another-secret-0123456789abcdef-0123456789",
    )
    .unwrap();
    store.replace(KeySet::new([other.verifying_key().clone()]));
    assert_invalid(get(&url, &token).await).await;
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.key_removed), (1, 1));
    // An empty store is "keys unavailable", cached entry or not.
    store.replace(KeySet::default());
    assert_eq!(
        get(&url, &token).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn an_altered_cached_token_is_refused() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let url = serve(auth(&clock, &cache).hs256(common::SECRET).build().unwrap()).await;
    let token = token(T + 600, "movies:read");
    for _ in 0..2 {
        assert_eq!(get(&url, &token).await.status(), StatusCode::OK);
    }
    let (first_dot, last_dot) = (token.find('.').unwrap(), token.rfind('.').unwrap());
    for at in [
        1,
        first_dot + 2,
        last_dot - 2,
        last_dot + 2,
        token.len() - 1,
    ] {
        let mut forged = token.clone().into_bytes();
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_invalid(get(&url, &forged).await).await;
    }
    assert_eq!(cache.stats().hits, 1);
}

#[tokio::test]
async fn scopes_and_authorization_answer_403_on_a_hit() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let url = serve(
        auth(&clock, &cache)
            .hs256(common::SECRET)
            .require_scope("movies:write")
            .build()
            .unwrap(),
    )
    .await;
    let token = token(T + 600, "movies:read");
    for _ in 0..3 {
        let response = get(&url, &token).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
    }
    assert_eq!(cache.stats().hits, 2);

    let allowed = Arc::new(AtomicBool::new(true));
    let rule = Arc::clone(&allowed);
    let cache = TokenCache::new();
    let url = serve(
        auth(&clock, &cache)
            .hs256(common::SECRET)
            .authorize(move |_| rule.load(Ordering::SeqCst))
            .build()
            .unwrap(),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(get(&url, &token).await.status(), StatusCode::OK);
    }
    allowed.store(false, Ordering::SeqCst);
    assert_eq!(get(&url, &token).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(cache.stats().hits, 2);
}
