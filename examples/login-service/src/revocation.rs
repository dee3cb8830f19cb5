//! The library's revocation hook, answered from the `revoked_access_tokens`
//! table that logout writes to, so a logged-out token is refused by every
//! instance on the database.

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
        Box::pin(async move {
            // Every token this service issues has a jti; one without cannot
            // have been logged out.
            let Some(jti) = jti else { return Ok(false) };
            let row = sqlx::query("SELECT 1 AS revoked FROM revoked_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&pool)
                .await?;
            Ok(row.is_some())
        })
    }
}
