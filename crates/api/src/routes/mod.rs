//! The API's resources, one module each, merged into one router here.

pub mod catalog;
pub mod data;
pub mod docs;
pub mod imputation;
pub mod ops;
pub mod participants;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get};

use crate::error::ApiError;
use crate::state::AppState;

/// A resource's routes, and the templates of its GET routes: the request metrics export a
/// series for each of those from the start, so the list of templates is the router's own.
pub struct Routes {
    router: Router<AppState>,
    get_templates: Vec<&'static str>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            get_templates: Vec::new(),
        }
    }

    /// A GET route whose requests are counted from the start.
    pub fn get<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.get_templates.push(path);
        self.router = self.router.route(path, get(handler));
        self
    }

    /// Any other route (its requests are counted once they happen).
    pub fn route(mut self, path: &'static str, method_router: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, method_router);
        self
    }

    /// Adds another resource's routes.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.get_templates.extend(other.get_templates);
        self
    }

    /// Adds a router whose requests are counted once they happen.
    pub fn merge_router(mut self, other: Router<AppState>) -> Self {
        self.router = self.router.merge(other);
        self
    }

    /// The templates of the GET routes.
    pub fn get_templates(&self) -> &[&'static str] {
        &self.get_templates
    }

    /// The router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

/// Every route of the API (without the cross-cutting layers, which `startup` adds).
pub fn routes() -> Routes {
    let routes = Routes::new()
        .merge(data::routes())
        .merge(participants::routes())
        .merge(imputation::routes())
        .merge(catalog::routes())
        .merge(ops::routes())
        .merge(docs::routes())
        .merge_router(crate::contact::router());
    Routes {
        router: routes
            .router
            .fallback(|| async { ApiError::NotFound("no such route".into()) })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed }),
        get_templates: routes.get_templates,
    }
}

/// Every route of the API as a router.
pub fn router() -> Router<AppState> {
    routes().into_router()
}
