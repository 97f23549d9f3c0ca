//! # hopper-web
//!
//! See and steer a [Hopper](hopper) queue over HTTP: an admin dashboard
//! (server-rendered HTML that updates itself as jobs change, over
//! server-sent events), a JSON API with an OpenAPI
//! document, and Prometheus metrics — one axum [`Router`] any application
//! can merge into its own.
//!
//! | path | what |
//! |---|---|
//! | `/admin/queue` | the dashboard ([`dashboard`]) |
//! | `/api` | the JSON API ([`api`]), described at `/api/openapi.json`; alert incidents at `/api/alerts` ([`alerts`]) |
//! | `/metrics` | Prometheus text format ([`metrics`]) |
//!
//! Everything but the login form needs the admin token, sent as
//! `Authorization: Bearer <token>` or through the signed session cookie the
//! login form sets, which every instance with the same token accepts
//! ([`auth`]).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
//! let token = hopper_web::AdminToken::new("s3cret").unwrap();
//! let app: axum::Router = axum::Router::new().merge(hopper_web::Web::new(hopper, token).router());
//! # let _ = app;
//! # });
//! ```

#![warn(missing_docs)]

pub mod alerts;
pub mod api;
pub mod auth;
pub mod dashboard;
pub mod html;
pub mod live;
pub mod metrics;
pub(crate) mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hopper::Hopper;
use hopper::schedule::Schedules;

pub use auth::{AdminToken, TokenError};

/// Where the dashboard is mounted.
///
/// ```
/// assert_eq!(hopper_web::DASHBOARD_PATH, "/admin/queue");
/// ```
pub const DASHBOARD_PATH: &str = "/admin/queue";

/// Where the JSON API is mounted.
///
/// ```
/// assert_eq!(hopper_web::API_PATH, "/api");
/// ```
pub const API_PATH: &str = "/api";

/// Where the metrics are served.
///
/// ```
/// assert_eq!(hopper_web::METRICS_PATH, "/metrics");
/// ```
pub const METRICS_PATH: &str = "/metrics";

/// Request bodies larger than this are refused with 413, unless configured otherwise.
///
/// ```
/// assert_eq!(hopper_web::DEFAULT_BODY_LIMIT, 256 * 1024);
/// ```
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// The queue, the admin token and the options the web routes share.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// let web = hopper_web::Web::new(hopper, hopper_web::AdminToken::generate().unwrap())
///     .schedules(hopper::schedule::Schedules::new())
///     .body_limit(64 * 1024);
/// let router = web.router();
/// # let _ = router;
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Web {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) hopper: Hopper,
    pub(crate) token: AdminToken,
    pub(crate) session_key: auth::SessionKey,
    pub(crate) schedules: Option<Schedules>,
    pub(crate) body_limit: usize,
    /// Queues `/metrics` has reported, so an emptied queue reads zero.
    pub(crate) metric_queues: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Queues `/metrics` has reported flow figures of, so a queue whose
    /// settings were lifted reads zero.
    pub(crate) metric_flow_queues: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Tells the dashboard's live streams when the pages may have changed.
    pub(crate) live: Arc<live::Watcher>,
}

impl Web {
    /// Web routes over `hopper`, guarded by `token`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let web = hopper_web::Web::new(hopper, hopper_web::AdminToken::new("t0ken").unwrap());
    /// # let _ = web;
    /// # });
    /// ```
    pub fn new(hopper: Hopper, token: AdminToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                hopper,
                session_key: auth::SessionKey::new(&token),
                token,
                schedules: None,
                body_limit: DEFAULT_BODY_LIMIT,
                metric_queues: Default::default(),
                metric_flow_queues: Default::default(),
                live: Default::default(),
            }),
        }
    }

    /// Shows `schedules` (next fire times, latest runs and their outcomes) on the dashboard.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let web = hopper_web::Web::new(hopper, hopper_web::AdminToken::new("t0ken").unwrap())
    ///     .schedules(hopper::schedule::Schedules::new());
    /// # let _ = web;
    /// # });
    /// ```
    pub fn schedules(self, schedules: Schedules) -> Self {
        self.rebuild(|inner| inner.schedules = Some(schedules))
    }

    /// Refuses request bodies over `bytes` with 413 (default [`DEFAULT_BODY_LIMIT`]).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let web = hopper_web::Web::new(hopper, hopper_web::AdminToken::new("t0ken").unwrap())
    ///     .body_limit(1024);
    /// # let _ = web;
    /// # });
    /// ```
    pub fn body_limit(self, bytes: usize) -> Self {
        self.rebuild(|inner| inner.body_limit = bytes)
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                hopper: shared.hopper.clone(),
                token: shared.token.clone(),
                session_key: shared.session_key.clone(),
                schedules: shared.schedules.clone(),
                body_limit: shared.body_limit,
                metric_queues: Default::default(),
                metric_flow_queues: Default::default(),
                live: Arc::clone(&shared.live),
            },
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The dashboard, the API and the metrics at their usual paths
    /// ([`DASHBOARD_PATH`], [`API_PATH`], [`METRICS_PATH`]).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let router = hopper_web::Web::new(hopper, hopper_web::AdminToken::new("t0ken").unwrap()).router();
    /// # let _ = router;
    /// # });
    /// ```
    pub fn router(&self) -> Router {
        Router::new()
            .merge(dashboard::router())
            .merge(api::router())
            .merge(metrics::router())
            .layer(DefaultBodyLimit::max(self.inner.body_limit))
            .with_state(self.clone())
    }

    /// Ends the dashboard's open live streams, and any opened later, so a
    /// graceful shutdown need not wait for them: each stream stays open for
    /// as long as its page does. Call it as the server starts shutting down.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let web = hopper_web::Web::new(hopper, hopper_web::AdminToken::new("t0ken").unwrap());
    /// let app = web.router();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let stop = tokio::time::sleep(std::time::Duration::from_millis(10));
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(async move {
    ///         stop.await;
    ///         web.close_live_streams();
    ///     })
    ///     .await
    ///     .unwrap();
    /// # });
    /// ```
    pub fn close_live_streams(&self) {
        self.inner.live.close();
    }

    pub(crate) fn hopper(&self) -> &Hopper {
        &self.inner.hopper
    }
}

// The README's example compiles as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
