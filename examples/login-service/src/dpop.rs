//! DPoP (RFC 9449): sender-constrained tokens.
//!
//! A client that sends a `DPoP` proof with `POST /auth/login` or
//! `POST /auth/refresh` gets `token_type: DPoP` access tokens carrying
//! `cnf.jkt`, the thumbprint of the proof's key, and a refresh token that
//! works only with proofs by that key (`sessions.rs`, the family's
//! `dpop_jkt`). Without a proof nothing changes: Bearer tokens, as before.
//!
//! One [`Dpop`] configuration serves both sides: the [`ProofVerifier`] of
//! the token endpoints here, and the library's layer on the protected
//! routes (`Dpop::allowed()`: Bearer tokens keep working, DPoP-bound ones
//! need `Authorization: DPoP` and a proof). Both check `htu` against the
//! configured issuer URL, which is what clients call (also behind a
//! proxy), and both record proofs' `jti` in one replay store: this
//! process's memory, or Redis when `REDIS_URL` is set, so that a proof
//! used at one instance is refused at every other.
//!
//! With `--dpop-nonce-secs` both also require a server nonce (RFC 9449
//! §8, §9): a proof without a current one is answered `use_dpop_nonce`
//! with a nonce to use in `DPoP-Nonce`. Nonces are MACs of the time slot
//! (the library's [`Nonces`]) under a key derived from the secret stored
//! in the database ([`DeviceCookies::derive_key`]), so every instance on
//! the database issues and accepts the same nonces without configuration
//! or shared state. A proof with the previous slot's nonce is accepted,
//! and its response carries the current one.

use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use tower_jwt_auth::Algorithm;
use tower_jwt_auth::dpop::{
    DPOP, Dpop, DpopError, DpopProof, MemoryReplayStore, Nonces, ProofVerifier, RedisReplayStore,
};
use tower_jwt_auth::reject::DPOP_NONCE;

use crate::BoxError;
use crate::config::Config;
use crate::devices::DeviceCookies;
use crate::error::ApiError;

/// What the nonce key is derived for ([`DeviceCookies::derive_key`]).
const NONCE_KEY_PURPOSE: &str = "dpop-nonce";

/// The proof algorithms accepted, as the discovery document announces them
/// (`dpop_signing_alg_values_supported`): the asymmetric ones clients use.
pub const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// The DPoP side of the service: the settings its layers use and the
/// verifier of the token endpoints' proofs, sharing one replay store.
#[derive(Clone)]
pub struct DpopSettings {
    config: Dpop,
    verifier: ProofVerifier,
}

impl std::fmt::Debug for DpopSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopSettings").finish_non_exhaustive()
    }
}

impl DpopSettings {
    /// Proofs for `config.issuer`, their `jti` recorded in Redis when
    /// `config.redis_url` is set (under `config.redis_key_prefix` +
    /// `:dpop`), else in this process's memory. Either way one store, which
    /// every clone of the settings (each layer, the verifier) shares: a
    /// proof accepted at login is not accepted again at `/auth/me`. With
    /// `config.dpop_nonce_rotation`, proofs need a server nonce, keyed from
    /// `devices`' stored secret.
    ///
    /// # Errors
    /// When the issuer is not an absolute http(s) URL, the Redis URL is
    /// invalid or the nonce rotation is under a second.
    pub fn new(config: &Config, devices: &DeviceCookies) -> Result<Self, BoxError> {
        let mut dpop = Dpop::allowed()
            .algorithms(ALGORITHMS)
            .external_base(&config.issuer)?;
        if let Some(every) = config.dpop_nonce_rotation {
            dpop = dpop.nonces(Nonces::new(devices.derive_key(NONCE_KEY_PURPOSE), every)?);
        }
        if let Some(clock) = config.dpop_clock.clone() {
            dpop = dpop.clock(move || clock.now());
        }
        let dpop = match &config.redis_url {
            Some(url) => dpop.replay_store(RedisReplayStore::with_key_prefix(
                url,
                &format!("{}:dpop", config.redis_key_prefix),
            )?),
            None => dpop.replay_store(MemoryReplayStore::new()),
        };
        Ok(Self {
            verifier: ProofVerifier::new(dpop.clone())?,
            config: dpop,
        })
    }

    /// What the protected routes' layers are configured with.
    pub fn layer(&self) -> Dpop {
        self.config.clone()
    }

    /// Checks the proof of a token-endpoint request (no access token, so
    /// no `ath`): `None` when the request has no `DPoP` header, the proof
    /// when it is valid, and 400 `invalid_dpop_proof` (or `use_dpop_nonce`
    /// with a fresh `DPoP-Nonce`) when it is not.
    pub async fn token_endpoint_proof(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<DpopProof>, ApiError> {
        if !headers.contains_key(DPOP) {
            return Ok(None);
        }
        self.verifier
            .verify(method, uri, headers, None)
            .await
            .map(Some)
            .map_err(|e| refused(&e))
    }
}

/// Adds the newer server nonce that `proof` earned (it carried the
/// previous one) to a token endpoint's answer, as `DPoP-Nonce`.
pub fn hand_on_nonce(headers: &mut HeaderMap, proof: Option<&DpopProof>) {
    let nonce = proof
        .and_then(DpopProof::next_nonce)
        .and_then(|nonce| HeaderValue::from_str(nonce).ok());
    if let Some(nonce) = nonce {
        headers.insert(DPOP_NONCE, nonce);
    }
}

/// The token endpoint's answer to a refused proof (RFC 9449 §5, §8): 400
/// `invalid_dpop_proof` (or `use_dpop_nonce` with a `DPoP-Nonce`), or 503
/// when the replay store cannot answer, which fails closed.
fn refused(error: &DpopError) -> ApiError {
    if error.is_unavailable() {
        tracing::warn!("DPoP replay store unavailable");
        return ApiError::unavailable(error.error_code(), error.description());
    }
    let answer = ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        error.error_code(),
        error.description(),
    );
    match error.fresh_nonce() {
        Some(nonce) => {
            // Every client's first proof with nonces on: routine.
            tracing::debug!("DPoP proof without a current nonce: one handed out");
            answer.with_dpop_nonce(nonce)
        }
        None => {
            tracing::info!(reason = ?error.reason(), "DPoP proof refused");
            answer
        }
    }
}
