//! Namespace rules: `^[a-z0-9_]+(\.[a-z0-9_]+)*$`, at most 255 characters. Pure.

pub const MAX_NAMESPACE_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    #[error("namespace must not be empty")]
    Empty,
    #[error("namespace is longer than {MAX_NAMESPACE_LEN} characters")]
    TooLong,
    #[error("namespace must match ^[a-z0-9_]+(\\.[a-z0-9_]+)*$ (lowercase letters, digits, '_', dot-separated)")]
    Pattern,
}

/// A validated namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    pub fn parse(s: &str) -> Result<Self, NamespaceError> {
        if s.is_empty() {
            return Err(NamespaceError::Empty);
        }
        if s.len() > MAX_NAMESPACE_LEN {
            return Err(NamespaceError::TooLong);
        }
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        };
        if !s.split('.').all(segment_ok) {
            return Err(NamespaceError::Pattern);
        }
        Ok(Namespace(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["omninode.services.metadata", "a", "a_b.c1", "0.1.2"] {
            assert!(Namespace::parse(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("", NamespaceError::Empty),
            ("A.b", NamespaceError::Pattern),
            ("a..b", NamespaceError::Pattern),
            (".a", NamespaceError::Pattern),
            ("a.", NamespaceError::Pattern),
            ("a-b", NamespaceError::Pattern),
            ("a b", NamespaceError::Pattern),
            ("ns'; DROP TABLE x;--", NamespaceError::Pattern),
        ];
        for (bad, err) in cases {
            assert_eq!(Namespace::parse(bad), Err(err), "{bad}");
        }
        assert_eq!(
            Namespace::parse(&"a".repeat(256)),
            Err(NamespaceError::TooLong)
        );
        assert!(Namespace::parse(&"a".repeat(255)).is_ok());
    }
}
