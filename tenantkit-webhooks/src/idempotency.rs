//! Idempotency keys of publishing over HTTP: the first answer to a key (a
//! request's `Idempotency-Key`, or a message's own `id`) is kept at least
//! [`KEEP_KEYS`], in the tenant's `webhook_idempotency` rows, so that a
//! retried publish, in any process, answers the same and publishes nothing
//! new; the same key with another request is refused.
//!
//! A key is claimed in the publishing transaction, before the messages are
//! written (the outbox's place in the lock order), and its answer recorded
//! in the same transaction: a second request with the key waits for the
//! first to commit (PostgreSQL's unique index; SQLite's one writer), then
//! reads its answer. Keys of one request are claimed in sorted order, so
//! two requests never wait for each other.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tenantkit::{TenantTx, store::DueWork};

use crate::{endpoints::WebhookError, schema::IDEMPOTENCY, sql};

/// How long a key keeps its first answer, at least (then retention removes it).
pub const KEEP_KEYS: Duration = Duration::hours(24);

/// The longest key: an `Idempotency-Key` header or a message `id`.
pub const MAX_KEY_LEN: usize = 255;

/// Tenants with keys claimed before a cutoff: ids and times only.
pub const EXPIRED_KEYS: DueWork = DueWork::new(sql::EXPIRED_KEY_TENANTS);

/// What claiming a key found.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The key is this transaction's: publish, then [`record`] the answer.
    Claimed,
    /// The key answered this same request before: its answer (JSON).
    Answered(String),
}

/// Checks an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn check_request_key(key: &str) -> Result<(), WebhookError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookError::Invalid(format!(
            "`Idempotency-Key` must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(())
}

/// Checks a message `id`: 1 to 255 of `A-Z a-z 0-9 _ . : -`.
pub fn check_message_id(id: &str) -> Result<(), WebhookError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
    if id.is_empty() || id.len() > MAX_KEY_LEN || !id.bytes().all(allowed) {
        return Err(WebhookError::Invalid(format!(
            "a message `id` must be 1 to {MAX_KEY_LEN} of A-Z, a-z, 0-9, `_`, `.`, `:` and `-`"
        )));
    }
    Ok(())
}

/// The SHA-256 (hex) of `value` as canonical JSON (object keys sorted), so
/// that the same request sent with its keys in another order is the same.
pub(crate) fn fingerprint(value: &Value) -> String {
    let mut hash = Sha256::new();
    canonical(value, &mut hash);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(value: &Value, out: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.update(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                out.update(Value::String(key.clone()).to_string().as_bytes());
                out.update(b":");
                canonical(&map[key], out);
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                canonical(item, out);
            }
            out.update(b"]");
        }
        scalar => out.update(scalar.to_string().as_bytes()),
    }
}

/// Claims `key` for a request whose fingerprint is `fingerprint`; a key
/// claimed by another request is a conflict (`409`).
pub(crate) async fn claim(
    tx: &mut TenantTx,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Claim, WebhookError> {
    let q = tx
        .query(sql::CLAIM_KEY)
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .bind(now - KEEP_KEYS);
    let claimed: Vec<(String,)> = tx.write_operational_returning(IDEMPOTENCY, q).await?;
    if !claimed.is_empty() {
        return Ok(Claim::Claimed);
    }
    let q = tx.query(sql::KEY_ANSWER).bind(key);
    let (stored, answer): (String, Option<String>) = tx.fetch_one(q).await?;
    match answer {
        Some(answer) if stored == fingerprint => Ok(Claim::Answered(answer)),
        // Claimed in this very transaction: the same key twice in a request.
        None => Err(WebhookError::Invalid(format!(
            "the key `{}` appears twice in one request",
            display_key(key)
        ))),
        Some(_) => Err(WebhookError::Conflict(format!(
            "the key `{}` was used for another request in the last {} hours; \
             a retry must send the same request",
            display_key(key),
            KEEP_KEYS.num_hours()
        ))),
    }
}

/// Records the answer to a key this transaction claimed.
pub(crate) async fn record(tx: &mut TenantTx, key: &str, answer: &str) -> Result<(), WebhookError> {
    let q = tx.query(sql::RECORD_ANSWER).bind(key).bind(answer);
    tx.write_operational(IDEMPOTENCY, q).await?;
    Ok(())
}

/// Removes up to `limit` of the tenant's keys claimed before `cutoff`;
/// returns how many went.
pub(crate) async fn purge_expired(
    tx: &mut TenantTx,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> Result<u64, WebhookError> {
    let q = tx
        .query(sql::PURGE_EXPIRED_KEYS)
        .bind(cutoff)
        .bind(i64::from(limit));
    Ok(tx.write_operational(IDEMPOTENCY, q).await?)
}

/// The key as the caller sent it (without the `r:`/`m:` namespace).
fn display_key(key: &str) -> &str {
    key.get(2..).unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_fingerprint_ignores_key_order_and_nothing_else() {
        let a = json!({ "event_type": "x", "data": { "a": 1, "b": [1, "2"] } });
        let b = json!({ "data": { "b": [1, "2"], "a": 1 }, "event_type": "x" });
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let c = json!({ "event_type": "x", "data": { "a": 1, "b": ["2", 1] } });
        assert_ne!(fingerprint(&a), fingerprint(&c), "array order counts");
        let d = json!({ "event_type": "x", "data": { "a": "1", "b": [1, "2"] } });
        assert_ne!(fingerprint(&a), fingerprint(&d), "types count");
        assert_eq!(fingerprint(&a).len(), 64);
    }

    #[test]
    fn keys_and_ids_are_checked() {
        assert!(check_request_key("retry-7f3a").is_ok());
        assert!(check_request_key(&"k".repeat(255)).is_ok());
        assert!(check_request_key(&"k".repeat(256)).is_err());
        assert!(check_request_key("").is_err());
        assert!(check_request_key("a b").is_err());
        assert!(check_request_key("é").is_err());
        assert!(check_message_id("evt_01:x.y-z").is_ok());
        assert!(check_message_id(&"i".repeat(256)).is_err());
        assert!(check_message_id("a/b").is_err());
        assert!(check_message_id("").is_err());
    }
}
