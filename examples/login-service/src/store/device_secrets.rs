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
}
