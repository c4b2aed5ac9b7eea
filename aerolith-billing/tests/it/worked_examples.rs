//! Worked examples: invoices whose every line is written out by hand, with
//! the arithmetic in a comment, on the default catalog (Starter $29/month,
//! 100k calls included then $0.01 per 1,000; 5 GB-months included then
//! $0.25/GB-month; compute $0.10/hour; bandwidth $0.09/GB; Professional
//! $99/month). Amounts in cents are written `dollars_cents`.
//!
//! The complete set, where each lives:
//! - an overage month on Starter: `invoice::overage_month_on_starter`, and
//!   from metered storage to the invoice line:
//!   [`metered_storage_month_on_starter_from_samples_to_invoice_line`];
//! - an upgrade Starter -> Professional on day 10 of 30, through the
//!   proration module: [`upgrade_starter_to_professional_on_day_10_of_30`]
//!   (`invoice::upgrade_on_day_ten_is_billed_from_proration_inputs` shows
//!   the same amounts given by hand);
//! - a downgrade: [`downgrade_professional_to_starter_on_day_21_credits_the_next_invoice`];
//! - a graduated and a volume price on the same usage:
//!   `invoice::graduated_and_volume_prices_on_the_same_usage`;
//! - a coupon plus tax: `invoice::coupon_plus_tax_plus_credit` (percent
//!   coupon, tax, account credit) and [`amount_coupon_plus_tax_rounds_tax_half_even`].
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;

use aerolith_billing::metering::{
    gb_months, period_to_date, EngineLedger, StorageSampler, STORAGE_BYTE_SECONDS,
};
use aerolith_billing::period::Interval;
use aerolith_billing::proration::{apply_change, PlanChange};
use aerolith_billing::subscription::{StartOptions, Subscription, SubscriptionId};
use aerolith_billing::{
    BillingInterval, Catalog, Coupon, CouponDuration, CouponId, CouponKind, CouponRedemption,
    Currency, Invoice, InvoiceBuilder, InvoiceId, InvoicePeriod, MetricId, Money, Plan,
};
use aerolith_core::{Database, Durability, Options};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::invoice::{
    november, summarize, usd, DEC_1_2026_UNIX_MS, JAN_1_2027_UNIX_MS, NOV_1_2026_UNIX_MS,
};

const DAY_MS: i64 = 86_400_000;

/// (kind, description, quantity, unit price, cents) of one line.
type Line = (&'static str, String, Decimal, Option<Decimal>, i64);

fn line(
    kind: &'static str,
    description: &str,
    quantity: Decimal,
    unit: Decimal,
    cents: i64,
) -> Line {
    (kind, description.to_owned(), quantity, Some(unit), cents)
}

fn monthly_price_minor(plan: &Plan) -> i64 {
    let price = plan
        .base_price_for(BillingInterval::Monthly)
        .expect("monthly price");
    Money::from_decimal(price, Currency::USD)
        .expect("a USD amount")
        .amount_minor
}

/// A subscription on `plan_id` started on 2026-11-01 (30 days).
fn subscription(plan_id: &str) -> Subscription {
    Subscription::start(
        StartOptions {
            id: SubscriptionId("sub_acme".into()),
            tenant: "acme".into(),
            plan_id: plan_id.into(),
            interval: Interval::Monthly,
            trial_days: None,
            has_payment_method: true,
        },
        NOV_1_2026_UNIX_MS,
    )
    .expect("starts")
    .0
}

/// The invoice of a plan change: the proration lines the module returned.
fn change_invoice(
    catalog: &Catalog,
    sub: &mut Subscription,
    to: &str,
    at_unix_ms: i64,
    period: InvoicePeriod,
    next_base_fee: Option<&str>,
) -> Invoice {
    let change = PlanChange {
        new_plan_id: to.into(),
        old_price_minor: monthly_price_minor(catalog.plan(&sub.plan_id).expect("old plan")),
        new_price_minor: monthly_price_minor(catalog.plan(to).expect("new plan")),
    };
    let (applied, _event) = apply_change(sub, &change, at_unix_ms).expect("applies");
    let mut builder = InvoiceBuilder::new(
        InvoiceId("inv_change".into()),
        "acme",
        Currency::USD,
        period,
    )
    .metric_names(catalog);
    for l in applied.invoice_lines(Currency::USD) {
        builder = builder.proration(l.description.clone(), l.amount, l.period);
    }
    if let Some(plan) = next_base_fee {
        builder = builder.base_fee(catalog.plan(plan).expect("plan"), BillingInterval::Monthly);
    }
    builder.build().expect("valid invoice")
}

#[test]
fn upgrade_starter_to_professional_on_day_10_of_30() {
    let catalog = Catalog::default_catalog();
    let mut sub = subscription("starter");
    // Day 10 begins after 9 whole days: 21 of November's 30 days remain.
    let day_10 = NOV_1_2026_UNIX_MS + 9 * DAY_MS;
    let invoice = change_invoice(&catalog, &mut sub, "professional", day_10, november(), None);
    assert_eq!(
        summarize(&invoice),
        vec![
            // Credit: $29.00 x 21/30 = $20.30.
            line(
                "proration",
                "Unused time on starter",
                dec!(1),
                dec!(-20.30),
                -20_30
            ),
            // Charge: $99.00 x 21/30 = $69.30.
            line(
                "proration",
                "Remaining time on professional",
                dec!(1),
                dec!(69.30),
                69_30
            ),
        ]
    );
    let rest = InvoicePeriod::new(day_10, DEC_1_2026_UNIX_MS).expect("valid");
    assert!(invoice.lines().iter().all(|l| l.period == Some(rest)));
    // $69.30 - $20.30 = $49.00, due now.
    assert_eq!(invoice.total(), usd(49_00));
    assert_eq!(invoice.amount_due(), usd(49_00));
    assert_eq!(sub.plan_id, "professional");
    assert_eq!(
        sub.current_period_end_unix_ms, DEC_1_2026_UNIX_MS,
        "renewal date unchanged"
    );
}

#[test]
fn downgrade_professional_to_starter_on_day_21_credits_the_next_invoice() {
    let catalog = Catalog::default_catalog();
    let mut sub = subscription("professional");
    // Day 21 begins after 20 whole days: 10 of 30 days remain. The net
    // credit goes on the December invoice, with December's Starter fee.
    let day_21 = NOV_1_2026_UNIX_MS + 20 * DAY_MS;
    let december = InvoicePeriod::new(DEC_1_2026_UNIX_MS, JAN_1_2027_UNIX_MS).expect("valid");
    let invoice = change_invoice(
        &catalog,
        &mut sub,
        "starter",
        day_21,
        december,
        Some("starter"),
    );
    assert_eq!(
        summarize(&invoice),
        vec![
            // Credit: $99.00 x 10/30 = $33.00.
            line(
                "proration",
                "Unused time on professional",
                dec!(1),
                dec!(-33.00),
                -33_00
            ),
            // Charge: $29.00 x 10/30 = $9.666.. -> $9.67 (half-even).
            line(
                "proration",
                "Remaining time on starter",
                dec!(1),
                dec!(9.67),
                9_67
            ),
            line(
                "base_fee",
                "Starter plan (monthly)",
                dec!(1),
                dec!(29),
                29_00
            ),
        ]
    );
    // $29.00 - $33.00 + $9.67 = $5.67.
    assert_eq!(invoice.subtotal(), usd(5_67));
    assert_eq!(invoice.total(), usd(5_67));
    assert_eq!(invoice.lines()[2].period, Some(december));
}

#[test]
fn amount_coupon_plus_tax_rounds_tax_half_even() {
    let catalog = Catalog::default_catalog();
    let starter = catalog.plan("starter").expect("starter");
    let coupon = Coupon {
        id: CouponId("WELCOME5".into()),
        kind: CouponKind::Amount { amount: usd(5_00) },
        duration: CouponDuration::Once,
    };
    let invoice = InvoiceBuilder::new(
        InvoiceId("inv_coupon".into()),
        "acme",
        Currency::USD,
        november(),
    )
    .metric_names(&catalog)
    .base_fee(starter, BillingInterval::Monthly)
    .usage(starter, MetricId::api_calls(), dec!(250_000))
    .coupon(CouponRedemption::new(coupon, NOV_1_2026_UNIX_MS))
    .tax_rate_percent(dec!(7))
    .build()
    .expect("valid");
    assert_eq!(
        summarize(&invoice),
        vec![
            line(
                "base_fee",
                "Starter plan (monthly)",
                dec!(1),
                dec!(29),
                29_00
            ),
            // 250,000 - 100,000 = 150,000 x $0.00001 = $1.50.
            line(
                "overage",
                "API calls overage: 250,000 used, 100,000 included",
                dec!(150_000),
                dec!(0.00001),
                1_50
            ),
            // $5.00 off the $30.50 subtotal.
            line(
                "discount",
                "Coupon WELCOME5 ($5.00 off)",
                dec!(1),
                dec!(-5),
                -5_00
            ),
            // 7% of ($30.50 - $5.00 = $25.50) = $1.785 -> $1.78 (half-even:
            // the 8 is even).
            line("tax", "Tax (7%)", dec!(25.50), dec!(0.07), 1_78),
        ]
    );
    // $30.50 - $5.00 + $1.78 = $27.28.
    assert_eq!(invoice.total(), usd(27_28));
}

#[test]
fn metered_storage_month_on_starter_from_samples_to_invoice_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(dir.path(), Options::default().durability(Durability::Never))
        .expect("opens");
    let ledger = Arc::new(EngineLedger::open(db).expect("ledger"));
    let sampler = StorageSampler::open(ledger.clone()).expect("sampler");
    // 6 GB from Nov 1, 9 GB from Nov 16, sampled until Dec 1.
    let gb = 1_000_000_000u64;
    sampler
        .sample("acme", 6 * gb, NOV_1_2026_UNIX_MS)
        .expect("samples");
    sampler
        .sample("acme", 9 * gb, NOV_1_2026_UNIX_MS + 15 * DAY_MS)
        .expect("samples");
    sampler
        .sample("acme", 9 * gb, DEC_1_2026_UNIX_MS)
        .expect("samples");
    let byte_seconds = period_to_date(
        ledger.as_ref(),
        "acme",
        &[STORAGE_BYTE_SECONDS],
        NOV_1_2026_UNIX_MS,
        DEC_1_2026_UNIX_MS - 1,
    )
    .expect("reads")[0]
        .1;
    // (6e9 + 9e9) B x 15 days x 86,400 s = 1.944e16 byte-seconds.
    assert_eq!(byte_seconds, 19_440_000_000_000_000);
    // Over a 30-day period: 1.944e16 / (1e9 x 2,592,000 s) = 7.5 GB-months.
    let used = gb_months(
        u128::from(byte_seconds) * 1_000,
        DEC_1_2026_UNIX_MS - NOV_1_2026_UNIX_MS,
        4,
    )
    .expect("converts")
    .normalize();
    assert_eq!(used, dec!(7.5));
    let catalog = Catalog::default_catalog();
    let starter = catalog.plan("starter").expect("starter");
    let invoice = InvoiceBuilder::new(
        InvoiceId("inv_storage".into()),
        "acme",
        Currency::USD,
        november(),
    )
    .metric_names(&catalog)
    .base_fee(starter, BillingInterval::Monthly)
    .usage(starter, MetricId::storage_gb_month(), used)
    .build()
    .expect("valid");
    assert_eq!(
        summarize(&invoice),
        vec![
            line(
                "base_fee",
                "Starter plan (monthly)",
                dec!(1),
                dec!(29),
                29_00
            ),
            // 7.5 - 5 included = 2.5 GB-months x $0.25 = $0.625 -> $0.62
            // (half-even).
            line(
                "overage",
                "Storage overage: 7.5 used, 5 included",
                dec!(2.5),
                dec!(0.25),
                62
            ),
        ]
    );
    assert_eq!(invoice.total(), usd(29_62));
}
