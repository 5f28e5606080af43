//! The router and its OpenAPI document, built from the same annotations so they cannot drift.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use nullspace_core::wire::{
    ChangeEvent, Health, ReplaceSummary, ReplacedFile, SearchMatch, SearchSummary, WatchGap,
    WatchOverflow, WhoAmI,
};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{admin, content, files, keys, sandboxes, signed, tus, volumes, watch, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "nullspace", description = "Durable shared volumes for sandboxes."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(
        ErrorBody, ChangeEvent, WatchGap, WatchOverflow, SearchMatch, SearchSummary,
        ReplaceSummary, ReplacedFile
    ))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[utoipa::path(get, path = "/v1/health", tag = "meta", security(), responses((status = 200, body = Health)))]
async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(get, path = "/v1/whoami", tag = "meta", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(caller: Caller) -> axum::Json<WhoAmI> {
    let p = caller.0;
    axum::Json(WhoAmI {
        tenant: p.tenant_name,
        tenant_id: p.tenant_id,
        admin: p.admin,
        role: p.role,
        key_id: p.key_id,
    })
}

fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(whoami))
        .routes(routes!(admin::create_tenant))
        .routes(routes!(admin::set_volume_cap))
        .routes(routes!(admin::get_limits, admin::set_limits))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::create_token))
        .routes(routes!(volumes::create_volume, volumes::list_volumes))
        .routes(routes!(volumes::get_volume, volumes::delete_volume))
        .routes(routes!(volumes::rename_volume))
        .routes(routes!(files::read_file, files::write_file))
        .routes(routes!(files::write_batch))
        .routes(routes!(files::mkdir))
        .routes(routes!(files::move_file))
        .routes(routes!(files::copy_file))
        .routes(routes!(files::remove))
        .routes(routes!(files::list))
        .routes(routes!(files::stat))
        .routes(routes!(files::exists))
        .routes(routes!(content::search))
        .routes(routes!(content::replace))
        .routes(routes!(content::edit))
        .routes(routes!(watch::watch))
        .routes(routes!(files::archive))
        .routes(routes!(signed::sign))
        .routes(routes!(signed::signed_get, signed::signed_put))
        .routes(routes!(tus::options, tus::create, tus::list))
        .routes(routes!(
            tus::head,
            tus::patch,
            tus::terminate,
            tus::options_upload
        ))
        .routes(routes!(
            sandboxes::create_sandbox,
            sandboxes::list_sandboxes
        ))
        .routes(routes!(sandboxes::get_sandbox, sandboxes::destroy_sandbox))
        .routes(routes!(sandboxes::exec))
        .routes(routes!(sandboxes::read_file, sandboxes::write_file))
        .routes(routes!(sandboxes::list_files))
        .routes(routes!(
            sandboxes::attach,
            sandboxes::detach,
            sandboxes::list_attachments
        ))
        .routes(routes!(sandboxes::pause))
        .routes(routes!(sandboxes::resume))
        .routes(routes!(sandboxes::hibernate))
        .routes(routes!(sandboxes::fork))
        .split_for_parts()
}

/// The OpenAPI document of every route the server has, completed by
/// [`crate::openapi_contract`].
pub fn openapi_document() -> serde_json::Value {
    document(parts().1)
}

fn document(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    crate::openapi_contract::complete(&mut doc);
    doc
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, doc) = parts();
    let doc = std::sync::Arc::new(document(doc));
    api.route(
        "/v1/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json((*doc).clone()) }
        }),
    )
    .merge(crate::console::routes())
    .fallback(fallback)
    .method_not_allowed_fallback(method_not_allowed)
    .with_state(state)
}

async fn fallback(State(_): State<AppState>, uri: axum::http::Uri) -> ApiError {
    ApiError(nullspace_core::Error::not_found(format!(
        "no such route: {}",
        uri.path()
    )))
}

async fn method_not_allowed() -> impl IntoResponse {
    let body = ErrorBody {
        error: crate::error::ErrorDetail {
            code: "invalid_argument".into(),
            message: "method not allowed on this route".into(),
            retryable: false,
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body))
}
