//! Verifying (and, for tests and tools, producing) `Stripe-Signature` headers.
//!
//! Stripe signs `"{timestamp}.{payload}"` with HMAC-SHA256 under the
//! endpoint's signing secret and sends `t=<timestamp>,v1=<hex>[,v1=<hex>...]`.
//! During a secret roll several `v1` signatures (and several secrets) may be
//! in play; any match is enough. Comparison is constant-time.
//!
//! ```
//! use tenantkit::Secret;
//! use tenantkit_billing::signature::{SignatureError, sign, verify};
//!
//! let secret = Secret::from("whsec_test".to_owned());
//! let payload = br#"{"id":"evt_1"}"#;
//! let header = sign(payload, &secret, 1_700_000_000);
//! assert_eq!(verify(payload, &header, &[secret.clone()], 300, 1_700_000_100), Ok(()));
//! assert_eq!(verify(payload, &header, &[secret.clone()], 300, 1_700_000_301), Err(SignatureError::Stale));
//! assert_eq!(verify(b"{}", &header, &[secret], 300, 1_700_000_000), Err(SignatureError::Mismatch));
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tenantkit::Secret;

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("missing Stripe-Signature header")]
    Missing,
    /// The header has no timestamp or no `v1` signature.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("Stripe-Signature timestamp outside the tolerance")]
    Stale,
    /// No `v1` signature matches any secret.
    #[error("no Stripe-Signature matches")]
    Mismatch,
    /// No signing secret is configured.
    #[error("no webhook signing secret is configured")]
    NoSecret,
}

fn mac(secret: &Secret, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The `Stripe-Signature` header Stripe would send for `payload` at `timestamp`.
pub fn sign(payload: &[u8], secret: &Secret, timestamp: i64) -> String {
    let digest = mac(secret, timestamp, payload).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `header` for `payload` against `secrets`, allowing `tolerance_secs`
/// between its timestamp and `now` (Unix seconds), either way.
pub fn verify(
    payload: &[u8],
    header: &str,
    secrets: &[Secret],
    tolerance_secs: u64,
    now: i64,
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", sig)) => signatures.extend(from_hex(sig)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let matched = secrets.iter().any(|secret| {
        let expected = mac(secret, timestamp, payload).finalize().into_bytes();
        signatures
            .iter()
            .any(|sig| bool::from(expected[..].ct_eq(sig)))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}
