//! Our signatures verify with the official `standardwebhooks` crate, which
//! shares no code with ours; during rotation, either secret verifies.

use http::{HeaderMap, HeaderValue};
use standardwebhooks::Webhook;
use tenantkit_webhooks::signature::{SigningSecret, sign};

fn headers(signed: &tenantkit_webhooks::signature::SignedHeaders) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in signed.pairs() {
        map.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    map
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn deliveries_verify_with_the_reference_implementation() {
    let secret = SigningSecret::generate();
    let body = br#"{"type":"user.created","timestamp":"2026-11-27T00:00:00Z","data":{"id":"u1"}}"#;
    let signed = sign("msg_01", now(), body, &[&secret]);
    let receiver = Webhook::new(&secret.expose()).unwrap();
    receiver.verify(body, &headers(&signed)).unwrap();

    // A changed body, id or timestamp does not verify.
    assert!(receiver.verify(b"{}", &headers(&signed)).is_err());
    let mut other_id = signed.clone();
    other_id.id = "msg_02".into();
    assert!(receiver.verify(body, &headers(&other_id)).is_err());
    let mut other_time = signed.clone();
    other_time.timestamp += 1;
    assert!(receiver.verify(body, &headers(&other_time)).is_err());
    // Nor with another secret.
    let stranger = Webhook::new(&SigningSecret::generate().expose()).unwrap();
    assert!(stranger.verify(body, &headers(&signed)).is_err());
}

#[test]
fn during_rotation_both_secrets_verify() {
    let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
    let body = b"{\"type\":\"webhook.test\"}";
    let signed = sign("msg_rot", now(), body, &[&new, &old]);
    assert_eq!(signed.signature.split(' ').count(), 2);
    for secret in [&old, &new] {
        Webhook::new(&secret.expose())
            .unwrap()
            .verify(body, &headers(&signed))
            .unwrap();
    }
    // After the grace period only the new one signs.
    let after = sign("msg_rot", now(), body, &[&new]);
    assert!(
        Webhook::new(&old.expose())
            .unwrap()
            .verify(body, &headers(&after))
            .is_err()
    );
}

#[test]
fn secrets_of_the_reference_implementation_parse() {
    // Both sides read the same `whsec_` format.
    let ours = SigningSecret::generate();
    let theirs = Webhook::new(&ours.expose()).unwrap();
    let signed = theirs.sign("msg_x", now(), b"payload").unwrap();
    assert_eq!(signed, sign("msg_x", now(), b"payload", &[&ours]).signature);
}
