//! Key sets, chosen from by `kid` and `alg`, and the store that swaps them
//! atomically while requests are served.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::key::read;
use super::{JwkPolicy, VerifyingKey};
use crate::alg::Algorithm;
use crate::error::Error;

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
        let set = Self::parse_jwks(jwks, policy)?;
        if set.is_empty() {
            return Err(Error::InvalidJwk(
                "the JWK set holds no usable signature key".into(),
            ));
        }
        Ok(set)
    }

    /// Every usable key of a JWK set, possibly none; unusable keys (for
    /// encryption, of unknown types) are skipped.
    pub(crate) fn parse_jwks(jwks: &serde_json::Value, policy: &JwkPolicy) -> Result<Self, Error> {
        Self::parse_jwks_reporting(jwks, policy, |_, err| {
            tracing::debug!(%err, "skipping JWK");
        })
    }

    /// Like [`KeySet::parse_jwks`], handing each skipped JWK and why to
    /// `skipped`.
    pub(crate) fn parse_jwks_reporting(
        jwks: &serde_json::Value,
        policy: &JwkPolicy,
        mut skipped: impl FnMut(&serde_json::Value, Error),
    ) -> Result<Self, Error> {
        let keys = jwks
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| Error::InvalidJwk("a JWK set needs a \"keys\" array".into()))?;
        let mut set = KeySet::default();
        for jwk in keys {
            match VerifyingKey::from_jwk_with(jwk, policy) {
                Ok(key) => set.push(key),
                Err(err) => skipped(jwk, err),
            }
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

    /// Whether the key with this process-unique id is still in the set: a
    /// linear scan over a few dozen bytes per key, cheaper than hashing for
    /// the sizes key sets have.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn contains_id(&self, id: u64) -> bool {
        self.keys.iter().any(|key| key.id() == id)
    }

    /// Takes over the keys of `previous` that this set holds unchanged
    /// (same `kid`, algorithm and material), with their identity: a
    /// refresh that brings a key back unchanged then keeps the tokens the
    /// verified-token cache holds for it, and the verifiers prepared for it,
    /// instead of dropping both as if the key had been rotated out.
    #[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
    pub(crate) fn keep_unchanged(&mut self, previous: &KeySet) {
        for key in &mut self.keys {
            if let Some(old) = previous.keys.iter().find(|old| old.same_key_as(key)) {
                *key = old.clone();
            }
        }
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
    /// Verification checks a token against at most [`MAX_KEYS_TRIED`](super::MAX_KEYS_TRIED) of
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
