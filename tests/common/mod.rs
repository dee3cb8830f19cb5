//! Shared by the integration tests: keys, token minting, claim sets.
#![allow(dead_code, unreachable_pub)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use tower_jwt_auth::Algorithm;
use tower_jwt_auth::issue::SigningKey;

#[cfg(feature = "dpop")]
pub mod dpop;

pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";
pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "movies-api";

pub const RSA_PRIVATE: &str = include_str!("../fixtures/rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../fixtures/rsa_public.pem");
pub const RSA2_PRIVATE: &str = include_str!("../fixtures/rsa2_private.pem");
pub const EC_PRIVATE: &str = include_str!("../fixtures/ec_private.pem");
pub const EC_PUBLIC: &str = include_str!("../fixtures/ec_public.pem");
pub const EC384_PRIVATE: &str = include_str!("../fixtures/ec384_private.pem");
pub const EC384_PUBLIC: &str = include_str!("../fixtures/ec384_public.pem");
pub const ED_PRIVATE: &str = include_str!("../fixtures/ed_private.pem");
pub const ED_PUBLIC: &str = include_str!("../fixtures/ed_public.pem");

/// The application's claims type in the tests.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub sub: String,
    #[serde(default)]
    pub scope: Option<String>,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A valid claim set for the default test verifier.
pub fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1",
        "iat": now(), "exp": now() + 300, "scope": "movies:read",
    })
}

pub fn hs256_key() -> SigningKey {
    SigningKey::hmac(Algorithm::HS256, "hs", SECRET).unwrap()
}

pub fn key(alg: Algorithm) -> SigningKey {
    let pem = match alg {
        Algorithm::HS256 => return hs256_key(),
        Algorithm::RS256 | Algorithm::PS256 => RSA_PRIVATE,
        Algorithm::ES256 => EC_PRIVATE,
        Algorithm::ES384 => EC384_PRIVATE,
        Algorithm::EdDSA => ED_PRIVATE,
        other => panic!("no fixture for {other:?}"),
    };
    SigningKey::from_pem(alg, format!("{alg:?}"), pem.as_bytes()).unwrap()
}

/// An HS256 token over `claims`.
pub fn hs256(claims: &serde_json::Value) -> String {
    hs256_key().sign(claims).unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a hand-written header and payload (raw JSON text, so
/// duplicates and odd types survive), MACed with the test secret.
pub fn hs256_raw(header: &str, payload: &str) -> String {
    mac_raw(header, payload, SECRET)
}

pub fn mac_raw(header: &str, payload: &str, secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}
