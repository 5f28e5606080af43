//! Sandbox and attachment states: one vocabulary for the runtime, the store and the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Lifecycle state of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// Processes run; volume mounts are live.
    Running,
    /// Processes frozen in memory; volume mounts released.
    Paused,
    /// Memory freed; the writable layer (and on runtimes that checkpoint, the process state)
    /// is kept; volume mounts released.
    Hibernated,
}

/// State of one volume attachment of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentState {
    /// Mounted in the sandbox now.
    Mounted,
    /// Intent kept, not mounted (paused, hibernated, detached, destroyed).
    Released,
    /// Mounting failed; the record's `error` says why. Nothing is mounted.
    Failed,
}

macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every state.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The wire (and database) name, e.g. `running`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// Parses a wire name.
            pub fn parse(s: &str) -> Option<$ty> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_names!(SandboxState { Running => "running", Paused => "paused", Hibernated => "hibernated" });
wire_names!(AttachmentState { Mounted => "mounted", Released => "released", Failed => "failed" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in SandboxState::ALL {
            assert_eq!(SandboxState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for s in AttachmentState::ALL {
            assert_eq!(AttachmentState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(SandboxState::parse("deleting"), None);
    }
}
