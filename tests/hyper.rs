//! The layer in a plain hyper 1 server (hyper-util's auto builder and
//! `TowerToHyperService`, no framework) on 127.0.0.1, driven by reqwest over
//! HTTP/1.1 and hyper-util's client over HTTP/2.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tower::{ServiceBuilder, service_fn};
use tower_jwt_auth::{JwtAuthBuilder, JwtAuthLayer};

use common::{AUDIENCE, ISSUER, SECRET, User, claims, hs256};

fn auth() -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

/// Answers with the claims the layer put in the extensions.
async fn whoami(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.extensions().get::<User>() {
        Some(user) => json!({ "sub": user.sub, "scope": user.scope }),
        None => json!(null),
    };
    Ok(Response::new(Full::from(body.to_string())))
}

/// Serves `whoami` behind `auth` on a random port; returns its base URL.
async fn serve(auth: JwtAuthLayer<User>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .layer(auth)
        .service(service_fn(whoami));
    tokio::spawn(async move {
        let server = Builder::new(TokioExecutor::new());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let connection = server
                .serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service.clone()),
                )
                .into_owned();
            tokio::spawn(connection);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn valid_token_reaches_the_service_with_claims() {
    let base = serve(auth().build().unwrap()).await;

    let response = reqwest::Client::new()
        .get(format!("{base}/whoami"))
        .bearer_auth(hs256(&claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "sub": "user-1", "scope": "movies:read" }));
}

#[tokio::test]
async fn missing_and_bad_tokens_get_challenges() {
    let base = serve(auth().realm("movies").build().unwrap()).await;
    let client = reqwest::Client::new();

    let response = client.get(&base).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        r#"Bearer realm="movies""#
    );

    let response = client
        .get(&base)
        .bearer_auth("e30.e30.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="movies", error="invalid_token""#),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn two_tokens_are_an_invalid_request() {
    let base = serve(auth().token_from_cookie("access_token").build().unwrap()).await;
    let client = reqwest::Client::new();
    let token = hs256(&claims());

    // The cookie alone is fine.
    let response = client
        .get(&base)
        .header(COOKIE, format!("theme=dark; access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let header_and_cookie = client
        .get(&base)
        .bearer_auth(&token)
        .header(COOKIE, format!("access_token={token}"));
    let two_headers = client
        .get(&base)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(AUTHORIZATION, format!("Bearer {token}"));
    for request in [header_and_cookie, two_headers] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
}

#[tokio::test]
async fn works_over_http2() {
    let base = serve(auth().build().unwrap()).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();

    let request = |token: Option<String>| {
        let mut request = Request::get(&base);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.body(Empty::new()).unwrap()
    };

    let response = client
        .request(request(Some(hs256(&claims()))))
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["sub"],
        "user-1"
    );

    let response = client.request(request(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        r#"Bearer realm="api""#
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["error_description"].is_string());
}

/// The review's reproduction (issue 7, item 8): an HTTP/1.1 request that
/// merely claims to be gRPC used to get `HTTP/1.1 200 OK` + `grpc-status:
/// 16`, which an `auth_request` proxy or a cache reads as success.
#[tokio::test]
async fn issue7_item_08_http1_request_with_grpc_content_type_gets_401_not_200() {
    let base = serve(auth().build().unwrap()).await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();

    for content_type in ["application/grpc", "application/grpc+proto"] {
        let response = client
            .post(format!("{base}/grpc.health.v1.Health/Check"))
            .header("content-type", content_type)
            .body(vec![0u8; 5])
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_11);
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{content_type}"
        );
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api""#,
            "{content_type}"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(response.headers().get("grpc-status").is_none());
    }
    // A real token still passes over HTTP/1.1 whatever the content type.
    let response = client
        .post(format!("{base}/whoami"))
        .header("content-type", "application/grpc")
        .bearer_auth(hs256(&claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
