//! Arbitrary token bytes against fixed HS256, RS256, ES256 and EdDSA keys
//! (plus the Wycheproof JWKs, so seeds verify), through the whole layer:
//! `JwtAuthLayer::verify`, the service with `Authorization: Bearer`, and
//! `KeySet::verify_jws`. Property: no panic.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::{Algorithm, JwtAuthLayer, KeySet, VerifyingKey};
use tower_jwt_auth_fuzz::*;

fn keys() -> Vec<VerifyingKey> {
    let mut keys = vec![
        VerifyingKey::hmac(Algorithm::HS256, HS256_SECRET).unwrap(),
        VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC).unwrap(),
        VerifyingKey::ec_pem(EC_PUBLIC).unwrap(),
        VerifyingKey::ed_pem(ED_PUBLIC).unwrap(),
    ];
    keys.extend(KeySet::from_jwks_str(WYCHEPROOF_JWKS).unwrap().keys().iter().cloned());
    keys
}

static SET: LazyLock<KeySet> = LazyLock::new(|| KeySet::new(keys()));
static LAYER: LazyLock<JwtAuthLayer<serde_json::Value>> = LazyLock::new(|| {
    keys()
        .into_iter()
        .fold(JwtAuthLayer::builder(), |b, k| b.key(k))
        .any_audience()
        .build()
        .unwrap()
});

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = LAYER.verify(token);
        let _ = SET.verify_jws(token);
    }
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(data);
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        let request = Request::builder()
            .header(http::header::AUTHORIZATION, value)
            .body(())
            .unwrap();
        let _ = call(&LAYER, request);
    }
});
