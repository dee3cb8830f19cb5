//! One layer trusting two issuers, each with its own keys and rules, in
//! front of a real axum server (reqwest) and a real tonic server (tonic's
//! `HealthClient`), both on 127.0.0.1: each issuer's tokens pass only
//! under that issuer's keys and rules, and a missing, unknown or swapped
//! `iss` is refused.

#[path = "../common/mod.rs"]
mod common;
#[cfg(feature = "remote-jwks")]
mod remote;

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::{Extension, Json, Router};
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use serde_json::{Value, json};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::util::MapRequestLayer;
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::{Algorithm, Issuer, JwtAuthBuilder, JwtAuthLayer, KeySet, KeyStore};

use common::{ED_PRIVATE, ED_PUBLIC, User, now};

/// Issuer A: our own login service, HS256, audience `movies-api`, the
/// default 30 s leeway, any `typ`.
const A: &str = "https://login.a.test";
const A_SECRET: &[u8] = b"issuer-a-secret-0123456789abcdef-0123";
const A_AUDIENCE: &str = "movies-api";
/// Issuer B: a partner's provider, EdDSA, audience `api://movies`, no
/// leeway, RFC 9068 `typ: at+jwt` required.
const B: &str = "https://idp.b.test/tenant";
const B_AUDIENCE: &str = "api://movies";

fn a_key() -> SigningKey {
    SigningKey::hmac(Algorithm::HS256, "a-1", A_SECRET).unwrap()
}

fn b_key() -> SigningKey {
    SigningKey::from_pem(Algorithm::EdDSA, "b-1", ED_PRIVATE.as_bytes()).unwrap()
}

fn issuer_a() -> Issuer {
    Issuer::new(A).hs256(A_SECRET).audience(A_AUDIENCE)
}

fn issuer_b() -> Issuer {
    Issuer::new(B)
        .ed_pem(ED_PUBLIC)
        .audience(B_AUDIENCE)
        .leeway(std::time::Duration::ZERO)
        .require_typ_at_jwt()
}

fn two_issuers() -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .issuer_config(issuer_a())
        .issuer_config(issuer_b())
}

fn claims(iss: &str, aud: &str, sub: &str) -> Value {
    json!({"iss": iss, "aud": aud, "sub": sub, "iat": now(), "exp": now() + 300})
}

/// A's usual token and B's usual token.
fn from_a() -> String {
    a_key().sign(&claims(A, A_AUDIENCE, "alice")).unwrap()
}

fn from_b() -> String {
    b_key()
        .sign_access_token(&claims(B, B_AUDIENCE, "bob"))
        .unwrap()
}

/// Every refused token, with why it must be refused.
fn refused() -> Vec<(&'static str, String)> {
    let mut expired_10s_ago = claims(A, A_AUDIENCE, "alice");
    expired_10s_ago["exp"] = json!(now() - 10);
    let mut b_expired_10s_ago = claims(B, B_AUDIENCE, "bob");
    b_expired_10s_ago["exp"] = json!(now() - 10);
    let mut no_iss = claims(A, A_AUDIENCE, "alice");
    no_iss.as_object_mut().unwrap().remove("iss");
    vec![
        (
            "A's claims signed with B's key",
            b_key()
                .sign_access_token(&claims(A, A_AUDIENCE, "mallory"))
                .unwrap(),
        ),
        (
            "B's claims signed with A's key",
            a_key()
                .sign_access_token(&claims(B, B_AUDIENCE, "mallory"))
                .unwrap(),
        ),
        (
            "A's token with iss swapped to B",
            a_key().sign(&claims(B, A_AUDIENCE, "alice")).unwrap(),
        ),
        (
            "B's token with iss swapped to A",
            b_key()
                .sign_access_token(&claims(A, B_AUDIENCE, "bob"))
                .unwrap(),
        ),
        (
            "A's token for B's audience",
            a_key().sign(&claims(A, B_AUDIENCE, "alice")).unwrap(),
        ),
        (
            "B's token without typ at+jwt (A would not mind)",
            b_key().sign(&claims(B, B_AUDIENCE, "bob")).unwrap(),
        ),
        (
            "B's token 10 s expired (B allows no leeway)",
            b_key().sign_access_token(&b_expired_10s_ago).unwrap(),
        ),
        (
            "unknown iss, signed with A's key",
            a_key()
                .sign(&claims("https://evil.test", A_AUDIENCE, "alice"))
                .unwrap(),
        ),
        (
            "iss differing from A's by a trailing slash",
            a_key()
                .sign(&claims(&format!("{A}/"), A_AUDIENCE, "alice"))
                .unwrap(),
        ),
        ("no iss at all", a_key().sign(&no_iss).unwrap()),
        (
            "two iss members, A's last",
            common::mac_raw(
                r#"{"alg":"HS256","kid":"a-1"}"#,
                &format!(
                    r#"{{"iss":"{B}","iss":"{A}","aud":"{A_AUDIENCE}","sub":"x","exp":{}}}"#,
                    now() + 300
                ),
                A_SECRET,
            ),
        ),
        (
            "iss as an array",
            a_key()
                .sign(&json!({"iss": [A], "aud": A_AUDIENCE, "sub": "x", "exp": now() + 300}))
                .unwrap(),
        ),
        (
            "A's token, 10 s expired, forged as B's",
            a_key()
                .sign(&{
                    let mut c = expired_10s_ago.clone();
                    c["iss"] = json!(B);
                    c
                })
                .unwrap(),
        ),
    ]
}

/// Serves `auth` in front of an axum route echoing the claims; returns
/// its URL.
async fn serve_http(auth: JwtAuthLayer<User>) -> String {
    async fn me(Extension(user): Extension<User>) -> Json<User> {
        Json(user)
    }
    let app = Router::new().route("/me", get(me)).layer(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/me")
}

async fn get_with(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn over_http_each_issuers_token_passes_only_under_its_own_keys_and_rules() {
    let url = serve_http(two_issuers().build().unwrap()).await;

    for (token, sub) in [(from_a(), "alice"), (from_b(), "bob")] {
        let response = get_with(&url, &token).await;
        assert_eq!(response.status(), StatusCode::OK, "{sub}");
        assert_eq!(response.json::<User>().await.unwrap().sub, sub);
    }
    // A's 30 s leeway is A's own: the same lateness B refuses passes here.
    let mut late = claims(A, A_AUDIENCE, "alice");
    late["exp"] = json!(now() - 10);
    let response = get_with(&url, &a_key().sign(&late).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);

    for (why, token) in refused() {
        let response = get_with(&url, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#),
            "{why}: {challenge}"
        );
    }
}

#[tokio::test]
async fn layer_wide_scopes_apply_to_every_issuer() {
    let url = serve_http(two_issuers().require_scope("movies:write").build().unwrap()).await;

    assert_eq!(
        get_with(&url, &from_a()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_with(&url, &from_b()).await.status(),
        StatusCode::FORBIDDEN
    );
    let mut writer = claims(B, B_AUDIENCE, "bob");
    writer["scope"] = json!("movies:read movies:write");
    let token = b_key().sign_access_token(&writer).unwrap();
    assert_eq!(get_with(&url, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_before_any_key_is_looked_at() {
    // B's keys are not there yet (an empty store is "keys unavailable").
    let b_keys = KeyStore::new(KeySet::default());
    let layer = JwtAuthLayer::<User>::builder()
        .issuer_config(issuer_a())
        .issuer_config(
            Issuer::new(B)
                .key_store(b_keys.clone())
                .audience(B_AUDIENCE),
        )
        .build()
        .unwrap();
    let url = serve_http(layer).await;

    assert_eq!(get_with(&url, &from_a()).await.status(), StatusCode::OK);
    // B's outage is B's: 503, and A's tokens are unaffected.
    let response = get_with(&url, &from_b()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // An unknown issuer is the token's fault whatever any key source is
    // doing: 401, not 503.
    let stranger = a_key()
        .sign(&claims("https://evil.test", A_AUDIENCE, "x"))
        .unwrap();
    assert_eq!(
        get_with(&url, &stranger).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // B's keys arrive (a rotation through the store): B's tokens pass.
    b_keys.replace(KeySet::new([b_key().verifying_key().clone()]));
    assert_eq!(get_with(&url, &from_b()).await.status(), StatusCode::OK);
}

#[test]
fn verify_outside_a_request_picks_the_issuer_too() {
    let layer = two_issuers().build().unwrap();
    assert_eq!(layer.verify(&from_a()).unwrap().sub, "alice");
    assert_eq!(layer.verify(&from_b()).unwrap().sub, "bob");
    for (why, token) in refused() {
        assert!(layer.verify(&token).is_err(), "{why}");
    }
}

#[test]
fn keys_or_rules_on_the_builder_itself_are_refused_beside_issuers() {
    let err = two_issuers().audience("movies-api").build().unwrap_err();
    assert!(err.to_string().contains("go on each Issuer"), "{err}");
    let err = two_issuers().hs256(A_SECRET).build().unwrap_err();
    assert!(err.to_string().contains("go on each Issuer"), "{err}");
    let err = two_issuers().issuer_config(issuer_a()).build().unwrap_err();
    assert!(err.to_string().contains("configured twice"), "{err}");
}

/// Serves `auth` in front of tonic's health service; returns a channel.
async fn serve_grpc(auth: JwtAuthLayer<User>) -> (Channel, Arc<Mutex<Vec<User>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let seen = Arc::clone(&seen);
        MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
            if let Some(user) = request.extensions().get::<User>() {
                seen.lock().unwrap().push(user.clone());
            }
            request
        })
    };
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .layer(auth)
        .layer(record)
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(async move { server.await.unwrap() });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, seen)
}

async fn grpc_code(channel: &Channel, token: &str) -> Code {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match HealthClient::new(channel.clone()).check(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn over_grpc_each_issuers_token_passes_only_under_its_own_keys_and_rules() {
    let (channel, seen) = serve_grpc(two_issuers().build().unwrap()).await;

    assert_eq!(grpc_code(&channel, &from_a()).await, Code::Ok);
    assert_eq!(grpc_code(&channel, &from_b()).await, Code::Ok);
    let subs: Vec<String> = seen.lock().unwrap().iter().map(|u| u.sub.clone()).collect();
    assert_eq!(subs, ["alice", "bob"]);

    for (why, token) in refused() {
        assert_eq!(
            grpc_code(&channel, &token).await,
            Code::Unauthenticated,
            "{why}"
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 2, "no refused call got through");
}

#[tokio::test]
async fn over_grpc_one_issuers_outage_is_unavailable_and_an_unknown_issuer_unauthenticated() {
    let layer = JwtAuthLayer::<User>::builder()
        .issuer_config(issuer_a())
        .issuer_config(
            Issuer::new(B)
                .key_store(KeyStore::new(KeySet::default()))
                .audience(B_AUDIENCE),
        )
        .build()
        .unwrap();
    let (channel, _) = serve_grpc(layer).await;

    assert_eq!(grpc_code(&channel, &from_a()).await, Code::Ok);
    assert_eq!(grpc_code(&channel, &from_b()).await, Code::Unavailable);
    let stranger = a_key()
        .sign(&claims("https://evil.test", A_AUDIENCE, "x"))
        .unwrap();
    assert_eq!(grpc_code(&channel, &stranger).await, Code::Unauthenticated);
}
