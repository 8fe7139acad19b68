//! SSRF defence: **the one place that decides whether a URL a tenant gave
//! (a webhook endpoint, a single sign-on issuer), or an address it resolves
//! to, may be contacted**. Registration uses it, and so does every
//! connection made to such a URL (through [`VettingResolver`]), so DNS
//! rebinding cannot slip an internal address in between.
//!
//! - Only absolute `https` URLs (plain `http` when [`UrlPolicy::with_http`]),
//!   without userinfo.
//! - No address that is not globally routable: see [`blocked`] for the list,
//!   which also judges the IPv4 address inside IPv4-mapped, IPv4-compatible,
//!   NAT64 and 6to4 IPv6 addresses.
//! - Other spellings of IPv4 (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`)
//!   are read as the address they mean (the WHATWG URL parser, which the HTTP
//!   client uses too, normalises them), and judged as such.
//! - Networks named in [`UrlPolicy::allow_network`] (e.g. a local test
//!   receiver at `127.0.0.1/32`) are allowed despite the list.
//!
//! ```
//! use tenantkit::ssrf::UrlPolicy;
//!
//! let policy = UrlPolicy::strict();
//! assert!(policy.vet_url("https://hooks.example.com/in").is_ok());
//! let refused = policy.vet_url("https://0x7f.1/admin").unwrap_err();
//! assert_eq!(refused.to_string(), "the address 127.0.0.1 is not allowed (loopback)");
//! assert!(policy.vet_url("http://hooks.example.com/in").is_err());
//!
//! let local = UrlPolicy::strict().with_http(true).allow_network("127.0.0.1/32".parse().unwrap());
//! assert!(local.vet_url("http://127.0.0.1:9000/in").is_ok());
//! ```

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, LazyLock},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// What may be contacted.
#[derive(Clone, Debug, Default)]
pub struct UrlPolicy {
    allow_http: bool,
    allow_networks: Vec<IpNet>,
    lookup: Lookup,
}

/// How host names are resolved: the system's resolver, or a fixed table
/// (for tests, or a deployment that pins its receivers' addresses).
#[derive(Clone, Debug, Default)]
pub enum Lookup {
    /// `getaddrinfo`, as every other connection of the process.
    #[default]
    System,
    /// Only these names, to these addresses; any other name does not resolve.
    Table(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl Lookup {
    /// The addresses `host` resolves to (empty when it does not resolve).
    pub async fn resolve(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        match self {
            Lookup::System => tokio::net::lookup_host((host, port))
                .await
                .map(|addrs| addrs.collect())
                .unwrap_or_default(),
            Lookup::Table(table) => table
                .get(&host.trim_end_matches('.').to_ascii_lowercase())
                .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
                .unwrap_or_default(),
        }
    }
}

/// Why a URL or an address was refused; its `Display` is the explanation a
/// client is shown (422).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRefusal {
    /// Not a URL at all.
    #[error("not an absolute URL: {0}")]
    Malformed(String),
    /// Not `https` (or `http` when allowed).
    #[error("the scheme must be https{}, not `{scheme}`", if *.allow_http { " or http" } else { "" })]
    Scheme {
        /// The scheme given.
        scheme: String,
        /// Whether `http` would have been accepted.
        allow_http: bool,
    },
    /// `user:password@` in the URL.
    #[error("the URL must not contain a user name or password")]
    Userinfo,
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// It is (or resolves to) an address that is not allowed.
    #[error("the address {addr} is not allowed ({reason})")]
    Blocked {
        /// The address.
        addr: IpAddr,
        /// Which range it is in.
        reason: &'static str,
    },
    /// Longer than 2,000 characters.
    #[error("the URL is longer than 2000 characters")]
    TooLong,
}

impl UrlPolicy {
    /// `https` only, every blocked range blocked.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Also accepts plain `http` URLs (`webhooks.allow_http`, `auth.sso.allow_http`).
    pub fn with_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Allows `network` although it is blocked (`webhooks.allow_networks`,
    /// for receivers on a private network or a local test receiver).
    pub fn allow_network(mut self, network: IpNet) -> Self {
        self.allow_networks.push(network);
        self
    }

    /// Resolves host names with `lookup` instead of the system's resolver.
    pub fn with_lookup(mut self, lookup: Lookup) -> Self {
        self.lookup = lookup;
        self
    }

    /// Whether `addr` may be contacted.
    pub fn vet_addr(&self, addr: IpAddr) -> Result<(), UrlRefusal> {
        if self.allow_networks.iter().any(|n| n.contains(&addr)) {
            return Ok(());
        }
        match blocked(addr) {
            Some(reason) => Err(UrlRefusal::Blocked { addr, reason }),
            None => Ok(()),
        }
    }

    /// Parses and vets `raw`: scheme, userinfo, and the host when it is an
    /// address. A host name is vetted by resolving it, at registration
    /// ([`UrlPolicy::vet_url_resolving`]) and at every connection.
    pub fn vet_url(&self, raw: &str) -> Result<Url, UrlRefusal> {
        if raw.len() > 2000 {
            return Err(UrlRefusal::TooLong);
        }
        let url = Url::parse(raw.trim()).map_err(|e| UrlRefusal::Malformed(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => {
                return Err(UrlRefusal::Scheme {
                    scheme: other.to_owned(),
                    allow_http: self.allow_http,
                });
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Userinfo);
        }
        match url.host() {
            None => return Err(UrlRefusal::NoHost),
            Some(Host::Ipv4(v4)) => self.vet_addr(IpAddr::V4(v4))?,
            Some(Host::Ipv6(v6)) => self.vet_addr(IpAddr::V6(v6))?,
            // RFC 6761: `localhost` and its subdomains are loopback, however
            // (or whether) the resolver here answers for them.
            Some(Host::Domain(name)) if is_localhost(name) => {
                return Err(UrlRefusal::Blocked {
                    addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    reason: "loopback",
                });
            }
            Some(Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// [`UrlPolicy::vet_url`], then every address the host name resolves to
    /// (a name that does not resolve now is accepted: delivery will vet it
    /// again when it connects).
    pub async fn vet_url_resolving(&self, raw: &str) -> Result<Url, UrlRefusal> {
        let url = self.vet_url(raw)?;
        if let Some(Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            self.resolve(name, port).await?;
        }
        Ok(url)
    }

    /// The addresses `host` resolves to, all of them vetted: refused when
    /// any one is blocked (a name that mixes a public and an internal address
    /// is an attack, not a fallback). The delivery worker connects only to
    /// what this returns, so DNS rebinding cannot reach an internal host.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlRefusal> {
        let addrs = self.lookup.resolve(host, port).await;
        for addr in &addrs {
            self.vet_addr(addr.ip())?;
        }
        Ok(addrs)
    }
}

/// An HTTP client's resolver that resolves with a [`UrlPolicy`] and hands
/// the client only addresses it allows: give it to
/// `reqwest::ClientBuilder::dns_resolver`, and vet each URL's literal
/// address with [`UrlPolicy::vet_url`] (those never reach a resolver).
#[derive(Clone, Debug)]
pub struct VettingResolver(pub UrlPolicy);

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str(), 0).await?;
            if addrs.is_empty() {
                return Err(format!("`{}` does not resolve", name.as_str()).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

struct Ranges<N> {
    nets: Vec<(N, &'static str)>,
}

fn ranges<N: std::str::FromStr>(list: &[(&str, &'static str)]) -> Ranges<N>
where
    N::Err: std::fmt::Debug,
{
    Ranges {
        nets: list
            .iter()
            .map(|(net, why)| (net.parse().expect("a valid range"), *why))
            .collect(),
    }
}

static BLOCKED_V4: LazyLock<Ranges<Ipv4Net>> = LazyLock::new(|| {
    ranges(&[
        ("0.0.0.0/8", "\"this network\""),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local, cloud metadata"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, broadcast"),
    ])
});

static BLOCKED_V6: LazyLock<Ranges<Ipv6Net>> = LazyLock::new(|| {
    ranges(&[
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments, Teredo"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    ])
});

/// Why `addr` must not be contacted, or `None` when it is globally routable.
///
/// IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:aabb:ccdd::`) are judged by that IPv4 address.
pub fn blocked(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return blocked_v4(v4);
            }
            BLOCKED_V6
                .nets
                .iter()
                .find(|(net, _)| net.contains(&v6))
                .map(|(_, why)| *why)
        }
    }
}

fn blocked_v4(v4: Ipv4Addr) -> Option<&'static str> {
    BLOCKED_V4
        .nets
        .iter()
        .find(|(net, _)| net.contains(&v4))
        .map(|(_, why)| *why)
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms
/// that carry one.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some(mapped); // ::ffff:a.b.c.d
    }
    if bits >> 32 == 0 && bits > 1 {
        return Some(low32); // ::a.b.c.d (IPv4-compatible; `::` and `::1` excluded)
    }
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(low32); // 64:ff9b::a.b.c.d (NAT64)
    }
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32)); // 2002:aabb:ccdd:: (6to4)
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_ipv4_forms() {
        let v4 = |s: &str| embedded_v4(s.parse().unwrap());
        let lo = Some(Ipv4Addr::LOCALHOST);
        assert_eq!(v4("::ffff:127.0.0.1"), lo);
        assert_eq!(v4("::127.0.0.1"), lo);
        assert_eq!(v4("64:ff9b::7f00:1"), lo);
        assert_eq!(v4("2002:7f00:1::"), lo);
        assert_eq!(v4("::1"), None);
        assert_eq!(v4("::"), None);
        assert_eq!(v4("2606:4700::1111"), None);
    }

    #[test]
    fn public_addresses_pass() {
        for ok in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert_eq!(blocked(ok.parse().unwrap()), None, "{ok}");
        }
    }
}
