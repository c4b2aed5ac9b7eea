//! Proration of a plan change in the middle of a billing period, to the
//! second.
//!
//! A change at instant `t` inside the current period `[start, end)` produces
//! two lines:
//! - a credit for the unused part of the old plan:
//!   `-(old_price * unused_seconds / period_seconds)`,
//! - a charge for the rest of the period on the new plan:
//!   `new_price * unused_seconds / period_seconds`,
//!
//! where `unused_seconds = end_s - floor(t_s)` (the second in which the change
//! happens counts as unused, so a change in the first second credits the
//! whole old price and charges the whole new one) and
//! `period_seconds = end_s - start_s`. Each line is rounded on its own, half
//! to even, to whole minor units; `net_minor` is the sum of the rounded lines.
//!
//! The ratio is computed exactly in 128-bit integers (`price * unused` and
//! one division with a half-even remainder test) rather than with a
//! `rust_decimal` quotient: a `Decimal` division rounds at 28 significant
//! digits, which could round twice. The result is the same a `Decimal` with
//! unlimited precision would give.
//!
//! [`preview_change`] and [`apply_change`] share one computation, so the
//! applied lines are exactly the previewed ones. During a trial nothing has
//! been charged, so a plan change produces no lines.

use serde::{Deserialize, Serialize};

use crate::invoice::{InvoiceLine, InvoicePeriod};
use crate::money::{Currency, Money};
use crate::subscription::{Subscription, SubscriptionError, SubscriptionEvent, SubscriptionStatus};

/// The plan change asked for, with both plans' prices per period in minor
/// units of the subscription's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    /// The plan to move to.
    pub new_plan_id: String,
    /// Price of the current plan for one whole period.
    pub old_price_minor: i64,
    /// Price of the new plan for one whole period.
    pub new_price_minor: i64,
}

/// One invoice line produced by a plan change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProrationLine {
    /// Human-readable description, e.g. "Unused time on starter".
    pub description: String,
    /// Amount in minor units (negative for a credit).
    pub amount_minor: i64,
    /// Start of the prorated span.
    pub from_unix_ms: i64,
    /// End (exclusive) of the prorated span.
    pub to_unix_ms: i64,
}

impl ProrationLine {
    /// This line as an invoice line (kind `Proration`, quantity 1, over
    /// `[from, to)`), in `currency`, the currency the prices were given in.
    pub fn to_invoice_line(&self, currency: Currency) -> InvoiceLine {
        InvoiceLine::proration(
            self.description.clone(),
            Money::new(self.amount_minor, currency),
            Some(InvoicePeriod {
                start_unix_ms: self.from_unix_ms,
                end_unix_ms: self.to_unix_ms,
            }),
        )
    }
}

/// The lines a plan change will invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProrationPreview {
    /// The plan before.
    pub old_plan_id: String,
    /// The plan after.
    pub new_plan_id: String,
    /// The instant of the change, truncated to the second.
    pub change_at_unix_ms: i64,
    /// Credit and charge lines (empty during a trial).
    pub lines: Vec<ProrationLine>,
    /// Sum of the lines: positive means the customer owes, negative is a
    /// credit to the account.
    pub net_minor: i64,
}

impl ProrationPreview {
    /// The lines as invoice lines in `currency`, in order.
    pub fn invoice_lines(&self, currency: Currency) -> Vec<InvoiceLine> {
        self.lines
            .iter()
            .map(|line| line.to_invoice_line(currency))
            .collect()
    }
}

/// Why a plan change could not be prorated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProrationError {
    /// The change instant is outside the current period.
    #[error("change at {at_unix_ms} is outside the current period [{period_start_unix_ms}, {period_end_unix_ms})")]
    OutsidePeriod {
        /// The instant asked for.
        at_unix_ms: i64,
        /// Start of the current period.
        period_start_unix_ms: i64,
        /// End of the current period.
        period_end_unix_ms: i64,
    },
    /// The new plan is the current plan.
    #[error("subscription is already on plan {plan_id}")]
    SamePlan {
        /// The plan.
        plan_id: String,
    },
    /// A price was negative.
    #[error("price {price_minor} is negative")]
    NegativePrice {
        /// The offending price.
        price_minor: i64,
    },
    /// A prorated amount does not fit in `i64` minor units.
    #[error("prorated amount overflows")]
    Overflow,
    /// The subscription's state does not allow a plan change.
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
}

/// `numerator / denominator` rounded half to even; `denominator > 0`.
fn div_round_half_even(numerator: i128, denominator: i128) -> i128 {
    debug_assert!(denominator > 0);
    let quotient = numerator.div_euclid(denominator);
    let remainder = numerator.rem_euclid(denominator); // 0 <= r < d
    match (remainder * 2).cmp(&denominator) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal if quotient % 2 == 0 => quotient,
        std::cmp::Ordering::Equal => quotient + 1,
    }
}

fn prorate(price_minor: i64, unused_s: i64, period_s: i64) -> Result<i64, ProrationError> {
    let exact = div_round_half_even(
        i128::from(price_minor) * i128::from(unused_s),
        i128::from(period_s),
    );
    i64::try_from(exact).map_err(|_| ProrationError::Overflow)
}

/// The lines that changing `sub` to `change.new_plan_id` at `now_unix_ms`
/// would invoice. Does not modify the subscription.
pub fn preview_change(
    sub: &Subscription,
    change: &PlanChange,
    now_unix_ms: i64,
) -> Result<ProrationPreview, ProrationError> {
    if !matches!(
        sub.status,
        SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
    ) {
        return Err(SubscriptionError::IllegalTransition {
            action: crate::subscription::SubscriptionAction::ChangePlan,
            status: sub.status,
        }
        .into());
    }
    if change.new_plan_id == sub.plan_id {
        return Err(ProrationError::SamePlan {
            plan_id: change.new_plan_id.clone(),
        });
    }
    for price_minor in [change.old_price_minor, change.new_price_minor] {
        if price_minor < 0 {
            return Err(ProrationError::NegativePrice { price_minor });
        }
    }
    let start_ms = sub.current_period_start_unix_ms;
    let end_ms = sub.current_period_end_unix_ms;
    if now_unix_ms < start_ms || now_unix_ms >= end_ms {
        return Err(ProrationError::OutsidePeriod {
            at_unix_ms: now_unix_ms,
            period_start_unix_ms: start_ms,
            period_end_unix_ms: end_ms,
        });
    }
    let change_s = now_unix_ms.div_euclid(1_000);
    let change_at_unix_ms = change_s * 1_000;
    let mut lines = Vec::new();
    if sub.status != SubscriptionStatus::Trialing {
        // Period boundaries are whole seconds (anchors are truncated).
        let start_s = start_ms.div_euclid(1_000);
        let end_s = end_ms.div_euclid(1_000);
        let period_s = end_s - start_s;
        let unused_s = end_s - change_s;
        lines.push(ProrationLine {
            description: format!("Unused time on {}", sub.plan_id),
            amount_minor: -prorate(change.old_price_minor, unused_s, period_s)?,
            from_unix_ms: change_at_unix_ms,
            to_unix_ms: end_ms,
        });
        lines.push(ProrationLine {
            description: format!("Remaining time on {}", change.new_plan_id),
            amount_minor: prorate(change.new_price_minor, unused_s, period_s)?,
            from_unix_ms: change_at_unix_ms,
            to_unix_ms: end_ms,
        });
    }
    let net_minor = lines
        .iter()
        .try_fold(0i64, |acc, line| acc.checked_add(line.amount_minor))
        .ok_or(ProrationError::Overflow)?;
    Ok(ProrationPreview {
        old_plan_id: sub.plan_id.clone(),
        new_plan_id: change.new_plan_id.clone(),
        change_at_unix_ms,
        lines,
        net_minor,
    })
}

/// Changes the plan and returns the invoiced lines, which are exactly those
/// [`preview_change`] returns for the same inputs, plus the audit event.
pub fn apply_change(
    sub: &mut Subscription,
    change: &PlanChange,
    now_unix_ms: i64,
) -> Result<(ProrationPreview, SubscriptionEvent), ProrationError> {
    let preview = preview_change(sub, change, now_unix_ms)?;
    let event = sub.change_plan(&change.new_plan_id, preview.change_at_unix_ms)?;
    Ok((preview, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Interval;
    use crate::subscription::{StartOptions, SubscriptionId};
    use proptest::prelude::*;

    // 2023-04-01T00:00:00Z; April has 30 days = 2,592,000 s.
    const APR_1: i64 = 1_680_307_200_000;
    const DAY_MS: i64 = 86_400_000;

    fn active(interval: Interval, start: i64) -> Subscription {
        Subscription::start(
            StartOptions {
                id: SubscriptionId("sub_1".into()),
                tenant: "acme".into(),
                plan_id: "starter".into(),
                interval,
                trial_days: None,
                has_payment_method: true,
            },
            start,
        )
        .expect("starts")
        .0
    }

    fn change(old: i64, new: i64) -> PlanChange {
        PlanChange {
            new_plan_id: "pro".into(),
            old_price_minor: old,
            new_price_minor: new,
        }
    }

    #[test]
    fn upgrade_on_day_ten_of_thirty_credits_two_thirds_and_charges_two_thirds() {
        let sub = active(Interval::Monthly, APR_1);
        // Day 10 begins after 9 whole days: 21 of 30 days unused.
        let at = APR_1 + 9 * DAY_MS;
        let preview = preview_change(&sub, &change(2_900, 9_900), at).expect("prorates");
        // 2900 * 21/30 = 2030; 9900 * 21/30 = 6930.
        assert_eq!(
            preview.lines,
            vec![
                ProrationLine {
                    description: "Unused time on starter".into(),
                    amount_minor: -2_030,
                    from_unix_ms: at,
                    to_unix_ms: APR_1 + 30 * DAY_MS,
                },
                ProrationLine {
                    description: "Remaining time on pro".into(),
                    amount_minor: 6_930,
                    from_unix_ms: at,
                    to_unix_ms: APR_1 + 30 * DAY_MS,
                },
            ]
        );
        assert_eq!(preview.net_minor, 4_900);
    }

    #[test]
    fn downgrade_yields_a_net_credit() {
        let sub = active(Interval::Monthly, APR_1);
        let at = APR_1 + 20 * DAY_MS + 12 * 3_600_000; // 9.5 days left
        let preview = preview_change(&sub, &change(9_900, 2_900), at).expect("prorates");
        // 9900 * 9.5/30 = 3135; 2900 * 9.5/30 = 918.333.. -> 918.
        let amounts: Vec<i64> = preview.lines.iter().map(|l| l.amount_minor).collect();
        assert_eq!(amounts, vec![-3_135, 918]);
        assert_eq!(preview.net_minor, -2_217);
    }

    #[test]
    fn change_in_the_first_second_swaps_whole_prices() {
        let sub = active(Interval::Monthly, APR_1);
        let preview = preview_change(&sub, &change(2_900, 9_900), APR_1 + 999).expect("prorates");
        let amounts: Vec<i64> = preview.lines.iter().map(|l| l.amount_minor).collect();
        assert_eq!(amounts, vec![-2_900, 9_900]);
        assert_eq!(preview.change_at_unix_ms, APR_1);
    }

    #[test]
    fn change_in_the_last_second_prorates_one_second() {
        let sub = active(Interval::Monthly, APR_1);
        let last = APR_1 + 30 * DAY_MS - 1;
        // One second of 2,592,000: 2,592,000 minor units -> exactly 1 each.
        let preview = preview_change(&sub, &change(2_592_000, 5_184_000), last).expect("prorates");
        let amounts: Vec<i64> = preview.lines.iter().map(|l| l.amount_minor).collect();
        assert_eq!(amounts, vec![-1, 2]);
        assert_eq!(preview.change_at_unix_ms, last - 999);
    }

    #[test]
    fn halves_round_to_even() {
        let sub = active(Interval::Monthly, APR_1);
        // Half the period left: 5 * 1/2 = 2.5 -> 2; 7 * 1/2 = 3.5 -> 4.
        let preview = preview_change(&sub, &change(5, 7), APR_1 + 15 * DAY_MS).expect("prorates");
        let amounts: Vec<i64> = preview.lines.iter().map(|l| l.amount_minor).collect();
        assert_eq!(amounts, vec![-2, 4]);
    }

    #[test]
    fn yearly_interval_prorates_over_the_year() {
        // 2024 is a leap year: 366 days. Change after 183 days: 183 left.
        let jan_1_2024 = 1_704_067_200_000;
        let sub = active(Interval::Yearly, jan_1_2024);
        let preview = preview_change(&sub, &change(29_900, 99_900), jan_1_2024 + 183 * DAY_MS)
            .expect("prorates");
        let amounts: Vec<i64> = preview.lines.iter().map(|l| l.amount_minor).collect();
        assert_eq!(amounts, vec![-14_950, 49_950]);
    }

    #[test]
    fn applied_lines_equal_the_preview() {
        let mut sub = active(Interval::Monthly, APR_1);
        let at = APR_1 + 9 * DAY_MS + 12_345;
        let preview = preview_change(&sub, &change(2_900, 9_900), at).expect("prorates");
        let (applied, event) = apply_change(&mut sub, &change(2_900, 9_900), at).expect("applies");
        assert_eq!(applied, preview);
        assert_eq!(sub.plan_id, "pro");
        assert_eq!(event.at_unix_ms, preview.change_at_unix_ms);
        assert_eq!(
            apply_change(&mut sub, &change(9_900, 9_900), at),
            Err(ProrationError::SamePlan {
                plan_id: "pro".into()
            })
        );
    }

    #[test]
    fn trial_plan_change_has_no_lines() {
        let (mut sub, _) = Subscription::start(
            StartOptions {
                id: SubscriptionId("sub_t".into()),
                tenant: "acme".into(),
                plan_id: "starter".into(),
                interval: Interval::Monthly,
                trial_days: Some(14),
                has_payment_method: false,
            },
            APR_1,
        )
        .expect("starts");
        let (preview, _) =
            apply_change(&mut sub, &change(2_900, 9_900), APR_1 + DAY_MS).expect("applies");
        assert!(preview.lines.is_empty());
        assert_eq!(preview.net_minor, 0);
    }

    #[test]
    fn bad_inputs_are_refused_with_their_reason() {
        let mut sub = active(Interval::Monthly, APR_1);
        assert_eq!(
            preview_change(&sub, &change(-1, 10), APR_1),
            Err(ProrationError::NegativePrice { price_minor: -1 })
        );
        assert_eq!(
            preview_change(&sub, &change(1, 10), APR_1 + 30 * DAY_MS),
            Err(ProrationError::OutsidePeriod {
                at_unix_ms: APR_1 + 30 * DAY_MS,
                period_start_unix_ms: APR_1,
                period_end_unix_ms: APR_1 + 30 * DAY_MS,
            })
        );
        // The largest prices still prorate exactly (the product is i128).
        let p = preview_change(&sub, &change(i64::MAX, i64::MAX), APR_1 + 15 * DAY_MS)
            .expect("prorates");
        assert_eq!(p.lines[0].amount_minor, -(i64::MAX / 2 + 1)); // .5 rounds to even
        assert_eq!(p.net_minor, 0);
        sub.cancel_now(APR_1).expect("cancels");
        assert_eq!(
            preview_change(&sub, &change(1, 10), APR_1),
            Err(ProrationError::Subscription(
                SubscriptionError::IllegalTransition {
                    action: crate::subscription::SubscriptionAction::ChangePlan,
                    status: SubscriptionStatus::Canceled,
                }
            ))
        );
    }

    proptest! {
        #[test]
        fn prorating_the_whole_period_gives_the_full_prices(
            old in 0i64..10_000_000_000,
            new in 0i64..10_000_000_000,
            ms_into_first_second in 0i64..1_000,
            yearly in any::<bool>(),
        ) {
            let interval = if yearly { Interval::Yearly } else { Interval::Monthly };
            let sub = active(interval, APR_1);
            let p = preview_change(&sub, &change(old, new), APR_1 + ms_into_first_second)
                .expect("prorates");
            prop_assert_eq!(p.lines[0].amount_minor, -old);
            prop_assert_eq!(p.lines[1].amount_minor, new);
            prop_assert_eq!(p.net_minor, new - old);
        }

        #[test]
        fn credit_never_exceeds_the_price_and_shrinks_over_time(
            price in 0i64..10_000_000_000,
            a in 0i64..2_592_000_000,
            b in 0i64..2_592_000_000,
        ) {
            let sub = active(Interval::Monthly, APR_1);
            let (early, late) = (a.min(b), a.max(b));
            let credit = |at| -preview_change(&sub, &change(price, 0), APR_1 + at)
                .expect("prorates").lines[0].amount_minor;
            prop_assert!(credit(early) <= price);
            prop_assert!(credit(late) <= credit(early));
            prop_assert!(credit(late) >= 0);
        }
    }
}
