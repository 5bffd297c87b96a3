//! Times as people type and read them: UTC `YYYY-MM-DD`,
//! `YYYY-MM-DDTHH:MM[:SS]Z`, or an age (`30m`, `8h`, `2d`: that long before
//! now), to and from the database's milliseconds since the Unix epoch.
//!
//! The calendar arithmetic is [`crate::calendar`]'s; everything is UTC, as
//! the database is.

use crate::calendar::{civil_from_days, days_from_civil};

/// A time the user typed that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a time: give YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z (UTC) or an age such as 30m, 8h, 2d")]
pub struct TimeError {
    pub text: String,
}

impl crate::failure::Classify for TimeError {
    fn class(&self) -> crate::failure::FailureClass {
        crate::failure::FailureClass::Input
    }
}

/// Parses `text` into milliseconds since the epoch; an age counts back from `now_ms`.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, TimeError> {
    let error = || TimeError { text: text.chars().take(64).collect() };
    let text = text.trim();
    if let Some(age) = parse_age(text) {
        return now_ms.checked_sub(age).ok_or_else(error);
    }
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock.strip_suffix('Z').unwrap_or(clock))),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i64 = number(parts.next(), 4).ok_or_else(error)?;
    let month: i64 = number(parts.next(), 2).ok_or_else(error)?;
    let day: i64 = number(parts.next(), 2).ok_or_else(error)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(error());
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(clock) = clock {
        let mut parts = clock.splitn(3, ':');
        let hour: i64 = number(parts.next(), 2).ok_or_else(error)?;
        let minute: i64 = number(parts.next(), 2).ok_or_else(error)?;
        let second: i64 = match parts.next() {
            Some(text) => number(Some(text), 2).ok_or_else(error)?,
            None => 0,
        };
        if hour > 23 || minute > 59 || second > 59 {
            return Err(error());
        }
        seconds += hour * 3600 + minute * 60 + second;
    }
    Ok(seconds * 1000)
}

/// `2026-11-29T18:04:05Z` for milliseconds since the epoch.
pub fn format_time(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// `4.2 s`, `3 min 5 s`, `2 h 10 min`: an age or duration for people.
pub fn format_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

fn parse_age(text: &str) -> Option<i64> {
    let unit = match text.chars().last()? {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let count: i64 = text[..text.len() - 1].parse().ok().filter(|n| *n >= 0)?;
    count.checked_mul(unit)
}

fn number(text: Option<&str>, width: usize) -> Option<i64> {
    let text = text?;
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dates_and_times_are_utc_milliseconds() {
        assert_eq!(parse_time("1970-01-01", 0), Ok(0));
        assert_eq!(parse_time("2026-11-29T18:04:05Z", 0), Ok(1_795_975_445_000));
        assert_eq!(parse_time("2026-11-29T18:04", 0), Ok(1_795_975_440_000));
        assert_eq!(parse_time("2024-02-29", 0), Ok(1_709_164_800_000));
        assert_eq!(format_time(1_795_975_445_000), "2026-11-29T18:04:05Z");
    }

    #[test]
    fn ages_count_back_from_now() {
        assert_eq!(parse_time("8h", 10 * 3_600_000), Ok(2 * 3_600_000));
        assert_eq!(parse_time("30m", 3_600_000), Ok(1_800_000));
        assert_eq!(parse_time("2d", 3 * 86_400_000), Ok(86_400_000));
    }

    #[test]
    fn what_is_not_a_time_is_refused_with_its_text() {
        for bad in [
            "",
            "yesterday",
            "2023-02-29",
            "2026-13-01",
            "2026-1-1",
            "2026-11-29T24:00",
            "-5h",
            "h",
            "9999999999999999d",
        ] {
            let error = parse_time(bad, 1_000_000).expect_err(bad);
            assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(format_duration(450), "450 ms");
        assert_eq!(format_duration(4_200), "4.2 s");
        assert_eq!(format_duration(185_000), "3 min 5 s");
        assert_eq!(format_duration(7_800_000), "2 h 10 min");
    }

    proptest! {
        #[test]
        fn formatting_and_parsing_agree(seconds in 0i64..8_000_000_000) {
            let ms = seconds * 1000;
            prop_assert_eq!(parse_time(&format_time(ms), 0), Ok(ms));
        }

        #[test]
        fn any_text_gives_a_time_or_an_error(text in ".{0,40}") {
            let _ = parse_time(&text, 1_000_000);
        }
    }
}
