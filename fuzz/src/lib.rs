//! Shared helpers for the fuzz targets: fixed keys, a ready layer, a
//! blocking call through the service.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::JwtAuthLayer;

/// HS256 secret of the fuzz layers (32 bytes, the minimum).
pub const HS256_SECRET: &[u8] = b"fuzz-secret-0123456789abcdef-0123";
pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "fuzz-api";

pub const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");
pub const EC_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ec_public.pem");
pub const ED_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ed_public.pem");
/// The Wycheproof JWKs (public halves and the HS256 secret), so the
/// Wycheproof seed tokens verify and the fuzzer starts past the signature.
pub const WYCHEPROOF_JWKS: &str = include_str!("../wycheproof_jwks.json");

/// Runs one request through the layer on a `service_fn` and returns the
/// status. The inner service answers 200; the layer's rejections are 400,
/// 401, 403 or 503 over HTTP (gRPC answers are 200 with `grpc-status`).
pub fn call<C>(layer: &JwtAuthLayer<C>, request: Request<()>) -> StatusCode
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let inner = service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let service = layer.layer(inner);
    let response = futures::executor::block_on(service.oneshot(request))
        .unwrap_or_else(|never| match never {});
    response.status()
}

/// Splits fuzz input into at most `n` parts at 0xFF bytes (the seeds
/// never use that byte inside a part).
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |&b| b == 0xFF).collect()
}
