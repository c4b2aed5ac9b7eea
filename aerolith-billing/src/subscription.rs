//! Subscriptions and their lifecycle state machine.
//!
//! A [`Subscription`] ties a tenant to a plan and an [`Interval`]. Its status
//! moves only through the explicit transitions below; every other move is an
//! [`SubscriptionError::IllegalTransition`]. Each transition returns a
//! [`SubscriptionEvent`] suitable for the audit log.
//!
//! ```text
//! start ──> Trialing ──(trial end, payment method)──> Active
//!              │ └──(trial end, no payment method)──> Canceled (trial lapsed)
//! start ──> Active ──payment_failed──> PastDue ──suspend──> Suspended
//!             ^  └───────────suspend──────────────────────────^  │
//!             └──────────payment_succeeded (PastDue|Suspended)───┘
//! any non-canceled state ──cancel_now──> Canceled
//! Active|PastDue at period end: renew (or Canceled if cancel_at_period_end)
//! ```
//!
//! Rules worth stating:
//! - Billing periods are anchored on the start of *paid* service: without a
//!   trial that is the start instant; with a trial it is the trial end, so
//!   the first paid period begins when the trial converts. During the trial
//!   the current period is `[start, trial_end)`.
//! - Anchors are truncated to whole seconds so that proration, which works to
//!   the second, always divides whole periods.
//! - A trial lapses into `Canceled` (reason [`CancelReason::TrialLapsed`]) when
//!   it ends without a payment method; nothing was ever owed, so there is
//!   nothing to suspend for.
//! - `Suspended` subscriptions do not renew: their periods resume from the
//!   anchor when payment restores them (`advance` then renews every period
//!   that ended meanwhile, each producing a `Renewed` event to invoice).
//! - [`Subscription::advance`] applies every time-based transition due at
//!   `now`, in time order, so a test can jump a [`ManualClock`] forward and
//!   get the same result as a server ticking every second.
//!
//! [`ManualClock`]: aerolith_core::ManualClock

use serde::{Deserialize, Serialize};

use crate::period::{period_containing, Interval, PeriodError};

/// A subscription's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubscriptionId(pub String);

/// Where a subscription is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// In a free trial; nothing billed yet.
    Trialing,
    /// Paid up and in service.
    Active,
    /// A payment failed; service continues while dunning retries.
    PastDue,
    /// Suspended for non-payment (the tenant is read-only).
    Suspended,
    /// Ended; terminal.
    Canceled,
}

/// Why a subscription was canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The customer or operator asked for it to end now.
    Requested,
    /// It was scheduled to end at the period end, and the period ended.
    PeriodEnded,
    /// The trial ended without a payment method.
    TrialLapsed,
    /// Dunning gave up after the suspension period.
    NonPayment,
}

/// The operation that was attempted, named in errors and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionAction {
    /// End of the trial (conversion or lapse).
    EndTrial,
    /// Roll into the next period.
    Renew,
    /// Cancel immediately.
    CancelNow,
    /// Schedule cancellation at the period end.
    CancelAtPeriodEnd,
    /// Undo a scheduled cancellation.
    KeepAtPeriodEnd,
    /// Record a failed payment.
    PaymentFailed,
    /// Record a successful payment.
    PaymentSucceeded,
    /// Suspend for non-payment.
    Suspend,
    /// Switch to another plan.
    ChangePlan,
    /// Record that a payment method is on file.
    AttachPaymentMethod,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The transition is not allowed from the current status.
    #[error("cannot {action:?} a subscription that is {status:?}")]
    IllegalTransition {
        /// What was attempted.
        action: SubscriptionAction,
        /// The status it was attempted in.
        status: SubscriptionStatus,
    },
    /// A time-based transition was asked for before it is due.
    #[error("{action:?} is due at {due_unix_ms}, not yet at {now_unix_ms}")]
    NotDue {
        /// What was attempted.
        action: SubscriptionAction,
        /// When it becomes due.
        due_unix_ms: i64,
        /// The time it was attempted.
        now_unix_ms: i64,
    },
    /// The trial length is zero or longer than [`TRIAL_DAYS_MAX`].
    #[error("trial of {trial_days} days is outside 1..={max}", max = TRIAL_DAYS_MAX)]
    InvalidTrial {
        /// The requested trial length.
        trial_days: u32,
    },
    /// `advance` found more due transitions than [`ADVANCE_STEPS_MAX`].
    #[error("more than {steps_max} transitions due at once", steps_max = ADVANCE_STEPS_MAX)]
    TooManyDueTransitions,
    /// A billing period could not be computed.
    #[error(transparent)]
    Period(#[from] PeriodError),
}

/// Longest trial accepted, in days.
pub const TRIAL_DAYS_MAX: u32 = 365;

/// Most time-based transitions `advance` applies in one call (100 years of
/// monthly renewals); beyond it the caller is asked to look at the data.
pub const ADVANCE_STEPS_MAX: usize = 1_200;

const MS_PER_DAY: i64 = 86_400_000;

/// What happened in a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SubscriptionEventKind {
    /// The subscription was created.
    Started {
        /// End of the trial, if there is one.
        trial_end_unix_ms: Option<i64>,
    },
    /// The trial ended with a payment method: now active and billable.
    TrialConverted,
    /// A payment method was recorded.
    PaymentMethodAttached,
    /// A new period began; invoice its base fee.
    Renewed {
        /// Start of the new period.
        period_start_unix_ms: i64,
        /// End of the new period.
        period_end_unix_ms: i64,
    },
    /// Cancellation was scheduled for the period end.
    CancelScheduled,
    /// A scheduled cancellation was withdrawn.
    CancelUnscheduled,
    /// The subscription ended.
    Canceled {
        /// Why.
        reason: CancelReason,
    },
    /// A payment failed.
    PaymentFailed,
    /// A payment succeeded.
    PaymentSucceeded,
    /// Suspended for non-payment.
    Suspended,
    /// Moved to another plan.
    PlanChanged {
        /// The plan before.
        from_plan_id: String,
        /// The plan after.
        to_plan_id: String,
    },
}

/// An audit record of one transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionEvent {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Its tenant.
    pub tenant: String,
    /// When the transition took effect (for time-based ones, the instant it
    /// became due, not when it was noticed).
    pub at_unix_ms: i64,
    /// Status before.
    pub from: SubscriptionStatus,
    /// Status after.
    pub to: SubscriptionStatus,
    /// What happened.
    pub kind: SubscriptionEventKind,
}

/// Parameters to start a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOptions {
    /// The new subscription's id.
    pub id: SubscriptionId,
    /// The tenant subscribing.
    pub tenant: String,
    /// The plan subscribed to.
    pub plan_id: String,
    /// Monthly or yearly.
    pub interval: Interval,
    /// Trial length in days, or `None` for no trial.
    pub trial_days: Option<u32>,
    /// Whether a payment method is already on file.
    pub has_payment_method: bool,
}

/// A tenant's subscription to a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Identifier.
    pub id: SubscriptionId,
    /// The subscribing tenant.
    pub tenant: String,
    /// The current plan.
    pub plan_id: String,
    /// Lifecycle status.
    pub status: SubscriptionStatus,
    /// Period length.
    pub interval: Interval,
    /// Billing anchor (whole seconds): paid periods are computed from it.
    pub anchor_unix_ms: i64,
    /// When the subscription was created.
    pub started_at_unix_ms: i64,
    /// Start of the current period (the trial, while trialing).
    pub current_period_start_unix_ms: i64,
    /// End (exclusive) of the current period.
    pub current_period_end_unix_ms: i64,
    /// End of the trial, if there was one.
    pub trial_end_unix_ms: Option<i64>,
    /// Whether it ends at the current period's end instead of renewing.
    pub cancel_at_period_end: bool,
    /// When it was canceled.
    pub canceled_at_unix_ms: Option<i64>,
    /// Why it was canceled.
    pub cancel_reason: Option<CancelReason>,
    /// Whether a payment method is on file (decides trial conversion).
    pub has_payment_method: bool,
}

fn whole_seconds(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(1_000) * 1_000
}

impl Subscription {
    /// Starts a subscription at `now_unix_ms`, trialing if `trial_days` is set.
    pub fn start(
        options: StartOptions,
        now_unix_ms: i64,
    ) -> Result<(Subscription, SubscriptionEvent), SubscriptionError> {
        let start = whole_seconds(now_unix_ms);
        let (status, anchor, trial_end) = match options.trial_days {
            None => (SubscriptionStatus::Active, start, None),
            Some(days) if days == 0 || days > TRIAL_DAYS_MAX => {
                return Err(SubscriptionError::InvalidTrial { trial_days: days })
            }
            Some(days) => {
                let end = start
                    .checked_add(i64::from(days) * MS_PER_DAY)
                    .ok_or(PeriodError::OutOfRange { unix_ms: start })?;
                (SubscriptionStatus::Trialing, end, Some(end))
            }
        };
        let period_end = match trial_end {
            Some(end) => end,
            None => period_containing(anchor, options.interval, start)?.end_unix_ms,
        };
        let sub = Subscription {
            id: options.id,
            tenant: options.tenant,
            plan_id: options.plan_id,
            status,
            interval: options.interval,
            anchor_unix_ms: anchor,
            started_at_unix_ms: start,
            current_period_start_unix_ms: start,
            current_period_end_unix_ms: period_end,
            trial_end_unix_ms: trial_end,
            cancel_at_period_end: false,
            canceled_at_unix_ms: None,
            cancel_reason: None,
            has_payment_method: options.has_payment_method,
        };
        let event = SubscriptionEvent {
            subscription_id: sub.id.clone(),
            tenant: sub.tenant.clone(),
            at_unix_ms: start,
            from: status,
            to: status,
            kind: SubscriptionEventKind::Started {
                trial_end_unix_ms: trial_end,
            },
        };
        Ok((sub, event))
    }

    fn illegal(&self, action: SubscriptionAction) -> SubscriptionError {
        SubscriptionError::IllegalTransition {
            action,
            status: self.status,
        }
    }

    fn transition(
        &mut self,
        to: SubscriptionStatus,
        at_unix_ms: i64,
        kind: SubscriptionEventKind,
    ) -> SubscriptionEvent {
        let from = self.status;
        self.status = to;
        SubscriptionEvent {
            subscription_id: self.id.clone(),
            tenant: self.tenant.clone(),
            at_unix_ms,
            from,
            to,
            kind,
        }
    }

    fn cancel(&mut self, at_unix_ms: i64, reason: CancelReason) -> SubscriptionEvent {
        self.canceled_at_unix_ms = Some(at_unix_ms);
        self.cancel_reason = Some(reason);
        self.cancel_at_period_end = false;
        self.transition(
            SubscriptionStatus::Canceled,
            at_unix_ms,
            SubscriptionEventKind::Canceled { reason },
        )
    }

    /// Records that a payment method is on file, so the trial converts.
    pub fn attach_payment_method(
        &mut self,
        now_unix_ms: i64,
    ) -> Result<SubscriptionEvent, SubscriptionError> {
        if self.status == SubscriptionStatus::Canceled {
            return Err(self.illegal(SubscriptionAction::AttachPaymentMethod));
        }
        self.has_payment_method = true;
        Ok(self.transition(
            self.status,
            now_unix_ms,
            SubscriptionEventKind::PaymentMethodAttached,
        ))
    }

    /// Ends the trial: converts to `Active` with a payment method on file,
    /// otherwise lapses into `Canceled`. Due at the trial end.
    pub fn end_trial(&mut self, now_unix_ms: i64) -> Result<SubscriptionEvent, SubscriptionError> {
        let action = SubscriptionAction::EndTrial;
        let trial_end = match (self.status, self.trial_end_unix_ms) {
            (SubscriptionStatus::Trialing, Some(end)) => end,
            _ => return Err(self.illegal(action)),
        };
        if now_unix_ms < trial_end {
            return Err(SubscriptionError::NotDue {
                action,
                due_unix_ms: trial_end,
                now_unix_ms,
            });
        }
        if self.cancel_at_period_end {
            return Ok(self.cancel(trial_end, CancelReason::PeriodEnded));
        }
        if !self.has_payment_method {
            return Ok(self.cancel(trial_end, CancelReason::TrialLapsed));
        }
        let period = period_containing(self.anchor_unix_ms, self.interval, trial_end)?;
        self.current_period_start_unix_ms = period.start_unix_ms;
        self.current_period_end_unix_ms = period.end_unix_ms;
        Ok(self.transition(
            SubscriptionStatus::Active,
            trial_end,
            SubscriptionEventKind::TrialConverted,
        ))
    }

    /// Rolls an `Active` or `PastDue` subscription into its next period (or
    /// cancels it, if cancellation was scheduled). Due at the period end.
    pub fn renew(&mut self, now_unix_ms: i64) -> Result<SubscriptionEvent, SubscriptionError> {
        let action = SubscriptionAction::Renew;
        if !matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        ) {
            return Err(self.illegal(action));
        }
        let due = self.current_period_end_unix_ms;
        if now_unix_ms < due {
            return Err(SubscriptionError::NotDue {
                action,
                due_unix_ms: due,
                now_unix_ms,
            });
        }
        if self.cancel_at_period_end {
            return Ok(self.cancel(due, CancelReason::PeriodEnded));
        }
        let period = period_containing(self.anchor_unix_ms, self.interval, due)?;
        self.current_period_start_unix_ms = period.start_unix_ms;
        self.current_period_end_unix_ms = period.end_unix_ms;
        Ok(self.transition(
            self.status,
            due,
            SubscriptionEventKind::Renewed {
                period_start_unix_ms: period.start_unix_ms,
                period_end_unix_ms: period.end_unix_ms,
            },
        ))
    }

    /// Cancels immediately, from any status but `Canceled`.
    pub fn cancel_now(&mut self, now_unix_ms: i64) -> Result<SubscriptionEvent, SubscriptionError> {
        self.cancel_with_reason(now_unix_ms, CancelReason::Requested)
    }

    /// Cancels immediately with an explicit reason (dunning uses
    /// [`CancelReason::NonPayment`]).
    pub fn cancel_with_reason(
        &mut self,
        now_unix_ms: i64,
        reason: CancelReason,
    ) -> Result<SubscriptionEvent, SubscriptionError> {
        if self.status == SubscriptionStatus::Canceled {
            return Err(self.illegal(SubscriptionAction::CancelNow));
        }
        Ok(self.cancel(now_unix_ms, reason))
    }

    /// Schedules cancellation at the end of the current period (or trial).
    pub fn cancel_at_period_end(
        &mut self,
        now_unix_ms: i64,
    ) -> Result<SubscriptionEvent, SubscriptionError> {
        let allowed = matches!(
            self.status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        if !allowed || self.cancel_at_period_end {
            return Err(self.illegal(SubscriptionAction::CancelAtPeriodEnd));
        }
        self.cancel_at_period_end = true;
        Ok(self.transition(
            self.status,
            now_unix_ms,
            SubscriptionEventKind::CancelScheduled,
        ))
    }

    /// Withdraws a scheduled cancellation.
    pub fn keep_at_period_end(
        &mut self,
        now_unix_ms: i64,
    ) -> Result<SubscriptionEvent, SubscriptionError> {
        if self.status == SubscriptionStatus::Canceled || !self.cancel_at_period_end {
            return Err(self.illegal(SubscriptionAction::KeepAtPeriodEnd));
        }
        self.cancel_at_period_end = false;
        Ok(self.transition(
            self.status,
            now_unix_ms,
            SubscriptionEventKind::CancelUnscheduled,
        ))
    }

    /// Records a failed payment: `Active` or `PastDue` becomes `PastDue`.
    pub fn payment_failed(
        &mut self,
        now_unix_ms: i64,
    ) -> Result<SubscriptionEvent, SubscriptionError> {
        if !matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        ) {
            return Err(self.illegal(SubscriptionAction::PaymentFailed));
        }
        Ok(self.transition(
            SubscriptionStatus::PastDue,
            now_unix_ms,
            SubscriptionEventKind::PaymentFailed,
        ))
    }

    /// Records a successful payment: `Active`, `PastDue` or `Suspended`
    /// becomes `Active`. During a trial it only proves a working payment
    /// method: the subscription stays `Trialing` and converts at the trial
    /// end.
    pub fn payment_succeeded(
        &mut self,
        now_unix_ms: i64,
    ) -> Result<SubscriptionEvent, SubscriptionError> {
        let to = match self.status {
            SubscriptionStatus::Trialing => SubscriptionStatus::Trialing,
            SubscriptionStatus::Active
            | SubscriptionStatus::PastDue
            | SubscriptionStatus::Suspended => SubscriptionStatus::Active,
            SubscriptionStatus::Canceled => {
                return Err(self.illegal(SubscriptionAction::PaymentSucceeded))
            }
        };
        self.has_payment_method = true;
        Ok(self.transition(to, now_unix_ms, SubscriptionEventKind::PaymentSucceeded))
    }

    /// Suspends for non-payment: `Active` or `PastDue` becomes `Suspended`.
    pub fn suspend(&mut self, now_unix_ms: i64) -> Result<SubscriptionEvent, SubscriptionError> {
        if !matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        ) {
            return Err(self.illegal(SubscriptionAction::Suspend));
        }
        Ok(self.transition(
            SubscriptionStatus::Suspended,
            now_unix_ms,
            SubscriptionEventKind::Suspended,
        ))
    }

    /// Switches plans (periods unchanged). Proration is computed by
    /// [`crate::proration`], which calls this.
    pub fn change_plan(
        &mut self,
        new_plan_id: &str,
        now_unix_ms: i64,
    ) -> Result<SubscriptionEvent, SubscriptionError> {
        if !matches!(
            self.status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        ) {
            return Err(self.illegal(SubscriptionAction::ChangePlan));
        }
        let from_plan_id = std::mem::replace(&mut self.plan_id, new_plan_id.to_owned());
        Ok(self.transition(
            self.status,
            now_unix_ms,
            SubscriptionEventKind::PlanChanged {
                from_plan_id,
                to_plan_id: new_plan_id.to_owned(),
            },
        ))
    }

    /// The next time-based transition and when it is due, if any.
    pub fn next_due(&self) -> Option<(SubscriptionAction, i64)> {
        match self.status {
            SubscriptionStatus::Trialing => self
                .trial_end_unix_ms
                .map(|end| (SubscriptionAction::EndTrial, end)),
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                Some((SubscriptionAction::Renew, self.current_period_end_unix_ms))
            }
            SubscriptionStatus::Suspended | SubscriptionStatus::Canceled => None,
        }
    }

    /// Applies, in time order, every time-based transition due at
    /// `now_unix_ms` (trial end, renewals, scheduled cancellation).
    pub fn advance(
        &mut self,
        now_unix_ms: i64,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        let mut events = Vec::new();
        for _ in 0..ADVANCE_STEPS_MAX {
            let event = match self.next_due() {
                Some((SubscriptionAction::EndTrial, due)) if due <= now_unix_ms => {
                    self.end_trial(now_unix_ms)?
                }
                Some((SubscriptionAction::Renew, due)) if due <= now_unix_ms => {
                    self.renew(now_unix_ms)?
                }
                _ => return Ok(events),
            };
            events.push(event);
        }
        Err(SubscriptionError::TooManyDueTransitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerolith_core::{Clock, ManualClock};
    use std::time::Duration;

    // 2024-01-31T09:00:00.250Z
    const JAN_31: i64 = 1_706_691_600_250;
    const DAY: Duration = Duration::from_secs(86_400);

    fn options(trial_days: Option<u32>, has_payment_method: bool) -> StartOptions {
        StartOptions {
            id: SubscriptionId("sub_1".into()),
            tenant: "acme".into(),
            plan_id: "starter".into(),
            interval: Interval::Monthly,
            trial_days,
            has_payment_method,
        }
    }

    #[test]
    fn start_without_trial_is_active_and_anchored_on_whole_seconds() {
        let (sub, event) = Subscription::start(options(None, true), JAN_31).expect("starts");
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.anchor_unix_ms, JAN_31 - 250);
        assert_eq!(sub.current_period_start_unix_ms, JAN_31 - 250);
        // 2024-02-29T09:00:00Z: leap-year clamp of the Jan 31 anchor.
        assert_eq!(sub.current_period_end_unix_ms, 1_709_197_200_000);
        assert_eq!(
            event.kind,
            SubscriptionEventKind::Started {
                trial_end_unix_ms: None
            }
        );
    }

    #[test]
    fn trial_with_payment_method_converts_at_trial_end() {
        let clock = ManualClock::new(JAN_31);
        let (mut sub, _) =
            Subscription::start(options(Some(14), false), clock.now_unix_ms()).expect("starts");
        assert_eq!(sub.status, SubscriptionStatus::Trialing);
        let trial_end = sub.trial_end_unix_ms.expect("has trial");
        assert_eq!(trial_end, JAN_31 - 250 + 14 * MS_PER_DAY);
        sub.attach_payment_method(clock.now_unix_ms())
            .expect("attach");
        clock.advance(DAY * 13);
        assert_eq!(sub.advance(clock.now_unix_ms()), Ok(vec![]));
        clock.advance(DAY);
        let events = sub.advance(clock.now_unix_ms()).expect("advances");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, SubscriptionEventKind::TrialConverted);
        assert_eq!(events[0].at_unix_ms, trial_end);
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.current_period_start_unix_ms, trial_end);
        assert_eq!(sub.anchor_unix_ms, trial_end);
    }

    #[test]
    fn payment_during_trial_keeps_trialing_and_converts_at_trial_end() {
        let (mut sub, _) = Subscription::start(options(Some(14), false), JAN_31).expect("starts");
        let event = sub.payment_succeeded(JAN_31 + MS_PER_DAY).expect("records");
        assert_eq!(
            (event.from, event.to),
            (SubscriptionStatus::Trialing, SubscriptionStatus::Trialing)
        );
        assert_eq!(
            sub.payment_failed(JAN_31 + MS_PER_DAY),
            Err(SubscriptionError::IllegalTransition {
                action: SubscriptionAction::PaymentFailed,
                status: SubscriptionStatus::Trialing
            })
        );
        let events = sub.advance(JAN_31 + 14 * MS_PER_DAY).expect("advances");
        assert_eq!(events[0].kind, SubscriptionEventKind::TrialConverted);
        assert_eq!(sub.status, SubscriptionStatus::Active);
    }

    #[test]
    fn trial_without_payment_method_lapses_into_canceled() {
        let (mut sub, _) = Subscription::start(options(Some(14), false), JAN_31).expect("starts");
        let events = sub.advance(JAN_31 + 15 * MS_PER_DAY).expect("advances");
        assert_eq!(
            events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>(),
            vec![SubscriptionEventKind::Canceled {
                reason: CancelReason::TrialLapsed
            }]
        );
        assert_eq!(sub.status, SubscriptionStatus::Canceled);
        assert_eq!(sub.canceled_at_unix_ms, sub.trial_end_unix_ms);
    }

    #[test]
    fn ending_a_trial_early_is_not_due() {
        let (mut sub, _) = Subscription::start(options(Some(14), true), JAN_31).expect("starts");
        assert_eq!(
            sub.end_trial(JAN_31),
            Err(SubscriptionError::NotDue {
                action: SubscriptionAction::EndTrial,
                due_unix_ms: JAN_31 - 250 + 14 * MS_PER_DAY,
                now_unix_ms: JAN_31
            })
        );
    }

    #[test]
    fn zero_and_overlong_trials_are_refused() {
        assert_eq!(
            Subscription::start(options(Some(0), true), JAN_31),
            Err(SubscriptionError::InvalidTrial { trial_days: 0 })
        );
        assert_eq!(
            Subscription::start(options(Some(TRIAL_DAYS_MAX + 1), true), JAN_31),
            Err(SubscriptionError::InvalidTrial {
                trial_days: TRIAL_DAYS_MAX + 1
            })
        );
        assert!(Subscription::start(options(Some(TRIAL_DAYS_MAX), true), JAN_31).is_ok());
        let end_of_time = i64::MAX - 1;
        assert_eq!(
            Subscription::start(options(Some(1), true), end_of_time),
            Err(SubscriptionError::Period(PeriodError::OutOfRange {
                unix_ms: end_of_time.div_euclid(1_000) * 1_000
            }))
        );
        assert!(matches!(
            Subscription::start(options(None, true), end_of_time),
            Err(SubscriptionError::Period(PeriodError::OutOfRange { .. }))
        ));
    }

    #[test]
    fn advance_renews_every_elapsed_period_in_order() {
        let (mut sub, _) = Subscription::start(options(None, true), JAN_31).expect("starts");
        // Jump to mid-May: renewals on Feb 29, Mar 31, Apr 30.
        let events = sub.advance(1_715_774_400_000).expect("advances");
        let starts: Vec<i64> = events
            .iter()
            .map(|e| match e.kind {
                SubscriptionEventKind::Renewed {
                    period_start_unix_ms,
                    ..
                } => period_start_unix_ms,
                ref other => panic!("unexpected event {other:?}"),
            })
            .collect();
        assert_eq!(
            starts,
            vec![1_709_197_200_000, 1_711_875_600_000, 1_714_467_600_000]
        );
        assert_eq!(sub.current_period_end_unix_ms, 1_717_146_000_000); // May 31
    }

    #[test]
    fn cancel_at_period_end_cancels_at_renewal_and_can_be_withdrawn() {
        let (mut sub, _) = Subscription::start(options(None, true), JAN_31).expect("starts");
        sub.cancel_at_period_end(JAN_31).expect("schedules");
        assert_eq!(
            sub.cancel_at_period_end(JAN_31),
            Err(SubscriptionError::IllegalTransition {
                action: SubscriptionAction::CancelAtPeriodEnd,
                status: SubscriptionStatus::Active
            })
        );
        sub.keep_at_period_end(JAN_31).expect("withdraws");
        sub.cancel_at_period_end(JAN_31).expect("schedules again");
        let end = sub.current_period_end_unix_ms;
        let events = sub.advance(end + 100 * MS_PER_DAY).expect("advances");
        assert_eq!(events.len(), 1);
        assert_eq!(sub.status, SubscriptionStatus::Canceled);
        assert_eq!(sub.cancel_reason, Some(CancelReason::PeriodEnded));
        assert_eq!(sub.canceled_at_unix_ms, Some(end));
    }

    #[test]
    fn payment_failure_suspension_and_recovery_follow_the_state_machine() {
        let (mut sub, _) = Subscription::start(options(None, true), JAN_31).expect("starts");
        sub.payment_failed(JAN_31).expect("past due");
        assert_eq!(sub.status, SubscriptionStatus::PastDue);
        sub.suspend(JAN_31).expect("suspends");
        assert_eq!(
            sub.payment_failed(JAN_31),
            Err(SubscriptionError::IllegalTransition {
                action: SubscriptionAction::PaymentFailed,
                status: SubscriptionStatus::Suspended
            })
        );
        assert_eq!(
            sub.renew(sub.current_period_end_unix_ms),
            Err(SubscriptionError::IllegalTransition {
                action: SubscriptionAction::Renew,
                status: SubscriptionStatus::Suspended
            })
        );
        // Suspended subscriptions do not renew while suspended...
        assert_eq!(sub.advance(JAN_31 + 40 * MS_PER_DAY), Ok(vec![]));
        let event = sub
            .payment_succeeded(JAN_31 + 40 * MS_PER_DAY)
            .expect("restores");
        assert_eq!(event.from, SubscriptionStatus::Suspended);
        assert_eq!(event.to, SubscriptionStatus::Active);
        // ...and catch up on the missed renewal once restored.
        assert_eq!(
            sub.advance(JAN_31 + 40 * MS_PER_DAY)
                .expect("advances")
                .len(),
            1
        );
    }

    #[test]
    fn canceled_subscription_refuses_everything() {
        let (mut sub, _) = Subscription::start(options(None, true), JAN_31).expect("starts");
        sub.cancel_now(JAN_31).expect("cancels");
        let status = SubscriptionStatus::Canceled;
        let illegal = |action| SubscriptionError::IllegalTransition { action, status };
        assert_eq!(
            sub.cancel_now(JAN_31),
            Err(illegal(SubscriptionAction::CancelNow))
        );
        assert_eq!(
            sub.payment_succeeded(JAN_31),
            Err(illegal(SubscriptionAction::PaymentSucceeded))
        );
        assert_eq!(
            sub.suspend(JAN_31),
            Err(illegal(SubscriptionAction::Suspend))
        );
        assert_eq!(
            sub.change_plan("pro", JAN_31),
            Err(illegal(SubscriptionAction::ChangePlan))
        );
        assert_eq!(
            sub.end_trial(JAN_31),
            Err(illegal(SubscriptionAction::EndTrial))
        );
        assert_eq!(sub.advance(i64::MAX / 2), Ok(vec![]));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Wait(i64),
        AttachPaymentMethod,
        CancelNow,
        CancelAtPeriodEnd,
        KeepAtPeriodEnd,
        PaymentFailed,
        PaymentSucceeded,
        Suspend,
        ChangePlan,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0i64..90 * MS_PER_DAY).prop_map(Op::Wait),
            1 => Just(Op::AttachPaymentMethod),
            1 => Just(Op::CancelNow),
            1 => Just(Op::CancelAtPeriodEnd),
            1 => Just(Op::KeepAtPeriodEnd),
            1 => Just(Op::PaymentFailed),
            1 => Just(Op::PaymentSucceeded),
            1 => Just(Op::Suspend),
            1 => Just(Op::ChangePlan),
        ]
    }

    proptest::proptest! {
        /// Whatever happens, events agree with the status, renewals tile
        /// time from the anchor, nothing leaves `Canceled`, and after
        /// `advance(now)` nothing time-based is overdue.
        #[test]
        fn random_histories_keep_the_state_machine_invariants(
            trial in proptest::option::of(1u32..30),
            yearly in proptest::bool::ANY,
            ops in proptest::collection::vec(op(), 1..40),
        ) {
            let mut opts = options(trial, false);
            opts.interval = if yearly { Interval::Yearly } else { Interval::Monthly };
            let (mut sub, _) = Subscription::start(opts, JAN_31).expect("starts");
            let mut now = JAN_31;
            for op in ops {
                let was_canceled = sub.status == SubscriptionStatus::Canceled;
                let result = match op {
                    Op::Wait(ms) => {
                        now += ms;
                        let before_end = sub.current_period_end_unix_ms;
                        let events = sub.advance(now).expect("advances");
                        let mut expected_start = before_end;
                        for e in &events {
                            match e.kind {
                                SubscriptionEventKind::Renewed {
                                    period_start_unix_ms,
                                    period_end_unix_ms,
                                } => {
                                    proptest::prop_assert_eq!(period_start_unix_ms, expected_start);
                                    proptest::prop_assert!(period_end_unix_ms > period_start_unix_ms);
                                    expected_start = period_end_unix_ms;
                                }
                                // The first paid period starts at the trial end.
                                SubscriptionEventKind::TrialConverted => {
                                    expected_start = crate::period::next_period_end(
                                        e.at_unix_ms,
                                        sub.interval,
                                        e.at_unix_ms,
                                    )
                                    .expect("in range");
                                }
                                _ => {}
                            }
                        }
                        if let Some((_, due)) = sub.next_due() {
                            proptest::prop_assert!(due > now, "overdue after advance");
                        }
                        events.last().cloned().ok_or(SubscriptionError::TooManyDueTransitions)
                    }
                    Op::AttachPaymentMethod => sub.attach_payment_method(now),
                    Op::CancelNow => sub.cancel_now(now),
                    Op::CancelAtPeriodEnd => sub.cancel_at_period_end(now),
                    Op::KeepAtPeriodEnd => sub.keep_at_period_end(now),
                    Op::PaymentFailed => sub.payment_failed(now),
                    Op::PaymentSucceeded => sub.payment_succeeded(now),
                    Op::Suspend => sub.suspend(now),
                    Op::ChangePlan => sub.change_plan(if sub.plan_id == "pro" { "starter" } else { "pro" }, now),
                };
                if let Ok(event) = result {
                    proptest::prop_assert_eq!(event.to, sub.status);
                }
                if was_canceled {
                    proptest::prop_assert_eq!(sub.status, SubscriptionStatus::Canceled);
                }
                proptest::prop_assert!(sub.current_period_start_unix_ms < sub.current_period_end_unix_ms);
            }
        }
    }

    #[test]
    fn subscription_round_trips_through_json() {
        let (sub, event) = Subscription::start(options(Some(14), true), JAN_31).expect("starts");
        let json = serde_json::to_string(&sub).expect("serializes");
        assert_eq!(
            serde_json::from_str::<Subscription>(&json).expect("parses"),
            sub
        );
        let json = serde_json::to_string(&event).expect("serializes");
        assert!(json.contains("\"kind\":\"started\""));
    }
}
