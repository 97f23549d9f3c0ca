//! Every route of the API in one table: the router is built from it, and
//! the tests check the OpenAPI document against it, both ways.

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::Web;

/// The methods the API answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    /// The method as the router matches it.
    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
        }
    }

    /// The method's name, as HTTP spells it.
    #[cfg(test)]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// One route: its method, its path and its handler.
pub(crate) struct Route {
    /// The HTTP method.
    pub(crate) method: Method,
    /// The path, with `{name}` for a path parameter.
    pub(crate) path: &'static str,
    /// The handler, answering on the method it is given.
    handler: fn(MethodFilter) -> MethodRouter<Web>,
}

/// The API's routes.
pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/api/jobs",
        handler: |method| on(method, super::create),
    },
    Route {
        method: Method::Get,
        path: "/api/jobs",
        handler: |method| on(method, super::list),
    },
    Route {
        method: Method::Get,
        path: "/api/jobs/count",
        handler: |method| on(method, super::count),
    },
    Route {
        method: Method::Post,
        path: "/api/jobs/bulk",
        handler: |method| on(method, super::bulk),
    },
    Route {
        method: Method::Get,
        path: "/api/jobs/{id}",
        handler: |method| on(method, super::show),
    },
    Route {
        method: Method::Post,
        path: "/api/jobs/{id}/retry",
        handler: |method| on(method, super::retry),
    },
    Route {
        method: Method::Post,
        path: "/api/jobs/{id}/cancel",
        handler: |method| on(method, super::cancel),
    },
    Route {
        method: Method::Post,
        path: "/api/jobs/{id}/skip-wait",
        handler: |method| on(method, super::skip_wait),
    },
    Route {
        method: Method::Get,
        path: "/api/batches/{id}",
        handler: |method| on(method, super::batch),
    },
    Route {
        method: Method::Get,
        path: "/api/stats",
        handler: |method| on(method, super::stats),
    },
    Route {
        method: Method::Get,
        path: "/api/alerts",
        handler: |method| on(method, crate::alerts::api),
    },
    Route {
        method: Method::Get,
        path: "/api/flow",
        handler: |method| on(method, super::flow_all),
    },
    Route {
        method: Method::Get,
        path: "/api/queues/{queue}/flow",
        handler: |method| on(method, super::flow_show),
    },
    Route {
        method: Method::Put,
        path: "/api/queues/{queue}/flow",
        handler: |method| on(method, super::flow_set),
    },
    Route {
        method: Method::Get,
        path: "/api/openapi.json",
        handler: |method| on(method, super::openapi),
    },
];

/// A router serving every route of [`ROUTES`], and nothing else.
pub(crate) fn router() -> Router<Web> {
    ROUTES.iter().fold(Router::new(), |router, route| {
        router.route(route.path, (route.handler)(route.method.filter()))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The (method, path) pairs the document describes.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = crate::api::openapi_document();
        let mut pairs = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                pairs.insert((method.to_uppercase(), path.clone()));
            }
        }
        pairs
    }

    #[test]
    fn the_document_describes_every_route_and_no_other() {
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|route| (route.method.name().to_owned(), route.path.to_owned()))
            .collect();
        assert_eq!(served.len(), ROUTES.len(), "a route is listed twice");
        let documented = documented();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served, not in the document: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "in the document, not served: {unserved:?}"
        );
    }

    #[test]
    fn the_page_size_bounds_in_the_document_are_the_librarys() {
        let doc = crate::api::openapi_document();
        let params = doc["paths"]["/api/jobs"]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let limit = params
            .iter()
            .find(|p| p["name"] == "limit")
            .map(|p| p["schema"].clone())
            .unwrap_or_default();
        assert_eq!(limit["maximum"], hopper::store::MAX_PAGE_SIZE);
        assert_eq!(limit["default"], hopper::store::DEFAULT_PAGE_SIZE);
    }
}
