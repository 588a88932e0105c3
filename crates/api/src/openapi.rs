//! The OpenAPI document, assembled from the handlers' `#[utoipa::path]` annotations and the
//! response types' `ToSchema` derives, so it cannot drift from the code.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::auth::{SESSION_COOKIE, check, login};
use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{
    audit, catalog, data, enrolment, exports, imputation, lifecycle, ops, participants,
};

/// The two ways to authenticate: an API token as a bearer token, or the session cookie that
/// `POST /auth/login` sets.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `wearhouse-api token create`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The session cookie `POST /auth/login` sets",
            ))),
        );
    }
}

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wearhouse API",
        description = "Wearable data of clinical-trial participants: series routed to the \
                       resolution that fits a point budget, participants, CSV and standard-format (FHIR R4, Open mHealth) exports and \
                       operations endpoints. Every route but health, readiness, this \
                       document and signing in needs a session or an API token. Errors are JSON: `{\"error\": {\"code\", \
                       \"parameter\", \"message\"}}`: 400 names the parameter at fault (a \
                       NUL character in any text is one), 413 a body over the route's limit, \
                       415 a body of another media type. Unknown query parameters are \
                       ignored, and an empty value counts as absent. Dates and date-times \
                       must fall in the years 0001 to 9999 (UTC)."
    ),
    servers((url = ".", description = "This server (relative, so it works behind a proxy prefix)")),
    modifiers(&Security),
    security(("token" = []), ("session" = [])),
    paths(
        data::data,
        data::data_csv,
        exports::fhir,
        exports::omh,
        imputation::run_imputation,
        imputation::job,
        participants::list,
        participants::detail,
        enrolment::create,
        enrolment::change,
        enrolment::create_link,
        enrolment::links,
        enrolment::revoke_link,
        lifecycle::withdraw,
        lifecycle::erase,
        lifecycle::export_archive,
        catalog::catalog,
        ops::health,
        ops::ready,
        ops::metrics,
        audit::list,
        login::login,
        login::logout,
        login::me,
        login::providers,
        check::grafana,
        check::operations,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "data", description = "Series of one metric"),
        (name = "exports", description = "One participant's data in standard formats: FHIR R4, Open mHealth"),
        (name = "imputation", description = "Imputation jobs: queue one, follow it"),
        (name = "participants", description = "Participants: listing, adding, consent links"),
        (name = "catalog", description = "The metric catalogue"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "auth", description = "Signing in and out"),
        (name = "audit", description = "The audit trail (admins)"),
    )
)]
pub struct ApiDoc;
