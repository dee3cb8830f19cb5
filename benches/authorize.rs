//! What per-route authorization costs, against the authentication layer
//! alone, measured in the same run (HS256, the 11-claim token of
//! `verify.rs`, a trivial inner service):
//!
//! - `authorize/bare`: the inner service alone;
//! - `authorize/layer`: `JwtAuthLayer`, before any route policy exists
//!   (nothing kept: the baseline);
//! - `authorize/layer-wide-scope`: the same with `require_scope` (checked
//!   inside the layer, nothing kept);
//!
//! then, once a policy reading scopes has been built (from then on every
//! authentication layer keeps the verified payload):
//!
//! - `authorize/layer-keeping`: `JwtAuthLayer` alone, keeping the payload;
//! - `authorize/route-scope`: plus an `AuthorizeLayer` requiring a scope;
//! - `authorize/route-role`: plus an `AuthorizeLayer` requiring a role at
//!   `roles`.
//!
//! The order matters (the switch is one-way, process-wide), so the groups
//! run in this order in one process. Run with
//! `cargo bench --bench authorize`; BENCHMARKS.md has the figures.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use serde::Deserialize;
use tower::{Service, ServiceBuilder, service_fn};
use tower_jwt_auth::authorize::{Policy, Roles};
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::{Algorithm, JwtAuthBuilder, JwtAuthLayer};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "movies-api";
const SECRET: &[u8] = b"benchmark-secret-0123456789abcdef0123456789";

#[derive(Clone, Debug, Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    email: String,
    name: String,
    scope: String,
    roles: Vec<String>,
}

fn token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "5f2b8c1e-3d4a-4b6c-9e7f-1a2b3c4d5e6f", "aud": AUDIENCE,
        "exp": now + 3600, "iat": now, "nbf": now, "jti": "0b7c7b5e-6a0e-4d5f-8d9c-2f1e3a4b5c6d",
        "email": "ada@example.com", "name": "Ada Lovelace",
        "scope": "movies:read movies:write", "roles": ["admin", "editor"],
    });
    SigningKey::hmac(Algorithm::HS256, "k", SECRET)
        .unwrap()
        .sign(&claims)
        .unwrap()
}

fn auth() -> JwtAuthBuilder<Claims> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

/// The inner services complete at once; polling with a no-op waker keeps
/// executor overhead out of the figures.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("benchmark services never wait"),
    }
}

fn request(token: &str) -> Request<()> {
    Request::builder()
        .uri("/movies")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

async fn echo(request: Request<()>) -> Result<Response<()>, Infallible> {
    black_box(request.extensions().get::<Claims>().is_some());
    Ok(Response::new(()))
}

/// Benchmarks one service on the token, after checking it answers 200.
fn measure<S>(c: &mut Criterion, name: &str, token: &str, mut service: S)
where
    S: Service<Request<()>, Error = Infallible>,
    S::Response: Status,
{
    assert_eq!(run(service.call(request(token))).unwrap().status(), 200);
    c.bench_function(&format!("authorize/{name}"), |b| {
        b.iter_batched(
            || request(token),
            |req| run(service.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

trait Status {
    fn status(&self) -> u16;
}

impl<B> Status for Response<B> {
    fn status(&self) -> u16 {
        Response::status(self).as_u16()
    }
}

fn bench(c: &mut Criterion) {
    let token = token();
    measure(c, "bare", &token, service_fn(echo));
    let layer = auth().build().unwrap();
    measure(
        c,
        "layer",
        &token,
        ServiceBuilder::new().layer(layer).service(service_fn(echo)),
    );
    let wide = auth().require_scope("movies:write").build().unwrap();
    measure(
        c,
        "layer-wide-scope",
        &token,
        ServiceBuilder::new().layer(wide).service(service_fn(echo)),
    );

    // From here on, authentication layers keep the payload.
    let scope = Policy::<Claims>::builder()
        .scope("movies:write")
        .build()
        .unwrap();
    let role = Policy::<Claims>::builder()
        .role(Roles::claim("roles"), "editor")
        .build()
        .unwrap();
    let layer = auth().build().unwrap();
    measure(
        c,
        "layer-keeping",
        &token,
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(echo)),
    );
    measure(
        c,
        "route-scope",
        &token,
        ServiceBuilder::new()
            .layer(layer.clone())
            .layer(layer.require(scope))
            .service(service_fn(echo)),
    );
    measure(
        c,
        "route-role",
        &token,
        ServiceBuilder::new()
            .layer(layer.clone())
            .layer(layer.require(role))
            .service(service_fn(echo)),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
