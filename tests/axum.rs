//! The layer and the `Claims` extractors in a real axum 0.8 server on
//! 127.0.0.1, driven by reqwest.

mod common;

use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use serde_json::{Value, json};
use tower_jwt_auth::axum::Claims;
use tower_jwt_auth::{JwtAuthBuilder, JwtAuthLayer};

use common::{AUDIENCE, ISSUER, SECRET, User, claims, hs256, now};

fn auth() -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

/// Serves `app` on a random port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn get_with(url: &str, token: Option<&str>) -> reqwest::Response {
    let request = reqwest::Client::new().get(url);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

fn challenge(response: &reqwest::Response) -> &str {
    response.headers()[WWW_AUTHENTICATE].to_str().unwrap()
}

async fn me(Claims(user): Claims<User>) -> Json<User> {
    Json(user)
}

async fn hello(user: Option<Claims<User>>) -> String {
    match user {
        Some(Claims(user)) => format!("hello, {}", user.sub),
        None => "hello, stranger".to_owned(),
    }
}

fn forged() -> String {
    common::mac_raw(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims().to_string(),
        b"another-secret-of-at-least-32-bytes!!",
    )
}

fn expired() -> String {
    let mut expired = claims();
    expired["iat"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);
    hs256(&expired)
}

#[tokio::test]
async fn layer_hands_verified_claims_to_the_handler() {
    let app = Router::new()
        .route("/me", get(me))
        .layer(auth().build().unwrap());
    let base = serve(app).await;

    let response = get_with(&format!("{base}/me"), Some(&hs256(&claims()))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let user: User = response.json().await.unwrap();
    assert_eq!(
        user,
        User {
            sub: "user-1".into(),
            scope: Some("movies:read".into())
        }
    );
}

#[tokio::test]
async fn missing_token_gets_a_challenge_without_error_code() {
    let base = serve(
        Router::new()
            .route("/me", get(me))
            .layer(auth().build().unwrap()),
    )
    .await;

    let response = get_with(&format!("{base}/me"), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="api""#);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_ne!(body["error"], "invalid_token");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn expired_and_forged_tokens_get_the_same_invalid_token_answer() {
    let base = serve(
        Router::new()
            .route("/me", get(me))
            .layer(auth().build().unwrap()),
    )
    .await;
    let url = format!("{base}/me");

    let mut answers = Vec::new();
    for token in [expired(), forged()] {
        let response = get_with(&url, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = challenge(&response).to_owned();
        assert!(
            challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#),
            "{challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
        answers.push((challenge, body));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn layer_covers_unmatched_routes_but_route_layer_does_not() {
    let layered = serve(
        Router::new()
            .route("/me", get(me))
            .layer(auth().build().unwrap()),
    )
    .await;
    let route_layered = serve(
        Router::new()
            .route("/me", get(me))
            .route_layer(auth().build().unwrap())
            .route("/public", get(|| async { "open" })),
    )
    .await;

    // `layer` wraps the fallback too: an anonymous client learns nothing
    // about which paths exist.
    let response = get_with(&format!("{layered}/nowhere"), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = get_with(&format!("{route_layered}/nowhere"), None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = get_with(&format!("{route_layered}/me"), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="api""#);
    let response = get_with(&format!("{route_layered}/public"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "open");
    let response = get_with(&format!("{route_layered}/me"), Some(&hs256(&claims()))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn optional_layer_lets_strangers_in_but_not_bad_tokens() {
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(auth().optional().build().unwrap());
    let url = format!("{}/hello", serve(app).await);

    let response = get_with(&url, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "hello, stranger");

    let response = get_with(&url, Some(&hs256(&claims()))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "hello, user-1");

    let response = get_with(&url, Some(&forged())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn claims_extractor_without_the_layer_is_a_server_error() {
    let app = Router::new()
        .route("/me", get(me))
        .route("/hello", get(hello));
    let base = serve(app).await;

    let response = get_with(&format!("{base}/me"), Some(&hs256(&claims()))).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The optional form cannot tell a missing layer from a stranger.
    let response = get_with(&format!("{base}/hello"), Some(&hs256(&claims()))).await;
    assert_eq!(response.text().await.unwrap(), "hello, stranger");
}

#[tokio::test]
async fn missing_scope_is_forbidden_with_insufficient_scope() {
    let app = Router::new()
        .route("/movies", get(|| async { "written" }))
        .route_layer(auth().require_scope("movies:write").build().unwrap());
    let url = format!("{}/movies", serve(app).await);

    let response = get_with(&url, Some(&hs256(&claims()))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = challenge(&response).to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.ends_with(r#"scope="movies:write""#),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    let mut writer = claims();
    writer["scope"] = json!("movies:read movies:write");
    let response = get_with(&url, Some(&hs256(&writer))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "written");
}

#[tokio::test]
async fn custom_renderer_replaces_the_http_answer() {
    let layer = auth()
        .realm("movies")
        .on_rejection(|rejection| {
            http::Response::builder()
                .status(rejection.status())
                .header("x-rejected", "yes")
                .body(Bytes::from_static(b"go away"))
                .unwrap()
        })
        .build()
        .unwrap();
    let url = format!(
        "{}/me",
        serve(Router::new().route("/me", get(me)).layer(layer)).await
    );

    let response = get_with(&url, Some(&forged())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-rejected"], "yes");
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    assert_eq!(response.text().await.unwrap(), "go away");
}

#[tokio::test]
async fn layer_serves_concurrent_requests() {
    let app = Router::new()
        .route("/me", get(me))
        .layer(auth().build().unwrap());
    let url = format!("{}/me", serve(app).await);
    let client = reqwest::Client::new();

    let requests = (0..32).map(|i| {
        let mut claims = claims();
        claims["sub"] = json!(format!("user-{i}"));
        let request = client.get(&url).bearer_auth(hs256(&claims));
        async move {
            let user: User = request.send().await.unwrap().json().await.unwrap();
            assert_eq!(user.sub, format!("user-{i}"));
        }
    });
    for handle in requests.map(tokio::spawn).collect::<Vec<_>>() {
        handle.await.unwrap();
    }
}
