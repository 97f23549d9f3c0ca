//! Delivering alert changes to a webhook: each [`Change`] is POSTed as JSON
//! from a background task fed by a bounded channel, retried with doubling
//! delays. Sending never waits: when the channel is full (the endpoint has
//! been down for a long time) the change is logged and dropped, so alerting
//! can never hold up the queue.
//!
//! This is the `webhook` feature. `http://` URLs always work with it;
//! `https://` ones need the `webhook-tls` feature too (rustls, trusting the
//! Mozilla root certificates and any given with
//! [`Webhook::root_certificate`]).

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{AlertError, Change};

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The endpoint could not be reached.
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        /// The host and port.
        authority: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The TLS handshake failed (an untrusted certificate, a wrong name, …).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The endpoint took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The endpoint answered with a status other than 2xx.
    #[error("the endpoint answered {0}")]
    Status(StatusCode),
}

impl DeliveryError {
    /// Whether trying again may help: not for a 4xx other than 408 and 429.
    fn retryable(&self) -> bool {
        match self {
            DeliveryError::Status(status) => {
                !status.is_client_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            DeliveryError::Request(_) => false,
            _ => true,
        }
    }
}

/// Where and how alert changes are delivered: an `http://` URL, POSTed a
/// JSON body per change (see [`Change`]).
///
/// ```
/// use std::time::Duration;
/// use hopper::alerts::Webhook;
/// let hook = Webhook::new("http://alerts.internal:9000/hopper").unwrap()
///     .attempts(3)
///     .backoff(Duration::from_millis(500));
/// assert_eq!(hook.url(), "http://alerts.internal:9000/hopper");
/// assert!(Webhook::new("ftp://x").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Webhook {
    url: Uri,
    attempts: u32,
    backoff: Duration,
    timeout: Duration,
    capacity: usize,
    /// Extra trusted CA certificates (DER), for `https://`.
    #[cfg(feature = "webhook-tls")]
    roots: Vec<Vec<u8>>,
}

impl Webhook {
    /// A webhook at `url` (`http://host[:port]/path`), with 6 attempts per
    /// change, 1 s before the first retry, doubling, a 10 s timeout per
    /// attempt and room for 1,000 undelivered changes.
    ///
    /// `https://` URLs need the `webhook-tls` feature.
    ///
    /// ```
    /// assert!(hopper::alerts::Webhook::new("http://127.0.0.1:8080/alerts").is_ok());
    /// let https = hopper::alerts::Webhook::new("https://hooks.example.com/x");
    /// assert_eq!(https.is_ok(), cfg!(feature = "webhook-tls"));
    /// assert!(hopper::alerts::Webhook::new("hooks.example.com").is_err());
    /// ```
    pub fn new(url: &str) -> Result<Self, AlertError> {
        let bad = |reason: &str| AlertError::WebhookUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed: Uri = url.trim().parse().map_err(|_| bad("not a URL"))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "webhook-tls") => {}
            Some("https") => {
                return Err(bad(
                    "https:// needs hopper's webhook-tls feature; this build speaks http:// only",
                ));
            }
            _ => return Err(bad("expected an http:// or https:// URL")),
        }
        if parsed.host().is_none_or(str::is_empty) {
            return Err(bad("the URL names no host"));
        }
        Ok(Self {
            url: parsed,
            attempts: 6,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            capacity: 1_000,
            #[cfg(feature = "webhook-tls")]
            roots: Vec::new(),
        })
    }

    /// Also trusts the CA certificate `der` (DER-encoded) for an `https://`
    /// endpoint, besides the Mozilla root certificates: for an endpoint
    /// whose certificate a private CA signed.
    ///
    /// ```
    /// let hook = hopper::alerts::Webhook::new("https://alerts.internal/hopper").unwrap();
    /// assert!(hook.root_certificate(b"not a certificate").is_err());
    /// ```
    #[cfg(feature = "webhook-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook-tls")))]
    pub fn root_certificate(mut self, der: &[u8]) -> Result<Self, AlertError> {
        let mut check = tokio_rustls::rustls::RootCertStore::empty();
        check
            .add(der.to_vec().into())
            .map_err(|error| AlertError::WebhookUrl {
                url: self.url(),
                reason: format!("unusable root certificate: {error}"),
            })?;
        self.roots.push(der.to_vec());
        Ok(self)
    }

    /// Tries each change up to `attempts` times (at least once).
    ///
    /// ```
    /// let hook = hopper::alerts::Webhook::new("http://h/").unwrap().attempts(1);
    /// # let _ = hook;
    /// ```
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Waits `backoff` before the first retry, doubling for each next one.
    ///
    /// ```
    /// let hook = hopper::alerts::Webhook::new("http://h/").unwrap().backoff(std::time::Duration::from_secs(5));
    /// # let _ = hook;
    /// ```
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Gives up an attempt after `timeout`.
    ///
    /// ```
    /// let hook = hopper::alerts::Webhook::new("http://h/").unwrap().timeout(std::time::Duration::from_secs(3));
    /// # let _ = hook;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL changes go to.
    ///
    /// ```
    /// assert_eq!(hopper::alerts::Webhook::new("http://h:1/a").unwrap().url(), "http://h:1/a");
    /// ```
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// Starts the delivery task.
    pub(crate) fn start(self) -> Delivery {
        let (sender, receiver) = mpsc::channel(self.capacity);
        let task = tokio::spawn(deliver(self, receiver));
        Delivery { sender, task }
    }

    /// POSTs `body` once.
    async fn post(&self, body: Bytes) -> Result<(), DeliveryError> {
        let host = self.url.host().unwrap_or_default();
        let https = self.url.scheme_str() == Some("https");
        let port = self.url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = self
            .url
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| host.to_owned());
        let path = self.url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let exchange = async {
            let stream = TcpStream::connect((host.trim_matches(['[', ']']), port))
                .await
                .map_err(|source| DeliveryError::Connect {
                    authority: authority.clone(),
                    source,
                })?;
            let request = Request::post(path)
                .header(HOST, &authority)
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, concat!("hopper/", env!("CARGO_PKG_VERSION")))
                .body(Full::new(body))?;
            let status = if https {
                let stream = self.tls(host.trim_matches(['[', ']']), stream).await?;
                exchange(TokioIo::new(stream), request).await?
            } else {
                exchange(TokioIo::new(stream), request).await?
            };
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Status(status))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(DeliveryError::Timeout(self.timeout)))
    }

    /// The TLS session to `host` over `stream`.
    #[cfg(feature = "webhook-tls")]
    async fn tls(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DeliveryError> {
        use std::sync::Arc;
        use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

        let tls_error = |error: &dyn std::fmt::Display| DeliveryError::Tls(error.to_string());
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for der in &self.roots {
            roots.add(der.clone().into()).map_err(|e| tls_error(&e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned()).map_err(|e| tls_error(&e))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| tls_error(&e))
    }

    /// Without the `webhook-tls` feature, `new` refuses `https://` URLs.
    #[cfg(not(feature = "webhook-tls"))]
    async fn tls(&self, _host: &str, stream: TcpStream) -> Result<TcpStream, DeliveryError> {
        let _ = stream;
        Err(DeliveryError::Tls(
            "https:// needs hopper's webhook-tls feature".into(),
        ))
    }

    /// Delivers one change, retrying; whether it arrived.
    async fn send(&self, change: &Change) -> bool {
        let body = match serde_json::to_vec(change) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::error!(%error, "cannot encode an alert for its webhook");
                return false;
            }
        };
        // `backoff` before the first retry, doubling for each next one.
        let backoff = crate::retry::Backoff::exact(self.backoff, 2.0, Duration::MAX);
        for attempt in 1..=self.attempts {
            match self.post(body.clone()).await {
                Ok(()) => return true,
                Err(error) if attempt < self.attempts && error.retryable() => {
                    let delay = backoff.delay(attempt);
                    tracing::warn!(%error, attempt, retry_in = ?delay, rule = %change.alert.rule, "alert webhook failed");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, rule = %change.alert.rule, subject = %change.alert.subject, "alert webhook failed; the change is dropped");
                    return false;
                }
            }
        }
        false
    }
}

/// Sends `request` over a fresh HTTP/1.1 connection on `io`; the answer's status.
async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<StatusCode, DeliveryError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await;
    connection.abort();
    Ok(response?.status())
}

/// A running delivery task and the channel that feeds it.
#[derive(Debug)]
pub(crate) struct Delivery {
    sender: mpsc::Sender<Change>,
    task: JoinHandle<()>,
}

impl Delivery {
    /// Queues `change` for delivery without waiting; drops it (logged) when
    /// the queue is full.
    pub(crate) fn send(&self, change: Change) {
        if let Err(error) = self.sender.try_send(change) {
            let change = match &error {
                mpsc::error::TrySendError::Full(change)
                | mpsc::error::TrySendError::Closed(change) => change,
            };
            tracing::error!(rule = %change.alert.rule, subject = %change.alert.subject, "alert webhook backlog is full; the change is dropped");
        }
    }

    /// Stops taking changes and waits up to `drain` for the queued ones to
    /// be delivered.
    pub(crate) async fn close(self, drain: Duration) {
        let Delivery { sender, mut task } = self;
        drop(sender);
        if tokio::time::timeout(drain, &mut task).await.is_err() {
            tracing::warn!(?drain, "undelivered alert changes dropped at stop");
            task.abort();
        }
    }
}

async fn deliver(webhook: Webhook, mut changes: mpsc::Receiver<Change>) {
    while let Some(change) = changes.recv().await {
        webhook.send(&change).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::alerts::Status;
    use crate::store::AlertRecord;

    /// An endpoint on 127.0.0.1 that always answers `status`; returns its
    /// URL and the count of requests it got.
    async fn endpoint(status: StatusCode) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { status }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, hits)
    }

    fn change() -> Change {
        Change {
            status: Status::Firing,
            alert: AlertRecord {
                id: 1,
                rule: "r".into(),
                subject: "s".into(),
                summary: "seen".into(),
                fired_at: chrono::Utc::now(),
                resolved_at: None,
            },
        }
    }

    async fn deliver_once(status: StatusCode) -> usize {
        let (url, hits) = endpoint(status).await;
        let delivery = Webhook::new(&url)
            .unwrap()
            .attempts(3)
            .backoff(Duration::from_millis(10))
            .start();
        delivery.send(change());
        delivery.close(Duration::from_secs(30)).await;
        hits.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn server_errors_are_retried_up_to_the_attempts_and_client_errors_are_not() {
        assert_eq!(deliver_once(StatusCode::SERVICE_UNAVAILABLE).await, 3);
        assert_eq!(deliver_once(StatusCode::TOO_MANY_REQUESTS).await, 3);
        assert_eq!(deliver_once(StatusCode::NOT_FOUND).await, 1);
        assert_eq!(deliver_once(StatusCode::NO_CONTENT).await, 1);
    }

    #[cfg(feature = "webhook-tls")]
    #[tokio::test]
    async fn https_endpoints_are_reached_only_with_a_trusted_certificate() {
        use hyper::body::Incoming;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        use tokio_rustls::rustls::{ServerConfig, crypto::ring};

        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_der = made.cert.der().to_vec();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let url = format!("https://localhost:{port}/hook");

        let trusted = Webhook::new(&url)
            .unwrap()
            .root_certificate(&cert_der)
            .unwrap()
            .attempts(1)
            .start();
        trusted.send(change());
        trusted.close(Duration::from_secs(30)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 1, "delivered over TLS");

        let untrusted = Webhook::new(&url).unwrap().attempts(1).start();
        untrusted.send(change());
        untrusted.close(Duration::from_secs(30)).await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "a self-signed certificate is refused"
        );
    }
}
