//! Bearer-key authentication: every route but health, the OpenAPI document and signed URLs
//! needs a key. The header is parsed here; the node resolves the key. Each route's required
//! [`Permission`] is decided here, in [`permission`], and nowhere else; the node says which
//! roles have it.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use nullspace_core::Error;
use nullspace_node::{authorize, Permission, Principal};

use crate::error::ApiError;
use crate::AppState;

/// The authenticated caller.
pub struct Caller(pub Principal);

/// A refused caller: the error, with `Connection: close`. The request body is never read, so
/// the connection cannot be reused; saying so keeps a client from sending its next request on
/// a connection the server is closing.
pub struct Refused(ApiError);

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused(ApiError(e))
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        Refused(e)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut r = self.0.into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Caller, Refused> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
            Error::unauthenticated("missing API key: send `Authorization: Bearer <key>` (set NULLSPACE_API_KEY or run `nullspace login`)")
        })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Error::unauthenticated("malformed Authorization header: expected `Bearer <key>`")
            })?;
        let caller = node.authenticate(key).await?;
        if let Some(note) = parts.extensions.get::<crate::access::RequestNote>() {
            note.set_tenant(&caller.tenant_name);
        }
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        authorize(
            &caller,
            permission(&parts.method, &route),
            is_file_route(&route),
        )?;
        Ok(Caller(caller))
    }
}

/// Whether a route acts on one volume's files (what a volume token may reach): its file
/// routes (archive and signed-URL creation among them), tus uploads and watch.
pub fn is_file_route(route: &str) -> bool {
    route.starts_with("/v1/volumes/{name}/files")
        || route.starts_with("/v1/volumes/{name}/uploads")
        || route == "/v1/volumes/{name}/watch"
}

/// The permission a route (method and path template, as in the OpenAPI document) needs.
/// Reads are GET and HEAD, plus search (a POST only for its body); key creation and
/// revocation are `Keys`; `/v1/admin/…` is `Operator`; every other route changes something.
pub fn permission(method: &Method, route: &str) -> Permission {
    if route.starts_with("/v1/admin/") {
        Permission::Operator
    } else if route == "/v1/keys" && method == Method::POST
        || route == "/v1/keys/{id}" && method == Method::DELETE
        || route == "/v1/volumes/{name}/tokens"
    {
        Permission::Keys
    } else if method == Method::GET
        || method == Method::HEAD
        || route == "/v1/volumes/{name}/files/search" && method == Method::POST
    {
        Permission::Read
    } else {
        Permission::Write
    }
}
