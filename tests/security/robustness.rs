//! Checklist §7 Robustness (`docs/security-checklist.md`).

use crate::support::*;

/// xorshift64*: deterministic, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NOISE: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_....=+/ %\"{}\\\t\x80\xff";

fn mutate(rng: &mut Rng, token: &[u8]) -> Vec<u8> {
    let mut t = token.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(t.len().max(1));
        match rng.below(8) {
            0 if !t.is_empty() => t[at] = *rng.pick(NOISE),
            1 => t.insert(at.min(t.len()), *rng.pick(NOISE)),
            2 if !t.is_empty() => {
                t.remove(at);
            }
            3 => t.truncate(at),
            4 => {
                let at = at.min(t.len());
                let end = (at + rng.below(64)).min(t.len());
                let copy = t[at..end].to_vec();
                let tail = t.split_off(at);
                t.extend(copy);
                t.extend(tail);
            }
            5 => {
                let parts: Vec<&[u8]> = t.split(|&b| b == b'.').collect();
                let mut parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
                let (i, j) = (rng.below(parts.len()), rng.below(parts.len()));
                parts.swap(i, j);
                t = parts.join(&b'.');
            }
            6 => t.extend_from_slice(b".eyJhbGciOiJub25lIn0"),
            _ if !t.is_empty() => t[at] ^= 1 << rng.below(7),
            _ => {}
        }
    }
    t
}

fn random_json(rng: &mut Rng, depth: usize) -> String {
    const KEYS: &[&str] = &[
        "alg",
        "kid",
        "typ",
        "cty",
        "crit",
        "jwk",
        "exp",
        "nbf",
        "iat",
        "iss",
        "aud",
        "sub",
        "jti",
        "scope",
        "scp",
        "x",
        "\\u0061lg",
        "",
    ];
    match rng.below(if depth > 4 { 6 } else { 9 }) {
        0 => json!(rng.next() as i64).to_string(),
        1 => format!("{}.{}e{}", rng.below(1000), rng.below(100), rng.below(400)),
        2 => {
            json!(*rng.pick(&["HS256", "none", "at+jwt", "JWT", "user-1", "", "\u{0}"])).to_string()
        }
        3 => rng
            .pick(&["null", "true", "false", "-0", "1e999", "\"\\ud800\""])
            .to_string(),
        4 => "[".repeat(rng.below(300)),
        5 => rng.pick(&["{", "}", ",", ":", "\"", "]"]).to_string(),
        6 => {
            let items: Vec<String> = (0..rng.below(4))
                .map(|_| random_json(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let members: Vec<String> = (0..rng.below(6))
                .map(|_| format!("\"{}\":{}", rng.pick(KEYS), random_json(rng, depth + 1)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

/// Checklist §7.1 (docs/security-checklist.md).
#[tokio::test]
async fn robustness_random_and_mutated_tokens_never_panic() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .key(VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC).unwrap())
        .key(VerifyingKey::ec_pem(EC_PUBLIC).unwrap())
        .key(VerifyingKey::ed_pem(ED_PUBLIC).unwrap())
        .on_rejection(with_reason_header)
        .build()
        .unwrap();
    let seeds: Vec<Vec<u8>> = [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ]
    .into_iter()
    .map(|alg| key(alg).sign(&claims()).unwrap().into_bytes())
    .collect();

    let mut rng = Rng(0x5EED_F00D_7E57);
    let mut tokens = Vec::new();
    for _ in 0..2500 {
        let seed = rng.pick(&seeds).clone();
        let mutant = mutate(&mut rng, &seed);
        if mutant != seed {
            tokens.push(mutant);
        }
    }
    for _ in 0..500 {
        let len = rng.below(12_000);
        tokens.push((0..len).map(|_| *rng.pick(NOISE)).collect());
    }
    // Correctly MACed nonsense reaches the header and claims parsers; the
    // issuer is never among the generated strings, so none is valid.
    for _ in 0..1500 {
        let header = if rng.below(3) == 0 {
            random_json(&mut rng, 0)
        } else {
            format!(r#"{{"alg":"HS256","x":{}}}"#, random_json(&mut rng, 0))
        };
        let payload = random_json(&mut rng, 0);
        tokens.push(mac_token(
            Algorithm::HS256,
            segments(&header, &payload),
            SECRET,
        ));
    }

    let mut sent = 0;
    let mut reasons = BTreeSet::new();
    for token in tokens {
        let Some(request) = authorization(&[&b"Bearer "[..], &token[..]].concat()) else {
            continue;
        };
        let layer = layer.clone();
        let reply = tokio::spawn(async move { send(&layer, request).await }).await;
        let reply = reply.unwrap_or_else(|err| {
            panic!(
                "the layer panicked ({err}) on {:?}",
                String::from_utf8_lossy(&token)
            )
        });
        assert!(
            matches!(reply.status.as_u16(), 400 | 401),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(&token)
        );
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|c| c.starts_with(BARE_CHALLENGE)),
            "{reply:?}"
        );
        if let Some(reason) = reply.header("x-test-reason") {
            reasons.insert(reason.to_owned());
        }
        sent += 1;
    }
    assert!(sent > 4000, "only {sent} tokens were header-safe");
    // The run must reach deep into the verifier, not stop at the shape.
    for reason in [
        "Malformed",
        "BadHeader",
        "Signature",
        "BadClaims",
        "TooLarge",
    ] {
        assert!(reasons.contains(reason), "never hit {reason}: {reasons:?}");
    }
}

/// Ignoring a deep value or refusing it are both fine; what must never
/// happen is recursion proportional to the input (a stack overflow aborts
/// the whole process, which fails this test binary).
///
/// Checklist §7.2 (docs/security-checklist.md).
#[tokio::test]
async fn robustness_deeply_nested_json_never_overflows_the_stack() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let roomy = builder::<User>()
        .hs256(SECRET)
        .max_token_len(1 << 20)
        .build()
        .unwrap();
    let deep_header = format!(r#"{{"alg":"HS256","x":{}}}"#, nested(400));
    let token = hs256_raw(&deep_header, &claims().to_string());
    assert_ignored_or_refused(&send(&roomy, bearer(&token)).await, "deep header");
    let deep_payload = with_members(&claims(), &format!(r#""x":{}"#, nested(200_000)));
    let token = hs256_raw(HEADER, &deep_payload);
    assert_ignored_or_refused(&send(&roomy, bearer(&token)).await, "deep payload");

    // A claims type that keeps every value must build the nesting: serde's
    // recursion limit refuses it instead of overflowing.
    let untyped = builder::<Value>()
        .hs256(SECRET)
        .max_token_len(1 << 20)
        .build()
        .unwrap();
    assert_invalid_token(&send(&untyped, bearer(&token)).await, "deep, untyped");
    let shallow = with_members(&claims(), &format!(r#""x":{}"#, nested(4)));
    assert_accepted(
        &send(&untyped, bearer(hs256_raw(HEADER, &shallow))).await,
        "shallow, untyped",
    );
}

#[track_caller]
fn assert_ignored_or_refused(reply: &Reply, case: &str) {
    if reply.status != StatusCode::OK {
        assert_invalid_token(reply, case);
    }
}

/// Checklist §7.3 (docs/security-checklist.md).
#[tokio::test]
async fn robustness_huge_payload_with_a_late_duplicate_is_refused() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .max_token_len(1 << 20)
        .build()
        .unwrap();
    // Many distinct members and a duplicate at the very end: the
    // duplicate detector sees every name before it can refuse.
    let token_of = |bytes: usize| {
        let members: String = (0..bytes / 12)
            .map(|i| format!(r#""m{i:07}":0,"#))
            .collect();
        let payload = with_members(&claims(), &format!(r#"{members}"m0000000":1"#));
        hs256_raw(HEADER, &payload)
    };
    // Linear scaling itself is measured by `cargo bench --bench verify`
    // (scaling/*), not timed here.
    let large = token_of(64 * 1024);
    assert_invalid_token(&send(&layer, bearer(&large)).await, "duplicate at the end");
}
