//! The per-request pipeline, in the order a request meets it: find the
//! token → header → key → signature → claims → rules → authorization →
//! revocation. It ends in claims for the inner service or a [`Rejection`];
//! only a revocation check that cannot answer synchronously leaves work (a
//! future) for the response future to finish.

use std::sync::Arc;

use http::{HeaderMap, Uri};
use serde::de::DeserializeOwned;

use crate::authorize::{self, Policy, TokenPayload};
use crate::claims::{self, Clock, Registered, RegisteredClaims};
use crate::issuer::{Verifier, Verifiers};
use crate::jws;
use crate::reject::{Reason, Rejection, RejectionKind};
use crate::revoke::{RevocationCheck, RevocationFuture};
use crate::token::{self, Found, TokenSource};

/// A rule on the application's claims.
pub(crate) type Predicate<C> = Box<dyn Fn(&C) -> bool + Send + Sync>;

/// Everything a request is checked against, assembled once by the builder
/// and only read here.
pub(crate) struct Authenticator<C> {
    /// Keys and claim rules, one set per issuer when there are several.
    pub(crate) verifiers: Verifiers,
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) optional: bool,
    pub(crate) max_token_len: usize,
    pub(crate) claim_rules: Vec<Predicate<C>>,
    /// The layer-wide requirements (`require_scope`, `authorize`): the
    /// same [`Policy`] a route layer checks, checked here while the
    /// payload is at hand.
    pub(crate) policy: Policy<C>,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
    /// The verified-token cache, when configured.
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<crate::cache::Store<C>>,
    /// Where every time check reads the time.
    pub(crate) clock: Clock,
}

/// What authenticating a request concluded.
pub(crate) enum Outcome<C> {
    /// No token on an optional route.
    Anonymous,
    /// Verified and authorized claims (no revocation check configured).
    Verified {
        claims: C,
        payload: Option<TokenPayload>,
    },
    /// Verified claims whose revocation check is under way. The
    /// authorization verdict is already known but only answered once the
    /// store said the token is live: a revoked token is invalid (401)
    /// before it is forbidden (403).
    Revocable {
        claims: C,
        payload: Option<TokenPayload>,
        check: RevocationFuture,
        denial: Option<Rejection>,
    },
    Rejected(Rejection),
    /// The token names a key not held (remote keys): verify again once
    /// this refetch is done or timed out.
    #[cfg(feature = "remote-jwks")]
    Refetch(crate::keys::remote::RefetchWait),
}

/// A token whose signature and claims hold.
pub(crate) struct Checked<C> {
    pub(crate) claims: C,
    /// The payload, kept only while some route policy reads it
    /// ([`authorize::payload_wanted`]).
    pub(crate) payload: Option<TokenPayload>,
    /// Kept only when a revocation check must run.
    registered: Option<RegisteredClaims>,
    /// The scope or authorization rule the token fails, if any.
    pub(crate) denial: Option<Rejection>,
}

impl<C: DeserializeOwned + Clone + Send + Sync + 'static> Authenticator<C> {
    /// The whole pipeline for one request.
    pub(crate) fn authenticate(&self, headers: &HeaderMap, uri: &Uri) -> Outcome<C> {
        self.run(headers, uri, true)
    }

    /// The pipeline again, after a refetch: no second one.
    #[cfg(feature = "remote-jwks")]
    pub(crate) fn authenticate_after_refetch(&self, headers: &HeaderMap, uri: &Uri) -> Outcome<C> {
        self.run(headers, uri, false)
    }

    #[cfg_attr(not(feature = "remote-jwks"), allow(unused_variables))]
    fn run(&self, headers: &HeaderMap, uri: &Uri, may_refetch: bool) -> Outcome<C> {
        let token = match token::find(&self.sources, headers, uri) {
            Found::Token(token) => token,
            Found::Nothing if self.optional => return Outcome::Anonymous,
            Found::Nothing => return Outcome::Rejected(RejectionKind::MissingToken.into()),
            Found::Ambiguous => return Outcome::Rejected(RejectionKind::AmbiguousToken.into()),
        };
        match self.verify(token) {
            Ok(Checked {
                claims,
                payload,
                registered: Some(registered),
                denial,
            }) => match self.revocation().is_revoked_now(&registered) {
                // A store that answers from memory is settled here: no
                // future to box, the same precedence as the response future.
                Some(Ok(false)) => match denial {
                    Some(denial) => Outcome::Rejected(denial),
                    None => Outcome::Verified { claims, payload },
                },
                Some(Ok(true)) => {
                    Outcome::Rejected(RejectionKind::InvalidToken(Reason::Revoked).into())
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "revocation check failed");
                    crate::metrics::revocation_error();
                    Outcome::Rejected(RejectionKind::Unavailable.into())
                }
                None => Outcome::Revocable {
                    claims,
                    payload,
                    check: self.revocation().is_revoked(&registered),
                    denial,
                },
            },
            Ok(Checked {
                denial: Some(denial),
                ..
            }) => Outcome::Rejected(denial),
            Ok(Checked {
                claims, payload, ..
            }) => Outcome::Verified { claims, payload },
            #[cfg(feature = "remote-jwks")]
            Err(rejection) if may_refetch => match self.refetch_for(token, &rejection) {
                Some(wait) => Outcome::Refetch(wait),
                None => Outcome::Rejected(rejection),
            },
            Err(rejection) => Outcome::Rejected(rejection),
        }
    }

    /// A refetch to wait for when the token names a key (or algorithm) no
    /// key held has. With no keys at all the request is answered 503 at
    /// once, but asks for a fetch too (starting the source if it was built
    /// outside a runtime), so a provider that is back is not left waiting
    /// for the end of a long backoff. Only the remote source of the token's own issuer is asked (an
    /// unknown issuer was refused before any key).
    #[cfg(feature = "remote-jwks")]
    pub(crate) fn refetch_for(
        &self,
        token: &[u8],
        rejection: &Rejection,
    ) -> Option<crate::keys::remote::RefetchWait> {
        let remote = self.verifiers.select(token).ok()?.remote.as_ref()?;
        match rejection.kind() {
            RejectionKind::InvalidToken(Reason::UnknownKey | Reason::Algorithm) => remote.refetch(),
            RejectionKind::Unavailable => {
                drop(remote.refetch());
                None
            }
            _ => None,
        }
    }

    /// Resolves once the keys are there (at once unless they come from a
    /// remote source).
    pub(crate) async fn ready(&self) {
        #[cfg(feature = "remote-jwks")]
        for remote in self.verifiers.remotes() {
            remote.ready().await;
        }
    }

    /// Every check but the token's location, in this order: size, keys,
    /// signature, registered claims, claim rules (all 401), then the
    /// layer-wide policy (403), whose verdict is returned rather than
    /// answered so that a revocation check can take precedence. A token
    /// found in the verified-token cache skips keys, signature and
    /// decoding; everything after runs again.
    pub(crate) fn verify(&self, token: &[u8]) -> Result<Checked<C>, Rejection> {
        let invalid = |reason| Rejection::from(RejectionKind::InvalidToken(reason));
        if token.len() > self.max_token_len {
            return Err(invalid(Reason::TooLarge));
        }
        // With several issuers, the unverified `iss` picks one (an unknown
        // one is refused here, before any key is looked at).
        let verifier = self.verifiers.select(token).map_err(invalid)?;
        let now = self.clock.now();
        #[cfg(feature = "cache")]
        if let Some(hit) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(token, &verifier.keys, now))
        {
            return self.conclude(
                verifier,
                hit.claims.clone(),
                &hit.registered,
                Payload::Cached(&hit.payload),
                hit.typ_at_jwt,
                now,
            );
        }
        let keys = verifier.keys.guard();
        // An empty store has not been loaded yet (or its source is down):
        // that is the server's problem, not the token's (503, not 401).
        if keys.is_empty() {
            return Err(RejectionKind::Unavailable.into());
        }
        let verified = keys.verify_token(token).map_err(invalid)?;
        let mut stack = [0u8; 1024];
        let payload = jws::decode_payload(verified.compact.payload, &mut stack).map_err(invalid)?;
        let (claims, registered) =
            claims::decode::<C>(&payload, &verifier.rules.required).map_err(invalid)?;
        let checked = self.conclude(
            verifier,
            claims,
            &registered,
            Payload::Decoded(&payload),
            verified.typ_at_jwt,
            now,
        )?;
        #[cfg(feature = "cache")]
        if let Some(cache) = &self.cache {
            let (typ, key_id) = (verified.typ_at_jwt, verified.key_id);
            cache.insert(
                token,
                &checked.claims,
                registered,
                &payload,
                typ,
                key_id,
                &verifier.rules,
                now,
            );
        }
        Ok(checked)
    }

    /// The checks after the signature, which a cached token goes through
    /// again: registered claims at `now`, claim rules, scopes,
    /// authorization rules, and what a revocation check needs.
    fn conclude(
        &self,
        verifier: &Verifier,
        claims: C,
        registered: &Registered<'_>,
        payload: Payload<'_>,
        typ_at_jwt: bool,
        now: u64,
    ) -> Result<Checked<C>, Rejection> {
        let invalid = |reason| Rejection::from(RejectionKind::InvalidToken(reason));
        verifier
            .rules
            .check(registered, typ_at_jwt, now)
            .map_err(invalid)?;
        if !self.claim_rules.iter().all(|rule| rule(&claims)) {
            return Err(invalid(Reason::ClaimsRule));
        }
        let denial = if self.policy.is_empty() {
            None
        } else {
            self.policy
                .check(&claims, payload.bytes(), Some(registered))
                .err()
        };
        // A token the layer refuses is never handed on: nothing to keep.
        let keep = denial.is_none() && authorize::payload_wanted();
        let payload = keep.then(|| payload.keep());
        let registered = self
            .revocation
            .is_some()
            .then(|| registered.to_registered());
        Ok(Checked {
            claims,
            payload,
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

/// The verified payload JSON as `conclude` gets it: just decoded (copied
/// only if kept), or shared with a verified-token cache entry.
enum Payload<'a> {
    Decoded(&'a [u8]),
    #[cfg(feature = "cache")]
    Cached(&'a TokenPayload),
}

impl Payload<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Decoded(bytes) => bytes,
            #[cfg(feature = "cache")]
            Payload::Cached(payload) => payload.bytes(),
        }
    }

    fn keep(self) -> TokenPayload {
        match self {
            Payload::Decoded(bytes) => TokenPayload::new(bytes),
            #[cfg(feature = "cache")]
            Payload::Cached(payload) => payload.clone(),
        }
    }
}
