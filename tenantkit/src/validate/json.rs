//! The JSON shape rule: a document is read as strict JSON before anything is
//! taken from it. No object holds a key twice (at any depth: a parser that
//! keeps the last one and a reader that keeps the first would see different
//! documents), and no key or string holds a NUL character (the text rule,
//! [`super::text`]). A violation names the path where it was found.
//!
//! ```
//! use tenantkit::validate::json::{self, Kind};
//!
//! assert_eq!(json::check(br#"{"a": [1, {"b": "x"}]}"#).unwrap(), Kind::Object);
//! let twice = json::check(br#"{"metadata": {"k": 1, "k": 2}}"#).unwrap_err();
//! assert_eq!(twice.path, "metadata.k");
//! let nul = json::check(br#"[{"name": "a\u0000b"}]"#).unwrap_err();
//! assert_eq!(nul.path, "[0].name");
//! assert!(nul.to_string().contains("NUL"));
//! ```

use std::{cell::RefCell, collections::HashSet, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a document's top level is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{...}`
    Object,
    /// `[...]`
    Array,
    /// A string, number, boolean or `null`.
    Scalar,
}

/// Why a document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// Where, as `field.inner[3].key` (empty for the document itself).
    pub path: String,
    /// What is wrong, naming the path.
    pub message: String,
    /// Whether the text is not JSON at all (a syntax error), rather than
    /// JSON that breaks the rule.
    pub syntax: bool,
}

/// Checks `body` against the rule and says what its top level is.
pub fn check(body: &[u8]) -> Result<Kind, Refused> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = Node {
        path: &Path::Root,
        found: &found,
    }
    .deserialize(&mut de)
    .and_then(|kind| de.end().map(|()| kind));
    match walked {
        Ok(kind) => Ok(kind),
        Err(e) => Err(found.into_inner().unwrap_or_else(|| Refused {
            path: String::new(),
            message: format!("the body is not valid JSON: {e}"),
            syntax: true,
        })),
    }
}

/// The path to a node, built only when something is refused.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => write!(f, "{key}"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct Node<'a> {
    path: &'a Path<'a>,
    found: &'a RefCell<Option<Refused>>,
}

impl Node<'_> {
    fn refuse<E: de::Error>(&self, path: &Path<'_>, what: &str) -> E {
        let path = path.to_string();
        let at = if path.is_empty() {
            "the body".to_owned()
        } else {
            format!("`{path}`")
        };
        let message = format!("{at} {what}");
        *self.found.borrow_mut() = Some(Refused {
            path,
            message: message.clone(),
            syntax: false,
        });
        E::custom(message)
    }

    fn text<E: de::Error>(&self, path: &Path<'_>, s: &str) -> Result<(), E> {
        if s.contains('\0') {
            Err(self.refuse(path, "must not contain a NUL character (U+0000)"))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Kind;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Kind, E> {
        self.text(self.path, s).map(|()| Kind::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut index = 0;
        loop {
            let path = Path::Index(self.path, index);
            let node = Node {
                path: &path,
                found: self.found,
            };
            if seq.next_element_seed(node)?.is_none() {
                return Ok(Kind::Array);
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let path = Path::Key(self.path, &key);
            self.text(&path, &key)?;
            if seen.contains(&*key) {
                return Err(self.refuse(&path, "is given twice; a key may appear once"));
            }
            map.next_value_seed(Node {
                path: &path,
                found: self.found,
            })?;
            seen.insert(key);
        }
        Ok(Kind::Object)
    }
}

/// Checks a parsed JSON value for NUL characters (duplicate keys cannot
/// survive parsing), for values built in code rather than read from a body.
pub fn check_value(value: &serde_json::Value) -> Result<(), Refused> {
    walk(&Path::Root, value)
}

/// Like [`check_value`], with `field` as the path's first part.
pub fn check_field(field: &str, value: &serde_json::Value) -> Result<(), Refused> {
    walk(&Path::Key(&Path::Root, field), value)
}

fn walk(path: &Path<'_>, value: &serde_json::Value) -> Result<(), Refused> {
    let nul = |path: &Path<'_>| {
        let path = path.to_string();
        Refused {
            message: format!("`{path}` must not contain a NUL character (U+0000)"),
            path,
            syntax: false,
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Err(nul(path)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| walk(&Path::Index(path, i), v)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let here = Path::Key(path, k);
            if k.contains('\0') {
                return Err(nul(&here));
            }
            walk(&here, v)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(check(b" {} ").unwrap(), Kind::Object);
        assert_eq!(check(b"[1,2]").unwrap(), Kind::Array);
        assert_eq!(check(b"\"x\"").unwrap(), Kind::Scalar);
        assert_eq!(check(b"null").unwrap(), Kind::Scalar);
    }

    #[test]
    fn syntax_errors_are_told_apart() {
        for bad in [&b""[..], b"{", b"{\"a\":}", b"{} {}", b"[1,]"] {
            let e = check(bad).unwrap_err();
            assert!(e.syntax, "{bad:?}: {e}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let e = check(br#"{"a": 1, "a": 2}"#).unwrap_err();
        assert_eq!((e.path.as_str(), e.syntax), ("a", false));
        let e = check(br#"{"x": [{"y": {"k": 1, "j": 2, "k": 3}}]}"#).unwrap_err();
        assert_eq!(e.path, "x[0].y.k");
        // The same key in sibling objects is fine; escapes compare decoded.
        assert!(check(br#"[{"k": 1}, {"k": 2}]"#).is_ok());
        let e = check(br#"{"k": 1, "\u006b": 2}"#).unwrap_err();
        assert_eq!(e.path, "k");
    }

    #[test]
    fn nul_is_refused_in_keys_and_strings() {
        let e = check(br#"{"a\u0000": 1}"#).unwrap_err();
        assert!(e.message.contains("NUL"), "{e}");
        let e = check(br#"{"a": ["ok", "b\u0000"]}"#).unwrap_err();
        assert_eq!(e.path, "a[1]");
        // Other control characters are JSON's business, not this rule's.
        assert!(check(br#"{"a": "tab\there"}"#).is_ok());
    }

    #[test]
    fn parsed_values() {
        let v = serde_json::json!({"a": [{"b": "x\u{0}"}]});
        assert_eq!(check_value(&v).unwrap_err().path, "a[0].b");
        assert_eq!(
            check_field("metadata", &serde_json::json!({"k": "\u{0}"}))
                .unwrap_err()
                .path,
            "metadata.k"
        );
        assert!(check_value(&serde_json::json!({"a": 1})).is_ok());
    }
}
