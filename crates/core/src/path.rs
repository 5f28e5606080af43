//! `VolumePath`: an absolute, normalised path inside a volume.
//!
//! Parsing is the first of two guards: it refuses `..`, NUL and over-long input, so that what
//! reaches the file system is a plain list of names. The second guard is the kernel-enforced
//! resolver in `nullspace-volumes`, which also defeats symlinks.

use std::fmt;

use crate::Error;

/// Longest path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single name accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// An absolute path inside a volume, normalised: `/` or `/a/b` (no `.`, `..`, `//`, trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumePath(String);

impl VolumePath {
    /// The volume's root directory.
    pub fn root() -> VolumePath {
        VolumePath("/".to_owned())
    }

    /// Parses a user-supplied path. It must be absolute; `.` and repeated `/` are dropped;
    /// `..`, NUL bytes, names over 255 bytes and paths over 4096 bytes are refused.
    pub fn parse(input: &str) -> Result<VolumePath, Error> {
        if !input.starts_with('/') {
            return Err(Error::invalid_argument(format!(
                "invalid path {input:?}: paths must be absolute inside the volume, like /dir/file.txt"
            )));
        }
        if input.len() > MAX_PATH_BYTES {
            return Err(Error::invalid_argument(format!(
                "invalid path: longer than {MAX_PATH_BYTES} bytes ({} bytes)",
                input.len()
            )));
        }
        VolumePath::root().join_relative_checked(input, input)
    }

    /// Joins a relative path (as found in an archive) below this one, with the same checks.
    pub fn join_relative(&self, rel: &str) -> Result<VolumePath, Error> {
        self.join_relative_checked(rel, rel)
    }

    fn join_relative_checked(&self, rel: &str, shown: &str) -> Result<VolumePath, Error> {
        let mut out = if self.is_root() {
            String::new()
        } else {
            self.0.clone()
        };
        for name in rel.split('/') {
            match name {
                "" | "." => continue,
                ".." => {
                    return Err(Error::invalid_argument(format!(
                        "invalid path {shown:?}: '..' is not allowed"
                    )))
                }
                _ => {}
            }
            if name.contains('\0') {
                return Err(Error::invalid_argument(format!(
                    "invalid path {:?}: contains a NUL byte",
                    shown.replace('\0', "\\0")
                )));
            }
            if name.len() > MAX_NAME_BYTES {
                return Err(Error::invalid_argument(format!(
                    "invalid path: the name {:?}… is longer than {MAX_NAME_BYTES} bytes",
                    name.chars().take(16).collect::<String>()
                )));
            }
            out.push('/');
            out.push_str(name);
        }
        if out.is_empty() {
            out.push('/');
        }
        if out.len() > MAX_PATH_BYTES {
            return Err(Error::invalid_argument(format!(
                "invalid path: longer than {MAX_PATH_BYTES} bytes"
            )));
        }
        Ok(VolumePath(out))
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path as a string, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/` (empty for the root).
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The names from the root down.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/').filter(|s| !s.is_empty())
    }

    /// The last name, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The containing directory, or `None` for the root.
    pub fn parent(&self) -> Option<VolumePath> {
        if self.is_root() {
            return None;
        }
        let idx = self.0.rfind('/').unwrap_or(0);
        Some(if idx == 0 {
            VolumePath::root()
        } else {
            VolumePath(self.0[..idx].to_owned())
        })
    }

    /// Appends one name (which must not contain `/`; used when walking a real directory).
    pub fn child(&self, name: &str) -> VolumePath {
        debug_assert!(!name.contains('/') && name != ".." && name != ".");
        if self.is_root() {
            VolumePath(format!("/{name}"))
        } else {
            VolumePath(format!("{}/{name}", self.0))
        }
    }

    /// Whether `self` is `other` or lies below it, comparing whole names.
    pub fn starts_with(&self, other: &VolumePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// This path relative to an ancestor (`/a/b/c` under `/a` is `b/c`), if it is below it.
    pub fn strip_prefix(&self, ancestor: &VolumePath) -> Option<&str> {
        if !self.starts_with(ancestor) {
            return None;
        }
        let rest = if ancestor.is_root() {
            &self.0[1..]
        } else {
            &self.0[ancestor.0.len()..]
        };
        Some(rest.trim_start_matches('/'))
    }
}

/// As its string: `"/a/b"`.
impl serde::Serialize for VolumePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Parsed with [`VolumePath::parse`]: a stored or sent path is checked like any other.
impl<'de> serde::Deserialize<'de> for VolumePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<VolumePath, D::Error> {
        let s = String::deserialize(d)?;
        VolumePath::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl fmt::Display for VolumePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VolumePath {
        VolumePath::parse(s).unwrap()
    }

    #[test]
    fn normalises() {
        assert_eq!(p("/").as_str(), "/");
        assert_eq!(p("//a//./b/").as_str(), "/a/b");
        assert_eq!(p("/./.").as_str(), "/");
        assert_eq!(p("/a/b").parent().unwrap().as_str(), "/a");
        assert_eq!(p("/a").parent().unwrap().as_str(), "/");
        assert_eq!(p("/a/b").file_name(), Some("b"));
        assert_eq!(p("/").file_name(), None);
        assert_eq!(p("/a/b").components().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            p("/%2e%2e").as_str(),
            "/%2e%2e",
            "percent signs are ordinary characters"
        );
    }

    #[test]
    fn refuses_hostile_input() {
        for bad in [
            "",
            "a",
            "a/b",
            "./a",
            "../a",
            "/..",
            "/a/..",
            "/a/../..",
            "/a/../../etc",
            "/..//x",
            "/a/b/../../../x",
            "/a\0b",
            "\0",
            "/ok/\0",
            "~/x",
            "\\..\\x",
        ] {
            let e = VolumePath::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidArgument, "{bad:?}");
        }
        assert!(VolumePath::parse(&format!("/{}", "n".repeat(256))).is_err());
        assert!(VolumePath::parse(&format!("/{}", "n".repeat(255))).is_ok());
        assert!(VolumePath::parse(&"/a".repeat(2049)).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(p("/a/b").starts_with(&p("/a")));
        assert!(!p("/ab").starts_with(&p("/a")));
        assert!(p("/ab").starts_with(&p("/")));
        assert_eq!(p("/a/b/c").strip_prefix(&p("/a")), Some("b/c"));
        assert_eq!(p("/a").strip_prefix(&p("/a")), Some(""));
        assert_eq!(p("/a/b").strip_prefix(&p("/")), Some("a/b"));
        assert_eq!(p("/x").strip_prefix(&p("/a")), None);
        assert_eq!(p("/d").join_relative("x/./y").unwrap().as_str(), "/d/x/y");
        assert!(p("/d").join_relative("../y").is_err());
    }
}
