//! Cron schedules for errand: a [`CronSchedule`] ticks by a cron expression
//! in a timezone, and each tick becomes one task in a durable backend, however
//! many processes run the schedule.
//!
//! ```
//! use errand_cron::CronSchedule;
//! use errand_runtime::{Missed, Schedule, Timestamp};
//!
//! // sec min hour day-of-month month day-of-week
//! let schedule = CronSchedule::new("0 0 6 * * Mon-Fri")?
//!     .timezone("Europe/Paris")?
//!     .missed(Missed::Skip);
//! // Monday 2026-11-30 06:00 in Paris is 05:00 UTC.
//! let sunday_noon_utc = Timestamp(1_796_299_200_000); // 2026-11-29T12:00:00Z
//! assert_eq!(schedule.next_after(sunday_noon_utc), Some(Timestamp(1_796_360_400_000)));
//! # Ok::<(), errand_runtime::Error>(())
//! ```
//!
//! Run it into a backend with [`ScheduleExt::pipe_to`](errand_runtime::ScheduleExt::pipe_to),
//! or write `#[errand::job(cron = "…")]` and the job's worker runs it:
//!
//! ```text
//! #[errand::job(queue = "reports", cron = "0 0 6 * * Mon-Fri", timezone = "Europe/Paris", missed = "once")]
//! async fn daily_report(tick: Tick) -> Result<(), JobError> { … }
//! ```
//!
//! # Expressions
//!
//! Six or seven fields, the [`cron`] crate's syntax: seconds, minutes,
//! hours, day of month, month, day of week, and an optional year. Names work
//! for months and days (`Jan-Mar`, `Mon-Fri`), as do `*`, lists (`1,15`),
//! ranges (`9-17`) and steps (`*/5`), and the shortcuts `@hourly`, `@daily`,
//! `@weekly`, `@monthly` and `@yearly`. In the day-of-week field, `1` is
//! Sunday and `7` Saturday; prefer the names.
//!
//! # Timezones and daylight saving
//!
//! Ticks are computed in the schedule's timezone (an IANA name such as
//! `"Europe/Paris"`; UTC by default) and stored as instants. On the night
//! clocks go forward, a wall-clock time that does not exist (02:30 in
//! Paris on the last Sunday of March) has no tick; on the night they go
//! back, a wall-clock time that happens twice ticks once, at its first
//! instant (as cron does: an hourly schedule has one tick for the hour that
//! repeats).
//!
//! # Once per tick, and missed ticks
//!
//! See [`errand_runtime::schedule`]: every process enqueues each tick under
//! a unique key, the backend keeps one, and ticks missed while every process
//! was down are treated by the [`Missed`] policy (`once` by default).

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use errand_runtime::{Error, Missed, Schedule, Timestamp};

/// A schedule from a cron expression, in a timezone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// `None` only for a schedule the macro checked that failed anyway.
    schedule: Option<cron::Schedule>,
    expression: String,
    timezone: Tz,
    key: String,
    missed: Missed,
}

impl CronSchedule {
    /// Parses `expression` (six or seven fields, see the [crate docs](crate));
    /// the schedule ticks in UTC until [`timezone`](Self::timezone) says otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the expression and what is wrong with it.
    pub fn new(expression: &str) -> Result<Self, Error> {
        let schedule = parse(expression).map_err(Error::Config)?;
        Ok(Self {
            schedule: Some(schedule),
            expression: expression.trim().to_owned(),
            timezone: Tz::UTC,
            key: String::new(),
            missed: Missed::Once,
        }
        .with_default_key())
    }

    /// Ticks in `timezone`, an IANA name such as `"Europe/Paris"`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a name that is not a known timezone.
    pub fn timezone(mut self, timezone: &str) -> Result<Self, Error> {
        self.timezone = parse_timezone(timezone).map_err(Error::Config)?;
        Ok(self.with_default_key())
    }

    /// What to do with ticks missed while no process ran the schedule
    /// ([`Missed::Once`] by default).
    pub fn missed(mut self, missed: Missed) -> Self {
        self.missed = missed;
        self
    }

    /// Names the schedule in the backend (by default its expression and
    /// timezone). Name two schedules of one job differently.
    pub fn named(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// The expression, as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The timezone's IANA name.
    pub fn timezone_name(&self) -> &'static str {
        self.timezone.name()
    }

    /// The next `n` ticks after `after`, for showing a schedule to a person.
    pub fn upcoming(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut ticks = Vec::with_capacity(n);
        let mut at = after;
        while ticks.len() < n {
            let Some(next) = self.next_after(at) else { break };
            ticks.push(next);
            at = next;
        }
        ticks
    }

    /// The schedule `#[errand::job(cron = …)]` generates, from values the
    /// macro already checked when the job compiled. Should they fail to
    /// parse anyway (errand-cron and the macros disagreeing), the error is
    /// logged and the schedule never ticks.
    #[doc(hidden)]
    pub fn __checked(expression: &str, timezone: &str, missed: &str) -> Self {
        let built = CronSchedule::new(expression)
            .and_then(|s| s.timezone(timezone))
            .and_then(|s| Ok(s.missed(missed.parse()?)));
        match built {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::error!(%error, expression, "a cron schedule checked at compile time failed to parse; it never ticks");
                Self {
                    schedule: None,
                    expression: expression.to_owned(),
                    timezone: Tz::UTC,
                    key: expression.to_owned(),
                    missed: Missed::Skip,
                }
            }
        }
    }

    fn with_default_key(mut self) -> Self {
        self.key = format!("{} {}", self.expression, self.timezone.name());
        self
    }
}

impl Schedule for CronSchedule {
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let after: DateTime<Utc> = Utc.timestamp_millis_opt(after.as_millis()).single()?;
        let local = after.with_timezone(&self.timezone);
        let next = self.schedule.as_ref()?.after(&local).next()?;
        Some(Timestamp(next.with_timezone(&Utc).timestamp_millis()))
    }

    fn key(&self) -> &str {
        &self.key
    }

    fn missed_policy(&self) -> Missed {
        self.missed
    }
}

/// Checks a cron expression, with a message that says what is wrong.
///
/// # Errors
///
/// The message, naming the expression.
pub fn check_expression(expression: &str) -> Result<(), String> {
    parse(expression).map(|_| ())
}

/// Checks a timezone name, with a message that says what is wrong.
///
/// # Errors
///
/// The message, naming the timezone.
pub fn check_timezone(timezone: &str) -> Result<(), String> {
    parse_timezone(timezone).map(|_| ())
}

fn parse(expression: &str) -> Result<cron::Schedule, String> {
    let trimmed = expression.trim();
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && fields == 5 {
        return Err(format!(
            "invalid cron expression `{trimmed}`: it has 5 fields, but errand's cron expressions start with \
             seconds (sec min hour day-of-month month day-of-week [year]): write `0 {trimmed}`"
        ));
    }
    cron::Schedule::from_str(trimmed).map_err(|error| {
        format!(
            "invalid cron expression `{trimmed}`: {} (expected sec min hour day-of-month month day-of-week \
             [year], e.g. `0 0 6 * * Mon-Fri`)",
            cron_reason(&error.to_string())
        )
    })
}

fn parse_timezone(timezone: &str) -> Result<Tz, String> {
    timezone.parse::<Tz>().map_err(|_| {
        format!(
            "unknown timezone `{timezone}`: expected an IANA name such as `Europe/Paris`, `America/New_York` or `UTC`"
        )
    })
}

/// The `cron` crate's message without its copy of the expression and caret
/// line: the last line, which says what is wrong.
fn cron_reason(message: &str) -> &str {
    message.lines().rev().map(str::trim).find(|line| !line.is_empty()).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Timestamp {
        match DateTime::parse_from_rfc3339(rfc3339) {
            Ok(t) => Timestamp(t.timestamp_millis()),
            Err(e) => panic!("{rfc3339}: {e}"),
        }
    }

    fn schedule(expression: &str, timezone: &str) -> CronSchedule {
        match CronSchedule::new(expression).and_then(|s| s.timezone(timezone)) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn ticks_follow_the_timezone() {
        let s = schedule("0 0 6 * * Mon-Fri", "Europe/Paris");
        // Friday 2026-12-04 06:00 CET, then Monday 2026-12-07 06:00 CET.
        assert_eq!(
            s.upcoming(at("2026-12-04T00:00:00Z"), 2),
            vec![at("2026-12-04T05:00:00Z"), at("2026-12-07T05:00:00Z")]
        );
        let s = schedule("0 0 6 * * *", "America/New_York");
        assert_eq!(s.next_after(at("2026-07-01T00:00:00Z")), Some(at("2026-07-01T10:00:00Z")));
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_has_no_tick() {
        // Paris springs forward on 2026-03-29: 02:00 becomes 03:00.
        let s = schedule("0 30 2 * * *", "Europe/Paris");
        assert_eq!(
            s.upcoming(at("2026-03-27T12:00:00Z"), 3),
            vec![at("2026-03-28T01:30:00Z"), at("2026-03-30T00:30:00Z"), at("2026-03-31T00:30:00Z")]
        );
    }

    #[test]
    fn a_time_repeated_by_daylight_saving_ticks_once() {
        // Paris falls back on 2026-10-25: 03:00 CEST becomes 02:00 CET, so
        // 02:00 local happens at 00:00Z and again at 01:00Z.
        let s = schedule("0 0 * * * *", "Europe/Paris");
        let ticks = s.upcoming(at("2026-10-24T23:30:00Z"), 3);
        assert_eq!(ticks, vec![at("2026-10-25T00:00:00Z"), at("2026-10-25T02:00:00Z"), at("2026-10-25T03:00:00Z")]);
        assert!(ticks.windows(2).all(|w| w[0] < w[1]), "ticks go forward: {ticks:?}");
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let five = CronSchedule::new("*/5 * * * *").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(five.contains("5 fields") && five.contains("`0 */5 * * * *`"), "{five}");
        let bad = CronSchedule::new("0 0 25 * * *").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(bad.contains("invalid cron expression `0 0 25 * * *`"), "{bad}");
        let tz = CronSchedule::new("@daily").and_then(|s| s.timezone("Mars/Olympus")).err().map(|e| e.to_string());
        assert!(tz.is_some_and(|e| e.contains("unknown timezone `Mars/Olympus`")));
    }

    #[test]
    fn keys_name_the_expression_and_timezone() {
        let s = schedule("0 0 6 * * *", "Europe/Paris");
        assert_eq!(s.key(), "0 0 6 * * * Europe/Paris");
        assert_eq!(s.named("reports").key(), "reports");
        assert_eq!(CronSchedule::__checked("0 0 6 * * *", "UTC", "all").missed_policy(), Missed::All);
    }
}
