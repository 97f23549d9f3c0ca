//! User endpoints: `POST /users/welcome-email`.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::{Form, Json};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::AppState;
use crate::jobs::EmailJob;
use crate::jobs::email_job::EmailPayload;

/// The subject of the welcome email.
pub const WELCOME_SUBJECT: &str = "Welcome to Hopper!";
/// The body of the welcome email.
pub const WELCOME_BODY: &str = "Thank you for joining us.";

/// The form `POST /users/welcome-email` takes.
#[derive(Debug, Deserialize)]
pub struct WelcomeEmailForm {
    /// The new user's address.
    pub email: Option<String>,
}

/// The answer when the email was queued.
#[derive(Debug, Serialize)]
pub struct Queued {
    /// Always true.
    pub success: bool,
    /// What happened.
    pub message: &'static str,
}

/// Queues a welcome email to the form's `email`.
///
/// 200 `{"success":true,"message":"Welcome email queued successfully"}`;
/// 422 `{"error": …}` when `email` is missing or not an address; 500
/// `{"error":"Failed to queue welcome email"}` when the job cannot be stored.
pub async fn send_welcome_email(
    State(state): State<AppState>,
    form: Result<Form<WelcomeEmailForm>, FormRejection>,
) -> Result<Json<Queued>, ApiError> {
    let Form(form) = form.map_err(|rejection| match rejection {
        FormRejection::InvalidFormContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the form as application/x-www-form-urlencoded with an `email` field",
        ),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid form: {}", other.body_text()),
        ),
    })?;
    let email = validate_email(form.email.as_deref().unwrap_or(""))
        .map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;

    let payload = EmailPayload {
        to: email.to_owned(),
        subject: WELCOME_SUBJECT.to_owned(),
        body: WELCOME_BODY.to_owned(),
    };
    match state.hopper.dispatch::<EmailJob>(payload).await {
        Ok(id) => {
            tracing::info!(job_id = id, to = email, "welcome email queued");
            Ok(Json(Queued {
                success: true,
                message: "Welcome email queued successfully",
            }))
        }
        Err(err) => {
            tracing::error!(error = %err, "failed to queue welcome email");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Failed to queue welcome email",
            ))
        }
    }
}

/// Checks that `email` looks like an address (`local@domain.tld`, no
/// spaces, at most 254 characters) and returns it trimmed. This is a
/// plausibility check, not proof the mailbox exists.
///
/// ```
/// use app::controllers::user_controller::validate_email;
/// assert_eq!(validate_email(" ada@example.com "), Ok("ada@example.com"));
/// assert!(validate_email("ada@").is_err());
/// ```
pub fn validate_email(email: &str) -> Result<&str, String> {
    let email = email.trim();
    if email.is_empty() {
        return Err("the `email` field is required".to_owned());
    }
    let invalid = || Err(format!("{email:?} is not a valid email address"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid();
    };
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return invalid();
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::validate_email;

    #[test]
    fn plausible_addresses_pass() {
        for email in ["ada@example.com", "a.b+tag@mail.example.co.uk", "x@y.io"] {
            assert_eq!(validate_email(email), Ok(email));
        }
    }

    #[test]
    fn malformed_addresses_fail() {
        for email in [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a@b@example.com",
            "ada lovelace@example.com",
            "ada@example..com",
            "ada@.example.com",
            "ada@-example.com",
        ] {
            assert!(validate_email(email).is_err(), "{email:?} passed");
        }
    }

    #[test]
    fn a_missing_email_says_it_is_required() {
        assert!(validate_email("").unwrap_err().contains("required"));
    }
}
