//! Every API route, in one table: each is built from its handler's OpenAPI annotation (so
//! the router and the document can never disagree) and grouped under the [`Permission`]
//! that guards it, which is stamped into the document too (`x-custody-permission`). A route
//! is public only by being listed in [`public`]; the route-walking security tests read the
//! permission each route declares from the same document.

use std::sync::Arc;

use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse as _, Response};
use custody_app::Permission;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::{ServerState, access, api, exceptions, governance, keyring, ledger, metrics};

/// The document's frame: what custody's API is, and how callers authenticate.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "custody",
        description = "A chain of custody from source commit to running release: the API behind identities, the deploy gate and the ledger's public face. Every error is JSON {\"error\": \"…\"}; every mutation takes an Idempotency-Key.",
        license(name = "Apache-2.0")
    ),
    components(schemas(api::ErrorBody))
)]
struct Frame;

/// The extension naming the permission a route needs (absent: public).
pub const PERMISSION_EXTENSION: &str = "x-custody-permission";

type Routes = OpenApiRouter<Arc<ServerState>>;

/// The routes anyone may call: health, the OpenAPI document and the ledger's public face:
/// the signed checkpoint and the proofs, which are hashes only, so a monitor can follow
/// the log without learning what it holds; and witnesses' cosignatures, which carry their
/// own authentication (a signature by a configured witness key). The entries themselves
/// (principals, roles, rationales) need a credential that may read.
fn public() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(ledger::healthz))
        .routes(routes!(ledger::readyz))
        .routes(routes!(ledger::checkpoint))
        .routes(routes!(ledger::cosign))
        .routes(routes!(ledger::inclusion))
        .routes(routes!(ledger::handovers))
        .routes(routes!(ledger::consistency))
}

/// The routes behind a credential, by the permission each needs.
fn guarded() -> Vec<(Permission, Routes)> {
    use Permission as P;
    vec![
        (P::Verify, OpenApiRouter::new().routes(routes!(api::verify))),
        (
            P::Read,
            OpenApiRouter::new()
                .routes(routes!(ledger::entries))
                .routes(routes!(api::history))
                .routes(routes!(api::decision))
                .routes(routes!(api::replay))
                .routes(routes!(api::promotion))
                .routes(routes!(api::release))
                .routes(routes!(api::compare_builds))
                .routes(routes!(api::report))
                .routes(routes!(metrics::render))
                .routes(routes!(governance::policy))
                .routes(routes!(keyring::keys))
                .routes(routes!(keyring::impact))
                .routes(routes!(exceptions::exceptions))
                .routes(routes!(exceptions::exception))
                // Its requester, or the security role where it holds (the use case checks).
                .routes(routes!(exceptions::revoke_exception))
                .routes(routes!(governance::proposals))
                .routes(routes!(governance::proposal))
                // Only the policy's owners may review (the use case checks who).
                .routes(routes!(governance::approve_proposal))
                .routes(routes!(governance::reject_proposal)),
        ),
        (
            P::Audit,
            OpenApiRouter::new()
                .routes(routes!(api::access_log))
                .routes(routes!(api::access_review)),
        ),
        (
            P::Promote,
            OpenApiRouter::new()
                .routes(routes!(api::promote))
                .routes(routes!(exceptions::request_exception)),
        ),
        (
            P::Review,
            OpenApiRouter::new()
                .routes(routes!(api::approve))
                .routes(routes!(api::reject))
                // The security role where the exception holds (the use case checks).
                .routes(routes!(exceptions::approve_exception))
                .routes(routes!(exceptions::reject_exception)),
        ),
        (
            P::Deploy,
            OpenApiRouter::new()
                .routes(routes!(api::deploy))
                .routes(routes!(api::rollback)),
        ),
        (
            P::Policy,
            OpenApiRouter::new()
                .routes(routes!(governance::apply_policy))
                .routes(routes!(keyring::rotate))
                .routes(routes!(keyring::revoke)),
        ),
        (
            P::Register,
            OpenApiRouter::new().routes(routes!(api::register_artifact)),
        ),
        (
            P::Attest,
            OpenApiRouter::new()
                .routes(routes!(api::attest))
                // The raw report travels in the body (body.rs); the handler's extractor
                // checks the same limit.
                .layer(axum::extract::DefaultBodyLimit::max(crate::MAX_REPORT_BODY)),
        ),
        (
            P::Release,
            OpenApiRouter::new().routes(routes!(api::record_release)),
        ),
        (
            P::Tokens,
            OpenApiRouter::new()
                // Each sees their own; auditors and admins every token (the use case).
                .routes(routes!(api::tokens))
                .routes(routes!(api::create_token))
                .routes(routes!(api::revoke_token))
                .routes(routes!(api::whoami)),
        ),
    ]
}

/// The API's routes, each behind its guard, with the OpenAPI document describing them
/// (the same as [`openapi`]'s).
pub(crate) fn api(
    state: &Arc<ServerState>,
) -> (axum::Router<Arc<ServerState>>, utoipa::openapi::OpenApi) {
    let public = public().route_layer(middleware::from_fn_with_state(
        state.clone(),
        access::public,
    ));
    let mut all = OpenApiRouter::with_openapi(Frame::openapi()).merge(public);
    for (permission, routes) in guarded() {
        let mut routes = routes.route_layer(middleware::from_fn_with_state(
            state.clone(),
            move |s, req, next| access::require(s, permission, req, next),
        ));
        stamp(routes.get_openapi_mut(), permission);
        all = all.merge(routes);
    }
    let (router, mut doc) = all.split_for_parts();
    add_security_scheme(&mut doc);
    (router, doc)
}

fn add_security_scheme(doc: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (cst_…) or a CI job's OIDC ID token"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document alone (what `GET /api/v1/openapi.json` serves), made once.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut all =
            OpenApiRouter::<Arc<ServerState>>::with_openapi(Frame::openapi()).merge(public());
        for (permission, mut routes) in guarded() {
            stamp(routes.get_openapi_mut(), permission);
            all = all.merge(routes);
        }
        let mut doc = all.into_openapi();
        add_security_scheme(&mut doc);
        doc
    })
}

/// Whether `path` is the API's (answered in JSON), not the dashboard's.
fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// What a request no route serves is answered (`Router::fallback`): 404, naming where the
/// API's routes are listed.
pub(crate) async fn no_route(uri: Uri) -> Response {
    let path = uri.path();
    let why = if is_api(path) {
        format!("no route {path}: every API route is listed in /api/v1/openapi.json")
    } else {
        format!("no page {path}")
    };
    unrouted(path, StatusCode::NOT_FOUND, why)
}

/// What a request in a method its route does not take is answered: 405 (axum adds the
/// `Allow` header naming the ones it takes).
pub(crate) async fn wrong_method(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let why = format!("{path} does not take {method}: its Allow header lists what it takes");
    unrouted(path, StatusCode::METHOD_NOT_ALLOWED, why)
}

/// A request no route answers: as JSON under `/api/` like every API error, plain text
/// elsewhere (the dashboard).
fn unrouted(path: &str, status: StatusCode, why: String) -> Response {
    if is_api(path) {
        ApiError(status, why).into_response()
    } else {
        (status, why).into_response()
    }
}

#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, description = "this document", body = Value)))]
pub(crate) async fn openapi_json() -> axum::Json<&'static utoipa::openapi::OpenApi> {
    axum::Json(openapi())
}

/// Marks every operation of `doc` as needing a token that holds `permission`.
fn stamp(doc: &mut utoipa::openapi::OpenApi, permission: Permission) {
    let roles: Vec<&str> = permission.roles().to_vec();
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new(
                "token",
                Vec::<String>::new(),
            )]);
            let mut extensions = op.extensions.take().unwrap_or_default();
            extensions.insert(
                PERMISSION_EXTENSION.into(),
                serde_json::json!({"name": permission.name(), "roles": roles, "id": format!("{permission:?}")}),
            );
            op.extensions = Some(extensions);
            let note = format!(
                "Needs a token whose principal holds one of the roles {roles:?} (or admin): to {}.",
                permission.name()
            );
            op.description = Some(match op.description.take() {
                Some(d) => format!("{d}\n\n{note}"),
                None => note,
            });
        }
    }
}
