//! The OpenAPI 3.1 document of the API, generated from the handlers'
//! `#[utoipa::path]` attributes and the typed bodies of [`super::views`].

use std::sync::LazyLock;

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's source: every documented handler and the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(title = "Hopper jobs API"),
    paths(
        super::create,
        super::list,
        super::count,
        super::bulk,
        super::show,
        super::retry,
        super::cancel,
        super::skip_wait,
        super::batch,
        super::stats,
        crate::alerts::api,
        super::flow_all,
        super::flow_show,
        super::flow_set,
        super::openapi,
    ),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Adds the admin token as the `bearer` security scheme.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("the ADMIN_TOKEN"))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    // A document of plain maps and strings always serializes; `Null`
    // stands in should that ever change.
    serde_json::to_value(doc).unwrap_or(Value::Null)
});

/// The OpenAPI 3.1 document describing the API, as served at
/// `/api/openapi.json`.
///
/// ```
/// let doc = hopper_web::api::openapi_document();
/// assert_eq!(doc["openapi"], "3.1.0");
/// assert!(doc["paths"]["/api/jobs"]["post"].is_object());
/// assert_eq!(
///     doc["components"]["schemas"]["Job"]["properties"]["state"]["enum"][0],
///     "pending"
/// );
/// ```
pub fn openapi_document() -> Value {
    DOCUMENT.clone()
}
