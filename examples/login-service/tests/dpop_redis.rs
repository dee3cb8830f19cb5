//! DPoP replay across processes: two login-service instances on one
//! database and one Redis (`REDIS_URL`), one in this process and one the
//! real binary in a process of its own, as behind a load balancer (both
//! configured with the same issuer URL, which proofs' `htu` name). A proof
//! used at one instance is refused at the other, at the protected routes
//! and at login. `#[ignore]`d without `REDIS_URL`; `.ci/run` runs it.

mod common;
#[path = "../examples/dpop_client.rs"]
#[allow(dead_code, reason = "the example's main is not called here")]
mod dpop_client;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Backend, PASSWORD, Service, TestDb, error_of};
use dpop_client::DpopKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL: this test needs a Redis server (see .ci/run)")
}

/// The service binary, on the database and Redis of the first instance
/// and under its issuer URL, listening on a port of its own.
struct SecondInstance {
    child: Child,
    /// Where it listens (not its issuer).
    base: String,
}

impl SecondInstance {
    fn spawn(database_url: &str, kek: Option<&Path>, issuer: &str, prefix: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_login-service"));
        command
            .env("DATABASE_URL", database_url)
            .env("LISTEN", "127.0.0.1:0")
            .env("ISSUER", issuer)
            .env("REDIS_URL", redis_url())
            .env("REDIS_KEY_PREFIX", prefix)
            .env("RUST_LOG", "login_service=info")
            .env_remove("KEY_ENCRYPTION_KEY_FILE")
            .env_remove("METRICS_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(kek) = kek {
            command.env("KEY_ENCRYPTION_KEY_FILE", kek);
        }
        let mut child = command.spawn().expect("start login-service");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // "… login-service listening address=127.0.0.1:PORT docs=true"
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let (_, rest) = line.split_once("login-service listening address=")?;
                Some(rest.split_whitespace().next()?.to_owned())
            })
            .expect("the second instance did not start (see its stderr above)");
        // Keep reading its log, so that a full pipe never blocks it.
        std::thread::spawn(move || lines.for_each(drop));
        SecondInstance {
            child,
            base: format!("http://{address}"),
        }
    }
}

impl Drop for SecondInstance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET {base}/auth/me` with the bound token and `proof`.
async fn me(base: &str, token: &str, proof: &str) -> StatusCode {
    common::client()
        .get(format!("{base}/auth/me"))
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap()
        .status()
}

/// `POST {base}/auth/login` with `proof`.
async fn login(base: &str, email: &str, proof: &str) -> reqwest::Response {
    common::client()
        .post(format!("{base}/auth/login"))
        .header("DPoP", proof)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: REDIS_URL (run by .ci/run)"]
async fn a_proof_used_at_one_instance_is_refused_at_the_other() {
    let url = redis_url();
    let prefix = format!("login-service-test:{}", uuid::Uuid::new_v4().simple());
    let db = TestDb::new(Backend::Sqlite).await;
    let first = Service::start_with(&db, |c| {
        c.redis_url = Some(url.clone());
        c.redis_key_prefix = prefix.clone();
    })
    .await;
    // Its output is read blocking: off the runtime's workers.
    let (issuer, second_db_url, kek, second_prefix) = (
        first.base.clone(),
        db.url.clone(),
        db.kek.clone(),
        prefix.clone(),
    );
    let second = tokio::task::spawn_blocking(move || {
        SecondInstance::spawn(&second_db_url, kek.as_deref(), &issuer, &second_prefix)
    })
    .await
    .unwrap();
    assert_ne!(second.base, first.base);
    let issuer = first.base.clone();
    first.register("replay@example.com", PASSWORD).await;
    let key = DpopKey::generate().unwrap();

    // Proofs name the issuer URL, whichever instance serves them.
    let login_proof = key.proof("POST", &format!("{issuer}/auth/login"), None);
    let response = login(&second.base, "replay@example.com", &login_proof).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let token = tokens["access_token"].as_str().unwrap();
    // The same login proof at the first instance: replayed.
    let (status, body) =
        error_of(login(&first.base, "replay@example.com", &login_proof).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof");

    let me_url = format!("{issuer}/auth/me");
    // First here, then there…
    let proof = key.proof("GET", &me_url, Some(token));
    assert_eq!(me(&first.base, token, &proof).await, StatusCode::OK);
    assert_eq!(
        me(&second.base, token, &proof).await,
        StatusCode::UNAUTHORIZED
    );
    // …and the other way round: each accepts a fresh proof, once.
    let proof = key.proof("GET", &me_url, Some(token));
    assert_eq!(me(&second.base, token, &proof).await, StatusCode::OK);
    assert_eq!(
        me(&first.base, token, &proof).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&second.base, token, &proof).await,
        StatusCode::UNAUTHORIZED
    );

    drop(second);
    first.stop().await;
    db.remove().await;
}
