//! Signing tokens and publishing public keys, for issuers such as the
//! companion login service. Issuer and verifier share this crate's key
//! handling, so what one signs the other accepts.
//!
//! # Example
//!
//! ```
//! use tower_jwt_auth::issue::SigningKey;
//! use tower_jwt_auth::{Algorithm, JwtAuthLayer};
//!
//! let secret = b"a-very-long-random-secret-of-32-bytes";
//! let key = SigningKey::hmac(Algorithm::HS256, "k1", secret)?;
//! let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60;
//! let token = key.sign(&serde_json::json!({ "sub": "42", "exp": exp }))?;
//!
//! let layer = JwtAuthLayer::<serde_json::Value>::builder().hs256(secret).build()?;
//! assert_eq!(layer.verify(&token).unwrap()["sub"], "42");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use crate::alg::{Algorithm, Family};
use crate::crypto::ensure_default_installed;
use crate::error::Error;
use crate::keys::{KeySet, VerifyingKey};

/// A private key (or HMAC secret) with its `kid`, pinned to one algorithm.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    public_jwk: Option<serde_json::Value>,
    verifying: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn signing(err: jsonwebtoken::errors::Error) -> Error {
    Error::Signing(err.to_string())
}

impl SigningKey {
    /// An asymmetric private key in PKCS#8 DER: Ed25519 (EdDSA) or EC
    /// P-256/P-384 (ES256/ES384).
    ///
    /// # Errors
    /// When the key does not parse or does not fit `alg`.
    pub fn from_pkcs8_der(
        alg: Algorithm,
        kid: impl Into<String>,
        der: &[u8],
    ) -> Result<Self, Error> {
        let key = match alg.family() {
            Family::Ed => EncodingKey::from_ed_der(der),
            Family::Ec => EncodingKey::from_ec_der(der),
            _ => {
                return Err(Error::InvalidKey(format!(
                    "{alg:?} keys are not PKCS#8 EC/Ed25519 keys"
                )));
            }
        };
        Self::asymmetric(alg, kid.into(), key)
    }

    /// A private key in PEM: PKCS#8 Ed25519 or EC, or PKCS#1/PKCS#8 RSA.
    ///
    /// # Errors
    /// When the key does not parse or does not fit `alg`.
    pub fn from_pem(alg: Algorithm, kid: impl Into<String>, pem: &[u8]) -> Result<Self, Error> {
        let key = match alg.family() {
            Family::Ed => EncodingKey::from_ed_pem(pem),
            Family::Ec => EncodingKey::from_ec_pem(pem),
            Family::Rsa => EncodingKey::from_rsa_pem(pem),
            Family::Hmac => return Err(Error::InvalidKey("use SigningKey::hmac".into())),
        }
        .map_err(|e| Error::InvalidKey(e.to_string()))?;
        Self::asymmetric(alg, kid.into(), key)
    }

    /// An HMAC secret (at least 32 bytes). Its JWK is never published.
    ///
    /// # Errors
    /// Short secrets, or a non-HMAC `alg`.
    pub fn hmac(alg: Algorithm, kid: impl Into<String>, secret: &[u8]) -> Result<Self, Error> {
        // The verifying twin refuses non-HMAC algorithms and short secrets.
        let kid = kid.into();
        let verifying = VerifyingKey::hmac(alg, secret)?.with_kid(kid.clone());
        Ok(SigningKey {
            kid,
            alg,
            key: EncodingKey::from_secret(secret),
            public_jwk: None,
            verifying,
        })
    }

    fn asymmetric(alg: Algorithm, kid: String, key: EncodingKey) -> Result<Self, Error> {
        ensure_default_installed();
        let mut jwk = Jwk::from_encoding_key(&key, alg.to_jsonwebtoken())
            .map_err(|e| Error::InvalidKey(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let public_jwk =
            serde_json::to_value(&jwk).map_err(|e| Error::InvalidKey(e.to_string()))?;
        // The published JWK, read back through the verifier's own JWK
        // handling: what we publish is exactly what verifiers will load.
        let verifying = VerifyingKey::from_jwk(&public_jwk)?;
        let key = SigningKey {
            kid,
            alg,
            key,
            public_jwk: Some(public_jwk),
            verifying,
        };
        // A key that cannot sign should fail here, not on the first login.
        key.sign(&serde_json::json!({}))?;
        Ok(key)
    }

    /// The key id put in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key that verifies this key's tokens, with the same `kid`.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The public JWK (`kty`, curve or modulus, `kid`, `alg`, `use: sig`);
    /// `None` for HMAC secrets.
    pub fn public_jwk(&self) -> Option<&serde_json::Value> {
        self.public_jwk.as_ref()
    }

    /// Signs `claims` with header `{alg, kid, typ: "JWT"}`.
    ///
    /// # Errors
    /// When the claims do not serialize or the backend fails.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, Error> {
        self.sign_with_typ(claims, "JWT")
    }

    /// Signs an RFC 9068 access token: header `typ: at+jwt`.
    ///
    /// # Errors
    /// When the claims do not serialize or the backend fails.
    pub fn sign_access_token<T: Serialize>(&self, claims: &T) -> Result<String, Error> {
        self.sign_with_typ(claims, "at+jwt")
    }

    fn sign_with_typ<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, Error> {
        ensure_default_installed();
        let mut header = Header::new(self.alg.to_jsonwebtoken());
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(signing)
    }
}

/// DPoP proofs signed by an asymmetric key (features `issue` and `dpop`):
/// what a client sends, and what tests of DPoP-protected services need.
#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
impl SigningKey {
    /// The RFC 7638 thumbprint of this key's public JWK: the `cnf.jkt` of
    /// tokens bound to it. `None` for HMAC secrets.
    pub fn jwk_thumbprint(&self) -> Option<String> {
        crate::dpop::thumbprint(self.public_jwk.as_ref()?).ok()
    }

    /// A DPoP proof (RFC 9449 §4.2) for one request: header `typ:
    /// dpop+jwt`, this key's `alg` and public `jwk`; claims a fresh random
    /// `jti`, `htm`, `htu`, `iat` (now), `ath` for `access_token` and
    /// `nonce` when given.
    ///
    /// # Errors
    /// [`Error::Signing`] for an HMAC secret (proofs need a public key) or
    /// when the backend fails.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_jwt_auth::Algorithm;
    /// use tower_jwt_auth::issue::SigningKey;
    ///
    /// # let pem = std::fs::read(format!("{}/tests/fixtures/ec_private.pem", std::env::var("CARGO_MANIFEST_DIR")?))?;
    /// let key = SigningKey::from_pem(Algorithm::ES256, "client", &pem)?;
    /// let proof = key.dpop_proof("GET", "https://api.example.com/movies", Some("the.access.token"), None)?;
    /// assert_eq!(proof.split('.').count(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dpop_proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, Error> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let public = self
            .public_jwk
            .as_ref()
            .ok_or_else(|| Error::Signing("DPoP proofs need an asymmetric key".into()))?;
        // The members the key needs: the `kid`, `use` and `alg` of the
        // published JWK say nothing a proof needs.
        let jwk: serde_json::Map<String, serde_json::Value> = public
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !matches!(name.as_str(), "kid" | "use" | "alg"))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": self.alg.name(), "jwk": jwk });
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = serde_json::json!({
            "jti": random_jti(), "htm": htm, "htu": htu, "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = crate::dpop::access_token_hash(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        ensure_default_installed();
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg.to_jsonwebtoken())
                .map_err(signing)?;
        Ok(format!("{input}.{signature}"))
    }
}

/// 128 bits no other proof of this process (or, with overwhelming
/// probability, of any other) uses: SipHash under the process's random
/// keys of a counter and the time. Unique, not secret, which is all a
/// `jti` must be.
#[cfg(feature = "dpop")]
fn random_jti() -> String {
    use base64::Engine;
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<(
        std::collections::hash_map::RandomState,
        std::collections::hash_map::RandomState,
    )> = std::sync::OnceLock::new();
    let (a, b) = KEYS.get_or_init(Default::default);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let input = (COUNTER.fetch_add(1, Ordering::Relaxed), nanos);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.hash_one(input).to_be_bytes());
    bytes[8..].copy_from_slice(&b.hash_one(input).to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWK set document (`{"keys": [...]}`) of the public keys among `keys`.
pub fn jwk_set<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> serde_json::Value {
    let keys: Vec<_> = keys
        .into_iter()
        .filter_map(|k| k.public_jwk.clone())
        .collect();
    serde_json::json!({ "keys": keys })
}

impl KeySet {
    /// The verifying keys of signing keys: an issuer verifying its own
    /// tokens needs no JWK round trip.
    pub fn from_signing_keys<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Self {
        keys.into_iter().map(|key| key.verifying.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_PRIVATE: &str = include_str!("../tests/fixtures/ed_private.pem");
    const EC_PRIVATE: &str = include_str!("../tests/fixtures/ec_private.pem");

    #[test]
    fn published_keys_verify_what_they_sign() {
        let ed = SigningKey::from_pem(Algorithm::EdDSA, "ed", ED_PRIVATE.as_bytes()).unwrap();
        let ec = SigningKey::from_pem(Algorithm::ES256, "ec", EC_PRIVATE.as_bytes()).unwrap();
        let hs = SigningKey::hmac(Algorithm::HS256, "hs", &[7; 32]).unwrap();
        let jwks = KeySet::from_jwks(&jwk_set([&ed, &ec, &hs])).unwrap();
        assert_eq!(jwks.len(), 2, "secrets are never published");
        let own = KeySet::from_signing_keys([&ed, &ec, &hs]);
        for key in [&ed, &ec, &hs] {
            let token = key
                .sign_access_token(&serde_json::json!({"sub": "x"}))
                .unwrap();
            assert!(own.verify_jws(&token).is_ok());
            assert_eq!(jwks.verify_jws(&token).is_ok(), key.public_jwk().is_some());
        }
        let jwk = ed.public_jwk().unwrap();
        assert_eq!(jwk["kid"], "ed");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none(), "no private material");
    }

    #[cfg(feature = "dpop")]
    #[tokio::test]
    async fn dpop_proofs_pass_the_verifier() {
        use crate::dpop::{Dpop, ProofVerifier};
        let ec = SigningKey::from_pem(Algorithm::ES256, "ec", EC_PRIVATE.as_bytes()).unwrap();
        let ed = SigningKey::from_pem(Algorithm::EdDSA, "ed", ED_PRIVATE.as_bytes()).unwrap();
        let verifier =
            ProofVerifier::new(Dpop::required().external_base("https://a.example").unwrap())
                .unwrap();
        let uri = http::Uri::from_static("/token");
        for key in [&ec, &ed] {
            for (token, nonce) in [(None, None), (Some("a.b.c"), Some("n"))] {
                let proof = key
                    .dpop_proof("POST", "https://a.example/token", token, nonce)
                    .unwrap();
                let mut headers = http::HeaderMap::new();
                headers.insert("dpop", proof.parse().unwrap());
                let verified = verifier
                    .verify(&http::Method::POST, &uri, &headers, token)
                    .await
                    .unwrap();
                assert_eq!(Some(verified.jkt), key.jwk_thumbprint());
                assert_eq!(verified.jti.len(), 22);
            }
        }
        let hs = SigningKey::hmac(Algorithm::HS256, "hs", &[7; 32]).unwrap();
        assert!(
            hs.dpop_proof("GET", "https://a.example/", None, None)
                .is_err()
        );
        assert_eq!(hs.jwk_thumbprint(), None);
        assert_ne!(random_jti(), random_jti());
    }

    #[test]
    fn weak_or_mismatched_keys_are_refused() {
        assert!(SigningKey::hmac(Algorithm::HS256, "k", &[1; 31]).is_err());
        assert!(SigningKey::hmac(Algorithm::RS256, "k", &[1; 32]).is_err());
        assert!(SigningKey::from_pem(Algorithm::ES256, "k", ED_PRIVATE.as_bytes()).is_err());
        assert!(SigningKey::from_pkcs8_der(Algorithm::HS256, "k", b"").is_err());
    }
}
