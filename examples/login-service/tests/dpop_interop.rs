//! DPoP against a client nobody here wrote: panva's oauth4webapi and dpop
//! (npm, pinned in `tests/oidc-provider/package-lock.json` at the
//! repository root), run by node from `tests/oidc-provider/dpop-client.mjs`.
//! The client logs in to the service with its own proof, gets tokens bound
//! to its key, and calls `/auth/me` with them and its own proofs; a proof
//! by another key of its is refused, so is a refresh with that key, and the
//! refresh with the right key succeeds. The test then replays the proofs
//! the client sent. Against a service that requires server nonces, the
//! client's first attempts are answered `use_dpop_nonce` and its retries,
//! with the nonces handed out, succeed.
//!
//! Ignored by default: it needs node (18 or later) and
//! `npm ci --prefix tests/oidc-provider`, which `.ci/run` does before it
//! runs the ignored tests. By hand, from the repository root:
//!
//! ```sh
//! npm ci --prefix tests/oidc-provider
//! cargo test -p login-service --test dpop_interop -- --ignored
//! ```

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, PASSWORD, Service, TestDb, claims_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `tests/oidc-provider` of the checkout the test runs from (cargo sets
/// CARGO_MANIFEST_DIR for the test process), not the one it was compiled
/// in: CI builds in one clone and runs the ignored tests in its own.
fn node_project() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let dir = manifest.join("../../tests/oidc-provider");
    assert!(
        dir.join("node_modules/oauth4webapi").is_dir() && dir.join("node_modules/dpop").is_dir(),
        "run `npm ci --prefix tests/oidc-provider` (from the repository root) first"
    );
    dir
}

/// Runs the client in `mode`; what it reports.
async fn run_client(args: &[&str]) -> Value {
    let dir = node_project();
    let child = tokio::process::Command::new("node")
        .arg(dir.join("dpop-client.mjs"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed to run this test");
    // A bound on a client that hangs, not a timing claim.
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client did not finish within 60 s")
        .unwrap();
    assert!(
        output.status.success(),
        "the client failed (see its stderr above)"
    );
    serde_json::from_slice(&output.stdout).expect("the client's JSON report")
}

/// RFC 7638 thumbprint of an EC public JWK, computed here independently.
fn ec_thumbprint(jwk: &Value) -> String {
    let canonical = json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]});
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The `error` of the DPoP challenge (the scheme in any case) among those
/// oauth4webapi parsed, if there is one.
fn dpop_challenge_error(call: &Value) -> Option<String> {
    call["challenges"]
        .as_array()?
        .iter()
        .find(|c| {
            c["scheme"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("dpop"))
        })
        .map(|c| {
            c["parameters"]["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and `npm ci --prefix tests/oidc-provider` (.ci/run does both)"]
async fn npm_dpop_client_logs_in_and_calls_protected_routes() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    svc.register("node@example.com", PASSWORD).await;

    let report = run_client(&["login-service", &svc.base, "node@example.com", PASSWORD]).await;

    // Login with the client's proof: tokens bound to the client's key.
    let login = &report["login"];
    assert_eq!(login["status"], 200, "{report}");
    assert_eq!(login["body"]["token_type"], "DPoP", "{report}");
    let token = login["body"]["access_token"].as_str().unwrap();
    let jkt = ec_thumbprint(&report["jwk"]);
    assert_eq!(claims_of(token)["cnf"]["jkt"], jkt.as_str(), "{report}");

    // oauth4webapi's protected resource requests, with its proofs: accepted.
    for call in report["calls"].as_array().unwrap() {
        assert_eq!(call["status"], 200, "{call}");
        assert_eq!(call["body"]["email"], "node@example.com", "{call}");
        assert!(
            call["proof"]["authorization"]
                .as_str()
                .unwrap()
                .starts_with("DPoP "),
            "{call}"
        );
    }
    // Its proof by another key: refused with a DPoP challenge it parsed.
    let other = &report["other_key"];
    assert_eq!(other["status"], 401, "{other}");
    let error = dpop_challenge_error(other).unwrap_or_else(|| panic!("{other}"));
    assert!(
        error == "invalid_dpop_proof" || error == "invalid_token",
        "{other}"
    );

    // The client's own proofs, replayed by someone who saw them: refused.
    for call in report["calls"].as_array().unwrap() {
        let response = svc
            .client
            .get(svc.url("/auth/me"))
            .header(
                "Authorization",
                call["proof"]["authorization"].as_str().unwrap(),
            )
            .header("DPoP", call["proof"]["dpop"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "replay of {call}"
        );
    }

    // Refresh: its other key is refused, its key gets a new bound pair.
    let refused = &report["refresh_other_key"];
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(refused["body"]["error"], "invalid_dpop_proof", "{refused}");
    let refreshed = &report["refresh"];
    assert_eq!(refreshed["status"], 200, "{refreshed}");
    assert_eq!(refreshed["body"]["token_type"], "DPoP", "{refreshed}");
    let renewed = refreshed["body"]["access_token"].as_str().unwrap();
    assert_eq!(claims_of(renewed)["cnf"]["jkt"], jkt.as_str());
    // The login proof, replayed at login: refused.
    let response = svc
        .client
        .post(svc.url("/auth/login"))
        .header("DPoP", login["proof"].as_str().unwrap())
        .json(&json!({"email": "node@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    svc.stop().await;
    db.remove().await;
}

/// The `nonce` claim of a proof.
fn nonce_in(proof: &Value) -> Value {
    claims_of(proof.as_str().unwrap())["nonce"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and `npm ci --prefix tests/oidc-provider` (.ci/run does both)"]
async fn npm_dpop_client_follows_the_services_nonce_requests() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start_with(&db, |config| {
        config.dpop_nonce_rotation = Some(Duration::from_secs(300));
    })
    .await;
    let email = "nonce-node@example.com";
    svc.register(email, PASSWORD).await;

    let report = run_client(&["login-service-nonce", &svc.base, email, PASSWORD]).await;

    // Login: asked for a nonce, then logged in with a proof carrying it.
    let asked = &report["asked"];
    assert_eq!(asked["status"], 400, "{report}");
    assert_eq!(asked["body"]["error"], "use_dpop_nonce", "{report}");
    assert_eq!(nonce_in(&asked["proof"]), Value::Null, "{report}");
    let nonce = asked["nonce"].as_str().expect("a DPoP-Nonce");
    let login = &report["login"];
    assert_eq!(login["status"], 200, "{report}");
    assert_eq!(nonce_in(&login["proof"]), nonce, "{report}");
    assert_eq!(login["body"]["token_type"], "DPoP", "{report}");
    let token = login["body"]["access_token"].as_str().unwrap();
    let jkt = ec_thumbprint(&report["jwk"]);
    assert_eq!(claims_of(token)["cnf"]["jkt"], jkt.as_str(), "{report}");

    // oauth4webapi at /auth/me: its first proof, without a nonce, gets a
    // DPoP challenge use_dpop_nonce it recognises (isDPoPNonceError); its
    // retry carries the nonce handed out and is accepted; its next call
    // carries the nonce it kept and is accepted at once.
    let calls = report["calls"].as_array().unwrap();
    let first = &calls[0];
    let asked = &first["asked"];
    assert_eq!(asked["status"], 401, "{first}");
    assert_eq!(
        dpop_challenge_error(asked).as_deref(),
        Some("use_dpop_nonce"),
        "{first}"
    );
    assert_eq!(nonce_in(&asked["proof"]["dpop"]), Value::Null, "{first}");
    let handed = asked["nonce"].as_str().expect("a DPoP-Nonce");
    let retry = &first["retry"];
    assert_eq!(retry["status"], 200, "{first}");
    assert_eq!(retry["body"]["email"], email, "{first}");
    assert_eq!(nonce_in(&retry["proof"]["dpop"]), handed, "{first}");
    let second = &calls[1];
    assert_eq!(second["status"], 200, "{second}");
    assert_eq!(nonce_in(&second["proof"]["dpop"]), handed, "{second}");

    svc.stop().await;
    db.remove().await;
}
