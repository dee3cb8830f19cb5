//! `refresh_families` (login sessions) and `refresh_tokens` (their rotating
//! tokens, stored as hashes).

use sqlx::{AnyConnection, Row};

use super::{LoginRelease, Store};
use crate::sessions::Subject;

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum Rotation {
    /// The token was claimed and its successor stored.
    Rotated { family: String, subject: Subject },
    /// The token had been used before: its family is now revoked.
    Reused { family: String },
    /// Unknown, expired, or of a revoked or ended family.
    Refused,
}

/// Stores a refresh token's hash; part of a larger transaction.
async fn insert_token(
    conn: &mut AnyConnection,
    family: &str,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(family)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the token used, if it is unused, unexpired and its family is
/// neither revoked nor started before `started_after`; whether it was.
/// This conditional update alone decides which of two concurrent uses
/// wins, and on SQLite it takes the write lock before any read.
async fn claim(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
    started_after: i64,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
           AND family_id IN (SELECT id FROM refresh_families \
                             WHERE revoked_at IS NULL AND created_at > $3)",
    )
    .bind(token_hash)
    .bind(now)
    .bind(started_after)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(claimed > 0)
}

/// The family of a token that was used before, if this one was.
async fn family_of_used(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?
    .map(|row| row.try_get("family_id"))
    .transpose()
}

/// Revokes the family (of any user) unless it already is.
async fn revoke_family(
    conn: &mut AnyConnection,
    family: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(family)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The family, its start and its user, of a token.
async fn load_subject(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<(String, i64, Subject), sqlx::Error> {
    let row = sqlx::query(
        "SELECT f.id AS family_id, f.created_at AS family_started, \
                u.id AS user_id, u.email, u.role \
         FROM refresh_tokens t \
         JOIN refresh_families f ON f.id = t.family_id \
         JOIN users u ON u.id = f.user_id \
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_one(conn)
    .await?;
    let subject = Subject {
        id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
    };
    Ok((
        row.try_get("family_id")?,
        row.try_get("family_started")?,
        subject,
    ))
}

impl Store {
    /// Starts a family for `user_id` with its first token, in one
    /// transaction, together with what the login gives back to the
    /// throttle (`release`), so that a successful login commits once
    /// after its hash.
    pub async fn start_session(
        &self,
        family: &str,
        user_id: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
        release: Option<&LoginRelease>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if let Some(release) = release {
            release.apply(&mut tx).await?;
        }
        sqlx::query("INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(family)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_token(&mut tx, family, token_hash, now, expires_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Exchanges the token `token_hash` for its successor `next_hash`, in
    /// one transaction: claim it, or else revoke its family if it was used
    /// before; then load its user and store the successor, which expires
    /// at `expiry(family_started)`. Families started before `started_after`
    /// refresh no more.
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        now: i64,
        started_after: i64,
        expiry: impl FnOnce(i64) -> i64 + Send,
    ) -> Result<Rotation, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !claim(&mut tx, token_hash, now, started_after).await? {
            let Some(family) = family_of_used(&mut tx, token_hash).await? else {
                return Ok(Rotation::Refused);
            };
            revoke_family(&mut tx, &family, now).await?;
            tx.commit().await?;
            return Ok(Rotation::Reused { family });
        }
        let (family, family_started, subject) = load_subject(&mut tx, token_hash).await?;
        insert_token(&mut tx, &family, next_hash, now, expiry(family_started)).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated { family, subject })
    }

    /// Logout, in one transaction: denies the access token `jti` until
    /// `expires_at` and revokes its family `sid`, if it belongs to `user_id`.
    pub async fn log_out(
        &self,
        jti: &str,
        expires_at: i64,
        sid: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        super::denylist::deny(&mut tx, jti, expires_at, now).await?;
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $3 \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(sid)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes refresh tokens that expired before `before`, then the
    /// families left without a token.
    pub async fn prune_sessions(&self, before: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM refresh_families \
             WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
