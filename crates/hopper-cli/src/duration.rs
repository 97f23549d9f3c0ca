//! Durations as people type them on a command line (`30s`, `5m`, `7d`) and
//! read them in a table (`2m 5s`), and the time an age reaches back to.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// A duration that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid duration {input:?}: expected a number and a unit, like 500ms, 30s, 5m, 2h, 7d or 1w"
)]
pub struct DurationError {
    /// What was given.
    pub input: String,
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `7d`, `1w` (a bare number is seconds).
///
/// ```
/// use std::time::Duration;
/// use hopper_cli::duration::parse;
/// assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86_400));
/// assert_eq!(parse("30").unwrap(), Duration::from_secs(30));
/// assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse("soon").is_err());
/// ```
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        input: input.to_owned(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| error())?;
    let millis_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 604_800_000,
        _ => return Err(error()),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(error)
}

/// A short human form, the two largest units: `45s`, `2m 5s`, `3h 10m`, `4d 2h`, `850ms`.
///
/// ```
/// use std::time::Duration;
/// use hopper_cli::duration::human;
/// assert_eq!(human(Duration::from_secs(125)), "2m 5s");
/// assert_eq!(human(Duration::from_secs(90_000)), "1d 1h");
/// assert_eq!(human(Duration::from_millis(850)), "850ms");
/// ```
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        if rest >= size {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// The time `age` before `now`: what "older than `age`" means for a job's
/// creation time; `None` when that is before the earliest time a date can
/// hold.
///
/// ```
/// use std::time::Duration;
/// use hopper_cli::duration::ago;
/// let now = chrono::DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z").unwrap().to_utc();
/// assert_eq!(ago(now, Duration::from_secs(2 * 3600)).unwrap().to_rfc3339(), "2026-05-01T10:00:00+00:00");
/// assert_eq!(ago(now, Duration::MAX), None);
/// ```
pub fn ago(now: DateTime<Utc>, age: Duration) -> Option<DateTime<Utc>> {
    TimeDelta::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
}

/// Like [`parse`], as a clap value parser.
pub(crate) fn clap_parse(input: &str) -> Result<Duration, String> {
    parse(input).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse() {
        assert_eq!(parse("1w").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7_200));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse(" 10 s ").unwrap(), Duration::from_secs(10));
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("5y").is_err());
        assert!(parse("99999999999999999999d").is_err());
    }

    #[test]
    fn human_forms() {
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(3_600)), "1h");
        assert_eq!(human(Duration::from_secs(3_661)), "1h 1m");
    }
}
