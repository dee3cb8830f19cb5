//! End-to-end answers to malformed requests: clear JSON errors with the
//! right status, never a server error; on SQLite always and on PostgreSQL
//! when `DATABASE_URL` points at one.

mod common;

use common::{Backend, PASSWORD, Service, TestDb, error_of};
use reqwest::StatusCode;
use serde_json::json;

on_both_backends!(bad_input_gets_clear_json_errors,);

/// Bodies each refused with a clear status: (path, content type, body,
/// expected status).
fn malformed_bodies() -> Vec<(&'static str, &'static str, Vec<u8>, StatusCode)> {
    let mut cases = unreadable_bodies();
    cases.extend(rule_breaking_bodies());
    cases
}

/// Bodies that are not JSON, not declared JSON, or lack a field.
fn unreadable_bodies() -> Vec<(&'static str, &'static str, Vec<u8>, StatusCode)> {
    vec![
        (
            "/auth/login",
            "application/json",
            b"{\"email\":".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/auth/login",
            "application/json",
            b"not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/auth/login",
            "application/json",
            b"{\"email\":\"a@b.c\"}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/login",
            "application/json",
            b"{\"email\":1,\"password\":2}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/login",
            "text/plain",
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/auth/register",
            "application/x-www-form-urlencoded",
            b"email=a".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/auth/refresh",
            "application/json",
            b"{}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ]
}

/// Bodies that parse but break a limit or rule.
fn rule_breaking_bodies() -> Vec<(&'static str, &'static str, Vec<u8>, StatusCode)> {
    vec![
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(
                &json!({"email": "big@example.com", "password": "x".repeat(20 * 1024)}),
            )
            .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(&json!({"email": "short@example.com", "password": "seven77"}))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(&json!({"email": "long@example.com", "password": "x".repeat(129)}))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(&json!({"email": "not an email", "password": PASSWORD})).unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(
                &json!({"email": "nul@example.com", "password": PASSWORD, "name": "a\u{0}b"}),
            )
            .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/login",
            "application/json",
            serde_json::to_vec(&json!({"email": "nul\u{0}@example.com", "password": PASSWORD}))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
        ),
    ]
}

/// Malformed ids, paging parameters, unknown routes and methods.
async fn assert_bad_paths_and_queries_are_refused(svc: &Service) {
    let checks = [
        ("/movies/not-a-uuid", StatusCode::NOT_FOUND),
        (
            "/movies/00000000-0000-4000-8000-000000000000",
            StatusCode::NOT_FOUND,
        ),
        ("/movies/%00", StatusCode::NOT_FOUND),
        ("/movies?limit=abc", StatusCode::BAD_REQUEST),
        ("/movies?limit=0", StatusCode::BAD_REQUEST),
        ("/movies?limit=101", StatusCode::BAD_REQUEST),
        ("/no/such/route", StatusCode::NOT_FOUND),
    ];
    for (path, expected) in checks {
        assert_eq!(error_of(svc.get(path).await).await.0, expected, "{path}");
    }
    let wrong_method = svc
        .client
        .delete(svc.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(wrong_method).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

async fn bad_input_gets_clear_json_errors(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    let post_raw = |path: &'static str, content_type: &'static str, body: Vec<u8>| {
        svc.client
            .post(svc.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    for (path, content_type, body, expected) in malformed_bodies() {
        let response = post_raw(path, content_type, body).await.unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(status, expected, "{path} {content_type}: {error}");
    }

    // Without any content type at all.
    let bare = svc
        .client
        .post(svc.url("/auth/login"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(bare).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Paths and queries.
    assert_bad_paths_and_queries_are_refused(&svc).await;

    // The service is still healthy afterwards.
    svc.register("fine@example.com", PASSWORD).await;
    svc.stop().await;
    db.remove().await;
}
