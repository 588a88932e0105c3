//! The API's resources, one module each, merged into one router here.

pub mod audit;
pub mod catalog;
pub mod data;
pub mod docs;
pub mod imputation;
pub mod ops;
pub mod participants;

use std::collections::HashMap;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get};

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// A resource's routes, each with the access it asks of its caller, and the templates of its
/// GET routes: the request metrics export a series for each of those from the start, so the
/// list of templates is the router's own. A route cannot be added without an access rule.
pub struct Routes {
    router: Router<AppState>,
    get_templates: Vec<&'static str>,
    access: HashMap<&'static str, Access>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            get_templates: Vec::new(),
            access: HashMap::new(),
        }
    }

    fn rule(&mut self, path: &'static str, access: Access) {
        if let Some(old) = self.access.insert(path, access) {
            assert_eq!(old, access, "two access rules for {path}");
        }
    }

    /// A GET route whose requests are counted from the start.
    pub fn get<H, T>(mut self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.rule(path, access);
        self.get_templates.push(path);
        self.router = self.router.route(path, get(handler));
        self
    }

    /// Any other route (its requests are counted once they happen); `access` applies to
    /// every method of it.
    pub fn route(
        mut self,
        path: &'static str,
        access: Access,
        method_router: MethodRouter<AppState>,
    ) -> Self {
        self.rule(path, access);
        self.router = self.router.route(path, method_router);
        self
    }

    /// Adds another resource's routes.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.get_templates.extend(other.get_templates);
        for (path, access) in other.access {
            self.rule(path, access);
        }
        self
    }

    /// The templates of the GET routes.
    pub fn get_templates(&self) -> &[&'static str] {
        &self.get_templates
    }

    /// The access rule of every route, by its template.
    pub fn access(&self) -> &HashMap<&'static str, Access> {
        &self.access
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
        .merge(audit::routes())
        .merge(crate::auth::login::routes())
        .merge(crate::auth::check::routes())
        .merge(crate::auth::sso::routes())
        .merge(crate::contact::routes());
    Routes {
        router: routes
            .router
            .fallback(|| async { ApiError::NotFound("no such route".into()) })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed }),
        ..routes
    }
}

/// Every route of the API as a router.
pub fn router() -> Router<AppState> {
    routes().into_router()
}
