//! `users`: accounts.

use sqlx::{AnyConnection, Row};

use super::Store;
use crate::sessions::Subject;

/// A row to insert into `users`.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub email_key: &'a str,
    pub name: Option<String>,
    pub password_hash: String,
    pub role: &'a str,
    pub created_at: i64,
}

impl Store {
    /// Inserts the account unless its `email_key` is taken; whether it was.
    /// `ON CONFLICT` instead of parsing driver-specific unique-violation
    /// errors.
    pub async fn insert_user(&self, user: NewUser<'_>) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, email_key, name, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (email_key) DO NOTHING",
        )
        .bind(user.id)
        .bind(user.email)
        .bind(user.email_key)
        .bind(user.name)
        .bind(user.password_hash)
        .bind(user.role)
        .bind(user.created_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted > 0)
    }
}

/// An account as a login needs it: who it is and its password hash.
pub type Credentials = (Subject, String);

/// The account and its password hash, by lookup key; on `conn`, inside
/// the transaction that reserves the login's throttle counters.
pub(super) async fn find_account(
    conn: &mut AnyConnection,
    email_key: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    let row = sqlx::query("SELECT id, email, role, password_hash FROM users WHERE email_key = $1")
        .bind(email_key)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok((
            Subject {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                role: row.try_get("role")?,
            },
            row.try_get("password_hash")?,
        ))
    })
    .transpose()
}
