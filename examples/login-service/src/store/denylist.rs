//! `revoked_access_tokens` (logout), `subject_revocations` (log out
//! everywhere) and revoked `refresh_families`: what every instance's
//! revocation mirror is fed from ([`Store::revocations_changed_since`],
//! [`Store::live_revocations`]); never read per request.

use sqlx::{AnyConnection, Row};

use super::Store;

/// Revocations as stored: what the mirror turns into the library's
/// `Revocation`s.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RevokedRows {
    /// `(jti, expires_at)` of denied access tokens.
    pub tokens: Vec<(String, i64)>,
    /// `(family id, revoked_at)` of revoked refresh-token families.
    pub families: Vec<(String, i64)>,
    /// `(user id, issued_before, expires_at)` of "log out everywhere".
    pub subjects: Vec<(String, i64, i64)>,
}

/// Puts `jti` on the denylist until `expires_at`; part of a larger
/// transaction.
pub(super) async fn deny(
    conn: &mut AnyConnection,
    jti: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// "Log out everywhere", in one transaction: refuses every access token
    /// of `user_id` issued before `issued_before` until `expires_at`, and
    /// revokes all its refresh-token families. A later call only widens an
    /// earlier one.
    pub async fn log_out_everywhere(
        &self,
        user_id: &str,
        issued_before: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // CASE, not GREATEST/MAX: the one spelling SQLite and PostgreSQL share.
        sqlx::query(
            "INSERT INTO subject_revocations (user_id, issued_before, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET \
               issued_before = CASE WHEN excluded.issued_before > subject_revocations.issued_before \
                                    THEN excluded.issued_before ELSE subject_revocations.issued_before END, \
               expires_at = CASE WHEN excluded.expires_at > subject_revocations.expires_at \
                                 THEN excluded.expires_at ELSE subject_revocations.expires_at END, \
               revoked_at = excluded.revoked_at",
        )
        .bind(user_id)
        .bind(issued_before)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// What was revoked at or after `since` (seconds).
    pub async fn revocations_changed_since(&self, since: i64) -> Result<RevokedRows, sqlx::Error> {
        self.revoked_rows(
            "SELECT jti, expires_at FROM revoked_access_tokens WHERE revoked_at >= $1",
            since,
            "SELECT id, revoked_at FROM refresh_families WHERE revoked_at >= $1",
            since,
            "SELECT user_id, issued_before, expires_at FROM subject_revocations WHERE revoked_at >= $1",
            since,
        )
        .await
    }

    /// Every revocation that can still refuse a token: denied tokens and
    /// subjects not expired before `now` (give it the verifiers' leeway),
    /// families revoked at or after `families_since` (their last access
    /// tokens expire an access-token lifetime after the revocation).
    pub async fn live_revocations(
        &self,
        now: i64,
        families_since: i64,
    ) -> Result<RevokedRows, sqlx::Error> {
        self.revoked_rows(
            "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at >= $1",
            now,
            "SELECT id, revoked_at FROM refresh_families WHERE revoked_at >= $1",
            families_since,
            "SELECT user_id, issued_before, expires_at FROM subject_revocations WHERE expires_at >= $1",
            now,
        )
        .await
    }

    async fn revoked_rows(
        &self,
        tokens: &'static str,
        tokens_bound: i64,
        families: &'static str,
        families_bound: i64,
        subjects: &'static str,
        subjects_bound: i64,
    ) -> Result<RevokedRows, sqlx::Error> {
        let pairs = |sql: &'static str, bound: i64| async move {
            sqlx::query(sql)
                .bind(bound)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        };
        let subjects = sqlx::query(subjects)
            .bind(subjects_bound)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(RevokedRows {
            tokens: pairs(tokens, tokens_bound).await?,
            families: pairs(families, families_bound).await?,
            subjects,
        })
    }

    /// Deletes denylist and subject entries of tokens that expired before
    /// `before`.
    pub async fn prune_denylist(&self, before: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM subject_revocations WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
