//! Names users choose: volumes, tenants, labels.

use std::collections::BTreeMap;
use std::fmt;

use crate::Error;

/// Labels attached to a volume: sorted so listings and JSON are stable.
pub type Labels = BTreeMap<String, String>;

fn check_name(kind: &str, s: &str) -> Result<(), Error> {
    let ok_len = (1..=63).contains(&s.len());
    let ok_first = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "invalid {kind} name {s:?}: use 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Validates and wraps a name.
            pub fn parse(s: &str) -> Result<Self, Error> {
                check_name($kind, s)?;
                Ok(Self(s.to_owned()))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A volume name: unique per tenant, 1-63 chars of `a-z 0-9 . _ -`, starting with a letter or digit.
    VolumeName,
    "volume"
);
name_type!(
    /// A tenant name, with the same rules as a volume name.
    TenantName,
    "tenant"
);

/// Most labels one volume can have.
pub const MAX_LABELS: usize = 64;

/// Checks a whole label set: at most [`MAX_LABELS`], each as [`validate_label`] says.
pub fn validate_labels<'a>(
    labels: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), Error> {
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid_argument(format!(
            "labels: at most {MAX_LABELS} per volume, not {}",
            labels.len()
        )));
    }
    for (k, v) in labels {
        validate_label(k, v)?;
    }
    Ok(())
}

/// Checks one label: key 1-63 chars of `A-Z a-z 0-9 . _ - /` starting with a letter or digit,
/// value at most 255 characters without control characters.
pub fn validate_label(key: &str, value: &str) -> Result<(), Error> {
    let key_ok = (1..=63).contains(&key.len())
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if !key_ok {
        return Err(Error::invalid_argument(format!(
            "invalid label key {key:?}: use 1-63 characters of letters, digits, '.', '_', '-' or '/', starting with a letter or digit"
        )));
    }
    if value.chars().count() > 255 || value.chars().any(char::is_control) {
        return Err(Error::invalid_argument(format!(
            "invalid value for label {key:?}: at most 255 characters, no control characters"
        )));
    }
    Ok(())
}

/// A `key=value` pair that a volume's labels must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    pub key: String,
    pub value: String,
}

impl LabelSelector {
    /// Parses `key=value`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (key, value) = s.split_once('=').ok_or_else(|| {
            Error::invalid_argument(format!("invalid label {s:?}: expected key=value"))
        })?;
        validate_label(key, value)?;
        Ok(LabelSelector {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Whether `labels` has this key with this value.
    pub fn matches(&self, labels: &Labels) -> bool {
        labels.get(&self.key) == Some(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names() {
        for good in ["a", "team-data", "0x", "a.b_c-d", &"a".repeat(63)] {
            VolumeName::parse(good).unwrap();
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "A",
            "a b",
            "a/b",
            "é",
            &"a".repeat(64),
            "a\0",
        ] {
            let e = VolumeName::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
            assert!(e.message.contains("volume name"), "{}", e.message);
        }
    }

    #[test]
    fn labels() {
        let sel = LabelSelector::parse("team=ml").unwrap();
        let mut l = Labels::new();
        assert!(!sel.matches(&l));
        l.insert("team".into(), "ml".into());
        assert!(sel.matches(&l));
        assert!(LabelSelector::parse("team").is_err());
        assert!(LabelSelector::parse("=x").is_err());
        assert!(LabelSelector::parse("k=a\nb").is_err());
        assert!(LabelSelector::parse("app.io/tier=").is_ok());
    }
}
