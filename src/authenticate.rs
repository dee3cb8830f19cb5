//! The per-request pipeline, in the order a request meets it: find the
//! token → header → key → signature → claims → rules → authorization →
//! DPoP proof → revocation → DPoP replay. It ends in claims for the inner
//! service or a [`Rejection`]; only a revocation or replay check that
//! cannot answer synchronously leaves work (a future) for the response
//! future to finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use serde::de::DeserializeOwned;

use crate::authorize::{self, Policy, TokenPayload};
use crate::claims::{self, Clock, Registered, RegisteredClaims};
use crate::issuer::{Verifier, Verifiers};
use crate::jws;
use crate::reject::{Reason, Rejection, RejectionKind, Scheme};
use crate::revoke::{RevocationCheck, RevocationFuture};
use crate::token::{self, Found, TokenSource};

/// The proof a DPoP request hands the inner service next to its claims.
#[cfg(feature = "dpop")]
pub(crate) use crate::dpop::DpopProof as Proof;

/// Without the `dpop` feature no request carries a proof.
#[cfg(not(feature = "dpop"))]
pub(crate) enum Proof {}

/// The checks left for the response future: `Some` refuses the request.
pub(crate) type Check = Pin<Box<dyn Future<Output = Option<Rejection>> + Send>>;

/// The request line and headers a request is authenticated with.
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
}

impl<'a> Head<'a> {
    pub(crate) fn of<B>(request: &'a http::Request<B>) -> Self {
        Head {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
        }
    }
}

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
    /// The DPoP checks, when the layer accepts DPoP.
    #[cfg(feature = "dpop")]
    pub(crate) dpop: Option<crate::dpop::ProofVerifier>,
}

/// What authenticating a request concluded.
pub(crate) enum Outcome<C> {
    /// No token on an optional route.
    Anonymous,
    /// Verified and authorized claims, and the DPoP proof if any.
    Verified {
        claims: C,
        payload: Option<TokenPayload>,
        proof: Option<Proof>,
    },
    /// Verified claims whose revocation or replay check is under way. The
    /// authorization verdict is already known but only answered once the
    /// stores said the token is live and the proof new: a revoked token
    /// or a replayed proof is invalid (401) before it is forbidden (403).
    Pending {
        claims: C,
        payload: Option<TokenPayload>,
        proof: Option<Proof>,
        check: Check,
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
    /// `cnf.jkt`, kept only by a layer that accepts DPoP.
    #[cfg(feature = "dpop")]
    jkt: Option<String>,
}

/// A replay check not started yet, or started.
#[cfg(feature = "dpop")]
enum Replay {
    Started(crate::dpop::ReplayFuture),
    /// Started once the revocation check said the token is live.
    Later(Box<dyn FnOnce() -> crate::dpop::ReplayFuture + Send>),
}

/// Without the `dpop` feature there is no replay check.
#[cfg(not(feature = "dpop"))]
enum Replay {}

impl<C: DeserializeOwned + Clone + Send + Sync + 'static> Authenticator<C> {
    /// The whole pipeline for one request.
    pub(crate) fn authenticate(&self, head: Head<'_>) -> Outcome<C> {
        self.run(head, true)
    }

    /// The pipeline again, after a refetch: no second one.
    #[cfg(feature = "remote-jwks")]
    pub(crate) fn authenticate_after_refetch(&self, head: Head<'_>) -> Outcome<C> {
        self.run(head, false)
    }

    #[cfg_attr(not(feature = "remote-jwks"), allow(unused_variables))]
    fn run(&self, head: Head<'_>, may_refetch: bool) -> Outcome<C> {
        let (token, scheme) = match token::find(&self.sources, head.headers, head.uri, self.dpop())
        {
            Found::Token(token) => (token, Scheme::Bearer),
            Found::Dpop(token) => (token, Scheme::Dpop),
            Found::Nothing if self.optional => return Outcome::Anonymous,
            Found::Nothing => return self.refuse(RejectionKind::MissingToken.into(), Scheme::None),
            Found::Ambiguous => {
                return self.refuse(RejectionKind::AmbiguousToken.into(), Scheme::None);
            }
        };
        // A layer that requires DPoP takes any other scheme for none, even
        // where anonymous requests are let through: a token was sent.
        if scheme == Scheme::Bearer && self.dpop_required() {
            return self.refuse(RejectionKind::MissingToken.into(), scheme);
        }
        match self.verify(token) {
            Ok(checked) => self.finish(checked, token, scheme, head),
            #[cfg(feature = "remote-jwks")]
            Err(rejection) if may_refetch => match self.refetch_for(token, &rejection) {
                Some(wait) => Outcome::Refetch(wait),
                None => self.refuse(rejection, scheme),
            },
            Err(rejection) => self.refuse(rejection, scheme),
        }
    }

    /// What follows a token that verified: the DPoP proof's own checks,
    /// then revocation, then the proof's replay check, then the policy's
    /// verdict. Stores that answer from memory are settled here (no future
    /// boxed); the rest is left to the response future, in the same order.
    #[cfg_attr(not(feature = "dpop"), allow(unused_variables, unused_mut))]
    fn finish(
        &self,
        checked: Checked<C>,
        token: &[u8],
        scheme: Scheme,
        head: Head<'_>,
    ) -> Outcome<C> {
        #[cfg(feature = "dpop")]
        let accepted = match self.proof(checked.jkt.as_deref(), token, scheme, head) {
            Ok(accepted) => accepted,
            Err(rejection) => return self.refuse(rejection, scheme),
        };
        let Checked {
            claims,
            payload,
            registered,
            denial,
            ..
        } = checked;
        let mut revocation = None;
        if let Some(registered) = &registered {
            match self.revocation().is_revoked_now(registered) {
                Some(Ok(false)) => {}
                Some(Ok(true)) => {
                    let revoked = RejectionKind::InvalidToken(Reason::Revoked);
                    return self.refuse(revoked.into(), scheme);
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "revocation check failed");
                    crate::metrics::revocation_error();
                    return self.refuse(RejectionKind::Unavailable.into(), scheme);
                }
                None => revocation = Some(self.revocation().is_revoked(registered)),
            }
        }
        let mut proof = None;
        let mut replay = None;
        #[cfg(feature = "dpop")]
        if let (Some(accepted), Some(dpop)) = (accepted, &self.dpop) {
            if revocation.is_some() {
                replay = Some(Replay::Later(Box::new(dpop.record_later(&accepted))));
            } else {
                match dpop.record_now(&accepted) {
                    Some(answer) => {
                        if let Err(err) = crate::dpop::replay_verdict(answer) {
                            return self.refuse(err.into(), scheme);
                        }
                    }
                    None => replay = Some(Replay::Started(dpop.record(&accepted))),
                }
            }
            proof = Some(accepted.proof);
        }
        if revocation.is_none() && replay.is_none() {
            return match denial {
                Some(denial) => self.refuse(denial, scheme),
                None => Outcome::Verified {
                    claims,
                    payload,
                    proof,
                },
            };
        }
        Outcome::Pending {
            claims,
            payload,
            proof,
            check: self.pending(revocation, replay, scheme),
            denial: denial.map(|denial| self.dress(denial, scheme)),
        }
    }

    /// The revocation check, then the replay check, as one future.
    fn pending(
        &self,
        revocation: Option<RevocationFuture>,
        replay: Option<Replay>,
        scheme: Scheme,
    ) -> Check {
        let dress = Dress {
            dpop: self.dpop(),
            scheme,
        };
        Box::pin(async move {
            if let Some(check) = revocation {
                let rejection = match check.await {
                    Ok(false) => None,
                    Ok(true) => Some(RejectionKind::InvalidToken(Reason::Revoked).into()),
                    Err(err) => {
                        tracing::warn!(error = %err, "revocation check failed");
                        crate::metrics::revocation_error();
                        Some(RejectionKind::Unavailable.into())
                    }
                };
                if let Some(rejection) = rejection {
                    return Some(dress.apply(rejection));
                }
            }
            if let Some(replay) = replay {
                #[cfg(feature = "dpop")]
                {
                    let answer = match replay {
                        Replay::Started(check) => check.await,
                        Replay::Later(start) => start().await,
                    };
                    if let Err(err) = crate::dpop::replay_verdict(answer) {
                        return Some(dress.apply(err.into()));
                    }
                }
                #[cfg(not(feature = "dpop"))]
                match replay {}
            }
            None
        })
    }

    /// The DPoP checks of a request whose token verified: a bound token
    /// must come with the DPoP scheme and a proof by its key, and the DPoP
    /// scheme with a bound token. `None` for a Bearer request.
    #[cfg(feature = "dpop")]
    fn proof(
        &self,
        jkt: Option<&str>,
        token: &[u8],
        scheme: Scheme,
        head: Head<'_>,
    ) -> Result<Option<crate::dpop::Accepted>, Rejection> {
        let Some(dpop) = &self.dpop else {
            return Ok(None);
        };
        let invalid = |reason| Rejection::from(RejectionKind::InvalidToken(reason));
        match (scheme, jkt) {
            (Scheme::Dpop, Some(jkt)) => dpop
                .check(head.method, head.uri, head.headers, Some(token), Some(jkt))
                .map(Some)
                .map_err(Rejection::from),
            (Scheme::Dpop, None) => Err(invalid(Reason::TokenNotBound)),
            (_, Some(_)) => Err(invalid(Reason::TokenBound)),
            (_, None) => Ok(None),
        }
    }

    /// Whether this layer accepts DPoP.
    fn dpop(&self) -> bool {
        #[cfg(feature = "dpop")]
        return self.dpop.is_some();
        #[cfg(not(feature = "dpop"))]
        false
    }

    /// Whether this layer refuses every scheme but DPoP.
    fn dpop_required(&self) -> bool {
        #[cfg(feature = "dpop")]
        return self.dpop.as_ref().is_some_and(|dpop| dpop.required());
        #[cfg(not(feature = "dpop"))]
        false
    }

    /// A refusal, answered in the scheme the request used.
    fn refuse(&self, rejection: Rejection, scheme: Scheme) -> Outcome<C> {
        Outcome::Rejected(self.dress(rejection, scheme))
    }

    fn dress(&self, rejection: Rejection, scheme: Scheme) -> Rejection {
        Dress {
            dpop: self.dpop(),
            scheme,
        }
        .apply(rejection)
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
        let kept = self
            .revocation
            .is_some()
            .then(|| registered.to_registered());
        Ok(Checked {
            claims,
            payload,
            registered: kept,
            denial,
            #[cfg(feature = "dpop")]
            jkt: self
                .dpop
                .as_ref()
                .and(registered.cnf_jkt.as_deref())
                .map(str::to_owned),
        })
    }

    fn revocation(&self) -> &dyn RevocationCheck {
        self.revocation
            .as_deref()
            .expect("registered claims are only kept for a revocation check")
    }
}

/// Marks a refusal with the scheme the request used, for a layer that
/// accepts DPoP (its challenges depend on it).
#[derive(Clone, Copy)]
struct Dress {
    dpop: bool,
    scheme: Scheme,
}

impl Dress {
    fn apply(self, rejection: Rejection) -> Rejection {
        if self.dpop {
            rejection.with_scheme(self.scheme)
        } else {
            rejection
        }
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
