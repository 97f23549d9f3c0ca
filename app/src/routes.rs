//! The HTTP routes: which URL goes to which controller.

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;
use crate::controllers::{health_controller, user_controller};

/// The application's router.
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
        .with_state(state)
}
