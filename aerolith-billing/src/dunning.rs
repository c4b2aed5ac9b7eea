//! Dunning: what happens after a payment fails, as a deterministic state
//! machine driven by time.
//!
//! Schedule, all measured from the first failed payment (`failed_at`):
//! - retries at `failed_at + retry_days[i]` days (default days 1, 3, 5, 7);
//! - suspension at `failed_at + grace_period_days` (default 10: three days
//!   after the last default retry, so the last retry's result and a manual
//!   payment have time to arrive before the tenant goes read-only);
//! - cancellation at `suspension + cancel_after_days` (default 30).
//!
//! A successful payment at any point before cancellation ends dunning with a
//! `Restore` action. [`DunningState::advance`] emits every action due at `now`
//! in schedule order, each as a [`DunningEvent`] for the audit log, stamped
//! with the instant it became due; calling it again emits nothing new. The
//! state machine only decides; the caller performs the actions (charge the
//! invoice again, suspend the tenant, cancel the subscription).

use serde::{Deserialize, Serialize};

use crate::subscription::{
    CancelReason, Subscription, SubscriptionError, SubscriptionEvent, SubscriptionId,
};

const MS_PER_DAY: i64 = 86_400_000;

/// Most retries a policy may schedule.
pub const RETRY_ATTEMPTS_MAX: usize = 16;

/// Longest grace period or cancellation delay accepted, in days.
pub const DUNNING_DAYS_MAX: u32 = 365;

/// When to retry, suspend and cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningPolicy {
    /// Days after the first failure on which to retry the payment; strictly
    /// increasing, each at most `grace_period_days`.
    pub retry_days: Vec<u32>,
    /// Days after the first failure at which the tenant is suspended.
    pub grace_period_days: u32,
    /// Days after suspension at which the subscription is canceled.
    pub cancel_after_days: u32,
}

impl Default for DunningPolicy {
    fn default() -> Self {
        DunningPolicy {
            retry_days: vec![1, 3, 5, 7],
            grace_period_days: 10,
            cancel_after_days: 30,
        }
    }
}

/// Why a policy or a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DunningError {
    /// More retries than [`RETRY_ATTEMPTS_MAX`].
    #[error("{count} retries exceed the maximum of {max}", max = RETRY_ATTEMPTS_MAX)]
    TooManyRetries {
        /// Number of retries in the policy.
        count: usize,
    },
    /// Retry days are not strictly increasing, or one is zero.
    #[error("retry day {day} at position {index} is not after the previous one")]
    RetryDaysNotIncreasing {
        /// Position in `retry_days`.
        index: usize,
        /// The offending day.
        day: u32,
    },
    /// A retry is scheduled after the suspension.
    #[error("retry day {day} falls after the grace period of {grace_period_days} days")]
    RetryAfterGrace {
        /// The offending day.
        day: u32,
        /// The grace period.
        grace_period_days: u32,
    },
    /// A grace period or cancellation delay is zero or above [`DUNNING_DAYS_MAX`].
    #[error("{field} of {days} days is outside 1..={max}", max = DUNNING_DAYS_MAX)]
    DaysOutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        days: u32,
    },
    /// Dunning already ended in cancellation; a payment can no longer restore.
    #[error("dunning for subscription {subscription_id:?} already ended in cancellation")]
    AlreadyCanceled {
        /// The subscription.
        subscription_id: SubscriptionId,
    },
    /// Dunning already ended with a restore.
    #[error("dunning for subscription {subscription_id:?} already ended with a payment")]
    AlreadyRestored {
        /// The subscription.
        subscription_id: SubscriptionId,
    },
}

impl DunningPolicy {
    /// Checks the policy's invariants.
    pub fn validate(&self) -> Result<(), DunningError> {
        if self.retry_days.len() > RETRY_ATTEMPTS_MAX {
            return Err(DunningError::TooManyRetries {
                count: self.retry_days.len(),
            });
        }
        for (field, days) in [
            ("grace_period_days", self.grace_period_days),
            ("cancel_after_days", self.cancel_after_days),
        ] {
            if days == 0 || days > DUNNING_DAYS_MAX {
                return Err(DunningError::DaysOutOfRange { field, days });
            }
        }
        let mut previous = 0;
        for (index, &day) in self.retry_days.iter().enumerate() {
            if day <= previous {
                return Err(DunningError::RetryDaysNotIncreasing { index, day });
            }
            if day > self.grace_period_days {
                return Err(DunningError::RetryAfterGrace {
                    day,
                    grace_period_days: self.grace_period_days,
                });
            }
            previous = day;
        }
        Ok(())
    }
}

/// Where dunning stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DunningPhase {
    /// Retrying the payment; the tenant is still in service.
    Retrying,
    /// Suspended (read-only), waiting for payment or cancellation.
    Suspended,
    /// Gave up; the subscription is canceled. Terminal.
    Canceled,
    /// Paid; dunning is over. Terminal.
    Restored,
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum DunningAction {
    /// Charge the invoice again; `attempt` counts from 1.
    RetryPayment {
        /// Which retry this is.
        attempt: u32,
    },
    /// Suspend the tenant (read-only).
    Suspend,
    /// Cancel the subscription for non-payment.
    Cancel,
    /// Payment arrived: resume the tenant and mark the subscription active.
    Restore,
}

/// An audit record of one dunning transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningEvent {
    /// The subscription in dunning.
    pub subscription_id: SubscriptionId,
    /// Its tenant.
    pub tenant: String,
    /// The unpaid invoice.
    pub invoice_id: String,
    /// When the action became due (or, for `Restore`, when payment arrived).
    pub at_unix_ms: i64,
    /// Phase before.
    pub from: DunningPhase,
    /// Phase after.
    pub to: DunningPhase,
    /// What to do.
    pub action: DunningAction,
}

/// Dunning of one unpaid invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningState {
    /// The subscription in dunning.
    pub subscription_id: SubscriptionId,
    /// Its tenant.
    pub tenant: String,
    /// The unpaid invoice.
    pub invoice_id: String,
    /// The policy in force (copied so later catalog changes do not move
    /// an ongoing schedule).
    pub policy: DunningPolicy,
    /// When the first payment failed.
    pub failed_at_unix_ms: i64,
    /// Retries already emitted.
    pub retries_emitted: u32,
    /// When the tenant was suspended, if it was.
    pub suspended_at_unix_ms: Option<i64>,
    /// Current phase.
    pub phase: DunningPhase,
}

impl DunningState {
    /// Begins dunning after the payment of `invoice_id` failed at
    /// `failed_at_unix_ms`.
    pub fn begin(
        subscription_id: SubscriptionId,
        tenant: &str,
        invoice_id: &str,
        policy: DunningPolicy,
        failed_at_unix_ms: i64,
    ) -> Result<DunningState, DunningError> {
        policy.validate()?;
        Ok(DunningState {
            subscription_id,
            tenant: tenant.to_owned(),
            invoice_id: invoice_id.to_owned(),
            policy,
            failed_at_unix_ms,
            retries_emitted: 0,
            suspended_at_unix_ms: None,
            phase: DunningPhase::Retrying,
        })
    }

    fn after_failure(&self, days: u32) -> i64 {
        // Saturating: an instant near the end of time is never reached, so
        // the action simply never comes due.
        self.failed_at_unix_ms
            .saturating_add(i64::from(days) * MS_PER_DAY)
    }

    /// The next action and when it is due, if dunning has not ended.
    pub fn next_due(&self) -> Option<(DunningAction, i64)> {
        match self.phase {
            DunningPhase::Retrying => {
                let index = self.retries_emitted as usize;
                match self.policy.retry_days.get(index) {
                    Some(&day) => Some((
                        DunningAction::RetryPayment {
                            attempt: self.retries_emitted + 1,
                        },
                        self.after_failure(day),
                    )),
                    None => Some((
                        DunningAction::Suspend,
                        self.after_failure(self.policy.grace_period_days),
                    )),
                }
            }
            DunningPhase::Suspended => self.suspended_at_unix_ms.map(|at| {
                (
                    DunningAction::Cancel,
                    at.saturating_add(i64::from(self.policy.cancel_after_days) * MS_PER_DAY),
                )
            }),
            DunningPhase::Canceled | DunningPhase::Restored => None,
        }
    }

    fn event(&mut self, to: DunningPhase, at_unix_ms: i64, action: DunningAction) -> DunningEvent {
        let from = self.phase;
        self.phase = to;
        DunningEvent {
            subscription_id: self.subscription_id.clone(),
            tenant: self.tenant.clone(),
            invoice_id: self.invoice_id.clone(),
            at_unix_ms,
            from,
            to,
            action,
        }
    }

    /// Emits every action due at `now_unix_ms`, in schedule order.
    pub fn advance(&mut self, now_unix_ms: i64) -> Vec<DunningEvent> {
        let mut events = Vec::new();
        // Retries, one suspension, one cancellation: the schedule is finite.
        for _ in 0..RETRY_ATTEMPTS_MAX + 2 {
            let Some((action, due)) = self.next_due() else {
                break;
            };
            if due > now_unix_ms {
                break;
            }
            let to = match action {
                DunningAction::RetryPayment { .. } => {
                    self.retries_emitted += 1;
                    DunningPhase::Retrying
                }
                DunningAction::Suspend => {
                    self.suspended_at_unix_ms = Some(due);
                    DunningPhase::Suspended
                }
                DunningAction::Cancel => DunningPhase::Canceled,
                DunningAction::Restore => DunningPhase::Restored,
            };
            events.push(self.event(to, due, action));
        }
        events
    }

    /// A payment succeeded at `now_unix_ms`: ends dunning with `Restore`.
    ///
    /// Call [`advance`](Self::advance) first so actions due before the
    /// payment are recorded in order.
    pub fn payment_succeeded(&mut self, now_unix_ms: i64) -> Result<DunningEvent, DunningError> {
        match self.phase {
            DunningPhase::Canceled => Err(DunningError::AlreadyCanceled {
                subscription_id: self.subscription_id.clone(),
            }),
            DunningPhase::Restored => Err(DunningError::AlreadyRestored {
                subscription_id: self.subscription_id.clone(),
            }),
            DunningPhase::Retrying | DunningPhase::Suspended => {
                Ok(self.event(DunningPhase::Restored, now_unix_ms, DunningAction::Restore))
            }
        }
    }
}

impl DunningEvent {
    /// Applies this event's action to the subscription it concerns:
    /// `Suspend` suspends it, `Cancel` cancels it for non-payment, `Restore`
    /// records the payment (back to `Active`). `RetryPayment` returns `None`:
    /// charging is the caller's job, through a payment provider.
    ///
    /// Suspending or resuming the tenant itself (read-only mode) is done
    /// through tenancy by the caller, on the same event.
    pub fn apply_to(
        &self,
        subscription: &mut Subscription,
    ) -> Result<Option<SubscriptionEvent>, SubscriptionError> {
        match self.action {
            DunningAction::RetryPayment { .. } => Ok(None),
            DunningAction::Suspend => subscription.suspend(self.at_unix_ms).map(Some),
            DunningAction::Cancel => subscription
                .cancel_with_reason(self.at_unix_ms, CancelReason::NonPayment)
                .map(Some),
            DunningAction::Restore => subscription.payment_succeeded(self.at_unix_ms).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn state(policy: DunningPolicy) -> DunningState {
        DunningState::begin(SubscriptionId("sub_1".into()), "acme", "inv_1", policy, T0)
            .expect("valid policy")
    }

    fn actions(events: &[DunningEvent]) -> Vec<(DunningAction, i64)> {
        events.iter().map(|e| (e.action, e.at_unix_ms)).collect()
    }

    #[test]
    fn default_schedule_retries_then_suspends_then_cancels() {
        let mut s = state(DunningPolicy::default());
        assert!(s.advance(T0 + MS_PER_DAY - 1).is_empty());
        let day = |d: i64| T0 + d * MS_PER_DAY;
        assert_eq!(
            actions(&s.advance(day(1))),
            vec![(DunningAction::RetryPayment { attempt: 1 }, day(1))]
        );
        assert_eq!(
            actions(&s.advance(day(10))),
            vec![
                (DunningAction::RetryPayment { attempt: 2 }, day(3)),
                (DunningAction::RetryPayment { attempt: 3 }, day(5)),
                (DunningAction::RetryPayment { attempt: 4 }, day(7)),
                (DunningAction::Suspend, day(10)),
            ]
        );
        assert_eq!(s.phase, DunningPhase::Suspended);
        assert!(s.advance(day(40) - 1).is_empty());
        assert_eq!(
            actions(&s.advance(day(40))),
            vec![(DunningAction::Cancel, day(40))]
        );
        assert_eq!(s.phase, DunningPhase::Canceled);
        assert!(s.advance(day(400)).is_empty());
        assert_eq!(
            s.payment_succeeded(day(41)),
            Err(DunningError::AlreadyCanceled {
                subscription_id: SubscriptionId("sub_1".into())
            })
        );
    }

    #[test]
    fn payment_while_suspended_restores_and_ends_dunning() {
        let mut s = state(DunningPolicy::default());
        s.advance(T0 + 12 * MS_PER_DAY);
        let event = s.payment_succeeded(T0 + 12 * MS_PER_DAY).expect("restores");
        assert_eq!(event.action, DunningAction::Restore);
        assert_eq!(
            (event.from, event.to),
            (DunningPhase::Suspended, DunningPhase::Restored)
        );
        assert!(s.advance(T0 + 400 * MS_PER_DAY).is_empty());
        assert!(matches!(
            s.payment_succeeded(T0 + 400 * MS_PER_DAY),
            Err(DunningError::AlreadyRestored { .. })
        ));
    }

    #[test]
    fn invalid_policies_are_refused_with_their_reason() {
        let p = |retry_days: Vec<u32>, grace: u32, cancel: u32| DunningPolicy {
            retry_days,
            grace_period_days: grace,
            cancel_after_days: cancel,
        };
        assert_eq!(
            p(vec![1, 3, 3], 10, 30).validate(),
            Err(DunningError::RetryDaysNotIncreasing { index: 2, day: 3 })
        );
        assert_eq!(
            p(vec![0], 10, 30).validate(),
            Err(DunningError::RetryDaysNotIncreasing { index: 0, day: 0 })
        );
        assert_eq!(
            p(vec![1, 11], 10, 30).validate(),
            Err(DunningError::RetryAfterGrace {
                day: 11,
                grace_period_days: 10
            })
        );
        assert_eq!(
            p(vec![], 0, 30).validate(),
            Err(DunningError::DaysOutOfRange {
                field: "grace_period_days",
                days: 0
            })
        );
        assert_eq!(
            p(vec![], 10, DUNNING_DAYS_MAX + 1).validate(),
            Err(DunningError::DaysOutOfRange {
                field: "cancel_after_days",
                days: DUNNING_DAYS_MAX + 1
            })
        );
        let max: Vec<u32> = (1..=RETRY_ATTEMPTS_MAX as u32).collect();
        assert_eq!(p(max.clone(), 20, 30).validate(), Ok(()));
        let over: Vec<u32> = (1..=RETRY_ATTEMPTS_MAX as u32 + 1).collect();
        assert_eq!(
            p(over, 20, 30).validate(),
            Err(DunningError::TooManyRetries {
                count: RETRY_ATTEMPTS_MAX + 1
            })
        );
    }

    proptest::proptest! {
        /// However often `advance` is polled, the same events come out, in
        /// schedule order: retries 1..n, one suspension at the grace end, one
        /// cancellation `cancel_after_days` later, then nothing.
        #[test]
        fn polling_frequency_does_not_change_the_schedule(
            retry_set in proptest::collection::btree_set(1u32..=20, 0..=RETRY_ATTEMPTS_MAX),
            extra_grace in 0u32..10,
            cancel_after_days in 1u32..60,
            polls in proptest::collection::vec(0i64..100 * MS_PER_DAY, 0..30),
        ) {
            let retry_days: Vec<u32> = retry_set.into_iter().collect();
            let grace_period_days = retry_days.last().copied().unwrap_or(1) + extra_grace;
            let policy = DunningPolicy { retry_days: retry_days.clone(), grace_period_days, cancel_after_days };
            let mut polled = state(policy.clone());
            let mut sorted = polls;
            sorted.sort_unstable();
            let mut events = Vec::new();
            for offset in sorted {
                events.extend(polled.advance(T0 + offset));
            }
            events.extend(polled.advance(T0 + 1_000 * MS_PER_DAY));
            let mut once = state(policy);
            let all_at_once = once.advance(T0 + 1_000 * MS_PER_DAY);
            proptest::prop_assert_eq!(&events, &all_at_once);

            let mut expected: Vec<(DunningAction, i64)> = retry_days
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    (DunningAction::RetryPayment { attempt: i as u32 + 1 }, T0 + i64::from(d) * MS_PER_DAY)
                })
                .collect();
            let suspend_at = T0 + i64::from(grace_period_days) * MS_PER_DAY;
            expected.push((DunningAction::Suspend, suspend_at));
            expected.push((DunningAction::Cancel, suspend_at + i64::from(cancel_after_days) * MS_PER_DAY));
            proptest::prop_assert_eq!(actions(&events), expected);
            proptest::prop_assert_eq!(polled.phase, DunningPhase::Canceled);
        }
    }

    #[test]
    fn events_serialize_for_the_audit_log() {
        let mut s = state(DunningPolicy::default());
        let events = s.advance(T0 + MS_PER_DAY);
        let json = serde_json::to_value(&events[0]).expect("serializes");
        assert_eq!(json["action"]["action"], "retry_payment");
        assert_eq!(json["action"]["attempt"], 1);
        assert_eq!(json["from"], "retrying");
    }
}
