//! The store's two durabilities (`login_service::store::Store`): what a
//! login writes commits without waiting for the disk, everything else
//! waits. On SQLite always, on PostgreSQL when `DATABASE_URL` points at
//! one.

mod common;

use common::{Backend, TestDb};
use login_service::store::{self, Store};
use sqlx::Row;

on_both_backends!(quick_commits_skip_the_sync_and_the_others_keep_it);

/// The setting that decides whether a commit waits for the disk, as the
/// connection running `executor` sees it.
async fn sync_setting<'c, E>(backend: Backend, executor: E) -> String
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let query = match backend {
        Backend::Sqlite => "SELECT CAST(synchronous AS TEXT) AS s FROM pragma_synchronous",
        Backend::Postgres => "SELECT current_setting('synchronous_commit') AS s",
    };
    sqlx::query(query)
        .fetch_one(executor)
        .await
        .unwrap()
        .get("s")
}

async fn quick_commits_skip_the_sync_and_the_others_keep_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    // SQLite: 2 is FULL (the log synced at every commit), 1 NORMAL (synced
    // before checkpoints only). PostgreSQL: synchronous_commit.
    let (durable, quick) = match backend {
        Backend::Sqlite => ("2", "1"),
        Backend::Postgres => ("on", "off"),
    };

    let store = Store::connect(&db.url, 1).await.unwrap();
    let mut tx = store.begin_quick().await.unwrap();
    assert_eq!(sync_setting(backend, &mut *tx).await, quick);
    tx.commit().await.unwrap();

    // The service's own pool, as `Store::connect` opens it, keeps the sync.
    let pool = store::connect(&db.url, 1).await.unwrap();
    assert_eq!(sync_setting(backend, &pool).await, durable);

    // A store on that one connection: its quick transaction relaxes the
    // setting for itself only, and a commit or a rollback restores it.
    let single = Store::new(pool.clone());
    for commit in [true, false] {
        let mut tx = single.begin_quick().await.unwrap();
        let inside = sync_setting(backend, &mut *tx).await;
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        assert_eq!(sync_setting(backend, &pool).await, durable);
        match backend {
            // `Store::new` has no second SQLite pool: everything on it is
            // durable.
            Backend::Sqlite => assert_eq!(inside, durable),
            Backend::Postgres => assert_eq!(inside, quick),
        }
    }

    pool.close().await;
    store.close().await;
    db.remove().await;
}
