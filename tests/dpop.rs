//! DPoP (RFC 9449) end to end: a real axum server on 127.0.0.1 called with
//! reqwest, and a real tonic server called with tonic's `HealthClient`.
//! Proofs are signed here with jsonwebtoken over the fixture keys; access
//! tokens are HS256 tokens carrying `cnf.jkt`. Time is the layer's
//! injected clock, moved by the tests.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::util::MapRequestLayer;
use tower_jwt_auth::axum::Claims;
use tower_jwt_auth::dpop::{
    Dpop, DpopProof, MemoryReplayStore, Nonces, ReplayFuture, ReplayStore, access_token_hash,
    thumbprint,
};
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
use tower_jwt_auth::{Algorithm, BoxError, JwtAuthBuilder, JwtAuthLayer, RegisteredClaims};

use common::{AUDIENCE, ISSUER, SECRET, User, hs256};

const ALGS: &str = r#"algs="ES256 ES384 RS256 PS256 EdDSA""#;

// ---------------------------------------------------------------------
// Time, keys, proofs, tokens
// ---------------------------------------------------------------------

/// The layer's clock, in whole seconds, moved by the test.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn new() -> Self {
        TestClock(Arc::new(AtomicU64::new(common::now() as u64)))
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    fn source(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let clock = self.clone();
        move || UNIX_EPOCH + Duration::from_secs(clock.now())
    }
}

/// A client's proof key: what signs, and the public JWK it embeds.
struct ProofKey {
    alg: Algorithm,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
    jkt: String,
}

fn proof_key(alg: Algorithm) -> ProofKey {
    proof_key_from(alg, pem_for(alg))
}

fn pem_for(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => common::EC_PRIVATE,
        Algorithm::ES384 => common::EC384_PRIVATE,
        Algorithm::RS256 | Algorithm::PS256 => common::RSA_PRIVATE,
        Algorithm::EdDSA => common::ED_PRIVATE,
        other => panic!("no proof key for {other:?}"),
    }
}

fn proof_key_from(alg: Algorithm, pem: &str) -> ProofKey {
    // Also installs jsonwebtoken's default provider for the signing below.
    let signing = SigningKey::from_pem(alg, "proof", pem.as_bytes()).unwrap();
    let mut jwk = signing.public_jwk().unwrap().clone();
    for member in ["kid", "use", "alg"] {
        jwk.as_object_mut().unwrap().remove(member);
    }
    let encoding = match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
        }
        Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    let jkt = thumbprint(&jwk).unwrap();
    ProofKey {
        alg,
        encoding,
        jwk,
        jkt,
    }
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// A proof under construction: its header and claims as JSON text, so
/// that tests can write anything (duplicates included).
#[derive(Clone)]
struct Proof {
    header: Value,
    claims: Value,
    /// Replaces the header's JSON text, for members JSON values cannot
    /// repeat.
    raw_header: Option<String>,
    raw_claims: Option<String>,
}

impl Proof {
    fn new(key: &ProofKey, htm: &str, htu: &str, iat: u64) -> Self {
        Proof {
            header: json!({ "typ": "dpop+jwt", "alg": key.alg.name(), "jwk": key.jwk }),
            claims: json!({
                "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst)),
                "htm": htm,
                "htu": htu,
                "iat": iat,
            }),
            raw_header: None,
            raw_claims: None,
        }
    }

    fn for_token(key: &ProofKey, htm: &str, htu: &str, iat: u64, token: &str) -> Self {
        Proof::new(key, htm, htu, iat).claim("ath", json!(access_token_hash(token)))
    }

    fn header(mut self, name: &str, value: Value) -> Self {
        self.header[name] = value;
        self
    }

    fn without_header(mut self, name: &str) -> Self {
        self.header.as_object_mut().unwrap().remove(name);
        self
    }

    fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims[name] = value;
        self
    }

    fn without_claim(mut self, name: &str) -> Self {
        self.claims.as_object_mut().unwrap().remove(name);
        self
    }

    fn signed_by(&self, key: &ProofKey) -> String {
        let header = self
            .raw_header
            .clone()
            .unwrap_or_else(|| self.header.to_string());
        let claims = self
            .raw_claims
            .clone()
            .unwrap_or_else(|| self.claims.to_string());
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let alg: jsonwebtoken::Algorithm = key.alg.name().parse().unwrap();
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, alg).unwrap();
        format!("{input}.{signature}")
    }
}

/// An HS256 access token, bound to `jkt` when given.
fn token(clock: &TestClock, jkt: Option<&str>) -> String {
    let now = clock.now();
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1",
        "iat": now, "exp": now + 3600, "scope": "movies:read",
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    hs256(&claims)
}

fn auth(clock: &TestClock, dpop: Dpop) -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(clock.source())
        .dpop(dpop)
}

// ---------------------------------------------------------------------
// The HTTP server and client
// ---------------------------------------------------------------------

struct Http {
    /// `http://127.0.0.1:port`
    base: String,
    client: reqwest::Client,
}

/// What the handler saw.
async fn movie(Claims(user): Claims<User>, proof: Option<Extension<DpopProof>>) -> Json<Value> {
    Json(json!({
        "sub": user.sub,
        "jkt": proof.as_ref().map(|Extension(proof)| proof.jkt.clone()),
        "jti": proof.map(|Extension(proof)| proof.jti),
    }))
}

impl Http {
    async fn serve(auth: JwtAuthLayer<User>) -> Http {
        let app = Router::new()
            .route("/movies/{id}", get(movie).post(movie))
            .route_layer(auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Http {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    /// The URI a proof for `path` names.
    fn htu(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<String>,
        proofs: &[String],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        for proof in proofs {
            request = request.header("dpop", proof);
        }
        request.send().await.unwrap()
    }

    /// `GET path` with `Authorization: DPoP token` and one proof.
    async fn dpop(&self, path: &str, token: &str, proof: &str) -> reqwest::Response {
        self.send(
            "GET",
            path,
            Some(format!("DPoP {token}")),
            &[proof.to_owned()],
        )
        .await
    }
}

fn challenges(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

/// The answer is 401 with a DPoP challenge carrying `error`.
fn assert_dpop_error(response: &reqwest::Response, error: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{error}");
    let challenges = challenges(response);
    let dpop = challenges
        .iter()
        .find(|c| c.starts_with("DPoP "))
        .unwrap_or_else(|| panic!("no DPoP challenge in {challenges:?}"));
    assert!(
        dpop.contains(&format!("error=\"{error}\"")) && dpop.contains(", algs=\""),
        "{dpop}"
    );
}

async fn body(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A server accepting DPoP, a key, and a token bound to it.
struct Setup {
    clock: TestClock,
    server: Http,
    key: ProofKey,
    token: String,
}

impl Setup {
    async fn new(dpop: Dpop) -> Setup {
        Self::with(|clock| auth(clock, dpop)).await
    }

    async fn with(build: impl FnOnce(&TestClock) -> JwtAuthBuilder<User>) -> Setup {
        let clock = TestClock::new();
        let server = Http::serve(build(&clock).build().unwrap()).await;
        let key = proof_key(Algorithm::ES256);
        let token = token(&clock, Some(&key.jkt));
        Setup {
            clock,
            server,
            key,
            token,
        }
    }

    /// A valid proof for `GET path` with this setup's key and token.
    fn proof(&self, path: &str) -> Proof {
        Proof::for_token(
            &self.key,
            "GET",
            &self.server.htu(path),
            self.clock.now(),
            &self.token,
        )
    }

    async fn get(&self, path: &str, proof: &Proof) -> reqwest::Response {
        self.server
            .dpop(path, &self.token, &proof.signed_by(&self.key))
            .await
    }
}

// ---------------------------------------------------------------------
// HTTP: what a valid DPoP request gets
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_bound_token_with_a_valid_proof_reaches_the_handler_with_the_thumbprint() {
    let setup = Setup::new(Dpop::required()).await;
    let proof = setup.proof("/movies/1");
    let jti = proof.claims["jti"].as_str().unwrap().to_owned();

    let seen = body(setup.get("/movies/1", &proof).await).await;
    assert_eq!(seen["sub"], "user-1");
    assert_eq!(seen["jkt"], setup.key.jkt.as_str());
    assert_eq!(seen["jti"], jti.as_str());
    // The thumbprint is RFC 7638's, as jsonwebtoken computes it too.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(setup.key.jwk.clone()).unwrap();
    assert_eq!(
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap(),
        setup.key.jkt
    );
}

#[tokio::test]
async fn every_default_algorithm_signs_proofs() {
    let clock = TestClock::new();
    let server = Http::serve(auth(&clock, Dpop::required()).build().unwrap()).await;
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ] {
        let key = proof_key(alg);
        let token = token(&clock, Some(&key.jkt));
        let proof = Proof::for_token(&key, "GET", &server.htu("/movies/1"), clock.now(), &token);
        let seen = body(
            server
                .dpop("/movies/1", &token, &proof.signed_by(&key))
                .await,
        )
        .await;
        assert_eq!(seen["jkt"], key.jkt.as_str(), "{alg:?}");
    }
}

// ---------------------------------------------------------------------
// HTTP: each check of the proof, refused
// ---------------------------------------------------------------------

#[tokio::test]
async fn the_proof_must_be_signed_by_its_embedded_key() {
    let clock = TestClock::new();
    let server = Http::serve(auth(&clock, Dpop::required()).build().unwrap()).await;
    let key = proof_key(Algorithm::RS256);
    let other = proof_key_from(Algorithm::RS256, common::RSA2_PRIVATE);
    let token = token(&clock, Some(&key.jkt));
    let proof = Proof::for_token(&key, "GET", &server.htu("/movies/1"), clock.now(), &token);

    // Embeds `key` but signed by `other`.
    let response = server
        .dpop("/movies/1", &token, &proof.signed_by(&other))
        .await;
    assert_dpop_error(&response, "invalid_dpop_proof");
    // A signature with one bit flipped.
    let signed = proof.signed_by(&key);
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signed.rsplit('.').next().unwrap())
        .unwrap();
    bytes[10] ^= 1;
    let tampered = format!(
        "{}.{}",
        &signed[..signed.rfind('.').unwrap()],
        URL_SAFE_NO_PAD.encode(bytes)
    );
    let response = server.dpop("/movies/1", &token, &tampered).await;
    assert_dpop_error(&response, "invalid_dpop_proof");
    // The same proof, properly signed, passes.
    let proof = proof.claim("jti", json!("fresh"));
    body(
        server
            .dpop("/movies/1", &token, &proof.signed_by(&key))
            .await,
    )
    .await;
}

#[tokio::test]
async fn typ_must_be_dpop_jwt() {
    let setup = Setup::new(Dpop::required()).await;
    for typ in [json!("JWT"), json!("at+jwt"), json!("dpop"), json!(1)] {
        let proof = setup.proof("/movies/1").header("typ", typ.clone());
        assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    }
    let proof = setup.proof("/movies/1").without_header("typ");
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    // Media types compare case-insensitively and may say `application/`.
    let proof = setup
        .proof("/movies/1")
        .header("typ", json!("application/DPoP+JWT"));
    body(setup.get("/movies/1", &proof).await).await;
}

#[tokio::test]
async fn alg_must_be_asymmetric_and_accepted() {
    let clock = TestClock::new();
    let dpop = Dpop::required().algorithms([Algorithm::ES256, Algorithm::RS256]);
    let server = Http::serve(auth(&clock, dpop).build().unwrap()).await;
    let htu = server.htu("/movies/1");

    // An accepted algorithm passes.
    let es256 = proof_key(Algorithm::ES256);
    let token_es = token(&clock, Some(&es256.jkt));
    let proof = Proof::for_token(&es256, "GET", &htu, clock.now(), &token_es);
    body(
        server
            .dpop("/movies/1", &token_es, &proof.signed_by(&es256))
            .await,
    )
    .await;

    // EdDSA is not in this layer's list; the challenge names the list.
    let ed = proof_key(Algorithm::EdDSA);
    let token_ed = token(&clock, Some(&ed.jkt));
    let proof = Proof::for_token(&ed, "GET", &htu, clock.now(), &token_ed);
    let response = server
        .dpop("/movies/1", &token_ed, &proof.signed_by(&ed))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [
            r#"DPoP realm="api", error="invalid_dpop_proof", error_description="The DPoP proof is invalid", algs="ES256 RS256""#
        ]
    );

    // HS256 with a symmetric JWK: refused, however it is MACed.
    let hmac = ProofKey {
        alg: Algorithm::HS256,
        encoding: jsonwebtoken::EncodingKey::from_secret(SECRET),
        jwk: json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET) }),
        jkt: String::new(),
    };
    let proof = Proof::for_token(&hmac, "GET", &htu, clock.now(), &token_es);
    let response = server
        .dpop("/movies/1", &token_es, &proof.signed_by(&hmac))
        .await;
    assert_eq!(response.status(), 401);
    // `none` and an ES256 proof whose header claims RS256.
    let proof = Proof::for_token(&es256, "GET", &htu, clock.now(), &token_es);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(proof.header.clone().to_string().replace("ES256", "none")),
        URL_SAFE_NO_PAD.encode(proof.claims.to_string())
    );
    let response = server.dpop("/movies/1", &token_es, &unsigned).await;
    assert_dpop_error(&response, "invalid_dpop_proof");
    let lying = proof.header("alg", json!("RS256")).signed_by(&es256);
    let response = server.dpop("/movies/1", &token_es, &lying).await;
    assert_dpop_error(&response, "invalid_dpop_proof");
    // Symmetric algorithms cannot even be configured.
    let err = auth(&clock, Dpop::allowed().algorithms([Algorithm::HS256]))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("asymmetric"), "{err}");
}

#[tokio::test]
async fn the_jwk_must_be_a_public_key_fitting_alg() {
    let setup = Setup::new(Dpop::required()).await;
    let ec = &setup.key.jwk;
    // The private scalar of the fixture key does not matter: its presence
    // alone is refused.
    let with_private = |member: &str| {
        let mut jwk = ec.clone();
        jwk[member] = json!("AAAA");
        jwk
    };
    let p384 = proof_key(Algorithm::ES384).jwk;
    for jwk in [
        with_private("d"),
        with_private("p"),
        with_private("qi"),
        json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET) }),
        p384,
        json!({ "kty": "EC", "crv": "P-256", "x": ec["x"] }),
        json!("not an object"),
    ] {
        let proof = setup.proof("/movies/1").header("jwk", jwk.clone());
        let response = setup.get("/movies/1", &proof).await;
        assert_dpop_error(&response, "invalid_dpop_proof");
    }
    let proof = setup.proof("/movies/1").without_header("jwk");
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    // Members the key does not need (its own `alg`, `use`) are fine.
    let mut described = ec.clone();
    described["alg"] = json!("ES256");
    described["use"] = json!("sig");
    let proof = setup.proof("/movies/1").header("jwk", described);
    body(setup.get("/movies/1", &proof).await).await;
}

#[tokio::test]
async fn htm_must_be_the_requests_method() {
    let setup = Setup::new(Dpop::required()).await;
    for htm in ["POST", "get", "GET "] {
        let proof = setup.proof("/movies/1").claim("htm", json!(htm));
        assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    }
    // A POST with a POST proof passes.
    let proof = setup.proof("/movies/1").claim("htm", json!("POST"));
    let response = setup
        .server
        .send(
            "POST",
            "/movies/1",
            Some(format!("DPoP {}", setup.token)),
            &[proof.signed_by(&setup.key)],
        )
        .await;
    body(response).await;
}

#[tokio::test]
async fn htu_must_be_the_requests_uri_without_query_and_fragment() {
    let setup = Setup::new(Dpop::required()).await;
    let base = &setup.server.base;
    let port = base.rsplit(':').next().unwrap();

    // Equivalent forms, query and fragment ignored on both sides.
    for htu in [
        format!("{base}/movies/1"),
        format!("HTTP://127.0.0.1:{port}/movies/1"),
        format!("{base}/movies/%31"),
        format!("{base}/movies/./1"),
        format!("{base}/movies/1?page=2"),
        format!("{base}/movies/1#top"),
    ] {
        let proof = setup.proof("/movies/1").claim("htu", json!(htu));
        let response = setup.get("/movies/1?sort=title", &proof).await;
        assert_eq!(response.status(), 200, "{htu}");
    }
    // Another path, host, port or scheme; relative or junk.
    for htu in [
        format!("{base}/movies/2"),
        format!("{base}/movies/1/"),
        format!("http://localhost:{port}/movies/1"),
        "http://127.0.0.1:1/movies/1".to_owned(),
        format!("https://127.0.0.1:{port}/movies/1"),
        "/movies/1".to_owned(),
        "not a uri".to_owned(),
    ] {
        let proof = setup.proof("/movies/1").claim("htu", json!(htu));
        let response = setup.get("/movies/1", &proof).await;
        assert_dpop_error(&response, "invalid_dpop_proof");
    }
}

#[tokio::test]
async fn behind_a_proxy_htu_follows_the_external_base() {
    let dpop = Dpop::required()
        .external_base("https://api.example.com/v1")
        .unwrap();
    let setup = Setup::new(dpop).await;

    let public = setup
        .proof("/movies/1")
        .claim("htu", json!("https://API.example.com:443/v1/movies/1"));
    body(setup.get("/movies/1", &public).await).await;
    // What the server itself sees is not what clients call.
    let local = setup.proof("/movies/1");
    assert_dpop_error(&setup.get("/movies/1", &local).await, "invalid_dpop_proof");
    // A Host header naming the public host changes nothing either.
    let proof = setup
        .proof("/movies/1")
        .claim("htu", json!("http://api.example.com/v1/movies/1"));
    let response = setup
        .server
        .client
        .get(setup.server.htu("/movies/1"))
        .header("host", "api.example.com")
        .header("authorization", format!("DPoP {}", setup.token))
        .header("dpop", proof.signed_by(&setup.key))
        .send()
        .await
        .unwrap();
    assert_dpop_error(&response, "invalid_dpop_proof");
    assert!(Dpop::allowed().external_base("api.example.com").is_err());
}

#[tokio::test]
async fn iat_must_be_within_the_window() {
    let dpop = Dpop::required().proof_window(Duration::from_secs(60), Duration::from_secs(5));
    let setup = Setup::new(dpop).await;
    let now = setup.clock.now();

    for (iat, accepted) in [
        (now - 60, true),
        (now + 5, true),
        (now, true),
        (now - 61, false),
        (now + 6, false),
    ] {
        let proof = setup.proof("/movies/1").claim("iat", json!(iat));
        let response = setup.get("/movies/1", &proof).await;
        if accepted {
            assert_eq!(response.status(), 200, "iat {}", iat as i64 - now as i64);
        } else {
            assert_dpop_error(&response, "invalid_dpop_proof");
        }
    }
    // A proof goes stale as the clock moves.
    let proof = setup.proof("/movies/1");
    setup.clock.advance(61);
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    for bad in [json!("now"), json!(-1), json!(null)] {
        let proof = setup.proof("/movies/1").claim("iat", bad);
        assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    }
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let setup = Setup::new(Dpop::required()).await;
    let proof = setup.proof("/movies/1").signed_by(&setup.key);

    assert_eq!(
        setup
            .server
            .dpop("/movies/1", &setup.token, &proof)
            .await
            .status(),
        200
    );
    let replay = setup.server.dpop("/movies/1", &setup.token, &proof).await;
    assert_dpop_error(&replay, "invalid_dpop_proof");
    // Still refused later in the window; and the `jti` counts per key,
    // not per signature: the same claims signed again are a replay too.
    setup.clock.advance(30);
    let proof = setup.proof("/movies/1");
    let jti = proof.claims["jti"].clone();
    assert_eq!(setup.get("/movies/1", &proof).await.status(), 200);
    let again = setup.proof("/movies/1").claim("jti", jti.clone());
    assert_dpop_error(&setup.get("/movies/1", &again).await, "invalid_dpop_proof");
    // Another key may use the same `jti`.
    let other = proof_key(Algorithm::EdDSA);
    let token = token(&setup.clock, Some(&other.jkt));
    let theirs = Proof::for_token(
        &other,
        "GET",
        &setup.server.htu("/movies/1"),
        setup.clock.now(),
        &token,
    )
    .claim("jti", jti);
    let response = setup
        .server
        .dpop("/movies/1", &token, &theirs.signed_by(&other))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn ath_must_hash_the_access_token() {
    let setup = Setup::new(Dpop::required()).await;
    let other_token = token(&setup.clock, None);

    let proof = setup.proof("/movies/1").without_claim("ath");
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    let proof = setup
        .proof("/movies/1")
        .claim("ath", json!(access_token_hash(&other_token)));
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
    let proof = setup.proof("/movies/1").claim("ath", json!(7));
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
}

#[tokio::test]
async fn the_tokens_cnf_jkt_must_be_the_proof_keys_thumbprint() {
    let setup = Setup::new(Dpop::required()).await;
    let other = proof_key_from(Algorithm::RS256, common::RSA2_PRIVATE);

    // A token bound to another key: invalid_token, per RFC 9449 §7.1.
    let foreign = token(&setup.clock, Some(&other.jkt));
    let proof = Proof::for_token(
        &setup.key,
        "GET",
        &setup.server.htu("/movies/1"),
        setup.clock.now(),
        &foreign,
    );
    let response = setup
        .server
        .dpop("/movies/1", &foreign, &proof.signed_by(&setup.key))
        .await;
    assert_dpop_error(&response, "invalid_token");
    // A token bound to nothing, sent with the DPoP scheme.
    let unbound = token(&setup.clock, None);
    let proof = Proof::for_token(
        &setup.key,
        "GET",
        &setup.server.htu("/movies/1"),
        setup.clock.now(),
        &unbound,
    );
    let response = setup
        .server
        .dpop("/movies/1", &unbound, &proof.signed_by(&setup.key))
        .await;
    assert_dpop_error(&response, "invalid_token");
    // A bad token with a good proof: invalid_token in the DPoP challenge.
    let response = setup
        .server
        .dpop(
            "/movies/1",
            "not.a.token",
            &setup.proof("/movies/1").signed_by(&setup.key),
        )
        .await;
    assert_dpop_error(&response, "invalid_token");
}

#[tokio::test]
async fn exactly_one_dpop_header() {
    let setup = Setup::new(Dpop::required()).await;
    let auth = Some(format!("DPoP {}", setup.token));

    let none = setup
        .server
        .send("GET", "/movies/1", auth.clone(), &[])
        .await;
    assert_dpop_error(&none, "invalid_dpop_proof");
    let two = [
        setup.proof("/movies/1").signed_by(&setup.key),
        setup.proof("/movies/1").signed_by(&setup.key),
    ];
    let response = setup
        .server
        .send("GET", "/movies/1", auth.clone(), &two)
        .await;
    assert_dpop_error(&response, "invalid_dpop_proof");
    let one = setup.server.send("GET", "/movies/1", auth, &two[..1]).await;
    assert_eq!(one.status(), 200);
}

#[tokio::test]
async fn proofs_are_parsed_strictly() {
    let setup = Setup::new(Dpop::required()).await;
    let proof = setup.proof("/movies/1");
    let header = proof.header.to_string();
    let claims = proof.claims.to_string();

    let mut cases = Vec::new();
    // Duplicate members, in the header, the JWK and the claims.
    let mut dup = proof.clone();
    dup.raw_header = Some(header.replacen('{', r#"{"typ":"dpop+jwt","#, 1));
    cases.push(dup);
    let mut dup = proof.clone();
    dup.raw_header = Some(header.replacen(r#""kty":"#, r#""kty":"EC","kty":"#, 1));
    cases.push(dup);
    let mut dup = proof.clone();
    dup.raw_claims = Some(claims.replacen('{', r#"{"htm":"GET","#, 1));
    cases.push(dup);
    // `crit`, a missing `jti`, an empty one.
    cases.push(proof.clone().header("crit", json!(["exp"])));
    cases.push(proof.clone().without_claim("jti"));
    cases.push(proof.clone().claim("jti", json!("")));
    for case in cases {
        let response = setup.get("/movies/1", &case).await;
        assert_dpop_error(&response, "invalid_dpop_proof");
    }
    // Oversized: refused before any decoding.
    let big = proof.claim("padding", json!("x".repeat(9000)));
    assert_dpop_error(&setup.get("/movies/1", &big).await, "invalid_dpop_proof");
    for junk in ["", "a.b", "a.b.c", "e30.e30.", "…"] {
        let response = setup.server.dpop("/movies/1", &setup.token, junk).await;
        assert!(
            response.status() == 401 || response.status() == 400,
            "{junk}"
        );
    }
}

// ---------------------------------------------------------------------
// HTTP: schemes, modes and challenges
// ---------------------------------------------------------------------

#[tokio::test]
async fn allowed_mode_takes_unbound_bearer_tokens_and_refuses_bound_ones() {
    let setup = Setup::new(Dpop::allowed()).await;
    let unbound = token(&setup.clock, None);

    // Unbound Bearer: accepted, no proof in the extensions.
    let response = setup
        .server
        .send("GET", "/movies/1", Some(format!("Bearer {unbound}")), &[])
        .await;
    let seen = body(response).await;
    assert_eq!(seen["jkt"], Value::Null);
    // Bound Bearer (even with a valid proof next to it): refused, the
    // error in the Bearer challenge, the DPoP one beside it.
    let proof = setup.proof("/movies/1").signed_by(&setup.key);
    let response = setup
        .server
        .send(
            "GET",
            "/movies/1",
            Some(format!("Bearer {}", setup.token)),
            &[proof],
        )
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [
            r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid or has expired""#.to_owned(),
            format!(r#"DPoP realm="api", {ALGS}"#),
        ]
    );
    // The DPoP scheme works alongside.
    let proof = setup.proof("/movies/1");
    assert_eq!(setup.get("/movies/1", &proof).await.status(), 200);
    // No credentials: both challenges, no error.
    let response = setup.server.send("GET", "/movies/1", None, &[]).await;
    assert_eq!(
        challenges(&response),
        [
            r#"Bearer realm="api""#.to_owned(),
            format!(r#"DPoP realm="api", {ALGS}"#)
        ]
    );
    // A bad proof: the error in the DPoP challenge, a bare Bearer one.
    let proof = setup.proof("/movies/1").claim("htm", json!("PUT"));
    let response = setup.get("/movies/1", &proof).await;
    assert_eq!(
        challenges(&response),
        [
            r#"Bearer realm="api""#.to_owned(),
            format!(
                r#"DPoP realm="api", error="invalid_dpop_proof", error_description="The DPoP proof is invalid", {ALGS}"#
            ),
        ]
    );
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn required_mode_refuses_the_bearer_scheme() {
    let setup = Setup::new(Dpop::required()).await;
    let unbound = token(&setup.clock, None);

    let response = setup
        .server
        .send("GET", "/movies/1", Some(format!("Bearer {unbound}")), &[])
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!(r#"DPoP realm="api", {ALGS}"#)]
    );
    let json: Value = response.json().await.unwrap();
    assert_eq!(
        json["error_description"],
        "A DPoP-bound access token is required"
    );
    // Neither is a bound token accepted as Bearer.
    let response = setup
        .server
        .send(
            "GET",
            "/movies/1",
            Some(format!("Bearer {}", setup.token)),
            &[],
        )
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenges(&response),
        [format!(r#"DPoP realm="api", {ALGS}"#)]
    );
}

#[tokio::test]
async fn a_layer_without_dpop_knows_nothing_of_it() {
    let clock = TestClock::new();
    let layer = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(clock.source())
        .build()
        .unwrap();
    let server = Http::serve(layer).await;
    let key = proof_key(Algorithm::ES256);
    let bound = token(&clock, Some(&key.jkt));

    // The DPoP scheme is an unknown scheme; `cnf` is not looked at.
    let response = server
        .send("GET", "/movies/1", Some(format!("DPoP {bound}")), &[])
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(challenges(&response), [r#"Bearer realm="api""#]);
    let response = server
        .send("GET", "/movies/1", Some(format!("Bearer {bound}")), &[])
        .await;
    assert_eq!(body(response).await["jkt"], Value::Null);
}

#[tokio::test]
async fn a_missing_scope_is_403_in_the_dpop_scheme_after_the_proof_checks() {
    let setup =
        Setup::with(|clock| auth(clock, Dpop::allowed()).require_scope("movies:write")).await;

    // A bad proof is 401 before the scope is answered.
    let bad = setup.proof("/movies/1").claim("htm", json!("POST"));
    assert_dpop_error(&setup.get("/movies/1", &bad).await, "invalid_dpop_proof");
    let response = setup.get("/movies/1", &setup.proof("/movies/1")).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        challenges(&response),
        [
            r#"Bearer realm="api""#.to_owned(),
            format!(
                r#"DPoP realm="api", error="insufficient_scope", error_description="The access token lacks the required scope", scope="movies:write", {ALGS}"#
            ),
        ]
    );
}

// ---------------------------------------------------------------------
// HTTP: server nonces
// ---------------------------------------------------------------------

const NONCE_SECRET: &[u8] = b"nonce-secret-for-the-dpop-tests-0123456789";

#[tokio::test]
async fn server_nonces_are_asked_for_rotated_and_shared_by_instances() {
    let nonces = || Nonces::new(NONCE_SECRET, Duration::from_secs(300)).unwrap();
    let setup = Setup::new(Dpop::required().nonces(nonces())).await;

    // Without a nonce: 401 use_dpop_nonce and a fresh one.
    let response = setup.get("/movies/1", &setup.proof("/movies/1")).await;
    assert_dpop_error(&response, "use_dpop_nonce");
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        nonce,
        nonces().current_at(UNIX_EPOCH + Duration::from_secs(setup.clock.now()))
    );
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "use_dpop_nonce");
    // With it: accepted, nothing new to hand out.
    let proof = setup.proof("/movies/1").claim("nonce", json!(nonce));
    let response = setup.get("/movies/1", &proof).await;
    assert!(response.headers().get("dpop-nonce").is_none());
    body(response).await;
    // One rotation later it still works, and the answer hands out the
    // new one.
    setup.clock.advance(300);
    let proof = setup.proof("/movies/1").claim("nonce", json!(nonce));
    let response = setup.get("/movies/1", &proof).await;
    let newer = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(newer, nonce);
    body(response).await;
    // Two rotations later it is refused, with the current one.
    setup.clock.advance(300);
    let proof = setup.proof("/movies/1").claim("nonce", json!(nonce));
    let response = setup.get("/movies/1", &proof).await;
    assert_dpop_error(&response, "use_dpop_nonce");
    let current = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(current, newer);
    // Forged nonces, or ones of another secret: refused the same way.
    let other = Nonces::new(
        b"another-nonce-secret-0123456789abcdef",
        Duration::from_secs(300),
    )
    .unwrap()
    .current_at(UNIX_EPOCH + Duration::from_secs(setup.clock.now()));
    for forged in [json!(other), json!("AAAAAAAAAAAAAAAAAAAAAAAA"), json!(5)] {
        let proof = setup.proof("/movies/1").claim("nonce", forged.clone());
        let response = setup.get("/movies/1", &proof).await;
        assert_eq!(response.status(), 401, "{forged}");
    }
    // Another instance with the same secret takes this one's nonce.
    let twin = Http::serve(
        auth(&setup.clock, Dpop::required().nonces(nonces()))
            .build()
            .unwrap(),
    )
    .await;
    let proof = Proof::for_token(
        &setup.key,
        "GET",
        &twin.htu("/movies/1"),
        setup.clock.now(),
        &setup.token,
    )
    .claim("nonce", json!(current));
    let response = twin
        .dpop("/movies/1", &setup.token, &proof.signed_by(&setup.key))
        .await;
    body(response).await;
}

// ---------------------------------------------------------------------
// HTTP: replay stores, the cache, revocation
// ---------------------------------------------------------------------

/// A replay store answering only through futures (as a network store
/// does), or failing.
#[derive(Clone)]
enum AsyncStore {
    Memory(MemoryReplayStore),
    Down,
}

impl ReplayStore for AsyncStore {
    fn check_and_record(&self, key: &str, now: SystemTime, expires: SystemTime) -> ReplayFuture {
        let answer = match self {
            AsyncStore::Memory(store) => store.check_and_record_now(key, now, expires).unwrap(),
            AsyncStore::Down => Err::<bool, BoxError>("replay store unreachable".into()),
        };
        Box::pin(async move {
            tokio::task::yield_now().await;
            answer
        })
    }
}

#[tokio::test]
async fn a_store_answering_later_still_refuses_replays() {
    let store = AsyncStore::Memory(MemoryReplayStore::new());
    let setup = Setup::new(Dpop::required().replay_store(store)).await;
    let proof = setup.proof("/movies/1");

    assert_eq!(setup.get("/movies/1", &proof).await.status(), 200);
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
}

#[tokio::test]
async fn an_unreachable_replay_store_fails_closed() {
    let setup = Setup::new(Dpop::required().replay_store(AsyncStore::Down)).await;

    let response = setup.get("/movies/1", &setup.proof("/movies/1")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.headers().get("www-authenticate").is_none());
}

#[tokio::test]
async fn a_full_memory_store_refuses_new_proofs_rather_than_forget() {
    let store = MemoryReplayStore::with_capacity(16);
    let setup = Setup::new(Dpop::required().replay_store(store.clone())).await;

    let mut statuses = Vec::new();
    for _ in 0..64 {
        statuses.push(
            setup
                .get("/movies/1", &setup.proof("/movies/1"))
                .await
                .status(),
        );
    }
    assert!(statuses.contains(&StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        store.len()
    );
    // Once their proofs are out of the window, there is room again.
    setup.clock.advance(61);
    assert_eq!(
        setup
            .get("/movies/1", &setup.proof("/movies/1"))
            .await
            .status(),
        200
    );
}

#[cfg(feature = "cache")]
#[tokio::test]
async fn a_cached_token_still_needs_a_fresh_proof_by_its_key() {
    use tower_jwt_auth::cache::TokenCache;
    let cache = TokenCache::new();
    let setup = Setup::with(|clock| auth(clock, Dpop::required()).cache(cache.clone())).await;

    let proof = setup.proof("/movies/1").signed_by(&setup.key);
    assert_eq!(
        setup
            .server
            .dpop("/movies/1", &setup.token, &proof)
            .await
            .status(),
        200
    );
    // A hit: the replayed proof is still refused, a fresh one accepted,
    // and the binding still checked.
    let replay = setup.server.dpop("/movies/1", &setup.token, &proof).await;
    assert_dpop_error(&replay, "invalid_dpop_proof");
    assert_eq!(
        setup
            .get("/movies/1", &setup.proof("/movies/1"))
            .await
            .status(),
        200
    );
    let other = proof_key(Algorithm::EdDSA);
    let theirs = Proof::for_token(
        &other,
        "GET",
        &setup.server.htu("/movies/1"),
        setup.clock.now(),
        &setup.token,
    );
    let response = setup
        .server
        .dpop("/movies/1", &setup.token, &theirs.signed_by(&other))
        .await;
    assert_dpop_error(&response, "invalid_token");
    // Sent as Bearer from the cache: still a bound token.
    let response = setup
        .server
        .send(
            "GET",
            "/movies/1",
            Some(format!("Bearer {}", setup.token)),
            &[],
        )
        .await;
    assert_eq!(response.status(), 401);
    assert!(cache.stats().hits >= 3, "{:?}", cache.stats());
}

/// A revocation store answering through a future: revokes `sub` user-2.
struct Revoked;

impl RevocationCheck for Revoked {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        let revoked = claims.sub.as_deref() == Some("user-2");
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(revoked)
        })
    }
}

#[tokio::test]
async fn revocation_is_answered_before_the_proof_is_recorded() {
    let store = MemoryReplayStore::new();
    let setup = Setup::with(|clock| {
        auth(clock, Dpop::required().replay_store(store.clone())).revocation(Revoked)
    })
    .await;
    let now = setup.clock.now();
    let revoked = hs256(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-2",
        "iat": now, "exp": now + 3600, "cnf": { "jkt": setup.key.jkt },
    }));
    let proof = Proof::for_token(
        &setup.key,
        "GET",
        &setup.server.htu("/movies/1"),
        setup.clock.now(),
        &revoked,
    );
    let response = setup
        .server
        .dpop("/movies/1", &revoked, &proof.signed_by(&setup.key))
        .await;
    assert_dpop_error(&response, "invalid_token");
    assert!(store.is_empty(), "a revoked token's proof was recorded");
    // A live token: revocation then replay, both through the future.
    let proof = setup.proof("/movies/1");
    assert_eq!(setup.get("/movies/1", &proof).await.status(), 200);
    assert_eq!(store.len(), 1);
    assert_dpop_error(&setup.get("/movies/1", &proof).await, "invalid_dpop_proof");
}

// ---------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------

struct Grpc {
    channel: Channel,
    /// `http://127.0.0.1:port/grpc.health.v1.Health/Check`
    htu: String,
    /// The DPoP thumbprint the health service saw, per call (None for
    /// Bearer calls).
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Grpc {
    async fn serve(auth: JwtAuthLayer<User>) -> Grpc {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = {
            let seen = Arc::clone(&seen);
            MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
                if request.extensions().get::<User>().is_some() {
                    let jkt = request
                        .extensions()
                        .get::<DpopProof>()
                        .map(|proof| proof.jkt.clone());
                    seen.lock().unwrap().push(jkt);
                }
                request
            })
        };
        let (_reporter, health) = tonic_health::server::health_reporter();
        let server = Server::builder()
            .layer(auth)
            .layer(record)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener));
        tokio::spawn(async move { server.await.unwrap() });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Grpc {
            channel,
            htu: format!("http://{addr}/grpc.health.v1.Health/Check"),
            seen,
        }
    }

    async fn check(
        &self,
        authorization: &str,
        proofs: &[String],
    ) -> Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, Status> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().unwrap());
        for proof in proofs {
            request
                .metadata_mut()
                .append("dpop", proof.parse().unwrap());
        }
        HealthClient::new(self.channel.clone()).check(request).await
    }

    fn seen(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

/// A gRPC server with DPoP, a key, and a token bound to it.
async fn grpc_setup(dpop: Dpop) -> (TestClock, Grpc, ProofKey, String) {
    let clock = TestClock::new();
    let grpc = Grpc::serve(auth(&clock, dpop).build().unwrap()).await;
    let key = proof_key(Algorithm::ES256);
    let token = token(&clock, Some(&key.jkt));
    (clock, grpc, key, token)
}

fn code<T>(result: Result<T, Status>) -> Code {
    result
        .err()
        .expect("the call should have been refused")
        .code()
}

#[tokio::test]
async fn grpc_a_valid_proof_reaches_the_service_with_the_thumbprint() {
    let (clock, grpc, key, token) = grpc_setup(Dpop::allowed()).await;
    let proof = Proof::for_token(&key, "POST", &grpc.htu, clock.now(), &token);

    let response = grpc
        .check(&format!("DPoP {token}"), &[proof.signed_by(&key)])
        .await
        .unwrap();
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    // An unbound Bearer token too, without a proof.
    let unbound = crate::token(&clock, None);
    grpc.check(&format!("Bearer {unbound}"), &[]).await.unwrap();
    assert_eq!(grpc.seen(), [Some(key.jkt.clone()), None]);
}

#[tokio::test]
async fn grpc_every_failed_check_is_unauthenticated() {
    let (clock, grpc, key, token) = grpc_setup(Dpop::allowed()).await;
    let now = clock.now();
    let valid = || Proof::for_token(&key, "POST", &grpc.htu, now, &token);
    let authorization = format!("DPoP {token}");
    let other = proof_key_from(Algorithm::RS256, common::RSA2_PRIVATE);

    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no proof", vec![]),
        (
            "two proofs",
            vec![valid().signed_by(&key), valid().signed_by(&key)],
        ),
        ("signed by another key", vec![valid().signed_by(&other)]),
        (
            "typ",
            vec![valid().header("typ", json!("JWT")).signed_by(&key)],
        ),
        (
            "htm",
            vec![valid().claim("htm", json!("GET")).signed_by(&key)],
        ),
        (
            "htu",
            vec![
                valid()
                    .claim("htu", json!(grpc.htu.replace("Check", "Watch")))
                    .signed_by(&key),
            ],
        ),
        (
            "iat",
            vec![valid().claim("iat", json!(now - 3600)).signed_by(&key)],
        ),
        ("ath", vec![valid().without_claim("ath").signed_by(&key)]),
        (
            "private jwk",
            vec![{
                let mut jwk = key.jwk.clone();
                jwk["d"] = json!("AAAA");
                valid().header("jwk", jwk).signed_by(&key)
            }],
        ),
    ];
    for (case, proofs) in cases {
        let status = grpc.check(&authorization, &proofs).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
        assert_eq!(status.message(), "The DPoP proof is invalid", "{case}");
    }
    // Replayed: accepted once, then refused.
    let proof = valid().signed_by(&key);
    grpc.check(&authorization, std::slice::from_ref(&proof))
        .await
        .unwrap();
    assert_eq!(
        code(grpc.check(&authorization, &[proof]).await),
        Code::Unauthenticated
    );
    // Bound token sent as Bearer; a proof for another key's token.
    assert_eq!(
        code(grpc.check(&format!("Bearer {token}"), &[]).await),
        Code::Unauthenticated
    );
    let foreign = crate::token(&clock, Some(&other.jkt));
    let proof = Proof::for_token(&key, "POST", &grpc.htu, now, &foreign).signed_by(&key);
    let status = grpc
        .check(&format!("DPoP {foreign}"), &[proof])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "The access token is invalid or has expired"
    );
    assert_eq!(grpc.seen().len(), 1);
}

#[tokio::test]
async fn grpc_nonces_travel_in_metadata() {
    let nonces = Nonces::new(NONCE_SECRET, Duration::from_secs(60)).unwrap();
    let (clock, grpc, key, token) = grpc_setup(Dpop::required().nonces(nonces)).await;
    let authorization = format!("DPoP {token}");

    let proof = Proof::for_token(&key, "POST", &grpc.htu, clock.now(), &token);
    let status = grpc
        .check(&authorization, &[proof.signed_by(&key)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "Resource server requires nonce in DPoP proof"
    );
    let nonce = status
        .metadata()
        .get("dpop-nonce")
        .unwrap()
        .to_str()
        .unwrap();
    let proof =
        Proof::for_token(&key, "POST", &grpc.htu, clock.now(), &token).claim("nonce", json!(nonce));
    grpc.check(&authorization, &[proof.signed_by(&key)])
        .await
        .unwrap();
}

#[tokio::test]
async fn grpc_an_unreachable_replay_store_is_unavailable() {
    let (clock, grpc, key, token) =
        grpc_setup(Dpop::required().replay_store(AsyncStore::Down)).await;
    let proof = Proof::for_token(&key, "POST", &grpc.htu, clock.now(), &token);

    let status = grpc
        .check(&format!("DPoP {token}"), &[proof.signed_by(&key)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(grpc.seen().is_empty());
}

#[tokio::test]
async fn grpc_required_mode_refuses_bearer_tokens() {
    let (clock, grpc, _key, _token) = grpc_setup(Dpop::required()).await;
    let unbound = crate::token(&clock, None);

    let status = grpc
        .check(&format!("Bearer {unbound}"), &[])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "A DPoP-bound access token is required");
}

// ---------------------------------------------------------------------
// ProofVerifier: what an issuer's token endpoint runs
// ---------------------------------------------------------------------

#[tokio::test]
async fn the_proof_verifier_names_each_failed_check() {
    use http::{HeaderMap, HeaderValue, Method, Uri};
    use tower_jwt_auth::Reason;
    use tower_jwt_auth::dpop::ProofVerifier;

    let clock = TestClock::new();
    let now = clock.now();
    let verifier = ProofVerifier::new(
        Dpop::required()
            .external_base("https://auth.example.com")
            .unwrap()
            .clock(clock.source()),
    )
    .unwrap();
    let key = proof_key(Algorithm::ES256);
    let htu = "https://auth.example.com/auth/token";
    let uri = Uri::from_static("/auth/token?grant_type=refresh_token");
    let token_request = || Proof::new(&key, "POST", htu, now);
    let verify = |proofs: Vec<String>, token: Option<String>| {
        let verifier = verifier.clone();
        let uri = uri.clone();
        async move {
            let mut headers = HeaderMap::new();
            for proof in proofs {
                headers.append("dpop", HeaderValue::from_str(&proof).unwrap());
            }
            verifier
                .verify(&Method::POST, &uri, &headers, token.as_deref())
                .await
        }
    };

    // A token request's proof: no `ath`, no access token.
    let proof = token_request();
    let verified = verify(vec![proof.signed_by(&key)], None).await.unwrap();
    assert_eq!(verified.jkt, key.jkt);
    assert_eq!(verified.jti, proof.claims["jti"].as_str().unwrap());
    assert_eq!(verified.iat, now);
    let replayed = verify(vec![proof.signed_by(&key)], None).await.unwrap_err();
    assert_eq!(replayed.reason(), Some(Reason::ProofReplayed));
    assert_eq!(replayed.error_code(), "invalid_dpop_proof");

    let other = proof_key_from(Algorithm::RS256, common::RSA2_PRIVATE);
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    let access = token(&clock, Some(&key.jkt));
    for (proofs, access_token, reason) in [
        (vec![], None, Reason::ProofMissing),
        (
            vec![
                token_request().signed_by(&key),
                token_request().signed_by(&key),
            ],
            None,
            Reason::ProofRepeated,
        ),
        (
            vec![token_request().signed_by(&other)],
            None,
            Reason::Signature,
        ),
        (
            vec![token_request().header("typ", json!("jwt")).signed_by(&key)],
            None,
            Reason::ProofType,
        ),
        (
            vec![
                token_request()
                    .header("alg", json!("HS256"))
                    .signed_by(&key),
            ],
            None,
            Reason::Algorithm,
        ),
        (
            vec![token_request().header("jwk", private).signed_by(&key)],
            None,
            Reason::ProofKey,
        ),
        (
            vec![token_request().claim("htm", json!("GET")).signed_by(&key)],
            None,
            Reason::ProofMethod,
        ),
        (
            vec![
                token_request()
                    .claim("htu", json!("https://auth.example.com/auth/login"))
                    .signed_by(&key),
            ],
            None,
            Reason::ProofUri,
        ),
        (
            vec![
                token_request()
                    .claim("iat", json!(now - 61))
                    .signed_by(&key),
            ],
            None,
            Reason::ProofIssuedAt,
        ),
        (
            vec![
                token_request()
                    .claim("iat", json!(now + 11))
                    .signed_by(&key),
            ],
            None,
            Reason::ProofIssuedAt,
        ),
        (
            vec![token_request().without_claim("htu").signed_by(&key)],
            None,
            Reason::ProofClaims,
        ),
        // `ath` exactly when an access token is given.
        (
            vec![token_request().signed_by(&key)],
            Some(access.clone()),
            Reason::ProofClaims,
        ),
        (
            vec![Proof::for_token(&key, "POST", htu, now, &access).signed_by(&key)],
            None,
            Reason::ProofClaims,
        ),
        (
            vec![Proof::for_token(&key, "POST", htu, now, &access).signed_by(&key)],
            Some(format!("{access}x")),
            Reason::ProofTokenHash,
        ),
        (vec!["a.b.c".to_owned()], None, Reason::Malformed),
    ] {
        let err = verify(proofs, access_token).await.unwrap_err();
        assert_eq!(err.reason(), Some(reason), "{err}");
        assert_eq!(err.error_code(), "invalid_dpop_proof");
        assert_eq!(err.fresh_nonce(), None);
    }
    // With an access token and its `ath`: accepted.
    let proof = Proof::for_token(&key, "POST", htu, now, &access);
    verify(vec![proof.signed_by(&key)], Some(access))
        .await
        .unwrap();

    // Nonces: `use_dpop_nonce` with a fresh one to send back.
    let nonces = Nonces::new(NONCE_SECRET, Duration::from_secs(60)).unwrap();
    let verifier = ProofVerifier::new(
        Dpop::required()
            .external_base("https://auth.example.com")
            .unwrap()
            .nonces(nonces.clone())
            .clock(clock.source()),
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "dpop",
        HeaderValue::from_str(&token_request().signed_by(&key)).unwrap(),
    );
    let err = verifier
        .verify(&Method::POST, &uri, &headers, None)
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), "use_dpop_nonce");
    let nonce = err.fresh_nonce().unwrap();
    assert!(nonces.is_valid_at(nonce, UNIX_EPOCH + Duration::from_secs(now)));
    headers.insert(
        "dpop",
        HeaderValue::from_str(&token_request().claim("nonce", json!(nonce)).signed_by(&key))
            .unwrap(),
    );
    let verified = verifier
        .verify(&Method::POST, &uri, &headers, None)
        .await
        .unwrap();
    assert_eq!(verified.next_nonce(), None);
}
