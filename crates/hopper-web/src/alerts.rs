//! Alert incidents on the dashboard and in the API: the ones firing now and
//! the latest resolved, as recorded by [`hopper::alerts`] in the database
//! (whichever instance checks the rules).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/alerts?resolved=` | `{"firing": […], "resolved": […]}`, up to `resolved` (default 20, at most 200) of the latest resolved |

use axum::Json;
use axum::extract::{Query, State};
use hopper::store::{AlertRecord, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::Web;
use crate::api::views::Alerts;
use crate::api::{ApiError, ErrorBody};
use crate::auth::Caller;

/// Resolved incidents the overview shows.
pub const OVERVIEW_RESOLVED: u32 = 10;

/// Resolved incidents the API returns unless asked for another number.
const DEFAULT_RESOLVED: u32 = 20;

/// The most resolved incidents one API call returns.
const MAX_RESOLVED: u32 = 200;

/// Firing incidents, oldest first, and the latest resolved ones.
///
/// ```
/// let a = hopper_web::alerts::AlertList { firing: vec![], resolved: vec![] };
/// assert_eq!(serde_json::to_value(&a).unwrap()["firing"], serde_json::json!([]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertList {
    /// Incidents firing now.
    pub firing: Vec<AlertRecord>,
    /// Incidents resolved, latest first.
    pub resolved: Vec<AlertRecord>,
}

/// Reads the firing incidents and up to `resolved` resolved ones.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// let list = hopper_web::alerts::list(&hopper, 5).await.unwrap();
/// assert!(list.firing.is_empty() && list.resolved.is_empty());
/// # });
/// ```
pub async fn list(hopper: &hopper::Hopper, resolved: u32) -> Result<AlertList, StoreError> {
    let (firing, resolved) = hopper
        .store()
        .alerts(resolved)
        .await?
        .into_iter()
        .partition(|alert| alert.resolved_at.is_none());
    Ok(AlertList { firing, resolved })
}

/// The query of `GET /api/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertsQuery {
    /// How many resolved incidents, latest first (default 20).
    #[param(minimum = 0, maximum = 200)]
    resolved: Option<u32>,
}

/// `GET /api/alerts`.
#[utoipa::path(
    get,
    path = "/api/alerts",
    operation_id = "list_alerts",
    tag = "alerts",
    summary = "Alert incidents firing now, and the latest resolved",
    params(AlertsQuery),
    responses(
        (status = 200, description = "Incidents", body = Alerts),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn api(
    State(web): State<Web>,
    _caller: Caller,
    Query(query): Query<AlertsQuery>,
) -> Result<Json<Alerts>, ApiError> {
    let resolved = query.resolved.unwrap_or(DEFAULT_RESOLVED);
    if resolved > MAX_RESOLVED {
        return Err(ApiError::BadRequest(format!(
            "resolved must be at most {MAX_RESOLVED}"
        )));
    }
    Ok(Json(list(web.hopper(), resolved).await?.into()))
}
