//! `signing_keys` (private keys, sealed under the KEK) and
//! `key_encryption` (which KEK that is).

use sqlx::{AnyConnection, Row};

use super::Store;

/// A `signing_keys` row as loaded into the key ring.
#[derive(Debug)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    /// Sealed under the KEK, or base64 PKCS#8 from before encryption.
    pub private_key: String,
    pub activates_at: i64,
}

/// When a key (by generation) starts signing.
#[derive(Debug)]
pub struct KeyActivation {
    pub generation: i64,
    pub kid: String,
    pub activates_at: i64,
}

/// (generation, kid, private_key) of every key.
async fn private_keys(conn: &mut AnyConnection) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT generation, kid, private_key FROM signing_keys")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("generation")?,
                row.try_get("kid")?,
                row.try_get("private_key")?,
            ))
        })
        .collect()
}

async fn recorded_kek_id(conn: &mut AnyConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT kek_id FROM key_encryption WHERE id = 1")
        .fetch_optional(conn)
        .await?
        .map(|row| row.try_get("kek_id"))
        .transpose()
}

impl Store {
    /// Every key, oldest generation first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT generation, kid, algorithm, private_key, activates_at \
             FROM signing_keys ORDER BY generation",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    kid: row.try_get("kid")?,
                    algorithm: row.try_get("algorithm")?,
                    private_key: row.try_get("private_key")?,
                    activates_at: row.try_get("activates_at")?,
                })
            })
            .collect()
    }

    /// Every key's activation, oldest generation first.
    pub async fn key_activations(&self) -> Result<Vec<KeyActivation>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT generation, kid, activates_at FROM signing_keys ORDER BY generation",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeyActivation {
                    generation: row.try_get("generation")?,
                    kid: row.try_get("kid")?,
                    activates_at: row.try_get("activates_at")?,
                })
            })
            .collect()
    }

    pub async fn latest_key_generation(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query("SELECT MAX(generation) AS g FROM signing_keys")
            .fetch_one(&self.pool)
            .await?
            .try_get("g")
    }

    pub async fn count_signing_keys(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) AS n FROM signing_keys")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")
    }

    /// Inserts an EdDSA key unless `generation` is taken; whether it was.
    pub async fn insert_signing_key(
        &self,
        generation: i64,
        kid: &str,
        sealed: String,
        now: i64,
        activates_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (generation, kid, algorithm, private_key, created_at, activates_at) \
             VALUES ($1, $2, 'EdDSA', $3, $4, $5) ON CONFLICT (generation) DO NOTHING",
        )
        .bind(generation)
        .bind(kid)
        .bind(sealed)
        .bind(now)
        .bind(activates_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    pub async fn delete_signing_key(&self, generation: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM signing_keys WHERE generation = $1")
            .bind(generation)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The id of the KEK the keys are encrypted with, if one is recorded.
    pub async fn recorded_kek_id(&self) -> Result<Option<String>, sqlx::Error> {
        recorded_kek_id(&mut *self.pool.acquire().await?).await
    }

    /// Records `kek_id` unless a KEK is recorded already.
    pub async fn record_kek_if_none(&self, kek_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO key_encryption (id, kek_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(kek_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces, in one transaction, every `private_key` for which
    /// `seal(kid, stored)` gives a new value, unless the row changed
    /// meanwhile; returns how many were replaced.
    pub async fn reseal_signing_keys<E: From<sqlx::Error>>(
        &self,
        mut seal: impl FnMut(&str, &str) -> Result<Option<String>, E>,
    ) -> Result<usize, E> {
        let mut tx = self.pool.begin().await?;
        let mut replaced = 0;
        for (generation, kid, stored) in private_keys(&mut tx).await? {
            let Some(sealed) = seal(&kid, &stored)? else {
                continue;
            };
            sqlx::query(
                "UPDATE signing_keys SET private_key = $1 WHERE generation = $2 AND private_key = $3",
            )
            .bind(sealed)
            .bind(generation)
            .bind(&stored)
            .execute(&mut *tx)
            .await?;
            replaced += 1;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    /// Re-encrypts every key under another KEK in one transaction: `check`
    /// sees the recorded KEK id first and may refuse (changing nothing),
    /// `rewrap(kid, stored)` gives each key's new value, then `new_kek_id`
    /// is recorded. Returns how many keys were re-encrypted.
    pub async fn rewrap_signing_keys<E: From<sqlx::Error>>(
        &self,
        new_kek_id: &str,
        check: impl FnOnce(Option<String>) -> Result<(), E>,
        mut rewrap: impl FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<usize, E> {
        let mut tx = self.pool.begin().await?;
        check(recorded_kek_id(&mut tx).await?)?;
        let keys = private_keys(&mut tx).await?;
        let count = keys.len();
        for (generation, kid, stored) in keys {
            sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE generation = $2")
                .bind(rewrap(&kid, &stored)?)
                .bind(generation)
                .execute(&mut *tx)
                .await?;
        }
        super::device_secrets::rewrap_device_cookie_secret(&mut tx, &mut rewrap).await?;
        sqlx::query(
            "INSERT INTO key_encryption (id, kek_id) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET kek_id = excluded.kek_id",
        )
        .bind(new_kek_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(count)
    }
}
