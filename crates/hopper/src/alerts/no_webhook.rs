//! Alert webhooks in a build without the `webhook` feature: [`Webhook`]
//! keeps its API, but [`Webhook::new`] refuses every URL, naming the
//! feature, so a configured webhook fails when it is configured instead of
//! never being called.

use std::convert::Infallible;
use std::time::Duration;

use super::{AlertError, Change};

/// Where alert changes would be delivered. This build has no webhook
/// client (hopper's `webhook` feature is off), so no `Webhook` can be
/// made: [`Webhook::new`] says so.
///
/// ```
/// use hopper::alerts::{AlertError, Webhook};
/// let refused = Webhook::new("http://alerts.internal:9000/hopper").unwrap_err();
/// assert!(matches!(refused, AlertError::WebhookUnavailable { .. }));
/// ```
#[derive(Clone, Debug)]
pub struct Webhook {
    /// No value: none can be made without the feature.
    never: Infallible,
}

impl Webhook {
    /// Refuses: this build has no webhook client. Enable hopper's
    /// `webhook` feature (and `webhook-tls` for `https://` URLs).
    ///
    /// ```
    /// let refused = hopper::alerts::Webhook::new("http://127.0.0.1:8080/alerts").unwrap_err();
    /// assert!(refused.to_string().contains("`webhook` feature"));
    /// ```
    pub fn new(url: &str) -> Result<Self, AlertError> {
        Err(AlertError::WebhookUnavailable {
            url: url.to_owned(),
        })
    }

    /// Tries each change up to `attempts` times (with the `webhook` feature).
    ///
    /// ```
    /// # fn configure(hook: hopper::alerts::Webhook) -> hopper::alerts::Webhook {
    /// hook.attempts(3)
    /// # }
    /// ```
    pub fn attempts(self, _attempts: u32) -> Self {
        match self.never {}
    }

    /// Waits `backoff` before the first retry (with the `webhook` feature).
    ///
    /// ```
    /// # fn configure(hook: hopper::alerts::Webhook) -> hopper::alerts::Webhook {
    /// hook.backoff(std::time::Duration::from_secs(5))
    /// # }
    /// ```
    pub fn backoff(self, _backoff: Duration) -> Self {
        match self.never {}
    }

    /// Gives up an attempt after `timeout` (with the `webhook` feature).
    ///
    /// ```
    /// # fn configure(hook: hopper::alerts::Webhook) -> hopper::alerts::Webhook {
    /// hook.timeout(std::time::Duration::from_secs(3))
    /// # }
    /// ```
    pub fn timeout(self, _timeout: Duration) -> Self {
        match self.never {}
    }

    /// The URL changes go to.
    ///
    /// ```
    /// # fn show(hook: &hopper::alerts::Webhook) -> String {
    /// hook.url()
    /// # }
    /// ```
    pub fn url(&self) -> String {
        match self.never {}
    }

    /// Would start the delivery task.
    pub(crate) fn start(self) -> Delivery {
        match self.never {}
    }
}

/// A delivery task; none exists without the `webhook` feature.
#[derive(Debug)]
pub(crate) struct Delivery {
    never: Infallible,
}

impl Delivery {
    /// Would queue `change` for delivery.
    pub(crate) fn send(&self, _change: Change) {
        match self.never {}
    }

    /// Would wait up to `drain` for queued changes.
    pub(crate) async fn close(self, _drain: Duration) {
        match self.never {}
    }
}
