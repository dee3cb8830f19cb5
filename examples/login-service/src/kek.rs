//! The key-encryption key (KEK): private signing keys are stored encrypted
//! under it (XChaCha20-Poly1305, random 192-bit nonce, the row's `kid` as
//! associated data, so a ciphertext moved to another row does not open).
//!
//! The KEK lives in a file, never in the database: a database dump or
//! backup alone cannot mint tokens. The database records only the KEK's
//! identifier (a domain-separated digest), so a start with another KEK is
//! refused before anything is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::keys::KeyError;

/// Prefix of an encrypted `private_key` value; rows from before encryption
/// hold bare base64 PKCS#8, which never contains `:`.
const SEALED_PREFIX: &str = "xc20p1:";
const NONCE_LEN: usize = 24;

/// A 256-bit key-encryption key and its identifier.
#[derive(Clone)]
pub struct Kek {
    key: [u8; 32],
    id: String,
    /// Where it was read from, for error messages.
    source: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Kek {
    pub fn from_bytes(key: [u8; 32], source: impl Into<String>) -> Self {
        let mut digest = Sha256::new();
        digest.update(b"login-service key-encryption key id v1\0");
        digest.update(key);
        let id = URL_SAFE_NO_PAD.encode(&digest.finalize()[..12]);
        Self {
            key,
            id,
            source: source.into(),
        }
    }

    /// A random key that lives only in memory (in-memory SQLite, tests).
    pub fn ephemeral() -> Self {
        Self::from_bytes(XChaCha20Poly1305::generate_key(&mut OsRng).into(), "memory")
    }

    /// The identifier stored in the database: 96 bits of a SHA-256 of the
    /// key, which reveals nothing of a 256-bit random key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key came from (its file), for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads a KEK file: 32 raw bytes, or their base64 (as
    /// `openssl rand -base64 32` prints them), surrounding whitespace ignored.
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("key-encryption key file {}: {e}", path.display()))?;
        let key: Option<[u8; 32]> = if bytes.len() == 32 {
            bytes.as_slice().try_into().ok()
        } else {
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| STANDARD.decode(text.trim()).ok())
                .and_then(|decoded| decoded.as_slice().try_into().ok())
        };
        let key = key.ok_or_else(|| {
            format!(
                "key-encryption key file {}: expected 32 bytes, raw or base64 \
                 (create one with `openssl rand -base64 32`)",
                path.display()
            )
        })?;
        warn_if_shared(path);
        Ok(Self::from_bytes(key, path.display().to_string()))
    }

    /// Creates a new KEK file (mode 0600, never overwriting) and returns it.
    /// The file appears complete or not at all: it is written under a
    /// temporary name and hard-linked into place, which fails if it exists.
    pub fn generate_file(path: &Path) -> Result<Self, String> {
        let key: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let temporary = PathBuf::from(temporary);
        let written = create_private(&temporary).and_then(|mut file| {
            file.write_all(format!("{}\n", STANDARD.encode(key)).as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        linked.map_err(|e| format!("creating key-encryption key file {}: {e}", path.display()))?;
        Ok(Self::from_bytes(key, path.display().to_string()))
    }

    /// Encrypts a private key for the row `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, String> {
        let cipher = XChaCha20Poly1305::new(&self.key.into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| "encryption failed".to_owned())?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Decrypts what [`Kek::seal`] produced for the same `kid`.
    pub fn open(&self, kid: &str, stored: &str) -> Result<Vec<u8>, String> {
        let undecryptable = || {
            format!(
                "cannot decrypt signing key {kid} with the key-encryption key from {} \
                 (another key, or a tampered row)",
                self.source
            )
        };
        let sealed = stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|sealed| sealed.len() > NONCE_LEN)
            .ok_or_else(undecryptable)?;
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| undecryptable())?;
        XChaCha20Poly1305::new(&self.key.into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| undecryptable())
    }
}

/// The KEK for `database_url`: read from `file`; without one, on SQLite,
/// from (or, on a database that has no KEK yet, generated into) the file
/// beside the database. PostgreSQL needs a file, since every instance must
/// share it.
pub async fn resolve(
    file: Option<&Path>,
    database_url: &str,
    store: &crate::store::Store,
) -> Result<Kek, KeyError> {
    let sqlite = database_url.starts_with("sqlite:");
    let path = match (file, crate::store::sqlite_file(database_url)) {
        (Some(file), _) => file.to_owned(),
        (None, Some(database_file)) => default_path(&database_file),
        (None, None) if sqlite => return Ok(Kek::ephemeral()),
        (None, None) => {
            return Err(KeyError::Kek(
                "PostgreSQL needs --key-encryption-key-file (env KEY_ENCRYPTION_KEY_FILE), \
                 the same file on every instance; create it once with \
                 `(umask 077; openssl rand -base64 32 > login-service.kek)`"
                    .into(),
            ));
        }
    };
    if path.exists() {
        return Kek::read(&path).map_err(KeyError::Kek);
    }
    let recorded = store.recorded_kek_id().await?;
    match recorded {
        None if sqlite => match Kek::generate_file(&path) {
            Ok(kek) => {
                tracing::info!(
                    path = %path.display(),
                    "created a key-encryption key file; back it up apart from the database"
                );
                Ok(kek)
            }
            // Another process on the same database created it first.
            Err(_) if path.exists() => Kek::read(&path).map_err(KeyError::Kek),
            Err(e) => Err(KeyError::Kek(e)),
        },
        None => Err(KeyError::Kek(format!(
            "{} does not exist; create it once with `(umask 077; openssl rand -base64 32 > {})` \
             and give every instance the same file",
            path.display(),
            path.display()
        ))),
        Some(id) => Err(KeyError::Kek(format!(
            "{} does not exist, but the signing keys in this database are encrypted with \
             key-encryption key id {id}; restore its file",
            path.display()
        ))),
    }
}

/// Whether a stored `private_key` is encrypted (else it is a plaintext row
/// from before encryption, base64 PKCS#8).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The KEK file used when none is configured: beside the SQLite file.
pub fn default_path(database_file: &Path) -> PathBuf {
    let mut path = database_file.as_os_str().to_owned();
    path.push(".kek");
    PathBuf::from(path)
}

/// Creates `path` with mode 0600 from the start (no window in which it is
/// readable by others); fails if it exists.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Logs a warning when a secret file is readable by group or others.
pub fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "file is readable by other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_key_opens_only_with_the_same_kek_and_kid() {
        let kek = Kek::ephemeral();
        let sealed = kek.seal("kid-1", b"secret").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(&STANDARD.encode(b"secret")));
        assert_eq!(kek.open("kid-1", &sealed).unwrap(), b"secret");
        assert!(kek.open("kid-2", &sealed).is_err(), "kid is bound");
        assert!(Kek::ephemeral().open("kid-1", &sealed).is_err());
        assert_ne!(kek.seal("kid-1", b"secret").unwrap(), sealed, "fresh nonce");
    }

    #[test]
    fn generated_kek_file_is_never_overwritten_nor_left_half_written() {
        let path = std::env::temp_dir().join(format!(
            "login_service_kek_{}.kek",
            uuid::Uuid::new_v4().simple()
        ));
        let first = Kek::generate_file(&path).unwrap();
        assert!(Kek::generate_file(&path).is_err(), "exists");
        assert_eq!(Kek::read(&path).unwrap().id(), first.id());
        let siblings = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&*path.file_name().unwrap().to_string_lossy())
            })
            .count();
        assert_eq!(siblings, 1, "no temporary file left");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn kek_ids_differ_and_reveal_nothing_obvious() {
        let a = Kek::from_bytes([1; 32], "a");
        let b = Kek::from_bytes([2; 32], "b");
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), Kek::from_bytes([1; 32], "again").id());
        assert_eq!(a.id().len(), 16);
    }
}
