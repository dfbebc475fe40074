//! The client's IP (SPEC §5.4): the socket peer, unless the peer is a trusted proxy;
//! then the right-most untrusted hop of `X-Forwarded-For`, or `X-Real-IP`.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use tessera_core::domain::Cidr;

/// The client IP of a request, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// Whether the client is on this machine (see [`tessera_core::limits::is_loopback`]).
    pub fn is_loopback(&self) -> bool {
        tessera_core::limits::is_loopback(self.0)
    }

    /// The key rate limits count this client under: the address, or for IPv6 its /64
    /// (one subscriber's network: a client holding one has 2^64 addresses to rotate
    /// through). An IPv4 address mapped into IPv6 counts as itself.
    pub fn limit_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    s.parse::<IpAddr>().ok().or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// Resolves the client IP. Headers from an untrusted peer change nothing; a missing or
/// unparsable header from a trusted one leaves the last trusted hop.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &[Cidr]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|h| !h.trim().is_empty())
        .collect();
    if forwarded.is_empty() {
        return headers.get("x-real-ip").and_then(|v| v.to_str().ok()).and_then(parse_hop).unwrap_or(peer);
    }
    let mut last = peer;
    for hop in forwarded.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if !trusted(ip, proxies) => return ip,
            Some(ip) => last = ip,
            None => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let key = |s: &str| ClientIp(s.parse().unwrap()).limit_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:1:2:3"), key("2001:db8:1:2::9"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn resolves() {
        let proxies = [Cidr::parse("10.0.0.0/8").unwrap()];
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        let xff = h(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(resolve(proxy, &xff, &proxies), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(resolve(stranger, &xff, &proxies), stranger, "untrusted peers' headers are ignored");
        assert_eq!(resolve(proxy, &h(&[("x-forwarded-for", "garbage")]), &proxies), proxy);
        assert_eq!(resolve(proxy, &h(&[("x-forwarded-for", "203.0.113.9, garbage")]), &proxies), proxy);
        assert_eq!(
            resolve(proxy, &h(&[("x-real-ip", "203.0.113.1")]), &proxies),
            "203.0.113.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve(proxy, &HeaderMap::new(), &proxies), proxy);
        assert_eq!(
            resolve(proxy, &h(&[("x-forwarded-for", "10.1.1.1")]), &proxies),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            resolve(proxy, &h(&[("x-forwarded-for", "203.0.113.4:5555")]), &proxies),
            "203.0.113.4".parse::<IpAddr>().unwrap()
        );
    }
}
