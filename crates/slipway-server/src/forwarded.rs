//! Whether a request reached the user over TLS. Slipway listens on plain
//! HTTP; TLS ends at a reverse proxy, which says so in `X-Forwarded-Proto`.
//! Anyone can send that header, so it counts only from a peer the admin
//! listed (`--trusted-proxy CIDR`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// An address range such as `10.0.0.0/8`, `127.0.0.1` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || {
            format!(
                "`{text}` is not an address range: write e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8"
            )
        };
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.trim().parse().map_err(|_| bad())?
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// The proxies whose `X-Forwarded-Proto` is believed (a request extension).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Cidr>);

/// Whether this request came to the user's browser over HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct OverTls(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for OverTls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<OverTls, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let trusted = parts.extensions.get::<TrustedProxies>();
        let from_proxy = match (peer, trusted) {
            (Some(ip), Some(list)) => list.0.iter().any(|c| c.contains(ip)),
            _ => false,
        };
        let says_https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            // A chain of proxies appends; the first is what the client used.
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        Ok(OverTls(from_proxy && says_https))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_what_they_should() {
        let lan: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(lan.contains("10.1.2.3".parse().expect("ip")));
        assert!(!lan.contains("11.0.0.1".parse().expect("ip")));
        let one: Cidr = "127.0.0.1".parse().expect("cidr");
        assert!(one.contains("::ffff:127.0.0.1".parse().expect("ip")));
        let odd: Cidr = "192.168.4.0/22".parse().expect("cidr");
        assert!(odd.contains("192.168.7.255".parse().expect("ip")));
        assert!(!odd.contains("192.168.8.0".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "x".parse::<Cidr>().is_err());
    }
}
