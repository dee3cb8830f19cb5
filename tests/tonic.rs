//! The layer in front of a real tonic 0.14 server on 127.0.0.1 serving
//! `grpc.health.v1.Health`, called by tonic's generated `HealthClient`.

mod common;

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::util::MapRequestLayer;
use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
use tower_jwt_auth::{JwtAuthBuilder, JwtAuthLayer, RegisteredClaims};

use common::{AUDIENCE, ISSUER, SECRET, User, claims, hs256, now};

fn auth() -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

/// A running server and what its handlers saw.
struct Health {
    channel: Channel,
    /// Claims found in the request extensions behind the layer, per call.
    seen: Arc<Mutex<Vec<User>>>,
}

impl Health {
    async fn serve(auth: JwtAuthLayer<User>) -> Health {
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
        Health { channel, seen }
    }

    async fn check(&self, authorization: &[String]) -> Result<ServingStatus, Status> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        for value in authorization {
            request
                .metadata_mut()
                .append("authorization", value.parse().unwrap());
        }
        let response = HealthClient::new(self.channel.clone())
            .check(request)
            .await?;
        Ok(response.into_inner().status())
    }

    async fn check_with(&self, token: &str) -> Result<ServingStatus, Status> {
        self.check(&[format!("Bearer {token}")]).await
    }

    fn seen(&self) -> Vec<User> {
        self.seen.lock().unwrap().clone()
    }
}

fn code(result: Result<ServingStatus, Status>) -> Code {
    result
        .expect_err("the call should have been refused")
        .code()
}

#[tokio::test]
async fn valid_token_reaches_the_health_service_with_claims() {
    let server = Health::serve(auth().build().unwrap()).await;

    let status = server.check_with(&hs256(&claims())).await.unwrap();
    assert_eq!(status, ServingStatus::Serving);
    assert_eq!(
        server.seen(),
        [User {
            sub: "user-1".into(),
            scope: Some("movies:read".into())
        }]
    );
}

#[tokio::test]
async fn missing_token_is_unauthenticated() {
    let server = Health::serve(auth().build().unwrap()).await;

    let status = server.check(&[]).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "A bearer token is required");
    // Another scheme is no bearer token either.
    let status = server.check(&["Basic dXNlcjpwYXNz".into()]).await;
    assert_eq!(code(status), Code::Unauthenticated);
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn expired_token_is_unauthenticated() {
    let server = Health::serve(auth().build().unwrap()).await;
    let mut expired = claims();
    expired["iat"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);

    let status = server.check_with(&hs256(&expired)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "The access token is invalid or has expired"
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn forged_token_is_unauthenticated() {
    let server = Health::serve(auth().build().unwrap()).await;
    let forged = common::mac_raw(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims().to_string(),
        b"another-secret-of-at-least-32-bytes!!",
    );
    // Flip the signature's first character: still canonical base64url,
    // so only the signature check can refuse it.
    let token = hs256(&claims());
    let at = token.rfind('.').unwrap() + 1;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);

    assert_eq!(
        code(server.check_with(&forged).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(server.check_with(&tampered).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(server.check_with("not.a.token").await),
        Code::Unauthenticated
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn missing_scope_is_permission_denied() {
    let server = Health::serve(auth().require_scope("health:read").build().unwrap()).await;

    assert_eq!(
        code(server.check_with(&hs256(&claims())).await),
        Code::PermissionDenied
    );
    let mut reader = claims();
    reader["scope"] = json!("movies:read health:read");
    let status = server.check_with(&hs256(&reader)).await.unwrap();
    assert_eq!(status, ServingStatus::Serving);
}

#[tokio::test]
async fn two_authorization_entries_are_invalid_argument() {
    let server = Health::serve(auth().build().unwrap()).await;
    let token = hs256(&claims());

    let status = server
        .check(&[format!("Bearer {token}"), format!("Bearer {token}")])
        .await;
    assert_eq!(code(status), Code::InvalidArgument);
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn custom_http_renderer_leaves_grpc_answers_alone() {
    let layer = auth()
        .on_rejection(|_| http::Response::new(bytes::Bytes::from_static(b"custom")))
        .build()
        .unwrap();
    let server = Health::serve(layer).await;

    assert_eq!(code(server.check(&[]).await), Code::Unauthenticated);
}

/// A revocation store: fails, or revokes one `jti`.
#[derive(Clone)]
enum Store {
    Down,
    Revoked(&'static str),
}

impl RevocationCheck for Store {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        let answer = match self {
            Store::Down => Err("store unreachable".into()),
            Store::Revoked(jti) => Ok(claims.jti.as_deref() == Some(*jti)),
        };
        Box::pin(async move {
            tokio::task::yield_now().await;
            answer
        })
    }
}

#[tokio::test]
async fn failing_revocation_store_is_unavailable() {
    let server = Health::serve(auth().revocation(Store::Down).build().unwrap()).await;

    let status = server.check_with(&hs256(&claims())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn revoked_token_is_unauthenticated_and_others_pass() {
    let server = Health::serve(auth().revocation(Store::Revoked("t-1")).build().unwrap()).await;
    let mut revoked = claims();
    revoked["jti"] = json!("t-1");
    let mut live = claims();
    live["jti"] = json!("t-2");

    assert_eq!(
        code(server.check_with(&hs256(&revoked)).await),
        Code::Unauthenticated
    );
    let status = server.check_with(&hs256(&live)).await.unwrap();
    assert_eq!(status, ServingStatus::Serving);
    assert_eq!(server.seen().len(), 1);
}

/// A tonic server that also speaks gRPC-web over HTTP/1.1 (tonic-web's
/// `GrpcWebLayer`) behind the auth layer; returns its base URL.
async fn serve_grpc_web(auth: JwtAuthLayer<User>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .accept_http1(true)
        .layer(auth)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(async move { server.await.unwrap() });
    format!("http://{addr}")
}

/// One gRPC-web call of `Health/Check` for the overall status, over
/// HTTP/1.1: a single uncompressed frame holding an empty
/// `HealthCheckRequest`.
async fn grpc_web_check(base: &str, token: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let mut request = client
        .post(format!("{base}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(vec![0u8, 0, 0, 0, 0]);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    response
}

#[tokio::test]
async fn issue7_item_08_grpc_web_over_http1_gets_grpc_answers() {
    let base = serve_grpc_web(auth().build().unwrap()).await;

    // No token: gRPC-web's trailers-only answer, UNAUTHENTICATED.
    let response = grpc_web_check(&base, None).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(headers["grpc-message"], "A bearer token is required");
    assert_eq!(headers["content-type"], "application/grpc-web+proto");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("www-authenticate").is_none());
    assert!(response.bytes().await.unwrap().is_empty());

    // A valid token reaches the health service through tonic-web: a data
    // frame holding `status: SERVING` (field 1 = 1), then a trailers frame
    // with grpc-status 0.
    let response = grpc_web_check(&base, Some(&hs256(&claims()))).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("grpc-status").is_none());
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..7], &[0, 0, 0, 0, 2, 0x08, 0x01], "{body:?}");
    assert_eq!(body[7], 0x80, "trailers frame: {body:?}");
    let trailers = String::from_utf8_lossy(&body[12..]).to_ascii_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test]
async fn issue7_item_08_grpc_answers_off_answers_grpc_web_over_http() {
    let base = serve_grpc_web(auth().grpc_answers(false).build().unwrap()).await;

    let response = grpc_web_check(&base, None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="api""#
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().get("grpc-status").is_none());
}

#[tokio::test]
async fn issue7_item_08_http2_grpc_still_gets_grpc_status() {
    // Real gRPC (HTTP/2, tonic's client) on a server that also accepts
    // HTTP/1.1 for gRPC-web.
    let base = serve_grpc_web(auth().build().unwrap()).await;
    let channel = Channel::from_shared(base).unwrap().connect().await.unwrap();
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", hs256(&claims())).parse().unwrap(),
    );
    let response = HealthClient::new(channel).check(request).await.unwrap();
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
}
