//! OpenID discovery, and the URLs a source may fetch.

use std::sync::atomic::Ordering;

use http::StatusCode;
use serde_json::json;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::keys::remote::{FetchError, RemoteKeys};

use crate::common::{self, AUDIENCE, User, claims};
use crate::provider::*;
use crate::support::*;

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
