//! Standard Webhooks signatures: **the one place deliveries are signed**.
//!
//! Every delivery carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
//! While a secret is being rotated, the delivery is signed with the new and
//! the old secret, space-separated, so receivers holding either verify it.
//!
//! ```
//! use tenantkit_webhooks::signature::{SigningSecret, sign};
//!
//! let secret = SigningSecret::generate();
//! let shown = secret.expose();
//! assert!(shown.starts_with("whsec_"));
//! assert_eq!(SigningSecret::parse(&shown).unwrap(), secret);
//! assert_eq!(format!("{secret:?}"), "SigningSecret([redacted])");
//!
//! let headers = sign("msg_1", 1_700_000_000, br#"{"type":"user.created"}"#, &[&secret]);
//! assert!(headers.signature.starts_with("v1,"));
//! ```

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// What every shown secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// The random bytes of a generated secret.
pub const SECRET_LEN: usize = 32;

/// A webhook endpoint's signing secret. Redacted in `Debug`; shown only by
/// [`SigningSecret::expose`] (once, when created or rotated).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// It does not start with `whsec_` followed by base64.
    #[error("a webhook secret is `whsec_` followed by base64")]
    Malformed,
    /// It decodes to fewer than 24 or more than 64 bytes.
    #[error("a webhook secret holds 24 to 64 bytes, got {0}")]
    Length(usize),
}

impl SigningSecret {
    /// A new secret of [`SECRET_LEN`] random bytes.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Malformed)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// `whsec_<base64>`: what the tenant is shown, once, and what is stored
    /// (encrypted).
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// The three headers of a signed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: the message id, the same on every retry.
    pub id: String,
    /// `webhook-timestamp`: seconds since the Unix epoch, when this attempt was signed.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64>` per secret, space-separated.
    pub signature: String,
}

impl SignedHeaders {
    /// As `(name, value)` pairs, ready for a request.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            ("webhook-id", self.id.clone()),
            ("webhook-timestamp", self.timestamp.to_string()),
            ("webhook-signature", self.signature.clone()),
        ]
    }
}

/// Signs one delivery attempt of message `id` with every secret in force
/// (the current one first, then one being rotated out).
pub fn sign(id: &str, timestamp: i64, body: &[u8], secrets: &[&SigningSecret]) -> SignedHeaders {
    let signature = secrets
        .iter()
        .map(|s| format!("v1,{}", s.mac(id, timestamp, body)))
        .collect::<Vec<_>>()
        .join(" ");
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_refuse_garbage() {
        let s = SigningSecret::generate();
        assert_eq!(SigningSecret::parse(&s.expose()), Ok(s));
        assert_eq!(SigningSecret::parse("secret"), Err(SecretError::Malformed));
        assert_eq!(
            SigningSecret::parse("whsec_!!"),
            Err(SecretError::Malformed)
        );
        assert_eq!(
            SigningSecret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 8]))),
            Err(SecretError::Length(8))
        );
        assert_ne!(SigningSecret::generate(), SigningSecret::generate());
    }

    #[test]
    fn matches_the_published_test_vector() {
        // The example of the Standard Webhooks specification.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let headers = sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            body,
            &[&secret],
        );
        assert_eq!(
            headers.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
