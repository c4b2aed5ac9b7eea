//! The billing service: persistence across reopen, tenant isolation, the
//! billing run, dunning through tenancy, and typed errors on bad input.
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;
use std::time::Duration;

use aerolith_billing::payment::test_provider::{TestProvider, CARD_DECLINED, CARD_SUCCEEDS};
use aerolith_billing::payment::{PaymentMethod, PaymentOutcome};
use aerolith_billing::service::{CancelMode, InvoiceTransition, TenantControlCall};
use aerolith_billing::subscription::{SubscriptionError, SubscriptionStatus};
use aerolith_billing::{
    BillingEvent, BillingInterval, BillingService, BillingServiceError, BillingServiceOptions,
    Catalog, InMemoryTenantControl, InvoiceId, InvoiceStatus, PayInvoiceRequest, SubscribeRequest,
};
use aerolith_core::{Clock, Database, Durability, ManualClock, Options};
use aerolith_tenancy::TenantId;

/// 2026-11-01T00:00:00Z.
pub const NOV_1_2026_UNIX_MS: i64 = 1_793_491_200_000;
const DAY: Duration = Duration::from_secs(86_400);

pub fn card(number: &str) -> PaymentMethod {
    PaymentMethod::Card {
        number: number.into(),
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub provider: Arc<TestProvider>,
    pub tenants: Arc<InMemoryTenantControl>,
    pub service: BillingService,
}

pub fn open_service(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    provider: &Arc<TestProvider>,
    tenants: &Arc<InMemoryTenantControl>,
) -> BillingService {
    let db = Database::open(dir, Options::default().durability(Durability::Never)).expect("opens");
    let options = BillingServiceOptions::new(tenants.clone()).auto_charge(provider.clone());
    BillingService::open(db, Catalog::default_catalog(), clock.clone(), options).expect("opens")
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(NOV_1_2026_UNIX_MS));
        let provider = Arc::new(TestProvider::new());
        let tenants = Arc::new(InMemoryTenantControl::new());
        let service = open_service(dir.path(), &clock, &provider, &tenants);
        Harness {
            dir,
            clock,
            provider,
            tenants,
            service,
        }
    }

    /// Drops the service and opens a new one on the same directory (the
    /// provider keeps its memory, as a real provider would).
    pub fn reopen(self) -> Harness {
        let Harness {
            dir,
            clock,
            provider,
            tenants,
            service,
        } = self;
        drop(service);
        let service = open_service(dir.path(), &clock, &provider, &tenants);
        Harness {
            dir,
            clock,
            provider,
            tenants,
            service,
        }
    }
}

fn subscribe(plan: &str, method: Option<PaymentMethod>) -> SubscribeRequest {
    SubscribeRequest {
        plan_id: plan.into(),
        interval: BillingInterval::Monthly,
        trial_days: None,
        payment_method: method,
    }
}

#[test]
fn state_survives_reopen_and_numbers_continue_gapless() {
    let h = Harness::new();
    let a = TenantId::new(1);
    let b = TenantId::new(2);
    let first = h
        .service
        .subscribe(a, subscribe("starter", Some(card(CARD_SUCCEEDS))))
        .expect("subscribes");
    let invoice = first.invoice.expect("first period invoiced");
    assert_eq!(invoice.status(), InvoiceStatus::Paid);
    assert_eq!(
        invoice.number().expect("numbered").to_string(),
        "AER-2026-000001"
    );
    h.service
        .subscribe(b, subscribe("professional", Some(card(CARD_SUCCEEDS))))
        .expect("subscribes");

    let h = h.reopen();
    assert_eq!(
        h.service.subscription(a).expect("kept").status,
        SubscriptionStatus::Active
    );
    assert_eq!(h.service.invoices(a), vec![invoice]);
    h.clock.set_unix_ms(NOV_1_2026_UNIX_MS + 30 * 86_400_000);
    let report = h.service.run_due(h.clock.now_unix_ms()).expect("runs");
    assert_eq!(report.renewals, 2);
    let numbers: Vec<String> = [a, b]
        .iter()
        .flat_map(|t| h.service.invoices(*t))
        .filter_map(|i| i.number().map(|n| n.to_string()))
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "AER-2026-000001",
            "AER-2026-000002",
            "AER-2026-000003",
            "AER-2026-000004"
        ]
    );
}

#[test]
fn an_idempotency_key_never_charges_twice_even_after_reopen() {
    let h = Harness::new();
    let tenant = TenantId::new(7);
    let outcome = h
        .service
        .subscribe(tenant, subscribe("starter", None))
        .expect("subscribes");
    let invoice = outcome.invoice.expect("invoiced");
    assert_eq!(invoice.status(), InvoiceStatus::Finalized);
    let pay = PayInvoiceRequest {
        provider: "test".into(),
        method: card(CARD_SUCCEEDS),
        idempotency_key: "pay-1".into(),
    };
    let first = h
        .service
        .pay_invoice(tenant, invoice.id(), pay.clone())
        .expect("pays");
    assert!(matches!(first.outcome, PaymentOutcome::Succeeded { .. }));
    let calls = h.provider.calls();
    let h = h.reopen();
    let again = h
        .service
        .pay_invoice(tenant, invoice.id(), pay)
        .expect("same answer");
    assert_eq!(again.outcome, first.outcome);
    assert_eq!(h.provider.calls(), calls, "no second charge");
    assert_eq!(again.invoice.status(), InvoiceStatus::Paid);
}

#[test]
fn a_tenant_never_sees_another_tenants_invoice() {
    let h = Harness::new();
    let owner = TenantId::new(1);
    let other = TenantId::new(2);
    let invoice = h
        .service
        .subscribe(owner, subscribe("starter", Some(card(CARD_SUCCEEDS))))
        .expect("subscribes")
        .invoice
        .expect("invoiced");
    assert!(h.service.invoice(owner, invoice.id()).is_ok());
    assert!(matches!(
        h.service.invoice(other, invoice.id()),
        Err(BillingServiceError::InvoiceNotFound { .. })
    ));
    assert!(matches!(
        h.service.invoice_text(other, invoice.id()),
        Err(BillingServiceError::InvoiceNotFound { .. })
    ));
    assert!(matches!(
        h.service.mark_paid(other, invoice.id(), "wire"),
        Err(BillingServiceError::InvoiceNotFound { .. })
    ));
    assert!(h.service.invoices(other).is_empty());
}

#[test]
fn bad_inputs_are_typed_errors() {
    let h = Harness::new();
    let tenant = TenantId::new(3);
    assert!(matches!(
        h.service.subscribe(tenant, subscribe("platinum", None)),
        Err(BillingServiceError::UnknownPlan { .. })
    ));
    assert!(matches!(
        h.service.invoice(tenant, &InvoiceId("inv_404".into())),
        Err(BillingServiceError::InvoiceNotFound { .. })
    ));
    let invoice = h
        .service
        .subscribe(tenant, subscribe("starter", None))
        .expect("subscribes")
        .invoice
        .expect("invoiced");
    h.service
        .void_invoice(tenant, invoice.id(), "duplicate")
        .expect("voids");
    let pay = PayInvoiceRequest {
        provider: "test".into(),
        method: card(CARD_SUCCEEDS),
        idempotency_key: "k".into(),
    };
    assert!(matches!(
        h.service.pay_invoice(tenant, invoice.id(), pay),
        Err(BillingServiceError::InvoiceNotPayable {
            status: InvoiceStatus::Void,
            ..
        })
    ));
    h.service.cancel(tenant, CancelMode::Now).expect("cancels");
    assert!(matches!(
        h.service.cancel(tenant, CancelMode::Now),
        Err(BillingServiceError::Subscription(
            SubscriptionError::IllegalTransition { .. }
        ))
    ));
    h.service
        .subscribe(tenant, subscribe("starter", None))
        .expect("a canceled tenant may subscribe again");
    assert!(matches!(
        h.service.subscribe(tenant, subscribe("starter", None)),
        Err(BillingServiceError::AlreadySubscribed { .. })
    ));
}

#[test]
fn running_twice_at_the_same_instant_does_nothing_new() {
    let h = Harness::new();
    for raw in 1..=5 {
        h.service
            .subscribe(
                TenantId::new(raw),
                subscribe("starter", Some(card(CARD_SUCCEEDS))),
            )
            .expect("subscribes");
    }
    h.clock.advance(DAY * 30);
    let now = h.clock.now_unix_ms();
    let first = h.service.run_due(now).expect("runs");
    assert_eq!(first.renewals, 5);
    assert_eq!(first.invoices_issued.len(), 5);
    let calls = h.provider.calls();
    let second = h.service.run_due(now).expect("runs");
    assert_eq!(second.tenants_due, 0);
    assert!(second.events.is_empty());
    assert_eq!(h.provider.calls(), calls);
    let h = h.reopen();
    assert_eq!(h.service.run_due(now).expect("runs").tenants_due, 0);
}

#[test]
fn a_declined_renewal_goes_through_dunning_to_suspension_and_recovers() {
    let h = Harness::new();
    let tenant = TenantId::new(9);
    h.service
        .subscribe(tenant, subscribe("starter", Some(card(CARD_SUCCEEDS))))
        .expect("subscribes");
    h.service
        .set_payment_method(tenant, Some(card(CARD_DECLINED)))
        .expect("sets");
    h.clock.advance(DAY * 30);
    h.service.run_due(h.clock.now_unix_ms()).expect("runs");
    assert_eq!(
        h.service.subscription(tenant).expect("sub").status,
        SubscriptionStatus::PastDue
    );
    h.clock.advance(DAY * 10);
    let report = h.service.run_due(h.clock.now_unix_ms()).expect("runs");
    assert_eq!(report.suspended, vec![tenant]);
    assert!(h.tenants.is_suspended(tenant));
    h.service
        .set_payment_method(tenant, Some(card(CARD_SUCCEEDS)))
        .expect("sets");
    let unpaid = h
        .service
        .invoices(tenant)
        .into_iter()
        .find(|i| i.status() == InvoiceStatus::Finalized)
        .expect("unpaid invoice");
    let paid = h
        .service
        .pay_invoice(
            tenant,
            unpaid.id(),
            PayInvoiceRequest {
                provider: "test".into(),
                method: card(CARD_SUCCEEDS),
                idempotency_key: "recover".into(),
            },
        )
        .expect("pays");
    assert_eq!(paid.invoice.status(), InvoiceStatus::Paid);
    assert!(!h.tenants.is_suspended(tenant));
    assert_eq!(
        h.service.subscription(tenant).expect("sub").status,
        SubscriptionStatus::Active
    );
    let failed = h
        .tenants
        .calls()
        .into_iter()
        .filter(|c| {
            matches!(c, TenantControlCall::Audit(_, BillingEvent::Invoice(e))
                if e.transition == InvoiceTransition::PaymentFailed)
        })
        .count();
    assert_eq!(failed, 5, "first attempt and four retries");
}

#[test]
fn the_service_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<BillingService>();
}

#[test]
fn idempotency_keys_are_scoped_to_the_tenant_and_auto_keys_are_reserved() {
    let h = Harness::new();
    let (first, second) = (TenantId::new(1), TenantId::new(2));
    let unpaid = |tenant| {
        h.service
            .subscribe(tenant, subscribe("starter", None))
            .expect("subscribes")
            .invoice
            .expect("invoiced")
    };
    let (first_invoice, second_invoice) = (unpaid(first), unpaid(second));
    let pay = |key: &str| PayInvoiceRequest {
        provider: "test".into(),
        method: card(CARD_SUCCEEDS),
        idempotency_key: key.into(),
    };
    // The billing run's own keys cannot be claimed by a caller (a tenant
    // must not be able to pre-empt the automatic charge of any invoice).
    let reserved = format!("auto-{}-0", second_invoice.id());
    assert!(matches!(
        h.service
            .pay_invoice(first, first_invoice.id(), pay(&reserved)),
        Err(BillingServiceError::ReservedIdempotencyKey { .. })
    ));
    // The same key used by two tenants is two payments: neither tenant can
    // replay, block or learn about the other's.
    let calls = h.provider.calls();
    let a = h
        .service
        .pay_invoice(first, first_invoice.id(), pay("order-1"))
        .expect("pays");
    let b = h
        .service
        .pay_invoice(second, second_invoice.id(), pay("order-1"))
        .expect("pays");
    assert!(matches!(a.outcome, PaymentOutcome::Succeeded { .. }));
    assert!(matches!(b.outcome, PaymentOutcome::Succeeded { .. }));
    assert_ne!(a.outcome, b.outcome, "two charges, two references");
    assert_eq!(h.provider.calls(), calls + 2);
    assert_eq!(b.invoice.status(), InvoiceStatus::Paid);
}

#[test]
fn paying_the_debt_after_dunning_canceled_lifts_the_suspension() {
    let h = Harness::new();
    let tenant = TenantId::new(11);
    h.service
        .subscribe(tenant, subscribe("starter", Some(card(CARD_SUCCEEDS))))
        .expect("subscribes");
    h.service
        .set_payment_method(tenant, Some(card(CARD_DECLINED)))
        .expect("sets");
    h.clock.advance(DAY * 30);
    h.service.run_due(h.clock.now_unix_ms()).expect("runs");
    h.clock.advance(DAY * 10);
    h.service.run_due(h.clock.now_unix_ms()).expect("runs");
    assert!(h.tenants.is_suspended(tenant));
    h.clock.advance(DAY * 31);
    h.service.run_due(h.clock.now_unix_ms()).expect("runs");
    assert_eq!(
        h.service.subscription(tenant).expect("sub").status,
        SubscriptionStatus::Canceled
    );
    assert!(h.tenants.is_suspended(tenant), "canceled, still owing");
    let unpaid = h
        .service
        .invoices(tenant)
        .into_iter()
        .find(|i| i.status() == InvoiceStatus::Finalized)
        .expect("the debt is still open");
    h.service
        .pay_invoice(
            tenant,
            unpaid.id(),
            PayInvoiceRequest {
                provider: "test".into(),
                method: card(CARD_SUCCEEDS),
                idempotency_key: "settle-debt".into(),
            },
        )
        .expect("pays");
    assert!(
        !h.tenants.is_suspended(tenant),
        "nothing owed: no longer suspended for non-payment"
    );
    assert_eq!(
        h.service.subscription(tenant).expect("sub").status,
        SubscriptionStatus::Canceled,
        "the subscription stays canceled"
    );
}

#[test]
fn coupons_discount_periods_not_prorations_so_plan_cycles_mint_no_credit() {
    use aerolith_billing::{Coupon, CouponDuration, CouponId, CouponKind};
    use rust_decimal_macros::dec;
    let h = Harness::new();
    let tenant = TenantId::new(5);
    h.service
        .subscribe(tenant, subscribe("starter", Some(card(CARD_SUCCEEDS))))
        .expect("subscribes");
    h.service
        .add_coupon(
            tenant,
            Coupon {
                id: CouponId("HALF".into()),
                kind: CouponKind::Percent { percent: dec!(50) },
                duration: CouponDuration::Forever,
            },
        )
        .expect("redeems");
    h.clock.advance(DAY * 10);
    let up = h
        .service
        .change_plan(tenant, "professional")
        .expect("upgrades")
        .invoice
        .expect("invoiced");
    let down = h
        .service
        .change_plan(tenant, "starter")
        .expect("downgrades")
        .invoice
        .expect("invoiced");
    assert!(up.applied_coupons().is_empty(), "no coupon on a proration");
    assert!(
        down.applied_coupons().is_empty(),
        "no coupon on a proration"
    );
    assert!(up.total().is_positive());
    assert_eq!(
        up.total().amount_minor + down.total().amount_minor,
        0,
        "up and straight back down at the same instant nets to zero"
    );
    // Period invoices still take the coupon.
    h.clock.advance(DAY * 20);
    h.service.run_due(h.clock.now_unix_ms()).expect("runs");
    let renewal = h
        .service
        .invoices(tenant)
        .into_iter()
        .max_by_key(|i| i.id().0.clone())
        .expect("renewal invoice");
    assert_eq!(renewal.applied_coupons().len(), 1, "{renewal:?}");
}

#[test]
fn a_downgrade_credit_gives_back_the_tax_of_the_upgrade() {
    use rust_decimal_macros::dec;
    let h = Harness::new();
    let tenant = TenantId::new(6);
    h.service
        .subscribe(tenant, subscribe("starter", Some(card(CARD_SUCCEEDS))))
        .expect("subscribes");
    h.service
        .set_tax_rate(tenant, dec!(8.25))
        .expect("sets the tax rate");
    h.clock.advance(DAY * 10);
    let up = h
        .service
        .change_plan(tenant, "professional")
        .expect("upgrades")
        .invoice
        .expect("invoiced");
    assert!(up.tax_total().is_positive(), "{up:?}");
    let down = h
        .service
        .change_plan(tenant, "starter")
        .expect("downgrades")
        .invoice
        .expect("invoiced");
    assert_eq!(
        down.tax_total().amount_minor,
        -up.tax_total().amount_minor,
        "the credit gives the tax back"
    );
    assert_eq!(up.total().amount_minor + down.total().amount_minor, 0);
    assert_eq!(down.amount_due().amount_minor, 0);
    assert_eq!(
        h.service.settings(tenant).credit_balance_minor,
        up.total().amount_minor,
        "everything paid for the upgrade, tax included, is account credit"
    );
}
