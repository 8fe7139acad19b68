//! The SSRF battery: hostile URLs refused at registration, with no
//! allow-list; a host name resolving to loopback refused; the allow-list lets
//! exactly what it names through.

use std::{collections::HashMap, sync::Arc};

use tenantkit_webhooks::ssrf::{Lookup, UrlPolicy, UrlRefusal, blocked};

use tenantkit_webhooks::testing::HOSTILE_URLS as HOSTILE;

#[test]
fn hostile_urls_are_refused_at_registration() {
    let policy = UrlPolicy::strict();
    assert!(HOSTILE.len() >= 30);
    for url in HOSTILE {
        let refused = policy.vet_url(url);
        assert!(refused.is_err(), "{url} was accepted");
        // The reason is explained, never empty.
        assert!(!refused.unwrap_err().to_string().is_empty());
    }
}

#[test]
fn other_ipv4_spellings_are_judged_by_the_address_they_mean() {
    let policy = UrlPolicy::strict();
    for url in [
        "https://2130706433/",
        "https://0177.0.0.1/",
        "https://0x7f.1/",
        "https://127.1/",
    ] {
        assert_eq!(
            policy.vet_url(url).unwrap_err(),
            UrlRefusal::Blocked {
                addr: "127.0.0.1".parse().unwrap(),
                reason: "loopback"
            },
            "{url}"
        );
    }
}

#[tokio::test]
async fn names_of_loopback_are_refused() {
    let policy = UrlPolicy::strict();
    // `localhost` and its subdomains, in any case, with or without the final dot.
    for url in [
        "https://localhost/in",
        "https://LOCALHOST./in",
        "https://localhost:9000/",
        "https://api.localhost/in",
    ] {
        match policy.vet_url_resolving(url).await {
            Err(UrlRefusal::Blocked { addr, .. }) => assert!(addr.is_loopback(), "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

/// A resolver answering like an attacker's DNS zone would.
fn attacker_dns() -> Lookup {
    let table: HashMap<String, Vec<std::net::IpAddr>> = [
        ("rebind.attacker.test", vec!["127.0.0.1".parse().unwrap()]),
        (
            "metadata.attacker.test",
            vec!["169.254.169.254".parse().unwrap()],
        ),
        ("v6.attacker.test", vec!["::ffff:10.0.0.5".parse().unwrap()]),
        // One public address to pass a naive check, one internal to hit.
        (
            "mixed.attacker.test",
            vec![
                "93.184.216.34".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
            ],
        ),
        ("hooks.partner.test", vec!["93.184.216.34".parse().unwrap()]),
    ]
    .into_iter()
    .map(|(name, ips)| (name.to_owned(), ips))
    .collect();
    Lookup::Table(Arc::new(table))
}

#[tokio::test]
async fn a_name_resolving_to_an_internal_address_is_refused() {
    let policy = UrlPolicy::strict().with_lookup(attacker_dns());
    for name in ["rebind", "metadata", "v6", "mixed"] {
        let url = format!("https://{name}.attacker.test/in");
        assert!(
            policy.vet_url(&url).is_ok(),
            "nothing in the URL itself is wrong"
        );
        assert!(
            matches!(
                policy.vet_url_resolving(&url).await,
                Err(UrlRefusal::Blocked { .. })
            ),
            "{url}"
        );
        assert!(
            policy
                .resolve(&format!("{name}.attacker.test"), 443)
                .await
                .is_err()
        );
    }
    // What is vetted is what is connected to.
    let addrs = policy.resolve("hooks.partner.test", 443).await.unwrap();
    assert_eq!(addrs, vec!["93.184.216.34:443".parse().unwrap()]);
}

#[tokio::test]
async fn public_urls_pass() {
    let policy = UrlPolicy::strict();
    for url in [
        "https://93.184.216.34/hooks",
        "https://[2606:4700::1111]/hooks",
        "https://hooks.example.com/in?x=1",
        "https://hooks.example.com:8443/in",
    ] {
        let vetted = policy.vet_url_resolving(url).await;
        assert!(vetted.is_ok(), "{url}: {vetted:?}");
    }
}

#[test]
fn the_allow_list_lets_through_exactly_what_it_names() {
    let policy = UrlPolicy::strict()
        .with_http(true)
        .allow_network("127.0.0.1/32".parse().unwrap());
    assert!(policy.vet_url("http://127.0.0.1:9000/in").is_ok());
    assert!(policy.vet_url("https://127.0.0.1/in").is_ok());
    // Only that address: the rest of loopback and the private ranges stay blocked.
    for url in ["http://127.0.0.2/", "http://10.0.0.1/", "http://[::1]/"] {
        assert!(policy.vet_url(url).is_err(), "{url}");
    }
    assert!(
        UrlPolicy::strict()
            .vet_url("http://127.0.0.1:9000/in")
            .is_err()
    );
}

#[test]
fn refusals_say_why() {
    let policy = UrlPolicy::strict();
    let why = |url: &str| policy.vet_url(url).unwrap_err().to_string();
    assert_eq!(
        why("http://a.example/"),
        "the scheme must be https, not `http`"
    );
    assert_eq!(
        why("https://u:p@a.example/"),
        "the URL must not contain a user name or password"
    );
    assert_eq!(
        why("https://169.254.169.254/"),
        "the address 169.254.169.254 is not allowed (link-local, cloud metadata)"
    );
    assert_eq!(
        why(&format!("https://a.example/{}", "x".repeat(2000))),
        "the URL is longer than 2000 characters"
    );
    assert!(why("not a url").starts_with("not an absolute URL"));
}

#[test]
fn every_blocked_range_is_blocked_and_its_neighbours_are_not() {
    for (inside, outside) in [
        ("10.0.0.0", "11.0.0.0"),
        ("100.127.255.255", "100.128.0.0"),
        ("172.31.255.255", "172.32.0.0"),
        ("192.168.255.255", "192.169.0.0"),
        ("169.254.0.1", "169.255.0.1"),
        ("198.19.255.255", "198.20.0.0"),
        ("223.255.255.255", "223.255.255.255"),
    ] {
        if inside != outside {
            assert!(blocked(inside.parse().unwrap()).is_some(), "{inside}");
        }
        if outside != "223.255.255.255" {
            assert!(blocked(outside.parse().unwrap()).is_none(), "{outside}");
        }
    }
    assert!(blocked("223.255.255.255".parse().unwrap()).is_none());
    assert!(blocked("224.0.0.0".parse().unwrap()).is_some());
}
