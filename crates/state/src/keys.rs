//! API keys: generated, hashed for storage, never shown by `Debug`.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A plain-text API key as presented by a client. Its `Debug` form is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a presented key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// A fresh random key: `nsk_` and 48 hex digits (192 bits).
    pub fn generate() -> ApiKey {
        let mut b = [0u8; 24];
        rand::rng().fill_bytes(&mut b);
        ApiKey(format!("nsk_{}", hex::encode(b)))
    }

    /// The secret itself, for showing to its owner once or sending in a header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the key, hex: what is stored. Keys are long random strings, so a fast hash
    /// is enough (there is nothing to brute-force as there would be with a password).
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// Short lookup handle derived from the hash (first 16 hex digits), indexed in the store;
    /// the full hash is then compared in constant time.
    pub fn lookup_id(&self) -> String {
        self.hash()[..16].to_owned()
    }

    /// What may be shown of the key to recognise it: `nsk_` and its first 8 hex digits
    /// (32 of its 192 bits).
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(12).collect()
    }

    /// Constant-time comparison of this key's hash with a stored hash.
    pub fn matches_hash(&self, stored_hash: &str) -> bool {
        self.hash().as_bytes().ct_eq(stored_hash.as_bytes()).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_hash_matches() {
        let k = ApiKey::generate();
        assert!(k.expose().starts_with("nsk_") && k.expose().len() == 52);
        assert!(!format!("{k:?}").contains(k.expose()));
        assert!(k.matches_hash(&k.hash()));
        assert!(!ApiKey::new("other").matches_hash(&k.hash()));
        assert_eq!(k.lookup_id().len(), 16);
    }
}
