//! The signature algorithms this crate verifies (and, with the `issue`
//! feature, signs), with their JOSE names (RFC 7518 §3.1).
//!
//! The crate owns this type so that no dependency's type appears in its
//! public API: a major release of the signature library stays an internal
//! change.
//!
//! # Example
//!
//! ```
//! use tower_jwt_auth::Algorithm;
//!
//! assert_eq!(Algorithm::from_name("ES256"), Some(Algorithm::ES256));
//! assert_eq!(Algorithm::EdDSA.name(), "EdDSA");
//! // Names are case-sensitive, and `none` is never an algorithm.
//! assert_eq!(Algorithm::from_name("hs256"), None);
//! assert_eq!(Algorithm::from_name("none"), None);
//! ```

use std::fmt;

/// A JWS signature algorithm. Every key is pinned to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

/// Every algorithm with its JOSE name; the one table both directions read.
const NAMES: [(Algorithm, &str); 12] = [
    (Algorithm::HS256, "HS256"),
    (Algorithm::HS384, "HS384"),
    (Algorithm::HS512, "HS512"),
    (Algorithm::RS256, "RS256"),
    (Algorithm::RS384, "RS384"),
    (Algorithm::RS512, "RS512"),
    (Algorithm::PS256, "PS256"),
    (Algorithm::PS384, "PS384"),
    (Algorithm::PS512, "PS512"),
    (Algorithm::ES256, "ES256"),
    (Algorithm::ES384, "ES384"),
    (Algorithm::EdDSA, "EdDSA"),
];

/// The kind of key an algorithm needs (signing picks its key parser by it).
#[cfg(feature = "issue")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl Algorithm {
    /// The algorithm of a JOSE name. Names are case-sensitive (RFC 7518
    /// §3.1): `none`, `None`, `hs256` are all unknown. Shared by token
    /// headers and JWKs.
    pub fn from_name(name: &str) -> Option<Self> {
        // A match, not a scan of `NAMES`: every token header goes through
        // here. The tests hold the two together.
        Some(match name {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            _ => return None,
        })
    }

    /// The JOSE name, as written in a header's `alg`.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(alg, _)| *alg == self)
            .map_or("", |(_, name)| name)
    }

    #[cfg(feature = "issue")]
    pub(crate) fn family(self) -> Family {
        use Algorithm::*;
        match self {
            HS256 | HS384 | HS512 => Family::Hmac,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
            ES256 | ES384 => Family::Ec,
            EdDSA => Family::Ed,
        }
    }

    /// The signature library's twin of this algorithm; never public.
    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Algorithm::HS256 => J::HS256,
            Algorithm::HS384 => J::HS384,
            Algorithm::HS512 => J::HS512,
            Algorithm::RS256 => J::RS256,
            Algorithm::RS384 => J::RS384,
            Algorithm::RS512 => J::RS512,
            Algorithm::PS256 => J::PS256,
            Algorithm::PS384 => J::PS384,
            Algorithm::PS512 => J::PS512,
            Algorithm::ES256 => J::ES256,
            Algorithm::ES384 => J::ES384,
            Algorithm::EdDSA => J::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_signature_library() {
        for (alg, name) in NAMES {
            assert_eq!(Algorithm::from_name(name), Some(alg));
            assert_eq!(alg.name(), name);
            assert_eq!(format!("{:?}", alg.to_jsonwebtoken()), name);
        }
        for unknown in ["none", "None", "nOnE", "hs256", "ES512", ""] {
            assert_eq!(Algorithm::from_name(unknown), None, "{unknown}");
        }
    }
}
