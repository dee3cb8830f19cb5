//! Accounts: email normalisation, creation, lookup.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::db::{Pool, now};
use crate::passwords::{self, Hasher};
use crate::sessions::Subject;

pub const ROLES: [&str; 2] = ["user", "admin"];
const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_NAME_CHARS: usize = 100;

/// A created account as `POST /auth/register` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    #[schema(example = "4b1f0c7e-2d9a-4f3e-8c51-6a7b8c9d0e1f")]
    pub id: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
}

#[derive(Debug)]
pub enum CreateError {
    Invalid(String),
    Taken,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for CreateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// Characters an email may not contain after trimming: controls, spaces
/// and every other Unicode White_Space character.
fn forbidden_in_email(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{20}' | '\u{7f}'..='\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}'
        | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

fn trimmed(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The OpenAPI `pattern` equivalent of [`normalize_email`], so generated
/// clients and fuzzers agree with the server on what is valid.
pub const EMAIL_PATTERN: &str = "^[ \\t\\n\\r]*[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+@[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+[ \\t\\n\\r]*$";

/// Trimmed email for display and its lowercase form, the lookup key.
pub fn normalize_email(raw: &str) -> Result<(String, String), String> {
    if raw.chars().count() > MAX_EMAIL_CHARS {
        return Err(format!(
            "email must have at most {MAX_EMAIL_CHARS} characters"
        ));
    }
    let email = raw.trim_matches(trimmed);
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        let part_ok =
            |p: &str| !p.is_empty() && !p.contains('@') && !p.chars().any(forbidden_in_email);
        part_ok(local) && part_ok(domain)
    });
    if !valid {
        return Err("email must look like name@domain".into());
    }
    Ok((email.to_owned(), email.to_lowercase()))
}

/// The lookup key for an email given at login; no shape check, since a
/// malformed email simply matches no account.
pub fn email_key(raw: &str) -> String {
    raw.trim_matches(trimmed).to_lowercase()
}

/// Checks a new account's fields without touching the database; returns
/// the display email and its lookup key.
pub fn validate(
    email: &str,
    password: &str,
    name: Option<&str>,
    role: &str,
) -> Result<(String, String), String> {
    let (email, key) = normalize_email(email)?;
    passwords::check_policy(password)?;
    if name.is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
        return Err(format!(
            "name must have at most {MAX_NAME_CHARS} characters"
        ));
    }
    if !ROLES.contains(&role) {
        return Err(format!("role must be one of {ROLES:?}"));
    }
    Ok((email, key))
}

pub async fn create(
    pool: &Pool,
    hasher: &Hasher,
    email: &str,
    password: String,
    name: Option<String>,
    role: &str,
) -> Result<Account, CreateError> {
    let (email, key) =
        validate(email, &password, name.as_deref(), role).map_err(CreateError::Invalid)?;
    let hash = hasher.hash(password).await;
    let id = uuid::Uuid::new_v4().to_string();
    // ON CONFLICT instead of parsing driver-specific unique-violation errors.
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, email_key, name, password_hash, role, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (email_key) DO NOTHING",
    )
    .bind(&id)
    .bind(&email)
    .bind(&key)
    .bind(name)
    .bind(hash)
    .bind(role)
    .bind(now())
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(CreateError::Taken);
    }
    Ok(Account { id, email })
}

/// The account and its password hash, by lookup key.
pub async fn find(pool: &Pool, key: &str) -> Result<Option<(Subject, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT id, email, role, password_hash FROM users WHERE email_key = $1")
        .bind(key)
        .fetch_optional(pool)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_keyed_case_insensitively() {
        let (display, key) = normalize_email("  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(display, "Ada.Lovelace@Example.COM");
        assert_eq!(key, "ada.lovelace@example.com");
        assert_eq!(email_key(" ADA.lovelace@example.com"), key);
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "ada@",
            "a da@example.com",
            "ada@exa\u{0}mple",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn the_documented_pattern_agrees_with_the_check() {
        // The pattern is written for ECMA/Python regex engines; check its
        // ingredients here: same trim set, same forbidden ranges.
        for c in ['\u{0}', ' ', '\u{7f}', '\u{a0}', '\u{2000}', '\u{3000}'] {
            assert!(forbidden_in_email(c), "{c:?}");
            let escaped = format!("\\u{:04x}", c as u32);
            assert!(EMAIL_PATTERN.contains(&escaped), "{escaped}");
        }
        assert!(!forbidden_in_email('é'));
        assert!(normalize_email("\t ada@example.com\r\n").is_ok());
    }
}
