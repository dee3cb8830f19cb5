//! [`JwtAuthBuilder`]: the one place configuration is assembled and
//! checked, synchronously. Everything is prepared here, once (keys parsed
//! and pinned to their algorithms, rules fixed), so a request only reads.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderName, Response};
use serde::de::DeserializeOwned;

use crate::authenticate::{Authenticator, Predicate};
use crate::authorize::PolicyBuilder;
use crate::claims::{Clock, Rules};
use crate::error::Error;
use crate::issuer::{Issuer, Verifier, Verifiers};
use crate::keys::{KeyStore, VerifyingKey};
use crate::reject::{DEFAULT_REALM, Rejection, Render, Responder};
use crate::revoke::RevocationCheck;
use crate::service::{Config, JwtAuthLayer};
use crate::token::{DEFAULT_MAX_TOKEN_LEN, TokenSource};

/// The key methods a [`JwtAuthBuilder`] and an [`Issuer`](crate::Issuer)
/// share, written once: each keeps its keys in `keys` and its first error
/// in `error`, reported from `build()`.
macro_rules! key_methods {
    () => {
        fn add(mut self, key: Result<$crate::VerifyingKey, $crate::Error>) -> Self {
            match key {
                Ok(key) => self.keys.push(key),
                Err(err) => {
                    self.error.get_or_insert(err);
                }
            }
            self
        }

        /// Adds a prepared key.
        pub fn key(self, key: $crate::VerifyingKey) -> Self {
            self.add(Ok(key))
        }

        /// Adds an HS256 secret (at least 32 bytes).
        pub fn hs256(self, secret: impl AsRef<[u8]>) -> Self {
            self.add($crate::VerifyingKey::hmac($crate::Algorithm::HS256, secret))
        }

        /// Adds an HS384 secret (at least 48 bytes).
        pub fn hs384(self, secret: impl AsRef<[u8]>) -> Self {
            self.add($crate::VerifyingKey::hmac($crate::Algorithm::HS384, secret))
        }

        /// Adds an HS512 secret (at least 64 bytes).
        pub fn hs512(self, secret: impl AsRef<[u8]>) -> Self {
            self.add($crate::VerifyingKey::hmac($crate::Algorithm::HS512, secret))
        }

        /// Adds an RSA public key PEM for `alg` (RS256/384/512, PS256/384/512).
        pub fn rsa_pem(self, alg: $crate::Algorithm, pem: impl AsRef<[u8]>) -> Self {
            self.add($crate::VerifyingKey::rsa_pem(alg, pem))
        }

        /// Adds an EC P-256 or P-384 public key PEM (ES256 / ES384).
        pub fn ec_pem(self, pem: impl AsRef<[u8]>) -> Self {
            self.add($crate::VerifyingKey::ec_pem(pem))
        }

        /// Adds an Ed25519 public key PEM (EdDSA).
        pub fn ed_pem(self, pem: impl AsRef<[u8]>) -> Self {
            self.add($crate::VerifyingKey::ed_pem(pem))
        }

        /// Adds any public key PEM, its algorithm inferred (RSA → RS256).
        pub fn public_key_pem(self, pem: impl AsRef<[u8]>) -> Self {
            self.add($crate::VerifyingKey::public_key_pem(pem))
        }

        /// Adds a public key file (PEM or SPKI DER), algorithm inferred (RSA →
        /// RS256).
        pub fn public_key_file(self, path: impl AsRef<::std::path::Path>) -> Self {
            self.add($crate::VerifyingKey::public_key_file(path))
        }

        /// Adds every usable key of a JWK set file.
        pub fn jwks_file(self, path: impl AsRef<::std::path::Path>) -> Self {
            self.add_set($crate::KeySet::from_jwks_file(path))
        }

        /// Adds every usable key of a JWK set document.
        pub fn jwks_str(self, json: &str) -> Self {
            self.add_set($crate::KeySet::from_jwks_str(json))
        }

        fn add_set(mut self, set: Result<$crate::KeySet, $crate::Error>) -> Self {
            match set {
                Ok(set) => self.keys.extend(set.keys().iter().cloned()),
                Err(err) => {
                    self.error.get_or_insert(err);
                }
            }
            self
        }
    };
}
pub(crate) use key_methods;

/// The claim rules a [`JwtAuthBuilder`] and an [`Issuer`](crate::Issuer)
/// share, written once: each keeps them in `rules`.
macro_rules! rule_methods {
    () => {
        /// Accepts tokens for this audience (`aud`); call again for several.
        /// Once set, `aud` is required and must name one of them.
        pub fn audience(mut self, audience: impl Into<String>) -> Self {
            self.rules.audiences.push(audience.into());
            self
        }

        /// Accepts any `aud` when no audience is configured. Without this, a
        /// token carrying `aud` is refused by a verifier that names none
        /// (RFC 7519 §4.1.3).
        pub fn any_audience(mut self) -> Self {
            self.rules.any_audience = true;
            self
        }

        /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s).
        pub fn leeway(mut self, leeway: ::std::time::Duration) -> Self {
            self.rules.leeway = leeway.as_secs();
            self
        }

        /// Refuses tokens issued longer ago than `max_age`; `iat` becomes required.
        pub fn max_age(mut self, max_age: ::std::time::Duration) -> Self {
            self.rules.max_age = Some(max_age.as_secs());
            self
        }

        /// Requires a top-level claim to be present (any JSON type).
        pub fn require_claim(mut self, name: impl Into<String>) -> Self {
            self.rules.required.push(name.into());
            self
        }

        /// Requires the RFC 9068 access-token profile: header `typ` must be
        /// `at+jwt` or `application/at+jwt`, any case.
        pub fn require_typ_at_jwt(mut self) -> Self {
            self.rules.typ_at_jwt = true;
            self
        }
    };
}
pub(crate) use rule_methods;

impl<C> JwtAuthLayer<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Starts a configuration.
    pub fn builder() -> JwtAuthBuilder<C> {
        JwtAuthBuilder::new()
    }
}

/// Builds a [`JwtAuthLayer`]. Methods that take key material keep the
/// first error and report it from [`JwtAuthBuilder::build`], so a whole
/// configuration reads as one chain.
///
/// Defaults: token from `Authorization: Bearer` only; at most 8 KiB; `exp`
/// required; 30 s leeway; `nbf`/`iat` checked when present; no issuer or
/// audience accepted unless configured (a token with `aud` is refused
/// while no audience is configured); duplicate JSON members, `crit` and
/// nested tokens refused; realm `"api"`; anonymous requests refused; gRPC
/// answers for HTTP/2 gRPC and gRPC-web requests only
/// ([`grpc_answers`](Self::grpc_answers)); a token checked against at most
/// [`MAX_KEYS_TRIED`](crate::keys::MAX_KEYS_TRIED) keys (its `kid` selects
/// exactly; a token without one is tried on the first keys of its
/// algorithm only); RSA keys of 2048 to 4096 bits and HMAC secrets of at
/// least the hash size, checked when added.
pub struct JwtAuthBuilder<C> {
    keys: Vec<VerifyingKey>,
    store: Option<KeyStore>,
    pub(crate) error: Option<Error>,
    rules: Rules,
    sources: Vec<TokenSource>,
    optional: bool,
    max_token_len: usize,
    realm: String,
    claim_rules: Vec<Predicate<C>>,
    policy: PolicyBuilder<C>,
    revocation: Option<Arc<dyn RevocationCheck>>,
    render: Option<Box<Render>>,
    grpc_answers: bool,
    #[cfg(feature = "remote-jwks")]
    pub(crate) remote: crate::keys::remote::RemoteSetup,
    #[cfg(feature = "cache")]
    cache: Option<crate::cache::TokenCache>,
    #[cfg(feature = "dpop")]
    dpop: Option<crate::dpop::Dpop>,
    clock: Clock,
    issuer_configs: Vec<Issuer>,
    _claims: PhantomData<fn() -> C>,
}

impl<C> fmt::Debug for JwtAuthBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthBuilder")
            .field("keys", &self.keys)
            .field("rules", &self.rules)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl<C> Default for JwtAuthBuilder<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<C> JwtAuthBuilder<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// An empty configuration with the defaults above.
    pub fn new() -> Self {
        JwtAuthBuilder {
            keys: Vec::new(),
            store: None,
            error: None,
            rules: Rules::default(),
            sources: vec![TokenSource::BearerHeader],
            optional: false,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            realm: DEFAULT_REALM.to_owned(),
            claim_rules: Vec::new(),
            policy: PolicyBuilder::new(),
            revocation: None,
            render: None,
            grpc_answers: true,
            #[cfg(feature = "remote-jwks")]
            remote: Default::default(),
            #[cfg(feature = "cache")]
            cache: None,
            #[cfg(feature = "dpop")]
            dpop: None,
            clock: Clock::default(),
            issuer_configs: Vec::new(),
            _claims: PhantomData,
        }
    }

    key_methods!();

    /// Reads keys from a store that can be replaced while serving (key
    /// rotation). Use either a store or the individual key methods.
    pub fn key_store(mut self, store: KeyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Accepts tokens from this issuer (`iss`); call again for several.
    /// Once set, `iss` is required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.rules.issuers.push(issuer.into());
        self
    }

    /// Trusts one more issuer, with its own keys, audiences and claim
    /// rules (see [`Issuer`]); call again for each. A token's `iss` picks
    /// the issuer it is checked against; a missing or unknown `iss` is
    /// refused. Keys and claim rules then go on each `Issuer` rather than
    /// here; scopes, claim and authorization rules, token sources and the
    /// rest stay layer-wide.
    pub fn issuer_config(mut self, issuer: Issuer) -> Self {
        self.issuer_configs.push(issuer);
        self
    }

    rule_methods!();

    /// Requires a scope on every route of this layer, found in the
    /// space-separated `scope` claim or the `scp` string/array; otherwise
    /// `403 insufficient_scope`, naming every scope required this way. Call
    /// again to require several. The same check as a
    /// [`Policy`](crate::authorize::Policy) scope rule, applied layer-wide;
    /// a per-route requirement is [`JwtAuthLayer::require`].
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        self.policy = self.policy.scope(scope);
        self
    }

    /// A validity rule on the application's claims; `false` makes the token
    /// invalid (401).
    pub fn claims_rule(mut self, rule: impl Fn(&C) -> bool + Send + Sync + 'static) -> Self {
        self.claim_rules.push(Box::new(rule));
        self
    }

    /// An authorization rule on a valid token's claims, on every route of
    /// this layer; `false` answers 403. The same check as a
    /// [`Policy`](crate::authorize::Policy) predicate, applied layer-wide.
    pub fn authorize(mut self, rule: impl Fn(&C) -> bool + Send + Sync + 'static) -> Self {
        self.policy = self.policy.claims(rule);
        self
    }

    /// Also reads the token from this cookie.
    pub fn token_from_cookie(mut self, name: impl Into<String>) -> Self {
        self.sources.push(TokenSource::Cookie(name.into()));
        self
    }

    /// Also reads the token (the whole value) from this header.
    pub fn token_from_header(mut self, name: HeaderName) -> Self {
        self.sources.push(TokenSource::Header(name));
        self
    }

    /// Also reads the token from this query parameter.
    pub fn token_from_query(mut self, name: impl Into<String>) -> Self {
        self.sources.push(TokenSource::Query(name.into()));
        self
    }

    /// Replaces the token sources entirely.
    pub fn token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// Lets requests without any token through, without claims; a present
    /// but invalid token is still refused.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Maximum token length in bytes (default 8 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// The `realm` announced in `WWW-Authenticate` (default `"api"`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Consults a revocation store once the signature and every 401-class
    /// claim check (registered claims, [`claims_rule`](Self::claims_rule))
    /// passed, and before scopes and [`authorize`](Self::authorize) rules
    /// are answered: a revoked token is 401 `invalid_token` (gRPC 16) even
    /// on a route it lacks the scope for. A token lacking a scope is looked
    /// up too, to tell 401 from 403.
    pub fn revocation(mut self, check: impl RevocationCheck) -> Self {
        self.revocation = Some(Arc::new(check));
        self
    }

    /// Renders HTTP rejections yourself (gRPC answers keep their fixed
    /// form). [`Rejection::to_http_response`] is the default.
    /// `Cache-Control: no-store` is added when the renderer sets no
    /// `Cache-Control` of its own.
    pub fn on_rejection(
        mut self,
        render: impl Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.render = Some(Box::new(render));
        self
    }

    /// Whether gRPC requests get gRPC answers (default `true`).
    ///
    /// With `true`, a rejected request that came over HTTP/2 with an
    /// `application/grpc*` content type, or with a gRPC-web content type
    /// (`application/grpc-web*`, any HTTP version), is answered as gRPC
    /// expects: HTTP 200 with `grpc-status` 16, 7, 3 or 14. Every other
    /// request, `application/grpc` over HTTP/1.1 included, gets the HTTP
    /// answer (401/403/400/503 and `WWW-Authenticate`).
    ///
    /// With `false`, every rejection is answered over HTTP whatever the
    /// request says it is: for HTTP-only services, so that no request can
    /// ever turn a refusal into an HTTP 200, which a proxy's
    /// `auth_request`, a forward-auth hook or a cache would read as
    /// success.
    ///
    /// Put this layer outside (before) tonic-web's `GrpcWebLayer`: inside
    /// it, requests arrive translated to `application/grpc` over HTTP/1.1
    /// and get HTTP answers, which gRPC-web clients map to the same codes
    /// (401 → UNAUTHENTICATED, 403 → PERMISSION_DENIED).
    pub fn grpc_answers(mut self, enabled: bool) -> Self {
        self.grpc_answers = enabled;
        self
    }

    /// Keeps verified tokens in a bounded cache, so that a token presented
    /// again skips its signature check; every other check still runs. Off
    /// by default; see [`crate::cache`].
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache(mut self, cache: crate::cache::TokenCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Accepts DPoP-bound tokens (RFC 9449), alongside bearer tokens
    /// ([`Dpop::allowed`](crate::dpop::Dpop::allowed)) or instead of them
    /// ([`Dpop::required`](crate::dpop::Dpop::required)). Off by default: a
    /// layer without it treats `Authorization: DPoP` as an unknown scheme
    /// and does not look at `cnf`. See [`crate::dpop`].
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop(mut self, dpop: crate::dpop::Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Reads the time from `now` instead of the system clock, for every
    /// time check (`exp`, `nbf`, `iat`, `max_age`, cached entries): for
    /// tests that move time. Whole seconds count.
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Clock::new(now);
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// The first key that failed to parse, no key at all, both keys and a
    /// store, no token source, or a required scope that is not an RFC 6749
    /// scope token; with [`issuer_config`](Self::issuer_config), the same
    /// for each issuer, an issuer named twice, or keys or claim rules given
    /// here instead of on an [`Issuer`].
    pub fn build(self) -> Result<JwtAuthLayer<C>, Error> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let verifiers = if self.issuer_configs.is_empty() {
            Verifiers::One(Verifier::new(
                self.keys,
                self.store,
                #[cfg(feature = "remote-jwks")]
                self.remote,
                self.rules,
            )?)
        } else {
            let layer_keys = !self.keys.is_empty() || self.store.is_some();
            #[cfg(feature = "remote-jwks")]
            let layer_keys = layer_keys || self.remote.is_set();
            Verifiers::by_issuer(self.issuer_configs, self.rules, layer_keys)?
        };
        if self.sources.is_empty() {
            return Err(Error::Config("no token source configured".into()));
        }
        let policy = self.policy.build_here()?;
        #[cfg(feature = "dpop")]
        let dpop = match self.dpop {
            Some(mut dpop) => {
                // Proofs are timed by the layer's clock unless told otherwise.
                dpop.clock.get_or_insert_with(|| self.clock.clone());
                Some(crate::dpop::ProofVerifier::new(dpop)?)
            }
            None => None,
        };
        if let Some(revocation) = &self.revocation {
            // A revoked token verifies until `exp` plus the leeway: the
            // store must remember it that long.
            revocation.keep_past_exp(verifiers.max_leeway());
        }
        Ok(JwtAuthLayer::from_config(Config {
            authenticator: Authenticator {
                verifiers,
                sources: self.sources,
                optional: self.optional,
                max_token_len: self.max_token_len,
                claim_rules: self.claim_rules,
                policy,
                revocation: self.revocation,
                #[cfg(feature = "cache")]
                cache: self.cache.map(|cache| cache.store()),
                clock: self.clock,
                #[cfg(feature = "dpop")]
                dpop: dpop.clone(),
            },
            responder: Arc::new(Responder {
                realm: self.realm.into(),
                custom: self.render,
                grpc_answers: self.grpc_answers,
                #[cfg(feature = "dpop")]
                dpop: dpop.map(|dpop| Arc::clone(dpop.challenge())),
                #[cfg(not(feature = "dpop"))]
                dpop: None,
            }),
        }))
    }
}
