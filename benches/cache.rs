//! What a verified-token cache hit costs per request, against the bare
//! service, measured in the same run.
//!
//! For each algorithm (HS256, RS256-2048, ES256, EdDSA) and the realistic
//! 11-claim token of `benches/verify.rs`:
//! - `bare/ALG`: a request through a trivial `service_fn` (the baseline);
//! - `cached/ALG`: the same request through `JwtAuthLayer` with a
//!   `TokenCache`, the token already cached (every iteration is a hit);
//! - `cached-arc/ALG`: the same with the claims type `Arc<Claims>`, so a
//!   hit hands the service a reference count instead of a deep copy of
//!   five strings and a list (serde's `rc` feature): what the layer itself
//!   costs, apart from the application's claims;
//! - `uncached/ALG`: through the layer without a cache, for comparison;
//! - `miss/HS256`: through the layer with a cache that does not hold the
//!   token (10 000 distinct tokens in turn, 32 entries), against
//!   `rotating/HS256`, the uncached layer over the same tokens: what the
//!   cache adds to a request it cannot answer (lookup, insertion,
//!   eviction).
//!
//! The layer's cost on a hit is `cached - bare`; the target is at most
//! 0.4 µs whatever the algorithm. Requests are built outside the timed
//! routine. Run with `cargo bench --bench cache --features cache`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use serde::Deserialize;
use tower::{Service, ServiceBuilder, service_fn};
use tower_jwt_auth::cache::TokenCache;
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::{Algorithm, JwtAuthLayer, VerifyingKey};

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

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn claims(jti: &str) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "iss": ISSUER, "sub": "5f2b8c1e-3d4a-4b6c-9e7f-1a2b3c4d5e6f", "aud": AUDIENCE,
        "exp": now + 3600, "iat": now, "nbf": now, "jti": jti,
        "email": "ada@example.com", "name": "Ada Lovelace",
        "scope": "movies:read movies:write", "roles": ["admin", "editor"],
    })
}

/// A signed token and the key that verifies it.
fn case(alg: Algorithm) -> (String, VerifyingKey) {
    let claims = claims("0b7c7b5e-6a0e-4d5f-8d9c-2f1e3a4b5c6d");
    let pem = |name| fixture(name);
    let (signing, verifying) = match alg {
        Algorithm::HS256 => (
            SigningKey::hmac(alg, "k", SECRET).unwrap(),
            VerifyingKey::hmac(alg, SECRET).unwrap(),
        ),
        Algorithm::RS256 => (
            SigningKey::from_pem(alg, "k", &pem("rsa_private.pem")).unwrap(),
            VerifyingKey::rsa_pem(alg, pem("rsa_public.pem")).unwrap(),
        ),
        Algorithm::ES256 => (
            SigningKey::from_pem(alg, "k", &pem("ec_private.pem")).unwrap(),
            VerifyingKey::ec_pem(pem("ec_public.pem")).unwrap(),
        ),
        Algorithm::EdDSA => (
            SigningKey::from_pem(alg, "k", &pem("ed_private.pem")).unwrap(),
            VerifyingKey::ed_pem(pem("ed_public.pem")).unwrap(),
        ),
        other => panic!("{other:?} is not benchmarked"),
    };
    (signing.sign(&claims).unwrap(), verifying)
}

/// The services complete at once; polling with a no-op waker keeps
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

async fn echo_arc(request: Request<()>) -> Result<Response<()>, Infallible> {
    black_box(request.extensions().get::<Arc<Claims>>().is_some());
    Ok(Response::new(()))
}

fn layer<C>(key: &VerifyingKey, cache: Option<&TokenCache>) -> JwtAuthLayer<C>
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let builder = JwtAuthLayer::<C>::builder()
        .key(key.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE);
    match cache {
        Some(cache) => builder.cache(cache.clone()),
        None => builder,
    }
    .build()
    .unwrap()
}

fn bench(c: &mut Criterion) {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let (token, key) = case(alg);
        let name = format!("{alg:?}");

        let mut bare = service_fn(echo);
        c.bench_function(&format!("bare/{name}"), |b| {
            b.iter_batched(
                || request(&token),
                |req| run(bare.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });

        let cache = TokenCache::new();
        let mut cached = ServiceBuilder::new()
            .layer(layer::<Claims>(&key, Some(&cache)))
            .service(service_fn(echo));
        for _ in 0..2 {
            assert_eq!(run(cached.call(request(&token))).unwrap().status(), 200);
        }
        assert_eq!(cache.stats().hits, 1, "the token is cached");
        c.bench_function(&format!("cached/{name}"), |b| {
            b.iter_batched(
                || request(&token),
                |req| run(cached.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.inserts), (1, 1), "every request hit");

        let cache = TokenCache::new();
        let mut cached_arc = ServiceBuilder::new()
            .layer(layer::<Arc<Claims>>(&key, Some(&cache)))
            .service(service_fn(echo_arc));
        for _ in 0..2 {
            assert_eq!(run(cached_arc.call(request(&token))).unwrap().status(), 200);
        }
        c.bench_function(&format!("cached-arc/{name}"), |b| {
            b.iter_batched(
                || request(&token),
                |req| run(cached_arc.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.inserts), (1, 1), "every request hit");

        let mut uncached = ServiceBuilder::new()
            .layer(layer::<Claims>(&key, None))
            .service(service_fn(echo));
        c.bench_function(&format!("uncached/{name}"), |b| {
            b.iter_batched(
                || request(&token),
                |req| run(uncached.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
}

fn misses(c: &mut Criterion) {
    let signing = SigningKey::hmac(Algorithm::HS256, "k", SECRET).unwrap();
    let tokens: Vec<String> = (0..10_000)
        .map(|i| signing.sign(&claims(&format!("{i:036}"))).unwrap())
        .collect();
    let cache = TokenCache::new().max_entries(32);
    let key = VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap();
    let mut service = ServiceBuilder::new()
        .layer(layer::<Claims>(&key, Some(&cache)))
        .service(service_fn(echo));
    let mut uncached = ServiceBuilder::new()
        .layer(layer::<Claims>(&key, None))
        .service(service_fn(echo));
    let mut next = tokens.iter().cycle();
    c.bench_function("rotating/HS256", |b| {
        b.iter_batched(
            || request(next.next().unwrap()),
            |req| run(uncached.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("miss/HS256", |b| {
        b.iter_batched(
            || request(next.next().unwrap()),
            |req| run(service.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // S3-FIFO keeps a few re-seen tokens in its protected queue even
    // through a cyclic scan: a handful of hits, well under 1 %.
    let stats = cache.stats();
    assert!(
        stats.hits * 100 < stats.misses,
        "requests missed: {stats:?}"
    );
}

criterion_group!(benches, bench, misses);
criterion_main!(benches);
