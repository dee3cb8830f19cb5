//! Verification keys: single keys, key sets chosen by `kid`, and a store
//! that can be swapped atomically while requests are being served.
//!
//! Every key is pinned to exactly one algorithm. A token whose header names
//! another algorithm never reaches the signature check, which is what stops
//! algorithm confusion (an HS256 token "signed" with an RSA public key).
//!
//! # Example
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet, KeyStore, VerifyingKey};
//!
//! let jwks = r#"{"keys":[{"kty":"oct","kid":"k1","alg":"HS256",
//!     "k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}"#;
//! let set = KeySet::from_jwks_str(jwks)?;
//! assert_eq!(set.len(), 1);
//!
//! let store = KeyStore::new(set);
//! // Later, after a rotation, every clone of the store sees the new set:
//! let secret = b"another-secret-of-at-least-32-bytes!!";
//! store.replace(KeySet::new([VerifyingKey::hmac(Algorithm::HS256, secret)?.with_kid("k2")]));
//! assert!(store.load().find(Some("k2"), Algorithm::HS256).next().is_some());
//! # Ok::<(), tower_jwt_auth::Error>(())
//! ```

mod cache;
mod jwk;
mod rsa;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, DecodingKeyKind};

use crate::alg::Algorithm;
use crate::error::Error;

pub use jwk::JwkPolicy;
pub use rsa::{MAX_RSA_BITS, MIN_RSA_BITS};

/// Shortest HMAC secret accepted for any algorithm, in bytes (256 bits,
/// HS256's); HS384 and HS512 need more, see [`min_hmac_secret_len`].
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// Shortest secret accepted for an HMAC algorithm: the hash output size
/// (RFC 7518 §3.2), 32 bytes for HS256, 48 for HS384, 64 for HS512.
pub fn min_hmac_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => MIN_HMAC_SECRET_LEN,
    }
}

/// Most keys one token's signature is checked against.
///
/// A token names its key with `kid`; one without a `kid` (or whose `kid`
/// only matches keys configured without one) would otherwise be tried on
/// every key of its algorithm, one signature verification each: with a
/// large set, one request would cost N verifications. Three covers a
/// rotation window (previous, current and next key, all without `kid`);
/// larger sets should give their keys `kid`s, which select exactly.
pub const MAX_KEYS_TRIED: usize = 3;

#[cfg(test)]
thread_local! {
    /// Signature verifications attempted on this thread (tests only).
    pub(crate) static VERIFICATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One public key (or HMAC secret) pinned to one algorithm, with an
/// optional `kid`.
#[derive(Clone)]
pub struct VerifyingKey {
    id: u64,
    kid: Option<Arc<str>>,
    alg: Algorithm,
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
    /// [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits and an odd exponent from 3
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
        jwk::parse(jwk, &JwkPolicy::default())
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

    /// Checks a signature (raw bytes, not base64) over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &Vec<u8>) -> bool {
        #[cfg(test)]
        VERIFICATIONS.with(|count| count.set(count.get() + 1));
        cache::verify(self.id, self.alg, &self.key, message, signature)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
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

/// An immutable set of verification keys.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// A set of the given keys.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        KeySet {
            keys: keys.into_iter().collect(),
        }
    }

    /// Parses a JWK set document (`{"keys": [...]}`) with the default
    /// [`JwkPolicy`]. Keys that are not for signature verification or of an
    /// unsupported type are skipped (a real-world set also carries
    /// encryption keys); a set that yields no usable key is an error.
    ///
    /// # Errors
    /// Malformed JSON, no `keys` array, or no usable key.
    pub fn from_jwks_str(json: &str) -> Result<Self, Error> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::InvalidJwk(e.to_string()))?;
        Self::from_jwks(&value)
    }

    /// Like [`KeySet::from_jwks_str`], from a file.
    ///
    /// # Errors
    /// The file cannot be read, or as for [`KeySet::from_jwks_str`].
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = String::from_utf8(read(path)?)
            .map_err(|_| Error::InvalidJwk(format!("{}: not UTF-8", path.display())))?;
        Self::from_jwks_str(&text)
    }

    /// Like [`KeySet::from_jwks_str`], from parsed JSON.
    ///
    /// # Errors
    /// No `keys` array, or no usable key.
    pub fn from_jwks(jwks: &serde_json::Value) -> Result<Self, Error> {
        Self::from_jwks_with(jwks, &JwkPolicy::default())
    }

    /// Like [`KeySet::from_jwks`], with an explicit policy.
    ///
    /// # Errors
    /// No `keys` array, or no usable key.
    pub fn from_jwks_with(jwks: &serde_json::Value, policy: &JwkPolicy) -> Result<Self, Error> {
        let set = jwk::parse_set(jwks, policy)?;
        if set.is_empty() {
            return Err(Error::InvalidJwk(
                "the JWK set holds no usable signature key".into(),
            ));
        }
        Ok(set)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Adds a key.
    pub fn push(&mut self, key: VerifyingKey) {
        self.keys.push(key);
    }

    /// Keys that may verify a token with header `kid` and `alg`: keys pinned
    /// to `alg` whose kid equals the token's. A key configured without a kid
    /// (a single static key, typically) answers to any kid, and a token
    /// without a kid may be verified by any key pinned to `alg`.
    ///
    /// Verification checks a token against at most [`MAX_KEYS_TRIED`] of
    /// these: keys whose kid equals the token's first, then the others in
    /// set order. So a token without a kid verifies only with one of the
    /// first three keys of its algorithm; give keys kids in larger sets.
    pub fn find<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        self.keys.iter().filter(move |key| {
            key.alg == alg
                && match (kid, key.kid.as_deref()) {
                    (Some(wanted), Some(have)) => wanted == have,
                    _ => true,
                }
        })
    }
}

impl KeySet {
    /// The keys a token is checked against, at most [`MAX_KEYS_TRIED`]:
    /// exact `kid` matches first, then keys that answer to any kid (or, for
    /// a token without kid, every key of `alg`), in set order. No
    /// allocation: two passes over the set.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        let exact = self
            .keys
            .iter()
            .filter(move |key| key.alg == alg && kid.is_some() && key.kid.as_deref() == kid);
        let open = self
            .keys
            .iter()
            .filter(move |key| key.alg == alg && (kid.is_none() || key.kid.is_none()));
        exact.chain(open).take(MAX_KEYS_TRIED)
    }
}

impl FromIterator<VerifyingKey> for KeySet {
    fn from_iter<T: IntoIterator<Item = VerifyingKey>>(iter: T) -> Self {
        Self::new(iter)
    }
}

/// A shared, atomically replaceable [`KeySet`].
///
/// Cloning the store clones a handle: every layer built with it sees a
/// [`KeyStore::replace`] at once. Readers never lock.
#[derive(Clone)]
pub struct KeyStore {
    current: Arc<ArcSwap<KeySet>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.current.load().len())
            .finish()
    }
}

impl KeyStore {
    /// A store holding `set`.
    pub fn new(set: KeySet) -> Self {
        KeyStore {
            current: Arc::new(ArcSwap::from_pointee(set)),
        }
    }

    /// Replaces the key set for every holder of this store.
    pub fn replace(&self, set: KeySet) {
        self.current.store(Arc::new(set));
    }

    /// The current key set.
    pub fn load(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// A cheap guard on the current set, for the request path.
    pub(crate) fn guard(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }
}

impl From<KeySet> for KeyStore {
    fn from(set: KeySet) -> Self {
        KeyStore::new(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn short_hmac_secrets_are_refused() {
        let err = VerifyingKey::hmac(Algorithm::HS256, b"short").unwrap_err();
        assert!(matches!(err, Error::WeakSecret { len: 5 }));
        assert!(VerifyingKey::hmac(Algorithm::HS256, &SECRET[..31]).is_err());
        assert!(VerifyingKey::hmac(Algorithm::HS256, SECRET).is_ok());
        assert!(VerifyingKey::hmac(Algorithm::HS256, b"").is_err());
    }

    #[test]
    fn issue7_item_10_hmac_secrets_are_at_least_the_hash_size() {
        let secret = [7u8; 64];
        for (alg, min) in [
            (Algorithm::HS256, 32),
            (Algorithm::HS384, 48),
            (Algorithm::HS512, 64),
        ] {
            assert_eq!(min_hmac_secret_len(alg), min);
            assert!(VerifyingKey::hmac(alg, &secret[..min]).is_ok(), "{alg:?}");
            let err = VerifyingKey::hmac(alg, &secret[..min - 1]).unwrap_err();
            assert!(
                matches!(err, Error::WeakSecret { len } if len == min - 1),
                "{alg:?}"
            );
        }
        assert!(VerifyingKey::hmac(Algorithm::HS384, &secret[..40]).is_err());
    }

    #[test]
    fn issue7_item_10_rsa_keys_are_parsed_when_configured() {
        assert!(VerifyingKey::rsa_der(Algorithm::RS256, b"garbage").is_err());
        let pkcs1 = std::fs::read(fixture("rsa_public_pkcs1.der")).unwrap();
        assert!(VerifyingKey::rsa_der(Algorithm::RS256, &pkcs1).is_ok());
        // A well-formed but too small key, by construction: 2041 bits in
        // 256 bytes.
        let mut n = vec![0xffu8; 256];
        n[0] = 0x01;
        let small = DecodingKey::from_rsa_raw_components(&n, &[1, 0, 1]);
        assert!(VerifyingKey::from_decoding_key(Algorithm::RS256, small).is_err());
        n[0] = 0x80;
        let enough = DecodingKey::from_rsa_raw_components(&n, &[1, 0, 1]);
        assert!(VerifyingKey::from_decoding_key(Algorithm::RS256, enough).is_ok());
    }

    #[test]
    fn issue7_item_11_kidless_tokens_cost_at_most_max_keys_tried_verifications() {
        use base64::Engine;
        /// A compact JWS over `{}` with `header`, MACed with `secret`.
        fn mac(secret: &[u8], header: &str) -> String {
            let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            let input = format!("{}.{}", b64(header.as_bytes()), b64(b"{}"));
            crate::crypto::ensure_default_installed();
            let key = jsonwebtoken::EncodingKey::from_secret(secret);
            let signature =
                jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                    .unwrap();
            format!("{input}.{signature}")
        }
        /// The verdict, and how many signature checks it took.
        fn verify(set: &KeySet, token: &str) -> (Result<(), crate::Reason>, usize) {
            VERIFICATIONS.with(|count| count.set(0));
            let verdict = set.verify_jws(token).map(|_| ());
            (verdict, VERIFICATIONS.with(std::cell::Cell::get))
        }

        // Eight HS256 keys without kid, then one named "k9".
        let secrets: Vec<[u8; 32]> = (1..=9u8).map(|i| [i; 32]).collect();
        let mut set = KeySet::new(
            secrets[..8]
                .iter()
                .map(|s| VerifyingKey::hmac(Algorithm::HS256, s).unwrap()),
        );
        set.push(
            VerifyingKey::hmac(Algorithm::HS256, secrets[8])
                .unwrap()
                .with_kid("k9"),
        );
        let kidless = r#"{"alg":"HS256"}"#;
        assert_eq!(verify(&set, &mac(&secrets[0], kidless)), (Ok(()), 1));
        let last = MAX_KEYS_TRIED - 1;
        assert_eq!(
            verify(&set, &mac(&secrets[last], kidless)),
            (Ok(()), MAX_KEYS_TRIED)
        );
        // Beyond the bound: refused after MAX_KEYS_TRIED checks, not nine.
        for (signer, secret) in secrets.iter().enumerate().skip(MAX_KEYS_TRIED) {
            assert_eq!(
                verify(&set, &mac(secret, kidless)),
                (Err(crate::Reason::Signature), MAX_KEYS_TRIED),
                "signer {signer}"
            );
        }
        // A kid no key carries: the kid-less keys answer to it, bounded alike.
        let unknown = r#"{"alg":"HS256","kid":"whatever"}"#;
        assert_eq!(
            verify(&set, &mac(&secrets[7], unknown)),
            (Err(crate::Reason::Signature), MAX_KEYS_TRIED)
        );
        // A kid that names a key is tried first, wherever the key sits.
        let named = r#"{"alg":"HS256","kid":"k9"}"#;
        assert_eq!(verify(&set, &mac(&secrets[8], named)), (Ok(()), 1));
    }

    #[test]
    fn a_key_is_pinned_to_its_family() {
        assert!(VerifyingKey::hmac(Algorithm::RS256, SECRET).is_err());
        assert!(VerifyingKey::rsa_der(Algorithm::HS256, b"whatever").is_err());
    }

    #[test]
    fn find_matches_kid_and_algorithm_exactly() {
        let a = VerifyingKey::hmac(Algorithm::HS256, SECRET)
            .unwrap()
            .with_kid("a");
        let b = VerifyingKey::hmac(Algorithm::HS512, [7u8; 64])
            .unwrap()
            .with_kid("b");
        let set = KeySet::new([a, b]);
        assert_eq!(set.find(Some("a"), Algorithm::HS256).count(), 1);
        assert_eq!(set.find(Some("a"), Algorithm::HS512).count(), 0);
        assert_eq!(
            set.find(Some("../../etc/passwd"), Algorithm::HS256).count(),
            0
        );
        assert_eq!(set.find(None, Algorithm::HS512).count(), 1);
        let anonymous = KeySet::new([VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap()]);
        assert_eq!(anonymous.find(Some("any"), Algorithm::HS256).count(), 1);
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn public_keys_load_from_pem_and_der_files() {
        for (file, alg) in [
            ("rsa_public.pem", Algorithm::RS256),
            ("rsa_public.der", Algorithm::RS256),
            ("ec_public.pem", Algorithm::ES256),
            ("ec_public.der", Algorithm::ES256),
            ("ec384_public.pem", Algorithm::ES384),
            ("ed_public.pem", Algorithm::EdDSA),
            ("ed_public.der", Algorithm::EdDSA),
        ] {
            let key = VerifyingKey::public_key_file(fixture(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(key.algorithm(), alg, "{file}");
        }
        let pkcs1 = std::fs::read(fixture("rsa_public_pkcs1.der")).unwrap();
        assert!(VerifyingKey::rsa_der(Algorithm::PS256, pkcs1).is_ok());
        assert!(VerifyingKey::public_key_file(fixture("ed_private.pem")).is_err());
        assert!(VerifyingKey::public_key_file(fixture("missing.pem")).is_err());
        assert!(VerifyingKey::public_key_der(b"not der").is_err());
    }

    #[test]
    fn jwks_load_from_files() {
        let dir = std::env::temp_dir().join(format!("tower-jwt-auth-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        std::fs::write(&path, r#"{"keys":[{"kty":"oct","kid":"a","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#).unwrap();
        assert_eq!(KeySet::from_jwks_file(&path).unwrap().len(), 1);
        std::fs::write(&path, "{").unwrap();
        assert!(KeySet::from_jwks_file(&path).is_err());
        assert!(KeySet::from_jwks_file(dir.join("absent.json")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn store_replacement_is_seen_by_clones() {
        let store = KeyStore::new(KeySet::default());
        let clone = store.clone();
        store.replace(KeySet::new([
            VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap()
        ]));
        assert_eq!(clone.load().len(), 1);
    }
}
