//! [`Secret`]: a string that never shows up in `Debug` output, logs or
//! serialized data (it implements `Deserialize` only).
//!
//! ```
//! use tenantkit::Secret;
//!
//! let key = Secret::from("sk_live_123".to_owned());
//! assert_eq!(format!("{key:?}"), "[redacted]");
//! assert_eq!(key.expose(), "sk_live_123");
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret (API key, signing secret, password): deserialized like a string,
/// never printed and never serialized.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}
