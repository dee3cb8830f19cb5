//! Account, session and response hardening: one spelling per email, an
//! absolute end to every session, a denylist that outlives the verifier's
//! leeway, and browser-facing security headers. Each scenario runs on SQLite
//! and (ignored unless `DATABASE_URL` is set) on PostgreSQL.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Backend, PASSWORD, Service, TestDb, error_of};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

on_both_backends!(
    emails_are_nfc_normalised_and_invisible_characters_refused,
    sessions_end_at_their_absolute_lifetime_however_often_refreshed,
    denylist_and_session_rows_outlive_exp_by_the_verifier_leeway,
    every_response_says_nosniff_and_nothing_can_be_framed,
);

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn emails_are_nfc_normalised_and_invisible_characters_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;

    // "josé" with a combining accent, then with the precomposed letter.
    let account = svc.register("jose\u{301}@example.com", PASSWORD).await;
    assert_eq!(account["email"], "jos\u{e9}@example.com");
    let twin = svc
        .post_json(
            "/auth/register",
            json!({"email": "JOS\u{c9}@example.com", "password": "another password"}),
        )
        .await;
    assert_eq!(error_of(twin).await.0, StatusCode::CONFLICT);
    svc.login("jos\u{e9}@example.com", PASSWORD).await;
    svc.login("jose\u{301}@EXAMPLE.com", PASSWORD).await;

    // Look-alikes of an existing address are refused, not created.
    svc.register("admin@example.com", PASSWORD).await;
    for email in [
        "ad\u{200b}min@example.com",
        "admin\u{200d}@example.com",
        "\u{202e}moc.elpmaxe@nimda",
        "admin@exa\u{2066}mple.com",
        "\u{feff}admin@example.com",
    ] {
        let response = svc
            .post_json(
                "/auth/register",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        let (status, body) = error_of(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{email:?}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("invisible"),
            "{body}"
        );
    }

    svc.stop().await;
    db.remove().await;
}

async fn sessions_end_at_their_absolute_lifetime_however_often_refreshed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lifetime = Duration::from_secs(3600);
    let svc = Service::start_with(&db, |config| config.session_max_lifetime = lifetime).await;
    let pool = db.connect().await;
    svc.register("ada@example.com", PASSWORD).await;

    let tokens = svc.login("ada@example.com", PASSWORD).await;
    let refreshed = svc
        .post_json(
            "/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: serde_json::Value = refreshed.json().await.unwrap();

    // The sliding lifetime (14 days) is cut at the session's end.
    let row = sqlx::query(
        "SELECT MAX(t.expires_at) AS expires_at, MIN(f.created_at) AS started \
         FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let expires_at: i64 = row.try_get("expires_at").unwrap();
    let started: i64 = row.try_get("started").unwrap();
    assert!(expires_at <= started + 3600, "{expires_at} vs {started}");

    // Move the login an hour into the past: the newest refresh token,
    // unused and unexpired by its own column, no longer refreshes.
    sqlx::query("UPDATE refresh_families SET created_at = created_at - 3601")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE refresh_tokens SET expires_at = $1")
        .bind(now() + 24 * 3600)
        .execute(&pool)
        .await
        .unwrap();
    let late = svc
        .post_json(
            "/auth/refresh",
            json!({"refresh_token": refreshed["refresh_token"]}),
        )
        .await;
    let (status, body) = error_of(late).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_grant");

    // Entering the password again starts a new session.
    svc.login("ada@example.com", PASSWORD).await;

    pool.close().await;
    svc.stop().await;
    db.remove().await;
}

/// The single number `query` selects as `n`.
async fn count(pool: &sqlx::AnyPool, query: &'static str) -> i64 {
    sqlx::query(query)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

/// Sets when every denylist entry and every refresh token expires.
async fn expire(pool: &sqlx::AnyPool, denylist_at: i64, refresh_tokens_at: i64) {
    sqlx::query("UPDATE revoked_access_tokens SET expires_at = $1")
        .bind(denylist_at)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE refresh_tokens SET expires_at = $1")
        .bind(refresh_tokens_at)
        .execute(pool)
        .await
        .unwrap();
}

async fn denylist_and_session_rows_outlive_exp_by_the_verifier_leeway(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    let pool = db.connect().await;
    svc.register("ada@example.com", PASSWORD).await;
    let leeway = tower_jwt_auth::DEFAULT_LEEWAY.as_secs() as i64;

    let access = svc.access_token("ada@example.com", PASSWORD).await;
    let logout = svc
        .call_bearer(Method::POST, "/auth/logout", &access, None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let denied = || count(&pool, "SELECT COUNT(*) AS n FROM revoked_access_tokens");
    let families = || count(&pool, "SELECT COUNT(*) AS n FROM refresh_families");
    assert_eq!(denied().await, 1);

    // Expired ten seconds ago: a verifier still accepts it within its
    // leeway, so the denylist must still refuse it. Likewise the session's
    // last refresh token, whose family row refuses the session's tokens.
    expire(&pool, now() - 10, now() - 10).await;
    svc.app.prune().await.unwrap();
    assert_eq!(denied().await, 1, "pruned inside the leeway");
    assert_eq!(families().await, 1, "session pruned while its tokens live");

    // Past exp plus the leeway (plus an access token's life for the
    // session): nothing can use them any more.
    expire(&pool, now() - leeway - 2, now() - 15 * 60 - leeway - 2).await;
    svc.app.prune().await.unwrap();
    assert_eq!(denied().await, 0);
    assert_eq!(families().await, 0);

    pool.close().await;
    svc.stop().await;
    db.remove().await;
}

async fn every_response_says_nosniff_and_nothing_can_be_framed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;

    for (path, status) in [
        ("/movies", StatusCode::OK),
        ("/auth/me", StatusCode::UNAUTHORIZED),
        ("/no/such/route", StatusCode::NOT_FOUND),
        ("/.well-known/jwks.json", StatusCode::OK),
        ("/docs/", StatusCode::OK),
        ("/docs/swagger-ui-bundle.js", StatusCode::OK),
    ] {
        let response = svc.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path.starts_with("/docs") {
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
            assert!(!csp.contains("script-src"), "{path}: {csp}");
        }
    }
    let rejected = svc.post_json("/auth/login", json!({"email": 1})).await;
    assert_eq!(
        rejected.headers()["x-content-type-options"],
        "nosniff",
        "a rejected body"
    );

    svc.stop().await;
    db.remove().await;
}
