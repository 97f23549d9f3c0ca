//! How the dashboard writes times and ages. The pages themselves are
//! templates (`templates/`, rendered by the crate's page views), which
//! HTML-escape every value they write out.

use chrono::{DateTime, Utc};

/// `at` as `2024-05-01 12:00:00 UTC`.
///
/// ```
/// let at = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().to_utc();
/// assert_eq!(hopper_web::html::time(at), "2024-05-01 12:00:00 UTC");
/// ```
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A span of seconds as `3d 4h`, `5m 2s` or `7s`.
///
/// ```
/// assert_eq!(hopper_web::html::age(0), "0s");
/// assert_eq!(hopper_web::html::age(302), "5m 2s");
/// assert_eq!(hopper_web::html::age(90_000), "1d 1h");
/// ```
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}
