//! Password policy and argon2id hashing, off the async runtime and with
//! bounded concurrency so a login flood cannot exhaust memory
//! (each hash holds 19 MiB).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Shorter passwords are refused at registration.
pub const MIN_CHARS: usize = 8;
/// Longer passwords are refused, never truncated; this also caps hashing cost.
pub const MAX_CHARS: usize = 128;

/// OWASP's first argon2id option: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Returns why a new password is unacceptable, if it is.
pub fn check_policy(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "password must have at least {MIN_CHARS} characters"
        ));
    }
    if chars > MAX_CHARS {
        return Err(format!("password must have at most {MAX_CHARS} characters"));
    }
    Ok(())
}

/// Hashes and verifies on the blocking pool, at most `permits` at a time.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that case costs the
    /// same as a wrong password.
    dummy_hash: Arc<str>,
}

impl Hasher {
    pub async fn new() -> Self {
        let permits = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_hash = tokio::task::spawn_blocking(|| {
            hash_blocking("not a password anyone has: dummy for timing parity")
        })
        .await
        .expect("hashing task panicked");
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            dummy_hash: dummy_hash.into(),
        }
    }

    pub async fn hash(&self, password: String) -> String {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .expect("hashing task panicked")
    }

    /// `stored` is `None` for an unknown account: the dummy hash is checked
    /// instead and the answer is `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        let matches = tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
            .await
            .expect("hashing task panicked");
        known && matches
    }
}

fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid params cannot fail")
        .to_string()
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counts_characters_not_bytes() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("éééééééé").is_ok());
        assert!(check_policy(&"x".repeat(MAX_CHARS)).is_ok());
        assert!(check_policy(&"x".repeat(MAX_CHARS + 1)).is_err());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hasher = Hasher::new().await;
        let hash = hasher.hash("correct horse".into()).await;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
        );
        assert!(!hasher.verify("correct horsE".into(), Some(hash)).await);
    }

    #[tokio::test]
    async fn no_truncation_long_passwords_differ_at_the_end() {
        let hasher = Hasher::new().await;
        let a = format!("{}a", "p".repeat(100));
        let b = format!("{}b", "p".repeat(100));
        let hash = hasher.hash(a.clone()).await;
        assert!(hasher.verify(a, Some(hash.clone())).await);
        assert!(!hasher.verify(b, Some(hash)).await);
    }

    #[tokio::test]
    async fn unknown_account_never_verifies_even_with_the_dummy_password() {
        let hasher = Hasher::new().await;
        let dummy = "not a password anyone has: dummy for timing parity".to_owned();
        assert!(!hasher.verify(dummy, None).await);
    }
}
