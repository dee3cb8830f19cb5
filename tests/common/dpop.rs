//! DPoP helpers: a movable clock, proof keys from the fixtures, proofs
//! signed with jsonwebtoken, access tokens bound to a key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tower_jwt_auth::Algorithm;
use tower_jwt_auth::dpop::{access_token_hash, thumbprint};
use tower_jwt_auth::issue::SigningKey;

use super::{AUDIENCE, ISSUER, hs256};

/// The layer's clock, in whole seconds, moved by the test.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn new() -> Self {
        TestClock(Arc::new(AtomicU64::new(super::now() as u64)))
    }

    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn source(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let clock = self.clone();
        move || UNIX_EPOCH + Duration::from_secs(clock.now())
    }
}

/// A client's proof key: what signs, and the public JWK it embeds.
pub struct ProofKey {
    pub alg: Algorithm,
    pub encoding: jsonwebtoken::EncodingKey,
    pub jwk: Value,
    pub jkt: String,
}

pub fn proof_key(alg: Algorithm) -> ProofKey {
    proof_key_from(alg, pem_for(alg))
}

pub fn pem_for(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => super::EC_PRIVATE,
        Algorithm::ES384 => super::EC384_PRIVATE,
        Algorithm::RS256 | Algorithm::PS256 => super::RSA_PRIVATE,
        Algorithm::EdDSA => super::ED_PRIVATE,
        other => panic!("no proof key for {other:?}"),
    }
}

pub fn proof_key_from(alg: Algorithm, pem: &str) -> ProofKey {
    // Also installs jsonwebtoken's default provider for the signing below.
    let signing = SigningKey::from_pem(alg, "proof", pem.as_bytes()).unwrap();
    let mut jwk = signing.public_jwk().unwrap().clone();
    for member in ["kid", "use", "alg"] {
        jwk.as_object_mut().unwrap().remove(member);
    }
    let encoding = match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
        }
        Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    let jkt = thumbprint(&jwk).unwrap();
    ProofKey {
        alg,
        encoding,
        jwk,
        jkt,
    }
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// A proof under construction: its header and claims as JSON text, so
/// that tests can write anything (duplicates included).
#[derive(Clone)]
pub struct Proof {
    pub header: Value,
    pub claims: Value,
    /// Replaces the header's JSON text, for members JSON values cannot
    /// repeat.
    pub raw_header: Option<String>,
    pub raw_claims: Option<String>,
}

impl Proof {
    pub fn new(key: &ProofKey, htm: &str, htu: &str, iat: u64) -> Self {
        Proof {
            header: json!({ "typ": "dpop+jwt", "alg": key.alg.name(), "jwk": key.jwk }),
            claims: json!({
                "jti": format!("jti-{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::SeqCst)),
                "htm": htm,
                "htu": htu,
                "iat": iat,
            }),
            raw_header: None,
            raw_claims: None,
        }
    }

    pub fn for_token(key: &ProofKey, htm: &str, htu: &str, iat: u64, token: &str) -> Self {
        Proof::new(key, htm, htu, iat).claim("ath", json!(access_token_hash(token)))
    }

    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header[name] = value;
        self
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.header.as_object_mut().unwrap().remove(name);
        self
    }

    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims[name] = value;
        self
    }

    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.as_object_mut().unwrap().remove(name);
        self
    }

    pub fn signed_by(&self, key: &ProofKey) -> String {
        let header = self
            .raw_header
            .clone()
            .unwrap_or_else(|| self.header.to_string());
        let claims = self
            .raw_claims
            .clone()
            .unwrap_or_else(|| self.claims.to_string());
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let alg: jsonwebtoken::Algorithm = key.alg.name().parse().unwrap();
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, alg).unwrap();
        format!("{input}.{signature}")
    }
}

/// An HS256 access token, bound to `jkt` when given.
pub fn token(clock: &TestClock, jkt: Option<&str>) -> String {
    let now = clock.now();
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1",
        "iat": now, "exp": now + 3600, "scope": "movies:read",
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    hs256(&claims)
}
