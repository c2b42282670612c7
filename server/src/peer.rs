//! Who is asking: the client's address, for the per-address throttles (registration, login).
//!
//! It is the TCP peer, unless the peer is one of `--trusted-proxy`: then `X-Forwarded-For`
//! is read from the right (each proxy appends the address it saw), skipping trusted proxies,
//! and the first address that is not one of them is the client. Never believed from anyone
//! else, since any client can send the header.

use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;

/// The client's address for a request that arrived from `peer`.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    // Canonical on both sides, so `::ffff:10.0.0.2` and `10.0.0.2` are one address.
    let is_trusted = |a: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *a);
    let mut ip = peer.ip().to_canonical();
    if !is_trusted(&ip) {
        return ip;
    }
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else { return ip };
        for hop in value.rsplit(',') {
            // An entry that is not an address: stop at the last hop we could trust.
            let Ok(addr) = hop.trim().parse::<IpAddr>() else {
                return ip;
            };
            let addr = addr.to_canonical();
            if !is_trusted(&addr) {
                return addr;
            }
            ip = addr;
        }
    }
    ip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let spoof = headers(&["203.0.113.7"]);
        assert_eq!(
            client_ip(peer, &spoof, &[]),
            ip("127.0.0.1"),
            "untrusted peer"
        );
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        assert_eq!(client_ip(peer, &spoof, &trusted), ip("203.0.113.7"));
        // A client's own spoofed entry sits left of what our proxies appended.
        let chain = headers(&["198.51.100.1, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(client_ip(peer, &chain, &trusted), ip("203.0.113.7"));
        assert_eq!(client_ip(peer, &headers(&[]), &trusted), ip("127.0.0.1"));
        let garbage = headers(&["not-an-ip, 10.0.0.2"]);
        assert_eq!(client_ip(peer, &garbage, &trusted), ip("10.0.0.2"));
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert_eq!(client_ip(mapped, &spoof, &trusted), ip("203.0.113.7"));
        let listed_mapped = [ip("::ffff:127.0.0.1")];
        assert_eq!(client_ip(peer, &spoof, &listed_mapped), ip("203.0.113.7"));
    }
}
