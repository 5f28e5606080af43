//! Signed URLs: a download (GET) or upload (PUT) of one path of one volume, with no API key.
//!
//! The signature is HMAC-SHA256, with a secret only the server knows, over the method, the
//! tenant and volume ids, the normalised path and the expiry. Any change to the URL changes
//! what is verified; a volume deleted and made again under the same name has a new id, so old
//! URLs die with the old volume. Every failure is the same bare 403.

use std::fmt;
use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use nullspace_core::{Error, VolumeName, VolumePath};
use nullspace_volumes::WriteOptions;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::files::{parse_path, receive_file, stream_file};
use crate::AppState;

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
    pub fn load_or_create(path: &FsPath) -> std::io::Result<Signer> {
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

    fn mac(
        &self,
        method: &str,
        tenant_id: &str,
        volume_id: &str,
        path: &VolumePath,
        expires: i64,
    ) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{method}\n{tenant_id}\n{volume_id}\n{path}\n{expires}").as_bytes());
        mac
    }

    fn sign(
        &self,
        method: &str,
        tenant_id: &str,
        volume_id: &str,
        path: &VolumePath,
        expires: i64,
    ) -> String {
        hex::encode(
            self.mac(method, tenant_id, volume_id, path, expires)
                .finalize()
                .into_bytes(),
        )
    }

    /// Constant-time check of a presented signature.
    fn verify(
        &self,
        method: &str,
        tenant_id: &str,
        volume_id: &str,
        path: &VolumePath,
        expires: i64,
        sig: &str,
    ) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        self.mac(method, tenant_id, volume_id, path, expires)
            .verify_slice(&sig)
            .is_ok()
    }
}

/// Body of `POST /v1/volumes/{name}/files/url`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub path: String,
    /// `GET` (download) or `PUT` (upload of this path).
    #[serde(default = "get")]
    pub method: String,
    /// Seconds until the URL stops working: 1 to 604800 (7 days).
    pub expires_in: u64,
}

fn get() -> String {
    "GET".into()
}

/// A signed URL.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedUrl {
    pub url: String,
    pub method: String,
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/volumes/{name}/files/url", tag = "files", params(("name" = String, Path)),
    request_body = SignRequest, responses((status = 200, body = SignedUrl), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn sign(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<SignRequest>,
) -> ApiResult<axum::Json<SignedUrl>> {
    let v = app.volume(&caller.0, &name).await?;
    let path = parse_path("path", &req.path)?;
    let method = req.method.to_ascii_uppercase();
    if method != "GET" && method != "PUT" {
        return Err(Error::invalid_argument(format!(
            "method must be GET or PUT, not {:?}",
            req.method
        ))
        .into());
    }
    if req.expires_in == 0 || req.expires_in > MAX_EXPIRY_SECS {
        return Err(Error::invalid_argument(format!(
            "expires_in must be between 1 and {MAX_EXPIRY_SECS} seconds (7 days), not {}",
            req.expires_in
        ))
        .into());
    }
    let expires_at = Utc::now() + chrono::Duration::seconds(req.expires_in as i64);
    let expires = expires_at.timestamp();
    let sig = app
        .signer
        .sign(&method, &caller.0.tenant_id, &v.id, &path, expires);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:7420");
    let query = serde_urlencoded::to_string([
        ("path", path.as_str()),
        ("expires", &expires.to_string()),
        ("signature", &sig),
    ])
    .map_err(|e| Error::internal(e.to_string()))?;
    let url = format!(
        "http://{host}/v1/signed/{}/{}?{query}",
        caller.0.tenant_id, v.name
    );
    Ok(axum::Json(SignedUrl {
        url,
        method,
        expires_at,
    }))
}

/// `?path=&expires=&signature=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    pub path: Option<String>,
    pub expires: Option<String>,
    pub signature: Option<String>,
}

impl SignedQuery {
    /// Parses the raw query: exactly these three keys, each once; anything else is `None`
    /// (a bare 403), never a parser's message.
    fn parse(raw: Option<&str>) -> Option<SignedQuery> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw?).ok()?;
        let mut q = SignedQuery {
            path: None,
            expires: None,
            signature: None,
        };
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "path" => &mut q.path,
                "expires" => &mut q.expires,
                "signature" => &mut q.signature,
                _ => return None,
            };
            if slot.replace(v).is_some() {
                return None;
            }
        }
        Some(q)
    }
}

fn forbidden() -> Response {
    let e = ApiError(Error::permission_denied("invalid or expired signed URL"));
    let mut r = e.into_response();
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

/// Checks a signed request; `None` means 403 (whatever the reason).
async fn verified(
    app: &AppState,
    method: &Method,
    tenant_id: &str,
    volume: &str,
    raw: Option<&str>,
) -> Option<(nullspace_core::Volume, VolumePath)> {
    let q = SignedQuery::parse(raw)?;
    let (path, expires, sig) = (
        q.path.as_deref()?,
        q.expires.as_deref()?,
        q.signature.as_deref()?,
    );
    // Only the exact spellings that were signed: the normalised path, a decimal expiry and a
    // lower-case hex signature. Any other spelling is a changed URL.
    let parsed = VolumePath::parse(path).ok()?;
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if parsed.as_str() != path || !lower_hex(sig) || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    let now = Utc::now().timestamp();
    if expires <= now || expires - now > MAX_EXPIRY_SECS as i64 + 60 {
        return None;
    }
    let name = VolumeName::parse(volume).ok()?;
    let v = app.store.get_volume(tenant_id, &name).await.ok()?;
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    app.signer
        .verify(m, tenant_id, &v.id, &parsed, expires, sig)
        .then_some((app.live(v), parsed))
}

#[utoipa::path(get, path = "/v1/signed/{tenant}/{name}", tag = "files", security(),
    params(("tenant" = String, Path), ("name" = String, Path), SignedQuery),
    responses((status = 200, description = "file content"), (status = 206), (status = 403, body = ErrorBody)))]
pub async fn signed_get(
    State(app): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some((v, path)) = verified(&app, &Method::GET, &tenant, &name, q.as_deref()).await else {
        return forbidden();
    };
    let h = match app.handle(&v).await {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    stream_file(h, v.name, path, &headers, None, None)
        .await
        .into_response()
}

#[utoipa::path(put, path = "/v1/signed/{tenant}/{name}", tag = "files", security(),
    params(("tenant" = String, Path), ("name" = String, Path), SignedQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = nullspace_core::FileStat), (status = 403, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn signed_put(
    State(app): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let Some((v, path)) = verified(&app, &Method::PUT, &tenant, &name, q.as_deref()).await else {
        return forbidden();
    };
    let h = match app.handle(&v).await {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let opts = WriteOptions {
        overwrite: true,
        if_match: None,
    };
    match receive_file(h.clone(), v.name, path, opts, body).await {
        Ok(stat) => {
            app.persist_usage(&h).await;
            axum::Json(stat).into_response()
        }
        Err(e) => e.into_response(),
    }
}
