//! JWK parsing with the checks jsonwebtoken's `DecodingKey::from_jwk` leaves
//! out: a JWK's own `alg`, `use` and `key_ops` are enforced (RFC 7517 §4),
//! base64url is strict, and key sizes are checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};

use super::{min_hmac_secret_len, rsa};
use crate::alg::Algorithm;
use crate::error::Error;

/// How JWKs without an `alg` member are pinned, and which key types a set
/// may contribute.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JwkPolicy {
    /// Algorithm for RSA keys without `alg`. Default `Some(RS256)`, what
    /// identity providers that omit `alg` sign with; `None` skips such keys.
    pub rsa_default: Option<Algorithm>,
    /// Algorithm for `oct` (HMAC) keys without `alg`. Default `Some(HS256)`.
    pub oct_default: Option<Algorithm>,
    /// Whether symmetric (`oct`) keys are accepted at all. Default `true`;
    /// a set the application fetched from a public URL should never carry
    /// secrets: parse it with [`JwkPolicy::without_symmetric_keys`], as
    /// remote key sources (feature `remote-jwks`) do by default.
    pub allow_symmetric: bool,
    /// Smallest RSA modulus accepted, in bits. Default 2048 (RFC 7518
    /// §3.3); it can only raise [`MIN_RSA_BITS`](super::MIN_RSA_BITS), which
    /// every RSA key must meet.
    pub min_rsa_bits: usize,
}

impl Default for JwkPolicy {
    fn default() -> Self {
        JwkPolicy {
            rsa_default: Some(Algorithm::RS256),
            oct_default: Some(Algorithm::HS256),
            allow_symmetric: true,
            min_rsa_bits: 2048,
        }
    }
}

impl JwkPolicy {
    /// Skips symmetric keys (for sets fetched over the network).
    #[must_use]
    pub fn without_symmetric_keys(mut self) -> Self {
        self.allow_symmetric = false;
        self
    }
}

/// A JWK's key material, pinned algorithm and `kid`, checked against the
/// JWK's own members; [`VerifyingKey::from_jwk`](super::VerifyingKey::from_jwk)
/// makes the key.
pub(super) struct Parsed<'a> {
    pub(super) alg: Algorithm,
    pub(super) key: DecodingKey,
    pub(super) kid: Option<&'a str>,
}

pub(super) fn parse<'a>(jwk: &'a Value, policy: &JwkPolicy) -> Result<Parsed<'a>, Error> {
    let jwk = jwk
        .as_object()
        .ok_or_else(|| bad("a JWK must be a JSON object"))?;
    check_intended_for_verification(jwk)?;
    let kty = str_member(jwk, "kty")?.ok_or_else(|| bad("missing \"kty\""))?;
    let declared = str_member(jwk, "alg")?.map(parse_alg).transpose()?;
    let (alg, key) = match kty {
        "RSA" => rsa(jwk, declared.or(policy.rsa_default), policy)?,
        "EC" => ec(jwk, declared)?,
        "OKP" => okp(jwk, declared)?,
        "oct" if policy.allow_symmetric => oct(jwk, declared.or(policy.oct_default))?,
        "oct" => return Err(bad("symmetric keys are not accepted from this source")),
        other => return Err(bad(format!("unsupported key type {other:?}"))),
    };
    let kid = str_member(jwk, "kid")?;
    Ok(Parsed { alg, key, kid })
}

/// The public key of a DPoP proof's `jwk` header, for the proof's `alg`
/// (RFC 9449 §4.2, §4.3): asymmetric only, never with a private (or
/// symmetric) member, its own `alg`, `use` and `key_ops` consistent with a
/// signature by `alg`, and the size checks every configured key gets.
#[cfg(feature = "dpop")]
pub(crate) fn proof_key(jwk: &Map<String, Value>, alg: Algorithm) -> Result<DecodingKey, Error> {
    // RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2 (`d`), and `oct`'s `k`.
    const SECRET_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    if let Some(member) = SECRET_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(bad(format!("private key member \"{member}\"")));
    }
    check_intended_for_verification(jwk)?;
    if let Some(declared) = str_member(jwk, "alg")?.map(parse_alg).transpose()?
        && declared != alg
    {
        return Err(bad("\"alg\" is not the proof's"));
    }
    use Algorithm::*;
    match str_member(jwk, "kty")? {
        Some("EC") => Ok(ec(jwk, Some(alg))?.1),
        Some("OKP") => Ok(okp(jwk, Some(alg))?.1),
        Some("RSA") if matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512) => {
            let n = required_bytes(jwk, "n")?;
            let e = required_bytes(jwk, "e")?;
            rsa::check(&n, &e)?;
            Ok(DecodingKey::from_rsa_raw_components(&n, &e))
        }
        Some("RSA") => Err(bad("an RSA key does not fit this \"alg\"")),
        Some("oct") => Err(bad("symmetric keys cannot prove possession")),
        Some(other) => Err(bad(format!("unsupported key type {other:?}"))),
        None => Err(bad("missing \"kty\"")),
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidJwk(msg.into())
}

fn str_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Error> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("\"{name}\" must be a string"))),
    }
}

fn required_bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Error> {
    let text = str_member(jwk, name)?.ok_or_else(|| bad(format!("missing \"{name}\"")))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| bad(format!("\"{name}\" is not canonical unpadded base64url")))
}

/// `use` must be `sig` and `key_ops`, when present, must include `verify`
/// (RFC 7517 §4.2, §4.3): an encryption key never verifies a signature.
fn check_intended_for_verification(jwk: &Map<String, Value>) -> Result<(), Error> {
    if let Some(usage) = str_member(jwk, "use")?
        && usage != "sig"
    {
        return Err(bad(format!("key is for {usage:?}, not signatures")));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops
            .as_array()
            .ok_or_else(|| bad("\"key_ops\" must be an array"))?;
        let mut verify = false;
        for (i, op) in ops.iter().enumerate() {
            let op = op
                .as_str()
                .ok_or_else(|| bad("\"key_ops\" members must be strings"))?;
            if ops[..i].iter().any(|earlier| earlier.as_str() == Some(op)) {
                return Err(bad("duplicate \"key_ops\" member"));
            }
            verify |= op == "verify";
        }
        if !verify {
            return Err(bad("\"key_ops\" does not allow \"verify\""));
        }
    }
    Ok(())
}

fn parse_alg(name: &str) -> Result<Algorithm, Error> {
    Algorithm::from_name(name).ok_or_else(|| bad(format!("unsupported \"alg\" {name:?}")))
}

fn rsa(
    jwk: &Map<String, Value>,
    alg: Option<Algorithm>,
    policy: &JwkPolicy,
) -> Result<(Algorithm, DecodingKey), Error> {
    let alg = alg.ok_or_else(|| bad("RSA key without \"alg\""))?;
    let n = required_bytes(jwk, "n")?;
    let e = required_bytes(jwk, "e")?;
    // Bits, not bytes: a 2041-bit modulus still takes 256 bytes. The
    // floor, ceiling and exponent checks of every RSA key follow in
    // `VerifyingKey::from_decoding_key`.
    if rsa::bits(&n) < policy.min_rsa_bits {
        return Err(bad(format!(
            "RSA modulus under {} bits",
            policy.min_rsa_bits
        )));
    }
    Ok((alg, DecodingKey::from_rsa_raw_components(&n, &e)))
}

fn ec(
    jwk: &Map<String, Value>,
    declared: Option<Algorithm>,
) -> Result<(Algorithm, DecodingKey), Error> {
    let (alg, size) = match str_member(jwk, "crv")? {
        Some("P-256") => (Algorithm::ES256, 32),
        Some("P-384") => (Algorithm::ES384, 48),
        Some(other) => return Err(bad(format!("unsupported curve {other:?}"))),
        None => return Err(bad("missing \"crv\"")),
    };
    if declared.is_some_and(|declared| declared != alg) {
        return Err(bad("\"alg\" does not match the curve"));
    }
    let x = required_bytes(jwk, "x")?;
    let y = required_bytes(jwk, "y")?;
    if x.len() != size || y.len() != size {
        return Err(bad("EC coordinates have the wrong length"));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok((alg, DecodingKey::from_ec_der(&point)))
}

fn okp(
    jwk: &Map<String, Value>,
    declared: Option<Algorithm>,
) -> Result<(Algorithm, DecodingKey), Error> {
    match str_member(jwk, "crv")? {
        Some("Ed25519") => {}
        Some(other) => return Err(bad(format!("unsupported curve {other:?}"))),
        None => return Err(bad("missing \"crv\"")),
    }
    if declared.is_some_and(|declared| declared != Algorithm::EdDSA) {
        return Err(bad("\"alg\" does not match an Ed25519 key"));
    }
    let x = required_bytes(jwk, "x")?;
    if x.len() != 32 {
        return Err(bad("Ed25519 public key must be 32 bytes"));
    }
    Ok((Algorithm::EdDSA, DecodingKey::from_ed_der(&x)))
}

fn oct(
    jwk: &Map<String, Value>,
    alg: Option<Algorithm>,
) -> Result<(Algorithm, DecodingKey), Error> {
    let alg = alg.ok_or_else(|| bad("symmetric key without \"alg\""))?;
    let k = required_bytes(jwk, "k")?;
    if k.len() < min_hmac_secret_len(alg) {
        return Err(Error::WeakSecret { len: k.len() });
    }
    Ok((alg, DecodingKey::from_secret(&k)))
}
