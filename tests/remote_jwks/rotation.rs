//! Key rotation: an unknown `kid` triggers one shared refetch per
//! cooldown, waited for up to a bound; withdrawn keys stop verifying.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::common::{b64, claims};
use crate::provider::*;
use crate::support::*;

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
