//! The web console: the static files of `console/` (plain ES modules, no build step), compiled
//! into the binary and served at `/console/` with a strict Content-Security-Policy. The console
//! is a client of the public `/v1` API like any other (docs/operating.md, "Web console"): this
//! module only hands out files and knows no key.
//!
//! The files are embedded with `include_bytes!` from one explicit table rather than a crate
//! (rust-embed, include_dir): there are a dozen of them, the table is the allowlist of what can
//! be served (nothing else under `console/` leaks out), and a unit test keeps the table and the
//! directory equal.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

/// Scripts, styles and images only from the server itself; fetches only to it (the API); no
/// inline script or style, no plugins, no framing, no forms posted elsewhere. `blob:` images
/// are previews the console fetched with its key.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/`, its media type, its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $media_type:expr) => {
        Asset {
            name: $name,
            media_type: $media_type,
            bytes: include_bytes!(concat!("../../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console serves (`console/README.md` is documentation, not served).
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("tus.js", JS),
    asset!("watch.js", JS),
    asset!("volumes.js", JS),
    asset!("files.js", JS),
    asset!("sandboxes.js", JS),
    asset!("admin.js", JS),
];

/// The console's routes: `/` and `/console` redirect to `/console/`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/console/") }))
        .route(
            "/console",
            get(|| async { Redirect::temporary("/console/") }),
        )
        .route("/console/", get(index))
        .route("/console/{*file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError(nullspace_core::Error::not_found(format!(
            "no such console file: {name}"
        )))
        .into_response();
    };
    let etag = format!("\"{:016x}\"", fnv1a(asset.bytes));
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.media_type)], asset.bytes).into_response()
    };
    let h = response.headers_mut();
    // Revalidated on every load (cheap: a 304), so a new binary's console is never mixed
    // with cached modules of the old one.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// FNV-1a, 64 bits: a stable content tag for `ETag` (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table and `console/` hold the same files: a new file is not forgotten, and a
    /// removed one does not break the build later.
    #[test]
    fn every_console_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../console");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("console/ exists")
            .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
            .filter(|n| n != "README.md")
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn unknown_files_and_traversal_are_not_found() {
        for name in ["../Cargo.toml", "README.md", "x.js", "", "/index.html"] {
            let r = serve(name, &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{name}");
        }
    }

    #[test]
    fn a_matching_etag_is_not_modified() {
        let first = serve("app.js", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, tag);
        let again = serve("app.js", &headers);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.headers().contains_key(CONTENT_SECURITY_POLICY));
    }
}
