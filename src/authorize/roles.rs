//! Where roles are read from ([`Roles`]), and reading them: one pass over
//! the verified payload that follows the path and skips everything else.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::json::Str;

/// Where in the token a role list is read: the path of member names from
/// the top-level claims object to an array of strings.
///
/// The path is a list of names, never a dotted string, so a client id with
/// dots in it (`my.client`) stays one name. Each path is its own rule: a
/// realm role never satisfies a client-role requirement, nor the other way
/// round (Keycloak issues both in one token; merging them hands a client's
/// permissions to anyone holding a realm role of the same name).
///
/// | constructor | reads |
/// |---|---|
/// | [`Roles::claim("roles")`](Roles::claim) | `{"roles": […]}` (also `groups`, `cognito:groups`, …) |
/// | [`Roles::realm()`](Roles::realm) | Keycloak realm roles, `{"realm_access": {"roles": […]}}` |
/// | [`Roles::client("my.client")`](Roles::client) | Keycloak client roles, `{"resource_access": {"my.client": {"roles": […]}}}` |
/// | [`Roles::path(["a", "b"])`](Roles::path) | `{"a": {"b": […]}}` |
///
/// The value at the path must be an array of strings (or one string, one
/// role). Anything else, a missing member, or a name repeated along the
/// path, grants no role.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Roles {
    path: Vec<String>,
}

impl Roles {
    /// A top-level claim: `roles`, `groups`, `cognito:groups`, …
    pub fn claim(name: impl Into<String>) -> Self {
        Roles {
            path: vec![name.into()],
        }
    }

    /// Keycloak realm roles: `realm_access.roles`.
    pub fn realm() -> Self {
        Self::path(["realm_access", "roles"])
    }

    /// Keycloak client roles of `client_id`: `resource_access.<client_id>.roles`.
    pub fn client(client_id: impl Into<String>) -> Self {
        Roles {
            path: vec!["resource_access".into(), client_id.into(), "roles".into()],
        }
    }

    /// Any nested member, one name per level.
    pub fn path<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Roles {
            path: names.into_iter().map(Into::into).collect(),
        }
    }

    /// The member names, outermost first.
    pub fn names(&self) -> &[String] {
        &self.path
    }

    /// Why this path cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.path.is_empty() {
            Some("a role path needs at least one member name")
        } else if self.path.iter().any(String::is_empty) {
            Some("a role path cannot contain an empty member name")
        } else {
            None
        }
    }

    /// The roles the payload grants at this path; `None` when the path
    /// holds no array of strings (or repeats a name along the way).
    pub(crate) fn read<'p>(&self, payload: &'p [u8]) -> Option<Vec<Cow<'p, str>>> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        AtPath(&self.path).deserialize(&mut de).ok().flatten()
    }
}

/// Shown as a JSON Pointer (RFC 6901), which cannot be misread:
/// `/resource_access/my.client/roles`.
impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for name in &self.path {
            write!(f, "/{}", name.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Roles({self})")
    }
}

/// The value at the rest of a path: `None` when a member is absent.
struct AtPath<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for AtPath<'_> {
    type Value = Option<Vec<Cow<'de, str>>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => deserializer.deserialize_any(List).map(Some),
            Some((name, rest)) => deserializer.deserialize_map(Member { name, rest }),
        }
    }
}

/// One level of the path: finds `name` in an object.
struct Member<'p> {
    name: &'p str,
    rest: &'p [String],
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Option<Vec<Cow<'de, str>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with `{}`", self.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut seen = false;
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            if key != self.name {
                map.next_value::<IgnoredAny>()?;
            } else if seen {
                // Which of two values counts is the reader's guess: none does.
                return Err(de::Error::custom("duplicate member"));
            } else {
                seen = true;
                found = map.next_value_seed(AtPath(self.rest))?;
            }
        }
        Ok(found)
    }
}

/// The role list at the end of the path.
struct List;

impl<'de> Visitor<'de> for List {
    type Value = Vec<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(vec![Cow::Borrowed(v)])
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(vec![Cow::Owned(v.to_owned())])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut roles = Vec::new();
        while let Some(Str(role)) = seq.next_element::<Str<'de>>()? {
            roles.push(role);
        }
        Ok(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYCLOAK: &[u8] = br#"{
        "sub": "u",
        "realm_access": {"roles": ["admin", "offline_access"]},
        "resource_access": {
            "my.client": {"roles": ["editor"]},
            "my": {"client": {"roles": ["nested"]}},
            "other": {"roles": ["admin"]}
        },
        "groups": ["/staff"],
        "role": "solo"
    }"#;

    fn read(roles: &Roles) -> Option<Vec<String>> {
        roles
            .read(KEYCLOAK)
            .map(|list| list.into_iter().map(Cow::into_owned).collect())
    }

    #[test]
    fn each_path_reads_its_own_list() {
        assert_eq!(read(&Roles::realm()).unwrap(), ["admin", "offline_access"]);
        assert_eq!(read(&Roles::client("my.client")).unwrap(), ["editor"]);
        assert_eq!(read(&Roles::client("other")).unwrap(), ["admin"]);
        assert_eq!(read(&Roles::claim("groups")).unwrap(), ["/staff"]);
        assert_eq!(read(&Roles::claim("role")).unwrap(), ["solo"]);
        assert_eq!(
            read(&Roles::path(["resource_access", "my", "client", "roles"])).unwrap(),
            ["nested"]
        );
    }

    #[test]
    fn absent_or_wrongly_typed_paths_grant_nothing() {
        assert_eq!(read(&Roles::client("missing")), None);
        assert_eq!(read(&Roles::claim("roles")), None);
        assert_eq!(read(&Roles::path(["sub", "roles"])), None);
        assert_eq!(read(&Roles::path(["realm_access"])), None);
        let mixed = br#"{"roles": ["a", 1]}"#;
        assert_eq!(Roles::claim("roles").read(mixed), None);
        let number = br#"{"roles": 7}"#;
        assert_eq!(Roles::claim("roles").read(number), None);
    }

    #[test]
    fn a_name_repeated_along_the_path_grants_nothing() {
        let twice = br#"{"realm_access": {"roles": ["user"], "roles": ["admin"]}}"#;
        assert_eq!(Roles::realm().read(twice), None);
        let escaped = br#"{"realm_access": {"roles": ["user"], "r\u006fles": ["admin"]}}"#;
        assert_eq!(Roles::realm().read(escaped), None);
    }

    #[test]
    fn escaped_names_and_roles_are_read_unescaped() {
        let payload = br#"{"realm_\u0061ccess": {"roles": ["\u0061dmin"]}}"#;
        let roles = Roles::realm().read(payload).unwrap();
        assert_eq!(roles, ["admin"]);
    }

    #[test]
    fn paths_show_unambiguously_and_refuse_empty_names() {
        assert_eq!(
            Roles::client("my.client").to_string(),
            "/resource_access/my.client/roles"
        );
        assert_eq!(Roles::claim("a/b~c").to_string(), "/a~1b~0c");
        assert!(Roles::realm().problem().is_none());
        assert!(Roles::path(Vec::<String>::new()).problem().is_some());
        assert!(Roles::client("").problem().is_some());
    }
}
