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
pub use throttle::{Limit, LoginRelease, Reservation};
pub use users::{Credentials, NewUser};

pub type Pool = AnyPool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database, shared by every handler and background task; cheap to
/// clone.
///
/// Two durabilities. A commit through the pool has reached the disk when
/// it returns. A *quick* commit ([`Store::begin_quick`]) returns once
/// written, before the disk has it: a crash of the process loses none, a
/// crash of the machine may forget the last few. Only what a login writes
/// commits quickly (its throttle counters, its new session), where
/// forgetting costs an attacker's few counted guesses or a user a new
/// login; revocations, rotations, accounts and keys commit durably. Each
/// later durable commit also makes every earlier quick one durable
/// (SQLite's log and PostgreSQL's WAL are written in order), so nothing
/// that depends on a forgotten commit can survive it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// On a SQLite file, connections with `synchronous = NORMAL` for quick
    /// commits; `None` elsewhere.
    quick: Option<Pool>,
}

impl Store {
    /// [`connect`]s and migrates.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let pool = connect(url, max_connections).await?;
        let quick = match sqlite_file(url) {
            Some(_) => Some(connect_quick_sqlite(url).await?),
            None => None,
        };
        Ok(Self { pool, quick })
    }

    /// Wraps a pool that [`connect`] opened. On SQLite it has no second
    /// pool, so its quick commits are durable too; on PostgreSQL they are
    /// quick as with [`Store::connect`].
    pub fn new(pool: Pool) -> Self {
        Self { pool, quick: None }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(quick) = &self.quick {
            quick.close().await;
        }
    }

    /// A transaction whose commit is quick (see [`Store`]): on SQLite, on
    /// a connection with `synchronous = NORMAL` (under WAL the log is not
    /// synced at commit, only before a checkpoint); on PostgreSQL, with
    /// `synchronous_commit` off for this transaction (the WAL writer
    /// flushes it within a fraction of a second).
    pub async fn begin_quick(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let mut tx = self.quick_pool().begin().await?;
        if tx.backend_name() == "PostgreSQL" {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Where single statements of the login path run; see [`Store`].
    pub(crate) fn quick_pool(&self) -> &Pool {
        self.quick.as_ref().unwrap_or(&self.pool)
    }
}

/// A second, small pool on the same SQLite file (already created and
/// migrated) whose connections commit without syncing the log. Writers
/// take turns on SQLite whatever the pool, so two connections suffice.
async fn connect_quick_sqlite(url: &str) -> Result<Pool, sqlx::Error> {
    pool_options(true)
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect(&sqlite_url(url))
        .await
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
    let url = sqlite_url(url);
    let pool = pool_options(sqlite)
        // SQLite serialises writers anyway; fewer connections mean fewer
        // SQLITE_BUSY retries under load.
        .max_connections(if sqlite {
            max_connections.min(4)
        } else {
            max_connections
        })
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

/// What every pool of the store shares: how long a request waits for a
/// connection, and whether one is pinged before use. A pooled SQLite
/// connection is a file handle in this process and cannot have died
/// meanwhile: pinging it costs a round trip to its worker thread per
/// checkout for nothing. A server connection can have been dropped, so it
/// is checked.
fn pool_options(sqlite: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(!sqlite)
}

/// `url`, with `mode=rwc` added to a `sqlite:` URL that names no mode: a
/// first start must create the file, and sqlx's default is to refuse.
fn sqlite_url(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
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

    /// A store on a new SQLite file with one account, `u1`, whose email
    /// lookup key is `a@example.com`; and the file, for [`remove`].
    async fn store_with_user(max_connections: u32) -> (Store, PathBuf) {
        let path = std::env::temp_dir().join(format!("store_{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()), max_connections)
            .await
            .unwrap();
        let user = NewUser {
            id: "u1",
            email: "A@example.com",
            email_key: "a@example.com",
            name: None,
            password_hash: "hash".to_owned(),
            role: "user",
            created_at: now(),
        };
        assert!(store.insert_user(user).await.unwrap());
        (store, path)
    }

    async fn remove(store: Store, path: PathBuf) {
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// The reservation reads the account in its own transaction when it
    /// counts, and neither counts nor reads when a counter is locked.
    #[tokio::test]
    async fn a_reservation_reads_the_account_only_when_it_counts() {
        let (store, path) = store_with_user(2).await;
        let now = now();
        // One attempt allowed: the first counts and locks, the next is refused.
        let limit = Limit {
            allowed: 1,
            base: 30,
            cap: 300,
            window: 900,
        };
        let reserve = |keys: &'static [&'static str], account: Option<&'static str>| {
            let store = store.clone();
            async move {
                let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
                let counters: Vec<_> = keys.iter().map(|k| (k, limit)).collect();
                store
                    .reserve_throttle_counters(&counters, now, account)
                    .await
                    .unwrap()
            }
        };
        match reserve(&["account:a"], Some("a@example.com")).await {
            Reservation::Counted(Some((subject, hash))) => {
                assert_eq!(subject.id, "u1");
                assert_eq!(subject.email, "A@example.com");
                assert_eq!(hash, "hash");
            }
            other => panic!("expected the account, got {other:?}"),
        }
        assert!(matches!(
            reserve(&["address:b"], Some("nobody@example.com")).await,
            Reservation::Counted(None)
        ));
        assert!(matches!(
            reserve(&["address:c"], None).await,
            Reservation::Counted(None)
        ));
        // `account:a` is locked now: the attempt on both counters counts on
        // neither (the fresh `address:d` stays absent).
        assert!(matches!(
            reserve(&["address:d", "account:a"], Some("a@example.com")).await,
            Reservation::Locked
        ));
        assert_eq!(
            store.throttle_blocked_until("address:d").await.unwrap(),
            None
        );
        remove(store, path).await;
    }

    /// A login's worth of transactions from many tasks at once on SQLite's
    /// pool: all finish (no SQLITE_BUSY, none waits for a connection
    /// another holds while waiting itself), and none is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_serves_concurrent_logins() {
        let (store, path) = store_with_user(10).await;
        let now = now();
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
                    let reserved = store
                        .reserve_throttle_counters(&counters, now, Some("a@example.com"))
                        .await?;
                    assert!(matches!(reserved, Reservation::Counted(Some(_))));
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
        remove(store, path).await;
    }
}
