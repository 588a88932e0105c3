//! `/openapi.json`, generated from the handlers and types, and `/docs`, an interactive page
//! (Swagger UI) served from assets compiled into the binary: no CDN at run time, and no
//! download at build time. The assets are `swagger-ui-dist` from npm; `assets/README.md`
//! says which version and how to refresh them.

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::OpenApi as _;

use crate::auth::Access;
use crate::openapi::ApiDoc;
use crate::routes::Routes;

const BUNDLE_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

/// URLs are relative so the page works behind a proxy prefix such as `/api/`.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wearhouse API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true });
</script>
</body>
</html>
"##;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .get("/openapi.json", Access::Public, openapi)
        .route("/docs", Access::Public, get(|| async { Html(PAGE) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            Access::Public,
            get(|| async { asset("text/javascript; charset=utf-8", BUNDLE_JS) }),
        )
        .route(
            "/docs/swagger-ui.css",
            Access::Public,
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

fn asset(content_type: &'static str, bytes: &'static [u8]) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
}
