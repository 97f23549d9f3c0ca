//! The HTTP routes: which URL goes to which controller.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tracing::Instrument;

use crate::AppState;
use crate::controllers::{health_controller, user_controller};

/// The application's router. Each request is handled inside an info-level
/// `request` span (its method and path): the lines it logs carry them, and
/// the jobs it dispatches continue its trace (see `app::otel`).
///
/// | method | path | handler |
/// |---|---|---|
/// | GET | `/health` | [`health_controller::show`] |
/// | POST | `/users/welcome-email` | [`user_controller::send_welcome_email`] |
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health_controller::show))
        .route(
            "/users/welcome-email",
            post(user_controller::send_welcome_email),
        )
        .layer(middleware::from_fn(in_request_span))
        .with_state(state)
}

/// Runs the rest of the request inside its `request` span.
async fn in_request_span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
    );
    next.run(request).instrument(span).await
}
