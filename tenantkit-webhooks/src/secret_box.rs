//! Endpoint secrets encrypted at rest: **the one place they are sealed and
//! opened**. XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) with a
//! random 192-bit nonce per seal, and the row's identity as associated data,
//! so a sealed secret copied into another row does not open.
//!
//! Keys come from configuration (`webhooks.secret_keys`, base64 of 32 bytes,
//! current key first); the embedded default generates one into the data
//! directory. To rotate: put a new key first and keep the old ones after it;
//! everything sealed with an old key still opens, [`SecretBox::needs_reseal`]
//! says what to seal again, and an old key can be dropped once nothing needs it.
//!
//! ```
//! use tenantkit_webhooks::secret_box::SecretBox;
//!
//! let key = SecretBox::generate_key();
//! let keys = SecretBox::new([key.as_str()]).unwrap();
//! let sealed = keys.seal(b"whsec_...", b"tenant/endpoint");
//! assert_eq!(keys.open(&sealed, b"tenant/endpoint").unwrap(), b"whsec_...");
//! assert!(keys.open(&sealed, b"another/endpoint").is_err());
//! assert_eq!(format!("{keys:?}"), "SecretBox { keys: 1, current: [redacted] }");
//! ```

use std::fmt;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chacha20poly1305::{
    Key, XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: &str = "x1";
const NONCE_LEN: usize = 24;

/// The keys secrets are sealed with (the first) and opened with (any).
#[derive(Clone)]
pub struct SecretBox {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretBox {{ keys: {}, current: [redacted] }}",
            self.keys.len()
        )
    }
}

/// Why keys or a sealed secret were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretBoxError {
    /// No key was given.
    #[error("at least one webhook secret key is needed")]
    NoKey,
    /// A key is not base64 of 32 bytes.
    #[error("webhook secret key {0} is not base64 of 32 bytes")]
    BadKey(usize),
    /// Not something [`SecretBox::seal`] made.
    #[error("not a sealed secret")]
    Malformed,
    /// Sealed with a key that is not configured any more.
    #[error("sealed with key {0}, which is not configured")]
    UnknownKey(String),
    /// The key fits but it does not open: altered, or sealed for another row.
    #[error("the sealed secret does not open: altered, or it belongs to another row")]
    Tampered,
}

impl SecretBox {
    /// A new random key, base64 (for configuration).
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Keys as configured, base64 of 32 bytes each, the current one first.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, SecretBoxError> {
        let keys = keys
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                let bytes: [u8; 32] = STANDARD
                    .decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or(SecretBoxError::BadKey(i))?;
                // A key's id is a short digest of it: no key id to configure,
                // and never the key itself.
                let id = URL_SAFE_NO_PAD.encode(&Sha256::digest(bytes)[..6]);
                Ok((id, XChaCha20Poly1305::new(&Key::from(bytes))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretBoxError::NoKey);
        }
        Ok(Self { keys })
    }

    /// Seals `secret` for the row `aad` names, with the current key:
    /// `x1.<key id>.<base64 of nonce and ciphertext>`.
    pub fn seal(&self, secret: &[u8], aad: &[u8]) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: secret, aad })
            .expect("XChaCha20-Poly1305 seals any length used here");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION}.{id}.{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`SecretBox::seal`] made for the same `aad`, with whichever
    /// configured key sealed it.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretBoxError::Malformed);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SecretBoxError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SecretBoxError::Malformed);
        }
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SecretBoxError::UnknownKey(id.to_owned()))?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SecretBoxError::Tampered)
    }

    /// Whether `sealed` was sealed with a key other than the current one
    /// (seal it again after a key rotation).
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.keys[0].0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_differ_and_open() {
        let keys = SecretBox::new([SecretBox::generate_key().as_str()]).unwrap();
        let secret = b"whsec_plaintext-secret";
        let (a, b) = (keys.seal(secret, b"row"), keys.seal(secret, b"row"));
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(keys.open(&a, b"row").unwrap(), secret);
        assert!(!a.contains("plaintext"), "sealed, not encoded");
    }

    #[test]
    fn altered_or_foreign_seals_do_not_open() {
        let keys = SecretBox::new([SecretBox::generate_key().as_str()]).unwrap();
        let sealed = keys.seal(b"whsec_secret", b"t1/w1");
        assert_eq!(keys.open(&sealed, b"t1/w2"), Err(SecretBoxError::Tampered));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(keys.open(&flipped, b"t1/w1"), Err(SecretBoxError::Tampered));
        assert_eq!(keys.open("plain", b"t1/w1"), Err(SecretBoxError::Malformed));
        assert_eq!(
            keys.open("x1.abc.AAAA", b"t1/w1"),
            Err(SecretBoxError::Malformed)
        );
        let other = SecretBox::new([SecretBox::generate_key().as_str()]).unwrap();
        assert!(matches!(
            other.open(&sealed, b"t1/w1"),
            Err(SecretBoxError::UnknownKey(_))
        ));
    }

    #[test]
    fn rotation_keeps_old_seals_open_and_says_what_to_reseal() {
        let (old, new) = (SecretBox::generate_key(), SecretBox::generate_key());
        let before = SecretBox::new([old.as_str()]).unwrap();
        let sealed = before.seal(b"whsec_old", b"row");
        let after = SecretBox::new([new.as_str(), old.as_str()]).unwrap();
        assert_eq!(after.open(&sealed, b"row").unwrap(), b"whsec_old");
        assert!(after.needs_reseal(&sealed));
        let resealed = after.seal(b"whsec_old", b"row");
        assert!(!after.needs_reseal(&resealed));
        // Once the old key is dropped, only what was resealed opens.
        let only_new = SecretBox::new([new.as_str()]).unwrap();
        assert!(only_new.open(&resealed, b"row").is_ok());
        assert!(only_new.open(&sealed, b"row").is_err());
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            SecretBox::new(std::iter::empty()).unwrap_err(),
            SecretBoxError::NoKey
        );
        assert_eq!(
            SecretBox::new(["c2hvcnQ="]).unwrap_err(),
            SecretBoxError::BadKey(0)
        );
        let good = SecretBox::generate_key();
        assert_eq!(
            SecretBox::new([good.as_str(), "not base64!"]).unwrap_err(),
            SecretBoxError::BadKey(1)
        );
    }
}
