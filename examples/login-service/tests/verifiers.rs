//! End-to-end from a verifier's side: tokens verify from the published
//! JWK set alone, survive key rotation, and every instance on one database
//! signs, verifies and revokes alike; on SQLite always and on PostgreSQL
//! when `DATABASE_URL` points at one.

mod common;

use std::time::Duration;

use common::{Backend, PASSWORD, Service, TestDb, header_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    tokens_verify_with_a_layer_configured_only_from_the_published_jwks,
    key_rotation_publishes_both_keys_and_old_tokens_keep_working,
    instances_on_one_database_share_keys_and_revocations,
);

/// `token` with one character of its signature changed.
fn with_other_signature(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut sig = parts[2].clone().into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    parts[2] = String::from_utf8(sig).unwrap();
    parts.join(".")
}

/// A third-party service that knows nothing but the discovery document.
async fn tokens_verify_with_a_layer_configured_only_from_the_published_jwks(backend: Backend) {
    use axum::routing::get;
    use tower_jwt_auth::{JwtAuthLayer, KeySet, KeyStore};

    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("ext@example.com", PASSWORD).await;
    let token = svc.access_token("ext@example.com", PASSWORD).await;

    let discovery: Value = svc.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], svc.base.as_str());
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    let jwks = svc
        .client
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let layer = JwtAuthLayer::<Value>::builder()
        .key_store(KeyStore::new(KeySet::from_jwks_str(&jwks).unwrap()))
        .issuer(discovery["issuer"].as_str().unwrap())
        .audience("login-service")
        .require_typ_at_jwt()
        .build()
        .unwrap();
    let other = axum::Router::new()
        .route(
            "/whoami",
            get(
                |tower_jwt_auth::axum::Claims(c): tower_jwt_auth::axum::Claims<Value>| async move {
                    c["email"].as_str().unwrap_or_default().to_owned()
                },
            ),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}/whoami", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, other).await });

    let ok = svc.get_bearer_abs(&other_url, &token).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "ext@example.com");

    // Same claims, other signature: must not verify.
    let forged = with_other_signature(&token);
    assert_eq!(
        svc.get_bearer_abs(&other_url, &forged).await.status(),
        StatusCode::UNAUTHORIZED
    );

    server.abort();
    svc.stop().await;
    db.remove().await;
}

async fn key_rotation_publishes_both_keys_and_old_tokens_keep_working(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.key_reload_interval = Duration::from_millis(200);
    })
    .await;
    svc.register("rot@example.com", PASSWORD).await;
    let old = svc.access_token("rot@example.com", PASSWORD).await;

    // As `login-service keys rotate` does, from outside the running
    // instance, which must notice by itself.
    let kid = login_service::rotate_key(&db.url, db.kek.as_deref(), 0)
        .await
        .unwrap();
    let mut jwks = Value::Null;
    for _ in 0..50 {
        jwks = svc.get_json("/.well-known/jwks.json").await;
        if jwks["keys"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&kid.as_str()));
    assert!(kids.contains(&header_of(&old)["kid"].as_str().unwrap()));

    let new = svc.access_token("rot@example.com", PASSWORD).await;
    assert_eq!(header_of(&new)["kid"], kid.as_str());
    for token in [&old, &new] {
        assert_eq!(
            svc.get_bearer("/auth/me", token).await.status(),
            StatusCode::OK
        );
    }

    svc.stop().await;
    db.remove().await;
}

async fn instances_on_one_database_share_keys_and_revocations(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = Service::start(&db).await;
    let b = Service::start_with(&db, |c| {
        // Both instances are one issuer behind a load balancer.
        c.issuer = a.base.clone();
    })
    .await;
    a.register("multi@example.com", PASSWORD).await;
    let tokens = b.login("multi@example.com", PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        a.get_bearer("/auth/me", &access).await.status(),
        StatusCode::OK
    );

    let refreshed = a
        .post_json(
            "/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    let logout = a
        .call_bearer(Method::POST, "/auth/logout", &access, None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // The instance that logged out refuses at once; the other one within
    // its mirror's bound.
    assert_eq!(
        a.get_bearer("/auth/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    refused_by_within_the_bound(&b, &access).await;

    // Log out everywhere, twice (the second widens the first): every
    // session of the account, on every instance.
    let first = b.access_token("multi@example.com", PASSWORD).await;
    let second = a.access_token("multi@example.com", PASSWORD).await;
    let all = a
        .call_bearer(Method::POST, "/auth/logout-all", &second, None)
        .await;
    assert_eq!(all.status(), StatusCode::NO_CONTENT);
    // A login from the next second on is a new session, which a second
    // "log out everywhere" (the stored mark widened) ends too.
    let marked = login_service::store::now();
    while login_service::store::now() <= marked {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = b.access_token("multi@example.com", PASSWORD).await;
    assert_eq!(
        a.get_bearer("/auth/me", &third).await.status(),
        StatusCode::OK
    );
    let again = b
        .call_bearer(Method::POST, "/auth/logout-all", &third, None)
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    for token in [&first, &second, &third] {
        refused_by_within_the_bound(&a, token).await;
        refused_by_within_the_bound(&b, token).await;
    }

    a.stop().await;
    b.stop().await;
    db.remove().await;
}

/// `instance` refuses `token` within its revocation mirror's bound: its
/// next poll of the database, or (silent for the staleness bound) 503,
/// never the token.
async fn refused_by_within_the_bound(instance: &Service, token: &str) {
    let revoked = std::time::Instant::now();
    let bound = Duration::from_secs(login_service::config::DEFAULT_REVOCATION_MAX_STALENESS_SECS);
    loop {
        let sent = std::time::Instant::now();
        match instance.get_bearer("/auth/me", token).await.status() {
            StatusCode::UNAUTHORIZED => return,
            StatusCode::OK => assert!(sent < revoked + bound, "accepted after the bound"),
            other => panic!("{other}"),
        }
        assert!(revoked.elapsed() < Duration::from_secs(30), "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
