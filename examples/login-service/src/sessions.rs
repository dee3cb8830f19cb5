//! Access tokens (signed JWTs) and refresh tokens (opaque, stored hashed,
//! rotated on every use, grouped in families so that reuse of a rotated one
//! revokes every descendant, RFC 9700 §4.14).

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::keys::Keys;
use crate::revocation::Revocations;
use crate::store::{LoginRelease, Rotation, Store, now, secs};

/// The claims of an access token (RFC 9068), as issued and as `/auth/me`
/// returns them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub email: String,
    /// Space-separated; `movies:write` for admins.
    #[schema(example = "movies:read movies:write")]
    pub scope: String,
    /// The refresh-token family (login session) this token belongs to.
    pub sid: String,
    /// Present on DPoP-bound tokens (RFC 9449 §6): the key whose proofs
    /// must accompany the token. Absent on Bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The confirmation claim of a DPoP-bound access token (RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint (base64url) of the DPoP key.
    #[schema(example = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")]
    pub jkt: String,
}

/// What login and refresh answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// `DPoP` when the request carried a DPoP proof: the access token is
    /// bound to its key (`cnf.jkt`) and must be sent as
    /// `Authorization: DPoP <token>` with a fresh proof each time.
    /// `Bearer` otherwise.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Access token lifetime in seconds.
    #[schema(example = 900)]
    pub expires_in: u64,
    pub refresh_token: String,
}

/// A user as far as tokens care.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: String,
    pub email: String,
    pub role: String,
}

/// The scopes a role grants.
pub fn scope_for(role: &str) -> &'static str {
    match role {
        "admin" => "movies:read movies:write",
        _ => "movies:read",
    }
}

/// The session policy: lifetimes, token format and claims. The rows are
/// the store's ([`Store::start_session`], [`Store::rotate_refresh_token`],
/// [`Store::log_out`]).
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    keys: Keys,
    revocations: std::sync::Arc<Revocations>,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    max_lifetime: Duration,
}

/// Refresh tokens longer than this are not ours; skip hashing them.
const MAX_REFRESH_TOKEN_LEN: usize = 128;

fn invalid_grant() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
        "refresh token is invalid, expired or revoked",
    )
}

impl Sessions {
    /// The policy `config` describes, over `store`, signing with `keys`
    /// and revoking through `revocations`.
    pub fn new(
        store: Store,
        keys: Keys,
        revocations: std::sync::Arc<Revocations>,
        config: &crate::Config,
    ) -> Self {
        Self {
            store,
            keys,
            revocations,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            max_lifetime: config.session_max_lifetime,
        }
    }

    /// When a refresh token issued `now` in a family started at
    /// `family_started` expires: the sliding lifetime, cut at the family's
    /// absolute end.
    fn refresh_expiry(&self, family_started: i64, now: i64) -> i64 {
        let sliding = now.saturating_add(secs(self.refresh_ttl));
        let absolute = family_started.saturating_add(secs(self.max_lifetime));
        sliding.min(absolute)
    }

    /// Starts a new family (a login) and returns its first token pair,
    /// writing what the login gives back to the throttle (`release`) in
    /// the same transaction; with `jkt` (the thumbprint of the login's
    /// verified DPoP proof key) the family and its access tokens are bound
    /// to that key.
    pub async fn start(
        &self,
        subject: &Subject,
        release: Option<&LoginRelease>,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let family = uuid::Uuid::new_v4().to_string();
        let refresh_token = new_refresh_token();
        let now = now();
        let expires_at = self.refresh_expiry(now, now);
        self.store
            .start_session(
                &family,
                &subject.id,
                &hash_token(&refresh_token),
                now,
                expires_at,
                release,
                jkt,
            )
            .await?;
        self.pair(subject, &family, refresh_token, jkt)
    }

    /// Exchanges a refresh token for a new pair, once. The store claims it
    /// (or, if it was used before, revokes its family), loads its user and
    /// stores the successor in one transaction; then the pair is issued.
    /// `jkt` is the request's verified DPoP proof key: a bound family needs
    /// it (400 `invalid_dpop_proof` otherwise, and the token stays
    /// unspent); with it, the new access token is bound to it too.
    pub async fn refresh(
        &self,
        presented: &str,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        if presented.is_empty() || presented.len() > MAX_REFRESH_TOKEN_LEN {
            return Err(invalid_grant());
        }
        let next = new_refresh_token();
        let now = now();
        // A family past its absolute lifetime refreshes no more, whatever
        // its tokens' own expiry says.
        let started_after = now.saturating_sub(secs(self.max_lifetime));
        let rotation = self
            .store
            .rotate_refresh_token(
                &hash_token(presented),
                &hash_token(&next),
                now,
                started_after,
                jkt,
                |family_started| self.refresh_expiry(family_started, now),
            )
            .await?;
        match rotation {
            Rotation::Rotated { family, subject } => self.pair(&subject, &family, next, jkt),
            Rotation::Reused { family } => {
                tracing::warn!(%family, "refresh token reused; family revoked");
                let revoked = self.revocations.family(&family, now);
                self.revocations.publish(vec![revoked]).await;
                Err(invalid_grant())
            }
            Rotation::Refused => Err(invalid_grant()),
            Rotation::WrongKey => Err(ApiError::invalid_dpop_proof(if jkt.is_some() {
                "the refresh token is bound to another DPoP key"
            } else {
                "the refresh token is bound to a DPoP key: send a DPoP proof by that key"
            })),
        }
    }

    /// Ends the session the access token belongs to and denies the token
    /// itself until it expires.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<(), ApiError> {
        let now = now();
        self.store
            .log_out(&claims.jti, claims.exp, &claims.sid, &claims.sub, now)
            .await?;
        let revoked = self
            .revocations
            .logout(&claims.jti, claims.exp, &claims.sid, now);
        self.revocations.publish(revoked).await;
        Ok(())
    }

    /// Ends every session of the token's user and refuses every access
    /// token issued to them up to now (this whole second: `iat` has
    /// one-second resolution, so a login in the same second is refused too).
    pub async fn logout_everywhere(&self, claims: &AccessClaims) -> Result<(), ApiError> {
        let now = now();
        self.revocations
            .log_out_everywhere(&claims.sub, now)
            .await?;
        Ok(())
    }

    /// Deletes rows that can no longer matter: expired refresh tokens and
    /// denylist entries of access tokens that no verifier accepts any more.
    /// A verifier accepts a token until `exp` plus its leeway, so an entry
    /// stays that long: pruned at `exp`, a logged-out token would be
    /// accepted again for the leeway's length.
    pub async fn prune(&self) -> Result<(), sqlx::Error> {
        let now = now();
        let leeway = secs(tower_jwt_auth::DEFAULT_LEEWAY);
        self.store
            .prune_denylist(now.saturating_sub(leeway))
            .await?;
        // A family's row is what refuses its access tokens once it is
        // revoked, and it goes with its last refresh token: keep that token
        // until every access token issued beside it has expired too.
        self.store
            .prune_sessions(now.saturating_sub(secs(self.access_ttl) + leeway))
            .await
    }

    fn pair(
        &self,
        subject: &Subject,
        family: &str,
        refresh_token: String,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let now = now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.id.clone(),
            aud: self.audience.clone(),
            exp: now.saturating_add(secs(self.access_ttl)),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: self.audience.clone(),
            email: subject.email.clone(),
            scope: scope_for(&subject.role).to_owned(),
            sid: family.to_owned(),
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        let ring = self.keys.ring();
        let key = ring
            .signing_key(now)
            .ok_or_else(|| ApiError::internal("no signing key loaded"))?;
        let access_token = key
            .sign_access_token(&claims)
            .map_err(|e| ApiError::internal(format!("signing failed: {e}")))?;
        Ok(TokenResponse {
            access_token,
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" }.to_owned(),
            expires_in: self.access_ttl.as_secs(),
            refresh_token,
        })
    }
}

/// 256 random bits, URL-safe: unguessable, so a fast hash is enough to
/// store it (unlike passwords, there is nothing to brute-force).
fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    argon2::password_hash::rand_core::RngCore::fill_bytes(
        &mut argon2::password_hash::rand_core::OsRng,
        &mut bytes,
    );
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_token(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_random_and_hashes_are_stable() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn only_admins_may_write_movies() {
        assert!(scope_for("admin").split(' ').any(|s| s == "movies:write"));
        assert!(!scope_for("user").split(' ').any(|s| s == "movies:write"));
    }
}
