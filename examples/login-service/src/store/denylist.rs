//! `revoked_access_tokens`: the access-token denylist that logout writes
//! ([`Store::log_out`]) and the library's revocation hook reads.

use sqlx::AnyConnection;

use super::Store;

/// Puts `jti` on the denylist until `expires_at`; part of a larger
/// transaction.
pub(super) async fn deny(
    conn: &mut AnyConnection,
    jti: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Whether the access token `jti` of session `sid` is refused: it is on
    /// the denylist, or its refresh-token family was revoked (logout, or
    /// reuse of a rotated refresh token), which takes its outstanding
    /// access tokens with it.
    pub async fn is_access_token_revoked(&self, jti: &str, sid: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT 1 AS revoked FROM revoked_access_tokens WHERE jti = $1 \
             UNION ALL \
             SELECT 1 AS revoked FROM refresh_families WHERE id = $2 AND revoked_at IS NOT NULL",
        )
        .bind(jti)
        .bind(sid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Deletes denylist entries of tokens that expired before `before`.
    pub async fn prune_denylist(&self, before: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
