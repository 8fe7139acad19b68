//! API key format: `tk_<prefix>_<secret>`.
//!
//! The prefix (12 characters) is stored in clear and used to find the key; the
//! whole key is stored only as its SHA-256. Keys carry 256 random bits, so a
//! fast hash is the right one (as for GitHub or Stripe keys): there is nothing
//! to brute-force.
//!
//! ```
//! use tenantkit::api_key;
//!
//! let (key, prefix, hash) = api_key::generate();
//! assert!(key.starts_with("tk_"));
//! assert_eq!(api_key::prefix_of(&key), Some(prefix.as_str()));
//! assert!(api_key::matches(&key, &hash));
//! assert!(!api_key::matches("tk_aaaaaaaaaaaa_wrong", &hash));
//! ```

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX_LEN: usize = 12;
const PREFIX_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";

/// A new key: `(full key shown once, prefix, hex SHA-256 to store)`.
pub fn generate() -> (String, String, String) {
    let mut rng = rand::rng();
    let prefix: String = (0..PREFIX_LEN)
        .map(|_| PREFIX_ALPHABET[(rng.next_u32() as usize) % PREFIX_ALPHABET.len()] as char)
        .collect();
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let key = format!("tk_{prefix}_{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = hash(&key);
    (key, prefix, hash)
}

/// The prefix of a well-formed key.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("tk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == PREFIX_LEN
        && !secret.is_empty()
        && prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b)))
    .then_some(prefix)
}

/// Hex SHA-256 of a key.
pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `key` hashes to `stored_hash`, compared in constant time.
pub fn matches(key: &str, stored_hash: &str) -> bool {
    hash(key).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}
