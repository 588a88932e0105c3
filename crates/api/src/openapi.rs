//! The OpenAPI document, assembled from the handlers' `#[utoipa::path]` annotations and the
//! response types' `ToSchema` derives, so it cannot drift from the code.

use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{catalog, data, imputation, ops, participants};

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wearhouse API",
        description = "Wearable data of clinical-trial participants: series routed to the \
                       resolution that fits a point budget, participants, CSV export and \
                       operations endpoints. Errors are JSON: `{\"error\": {\"code\", \
                       \"parameter\", \"message\"}}`."
    ),
    servers((url = ".", description = "This server (relative, so it works behind a proxy prefix)")),
    paths(
        data::data,
        data::data_csv,
        imputation::run_imputation,
        imputation::job,
        participants::list,
        participants::detail,
        catalog::catalog,
        ops::health,
        ops::ready,
        ops::metrics,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "data", description = "Series of one metric"),
        (name = "imputation", description = "Imputation jobs: queue one, follow it"),
        (name = "participants", description = "Enrolled participants"),
        (name = "catalog", description = "The metric catalogue"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;
