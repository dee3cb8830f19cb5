//! One DPoP proof JWT (RFC 9449 §4.2): strict parsing of its header and
//! claims, the key it carries, its signature, and the RFC 7638 thumbprint
//! of that key.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::claims::NumericDate;
use crate::crypto::{provider, sha256};
use crate::error::Error;
use crate::json::{SeenKeys, Str};
use crate::jws;
use crate::reject::Reason;

/// Longest proof accepted, in bytes, checked before any decoding: room for
/// an RSA-4096 key in the header, its signature and a long `htu`.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// Longest decoded proof header: an RSA-4096 `jwk` is about 750 bytes.
const MAX_HEADER_LEN: usize = 2048;

/// A proof whose shape, header and signature hold; its claims are read but
/// not yet compared with the request.
#[derive(Debug)]
pub(crate) struct Proof<'a> {
    /// RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
    pub(crate) jkt: String,
    pub(crate) claims: ProofClaims<'a>,
}

/// The claims a proof must carry (and the optional ones).
#[derive(Debug, Default)]
pub(crate) struct ProofClaims<'a> {
    pub(crate) jti: Cow<'a, str>,
    pub(crate) htm: Cow<'a, str>,
    pub(crate) htu: Cow<'a, str>,
    pub(crate) iat: u64,
    pub(crate) ath: Option<Cow<'a, str>>,
    pub(crate) nonce: Option<Cow<'a, str>>,
}

/// Checks a proof's shape, header, key and signature, and reads its claims;
/// `payload` receives the decoded claims, which the result borrows.
pub(crate) fn verify<'p>(
    proof: &[u8],
    accepted: &[Algorithm],
    payload: &'p mut Vec<u8>,
) -> Result<Proof<'p>, Reason> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(Reason::TooLarge);
    }
    let compact = jws::split(proof)?;
    let mut buffer = [0u8; MAX_HEADER_LEN];
    let header = jws::decode_small(compact.header, &mut buffer)?.ok_or(Reason::TooLarge)?;
    let header = parse_header(header)?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|typ| jws::is_media_type(typ, "dpop+jwt"))
    {
        return Err(Reason::ProofType);
    }
    let alg = Algorithm::from_name(&header.alg)
        .filter(|alg| accepted.contains(alg))
        .ok_or(Reason::Algorithm)?;
    let jwk = header.jwk.ok_or(Reason::ProofKey)?;
    let key = crate::keys::proof_key(&jwk, alg).map_err(|_| Reason::ProofKey)?;
    let jkt = thumbprint_of(&jwk).map_err(|_| Reason::ProofKey)?;
    let signature = jws::decode(compact.signature)?;
    let verifier = (provider().verifier_factory)(&alg.to_jsonwebtoken(), &key)
        .map_err(|_| Reason::ProofKey)?;
    if verifier.verify(compact.signing_input, &signature).is_err() {
        return Err(Reason::Signature);
    }
    *payload = jws::decode(compact.payload)?;
    let claims = parse_claims(payload)?;
    Ok(Proof { jkt, claims })
}

/// The header members a proof needs.
#[derive(Debug, Default)]
struct ProofHeader {
    alg: String,
    typ: Option<String>,
    jwk: Option<Map<String, Value>>,
}

fn parse_header(json: &[u8]) -> Result<ProofHeader, Reason> {
    let json = std::str::from_utf8(json).map_err(|_| Reason::BadHeader)?;
    let mut de = serde_json::Deserializer::from_str(json);
    match de
        .deserialize_map(HeaderVisitor)
        .and_then(|header| de.end().map(|()| header))
    {
        Ok(header) => header,
        Err(_) => Err(Reason::BadHeader),
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Result<ProofHeader, Reason>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DPoP proof header")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = SeenKeys::default();
        let mut header = ProofHeader::default();
        let mut alg = None;
        let mut verdict = Ok(());
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            match &*key {
                "alg" => alg = Some(map.next_value::<Str<'de>>()?.0.into_owned()),
                "typ" => header.typ = Some(map.next_value::<Str<'de>>()?.0.into_owned()),
                "jwk" => match map.next_value::<Jwk>()?.0 {
                    Ok(jwk) => header.jwk = Some(jwk),
                    Err(reason) => verdict = verdict.and(Err(reason)),
                },
                // RFC 7515 §4.1.11: no extension is understood here.
                "crit" => {
                    map.next_value::<IgnoredAny>()?;
                    verdict = verdict.and(Err(Reason::Critical));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if !seen.insert(key) {
                verdict = verdict.and(Err(Reason::DuplicateMember));
            }
        }
        Ok(verdict.and_then(|()| {
            header.alg = alg.ok_or(Reason::BadHeader)?;
            Ok(header)
        }))
    }
}

/// A `jwk` header member: an object whose members are not repeated.
struct Jwk(Result<Map<String, Value>, Reason>);

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JwkVisitor;
        impl<'de> Visitor<'de> for JwkVisitor {
            type Value = Jwk;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWK object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Jwk, A::Error> {
                let mut members = Map::new();
                let mut duplicate = false;
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    let value = map.next_value::<Value>()?;
                    duplicate |= members.insert(key.into_owned(), value).is_some();
                }
                Ok(Jwk(if duplicate {
                    Err(Reason::DuplicateMember)
                } else {
                    Ok(members)
                }))
            }
        }
        deserializer.deserialize_map(JwkVisitor)
    }
}

fn parse_claims(json: &[u8]) -> Result<ProofClaims<'_>, Reason> {
    let json = std::str::from_utf8(json).map_err(|_| Reason::ProofClaims)?;
    let mut de = serde_json::Deserializer::from_str(json);
    match de
        .deserialize_map(ClaimsVisitor)
        .and_then(|claims| de.end().map(|()| claims))
    {
        Ok(claims) => claims,
        Err(_) => Err(Reason::ProofClaims),
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Result<ProofClaims<'de>, Reason>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DPoP proof claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = SeenKeys::default();
        let (mut jti, mut htm, mut htu, mut iat) = (None, None, None, None);
        let mut claims = ProofClaims::default();
        let mut verdict = Ok(());
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            match &*key {
                "jti" => jti = Some(map.next_value::<Str<'de>>()?.0),
                "htm" => htm = Some(map.next_value::<Str<'de>>()?.0),
                "htu" => htu = Some(map.next_value::<Str<'de>>()?.0),
                "iat" => iat = Some(map.next_value::<NumericDate<'de>>()?.seconds),
                "ath" => claims.ath = Some(map.next_value::<Str<'de>>()?.0),
                "nonce" => claims.nonce = Some(map.next_value::<Str<'de>>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if !seen.insert(key) {
                verdict = verdict.and(Err(Reason::DuplicateMember));
            }
        }
        Ok(verdict.and_then(|()| {
            claims.jti = jti
                .filter(|jti| !jti.is_empty())
                .ok_or(Reason::ProofClaims)?;
            claims.htm = htm.ok_or(Reason::ProofClaims)?;
            claims.htu = htu.ok_or(Reason::ProofClaims)?;
            let iat = iat.ok_or(Reason::ProofClaims)?;
            claims.iat = u64::try_from(iat).map_err(|_| Reason::ProofClaims)?;
            Ok(claims)
        }))
    }
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without
/// padding: what an access token's `cnf.jkt` names (RFC 9449 §6.1).
///
/// Only the members RFC 7638 §3.2 requires for the key type count (`crv`,
/// `kty`, `x`, `y` for EC; `e`, `kty`, `n` for RSA; `crv`, `kty`, `x` for
/// OKP), in that order, without whitespace; a private JWK has the
/// thumbprint of its public key.
///
/// # Errors
/// [`Error::InvalidJwk`] when `jwk` is not an object, its `kty` is not
/// `EC`, `RSA` or `OKP`, or a required member is missing or not a string.
///
/// # Example
///
/// ```
/// // RFC 7638 §3.1.
/// let jwk = serde_json::json!({
///     "kty": "RSA",
///     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
///     "e": "AQAB",
///     "alg": "RS256",
///     "kid": "2011-04-29"
/// });
/// assert_eq!(
///     tower_jwt_auth::dpop::thumbprint(&jwk)?,
///     "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
/// );
/// # Ok::<(), tower_jwt_auth::Error>(())
/// ```
pub fn thumbprint(jwk: &Value) -> Result<String, Error> {
    let jwk = jwk
        .as_object()
        .ok_or_else(|| Error::InvalidJwk("a JWK must be a JSON object".into()))?;
    thumbprint_of(jwk)
}

fn thumbprint_of(jwk: &Map<String, Value>) -> Result<String, Error> {
    let member = |name: &str| -> Result<String, Error> {
        match jwk.get(name) {
            // serde_json writes strings with JSON's minimal escaping, as
            // RFC 7638 §3.3 asks.
            Some(value @ Value::String(_)) => Ok(value.to_string()),
            Some(_) => Err(Error::InvalidJwk(format!("\"{name}\" must be a string"))),
            None => Err(Error::InvalidJwk(format!("missing \"{name}\""))),
        }
    };
    let input = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        Some("RSA") => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        Some("OKP") => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        _ => {
            return Err(Error::InvalidJwk(
                "thumbprints are computed for EC, RSA and OKP keys".into(),
            ));
        }
    };
    Ok(URL_SAFE_NO_PAD.encode(sha256(input.as_bytes())))
}

/// `ath` for an access token (RFC 9449 §4.2): the base64url SHA-256 of its
/// ASCII text, without padding.
///
/// ```
/// assert_eq!(
///     tower_jwt_auth::dpop::access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///     "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
/// );
/// ```
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1, with members it must ignore.
        let rsa = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
            "use": "sig"
        });
        assert_eq!(
            thumbprint(&rsa).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 8037 §A.3: an Ed25519 key.
        let okp = json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        });
        assert_eq!(
            thumbprint(&okp).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        for bad in [
            json!("EC"),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "EC", "crv": "P-256", "x": "AA"}),
            json!({"kty": "RSA", "n": 1, "e": "AQAB"}),
        ] {
            assert!(thumbprint(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_access_token_hash_is_rfc_9449s() {
        // RFC 9449 §7.1, figure 12 and 13.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn headers_are_read_strictly() {
        assert!(parse_header(br#"{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC"}}"#).is_ok());
        for (json, reason) in [
            (
                &br#"{"typ":"dpop+jwt","alg":"ES256","alg":"ES256"}"#[..],
                Reason::DuplicateMember,
            ),
            (
                br#"{"alg":"ES256","jwk":{"kty":"EC","kty":"EC"}}"#,
                Reason::DuplicateMember,
            ),
            (br#"{"alg":"ES256","crit":["x"]}"#, Reason::Critical),
            (br#"{"alg":"ES256","jwk":"key"}"#, Reason::BadHeader),
            (br#"{"alg":7}"#, Reason::BadHeader),
            (br#"{"typ":"dpop+jwt"}"#, Reason::BadHeader),
            (br#"["alg"]"#, Reason::BadHeader),
            (br#"{"alg":"ES256"} {}"#, Reason::BadHeader),
        ] {
            assert_eq!(
                parse_header(json).err(),
                Some(reason),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn claims_are_read_strictly() {
        let claims =
            parse_claims(br#"{"jti":"j","htm":"GET","htu":"https://a/","iat":1.9,"x":[1]}"#)
                .unwrap();
        assert_eq!((claims.iat, &*claims.jti), (1, "j"));
        for (json, reason) in [
            (
                &br#"{"jti":"j","htm":"GET","htu":"u","iat":1,"jti":"k"}"#[..],
                Reason::DuplicateMember,
            ),
            (br#"{"htm":"GET","htu":"u","iat":1}"#, Reason::ProofClaims),
            (
                br#"{"jti":"","htm":"GET","htu":"u","iat":1}"#,
                Reason::ProofClaims,
            ),
            (br#"{"jti":"j","htu":"u","iat":1}"#, Reason::ProofClaims),
            (br#"{"jti":"j","htm":"GET","iat":1}"#, Reason::ProofClaims),
            (br#"{"jti":"j","htm":"GET","htu":"u"}"#, Reason::ProofClaims),
            (
                br#"{"jti":"j","htm":"GET","htu":"u","iat":"1"}"#,
                Reason::ProofClaims,
            ),
            (
                br#"{"jti":"j","htm":"GET","htu":"u","iat":-1}"#,
                Reason::ProofClaims,
            ),
            (
                br#"{"jti":1,"htm":"GET","htu":"u","iat":1}"#,
                Reason::ProofClaims,
            ),
            (
                br#"{"jti":"j","htm":"GET","htu":"u","iat":1,"ath":2}"#,
                Reason::ProofClaims,
            ),
            (br#"["jti"]"#, Reason::ProofClaims),
        ] {
            assert_eq!(
                parse_claims(json).err(),
                Some(reason),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }
}
