//! Error types
//!
//! # Example
//!
//! ```
//! use tower_jwt_auth::{Error, JwtAuthLayer};
//!
//! let err = JwtAuthLayer::<serde_json::Value>::builder().hs256(b"too short").build().unwrap_err();
//! assert!(matches!(err, Error::WeakSecret { len: 9 }));
//! ```

use std::fmt;

/// A boxed error, as tower and hyper use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A configuration or key-handling error: raised while building a layer,
/// parsing keys or signing tokens, never while serving a request (those end
/// in a [`Rejection`](crate::Rejection)).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A key could not be parsed or does not fit the algorithm asked for.
    InvalidKey(String),
    /// An HMAC secret shorter than its hash output: 32 bytes for HS256, 48
    /// for HS384, 64 for HS512 (RFC 7518 §3.2; short secrets are
    /// brute-forceable offline).
    WeakSecret {
        /// Length of the secret that was given, in bytes.
        len: usize,
    },
    /// A JWK or JWK set could not be used.
    InvalidJwk(String),
    /// The configuration is contradictory or incomplete.
    Config(String),
    /// Signing a token failed.
    Signing(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidKey(msg) => write!(f, "invalid key: {msg}"),
            Error::WeakSecret { len } => write!(
                f,
                "HMAC secret is {len} bytes; at least the hash size in random bytes is required (32 for HS256, 48 for HS384, 64 for HS512)"
            ),
            Error::InvalidJwk(msg) => write!(f, "invalid JWK: {msg}"),
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Signing(msg) => write!(f, "signing failed: {msg}"),
        }
    }
}

impl std::error::Error for Error {}
