//! What the layer costs per request, against `jsonwebtoken::decode` alone
//! with the same rules, measured in the same run.
//!
//! For each algorithm (HS256, RS256-2048, ES256, EdDSA) and a realistic
//! 11-claim token:
//! - `decode/ALG`: `jsonwebtoken::decode` with the same key and rules (the
//!   baseline);
//! - `layer/ALG`: a request through `JwtAuthLayer` around a trivial
//!   `service_fn`, from `call` to the response;
//! - `bare/ALG`: the same request through the bare `service_fn`, so the
//!   layer's own cost is `layer - bare`.
//!
//! `scaling/N` verifies HS256 tokens whose payload carries N bytes of
//! distinct members: the time must grow linearly with N (duplicate-member
//! detection switches from a scan to a hash set past 16 members).
//!
//! `source/static/ES256` and `source/remote/ES256` (feature `remote-jwks`):
//! the same ES256 key with the same `kid`, given statically or fetched from
//! a JWKS URL on loopback; the request path must cost the same.
//!
//! `issuers/one/HS256` and `issuers/two/HS256`: the same HS256 token through
//! the plain builder's layer and through a layer trusting two issuers
//! (the token's second), whose unverified `iss` is read to pick the keys:
//! that read is the whole difference.
//!
//! `revoke/none`, `revoke/memory` and `revoke/boxed`: an HS256 request
//! through the layer without a revocation check, with an in-memory store
//! holding 10 000 revocations (answered synchronously, no future), and with
//! the same store behind a future the layer must box and poll.
//!
//! `dpop/…` (feature `dpop`): one layer accepting both schemes
//! (`Dpop::allowed()`, an in-memory replay store, external base set), and
//! per token algorithm (HS256, ES256): `dpop/bearer/ALG`, an unbound token
//! sent as Bearer, and `dpop/proof/ALG+ES256`, a bound token sent as DPoP
//! with a fresh ES256 proof (every check, the replay record included);
//! `dpop/off/ALG` is the Bearer request through a layer without DPoP.
//! Each proof is signed outside the timed routine.
//!
//! Requests are built outside the timed routine. Run with
//! `cargo bench --bench verify`; BENCHMARKS.md explains the ratios.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tower::{Service, ServiceBuilder, service_fn};
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::revoke::{MemoryRevocations, Revocation, RevocationCheck, RevocationFuture};
use tower_jwt_auth::{Algorithm, JwtAuthLayer, RegisteredClaims, VerifyingKey};

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

struct Case {
    alg: Algorithm,
    /// Signs the DPoP rows' bound tokens.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    signing: SigningKey,
    token: String,
    decoding: DecodingKey,
    verifying: VerifyingKey,
}

/// The realistic 11-claim payload every row signs.
fn claims() -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "iss": ISSUER, "sub": "5f2b8c1e-3d4a-4b6c-9e7f-1a2b3c4d5e6f", "aud": AUDIENCE,
        "exp": now + 3600, "iat": now, "nbf": now, "jti": "0b7c7b5e-6a0e-4d5f-8d9c-2f1e3a4b5c6d",
        "email": "ada@example.com", "name": "Ada Lovelace",
        "scope": "movies:read movies:write", "roles": ["admin", "editor"],
    })
}

fn case(alg: Algorithm) -> Case {
    let (signing, decoding, verifying) = match alg {
        Algorithm::HS256 => (
            SigningKey::hmac(alg, "k", SECRET).unwrap(),
            DecodingKey::from_secret(SECRET),
            VerifyingKey::hmac(alg, SECRET).unwrap(),
        ),
        Algorithm::RS256 => (
            SigningKey::from_pem(alg, "k", &fixture("rsa_private.pem")).unwrap(),
            DecodingKey::from_rsa_pem(&fixture("rsa_public.pem")).unwrap(),
            VerifyingKey::rsa_pem(alg, fixture("rsa_public.pem")).unwrap(),
        ),
        Algorithm::ES256 => (
            SigningKey::from_pem(alg, "k", &fixture("ec_private.pem")).unwrap(),
            DecodingKey::from_ec_pem(&fixture("ec_public.pem")).unwrap(),
            VerifyingKey::ec_pem(fixture("ec_public.pem")).unwrap(),
        ),
        Algorithm::EdDSA => (
            SigningKey::from_pem(alg, "k", &fixture("ed_private.pem")).unwrap(),
            DecodingKey::from_ed_pem(&fixture("ed_public.pem")).unwrap(),
            VerifyingKey::ed_pem(fixture("ed_public.pem")).unwrap(),
        ),
        other => panic!("{other:?} is not benchmarked"),
    };
    Case {
        alg,
        token: signing.sign(&claims()).unwrap(),
        signing,
        decoding,
        verifying,
    }
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

fn bench(c: &mut Criterion) {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let case = case(alg);
        let name = format!("{:?}", case.alg);

        let mut validation = Validation::new(case.alg.name().parse().unwrap());
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        // The rules agree: both accept the token.
        jsonwebtoken::decode::<Claims>(&case.token, &case.decoding, &validation).unwrap();
        c.bench_function(&format!("decode/{name}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Claims>(black_box(&case.token), &case.decoding, &validation)
                    .unwrap()
            })
        });

        let layer = JwtAuthLayer::<Claims>::builder()
            .key(case.verifying.clone())
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .build()
            .unwrap();
        let mut protected = ServiceBuilder::new().layer(layer).service(service_fn(echo));
        assert_eq!(
            run(protected.call(request(&case.token))).unwrap().status(),
            200
        );
        c.bench_function(&format!("layer/{name}"), |b| {
            b.iter_batched(
                || request(&case.token),
                |req| run(protected.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });

        let mut bare = service_fn(echo);
        c.bench_function(&format!("bare/{name}"), |b| {
            b.iter_batched(
                || request(&case.token),
                |req| run(bare.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
}

#[derive(Clone, Deserialize)]
#[allow(dead_code)]
struct Subject {
    sub: String,
}

fn scaling(c: &mut Criterion) {
    let key = SigningKey::hmac(Algorithm::HS256, "k", SECRET).unwrap();
    let layer = JwtAuthLayer::<Subject>::builder()
        .hs256(SECRET)
        .max_token_len(1 << 20)
        .build()
        .unwrap();
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    for kib in [4, 16, 64] {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), "u".into());
        claims.insert("exp".into(), exp.into());
        for i in 0..kib * 1024 / 14 {
            claims.insert(format!("m{i:07}"), 0.into());
        }
        let token = key.sign(&claims).unwrap();
        layer.verify(&token).unwrap();
        c.bench_function(&format!("scaling/{kib}KiB"), |b| {
            b.iter(|| layer.verify(black_box(&token)).unwrap())
        });
    }
}

fn issuers(c: &mut Criterion) {
    use tower_jwt_auth::Issuer;
    let case = case(Algorithm::HS256);
    let one = JwtAuthLayer::<Claims>::builder()
        .key(case.verifying.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let two = JwtAuthLayer::<Claims>::builder()
        .issuer_config(
            Issuer::new("https://partner.example.net")
                .hs256(b"another-benchmark-secret-0123456789abcdef")
                .audience(AUDIENCE),
        )
        .issuer_config(
            Issuer::new(ISSUER)
                .key(case.verifying.clone())
                .audience(AUDIENCE),
        )
        .build()
        .unwrap();
    for (name, layer) in [("one", one), ("two", two)] {
        let mut protected = ServiceBuilder::new().layer(layer).service(service_fn(echo));
        assert_eq!(
            run(protected.call(request(&case.token))).unwrap().status(),
            200
        );
        c.bench_function(&format!("issuers/{name}/HS256"), |b| {
            b.iter_batched(
                || request(&case.token),
                |req| run(protected.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
}

#[cfg(feature = "remote-jwks")]
fn source(c: &mut Criterion) {
    use tower_jwt_auth::issue::jwk_set;
    let case = case(Algorithm::ES256);
    let signing = SigningKey::from_pem(Algorithm::ES256, "k", &fixture("ec_private.pem")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(serve_jwks(jwk_set([&signing]).to_string()));
    let builder = || {
        JwtAuthLayer::<Claims>::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
    };
    let remote = runtime.block_on(async {
        let layer = builder().jwks_url(url).build().unwrap();
        layer.ready().await;
        layer
    });
    let fixed = builder()
        .key(case.verifying.clone().with_kid("k"))
        .build()
        .unwrap();
    for (name, layer) in [("static", fixed), ("remote", remote)] {
        let mut protected = ServiceBuilder::new().layer(layer).service(service_fn(echo));
        assert_eq!(
            run(protected.call(request(&case.token))).unwrap().status(),
            200
        );
        c.bench_function(&format!("source/{name}/ES256"), |b| {
            b.iter_batched(
                || request(&case.token),
                |req| run(protected.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    drop(runtime);
}

/// Serves `jwks` at `/jwks` on a random loopback port; returns its URL.
#[cfg(feature = "remote-jwks")]
async fn serve_jwks(jwks: String) -> String {
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let jwks = bytes::Bytes::from(jwks);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let jwks = jwks.clone();
            let service = hyper::service::service_fn(move |_| {
                let response = Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(jwks.clone()));
                async move { response }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    url
}

#[cfg(not(feature = "remote-jwks"))]
fn source(_: &mut Criterion) {}

/// The same store, answering only through a boxed future.
struct Boxed(MemoryRevocations);

impl RevocationCheck for Boxed {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        self.0.is_revoked(claims)
    }
}

fn revocation(c: &mut Criterion) {
    let key = SigningKey::hmac(Algorithm::HS256, "k", SECRET).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = key
        .sign(&serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "sid": "session-1",
            "jti": "live", "iat": now, "exp": now + 3600,
        }))
        .unwrap();
    let store = MemoryRevocations::new();
    store.extend((0..10_000).map(|i| Revocation::token(ISSUER, format!("jti-{i}"), now + 3600)));
    let builder = || {
        JwtAuthLayer::<Subject>::builder()
            .hs256(SECRET)
            .issuer(ISSUER)
            .audience(AUDIENCE)
    };
    for (name, layer) in [
        ("none", builder().build().unwrap()),
        (
            "memory",
            builder().revocation(store.clone()).build().unwrap(),
        ),
        (
            "boxed",
            builder().revocation(Boxed(store.clone())).build().unwrap(),
        ),
    ] {
        let mut protected = ServiceBuilder::new().layer(layer).service(service_fn(echo));
        assert_eq!(run(protected.call(request(&token))).unwrap().status(), 200);
        c.bench_function(&format!("revoke/{name}"), |b| {
            b.iter_batched(
                || request(&token),
                |req| run(protected.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
}

/// A Bearer request against a DPoP request through the same layer.
#[cfg(feature = "dpop")]
fn dpop(c: &mut Criterion) {
    use tower_jwt_auth::dpop::Dpop;

    const BASE: &str = "https://api.example.com";
    let proof_key =
        SigningKey::from_pem(Algorithm::ES256, "proof", &fixture("ec_private.pem")).unwrap();
    let jkt = proof_key.jwk_thumbprint().unwrap();
    // A fresh proof (random `jti`, `iat` now, `ath`) for each request.
    let proof = |token: &str| {
        proof_key
            .dpop_proof("GET", &format!("{BASE}/movies"), Some(token), None)
            .unwrap()
    };
    let dpop_request = |token: &str, proof: String| {
        Request::builder()
            .uri("/movies")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(())
            .unwrap()
    };

    for alg in [Algorithm::HS256, Algorithm::ES256] {
        let case = case(alg);
        let name = format!("{:?}", case.alg);
        // The same 11 claims as the other rows, and `cnf.jkt` for DPoP.
        let mut bound_claims = claims();
        bound_claims["cnf"] = serde_json::json!({ "jkt": jkt });
        let bound = case.signing.sign(&bound_claims).unwrap();
        let builder = || {
            JwtAuthLayer::<Claims>::builder()
                .key(case.verifying.clone())
                .issuer(ISSUER)
                .audience(AUDIENCE)
        };
        let off = builder().build().unwrap();
        let layer = builder()
            .dpop(Dpop::allowed().external_base(BASE).unwrap())
            .build()
            .unwrap();

        let mut without = ServiceBuilder::new().layer(off).service(service_fn(echo));
        assert_eq!(
            run(without.call(request(&case.token))).unwrap().status(),
            200
        );
        c.bench_function(&format!("dpop/off/{name}"), |b| {
            b.iter_batched(
                || request(&case.token),
                |req| run(without.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let mut protected = ServiceBuilder::new().layer(layer).service(service_fn(echo));
        assert_eq!(
            run(protected.call(request(&case.token))).unwrap().status(),
            200
        );
        c.bench_function(&format!("dpop/bearer/{name}"), |b| {
            b.iter_batched(
                || request(&case.token),
                |req| run(protected.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let first = dpop_request(&bound, proof(&bound));
        assert_eq!(run(protected.call(first)).unwrap().status(), 200);
        c.bench_function(&format!("dpop/proof/{name}+ES256"), |b| {
            b.iter_batched(
                || dpop_request(&bound, proof(&bound)),
                |req| run(protected.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
}

#[cfg(not(feature = "dpop"))]
fn dpop(_: &mut Criterion) {}

criterion_group!(benches, bench, scaling, issuers, source, revocation, dpop);
criterion_main!(benches);
