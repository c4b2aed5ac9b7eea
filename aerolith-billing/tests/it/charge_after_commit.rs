//! An automatic charge is made only for an invoice whose finalized state is
//! already committed. A provider that remembers idempotency keys (as a real
//! one does across the merchant's restarts) and a storage fault injected
//! right after a successful charge show that a failed commit can never make
//! the customer pay twice: the invoice stays committed and pending, and the
//! next run repeats the charge under the same key, which the provider
//! deduplicates.

use std::collections::HashMap;
use std::sync::Arc;

use aerolith_billing::payment::test_provider::{TestProvider, CARD_SUCCEEDS};
use aerolith_billing::payment::{ChargeRequest, PaymentError, PaymentOutcome, PaymentProvider};
use aerolith_billing::{
    BillingInterval, BillingService, BillingServiceOptions, Catalog, InMemoryTenantControl,
    InvoiceStatus, SubscribeRequest,
};
use aerolith_core::fault::{Fault, FaultOp, FaultPlan, EIO};
use aerolith_core::{Clock, Database, Durability, ManualClock, Options};
use aerolith_tenancy::TenantId;
use parking_lot::Mutex;

use crate::service::{card, NOV_1_2026_UNIX_MS};

const DAY_MS: i64 = 86_400_000;

/// A provider that deduplicates by idempotency key and records every
/// charge it actually made; `arm` makes the billing database's next write
/// fail right after the next successful charge.
#[derive(Default)]
struct RememberingProvider {
    inner: TestProvider,
    outcomes: Mutex<HashMap<String, PaymentOutcome>>,
    /// (invoice id, amount) of every charge that moved money.
    charged: Mutex<Vec<(String, i64)>>,
    arm: Mutex<Option<Arc<FaultPlan>>>,
}

impl PaymentProvider for RememberingProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn charge(&self, request: &ChargeRequest) -> Result<PaymentOutcome, PaymentError> {
        if let Some(outcome) = self.outcomes.lock().get(&request.idempotency_key) {
            return Ok(outcome.clone());
        }
        let outcome = self.inner.charge(request)?;
        self.outcomes
            .lock()
            .insert(request.idempotency_key.clone(), outcome.clone());
        if matches!(outcome, PaymentOutcome::Succeeded { .. }) {
            self.charged
                .lock()
                .push((request.invoice_id.clone(), request.amount_minor));
            if let Some(plan) = self.arm.lock().take() {
                let next = plan.count(FaultOp::Write) + 1;
                plan.add(FaultOp::Write, next, Fault::Fail { errno: EIO });
            }
        }
        Ok(outcome)
    }

    fn status(&self, reference: &str) -> Result<PaymentOutcome, PaymentError> {
        self.inner.status(reference)
    }
}

fn open(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    provider: &Arc<RememberingProvider>,
    plan: Option<Arc<FaultPlan>>,
) -> BillingService {
    let mut options = Options::default().durability(Durability::Always);
    options.fault_plan = plan;
    let db = Database::open(dir, options).expect("opens");
    let options = BillingServiceOptions::new(Arc::new(InMemoryTenantControl::new()))
        .auto_charge(provider.clone());
    BillingService::open(db, Catalog::default_catalog(), clock.clone(), options).expect("opens")
}

fn starter_with_card() -> SubscribeRequest {
    SubscribeRequest {
        plan_id: "starter".into(),
        interval: BillingInterval::Monthly,
        trial_days: None,
        payment_method: Some(card(CARD_SUCCEEDS)),
    }
}

/// Every charge that moved money paid a distinct invoice, and every paid
/// invoice with a positive total was paid by exactly one such charge.
fn assert_one_charge_per_paid_invoice(
    service: &BillingService,
    provider: &RememberingProvider,
    tenants: &[TenantId],
) {
    let charged = provider.charged.lock().clone();
    let mut charged_ids: Vec<&str> = charged.iter().map(|(id, _)| id.as_str()).collect();
    charged_ids.sort_unstable();
    let mut paid: Vec<String> = tenants
        .iter()
        .flat_map(|t| service.invoices(*t))
        .filter(|i| i.status() == InvoiceStatus::Paid && i.total().is_positive())
        .map(|i| i.id().0.clone())
        .collect();
    paid.sort_unstable();
    assert_eq!(charged_ids, paid, "charges {charged:?}");
}

#[test]
fn a_storage_failure_after_a_renewal_charge_never_charges_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(NOV_1_2026_UNIX_MS));
    let provider = Arc::new(RememberingProvider::default());
    let plan = FaultPlan::new();
    let a = TenantId::new(1);
    let b = TenantId::new(2);
    let service = open(dir.path(), &clock, &provider, Some(plan.clone()));
    service
        .subscribe(a, starter_with_card())
        .expect("subscribes");

    // The renewal's charge succeeds, then the disk fails the next write.
    clock.set_unix_ms(NOV_1_2026_UNIX_MS + 30 * DAY_MS);
    *provider.arm.lock() = Some(plan.clone());
    service
        .run_due(clock.now_unix_ms())
        .expect_err("the write after the charge fails");
    assert_eq!(plan.fired().len(), 1);
    drop(service);

    // Restart. Another tenant subscribes first, so invoice ids staged by the
    // failed run would now be handed out differently.
    let service = open(dir.path(), &clock, &provider, None);
    service
        .subscribe(b, starter_with_card())
        .expect("subscribes");
    let renewal = service.invoices(a).last().cloned().expect("renewal kept");
    assert_eq!(
        renewal.status(),
        InvoiceStatus::Finalized,
        "committed, unpaid"
    );
    let report = service.run_due(clock.now_unix_ms()).expect("runs");
    assert_eq!(report.invoices_paid, 1);
    assert_eq!(report.renewals, 0, "the renewal was committed before");
    let renewal = service.invoice(a, renewal.id()).expect("there");
    assert_eq!(renewal.status(), InvoiceStatus::Paid);
    assert_eq!(service.invoices(a).len(), 2, "first period + one renewal");
    assert_one_charge_per_paid_invoice(&service, &provider, &[a, b]);

    // Nothing is left to charge: a later run at the same instant is a no-op.
    let again = service.run_due(clock.now_unix_ms()).expect("runs");
    assert_eq!(again.tenants_due, 0);
}

#[test]
fn a_storage_failure_after_a_subscription_charge_never_charges_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(NOV_1_2026_UNIX_MS));
    let provider = Arc::new(RememberingProvider::default());
    let plan = FaultPlan::new();
    let a = TenantId::new(7);
    let service = open(dir.path(), &clock, &provider, Some(plan.clone()));
    *provider.arm.lock() = Some(plan.clone());
    service
        .subscribe(a, starter_with_card())
        .expect_err("the write after the charge fails");
    drop(service);

    // The subscription and its invoice were committed before the charge.
    let service = open(dir.path(), &clock, &provider, None);
    assert!(service.subscription(a).is_some());
    let invoices = service.invoices(a);
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].status(), InvoiceStatus::Finalized);
    let report = service.run_due(clock.now_unix_ms()).expect("runs");
    assert_eq!(report.invoices_paid, 1);
    assert_eq!(
        service.invoices(a)[0].status(),
        InvoiceStatus::Paid,
        "paid by the charge already made"
    );
    assert_eq!(provider.charged.lock().len(), 1);
    assert_one_charge_per_paid_invoice(&service, &provider, &[a]);
}
