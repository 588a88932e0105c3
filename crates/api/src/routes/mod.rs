//! The API's resources, one module each, merged into one router here.

pub mod audit;
pub mod catalog;
pub mod data;
pub mod docs;
pub mod enrolment;
pub mod exports;
pub mod imputation;
pub mod lifecycle;
pub mod ops;
pub mod participants;

use std::collections::HashMap;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, get, on};

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// The access rule of every route: one for all methods of a template, and, where methods of
/// one template need different permissions (reading participants and adding one), one per
/// method that takes precedence.
#[derive(Debug, Clone, Default)]
pub struct AccessRules(HashMap<&'static str, HashMap<Option<Method>, Access>>);

impl AccessRules {
    /// The rule for `method` on the route `template`, if the route has one.
    pub fn of(&self, method: &Method, template: &str) -> Option<Access> {
        let rules = self.0.get(template)?;
        rules
            .get(&Some(method.clone()))
            .or_else(|| rules.get(&None))
            .copied()
    }

    /// Every route template that has a rule.
    pub fn templates(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }

    fn insert(&mut self, path: &'static str, method: Option<Method>, access: Access) {
        let rules = self.0.entry(path).or_default();
        if let Some(old) = rules.insert(method.clone(), access) {
            assert_eq!(old, access, "two access rules for {method:?} {path}");
        }
    }
}

/// A resource's routes, each with the access it asks of its caller, and the templates of its
/// GET routes: the request metrics export a series for each of those from the start, so the
/// list of templates is the router's own. A route cannot be added without an access rule.
pub struct Routes {
    router: Router<AppState>,
    get_templates: Vec<&'static str>,
    access: AccessRules,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            get_templates: Vec::new(),
            access: AccessRules::default(),
        }
    }

    fn rule(&mut self, path: &'static str, access: Access) {
        self.access.insert(path, None, access);
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

    /// A route for one method whose access differs from the rule of the template's other
    /// methods (e.g. `POST /participants` next to `GET /participants`).
    pub fn method<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} cannot be routed"));
        self.access.insert(path, Some(method), access);
        self.router = self.router.route(path, on(filter, handler));
        self
    }

    /// Adds another resource's routes.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.get_templates.extend(other.get_templates);
        for (path, rules) in other.access.0 {
            for (method, access) in rules {
                self.access.insert(path, method, access);
            }
        }
        self
    }

    /// The templates of the GET routes.
    pub fn get_templates(&self) -> &[&'static str] {
        &self.get_templates
    }

    /// The access rule of every route.
    pub fn access(&self) -> &AccessRules {
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
        .merge(exports::routes())
        .merge(participants::routes())
        .merge(enrolment::routes())
        .merge(lifecycle::routes())
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
