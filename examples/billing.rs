//! A tenant's billing life, end to end: a trial, usage metered through
//! tenancy into a `Meter` and an `EngineLedger`, trial conversion, an
//! upgrade with proration, a renewal invoice with overage, a declined card,
//! dunning down to suspension (writes refused), and recovery.
//!
//! Time is a `ManualClock`, so months pass in microseconds. The demo
//! catalog is the default one with small API-call allowances so that a few
//! hundred calls produce an overage line.
//!
//! Run with `cargo run --example billing`.

use std::error::Error;
use std::sync::Arc;

use aerolith_billing::catalog::IncludedQuantity;
use aerolith_billing::metering::{EngineLedger, Meter, MeterConfig};
use aerolith_billing::payment::test_provider::{TestProvider, CARD_DECLINED, CARD_SUCCEEDS};
use aerolith_billing::payment::PaymentMethod;
use aerolith_billing::price::PriceModel;
use aerolith_billing::{
    BillingInterval, BillingService, BillingServiceOptions, Catalog, MetricId, PayInvoiceRequest,
    SubscribeRequest,
};
use aerolith_core::{Clock, Database, Durability, ManualClock, MasterKey, Options, Query};
use aerolith_tenancy::{
    IsolationMode, NewTenant, Principal, Slug, Tenancy, TenancyError, TenancyOptions,
};
use rust_decimal::Decimal;
use serde_json::json;

/// 2026-11-01T00:00:00Z.
const NOV_1_2026_UNIX_MS: i64 = 1_793_491_200_000;
const DAY_MS: i64 = 86_400_000;

fn demo_catalog() -> Catalog {
    let mut catalog = Catalog::default_catalog();
    for (plan, included) in [("starter", 100), ("professional", 200)] {
        let plan = catalog
            .plans
            .iter_mut()
            .find(|p| p.id.as_str() == plan)
            .expect("default plan");
        plan.included.insert(
            MetricId::api_calls(),
            IncludedQuantity::Limited(Decimal::from(included)),
        );
        plan.overage.insert(
            MetricId::api_calls(),
            PriceModel::PerUnit {
                unit_price: Decimal::new(1, 2), // $0.01 per call
            },
        );
    }
    catalog
}

fn card(number: &str) -> Option<PaymentMethod> {
    Some(PaymentMethod::Card {
        number: number.into(),
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(NOV_1_2026_UNIX_MS));

    // One billing database holds the usage ledger and the billing state.
    let billing_db = Database::open(
        dir.path().join("billing"),
        Options::default().durability(Durability::Never),
    )?;
    let ledger = Arc::new(EngineLedger::open(billing_db.clone())?);
    let meter = Arc::new(Meter::start(
        MeterConfig::default(),
        ledger.clone(),
        clock.clone(),
    )?);
    let tenancy = Arc::new(Tenancy::open(
        dir.path().join("tenancy"),
        TenancyOptions {
            clock: clock.clone(),
            usage_sink: meter.clone(),
            durability: Durability::Never,
            ..TenancyOptions::new(MasterKey::generate())
        },
    )?);
    let provider = Arc::new(TestProvider::new());
    let billing = BillingService::open(
        billing_db,
        demo_catalog(),
        clock.clone(),
        BillingServiceOptions::new(tenancy.clone())
            .auto_charge(provider)
            .usage_ledger(ledger),
    )?;

    let created = tenancy.create_tenant(
        &Principal::Operator,
        NewTenant {
            name: "Acme".into(),
            slug: Slug::new("acme")?,
            plan: "starter".into(),
            isolation: IsolationMode::Shared,
        },
    )?;
    let tenant = created.tenant.id;
    let principal = tenancy.authenticate(created.owner_key.secret.expose())?;
    let data = tenancy.handle(&principal, tenant)?;
    // Starter allows 10,000 calls an hour: space the calls 400 ms apart.
    let tick = || clock.advance(std::time::Duration::from_millis(400));

    // Nov 1: a 14-day trial of Starter, no card yet.
    let trial = billing.subscribe(
        tenant,
        SubscribeRequest {
            plan_id: "starter".into(),
            interval: BillingInterval::Monthly,
            trial_days: Some(14),
            payment_method: None,
        },
    )?;
    println!(
        "Nov 1: trial of {} until day 14 ({:?})",
        trial.subscription.plan_id, trial.subscription.status
    );
    data.create_collection("orders")?;
    for i in 0..30 {
        tick();
        data.insert("orders", json!({"_id": format!("trial-{i}"), "total": i}))?;
    }
    billing.set_payment_method(tenant, card(CARD_SUCCEEDS))?;

    // Nov 15: the trial converts; the first month is invoiced and paid.
    clock.set_unix_ms(NOV_1_2026_UNIX_MS + 14 * DAY_MS);
    meter.flush()?;
    let run = billing.run_due(clock.now_unix_ms())?;
    println!(
        "Nov 15: trial converted ({}), {} invoice(s), {} paid",
        run.trials_converted,
        run.invoices_issued.len(),
        run.invoices_paid
    );

    // A busy first paid month: writes, reads and queries.
    let big = Query::filter(&json!({"total": {"$gt": 100}}))?;
    for i in 0..80 {
        tick();
        data.insert("orders", json!({"_id": format!("o-{i}"), "total": i}))?;
        tick();
        data.get("orders", &format!("o-{i}"))?;
        if i % 8 == 0 {
            tick();
            data.count("orders", &big)?;
        }
    }

    // Nov 20: upgrade to Professional, prorated to the second.
    clock.set_unix_ms(NOV_1_2026_UNIX_MS + 19 * DAY_MS);
    let preview = billing.preview_plan_change(tenant, "professional")?;
    let change = billing.change_plan(tenant, "professional")?;
    println!(
        "Nov 20: upgrade to professional, proration net {} minor units ({} lines), invoice {}",
        preview.net_minor,
        preview.lines.len(),
        change
            .invoice
            .as_ref()
            .and_then(|i| i.number())
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    for i in 80..140 {
        tick();
        data.insert("orders", json!({"_id": format!("o-{i}"), "total": i}))?;
        tick();
        data.get("orders", &format!("o-{i}"))?;
    }

    // The card on file is replaced by one that will be declined.
    billing.set_payment_method(tenant, card(CARD_DECLINED))?;

    // Dec 15: renewal = base fee in advance + overage of the month in arrears.
    clock.set_unix_ms(NOV_1_2026_UNIX_MS + 44 * DAY_MS);
    meter.flush()?;
    let run = billing.run_due(clock.now_unix_ms())?;
    let (_, renewal_id) = run.invoices_issued.first().ok_or("no renewal invoice")?;
    println!(
        "Dec 15: renewal issued, payment failed: {} -> subscription {:?}",
        run.payments_failed,
        billing
            .subscription(tenant)
            .ok_or("no subscription")?
            .status
    );
    println!("{}", billing.invoice_text(tenant, renewal_id)?);

    // Dunning: retries on days 1, 3, 5, 7, suspension on day 10.
    for day in 1..=10 {
        clock.set_unix_ms(NOV_1_2026_UNIX_MS + (44 + day) * DAY_MS);
        let run = billing.run_due(clock.now_unix_ms())?;
        if run.payment_retries > 0 {
            println!("Dec {}: retry declined", 15 + day);
        }
        if !run.suspended.is_empty() {
            println!("Dec {}: tenant suspended for non-payment", 15 + day);
        }
    }
    match data.insert("orders", json!({"_id": "while-suspended"})) {
        Err(TenancyError::Suspended(error)) => println!("  write refused: {error}"),
        other => return Err(format!("expected a suspension, got {other:?}").into()),
    }
    println!(
        "  reads still work: {} orders",
        data.count("orders", &Query::filter(&json!({}))?)?
    );

    // Dec 26: a working card; the tenant pays, everything is restored.
    clock.set_unix_ms(NOV_1_2026_UNIX_MS + 55 * DAY_MS);
    billing.set_payment_method(tenant, card(CARD_SUCCEEDS))?;
    let paid = billing.pay_invoice(
        tenant,
        renewal_id,
        PayInvoiceRequest {
            provider: "test".into(),
            method: PaymentMethod::Card {
                number: CARD_SUCCEEDS.into(),
            },
            idempotency_key: "acme-renewal-dec".into(),
        },
    )?;
    data.insert("orders", json!({"_id": "after-recovery"}))?;
    println!(
        "Dec 26: invoice {} is {:?}; subscription {:?}; writes work again",
        paid.invoice
            .number()
            .map(ToString::to_string)
            .unwrap_or_default(),
        paid.invoice.status(),
        billing
            .subscription(tenant)
            .ok_or("no subscription")?
            .status
    );
    println!(
        "{} invoices in all; audit log has {} entries",
        billing.invoices(tenant).len(),
        tenancy
            .audit_log(
                &Principal::Operator,
                aerolith_tenancy::AuditChain::Tenant(tenant),
                0,
                1_000
            )?
            .len()
    );
    meter.shutdown()?;
    Ok(())
}
