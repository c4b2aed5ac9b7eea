//! Coupons: percent or fixed-amount discounts, and how long they last.
//!
//! A [`Coupon`] is the offer; a [`CouponRedemption`] is one tenant's use of it,
//! which remembers when it was redeemed and on how many invoices it has been
//! applied. Whether a redemption discounts an invoice is decided by
//! [`CouponRedemption::applies_to_period`]:
//!
//! - `Once`: the first invoice after redemption only.
//! - `Repeating { months }`: invoices whose period starts before the
//!   redemption time plus `months` calendar months (UTC).
//! - `Forever`: every invoice.
//!
//! A discount is computed on the invoice subtotal, rounded half-even, and
//! capped so that the discounts never exceed the subtotal: a coupon never
//! makes an invoice negative.

use std::fmt;

use chrono::Months;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::Money;

/// A coupon's id, e.g. `LAUNCH10`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CouponId(pub String);

impl fmt::Display for CouponId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a coupon takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CouponKind {
    /// A percentage of the subtotal, `0 < percent <= 100` (e.g. `10` = 10%).
    Percent {
        /// The percentage.
        percent: Decimal,
    },
    /// A fixed amount, in the invoice's currency.
    Amount {
        /// The amount (positive).
        amount: Money,
    },
}

/// How long a coupon keeps discounting after redemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CouponDuration {
    /// The first invoice only.
    Once,
    /// Invoices whose period starts within `months` months of redemption.
    Repeating {
        /// Number of calendar months.
        months: u32,
    },
    /// Every invoice.
    Forever,
}

/// A discount offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    /// The coupon's id.
    pub id: CouponId,
    /// Percent or amount.
    pub kind: CouponKind,
    /// How long it lasts.
    pub duration: CouponDuration,
}

/// One tenant's redemption of a coupon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRedemption {
    /// The coupon redeemed.
    pub coupon: Coupon,
    /// When it was redeemed.
    pub redeemed_at_unix_ms: i64,
    /// On how many finalized invoices it has been applied so far.
    pub invoices_applied: u32,
}

impl CouponRedemption {
    /// A fresh redemption at `redeemed_at_unix_ms`.
    pub fn new(coupon: Coupon, redeemed_at_unix_ms: i64) -> CouponRedemption {
        CouponRedemption {
            coupon,
            redeemed_at_unix_ms,
            invoices_applied: 0,
        }
    }

    /// Whether the coupon discounts an invoice whose period starts at
    /// `period_start_unix_ms` (see the module docs).
    pub fn applies_to_period(&self, period_start_unix_ms: i64) -> bool {
        match self.coupon.duration {
            CouponDuration::Once => self.invoices_applied == 0,
            CouponDuration::Forever => true,
            CouponDuration::Repeating { months } => {
                match repeating_end_unix_ms(self.redeemed_at_unix_ms, months) {
                    Some(end_unix_ms) => period_start_unix_ms < end_unix_ms,
                    // Past the calendar's end: the coupon never runs out.
                    None => true,
                }
            }
        }
    }

    /// Records that the coupon discounted one more invoice (call when the
    /// invoice is finalized).
    pub fn record_application(&mut self) {
        self.invoices_applied = self.invoices_applied.saturating_add(1);
    }
}

/// Redemption time plus `months` calendar months (end-of-month clamped, so
/// Jan 31 + 1 month is Feb 28/29), or `None` past the calendar's range.
fn repeating_end_unix_ms(redeemed_at_unix_ms: i64, months: u32) -> Option<i64> {
    let redeemed_at = chrono::DateTime::from_timestamp_millis(redeemed_at_unix_ms)?;
    redeemed_at
        .checked_add_months(Months::new(months))
        .map(|end| end.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_31_2026_UNIX_MS: i64 = 1_769_817_600_000;
    const FEB_28_2026_UNIX_MS: i64 = 1_772_236_800_000;

    #[test]
    fn repeating_month_end_is_clamped_to_the_shorter_month() {
        assert_eq!(
            repeating_end_unix_ms(JAN_31_2026_UNIX_MS, 1),
            Some(FEB_28_2026_UNIX_MS)
        );
    }
}
