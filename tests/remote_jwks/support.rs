//! Keys, tokens, options and the protected API the tests share.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, service_fn};
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::keys::remote::{RemoteKeys, RemoteOptions};
use tower_jwt_auth::{Algorithm, JwtAuthBuilder, JwtAuthLayer};

use crate::common::{
    self, AUDIENCE, EC_PRIVATE, ED_PRIVATE, ISSUER, RSA_PRIVATE, User, b64, claims,
};
use crate::provider::Provider;

pub(crate) fn key_a() -> SigningKey {
    SigningKey::from_pem(Algorithm::ES256, "a", EC_PRIVATE.as_bytes()).unwrap()
}

pub(crate) fn key_b() -> SigningKey {
    SigningKey::from_pem(Algorithm::EdDSA, "b", ED_PRIVATE.as_bytes()).unwrap()
}

pub(crate) fn key_c() -> SigningKey {
    SigningKey::from_pem(Algorithm::RS256, "c", RSA_PRIVATE.as_bytes()).unwrap()
}

pub(crate) fn token(key: &SigningKey) -> String {
    key.sign(&claims()).unwrap()
}

/// Tokens that must never pass while only `key` (kid `a`) is published.
pub(crate) fn forgeries(key: &SigningKey) -> Vec<String> {
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
pub(crate) fn options() -> RemoteOptions {
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

pub(crate) fn layer(remote: &RemoteKeys) -> JwtAuthLayer<User> {
    builder(remote).build().unwrap()
}

/// The builder behind [`layer`], for tests that add to it.
pub(crate) fn builder(remote: &RemoteKeys) -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .remote_keys(remote.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

/// A source on `provider`'s JWKS, its first fetch done.
pub(crate) async fn ready_source(provider: &Provider, options: RemoteOptions) -> RemoteKeys {
    let remote = RemoteKeys::jwks_url(&provider.jwks_url(), options).unwrap();
    bounded(remote.ready()).await;
    remote
}

/// Awaits what must happen, failing the test instead of hanging it.
pub(crate) async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("should have completed")
}

// ------------------------------------------------------------------ the API

pub(crate) async fn whoami(
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let sub = request
        .extensions()
        .get::<User>()
        .map(|u| u.sub.clone())
        .unwrap_or_default();
    Ok(Response::new(Full::from(sub)))
}

/// Serves `whoami` behind `auth` on a random port; returns its base URL.
pub(crate) async fn serve(auth: JwtAuthLayer<User>) -> String {
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

pub(crate) async fn get(api: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(api)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn status_of(api: &str, token: &str) -> StatusCode {
    get(api, token).await.status()
}
