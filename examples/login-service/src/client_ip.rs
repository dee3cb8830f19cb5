//! Which client address a request comes from, for per-address limits.
//!
//! The TCP peer, unless it is a configured trusted proxy: then the client is
//! read from `Forwarded` (RFC 7239 `for=`) or `X-Forwarded-For`, walking
//! from the right (the entry the nearest proxy appended) past trusted
//! proxies to the first address that is not one. Entries further left were
//! written by whoever is beyond that address, possibly the client itself,
//! and are never read. Anything unreadable on that walk falls back to the
//! peer.
//!
//! When both headers are present and name different clients, one of them
//! was passed through from the client untouched; which one cannot be known
//! here, so the peer is used. Configure the proxy to set one header and
//! drop the other.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::{IpNet, Ipv6Net};

/// Parses a `--trusted-proxy` value: a CIDR block or a single address.
///
/// # Errors
/// When the value is neither.
pub fn parse_trusted_proxy(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is not an IP address or CIDR block"))
}

/// The client of a request whose TCP peer is `peer`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let forwarded = walk(headers, "forwarded", trusted, forwarded_nodes);
    let x_forwarded_for = walk(headers, "x-forwarded-for", trusted, |value| {
        Some(
            value
                .split(',')
                .map(|node| node.trim().to_owned())
                .collect(),
        )
    });
    match (forwarded, x_forwarded_for) {
        (Walk::Client(a), Walk::Client(b)) if a == b => a,
        (Walk::Client(client), Walk::Absent) | (Walk::Absent, Walk::Client(client)) => client,
        _ => peer,
    }
}

/// The key per-address counters use: IPv4 as is, IPv6 by its /64 (one
/// customer usually has a whole /64 and can pick any address in it).
pub fn throttle_key(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            Ipv6Net::new(v6, 64).map_or_else(|_| v6.to_string(), |net| net.trunc().to_string())
        }
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

#[derive(Debug, PartialEq, Eq)]
enum Walk {
    Absent,
    Client(IpAddr),
    Malformed,
}

/// Walks the hops of every `name` header (in order, as one list) from the
/// right. `split` turns one header value into its node strings, `None` if
/// it cannot.
fn walk(
    headers: &HeaderMap,
    name: &str,
    trusted: &[IpNet],
    split: impl Fn(&str) -> Option<Vec<String>>,
) -> Walk {
    let mut nodes = Vec::new();
    for value in headers.get_all(name) {
        let Some(hops) = value.to_str().ok().and_then(&split) else {
            return Walk::Malformed;
        };
        nodes.extend(hops);
    }
    if nodes.is_empty() {
        return Walk::Absent;
    }
    let mut leftmost = None;
    for node in nodes.iter().rev() {
        let Some(ip) = parse_node(node) else {
            return Walk::Malformed;
        };
        let ip = ip.to_canonical();
        if !is_trusted(ip, trusted) {
            return Walk::Client(ip);
        }
        leftmost = Some(ip);
    }
    // Every hop is a trusted proxy: the first of them is the client.
    leftmost.map_or(Walk::Malformed, Walk::Client)
}

/// The `for=` node of each element of one `Forwarded` value; an element
/// without one is `""`, which does not parse.
fn forwarded_nodes(value: &str) -> Option<Vec<String>> {
    let mut nodes = Vec::new();
    for element in split_unquoted(value, ',')? {
        let mut node = String::new();
        for pair in split_unquoted(&element, ';')? {
            let (name, value) = pair.split_once('=')?;
            if name.trim().eq_ignore_ascii_case("for") {
                node = value.trim().to_owned();
            }
        }
        nodes.push(node);
    }
    Some(nodes)
}

/// Splits on `separator` outside double quotes; `None` on an unterminated
/// quote.
fn split_unquoted(value: &str, separator: char) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == separator && !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return None;
    }
    parts.push(current);
    Some(parts)
}

/// An address from a node: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:8080`, each possibly in double quotes.
/// `unknown`, obfuscated `_names` and anything else: `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let node = match node.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => node,
    };
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    // IPv4 with a port (an IPv6 address would have parsed above).
    let (host, _port) = node.split_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| parse_trusted_proxy(s).unwrap())
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn spoofed_headers_from_an_untrusted_peer_are_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        let spoofed = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        assert_eq!(
            resolve(ip("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        // No trusted proxies configured: headers are never read.
        assert_eq!(resolve(ip("10.0.0.1"), &spoofed, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn the_rightmost_address_that_is_not_a_trusted_proxy_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "192.0.2.7"]);
        // The client put 1.1.1.1 there itself; proxies appended the rest.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.4, 192.0.2.7")]);
        assert_eq!(
            resolve(ip("10.1.2.3"), &chain, &trusted),
            ip("198.51.100.4")
        );
        // Several header lines form one list.
        let lines = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.4, 10.9.9.9"),
        ]);
        assert_eq!(
            resolve(ip("10.1.2.3"), &lines, &trusted),
            ip("198.51.100.4")
        );
        // Every hop trusted: the first one is the client.
        let inside = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(resolve(ip("10.1.2.3"), &inside, &trusted), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(
            resolve(ip("10.1.2.3"), &HeaderMap::new(), &trusted),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn forwarded_with_quoted_ipv6_ports_and_other_parameters() {
        let trusted = nets(&["10.0.0.0/8"]);
        let cases = [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            ("For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
            ("for=\"192.0.2.43:47011\"", "192.0.2.43"),
            (
                "for=192.0.2.43, for=\"[2001:db8::1]\";proto=https, for=10.0.0.2",
                "2001:db8::1",
            ),
            ("proto=https;for=\"::ffff:192.0.2.8\"", "192.0.2.8"),
            ("for=\"a;b,c\", for=192.0.2.9", "192.0.2.9"),
        ];
        for (value, client) in cases {
            let found = resolve(ip("10.0.0.1"), &headers(&[("forwarded", value)]), &trusted);
            assert_eq!(found, ip(client), "{value}");
        }
        let mapped_peer: IpAddr = ip("::ffff:10.0.0.1");
        let found = resolve(
            mapped_peer,
            &headers(&[("forwarded", "for=192.0.2.1")]),
            &trusted,
        );
        assert_eq!(found, ip("192.0.2.1"));
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for (name, value) in [
            ("forwarded", "for=unknown"),
            ("forwarded", "for=_hidden"),
            ("forwarded", "for=\"[2001:db8::1"),
            ("forwarded", "for=\"unterminated"),
            ("forwarded", "proto=https"),
            ("forwarded", "for"),
            ("forwarded", ""),
            ("x-forwarded-for", "not an address"),
            ("x-forwarded-for", "198.51.100.1, "),
            ("x-forwarded-for", "[::1]x"),
            ("x-forwarded-for", "999.1.1.1"),
            ("x-forwarded-for", ",,,"),
        ] {
            assert_eq!(
                resolve(peer, &headers(&[(name, value)]), &trusted),
                peer,
                "{value}"
            );
        }
        let mut bytes = HeaderMap::new();
        bytes.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(resolve(peer, &bytes, &trusted), peer);
        // Garbage left of the client is the client's own business.
        let junk = headers(&[("x-forwarded-for", "garbage, 198.51.100.3")]);
        assert_eq!(resolve(peer, &junk, &trusted), ip("198.51.100.3"));
    }

    #[test]
    fn headers_that_disagree_fall_back_to_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let agree = headers(&[
            ("forwarded", "for=198.51.100.5"),
            ("x-forwarded-for", "198.51.100.5"),
        ]);
        assert_eq!(resolve(peer, &agree, &trusted), ip("198.51.100.5"));
        let disagree = headers(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "198.51.100.5"),
        ]);
        assert_eq!(resolve(peer, &disagree, &trusted), peer);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            throttle_key(ip("2001:db8:1:2:3:4:5:6")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(throttle_key(ip("2001:db8:1:2::ffff")), "2001:db8:1:2::/64");
        assert_eq!(throttle_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(throttle_key(ip("192.0.2.1")), "192.0.2.1");
    }

    #[test]
    fn trusted_proxies_parse_as_cidr_or_single_addresses() {
        assert_eq!(
            parse_trusted_proxy("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_trusted_proxy(" 192.0.2.1 ").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(parse_trusted_proxy("::1").unwrap().to_string(), "::1/128");
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxy("proxy.internal").is_err());
    }
}
