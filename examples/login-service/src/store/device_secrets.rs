//! `device_cookie_secrets`: the HMAC secret of device cookies.

use sqlx::Row;

use super::Store;

impl Store {
    /// The shared device-cookie secret, storing `candidate` first if there
    /// is none. Instances starting at once both try; the primary key lets
    /// one win and both read the winner's.
    pub async fn device_cookie_secret(
        &self,
        candidate: &str,
        now: i64,
    ) -> Result<String, sqlx::Error> {
        sqlx::query(
            "INSERT INTO device_cookie_secrets (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(candidate)
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query("SELECT secret FROM device_cookie_secrets WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("secret")
    }

    /// Replaces a secret stored before it was encrypted with its sealed
    /// form; a row changed meanwhile (another instance did the same) is
    /// left alone.
    pub async fn reseal_device_cookie_secret(
        &self,
        plaintext: &str,
        sealed: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE device_cookie_secrets SET secret = $1 WHERE id = 1 AND secret = $2")
            .bind(sealed)
            .bind(plaintext)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Re-encrypts the sealed device-cookie secret inside a key-encryption-key
/// rewrap, so it moves to the new KEK in the same transaction as the
/// signing keys. A secret still in plaintext (a database no instance of
/// this version has started on) is left for the next start to seal.
pub(super) async fn rewrap_device_cookie_secret<E: From<sqlx::Error>>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rewrap: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<(), E> {
    let stored: Option<String> =
        sqlx::query("SELECT secret FROM device_cookie_secrets WHERE id = 1")
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| row.try_get("secret"))
            .transpose()?;
    let Some(stored) = stored.filter(|s| crate::kek::is_sealed(s)) else {
        return Ok(());
    };
    sqlx::query("UPDATE device_cookie_secrets SET secret = $1 WHERE id = 1")
        .bind(rewrap(crate::devices::SECRET_AD, &stored)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
