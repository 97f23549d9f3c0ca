//! Who may look: the admin token, login sessions and CSRF protection.
//!
//! A request is let in when it carries the admin token as
//! `Authorization: Bearer <token>`, or the session cookie that logging in
//! with the token set. A state-changing request that came in on the cookie
//! must also carry the session's CSRF token (the `csrf` form field the
//! dashboard's forms include, or an `X-CSRF-Token` header); bearer requests
//! need none, since browsers never add that header on their own.
//!
//! # Sessions
//!
//! The server keeps no sessions: the cookie is signed instead. Its value is
//! `<expires>.<id>.<mac>`: when the session ends (Unix seconds), a random
//! session id, and an HMAC-SHA256 of both in hex. The MAC key is derived
//! from the admin token as HMAC-SHA256 keyed with the token over the fixed
//! label `hopper-web session key v1`, so every instance started with the
//! same token accepts a session any of them started, before and after a
//! restart, with nothing shared between them; a new token ends every
//! session. The session's CSRF token is an HMAC of the session under the
//! same key, so every instance can check it too. Signatures and tokens are
//! compared in constant time.
//!
//! A session lasts [`SESSION_LIFETIME`] (12 hours) from logging in, or
//! until the browser is closed: the cookie itself has no `Max-Age`. The
//! cookie is `HttpOnly` and `SameSite=Strict`, and `Secure` as well when the
//! login came over HTTPS: an `https` request URI, or a proxy in front saying
//! so with `X-Forwarded-Proto: https` or `Forwarded: proto=https`.
//!
//! Logging out clears the cookie in the browser. With no server state there
//! is nothing else to forget, so a copy of the cookie taken before logging
//! out stays valid until it expires; changing the admin token ends every
//! session at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::uri::Scheme;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use ring::hmac;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::pages::LoginPage;
use crate::{DASHBOARD_PATH, Web};

/// The session cookie's name.
///
/// ```
/// assert_eq!(hopper_web::auth::SESSION_COOKIE, "hopper_session");
/// ```
pub const SESSION_COOKIE: &str = "hopper_session";

/// How long a session lasts after logging in.
///
/// ```
/// assert_eq!(hopper_web::auth::SESSION_LIFETIME.as_secs(), 12 * 60 * 60);
/// ```
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// What the session key is derived for, from the admin token.
const SESSION_KEY_LABEL: &[u8] = b"hopper-web session key v1";

/// What can go wrong making an admin token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Too short to resist guessing.
    #[error("the admin token must be at least {min} characters long")]
    TooShort {
        /// The least length accepted.
        min: usize,
    },
    /// The system's random source failed.
    #[error("cannot read random bytes for a token: {0}")]
    Random(String),
}

/// The secret that opens the dashboard, the API and the metrics.
///
/// ```
/// let token = hopper_web::AdminToken::new("correct horse").unwrap();
/// assert!(token.matches("correct horse"));
/// assert!(!token.matches("correct horsf"));
/// assert!(hopper_web::AdminToken::new("abc").is_err());
/// ```
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// The shortest token accepted.
    ///
    /// ```
    /// assert_eq!(hopper_web::AdminToken::MIN_LEN, 5);
    /// ```
    pub const MIN_LEN: usize = 5;

    /// A token with the given text (at least [`AdminToken::MIN_LEN`] characters).
    ///
    /// ```
    /// assert_eq!(hopper_web::AdminToken::new("s3cret").unwrap().as_str(), "s3cret");
    /// ```
    pub fn new(token: impl Into<String>) -> Result<Self, TokenError> {
        let token = token.into();
        if token.chars().count() < Self::MIN_LEN {
            return Err(TokenError::TooShort { min: Self::MIN_LEN });
        }
        Ok(Self(token))
    }

    /// A fresh random token (32 hex digits).
    ///
    /// ```
    /// let token = hopper_web::AdminToken::generate().unwrap();
    /// assert_eq!(token.as_str().len(), 32);
    /// assert_ne!(token.as_str(), hopper_web::AdminToken::generate().unwrap().as_str());
    /// ```
    pub fn generate() -> Result<Self, TokenError> {
        Ok(Self(random_hex()?))
    }

    /// The token's text.
    ///
    /// ```
    /// assert_eq!(hopper_web::AdminToken::new("s3cret").unwrap().as_str(), "s3cret");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, compared in constant time.
    ///
    /// ```
    /// assert!(hopper_web::AdminToken::new("s3cret").unwrap().matches("s3cret"));
    /// ```
    pub fn matches(&self, candidate: &str) -> bool {
        same(&self.0, candidate)
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn random_hex() -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
    Ok(hex(&bytes))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Signs and checks session cookies with a key derived from the admin
/// token (see the [module docs](self)).
#[derive(Clone)]
pub(crate) struct SessionKey(hmac::Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    pub(crate) fn new(token: &AdminToken) -> Self {
        let token_key = hmac::Key::new(hmac::HMAC_SHA256, token.as_str().as_bytes());
        let derived = hmac::sign(&token_key, SESSION_KEY_LABEL);
        Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// A new session's cookie value, valid for [`SESSION_LIFETIME`] from `now`
    /// (Unix seconds).
    fn issue(&self, now: u64) -> Result<String, TokenError> {
        let expires = now.saturating_add(SESSION_LIFETIME.as_secs());
        let session = format!("{expires}.{}", random_hex()?);
        let mac = self.mac("session", &session);
        Ok(format!("{session}.{mac}"))
    }

    /// The CSRF token of the session in `cookie`, if this key signed it and
    /// it has not expired at `now`.
    fn open(&self, cookie: &str, now: u64) -> Option<String> {
        let (session, mac) = cookie.rsplit_once('.')?;
        if !same(&self.mac("session", session), mac) {
            return None;
        }
        let (expires, _id) = session.split_once('.')?;
        let expires: u64 = expires.parse().ok()?;
        (now < expires).then(|| self.mac("csrf", session))
    }

    /// The HMAC of `session` for `purpose`, in hex: a session's signature
    /// and its CSRF token are MACs for different purposes, so neither can
    /// stand in for the other.
    fn mac(&self, purpose: &str, session: &str) -> String {
        let message = format!("{purpose}:{session}");
        hex(hmac::sign(&self.0, message.as_bytes()).as_ref())
    }
}

/// An authenticated request. Handlers take it as an argument; a request
/// without the token never reaches them (it gets 401).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The session's CSRF token when the request came in on the session
    /// cookie; `None` for bearer requests.
    csrf: Option<String>,
}

impl Caller {
    /// The CSRF token forms must carry (empty for bearer requests).
    ///
    /// ```
    /// // Handlers receive a `Caller`; its token goes into every form.
    /// fn form(caller: &hopper_web::auth::Caller) -> String {
    ///     format!("<input type=hidden name=csrf value={}>", caller.csrf_token())
    /// }
    /// # let _ = form;
    /// ```
    pub fn csrf_token(&self) -> &str {
        self.csrf.as_deref().unwrap_or("")
    }

    /// Accepts a state-changing request: bearer requests always, cookie
    /// requests only with the session's CSRF token.
    pub(crate) fn check_csrf(&self, submitted: Option<&str>) -> Result<(), Refused> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) => match submitted {
                Some(submitted) if same(expected, submitted) => Ok(()),
                _ => Err(Refused::Csrf),
            },
        }
    }

    /// The CSRF token from an `X-CSRF-Token` header, if any.
    pub(crate) fn check_csrf_header(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let submitted = headers
            .get("x-csrf-token")
            .and_then(|value| value.to_str().ok());
        self.check_csrf(submitted)
    }
}

/// Why a request was turned away.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No token, or a wrong one.
    #[error("the admin token is required")]
    Unauthorized {
        /// Whether the request was for the dashboard (gets the login form).
        dashboard: bool,
    },
    /// A cookie request that changes state without the session's CSRF token.
    #[error("missing or wrong CSRF token; reload the page and try again")]
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Unauthorized { dashboard: true } => {
                crate::pages::respond(StatusCode::UNAUTHORIZED, &LoginPage::new(None))
            }
            Refused::Unauthorized { dashboard: false } => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({ "error": self.to_string() })),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"hopper\""),
                );
                response
            }
            Refused::Csrf => (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({ "error": self.to_string() })),
            )
                .into_response(),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Every `hopper_session` cookie the request carries.
fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

impl FromRequestParts<Web> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            if web.inner.token.matches(token) {
                return Ok(Caller { csrf: None });
            }
        } else {
            let now = unix_now();
            let csrf = session_cookies(&parts.headers)
                .find_map(|cookie| web.inner.session_key.open(cookie, now));
            if csrf.is_some() {
                return Ok(Caller { csrf });
            }
        }
        Err(Refused::Unauthorized {
            dashboard: parts.uri.path().starts_with(DASHBOARD_PATH),
        })
    }
}

/// Whether the request came over HTTPS: to this server (an `https` URI, as
/// HTTP/2 gives), or to a proxy in front of it that said so in
/// `X-Forwarded-Proto` or `Forwarded` (the first, client-facing, hop).
fn came_over_https(uri: &Uri, headers: &HeaderMap) -> bool {
    let first_hop = |name: &'static str| {
        let value = headers.get(name)?.to_str().ok()?;
        value.split(',').next().map(str::trim)
    };
    let x_forwarded_proto = first_hop("x-forwarded-proto");
    let forwarded_proto = first_hop("forwarded").and_then(|hop| {
        hop.split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| name.eq_ignore_ascii_case("proto"))
            .map(|(_, proto)| proto.trim_matches('"'))
    });
    let https =
        |proto: Option<&str>| proto.is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    uri.scheme() == Some(&Scheme::HTTPS) || https(x_forwarded_proto) || https(forwarded_proto)
}

/// A `Set-Cookie` value for the session cookie.
fn set_cookie(value: &str, secure: bool, extra: &str) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{extra}");
    HeaderValue::from_str(&cookie).ok()
}

/// The login form's fields (and the login link's query).
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    token: Option<String>,
}

/// `GET /admin/queue/login`: the form, or with `?token=…` (the link printed
/// at start) a login straight away.
pub(crate) async fn login_page(
    State(web): State<Web>,
    uri: Uri,
    headers: HeaderMap,
    Query(login): Query<Login>,
) -> Response {
    match login.token {
        Some(token) => log_in(&web, &token, came_over_https(&uri, &headers)),
        None => crate::pages::respond(StatusCode::OK, &LoginPage::new(None)),
    }
}

/// `POST /admin/queue/login`: checks the token and sets the session cookie.
pub(crate) async fn login(
    State(web): State<Web>,
    uri: Uri,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
    let secure = came_over_https(&uri, &headers);
    log_in(&web, login.token.as_deref().unwrap_or(""), secure)
}

fn log_in(web: &Web, token: &str, secure: bool) -> Response {
    if !web.inner.token.matches(token) {
        let page = LoginPage::new(Some("That token is not right."));
        return crate::pages::respond(StatusCode::UNAUTHORIZED, &page);
    }
    let cookie = match web.inner.session_key.issue(unix_now()) {
        Ok(cookie) => cookie,
        Err(error) => {
            tracing::error!(%error, "cannot create a session");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot create a session").into_response();
        }
    };
    let mut response = Redirect::to(DASHBOARD_PATH).into_response();
    if let Some(value) = set_cookie(&cookie, secure, "") {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The logout form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct Logout {
    csrf: Option<String>,
}

/// `POST /admin/queue/logout`: clears the session cookie in the browser
/// (the server keeps nothing to forget; see the [module docs](self)).
pub(crate) async fn logout(
    uri: Uri,
    headers: HeaderMap,
    caller: Caller,
    Form(form): Form<Logout>,
) -> Result<Response, Refused> {
    caller.check_csrf(form.csrf.as_deref())?;
    let mut response = Redirect::to(&format!("{DASHBOARD_PATH}/login")).into_response();
    if let Some(value) = set_cookie("", came_over_https(&uri, &headers), "; Max-Age=0") {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed login time, in Unix seconds.
    const NOW: u64 = 1_750_000_000;

    async fn web(token: &str) -> Web {
        let hopper = hopper::Hopper::builder()
            .connect("sqlite::memory:")
            .await
            .unwrap();
        Web::new(hopper, AdminToken::new(token).unwrap())
    }

    fn key(web: &Web) -> &SessionKey {
        &web.inner.session_key
    }

    /// What a request carrying `cookie` (and nothing else) is let in as.
    async fn caller(web: &Web, cookie: &str) -> Result<Caller, Refused> {
        let request = axum::http::Request::get("/admin/queue")
            .header(
                header::COOKIE,
                format!("other=1; {SESSION_COOKIE}={cookie}"),
            )
            .body(())
            .unwrap();
        Caller::from_request_parts(&mut request.into_parts().0, web).await
    }

    #[tokio::test]
    async fn a_session_from_one_instance_opens_on_another_with_the_same_token() {
        let (one, two) = (web("shared token").await, web("shared token").await);
        let cookie = key(&one).issue(NOW).unwrap();
        let csrf = key(&one).open(&cookie, NOW).unwrap();
        assert_eq!(key(&two).open(&cookie, NOW + 60), Some(csrf.clone()));

        let fresh = key(&one).issue(unix_now()).unwrap();
        let on_two = caller(&two, &fresh).await.unwrap();
        let from_one = key(&one).open(&fresh, unix_now()).unwrap();
        assert_eq!(on_two.csrf_token(), from_one);
        assert!(on_two.check_csrf(Some(&from_one)).is_ok());
    }

    #[tokio::test]
    async fn another_token_refuses_the_session() {
        let (one, other) = (web("shared token").await, web("rotated token").await);
        let cookie = key(&one).issue(unix_now()).unwrap();
        assert!(key(&other).open(&cookie, NOW).is_none());
        assert!(matches!(
            caller(&other, &cookie).await,
            Err(Refused::Unauthorized { dashboard: true })
        ));
    }

    #[tokio::test]
    async fn an_expired_session_is_refused() {
        let one = web("shared token").await;
        let cookie = key(&one).issue(NOW).unwrap();
        let ends = NOW + SESSION_LIFETIME.as_secs();
        assert!(key(&one).open(&cookie, ends - 1).is_some());
        assert!(key(&one).open(&cookie, ends).is_none());
        assert!(key(&one).open(&cookie, ends + 3600).is_none());
        let issued_long_ago = unix_now() - SESSION_LIFETIME.as_secs() - 1;
        let stale = key(&one).issue(issued_long_ago).unwrap();
        assert!(caller(&one, &stale).await.is_err());
    }

    #[tokio::test]
    async fn a_tampered_session_is_refused() {
        let one = web("shared token").await;
        let cookie = key(&one).issue(NOW).unwrap();
        let (session, mac) = cookie.rsplit_once('.').unwrap();
        let (expires, id) = session.split_once('.').unwrap();
        let later = expires.parse::<u64>().unwrap() + 86_400;
        let flipped = |text: &str| {
            let last = if text.ends_with('0') { "1" } else { "0" };
            format!("{}{last}", &text[..text.len() - 1])
        };
        let csrf = key(&one).open(&cookie, NOW).unwrap();
        for forged in [
            format!("{later}.{id}.{mac}"),
            format!("{expires}.{}.{mac}", flipped(id)),
            format!("{session}.{}", flipped(mac)),
            format!("{session}.{}", &mac[..mac.len() - 2]),
            format!("{session}."),
            format!("{session}.{csrf}"),
            session.to_owned(),
            id.to_owned(),
            String::new(),
            "1.2.3".to_owned(),
        ] {
            assert!(key(&one).open(&forged, NOW).is_none(), "{forged}");
        }
    }

    #[tokio::test]
    async fn each_login_is_its_own_session_with_its_own_csrf_token() {
        let (one, two) = (web("shared token").await, web("shared token").await);
        let first = key(&one).issue(unix_now()).unwrap();
        let second = key(&one).issue(unix_now()).unwrap();
        assert_ne!(first, second);
        let on_two = caller(&two, &first).await.unwrap();
        let other_csrf = key(&one).open(&second, unix_now()).unwrap();
        assert!(matches!(
            on_two.check_csrf(Some(&other_csrf)),
            Err(Refused::Csrf)
        ));
        assert!(matches!(on_two.check_csrf(None), Err(Refused::Csrf)));
        assert!(matches!(on_two.check_csrf(Some("")), Err(Refused::Csrf)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-csrf-token",
            HeaderValue::from_str(on_two.csrf_token()).unwrap(),
        );
        assert!(on_two.check_csrf_header(&headers).is_ok());
    }

    #[test]
    fn https_is_seen_directly_or_through_a_proxy() {
        let with = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            headers
        };
        let plain: Uri = "/admin/queue/login".parse().unwrap();
        let direct: Uri = "https://example.com/admin/queue/login".parse().unwrap();
        assert!(came_over_https(&direct, &HeaderMap::new()));
        assert!(!came_over_https(&plain, &HeaderMap::new()));
        assert!(came_over_https(&plain, &with("x-forwarded-proto", "https")));
        assert!(came_over_https(
            &plain,
            &with("x-forwarded-proto", "HTTPS, http")
        ));
        assert!(!came_over_https(&plain, &with("x-forwarded-proto", "http")));
        let forwarded = with("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43");
        assert!(came_over_https(&plain, &forwarded));
        assert!(!came_over_https(
            &plain,
            &with("forwarded", "for=192.0.2.60;proto=http")
        ));
    }

    #[test]
    fn the_admin_token_matches_only_itself() {
        let token = AdminToken::new("correct horse").unwrap();
        assert!(token.matches("correct horse"));
        for wrong in ["correct hors", "correct horsf", "correct horse ", ""] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
    }
}
