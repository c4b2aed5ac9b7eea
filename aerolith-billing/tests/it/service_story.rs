//! Worked example, written out by hand: a failed payment that ends in
//! suspension and then recovery, with a real tenancy registry (status and
//! hash-chained audit log) and usage in an engine ledger that shares the
//! billing database. Also: plan change preview == invoiced lines.
//!
//! The story (UTC):
//! - Nov 1 2026 00:00 — tenant subscribes to Starter ($29/month) with a card
//!   that works: invoice AER-2026-000001, $29.00, paid at once.
//! - Then its card is replaced by one that declines. During November it
//!   makes 150,000 reads, 50,000 writes and 5,000 admin calls.
//! - Dec 1 — renewal: AER-2026-000002 = Starter base fee $29.00 for
//!   [Dec 1, Jan 1) in advance + API calls overage for [Nov 1, Dec 1) in
//!   arrears: 200,000 billed calls (admin calls are free) − 100,000
//!   included = 100,000 × $0.00001 = $1.00; total $30.00. The charge is
//!   declined: subscription past due, dunning starts.
//! - Dec 2, 4, 6, 8 — retries 1..4, all declined.
//! - Dec 11 (day 10) — grace over: subscription suspended, tenant suspended
//!   for non-payment (read-only).
//! - Dec 12 — the tenant puts a working card on file and pays the invoice:
//!   paid, dunning restored, subscription active, tenant resumed.
//! - Jan 1 2027 — renewal AER-2027-000001 ($29.00, no usage), paid at once.
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;
use std::time::Duration;

use aerolith_billing::dunning::DunningAction;
use aerolith_billing::invoice::{InvoiceLineKind, UsageSource};
use aerolith_billing::metering::{
    Aggregation, EngineLedger, LedgerEntry, UsageLedger, API_CALLS_ADMIN, API_CALLS_READ,
    API_CALLS_WRITE, HOUR_MS,
};
use aerolith_billing::payment::test_provider::{TestProvider, CARD_DECLINED, CARD_SUCCEEDS};
use aerolith_billing::payment::PaymentOutcome;
use aerolith_billing::service::InvoiceTransition;
use aerolith_billing::subscription::SubscriptionStatus;
use aerolith_billing::{
    BillingEvent, BillingInterval, BillingService, BillingServiceOptions, Catalog, Currency,
    InvoiceStatus, Money, PayInvoiceRequest, SubscribeRequest,
};
use aerolith_core::{Clock, Database, Durability, ManualClock, MasterKey, Options};
use aerolith_tenancy::{
    AuditAction, AuditChain, IsolationMode, NewTenant, Principal, Slug, SuspensionReason, Tenancy,
    TenancyOptions, TenantStatus,
};
use rust_decimal::Decimal;

use crate::service::{card, Harness, NOV_1_2026_UNIX_MS};

const DAY_MS: i64 = 86_400_000;
const DEC_1_2026_UNIX_MS: i64 = 1_796_083_200_000;
const JAN_1_2027_UNIX_MS: i64 = 1_798_761_600_000;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

fn usage(tenant: &str, metric: &str, quantity: u64) -> LedgerEntry {
    LedgerEntry {
        tenant: tenant.into(),
        metric: metric.into(),
        hour_start_unix_ms: NOV_1_2026_UNIX_MS + 100 * HOUR_MS,
        quantity,
        aggregation: Aggregation::Sum,
        latest_at_unix_ms: None,
    }
}

#[test]
fn a_failed_payment_ends_in_suspension_and_then_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(NOV_1_2026_UNIX_MS));
    let tenancy = Arc::new(
        Tenancy::open(
            dir.path().join("tenancy"),
            TenancyOptions {
                clock: clock.clone(),
                durability: Durability::Never,
                ..TenancyOptions::new(MasterKey::generate())
            },
        )
        .expect("tenancy"),
    );
    let tenant = tenancy
        .create_tenant(
            &Principal::Operator,
            NewTenant {
                name: "Acme".into(),
                slug: Slug::new("acme").expect("slug"),
                plan: "starter".into(),
                isolation: IsolationMode::Shared,
            },
        )
        .expect("creates")
        .tenant
        .id;
    let key = tenant.get().to_string();
    let db = Database::open(
        dir.path().join("billing"),
        Options::default().durability(Durability::Never),
    )
    .expect("opens");
    let ledger = Arc::new(EngineLedger::open(db.clone()).expect("ledger"));
    let provider = Arc::new(TestProvider::new());
    let billing = BillingService::open(
        db,
        Catalog::default_catalog(),
        clock.clone(),
        BillingServiceOptions::new(tenancy.clone())
            .auto_charge(provider.clone())
            .usage_ledger(ledger.clone()),
    )
    .expect("billing");

    // Nov 1: subscribe, first invoice paid at once.
    let first = billing
        .subscribe(
            tenant,
            SubscribeRequest {
                plan_id: "starter".into(),
                interval: BillingInterval::Monthly,
                trial_days: None,
                payment_method: Some(card(CARD_SUCCEEDS)),
            },
        )
        .expect("subscribes")
        .invoice
        .expect("invoiced");
    assert_eq!(
        first.number().expect("numbered").to_string(),
        "AER-2026-000001"
    );
    assert_eq!(first.total(), usd(29_00));
    assert_eq!(first.status(), InvoiceStatus::Paid);

    billing
        .set_payment_method(tenant, Some(card(CARD_DECLINED)))
        .expect("card replaced");
    ledger
        .upsert_batch(&[
            usage(&key, API_CALLS_READ, 150_000),
            usage(&key, API_CALLS_WRITE, 50_000),
            usage(&key, API_CALLS_ADMIN, 5_000),
        ])
        .expect("usage");

    // Dec 1: renewal invoice, declined.
    clock.set_unix_ms(DEC_1_2026_UNIX_MS);
    let report = billing.run_due(clock.now_unix_ms()).expect("runs");
    assert_eq!((report.renewals, report.payments_failed), (1, 1));
    let renewal = billing.invoices(tenant).pop().expect("renewal invoice");
    assert_eq!(
        renewal.number().expect("numbered").to_string(),
        "AER-2026-000002"
    );
    let lines: Vec<(&str, &str, Decimal, i64)> = renewal
        .lines()
        .iter()
        .map(|l| {
            (
                l.kind.name(),
                l.description.as_str(),
                l.quantity,
                l.amount.amount_minor,
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("base_fee", "Starter plan (monthly)", Decimal::ONE, 29_00),
            (
                "overage",
                "API calls overage: 200,000 used, 100,000 included",
                Decimal::from(100_000),
                1_00
            ),
        ]
    );
    let overage = &renewal.lines()[1];
    assert_eq!(
        overage.period.map(|p| (p.start_unix_ms, p.end_unix_ms)),
        Some((NOV_1_2026_UNIX_MS, DEC_1_2026_UNIX_MS))
    );
    let source = |metric: &str, quantity| UsageSource {
        ledger_metric: metric.into(),
        quantity,
    };
    assert_eq!(
        overage.sources,
        vec![
            source(API_CALLS_READ, 150_000),
            source(API_CALLS_WRITE, 50_000),
            source("api_calls.query", 0),
            source("api_calls.other", 0),
        ]
    );
    assert!(matches!(overage.kind, InvoiceLineKind::Overage { .. }));
    assert_eq!(renewal.total(), usd(30_00));
    assert_eq!(renewal.status(), InvoiceStatus::Finalized);
    assert_eq!(
        billing.subscription(tenant).expect("sub").status,
        SubscriptionStatus::PastDue
    );

    // Dec 2..Dec 11, one run a day: four retries, then suspension.
    let mut retries = Vec::new();
    let mut suspended_on = None;
    for day in 1..=10 {
        clock.set_unix_ms(DEC_1_2026_UNIX_MS + day * DAY_MS);
        let report = billing.run_due(clock.now_unix_ms()).expect("runs");
        for (_, event) in &report.events {
            if let BillingEvent::Dunning(e) = event {
                match e.action {
                    DunningAction::RetryPayment { attempt } => retries.push((day, attempt)),
                    DunningAction::Suspend => suspended_on = Some(day),
                    _ => {}
                }
            }
        }
    }
    assert_eq!(retries, vec![(1, 1), (3, 2), (5, 3), (7, 4)]);
    assert_eq!(suspended_on, Some(10));
    assert_eq!(
        billing.subscription(tenant).expect("sub").status,
        SubscriptionStatus::Suspended
    );
    let status = |tenancy: &Tenancy| {
        tenancy
            .get_tenant(&Principal::Operator, tenant)
            .expect("tenant")
            .status
    };
    assert_eq!(
        status(&tenancy),
        TenantStatus::Suspended {
            reason: SuspensionReason::NonPayment
        }
    );

    // Dec 12: a working card, the invoice is paid, everything recovers.
    clock.set_unix_ms(DEC_1_2026_UNIX_MS + 11 * DAY_MS);
    billing
        .set_payment_method(tenant, Some(card(CARD_SUCCEEDS)))
        .expect("card replaced");
    let paid = billing
        .pay_invoice(
            tenant,
            renewal.id(),
            PayInvoiceRequest {
                provider: "test".into(),
                method: card(CARD_SUCCEEDS),
                idempotency_key: "acme-dec-2026".into(),
            },
        )
        .expect("pays");
    assert!(matches!(paid.outcome, PaymentOutcome::Succeeded { .. }));
    assert_eq!(paid.invoice.status(), InvoiceStatus::Paid);
    assert_eq!(status(&tenancy), TenantStatus::Active);
    assert_eq!(
        billing.subscription(tenant).expect("sub").status,
        SubscriptionStatus::Active
    );

    // Jan 1 2027: the next renewal starts the 2027 series.
    clock.set_unix_ms(JAN_1_2027_UNIX_MS);
    billing.run_due(clock.now_unix_ms()).expect("runs");
    let january = billing.invoices(tenant).pop().expect("january invoice");
    assert_eq!(
        january.number().expect("numbered").to_string(),
        "AER-2027-000001"
    );
    assert_eq!(january.total(), usd(29_00));
    assert_eq!(january.status(), InvoiceStatus::Paid);

    // The tenant's hash-chained audit log tells the whole story.
    let log = tenancy
        .audit_log(&Principal::Operator, AuditChain::Tenant(tenant), 0, 1_000)
        .expect("audit log");
    tenancy
        .verify_audit_log(&Principal::Operator, AuditChain::Tenant(tenant))
        .expect("chain intact");
    let sub = AuditAction::BillingSubscription;
    let inv = AuditAction::BillingInvoice;
    let dun = AuditAction::BillingDunning;
    let kinds: Vec<AuditAction> = log.iter().map(|e| e.action).collect();
    assert_eq!(
        kinds,
        vec![
            AuditAction::TenantCreated,
            AuditAction::KeyCreated,
            // Nov 1: started, issued, paid.
            sub,
            inv,
            inv,
            // Dec 1: renewed, issued, payment failed, past due.
            sub,
            inv,
            inv,
            sub,
            // Four retries, each declined.
            dun,
            inv,
            dun,
            inv,
            dun,
            inv,
            dun,
            inv,
            // Dec 11: dunning suspends, subscription suspended, tenant suspended.
            dun,
            sub,
            AuditAction::TenantSuspended,
            // Dec 12: paid, dunning restored, subscription active, tenant resumed.
            inv,
            dun,
            sub,
            AuditAction::TenantResumed,
            // Jan 1: renewed, issued, paid.
            sub,
            inv,
            inv,
        ]
    );
    assert!(log
        .iter()
        .any(|e| e.target.contains("AER-2026-000002") && e.target.contains("PaymentFailed")));
}

#[test]
fn plan_change_invoices_exactly_the_previewed_lines() {
    let h = Harness::new();
    let tenant = aerolith_tenancy::TenantId::new(11);
    h.service
        .subscribe(
            tenant,
            SubscribeRequest {
                plan_id: "starter".into(),
                interval: BillingInterval::Monthly,
                trial_days: None,
                payment_method: Some(card(CARD_SUCCEEDS)),
            },
        )
        .expect("subscribes");
    h.service
        .set_tax_rate(tenant, Decimal::new(10, 0))
        .expect("sets");
    // Day 10 of November's 30 days, 12:00:00.500: 20.5 days unused.
    h.clock.advance(Duration::from_millis(
        (9 * DAY_MS + 12 * HOUR_MS + 500) as u64,
    ));
    let preview = h
        .service
        .preview_plan_change(tenant, "professional")
        .expect("previews");
    let outcome = h
        .service
        .change_plan(tenant, "professional")
        .expect("changes");
    assert_eq!(outcome.preview, preview);
    let invoice = outcome.invoice.expect("invoiced");
    let proration: Vec<_> = invoice
        .lines()
        .iter()
        .filter(|l| l.kind == InvoiceLineKind::Proration)
        .cloned()
        .collect();
    assert_eq!(proration, preview.invoice_lines(Currency::USD));
    // 29.00 x 20.5 / 30 = 19.8166.. -> 19.82 credited; 99.00 x 20.5 / 30 = 67.65.
    let amounts: Vec<i64> = proration.iter().map(|l| l.amount.amount_minor).collect();
    assert_eq!(amounts, vec![-19_82, 67_65]);
    // Net 47.83 + 10% tax (4.783 -> 4.78) = 52.61, charged at once.
    assert_eq!(invoice.total(), usd(52_61));
    assert_eq!(invoice.status(), InvoiceStatus::Paid);
    assert_eq!(
        h.service.subscription(tenant).expect("sub").plan_id,
        "professional"
    );
    // Downgrading back credits the account instead of charging.
    let back = h.service.change_plan(tenant, "starter").expect("changes");
    let credit = back.invoice.expect("invoiced");
    assert!(credit.total().is_negative());
    assert_eq!(
        h.service.settings(tenant).credit_balance_minor,
        -credit.total().amount_minor
    );
    let issued_then_paid = h
        .tenants
        .calls()
        .iter()
        .filter(|c| {
            matches!(c, aerolith_billing::service::TenantControlCall::Audit(_, BillingEvent::Invoice(e))
                if e.transition == InvoiceTransition::Issued)
        })
        .count();
    assert_eq!(issued_then_paid, 3);
}
