//! What both engines store and report the same way: ids, the clock, integer ranges, and the
//! messages of "not found" / "already exists".

use chrono::{DateTime, SubsecRound, Utc};
use nullspace_core::VolumeName;
use uuid::Uuid;

use crate::StateError;

/// A fresh id such as `vol_0190…`: UUIDv7, so ids sort roughly by creation time.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

/// The current time at microsecond precision, the finest PostgreSQL stores: both engines then
/// return exactly what they were given.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Both engines store signed 64-bit integers; byte counts beyond 2^63-1 cannot be stored.
pub(crate) fn to_i64(what: &str, v: u64) -> Result<i64, StateError> {
    i64::try_from(v)
        .map_err(|_| StateError::Internal(format!("{what} {v} is beyond the storable 2^63-1")))
}

pub(crate) fn to_u64(what: &str, v: i64) -> Result<u64, StateError> {
    u64::try_from(v).map_err(|_| StateError::Internal(format!("stored {what} {v} is negative")))
}

pub(crate) fn tenant_not_found(name: &str) -> StateError {
    StateError::NotFound(format!("tenant {name:?}"))
}

pub(crate) fn tenant_exists(name: &str) -> StateError {
    StateError::AlreadyExists(format!("tenant {name:?}"))
}

pub(crate) fn tenant_id_not_found(tenant_id: &str) -> StateError {
    StateError::NotFound(format!("tenant {tenant_id:?}"))
}

pub(crate) fn volume_not_found(name: &VolumeName) -> StateError {
    StateError::NotFound(format!("volume {:?}", name.as_str()))
}

pub(crate) fn volume_id_not_found(volume_id: &str) -> StateError {
    StateError::NotFound(format!("volume {volume_id:?}"))
}

pub(crate) fn volume_exists(name: &VolumeName) -> StateError {
    StateError::AlreadyExists(format!("volume {:?}", name.as_str()))
}

pub(crate) fn key_not_found(id: &str) -> StateError {
    StateError::NotFound(format!("key {id:?} not found"))
}

/// The only unique column of a key is its hash: say so without naming the key.
pub(crate) fn key_exists() -> StateError {
    StateError::AlreadyExists("API key".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_i64_are_refused() {
        assert_eq!(to_i64("x", 7).unwrap(), 7);
        assert!(matches!(
            to_i64("x", u64::MAX),
            Err(StateError::Internal(_))
        ));
        assert!(matches!(to_u64("x", -1), Err(StateError::Internal(_))));
    }

    #[test]
    fn now_keeps_microseconds_only() {
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
    }
}
