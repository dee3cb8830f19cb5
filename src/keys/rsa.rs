//! RSA public keys, checked when they are configured rather than at the
//! first request: jsonwebtoken keeps PKCS#1 DER or `n`/`e` as given and
//! only parses them while verifying, so an unusable key would otherwise
//! build fine and refuse every token.
//!
//! The bounds are the ones both signature backends can verify with:
//!
//! - modulus at least [`MIN_RSA_BITS`] (2048, RFC 7518 §3.3) and at most
//!   [`MAX_RSA_BITS`] (4096): RustCrypto's `rsa` crate (the `rust_crypto`
//!   backend) refuses moduli above `RsaPublicKey::MAX_SIZE` = 4096 bits on
//!   every verification; aws-lc's `RSA_*_2048_8192_*` parameters go to
//!   8192. The common bound keeps a key set valid whichever backend a build
//!   enables. Bits are counted, not bytes: a 2041-bit modulus is 256 bytes
//!   long and still refused.
//! - modulus odd; exponent odd, at least 3 and below 2^33: both backends
//!   refuse anything else (RustCrypto's `check_public`, aws-lc's
//!   `RSA_check_key`), so refusing here changes no outcome, only when it
//!   is reported.

use crate::error::Error;

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits: the largest the `rust_crypto`
/// backend verifies with (aws-lc would take 8192), so that configuration
/// does not depend on the backend.
pub const MAX_RSA_BITS: usize = 4096;

/// Largest public exponent both backends take (RustCrypto's
/// `MAX_PUB_EXPONENT`, aws-lc's 33-bit limit).
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// Significant bits of a big-endian unsigned integer.
pub(crate) fn bits(be: &[u8]) -> usize {
    let digits = strip(be);
    match digits.first() {
        None => 0,
        Some(top) => (digits.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

fn strip(be: &[u8]) -> &[u8] {
    let zeros = be.iter().take_while(|&&b| b == 0).count();
    &be[zeros..]
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidKey(msg.into())
}

/// Checks a public key's modulus and exponent (big-endian, leading zero
/// bytes allowed) against the bounds above.
pub(crate) fn check(n: &[u8], e: &[u8]) -> Result<(), Error> {
    let size = bits(n);
    if size < MIN_RSA_BITS {
        return Err(bad(format!(
            "RSA modulus of {size} bits; at least {MIN_RSA_BITS} are required"
        )));
    }
    if size > MAX_RSA_BITS {
        return Err(bad(format!(
            "RSA modulus of {size} bits; at most {MAX_RSA_BITS} can be verified"
        )));
    }
    if n.last().is_some_and(|low| low & 1 == 0) {
        return Err(bad("RSA modulus is even"));
    }
    let e = strip(e);
    if e.len() > 8 {
        return Err(bad("RSA exponent out of range"));
    }
    let e = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if e < 3 || e % 2 == 0 || e > MAX_EXPONENT {
        return Err(bad("RSA exponent must be odd, at least 3 and below 2^33"));
    }
    Ok(())
}

/// Reads a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER,
/// publicExponent INTEGER }` in strict DER (definite, minimal lengths;
/// minimal, positive integers; nothing after it), as both backends do.
pub(crate) fn parse_pkcs1(der: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let malformed = || bad("not a PKCS#1 RSA public key (DER)");
    let (sequence, rest) = tlv(der, 0x30).ok_or_else(malformed)?;
    if !rest.is_empty() {
        return Err(malformed());
    }
    let (n, rest) = tlv(sequence, 0x02).ok_or_else(malformed)?;
    let (e, rest) = tlv(rest, 0x02).ok_or_else(malformed)?;
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok((
        positive(n).ok_or_else(malformed)?,
        positive(e).ok_or_else(malformed)?,
    ))
}

/// One tag-length-value of `tag`: its content and what follows.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        // 0x80 (indefinite) is BER only; four length bytes are plenty.
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        // Minimal: no leading zero byte, and the short form when it fits.
        if bytes[0] == 0 || len < 0x80 {
            return None;
        }
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The magnitude of a minimally encoded non-negative INTEGER.
fn positive(content: &[u8]) -> Option<&[u8]> {
    match content {
        [] => None,
        [first, ..] if first & 0x80 != 0 => None,
        [0, second, ..] if second & 0x80 == 0 => None,
        [0, rest @ ..] => Some(rest),
        all => Some(all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A modulus of exactly `bits` bits, odd.
    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xff; bits.div_ceil(8)];
        let spare = n.len() * 8 - bits;
        n[0] >>= spare;
        n
    }

    fn der(n: &[u8], e: &[u8]) -> Vec<u8> {
        fn integer(v: &[u8]) -> Vec<u8> {
            let mut content = v.to_vec();
            if content[0] & 0x80 != 0 {
                content.insert(0, 0);
            }
            wrap(0x02, &content)
        }
        fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            match content.len() {
                len @ 0..0x80 => out.push(len as u8),
                len @ 0x80..0x100 => out.extend([0x81, len as u8]),
                len => out.extend([0x82, (len >> 8) as u8, len as u8]),
            }
            out.extend_from_slice(content);
            out
        }
        let mut body = integer(n);
        body.extend(integer(e));
        wrap(0x30, &body)
    }

    #[test]
    fn bits_are_counted_not_bytes() {
        assert_eq!(bits(&modulus(2048)), 2048);
        assert_eq!(bits(&modulus(2041)), 2041);
        assert_eq!(modulus(2041).len(), 256);
        assert_eq!(bits(&[0, 0, 1]), 1);
        assert_eq!(bits(&[]), 0);
        let mut padded = vec![0, 0];
        padded.extend(modulus(2048));
        assert_eq!(bits(&padded), 2048);
    }

    #[test]
    fn modulus_and_exponent_bounds() {
        let e = [1, 0, 1];
        assert!(check(&modulus(2048), &e).is_ok());
        assert!(check(&modulus(4096), &e).is_ok());
        assert!(check(&modulus(2047), &e).is_err());
        assert!(check(&modulus(2041), &e).is_err());
        assert!(check(&modulus(4097), &e).is_err());
        assert!(check(&modulus(8192), &e).is_err());
        let mut even = modulus(2048);
        *even.last_mut().unwrap() = 0xfe;
        assert!(check(&even, &e).is_err());
        for bad_e in [&[][..], &[1], &[2], &[0, 1], &[1, 0, 0], &[2, 0, 0, 0, 1]] {
            assert!(check(&modulus(2048), bad_e).is_err(), "{bad_e:?}");
        }
        assert!(check(&modulus(2048), &[3]).is_ok());
        assert!(check(&modulus(2048), &[1, 0xff, 0xff, 0xff, 0xff]).is_ok());
    }

    #[test]
    fn pkcs1_der_is_strict() {
        let n = modulus(2048);
        let good = der(&n, &[1, 0, 1]);
        let (pn, pe) = parse_pkcs1(&good).unwrap();
        assert_eq!((pn, pe), (&n[..], &[1, 0, 1][..]));
        assert!(parse_pkcs1(b"garbage").is_err());
        assert!(parse_pkcs1(&[]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(parse_pkcs1(&trailing).is_err());
        assert!(parse_pkcs1(&good[..good.len() - 1]).is_err());
        // Indefinite length, and a non-minimal long form.
        assert!(parse_pkcs1(&[0x30, 0x80, 0x02, 0x01, 0x03, 0x02, 0x01, 0x03, 0, 0]).is_err());
        assert!(parse_pkcs1(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x03, 0x02, 0x01, 0x03]).is_err());
        // Negative and non-minimal integers.
        assert!(parse_pkcs1(&[0x30, 0x06, 0x02, 0x01, 0x83, 0x02, 0x01, 0x03]).is_err());
        assert!(parse_pkcs1(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x03, 0x02, 0x01, 0x03]).is_err());
        // A third member (a private key's version, n, e, d, …) is refused.
        assert!(
            parse_pkcs1(&[
                0x30, 0x09, 0x02, 0x01, 0x03, 0x02, 0x01, 0x03, 0x02, 0x01, 0x03
            ])
            .is_err()
        );
    }
}
