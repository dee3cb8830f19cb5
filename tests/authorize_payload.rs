//! In a process of its own, because the switch is process-wide and one-way:
//! authentication layers keep the verified payload only once a policy that
//! reads scopes or roles has been built, and a policy built after a request
//! was authenticated answers that request 500, never lets it through.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::authorize::{Policy, Requirement};
use tower_jwt_auth::axum::Authorized;

use common::{AUDIENCE, ISSUER, SECRET, User, claims, hs256};

fn auth() -> JwtAuthLayer<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap()
}

/// How many extensions the authentication layer leaves on a request.
async fn extensions_after_auth(token: &str) -> usize {
    let seen = Arc::new(AtomicUsize::new(0));
    let inner = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<()>| {
            seen.store(request.extensions().len(), Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(())) }
        })
    };
    let service = ServiceBuilder::new().layer(auth()).service(inner);
    let request = Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    seen.load(Ordering::SeqCst)
}

/// A requirement whose policy is (wrongly) first built on the first request.
struct Writers;

impl Requirement<User> for Writers {
    fn policy() -> &'static Policy<User> {
        static POLICY: LazyLock<Policy<User>> =
            LazyLock::new(|| Policy::builder().scope("movies:write").build().unwrap());
        &POLICY
    }
}

async fn write(Authorized(user, ..): Authorized<User, Writers>) -> String {
    user.sub
}

#[tokio::test]
async fn the_payload_is_kept_only_once_a_policy_reads_it() {
    let mut writer = claims();
    writer["scope"] = json!("movies:write");
    let writer = hs256(&writer);

    // No policy yet: the claims alone, nothing else is allocated.
    assert_eq!(extensions_after_auth(&writer).await, 1);
    // A policy of predicates on `C` needs nothing more.
    Policy::<User>::builder().claims(|_| true).build().unwrap();
    assert_eq!(extensions_after_auth(&writer).await, 1);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/write", listener.local_addr().unwrap());
    let app = Router::new().route("/write", get(write)).layer(auth());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let call = || client.get(&url).bearer_auth(&writer).send();

    // The guard's policy is built during this request, after the layer
    // authenticated it without keeping the payload: it cannot judge.
    let response = call().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["cache-control"], "no-store");
    // From now on the payload is kept, and the guard judges.
    let response = call().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "user-1");
    assert_eq!(extensions_after_auth(&writer).await, 2);
}
