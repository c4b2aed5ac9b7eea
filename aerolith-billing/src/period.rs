//! Billing periods: the calendar arithmetic that turns a subscription's anchor
//! instant and interval (monthly or yearly) into half-open periods
//! `[start, end)` in UTC.
//!
//! Every boundary is computed from the anchor directly (boundary `n` is the
//! anchor plus `n` months), never from the previous boundary, so periods never
//! drift: an anchor on Jan 31 gives Feb 28 (29 in leap years), then Mar 31,
//! then Apr 30. When the anchor's day does not exist in a month, the boundary
//! falls on that month's last day, at the anchor's time of day. A yearly
//! anchor on Feb 29 gives Feb 28 in non-leap years. Consecutive periods tile
//! time: each period's end is the next one's start.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// How long a billing period lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// One calendar month, anchored on the anchor's day of month.
    Monthly,
    /// One calendar year, anchored on the anchor's month and day.
    Yearly,
}

impl Interval {
    /// Number of calendar months in one period.
    pub fn months(self) -> i64 {
        match self {
            Interval::Monthly => 1,
            Interval::Yearly => 12,
        }
    }
}

/// A half-open billing period `[start_unix_ms, end_unix_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Period {
    /// First millisecond of the period (inclusive).
    pub start_unix_ms: i64,
    /// First millisecond after the period (exclusive).
    pub end_unix_ms: i64,
}

impl Period {
    /// Length of the period in milliseconds.
    pub fn length_ms(&self) -> i64 {
        self.end_unix_ms - self.start_unix_ms
    }

    /// Whether `t_unix_ms` falls inside `[start, end)`.
    pub fn contains(&self, t_unix_ms: i64) -> bool {
        self.start_unix_ms <= t_unix_ms && t_unix_ms < self.end_unix_ms
    }
}

/// Why a period could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeriodError {
    /// The instant lies before the anchor; periods only run forward from it.
    #[error("instant {at_unix_ms} lies before the billing anchor {anchor_unix_ms}")]
    BeforeAnchor {
        /// The subscription's anchor.
        anchor_unix_ms: i64,
        /// The instant asked about.
        at_unix_ms: i64,
    },
    /// The anchor or a boundary is outside the calendar range chrono supports.
    #[error("instant {unix_ms} is outside the supported calendar range")]
    OutOfRange {
        /// The offending instant (or anchor).
        unix_ms: i64,
    },
}

fn to_datetime(unix_ms: i64) -> Result<DateTime<Utc>, PeriodError> {
    DateTime::<Utc>::from_timestamp_millis(unix_ms).ok_or(PeriodError::OutOfRange { unix_ms })
}

fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let (next_year, next_month) = if month == 12 {
        (year.checked_add(1)?, 1)
    } else {
        (year, month + 1)
    };
    let first_of_next = NaiveDate::from_ymd_opt(next_year, next_month, 1)?;
    Some(first_of_next.pred_opt()?.day())
}

/// The `index`-th boundary after the anchor: the anchor plus `index` periods.
/// Boundary 0 is the anchor itself.
pub fn period_boundary(
    anchor_unix_ms: i64,
    interval: Interval,
    index: i64,
) -> Result<i64, PeriodError> {
    let out_of_range = PeriodError::OutOfRange {
        unix_ms: anchor_unix_ms,
    };
    let anchor = to_datetime(anchor_unix_ms)?;
    let months_total = i64::from(anchor.year())
        .checked_mul(12)
        .and_then(|m| m.checked_add(i64::from(anchor.month0())))
        .and_then(|m| m.checked_add(index.checked_mul(interval.months())?))
        .ok_or(out_of_range.clone())?;
    let year = i32::try_from(months_total.div_euclid(12)).map_err(|_| out_of_range.clone())?;
    let month = u32::try_from(months_total.rem_euclid(12) + 1).map_err(|_| out_of_range.clone())?;
    let last_day = days_in_month(year, month).ok_or(out_of_range.clone())?;
    let day = anchor.day().min(last_day);
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(out_of_range.clone())?;
    let naive = date
        .and_hms_nano_opt(
            anchor.hour(),
            anchor.minute(),
            anchor.second(),
            anchor.nanosecond(),
        )
        .ok_or(out_of_range.clone())?;
    Ok(naive.and_utc().timestamp_millis())
}

/// Upper bound on the correction steps after the month estimate; the estimate
/// is off by at most one period, so two steps each way always suffice.
const INDEX_CORRECTION_STEPS_MAX: usize = 4;

/// Index of the period containing `at_unix_ms` (0 = the first period).
pub fn period_index(
    anchor_unix_ms: i64,
    interval: Interval,
    at_unix_ms: i64,
) -> Result<i64, PeriodError> {
    if at_unix_ms < anchor_unix_ms {
        return Err(PeriodError::BeforeAnchor {
            anchor_unix_ms,
            at_unix_ms,
        });
    }
    let anchor = to_datetime(anchor_unix_ms)?;
    let at = to_datetime(at_unix_ms)?;
    let months_between = (i64::from(at.year()) - i64::from(anchor.year())) * 12
        + i64::from(at.month0())
        - i64::from(anchor.month0());
    let mut index = months_between.div_euclid(interval.months()).max(0);
    for _ in 0..INDEX_CORRECTION_STEPS_MAX {
        if index > 0 && period_boundary(anchor_unix_ms, interval, index)? > at_unix_ms {
            index -= 1;
        } else if period_boundary(anchor_unix_ms, interval, index + 1)? <= at_unix_ms {
            index += 1;
        } else {
            return Ok(index);
        }
    }
    unreachable!("the month estimate is within one period of the true index")
}

/// The period that contains `at_unix_ms`, for a subscription anchored at
/// `anchor_unix_ms`.
pub fn period_containing(
    anchor_unix_ms: i64,
    interval: Interval,
    at_unix_ms: i64,
) -> Result<Period, PeriodError> {
    let index = period_index(anchor_unix_ms, interval, at_unix_ms)?;
    Ok(Period {
        start_unix_ms: period_boundary(anchor_unix_ms, interval, index)?,
        end_unix_ms: period_boundary(anchor_unix_ms, interval, index + 1)?,
    })
}

/// The end (exclusive) of the period containing `at_unix_ms`: the next
/// renewal instant.
pub fn next_period_end(
    anchor_unix_ms: i64,
    interval: Interval,
    at_unix_ms: i64,
) -> Result<i64, PeriodError> {
    Ok(period_containing(anchor_unix_ms, interval, at_unix_ms)?.end_unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|date| date.and_hms_opt(h, min, s))
            .map(|n| n.and_utc().timestamp_millis())
            .expect("valid test date")
    }

    #[test]
    fn end_of_month_anchor_clamps_and_recovers() {
        let anchor = ms(2023, 1, 31, 10, 0, 0);
        let b = |i| period_boundary(anchor, Interval::Monthly, i).expect("in range");
        assert_eq!(b(1), ms(2023, 2, 28, 10, 0, 0));
        assert_eq!(b(2), ms(2023, 3, 31, 10, 0, 0));
        assert_eq!(b(3), ms(2023, 4, 30, 10, 0, 0));
        assert_eq!(b(4), ms(2023, 5, 31, 10, 0, 0));
        let leap = ms(2024, 1, 31, 0, 0, 0);
        assert_eq!(
            period_boundary(leap, Interval::Monthly, 1),
            Ok(ms(2024, 2, 29, 0, 0, 0))
        );
    }

    #[test]
    fn leap_day_yearly_anchor_falls_on_feb_28_in_common_years() {
        let anchor = ms(2024, 2, 29, 12, 30, 0);
        let b = |i| period_boundary(anchor, Interval::Yearly, i).expect("in range");
        assert_eq!(b(1), ms(2025, 2, 28, 12, 30, 0));
        assert_eq!(b(3), ms(2027, 2, 28, 12, 30, 0));
        assert_eq!(b(4), ms(2028, 2, 29, 12, 30, 0));
    }

    #[test]
    fn period_containing_finds_the_right_month() {
        let anchor = ms(2023, 1, 31, 10, 0, 0);
        let p = period_containing(anchor, Interval::Monthly, ms(2023, 3, 15, 0, 0, 0))
            .expect("in range");
        assert_eq!(p.start_unix_ms, ms(2023, 2, 28, 10, 0, 0));
        assert_eq!(p.end_unix_ms, ms(2023, 3, 31, 10, 0, 0));
        // The boundary instant belongs to the period it starts.
        let p = period_containing(anchor, Interval::Monthly, ms(2023, 3, 31, 10, 0, 0))
            .expect("in range");
        assert_eq!(p.start_unix_ms, ms(2023, 3, 31, 10, 0, 0));
        // One millisecond before it belongs to the previous one.
        let p = period_containing(anchor, Interval::Monthly, ms(2023, 3, 31, 10, 0, 0) - 1)
            .expect("in range");
        assert_eq!(p.end_unix_ms, ms(2023, 3, 31, 10, 0, 0));
        assert_eq!(
            next_period_end(anchor, Interval::Monthly, anchor),
            Ok(ms(2023, 2, 28, 10, 0, 0))
        );
    }

    #[test]
    fn instant_before_anchor_is_refused() {
        assert_eq!(
            period_containing(1_000, Interval::Monthly, 999),
            Err(PeriodError::BeforeAnchor {
                anchor_unix_ms: 1_000,
                at_unix_ms: 999
            })
        );
    }

    #[test]
    fn anchor_outside_calendar_range_is_refused() {
        assert_eq!(
            period_boundary(i64::MAX, Interval::Monthly, 1),
            Err(PeriodError::OutOfRange { unix_ms: i64::MAX })
        );
    }

    proptest! {
        #[test]
        fn consecutive_periods_tile_time_without_drift(
            anchor in 0i64..4_102_444_800_000, // 1970..2100
            yearly in any::<bool>(),
            count in 1i64..40,
        ) {
            let interval = if yearly { Interval::Yearly } else { Interval::Monthly };
            let anchor_dt = to_datetime(anchor).expect("in range");
            let mut t = anchor;
            for i in 0..count {
                let p = period_containing(anchor, interval, t).expect("in range");
                prop_assert_eq!(p.start_unix_ms, t, "no gap or overlap at period {}", i);
                prop_assert!(p.end_unix_ms > p.start_unix_ms);
                prop_assert!(p.contains(p.end_unix_ms - 1));
                let mid = p.start_unix_ms + p.length_ms() / 2;
                prop_assert_eq!(period_containing(anchor, interval, mid).expect("in range"), p);
                let end = to_datetime(p.end_unix_ms).expect("in range");
                let last_day = days_in_month(end.year(), end.month()).expect("valid month");
                prop_assert_eq!(end.day(), anchor_dt.day().min(last_day), "day drifted");
                prop_assert_eq!(end.time(), anchor_dt.time());
                t = p.end_unix_ms;
            }
        }
    }
}
