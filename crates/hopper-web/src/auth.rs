//! Who may look: the admin token, login sessions and CSRF protection.
//!
//! A request is let in when it carries the admin token as
//! `Authorization: Bearer <token>`, or the session cookie that logging in
//! with the token set. A state-changing request that came in on the cookie
//! must also carry the session's CSRF token (the `csrf` form field the
//! dashboard's forms include, or an `X-CSRF-Token` header); bearer requests
//! need none, since browsers never add that header on their own.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use crate::{DASHBOARD_PATH, Web};

/// The session cookie's name.
///
/// ```
/// assert_eq!(hopper_web::auth::SESSION_COOKIE, "hopper_session");
/// ```
pub const SESSION_COOKIE: &str = "hopper_session";

/// Sessions kept at most; the oldest are forgotten past this.
const MAX_SESSIONS: usize = 1000;

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
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex() -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Logged-in sessions: session id → CSRF token.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

#[derive(Debug)]
struct Session {
    csrf: String,
    serial: u64,
}

impl Sessions {
    fn create(&self) -> Result<(String, String), TokenError> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let serial = sessions.values().map(|s| s.serial).max().unwrap_or(0) + 1;
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.serial)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                serial,
            },
        );
        Ok((id, csrf))
    }

    fn csrf(&self, id: &str) -> Option<String> {
        let sessions = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        sessions.get(id).map(|session| session.csrf.clone())
    }

    fn remove(&self, id: &str) {
        let mut sessions = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(id);
    }
}

/// An authenticated request. Handlers take it as an argument; a request
/// without the token never reaches them (it gets 401).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The session's CSRF token when the request came in on the session
    /// cookie; `None` for bearer requests.
    csrf: Option<String>,
    session: Option<String>,
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
                Some(submitted) if constant_time_eq(expected.as_bytes(), submitted.as_bytes()) => {
                    Ok(())
                }
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
                (StatusCode::UNAUTHORIZED, crate::html::login_page(None)).into_response()
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

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

impl FromRequestParts<Web> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            if web.inner.token.matches(token) {
                return Ok(Caller {
                    csrf: None,
                    session: None,
                });
            }
        } else if let Some(id) = session_cookie(&parts.headers) {
            if let Some(csrf) = web.inner.sessions.csrf(id) {
                return Ok(Caller {
                    csrf: Some(csrf),
                    session: Some(id.to_owned()),
                });
            }
        }
        Err(Refused::Unauthorized {
            dashboard: parts.uri.path().starts_with(DASHBOARD_PATH),
        })
    }
}

/// The login form's fields (and the login link's query).
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    token: Option<String>,
}

/// `GET /admin/queue/login`: the form, or with `?token=…` (the link printed
/// at start) a login straight away.
pub(crate) async fn login_page(State(web): State<Web>, Query(login): Query<Login>) -> Response {
    match login.token {
        Some(token) => log_in(&web, &token),
        None => crate::html::login_page(None).into_response(),
    }
}

/// `POST /admin/queue/login`: checks the token and sets the session cookie.
pub(crate) async fn login(State(web): State<Web>, Form(login): Form<Login>) -> Response {
    log_in(&web, login.token.as_deref().unwrap_or(""))
}

fn log_in(web: &Web, token: &str) -> Response {
    if !web.inner.token.matches(token) {
        return (
            StatusCode::UNAUTHORIZED,
            crate::html::login_page(Some("That token is not right.")),
        )
            .into_response();
    }
    let (id, _csrf) = match web.inner.sessions.create() {
        Ok(session) => session,
        Err(error) => {
            tracing::error!(%error, "cannot create a session");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot create a session").into_response();
        }
    };
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to(DASHBOARD_PATH).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The logout form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct Logout {
    csrf: Option<String>,
}

/// `POST /admin/queue/logout`: forgets the session.
pub(crate) async fn logout(
    State(web): State<Web>,
    caller: Caller,
    Form(form): Form<Logout>,
) -> Result<Response, Refused> {
    caller.check_csrf(form.csrf.as_deref())?;
    if let Some(id) = &caller.session {
        web.inner.sessions.remove(id);
    }
    let mut response = Redirect::to(&format!("{DASHBOARD_PATH}/login")).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("hopper_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}
