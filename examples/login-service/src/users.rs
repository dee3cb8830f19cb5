//! Accounts: email normalisation, creation, lookup.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

use crate::passwords::{self, Hasher};
use crate::store::{NewUser, Store, now};

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
/// and every other Unicode White_Space character, and the invisible and
/// bidirectional-control characters that let two addresses look alike
/// (zero-width space/joiners and marks U+200B–U+200F, embeddings and
/// overrides U+202A–U+202E, word joiner and isolates U+2060–U+2069, BOM).
fn forbidden_in_email(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{20}' | '\u{7f}'..='\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}' | '\u{205f}'..='\u{2069}' | '\u{3000}' | '\u{feff}')
}

fn trimmed(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The OpenAPI `pattern` equivalent of [`normalize_email`], so generated
/// clients and fuzzers agree with the server on what is valid.
pub const EMAIL_PATTERN: &str = "^[ \\t\\n\\r]*[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u2069\\u3000\\ufeff]+@[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u2069\\u3000\\ufeff]+[ \\t\\n\\r]*$";

/// Trimmed, NFC-normalised email for display and its lowercase form, the
/// lookup key. NFC first, so the composed and decomposed spellings of one
/// address (`é` as U+00E9 or as `e` + U+0301) are one account.
pub fn normalize_email(raw: &str) -> Result<(String, String), String> {
    if raw.chars().count() > MAX_EMAIL_CHARS {
        return Err(format!(
            "email must have at most {MAX_EMAIL_CHARS} characters"
        ));
    }
    let email: String = raw.trim_matches(trimmed).nfc().collect();
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        let part_ok =
            |p: &str| !p.is_empty() && !p.contains('@') && !p.chars().any(forbidden_in_email);
        part_ok(local) && part_ok(domain)
    });
    if !valid {
        return Err(
            "email must look like name@domain, without spaces, invisible or \
             bidirectional-control characters"
                .into(),
        );
    }
    let key = lookup_key(&email);
    Ok((email, key))
}

/// Lowercase, then NFC again: lowercasing can leave a string that is no
/// longer in normal form.
fn lookup_key(email: &str) -> String {
    email.to_lowercase().nfc().collect()
}

/// The lookup key for an email given at login; no shape check, since a
/// malformed email simply matches no account.
pub fn email_key(raw: &str) -> String {
    lookup_key(&raw.trim_matches(trimmed).nfc().collect::<String>())
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

/// Validates, hashes the password and stores the account.
pub async fn create(
    store: &Store,
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
    let inserted = store
        .insert_user(NewUser {
            id: &id,
            email: &email,
            email_key: &key,
            name,
            password_hash: hash,
            role,
            created_at: now(),
        })
        .await?;
    if !inserted {
        return Err(CreateError::Taken);
    }
    Ok(Account { id, email })
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
    fn emails_are_nfc_normalised_so_both_spellings_are_one_account() {
        let composed = "jos\u{e9}@example.com";
        let decomposed = "jose\u{301}@example.com";
        let (display, key) = normalize_email(decomposed).unwrap();
        assert_eq!(display, composed);
        assert_eq!(normalize_email(composed).unwrap().1, key);
        assert_eq!(email_key(decomposed), key);
        assert_eq!(email_key("JOSE\u{301}@EXAMPLE.COM"), key);
    }

    #[test]
    fn invisible_and_bidi_control_characters_are_refused() {
        for c in [
            '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}',
            '\u{202c}', '\u{202d}', '\u{202e}', '\u{2060}', '\u{2064}', '\u{2066}', '\u{2069}',
            '\u{feff}',
        ] {
            for email in [format!("ad{c}a@example.com"), format!("ada@exa{c}mple.com")] {
                assert!(normalize_email(&email).is_err(), "{email:?}");
            }
        }
        assert!(normalize_email("\u{feff}ada@example.com").is_err());
    }

    #[test]
    fn the_documented_pattern_agrees_with_the_check() {
        // The pattern is written for ECMA/Python regex engines; check its
        // ingredients here: same trim set, same forbidden ranges.
        for c in [
            '\u{0}', ' ', '\u{7f}', '\u{a0}', '\u{2000}', '\u{3000}', '\u{feff}',
        ] {
            assert!(forbidden_in_email(c), "{c:?}");
            let escaped = format!("\\u{:04x}", c as u32);
            assert!(EMAIL_PATTERN.contains(&escaped), "{escaped}");
        }
        for (first, last) in [(0x2000, 0x200f), (0x2028, 0x202f), (0x205f, 0x2069)] {
            let range = format!("\\u{first:04x}-\\u{last:04x}");
            assert!(EMAIL_PATTERN.contains(&range), "{range}");
            for c in first..=last {
                assert!(forbidden_in_email(char::from_u32(c).unwrap()), "{c:x}");
            }
        }
        assert!(!forbidden_in_email('é'));
        assert!(normalize_email("\t ada@example.com\r\n").is_ok());
    }
}
