//! The Wycheproof JSON Web Signature vectors, run through the library's own
//! JWK handling (`VerifyingKey::from_jwk` / `KeySet::from_jwks`) and JOSE
//! verification (`KeySet::verify_jws`).
//!
//! The vectors' payloads are not claim sets, so they exercise key loading,
//! key selection by `kid` and `alg`, base64url strictness and the signature
//! path, not the claim rules. Every case must agree with the expected
//! result or be listed in [`DEVIATIONS`] with the reason; a listed case that
//! starts agreeing fails the test too, so the table cannot rot.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tower_jwt_auth::{KeySet, VerifyingKey};

/// Vendored in the repository (Apache-2.0, licence beside the file), so a
/// clone with nothing beside it runs this test.
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/wycheproof/json_web_signature_test.json"
);

/// Cases where this library knowingly disagrees with the file: the tcId,
/// what our verifier must say about it (so a deviation that starts happening
/// for another reason is caught), and why.
const DEVIATIONS: &[(u64, &str, &str)] = &[
    (
        259,
        "refused: malformed",
        "empty payload (RS256): RFC 7515 allows it, but a JWT payload is a JSON object, so the \
         strict shape check refuses empty segments before any base64 or signature work",
    ),
    (264, "refused: malformed", "empty payload (RS384), as tc259"),
    (268, "refused: malformed", "empty payload (RS512), as tc259"),
    (272, "refused: malformed", "empty payload (PS256), as tc259"),
    (320, "refused: malformed", "empty payload (PS384), as tc259"),
    (325, "refused: malformed", "empty payload (PS512), as tc259"),
    (
        346,
        "refused: algorithm not accepted",
        "upstream: the group's JWK says \"alg\":\"PS256\" but the token (RFC 7520 Figure 20) is \
         PS384; we pin every key to its JWK's alg (docs/security-checklist.md §5.1)",
    ),
    (
        350,
        "refused: algorithm not accepted",
        "upstream: as tc346, with key_ops",
    ),
    (
        347,
        "key refused: invalid JWK: unsupported",
        "ES512 on P-521 (the JWK even says \"ES521\"): jsonwebtoken has no ES512, so the key is \
         refused, and its valid token with it",
    ),
    (
        351,
        "key refused: invalid JWK: unsupported",
        "as tc347, with key_ops",
    ),
    (
        367,
        "accepted",
        "upstream: labelled invalidBase64Padding but byte-identical to the valid tc357 (the \
         padding was lost upstream)",
    ),
    (
        370,
        "accepted",
        "upstream: labelled invalidBase64PaddingInPayload but byte-identical to the valid tc357",
    ),
    (
        372,
        "refused",
        "upstream: marked valid although the header segment contains '?', outside base64url; \
         strict base64url refuses it (docs/security-checklist.md §2.1)",
    ),
    (
        373,
        "refused",
        "upstream: marked valid although the payload segment contains '?'; refused as tc372",
    ),
];

/// The cases whose upstream inconsistency the table relies on: a token
/// labelled invalid that is byte-identical to one labelled valid.
const IDENTICAL_TO_VALID: &[(u64, u64)] = &[(367, 357), (370, 357)];

/// The keys a group's tests are verified with, or why none could be built.
fn group_keys(group: &Value) -> Result<KeySet, String> {
    // A public key is what a verifier holds; for `oct` keys the private JWK
    // is the only form there is.
    let jwk = group
        .get("public")
        .or_else(|| group.get("private"))
        .ok_or("group has neither a public nor a private key")?;
    if jwk.get("keys").is_some() {
        KeySet::from_jwks(jwk).map_err(|e| e.to_string())
    } else {
        VerifyingKey::from_jwk(jwk)
            .map(|key| KeySet::new([key]))
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug)]
struct Outcome {
    tc_id: u64,
    comment: String,
    expected_valid: bool,
    accepted: bool,
    why: String,
}

/// Runs one test's `jws` and reports whether it was accepted.
fn run(keys: &Result<KeySet, String>, jws: &Value) -> (bool, String) {
    // The JSON serialization is a JSON object; a client would send its text,
    // which is never a compact JWS.
    let text = match jws {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let keys = match keys {
        Ok(keys) => keys,
        Err(err) => return (false, format!("key refused: {err}")),
    };
    match keys.verify_jws(&text) {
        Ok(payload) => {
            // What verify_jws hands back must be the token's own payload.
            let segment = text.split('.').nth(1).unwrap_or_default();
            let expected = URL_SAFE_NO_PAD
                .decode(segment)
                .expect("an accepted token has a canonical payload");
            assert_eq!(payload, expected, "payload of accepted {text}");
            (true, "accepted".into())
        }
        Err(reason) => (false, format!("refused: {reason}")),
    }
}

fn load() -> Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|err| {
        panic!(
            "cannot read the Wycheproof vectors at {VECTORS}: {err}. They are part of the \
             repository; this test refuses to pass without them."
        )
    });
    serde_json::from_str(&text).expect("the vectors file is JSON")
}

#[test]
fn wycheproof_json_web_signature_vectors() {
    let doc = load();
    let groups = doc["testGroups"].as_array().expect("testGroups array");
    let mut outcomes = Vec::new();
    let mut jws_by_id = BTreeMap::new();
    for group in groups {
        let keys = group_keys(group);
        for test in group["tests"].as_array().expect("tests array") {
            let tc_id = test["tcId"].as_u64().expect("tcId");
            let expected_valid = match test["result"].as_str() {
                Some("valid") => true,
                Some("invalid") => false,
                other => panic!("tc{tc_id}: unexpected result {other:?}"),
            };
            let (accepted, why) = run(&keys, &test["jws"]);
            jws_by_id.insert(tc_id, test["jws"].clone());
            outcomes.push(Outcome {
                tc_id,
                comment: test["comment"].as_str().unwrap_or_default().to_owned(),
                expected_valid,
                accepted,
                why,
            });
        }
    }

    // A vectors file cut short must not look like a pass.
    let declared = doc["numberOfTests"].as_u64().expect("numberOfTests");
    assert_eq!(
        outcomes.len() as u64,
        declared,
        "ran a different number of cases than the file declares"
    );

    let deviations: BTreeMap<u64, (&str, &str)> = DEVIATIONS
        .iter()
        .map(|&(tc_id, verdict, reason)| (tc_id, (verdict, reason)))
        .collect();
    for tc_id in deviations.keys() {
        assert!(
            outcomes.iter().any(|o| o.tc_id == *tc_id),
            "deviation tc{tc_id} names no case in the file"
        );
    }
    for (invalid, valid) in IDENTICAL_TO_VALID {
        assert_eq!(
            jws_by_id[invalid], jws_by_id[valid],
            "tc{invalid} is no longer identical to tc{valid}: re-examine its deviation"
        );
    }

    let mut failures = String::new();
    let mut agreements = 0;
    for o in &outcomes {
        let agrees = o.accepted == o.expected_valid;
        match (agrees, deviations.get(&o.tc_id)) {
            (true, None) => agreements += 1,
            (false, Some((verdict, _))) if o.why.starts_with(verdict) => {}
            (false, Some((verdict, reason))) => writeln!(
                failures,
                "tc{} ({}) deviates for another reason: {} (table says {verdict:?}: {reason})",
                o.tc_id, o.comment, o.why
            )
            .unwrap(),
            (false, None) => writeln!(
                failures,
                "tc{} ({}): expected {}, {}",
                o.tc_id,
                o.comment,
                if o.expected_valid { "valid" } else { "invalid" },
                o.why
            )
            .unwrap(),
            (true, Some((_, reason))) => writeln!(
                failures,
                "tc{} ({}) now agrees ({}); remove its deviation: {reason}",
                o.tc_id, o.comment, o.why
            )
            .unwrap(),
        }
    }

    println!(
        "Wycheproof JWS: {} cases, {agreements} agree, {} documented deviations",
        outcomes.len(),
        deviations.len()
    );
    for o in outcomes
        .iter()
        .filter(|o| deviations.contains_key(&o.tc_id))
    {
        println!("  tc{} [{}]: {}", o.tc_id, o.why, deviations[&o.tc_id].1);
    }
    assert!(failures.is_empty(), "disagreements:\n{failures}");
    assert_eq!(agreements + deviations.len(), outcomes.len());
}
