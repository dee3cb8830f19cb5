//! The storage layer: every SQL statement of the service, on SQLite or
//! PostgreSQL through sqlx's `Any` driver, so every query and migration is
//! written once in portable SQL.
//!
//! [`Store`] wraps the pool; its methods are grouped by table, one file
//! each. A transaction that spans tables is one method named for what it
//! does (e.g. [`Store::log_out`], [`Store::rotate_refresh_token`]). The
//! domain modules decide *what* to store and when; this module only knows
//! *how*.

mod denylist;
mod device_secrets;
mod movies;
mod sessions;
mod signing_keys;
mod throttle;
mod users;

use std::path::PathBuf;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use denylist::RevokedRows;
pub use sessions::Rotation;
pub use signing_keys::{KeyActivation, StoredKey};
pub use throttle::{Limit, LoginRelease};
pub use users::NewUser;

pub type Pool = AnyPool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database, shared by every handler and background task; cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// [`connect`]s and migrates.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        Ok(Self::new(connect(url, max_connections).await?))
    }

    /// Wraps a pool that [`connect`] opened.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens the pool and brings the schema up to date.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn connect(url: &str, max_connections: u32) -> Result<Pool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let creates = !url.contains("mode=") || url.contains("mode=rwc");
    if let Some(path) = sqlite_file(url).filter(|_| creates) {
        create_private_file(&path)?;
    }
    let url = if sqlite && !url.contains("mode=") {
        // A first start must create the file; sqlx's default is to refuse.
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    };
    let pool = AnyPoolOptions::new()
        // SQLite serialises writers anyway; fewer connections mean fewer
        // SQLITE_BUSY retries under load.
        .max_connections(if sqlite {
            max_connections.min(4)
        } else {
            max_connections
        })
        .acquire_timeout(Duration::from_secs(5))
        // A pooled SQLite connection is a file handle in this process and
        // cannot have died meanwhile: pinging it before every use costs a
        // round trip to its worker thread (three per login) for nothing.
        // A server connection can have been dropped, so it is checked.
        .test_before_acquire(!sqlite)
        .connect(&url)
        .await?;
    if sqlite {
        // WAL lets readers proceed during a write; the busy timeout makes a
        // second writer wait instead of failing.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// The file of a `sqlite:` URL; `None` for other databases and in-memory
/// SQLite.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory");
    (!in_memory).then(|| PathBuf::from(path))
}

/// Creates a missing SQLite file with mode 0600 before SQLite does (which
/// would use 0644), so password hashes and keys are never world-readable.
/// SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private_file(path: &std::path::Path) -> Result<(), sqlx::Error> {
    match crate::kek::create_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            crate::kek::warn_if_shared(path);
            Ok(())
        }
        Err(e) => Err(sqlx::Error::Io(e)),
    }
}

/// A duration in the stored unit, seconds, bounded so that adding or
/// subtracting a few of them to a timestamp cannot overflow: a configured
/// lifetime of "forever" saturates instead of wrapping or panicking.
pub fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).map_or(i64::MAX / 4, |s| s.min(i64::MAX / 4))
}

/// Seconds since the Unix epoch: every timestamp is stored this way.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A login's worth of transactions from many tasks at once on SQLite's
    /// pool: all finish (no SQLITE_BUSY, none waits for a connection
    /// another holds while waiting itself), and none is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_serves_concurrent_logins() {
        let path = std::env::temp_dir().join(format!("store_{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()), 10)
            .await
            .unwrap();
        let now = now();
        assert!(
            store
                .insert_user(NewUser {
                    id: "u1",
                    email: "a@example.com",
                    email_key: "a@example.com",
                    name: None,
                    password_hash: "hash".to_owned(),
                    role: "user",
                    created_at: now,
                })
                .await
                .unwrap()
        );
        let limit = Limit {
            allowed: 1_000,
            base: 30,
            cap: 300,
            window: 900,
        };
        let address = "address:test".to_owned();
        let logins: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                let address = address.clone();
                tokio::spawn(async move {
                    let account = format!("account:{}", i % 4);
                    let counters = [(&account, limit), (&address, limit)];
                    assert!(store.reserve_throttle_counters(&counters, now).await?);
                    assert!(store.find_user("a@example.com").await?.is_some());
                    let release = LoginRelease {
                        clear: Some(account.clone()),
                        release: (address.clone(), limit.allowed),
                    };
                    let family = format!("family-{i}");
                    let token = format!("token-{i}");
                    store
                        .start_session(&family, "u1", &token, now, now + 60, Some(&release), None)
                        .await
                })
            })
            .collect();
        let all = async {
            for login in logins {
                login.await.unwrap().unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("the logins finish");
        // Every reservation was given back: the address counter is at 0.
        let failures: i64 =
            sqlx::query_scalar("SELECT failures FROM login_throttle WHERE throttle_key = $1")
                .bind(&address)
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(failures, 0);
        let families: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM refresh_families")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(families, 64);
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
