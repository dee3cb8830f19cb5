//! What the `users` and `keys` subcommands do, callable from tests too.

use crate::users::{self, Account, CreateError};
use crate::{BoxError, Hasher, kek, keys, store::Store};

/// Creates an account from the command line (e.g. the first admin).
///
/// # Errors
/// On invalid input, a taken email or a database failure.
pub async fn add_user(
    database_url: &str,
    email: &str,
    password: String,
    name: Option<String>,
    role: &str,
) -> Result<Account, BoxError> {
    let store = Store::connect(database_url, 1).await?;
    let hasher = Hasher::new().await;
    users::create(&store, &hasher, email, password, name, role)
        .await
        .map_err(|e| -> BoxError {
            match e {
                CreateError::Invalid(why) => why.into(),
                CreateError::Taken => "an account with this email exists".into(),
                CreateError::Db(e) => e.into(),
            }
        })
}

/// Adds a signing key, encrypted under the KEK in `kek_file` (see
/// [`crate::Config::key_encryption_key_file`]), that starts signing after
/// `activate_after_secs`; returns its kid.
///
/// # Errors
/// On a missing or wrong KEK or a database failure.
pub async fn rotate_key(
    database_url: &str,
    kek_file: Option<&std::path::Path>,
    activate_after_secs: i64,
) -> Result<String, BoxError> {
    let store = Store::connect(database_url, 1).await?;
    let kek = kek::resolve(kek_file, database_url, &store).await?;
    keys::prepare(&store, &kek).await?;
    Ok(keys::rotate(&store, &kek, activate_after_secs).await?)
}

/// Re-encrypts every private signing key from the KEK in `kek_file` (see
/// [`crate::Config::key_encryption_key_file`]) to the one in `new_kek_file`, in
/// one transaction; returns how many keys were re-encrypted.
///
/// # Errors
/// When either KEK cannot be read, the current one is not the database's,
/// or on a database failure (then nothing changed).
pub async fn rewrap_keys(
    database_url: &str,
    kek_file: Option<&std::path::Path>,
    new_kek_file: &std::path::Path,
) -> Result<usize, BoxError> {
    let store = Store::connect(database_url, 1).await?;
    let new = kek::Kek::read(new_kek_file)?;
    let old = kek::resolve(kek_file, database_url, &store).await?;
    if old.id() == new.id() {
        return Err("the new key-encryption key is the current one".into());
    }
    Ok(keys::rewrap(&store, &old, &new).await?)
}
