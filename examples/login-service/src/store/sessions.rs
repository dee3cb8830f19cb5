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
    /// Unused and valid, but its family is bound to a DPoP key and the
    /// request was not proven with that key (or not at all). Nothing was
    /// changed: the token still works for the holder of the key.
    WrongKey,
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
/// neither revoked nor started before `started_after`, and is unbound or
/// bound to `jkt` (the thumbprint of the request's DPoP proof key, if
/// any); whether it was. This conditional update alone decides which of
/// two concurrent uses wins, and on SQLite it takes the write lock before
/// any read. A token of a bound family presented without its key is not
/// claimed: whoever holds the token alone cannot spend it.
async fn claim(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
    started_after: i64,
    jkt: Option<&str>,
) -> Result<bool, sqlx::Error> {
    // `dpop_jkt = NULL` is never true: without a proof, only unbound
    // families match.
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
           AND family_id IN (SELECT id FROM refresh_families \
                             WHERE revoked_at IS NULL AND created_at > $3 \
                               AND (dpop_jkt IS NULL OR dpop_jkt = $4))",
    )
    .bind(token_hash)
    .bind(now)
    .bind(started_after)
    .bind(jkt.map(str::to_owned))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(claimed > 0)
}

/// Whether the token would have been claimed but for its family's DPoP
/// binding: unused, unexpired, of a live family bound to a key.
async fn bound_elsewhere(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
    started_after: i64,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT 1 AS bound FROM refresh_tokens t \
         JOIN refresh_families f ON f.id = t.family_id \
         WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2 \
           AND f.revoked_at IS NULL AND f.created_at > $3 AND f.dpop_jkt IS NOT NULL",
    )
    .bind(token_hash)
    .bind(now)
    .bind(started_after)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Binds an unbound family to `jkt`: a refresh token issued in answer to
/// a request with a DPoP proof is bound to its key (RFC 9449 §5), from
/// then on. A bound family keeps its key (the claim checked it matches).
async fn bind_family(conn: &mut AnyConnection, family: &str, jkt: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_families SET dpop_jkt = $2 WHERE id = $1 AND dpop_jkt IS NULL")
        .bind(family)
        .bind(jkt)
        .execute(conn)
        .await?;
    Ok(())
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
    /// after its hash; bound to the DPoP key `jkt` when given.
    ///
    /// A quick commit ([`Store::begin_quick`]): a machine crash may forget
    /// the last sessions started, whose users then log in again; it never
    /// forgets a revocation, which commits durably.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_session(
        &self,
        family: &str,
        user_id: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
        release: Option<&LoginRelease>,
        jkt: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_quick().await?;
        if let Some(release) = release {
            release.apply(&mut tx).await?;
        }
        sqlx::query(
            "INSERT INTO refresh_families (id, user_id, created_at, dpop_jkt) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(family)
        .bind(user_id)
        .bind(now)
        .bind(jkt.map(str::to_owned))
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
    ///
    /// `jkt` is the thumbprint of the request's verified DPoP proof key: a
    /// family bound to a key refreshes only with a proof by it
    /// ([`Rotation::WrongKey`] otherwise), and an unbound family refreshed
    /// with a proof is bound to its key from then on. Reuse of a spent
    /// token revokes the family whoever presents it.
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        now: i64,
        started_after: i64,
        jkt: Option<&str>,
        expiry: impl FnOnce(i64) -> i64 + Send,
    ) -> Result<Rotation, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !claim(&mut tx, token_hash, now, started_after, jkt).await? {
            let Some(family) = family_of_used(&mut tx, token_hash).await? else {
                if bound_elsewhere(&mut tx, token_hash, now, started_after).await? {
                    return Ok(Rotation::WrongKey);
                }
                return Ok(Rotation::Refused);
            };
            revoke_family(&mut tx, &family, now).await?;
            tx.commit().await?;
            return Ok(Rotation::Reused { family });
        }
        let (family, family_started, subject) = load_subject(&mut tx, token_hash).await?;
        if let Some(jkt) = jkt {
            bind_family(&mut tx, &family, jkt).await?;
        }
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
