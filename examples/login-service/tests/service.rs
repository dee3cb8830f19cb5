//! End-to-end: the real service on a loopback port, driven over HTTP, on
//! SQLite always and on PostgreSQL when `DATABASE_URL` points at one:
//! accounts, sessions and movies.

mod common;

use common::{Backend, PASSWORD, Service, TestDb, claims_of, cli_add_user, error_of, header_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    session_lifecycle_register_login_me_refresh_reuse_logout,
    emails_are_unique_case_insensitively_and_trimmed,
    unknown_email_and_wrong_password_get_the_same_answer,
    movies_are_public_to_read_and_need_movies_write_to_change,
    registration_can_be_switched_off,
);

async fn session_lifecycle_register_login_me_refresh_reuse_logout(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;

    let account = svc.register("ada@example.com", PASSWORD).await;
    assert_eq!(account["email"], "ada@example.com");
    let user_id = account["id"].as_str().unwrap().to_owned();

    let (access, refresh) = login_issues_claims_for(&svc, &user_id).await;
    let (access2, refresh2) = refresh_rotates(&svc, &access, &refresh).await;
    reuse_revokes_the_family(&svc, &refresh, &refresh2, &access2).await;
    let access_other = svc.access_token("ada@example.com", PASSWORD).await;
    logout_ends_only_its_session(&svc, &access_other).await;

    let anonymous = svc.get("/auth/me").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    svc.stop().await;
    db.remove().await;
}

/// A login's access token carries the documented claims; returns the pair.
async fn login_issues_claims_for(svc: &Service, user_id: &str) -> (String, String) {
    let tokens = svc.login("ada@example.com", PASSWORD).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&access)["typ"], "at+jwt");
    assert_eq!(header_of(&access)["alg"], "EdDSA");

    let me = svc.get_bearer("/auth/me", &access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["sub"], user_id);
    assert_eq!(me["iss"], svc.base.as_str());
    assert_eq!(me["aud"], "login-service");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["scope"], "movies:read");
    assert!(me["jti"].is_string());
    assert_eq!(
        me["exp"].as_i64().unwrap() - me["iat"].as_i64().unwrap(),
        900
    );
    (access, refresh)
}

/// Refresh rotates: a new pair, and the old refresh token is spent.
async fn refresh_rotates(svc: &Service, access: &str, refresh: &str) -> (String, String) {
    let refreshed = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let refreshed: Value = refreshed.json().await.unwrap();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&access2)["sid"], claims_of(access)["sid"]);
    assert_eq!(
        svc.get_bearer("/auth/me", &access2).await.status(),
        StatusCode::OK
    );
    (access2, refresh2)
}

/// Reusing the rotated token is theft or a bug: the family dies, so even
/// the legitimately rotated successor is refused.
async fn reuse_revokes_the_family(svc: &Service, refresh: &str, refresh2: &str, access2: &str) {
    let reused = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    let (status, body) = error_of(reused).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_grant");
    let successor = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh2}))
        .await;
    assert_eq!(successor.status(), StatusCode::UNAUTHORIZED);
    // The dead family's access tokens die with it, without waiting for exp.
    assert_eq!(
        svc.get_bearer("/auth/me", access2).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A new login, then logout: the access token is refused at once and its
/// session's refresh token is dead; `other_session` stays valid.
async fn logout_ends_only_its_session(svc: &Service, other_session: &str) {
    let tokens = svc.login("ada@example.com", PASSWORD).await;
    let access3 = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh3 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let logout = svc
        .call_bearer(Method::POST, "/auth/logout", &access3, None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let refused = svc.get_bearer("/auth/me", &access3).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"login-service\""),
        "{challenge}"
    );
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let after_logout = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh3}))
        .await;
    assert_eq!(after_logout.status(), StatusCode::UNAUTHORIZED);
    // Logging out of one session leaves the others alone.
    assert_eq!(
        svc.get_bearer("/auth/me", other_session).await.status(),
        StatusCode::OK
    );
}

async fn emails_are_unique_case_insensitively_and_trimmed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;

    let account = svc.register("  Grace.Hopper@Example.COM ", PASSWORD).await;
    assert_eq!(account["email"], "Grace.Hopper@Example.COM");
    let again = svc
        .post_json(
            "/auth/register",
            json!({"email": "grace.hopper@example.com", "password": "another password"}),
        )
        .await;
    let (status, body) = error_of(again).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "email_taken");

    let tokens = svc.login(" GRACE.hopper@example.com", PASSWORD).await;
    let claims = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], account["id"]);

    svc.stop().await;
    db.remove().await;
}

async fn unknown_email_and_wrong_password_get_the_same_answer(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("alan@example.com", PASSWORD).await;

    let wrong = svc
        .post_json(
            "/auth/login",
            json!({"email": "alan@example.com", "password": "wrong password"}),
        )
        .await;
    let unknown = svc
        .post_json(
            "/auth/login",
            json!({"email": "nobody@example.com", "password": "wrong password"}),
        )
        .await;
    let too_long = svc
        .post_json(
            "/auth/login",
            json!({"email": "alan@example.com", "password": "x".repeat(500)}),
        )
        .await;
    let wrong = error_of(wrong).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.1["error"], "invalid_credentials");
    assert_eq!(error_of(unknown).await, wrong);
    assert_eq!(error_of(too_long).await, wrong);

    svc.stop().await;
    db.remove().await;
}

/// A token without `movies:write` is refused every write, with an
/// `insufficient_scope` challenge.
async fn assert_readers_cannot_write(svc: &Service, reader: &str, existing: &str, movie: &Value) {
    let forbidden = svc
        .call_bearer(Method::POST, "/movies", reader, Some(movie))
        .await;
    let challenge = forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let (status, body) = error_of(forbidden).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");
    for (method, body) in [(Method::PUT, Some(movie)), (Method::DELETE, None)] {
        let response = svc.call_bearer(method, existing, reader, body).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}

async fn movies_are_public_to_read_and_need_movies_write_to_change(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    cli_add_user(&db.url, "admin@example.com", PASSWORD, "admin");
    svc.register("reader@example.com", PASSWORD).await;
    let admin = svc.access_token("ADMIN@example.com", PASSWORD).await;
    assert_eq!(claims_of(&admin)["scope"], "movies:read movies:write");
    let reader = svc.access_token("reader@example.com", PASSWORD).await;

    let listed: Vec<Value> = svc.get_json("/movies").await;
    assert_eq!(listed.len(), 3, "the seeded catalogue");
    let existing = format!("/movies/{}", listed[0]["id"].as_str().unwrap());
    let one = svc.get(&existing).await;
    assert_eq!(one.status(), StatusCode::OK);

    let movie = json!({"title": "Paris, Texas", "director": "Wim Wenders", "year": 1984});
    let anonymous = svc.post_json("/movies", movie.clone()).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    assert_readers_cannot_write(&svc, &reader, &existing, &movie).await;

    let created = svc
        .call_bearer(Method::POST, "/movies", &admin, Some(&movie))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let path = format!("/movies/{}", created["id"].as_str().unwrap());
    assert_eq!(created["title"], "Paris, Texas");

    let edited = json!({"title": "Paris, Texas", "director": "Wim Wenders", "year": 1985});
    let updated = svc
        .call_bearer(Method::PUT, &path, &admin, Some(&edited))
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let fetched: Value = svc.get_json(&path).await;
    assert_eq!(fetched["year"], 1985);

    let bad_movie = json!({"title": "", "year": 1500});
    let invalid = svc
        .call_bearer(Method::POST, "/movies", &admin, Some(&bad_movie))
        .await;
    assert_eq!(error_of(invalid).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let deleted = svc.call_bearer(Method::DELETE, &path, &admin, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = svc.get(&path).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = svc.call_bearer(Method::DELETE, &path, &admin, None).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    svc.stop().await;
    db.remove().await;
}

async fn registration_can_be_switched_off(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| c.registration = false).await;
    let response = svc
        .post_json(
            "/auth/register",
            json!({"email": "x@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(error_of(response).await.0, StatusCode::NOT_FOUND);
    let doc: Value = svc.get_json("/openapi.json").await;
    assert!(doc["paths"].get("/auth/register").is_none());
    assert!(doc["paths"].get("/auth/login").is_some());

    // Operators still create accounts from the command line.
    cli_add_user(&db.url, "op@example.com", PASSWORD, "user");
    svc.login("op@example.com", PASSWORD).await;

    svc.stop().await;
    db.remove().await;
}
