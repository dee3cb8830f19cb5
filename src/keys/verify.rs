//! Checking a token's signature against a key set: the header chooses at
//! most [`MAX_KEYS_TRIED`] keys pinned to its `alg`, and nothing about the
//! claims is looked at before one of them verifies the signature.

use super::{KeySet, MAX_KEYS_TRIED};
use crate::jws::{self, Compact, MAX_HEADER_LEN};
use crate::reject::Reason;

/// What verification yields to the claim checks.
pub(crate) struct Verified<'a> {
    pub(crate) compact: Compact<'a>,
    /// Whether the header's `typ` is `at+jwt` (RFC 9068).
    pub(crate) typ_at_jwt: bool,
    /// The process-unique id of the key that verified the signature.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) key_id: u64,
}

impl KeySet {
    /// Checks shape, header and signature. Nothing about the claims is
    /// looked at before the signature holds.
    pub(crate) fn verify_token<'a>(&self, token: &'a [u8]) -> Result<Verified<'a>, Reason> {
        let compact = jws::split(token)?;
        // Most headers are a few dozen bytes: a small buffer to clear, and
        // the full-size one only for the rest; longer ones are refused.
        let mut small = [0u8; 128];
        let mut full;
        let json = match jws::decode_small(compact.header, &mut small)? {
            Some(json) => json,
            None => {
                full = [0u8; MAX_HEADER_LEN];
                jws::decode_small(compact.header, &mut full)?.ok_or(Reason::BadHeader)?
            }
        };
        let header = jws::parse_header(json)?;
        let signature = jws::decode(compact.signature)?;
        // At most MAX_KEYS_TRIED verifications, whatever the set's size.
        let mut candidates = self
            .candidates(header.kid.as_deref(), header.alg)
            .peekable();
        if candidates.peek().is_none() {
            // Distinguish for logs only: the client sees the same answer.
            let alg_known = self.keys().iter().any(|k| k.algorithm() == header.alg);
            return Err(if alg_known {
                Reason::UnknownKey
            } else {
                Reason::Algorithm
            });
        }
        let key = candidates
            .find(|key| key.verify(compact.signing_input, &signature))
            .ok_or(Reason::Signature)?;
        let typ_at_jwt = header
            .typ
            .as_deref()
            .is_some_and(|typ| jws::is_media_type(typ, "at+jwt"));
        Ok(Verified {
            compact,
            typ_at_jwt,
            key_id: key.id(),
        })
    }

    /// Verifies a compact JWS against this set and returns its decoded
    /// payload. Only the JOSE layer is checked: shape, header rules, key
    /// selection by `kid` and pinned `alg`, and the signature; no claims.
    /// An empty payload is refused: RFC 7515 allows one, a JWT never has one.
    ///
    /// # Errors
    /// The [`Reason`] the token was refused for.
    pub fn verify_jws(&self, token: &str) -> Result<Vec<u8>, Reason> {
        let verified = self.verify_token(token.as_bytes())?;
        jws::decode(verified.compact.payload)
    }

    /// The keys a token is checked against, at most [`MAX_KEYS_TRIED`]:
    /// exact `kid` matches first, then keys that answer to any kid (or, for
    /// a token without kid, every key of `alg`), in set order. No
    /// allocation: two passes over the set.
    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: crate::alg::Algorithm,
    ) -> impl Iterator<Item = &'a super::VerifyingKey> + 'a {
        let keys = self.keys();
        let exact = keys
            .iter()
            .filter(move |key| key.alg == alg && kid.is_some() && key.kid.as_deref() == kid);
        let open = keys
            .iter()
            .filter(move |key| key.alg == alg && (kid.is_none() || key.kid.is_none()));
        exact.chain(open).take(MAX_KEYS_TRIED)
    }
}
