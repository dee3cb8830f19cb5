//! Per-route authorization (issue 10): an `AuthorizeLayer` on one route of
//! a real axum server and around a real tonic server on 127.0.0.1, and the
//! `Authorized` extractor guard. 401 for no or a bad token, 403 (gRPC 7)
//! for a valid token that lacks what the route requires.

mod common;

use std::sync::LazyLock;

use axum::Router;
use axum::routing::{get, post};
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use serde_json::{Value, json};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_jwt_auth::authorize::{Policy, Requirement, Roles};
use tower_jwt_auth::axum::{Authorized, Claims};
use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
use tower_jwt_auth::{JwtAuthBuilder, JwtAuthLayer, RegisteredClaims};

use common::{AUDIENCE, ISSUER, SECRET, User, claims, hs256};

fn auth() -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

/// A valid token whose claims are the defaults with `extra` merged in
/// (`null` removes a member).
fn token(extra: Value) -> String {
    let mut claims = claims();
    let members = claims.as_object_mut().unwrap();
    for (name, value) in extra.as_object().unwrap() {
        match value {
            Value::Null => members.remove(name),
            value => members.insert(name.clone(), value.clone()),
        };
    }
    hs256(&claims)
}

fn writers() -> Policy<User> {
    Policy::builder().scope("movies:write").build().unwrap()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn send(method: &str, url: &str, token: Option<&str>) -> reqwest::Response {
    let request = reqwest::Client::new().request(method.parse().unwrap(), url);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

fn challenge(response: &reqwest::Response) -> &str {
    response.headers()[WWW_AUTHENTICATE].to_str().unwrap()
}

const INSUFFICIENT_WRITE: &str = "Bearer realm=\"api\", error=\"insufficient_scope\", \
    error_description=\"The access token lacks the required scope\", scope=\"movies:write\"";

/// `POST /movies` requires `movies:write` through `route_layer`; `GET
/// /catalogue` only a valid token.
async fn movies(auth: JwtAuthLayer<User>) -> String {
    let app = Router::new()
        .route("/movies", post(|| async { "created" }))
        .route_layer(auth.require(writers()))
        .route("/catalogue", get(|| async { "list" }))
        .layer(auth);
    serve(app).await
}

#[tokio::test]
async fn route_layer_requires_its_scope_on_its_route_only() {
    let base = movies(auth().build().unwrap()).await;
    let create = format!("{base}/movies");
    let list = format!("{base}/catalogue");
    let reader = token(json!({"scope": "movies:read"}));
    let writer = token(json!({"scope": "movies:read movies:write"}));

    let response = send("POST", &create, Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&response), INSUFFICIENT_WRITE);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "movies:write");

    let response = send("POST", &create, Some(&writer)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "created");
    let response = send("GET", &list, Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let scp = token(json!({"scope": null, "scp": ["movies:write"]}));
    let response = send("POST", &create, Some(&scp)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn no_token_or_a_bad_one_is_401_not_403() {
    let base = movies(auth().build().unwrap()).await;
    let create = format!("{base}/movies");

    let response = send("POST", &create, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer realm=\"api\"");

    let mut expired = claims();
    expired["exp"] = json!(common::now() - 300);
    expired["iat"] = json!(common::now() - 600);
    let response = send("POST", &create, Some(&hs256(&expired))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn behind_an_optional_layer_strangers_get_401_from_the_route() {
    let base = movies(auth().optional().build().unwrap()).await;
    let create = format!("{base}/movies");

    let response = send("POST", &create, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer realm=\"api\"");
    let response = send("GET", &format!("{base}/catalogue"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reader = token(json!({"scope": "movies:read"}));
    let response = send("POST", &create, Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn route_layer_answers_with_the_realm_of_its_authentication_layer() {
    let base = movies(auth().realm("movies").build().unwrap()).await;
    let reader = token(json!({"scope": "movies:read"}));
    let response = send("POST", &format!("{base}/movies"), Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        challenge(&response).starts_with("Bearer realm=\"movies\", error=\"insufficient_scope\"")
    );
}

/// Keycloak: `admin` as a realm role, `editor` as a role of client
/// `movies.api` (a client id with a dot).
fn keycloak(realm: &[&str], client: &[&str]) -> String {
    token(json!({
        "realm_access": {"roles": realm},
        "resource_access": {"movies.api": {"roles": client}, "account": {"roles": ["admin"]}},
    }))
}

#[tokio::test]
async fn realm_and_client_roles_are_kept_apart_over_http() {
    let auth = auth().build().unwrap();
    let realm_admin = Policy::builder()
        .role(Roles::realm(), "admin")
        .build()
        .unwrap();
    let client_admin = Policy::builder()
        .role(Roles::client("movies.api"), "admin")
        .build()
        .unwrap();
    let editors = Policy::builder()
        .any_role(Roles::client("movies.api"), ["editor", "admin"])
        .build()
        .unwrap();
    let app = Router::new()
        .route("/realm-admin", get(|| async { "ok" }))
        .route_layer(auth.require(realm_admin))
        .merge(
            Router::new()
                .route("/client-admin", get(|| async { "ok" }))
                .route_layer(auth.require(client_admin)),
        )
        .merge(
            Router::new()
                .route("/edit", get(|| async { "ok" }))
                .route_layer(auth.require(editors)),
        )
        .layer(auth);
    let base = serve(app).await;
    let status = |path: &'static str, token: String| {
        let url = format!("{base}{path}");
        async move { send("GET", &url, Some(&token)).await.status() }
    };

    let realm_only = || keycloak(&["admin"], &[]);
    let client_only = || keycloak(&[], &["admin"]);
    assert_eq!(status("/realm-admin", realm_only()).await, StatusCode::OK);
    assert_eq!(
        status("/client-admin", realm_only()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status("/edit", realm_only()).await, StatusCode::FORBIDDEN);
    assert_eq!(status("/client-admin", client_only()).await, StatusCode::OK);
    assert_eq!(status("/edit", client_only()).await, StatusCode::OK);
    assert_eq!(
        status("/realm-admin", client_only()).await,
        StatusCode::FORBIDDEN
    );
    // The other client's "admin" counts for neither.
    assert_eq!(
        status("/realm-admin", keycloak(&[], &[])).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status("/client-admin", keycloak(&[], &[])).await,
        StatusCode::FORBIDDEN
    );
}

/// Says `jti` "revoked" is revoked.
struct Store;

impl RevocationCheck for Store {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        let revoked = claims.jti.as_deref() == Some("revoked");
        Box::pin(async move { Ok(revoked) })
    }
}

#[tokio::test]
async fn a_revoked_token_is_401_even_where_it_lacks_the_scope() {
    let base = movies(auth().revocation(Store).build().unwrap()).await;
    let create = format!("{base}/movies");
    let revoked = token(json!({"scope": "movies:read", "jti": "revoked"}));
    let response = send("POST", &create, Some(&revoked)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let live = token(json!({"scope": "movies:read", "jti": "live"}));
    assert_eq!(
        send("POST", &create, Some(&live)).await.status(),
        StatusCode::FORBIDDEN
    );
    // The layer-wide form keeps the same order.
    let base = serve(
        Router::new()
            .route("/movies", post(|| async { "created" }))
            .layer(
                auth()
                    .require_scope("movies:write")
                    .revocation(Store)
                    .build()
                    .unwrap(),
            ),
    )
    .await;
    let create = format!("{base}/movies");
    assert_eq!(
        send("POST", &create, Some(&revoked)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = send("POST", &create, Some(&live)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&response), INSUFFICIENT_WRITE);
}

/// Users whose `sub` starts with "staff-" and whose token grants
/// `movies:write` or `movies:admin`.
struct Staff;

impl Requirement<User> for Staff {
    const REALM: &'static str = "movies";

    fn policy() -> &'static Policy<User> {
        static POLICY: LazyLock<Policy<User>> = LazyLock::new(|| {
            Policy::builder()
                .any_scope(["movies:write", "movies:admin"])
                .claims(|user: &User| user.sub.starts_with("staff-"))
                .build()
                .unwrap()
        });
        &POLICY
    }
}

async fn staff_only(Authorized(user, ..): Authorized<User, Staff>) -> String {
    format!("hello, {}", user.sub)
}

#[tokio::test]
async fn the_extractor_guard_lets_only_its_requirement_through() {
    Staff::policy();
    let app = Router::new()
        .route("/staff", get(staff_only))
        .route(
            "/me",
            get(|Claims(user): Claims<User>| async move { user.sub }),
        )
        .layer(auth().optional().build().unwrap());
    let base = serve(app).await;
    let url = format!("{base}/staff");

    let staff = token(json!({"sub": "staff-1", "scope": "movies:admin"}));
    let response = send("GET", &url, Some(&staff)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "hello, staff-1");

    let outsider = token(json!({"sub": "user-1", "scope": "movies:admin"}));
    let response = send("GET", &url, Some(&outsider)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&response),
        "Bearer realm=\"movies\", error=\"insufficient_scope\", \
         error_description=\"The access token does not grant access to this resource\""
    );

    let reader = token(json!({"sub": "staff-2", "scope": "movies:read"}));
    let response = send("GET", &url, Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&response).ends_with("scope=\"movies:write movies:admin\""));

    let response = send("GET", &url, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer realm=\"movies\"");
    let response = send("GET", &url, Some("not.a.token")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// A tonic health server behind `auth` and then `require`.
async fn health(auth: JwtAuthLayer<User>, policy: Policy<User>) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, service) = tonic_health::server::health_reporter();
    let required = auth.require(policy);
    let server = Server::builder()
        .layer(auth)
        .layer(required)
        .add_service(service)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(async move { server.await.unwrap() });
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn check(channel: &Channel, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    HealthClient::new(channel.clone())
        .check(request)
        .await
        .map(drop)
}

#[tokio::test]
async fn grpc_gets_permission_denied_for_403_and_unauthenticated_for_401() {
    let channel = health(auth().build().unwrap(), writers()).await;

    let writer = token(json!({"scope": "movies:write"}));
    check(&channel, Some(&writer)).await.unwrap();
    let reader = token(json!({"scope": "movies:read"}));
    let status = check(&channel, Some(&reader)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "The access token lacks the required scope"
    );
    let status = check(&channel, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = check(&channel, Some("a.b.c")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn grpc_roles_and_strangers_behind_an_optional_layer() {
    let admins = Policy::builder()
        .role(Roles::client("movies.api"), "admin")
        .build()
        .unwrap();
    let channel = health(auth().optional().build().unwrap(), admins).await;

    check(&channel, Some(&keycloak(&[], &["admin"])))
        .await
        .unwrap();
    let status = check(&channel, Some(&keycloak(&["admin"], &[])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = check(&channel, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
