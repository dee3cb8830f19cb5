//! The library's revocation hook, answered from the `revoked_access_tokens`
//! table that logout writes to and from revoked refresh-token families, so a
//! logged-out token, or one whose family was revoked for refresh-token reuse,
//! is refused by every instance on the database.

use std::future::Future;
use std::pin::Pin;

use tower_jwt_auth::revoke::RevocationCheck;
use tower_jwt_auth::{BoxError, RegisteredClaims};

use crate::db::Pool;

#[derive(Debug, Clone)]
pub struct DbRevocations {
    pool: Pool,
}

impl DbRevocations {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl RevocationCheck for DbRevocations {
    fn is_revoked(
        &self,
        claims: &RegisteredClaims,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'static>> {
        let pool = self.pool.clone();
        let jti = claims.jti.clone();
        let sid = claims.sid.clone();
        Box::pin(async move {
            // Every token this service issues has a jti and a sid (its
            // refresh-token family); one without cannot have been logged out.
            let (Some(jti), Some(sid)) = (jti, sid) else {
                return Ok(false);
            };
            // A revoked family (logout, or reuse of a rotated refresh token)
            // takes its outstanding access tokens with it.
            let row = sqlx::query(
                "SELECT 1 AS revoked FROM revoked_access_tokens WHERE jti = $1 \
                 UNION ALL \
                 SELECT 1 AS revoked FROM refresh_families WHERE id = $2 AND revoked_at IS NOT NULL",
            )
            .bind(jti)
            .bind(sid)
            .fetch_optional(&pool)
            .await?;
            Ok(row.is_some())
        })
    }
}
