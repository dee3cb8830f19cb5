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
/// for the usual dozen.
pub(crate) struct SeenKeys<'de> {
    few: [Cow<'de, str>; LINEAR_LIMIT],
    len: usize,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl Default for SeenKeys<'_> {
    fn default() -> Self {
        SeenKeys {
            few: std::array::from_fn(|_| Cow::Borrowed("")),
            len: 0,
            many: None,
        }
    }
}

impl<'de> SeenKeys<'de> {
    /// Records `key`; `false` when it was already there.
    pub(crate) fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few[..self.len].contains(&key) {
            return false;
        }
        if self.len < LINEAR_LIMIT {
            self.few[self.len] = key;
            self.len += 1;
        } else {
            let mut many: HashSet<_> = self.few.iter_mut().map(std::mem::take).collect();
            many.insert(key);
            self.many = Some(many);
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
    }
}
