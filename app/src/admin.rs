//! The admin side of the application, from `hopper-web`: the queue
//! dashboard at `/admin/queue`, the jobs API at `/api` and Prometheus
//! metrics at `/metrics`, all behind the admin token.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use hopper::Hopper;
use hopper_web::{AdminToken, Web};

use crate::config::Config;

/// The admin routes and the token that opens them.
#[derive(Debug)]
pub struct Admin {
    web: Web,
    token: AdminToken,
    generated: bool,
}

impl Admin {
    /// The admin routes over `hopper`, opened by `ADMIN_TOKEN` or, when it
    /// is unset, by a token made up now (see [`Admin::announce`]). Installs
    /// the Prometheus recorder the metrics are kept in.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = app::config::Config::from_lookup(|_| None).unwrap();
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let admin = app::admin::Admin::new(&hopper, &config).unwrap();
    /// assert_eq!(admin.token().as_str().len(), 32);
    /// # });
    /// ```
    pub fn new(hopper: &Hopper, config: &Config) -> anyhow::Result<Self> {
        let (token, generated) = match &config.admin_token {
            Some(token) => (
                AdminToken::new(token.clone()).context("ADMIN_TOKEN cannot be used")?,
                false,
            ),
            None => (AdminToken::generate()?, true),
        };
        if let Err(error) = hopper_web::metrics::install() {
            tracing::warn!(%error, "/metrics will answer 503");
        }
        let web = Web::new(hopper.clone(), token.clone());
        Ok(Self {
            web,
            token,
            generated,
        })
    }

    /// Shows `schedules` (next fire times, last outcomes) on the dashboard.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let config = app::config::Config::from_lookup(|_| None).unwrap();
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let admin = app::admin::Admin::new(&hopper, &config)
    ///     .unwrap()
    ///     .schedules(hopper::schedule::Schedules::new());
    /// # let _ = admin;
    /// # });
    /// ```
    pub fn schedules(mut self, schedules: hopper::schedule::Schedules) -> Self {
        self.web = self.web.schedules(schedules);
        self
    }

    /// The token that opens the admin routes.
    pub fn token(&self) -> &AdminToken {
        &self.token
    }

    /// The dashboard, API and metrics routes, to merge into the app's router.
    pub fn router(&self) -> Router {
        self.web.router()
    }

    /// Ends the dashboard's live update streams, which stay open for as long
    /// as a dashboard page does, so a graceful shutdown need not wait for
    /// them. Every clone of the routes shares them.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let config = app::config::Config::from_lookup(|_| None).unwrap();
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let admin = app::admin::Admin::new(&hopper, &config).unwrap();
    /// let close = admin.live_closer();
    /// close();
    /// # });
    /// ```
    pub fn live_closer(&self) -> impl FnOnce() + Send + 'static {
        let web = self.web.clone();
        move || web.close_live_streams()
    }

    /// Tells where the dashboard is. A token made up at start is printed
    /// inside a login link on standard output, the only place it can be read.
    pub fn announce(&self, local: SocketAddr) {
        let dashboard = format!("http://{local}{}", hopper_web::DASHBOARD_PATH);
        if self.generated {
            println!(
                "ADMIN_TOKEN is not set; this run's admin token opens the dashboard: \
                 {dashboard}/login?token={}",
                self.token.as_str()
            );
        } else {
            tracing::info!("queue dashboard at {dashboard} (log in with ADMIN_TOKEN)");
        }
    }
}
