//! Where webhooks may go. With `BOOKING_WEBHOOK_ALLOW_PRIVATE=off` a URL must
//! be http(s) and every address its host resolves to must be public: not
//! loopback, private, link-local, shared, multicast, documentation, reserved
//! or otherwise special. Checked when an endpoint is saved, and again on every
//! delivery by the HTTP client's resolver itself, so the address connected to
//! is the address checked (a name that re-resolves to 127.0.0.1 later — DNS
//! rebinding — is refused at that delivery).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0                                   // "this network"
        || (a == 100 && (64..128).contains(&b))     // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0)           // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99)         // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19))       // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return is_public_v4(v4);
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return is_public_v4(v4);
    }
    // global unicast is 2000::/3; within it, Teredo (2001::/32), benchmarking
    // (2001:2::/48), ORCHID (2001:10::/28, 2001:20::/28) and documentation
    // (2001:db8::/32) are not destinations
    (s[0] & 0xe000) == 0x2000
        && !(s[0] == 0x2001 && s[1] == 0)
        && !(s[0] == 0x2001 && s[1] == 2 && s[2] == 0)
        && !(s[0] == 0x2001 && (0x10..0x30).contains(&s[1]))
        && !(s[0] == 0x2001 && s[1] == 0xdb8)
}

/// Why a URL is refused, in words for a 422 or a delivery log.
pub async fn check_url(url: &str, allow_private: bool) -> Result<Url, String> {
    let u =
        Url::parse(url).map_err(|_| "must be an absolute http:// or https:// URL".to_string())?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    let host = match u.host() {
        Some(h) => h.to_owned(),
        None => return Err("must name a host".into()),
    };
    if allow_private {
        return Ok(u);
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) => resolve(&name, port).await?,
    };
    match addrs.iter().find(|ip| !is_public(**ip)) {
        Some(ip) => Err(format!(
            "resolves to {ip}, which is not a public address (BOOKING_WEBHOOK_ALLOW_PRIVATE is off)"
        )),
        None => Ok(u),
    }
}

async fn resolve(name: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    let found = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::lookup_host((name.to_string(), port)),
    )
    .await
    .map_err(|_| format!("the host `{name}` did not resolve within 2 s"))?
    .map_err(|_| format!("the host `{name}` does not resolve"))?;
    let addrs: Vec<IpAddr> = found.map(|a: SocketAddr| a.ip()).collect();
    if addrs.is_empty() {
        return Err(format!("the host `{name}` has no address"));
    }
    Ok(addrs)
}

/// The delivery client's resolver when private addresses are refused: a name
/// resolving to any non-public address is an error, so nothing connects there.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve(&name, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            if let Some(ip) = addrs.iter().find(|ip| !is_public(**ip)) {
                return Err(
                    format!("`{name}` resolves to {ip}, which is not a public address").into(),
                );
            }
            let it: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(!is_public(ip(s)), "{s}");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
        ] {
            assert!(is_public(ip(s)), "{s}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_by_scheme_and_address() {
        for u in [
            "http://127.0.0.1/hook",
            "http://10.0.0.8/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://localhost:9/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(check_url(u, false).await.is_err(), "{u}");
        }
        assert!(check_url("http://127.0.0.1/hook", true).await.is_ok());
        assert!(check_url("http://93.184.216.34/hook", false).await.is_ok());
    }
}
