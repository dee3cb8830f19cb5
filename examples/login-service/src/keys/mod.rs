//! Signing keys: generated on first start, stored in the database so every
//! instance on it signs and verifies alike, rotated by `keys rotate`, and
//! re-read periodically so running instances follow a rotation.
//!
//! A rotated-in key is published at once but signs only from its
//! `activates_at`, giving other instances time to learn it before tokens
//! signed with it reach them. A retired key stays published until the last
//! token it signed has expired, and is then deleted.
//!
//! Private keys are stored encrypted under the key-encryption key
//! ([`crate::kek`]); the `key_encryption` table names that KEK.

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use tower_jwt_auth::issue::{self, SigningKey};
use tower_jwt_auth::{Algorithm, KeySet, KeyStore};

use crate::kek::{self, Kek};
use crate::store::{Store, now};

mod ring;

pub use ring::KeyRing;
use ring::{RingKey, expired};

/// RFC 8410 PKCS#8 v1 wrapping of an Ed25519 seed: fixed ASN.1 header
/// (SEQUENCE, version 0, AlgorithmIdentifier id-Ed25519, OCTET STRING of
/// OCTET STRING) followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug)]
pub enum KeyError {
    Db(sqlx::Error),
    Key(String),
    /// The key-encryption key is missing, unreadable or not the one the
    /// stored keys are encrypted with.
    Kek(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "database: {e}"),
            Self::Key(e) => write!(f, "signing key: {e}"),
            Self::Kek(e) => write!(f, "key-encryption key: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<sqlx::Error> for KeyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// The ring plus the library key store that verifies this service's tokens.
#[derive(Debug, Clone)]
pub struct Keys {
    ring: Arc<RwLock<Arc<KeyRing>>>,
    store: KeyStore,
    kek: Kek,
    /// How long a retired key stays published, in seconds.
    retention: i64,
}

impl Keys {
    /// [`prepare`]s the database, deletes expired keys, then loads them all.
    pub async fn bootstrap(store: &Store, kek: &Kek, retention: i64) -> Result<Self, KeyError> {
        prepare(store, kek).await?;
        prune_retired(store, retention, now()).await?;
        let ring = load(store, kek).await?;
        let store = KeyStore::new(key_set(&ring, retention)?);
        Ok(Self {
            ring: Arc::new(RwLock::new(Arc::new(ring))),
            store,
            kek: kek.clone(),
            retention,
        })
    }

    pub fn store(&self) -> KeyStore {
        self.store.clone()
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().expect("key ring lock poisoned").clone()
    }

    /// The public JWK set as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        let ring = self.ring();
        issue::jwk_set(ring.published(now(), self.retention))
    }

    /// Deletes keys whose tokens have all expired, re-reads the rest and
    /// swaps them in for signing and verifying.
    pub async fn reload(&self, store: &Store) -> Result<(), KeyError> {
        prune_retired(store, self.retention, now()).await?;
        let ring = load(store, &self.kek).await?;
        let set = key_set(&ring, self.retention)?;
        *self.ring.write().expect("key ring lock poisoned") = Arc::new(ring);
        self.store.replace(set);
        Ok(())
    }
}

fn key_set(ring: &KeyRing, retention: i64) -> Result<KeySet, KeyError> {
    Ok(KeySet::from_signing_keys(ring.published(now(), retention)))
}

async fn load(store: &Store, kek: &Kek) -> Result<KeyRing, KeyError> {
    let rows = store.signing_keys().await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let algorithm = match row.algorithm.as_str() {
            "EdDSA" => Algorithm::EdDSA,
            "ES256" => Algorithm::ES256,
            other => return Err(KeyError::Key(format!("unsupported algorithm {other}"))),
        };
        let der = if kek::is_sealed(&row.private_key) {
            kek.open(&row.kid, &row.private_key)
                .map_err(KeyError::Kek)?
        } else {
            // Written before encryption by an older instance still running.
            STANDARD
                .decode(row.private_key)
                .map_err(|e| KeyError::Key(e.to_string()))?
        };
        let key = SigningKey::from_pkcs8_der(algorithm, row.kid, &der)
            .map_err(|e| KeyError::Key(e.to_string()))?;
        keys.push(RingKey {
            activates_at: row.activates_at,
            key,
        });
    }
    if keys.is_empty() {
        return Err(KeyError::Key("no signing key in the database".into()));
    }
    Ok(KeyRing { keys })
}

/// Adds a key that starts signing `activate_after` seconds from now and
/// returns its `kid`.
pub async fn rotate(store: &Store, kek: &Kek, activate_after: i64) -> Result<String, KeyError> {
    for _ in 0..5 {
        let latest = store.latest_key_generation().await?;
        let generation = latest.unwrap_or(0) + 1;
        if let Some(kid) = insert_key(store, kek, generation, now() + activate_after).await? {
            return Ok(kid);
        }
        // Lost a race with a concurrent rotation: take the next generation.
    }
    Err(KeyError::Key("could not claim a key generation".into()))
}

/// Inserts a fresh Ed25519 key; `None` when the generation is taken.
async fn insert_key(
    store: &Store,
    kek: &Kek,
    generation: i64,
    activates_at: i64,
) -> Result<Option<String>, KeyError> {
    let (kid, der) = generate_ed25519()?;
    let sealed = kek.seal(&kid, &der).map_err(KeyError::Kek)?;
    let inserted = store
        .insert_signing_key(generation, &kid, sealed, now(), activates_at)
        .await?;
    Ok(inserted.then_some(kid))
}

/// Checks the KEK against the database (writing nothing if it is the wrong
/// one), encrypts plaintext keys left from before encryption, and creates
/// the first key if the database has none.
pub async fn prepare(store: &Store, kek: &Kek) -> Result<(), KeyError> {
    claim_kek(store, kek).await?;
    seal_plaintext_rows(store, kek).await?;
    if store.count_signing_keys().await? == 0 {
        // Generation 1 is unique: of several instances starting on an
        // empty database at once, one insert wins and all load it.
        insert_key(store, kek, 1, now()).await?;
    }
    Ok(())
}

fn wrong_kek(kek: &Kek, recorded: &str) -> KeyError {
    KeyError::Kek(format!(
        "the signing keys in this database are encrypted with another key-encryption key \
         (id {recorded}) than the one in {} (id {}); start with the original \
         --key-encryption-key-file (after `keys rewrap`, the new one). Nothing was changed.",
        kek.source(),
        kek.id()
    ))
}

/// Refuses a KEK other than the recorded one; records it on a database
/// that has none yet. Of instances racing to record different KEKs, one
/// wins and the others are refused.
async fn claim_kek(store: &Store, kek: &Kek) -> Result<(), KeyError> {
    if store.recorded_kek_id().await?.is_none() {
        store.record_kek_if_none(kek.id()).await?;
    }
    match store.recorded_kek_id().await? {
        Some(recorded) if recorded == kek.id() => Ok(()),
        Some(recorded) => Err(wrong_kek(kek, &recorded)),
        None => Err(KeyError::Kek(
            "could not record the key-encryption key".into(),
        )),
    }
}

/// Encrypts rows stored in plaintext before encryption existed, in one
/// transaction. A row changed meanwhile (by another instance doing the
/// same) is left alone.
async fn seal_plaintext_rows(store: &Store, kek: &Kek) -> Result<(), KeyError> {
    let sealed = store
        .reseal_signing_keys(|kid, stored| {
            if kek::is_sealed(stored) {
                return Ok(None);
            }
            let der = STANDARD
                .decode(stored)
                .map_err(|e| KeyError::Key(format!("stored key {kid}: {e}")))?;
            kek.seal(kid, &der).map(Some).map_err(KeyError::Kek)
        })
        .await?;
    if sealed > 0 {
        tracing::info!(keys = sealed, "encrypted plaintext signing keys");
    }
    Ok(())
}

/// Deletes the keys superseded by a newer active key at least `retention`
/// seconds before `now` (the longest life of a token they signed plus the
/// verifier's leeway), so they are no longer published nor stored; returns
/// their kids. The active key and upcoming ones are never deleted.
pub async fn prune_retired(
    store: &Store,
    retention: i64,
    now: i64,
) -> Result<Vec<String>, KeyError> {
    let keys = store.key_activations().await?;
    let activations: Vec<i64> = keys.iter().map(|k| k.activates_at).collect();
    let mut deleted = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        if expired(&activations, i, now, retention) {
            store.delete_signing_key(key.generation).await?;
            tracing::info!(
                kid = key.kid,
                "deleted a retired signing key: its tokens have expired"
            );
            deleted.push(key.kid);
        }
    }
    Ok(deleted)
}

/// Re-encrypts every private key from `old` to `new` in one transaction
/// and records `new`; returns how many keys were re-encrypted. Refuses an
/// `old` that is not the recorded KEK, changing nothing.
pub async fn rewrap(store: &Store, old: &Kek, new: &Kek) -> Result<usize, KeyError> {
    store
        .rewrap_signing_keys(
            new.id(),
            |recorded| match recorded {
                Some(recorded) if recorded != old.id() => Err(wrong_kek(old, &recorded)),
                _ => Ok(()),
            },
            |kid, stored| {
                let der = if kek::is_sealed(stored) {
                    old.open(kid, stored).map_err(KeyError::Kek)?
                } else {
                    STANDARD
                        .decode(stored)
                        .map_err(|e| KeyError::Key(format!("stored key {kid}: {e}")))?
                };
                new.seal(kid, &der).map_err(KeyError::Kek)
            },
        )
        .await
}

/// A random Ed25519 key as PKCS#8 DER, with its RFC 7638 thumbprint as kid
/// (stable, derived from the public key, reveals nothing).
pub(crate) fn generate_ed25519() -> Result<(String, Vec<u8>), KeyError> {
    let mut seed = [0u8; 32];
    argon2::password_hash::rand_core::RngCore::fill_bytes(
        &mut argon2::password_hash::rand_core::OsRng,
        &mut seed,
    );
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    let probe = SigningKey::from_pkcs8_der(Algorithm::EdDSA, "probe", &der)
        .map_err(|e| KeyError::Key(e.to_string()))?;
    let x = probe
        .public_jwk()
        .and_then(|jwk| jwk["x"].as_str())
        .ok_or_else(|| KeyError::Key("public JWK without x".into()))?;
    // RFC 7638 §3.2: required members only, lexicographic order, no spaces.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    Ok((kid, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_ed25519_with_thumbprint_kid() {
        let (kid, der) = generate_ed25519().unwrap();
        assert_eq!(der.len(), 48);
        let key = SigningKey::from_pkcs8_der(Algorithm::EdDSA, kid.clone(), &der).unwrap();
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(kid.len(), 43, "base64url of a SHA-256 digest");
    }
}
