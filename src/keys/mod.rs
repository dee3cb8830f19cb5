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
mod key;
#[cfg(feature = "remote-jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-jwks")))]
pub mod remote;
mod rsa;
mod set;
#[cfg(test)]
mod tests;
mod verify;

use crate::alg::Algorithm;

pub use jwk::JwkPolicy;
#[cfg(feature = "dpop")]
pub(crate) use jwk::proof_key;
pub use key::VerifyingKey;
pub use rsa::{MAX_RSA_BITS, MIN_RSA_BITS};
pub use set::{KeySet, KeyStore};

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
