//! Refresh scheduling (`Cache-Control`, `ETag`), the client a source
//! uses, and the end of its task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use tower::service_fn;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::keys::remote::{DefaultClient, FetchFuture, HttpClient};

use crate::common::{AUDIENCE, User};
use crate::provider::*;
use crate::support::*;

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

/// A refresh whose document holds the same keys (a 200, not a 304: no
/// ETag) keeps the tokens the verified-token cache holds for them; a
/// rotation still drops them.
#[cfg(feature = "cache")]
#[tokio::test]
async fn a_refresh_with_the_same_keys_keeps_verified_tokens_cached() {
    use tower_jwt_auth::cache::TokenCache;

    let (a, b) = (key_a(), key_b());
    let provider = Provider::start(&[&a]).await;
    let remote = ready_source(&provider, options()).await;
    let cache = TokenCache::new();
    let auth = builder(&remote).cache(cache.clone()).build().unwrap();
    let api = serve(auth).await;
    let token_a = token(&a);
    assert_eq!(status_of(&api, &token_a).await, StatusCode::OK);
    assert_eq!((cache.stats().misses, cache.stats().hits), (1, 0));

    bounded(remote.refresh()).await.unwrap();
    assert_eq!(provider.not_modified.load(Ordering::SeqCst), 0);
    assert_eq!(status_of(&api, &token_a).await, StatusCode::OK);
    assert_eq!(
        (cache.stats().misses, cache.stats().hits),
        (1, 1),
        "the same key fetched again still serves its cached tokens"
    );

    provider.serve(&[&b]);
    bounded(remote.refresh()).await.unwrap();
    assert_eq!(status_of(&api, &token_a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&api, &token(&b)).await, StatusCode::OK);
}
