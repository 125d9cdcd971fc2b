//! The route table. Every route is registered through `utoipa-axum`, so the OpenAPI document
//! is generated from the same list that serves requests and cannot miss a route.

pub mod agents_v0;
pub mod agents_v1;
pub mod audit;
pub mod integrations;
pub mod keys;
pub mod me;
pub mod service_accounts;
pub mod system;
pub mod team;
pub mod types;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::config::MAX_BODY_BYTES;
use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera API",
        description = "Service accounts, API keys and audit for automating coding agents. \
                       Wire-compatible with Cursor's Cloud Agents API where the routes overlap. \
                       Authenticate with `Authorization: Bearer KEY`, or HTTP Basic with the key as \
                       the user name and an empty password. Every error is \
                       `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("basic" = [])),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi_json))
        .routes(routes!(me::me_v0))
        .routes(routes!(me::me_v1))
        .routes(routes!(team::get_team))
        .routes(routes!(team::list_users))
        .routes(routes!(service_accounts::create_service_account, service_accounts::list_service_accounts))
        .routes(routes!(service_accounts::get_service_account, service_accounts::update_service_account))
        .routes(routes!(service_accounts::archive_service_account))
        .routes(routes!(keys::create_service_account_key))
        .routes(routes!(keys::rotate_service_account_key))
        .routes(routes!(keys::revoke_service_account_key, keys::update_service_account_key))
        .routes(routes!(keys::create_my_key, keys::list_my_keys))
        .routes(routes!(keys::revoke_my_key))
        .routes(routes!(audit::list_audit_events))
        .routes(routes!(audit::verify_audit_chain))
        .routes(routes!(integrations::create_integration, integrations::list_integrations))
        .routes(routes!(
            integrations::get_integration,
            integrations::update_integration,
            integrations::delete_integration
        ))
        .routes(routes!(integrations::repositories_v0))
        .routes(routes!(agents_v0::launch_agent, agents_v0::list_agents))
        .routes(routes!(agents_v0::get_agent, agents_v0::delete_agent))
        .routes(routes!(agents_v0::stop_agent))
        .routes(routes!(agents_v0::followup))
        .routes(routes!(agents_v0::conversation))
        .routes(routes!(agents_v0::models))
        .routes(routes!(agents_v1::create_agent, agents_v1::list_agents))
        .routes(routes!(agents_v1::get_agent, agents_v1::delete_agent))
        .routes(routes!(agents_v1::archive_agent))
        .routes(routes!(agents_v1::unarchive_agent))
        .routes(routes!(agents_v1::create_run, agents_v1::list_runs))
        .routes(routes!(agents_v1::get_run))
        .routes(routes!(agents_v1::cancel_run))
        .routes(routes!(agents_v1::stream_run))
        .routes(routes!(agents_v1::usage))
        .routes(routes!(agents_v1::models))
        .routes(routes!(integrations::repositories_v1))
}

/// The OpenAPI 3.1 document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

pub(crate) fn openapi_document_json() -> String {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| openapi().to_pretty_json().unwrap_or_default()).clone()
}

/// The whole HTTP surface, with middleware, ready to serve.
pub fn router(state: AppState) -> Router {
    let (routes, _openapi) = api_routes().split_for_parts();
    routes
        .fallback(|| async { ApiError::NotFound.into_response() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::middleware::observe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
