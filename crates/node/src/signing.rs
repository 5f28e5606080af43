//! The signatures of signed URLs: HMAC-SHA256, with a secret only the servers know, over the
//! method, the tenant and volume ids, the normalised path and the expiry. Any change to a
//! signed field changes what is verified; a volume deleted and made again under the same name
//! has a new id, so old URLs die with the old volume. (The URL itself — its query and the
//! exact spellings accepted — is the API's.)

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use nullspace_core::VolumePath;
use sha2::Sha256;

/// Longest lifetime of a signed URL.
pub const MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// The server's signing secret. `Debug` never shows it.
pub struct Signer {
    key: Vec<u8>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// Loads the secret from `path`, creating it (32 random bytes, mode 0600) on first start.
    /// Servers sharing a data dir share it, so any of them can verify any URL.
    pub fn load_or_create(path: &Path) -> std::io::Result<Signer> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read(path) {
            Ok(key) if key.len() >= 32 => return Ok(Signer { key }),
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is too short",
                    path.display()
                )))
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let mut key = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()?;
        // Another server may have won the race: keep whichever key landed first.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(Signer { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                Ok(Signer {
                    key: std::fs::read(path)?,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A signer with a given key (tests).
    pub fn from_key(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    fn mac(&self, f: &Fields<'_>) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        let Fields {
            method,
            tenant_id,
            volume_id,
            path,
            expires,
            scope,
        } = f;
        mac.update(format!("{method}\n{tenant_id}\n{volume_id}\n{path}\n{expires}").as_bytes());
        // A URL made by a volume token with a path is confined to that directory too (the
        // whole volume's URLs sign what they always signed).
        if !scope.is_root() {
            mac.update(format!("\nscope {scope}").as_bytes());
        }
        mac
    }

    /// The lower-case hex signature of these fields.
    pub fn sign(&self, f: &Fields<'_>) -> String {
        hex::encode(self.mac(f).finalize().into_bytes())
    }

    /// Constant-time check of a presented signature.
    pub fn verify(&self, f: &Fields<'_>, sig: &str) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        self.mac(f).verify_slice(&sig).is_ok()
    }
}

/// What a signature covers: the method, the tenant and volume ids, the normalised path, the
/// expiry, and the directory the URL is confined to (`/`: the whole volume).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub method: &'a str,
    pub tenant_id: &'a str,
    pub volume_id: &'a str,
    pub path: &'a VolumePath,
    pub expires: i64,
    pub scope: &'a VolumePath,
}
