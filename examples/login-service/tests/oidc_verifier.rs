//! A third-party service that is told nothing but the login service's URL:
//! its layer is built with `.oidc_issuer(<login service>)` (the library's
//! `remote-jwks` feature), finds the JWK set through the published
//! discovery document, and follows a `login-service keys rotate` by
//! itself. On SQLite always and on PostgreSQL when `DATABASE_URL` points
//! at one.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::get;
use common::{Backend, PASSWORD, Service, TestDb, header_of};
use reqwest::StatusCode;
use serde_json::Value;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::axum::Claims;
use tower_jwt_auth::keys::remote::{DefaultClient, FetchFuture, HttpClient};

on_both_backends!(tokens_verify_through_oidc_discovery_and_across_a_key_rotation);

/// The default client, counting the JWK set fetches it sends.
#[derive(Clone)]
struct Counting {
    inner: DefaultClient,
    jwks: Arc<AtomicUsize>,
}

impl HttpClient for Counting {
    fn fetch(&self, request: axum::http::Request<()>) -> FetchFuture {
        if request.uri().path() == "/.well-known/jwks.json" {
            self.jwks.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.fetch(request)
    }
}

/// `login-service keys rotate`, as an operator runs it beside the running
/// service; returns the new key's `kid`.
fn rotate_with_the_cli(db: &TestDb) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_login-service"));
    command
        .args(["keys", "rotate", "--activate-after-secs", "1"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env_remove("KEY_ENCRYPTION_KEY_FILE");
    if let Some(kek) = &db.kek {
        command.env("KEY_ENCRYPTION_KEY_FILE", kek);
    }
    let output = command.output().expect("run login-service keys rotate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "keys rotate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "added signing key <kid>; it signs in 1 s"
    stdout
        .strip_prefix("added signing key ")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"))
        .to_owned()
}

async fn tokens_verify_through_oidc_discovery_and_across_a_key_rotation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("oidc@example.com", PASSWORD).await;
    let old = svc.access_token("oidc@example.com", PASSWORD).await;

    // The third party: the issuer URL, the audience, nothing else.
    let client = Counting {
        inner: DefaultClient::new(Duration::from_secs(2)).unwrap(),
        jwks: Arc::default(),
    };
    let layer = JwtAuthLayer::<Value>::builder()
        .oidc_issuer(&svc.base)
        .audience("login-service")
        .require_typ_at_jwt()
        .http_client(client.clone())
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), layer.ready())
        .await
        .expect("the login service's keys within 10 s");
    let app = axum::Router::new()
        .route(
            "/whoami",
            get(|Claims(claims): Claims<Value>| async move {
                claims["email"].as_str().unwrap_or_default().to_owned()
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let whoami = format!("http://{}/whoami", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let ok = svc.get_bearer_abs(&whoami, &old).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "oidc@example.com");
    assert_eq!(client.jwks.load(Ordering::SeqCst), 1);

    // An operator rotates the signing key. The new key is published at
    // once and signs from its activation; the service would notice at its
    // next key reload, and its activation is a second away: move both
    // along instead of waiting.
    let kid = rotate_with_the_cli(&db);
    let pool = db.connect().await;
    sqlx::query("UPDATE signing_keys SET activates_at = activates_at - 5 WHERE kid = $1")
        .bind(&kid)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    svc.app.reload_keys().await.unwrap();
    let new = svc.access_token("oidc@example.com", PASSWORD).await;
    assert_eq!(header_of(&new)["kid"], kid.as_str());
    assert_ne!(header_of(&new)["kid"], header_of(&old)["kid"]);

    // The new kid is unknown to the third party: one refetch, then it
    // verifies. The old token still does (its key is still published).
    let ok = svc.get_bearer_abs(&whoami, &new).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "oidc@example.com");
    assert_eq!(client.jwks.load(Ordering::SeqCst), 2, "exactly one refetch");
    let ok = svc.get_bearer_abs(&whoami, &old).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(client.jwks.load(Ordering::SeqCst), 2);

    // Another login service's token is refused: the layer trusts the
    // issuer it was configured with, not whatever signs.
    let other_db = TestDb::new(Backend::Sqlite).await;
    let other = Service::start(&other_db).await;
    other.register("oidc@example.com", PASSWORD).await;
    let foreign = other.access_token("oidc@example.com", PASSWORD).await;
    assert_eq!(
        svc.get_bearer_abs(&whoami, &foreign).await.status(),
        StatusCode::UNAUTHORIZED
    );
    other.stop().await;
    other_db.remove().await;

    server.abort();
    svc.stop().await;
    db.remove().await;
}
