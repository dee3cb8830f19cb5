//! Error types

use std::fmt;

/// Why a fetch failed. Logged by the refresher; returned by
/// [`RemoteKeys::refresh`](super::RemoteKeys::refresh).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// A URL is not acceptable (not `https` off loopback, no host, …).
    Url(String),
    /// The fetch took longer than [`RemoteOptions::timeout`](super::RemoteOptions::timeout).
    Timeout,
    /// Connecting, TLS or reading failed.
    Transport(String),
    /// The server answered with this (non-2xx, non-redirect) status.
    Status(u16),
    /// A redirect that is not followed: another origin, too many, no
    /// `Location`.
    Redirect(String),
    /// The document is not served as JSON.
    ContentType(String),
    /// The document is larger than the cap (given).
    TooLarge(usize),
    /// The document is not valid JSON or lacks required members.
    Json(String),
    /// The JWK set holds no key usable for verification.
    NoUsableKey,
    /// The discovery document is for another issuer.
    Discovery(String),
    /// No tokio runtime to fetch on.
    NoRuntime,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Url(msg) => write!(f, "unacceptable URL: {msg}"),
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Transport(msg) => write!(f, "transport: {msg}"),
            FetchError::Status(status) => write!(f, "HTTP status {status}"),
            FetchError::Redirect(msg) => write!(f, "redirect: {msg}"),
            FetchError::ContentType(msg) => write!(f, "content type: {msg}"),
            FetchError::TooLarge(cap) => write!(f, "document larger than {cap} bytes"),
            FetchError::Json(msg) => write!(f, "invalid document: {msg}"),
            FetchError::NoUsableKey => f.write_str("the JWK set holds no usable key"),
            FetchError::Discovery(msg) => write!(f, "discovery: {msg}"),
            FetchError::NoRuntime => f.write_str("no tokio runtime to fetch on"),
        }
    }
}

impl std::error::Error for FetchError {}
