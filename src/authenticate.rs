//! The per-request pipeline, in the order a request meets it: find the
//! token → header → key → signature → claims → rules → authorization →
//! revocation. It ends in claims for the inner service or a [`Rejection`];
//! only a revocation check that cannot answer synchronously leaves work (a
//! future) for the response future to finish.

use std::sync::Arc;

use http::{HeaderMap, Uri};
use serde::de::DeserializeOwned;

use crate::claims::{self, RegisteredClaims, Rules};
use crate::jws;
use crate::keys::KeyStore;
use crate::reject::{Reason, Rejection, RejectionKind};
use crate::revoke::{RevocationCheck, RevocationFuture};
use crate::token::{self, Found, TokenSource};

/// A rule on the application's claims.
pub(crate) type Predicate<C> = Box<dyn Fn(&C) -> bool + Send + Sync>;

/// Everything a request is checked against, assembled once by the builder
/// and only read here.
pub(crate) struct Authenticator<C> {
    pub(crate) keys: KeyStore,
    pub(crate) rules: Rules,
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) optional: bool,
    pub(crate) max_token_len: usize,
    pub(crate) claim_rules: Vec<Predicate<C>>,
    pub(crate) authorize: Vec<Predicate<C>>,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
}

/// What authenticating a request concluded.
pub(crate) enum Outcome<C> {
    /// No token on an optional route.
    Anonymous,
    /// Verified and authorized claims (no revocation check configured).
    Verified(C),
    /// Verified claims whose revocation check is under way. The
    /// authorization verdict is already known but only answered once the
    /// store said the token is live: a revoked token is invalid (401)
    /// before it is forbidden (403).
    Revocable {
        claims: C,
        check: RevocationFuture,
        denial: Option<Rejection>,
    },
    Rejected(Rejection),
}

/// A token whose signature and claims hold.
pub(crate) struct Checked<C> {
    pub(crate) claims: C,
    /// Kept only when a revocation check must run.
    registered: Option<RegisteredClaims>,
    /// The scope or authorization rule the token fails, if any.
    pub(crate) denial: Option<Rejection>,
}

impl<C: DeserializeOwned> Authenticator<C> {
    /// The whole pipeline for one request.
    pub(crate) fn authenticate(&self, headers: &HeaderMap, uri: &Uri) -> Outcome<C> {
        let token = match token::find(&self.sources, headers, uri) {
            Found::Token(token) => token,
            Found::Nothing if self.optional => return Outcome::Anonymous,
            Found::Nothing => return Outcome::Rejected(RejectionKind::MissingToken.into()),
            Found::Ambiguous => return Outcome::Rejected(RejectionKind::AmbiguousToken.into()),
        };
        match self.verify(token) {
            Ok(Checked {
                claims,
                registered: Some(registered),
                denial,
            }) => match self.revocation().is_revoked_now(&registered) {
                // A store that answers from memory is settled here: no
                // future to box, the same precedence as the response future.
                Some(Ok(false)) => match denial {
                    Some(denial) => Outcome::Rejected(denial),
                    None => Outcome::Verified(claims),
                },
                Some(Ok(true)) => {
                    Outcome::Rejected(RejectionKind::InvalidToken(Reason::Revoked).into())
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "revocation check failed");
                    Outcome::Rejected(RejectionKind::Unavailable.into())
                }
                None => Outcome::Revocable {
                    claims,
                    check: self.revocation().is_revoked(&registered),
                    denial,
                },
            },
            Ok(Checked {
                denial: Some(denial),
                ..
            }) => Outcome::Rejected(denial),
            Ok(Checked { claims, .. }) => Outcome::Verified(claims),
            Err(rejection) => Outcome::Rejected(rejection),
        }
    }

    /// Every check but the token's location, in this order: size, keys,
    /// signature, registered claims, claim rules (all 401), then scopes and
    /// authorization rules (403), whose verdict is returned rather than
    /// answered so that a revocation check can take precedence.
    pub(crate) fn verify(&self, token: &[u8]) -> Result<Checked<C>, Rejection> {
        let invalid = |reason| Rejection::from(RejectionKind::InvalidToken(reason));
        if token.len() > self.max_token_len {
            return Err(invalid(Reason::TooLarge));
        }
        let keys = self.keys.guard();
        // An empty store has not been loaded yet (or its source is down):
        // that is the server's problem, not the token's (503, not 401).
        if keys.is_empty() {
            return Err(RejectionKind::Unavailable.into());
        }
        let verified = keys.verify_token(token).map_err(invalid)?;
        let mut stack = [0u8; 1024];
        let payload = jws::decode_payload(verified.compact.payload, &mut stack).map_err(invalid)?;
        let (claims, registered) =
            claims::decode::<C>(&payload, &self.rules.required).map_err(invalid)?;
        self.rules
            .check(&registered, verified.typ_at_jwt, claims::now())
            .map_err(invalid)?;
        if !self.claim_rules.iter().all(|rule| rule(&claims)) {
            return Err(invalid(Reason::ClaimsRule));
        }
        let denial = if let Some(required) = self.rules.missing_scope(&registered) {
            Some(RejectionKind::InsufficientScope { required }.into())
        } else if !self.authorize.iter().all(|rule| rule(&claims)) {
            Some(RejectionKind::Forbidden.into())
        } else {
            None
        };
        let registered = self
            .revocation
            .is_some()
            .then(|| registered.to_registered());
        Ok(Checked {
            claims,
            registered,
            denial,
        })
    }

    fn revocation(&self) -> &dyn RevocationCheck {
        self.revocation
            .as_deref()
            .expect("registered claims are only kept for a revocation check")
    }
}
