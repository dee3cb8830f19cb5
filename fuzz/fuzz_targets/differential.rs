//! Differential against jsonwebtoken: tokens minted with
//! `jsonwebtoken::encode` from claims built from the input. If the layer
//! accepts, `jsonwebtoken::decode` with equivalent validation must accept
//! too (the layer may refuse more, never accept more); a token with one
//! byte changed must be refused by both.
//!
//! Known, deliberate difference kept out of the comparison: RFC 7519 allows
//! a non-integer NumericDate (`exp: 1.8e9`, `1800000000.5`), which the layer
//! accepts and jsonwebtoken (which reads `exp`/`nbf` as u64) refuses; the
//! acceptance check is skipped when `exp` or `nbf` is present but not a u64.
#![no_main]

use std::sync::LazyLock;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth_fuzz::*;

const LEEWAY: u64 = 30;

static LAYER: LazyLock<JwtAuthLayer<Value>> = LazyLock::new(|| {
    JwtAuthLayer::builder()
        .hs256(HS256_SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway(std::time::Duration::from_secs(LEEWAY))
        .build()
        .unwrap()
});
static ENCODING: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_secret(HS256_SECRET));
static DECODING: LazyLock<DecodingKey> = LazyLock::new(|| DecodingKey::from_secret(HS256_SECRET));
static VALIDATION: LazyLock<Validation> = LazyLock::new(|| {
    let mut v = Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = LEEWAY;
    v.validate_nbf = true;
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
});

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A time near now: offsets that cross the leeway boundaries are the
/// interesting ones.
fn time(byte: u8) -> Value {
    json!(now() + i64::from(byte as i8))
}

fn claims(data: &[u8]) -> Map<String, Value> {
    let get = |i: usize| data.get(i).copied().unwrap_or(0);
    let flags = get(0);
    let mut claims = Map::new();
    if flags & 1 != 0 {
        claims.insert("exp".into(), time(get(1)));
    }
    if flags & 2 != 0 {
        claims.insert("nbf".into(), time(get(2)));
    }
    if flags & 4 != 0 {
        claims.insert("iat".into(), time(get(3)));
    }
    let iss = match get(4) % 4 {
        0 => None,
        1 => Some(json!(ISSUER)),
        2 => Some(json!("https://other.example")),
        _ => Some(json!([ISSUER])),
    };
    if let Some(iss) = iss {
        claims.insert("iss".into(), iss);
    }
    let aud = match get(5) % 6 {
        0 => None,
        1 => Some(json!(AUDIENCE)),
        2 => Some(json!([AUDIENCE, "other"])),
        3 => Some(json!("other")),
        4 => Some(json!([])),
        _ => Some(json!(["other"])),
    };
    if let Some(aud) = aud {
        claims.insert("aud".into(), aud);
    }
    // The rest, when it is a JSON object, is merged over: any member, any
    // type, registered claims included.
    if let Some(rest) = data.get(8..)
        && let Ok(Value::Object(extra)) = serde_json::from_slice::<Value>(rest)
    {
        claims.extend(extra);
    }
    claims
}

fn integer_or_absent(claims: &Map<String, Value>, name: &str) -> bool {
    claims.get(name).is_none_or(Value::is_u64)
}

fuzz_target!(|data: &[u8]| {
    let claims = claims(data);
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("JWT".into());
    let Ok(token) = jsonwebtoken::encode(&header, &claims, &ENCODING) else {
        return;
    };
    let ours = LAYER.verify(&token);
    let theirs = jsonwebtoken::decode::<Value>(&token, &DECODING, &VALIDATION);
    if ours.is_ok()
        && integer_or_absent(&claims, "exp")
        && integer_or_absent(&claims, "nbf")
    {
        assert!(
            theirs.is_ok(),
            "the layer accepted what jsonwebtoken refuses ({:?}): {claims:?}",
            theirs.err()
        );
    }

    // One byte changed, to another base64url character or a dot.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let at = usize::from(data.get(6).copied().unwrap_or(0)) * 7 % token.len();
    let mut bytes = token.into_bytes();
    let mut pick = usize::from(data.get(7).copied().unwrap_or(0)) % ALPHABET.len();
    if ALPHABET[pick] == bytes[at] {
        pick = (pick + 1) % ALPHABET.len();
    }
    bytes[at] = ALPHABET[pick];
    let tampered = String::from_utf8(bytes).unwrap();
    assert!(LAYER.verify(&tampered).is_err(), "the layer accepted a tampered token: {tampered}");
    assert!(
        jsonwebtoken::decode::<Value>(&tampered, &DECODING, &VALIDATION).is_err(),
        "jsonwebtoken accepted a tampered token: {tampered}"
    );
});
