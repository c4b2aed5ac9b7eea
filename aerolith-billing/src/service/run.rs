//! The billing run: every time-driven transition due at an instant, for
//! every tenant, committed in batches.
//!
//! [`BillingService::run_due`] visits only the tenants with something due
//! (dunning action or subscription transition at or before `now`), works on
//! each one's copy, and commits up to
//! [`BillingServiceConfig::run_batch_tenants`](super::BillingServiceConfig)
//! tenants per `WriteBatch` together with the staged number counters, then
//! charges the invoices that batch committed and commits the outcomes in a
//! second batch (a charge never precedes its invoice's commit). A
//! tenant whose work fails is left untouched (its staged numbers are rolled
//! back, so the series stays gapless) and reported. The run is idempotent:
//! the committed state has nothing due at `now` any more, so a second run at
//! the same instant does nothing.

use aerolith_tenancy::TenantId;
use serde::{Deserialize, Serialize};

use super::store::{Changes, State};
use super::{
    BillingEvent, BillingService, BillingServiceError, Charges, Effect, ProviderCall, Staging,
    TenantWork,
};
use crate::dunning::DunningAction;
use crate::invoice::{InvoiceId, InvoicePeriod};
use crate::subscription::{CancelReason, SubscriptionEventKind};

/// A tenant the run could not bill, or could not tell tenancy about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRunFailure {
    /// The tenant.
    pub tenant: TenantId,
    /// What failed.
    pub error: String,
}

/// What one billing run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRunReport {
    /// The instant of the run.
    pub at_unix_ms: i64,
    /// Tenants that had something due.
    pub tenants_due: usize,
    /// Invoices issued, with their tenant.
    pub invoices_issued: Vec<(TenantId, InvoiceId)>,
    /// Trials converted to paid service.
    pub trials_converted: usize,
    /// Trials that lapsed without a payment method.
    pub trials_lapsed: usize,
    /// Periods renewed.
    pub renewals: usize,
    /// Subscriptions canceled (period end or non-payment).
    pub cancellations: usize,
    /// Payment retries attempted.
    pub payment_retries: usize,
    /// Invoices paid during the run.
    pub invoices_paid: usize,
    /// Payments that failed during the run.
    pub payments_failed: usize,
    /// Tenants suspended for non-payment.
    pub suspended: Vec<TenantId>,
    /// Tenants resumed after payment.
    pub resumed: Vec<TenantId>,
    /// Every transition, in order, as written to the audit log.
    pub events: Vec<(TenantId, BillingEvent)>,
    /// Tenants left untouched because their work failed, and tenancy calls
    /// that failed after the commit.
    pub failures: Vec<BillingRunFailure>,
}

impl BillingRunReport {
    fn count(&mut self, tenant: TenantId, effects: Vec<Effect>) {
        use super::tenant_control::InvoiceTransition;
        use crate::subscription::SubscriptionEventKind as Kind;
        for effect in effects {
            match effect {
                Effect::Suspend => self.suspended.push(tenant),
                Effect::Resume => self.resumed.push(tenant),
                Effect::Audit(event) => {
                    match &event {
                        BillingEvent::Subscription(e) => match e.kind {
                            Kind::TrialConverted => self.trials_converted += 1,
                            Kind::Renewed { .. } => self.renewals += 1,
                            Kind::Canceled {
                                reason: CancelReason::TrialLapsed,
                            } => self.trials_lapsed += 1,
                            Kind::Canceled { .. } => self.cancellations += 1,
                            _ => {}
                        },
                        BillingEvent::Dunning(e) => {
                            if matches!(e.action, DunningAction::RetryPayment { .. }) {
                                self.payment_retries += 1;
                            }
                        }
                        BillingEvent::Invoice(e) => match e.transition {
                            InvoiceTransition::Issued => self
                                .invoices_issued
                                .push((tenant, InvoiceId(e.invoice_id.clone()))),
                            InvoiceTransition::Paid => self.invoices_paid += 1,
                            InvoiceTransition::PaymentFailed => self.payments_failed += 1,
                            InvoiceTransition::Voided | InvoiceTransition::Credited => {}
                        },
                    }
                    self.events.push((tenant, event));
                }
            }
        }
    }
}

fn is_due(state: &State, tenant: &TenantId, now: i64) -> bool {
    let account = &state.accounts[tenant];
    let dunning_due = account
        .dunning
        .as_ref()
        .and_then(|d| d.next_due())
        .is_some_and(|(_, due)| due <= now);
    let subscription_due = account
        .subscription
        .as_ref()
        .and_then(|s| s.next_due())
        .is_some_and(|(_, due)| due <= now);
    dunning_due || subscription_due || !account.pending_charges.is_empty()
}

impl BillingService {
    /// Runs every transition due at `now_unix_ms` (normally the clock's
    /// now): dunning retries, suspensions and cancellations, trial ends,
    /// renewals with their invoices and automatic charges. Idempotent.
    pub fn run_due(&self, now_unix_ms: i64) -> Result<BillingRunReport, BillingServiceError> {
        let mut state = self.state.lock();
        let mut report = BillingRunReport {
            at_unix_ms: now_unix_ms,
            ..BillingRunReport::default()
        };
        let mut due: Vec<TenantId> = state
            .accounts
            .keys()
            .filter(|tenant| is_due(&state, tenant, now_unix_ms))
            .copied()
            .collect();
        due.sort_unstable();
        report.tenants_due = due.len();
        for chunk in due.chunks(self.config.run_batch_tenants) {
            let mut staging = Staging::new(&state);
            let mut changes = Changes::default();
            let mut effects = Vec::with_capacity(chunk.len());
            for &tenant in chunk {
                let saved = staging.save();
                let mut work = Self::work(&state, tenant);
                match self.run_tenant(&state, &mut work, &mut staging, now_unix_ms) {
                    Ok(()) => effects.push(work.into_changes(&mut changes)),
                    Err(error) => {
                        staging.restore(saved);
                        report.failures.push(BillingRunFailure {
                            tenant,
                            error: error.to_string(),
                        });
                    }
                }
            }
            staging.drain_into(&mut changes);
            self.commit(&mut state, changes)?;
            self.report_effects(&mut report, effects);
            // The invoices are committed: now charge them (see `first_charge`).
            let mut changes = Changes::default();
            let mut effects = Vec::new();
            for &tenant in chunk {
                if state.accounts[&tenant].pending_charges.is_empty() {
                    continue;
                }
                let mut work = Self::work(&state, tenant);
                match self.charge_pending(&state, &mut work, now_unix_ms) {
                    Ok(()) => effects.push(work.into_changes(&mut changes)),
                    Err(error) => report.failures.push(BillingRunFailure {
                        tenant,
                        error: error.to_string(),
                    }),
                }
            }
            self.commit(&mut state, changes)?;
            self.report_effects(&mut report, effects);
        }
        Ok(report)
    }

    /// Performs each tenant's effects after a commit and counts them.
    fn report_effects(
        &self,
        report: &mut BillingRunReport,
        effects: Vec<(TenantId, Vec<super::Effect>)>,
    ) {
        for (tenant, tenant_effects) in effects {
            for error in self.perform(tenant, &tenant_effects) {
                report.failures.push(BillingRunFailure {
                    tenant,
                    error: error.to_string(),
                });
            }
            report.count(tenant, tenant_effects);
        }
    }

    fn run_tenant(
        &self,
        state: &State,
        work: &mut TenantWork,
        staging: &mut Staging,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        self.run_dunning(state, work, now)?;
        self.run_subscription(work, staging, now)
    }

    /// Dunning actions due at `now`, one due instant at a time, so a retry
    /// that succeeds stops the later actions.
    fn run_dunning(
        &self,
        state: &State,
        work: &mut TenantWork,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        let policy_steps = crate::dunning::RETRY_ATTEMPTS_MAX + 2;
        for _ in 0..policy_steps {
            let Some(dunning) = work.account.dunning.as_mut() else {
                return Ok(());
            };
            let Some((_, due)) = dunning.next_due().filter(|(_, due)| *due <= now) else {
                return Ok(());
            };
            let invoice_id = InvoiceId(dunning.invoice_id.clone());
            let events = dunning.advance(due);
            for event in events {
                let action = event.action;
                self.apply_dunning_event(work, event)?;
                match action {
                    DunningAction::RetryPayment { attempt } => {
                        Self::take_invoice(state, work, &invoice_id)?;
                        self.auto_collect(work, &invoice_id, attempt, now, ProviderCall::Now)?;
                    }
                    DunningAction::Cancel | DunningAction::Suspend | DunningAction::Restore => {}
                }
            }
        }
        Ok(())
    }

    /// The subscription's transitions due at `now`, each with its invoice.
    fn run_subscription(
        &self,
        work: &mut TenantWork,
        staging: &mut Staging,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        let Some(sub) = work.account.subscription.as_mut() else {
            return Ok(());
        };
        let mut usage_start = sub.current_period_start_unix_ms;
        let in_trial = sub.trial_end_unix_ms.is_some_and(|end| usage_start < end);
        let events = sub.advance(now)?;
        let plan_id = sub.plan_id.clone();
        let interval = super::to_billing_interval(sub.interval);
        let anchor = sub.anchor_unix_ms;
        let sub_interval = sub.interval;
        let plan = self.plan(&plan_id)?;
        let mut trial_usage = in_trial;
        for event in events {
            let kind = event.kind.clone();
            work.event(BillingEvent::Subscription(event));
            let issued = match kind {
                SubscriptionEventKind::TrialConverted => {
                    let trial_end = usage_start.max(anchor);
                    let period = crate::period::period_containing(anchor, sub_interval, trial_end)?;
                    usage_start = period.start_unix_ms;
                    trial_usage = false;
                    let period = InvoicePeriod::new(period.start_unix_ms, period.end_unix_ms)?;
                    let charges = Charges::Period {
                        plan,
                        interval,
                        usage_period: None,
                    };
                    self.issue(work, staging, period, charges, now)?
                }
                SubscriptionEventKind::Renewed {
                    period_start_unix_ms,
                    period_end_unix_ms,
                } => {
                    let period = InvoicePeriod::new(period_start_unix_ms, period_end_unix_ms)?;
                    let usage_period = (usage_start < period_start_unix_ms && !trial_usage)
                        .then(|| InvoicePeriod::new(usage_start, period_start_unix_ms))
                        .transpose()?;
                    usage_start = period_start_unix_ms;
                    let charges = Charges::Period {
                        plan,
                        interval,
                        usage_period,
                    };
                    self.issue(work, staging, period, charges, now)?
                }
                SubscriptionEventKind::Canceled {
                    reason: CancelReason::PeriodEnded,
                } if !trial_usage => {
                    let end = work
                        .account
                        .subscription
                        .as_ref()
                        .and_then(|s| s.canceled_at_unix_ms)
                        .unwrap_or(now);
                    if usage_start < end {
                        let usage_period = InvoicePeriod::new(usage_start, end)?;
                        let charges = Charges::UsageOnly { plan, usage_period };
                        self.issue(work, staging, usage_period, charges, now)?
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(invoice_id) = issued {
                self.first_charge(work, &invoice_id, now)?;
            }
        }
        Ok(())
    }
}
