//! Arbitrary bytes as a JWK set (`KeySet::from_jwks_str`, `from_jwks`) and as
//! single JWKs (`VerifyingKey::from_jwk`); any set that loads is then used
//! to check a fixed token. Property: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::{JwtAuthLayer, KeySet, VerifyingKey};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImtpZC1hZXMtc2lnbiJ9.eyJleHAiOjE4MDAwMDAwMDB9.AAAA";

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(set) = KeySet::from_jwks_str(text)
    {
        let _ = set.verify_jws(TOKEN);
        let layer = JwtAuthLayer::<serde_json::Value>::builder().jwks_str(text).build();
        if let Ok(layer) = layer {
            let _ = layer.verify(TOKEN);
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = KeySet::from_jwks(&value);
        let _ = VerifyingKey::from_jwk(&value);
        if let Some(keys) = value.get("keys").and_then(|k| k.as_array()) {
            for jwk in keys {
                let _ = VerifyingKey::from_jwk(jwk);
            }
        }
    }
});
