//! One verification key, pinned to one algorithm, and every way to make one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::{AlgorithmFamily, DecodingKey, DecodingKeyKind};

use super::{JwkPolicy, cache, jwk, min_hmac_secret_len, rsa};
use crate::alg::Algorithm;
use crate::error::Error;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One public key (or HMAC secret) pinned to one algorithm, with an
/// optional `kid`.
#[derive(Clone)]
pub struct VerifyingKey {
    id: u64,
    pub(super) kid: Option<Arc<str>>,
    pub(super) alg: Algorithm,
    key: Arc<DecodingKey>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn family_of(alg: Algorithm) -> AlgorithmFamily {
    alg.to_jsonwebtoken().family()
}

impl VerifyingKey {
    /// Wraps a signature-library key, pinned to `alg`: every public
    /// constructor ends here, so every key gets the same checks.
    pub(crate) fn from_decoding_key(alg: Algorithm, key: DecodingKey) -> Result<Self, Error> {
        if key.family() != family_of(alg) {
            return Err(Error::InvalidKey(format!(
                "a {:?} key cannot verify {alg:?}",
                key.family()
            )));
        }
        if key.family() == AlgorithmFamily::Hmac {
            let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            if len < min_hmac_secret_len(alg) {
                return Err(Error::WeakSecret { len });
            }
        }
        // jsonwebtoken parses RSA keys only while verifying: parse them now,
        // so an unusable key is a configuration error, not a refused token.
        if key.family() == AlgorithmFamily::Rsa {
            match key.kind() {
                DecodingKeyKind::SecretOrDer(der) => {
                    let (n, e) = rsa::parse_pkcs1(der)?;
                    rsa::check(n, e)?;
                }
                DecodingKeyKind::RsaModulusExponent { n, e } => rsa::check(n, e)?,
            }
        }
        // jsonwebtoken's Ed25519 verifier slices the first 32 bytes without a
        // length check: anything else must never reach it.
        if key.family() == AlgorithmFamily::Ed
            && key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32)
        {
            return Err(Error::InvalidKey(
                "an Ed25519 public key is 32 bytes".into(),
            ));
        }
        if !cache::check_usable(alg, &key) {
            return Err(Error::InvalidKey(format!(
                "the {alg:?} backend rejects this key"
            )));
        }
        Ok(VerifyingKey {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            kid: None,
            alg,
            key: Arc::new(key),
        })
    }

    /// An HMAC secret for HS256, HS384 or HS512.
    ///
    /// # Errors
    /// [`Error::WeakSecret`] below the hash output size (32 bytes for
    /// HS256, 48 for HS384, 64 for HS512; RFC 7518 §3.2);
    /// [`Error::InvalidKey`] when `alg` is not an HMAC algorithm.
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, Error> {
        Self::from_decoding_key(alg, DecodingKey::from_secret(secret.as_ref()))
    }

    /// An RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) for one of
    /// RS256/384/512 or PS256/384/512. Every RSA key, whatever its form
    /// (PEM, DER, JWK, file), is parsed here and must have a modulus of
    /// [`MIN_RSA_BITS`](super::MIN_RSA_BITS) to [`MAX_RSA_BITS`](super::MAX_RSA_BITS) bits and an odd exponent from 3
    /// to 2^33 − 1.
    ///
    /// # Errors
    /// When the PEM is not an RSA public key of that size or `alg` is not
    /// an RSA algorithm.
    pub fn rsa_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        let key = DecodingKey::from_rsa_pem(pem.as_ref()).map_err(invalid)?;
        Self::from_decoding_key(alg, key)
    }

    /// An RSA public key in PKCS#1 DER, parsed and size-checked as for
    /// [`VerifyingKey::rsa_pem`].
    ///
    /// # Errors
    /// When the DER is not a PKCS#1 RSA public key of an accepted size, or
    /// `alg` is not an RSA algorithm.
    pub fn rsa_der(alg: Algorithm, der: impl AsRef<[u8]>) -> Result<Self, Error> {
        Self::from_decoding_key(alg, DecodingKey::from_rsa_der(der.as_ref()))
    }

    /// An EC public key (P-256 or P-384) in PEM; the algorithm (ES256 or
    /// ES384) follows from the curve.
    ///
    /// # Errors
    /// When the PEM is not an EC public key on a supported curve.
    pub fn ec_pem(pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        let key = DecodingKey::from_ec_pem(pem.as_ref()).map_err(invalid)?;
        let alg = ec_alg_for_point(key.try_get_as_bytes().map_err(invalid)?)?;
        Self::from_decoding_key(alg, key)
    }

    /// An Ed25519 public key in PEM, for EdDSA.
    ///
    /// # Errors
    /// When the PEM is not an Ed25519 public key.
    pub fn ed_pem(pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        let key = DecodingKey::from_ed_pem(pem.as_ref()).map_err(invalid)?;
        Self::from_decoding_key(Algorithm::EdDSA, key)
    }

    /// Any public key PEM: RSA (pinned to RS256; use
    /// [`VerifyingKey::rsa_pem`] for another RSA algorithm), EC P-256/P-384
    /// (ES256/ES384) or Ed25519 (EdDSA).
    ///
    /// # Errors
    /// When the PEM is none of those.
    pub fn public_key_pem(pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        let pem = pem.as_ref();
        // An RSA key that fails the size or exponent checks says why.
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Self::from_decoding_key(Algorithm::RS256, key);
        }
        Self::ec_pem(pem)
            .or_else(|_| Self::ed_pem(pem))
            .map_err(|_| {
                Error::InvalidKey("not an RSA, EC (P-256/P-384) or Ed25519 public key PEM".into())
            })
    }

    /// Any public key in SubjectPublicKeyInfo DER (what `openssl pkey
    /// -pubout -outform DER` writes): RSA (RS256), EC P-256/P-384 or
    /// Ed25519, inferred as for [`VerifyingKey::public_key_pem`]. For PKCS#1
    /// RSA DER use [`VerifyingKey::rsa_der`].
    ///
    /// # Errors
    /// When the DER is none of those.
    pub fn public_key_der(der: impl AsRef<[u8]>) -> Result<Self, Error> {
        // jsonwebtoken's DER constructors take raw key material (PKCS#1,
        // SEC1 points); its PEM parser reads SPKI. PEM is base64 DER.
        Self::public_key_pem(spki_pem(der.as_ref()))
    }

    /// A public key file, PEM or SPKI DER, algorithm inferred (RSA →
    /// RS256; see [`VerifyingKey::public_key_pem`]).
    ///
    /// # Errors
    /// When the file cannot be read or holds no supported public key.
    pub fn public_key_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = read(path)?;
        if bytes.starts_with(b"-----BEGIN") {
            Self::public_key_pem(&bytes)
        } else {
            Self::public_key_der(&bytes)
        }
        .map_err(|err| Error::InvalidKey(format!("{}: {err}", path.display())))
    }

    /// One JWK (a JSON object), with its `alg`, `use` and `key_ops` enforced.
    ///
    /// # Errors
    /// When the JWK is malformed, not meant for verification, or unsupported.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, Error> {
        Self::from_jwk_with(jwk, &JwkPolicy::default())
    }

    /// One JWK under `policy`.
    pub(crate) fn from_jwk_with(
        jwk: &serde_json::Value,
        policy: &JwkPolicy,
    ) -> Result<Self, Error> {
        let parsed = jwk::parse(jwk, policy)?;
        let key = Self::from_decoding_key(parsed.alg, parsed.key)?;
        Ok(match parsed.kid {
            Some(kid) => key.with_kid(kid),
            None => key,
        })
    }

    /// Sets the key id a token's `kid` header must name to select this key.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(Arc::from(kid.into()));
        self
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The process-unique id of this key (shared by its clones).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether `other` is this key again: the same `kid`, algorithm and
    /// key material, whatever its id. A key fetched again unchanged is
    /// recognised this way.
    #[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
    pub(crate) fn same_key_as(&self, other: &VerifyingKey) -> bool {
        // Equal algorithms mean equal families: every key is pinned to a
        // family that fits its algorithm when it is made.
        self.kid == other.kid
            && self.alg == other.alg
            && match (self.key.kind(), other.key.kind()) {
                (DecodingKeyKind::SecretOrDer(a), DecodingKeyKind::SecretOrDer(b)) => a == b,
                (
                    DecodingKeyKind::RsaModulusExponent { n, e },
                    DecodingKeyKind::RsaModulusExponent { n: n2, e: e2 },
                ) => n == n2 && e == e2,
                _ => false,
            }
    }

    /// Checks a signature (raw bytes, not base64) over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &Vec<u8>) -> bool {
        #[cfg(test)]
        super::VERIFICATIONS.with(|count| count.set(count.get() + 1));
        cache::verify(self.id, self.alg, &self.key, message, signature)
    }
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|err| Error::Config(format!("{}: {err}", path.display())))
}

fn spki_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

fn invalid(err: jsonwebtoken::errors::Error) -> Error {
    Error::InvalidKey(err.to_string())
}

/// ES256 keys are 65-byte and ES384 keys 97-byte uncompressed SEC1 points.
fn ec_alg_for_point(point: &[u8]) -> Result<Algorithm, Error> {
    match point.len() {
        65 => Ok(Algorithm::ES256),
        97 => Ok(Algorithm::ES384),
        _ => Err(Error::InvalidKey(
            "only P-256 (ES256) and P-384 (ES384) EC keys are supported".into(),
        )),
    }
}
