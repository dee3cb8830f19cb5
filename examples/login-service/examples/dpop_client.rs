//! A DPoP client for the login service, without curl (RFC 9449).
//!
//! Against a running service (`cargo run -p login-service`):
//!
//! ```sh
//! cargo run -p login-service --example dpop_client -- http://127.0.0.1:3000
//! ```
//!
//! It generates an Ed25519 key, registers `dpop-demo@example.com` (or
//! finds it registered), logs in with a DPoP proof and gets a
//! `token_type: DPoP` access token bound to the key (`cnf.jkt`), calls
//! `GET /auth/me` with the token and a fresh proof, then sends that same
//! proof again and shows the service refusing the replay. Email and
//! password can follow the URL.
//!
//! [`DpopKey`] is the whole of what a client needs: one key, a new proof
//! (a small JWT signed by the key) for every request. `tests/dpop.rs`
//! runs [`walkthrough`] against a started service and uses [`DpopKey`]
//! for its own proofs.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client's DPoP key pair and the proofs it signs.
pub struct DpopKey {
    alg: jsonwebtoken::Algorithm,
    key: jsonwebtoken::EncodingKey,
    /// The public key as the proofs' `jwk` header carries it.
    jwk: Value,
}

impl DpopKey {
    /// A new Ed25519 key (`alg` EdDSA).
    pub fn generate() -> Result<Self, BoxError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        Ok(Self {
            alg: jsonwebtoken::Algorithm::EdDSA,
            key: jsonwebtoken::EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()),
            }),
        })
    }

    /// A new P-256 key (`alg` ES256).
    pub fn generate_es256() -> Result<Self, BoxError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        // The uncompressed point: 0x04, then x and y.
        let point = pair.public_key_raw();
        Ok(Self {
            alg: jsonwebtoken::Algorithm::ES256,
            key: jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        })
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The RFC 7638 SHA-256 thumbprint: what the service puts in the
    /// tokens' `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        tower_jwt_auth::dpop::thumbprint(&self.jwk).expect("a generated public JWK")
    }

    /// A proof for one request: `method` and `url` as sent, and the access
    /// token it goes with (none at login and refresh).
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        self.sign(&self.header(), &proof_claims(method, url, access_token))
    }

    /// The proof header: `typ` `dpop+jwt`, the algorithm and the public key.
    pub fn header(&self) -> Value {
        let alg = match self.alg {
            jsonwebtoken::Algorithm::ES256 => "ES256",
            _ => "EdDSA",
        };
        json!({"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk})
    }

    /// Signs any header and claims with this key, as a compact JWS.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).expect("sign");
        format!("{input}.{signature}")
    }
}

/// The claims of a proof: a unique `jti`, `htm`, `htu`, `iat` now, and
/// `ath` (base64url SHA-256 of the access token) when there is one.
pub fn proof_claims(method: &str, url: &str, access_token: Option<&str>) -> Value {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": url,
        "iat": iat,
    });
    if let Some(token) = access_token {
        claims["ath"] = json!(tower_jwt_auth::dpop::access_token_hash(token));
    }
    claims
}

/// What the walkthrough saw.
#[derive(Debug)]
pub struct Walkthrough {
    /// `DPoP`.
    pub token_type: String,
    /// The key's thumbprint, and the `cnf.jkt` of the issued token.
    pub thumbprint: String,
    pub cnf_jkt: String,
    /// `GET /auth/me` with the token and a fresh proof.
    pub me_status: u16,
    pub me_email: String,
    /// The same request with the same proof again.
    pub replay_status: u16,
    pub replay_challenge: String,
}

/// Registers (or finds) `email`, logs in with a DPoP proof, calls
/// `/auth/me` with the bound token, then replays that call's proof;
/// narrates each step to `out`.
///
/// # Errors
/// When the service cannot be reached or answers something unexpected.
pub async fn walkthrough(
    base: &str,
    email: &str,
    password: &str,
    out: &mut impl std::io::Write,
) -> Result<Walkthrough, BoxError> {
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::builder().no_proxy().build()?;
    let key = DpopKey::generate()?;
    writeln!(out, "DPoP key: Ed25519, thumbprint {}", key.thumbprint())?;

    let registered = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    writeln!(out, "POST /auth/register -> {}", registered.status())?;

    let login_url = format!("{base}/auth/login");
    let login = http
        .post(&login_url)
        .header("DPoP", key.proof("POST", &login_url, None))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    let status = login.status();
    let tokens: Value = login.json().await?;
    writeln!(out, "POST /auth/login with a DPoP proof -> {status}")?;
    if !status.is_success() {
        return Err(format!("login failed: {tokens}").into());
    }
    let token_type = tokens["token_type"].as_str().unwrap_or_default().to_owned();
    let access_token = tokens["access_token"].as_str().unwrap_or_default();
    let cnf_jkt = claims_of(access_token)?["cnf"]["jkt"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    writeln!(out, "  token_type {token_type}, cnf.jkt {cnf_jkt}")?;

    let me_url = format!("{base}/auth/me");
    let proof = key.proof("GET", &me_url, Some(access_token));
    let me = http
        .get(&me_url)
        .header("Authorization", format!("DPoP {access_token}"))
        .header("DPoP", &proof)
        .send()
        .await?;
    let me_status = me.status().as_u16();
    let claims: Value = me.json().await.unwrap_or(Value::Null);
    let me_email = claims["email"].as_str().unwrap_or_default().to_owned();
    writeln!(
        out,
        "GET /auth/me with the token and a fresh proof -> {me_status} ({me_email})"
    )?;

    let replay = http
        .get(&me_url)
        .header("Authorization", format!("DPoP {access_token}"))
        .header("DPoP", &proof)
        .send()
        .await?;
    let replay_status = replay.status().as_u16();
    // The protected routes offer both schemes: one challenge each.
    let replay_challenge = replay
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|challenge| challenge.starts_with("DPoP"))
        .unwrap_or_default()
        .to_owned();
    writeln!(
        out,
        "GET /auth/me with the same proof again -> {replay_status}\n  WWW-Authenticate: {replay_challenge}"
    )?;

    Ok(Walkthrough {
        token_type,
        thumbprint: key.thumbprint(),
        cnf_jkt,
        me_status,
        me_email,
        replay_status,
        replay_challenge,
    })
}

/// The claims of a compact JWT, unverified (the service verified them).
fn claims_of(token: &str) -> Result<Value, BoxError> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
    let email = args
        .next()
        .unwrap_or_else(|| "dpop-demo@example.com".to_owned());
    let password = args
        .next()
        .unwrap_or_else(|| "correct horse battery staple".to_owned());
    match walkthrough(&base, &email, &password, &mut std::io::stdout()).await {
        Ok(seen) if seen.me_status == 200 && seen.replay_status == 401 => {
            println!("the bound token worked with its proof; the replayed proof was refused");
            std::process::ExitCode::SUCCESS
        }
        Ok(seen) => {
            eprintln!("dpop_client: unexpected answers: {seen:?}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("dpop_client: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
