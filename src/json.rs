//! Strict JSON helpers: object keys borrowed where possible, and a
//! duplicate-member detector (RFC 7515 §4 / RFC 7519 §4 want duplicates
//! rejected; serde_json keeps the last one silently).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A JSON string borrowed from the input when it has no escapes.
pub(crate) struct Str<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// Up to this many members are compared linearly; past it a hash set keeps
/// the work linear in the document size.
const LINEAR_LIMIT: usize = 16;

/// Remembers the member names of one JSON object, without allocating
/// for the usual dozen: names borrowed from the input (no escapes) are kept
/// as slices with a fingerprint; the rare escaped name goes to a vector.
pub(crate) struct SeenKeys<'de> {
    few: [(u64, &'de str); LINEAR_LIMIT],
    len: usize,
    escaped: Vec<String>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl Default for SeenKeys<'_> {
    fn default() -> Self {
        SeenKeys {
            few: [(0, ""); LINEAR_LIMIT],
            len: 0,
            escaped: Vec::new(),
            many: None,
        }
    }
}

/// Length and first seven bytes: names that differ there (nearly all
/// claim names do) are told apart without a string comparison.
fn fingerprint(key: &str) -> u64 {
    // Shifts rather than a copy into a buffer: a variable-length copy
    // would be a memmove call on every member.
    let head = key
        .bytes()
        .take(7)
        .enumerate()
        .fold(0u64, |print, (i, b)| print | u64::from(b) << (8 * i));
    head | (key.len() as u64) << 56
}

impl<'de> SeenKeys<'de> {
    /// Records `key`; `false` when it was already there.
    pub(crate) fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        let print = fingerprint(&key);
        let seen = self.few[..self.len]
            .iter()
            .any(|&(p, k)| p == print && k == key)
            || self.escaped.iter().any(|k| *k == *key);
        if seen {
            return false;
        }
        if self.len + self.escaped.len() >= LINEAR_LIMIT {
            let mut many: HashSet<Cow<'de, str>> = self.few[..self.len]
                .iter()
                .map(|&(_, k)| Cow::Borrowed(k))
                .chain(self.escaped.drain(..).map(Cow::Owned))
                .collect();
            many.insert(key);
            self.many = Some(many);
            return true;
        }
        match key {
            Cow::Borrowed(key) => {
                self.few[self.len] = (print, key);
                self.len += 1;
            }
            Cow::Owned(key) => self.escaped.push(key),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_before_and_after_the_switch_to_hashing() {
        let mut seen = SeenKeys::default();
        for i in 0..100 {
            assert!(seen.insert(Cow::Owned(i.to_string())));
        }
        assert!(!seen.insert(Cow::Borrowed("3")));
        assert!(!seen.insert(Cow::Borrowed("99")));
        let mut seen = SeenKeys::default();
        assert!(seen.insert(Cow::Borrowed("a")));
        assert!(!seen.insert(Cow::Borrowed("a")));
        // Same fingerprint (length and first seven bytes), different names.
        assert!(seen.insert(Cow::Borrowed("abcdefgX")));
        assert!(seen.insert(Cow::Borrowed("abcdefgY")));
        assert!(!seen.insert(Cow::Owned("abcdefgY".into())));
        // A length of 256 wraps the length byte: still compared in full.
        assert!(seen.insert(Cow::Owned("z".repeat(256))));
        assert!(seen.insert(Cow::Owned("z".to_owned())));
    }
}
