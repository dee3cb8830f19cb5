//! Checking a request's proof: [`ProofVerifier`], what the layer and an
//! issuer share, and [`DpopError`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderName, Method, Uri};

use super::htu::{self, ExternalBase};
use super::nonce::{Freshness, Nonces};
use super::proof;
use super::replay::{MemoryReplayStore, ReplayFuture, ReplayStore};
use super::{Dpop, DpopProof};
use crate::alg::Algorithm;
use crate::claims::Clock;
use crate::crypto::sha256;
use crate::error::{BoxError, Error};
use crate::reject::{DpopChallenge, Reason, Rejection, RejectionKind};

/// The request header carrying the proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Checks DPoP proofs (RFC 9449 §4.3) outside a layer: what an issuer's
/// token endpoint (the login service's `/auth/login` and
/// `/auth/refresh`) runs before binding the tokens it issues to the
/// proof's key. A [`JwtAuthLayer`](crate::JwtAuthLayer) configured with
/// [`JwtAuthBuilder::dpop`](crate::JwtAuthBuilder::dpop) runs the same
/// checks on every DPoP request.
///
/// Cheap to clone: clones share the configuration and the replay store.
///
/// # Example
///
/// ```no_run
/// use http::{HeaderMap, Method, Uri};
/// use tower_jwt_auth::dpop::{Dpop, ProofVerifier};
///
/// # async fn token_endpoint(method: Method, uri: Uri, headers: HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = ProofVerifier::new(Dpop::required().external_base("https://auth.example.com")?)?;
/// match verifier.verify(&method, &uri, &headers, None).await {
///     // Issue tokens with `"cnf": {"jkt": proof.jkt}` and `"token_type": "DPoP"`.
///     Ok(proof) => println!("bind to {}", proof.jkt),
///     // 400 `{"error": err.error_code()}`, with `DPoP-Nonce` when `err.fresh_nonce()` is some.
///     Err(err) => println!("{}: {}", err.error_code(), err),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ProofVerifier {
    shared: Arc<Shared>,
}

struct Shared {
    required: bool,
    algorithms: Vec<Algorithm>,
    challenge: Arc<DpopChallenge>,
    max_age: u64,
    max_skew: u64,
    base: Option<ExternalBase>,
    store: Arc<dyn ReplayStore>,
    nonces: Option<Nonces>,
    clock: Clock,
}

impl fmt::Debug for ProofVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("ProofVerifier")
            .field("required", &shared.required)
            .field("algorithms", &shared.algorithms)
            .field("max_age", &Duration::from_secs(shared.max_age))
            .field("max_skew", &Duration::from_secs(shared.max_skew))
            .field("external_base", &shared.base)
            .field("nonces", &shared.nonces)
            .finish_non_exhaustive()
    }
}

/// A proof that passed every check but the replay check.
pub(crate) struct Accepted {
    pub(crate) proof: DpopProof,
    /// The replay store's key: base64url SHA-256 of thumbprint and `jti`.
    key: String,
    now: SystemTime,
    /// When the proof's `iat` leaves the accepted window.
    expires: SystemTime,
}

impl ProofVerifier {
    /// A verifier with `config`'s algorithms, window, external base,
    /// replay store (a fresh [`MemoryReplayStore`] when none is set) and
    /// nonces.
    ///
    /// # Errors
    /// [`Error::Config`] when [`Dpop::algorithms`] was given a symmetric
    /// algorithm or none at all.
    pub fn new(config: Dpop) -> Result<Self, Error> {
        if let Some(err) = config.error {
            return Err(Error::Config(err));
        }
        if config.algorithms.is_empty() {
            return Err(Error::Config(
                "DPoP needs at least one proof algorithm".into(),
            ));
        }
        let algs = config
            .algorithms
            .iter()
            .map(|alg| alg.name())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ProofVerifier {
            shared: Arc::new(Shared {
                required: config.required,
                challenge: Arc::new(DpopChallenge {
                    algs,
                    required: config.required,
                }),
                algorithms: config.algorithms,
                max_age: config.max_age.as_secs(),
                max_skew: config.max_skew.as_secs(),
                base: config.base,
                store: config
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryReplayStore::new())),
                nonces: config.nonces,
                clock: config.clock.unwrap_or_default(),
            }),
        })
    }

    /// Checks the request's single `DPoP` header: `typ` `dpop+jwt`, an
    /// accepted asymmetric `alg`, a public `jwk` that verifies the
    /// signature, `htm` and `htu` (normalised, via the external base when
    /// set) naming this request, `iat` within the window, `ath` naming
    /// `access_token` (present exactly when a token is given), the server
    /// nonce when nonces are configured, and finally that no proof with
    /// this key and `jti` was accepted before (one replay-store call).
    ///
    /// # Errors
    /// A [`DpopError`]: `invalid_dpop_proof` with the failed check's
    /// [`Reason`], `use_dpop_nonce` with a fresh nonce, or
    /// `temporarily_unavailable` when the replay store cannot answer.
    pub async fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        access_token: Option<&str>,
    ) -> Result<DpopProof, DpopError> {
        let accepted = self.check(method, uri, headers, access_token.map(str::as_bytes), None)?;
        let fresh = match self.record_now(&accepted) {
            Some(answer) => answer,
            None => self.record(&accepted).await,
        };
        replay_verdict(fresh).map(|()| accepted.proof)
    }

    /// Whether the Bearer scheme is refused.
    pub(crate) fn required(&self) -> bool {
        self.shared.required
    }

    pub(crate) fn challenge(&self) -> &Arc<DpopChallenge> {
        &self.shared.challenge
    }

    /// Every check but the replay check. With `bound_to`, the token's
    /// `cnf.jkt`, the proof's key must be that one (before the nonce: a
    /// proof for the wrong key earns no nonce).
    pub(crate) fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        token: Option<&[u8]>,
        bound_to: Option<&str>,
    ) -> Result<Accepted, DpopError> {
        let shared = &*self.shared;
        let mut proofs = headers.get_all(DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => return Err(DpopError::invalid(Reason::ProofMissing)),
            (Some(_), Some(_)) => return Err(DpopError::invalid(Reason::ProofRepeated)),
            (Some(proof), None) => proof.as_bytes(),
        };
        let mut payload = Vec::new();
        let proof::Proof { jkt, claims } =
            proof::verify(proof, &shared.algorithms, &mut payload).map_err(DpopError::invalid)?;
        if claims.htm != method.as_str() {
            return Err(DpopError::invalid(Reason::ProofMethod));
        }
        let target = htu::target(shared.base.as_ref(), uri, headers);
        if !target.is_some_and(|target| htu::matches(&claims.htu, &target)) {
            return Err(DpopError::invalid(Reason::ProofUri));
        }
        let now = shared.clock.time();
        let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if claims.iat.saturating_add(shared.max_age) < seconds
            || claims.iat > seconds.saturating_add(shared.max_skew)
        {
            return Err(DpopError::invalid(Reason::ProofIssuedAt));
        }
        match (token, claims.ath.as_deref()) {
            (Some(token), Some(ath)) if ath == hash(token) => {}
            (Some(_), Some(_)) => return Err(DpopError::invalid(Reason::ProofTokenHash)),
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err(DpopError::invalid(Reason::ProofClaims));
            }
        }
        if bound_to.is_some_and(|bound| bound != jkt) {
            return Err(DpopError::invalid(Reason::BindingMismatch));
        }
        let next_nonce = match &shared.nonces {
            None => None,
            Some(nonces) => match claims.nonce.as_deref().map(|n| nonces.freshness(n, now)) {
                Some(Freshness::Current) => None,
                Some(Freshness::Previous) => Some(nonces.current_at(now)),
                Some(Freshness::Invalid) | None => {
                    return Err(DpopError::use_nonce(nonces.current_at(now)));
                }
            },
        };
        let key = replay_key(&jkt, &claims.jti);
        let expires =
            UNIX_EPOCH + Duration::from_secs(claims.iat.saturating_add(shared.max_age + 1));
        Ok(Accepted {
            proof: DpopProof {
                jkt,
                jti: claims.jti.into_owned(),
                iat: claims.iat,
                next_nonce,
            },
            key,
            now,
            expires,
        })
    }

    /// The replay check, when the store answers without waiting.
    pub(crate) fn record_now(&self, accepted: &Accepted) -> Option<Result<bool, BoxError>> {
        self.shared
            .store
            .check_and_record_now(&accepted.key, accepted.now, accepted.expires)
    }

    /// The replay check, as a future that owns what it needs.
    pub(crate) fn record(&self, accepted: &Accepted) -> ReplayFuture {
        self.shared
            .store
            .check_and_record(&accepted.key, accepted.now, accepted.expires)
    }

    /// A replay check to start later (after a revocation check), owning
    /// what it needs.
    pub(crate) fn record_later(
        &self,
        accepted: &Accepted,
    ) -> impl FnOnce() -> ReplayFuture + Send + 'static {
        let store = Arc::clone(&self.shared.store);
        let (key, now, expires) = (accepted.key.clone(), accepted.now, accepted.expires);
        move || store.check_and_record(&key, now, expires)
    }
}

/// The replay store's answer as a verdict; a store error is logged and
/// counted.
pub(crate) fn replay_verdict(answer: Result<bool, BoxError>) -> Result<(), DpopError> {
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => Err(DpopError::invalid(Reason::ProofReplayed)),
        Err(err) => {
            tracing::warn!(error = %err, "DPoP replay store failed");
            crate::metrics::replay_error();
            Err(DpopError {
                kind: ErrorKind::Unavailable,
            })
        }
    }
}

fn hash(token: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha256(token))
}

/// Scoped by the key: another client's `jti` never collides; hashed: the
/// key's length does not depend on the `jti`'s.
fn replay_key(jkt: &str, jti: &str) -> String {
    let mut input = Vec::with_capacity(jkt.len() + 1 + jti.len());
    input.extend_from_slice(jkt.as_bytes());
    input.push(b' ');
    input.extend_from_slice(jti.as_bytes());
    hash(&input)
}

/// Why a proof was refused, as an issuer answers it (RFC 9449 §5, §8): an
/// OAuth error code, a generic description, and a fresh nonce to send in
/// `DPoP-Nonce` for `use_dpop_nonce`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopError {
    kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ErrorKind {
    Invalid(Reason),
    UseNonce(String),
    Unavailable,
}

impl DpopError {
    pub(crate) fn invalid(reason: Reason) -> Self {
        DpopError {
            kind: ErrorKind::Invalid(reason),
        }
    }

    fn use_nonce(nonce: String) -> Self {
        DpopError {
            kind: ErrorKind::UseNonce(nonce),
        }
    }

    /// `invalid_dpop_proof`, `use_dpop_nonce`, or `temporarily_unavailable`
    /// when the replay store could not answer (an issuer answers that one
    /// 503).
    pub fn error_code(&self) -> &'static str {
        match self.kind {
            ErrorKind::Invalid(_) => "invalid_dpop_proof",
            ErrorKind::UseNonce(_) => "use_dpop_nonce",
            ErrorKind::Unavailable => "temporarily_unavailable",
        }
    }

    /// A client-facing description that does not say which check failed.
    pub fn description(&self) -> &'static str {
        match self.kind {
            ErrorKind::Invalid(_) => "The DPoP proof is invalid",
            ErrorKind::UseNonce(_) => "Authorization server requires nonce in DPoP proof",
            ErrorKind::Unavailable => "DPoP proofs cannot be checked right now",
        }
    }

    /// The nonce to send in `DPoP-Nonce` (always with `use_dpop_nonce`).
    pub fn fresh_nonce(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::UseNonce(nonce) => Some(nonce),
            _ => None,
        }
    }

    /// Which check refused the proof, for logs (never shown to clients by
    /// the crate); `None` for a nonce request or an unavailable store.
    pub fn reason(&self) -> Option<Reason> {
        match self.kind {
            ErrorKind::Invalid(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether the replay store could not answer (retry later).
    pub fn is_unavailable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Invalid(reason) => write!(f, "invalid DPoP proof: {reason}"),
            ErrorKind::UseNonce(_) => f.write_str("DPoP proof without a current server nonce"),
            ErrorKind::Unavailable => f.write_str("DPoP replay store unavailable"),
        }
    }
}

impl std::error::Error for DpopError {}

/// The answer a resource server gives: 401 `invalid_dpop_proof` (or
/// `invalid_token` for a proof made with another key than the token's),
/// 401 `use_dpop_nonce` with the nonce, 503.
impl From<DpopError> for Rejection {
    fn from(err: DpopError) -> Self {
        match err.kind {
            ErrorKind::Invalid(Reason::BindingMismatch) => {
                RejectionKind::InvalidToken(Reason::BindingMismatch).into()
            }
            ErrorKind::Invalid(reason) => RejectionKind::InvalidDpopProof(reason).into(),
            ErrorKind::UseNonce(nonce) => {
                Rejection::from(RejectionKind::UseDpopNonce).with_dpop_nonce(nonce)
            }
            ErrorKind::Unavailable => RejectionKind::Unavailable.into(),
        }
    }
}
