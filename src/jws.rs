//! Strict JWS compact serialization (RFC 7515 §7.1): splitting, canonical
//! base64url, and the JOSE header. The signature itself is checked by the
//! key set ([`crate::keys`]), which reads a token through this module.
//!
//! A token is refused before any base64 or JSON work unless it is three
//! non-empty segments, and every segment must be canonical unpadded
//! base64url (no `=`, no `+` or `/`, no whitespace, zero trailing bits). The header is
//! parsed once, by our own visitor: duplicate members, `crit`, nested tokens
//! and wrongly typed members are refused, and `jwk`/`jku`/`x5u`/`x5c` are
//! never looked at, so a token's content never chooses a key or causes I/O.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::alg::Algorithm;
use crate::json::{SeenKeys, Str};
use crate::reject::Reason;

/// Decoded headers larger than this are refused: real headers are a few
/// dozen bytes, and the bound lets the header decode into a stack buffer.
pub(crate) const MAX_HEADER_LEN: usize = 1024;

/// The three segments of a compact JWS.
pub(crate) struct Compact<'a> {
    pub(crate) header: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) signature: &'a [u8],
    /// `header '.' payload`, what the signature covers.
    pub(crate) signing_input: &'a [u8],
}

/// Splits a token into three non-empty segments. The alphabet is not
/// scanned here: every segment goes through strict base64url decoding
/// (the header and signature before any cryptography, the payload before
/// any claim), which refuses a stray `.`, `+`, `/`, `=`, whitespace or any
/// other byte.
pub(crate) fn split(token: &[u8]) -> Result<Compact<'_>, Reason> {
    let first = memchr::memchr(b'.', token).ok_or(Reason::Malformed)?;
    let second = first + 1 + memchr::memchr(b'.', &token[first + 1..]).ok_or(Reason::Malformed)?;
    if first == 0 || second == first + 1 || second + 1 == token.len() {
        return Err(Reason::Malformed);
    }
    Ok(Compact {
        header: &token[..first],
        payload: &token[first + 1..second],
        signature: &token[second + 1..],
        signing_input: &token[..second],
    })
}

/// Decodes canonical unpadded base64url into `out`, returning the length.
fn decode_into(segment: &[u8], out: &mut [u8]) -> Result<usize, Reason> {
    URL_SAFE_NO_PAD
        .decode_slice(segment, out)
        .map_err(|_| Reason::Malformed)
}

/// Decodes into `buf` when the result fits, `None` when it does not.
pub(crate) fn decode_small<'b>(
    segment: &[u8],
    buf: &'b mut [u8],
) -> Result<Option<&'b [u8]>, Reason> {
    if segment.len().div_ceil(4) * 3 > buf.len() {
        return Ok(None);
    }
    let len = decode_into(segment, buf)?;
    Ok(Some(&buf[..len]))
}

/// Decodes the payload into `stack` when it fits (typical payloads do:
/// one allocation fewer per request), onto the heap otherwise.
pub(crate) fn decode_payload<'b>(
    segment: &[u8],
    stack: &'b mut [u8],
) -> Result<Cow<'b, [u8]>, Reason> {
    if segment.len().div_ceil(4) * 3 > stack.len() {
        return decode(segment).map(Cow::Owned);
    }
    let len = decode_into(segment, stack)?;
    Ok(Cow::Borrowed(&stack[..len]))
}

/// Decodes canonical unpadded base64url into a new vector.
pub(crate) fn decode(segment: &[u8]) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Reason::Malformed)
}

/// The header members the verifier acts on.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
}

/// Parses and vets a decoded header.
pub(crate) fn parse_header(json: &[u8]) -> Result<Header<'_>, Reason> {
    let json = std::str::from_utf8(json).map_err(|_| Reason::BadHeader)?;
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = HeaderVisit::deserialize(&mut de).and_then(|h| de.end().map(|()| h));
    match parsed {
        Ok(HeaderVisit(Ok(header))) => Ok(header),
        Ok(HeaderVisit(Err(reason))) => Err(reason),
        Err(_) => Err(Reason::BadHeader),
    }
}

/// Carries a precise reason out of serde, which only knows string errors.
struct HeaderVisit<'a>(Result<Header<'a>, Reason>);

impl<'de> Deserialize<'de> for HeaderVisit<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = HeaderVisit<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = SeenKeys::default();
        let mut alg = None;
        let mut kid = None;
        let mut typ = None;
        let mut verdict = Ok(());
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            match &*key {
                "alg" => alg = Some(map.next_value::<Str<'de>>()?.0),
                "kid" => kid = Some(map.next_value::<Str<'de>>()?.0),
                "typ" => typ = Some(map.next_value::<Str<'de>>()?.0),
                "cty" => {
                    let cty = map.next_value::<Str<'de>>()?.0;
                    if is_media_type(&cty, "jwt") {
                        verdict = verdict.and(Err(Reason::Nested));
                    }
                }
                // RFC 7515 §4.1.11: we implement no extension, so any `crit`
                // (even an empty one, which is itself invalid) is refused.
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
        let header = verdict.and_then(|()| {
            let alg = Algorithm::from_name(alg.as_deref().ok_or(Reason::BadHeader)?)
                .ok_or(Reason::Algorithm)?;
            Ok(Header { alg, kid, typ })
        });
        Ok(HeaderVisit(header))
    }
}

/// Media types compare case-insensitively and may omit `application/`
/// (RFC 7515 §4.1.9).
pub(crate) fn is_media_type(value: &str, subtype: &str) -> bool {
    let bare = match value.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &value[12..],
        _ => value,
    };
    bare.eq_ignore_ascii_case(subtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape errors are caught by the split, alphabet errors by the strict
    /// decoding every segment goes through.
    fn well_formed(token: &[u8]) -> bool {
        split(token).is_ok_and(|c| {
            [c.header, c.payload, c.signature]
                .iter()
                .all(|segment| decode(segment).is_ok())
        })
    }

    #[test]
    fn shape_is_checked_before_decoding() {
        assert!(well_formed(b"YQ.Yg.Yw"));
        for bad in [
            &b"YQ.Yg"[..],
            b"YQ.Yg.Yw.ZA",
            b"YQ.Yg.Yw.ZA.ZQ",
            b".Yg.Yw",
            b"YQ..Yw",
            b"YQ.Yg.",
            b"YQ.Yg.Yw=",
            b"YQ==.Yg.Yw",
            b"Y+.Yg.Yw",
            b"Y/.Yg.Yw",
            b"YQ.Yg .Yw",
            b"YQ.Yg.Yw\n",
            b"YQ.\xff.Yw",
            b"",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        let mut out = [0u8; 8];
        // "QQ" is canonical for "A"; "QR" has non-zero trailing bits.
        assert_eq!(decode_into(b"QQ", &mut out), Ok(1));
        assert_eq!(decode_into(b"QR", &mut out), Err(Reason::Malformed));
        assert_eq!(decode_into(b"Q", &mut out), Err(Reason::Malformed));
    }

    #[test]
    fn alg_none_in_any_case_is_refused() {
        for alg in ["none", "None", "nOnE", "NONE", "hs256", ""] {
            let json = format!(r#"{{"alg":"{alg}"}}"#);
            assert_eq!(
                parse_header(json.as_bytes()).err(),
                Some(Reason::Algorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn header_rules() {
        assert!(parse_header(br#"{"alg":"HS256","typ":"JWT"}"#).is_ok());
        assert_eq!(
            parse_header(br#"{"alg":"HS256","alg":"HS256"}"#).err(),
            Some(Reason::DuplicateMember)
        );
        assert_eq!(
            parse_header(br#"{"alg":"HS256","x":1,"x":2}"#).err(),
            Some(Reason::DuplicateMember)
        );
        assert_eq!(
            parse_header(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#).err(),
            Some(Reason::Critical)
        );
        assert_eq!(
            parse_header(br#"{"alg":"HS256","crit":[]}"#).err(),
            Some(Reason::Critical)
        );
        assert_eq!(
            parse_header(br#"{"alg":"HS256","cty":"JWT"}"#).err(),
            Some(Reason::Nested)
        );
        assert_eq!(
            parse_header(br#"{"alg":"HS256","cty":"application/jwt"}"#).err(),
            Some(Reason::Nested)
        );
        assert_eq!(
            parse_header(br#"{"alg":"HS256","kid":7}"#).err(),
            Some(Reason::BadHeader)
        );
        assert_eq!(
            parse_header(br#"{"typ":"JWT"}"#).err(),
            Some(Reason::BadHeader)
        );
        assert_eq!(parse_header(br#"["alg"]"#).err(), Some(Reason::BadHeader));
        assert_eq!(
            parse_header(br#"{"alg":"HS256"} x"#).err(),
            Some(Reason::BadHeader)
        );
        let h = parse_header(br#"{"alg":"ES256","kid":"a\"b","jku":"http://evil"}"#).unwrap();
        assert_eq!(h.kid.as_deref(), Some("a\"b"));
    }

    #[test]
    fn media_types() {
        assert!(is_media_type("at+jwt", "at+jwt"));
        assert!(is_media_type("application/AT+JWT", "at+jwt"));
        assert!(!is_media_type("jwt", "at+jwt"));
        assert!(!is_media_type("application/", "at+jwt"));
    }
}
