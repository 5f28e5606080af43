//! What a store keeps of the keys it resolved, so that authentication costs no statement on
//! the hot path (issue 14), and the counter that says when that is still true.
//!
//! Every entry is tagged with the cache generation it was read under: a counter bumped in the
//! same transaction as every change that can make a resolved key stale (a revocation; volume
//! and sandbox changes bump it too, for the node's volume records). An entry is used only
//! while the generation has not moved, so a revocation acknowledged by any server is refused by
//! every server from the next request on. Expiry needs no bump: it is checked on every hit.
//! Only successful resolutions are kept (an unknown key costs its lookup, as before), at most
//! [`MAX_CACHED_KEYS`] of them.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::Principal;

/// Resolved keys a store keeps; one more empties the cache (a tenant rarely has this many
/// keys in use at once, and refilling costs one lookup per key).
pub const MAX_CACHED_KEYS: usize = 10_000;

/// A resolved key: who it is, and what makes it stop working.
#[derive(Clone)]
pub(crate) struct CachedKey {
    pub principal: Principal,
    pub expires_at: Option<DateTime<Utc>>,
    pub parent_expires_at: Option<DateTime<Utc>>,
    /// The last `last_used_at` written (refreshed at most once a minute, as without a cache).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl CachedKey {
    /// Whether the key (or the key that made it) has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
            || self.parent_expires_at.is_some_and(|e| e <= now)
    }
}

/// Resolved keys by the SHA-256 of the presented key (never the key itself).
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, CachedKey>>,
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedKey>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `hash` read under `generation`, if any.
    pub fn get(&self, hash: &str, generation: Option<u64>) -> Option<CachedKey> {
        generation?;
        let mut m = self.lock();
        match m.get(hash) {
            Some(e) if e.principal.generation == generation => Some(e.clone()),
            Some(_) => {
                m.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Keeps a resolved key (its principal carries the generation it was read under).
    pub fn insert(&self, hash: String, entry: CachedKey) {
        if entry.principal.generation.is_none() {
            return;
        }
        let mut m = self.lock();
        if m.len() >= MAX_CACHED_KEYS && !m.contains_key(&hash) {
            m.clear();
        }
        m.insert(hash, entry);
    }

    /// Notes that `last_used_at` was written for `hash`.
    pub fn used(&self, hash: &str, at: DateTime<Utc>) {
        if let Some(e) = self.lock().get_mut(hash) {
            e.last_used_at = Some(at);
        }
    }

    /// Forgets everything (this store changed something that may make entries stale).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many keys are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn entry(generation: u64) -> CachedKey {
        let generation = Some(generation);
        CachedKey {
            principal: Principal {
                tenant_id: "ten_1".into(),
                tenant_name: "default".into(),
                admin: false,
                role: Role::Member,
                key_id: "key_1".into(),
                token: None,
                generation,
            },
            expires_at: None,
            parent_expires_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn an_entry_serves_only_its_generation_and_the_cache_stays_bounded() {
        let c = KeyCache::default();
        c.insert("h".into(), entry(3));
        assert!(c.get("h", Some(3)).is_some());
        assert!(c.get("h", None).is_none(), "no generation, no hit");
        assert!(c.get("h", Some(4)).is_none(), "a moved generation misses");
        assert!(c.get("h", Some(3)).is_none(), "and the stale entry is gone");
        for i in 0..MAX_CACHED_KEYS + 5 {
            c.insert(format!("k{i}"), entry(1));
            assert!(c.len() <= MAX_CACHED_KEYS);
        }
        let now = Utc::now();
        let mut e = entry(1);
        e.parent_expires_at = Some(now);
        assert!(e.expired(now) && !entry(1).expired(now));
    }
}
