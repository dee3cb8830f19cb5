//! Signing keys at rest: encrypted under the key-encryption key (KEK),
//! refused with another KEK, re-encrypted by `keys rewrap`, pruned once
//! their tokens have expired. On SQLite always, on PostgreSQL when
//! `DATABASE_URL` points at one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Backend, PASSWORD, Service, TestDb};
use login_service::kek::Kek;
use login_service::{App, Config};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Row;
use tower_jwt_auth::Algorithm;
use tower_jwt_auth::issue::SigningKey;

on_both_backends!(
    private_keys_are_stored_encrypted_under_the_kek,
    plaintext_keys_from_before_encryption_are_encrypted_on_start,
    start_with_a_wrong_or_missing_kek_fails_clearly_and_changes_nothing,
    kek_rewrap_cli_reencrypts_keys_and_old_tokens_still_verify,
    retired_keys_are_pruned_after_the_retention_and_not_before,
);

/// PKCS#8 v1 of an Ed25519 key (RFC 8410), before the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The KEK file the service uses for `db`: the configured one, or on
/// SQLite the one created beside the database file.
fn kek_file(db: &TestDb) -> PathBuf {
    db.kek.clone().unwrap_or_else(|| {
        let file = login_service::store::sqlite_file(&db.url).unwrap();
        login_service::kek::default_path(&file)
    })
}

async fn pool(db: &TestDb) -> login_service::store::Pool {
    login_service::store::connect(&db.url, 1).await.unwrap()
}

/// (kid, stored private_key) of every signing key, oldest first.
async fn stored_keys(db: &TestDb) -> Vec<(String, String)> {
    let pool = pool(db).await;
    let rows = sqlx::query("SELECT kid, private_key FROM signing_keys ORDER BY generation")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter()
        .map(|row| (row.get("kid"), row.get("private_key")))
        .collect()
}

/// Every row of every table the service writes, as text: equal dumps mean
/// an unchanged database.
async fn dump(db: &TestDb) -> Vec<String> {
    let pool = pool(db).await;
    let mut out = Vec::new();
    for table in [
        "users",
        "signing_keys",
        "key_encryption",
        "refresh_families",
        "refresh_tokens",
        "revoked_access_tokens",
        "subject_revocations",
        "login_throttle",
        "movies",
    ] {
        // Table names are the literals above.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&pool)
            .await
            .unwrap();
        let mut lines: Vec<String> = rows
            .iter()
            .map(|row| {
                let cells: Vec<String> = (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .map(|v| format!("{v:?}"))
                            .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                            .unwrap_or_else(|e| panic!("{table}[{i}]: {e}"))
                    })
                    .collect();
                format!("{table}: {}", cells.join(" | "))
            })
            .collect();
        lines.sort();
        out.extend(lines);
    }
    pool.close().await;
    out
}

fn cli(db: &TestDb, kek: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_login-service"));
    command
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env_remove("KEY_ENCRYPTION_KEY_FILE");
    if let Some(kek) = kek {
        command.env("KEY_ENCRYPTION_KEY_FILE", kek);
    }
    command.output().expect("run login-service")
}

fn header_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let json: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    json["kid"].as_str().unwrap().to_owned()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "login_service_{}_{name}",
        uuid::Uuid::new_v4().simple()
    ))
}

async fn private_keys_are_stored_encrypted_under_the_kek(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    let jwks: Value = svc.get_json("/.well-known/jwks.json").await;
    svc.stop().await;

    let kek = Kek::read(&kek_file(&db)).unwrap();
    let keys = stored_keys(&db).await;
    assert_eq!(keys.len(), 1);
    let (kid, stored) = &keys[0];
    // Not the PKCS#8 DER in base64 (what was stored before), nor any part
    // of its fixed header.
    assert!(STANDARD.decode(stored).is_err(), "{stored}");
    assert!(!stored.contains(&STANDARD.encode(&ED25519_PKCS8_PREFIX[..15])));

    let der = kek.open(kid, stored).expect("opens with the KEK");
    assert_eq!(der.len(), 48);
    assert_eq!(der[..16], ED25519_PKCS8_PREFIX);
    assert!(!stored.contains(&STANDARD.encode(&der)));
    // It is the published key.
    let key = SigningKey::from_pkcs8_der(Algorithm::EdDSA, kid.clone(), &der).unwrap();
    assert_eq!(jwks["keys"][0]["x"], key.public_jwk().unwrap()["x"]);

    // Not with another KEK, nor moved to another row.
    assert!(Kek::ephemeral().open(kid, stored).is_err());
    assert!(kek.open("another-kid", stored).is_err());
    db.remove().await;
}

async fn plaintext_keys_from_before_encryption_are_encrypted_on_start(backend: Backend) {
    let db = TestDb::new(backend).await;
    // A database as an older version left it: a key in base64 PKCS#8, and no
    // key-encryption key recorded.
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&[7; 32]);
    let kid = "legacy-key";
    let pool = pool(&db).await;
    sqlx::query(
        "INSERT INTO signing_keys (generation, kid, algorithm, private_key, created_at, activates_at) \
         VALUES (1, $1, 'EdDSA', $2, 0, 0)",
    )
    .bind(kid)
    .bind(STANDARD.encode(&der))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let svc = Service::start(&db).await;
    svc.register("legacy@example.com", PASSWORD).await;
    let token = svc.access_token("legacy@example.com", PASSWORD).await;
    assert_eq!(header_kid(&token), kid, "the old key still signs");
    assert_eq!(
        svc.get_bearer("/auth/me", &token).await.status(),
        StatusCode::OK
    );
    svc.stop().await;

    let keys = stored_keys(&db).await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].1, STANDARD.encode(&der));
    let kek = Kek::read(&kek_file(&db)).unwrap();
    assert_eq!(kek.open(kid, &keys[0].1).unwrap(), der);
    db.remove().await;
}

async fn start_with_a_wrong_or_missing_kek_fails_clearly_and_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("kek@example.com", PASSWORD).await;
    svc.access_token("kek@example.com", PASSWORD).await;
    svc.stop().await;
    let before = dump(&db).await;

    let wrong = temp_path("wrong.kek");
    Kek::generate_file(&wrong).unwrap();
    let mut config = Config::new(db.url.clone(), "http://127.0.0.1");
    config.key_encryption_key_file = Some(wrong.clone());
    let error = App::build(config.clone()).await.unwrap_err().to_string();
    assert!(
        error.contains("encrypted with another key-encryption key")
            && error.contains("Nothing was changed"),
        "{error}"
    );
    // The CLI refuses it too, before adding a key.
    let output = cli(&db, Some(&wrong), &["keys", "rotate"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("login-service: key-encryption key: the signing keys in this database")
            && stderr.contains("another key-encryption key"),
        "{stderr}"
    );

    // A KEK file that is gone is not replaced by a new one.
    let correct = kek_file(&db);
    let moved = temp_path("moved.kek");
    std::fs::rename(&correct, &moved).unwrap();
    config.key_encryption_key_file = db.kek.clone();
    let error = App::build(config.clone()).await.unwrap_err().to_string();
    assert!(error.contains("does not exist"), "{error}");
    assert!(!correct.exists(), "no new KEK file was created");
    std::fs::rename(&moved, &correct).unwrap();

    if backend == Backend::Postgres {
        config.key_encryption_key_file = None;
        let error = App::build(config).await.unwrap_err().to_string();
        assert!(error.contains("--key-encryption-key-file"), "{error}");
    }

    assert_eq!(dump(&db).await, before);
    // And the right KEK still works.
    Service::start(&db).await.stop().await;
    let _ = std::fs::remove_file(wrong);
    db.remove().await;
}

/// `keys rewrap` from the KEK in `kek` to the one in `new_kek`.
fn rewrap_cli(db: &TestDb, kek: Option<&Path>, new_kek: &Path) -> Output {
    cli(
        db,
        kek,
        &[
            "keys",
            "rewrap",
            "--new-key-encryption-key-file",
            new_kek.to_str().unwrap(),
        ],
    )
}

async fn kek_rewrap_cli_reencrypts_keys_and_old_tokens_still_verify(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    let issuer = svc.base.clone();
    svc.register("rewrap@example.com", PASSWORD).await;
    let token = svc.access_token("rewrap@example.com", PASSWORD).await;
    svc.stop().await;
    let old_kek = kek_file(&db);
    let before = stored_keys(&db).await;

    let new_kek = temp_path("new.kek");
    Kek::generate_file(&new_kek).unwrap();
    let output = rewrap_cli(&db, db.kek.as_deref(), &new_kek);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("re-encrypted 1 signing keys"));

    let after = stored_keys(&db).await;
    assert_eq!(after.len(), before.len());
    let new = Kek::read(&new_kek).unwrap();
    let old = Kek::read(&old_kek).unwrap();
    for ((kid, was), (_, now)) in before.iter().zip(&after) {
        assert_ne!(was, now);
        assert_eq!(old.open(kid, was).unwrap(), new.open(kid, now).unwrap());
        assert!(old.open(kid, now).is_err());
    }

    // The service starts with the new KEK, and tokens signed before verify.
    let svc = Service::start_with(&db, |c| {
        c.issuer = issuer.clone();
        c.key_encryption_key_file = Some(new_kek.clone());
    })
    .await;
    assert_eq!(
        svc.get_bearer("/auth/me", &token).await.status(),
        StatusCode::OK
    );
    svc.stop().await;

    // The old KEK is refused, by the service and by another rewrap.
    let mut config = Config::new(db.url.clone(), issuer);
    config.key_encryption_key_file = Some(old_kek.clone());
    let error = App::build(config).await.unwrap_err().to_string();
    assert!(error.contains("another key-encryption key"), "{error}");
    let output = rewrap_cli(&db, Some(&old_kek), &new_kek);
    assert!(!output.status.success());
    assert_eq!(stored_keys(&db).await, after);

    let _ = std::fs::remove_file(new_kek);
    db.remove().await;
}

/// The kids in a JWK set.
fn published(jwks: Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn activates_at(pool: &login_service::store::Pool, kid: &str) -> i64 {
    sqlx::query("SELECT activates_at FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_one(pool)
        .await
        .unwrap()
        .get("activates_at")
}

async fn retired_keys_are_pruned_after_the_retention_and_not_before(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    let config = Config::new(db.url.clone(), svc.base.clone());
    let retention = config.retired_key_retention();
    assert_eq!(
        retention,
        config.access_token_ttl + tower_jwt_auth::DEFAULT_LEEWAY
    );
    let retention = retention.as_secs() as i64;

    let old_kid = stored_keys(&db).await[0].0.clone();
    let new_kid = login_service::rotate_key(&db.url, db.kek.as_deref(), 1)
        .await
        .unwrap();
    let pool = pool(&db).await;
    let activates_at = activates_at(&pool, &new_kid).await;
    let store = login_service::store::Store::new(pool.clone());
    svc.app.reload_keys().await.unwrap();
    assert_eq!(
        published(svc.get_json("/.well-known/jwks.json").await).len(),
        2
    );

    // With the clock injected: not before the retention is over...
    for now in [activates_at - 1, activates_at, activates_at + retention - 1] {
        let deleted = login_service::keys::prune_retired(&store, retention, now)
            .await
            .unwrap();
        assert!(deleted.is_empty(), "at {now}: {deleted:?}");
    }
    assert_eq!(stored_keys(&db).await.len(), 2);

    // ...and at its end, only the superseded key.
    let deleted = login_service::keys::prune_retired(&store, retention, activates_at + retention)
        .await
        .unwrap();
    assert_eq!(deleted, vec![old_kid.clone()]);
    let left: Vec<String> = stored_keys(&db).await.into_iter().map(|k| k.0).collect();
    assert_eq!(left, vec![new_kid.clone()]);
    let deleted =
        login_service::keys::prune_retired(&store, retention, activates_at + 10 * retention)
            .await
            .unwrap();
    assert!(deleted.is_empty(), "the active key stays: {deleted:?}");
    pool.close().await;

    // Running instances stop publishing it at their next reload.
    svc.app.reload_keys().await.unwrap();
    assert_eq!(
        published(svc.get_json("/.well-known/jwks.json").await),
        vec![new_kid]
    );
    svc.stop().await;
    db.remove().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_and_kek_files_are_created_0600() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(Backend::Sqlite).await;
    let file = login_service::store::sqlite_file(&db.url).unwrap();
    assert!(!file.exists());
    let svc = Service::start(&db).await;
    svc.register("mode@example.com", PASSWORD).await;
    let kek = kek_file(&db);
    let mut wal = file.clone().into_os_string();
    wal.push("-wal");
    for path in [file.clone(), kek, PathBuf::from(wal)] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: {mode:o}", path.display());
    }
    svc.stop().await;
    db.remove().await;
}

#[test]
fn keys_rotate_refuses_activate_after_zero_and_negative() {
    let file = temp_path("rotate.db");
    let url = format!("sqlite://{}", file.display());
    for args in [
        ["--activate-after-secs=0"].as_slice(),
        &["--activate-after-secs", "0"],
        &["--activate-after-secs=-5"],
        &["--activate-after-secs", "-5"],
    ] {
        let value = args
            .concat()
            .replace("--activate-after-secs", "")
            .replace('=', "");
        let output = Command::new(env!("CARGO_BIN_EXE_login-service"))
            .args(["keys", "rotate"])
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "invalid value '{value}' for '--activate-after-secs"
            )),
            "{stderr}"
        );
        assert!(!file.exists(), "refused before touching the database");
    }
}
